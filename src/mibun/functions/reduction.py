"""Reductions: sum, mean, max/min, logsumexp, var/std."""
from __future__ import annotations

import warnings

import numpy as np

from mibun import backend
from mibun.core import Function, as_operand, data_of
from mibun.functions import _helpers
from mibun.functions.array import broadcast_to, reshape
from mibun.functions.math import exp, sqrt

__all__ = [
    "Max",
    "Min",
    "Sum",
    "average",
    "logsumexp",
    "max",
    "mean",
    "min",
    "std",
    "sum",
    "var",
]


class Sum(Function):
    retain_inputs = ()
    batched_jvp = True

    def __init__(self, axis, keepdims):
        self.axis = axis
        self.keepdims = keepdims

    def forward(self, x):
        self.x_shape = x.shape
        return x.sum(axis=self.axis, keepdims=self.keepdims)

    def backward(self, gy):
        gy = _helpers.reshape_sum_backward(gy, self.x_shape, self.axis, self.keepdims)
        return broadcast_to(gy, self.x_shape)

    def jvp(self, tx):
        n = len(self.x_shape)  # the axes behind a batch axis (mibun.forward_mode)
        return Sum(_helpers.lead_axis(self.axis, n, tx.ndim - n), self.keepdims)(tx)


def sum(x, axis=None, keepdims=False):
    """Sum over ``axis`` (None: all; an int or a tuple of ints), optionally keeping dims.

    Args:
        x (Variable or ndarray): any shape.
        axis (None, int or tuple of int): axes to sum over (negative ones count from the end).
        keepdims (bool): keep the reduced axes with length 1.
    Returns:
        Variable: the reduced array, dtype of ``x``; the gradient is broadcast back.

    >>> import numpy as np
    >>> sum(np.ones((2, 3)), axis=1)
    variable([3. 3.])
    """
    x = as_operand(x)
    axis = _helpers.normalize_axis(axis, x.ndim, "F.sum", x)
    return Sum(axis, keepdims)(x)


def _count(x_shape, axis):
    """Number of entries reduced over ``axis`` (a normalized axis)."""
    if axis is None or not x_shape:  # (a 0-d input allows axis 0: one entry)
        return int(np.prod(x_shape, dtype=np.int64))
    axes = axis if isinstance(axis, tuple) else (axis,)
    return int(np.prod([x_shape[a] for a in axes], dtype=np.int64))


def mean(x, axis=None, keepdims=False):
    """Arithmetic mean over ``axis`` (None: all entries), ``sum / count``.

    Args:
        x (Variable or ndarray): float, any shape.
        axis (None, int or tuple of int): axes to average over.
        keepdims (bool): keep the reduced axes with length 1.
    Returns:
        Variable: the reduced array, same dtype as ``x``.

    >>> mean(np.array([[1.0, 2.0], [3.0, 5.0]]), axis=0)
    variable([2.  3.5])
    """
    x = as_operand(x)
    axis = _helpers.normalize_axis(axis, x.ndim, "F.mean", x)
    n = _count(x.shape, axis)
    if not n:
        warnings.warn("F.mean: mean of an empty slice is nan", RuntimeWarning, stacklevel=2)
    return Sum(axis, keepdims)(x) * (1.0 / n if n else float("nan"))


average = mean  # DeZero's name


class Max(Function):
    retain_inputs = (0,)
    retain_outputs = (0,)
    batched_jvp = True

    def __init__(self, axis, keepdims):
        self.axis = axis
        self.keepdims = keepdims

    def forward(self, x):
        return self._reduce(x)

    def _reduce(self, x):
        return x.max(axis=self.axis, keepdims=self.keepdims)

    def backward(self, gy):
        x = data_of(self.inputs[0])
        y = data_of(self.retained_output())
        shape = _helpers.max_backward_shape(x, self.axis)
        # Ties split the gradient evenly between the extreme entries (as torch.amax), so the
        # gradient still sums to gy; it is constant in x, so the second derivative is 0.
        mask = x == y.reshape(shape)
        weight = mask / mask.sum(axis=self.axis, keepdims=True).astype(x.dtype)
        gy = _helpers.reshape_sum_backward(gy, x.shape, self.axis, self.keepdims)
        return broadcast_to(gy, x.shape) * weight.astype(x.dtype, copy=False)

    def jvp(self, tx):
        # the tangent of the extreme entries, averaged over ties (the rows of backward's J)
        x = data_of(self.inputs[0])
        y = data_of(self.retained_output())
        mask = x == y.reshape(_helpers.max_backward_shape(x, self.axis))
        weight = mask / mask.sum(axis=self.axis, keepdims=True).astype(x.dtype)
        axis = _helpers.lead_axis(self.axis, x.ndim, tx.ndim - x.ndim)  # behind a batch axis
        return Sum(axis, self.keepdims)(tx * weight.astype(x.dtype, copy=False))


class Min(Max):
    def _reduce(self, x):
        return x.min(axis=self.axis, keepdims=self.keepdims)


def _extreme(cls, name, x, axis, keepdims):
    x = as_operand(x)
    axis = _helpers.normalize_axis(axis, x.ndim, name, x)
    if x.size == 0:
        raise ValueError(f"{name}: zero-size input has no extreme value"
                         + _helpers.describe_all(x=x))
    return cls(axis, keepdims)(x)


def max(x, axis=None, keepdims=False):
    """Maximum over ``axis``.

    The gradient goes to the maximal entries; when several tie, it is split evenly between
    them (as ``torch.amax``; DeZero gave each the full gradient).
    Max pooling (:func:`mibun.functions.pooling`) instead gives a tie's whole gradient to the
    first maximal entry, as ``torch.max_pool2d``.

    Args:
        x (Variable or ndarray): any shape, not empty.
        axis (None, int or tuple of int): axes to reduce (None: all).
        keepdims (bool): keep the reduced axes with length 1.
    Returns:
        Variable: the reduced array, dtype of ``x``.

    >>> max(np.array([[1.0, 3.0], [4.0, 2.0]]), axis=1)
    variable([3. 4.])
    """
    return _extreme(Max, "F.max", x, axis, keepdims)


def min(x, axis=None, keepdims=False):
    """Minimum over ``axis``; ties split the gradient evenly, as in :func:`max`.

    Args:
        x (Variable or ndarray): any shape, not empty.
        axis (None, int or tuple of int): axes to reduce (None: all).
        keepdims (bool): keep the reduced axes with length 1.
    Returns:
        Variable: the reduced array, dtype of ``x``.

    >>> min(np.array([[1.0, 3.0], [4.0, 2.0]]), axis=1)
    variable([1. 2.])
    """
    return _extreme(Min, "F.min", x, axis, keepdims)


class LogSumExp(Function):
    retain_inputs = (0,)
    retain_outputs = (0,)
    batched_jvp = True

    def __init__(self, axis, keepdims):
        self.axis = axis
        self.keepdims = keepdims

    def forward(self, x):
        xp = backend.get_array_module(x)
        m = x.max(axis=self.axis, keepdims=True)
        m = xp.where(xp.isfinite(m), m, 0)  # a row of -inf (or an inf): don't make inf - inf
        with np.errstate(under="ignore", divide="ignore"):  # exp(-big) = 0, log(0) = -inf
            y = xp.log(xp.exp(x - m).sum(axis=self.axis, keepdims=True)) + m
        if not self.keepdims:
            y = y.reshape(()) if self.axis is None else y.squeeze(self.axis)
        return y

    def backward(self, gy):
        # d/dx logsumexp = softmax(x) = exp(x - y)
        x = self.inputs[0]
        y = self.retained_output()
        shape = _helpers.max_backward_shape(data_of(x), self.axis)
        gy = _helpers.reshape_sum_backward(gy, x.shape, self.axis, self.keepdims)
        with np.errstate(under="ignore"):  # exp(x - y) may underflow to 0: correct
            return gy * exp(x - reshape(y, shape))

    def jvp(self, tx):
        x = self.inputs[0]
        y = self.retained_output()
        shape = _helpers.max_backward_shape(data_of(x), self.axis)
        axis = _helpers.lead_axis(self.axis, x.ndim, tx.ndim - x.ndim)  # behind a batch axis
        with np.errstate(under="ignore"):
            return Sum(axis, self.keepdims)(tx * exp(x - reshape(y, shape)))


def logsumexp(x, axis=None, keepdims=False):
    """``log(sum(exp(x), axis))`` computed stably (the max is subtracted first).

    Args:
        x (Variable or ndarray): float, any shape.
        axis (None, int or tuple of int): axes to reduce (None: all).
        keepdims (bool): keep the reduced axes with length 1.
    Returns:
        Variable: finite for finite ``x`` of any magnitude; its gradient is the softmax.

    >>> round(float(logsumexp(np.array([1000.0, 1000.0])).data), 6)
    1000.693147
    """
    x = as_operand(x)
    axis = _helpers.normalize_axis(axis, x.ndim, "F.logsumexp", x)
    return LogSumExp(axis, keepdims)(x)


def var(x, axis=None, keepdims=False, ddof=0):
    """Variance ``mean((x - mean(x))**2)`` over ``axis``.

    NumPy's ``ddof`` convention: divide by ``count - ddof`` (PyTorch's default is
    ``ddof=1``).

    Args:
        x (Variable or ndarray): float, any shape.
        axis (None, int or tuple of int): axes to reduce (None: all).
        keepdims (bool): keep the reduced axes with length 1.
        ddof (int): delta degrees of freedom; ``count <= ddof`` gives nan.
    Returns:
        Variable: the reduced array, dtype of ``x``.

    >>> float(var(np.array([1.0, 2.0, 3.0, 4.0])).data)
    1.25
    """
    x = as_operand(x)
    axis = _helpers.normalize_axis(axis, x.ndim, "F.var", x)
    count = _count(x.shape, axis)
    n = count - ddof
    if n <= 0:  # NumPy's result (nan) and warning
        warnings.warn(f"F.var: degrees of freedom <= 0 (count {count}, ddof {ddof}): nan",
                      RuntimeWarning, stacklevel=2)
    d = x - Sum(axis, True)(x) * (1.0 / count if count else float("nan"))
    return Sum(axis, keepdims)(d * d) * (1.0 / n if n > 0 else float("nan"))


def std(x, axis=None, keepdims=False, ddof=0):
    """Standard deviation ``sqrt(var(x, axis, keepdims, ddof))``.

    Its gradient is infinite where the variance is 0 (as in PyTorch).

    Args:
        x (Variable or ndarray): float, any shape.
        axis (None, int or tuple of int): axes to reduce (None: all).
        keepdims (bool): keep the reduced axes with length 1.
        ddof (int): delta degrees of freedom, as in :func:`var`.
    Returns:
        Variable: the reduced array, dtype of ``x``.

    >>> float(std(np.array([1.0, 3.0])).data)
    1.0
    """
    x = as_operand(x)
    _helpers.normalize_axis(axis, x.ndim, "F.std", x)
    return sqrt(var(x, axis, keepdims, ddof))
