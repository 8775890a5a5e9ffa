"""Elementwise math: arithmetic with broadcasting, exp/log, trig, powers, clip, where.

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

__all__ = [
    "abs",
    "add",
    "clip",
    "cos",
    "div",
    "exp",
    "log",
    "maximum",
    "minimum",
    "mul",
    "neg",
    "pow",
    "rdiv",
    "rpow",
    "rsub",
    "sigmoid",
    "sin",
    "sqrt",
    "square",
    "sub",
    "tan",
    "tanh",
    "where",
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
    from mibun.functions.array import sum_to
    return sum_to(gx, shape)


# --- binary arithmetic ----------------------------------------------------------------------
# DeZero's six ops. A scalar operand is an input like any other: a constant (no edge, so no
# gradient), passed to forward as a Python number (``weak_scalars``) or a 0-d array.
class Add(Function):
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


class PowVariable(Function):
    """``x0 ** x1`` with a differentiable exponent: d/dx1 = y log(x0) (needs x0 > 0)."""

    retain_inputs = "all"
    retain_outputs = (0,)
    grad_reads = ((0, 1), (0,))
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
    """``x0 + x1`` with broadcasting; either side may be a scalar or an ndarray."""
    return Add()(*_operands(x0, x1))


def sub(x0, x1):
    """``x0 - x1`` with broadcasting."""
    return Sub()(*_operands(x0, x1))


def rsub(x0, x1):
    """``x1 - x0`` (the reflected operator)."""
    return sub(x1, x0)


def mul(x0, x1):
    """``x0 * x1`` with broadcasting."""
    t = type(x1)
    if (t is float or t is int) and type(x0) is Variable:  # the common case, kept short
        return Mul()(x0, x1)
    return Mul()(*_operands(x0, x1))


def div(x0, x1):
    """``x0 / x1`` (true division) with broadcasting. Division by zero follows NumPy
    (inf/nan, with NumPy's warning); the gradient there is inf/nan too."""
    return Div()(*_operands(x0, x1))


def rdiv(x0, x1):
    """``x1 / x0`` (the reflected operator)."""
    return div(x1, x0)


def neg(x):
    """``-x``."""
    return Neg()(x)


def pow(x, c):
    """``x ** c``: ``c`` a constant scalar, or a Variable/array (then both get gradients;
    the exponent's gradient ``y log(x)`` needs ``x > 0``)."""
    if _is_scalar(c):
        x = as_operand(x)
        c = _real(c)[()] if isinstance(c, np.ndarray) else _real(c)
        if isinstance(c, np.generic) and data_of(x).dtype.kind in "fc":
            c = data_of(x).dtype.type(c)
        return Pow(c)(x)
    return PowVariable()(*_operands(x, c))


def rpow(x, c):
    """``c ** x`` (the reflected operator)."""
    return pow(c, x)


def square(x):
    """``x ** 2``."""
    return Pow(2)(x)

# --- unary elementwise ----------------------------------------------------------------------
class Exp(Function):
    retain_inputs = ()
    retain_outputs = (0,)

    def forward(self, x):
        xp = backend.get_array_module(x)
        return xp.exp(x)

    def backward(self, gy):
        return gy * self.retained_output()

    jvp = backward  # elementwise: the Jacobian is diagonal, so J t = J^T t


class Log(Function):
    retain_inputs = (0,)

    def forward(self, x):
        xp = backend.get_array_module(x)
        return xp.log(x)

    def backward(self, gy):
        return gy / self.inputs[0]

    jvp = backward  # elementwise: the Jacobian is diagonal, so J t = J^T t


class Sin(Function):
    retain_inputs = (0,)

    def forward(self, x):
        xp = backend.get_array_module(x)
        return xp.sin(x)

    def backward(self, gy):
        return gy * cos(self.inputs[0])

    jvp = backward  # elementwise: the Jacobian is diagonal, so J t = J^T t


class Cos(Function):
    retain_inputs = (0,)

    def forward(self, x):
        xp = backend.get_array_module(x)
        return xp.cos(x)

    def backward(self, gy):
        return gy * -sin(self.inputs[0])

    jvp = backward  # elementwise: the Jacobian is diagonal, so J t = J^T t


class Tan(Function):
    retain_inputs = ()
    retain_outputs = (0,)

    def forward(self, x):
        xp = backend.get_array_module(x)
        return xp.tan(x)

    def backward(self, gy):
        y = self.retained_output()
        return gy * (y * y + 1)

    jvp = backward  # elementwise: the Jacobian is diagonal, so J t = J^T t


class Tanh(Function):
    retain_inputs = ()
    retain_outputs = (0,)

    def forward(self, x):
        xp = backend.get_array_module(x)
        return xp.tanh(x)

    def backward(self, gy):
        y = self.retained_output()
        return gy * (1 - y * y)

    jvp = backward  # elementwise: the Jacobian is diagonal, so J t = J^T t


class Sqrt(Function):
    retain_inputs = ()
    retain_outputs = (0,)

    def forward(self, x):
        xp = backend.get_array_module(x)
        return xp.sqrt(x)

    def backward(self, gy):
        return gy / (self.retained_output() * 2)

    jvp = backward  # elementwise: the Jacobian is diagonal, so J t = J^T t


class Abs(Function):
    retain_inputs = (0,)

    def forward(self, x):
        xp = backend.get_array_module(x)
        return xp.abs(x)

    def backward(self, gy):
        # Convention at the kink: d|x|/dx = sign(0) = 0, as in PyTorch.
        x = data_of(self.inputs[0])
        return gy * backend.get_array_module(x).sign(x)

    jvp = backward  # elementwise: the Jacobian is diagonal, so J t = J^T t


class Sigmoid(Function):
    retain_inputs = ()
    retain_outputs = (0,)

    def forward(self, x):
        xp = backend.get_array_module(x)
        if x.dtype.kind not in "f":  # bool / int: the float type NumPy's np.exp would give
            x = x.astype(np.promote_types(x.dtype, np.float16))
        # exp(-|x|) never overflows; picking the form per sign keeps full relative precision
        # in both tails (tanh(x/2)/2 + 1/2 rounds sigmoid(-50) to 0).
        # sigmoid(x) = exp(min(x, 0)) / (1 + exp(-|x|)), the same value in both branches.
        d = xp.abs(x, out=xp.empty_like(x))  # out=: 0-d inputs stay arrays for the in-place ops
        xp.negative(d, out=d)
        xp.exp(d, out=d)
        d += 1
        y = xp.minimum(x, 0, out=xp.empty_like(x))
        xp.exp(y, out=y)
        y /= d
        return y

    def backward(self, gy):
        y = self.retained_output()
        return gy * y * (1 - y)

    jvp = backward  # elementwise: the Jacobian is diagonal, so J t = J^T t


def exp(x):
    """Elementwise ``e**x``.

    >>> exp(np.array(0.0))
    variable(1.0)
    """
    return Exp()(x)


def log(x):
    """Elementwise natural log. ``log(0)`` is ``-inf`` (NumPy warns), its gradient ``inf``."""
    return Log()(x)


def sin(x):
    """Elementwise sine."""
    return Sin()(x)


def cos(x):
    """Elementwise cosine."""
    return Cos()(x)


def tan(x):
    """Elementwise tangent."""
    return Tan()(x)


def tanh(x):
    """Elementwise tanh; the gradient ``1 - y²`` is computed from the output."""
    return Tanh()(x)


def sqrt(x):
    """Elementwise square root."""
    return Sqrt()(x)


def abs(x):
    """Elementwise absolute value; the gradient at 0 is 0."""
    return Abs()(x)


def sigmoid(x):
    """Logistic sigmoid ``1 / (1 + exp(-x))``, computed from ``exp(-|x|)``: finite,
    warning-free and accurate in both tails for any ``x``."""
    return Sigmoid()(x)


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


def clip(x, x_min, x_max):
    """Clamp to ``[x_min, x_max]`` (either may be None). The gradient is 1 inside the
    closed interval, 0 outside."""
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
    """``x0`` where ``condition`` else ``x1``, with broadcasting. ``condition`` is data
    (bool array or Variable), never differentiated."""
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
    """Elementwise maximum. At ties the gradient goes to ``x0`` (documented convention;
    PyTorch splits it in half)."""
    x0, x1 = _pair(x0, x1)
    try:
        condition = data_of(x0) >= data_of(x1)
    except (TypeError, ValueError) as e:  # shapes that do not broadcast
        raise errors.op_error(e, {"x0": x0, "x1": x1}) from e
    return where(_nan_wins(condition, data_of(x0)), x0, x1)


def minimum(x0, x1):
    """Elementwise minimum. At ties the gradient goes to ``x0``."""
    x0, x1 = _pair(x0, x1)
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


def _pair(x0, x1):
    if _is_scalar(x1):
        x0 = as_operand(x0)
        x1 = _const_array(x0, x1)
    elif _is_scalar(x0):
        x1 = as_operand(x1)
        x0 = _const_array(x1, x0)
    return as_operand(x0), as_operand(x1)
