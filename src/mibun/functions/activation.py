"""Activations: relu, leaky_relu, gelu, softmax, log_softmax (the oracles are simple.py).

Conventions at kinks: relu and leaky_relu use the slope of the ``x < 0`` side at exactly 0
(relu'(0) = 0, as PyTorch).
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from mibun import backend
from mibun.core import Function, as_operand, data_of
from mibun.functions import _helpers
from mibun.functions._erf import _erf
from mibun.functions.math import Erf, exp, sigmoid  # noqa: F401  (sigmoid lives in math)
from mibun.functions.reduction import sum

__all__ = [
    "LeakyReLU",
    "LogSoftmax",
    "ReLU",
    "Softmax",
    "gelu",
    "leaky_relu",
    "log_softmax",
    "relu",
    "softmax",
]


# --- relu, leaky_relu -------------------------------------------------------------------------
class ReLU(Function):
    retain_inputs = ()
    retain_outputs = (0,)

    def forward(self, x):
        xp = backend.get_array_module(x)
        if x.dtype.kind != "f":  # bool / int: NumPy's promotion (bool with 0 is int)
            return xp.maximum(x, 0)
        return xp.maximum(x, 0, dtype=x.dtype)

    def backward(self, gy):
        return MaskGrad(data_of(self.retained_output()) > 0)(gy)

    jvp = backward  # elementwise: the Jacobian is diagonal, so J t = J^T t
    batched_jvp = True  # a batch axis in front broadcasts (mibun.forward_mode)


class MaskGrad(Function):
    """``gy * mask`` for a constant boolean mask; linear in ``gy``, so its backward is
    itself."""

    retain_inputs = ()

    def __init__(self, mask, slope=0.0):
        self.mask = mask
        self.slope = slope

    def forward(self, gy):
        xp = backend.get_array_module(gy)
        if self.slope == 0:
            return xp.multiply(gy, self.mask, dtype=gy.dtype)
        return xp.where(self.mask, gy, gy * gy.dtype.type(self.slope))

    def backward(self, ggx):
        return MaskGrad(self.mask, self.slope)(ggx)

    jvp = backward  # elementwise: the Jacobian is diagonal, so J t = J^T t
    batched_jvp = True  # a batch axis in front broadcasts (mibun.forward_mode)


def relu(x):
    """Rectified linear unit ``max(x, 0)``; the gradient at exactly 0 is 0.

    Args:
        x (Variable or ndarray): float, any shape.
    Returns:
        Variable: same shape and dtype as ``x``.

    >>> relu(np.array([-1.0, 0.0, 2.0]))
    variable([0. 0. 2.])
    """
    return ReLU()(x)


class LeakyReLU(Function):
    retain_inputs = (0,)

    def __init__(self, slope):
        self.slope = slope

    def forward(self, x):
        xp = backend.get_array_module(x)
        return xp.where(x > 0, x, x * x.dtype.type(self.slope))

    def backward(self, gy):
        return MaskGrad(data_of(self.inputs[0]) > 0, self.slope)(gy)

    jvp = backward  # elementwise: the Jacobian is diagonal, so J t = J^T t
    batched_jvp = True  # a batch axis in front broadcasts (mibun.forward_mode)


def leaky_relu(x, slope=0.2):
    """Leaky relu: ``x`` for ``x > 0``, ``slope * x`` otherwise (DeZero's slope 0.2).

    The gradient at exactly 0 is ``slope``.

    Args:
        x (Variable or ndarray): any shape; integers are promoted to float64.
        slope (float): the slope for ``x <= 0``.
    Returns:
        Variable: same shape and dtype as ``x``.

    >>> leaky_relu(np.array([-1.0, 2.0]))
    variable([-0.2  2. ])
    """
    if type(slope) is not float and not isinstance(slope, numbers.Real):
        raise TypeError(f"F.leaky_relu: slope must be a real number, got "
                        f"{type(slope).__name__} {slope!r:.60}")
    x = as_operand(x)
    if x.dtype.kind not in "fc":
        x = x.astype(np.float64)  # differentiable: an integer Variable still gets its grad
    return LeakyReLU(slope)(x)


# --- gelu (erf lives in math) ----------------------------------------------------------------
class GELU(Function):
    retain_inputs = (0,)

    def forward(self, x):
        return x * (_erf(x * x.dtype.type(math.sqrt(0.5))) + 1) * x.dtype.type(0.5)

    def backward(self, gy):
        # d/dx x Φ(x) = Φ(x) + x φ(x)
        x = self.inputs[0]
        with np.errstate(under="ignore"):  # the density underflows to 0 for |x| > 38
            cdf = (Erf()(x * math.sqrt(0.5)) + 1) * 0.5
            pdf = exp(x * x * -0.5) * (1 / math.sqrt(2 * math.pi))
            return gy * (cdf + x * pdf)

    jvp = backward  # elementwise: the Jacobian is diagonal, so J t = J^T t
    batched_jvp = True  # a batch axis in front broadcasts (mibun.forward_mode)


def gelu(x):
    """Gaussian error linear unit ``x Φ(x) = x (1 + erf(x / √2)) / 2``.

    The exact form (PyTorch's default), not the tanh approximation.

    Args:
        x (Variable or ndarray): float, any shape.
    Returns:
        Variable: same shape and dtype.

    >>> gelu(np.array([0.0, 1.0]))
    variable([0.         0.84134475])
    """
    x = as_operand(x)
    if x.dtype.kind not in "fc":  # integers would truncate every intermediate
        x = x.astype(np.float64)
    return GELU()(x)


# --- softmax, log_softmax ---------------------------------------------------------------------
class Softmax(Function):
    retain_inputs = ()
    retain_outputs = (0,)
    batched_jvp = True

    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        xp = backend.get_array_module(x)
        y = xp.subtract(x, x.max(axis=self.axis, keepdims=True), out=xp.empty_like(x))
        with np.errstate(under="ignore"):  # exp(x - max) never overflows; 0 is right
            y = xp.exp(y, out=y)
        y /= y.sum(axis=self.axis, keepdims=True)
        return y

    def backward(self, gy):
        # J^T gy = y * gy - y * sum(y * gy)
        y = self.retained_output()
        with np.errstate(under="ignore"):  # tiny probabilities times gy may underflow to 0
            gx = y * gy
            return gx - y * sum(gx, axis=self.axis, keepdims=True)

    def jvp(self, tx):  # the Jacobian diag(y) - y y^T is symmetric: backward's formula
        y = self.retained_output()  # (its axis behind a batch axis, mibun.forward_mode)
        axis = _helpers.lead_axis(self.axis, y.ndim, tx.ndim - y.ndim)
        with np.errstate(under="ignore"):
            t = y * tx
            return t - y * sum(t, axis=axis, keepdims=True)


def softmax(x, axis=1):
    """Softmax ``exp(x) / sum(exp(x))`` along ``axis`` (DeZero's default: 1).

    Computed with the maximum subtracted, so any finite logits give finite results.

    Args:
        x (Variable or ndarray): float logits, e.g. ``(N, C)``.
        axis (int or tuple of int): the class axis.
    Returns:
        Variable: same shape and dtype; sums to 1 along ``axis``.

    >>> softmax(np.array([[0.0, 0.0]]))
    variable([[0.5 0.5]])
    """
    x = as_operand(x)
    axis = _helpers.normalize_axis(axis, x.ndim, "F.softmax", x)
    return Softmax(axis)(x)


class LogSoftmax(Function):
    retain_inputs = ()
    retain_outputs = (0,)
    batched_jvp = True

    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        xp = backend.get_array_module(x)
        # (x - m) - log(sum(exp(x - m))): subtracting m first keeps full relative precision
        # (x - logsumexp(x) cancels: -1000 - (-998.9) loses 13 bits)
        y = x - x.max(axis=self.axis, keepdims=True)
        with np.errstate(under="ignore"):
            y -= xp.log(xp.exp(y).sum(axis=self.axis, keepdims=True))
        return y

    def backward(self, gy):
        y = self.retained_output()
        with np.errstate(under="ignore"):  # exp(log_softmax) = softmax may underflow to 0
            return gy - exp(y) * sum(gy, axis=self.axis, keepdims=True)

    def jvp(self, tx):
        # J t = t - sum(softmax * t): the transpose of backward's formula
        y = self.retained_output()
        axis = _helpers.lead_axis(self.axis, y.ndim, tx.ndim - y.ndim)  # behind a batch axis
        with np.errstate(under="ignore"):
            return tx - sum(exp(y) * tx, axis=axis, keepdims=True)


def log_softmax(x, axis=1):
    """``log(softmax(x, axis))``, computed as ``x - logsumexp(x)``.

    Finite for any finite logits (``log(softmax)`` underflows to ``-inf``).

    Args:
        x (Variable or ndarray): float logits, e.g. ``(N, C)``.
        axis (int or tuple of int): the class axis (DeZero's default: 1).
    Returns:
        Variable: same shape and dtype; ``exp`` of it sums to 1 along ``axis``.

    >>> log_softmax(np.array([[0.0, 0.0]]))
    variable([[-0.69314718 -0.69314718]])
    """
    x = as_operand(x)
    axis = _helpers.normalize_axis(axis, x.ndim, "F.log_softmax", x)
    return LogSoftmax(axis)(x)
