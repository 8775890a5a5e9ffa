"""Reductions: sum, mean, max/min, logsumexp, var/std."""
from __future__ import annotations

from mibun import backend, utils
from mibun.core import Function, as_variable
from mibun.functions.array import broadcast_to, reshape

__all__ = ["sum"]


class Sum(Function):
    retain_inputs = ()

    def __init__(self, axis, keepdims):
        self.axis = axis
        self.keepdims = keepdims

    def forward(self, x):
        self.x_shape = x.shape
        return x.sum(axis=self.axis, keepdims=self.keepdims)

    def backward(self, gy):
        gy = utils.reshape_sum_backward(gy, self.x_shape, self.axis, self.keepdims)
        return broadcast_to(gy, self.x_shape)


def sum(x, axis=None, keepdims=False):
    """Sum over ``axis`` (None: all; an int or a tuple of ints), optionally keeping dims.

    >>> import numpy as np
    >>> sum(np.ones((2, 3)), axis=1)
    variable([3. 3.])
    """
    x = as_variable(x)
    axis = utils.normalize_axis(axis, x.ndim, "F.sum", x)
    return Sum(axis, keepdims)(x)
