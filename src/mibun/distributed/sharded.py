"""The multi-node optimizer's step on a machine of several ranks: the ranks keep one copy of
the parameters and of the optimizer's state, in memory they share, and each rank updates
its share of them, the share of the gradient sum it computed (``allreduce_grad``), as
ZeRO-1 shards the optimizer, inside one machine.

Why beside every rank updating a copy of its own: each rank does ``1 / size`` of the
update's memory traffic, and the machine's cache holds one copy of the weights. 2 ranks
train the MLP of benchmarks/distributed.py at 1.89-1.94x one rank's throughput this way
in a spike, against 1.73-1.85x with a copy each (the same job, blocks in turns).

The update rules are NumPy ufuncs on arrays, element by element (``update_arrays``), so a
share's slice gets the bits the whole parameter would. Hooks run before, on every rank,
on all the gradients (the full sum), as on one process.
"""
from __future__ import annotations

import numpy as np

from mibun.distributed.communicator import _views
from mibun.optimizer_base import Optimizer


class _Storage:
    """The parameters of one gradient arena's parameters (``group``) and ``opt``'s state
    slots for them, flat in the arena's layout, in node rank 0's part of one window."""

    def __init__(self, host, shared, group, opt):
        n = sum(p.data.size for p in group)
        self.opt, self.slots = opt, tuple(opt.slots)
        flat, self.win = host.block(n * (1 + len(self.slots)), shared.total.dtype)
        self.flat = [flat[k * n:(k + 1) * n] for k in range(1 + len(self.slots))]  # data, slots
        shapes = [p.data for p in group]
        self.views = [_readonly(_views(f, shapes)) for f in self.flat]  # [data / slot][param]
        self.lo, self.hi = host.share(shared.total.size)  # this rank's share (less the flags)
        self.hi = min(self.hi, n)
        self.spans = []  # per parameter: (offset, size)
        o = 0
        for p in group:
            self.spans.append((o, p.data.size))
            o += p.data.size

    def mine(self, i):
        """The part of parameter ``i`` in this rank's share: ``(a, b)`` in the flat
        buffers, or None."""
        o, size = self.spans[i]
        a, b = max(o, self.lo), min(o + size, self.hi)
        return (a, b) if a < b else None

    def adopt(self, group, named):
        """Point every parameter's ``data`` and its state at the shared copies. An array
        that replaced one (``load_weights``, ``load_state_dict``, ``bcast_data``) is copied
        in first, this rank its share (every rank holds the same values)."""
        opt, state = self.opt, self.opt.state
        for i, p in enumerate(group):
            if p.data is not self.views[0][i]:
                self._copy_in(0, i, p.data)
                p.data = self.views[0][i]
            name = named.get(id(p))
            s = state.get(name) if name is not None else None
            if name is not None and s is None:  # first update of it: zero state
                s = state[name] = {k: self.views[1 + j][i] for j, k in enumerate(self.slots)}
                for j in range(len(self.slots)):
                    self._copy_in(1 + j, i, 0)
                if opt.counts_steps:
                    s["step"] = 0
            elif s is not None:
                for j, k in enumerate(self.slots):
                    if s.get(k) is not self.views[1 + j][i]:
                        self._copy_in(1 + j, i, 0 if s.get(k) is None else s[k])
                        s[k] = self.views[1 + j][i]

    def _copy_in(self, k, i, values):
        part = self.mine(i)
        if part is not None:
            o = self.spans[i][0]
            src = np.asarray(values)
            self.flat[k][part[0]:part[1]] = src.reshape(-1)[part[0] - o:part[1] - o] \
                if src.ndim else src

    def step(self, group, shared, named):
        """Update this rank's share: one ``update_arrays`` call per run of consecutive
        parameters whose gradients are the shared sum and whose update counts agree."""
        opt, state, runs = self.opt, self.opt.state, []
        for i, p in enumerate(group):
            name = named.get(id(p))
            if name is None:  # no gradient (after the hooks): not updated, as on one process
                continue
            k = opt._count(state[name])  # every rank counts every parameter's updates
            part = self.mine(i)
            if part is None:
                continue
            a, b = part
            if p.grad.data is shared.grads[i]:
                g = None  # the shared sum itself: contiguous with its neighbours'
            else:  # a hook's gradient
                o = self.spans[i][0]
                g = np.asarray(p.grad.data, self.flat[0].dtype).reshape(-1)[a - o:b - o]
            if runs and g is None and runs[-1][2] is None and runs[-1][1] == a \
                    and runs[-1][3] == k:
                runs[-1][1] = b
            else:
                runs.append([a, b, g, k])
        for a, b, g, k in runs:
            opt.update_arrays(self.flat[0][a:b], shared.total[a:b] if g is None else g,
                              [f[a:b] for f in self.flat[1:]], k)

    def release(self, group):
        """Give the parameters and the state arrays copies of their own (before the window
        goes)."""
        for i, p in enumerate(group):
            if p.data is self.views[0][i]:
                p.data = p.data.copy()
        for s in self.opt.state.values():
            for k, v in list(s.items()):
                if isinstance(v, np.ndarray) and any(np.may_share_memory(v, f)
                                                     for f in self.flat[1:]):
                    s[k] = v.copy()


def _readonly(views):
    for v in views:
        v.flags.writeable = False  # the machine's one copy: written by the update only
    return views


def step(opt, named) -> list:
    """Update the parameters of ``named`` whose gradients were summed in shared memory,
    this rank's share of them; return the others (``(name, parameter)``) for the usual
    step. Collective on the machine's ranks."""
    comm = opt.communicator
    if type(opt).update_one is not Optimizer.update_one or comm.host_method == "allreduce":
        return named  # a rule written per parameter (DeZero's update_one), or one Allreduce
    host, by_id, todo = comm._host, {id(p): n for n, p in named}, []
    for _, group, _, _, shared in comm._plan(opt.target) or ():
        if shared is None:
            continue
        st = shared.storage
        if st is None or st.opt is not opt or st.slots != tuple(opt.slots):
            if st is not None:
                st.release(group)
                host.free_window(st.win)
            st = shared.storage = _Storage(host, shared, group, opt)
        st.adopt(group, by_id)
        todo.append((st, group, shared))
    if not todo:
        return named
    wins = [st.win for st, _, _ in todo]
    if opt.hooks:  # they may have read any parameter (WeightDecay): done on every rank
        host._sync(*wins)
    for st, group, shared in todo:
        st.step(group, shared, by_id)
    host._sync(*wins)  # every share is updated before any rank's next forward
    done = {id(p) for _, group, _ in todo for p in group}
    return [(n, p) for n, p in named if id(p) not in done]
