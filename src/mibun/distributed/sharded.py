"""The multi-node optimizer's step on a machine of several ranks: the ranks keep one copy of
the parameters and of the optimizer's state, in memory they share, and each rank updates
its share of them, the share of the gradient sum it computed (``allreduce_grad``), as
ZeRO-1 shards the optimizer, inside one machine.

Why beside every rank updating a copy of its own: each rank does ``1 / size`` of the
update's memory traffic, and the machine's cache holds one copy of the weights. 2 ranks
train the MLP of benchmarks/distributed.py at 1.80-1.97x one rank's throughput so, against
1.78-1.85x with a copy each (paired runs).

The update rules are NumPy ufuncs on arrays, element by element (``update_arrays``), so a
share's slice gets the bits the whole parameter would. Hooks run before, on every rank,
on all the gradients (the full sum), as on one process. Shared memory is never given back
while the job runs (an array kept elsewhere may still view it): a dropped copy is left as
it was.
"""
from __future__ import annotations

import numpy as np

from mibun.distributed.shared import _views
from mibun.optimizer_base import Optimizer, _apart


class _Shared:
    """Flat arrays in the arena's layout, ``k`` of them, in node rank 0's part of one
    window, and their read-only views shaped as ``group``'s parameters."""

    def __init__(self, host, shared, group, k):
        n = sum(p.data.size for p in group)
        flat, self.win = host.block(n * k, shared.total.dtype)
        host.copies.append(self)  # never freed: an array kept elsewhere may view it
        self.flat = [flat[j * n:(j + 1) * n] for j in range(k)]
        self.views = [_views(f, [p.data for p in group]) for f in self.flat]
        for views in self.views:
            for v in views:
                v.flags.writeable = False  # the machine's one copy: written by the update only
        lo, hi = host.share(shared.total.size)  # this rank's share (the flags left out)
        self.spans, o = [], 0  # per parameter: its part of the share, (a, b), or None
        for p in group:
            a, b = max(o, lo), min(o + p.data.size, hi, n)
            self.spans.append((o, (a, b) if a < b else None))
            o += p.data.size

    def copy_in(self, j, i, values):
        """This rank's part of parameter ``i``'s entries of flat array ``j`` from ``values``."""
        o, part = self.spans[i]
        if part is not None:
            src = np.asarray(values)
            self.flat[j][part[0]:part[1]] = src.reshape(-1)[part[0] - o:part[1] - o] \
                if src.ndim else src

    def owns(self, a):
        return isinstance(a, np.ndarray) and any(np.may_share_memory(a, f) for f in self.flat)


def _adopt(opt, group, named, params, slots):
    """Point the parameters' ``data`` and their state at the shared copies, an array that
    replaced one (``load_weights``, ``load_state_dict``, ``bcast_data``) copied in first,
    each rank its share. False (nothing changed) if a state array is not shaped and typed
    as its parameter (an optimizer's own ``state_for``): the usual step then."""
    states = [None] * len(group)
    for i, p in enumerate(group):
        name = named.get(id(p))
        if name is not None:
            s = states[i] = opt.state_for(p)  # the optimizer's own first state, as ever
            if any(not isinstance(s[k], np.ndarray) or (s[k].shape, s[k].dtype) !=
                   (p.data.shape, p.data.dtype) for k in opt.slots):
                return False
    for i, p in enumerate(group):
        if p.data is not params.views[0][i]:
            params.copy_in(0, i, p.data)
            p.data = params.views[0][i]
        for j, k in enumerate(opt.slots):
            s = states[i]
            if s is not None and s[k] is not slots.views[j][i]:
                slots.copy_in(j, i, s[k])
                s[k] = slots.views[j][i]
    return True


def _release(copy, group, opts):
    """Give ``group``'s parameters and the state of ``opts`` arrays of their own again,
    where they view the shared ``copy``."""
    for p in group:
        if copy.owns(p.data):
            p.data = p.data.copy()
    for opt in opts:
        for s in opt.state.values():
            for k, v in list(s.items()):
                if copy.owns(v):
                    s[k] = v.copy()


def _step(opt, group, shared, named, params, slots):
    """Update this rank's share: one ``update_arrays`` call per run of consecutive
    parameters whose gradients are the shared sum and whose update counts agree."""
    runs = []
    for i, p in enumerate(group):
        name = named.get(id(p))
        if name is None:  # no gradient (after the hooks): not updated, as on one process
            continue
        k = opt._count(opt.state[name])  # every rank counts every parameter's updates
        o, part = params.spans[i]
        if part is None:
            continue
        a, b = part
        g = None  # the shared sum itself, contiguous with its neighbours'
        if p.grad.data is not shared.grads[i]:  # a hook's gradient, in its own dtype
            g = p.grad.data.reshape(-1)[a - o:b - o]
        if runs and g is None and runs[-1][2] is None and runs[-1][1] == a and runs[-1][3] == k:
            runs[-1][1] = b
        else:
            runs.append([a, b, g, k])
    for a, b, g, k in runs:
        opt.update_arrays(params.flat[0][a:b], shared.total[a:b] if g is None else g,
                          [f[a:b] for f in slots.flat], k)


def step(opt, named) -> list:
    """Update the parameters of ``named`` whose gradients were summed in shared memory,
    this rank's share of them; return the others (``(name, parameter)``) for the usual
    step. Collective on the machine's ranks (every rank decides alike: the same model and
    optimizer)."""
    comm = opt.communicator
    by_id, todo = {id(p): n for n, p in named}, []
    rule = type(opt).update_one is Optimizer.update_one  # else DeZero's per parameter
    for _, group, _, _, shared in comm._plan(opt.target) or ():
        if shared is None:
            continue
        if rule and shared.params is None:  # first step: one copy, unless two share data
            shared.params = _apart([(None, p) for p in group], writeable=False) and _Shared(
                comm._host, shared, group, 1)
        slots = shared.slots.get(opt) if rule else None
        if rule and shared.params and slots is None:
            slots = shared.slots[opt] = _Shared(comm._host, shared, group, len(opt.slots))
        if slots is None or not _adopt(opt, group, by_id, shared.params, slots):
            for copy in comm._host.copies:  # the usual step needs arrays of their own
                _release(copy, group, [opt])
            continue
        todo.append((group, shared, slots))
    if todo:
        wins = [w for _, sh, sl in todo for w in (sh.params.win, sl.win)]
        comm._host._sync(*wins)  # the hooks (WeightDecay) have read the parameters
        for group, shared, slots in todo:
            _step(opt, group, shared, by_id, shared.params, slots)
        comm._host._sync(*wins)  # every share is updated before any rank's next forward
    done = {id(p) for group, _, _ in todo for p in group}
    return [(n, p) for n, p in named if id(p) not in done]
