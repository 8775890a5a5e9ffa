"""Data transforms: small callables applied to one example (DeZero's ``dezero.transforms``).

A transform takes an ndarray example and returns a new one::

    f = Compose([Flatten(), ToFloat(), Normalize(0.0, 255.0)])
    x = f(image)                    # (1, 28, 28) uint8 -> (784,) float32 in [0, 1]

Every transform here also has ``batch(xs)``, the same map applied to a stacked batch
(first axis = examples) in one vectorised call; ``Dataset.get_batch`` and the
``DataLoader`` use it, so a transformed dataset loads batches without a Python loop per
example. A user transform without ``batch`` still works (applied example by example).
"""
from __future__ import annotations

import numpy as np

from mibun import backend

__all__ = ["AsType", "Compose", "Flatten", "Normalize", "ToFloat", "ToInt", "can_batch"]


def can_batch(transform) -> bool:
    """True when ``transform.batch(xs)`` exists (for a Compose: for every member)."""
    if isinstance(transform, Compose):
        return all(can_batch(t) for t in transform.transforms)
    return callable(getattr(transform, "batch", None))


class Compose:
    """Apply transforms one after another.

    Args:
        transforms (list of callables): applied in order; an empty list is the identity.

    >>> f = Compose([ToFloat(), Normalize(0.0, 2.0)])
    >>> f(np.array([2, 4], dtype=np.uint8))
    array([1., 2.], dtype=float32)
    """

    def __init__(self, transforms=None):
        self.transforms = list(transforms) if transforms is not None else []

    def __call__(self, x):
        for t in self.transforms:
            x = t(x)
        return x

    def batch(self, xs):
        for t in self.transforms:
            xs = t.batch(xs)
        return xs

    def __repr__(self):
        return f"Compose({self.transforms!r})"


class Normalize:
    """``(x - mean) / std``; per channel when ``mean``/``std`` are sequences.

    A sequence of length C is laid along the example's first axis (channels of a
    (C, H, W) image), as in DeZero. The result keeps a floating input's dtype (convert
    integer images with ``ToFloat`` first).

    Args:
        mean (float or sequence of float): subtracted.
        std (float or sequence of float): divided by; must be nonzero.

    >>> Normalize(0.5, 0.5)(np.array([0.0, 1.0], dtype=np.float32))
    array([-1.,  1.], dtype=float32)
    """

    def __init__(self, mean=0.0, std=1.0):
        self.mean = mean
        self.std = std
        if np.any(np.asarray(std) == 0):
            raise ValueError(f"transforms.Normalize: std must be nonzero, got {std!r}")

    def _stats(self, x, lead):
        # lead = 0 for one example, 1 for a batch (its channel axis is axis 1).
        mean, std = self.mean, self.std
        if np.isscalar(mean) and np.isscalar(std):
            return float(mean), float(std)  # Python floats keep float32 float32
        xp = backend.get_array_module(x)
        dtype = x.dtype if x.dtype.kind == "f" else np.float32
        shape = [1] * x.ndim
        out = []
        for v in (mean, std):
            if np.isscalar(v):
                out.append(float(v))
                continue
            v = np.asarray(v, dtype=dtype).ravel()
            if x.ndim <= lead or len(v) not in (1, x.shape[lead]):
                raise ValueError(
                    f"transforms.Normalize: {len(v)} per-channel values for an example "
                    f"of shape {tuple(x.shape[lead:])}; expected 1 or {x.shape[lead:][:1]}")
            s = list(shape)
            s[lead] = len(v)
            out.append(xp.asarray(v.reshape(s)))
        return out[0], out[1]

    def __call__(self, x):
        mean, std = self._stats(x, 0)
        return (x - mean) / std

    def batch(self, xs):
        mean, std = self._stats(xs, 1)
        return (xs - mean) / std

    def __repr__(self):
        return f"Normalize(mean={self.mean!r}, std={self.std!r})"


class Flatten:
    """Flatten one example to 1-d (a batch to (N, -1)).

    >>> Flatten()(np.zeros((1, 2, 3))).shape
    (6,)
    """

    def __call__(self, x):
        return x.reshape(-1)

    def batch(self, xs):
        return xs.reshape(len(xs), -1)

    def __repr__(self):
        return "Flatten()"


class AsType:
    """Convert to ``dtype`` (no copy when it already has it).

    >>> AsType(np.int32)(np.array([1.7])).dtype
    dtype('int32')
    """

    def __init__(self, dtype=np.float32):
        self.dtype = np.dtype(dtype)

    def __call__(self, x):
        return x.astype(self.dtype, copy=False)

    def batch(self, xs):
        return xs.astype(self.dtype, copy=False)

    def __repr__(self):
        return f"{type(self).__name__}({self.dtype.name})"


class ToFloat(AsType):
    """Convert to a float dtype (float32 by default).

    >>> ToFloat()(np.array([3], dtype=np.uint8))
    array([3.], dtype=float32)
    """

    def __init__(self, dtype=np.float32):
        super().__init__(dtype)
        if self.dtype.kind != "f":
            raise TypeError(f"transforms.ToFloat: dtype must be a float type, got {self.dtype}")


class ToInt(AsType):
    """Convert to an integer dtype (int64 by default; DeZero's ``np.int``)."""

    def __init__(self, dtype=np.int64):
        super().__init__(dtype)
        if self.dtype.kind not in "iu":
            raise TypeError(f"transforms.ToInt: dtype must be an integer type, got {self.dtype}")
