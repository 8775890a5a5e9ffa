"""Mini-batch iterators: ``DataLoader`` (shuffled batches) and ``SeqDataLoader`` (for RNNs).

As in DeZero, a loader is its own iterator: ``for x, t in loader:`` runs one epoch and
reshuffles at the end, so the same loop can be written once per epoch. Batches are
gathered with one fancy-indexing call when the dataset allows it (``Dataset.get_batch``),
not one ``dataset[i]`` call per example.
"""
from __future__ import annotations

import math

import numpy as np

from mibun import backend
from mibun.functions._helpers import check_int

__all__ = ["DataLoader", "SeqDataLoader"]


class DataLoader:
    """Iterate over a dataset in mini-batches ``(x, t)`` of stacked ndarrays.

    Args:
        dataset: a ``Dataset``, or any sequence of ``(x, t)`` pairs.
        batch_size (int): examples per batch; the last batch may be smaller.
        shuffle (bool): a new random order every epoch.
        gpu (bool): return CuPy arrays.
        drop_last (bool): skip the last, incomplete batch.
        seed (int): the order of epoch ``e`` is drawn from a generator seeded with
            ``(seed, e)``, so it depends only on the seed and the epoch number (a resumed
            run calls ``set_epoch`` and sees the same batches as an uninterrupted one);
            None uses NumPy's global generator (as DeZero, so ``np.random.seed`` makes a
            run repeatable).

    An epoch ends with ``StopIteration`` and a ``reset()`` (new order). Starting a ``for``
    loop over a loader left in the middle of an epoch (after a ``break``) starts a new
    epoch, unless ``set_epoch`` placed it there (a resumed run). ``len(loader)`` is the
    number of batches per epoch; ``epoch`` counts the epochs started before the current
    one.

    >>> import mibun
    >>> loader = DataLoader(mibun.datasets.Spiral(), batch_size=64, seed=0)
    >>> [x.shape[0] for x, t in loader]
    [64, 64, 64, 64, 44]
    """

    def __init__(self, dataset, batch_size: int, shuffle: bool = True, gpu: bool = False,
                 drop_last: bool = False, seed: int | None = None):
        if not hasattr(dataset, "__len__") or not (hasattr(dataset, "get_batch")
                                                   or hasattr(dataset, "__getitem__")):
            raise TypeError(f"{type(self).__name__}: dataset must be a Dataset or a sequence "
                            f"of (x, t) pairs, got {type(dataset).__name__}")
        self.dataset = dataset
        self.batch_size = check_int(type(self).__name__, "batch_size", batch_size)
        self.shuffle = shuffle
        self.gpu = gpu
        self.drop_last = drop_last
        self.data_size = len(dataset)
        if drop_last:
            self.max_iter = self.data_size // self.batch_size
        else:
            self.max_iter = math.ceil(self.data_size / self.batch_size)
        if seed is not None and (isinstance(seed, bool)
                                 or not isinstance(seed, (int, np.integer)) or seed < 0):
            raise TypeError(f"{type(self).__name__}: seed must be a non-negative int or "
                            f"None, got {seed!r}")
        self.seed = seed
        self.epoch = -1
        self.reset()

    def reset(self) -> None:
        """Start a new epoch (with a new order when shuffling)."""
        self.epoch += 1
        self.iteration = 0
        self._placed = False  # True after set_epoch: the next loop starts where it says
        n = self.data_size
        if not self.shuffle:
            self.index = np.arange(n)
        elif self.seed is None:
            self.index = np.random.permutation(n)
        else:
            self.index = np.random.default_rng((int(self.seed), self.epoch)).permutation(n)

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Go to batch ``start_batch`` of epoch ``epoch`` (both from 0), as a fresh run sees it.

        For resuming from a checkpoint saved after ``epoch`` epochs and ``start_batch``
        steps, with a ``seed``: the next loop yields the batches that an uninterrupted run
        would yield from there on, then the epoch ends as usual.

        >>> import mibun
        >>> loader = DataLoader(mibun.datasets.Spiral(), batch_size=100, seed=0)
        >>> whole = [t for x, t in loader]
        >>> loader.set_epoch(0, start_batch=1)
        >>> rest = [t for x, t in loader]
        >>> len(rest), all((a == b).all() for a, b in zip(rest, whole[1:]))
        (2, True)
        """
        for name, v, hi in (("epoch", epoch, None), ("start_batch", start_batch,
                                                     self.max_iter)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise TypeError(f"{type(self).__name__}.set_epoch: {name} must be an int, "
                                f"got {type(v).__name__}")
            if v < 0 or (hi is not None and v > hi):
                raise ValueError(f"{type(self).__name__}.set_epoch: {name}={v} is out of "
                                 f"range (0..{'' if hi is None else hi})")
        self.epoch = int(epoch) - 1
        self.reset()
        self.iteration = int(start_batch)
        self._placed = True

    def __iter__(self):
        if self.iteration > 0 and not self._placed:  # a previous loop stopped mid-epoch
            self.reset()
        self._placed = False
        return self

    def __next__(self):
        if self.iteration >= self.max_iter:
            self.reset()
            raise StopIteration
        i, b = self.iteration, self.batch_size
        x, t = self._gather(self.index[i * b:(i + 1) * b])
        self.iteration += 1
        return x, t

    def next(self):
        return self.__next__()

    def __len__(self):
        return self.max_iter

    def _gather(self, indices):
        get_batch = getattr(self.dataset, "get_batch", None)
        if get_batch is not None:
            x, t = get_batch(indices)
        else:
            batch = [self.dataset[int(i)] for i in indices]
            x = np.array([example[0] for example in batch])
            t = np.array([example[1] for example in batch])
        if self.gpu:
            x = backend.as_cupy(x)
            t = None if t is None else backend.as_cupy(t)
        return x, t

    def to_cpu(self) -> None:
        self.gpu = False

    def to_gpu(self) -> None:
        self.gpu = True


class SeqDataLoader(DataLoader):
    """Batches for truncated BPTT: ``batch_size`` parallel streams through a sequence.

    The dataset (length N) is cut into ``batch_size`` contiguous segments of
    ``N // batch_size`` steps; batch ``i`` holds step ``i`` of every segment, so row ``k``
    of consecutive batches walks one segment in order. An epoch has ``N // batch_size``
    batches (DeZero ran ``ceil(N / batch_size)`` and wrapped around, repeating steps).

    Args:
        dataset: a time-ordered ``Dataset`` (e.g. ``SinCurve``).
        batch_size (int): number of parallel streams (at most ``len(dataset)``).
        gpu (bool): return CuPy arrays.

    >>> import mibun
    >>> loader = SeqDataLoader(mibun.datasets.SinCurve(), batch_size=3)
    >>> len(loader), next(loader)[0].shape
    (333, (3, 1))
    """

    def __init__(self, dataset, batch_size: int, gpu: bool = False):
        super().__init__(dataset, batch_size, shuffle=False, gpu=gpu)
        if self.batch_size > self.data_size:
            raise ValueError(f"SeqDataLoader: batch_size={self.batch_size} is larger than "
                             f"the dataset ({self.data_size} steps)")
        self.jump = self.data_size // self.batch_size
        self.max_iter = self.jump

    def __next__(self):
        if self.iteration >= self.max_iter:
            self.reset()
            raise StopIteration
        indices = np.arange(self.batch_size) * self.jump + self.iteration
        x, t = self._gather(indices)
        self.iteration += 1
        return x, t
