"""Arithmetic with broadcasting: add, sub, mul, div, neg, pow (and the reflected forms
``rsub``, ``rdiv``, ``rpow``), square. These are the ops behind Variable's operators.

Binary ops reduce a broadcast gradient back to each input's shape with ``sum_to``.
A Python or NumPy scalar operand becomes a constant of the Variable's dtype, so
``float32 * 2.0`` and ``float32 * np.float64(2)`` stay float32 (NumPy 2 would promote a
NumPy float64 scalar; DeZero promoted everything through float64 arrays).
"""
from __future__ import annotations

import numbers

import numpy as np

from mibun import backend, errors
from mibun.core import Function, Variable, as_operand, data_of
from mibun.functions import array
from mibun.functions.math import log

__all__ = [
    "add",
    "div",
    "mul",
    "neg",
    "pow",
    "rdiv",
    "rpow",
    "rsub",
    "square",
    "sub",
]


# --- scalar operands ----------------------------------------------------------------------
def _is_scalar(c) -> bool:
    t = type(c)
    if t is float or t is int:
        return True
    if t is Variable:
        return False
    return isinstance(c, (numbers.Number, np.generic)) or (
        isinstance(c, np.ndarray) and c.ndim == 0)


def _real(c):
    """``c`` itself, or a TypeError naming the op for a complex (or non-numeric) scalar."""
    if isinstance(c, complex) or (isinstance(c, (np.generic, np.ndarray))
                                  and c.dtype.kind not in errors.REAL_KINDS):
        raise errors.bad_operand(errors.op_name("mibun"), "the scalar operand", c)
    return c


def _scalar(x, c):
    """``c`` as an operand beside ``x``: a Python number stays as it is (weak under NumPy 2's
    NEP 50 and under 1.26's value-based casting); a NumPy scalar takes ``x``'s float dtype."""
    if type(c) is float or type(c) is int:
        return c
    _real(c)
    dtype = getattr(data_of(x), "dtype", None)
    if dtype is not None and dtype.kind in "fc":
        return dtype.type(c)
    return c[()] if isinstance(c, np.ndarray) else c


def _operands(x0, x1):
    """The two operands of a binary op, a scalar one put beside the other (:func:`_scalar`)."""
    if _is_scalar(x1):
        if not _is_scalar(x0):
            x1 = _scalar(x0, x1)
        else:  # two scalars: NumPy's arithmetic (0 / 0 is nan, not Python's ZeroDivisionError)
            x0 = np.asarray(_real(x0))
    elif _is_scalar(x0):
        x0 = _scalar(x1, x0)
    return x0, x1


def _const_array(x: Variable, c):
    """A scalar operand as a 0-d array on ``x``'s backend, in ``x``'s floating dtype."""
    xp = backend.get_array_module(x)
    dtype = data_of(x).dtype if data_of(x).dtype.kind in "fc" else None
    return xp.asarray(_real(c), dtype=dtype)


def _shape(x):
    return () if type(x) is float or type(x) is int else x.shape


def _plus(t0, t1):
    """The sum of two tangents, either of which may be None (a zero)."""
    if t0 is None:
        return t1
    return t0 if t1 is None else t0 + t1


def _sum_to(gx, shape):
    if gx.shape == shape:
        return gx
    return array.sum_to(gx, shape)


# --- binary arithmetic ----------------------------------------------------------------------
# DeZero's six ops. A scalar operand is an input like any other: a constant (no edge, so no
# gradient), passed to forward as a Python number (``weak_scalars``) or a 0-d array.
class Add(Function):
    batched_jvp = "broadcast"  # tangents aligned to the output's rank (mibun.forward_mode)
    retain_inputs = ()
    weak_scalars = True

    def forward(self, x0, x1):
        self.shapes = (_shape(x0), _shape(x1))
        return x0 + x1

    def backward(self, gy):
        (s0, s1), e = self.shapes, self._edges
        return (None if e[0] is None else _sum_to(gy, s0),
                None if e[1] is None else _sum_to(gy, s1))

    def jvp(self, tx0, tx1):
        return _plus(tx0, tx1)


class Sub(Function):
    batched_jvp = "broadcast"  # tangents aligned to the output's rank (mibun.forward_mode)
    retain_inputs = ()
    weak_scalars = True

    def forward(self, x0, x1):
        self.shapes = (_shape(x0), _shape(x1))
        return x0 - x1

    def backward(self, gy):
        (s0, s1), e = self.shapes, self._edges
        return (None if e[0] is None else _sum_to(gy, s0),
                None if e[1] is None else _sum_to(-gy, s1))

    def jvp(self, tx0, tx1):
        return _plus(tx0, None if tx1 is None else -tx1)


class Mul(Function):
    batched_jvp = "broadcast"  # tangents aligned to the output's rank (mibun.forward_mode)
    retain_inputs = "all"
    grad_reads = ((1,), (0,))
    weak_scalars = True

    def forward(self, x0, x1):
        self.shapes = (_shape(x0), _shape(x1))
        return x0 * x1

    def backward(self, gy):
        (x0, x1), (s0, s1), e = self.inputs, self.shapes, self._edges
        return (None if e[0] is None else _sum_to(gy * x1, s0),
                None if e[1] is None else _sum_to(gy * x0, s1))

    def jvp(self, tx0, tx1):
        x0, x1 = self.inputs
        return _plus(None if tx0 is None else tx0 * x1, None if tx1 is None else x0 * tx1)


class Div(Function):
    batched_jvp = "broadcast"  # tangents aligned to the output's rank (mibun.forward_mode)
    retain_inputs = "all"
    grad_reads = ((1,), (0, 1))
    weak_scalars = True

    def forward(self, x0, x1):
        self.shapes = (_shape(x0), _shape(x1))
        return x0 / x1

    def backward(self, gy):
        (x0, x1), (s0, s1), e = self.inputs, self.shapes, self._edges
        gx0 = gy / x1
        return (None if e[0] is None else _sum_to(gx0, s0),
                None if e[1] is None else _sum_to(-gx0 * x0 / x1, s1))

    def jvp(self, tx0, tx1):
        x0, x1 = self.inputs
        return _plus(None if tx0 is None else tx0 / x1,
                     None if tx1 is None else -tx1 * x0 / (x1 * x1))


class Neg(Function):
    retain_inputs = ()

    def forward(self, x):
        return -x

    def backward(self, gy):
        return -gy

    jvp = backward  # elementwise: the Jacobian is diagonal, so J t = J^T t
    batched_jvp = True


class Pow(Function):
    """``x ** c`` for a constant exponent (DeZero's Pow)."""

    retain_inputs = (0,)

    def __init__(self, c):
        self.c = c

    def forward(self, x):
        return x ** self.c

    def backward(self, gy):
        x = self.inputs[0]
        c = self.c
        if c == 2:
            return gy * (x * c)
        return gy * (x ** (c - 1) * c)

    jvp = backward  # elementwise: the Jacobian is diagonal, so J t = J^T t
    batched_jvp = True


class PowVariable(Function):
    """``x0 ** x1`` with a differentiable exponent: d/dx1 = y log(x0) (needs x0 > 0)."""

    retain_inputs = "all"
    retain_outputs = (0,)
    grad_reads = ((0, 1), (0,))
    batched_jvp = "broadcast"
    weak_scalars = True

    def forward(self, x0, x1):
        self.shapes = (_shape(x0), _shape(x1))
        return x0 ** x1

    def backward(self, gy):
        (x0, x1), (s0, s1), e = self.inputs, self.shapes, self._edges
        return (None if e[0] is None else _sum_to(gy * x1 * x0 ** (x1 - 1), s0),
                None if e[1] is None else _sum_to(gy * self.retained_output() * log(x0), s1))

    def jvp(self, tx0, tx1):
        x0, x1 = self.inputs
        t0 = None if tx0 is None else tx0 * x1 * x0 ** (x1 - 1)
        t1 = None if tx1 is None else tx1 * self.retained_output() * log(x0)
        return _plus(t0, t1)


def add(x0, x1):
    """``x0 + x1`` with broadcasting (``Variable.__add__``).

    Args:
        x0, x1 (Variable, ndarray or scalar): broadcastable shapes; a Python or NumPy scalar
            takes the other operand's float dtype (float32 + 2.0 stays float32).
    Returns:
        Variable: the broadcast shape, NumPy's result dtype.

    >>> add(np.array([1.0, 2.0]), 3)
    variable([4. 5.])
    """
    return Add()(*_operands(x0, x1))


def sub(x0, x1):
    """``x0 - x1`` with broadcasting (``Variable.__sub__``).

    Args:
        x0, x1 (Variable, ndarray or scalar): broadcastable shapes, as in :func:`add`.
    Returns:
        Variable: the broadcast shape, NumPy's result dtype.

    >>> sub(np.array([1.0, 2.0]), np.array([[1.0], [2.0]]))
    variable([[ 0.  1.]
              [-1.  0.]])
    """
    return Sub()(*_operands(x0, x1))


def rsub(x0, x1):
    """``x1 - x0``, the reflected operator (``Variable.__rsub__``: ``2.0 - x``).

    Args:
        x0, x1 (Variable, ndarray or scalar): broadcastable shapes, as in :func:`add`.
    Returns:
        Variable: the broadcast shape, NumPy's result dtype.

    >>> rsub(np.array([1.0, 2.0]), 3.0)
    variable([2. 1.])
    """
    return sub(x1, x0)


def mul(x0, x1):
    """``x0 * x1`` with broadcasting (``Variable.__mul__``).

    Args:
        x0, x1 (Variable, ndarray or scalar): broadcastable shapes, as in :func:`add`.
    Returns:
        Variable: the broadcast shape, NumPy's result dtype.

    >>> mul(np.float32([1.0, 2.0]), 0.5).dtype
    dtype('float32')
    """
    t = type(x1)
    if (t is float or t is int) and type(x0) is Variable:  # the common case, kept short
        return Mul()(x0, x1)
    return Mul()(*_operands(x0, x1))


def div(x0, x1):
    """``x0 / x1`` (true division) with broadcasting (``Variable.__truediv__``).

    Division by zero follows NumPy (inf/nan, with NumPy's warning); the gradient there is
    inf/nan too.

    Args:
        x0, x1 (Variable, ndarray or scalar): broadcastable shapes, as in :func:`add`.
    Returns:
        Variable: the broadcast shape, a float dtype (integers divide to float64).

    >>> div(np.array([1.0, 3.0]), 2)
    variable([0.5 1.5])
    """
    return Div()(*_operands(x0, x1))


def rdiv(x0, x1):
    """``x1 / x0``, the reflected operator (``Variable.__rtruediv__``: ``1 / x``).

    Args:
        x0, x1 (Variable, ndarray or scalar): broadcastable shapes, as in :func:`add`.
    Returns:
        Variable: the broadcast shape, a float dtype.

    >>> rdiv(np.array([1.0, 4.0]), 2.0)
    variable([2.  0.5])
    """
    return div(x1, x0)


def neg(x):
    """``-x`` (``Variable.__neg__``).

    Args:
        x (Variable or ndarray): any shape.
    Returns:
        Variable: same shape and dtype as ``x``.

    >>> neg(np.array([1.0, -2.0]))
    variable([-1.  2.])
    """
    return Neg()(x)


def pow(x, c):
    """Power ``x ** c`` (``Variable.__pow__``).

    ``c`` is a constant scalar, or a Variable/array (then both get gradients; the
    exponent's gradient ``y log(x)`` needs ``x > 0``).

    Args:
        x (Variable or ndarray): any shape.
        c (scalar, Variable or ndarray): the exponent, broadcastable with ``x``.
    Returns:
        Variable: the broadcast shape; a scalar ``c`` keeps ``x``'s float dtype.

    >>> pow(np.array([2.0, 3.0]), 2)
    variable([4. 9.])
    """
    if _is_scalar(c):
        x = as_operand(x)
        c = _real(c)[()] if isinstance(c, np.ndarray) else _real(c)
        if isinstance(c, np.generic) and data_of(x).dtype.kind in "fc":
            c = data_of(x).dtype.type(c)
        return Pow(c)(x)
    return PowVariable()(*_operands(x, c))


def rpow(x, c):
    """``c ** x``, the reflected operator (``Variable.__rpow__``: ``2.0 ** x``).

    Args:
        x (Variable or ndarray): the exponent, any shape.
        c (scalar, Variable or ndarray): the base (positive, for the gradient ``y log(c)``
            of a differentiable base).
    Returns:
        Variable: the broadcast shape, NumPy's result dtype.

    >>> rpow(np.array([1.0, 3.0]), 2.0)
    variable([2. 8.])
    """
    return pow(c, x)


def square(x):
    """``x ** 2``, elementwise; the gradient is ``2 x``.

    Args:
        x (Variable or ndarray): any shape.
    Returns:
        Variable: same shape and dtype as ``x``.

    >>> square(np.array([-2.0, 3.0]))
    variable([4. 9.])
    """
    return Pow(2)(x)

