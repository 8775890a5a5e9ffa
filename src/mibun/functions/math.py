"""Elementwise math of one input: exp/log, trig and hyperbolic functions and their
inverses, sqrt, abs, sigmoid, softplus, erf.

Each op is a :class:`Unary`: the array-module function it calls by name and its
gradient ``gx(gy, v)``, written once in operators and F functions (so it runs on arrays and on
Variables, and serves as the JVP: the Jacobian is diagonal).
"""
from __future__ import annotations

import math

import numpy as np

from mibun import backend
from mibun.core import Function, data_of
from mibun.functions._erf import _erf, _float_dtype

__all__ = [
    "abs", "arccos", "arcsin", "arctan", "cos", "cosh", "erf", "exp", "expm1", "log", "log1p",
    "sigmoid", "sin", "sinh", "softplus", "sqrt", "tan", "tanh",
]

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
    batched_jvp = True  # elementwise: a batch axis in front broadcasts (mibun.forward_mode)


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


def _as_float(x):
    return x if x.dtype.kind == "f" else x.astype(_float_dtype(x.dtype))


class Sigmoid(Unary):
    retain_inputs, retain_outputs = (), (0,)

    def forward(self, x):
        xp = backend.get_array_module(x)
        x = _as_float(x)
        # exp(-|x|) never overflows; picking the form per sign keeps full relative precision
        # in both tails (tanh(x/2)/2 + 1/2 rounds sigmoid(-50) to 0).
        # sigmoid(x) = exp(min(x, 0)) / (1 + exp(-|x|)), the same value in both branches;
        # exp(min(x, 0)) is e = exp(-|x|) for x < 0, else 1 = max(e, x >= 0): one exp.
        e = xp.abs(x, out=xp.empty_like(x))  # out=: 0-d inputs stay arrays for the in-place ops
        xp.negative(e, out=e)
        xp.exp(e, out=e)
        d = e + 1
        y = xp.maximum(e, x >= 0, out=e)
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
    """Logistic sigmoid ``1 / (1 + exp(-x))``, elementwise.

    Computed from ``exp(-|x|)``: finite, warning-free and accurate in both tails for any
    ``x``.

    Args:
        x (Variable or ndarray): any shape; bool/int become the float type of ``np.exp``.
    Returns:
        Variable: values in [0, 1], same shape as ``x``, float32 for float32.

    >>> sigmoid(np.array([0.0, 1000.0]))
    variable([0.5 1. ])
    """
    return Sigmoid()(x)


def softplus(x):
    """Softplus ``log(1 + exp(x))``, a smooth relu (PyTorch's with ``beta=1``).

    Computed as ``log1p(exp(-|x|)) + max(x, 0)``: no overflow, accurate in both tails (it
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
    """The error function ``2/sqrt(pi) ∫_0^x exp(-t²) dt``, elementwise.

    The gradient is ``2/sqrt(pi) exp(-x²)``. Computed in float64 (Cody's rational
    approximations, within 4 ulp of ``math.erf``; on CuPy, ``cupyx.scipy.special.erf``).

    Args:
        x (Variable or ndarray): any shape; integers become float64.
    Returns:
        Variable: values in [-1, 1], same shape as ``x``, float32 for float32.

    >>> erf(np.array([0.0, 1.0, 10.0]))
    variable([0.         0.84270079 1.        ])
    """
    return Erf()(x)

