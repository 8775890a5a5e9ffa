"""Losses and metrics: mean_squared_error, softmax / sigmoid / binary cross-entropy, accuracy.

Every loss is a mean over the batch, returned as a 0-d Variable of the input's float dtype.
Labels (integer class ids) are constants: they get no gradient.
"""
from __future__ import annotations

import numpy as np

from mibun import backend, errors
from mibun.core import Function, Variable, as_operand, data_of
from mibun.functions import _helpers
from mibun.functions.activation import softmax
from mibun.functions.array import reshape
from mibun.functions.math import log, sigmoid
from mibun.functions.reduction import sum
from mibun.functions.select import clip

__all__ = [
    "BinaryCrossEntropy",
    "MeanSquaredError",
    "SoftmaxCrossEntropy",
    "accuracy",
    "binary_cross_entropy",
    "mean_squared_error",
    "sigmoid_cross_entropy",
    "softmax_cross_entropy",
]


def _same_float(x0, x1):
    """Two operands as Variables; a raw-array operand takes the other's float dtype, so a
    float64 target array does not turn a float32 model output into float64."""
    # (as_operand first: asarray(None, dtype=float) would be a silent nan)
    if not isinstance(x1, Variable) and isinstance(x0, Variable) and x0.dtype.kind == "f":
        x1 = data_of(as_operand(x1)).astype(x0.dtype, copy=False)
    elif not isinstance(x0, Variable) and isinstance(x1, Variable) and x1.dtype.kind == "f":
        x0 = data_of(as_operand(x0)).astype(x1.dtype, copy=False)
    return as_operand(x0), as_operand(x1)


# --- mean squared error -----------------------------------------------------------------------
class MeanSquaredError(Function):
    retain_inputs = (0, 1)

    def forward(self, x0, x1):
        diff = x0 - x1
        return (diff * diff).sum() / diff.dtype.type(max(diff.size, 1))

    def backward(self, gy):
        x0, x1 = self.inputs
        gx0 = (x0 - x1) * (gy * (2.0 / max(x0.size, 1)))
        return gx0, -gx0

    def jvp(self, tx0, tx1):
        x0, x1 = self.inputs
        d = tx0 if tx1 is None else -tx1 if tx0 is None else tx0 - tx1
        return sum((x0 - x1) * d) * (2.0 / max(x0.size, 1))


def mean_squared_error(x0, x1):
    """Mean of ``(x0 - x1)**2`` over all entries (PyTorch's ``mse_loss``).

    DeZero divided the sum by ``len(x0)`` (the batch size); the two agree for ``(N, 1)``
    outputs, as in the book's regression examples.

    Args:
        x0, x1 (Variable or ndarray): the same shape, or the same entries in shapes that
            differ only by axes of length 1 (DeZero code compares ``(1, 1)`` with ``(1,)``):
            then ``x1`` is reshaped to ``x0``'s shape. Shapes that would really broadcast,
            such as ``(N, 1)`` against ``(N,)``, are an error (DeZero silently averaged an
            ``N x N`` table). A raw array operand is a constant in the other one's dtype.
    Returns:
        Variable: 0-d.

    >>> float(mean_squared_error(np.array([1.0, 2.0]), np.array([1.0, 4.0])).data)
    2.0
    """
    x0, x1 = _same_float(x0, x1)
    if x0.shape != x1.shape:
        if x0.size == x1.size and _squeezed(x0.shape) == _squeezed(x1.shape):
            x1 = reshape(x1, x0.shape)
        else:
            raise ValueError("F.mean_squared_error: x0 and x1 must have the same shape"
                             + _helpers.describe_all(x0=x0, x1=x1))
    return MeanSquaredError()(x0, x1)


def _squeezed(shape):
    return tuple(s for s in shape if s != 1)


# --- softmax cross-entropy --------------------------------------------------------------------
def _check_labels(x, t, name):
    """Validate integer class ids ``t`` of shape (N,) for logits ``x`` of shape (N, C)."""
    xp = backend.get_array_module(x)
    t = xp.asarray(_helpers.as_data(t, name, "t"))
    if x.ndim != 2:
        raise ValueError(f"{name}: x must be 2-D logits (N, C), got {x.ndim}-D (for more "
                         "axes, move the class axis last and reshape x to (-1, C), t to "
                         "(-1,))" + _helpers.describe_all(x=x, t=t))
    if t.dtype.kind not in "iu":
        raise TypeError(f"{name}: t must hold integer class ids, found dtype={t.dtype}; "
                        "use t.astype(int) for labels" + _helpers.describe_all(x=x, t=t))
    if t.shape != x.shape[:1]:
        raise ValueError(f"{name}: t must have shape ({x.shape[0]},) to match x"
                         + _helpers.describe_all(x=x, t=t))
    if t.size and (int(t.min()) < 0 or int(t.max()) >= x.shape[1]):
        raise ValueError(f"{name}: labels must be in [0, {x.shape[1]}), found "
                         f"[{int(t.min())}, {int(t.max())}]" + _helpers.describe_all(x=x, t=t))
    return t


class SoftmaxCrossEntropy(Function):
    retain_inputs = (0,)

    def __init__(self, t):
        self.t = t

    def forward(self, x, t):
        xp = backend.get_array_module(x)
        N = x.shape[0]
        m = x.max(axis=1, keepdims=True)
        with np.errstate(under="ignore"):  # exp(-2000) = 0 is right, even under all='raise'
            e = xp.exp(x - m)
        # log_z = log(sum(exp(x))) per row; kept (N floats) so backward rebuilds softmax
        self.log_z = xp.log(e.sum(axis=1, keepdims=True)) + m
        log_p = x[xp.arange(N), t] - self.log_z[:, 0]
        return -log_p.sum() / x.dtype.type(max(N, 1))

    def backward(self, gy):
        return SoftmaxCrossEntropyGrad(self.t, self.log_z)(self.inputs[0], gy), None

    def jvp(self, tx, tt):
        # <dL/dx, tx> with dL/dx = (softmax(x) - onehot(t)) / N (the labels have no tangent)
        x = self.inputs[0]
        one = backend.get_array_module(x).ones((), dtype=x.dtype)
        return sum(SoftmaxCrossEntropyGrad(self.t, self.log_z)(x, one) * tx)


class SoftmaxCrossEntropyGrad(Function):
    """``(softmax(x) - onehot(t)) * gy / N`` in one pass over ``x``."""

    retain_inputs = "all"

    def __init__(self, t, log_z):
        self.t = t
        self.log_z = log_z

    def forward(self, x, gy):
        xp = backend.get_array_module(x)
        N = x.shape[0]
        y = x - self.log_z
        with np.errstate(under="ignore"):
            y = xp.exp(y, out=y)
        y[xp.arange(N), self.t] -= 1
        y *= gy / x.dtype.type(max(N, 1))
        return y

    def backward(self, ggx):
        # The map (x, gy) -> (p - onehot) gy / N: differentiate through p = softmax(x).
        x, gy = self.inputs
        N = max(x.shape[0], 1)
        xp = backend.get_array_module(x)
        onehot = xp.zeros(x.shape, dtype=x.dtype)
        onehot[xp.arange(x.shape[0]), self.t] = 1
        with np.errstate(under="ignore"):
            p = softmax(x, axis=1)
            g_gy = sum((p - onehot) * ggx) * (1.0 / N)
            pg = p * ggx
            g_x = (pg - p * sum(pg, axis=1, keepdims=True)) * (gy * (1.0 / N))
        return g_x, g_gy

    def jvp(self, tx, tgy):
        x, gy = self.inputs
        N = max(x.shape[0], 1)
        terms = []
        with np.errstate(under="ignore"):
            if tx is not None:  # (J_softmax tx) gy / N; J_softmax is symmetric
                p = softmax(x, axis=1)
                pt = p * tx
                terms.append((pt - p * sum(pt, axis=1, keepdims=True)) * (gy * (1.0 / N)))
            if tgy is not None:  # linear in gy
                terms.append(SoftmaxCrossEntropyGrad(self.t, self.log_z)(x, tgy))
        return terms[0] if len(terms) == 1 else terms[0] + terms[1]


def softmax_cross_entropy(x, t):
    """Cross-entropy of ``softmax(x)`` against integer labels, averaged over the batch.

    ``-mean(log_softmax(x)[i, t[i]])``, computed stably (finite for logits of any size) and
    in ``x``'s dtype; the backward is one fused op ``(softmax(x) - onehot(t)) / N * gy``.

    Args:
        x (Variable or ndarray): ``(N, C)`` float logits.
        t (ndarray or Variable): ``(N,)`` integer class ids in ``[0, C)``.
    Returns:
        Variable: 0-d, dtype of ``x``.
    Raises:
        TypeError: ``t`` is not an integer array. ValueError: bad shapes or labels.

    >>> round(float(softmax_cross_entropy(np.zeros((2, 4)), np.array([0, 3])).data), 6)
    1.386294
    """
    x = as_operand(x)
    t = _check_labels(x, t, "F.softmax_cross_entropy")
    return SoftmaxCrossEntropy(t)(x, t)


# --- sigmoid / binary cross-entropy -----------------------------------------------------------
def _float_targets(x, t, name):
    """``t`` as a Variable of ``x``'s dtype and shape (integer labels become constants)."""
    if not isinstance(t, Variable) or t.dtype.kind not in "fc":
        xp = backend.get_array_module(x)
        t = as_operand(xp.asarray(data_of(as_operand(t)), dtype=x.dtype))  # a constant
    if t.shape != x.shape:
        if t.size != x.size:
            raise ValueError(f"{name}: t must have the shape of x"
                             + _helpers.describe_all(x=x, t=t))
        t = t.reshape(x.shape)  # DeZero: t may be (N,) for x (N, 1)
    return t


class SigmoidCrossEntropy(Function):
    retain_inputs = (0, 1)

    def forward(self, x, t):
        xp = backend.get_array_module(x)
        # -t log(sigmoid x) - (1-t) log(1 - sigmoid x) = max(x, 0) - t x + log1p(exp(-|x|))
        with np.errstate(under="ignore"):  # exp(-1000) = 0 is right, even under all='raise'
            loss = xp.maximum(x, 0) - t * x + xp.log1p(xp.exp(-xp.abs(x)))
        return loss.sum() / x.dtype.type(max(len(x) if x.ndim else 1, 1))

    def backward(self, gy):
        x, t = self.inputs
        scale = gy * (1.0 / max(len(x) if x.ndim else 1, 1))
        with np.errstate(under="ignore"):
            gx = (sigmoid(x) - t) * scale
        gt = -x * scale if self.needs_grad(1) else None
        return gx, gt

    def jvp(self, tx, tt):
        x, t = self.inputs
        scale = 1.0 / max(len(x) if x.ndim else 1, 1)
        total = None
        with np.errstate(under="ignore"):
            if tx is not None:
                total = sum((sigmoid(x) - t) * tx)
            if tt is not None:
                term = sum(-x * tt)
                total = term if total is None else total + term
        return total * scale


def sigmoid_cross_entropy(x, t):
    """Binary cross-entropy on logits, ``-sum(t log σ(x) + (1-t) log(1-σ(x))) / N``.

    Computed as ``max(x, 0) - t x + log1p(exp(-|x|))``: finite, and without overflow
    warnings, for logits of any size. ``N = len(x)`` (DeZero's normalisation).

    Args:
        x (Variable or ndarray): float logits, ``(N, ...)``.
        t (ndarray or Variable): targets in ``[0, 1]`` (ints or floats), same size as ``x``;
            a float Variable also gets a gradient.
    Returns:
        Variable: 0-d, dtype of ``x``.

    >>> round(float(sigmoid_cross_entropy(np.zeros((2, 1)), np.array([0, 1])).data), 6)
    0.693147
    """
    x = as_operand(x)
    t = _float_targets(x, t, "F.sigmoid_cross_entropy")
    return SigmoidCrossEntropy()(x, t)


# PyTorch's EPSILON for the clamped denominator: the float literal 1e-12f, also in float64
_BCE_EPS = float(np.float32(1e-12))


class BinaryCrossEntropy(Function):
    """PyTorch's clamped BCE: logs clamped at -100 for the value; for the gradient
    ``(p - t) / max(p (1 - p), 1e-12)``, finite at p = 0 and 1 (the derivative of the
    clamped value would be 0 * inf = nan there)."""

    retain_inputs = "all"

    def __init__(self, n):
        self.n = n

    def forward(self, p, t):
        xp = backend.get_array_module(p)
        with np.errstate(divide="ignore"):  # log(0) = -inf is clamped just below
            log_p = xp.maximum(xp.log(p), -100)
            log_q = xp.maximum(xp.log1p(-p), -100)
        return -(t * log_p + (1 - t) * log_q).sum() / p.dtype.type(self.n)

    def backward(self, gy):
        p, t = self.inputs
        scale = gy * (1.0 / self.n)
        gp = (p - t) / clip(p * (1 - p), _BCE_EPS, None) * scale
        gt = None
        if self.needs_grad(1):
            with np.errstate(divide="ignore"):
                gt = (clip(log(1 - p), -100.0, None) - clip(log(p), -100.0, None)) * scale
        return gp, gt

    def jvp(self, tp, tt):
        # <dL/dp, tp> + <dL/dt, tt>, with the gradient formulas of backward
        p, t = self.inputs
        total = None
        if tp is not None:
            total = sum((p - t) / clip(p * (1 - p), _BCE_EPS, None) * tp)
        if tt is not None:
            with np.errstate(divide="ignore"):
                term = sum((clip(log(1 - p), -100.0, None) - clip(log(p), -100.0, None)) * tt)
            total = term if total is None else total + term
        return total * (1.0 / self.n)


def binary_cross_entropy(p, t):
    """Binary cross-entropy of probabilities, ``-sum(t log p + (1-t) log(1-p)) / N``.

    PyTorch's clamped form: each log is clamped at -100, so ``p`` of exactly 0 or 1 gives
    a finite loss (DeZero clipped ``p`` to ``[1e-15, 1]``), and the gradient
    ``(p - t) / max(p (1 - p), 1e-12) / N`` is finite everywhere (0 for a right prediction
    at p = 0 or 1, ``±1e12 / N`` for a wrong one), as ``torch.nn.functional.
    binary_cross_entropy``. ``N = len(p)``. Prefer :func:`sigmoid_cross_entropy` on
    logits: it is exact in the tails.

    Args:
        p (Variable or ndarray): float probabilities in ``[0, 1]``, ``(N, ...)``.
        t (ndarray or Variable): targets in ``[0, 1]``, same size as ``p``; a float
            Variable also gets a gradient.
    Returns:
        Variable: 0-d, dtype of ``p``.

    >>> round(float(binary_cross_entropy(np.array([0.5, 0.5]), np.array([0, 1])).data), 6)
    0.693147
    """
    p = as_operand(p)
    t = _float_targets(p, t, "F.binary_cross_entropy")
    return BinaryCrossEntropy(max(len(p) if p.ndim else 1, 1))(p, t)


# --- accuracy ---------------------------------------------------------------------------------
def accuracy(y, t):
    """Fraction of rows whose arg-max ``y`` equals the label ``t`` (no gradient).

    Args:
        y (Variable or ndarray): ``(N, C)`` scores.
        t (ndarray or Variable): ``(N,)`` integer labels.
    Returns:
        Variable: 0-d, not part of any graph.

    >>> float(accuracy(np.array([[0.1, 0.9], [0.8, 0.2]]), np.array([1, 1])).data)
    0.5
    """
    y, t = _helpers.as_data(y, "F.accuracy", "y"), _helpers.as_data(t, "F.accuracy", "t")
    xp = backend.get_array_module(y)
    y, t = xp.asarray(y), xp.asarray(t)
    if y.ndim < 2 or int(np.prod(y.shape[:1] + y.shape[2:])) != t.size:  # one label a row
        raise ValueError("F.accuracy: y must be scores (N, C) and t the N labels"
                         + _helpers.describe_all(y=y, t=t))
    try:
        pred = y.argmax(axis=1).reshape(t.shape)
    except ValueError as e:  # no classes to choose from
        raise errors.op_error(e, {"y": y, "t": t}) from e
    dtype = y.dtype if y.dtype.kind == "f" else np.float64
    acc = (pred == t).mean(dtype=dtype)
    return Variable(backend.as_array(acc, backend.get_array_module(y)))
