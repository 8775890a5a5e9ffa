"""DeZero's ``*_simple`` compositions, kept as readable oracles for the fused ops.

Each is built from other F ops only, so its gradient (of any order) comes from theirs; the
tests compare every fused op with its composition here. They are slower, and some are
less stable (``softmax_simple`` overflows for large logits): use the fused ops in models.
"""
from __future__ import annotations

import numpy as np

from mibun import backend
from mibun.core import as_operand
from mibun.functions import _helpers
from mibun.functions.activation import softmax
from mibun.functions.array import concat
from mibun.functions.conv import _check_weight, im2col
from mibun.functions.indexing import get_item
from mibun.functions.linalg import linear, matmul
from mibun.functions.loss import _check_labels, _float_targets, _same_float
from mibun.functions.math import exp, log
from mibun.functions.pooling import _lowest, _pool_args
from mibun.functions.reduction import max as fmax
from mibun.functions.reduction import mean, sum
from mibun.functions.select import clip

__all__ = [
    "binary_cross_entropy_simple",
    "conv2d_simple",
    "linear_simple",
    "mean_squared_error_simple",
    "pooling_simple",
    "sigmoid_simple",
    "softmax_cross_entropy_simple",
    "softmax_simple",
]


# --- activations ------------------------------------------------------------------------------
def softmax_simple(x, axis=1):
    """Softmax ``exp(x) / sum(exp(x))`` composed from ops (DeZero's; an oracle).

    It overflows for large logits; :func:`mibun.functions.softmax` does not.

    Args:
        x (Variable or ndarray): float, any shape.
        axis (int or tuple of int): the axes each distribution runs along.
    Returns:
        Variable: same shape and dtype as ``x``, summing to 1 along ``axis``.

    >>> softmax_simple(np.array([[0.0, np.log(3.0)]]))
    variable([[0.25 0.75]])
    """
    x = as_operand(x)
    y = exp(x)
    return y / sum(y, axis=axis, keepdims=True)


def sigmoid_simple(x):
    """Logistic sigmoid ``1 / (1 + exp(-x))`` composed from ops (DeZero's; an oracle).

    It overflows for very negative ``x``; :func:`mibun.functions.sigmoid` does not.

    Args:
        x (Variable or ndarray): float, any shape.
    Returns:
        Variable: same shape and dtype as ``x``, in ``(0, 1)``.

    >>> sigmoid_simple(np.array([0.0, np.log(3.0)]))
    variable([0.5  0.75])
    """
    x = as_operand(x)
    return 1 / (1 + exp(-x))


# --- linear, convolution, pooling -------------------------------------------------------------
def linear_simple(x, W, b=None):
    """``matmul(x, W) + b`` composed from two ops (DeZero's; an oracle for ``linear``).

    The matmul result is not needed by ``+``'s backward, so its data is freed at once.

    Args:
        x (Variable or ndarray): ``(N, I)`` float.
        W (Variable or ndarray): ``(I, O)``.
        b (Variable, ndarray or None): ``(O,)`` bias, or None for none.
    Returns:
        Variable: ``(N, O)``, dtype of ``x``.

    >>> linear_simple(np.ones((2, 3)), np.ones((3, 4)), np.arange(4.0))
    variable([[3. 4. 5. 6.]
              [3. 4. 5. 6.]])
    """
    t = matmul(x, W)
    if b is None:
        return t
    y = t + b
    t.data = None  # free the (N, O) temporary: Add's backward does not read it
    return y


def conv2d_simple(x, W, b=None, stride=1, pad=0):
    """``conv2d`` composed from ``im2col``, ``linear`` and a transpose (DeZero's; an oracle).

    Args:
        x (Variable or ndarray): ``(N, C, H, W)`` float.
        W (Variable or ndarray): ``(OC, C, KH, KW)`` weight.
        b (Variable, ndarray or None): ``(OC,)`` bias, or None for none.
        stride (int or (int, int)): >= 1.
        pad (int or (int, int)): zero padding, >= 0.
    Returns:
        Variable: ``(N, OC, OH, OW)`` as :func:`mibun.functions.conv2d`, dtype of ``x``.

    >>> conv2d_simple(np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2))).shape
    (1, 1, 2, 2)
    """
    op = "F.conv2d_simple"
    xd = _helpers.check_image(op, x)
    stride = _helpers.pair(stride, "stride", op, 1)
    pad = _helpers.pair(pad, "pad", op, 0)
    Wd = _check_weight(op, xd, W, b, 1)
    N, _, H, Wx = xd.shape
    OC, _, KH, KW = Wd.shape
    win = _helpers.Window((KH, KW), stride, pad)
    win.check_fits(op, xd, Wd)
    OH, OW = win.out_hw(H, Wx)
    col = im2col(x, (KH, KW), stride, pad, to_matrix=True)  # (N*OH*OW, C*KH*KW)
    Wm = as_operand(W).reshape(OC, -1).transpose()
    t = linear(col, Wm, b)
    return t.reshape(N, OH, OW, OC).transpose(0, 3, 1, 2)


def pooling_simple(x, kernel_size, stride=1, pad=0):
    """Max pooling composed from ``im2col`` and ``F.max`` (DeZero's; an oracle).

    Pads with ``-inf`` like :func:`mibun.functions.pooling`. Its gradient splits ties evenly
    (``F.max``'s rule), so it matches ``pooling`` only on inputs without ties.

    Args:
        x (Variable or ndarray): ``(N, C, H, W)`` float.
        kernel_size (int or (int, int)): window ``(KH, KW)``.
        stride (int or (int, int)): >= 1.
        pad (int or (int, int)): padding with ``-inf``, >= 0.
    Returns:
        Variable: ``(N, C, OH, OW)``, dtype of ``x``.

    >>> pooling_simple(np.arange(16.0).reshape(1, 1, 4, 4), 2, stride=2).data
    array([[[[ 5.,  7.],
             [13., 15.]]]])
    """
    kernel_size, stride, pad = _pool_args("F.pooling_simple", x, kernel_size, stride,
                                          pad, True)
    x = as_operand(x)
    N, C, H, W = x.shape
    ph, pw = pad
    xp = backend.get_array_module(x)
    lowest = _lowest(x.dtype)
    if ph:
        wall = xp.full((N, C, ph, W), lowest, dtype=x.dtype)
        x = concat([wall, x, wall], axis=2)
    if pw:
        wall = xp.full((N, C, H + 2 * ph, pw), lowest, dtype=x.dtype)
        x = concat([wall, x, wall], axis=3)
    KH, KW = kernel_size
    OH, OW = _helpers.Window(kernel_size, stride, pad).out_hw(H, W)
    col = im2col(x, kernel_size, stride, 0, to_matrix=True).reshape(-1, KH * KW)
    y = fmax(col, axis=1)
    return y.reshape(N, OH, OW, C).transpose(0, 3, 1, 2)


# --- losses -----------------------------------------------------------------------------------
def mean_squared_error_simple(x0, x1):
    """Mean squared error ``mean((x0 - x1)**2)`` composed from ops (an oracle).

    Args:
        x0 (Variable or ndarray): float, any shape.
        x1 (Variable or ndarray): the same shape (or squeezes to it, as in
            :func:`mibun.functions.mean_squared_error`).
    Returns:
        Variable: 0-d, the float dtype of the inputs.

    >>> mean_squared_error_simple(np.array([1.0, 2.0]), np.array([0.0, 4.0]))
    variable(2.5)
    """
    x0, x1 = _same_float(x0, x1)
    diff = x0 - x1
    return mean(diff * diff)


def softmax_cross_entropy_simple(x, t):
    """Cross-entropy ``-mean(log(clip(softmax(x), 1e-15, 1))[i, t[i]])`` (DeZero's; an oracle).

    As :func:`mibun.functions.softmax_cross_entropy`, but the clip makes the loss at most
    ``-log(1e-15)`` per row and its gradient 0 there.

    Args:
        x (Variable or ndarray): ``(N, C)`` float logits.
        t (ndarray or Variable): ``(N,)`` integer class ids in ``[0, C)``; no gradient.
    Returns:
        Variable: 0-d mean loss, dtype of ``x``.

    >>> round(float(softmax_cross_entropy_simple(np.zeros((2, 4)), np.array([0, 3])).data), 6)
    1.386294
    """
    x = as_operand(x)
    t = _check_labels(x, t, "F.softmax_cross_entropy_simple")
    N = x.shape[0]
    p = clip(softmax(x), 1e-15, 1.0)  # to avoid log(0)
    xp = backend.get_array_module(x)
    log_p = get_item(log(p), (xp.arange(N), t))
    return -sum(log_p) * (1.0 / N)


def binary_cross_entropy_simple(p, t):
    """Binary cross-entropy with each log clamped at -100, composed from ops (an oracle).

    ``-sum(t max(log p, -100) + (1-t) max(log(1-p), -100)) / N``; its gradient is nan at
    p = 0 or 1, where the clamp's zero slope meets log's infinite one
    (:func:`mibun.functions.binary_cross_entropy` is finite there).

    Args:
        p (Variable or ndarray): probabilities in ``[0, 1]``, ``(N, ...)`` float.
        t (ndarray or Variable): targets in ``[0, 1]``, the shape of ``p``.
    Returns:
        Variable: 0-d, the sum divided by ``N = len(p)``, dtype of ``p``.

    >>> round(float(binary_cross_entropy_simple(np.array([0.5, 0.5]), np.array([1, 0])).data), 6)
    0.693147
    """
    p = as_operand(p)
    t = _float_targets(p, t, "F.binary_cross_entropy_simple")
    N = max(len(p) if p.ndim else 1, 1)
    with np.errstate(divide="ignore"):  # log(0) = -inf is clamped just below
        log_p = clip(log(p), -100.0, None)
        log_q = clip(log(1 - p), -100.0, None)
    return -sum(t * log_p + (1 - t) * log_q) * (1.0 / N)
