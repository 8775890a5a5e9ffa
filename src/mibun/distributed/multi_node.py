"""ChainerMN's ``create_multi_node_optimizer`` (average, then step) and ``scatter_dataset``
(equal, deterministic shards)."""
from __future__ import annotations

import numpy as np

from mibun.distributed import sharded

_MULTI_NODE: dict = {}  # optimizer class -> its multi-node subclass


def create_multi_node_optimizer(optimizer, comm):
    """Make ``optimizer.update()`` average the gradients over the ranks, then step.

    The optimizer itself is returned, its class switched to a subclass of the same name
    whose ``update()`` first calls ``comm.allreduce_grad(target)``: everything else
    (``lr``, ``add_hook``, ``state_dict``, checkpoints) is unchanged, a checkpoint of it
    loads into a plain optimizer, and its hooks (``WeightDecay``, ``ClipGrad``,
    ``FreezeParam``) see the averaged gradients, so they act as on one process.

    On a machine of several ranks (``comm.host_method`` not ``'allreduce'``) the step of a
    rule on arrays (every built-in one) is taken in shares: from the first ``update()`` the
    ranks hold one copy of the parameters and of the state, in shared memory, read-only
    outside the update, each rank updating its share (``mibun.distributed.sharded``).
    Replace those arrays (``p.data = ...``) rather than writing them in place.

    ``optimizer.grad_weight`` (None: ``1 / size``) is passed to ``allreduce_grad`` as this
    rank's weight; set it to ``1.0`` when the loss was multiplied by the weight before
    ``backward`` (``(loss * (1 / comm.size)).backward()``): the same mean, with no pass
    over the gradients to scale them.
    """
    cls = type(optimizer)
    if getattr(cls, "_multi_node", False):
        optimizer.communicator = comm
        return optimizer
    sub = _MULTI_NODE.get(cls)
    if sub is None:
        def update(self, *args, **kwargs):
            if self.target is not None:
                self.communicator.allreduce_grad(self.target, self.grad_weight)
            return cls.update(self, *args, **kwargs)

        def _step(self, named):
            rest = sharded.step(self, named)  # the shares of a machine's ranks
            if rest:
                cls._step(self, rest)

        sub = _MULTI_NODE[cls] = type(cls.__name__, (cls,), {
            "update": update, "_step": _step, "_multi_node": True, "__module__": cls.__module__,
            "__qualname__": cls.__qualname__, "__doc__": cls.__doc__})
    optimizer.__class__ = sub  # one object: its state and settings stay where they are
    optimizer.communicator = comm
    optimizer.grad_weight = None
    return optimizer


class _Shard:
    """The examples ``indices`` of ``dataset``: ``len``, ``[i]`` and ``get_batch``."""

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = np.asarray(indices)

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        return self.dataset[int(self.indices[i])]

    def get_batch(self, indices):
        idx = self.indices[np.asarray(indices)]
        get = getattr(self.dataset, "get_batch", None)
        if get is not None:
            return get(idx)
        batch = [self.dataset[int(i)] for i in idx]
        return np.array([b[0] for b in batch]), np.array([b[1] for b in batch])


def scatter_dataset(dataset, comm, shuffle: bool = False, seed: int = 0):
    """This rank's shard of ``dataset``: ``ceil(len / size)`` examples, the same on every rank.

    The examples (in order, or permuted by ``np.random.default_rng(seed)`` when
    ``shuffle``) are cut into ``size`` contiguous shards; rank ``r`` gets shard ``r``. To
    make the shards equal, the first ``size * ceil(len / size) - len`` examples are used
    twice (every rank then runs the same number of steps, which MPI needs). No data is
    sent: every rank computes its indices from ``seed``.

    Args:
        dataset: a ``Dataset`` or any sequence of ``(x, t)`` pairs (on every rank).
        comm: a ``Communicator`` (anything with ``rank`` and ``size``).
    Returns:
        a dataset with ``len``, ``[i]`` and ``get_batch`` (so ``DataLoader`` batches it with
        one fancy-indexing call); ``.indices`` are the examples it holds.

    >>> class Ranks: rank, size = 1, 3
    >>> scatter_dataset(list(range(10)), Ranks()).indices
    array([4, 5, 6, 7])
    """
    n = len(dataset)
    if n == 0:
        raise ValueError("scatter_dataset: the dataset is empty")
    order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
    m = -(-n // comm.size)
    order = np.resize(order, m * comm.size)  # repeats from the start: equal shards
    return _Shard(dataset, order[comm.rank * m:(comm.rank + 1) * m])
