"""Forward mode for :mod:`mibun.func`: tangents, levels, batched tangents and the hook that
propagates them (the transforms themselves are in ``func.py``).

Every Variable may carry *tangents*, ``x._tangents = {level: tangent Variable}``, and
after each op's forward a hook (``core._forward_hook``) asks the op for its outputs'
tangents::

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
they work the same inside ``no_grad()``.) In grad mode too, a tangent is recorded only
when something can differentiate it: not when every input descends only from the leaves
``jvp`` itself made from arrays (see ``_OWN``). With nothing to record and one level, a
built-in op's rule (one declaring ``retain_inputs``) runs on the arrays, as the engine runs
a backward on arrays: a rule must mean the same on arrays and on Variables, as a backward.

*Levels* keep nested forward transforms apart (no perturbation confusion): each ``jvp``
opens a new, higher level; a rule for level ``k`` runs while only the levels below ``k``
propagate, so a tangent at level ``k`` carries tangents of the outer levels only.

*Batched levels* (``jacfwd``, and so ``hessian``) push ``B`` directions at once: each
tangent at such a level has shape ``(B,) + primal.shape``. A rule that computes the right
thing on such tangents says so with a class attribute (``None`` for a missing tangent, as
always):

* ``batched_jvp = True``: the rule handles a batch axis in front of its tangents' own axes
  itself (elementwise rules do as they are; ``sum``, ``reshape``, ``matmul``... shift their
  axes with ``functions._helpers.lead_axis`` / ``lift``);
* ``batched_jvp = "broadcast"``: an elementwise rule with broadcasting (``add``, ``mul``,
  ``where``...): the hook first aligns each tangent to the output's rank, inserting axes
  of length 1 behind the batch axis (``(B, 3)`` beside a ``(2, 3)`` output becomes ``(B,
  1, 3)``), and the rule then broadcasts correctly.

Any other rule (a user's op, or one not marked) is called once per direction on the
unbatched tangents, and the results are stacked: correct, and slower
(``_state.batch_rules = False`` sends every rule that way, to test a rule's batching).

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
from typing import ClassVar

import numpy as np

from mibun import autograd, backend, core
from mibun.config import Config, using_config
from mibun.core import Variable
from mibun.functions import _helpers
from mibun.functions.array import astype as _astype
from mibun.functions.array import broadcast_to, stack
from mibun.functions.reduction import sum as fsum


class _State:
    # Not thread-local, as the hook it goes with: forward mode is for one thread at a time.
    levels = ()  # open forward levels, increasing (an inner transform has a higher one)
    live = ()  # the levels propagated now: all open ones, or those below a running rule
    sizes: ClassVar[dict] = {}  # batched level -> its number of directions B (unbatched: absent)
    batch_rules = True  # False: every rule takes the loop at a batched level (to test one)
    # level -> the tangent dicts of the recorded outputs at it (the graph's, see
    # _output_variable). A recorded tangent's graph can read its own primal (Exp's rule
    # reads the output), so y -> y._tangents -> graph -> y is a cycle: closing the level
    # pops the level's tangents from those dicts, so the graph keeps none and refcounting
    # frees it. (Held until then: a dict costs less to keep than a weak reference to look up.)
    touched: ClassVar[dict] = {}


class _Reverse(threading.local):
    depth = 0  # open reverse transforms (their graph must be recorded)

    def __enter__(self):
        self.depth += 1

    def __exit__(self, *exc):
        self.depth -= 1


_state = _State()
_reverse = _Reverse()
_level_ids = itertools.count(1)  # never reused, so a stale tangent cannot be mistaken
# ``x._tangents[_OWN] == k`` (0 is no level): ``x`` and its tangents descend only from the
# leaves that level ``k``'s own transform made from arrays, and from constants. Nothing
# outside that transform can differentiate with respect to them, so while ``k`` is the one
# open level an op whose inputs are all such (or constants) computes its tangent on the
# arrays even in grad mode (benchmarks/func.py, the jvp chain); any other input (a user's
# Variable, a closure, an enclosing transform's input, what depends on one) has no mark,
# and the tangent is recorded. A stale mark (of a closed level) marks nothing.
_OWN = 0


def _tangents_of(x):
    try:
        return x._tangents
    except AttributeError:  # the slot is left unset outside forward mode
        return None


def _forward(f, inputs, xs, outputs, recorded):
    """``core._forward_hook``: give ``f``'s outputs their tangents, level by level.
    ``inputs`` are as ``f`` got them (a constant may be a number or an array), ``xs`` what
    its forward computed with.

    It runs after every op while a level is open, so it is written for speed
    (benchmarks/func.py, the jvp chain): one unbatched level and one output take a short
    path, on arrays when the tangent needs no graph; no comprehensions."""
    live = _state.live
    if len(live) == 1 and len(outputs) == 1 and not _state.sizes:
        k = live[0]
        # own: every input is the level's own (see _OWN) or a constant, so the tangent
        # needs no graph; judged only when recorded and for the one open level
        own = recorded and len(_state.levels) == 1
        if len(inputs) == 1:
            try:
                ts = inputs[0]._tangents
                txs = (ts[k],)
            except (AttributeError, KeyError):  # the slot is unset outside forward mode
                return
            own = own and ts.get(_OWN) == k
        else:
            txs, found = [], False
            for x in inputs:
                ts = getattr(x, "_tangents", None)  # (cheaper than catching AttributeError)
                if ts is None:  # no tangent: only a constant (a number, an array) is own
                    t = None
                    if own and isinstance(x, Variable) and x.generation >= 0:
                        own = False
                else:
                    t = ts.get(k)
                    own = own and ts.get(_OWN) == k
                found = found or t is not None
                txs.append(t)
            if not found:
                return
        y = outputs[0]
        rule = getattr(f, "jvp", None)
        if (own or not recorded) and rule is not None and f.retain_inputs is not None:
            ty = _rule_on_arrays(f, rule, xs, outputs, txs, recorded)
        else:
            if recorded:
                kept = f.inputs
            elif f.retain_outputs or f.retain_inputs is None or rule is None:
                # built-in rules read outputs only through retained_output; a user's op
                # (keeping every input) may read self.output
                f.outputs = [weakref.ref(y)]
            f.inputs = core.with_constants(inputs, xs)
            core._forward_hook = None  # the rule's own ops need no tangents
            try:
                ty = _jvp_by_double_vjp(f, txs) if rule is None else rule(*txs)
            finally:
                core._forward_hook = _forward
                if recorded:
                    f.inputs = kept
        if type(ty) is not Variable:
            if type(ty) is tuple or type(ty) is list:
                ty = ty[0]
            if ty is None:
                if own:
                    y._tangents = {_OWN: k}
                return
            ty = _as_tangent(ty, y, None)
        else:
            td, yd = ty.data, y.data
            if td.shape != yd.shape or (td.dtype is not yd.dtype and td.dtype != yd.dtype):
                ty = _as_tangent(ty, y, None)
        y._tangents = ts = {k: ty, _OWN: k} if own else {k: ty}
        if recorded:
            # a dropped output (retained, or another op's input) is rebuilt with its tangent;
            # closing the level pops it from this dict, which is also y's (see _State)
            f._output_tangents = [ts]
            _state.touched[k].append(ts)
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
    f.inputs = core.with_constants(inputs, xs)  # every input, also those backward lets go
    if not recorded:
        if len(outputs) == 1:
            f.outputs = [weakref.ref(outputs[0])]
        else:
            f.outputs = [weakref.ref(y) for y in outputs]
    sizes = _state.sizes
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
            size = sizes.get(k) if sizes else None
            below = live[:n]
            _state.live = below
            if not below:  # the rule's own ops need no tangents: skip the hook for them
                core._forward_hook = None
            try:
                if size is not None:
                    tys = _batched_rule(f, rule, txs, outputs, size)
                else:
                    tys = _jvp_by_double_vjp(f, txs) if rule is None else rule(*txs)
            finally:
                _state.live = live
                core._forward_hook = _forward
            if type(tys) is not tuple and type(tys) is not list:
                tys = (tys,)
            for y, ty in zip(outputs, tys):
                if ty is None:
                    continue
                shape = y.data.shape if size is None else (size,) + y.data.shape
                if type(ty) is not Variable or ty.data.shape != shape or (
                        ty.data.dtype != y.data.dtype):
                    ty = _as_tangent(ty, y, size)
                try:
                    y._tangents[k] = ty
                except AttributeError:
                    y._tangents = {k: ty}
    finally:
        if recorded:
            f.inputs = kept
            # a dropped output (retained, or another op's input) is rebuilt with its tangents
            f._output_tangents = tss = [_tangents_of(y) for y in outputs]
            for k in live:
                _state.touched[k] += tss


def _rule_on_arrays(f, rule, xs, outputs, txs, recorded):
    """A built-in op's rule when its tangent needs no graph and no lower level propagates:
    on the arrays ``xs`` its forward computed with, as the engine runs a backward on arrays
    (a formula means the same on both), so its ops cost what their NumPy calls cost.
    ``recorded``: ``f`` is in the (primal) graph, and gets back what its backward reads."""
    kept = f.inputs if recorded else None
    f.inputs = xs
    if len(txs) == 1:
        ts = (txs[0].data,)
    elif len(txs) == 2:  # (unrolled: binary arithmetic is most ops, as in the jvp chain)
        t0, t1 = txs
        ts = (None if t0 is None else t0.data, None if t1 is None else t1.data)
    else:
        ts = [None if t is None else t.data for t in txs]
    if f.retain_outputs and not recorded:  # (a recorded op has them: see Function.__call__)
        f._ys = [outputs[0].data] if len(outputs) == 1 else [y.data for y in outputs]
    saved = Config.array_backward
    Config.array_backward = True  # (set directly: per thread, as the engine does)
    try:
        tys = rule(*ts)
    finally:
        Config.array_backward = saved
        if recorded:
            f.inputs = kept
    if type(tys) is tuple or type(tys) is list:
        return [_as_variable(t) for t in tys]
    return _as_variable(tys)


def _as_variable(t):
    """A rule's result on arrays as a tangent Variable (``_as_tangent`` checks it)."""
    if type(t) is np.ndarray:
        return core._new_variable(t)
    if isinstance(t, np.generic):  # NumPy's 0-d results are scalars
        return core._new_variable(np.asarray(t))
    if t is None or type(t) is Variable:
        return t
    return core._new_variable(core.as_array(t, backend.get_array_module(t)))


def _batched_rule(f, rule, txs, outputs, size):
    """The outputs' tangents at a batched level (``size`` directions): one call of a
    batch-safe rule, else one call per direction, stacked (see the module docstring)."""
    safe = rule is not None and _state.batch_rules and getattr(f, "batched_jvp", False)
    if safe:
        if safe == "broadcast":  # right-align lower-rank tangents behind the batch axis
            nd = outputs[0].data.ndim
            txs = [None if t is None else _helpers.lift(t, 1, nd) for t in txs]
        return rule(*txs)
    return _per_direction(f, rule, txs, outputs, size)


def _per_direction(f, rule, txs, outputs, size):
    """The loop for a rule that is not batch-safe: one call per direction, stacked."""
    per = []  # per[b][i]: output i's tangent along direction b
    for b in range(size):
        tb = [None if t is None else t[b] for t in txs]
        tys = _jvp_by_double_vjp(f, tb) if rule is None else rule(*tb)
        if type(tys) is not tuple and type(tys) is not list:
            tys = (tys,)
        per.append([None if ty is None else _as_tangent(ty, y, None)
                    for y, ty in zip(outputs, tys)])
    res = []
    for i, y in enumerate(outputs):
        col = [p[i] for p in per]
        if col.count(None) == len(col):
            res.append(None)
            continue
        res.append(stack([_zeros(y) if c is None else c for c in col]))
    return res


def _zeros(v):
    return Variable(backend.get_array_module(v.data).zeros_like(v.data))


def _as_tangent(ty, y, size):
    """A rule's result as a Variable of ``y``'s shape (``(size,) + y.shape`` at a batched
    level) and dtype: a broadcasting rule may return fewer axes; a constant operand of
    another dtype may promote, as the backward engine's ``_check_grad`` corrects for
    gradients."""
    if not isinstance(ty, Variable):
        ty = Variable(core.as_array(ty, backend.get_array_module(ty)))
    shape = y.data.shape if size is None else (size,) + y.data.shape
    if ty.data.shape != shape:
        if size is not None:
            ty = _helpers.lift(ty, 1, y.data.ndim)
        ty = broadcast_to(ty, shape)
    if ty.data.dtype != y.data.dtype and y.data.dtype.kind in "fc":
        ty = _astype(ty, y.data.dtype)
    return ty


def _jvp_by_double_vjp(f, txs):
    """J t for a Function that only has a backward: ``J t = d/du <J^T u, t>`` at any ``u``
    (backward is linear in ``u``), by one reverse pass through backward's own graph."""
    if not hasattr(f, "_edges"):  # no graph was recorded: needs_grad reads the edges
        f._edges = [None if x.generation < 0 else x._node or (None, weakref.ref(x))
                    for x in f.inputs]
    ys = [r() for r in f.outputs]
    us = [_zeros(y) for y in ys]
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
    """Open a forward level: ``with _Level() as k``; ``_Level(size)`` opens a batched one
    (each tangent at it has ``size`` directions on a leading axis)."""

    def __init__(self, size=None):
        self.size = size

    def __enter__(self):
        self.saved = (_state.levels, _state.live, _state.sizes)
        k = next(_level_ids)
        _state.levels = _state.levels + (k,)
        _state.live = _state.live + (k,)
        if self.size is not None:
            _state.sizes = {**_state.sizes, k: self.size}
        core._forward_hook = _forward
        _state.touched[k] = []
        self.k = k
        return k

    def __exit__(self, *exc):
        _state.levels, _state.live, _state.sizes = self.saved
        if not _state.levels:
            core._forward_hook = None
        k = self.k
        for ts in _state.touched.pop(k):  # see _State.touched
            if ts:
                ts.pop(k, None)
