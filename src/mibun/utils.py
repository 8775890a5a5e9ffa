"""Gradient checks, downloads and DeZero's ``dezero.utils`` names; above ``functions/``.

``gradient_check`` is the strict one: it projects every output on random weights (so a
wrong transpose or a wrong sign cannot hide in a sum), checks every floating input, to
first and optionally second order, and raises with the numbers when they disagree.

The helpers the ops share (``sum_to``, ``describe``, axis normalisation, conv geometry)
live in ``mibun.functions._helpers``, below every op family; they are re-exported here
under DeZero's names (``dezero.utils.sum_to``, ``get_conv_outsize``, ``pair`` ...).
"""
from __future__ import annotations

import os
import socket
import sys
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request

import numpy as np

from mibun import backend, core, func, visualize
from mibun.autograd import grad
from mibun.config import enable_grad, no_grad
from mibun.core import Variable, as_operand
from mibun.functions import _helpers
from mibun.functions._helpers import (  # noqa: F401  (DeZero's utils names, and mibun's)
    as_data,
    as_ints,
    check_int,
    check_real,
    describe,
    max_backward_shape,
    normalize_axis,
    pair,
    reshape_sum_backward,
    sum_to,
)
from mibun.functions.reduction import sum as fsum


# =============================================================================
# DeZero's array helpers
# =============================================================================
def get_conv_outsize(input_size, kernel_size, stride, pad):
    """DeZero's name: the output length of a convolution, ``(H + 2 pad - K) // stride + 1``.

    Args:
        input_size (int): the input length ``H``.
        kernel_size (int): the kernel length ``K``.
        stride (int): >= 1.
        pad (int): padding on each side, >= 0.
    Returns:
        int: the output length ``OH``.

    >>> get_conv_outsize(5, 2, 2, 0)
    2
    """
    return _helpers.conv_outsize(input_size, kernel_size, stride, pad)


def get_deconv_outsize(size, k, s, p):
    """DeZero's name: the output length of a transposed convolution, ``s (H - 1) + k - 2 p``.

    Args:
        size (int): the input length ``H``.
        k (int): the kernel length.
        s (int): the stride, >= 1.
        p (int): the padding on each side, >= 0.
    Returns:
        int: the output length (``get_conv_outsize`` maps it back to ``H``).

    >>> get_deconv_outsize(2, 2, 2, 0)
    4
    """
    return _helpers.deconv_outsize(size, k, s, p)


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
    return os.environ.get("MIBUN_CACHE") or os.path.join(os.path.expanduser("~"), ".mibun")


def _resolve_host(url, timeout):
    # urlopen's timeout covers connect and each read, but not the DNS lookup, which can
    # block for a long time when offline: look the host up in a thread with a deadline.
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
    if file_name is None:
        file_name = url.rstrip("/").rsplit("/", 1)[-1]
    directory = cache or cache_dir()
    path = os.path.join(directory, file_name)
    if os.path.exists(path):
        return path
    os.makedirs(directory, exist_ok=True)
    if not quiet:
        print(f"Downloading: {url} -> {path}", file=sys.stderr)
    fd: int | None
    tmp: str | None
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
    return visualize.get_dot_graph(output, verbose, **kwargs)


def plot_dot_graph(output, verbose=True, to_file="graph.png", **kwargs):
    """DeZero's name for ``mibun.visualize.plot_dot_graph`` (draw the graph to a file)."""
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
