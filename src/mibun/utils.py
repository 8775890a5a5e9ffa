"""Helpers: gradient checks, array-level shape helpers, conv size helpers.

``gradient_check`` is the strict one: it projects every output on random weights (so a
wrong transpose or a wrong sign cannot hide in a sum), checks every floating input, to
first and optionally second order, and raises with the numbers when they disagree.
"""
from __future__ import annotations

import math
import operator

import numpy as np

from mibun import backend, core, errors
from mibun.config import enable_grad, no_grad
from mibun.autograd import grad
from mibun.core import Variable, as_operand


# =============================================================================
# Array-level shape helpers (used by forward code)
# =============================================================================
def sum_to(x, shape):
    """Sum the ndarray ``x`` down to ``shape`` (undo NumPy broadcasting)."""
    shape = tuple(shape)
    ndim = len(shape)
    lead = x.ndim - ndim
    lead_axis = tuple(range(lead))
    axis = tuple(i + lead for i, sx in enumerate(shape) if sx == 1 and x.shape[i + lead] != 1)
    y = x.sum(lead_axis + axis, keepdims=True)
    if lead > 0:
        y = y.squeeze(lead_axis)
    return y


describe = errors.describe  # one line of an error message: "  x: shape=(3, 4) dtype=float32"


def as_data(x, op="mibun", arg="x"):
    """The ndarray behind a Variable or an array-like (for argument checks); a TypeError
    naming ``op`` and ``arg`` for what is not one (a ragged list, a dict, ...)."""
    if isinstance(x, Variable):
        a = x.data
    elif isinstance(x, backend.array_types):
        a = x
    else:
        try:
            a = np.asarray(x)
        except (TypeError, ValueError) as e:
            raise errors.bad_operand(op, arg, x) from e
    if a is None or a.dtype.kind not in errors.REAL_KINDS:  # complex, object, str...
        raise errors.bad_operand(op, arg, x)
    return a


def check_real(owner, name, value, low=None, high=None, low_open=False, high_open=False,
          inf=False):
    """``value`` as a float, checked to be a real number in range (NaN never is), else a
    TypeError or ValueError naming ``owner``'s ``name``: the one check of the settings of
    optimizers and layers (learning rates, decays, eps ...). ``inf``: +inf is allowed too.

    >>> check_real("SGD", "lr", 0.5, low=0.0)
    0.5
    >>> check_real("L.BatchNorm", "decay", 2, low=0.0, high=1.0)
    Traceback (most recent call last):
    ...
    ValueError: L.BatchNorm: decay must be a finite number in [0, 1], got 2
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{owner}: {name} must be a real number, got "
                        f"{type(value).__name__} {value!r:.40}")
    v = float(value)
    ok = math.isfinite(v) or (inf and v == math.inf)
    ok = ok and (low is None or (v > low if low_open else v >= low))
    ok = ok and (high is None or (v < high if high_open else v <= high))
    if not ok:
        if low is not None and high is not None:
            where = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        elif low is not None:
            where = f"{'>' if low_open else '>='} {low:g}"
        else:
            where = f"{'<' if high_open else '<='} {high:g}"
        raise ValueError(f"{owner}: {name} must be a {'' if inf else 'finite '}number "
                         f"{where}, got {value!r}")
    return v


def as_ints(seq, op, name, x):
    """``seq`` as a tuple of Python ints (an int alone is one), or a TypeError naming the
    op: floats, strings and None are refused, as NumPy refuses them."""
    try:
        if isinstance(seq, (int, np.integer)):
            return (operator.index(seq),)
        return tuple(operator.index(s) for s in seq)
    except TypeError as e:
        raise TypeError(f"{op}: {name} must be an int or a tuple of ints, got "
                        f"{type(seq).__name__} {seq!r:.60}\n" + describe("x", x)) from e


def normalize_axis(axis, ndim, op="F.op", x=None):
    """Validate ``axis`` (None, int or tuple) for an ``ndim``-array; return it non-negative."""
    if axis is None:
        return None
    single = not isinstance(axis, (tuple, list))
    axes = (axis,) if single else tuple(axis)
    out = []
    where = "" if x is None else f"\n  x: shape={tuple(x.shape)} dtype={x.dtype}"
    for a in axes:
        if not isinstance(a, (int, np.integer)) or isinstance(a, bool):
            raise TypeError(f"{op}: axis must be None, an int or a tuple of ints, "
                            f"got {type(a).__name__} {a!r}" + where)
        # NumPy lets a 0-d array reduce over axis 0 or -1
        if not -max(ndim, 1) <= a < max(ndim, 1):
            raise ValueError(f"{op}: axis {axis} is out of range for a {ndim}-d input" + where)
        out.append(int(a) % ndim if ndim else 0)
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: repeated axis in {axis}" + where)
    return out[0] if single else tuple(out)


def reshape_sum_backward(gy, x_shape, axis, keepdims):
    """Reshape the gradient of a reduction so it broadcasts back to ``x_shape``."""
    ndim = len(x_shape)
    if axis is None:
        tupled_axis = None
    elif not isinstance(axis, tuple):
        tupled_axis = (axis,)
    else:
        tupled_axis = axis
    if not (ndim == 0 or tupled_axis is None or keepdims):
        actual_axis = [a if a >= 0 else a + ndim for a in tupled_axis]
        shape = list(gy.shape)
        for a in sorted(actual_axis):
            shape.insert(a, 1)
    elif ndim and (tupled_axis is None and not keepdims):
        shape = (1,) * ndim
    else:
        shape = gy.shape
    if tuple(shape) != tuple(gy.shape):
        gy = gy.reshape(tuple(shape))
    return gy


def max_backward_shape(x, axis):
    """Shape of a max/min result with the reduced axes kept as 1 (DeZero's helper)."""
    if axis is None:
        axis = range(x.ndim)
    elif isinstance(axis, int):
        axis = (axis,)
    return [s if ax not in axis else 1 for ax, s in enumerate(x.shape)]


def logsumexp(x, axis=1):
    """Stable ``log(sum(exp(x), axis, keepdims=True))`` on an ndarray."""
    xp = backend.get_array_module(x)
    m = x.max(axis=axis, keepdims=True)
    y = x - m
    xp.exp(y, out=y)
    s = y.sum(axis=axis, keepdims=True)
    xp.log(s, out=s)
    m += s
    return m


def pair(x):
    """``3 -> (3, 3)``; a pair passes through."""
    if isinstance(x, (int, np.integer)):
        return (int(x), int(x))
    if isinstance(x, tuple) and len(x) == 2:
        return x
    raise ValueError(f"expected an int or a pair of ints, got {x!r}")


def get_conv_outsize(input_size, kernel_size, stride, pad):
    """Output length of a convolution: ``(H + 2 pad - K) // stride + 1``."""
    return (input_size + pad * 2 - kernel_size) // stride + 1


def get_deconv_outsize(size, k, s, p):
    """Output length of a transposed convolution: ``s (H - 1) + k - 2 p``."""
    return s * (size - 1) + k - 2 * p


def array_equal(a, b):
    a = a.data if isinstance(a, Variable) else a
    b = b.data if isinstance(b, Variable) else b
    return bool(np.array_equal(backend.as_numpy(a), backend.as_numpy(b)))


def array_allclose(a, b, rtol=1e-4, atol=1e-5):
    a = a.data if isinstance(a, Variable) else a
    b = b.data if isinstance(b, Variable) else b
    return bool(np.allclose(backend.as_numpy(a), backend.as_numpy(b), atol=atol, rtol=rtol))


# =============================================================================
# Gradient checks
# =============================================================================
class GradientCheckError(AssertionError):
    """Raised by ``gradient_check`` with the numerical and analytical values."""


def numerical_grad(f, x, *args, eps=1e-4, **kwargs):
    """DeZero's numerical gradient: d(sum of f's outputs)/dx by central differences.

    Kept for compatibility; ``gradient_check`` uses random projections instead of sums.
    """
    x = x.data if isinstance(x, Variable) else x
    xp = backend.get_array_module(x)
    x = x.astype(np.float64) if x.dtype.kind != "f" else x
    grad_ = xp.zeros_like(x)
    it = np.nditer(backend.as_numpy(x), flags=["multi_index"], op_flags=["readonly"])
    while not it.finished:
        idx = it.multi_index
        tmp = x[idx].copy()
        x[idx] = tmp + eps
        y1 = _sum_outputs(f(x, *args, **kwargs))
        x[idx] = tmp - eps
        y2 = _sum_outputs(f(x, *args, **kwargs))
        x[idx] = tmp
        grad_[idx] = (y1 - y2) / (2 * eps)
        it.iternext()
    return grad_


def _sum_outputs(ys):
    ys = ys if isinstance(ys, (tuple, list)) else (ys,)
    return sum(float(backend.as_numpy(as_operand(y).data).sum()) for y in ys)


def _is_checked(a, first):
    # Floating inputs are checked; the first input also when it holds integers, which are
    # cast to float64 as DeZero does (its tests check F.relu on np.array([[-1, 0], ...])).
    d = a.data if isinstance(a, Variable) else a
    return isinstance(d, backend.array_types) and (
        d.dtype.kind == "f" or first and d.dtype.kind in "iu")


def gradient_check(f, *inputs, rtol=1e-4, atol=1e-5, eps=1e-6, order=1, seed=0,
                   full_size=100, jvp=True, **kwargs):
    """Check ``f``'s backward and forward mode against central differences; raise on a
    mismatch.

    Every output ``y_k`` is projected on fixed random weights ``w_k``, giving the scalar
    ``L = sum_k <w_k, y_k>``. For each floating input, ``dL/dx`` from backprop is compared
    with finite differences: elementwise when the input has at most ``full_size`` elements,
    else along two random directions ``v`` (``<dL/dx, v>`` against ``(L(x+eps v) -
    L(x-eps v)) / 2eps``). Inputs are copied to float64.

    With ``jvp`` (the default) forward mode is checked too: ``mibun.func.jvp`` along a
    random direction ``v`` (every input at once) against ``(f(x+eps v) - f(x-eps v)) /
    2eps``, and the duality ``<w, J v> = <J^T w, v>`` with the backprop gradient.

    With ``order=2`` the gradient (built with ``create_graph=True``) and the tangent map
    ``x -> J(x) v`` are checked the same way, which covers forward-over-reverse,
    reverse-over-reverse, reverse-over-forward and forward-over-forward.

    Args:
        f: callable taking the inputs (Variables) and returning a Variable or a tuple.
        *inputs: ndarrays / Variables (float ones are checked, and the first one also
            when it holds integers; others pass through).
        jvp (bool): also check forward mode. A user Function without a ``jvp`` rule is
            checked through its VJP; pass False for one whose backward computes on
            ``gy.data`` (it has no forward mode).
        **kwargs: passed to ``f`` (as in DeZero).
    Returns:
        True (so DeZero's ``assert gradient_check(...)`` works).
    Raises:
        GradientCheckError: with the input index, the numerical and analytical values.

    >>> import numpy as np, mibun.functions as F
    >>> gradient_check(F.sin, np.random.rand(3), order=2)
    True
    """
    rng = np.random.default_rng(seed)
    args = []
    checked = []
    for i, a in enumerate(inputs):
        if _is_checked(a, i == 0):
            d = a.data if isinstance(a, Variable) else a
            args.append(d.astype(np.float64, copy=True))
            checked.append(i)
        else:
            args.append(a)
    if not checked:
        raise ValueError("gradient_check: no floating-point input to check")

    def call(arrays, make_var):
        full = list(args)
        for i, a in zip(checked, arrays):
            full[i] = make_var(a)
        ys = f(*full, **kwargs)
        return list(ys) if isinstance(ys, (tuple, list)) else [ys]

    base = [args[i] for i in checked]
    with no_grad():
        ys0 = [as_operand(y) for y in call(base, lambda a: Variable(a))]
    ws = []
    for y in ys0:
        xp = backend.get_array_module(y.data)
        w = rng.standard_normal(y.shape)
        ws.append(xp.asarray(w) if y.data.dtype.kind in "fc" else None)

    def loss_value(arrays):
        with no_grad():
            ys = call(arrays, lambda a: Variable(a))
        return sum(float(backend.as_numpy(w * as_operand(y).data).sum())
                   for w, y in zip(ws, ys) if w is not None)

    def loss_var(xs):
        from mibun.functions import sum as fsum
        ys = call([x for x in xs], lambda v: v)
        total = None
        for w, y in zip(ws, ys):
            if w is None:
                continue
            term = fsum(as_operand(y) * w)
            total = term if total is None else total + term
        return total

    xs = [Variable(a.copy()) for a in base]
    L = loss_var(xs)
    if L is None:
        raise ValueError("gradient_check: f has no floating-point output")
    gs = grad(L, xs, create_graph=order > 1)

    for k, (i, a, g) in enumerate(zip(checked, base, gs)):
        ga = backend.as_numpy(g.data)
        if a.size <= full_size:
            num = np.zeros(a.shape)
            for j in np.ndindex(a.shape):  # index in place: keeps a non-contiguous layout
                old = a[j].copy()
                a[j] = old + eps
                lp = loss_value(base)
                a[j] = old - eps
                lm = loss_value(base)
                a[j] = old
                num[j] = (lp - lm) / (2 * eps)
            if not np.allclose(num, ga, rtol=rtol, atol=atol):
                _fail(f, i, num, ga, "elementwise")
        else:
            xp = backend.get_array_module(a)
            for _ in range(2):
                v = xp.asarray(rng.standard_normal(a.shape))
                orig = a.copy()
                a += eps * v
                lp = loss_value(base)
                a[...] = orig - eps * v
                lm = loss_value(base)
                a[...] = orig
                num = (lp - lm) / (2 * eps)
                ana = float(backend.as_numpy(g.data * v).sum())
                scale = float(np.abs(backend.as_numpy(g.data)).sum())
                if not np.isclose(num, ana, rtol=rtol, atol=atol * max(1.0, scale)):
                    _fail(f, i, np.array(num), np.array(ana), "random direction")

    if jvp:
        vs = [rng.standard_normal(a.shape) for a in base]
        _check_jvp(f, call, base, vs, ws, gs, eps, rtol, atol)

    if order > 1:
        def grad_fn(*vs):
            with enable_grad():  # the outer check evaluates f under no_grad
                return tuple(grad(loss_var(list(vs)), list(vs), create_graph=True))

        gradient_check(grad_fn, *base, rtol=rtol, atol=atol, eps=eps, order=order - 1,
                       seed=seed + 1, full_size=full_size, jvp=jvp)
        if jvp:
            from mibun import func

            def tangent_fn(*xs):
                ys = func.jvp(lambda *a: tuple(call(list(a), lambda v: v)), xs,
                              tuple(_xp_like(x, v) for x, v in zip(xs, vs)))[1]
                return tuple(t for t, w in zip(ys, ws) if w is not None)

            gradient_check(tangent_fn, *base, rtol=rtol, atol=atol, eps=eps,
                           order=order - 1, seed=seed + 2, full_size=full_size, jvp=jvp)
    return True


def _xp_like(x, a):
    """``a`` (a NumPy array) on ``x``'s backend."""
    return backend.get_array_module(as_operand(x).data).asarray(a)


def _check_jvp(f, call, base, vs, ws, gs, eps, rtol, atol):
    """Forward mode along ``vs``: against central differences, and dual to ``gs``."""
    from mibun import func
    xs = tuple(Variable(a.copy()) for a in base)
    tangents = tuple(_xp_like(a, v) for a, v in zip(base, vs))
    _, touts = func.jvp(lambda *a: tuple(as_operand(y) for y in call(list(a), lambda v: v)),
                        xs, tangents)
    with no_grad():
        yp = call([a + eps * t for a, t in zip(base, tangents)], lambda a: Variable(a))
        ym = call([a - eps * t for a, t in zip(base, tangents)], lambda a: Variable(a))
    lhs = rhs = 0.0
    scale = 1.0
    for k, (w, t, p, m) in enumerate(zip(ws, touts, yp, ym)):
        if w is None:
            continue
        num = (backend.as_numpy(as_operand(p).data) - backend.as_numpy(as_operand(m).data))
        num = num / (2 * eps)
        ana = backend.as_numpy(t.data)
        if ana.shape != num.shape or not np.allclose(num, ana, rtol=rtol, atol=atol):
            _fail(f, f"output {k}", num, ana, "jvp along a random direction")
        lhs += float((backend.as_numpy(w) * ana).sum())
        scale += float(np.abs(backend.as_numpy(w) * ana).sum())
    for g, v in zip(gs, vs):
        rhs += float((backend.as_numpy(g.data) * v).sum())
    if not np.isclose(lhs, rhs, rtol=1e-9, atol=1e-12 * scale):
        _fail(f, "all inputs", np.array(lhs), np.array(rhs), "duality <w, J v> = <J^T w, v>")


def check_backward(f, x, *args, y_grad=None, rtol=1e-4, atol=1e-5, **kwargs):
    """DeZero's older name: check ``f``'s gradient w.r.t. ``x`` (``args`` are constants).

    ``y_grad`` is accepted for compatibility; the check always projects on random weights.
    As in DeZero, ``x`` is checked in float64 even when given as integers.
    """
    x = x.data if isinstance(x, Variable) else np.asarray(x)
    x = x.astype(np.float64)
    return gradient_check(lambda v: f(v, *args, **kwargs), x, rtol=rtol, atol=atol)


def _fail(f, i, num, ana, how):
    """Raise GradientCheckError; ``i`` is the input (or, for a jvp, output) index."""
    name = getattr(f, "__name__", type(f).__name__)
    what = i if isinstance(i, str) else f"input {i}"
    with np.printoptions(precision=6, threshold=50):
        diff = np.max(np.abs(np.asarray(num) - np.asarray(ana)))
        raise GradientCheckError(
            f"gradient_check: Jacobian mismatch for {what} of {name} ({how}, outputs "
            f"projected on random weights)\n  numerical:  {num}\n  analytical: {ana}\n"
            f"  max abs difference: {diff:.3e}"
        )


# =============================================================================
# Downloads (DeZero's get_file, with a timeout and an atomic write)
# =============================================================================
def cache_dir() -> str:
    """The download cache: ``$MIBUN_CACHE`` if set, else ``~/.mibun``."""
    import os
    return os.environ.get("MIBUN_CACHE") or os.path.join(os.path.expanduser("~"), ".mibun")


def _resolve_host(url, timeout):
    # urlopen's timeout covers connect and each read, but not the DNS lookup, which can
    # block for a long time when offline: look the host up in a thread with a deadline.
    import socket
    import threading
    import urllib.parse
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return
    result = {}

    def lookup():
        try:
            result["addr"] = socket.getaddrinfo(parts.hostname, parts.port or 443)
        except OSError as e:
            result["error"] = e

    t = threading.Thread(target=lookup, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise TimeoutError(f"looking up {parts.hostname} took more than {timeout} s")
    if "error" in result:
        raise result["error"]


def get_file(url: str, file_name: str | None = None, *, timeout: float = 10.0,
             cache: str | None = None, quiet: bool = False) -> str:
    """Download ``url`` into the cache directory once and return the local path.

    An existing cached file is returned without touching the network. The download goes
    to a temporary file in the same directory, renamed into place only when complete, so
    an interrupted download never leaves a truncated file behind.

    Args:
        url: http(s) or file URL.
        file_name: name in the cache (default: the last part of the URL).
        timeout: seconds allowed for the host lookup, the connection and each read; an
            offline machine fails within about this time instead of hanging.
        cache: directory to use instead of ``cache_dir()``.
        quiet: do not print the "Downloading" line.
    Returns:
        str: the path of the file.
    Raises:
        ConnectionError: the download failed (offline, timeout, HTTP error); the message
            names the URL and where to put the file by hand.
    """
    import os
    import sys
    import tempfile
    import urllib.error
    import urllib.request
    if file_name is None:
        file_name = url.rstrip("/").rsplit("/", 1)[-1]
    directory = cache or cache_dir()
    path = os.path.join(directory, file_name)
    if os.path.exists(path):
        return path
    os.makedirs(directory, exist_ok=True)
    if not quiet:
        print(f"Downloading: {url} -> {path}", file=sys.stderr)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=file_name + ".", suffix=".part")
    try:
        try:
            _resolve_host(url, timeout)
            with urllib.request.urlopen(url, timeout=timeout) as r, os.fdopen(fd, "wb") as f:
                fd = None
                while True:
                    chunk = r.read(1 << 20)
                    if not chunk:
                        break
                    f.write(chunk)
        except (urllib.error.URLError, OSError, ValueError) as e:
            reason = getattr(e, "reason", None) or e
            raise ConnectionError(
                f"get_file: could not download {url}: {reason}. If this machine is offline, "
                f"copy the file by hand to {path}") from e
        os.chmod(tmp, 0o644)  # mkstemp creates 0600
        os.replace(tmp, path)
        tmp = None
    finally:
        if fd is not None:
            os.close(fd)
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)
    return path


# =============================================================================
# Graph drawing (DeZero keeps these in dezero.utils; they live in mibun.visualize)
# =============================================================================
def get_dot_graph(output, verbose=True, **kwargs):
    """DeZero's name for ``mibun.visualize.get_dot_graph`` (DOT text of the graph)."""
    from mibun import visualize
    return visualize.get_dot_graph(output, verbose, **kwargs)


def plot_dot_graph(output, verbose=True, to_file="graph.png", **kwargs):
    """DeZero's name for ``mibun.visualize.plot_dot_graph`` (draw the graph to a file)."""
    from mibun import visualize
    return visualize.plot_dot_graph(output, verbose, to_file, **kwargs)


def numerical_diff(f, x, eps: float = 1e-4):
    """Central difference ``(f(x + eps) - f(x - eps)) / (2 eps)`` (the seed's check).

    Args:
        f: a Function or any callable taking and returning a Variable.
        x (Variable): the point; integer data is promoted by ``x ± eps``.
    Returns:
        ndarray: the derivative of ``f`` at ``x`` (elementwise for array ``x``).
    """
    x = core.as_variable(x)
    y0 = core.as_variable(f(Variable(x.data - eps)))
    y1 = core.as_variable(f(Variable(x.data + eps)))
    return (y1.data - y0.data) / (2 * eps)
