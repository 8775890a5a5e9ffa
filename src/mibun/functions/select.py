"""Ops that pick between values: clip, where, maximum, minimum. The gradient flows to
the value that was picked (to ``x0`` on ties in maximum/minimum, as in NumPy's choice).
"""
from __future__ import annotations

import numbers

import numpy as np

from mibun import backend, errors
from mibun.core import Function, as_operand, data_of
from mibun.functions.arithmetic import _const_array, _is_scalar, _real, _sum_to

__all__ = [
    "clip",
    "maximum",
    "minimum",
    "where",
]


# --- clip, maximum, minimum, where ------------------------------------------------------------
class Clip(Function):
    retain_inputs = (0,)

    def __init__(self, x_min, x_max):
        self.x_min = x_min
        self.x_max = x_max

    def forward(self, x):
        xp = backend.get_array_module(x)
        return xp.clip(x, self.x_min, self.x_max)

    def backward(self, gy):
        # Gradient passes where x_min <= x <= x_max (PyTorch's convention at the bounds).
        x = data_of(self.inputs[0])
        mask = x >= self.x_min if self.x_min is not None else True
        if self.x_max is not None:
            mask = mask & (x <= self.x_max)
        return gy * mask.astype(gy.dtype) if not isinstance(mask, bool) else gy

    jvp = backward  # elementwise: the Jacobian is diagonal, so J t = J^T t
    batched_jvp = "broadcast"  # array bounds may broadcast x (mibun.forward_mode)


def clip(x, x_min, x_max):
    """Clamp to ``[x_min, x_max]`` (either may be None).

    The gradient is 1 inside the closed interval, 0 outside.

    Args:
        x (Variable or ndarray): any shape.
        x_min, x_max (scalar, ndarray or None): the bounds, broadcastable with ``x``.
    Returns:
        Variable: same shape and dtype as ``x``.

    >>> clip(np.array([-2.0, 0.5, 3.0]), 0.0, 1.0)
    variable([0.  0.5 1. ])
    """
    x = as_operand(x)
    for name, c in (("x_min", x_min), ("x_max", x_max)):
        if c is not None and not isinstance(_real(c), (numbers.Real, np.generic,
                                                       *backend.array_types)):
            raise TypeError(f"F.clip: {name} must be a real number, an array or None, got "
                            f"{type(c).__name__} {c!r:.60}\n" + errors.describe("x", x))
    if data_of(x).dtype.kind in "fc":  # NumPy-scalar bounds must not promote float32
        x_min = None if x_min is None else data_of(x).dtype.type(x_min)
        x_max = None if x_max is None else data_of(x).dtype.type(x_max)
    return Clip(x_min, x_max)(x)


class Where(Function):
    retain_inputs = ()
    batched_jvp = "broadcast"

    def __init__(self, condition):
        self.condition = condition

    def forward(self, x0, x1):
        xp = backend.get_array_module(x0)
        self.shapes = (x0.shape, x1.shape)
        return xp.where(self.condition, x0, x1)

    def backward(self, gy):
        zero = backend.get_array_module(data_of(gy)).zeros((), dtype=gy.dtype)
        s0, s1 = self.shapes
        gx0 = where(self.condition, gy, zero)
        gx1 = where(self.condition, zero, gy)
        return _sum_to(gx0, s0), _sum_to(gx1, s1)

    def jvp(self, tx0, tx1):
        if tx0 is None and tx1 is None:
            return None
        zero = (tx1 if tx0 is None else tx0).dtype.type(0)
        return where(self.condition, zero if tx0 is None else tx0, zero if tx1 is None else tx1)


def where(condition, x0, x1):
    """``x0`` where ``condition`` else ``x1``, with broadcasting.

    ``condition`` is data (bool array or Variable), never differentiated.

    Args:
        condition (ndarray or Variable): booleans, broadcastable with ``x0`` and ``x1``.
        x0, x1 (Variable, ndarray or scalar): the values; a scalar takes the other's dtype.
    Returns:
        Variable: the broadcast shape, NumPy's result dtype.

    >>> where(np.array([True, False]), np.array([1.0, 2.0]), 0.0)
    variable([1. 0.])
    """
    # (as_operand refuses None, which asarray(None, dtype=bool) would read as False)
    condition = data_of(as_operand(condition))
    xp = backend.get_array_module(condition)
    condition = xp.asarray(condition, dtype=bool)
    if _is_scalar(x0) and not _is_scalar(x1):
        x1 = as_operand(x1)
        x0 = _const_array(x1, x0)
    elif _is_scalar(x1) and not _is_scalar(x0):
        x0 = as_operand(x0)
        x1 = _const_array(x0, x1)
    return Where(condition)(x0, x1)


def maximum(x0, x1):
    """Elementwise maximum with broadcasting; NaN propagates, as in NumPy.

    At ties the gradient goes to ``x0`` (documented convention; PyTorch splits it in half).

    Args:
        x0, x1 (Variable, ndarray or scalar): broadcastable shapes.
    Returns:
        Variable: the broadcast shape, NumPy's result dtype.

    >>> maximum(np.array([1.0, 4.0]), 2.0)
    variable([2. 4.])
    """
    x0, x1 = _variables(x0, x1)
    try:
        condition = data_of(x0) >= data_of(x1)
    except (TypeError, ValueError) as e:  # shapes that do not broadcast
        raise errors.op_error(e, {"x0": x0, "x1": x1}) from e
    return where(_nan_wins(condition, data_of(x0)), x0, x1)


def minimum(x0, x1):
    """Elementwise minimum with broadcasting; NaN propagates, as in NumPy.

    At ties the gradient goes to ``x0``.

    Args:
        x0, x1 (Variable, ndarray or scalar): broadcastable shapes.
    Returns:
        Variable: the broadcast shape, NumPy's result dtype.

    >>> minimum(np.array([1.0, 4.0]), 2.0)
    variable([1. 2.])
    """
    x0, x1 = _variables(x0, x1)
    try:
        condition = data_of(x0) <= data_of(x1)
    except (TypeError, ValueError) as e:
        raise errors.op_error(e, {"x0": x0, "x1": x1}) from e
    return where(_nan_wins(condition, data_of(x0)), x0, x1)


def _nan_wins(condition, x0):
    """Pick ``x0`` where it is NaN too: NaN propagates through maximum/minimum, as in
    NumPy (a comparison with NaN is False, which would pick the other operand)."""
    if x0.dtype.kind != "f":
        return condition
    return condition | backend.get_array_module(x0).isnan(x0)


def _variables(x0, x1):
    """The two operands of maximum/minimum as Variables, a scalar one a constant of the
    other's dtype."""
    if _is_scalar(x1):
        x0 = as_operand(x0)
        x1 = _const_array(x0, x1)
    elif _is_scalar(x0):
        x1 = as_operand(x1)
        x0 = _const_array(x1, x0)
    return as_operand(x0), as_operand(x1)
