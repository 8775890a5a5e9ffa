"""Elementwise math: arithmetic with broadcasting, exp/log, trig and hyperbolic functions
and their inverses, softplus, erf, powers, clip, where.

A one-input op is a :class:`Unary`: the array-module function it calls by name and its
gradient ``gx(gy, v)``, written once in operators and F functions (so it runs on arrays and on
Variables, and serves as the JVP: the Jacobian is diagonal).

Binary ops reduce a broadcast gradient back to each input's shape with ``sum_to``.
A Python or NumPy scalar operand becomes a constant of the Variable's dtype, so
``float32 * 2.0`` and ``float32 * np.float64(2)`` stay float32 (NumPy 2 would promote a
NumPy float64 scalar; DeZero promoted everything through float64 arrays).
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from mibun import backend, errors
from mibun.core import Function, Variable, as_operand, data_of

__all__ = [
    "abs",
    "add",
    "arccos",
    "arcsin",
    "arctan",
    "clip",
    "cos",
    "cosh",
    "div",
    "erf",
    "exp",
    "expm1",
    "log",
    "log1p",
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
    "sinh",
    "softplus",
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
    """``x0 / x1`` (true division) with broadcasting (``Variable.__truediv__``). Division
    by zero follows NumPy (inf/nan, with NumPy's warning); the gradient there is inf/nan too.

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
    """``x ** c`` (``Variable.__pow__``): ``c`` a constant scalar, or a Variable/array
    (then both get gradients; the exponent's gradient ``y log(x)`` needs ``x > 0``).

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


# --- unary elementwise ----------------------------------------------------------------------
class Unary(Function):
    """An elementwise op of one input (MyGrad's ``UnaryUfunc`` is the model): ``ufunc``
    names the NumPy/CuPy function, ``gx(gy, v)`` gives the input's gradient from ``v``, the
    output if the op retains it (``retain_outputs``), else the input. ``gx`` is written with
    operators and F functions, so it means the same on arrays and on Variables."""

    retain_inputs: tuple = (0,)
    ufunc = ""

    def forward(self, x):
        return getattr(backend.get_array_module(x), self.ufunc)(x)

    def backward(self, gy):
        return self.gx(gy, self.retained_output() if self.retain_outputs else self.inputs[0])

    jvp = backward  # elementwise: the Jacobian is diagonal, so J t = J^T t


class Exp(Unary):
    ufunc = "exp"
    retain_inputs, retain_outputs = (), (0,)  # exp' = exp: the output is enough

    def gx(self, gy, y):
        return gy * y


class Log(Unary):
    ufunc = "log"

    def gx(self, gy, x):
        return gy / x


class Log1p(Unary):
    ufunc = "log1p"

    def gx(self, gy, x):
        return gy / (x + 1)


class Expm1(Unary):
    ufunc = "expm1"
    retain_inputs, retain_outputs = (), (0,)  # expm1' = exp = y + 1

    def gx(self, gy, y):
        return gy * (y + 1)


class Sin(Unary):
    ufunc = "sin"

    def gx(self, gy, x):
        return gy * cos(x)


class Cos(Unary):
    ufunc = "cos"

    def gx(self, gy, x):
        return gy * -sin(x)


class Tan(Unary):
    ufunc = "tan"
    retain_inputs, retain_outputs = (), (0,)

    def gx(self, gy, y):
        return gy * (y * y + 1)


class Arcsin(Unary):
    ufunc = "arcsin"

    def gx(self, gy, x):
        return gy / sqrt(1 - x * x)


class Arccos(Unary):
    ufunc = "arccos"

    def gx(self, gy, x):
        return -gy / sqrt(1 - x * x)


class Arctan(Unary):
    ufunc = "arctan"

    def gx(self, gy, x):
        return gy / (x * x + 1)


class Sinh(Unary):
    ufunc = "sinh"

    def gx(self, gy, x):
        return gy * cosh(x)


class Cosh(Unary):
    ufunc = "cosh"

    def gx(self, gy, x):
        return gy * sinh(x)


class Tanh(Unary):
    ufunc = "tanh"
    retain_inputs, retain_outputs = (), (0,)

    def gx(self, gy, y):
        return gy * (1 - y * y)


class Sqrt(Unary):
    ufunc = "sqrt"
    retain_inputs, retain_outputs = (), (0,)

    def gx(self, gy, y):
        return gy / (y * 2)


class Abs(Unary):
    ufunc = "abs"

    def gx(self, gy, x):
        # Convention at the kink: d|x|/dx = sign(0) = 0, as in PyTorch.
        x = data_of(x)
        return gy * backend.get_array_module(x).sign(x)


def _float_dtype(dtype):
    """``dtype`` if it is a float type, else the float type NumPy's ``np.exp`` would give."""
    return dtype if dtype.kind == "f" else np.promote_types(dtype, np.float16)


def _as_float(x):
    return x if x.dtype.kind == "f" else x.astype(_float_dtype(x.dtype))


class Sigmoid(Unary):
    retain_inputs, retain_outputs = (), (0,)

    def forward(self, x):
        xp = backend.get_array_module(x)
        x = _as_float(x)
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

    def gx(self, gy, y):
        return gy * y * (1 - y)


class Softplus(Unary):
    def forward(self, x):
        xp = backend.get_array_module(x)
        x = _as_float(x)
        # log(1 + e^x) = log1p(e^-|x|) + max(x, 0): e^-|x| <= 1 never overflows, and log1p
        # keeps the left tail (softplus(-50) = e^-50) to full relative precision.
        return xp.log1p(xp.exp(-xp.abs(x))) + xp.maximum(x, 0)

    def gx(self, gy, x):
        return gy * sigmoid(x)


# erf on NumPy: W. J. Cody's rational approximations ("Rational Chebyshev approximations for
# the error function", Math. Comp. 23 (1969) 631-638; the coefficients of netlib's specfun
# CALERF), evaluated in float64. erf(x) = x R(x²) for |x| <= 0.46875; beyond, 1 - erfc with
# erfc(x) = exp(-x²) R(x) up to 4 and exp(-x²) / x (1/√π - R(1/x²) / x²) up to 6, where erf
# rounds to 1. Within 4 ulp of math.erf (tests/functions/test_math.py).
_ERF_SMALL = ((3.16112374387056560e00, 1.13864154151050156e02, 3.77485237685302021e02,
               3.20937758913846947e03, 1.85777706184603153e-1),
              (2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03,
               2.84423683343917062e03))
_ERFC_MID = ((5.64188496988670089e-1, 8.88314979438837594e0, 6.61191906371416295e01,
              2.98635138197400131e02, 8.81952221241769090e02, 1.71204761263407058e03,
              2.05107837782607147e03, 1.23033935479799725e03, 2.15311535474403846e-8),
             (1.57449261107098347e01, 1.17693950891312499e02, 5.37181101862009858e02,
              1.62138957456669019e03, 3.29079923573345963e03, 4.36261909014324716e03,
              3.43936767414372164e03, 1.23033935480374942e03))
_ERFC_TAIL = ((3.05326634961232344e-1, 3.60344899949804439e-1, 1.25781726111229246e-1,
               1.60837851487422766e-2, 6.58749161529837803e-4, 1.63153871373020978e-2),
              (2.56852019228982242e00, 1.87295284992346047e00, 5.27905102951428412e-1,
               6.05183413124413191e-2, 2.33520497626869185e-3))


def _rational(coefs, t):
    """Cody's ratio of polynomials in ``t``: the numerator's leading coefficient is last,
    the denominator is monic. In place on the temporaries (they are the time on 10^6 values)."""
    p, q = coefs
    n = p[-1] * t
    n += p[0]
    d = t + q[0]
    for a, b in zip(p[1:-1], q[1:]):
        n *= t
        n += a
        d *= t
        d += b
    n /= d
    return n


def _erf(x):
    """Elementwise erf of an ndarray, in ``x``'s float dtype (float64 for integers)."""
    xp = backend.get_array_module(x)
    dtype = _float_dtype(x.dtype)
    if xp is not np:
        try:  # CuPy's own erf kernel (cupyx is optional: imported only for a CuPy array)
            from cupyx.scipy import special
        except ImportError:
            pass
        else:
            y = special.erf(x.astype(np.promote_types(dtype, np.float32), copy=False))
            return y.astype(dtype, copy=False)
    a = xp.abs(x.astype(np.float64).ravel())
    out = xp.ones_like(a)  # |x| >= 6 (and inf): erf rounds to ±1
    m = a <= 0.46875
    s = a[m]
    out[m] = s * _rational(_ERF_SMALL, s * s)
    m = (a > 0.46875) & (a <= 4)
    s = a[m]
    out[m] = 1 - xp.exp(-s * s) * _rational(_ERFC_MID, s)
    m = (a > 4) & (a < 6)
    s = a[m]
    z = 1 / (s * s)
    out[m] = 1 - xp.exp(-s * s) / s * (1 / math.sqrt(math.pi) - z * _rational(_ERFC_TAIL, z))
    out[xp.isnan(a)] = np.nan
    return xp.copysign(out, x.ravel(), out=out).reshape(x.shape).astype(dtype, copy=False)


class Erf(Unary):
    def forward(self, x):
        return _erf(x)

    def gx(self, gy, x):
        with np.errstate(under="ignore"):  # exp(-x²) underflows to 0 for |x| > 27: right
            return gy * exp(-(x * x)) * (2 / math.sqrt(math.pi))


def exp(x):
    """Elementwise ``e**x``; the gradient is computed from the output.

    Args:
        x (Variable or ndarray): any shape; float32 stays float32.
    Returns:
        Variable: same shape and dtype as ``x``.

    >>> exp(np.array(0.0))
    variable(1.0)
    """
    return Exp()(x)


def log(x):
    """Elementwise natural log. ``log(0)`` is ``-inf`` (NumPy warns), its gradient ``inf``.

    Args:
        x (Variable or ndarray): positive values, any shape.
    Returns:
        Variable: same shape and dtype as ``x``.

    >>> log(np.array([1.0, np.e]))
    variable([0. 1.])
    """
    return Log()(x)


def log1p(x):
    """Elementwise ``log(1 + x)``, accurate for tiny ``x``; the gradient is ``1 / (1 + x)``.

    Args:
        x (Variable or ndarray): values above -1, any shape.
    Returns:
        Variable: same shape and dtype as ``x``.

    >>> log1p(np.array([1e-20, np.e - 1]))
    variable([1.e-20 1.e+00])
    """
    return Log1p()(x)


def expm1(x):
    """Elementwise ``e**x - 1``, accurate for tiny ``x``; the gradient is ``e**x = y + 1``.

    Args:
        x (Variable or ndarray): any shape.
    Returns:
        Variable: same shape and dtype as ``x``.

    >>> expm1(np.array([1e-20, 0.0]))
    variable([1.e-20 0.e+00])
    """
    return Expm1()(x)


def sin(x):
    """Elementwise sine.

    Args:
        x (Variable or ndarray): radians, any shape.
    Returns:
        Variable: same shape and dtype as ``x``.

    >>> sin(np.array([0.0, np.pi / 2]))
    variable([0. 1.])
    """
    return Sin()(x)


def cos(x):
    """Elementwise cosine.

    Args:
        x (Variable or ndarray): radians, any shape.
    Returns:
        Variable: same shape and dtype as ``x``.

    >>> cos(np.array([0.0, np.pi]))
    variable([ 1. -1.])
    """
    return Cos()(x)


def tan(x):
    """Elementwise tangent; the gradient ``1 + y²`` is computed from the output.

    Args:
        x (Variable or ndarray): radians, any shape.
    Returns:
        Variable: same shape and dtype as ``x``.

    >>> tan(np.array([0.0, np.pi / 4]))
    variable([0. 1.])
    """
    return Tan()(x)


def arcsin(x):
    """Elementwise inverse sine; the gradient ``1 / sqrt(1 - x²)`` is infinite at ±1.

    Args:
        x (Variable or ndarray): values in [-1, 1], any shape.
    Returns:
        Variable: radians in [-pi/2, pi/2], same shape and dtype as ``x``.

    >>> arcsin(np.array([0.0, 1.0]))
    variable([0.         1.57079633])
    """
    return Arcsin()(x)


def arccos(x):
    """Elementwise inverse cosine; the gradient ``-1 / sqrt(1 - x²)`` is infinite at ±1.

    Args:
        x (Variable or ndarray): values in [-1, 1], any shape.
    Returns:
        Variable: radians in [0, pi], same shape and dtype as ``x``.

    >>> arccos(np.array([1.0, 0.0]))
    variable([0.         1.57079633])
    """
    return Arccos()(x)


def arctan(x):
    """Elementwise inverse tangent; the gradient is ``1 / (1 + x²)``.

    Args:
        x (Variable or ndarray): any shape.
    Returns:
        Variable: radians in (-pi/2, pi/2), same shape and dtype as ``x``.

    >>> arctan(np.array([0.0, 1.0]))
    variable([0.         0.78539816])
    """
    return Arctan()(x)


def sinh(x):
    """Elementwise hyperbolic sine; the gradient is ``cosh(x)``.

    Args:
        x (Variable or ndarray): any shape.
    Returns:
        Variable: same shape and dtype as ``x``.

    >>> sinh(np.array([0.0, 1.0]))
    variable([0.         1.17520119])
    """
    return Sinh()(x)


def cosh(x):
    """Elementwise hyperbolic cosine; the gradient is ``sinh(x)``.

    Args:
        x (Variable or ndarray): any shape.
    Returns:
        Variable: same shape and dtype as ``x``.

    >>> cosh(np.array([0.0, 1.0]))
    variable([1.         1.54308063])
    """
    return Cosh()(x)


def tanh(x):
    """Elementwise tanh; the gradient ``1 - y²`` is computed from the output.

    Args:
        x (Variable or ndarray): any shape.
    Returns:
        Variable: values in [-1, 1], same shape and dtype as ``x``.

    >>> tanh(np.array([0.0, 1.0]))
    variable([0.         0.76159416])
    """
    return Tanh()(x)


def sqrt(x):
    """Elementwise square root; the gradient ``1 / (2 y)`` is computed from the output.

    Args:
        x (Variable or ndarray): non-negative values, any shape.
    Returns:
        Variable: same shape and dtype as ``x``.

    >>> sqrt(np.array([4.0, 9.0]))
    variable([2. 3.])
    """
    return Sqrt()(x)


def abs(x):
    """Elementwise absolute value; the gradient at 0 is 0 (PyTorch's convention).

    Args:
        x (Variable or ndarray): any shape.
    Returns:
        Variable: same shape and dtype as ``x``.

    >>> abs(np.array([-2.0, 3.0]))
    variable([2. 3.])
    """
    return Abs()(x)


def sigmoid(x):
    """Logistic sigmoid ``1 / (1 + exp(-x))``, computed from ``exp(-|x|)``: finite,
    warning-free and accurate in both tails for any ``x``.

    Args:
        x (Variable or ndarray): any shape; bool/int become the float type of ``np.exp``.
    Returns:
        Variable: values in [0, 1], same shape as ``x``, float32 for float32.

    >>> sigmoid(np.array([0.0, 1000.0]))
    variable([0.5 1. ])
    """
    return Sigmoid()(x)


def softplus(x):
    """``log(1 + exp(x))``, a smooth relu (PyTorch's ``F.softplus`` with ``beta=1``),
    computed as ``log1p(exp(-|x|)) + max(x, 0)``: no overflow, accurate in both tails (it
    has no threshold: PyTorch returns ``x`` itself above 20). The gradient is ``sigmoid(x)``.

    Args:
        x (Variable or ndarray): any shape; bool/int become the float type of ``np.exp``.
    Returns:
        Variable: positive values, same shape as ``x``, float32 for float32.

    >>> softplus(np.array([0.0, 1000.0]))
    variable([6.93147181e-01 1.00000000e+03])
    """
    return Softplus()(x)


def erf(x):
    """The error function ``2/sqrt(pi) ∫_0^x exp(-t²) dt``, elementwise; the gradient is
    ``2/sqrt(pi) exp(-x²)``. Computed in float64 (Cody's rational approximations, within
    4 ulp of ``math.erf``; on CuPy, ``cupyx.scipy.special.erf``).

    Args:
        x (Variable or ndarray): any shape; integers become float64.
    Returns:
        Variable: values in [-1, 1], same shape as ``x``, float32 for float32.

    >>> erf(np.array([0.0, 1.0, 10.0]))
    variable([0.         0.84270079 1.        ])
    """
    return Erf()(x)


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
    closed interval, 0 outside.

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
    (bool array or Variable), never differentiated.

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
    """Elementwise maximum with broadcasting; NaN propagates, as in NumPy. At ties the
    gradient goes to ``x0`` (documented convention; PyTorch splits it in half).

    Args:
        x0, x1 (Variable, ndarray or scalar): broadcastable shapes.
    Returns:
        Variable: the broadcast shape, NumPy's result dtype.

    >>> maximum(np.array([1.0, 4.0]), 2.0)
    variable([2. 4.])
    """
    x0, x1 = _pair(x0, x1)
    try:
        condition = data_of(x0) >= data_of(x1)
    except (TypeError, ValueError) as e:  # shapes that do not broadcast
        raise errors.op_error(e, {"x0": x0, "x1": x1}) from e
    return where(_nan_wins(condition, data_of(x0)), x0, x1)


def minimum(x0, x1):
    """Elementwise minimum with broadcasting; NaN propagates, as in NumPy. At ties the
    gradient goes to ``x0``.

    Args:
        x0, x1 (Variable, ndarray or scalar): broadcastable shapes.
    Returns:
        Variable: the broadcast shape, NumPy's result dtype.

    >>> minimum(np.array([1.0, 4.0]), 2.0)
    variable([1. 2.])
    """
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
