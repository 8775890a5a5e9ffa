"""Pooling family: max pooling (with the winners' indexes), average pooling, their grads.

Each op loops only over the KH x KW kernel offsets, each step a strided slice of the whole
batch (``_helpers.windows``, a view of the padded input). Max pooling is linear in ``x`` once
the winners are fixed, and average pooling is linear: each backward is another op of the
family (pooling <-> ``Pooling2DGrad`` <-> ``Pooling2DWithIndexes``, average pooling <->
``AveragePoolingGrad``), so derivatives of every order are exact. The window geometry
(kernel, stride and pad normalised and checked, output sizes) is ``_helpers.Window``, shared
with the convolutions.

Layout follows DeZero and PyTorch: ``x (N, C, H, W)``.
"""
from __future__ import annotations

import numpy as np

from mibun import backend
from mibun.config import Config
from mibun.core import Function, data_of
from mibun.functions import _helpers
from mibun.functions._helpers import pad_hw, windows

__all__ = [
    "AveragePooling",
    "AveragePoolingGrad",
    "Pooling",
    "Pooling2DGrad",
    "Pooling2DWithIndexes",
    "average_pooling",
    "max_pooling",
    "pooling",
]


def _lowest(dtype):
    """The padding that never wins a max: ``-inf``, or the smallest integer."""
    return -np.inf if dtype.kind in "fc" else np.iinfo(dtype).min


def _index_dtype(n):
    return np.uint8 if n <= 256 else np.int32


class Pooling(Function):
    """Max pooling. Remembers which window entry won (``indexes``) for the backward."""

    retain_inputs = ()

    def __init__(self, kernel_size, stride=1, pad=0):
        self.kernel_size = _helpers.pair(kernel_size)
        self.stride = _helpers.pair(stride)
        self.pad = _helpers.pair(pad)

    def forward(self, x):
        xp = backend.get_array_module(x)
        self.input_shape = x.shape
        KH, KW = self.kernel_size
        # -inf padding: the padding never wins (PyTorch); DeZero padded with 0.
        win = windows(pad_hw(x, *self.pad, value=_lowest(x.dtype)), KH, KW, *self.stride)
        views = [win[:, :, j, i] for j in range(KH) for i in range(KW)]
        y = xp.maximum(views[0], views[1]) if len(views) > 1 else views[0].copy()
        for v in views[2:]:
            xp.maximum(y, v, out=y)
        if not Config.enable_backprop:
            return y  # no graph is recorded: the argmax is never needed
        self._find_winners(x, y, views)
        return y

    def _find_winners(self, x, y=None, views=None):
        """Set ``self.indexes``: which entry of each window gave the maximum ``y``."""
        xp = backend.get_array_module(x)
        if views is None:
            KH, KW = self.kernel_size
            win = windows(pad_hw(x, *self.pad, value=-np.inf), KH, KW, *self.stride)
            views = [win[:, :, j, i] for j in range(KH) for i in range(KW)]
            y = views[0]
            for v in views[1:]:
                y = xp.maximum(y, v)
        # The first maximal entry in row-major window order wins (as torch.max_pool2d).
        # Its index is the number of leading entries that are not maximal: count them with
        # a running "no maximum yet" mask (bool ops and one float compare per offset).
        K = len(views)
        idx = xp.zeros(y.shape, dtype=_index_dtype(K))
        if K > 1:
            running = views[0] != y
            for k in range(1, K):
                idx += running
                if k < K - 1:
                    xp.greater(running, views[k] == y, out=running)  # running &= not max
        self.indexes = idx

    def backward(self, gy):
        return Pooling2DGrad(self)(gy)

    def jvp(self, tx):
        # the tangent of each window's winner (forward skips the winners without a graph)
        if getattr(self, "indexes", None) is None:
            self._find_winners(data_of(self.inputs[0]))
        return Pooling2DWithIndexes(self)(tx)


def _pool_scatter(g, indexes, input_shape, kernel_size, stride, pad, avg=False):
    """Route the pooled gradient ``g (N, C, OH, OW)`` back to the input pixels."""
    xp = backend.get_array_module(g)
    N, C, H, W = input_shape
    KH, KW = kernel_size
    sy, sx = stride
    ph, pw = pad
    OH, OW = g.shape[2:]
    Hp, Wp = H + 2 * ph, W + 2 * pw
    overlap = sy < KH or sx < KW
    if avg:  # before gx takes g's dtype: an integer g becomes float here
        g = g * (1.0 / (KH * KW))  # a Python float keeps float32 float32
    if not overlap and OH * KH == Hp and OW * KW == Wp and sy == KH and sx == KW:
        gx = xp.empty((N, C, Hp, Wp), dtype=g.dtype)  # the windows tile it exactly
    else:
        gx = xp.zeros((N, C, Hp, Wp), dtype=g.dtype)
    k = 0
    for j in range(KH):
        for i in range(KW):
            view = gx[:, :, j:j + sy * (OH - 1) + 1:sy, i:i + sx * (OW - 1) + 1:sx]
            if overlap:
                view += g if avg else g * (indexes == k)
            elif avg:  # disjoint windows: each pixel is written at most once
                view[...] = g
            else:
                xp.multiply(g, indexes == k, out=view)
            k += 1
    if ph == 0 and pw == 0:
        return gx
    return gx[:, :, ph:ph + H, pw:pw + W]


class _SamePooling(Function):
    """A pooling node that takes its geometry (and max-pooling winners) from another."""

    retain_inputs = ()

    def __init__(self, pool):
        self.kernel_size = pool.kernel_size
        self.stride = pool.stride
        self.pad = pool.pad
        self.input_shape = pool.input_shape
        self.indexes = getattr(pool, "indexes", None)


class Pooling2DGrad(_SamePooling):
    """The gradient of max pooling w.r.t. x (linear in ``gy``, the indexes are fixed)."""

    def forward(self, gy):
        return _pool_scatter(gy, self.indexes, self.input_shape, self.kernel_size,
                             self.stride, self.pad)

    def backward(self, ggx):
        return Pooling2DWithIndexes(self)(ggx)

    def jvp(self, tgy):
        return Pooling2DGrad(self)(tgy)


class Pooling2DWithIndexes(_SamePooling):
    """Pick, from each window of ``x``, the entry that won the original max pooling."""

    def forward(self, x):
        KH, KW = self.kernel_size
        win = windows(pad_hw(x, *self.pad), KH, KW, *self.stride)
        idx = self.indexes
        y = None
        k = 0
        for j in range(KH):
            for i in range(KW):
                part = win[:, :, j, i] * (idx == k)
                y = part if y is None else y + part
                k += 1
        return y

    def backward(self, gy):
        return Pooling2DGrad(self)(gy)

    def jvp(self, tx):
        return Pooling2DWithIndexes(self)(tx)


class AveragePooling(Function):
    retain_inputs = ()
    __init__ = Pooling.__init__  # the same window geometry

    def forward(self, x):
        self.input_shape = x.shape
        KH, KW = self.kernel_size
        if x.dtype.kind != "f":
            x = x.astype(np.float64)  # a mean of integers is a float (as np.mean)
        win = windows(pad_hw(x, *self.pad), KH, KW, *self.stride)
        y = win[:, :, 0, 0].copy()
        for j in range(KH):
            for i in range(KW):
                if i or j:
                    y += win[:, :, j, i]
        y *= 1.0 / (KH * KW)
        return y

    def backward(self, gy):
        return AveragePoolingGrad(self)(gy)

    def jvp(self, tx):
        return AveragePooling(self.kernel_size, self.stride, self.pad)(tx)


class AveragePoolingGrad(_SamePooling):
    def forward(self, gy):
        return _pool_scatter(gy, None, self.input_shape, self.kernel_size, self.stride,
                             self.pad, avg=True)

    def backward(self, ggx):
        # average pooling is linear, and this is its adjoint: the adjoint's adjoint
        return AveragePooling(self.kernel_size, self.stride, self.pad)(ggx)

    def jvp(self, tgy):
        return AveragePoolingGrad(self)(tgy)


def _pool_args(op, x, kernel_size, stride, pad, max_pool):
    xd = _helpers.check_image(op, x, moves_only=True)
    win = _helpers.window(op, kernel_size, stride, pad)
    kernel_size, stride, pad = win
    if max_pool and (pad[0] >= kernel_size[0] or pad[1] >= kernel_size[1]):
        raise ValueError(f"{op}: pad {pad} must be smaller than kernel_size {kernel_size} "
                         "(else a window could hold only padding)" + _helpers.describe_all(x=xd))
    win.check_fits(op, xd)
    return win


def pooling(x, kernel_size, stride=1, pad=0):
    """2-D max pooling (DeZero's ``pooling``; note DeZero's default ``stride=1``).

    Padding never wins (it is ``-inf``, as in PyTorch). Ties: the whole gradient goes to
    the *first* maximal entry of the window in row-major order (as
    ``torch.nn.functional.max_pool2d``); ``F.max`` instead splits it between ties.

    Args:
        x (Variable or ndarray): ``(N, C, H, W)`` float.
        kernel_size (int or (int, int)): window ``(KH, KW)``.
        stride (int or (int, int)): >= 1.
        pad (int or (int, int)): >= 0 and smaller than the kernel.
    Returns:
        Variable: ``(N, C, OH, OW)``, ``OH = (H + 2 p_h - KH) // s_h + 1``, dtype of ``x``.

    >>> pooling(np.arange(16.0).reshape(1, 1, 4, 4), 2, stride=2).data
    array([[[[ 5.,  7.],
             [13., 15.]]]])
    """
    kernel_size, stride, pad = _pool_args("F.pooling", x, kernel_size, stride, pad, True)
    return Pooling(kernel_size, stride, pad)(x)


max_pooling = pooling


def average_pooling(x, kernel_size, stride=1, pad=0):
    """2-D average pooling; zero padding counts in the average.

    As PyTorch's default ``count_include_pad=True``, and DeZero.

    Args:
        x (Variable or ndarray): ``(N, C, H, W)`` float.
        kernel_size (int or (int, int)): window ``(KH, KW)``.
        stride (int or (int, int)): >= 1.
        pad (int or (int, int)): zero padding, >= 0.
    Returns:
        Variable: ``(N, C, OH, OW)``, dtype of ``x``.

    >>> average_pooling(np.arange(16.0).reshape(1, 1, 4, 4), 2, stride=2).data
    array([[[[ 2.5,  4.5],
             [10.5, 12.5]]]])
    """
    kernel_size, stride, pad = _pool_args("F.average_pooling", x, kernel_size, stride,
                                          pad, False)
    return AveragePooling(kernel_size, stride, pad)(x)
