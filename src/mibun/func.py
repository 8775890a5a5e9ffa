"""Functional transforms: ``grad``, ``vjp``, ``jvp``, ``linearize``, ``jacrev``, ``jacfwd``,
``hessian``, with ``torch.func``'s names, signatures and return conventions.

Each transform takes a function of Variables (ndarrays are accepted as inputs) and returns
Variables. They compose (``jacfwd(jacrev(f))``, ``grad(grad(f))``, ``jvp`` of ``grad``),
behave the same inside and outside ``no_grad()``, and are pure: no Variable's ``.grad``
changes.

Reverse mode (``vjp``, ``grad``, ``jacrev``) records the graph of ``f`` (also under
``no_grad()``) and runs the engine of :mod:`mibun.core` toward the inputs only
(``mibun.grad``). Its results are plain values, as ``mibun.grad`` without ``create_graph``,
unless an enclosing transform differentiates them: nest transforms (``grad(grad(f))``) for
higher derivatives.

Forward mode (``jvp``, ``jacfwd``) is true forward mode: tangents flow alongside the
forward computation, each op's JVP rule giving its outputs' tangents (the machinery, the
rules' conventions and the slower paths for ops without a rule are in
:mod:`mibun.forward_mode`). ``jacfwd`` (and so ``hessian``) pushes all its basis
directions at once, as one batch of tangents.
"""

from __future__ import annotations

import numpy as np

from mibun import autograd, backend, core, forward_mode
from mibun.config import using_config
from mibun.core import Function, Variable
from mibun.forward_mode import _need_graph, _recording, _reverse, _tangents_of, _zeros
from mibun.functions.array import astype as _astype
from mibun.functions.array import get_item, reshape, stack, transpose
from mibun.functions.reduction import sum as fsum

__all__ = ["grad", "grad_and_value", "hessian", "jacfwd", "jacrev", "jvp", "linearize", "vjp"]



class _Identity(Function):
    """A transform's own handle on an input: the gradient stops here, tangents start."""

    retain_inputs = ()
    batched_jvp = True

    def forward(self, x):
        return x

    def backward(self, gy):
        return gy

    def jvp(self, tx):
        return tx


def _wrap(x, name):
    if isinstance(x, Variable):
        y = _Identity()(x)
        ts = _tangents_of(y)
        if ts:  # a transform's input is differentiated: never the level's own
            ts.pop(forward_mode._OWN, None)
        return y
    if isinstance(x, backend.array_types) or np.isscalar(x):
        return Variable(core.as_array(x, backend.get_array_module(x)))
    raise TypeError(f"mibun.func: {name} must be a Variable or an ndarray, "
                    f"got {type(x).__name__}")


def _wrap_args(args, nums):
    """``args`` with those at ``nums`` wrapped for differentiation (see ``_wrap``)."""
    xs = list(args)
    for a in nums:
        xs[a] = _wrap(args[a], f"argument {a}")
    return xs


def _flat(out, name):
    """``f``'s output as a list of Variables and whether it was a tuple/list."""
    if isinstance(out, (tuple, list)):
        outs = [core.as_operand(o) for o in out]
        return outs, True
    if isinstance(out, (Variable, *backend.array_types)) or np.isscalar(out):
        return [core.as_operand(out)], False
    raise TypeError(f"mibun.func.{name}: f must return a Variable or a tuple of Variables, "
                    f"got {type(out).__name__}")


def _split_aux(out, has_aux, name):
    if not has_aux:
        return out, None
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise ValueError(f"mibun.func.{name}(..., has_aux=True): f must return a pair "
                         f"(output, aux), got {type(out).__name__}")
    return out[0], out[1]


def _argnums(argnums, n, name):
    single = isinstance(argnums, (int, np.integer))
    nums = (int(argnums),) if single else tuple(int(a) for a in argnums)
    if not nums:
        raise ValueError(f"mibun.func.{name}: argnums must not be empty")
    for a in nums:
        if not -n <= a < n:
            raise ValueError(f"mibun.func.{name}: argnums {argnums} out of range for "
                             f"{n} positional argument(s)")
    return tuple(a % n for a in nums), single


# =============================================================================
# Reverse mode
# =============================================================================
def vjp(f, *primals, has_aux=False):
    """Vector-Jacobian product (``torch.func.vjp``): ``f(*primals)`` and a function that
    pulls a cotangent back to the primals.

    Args:
        f: a function of Variables returning a Variable or a tuple of Variables
            (with ``has_aux``: a pair ``(output, aux)``).
        *primals (Variable or ndarray): the point.
        has_aux (bool): ``f`` returns ``(output, aux)``; ``aux`` is returned untouched.
    Returns:
        ``(output, vjp_fn)`` (``(output, vjp_fn, aux)`` with ``has_aux``). ``vjp_fn(ct)``
        takes a cotangent shaped like ``output`` (a tuple for a tuple output) and returns
        a tuple with one gradient per primal.

    >>> import mibun.functions as F
    >>> y, vjp_fn = vjp(F.sin, np.array(0.0))
    >>> vjp_fn(np.array(2.0))
    (variable(2.0),)
    """
    with _reverse:
        xs = [_wrap(p, "primals") for p in primals]
        with using_config("enable_backprop", True):
            out = f(*xs)
    out, aux = _split_aux(out, has_aux, "vjp")
    outs, is_tuple = _flat(out, "vjp")

    def vjp_fn(cotangents):
        cts = list(cotangents) if is_tuple else [cotangents]
        if len(cts) != len(outs):
            raise ValueError(f"mibun.func.vjp: vjp_fn got {len(cts)} cotangent(s) for "
                             f"{len(outs)} output(s)")
        cts = [core.as_operand(c) for c in cts]
        for o, c in zip(outs, cts):
            if c.shape != o.shape:
                raise ValueError(f"mibun.func.vjp: cotangent shape {c.shape} differs from "
                                 f"the output's {o.shape}")
        return tuple(_pullback(outs, cts, xs, 0))

    return (out, vjp_fn, aux) if has_aux else (out, vjp_fn)


def _pullback(outs, cts, xs, own):
    """The gradients of ``sum_i <outs_i, cts_i>`` w.r.t. ``xs``."""
    create = _need_graph(own)
    if len(outs) == 1:
        return autograd.grad(outs[0], list(xs), grad_outputs=cts[0], create_graph=create)
    with using_config("enable_backprop", True):
        total = None
        for o, c in zip(outs, cts):
            term = fsum(o * c)
            total = term if total is None else total + term
    return autograd.grad(total, list(xs), create_graph=create)


def grad_and_value(f, argnums=0, has_aux=False):
    """``torch.func.grad_and_value``: a function returning ``(gradient, value)`` of a
    scalar-valued ``f`` (``(gradient, (value, aux))`` with ``has_aux``).

    Args:
        f: a function of Variables returning a one-element Variable.
        argnums (int or tuple of int): the arguments to differentiate; a tuple gives a
            tuple of gradients.
        has_aux (bool): ``f`` returns ``(value, aux)``.
    Returns:
        function: same positional arguments as ``f``.

    >>> g, v = grad_and_value(lambda x: x ** 3)(np.array(2.0))
    >>> g, v
    (variable(12.0), variable(8.0))
    """
    def wrapper(*args, **kwargs):
        nums, single = _argnums(argnums, len(args), "grad")
        with _reverse:
            xs = _wrap_args(args, nums)
            with using_config("enable_backprop", True):
                out = f(*xs, **kwargs)
            value, aux = _split_aux(out, has_aux, "grad")
            if not isinstance(value, Variable) or value.size != 1:
                got = getattr(value, "shape", type(value).__name__)
                raise ValueError("mibun.func.grad: f must return a one-element Variable "
                                 f"(use vjp or jacrev otherwise), got {got}")
            gs = _pullback([value], [autograd.seed(value)], [xs[a] for a in nums], 1)
        g = gs[0] if single else tuple(gs)
        return (g, (value, aux)) if has_aux else (g, value)

    return wrapper


def grad(f, argnums=0, has_aux=False):
    """``torch.func.grad``: the gradient of a scalar-valued ``f`` as a function.

    Args and the calling convention as :func:`grad_and_value`; returns the gradient
    (``(gradient, aux)`` with ``has_aux``). ``grad(grad(f))`` is the second derivative.

    >>> import mibun.functions as F
    >>> grad(grad(F.sin))(np.array(0.5))
    variable(-0.479425538604203)
    """
    gv = grad_and_value(f, argnums, has_aux)

    def wrapper(*args, **kwargs):
        g, value = gv(*args, **kwargs)
        return (g, value[1]) if has_aux else g

    return wrapper


def jacrev(f, argnums=0, has_aux=False):
    """``torch.func.jacrev``: the Jacobian by reverse mode, one VJP per output entry
    (cheap for wide functions: few outputs, many inputs).

    Returns a function giving the Jacobian shaped ``output.shape + input.shape``; a tuple
    over the arguments for tuple ``argnums``, a tuple over outputs for a tuple output
    (outputs outside, arguments inside), plus ``aux`` with ``has_aux``.

    >>> jacrev(lambda x: x * x)(np.array([1.0, 2.0]))
    variable([[2. 0.]
              [0. 4.]])
    """
    def wrapper(*args):
        nums, single = _argnums(argnums, len(args), "jacrev")
        with _reverse:
            xs = _wrap_args(args, nums)
            with using_config("enable_backprop", True):
                out = f(*xs)
            out, aux = _split_aux(out, has_aux, "jacrev")
            outs, is_tuple = _flat(out, "jacrev")
            targets = [xs[a] for a in nums]
            graph = _need_graph(1)
            jacs = []
            for o in outs:
                rows = []  # rows[i][j]: d o.flat[i] / d targets[j]
                xp = backend.get_array_module(o.data)
                for i in range(o.size):
                    e = xp.zeros(o.shape, dtype=_float(o.dtype))
                    e.flat[i] = 1
                    rows.append(autograd.grad(o, targets, grad_outputs=Variable(e),
                                          create_graph=graph))
                per_arg = tuple(_assemble([r[j] for r in rows], o.shape, t.shape, graph)
                                for j, t in enumerate(targets))
                jacs.append(per_arg[0] if single else per_arg)
        res = tuple(jacs) if is_tuple else jacs[0]
        return (res, aux) if has_aux else res

    return wrapper


def _float(dtype):
    return dtype if dtype.kind in "fc" else np.float64


def _assemble(parts, out_shape, in_shape, graph):
    """Stack Jacobian rows (each ``in_shape``) into ``out_shape + in_shape``; in mibun ops
    when a graph is needed."""
    shape = tuple(out_shape) + tuple(in_shape)
    if not parts:
        return Variable(np.zeros(shape))
    if graph:
        return reshape(stack(parts), shape)
    xp = backend.get_array_module(parts[0].data)
    return Variable(xp.stack([p.data for p in parts]).reshape(shape))


# =============================================================================
# Forward mode
# =============================================================================
def jvp(f, primals, tangents, has_aux=False):
    """Jacobian-vector product by forward mode (``torch.func.jvp``).

    Args:
        f: a function of Variables returning a Variable or a tuple of Variables.
        primals (tuple): the point, one Variable or ndarray per argument of ``f``.
        tangents (tuple): one direction per primal, of the same shape.
        has_aux (bool): ``f`` returns ``(output, aux)``.
    Returns:
        ``(output, jvp_out)`` (``(output, jvp_out, aux)`` with ``has_aux``); ``jvp_out``
        has ``output``'s structure.

    >>> import mibun.functions as F
    >>> jvp(F.exp, (np.array(0.0),), (np.array(3.0),))
    (variable(1.0), variable(3.0))
    """
    if not isinstance(primals, (tuple, list)) or not isinstance(tangents, (tuple, list)):
        raise TypeError("mibun.func.jvp: primals and tangents must be tuples, e.g. "
                        "jvp(f, (x,), (v,))")
    if len(primals) != len(tangents):
        raise ValueError(f"mibun.func.jvp: {len(primals)} primal(s) but {len(tangents)} "
                         "tangent(s)")
    return _jvp(f, primals, tangents, has_aux, None)


def _jvp(f, primals, tangents, has_aux, size):
    """``jvp``; with ``size``, each tangent holds ``size`` directions on a leading axis
    (a batched level, see :mod:`mibun.forward_mode`) and so does each result."""
    with forward_mode._Level(size) as k:
        with using_config("enable_backprop", _recording()):
            xs = [_wrap(p, "primals") for p in primals]
            for i, (p, x, t) in enumerate(zip(primals, xs, tangents)):
                # made here from arrays: the level's own (see forward_mode._OWN)
                own = not isinstance(p, Variable) and not isinstance(t, Variable)
                t = core.as_operand(t)
                if t.shape != (x.shape if size is None else (size,) + x.shape):
                    raise ValueError(f"mibun.func.jvp: tangent {i} has shape {t.shape}, its "
                                     f"primal {x.shape}")
                if t.dtype != x.dtype and x.dtype.kind in "fc":
                    t = _astype(t, x.dtype)
                ts = _tangents_of(x)
                x._tangents = {k: t} if ts is None else {**ts, k: t}
                if own:
                    x._tangents[forward_mode._OWN] = k
            out = f(*xs)
        out, aux = _split_aux(out, has_aux, "jvp")
        outs, is_tuple = _flat(out, "jvp")
        touts = [_take_tangent(o, k, size) for o in outs]
        if has_aux:
            for a in aux if isinstance(aux, (tuple, list)) else (aux,):
                _take_tangent(a, k, size)
    tout = tuple(touts) if is_tuple else touts[0]
    return (out, tout, aux) if has_aux else (out, tout)


def _take_tangent(v, k, size):
    """Remove and return ``v``'s tangent at level ``k`` (zeros if it has none)."""
    ts = _tangents_of(v) if isinstance(v, Variable) else None
    t = None if ts is None else ts.pop(k, None)
    if t is None and isinstance(v, Variable):
        xp = backend.get_array_module(v.data)
        shape = v.shape if size is None else (size,) + v.shape
        t = Variable(xp.zeros(shape, dtype=_float(v.dtype)))
    return t


def linearize(f, *primals):
    """``torch.func.linearize``: ``f(*primals)`` and its linear approximation ``jvp_fn``.

    ``f`` is evaluated (and its graph recorded) once; ``jvp_fn(*tangents)`` then gives
    ``J t`` as the transpose of the recorded VJP (two reverse passes, no re-evaluation
    of ``f``). Returns ``(output, jvp_fn)``.

    >>> import mibun.functions as F
    >>> y, jvp_fn = linearize(F.sin, np.array(0.0))
    >>> jvp_fn(np.array(2.0))
    variable(2.0)
    """
    out, vjp_fn = vjp(f, *primals)
    outs, is_tuple = _flat(out, "linearize")

    def jvp_fn(*tangents):
        if len(tangents) != len(primals):
            raise ValueError(f"mibun.func.linearize: jvp_fn got {len(tangents)} tangent(s) "
                             f"for {len(primals)} primal(s)")
        us = [_zeros(o) for o in outs]
        with _reverse, using_config("enable_backprop", True):
            gs = vjp_fn(tuple(us) if is_tuple else us[0])
            total = None
            for g, t in zip(gs, tangents):
                term = fsum(g * core.as_operand(t))
                total = term if total is None else total + term
            if total is None or total.creator is None:
                res = [_zeros(o) for o in outs]
            else:
                res = list(autograd.grad(total, us, create_graph=_need_graph(1)))
        return tuple(res) if is_tuple else res[0]

    return out, jvp_fn


def jacfwd(f, argnums=0, has_aux=False):
    """``torch.func.jacfwd``: the Jacobian by forward mode (cheap for tall functions: few
    inputs, many outputs). Same results and conventions as :func:`jacrev`.

    One forward pass pushes all the basis directions of the differentiated inputs at once,
    as one batch of tangents (ops whose JVP rule is not batch-safe take them one by one,
    see :mod:`mibun.forward_mode`).

    >>> jacfwd(lambda x: x * x)(np.array([1.0, 2.0]))
    variable([[2. 0.]
              [0. 4.]])
    """
    def wrapper(*args):
        nums, single = _argnums(argnums, len(args), "jacfwd")
        args = [core.as_operand(a) if i in nums else a for i, a in enumerate(args)]

        def g(*diff):
            full = list(args)
            for a, d in zip(nums, diff):
                full[a] = d
            return f(*full)

        primals = tuple(args[a] for a in nums)
        graph = _recording() or bool(forward_mode._state.live)
        sizes = [p.size for p in primals]
        n = sum(sizes)
        if not n:  # every differentiated input is empty: evaluate f once
            out, aux = _split_aux(g(*primals), has_aux, "jacfwd")
            touts = None
        else:
            out, touts, *aux = _jvp(g, primals, _basis(primals, sizes), has_aux, n)
            aux = aux[0] if has_aux else None
        outs, is_tuple = _flat(out, "jacfwd")
        touts = [None] * len(outs) if touts is None else list(touts) if is_tuple else [touts]
        jacs = []
        for o, t in zip(outs, touts):
            per_arg, start = [], 0
            for p, size in zip(primals, sizes):
                per_arg.append(_columns(t, start, size, o.shape, p.shape, graph))
                start += size
            jacs.append(per_arg[0] if single else tuple(per_arg))
        res = tuple(jacs) if is_tuple else jacs[0]
        return (res, aux) if has_aux else res

    return wrapper


def _basis(primals, sizes):
    """The tangents of jacfwd's batched level: direction ``i`` is the ``i``-th entry of the
    inputs' entries taken together (a one-hot in one input, zeros in the others)."""
    n, start, ts = sum(sizes), 0, []
    for p, size in zip(primals, sizes):
        xp = backend.get_array_module(p.data)
        e = xp.zeros((n, size), dtype=_float(p.dtype))
        e[xp.arange(start, start + size), xp.arange(size)] = 1
        ts.append(Variable(e.reshape((n,) + p.shape)))
        start += size
    return ts


def _columns(t, start, size, out_shape, in_shape, graph):
    """The Jacobian ``out_shape + in_shape`` from the batched tangent ``t`` (directions
    first): its directions ``start:start + size``, those of one input; in mibun ops when a
    graph is needed."""
    shape, k = tuple(out_shape) + tuple(in_shape), len(in_shape)
    if t is None or not size:
        return Variable(np.zeros(shape))
    nd = len(out_shape)
    axes = tuple(range(k, k + nd)) + tuple(range(k))  # in + out axes -> out + in
    if graph:
        part = t if start == 0 and size == t.shape[0] else get_item(t, slice(start, start + size))
        return transpose(reshape(part, tuple(in_shape) + tuple(out_shape)), axes)
    d = t.data[start:start + size].reshape(tuple(in_shape) + tuple(out_shape))
    return Variable(d.transpose(axes))


def hessian(f, argnums=0):
    """``torch.func.hessian``: ``jacfwd(jacrev(f, argnums), argnums)``, forward-over-reverse.

    Shaped ``output.shape + input.shape + input.shape`` (``input.shape * 2`` for a scalar
    ``f``).

    >>> hessian(lambda x: (x ** 3).sum())(np.array([1.0, 2.0]))
    variable([[ 6.  0.]
              [ 0. 12.]])
    """
    return jacfwd(jacrev(f, argnums), argnums)
