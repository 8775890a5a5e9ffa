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

Forward mode (``jvp``, ``jacfwd``) is true forward mode: every Variable may carry
*tangents*, ``x._tangents = {level: tangent Variable}``, and after each op's forward a hook
(``core._forward_hook``) asks the op for its outputs' tangents::

    class Tanh(Function):
        def jvp(self, tx):                 # tangent Variables in, tangents out
            y = self.retained_output()
            return tx * (1 - y * y)

A rule reads ``self.inputs`` / ``self.retained_output()`` as a backward does (all inputs
are available to it), receives ``None`` for an input without a tangent, and is written in
mibun ops, so it is differentiable again: forward-over-reverse (``jvp`` of ``grad``,
``hessian``) and reverse-over-forward (``grad`` of ``jvp``) both work. Tangents flow
alongside the forward computation; no tape is needed. As everywhere in mibun, the graph
(for a later reverse pass) is recorded in grad mode and not under ``no_grad()``: there,
outside any reverse transform, ``jvp`` keeps nothing but the live values, and its memory
does not grow with the depth of the computation. (Reverse transforms always record:
they work the same inside ``no_grad()``.)

*Levels* keep nested forward transforms apart (no perturbation confusion): each ``jvp``
opens a new, higher level; a rule for level ``k`` runs while only the levels below ``k``
propagate, so a tangent at level ``k`` carries tangents of the outer levels only.

A Function without a ``jvp`` method (a user's op, seed or DeZero style) still works in
forward mode, more slowly: its JVP is the transpose of its VJP ("double VJP"), ``J t =
d/du <J^T u, t>``, one backward through ``backward`` with ``u`` recorded, then one reverse
pass through that. A backward that computes on ``.data`` instead of the gradient Variable
is not linear in a Variable ``u`` and gives zero tangents; a backward reading
``self.input.data`` is fine (its second derivatives are then zero, as in reverse mode).

The hook is a module global: use forward mode from one thread at a time.
"""
from __future__ import annotations

import itertools
import threading
import weakref

import numpy as np

from mibun import autograd, backend, core
from mibun.config import Config, using_config
from mibun.core import Function, Variable
from mibun.functions.array import astype as _astype

__all__ = ["grad", "grad_and_value", "hessian", "jacfwd", "jacrev", "jvp", "linearize", "vjp"]


# =============================================================================
# Forward-mode machinery
# =============================================================================
class _State:
    # Not thread-local, as the hook it goes with: forward mode is for one thread at a time.
    levels = ()  # open forward levels, increasing (an inner transform has a higher one)
    live = ()  # the levels propagated now: all open ones, or those below a running rule
    # level -> weak references to what got a recorded tangent at it. A recorded tangent's
    # graph can read its own primal (Exp's rule reads the output), so y -> y._tangents ->
    # graph -> y is a cycle: closing the level drops those tangents, and refcounting frees.
    touched: dict = {}


class _Reverse(threading.local):
    depth = 0  # open reverse transforms (their graph must be recorded)

    def __enter__(self):
        self.depth += 1

    def __exit__(self, *exc):
        self.depth -= 1


_state = _State()
_reverse = _Reverse()
_level_ids = itertools.count(1)  # never reused, so a stale tangent cannot be mistaken


def _tangents_of(x):
    try:
        return x._tangents
    except AttributeError:  # the slot is left unset outside forward mode
        return None


def _forward(f, inputs, outputs, recorded):
    """``core._forward_hook``: give ``f``'s outputs their tangents, level by level.

    It runs after every op while a level is open, so it is written for speed
    (benchmarks/func.py, the jvp chain): one level, one input and one output take a short
    path; no comprehensions."""
    live = _state.live
    if len(live) == 1 and len(inputs) == 1 and len(outputs) == 1:
        try:
            tx = inputs[0]._tangents[live[0]]
        except (AttributeError, KeyError):  # the slot is unset outside forward mode
            return
        y = outputs[0]
        rule = getattr(f, "jvp", None)
        if recorded:
            kept = f.inputs
        elif f.retain_outputs or f.retain_inputs is None or rule is None:
            # built-in rules read outputs only through retained_output; a user's op
            # (keeping every input) may read self.output
            f.outputs = [weakref.ref(y)]
        f.inputs = inputs
        core._forward_hook = None  # the rule's own ops need no tangents
        try:
            ty = _jvp_by_double_vjp(f, (tx,)) if rule is None else rule(tx)
        finally:
            core._forward_hook = _forward
            if recorded:
                f.inputs = kept
        if type(ty) is not Variable:
            if type(ty) is tuple or type(ty) is list:
                ty = ty[0]
            if ty is None:
                return
            ty = _as_tangent(ty, y)
        else:
            td, yd = ty.data, y.data
            if td.shape != yd.shape or (td.dtype is not yd.dtype and td.dtype != yd.dtype):
                ty = _as_tangent(ty, y)
        y._tangents = {live[0]: ty}
        if recorded:
            seen = _state.touched[live[0]]
            seen.append(weakref.ref(y))
            # a dropped output (retained, or another op's input) is rebuilt with its tangent
            f._output_tangents = [y._tangents]
            seen.append(weakref.ref(f))
        return
    if len(inputs) == 1:
        try:
            tans = (inputs[0]._tangents,)
        except AttributeError:  # the slot is left unset outside forward mode
            return
    else:
        tans = []
        for x in inputs:
            try:
                tans.append(x._tangents)
            except AttributeError:
                tans.append(None)
        if tans.count(None) == len(tans):
            return
    kept = f.inputs if recorded else None
    f.inputs = inputs  # every input, also those backward lets go (restored below)
    if not recorded:
        if len(outputs) == 1:
            f.outputs = [weakref.ref(outputs[0])]
        else:
            f.outputs = [weakref.ref(y) for y in outputs]
    try:
        # Lower levels first: the rule at level k reads the outputs' tangents below k.
        for n, k in enumerate(live):
            if len(tans) == 1:
                t = tans[0]
                txs = (None if t is None else t.get(k),)
                if txs[0] is None:
                    continue
            else:
                txs = []
                for t in tans:
                    txs.append(None if t is None else t.get(k))
                if txs.count(None) == len(txs):
                    continue
            rule = getattr(f, "jvp", None)
            below = live[:n]
            _state.live = below
            if not below:  # the rule's own ops need no tangents: skip the hook for them
                core._forward_hook = None
            try:
                tys = _jvp_by_double_vjp(f, txs) if rule is None else rule(*txs)
            finally:
                _state.live = live
                core._forward_hook = _forward
            if type(tys) is not tuple and type(tys) is not list:
                tys = (tys,)
            for y, ty in zip(outputs, tys):
                if ty is None:
                    continue
                if type(ty) is not Variable or ty.data.shape != y.data.shape or (
                        ty.data.dtype != y.data.dtype):
                    ty = _as_tangent(ty, y)
                try:
                    y._tangents[k] = ty
                except AttributeError:
                    y._tangents = {k: ty}
                if recorded:
                    _state.touched[k].append(weakref.ref(y))
    finally:
        if recorded:
            f.inputs = kept
            # a dropped output (retained, or another op's input) is rebuilt with its tangents
            f._output_tangents = [_tangents_of(y) for y in outputs]
            for k in live:
                _state.touched[k].append(weakref.ref(f))


def _as_tangent(ty, y):
    """A rule's result as a Variable of ``y``'s shape and dtype (a broadcasting rule may
    return fewer axes; a constant operand of another dtype may promote, as the backward
    engine's ``_check_grad`` corrects for gradients)."""
    if not isinstance(ty, Variable):
        ty = Variable(core.as_array(ty, backend.get_array_module(ty)))
    if ty.data.shape != y.data.shape:
        from mibun.functions.array import broadcast_to
        ty = broadcast_to(ty, y.data.shape)
    if ty.data.dtype != y.data.dtype and y.data.dtype.kind in "fc":
        ty = _astype(ty, y.data.dtype)
    return ty


def _jvp_by_double_vjp(f, txs):
    """J t for a Function that only has a backward: ``J t = d/du <J^T u, t>`` at any ``u``
    (backward is linear in ``u``), by one reverse pass through backward's own graph."""
    from mibun.functions.reduction import sum as fsum
    if not hasattr(f, "_edges"):  # no graph was recorded: needs_grad reads the edges
        f._edges = [None if x.generation < 0 else x._node or (None, weakref.ref(x))
                    for x in f.inputs]
    ys = [r() for r in f.outputs]
    us = [Variable(backend.get_array_module(y.data).zeros_like(y.data)) for y in ys]
    with using_config("enable_backprop", True):
        gxs = f.backward(*us)
        if not isinstance(gxs, (tuple, list)):
            gxs = (gxs,)
        total = None
        for gx, tx in zip(gxs, txs):
            if gx is None or tx is None:
                continue
            term = fsum(core.as_operand(gx) * tx)
            total = term if total is None else total + term
        if total is None or total.creator is None:
            return None
        return autograd.grad(total, us, create_graph=_need_graph(0))


def _need_graph(own):
    """Whether a backward must be recorded (``create_graph``): for an enclosing reverse
    transform (``own`` counts this transform's own reverse levels), or for open forward
    levels (the plain backward of some ops computes on arrays and would drop tangents)."""
    return _reverse.depth > own or bool(_state.live)


def _recording():
    """Whether forward mode records the graph: for a reverse transform, or in grad mode."""
    return _reverse.depth > 0 or Config.enable_backprop


class _Level:
    """Open a forward level: ``with _Level() as k``."""

    def __enter__(self):
        self.saved = (_state.levels, _state.live)
        k = next(_level_ids)
        _state.levels = _state.levels + (k,)
        _state.live = _state.live + (k,)
        core._forward_hook = _forward
        _state.touched[k] = []
        self.k = k
        return k

    def __exit__(self, *exc):
        _state.levels, _state.live = self.saved
        if not _state.levels:
            core._forward_hook = None
        for ref in _state.touched.pop(self.k):  # see _State.touched
            obj = ref()
            if obj is None:
                continue
            if isinstance(obj, Function):
                for ts in obj.__dict__.get("_output_tangents") or ():
                    if ts:
                        ts.pop(self.k, None)
            else:
                ts = _tangents_of(obj)
                if ts:
                    ts.pop(self.k, None)


class _Identity(Function):
    """A transform's own handle on an input: the gradient stops here, tangents start."""

    retain_inputs = ()

    def forward(self, x):
        return x

    def backward(self, gy):
        return gy

    def jvp(self, tx):
        return tx


def _wrap(x, name):
    if isinstance(x, Variable):
        return _Identity()(x)
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


def _zeros(v):
    return Variable(backend.get_array_module(v.data).zeros_like(v.data))


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
    from mibun.functions.reduction import sum as fsum
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
                per_arg = tuple(_assemble([r[j] for r in rows], o.shape, t.shape, graph, 0)
                                for j, t in enumerate(targets))
                jacs.append(per_arg[0] if single else per_arg)
        res = tuple(jacs) if is_tuple else jacs[0]
        return (res, aux) if has_aux else res

    return wrapper


def _float(dtype):
    return dtype if dtype.kind in "fc" else np.float64


def _assemble(parts, out_shape, in_shape, graph, axis):
    """Stack Jacobian rows (``axis=0``, each ``in_shape``) or columns (``axis=-1``, each
    ``out_shape``) into ``out_shape + in_shape``; in mibun ops when a graph is needed."""
    shape = tuple(out_shape) + tuple(in_shape)
    if not parts:
        xp = np
        return Variable(xp.zeros(shape))
    if graph:
        from mibun.functions.array import reshape, stack
        return reshape(stack(parts, axis=axis), shape)
    xp = backend.get_array_module(parts[0].data)
    return Variable(xp.stack([p.data for p in parts], axis=axis).reshape(shape))


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
    with _Level() as k:
        with using_config("enable_backprop", _recording()):
            xs = [_wrap(p, "primals") for p in primals]
            for i, (x, t) in enumerate(zip(xs, tangents)):
                t = core.as_operand(t)
                if t.shape != x.shape:
                    raise ValueError(f"mibun.func.jvp: tangent {i} has shape {t.shape}, its "
                                     f"primal {x.shape}")
                if t.dtype != x.dtype and x.dtype.kind in "fc":
                    t = _astype(t, x.dtype)
                ts = _tangents_of(x)
                x._tangents = {k: t} if ts is None else {**ts, k: t}
            out = f(*xs)
        out, aux = _split_aux(out, has_aux, "jvp")
        outs, is_tuple = _flat(out, "jvp")
        touts = [_take_tangent(o, k) for o in outs]
        if has_aux:
            for a in aux if isinstance(aux, (tuple, list)) else (aux,):
                _take_tangent(a, k)
    tout = tuple(touts) if is_tuple else touts[0]
    return (out, tout, aux) if has_aux else (out, tout)


def _take_tangent(v, k):
    """Remove and return ``v``'s tangent at level ``k`` (zeros if it has none)."""
    ts = _tangents_of(v) if isinstance(v, Variable) else None
    t = None if ts is None else ts.pop(k, None)
    if t is None and isinstance(v, Variable):
        xp = backend.get_array_module(v.data)
        t = Variable(xp.zeros(v.shape, dtype=_float(v.dtype)))
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
        from mibun.functions.reduction import sum as fsum
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
    """``torch.func.jacfwd``: the Jacobian by forward mode, one JVP per input entry (cheap
    for tall functions: few inputs, many outputs). Same results and conventions as
    :func:`jacrev`.

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
        graph = _recording() or bool(_state.live)
        cols = [[] for _ in nums]  # cols[j][i]: outputs' tangents along entry i of arg j
        out = aux = None
        for j, p in enumerate(primals):
            xp = backend.get_array_module(p.data)
            for i in range(p.size):
                tangents = tuple(_basis(q, i) if jj == j else
                                 Variable(xp.zeros(q.shape, dtype=_float(q.dtype)))
                                 for jj, q in enumerate(primals))
                res = jvp(g, primals, tangents, has_aux=has_aux)
                if out is None:
                    out = res[0]
                    aux = res[2] if has_aux else None
                cols[j].append(res[1])
        if out is None:  # every differentiated input is empty: evaluate f once
            out = g(*primals)
            out, aux = _split_aux(out, has_aux, "jacfwd")
        outs, is_tuple = _flat(out, "jacfwd")
        jacs = []
        for n, o in enumerate(outs):
            per_arg = []
            for j, p in enumerate(primals):
                parts = [c[n] if is_tuple else c for c in cols[j]]
                per_arg.append(_assemble(parts, o.shape, p.shape, graph, -1))
            jacs.append(per_arg[0] if single else tuple(per_arg))
        res = tuple(jacs) if is_tuple else jacs[0]
        return (res, aux) if has_aux else res

    return wrapper


def _basis(p, i):
    xp = backend.get_array_module(p.data)
    e = xp.zeros(p.shape, dtype=_float(p.dtype))
    e.flat[i] = 1
    return Variable(e)


def hessian(f, argnums=0):
    """``torch.func.hessian``: ``jacfwd(jacrev(f, argnums), argnums)``, forward-over-reverse.

    Shaped ``output.shape + input.shape + input.shape`` (``input.shape * 2`` for a scalar
    ``f``).

    >>> hessian(lambda x: (x ** 3).sum())(np.array([1.0, 2.0]))
    variable([[ 6.  0.]
              [ 0. 12.]])
    """
    return jacfwd(jacrev(f, argnums), argnums)
