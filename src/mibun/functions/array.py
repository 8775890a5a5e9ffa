"""Shape and indexing: reshape, transpose, broadcast_to, sum_to, get_item, concat, ...

Shape ops move data around without arithmetic, so each backward is the inverse move
(reshape back, transpose by the inverse permutation, sum a broadcast back).
"""
from __future__ import annotations

import numpy as np

from mibun import backend, utils
from mibun.core import Function, Variable, as_variable

__all__ = ["reshape", "transpose", "broadcast_to", "sum_to"]


def _describe(name, x):
    return f"  {name}: shape={tuple(x.shape)} dtype={x.dtype}"


class Reshape(Function):
    retain_inputs = ()

    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        self.x_shape = x.shape
        return x.reshape(self.shape)

    def backward(self, gy):
        return reshape(gy, self.x_shape)


def reshape(x, *shape):
    """Return ``x`` with a new shape (one entry may be -1).

    Args:
        x (Variable or ndarray): any shape.
        shape (int or tuple of int): ``reshape(x, (2, 3))`` or ``reshape(x, 2, 3)``.
    Returns:
        Variable: the same data in the new shape.
    """
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    x = as_variable(x)
    if x.shape == shape:
        return x
    try:
        np.empty(x.shape, dtype=np.bool_).reshape(shape)  # validate cheaply, same rules
    except (ValueError, TypeError) as e:
        raise ValueError(f"F.reshape: cannot reshape size {x.size} into shape {shape}\n"
                         + _describe("x", x)) from e
    return Reshape(shape)(x)


class Transpose(Function):
    retain_inputs = ()

    def __init__(self, axes=None):
        self.axes = axes

    def forward(self, x):
        return x.transpose(self.axes)

    def backward(self, gy):
        if self.axes is None:
            return transpose(gy)
        inv = tuple(int(i) for i in np.argsort(self.axes))
        return transpose(gy, inv)


def transpose(x, axes=None):
    """Permute axes (reverse them when ``axes`` is None)."""
    x = as_variable(x)
    if axes is not None:
        axes = tuple(int(a) for a in axes)
        n = x.ndim
        if not (len(axes) == n and all(-n <= a < n for a in axes)
                and sorted(a % n for a in axes) == list(range(n))):
            raise ValueError(f"F.transpose: axes {axes} are not a permutation of "
                             f"{n} axes\n" + _describe("x", x))
        axes = tuple(a % n for a in axes)
    return Transpose(axes)(x)


class BroadcastTo(Function):
    retain_inputs = ()

    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        self.x_shape = x.shape
        xp = backend.get_array_module(x)
        return xp.broadcast_to(x, self.shape)

    def backward(self, gy):
        return sum_to(gy, self.x_shape)


def broadcast_to(x, shape):
    """Broadcast ``x`` to ``shape`` (NumPy rules); the gradient is summed back."""
    x = as_variable(x)
    shape = tuple(shape)
    if x.shape == shape:
        return x
    try:
        np.broadcast_shapes(x.shape, shape)
        if np.broadcast_shapes(x.shape, shape) != shape:
            raise ValueError
    except ValueError as e:
        raise ValueError(f"F.broadcast_to: cannot broadcast to shape {shape}\n"
                         + _describe("x", x)) from e
    return BroadcastTo(shape)(x)


class SumTo(Function):
    retain_inputs = ()

    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        self.x_shape = x.shape
        return utils.sum_to(x, self.shape)

    def backward(self, gy):
        return broadcast_to(gy, self.x_shape)


def sum_to(x, shape):
    """Sum ``x`` down to ``shape`` (the inverse of broadcasting to ``x.shape``)."""
    x = as_variable(x)
    shape = tuple(shape)
    if x.shape == shape:
        return x
    return SumTo(shape)(x)
