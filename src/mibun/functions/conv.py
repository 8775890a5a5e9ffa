"""Convolution family: im2col / col2im, conv2d, deconv2d (pooling is pooling.py).

Everything is vectorised over the batch and the pixels:

* ``im2col`` is one strided view of the (padded) input, copied once into the layout
  ``(N, C, KH, KW, OH, OW)``. Then a convolution is a single ``matmul`` of the weight
  matrix ``(OC, C*KH*KW)`` with ``(N, C*KH*KW, OH*OW)``, whose result is already in the
  ``(N, OC, OH, OW)`` layout (no transpose copy, unlike DeZero's ``(N*OH*OW, C*KH*KW)``).
* ``col2im`` loops only over the KH x KW kernel offsets, each step a strided slice of the
  whole batch.

Every op here is linear in each input, so each backward is another op of the family
(conv2d <-> deconv2d, im2col <-> col2im, ``Conv2DGradW``), all built from differentiable
Functions: derivatives of every order are exact. The window geometry (kernel, stride and
pad normalised and checked, output sizes) is ``_helpers.Window``, shared with pooling.

Layouts follow DeZero and PyTorch: ``x (N, C, H, W)``; conv weight ``W (OC, C, KH, KW)``;
deconv weight ``W (C, OC, KH, KW)``; bias ``b (OC,)``.
"""
from __future__ import annotations

import numpy as np  # noqa: F401  (the doctests use np)

from mibun import backend
from mibun.core import Function
from mibun.functions import _helpers
from mibun.functions._helpers import pad_hw, windows
from mibun.functions.reduction import sum as fsum

__all__ = [
    "Col2im",
    "Conv2DGradW",
    "Conv2d",
    "Deconv2d",
    "Im2col",
    "col2im",
    "conv2d",
    "deconv2d",
    "im2col",
]


# =============================================================================
# Argument checks
# =============================================================================
def _check_weight(op, x, W, b, c_axis):
    """x and W are ndarrays; W must be 4-D float with W.shape[c_axis] == C."""
    W = _helpers.as_data(W, op, "W")

    def where():  # formatted only for an error (dtype names are slow to format)
        return _helpers.describe_all(x=x, W=W)

    if W.ndim != 4:
        layout = "(OC, C, KH, KW)" if c_axis == 1 else "(C, OC, KH, KW)"
        raise ValueError(f"{op}: W must be 4-D {layout}, got {W.ndim}-D" + where())
    if W.dtype.kind != "f":
        raise TypeError(f"{op}: W must be a floating-point array, got dtype={W.dtype}"
                        + where())
    if W.shape[c_axis] != x.shape[1]:
        raise ValueError(f"{op}: channel mismatch: x.shape[1]={x.shape[1]}, "
                         f"W.shape[{c_axis}]={W.shape[c_axis]}" + where())
    if b is not None:
        b = _helpers.as_data(b, op, "b")
        oc = W.shape[1 - c_axis]
        if b.shape != (oc,):
            raise ValueError(f"{op}: b must have shape ({oc},), got {tuple(b.shape)}"
                             + where() + _helpers.describe_all(b=b))
    return W


# =============================================================================
# Array-level kernels (ndarrays in and out; shared by the Functions below)
# =============================================================================
def _im2col_array(x, kh, kw, sy, sx, ph, pw):
    """Patches of ``x``, contiguous, ``(N, C, KH, KW, OH, OW)``: one strided copy."""
    xp = backend.get_array_module(x)
    return xp.ascontiguousarray(windows(pad_hw(x, ph, pw), kh, kw, sy, sx))


def _col2im_array(col, x_shape, sy, sx, ph, pw):
    """Adjoint of ``_im2col_array``: add each patch back where it came from."""
    xp = backend.get_array_module(col)
    N, C, KH, KW, OH, OW = col.shape
    H, W = x_shape[2:]
    img = xp.zeros((N, C, H + 2 * ph, W + 2 * pw), dtype=col.dtype)
    # One strided slice of the whole batch per kernel offset (patches overlap when the
    # stride is smaller than the kernel, so they must be accumulated).
    for j in range(KH):
        j_end = j + sy * (OH - 1) + 1
        for i in range(KW):
            img[:, :, j:j_end:sy, i:i + sx * (OW - 1) + 1:sx] += col[:, :, j, i]
    if ph == 0 and pw == 0:
        return img
    return img[:, :, ph:ph + H, pw:pw + W]


def _conv_array(x, W, sy, sx, ph, pw):
    N = x.shape[0]
    OC, C, KH, KW = W.shape
    col = _im2col_array(x, KH, KW, sy, sx, ph, pw)
    OH, OW = col.shape[4:]
    xp = backend.get_array_module(x)
    # (OC, C*KH*KW) @ (N, C*KH*KW, OH*OW) -> (N, OC, OH*OW): already NCHW
    y = xp.matmul(W.reshape(OC, -1), col.reshape(N, C * KH * KW, OH * OW))
    return y.reshape(N, OC, OH, OW)


def _deconv_array(x, W, sy, sx, ph, pw, out_hw):
    N, C, H, Wd = x.shape
    _, OC, KH, KW = W.shape
    xp = backend.get_array_module(x)
    # (OC*KH*KW, C) @ (N, C, H*W) -> patches (N, OC, KH, KW, H, W), scattered by col2im
    col = xp.matmul(W.reshape(C, -1).T, x.reshape(N, C, H * Wd))
    col = col.reshape(N, OC, KH, KW, H, Wd)
    return _col2im_array(col, (N, OC) + tuple(out_hw), sy, sx, ph, pw)


def _conv_grad_w_array(x, gy, kh, kw, sy, sx, ph, pw):
    """``gW[o, c, j, i] = sum_{n, p} gy[n, o, p] * col(x)[n, c, j, i, p]``.

    The patches are recomputed rather than kept from the forward: keeping them costs
    KH*KW copies of x per layer, and in benchmarks/conv.py it was 5% faster or 10% slower
    depending on the allocator's state (a live buffer is a fresh allocation each step).
    """
    xp = backend.get_array_module(x)
    N, C = x.shape[:2]
    OC, OH, OW = gy.shape[1:]
    K, L = C * kh * kw, OH * OW
    gy = gy.reshape(N, OC, L)
    if OC <= L:
        # N small products, summed: the (N, OC, K) temporary is smaller than the patches.
        col = _im2col_array(x, kh, kw, sy, sx, ph, pw).reshape(N, K, L)
        gW = xp.matmul(gy, col.transpose(0, 2, 1)).sum(axis=0)
    else:
        # Many output channels on a small image: one GEMM over the N*L axis, with the
        # patches built directly in the (C, KH, KW, N, OH, OW) layout it needs.
        win = windows(pad_hw(x, ph, pw), kh, kw, sy, sx).transpose(1, 2, 3, 0, 4, 5)
        col = xp.ascontiguousarray(win).reshape(K, N * L)
        gW = xp.matmul(xp.ascontiguousarray(gy.transpose(1, 0, 2)).reshape(OC, N * L), col.T)
    return gW.reshape(OC, C, kh, kw)


def _total(terms):
    """The sum of the tangents that are not None."""
    terms = [t for t in terms if t is not None]
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    return total


def _sum_bias(gy):
    """The bias gradient: ``gy`` summed over every axis but the channels."""
    return fsum(fsum(gy, axis=0), axis=(1, 2))  # the batch axis first: faster than (0, 2, 3)


# =============================================================================
# conv2d / deconv2d
# =============================================================================
class Conv2d(Function):
    retain_inputs = (0, 1)  # b's data is not needed, only its shape

    def __init__(self, stride=1, pad=0):
        self.stride = _helpers.pair(stride)
        self.pad = _helpers.pair(pad)

    def forward(self, x, W, b=None):
        y = _conv_array(x, W, *self.stride, *self.pad)
        if b is not None:
            y += b.reshape(1, -1, 1, 1)
        return y

    def backward(self, gy):
        x, W = self.inputs[0], self.inputs[1]
        gx = gW = None
        if self.needs_grad(0):  # skipped for a raw data batch
            gx = Deconv2d(self.stride, self.pad, x.shape[2:])(gy, W)
        if self.needs_grad(1):
            gW = Conv2DGradW(W.shape[2:], self.stride, self.pad)(x, gy)
        if len(self.inputs) == 2:
            return gx, gW
        return gx, gW, _sum_bias(gy) if self.needs_grad(2) else None

    def jvp(self, tx, tW, tb=None):
        # bilinear in (x, W), plus b
        x, W = self.inputs[0], self.inputs[1]
        return _total([None if tx is None else Conv2d(self.stride, self.pad)(tx, W),
                       None if tW is None else Conv2d(self.stride, self.pad)(x, tW),
                       None if tb is None else tb.reshape(1, -1, 1, 1)])


class Deconv2d(Function):
    retain_inputs = (0, 1)

    def __init__(self, stride=1, pad=0, outsize=None):
        self.stride = _helpers.pair(stride)
        self.pad = _helpers.pair(pad)
        self.outsize = outsize

    def forward(self, x, W, b=None):
        out_hw = self.outsize
        if out_hw is None:
            out_hw = _helpers.Window(W.shape[2:], self.stride, self.pad).deconv_hw(*x.shape[2:])
        self.out_hw = out_hw  # for jvp
        y = _deconv_array(x, W, *self.stride, *self.pad, out_hw)
        if b is not None:
            y += b.reshape(1, -1, 1, 1)
        return y

    def backward(self, gy):
        x, W = self.inputs[0], self.inputs[1]
        gx = gW = None
        if self.needs_grad(0):
            gx = Conv2d(self.stride, self.pad)(gy, W)
        if self.needs_grad(1):
            # deconv is conv's x-gradient, so its W-gradient is Conv2DGradW with the roles
            # of input and output gradient swapped: (C, OC, KH, KW).
            gW = Conv2DGradW(W.shape[2:], self.stride, self.pad)(gy, x)
        if len(self.inputs) == 2:
            return gx, gW
        return gx, gW, _sum_bias(gy) if self.needs_grad(2) else None

    def jvp(self, tx, tW, tb=None):
        x, W = self.inputs[0], self.inputs[1]
        out_hw = self.out_hw
        return _total([None if tx is None else Deconv2d(self.stride, self.pad, out_hw)(tx, W),
                       None if tW is None else Deconv2d(self.stride, self.pad, out_hw)(x, tW),
                       None if tb is None else tb.reshape(1, -1, 1, 1)])


class Conv2DGradW(Function):
    """``gW`` of ``conv2d(x, W)`` for the output gradient ``gy``: bilinear in (x, gy)."""

    retain_inputs = "all"

    def __init__(self, kernel_size, stride, pad):
        self.kernel_size = tuple(kernel_size)
        self.stride = stride
        self.pad = pad

    def forward(self, x, gy):
        self.x_hw = x.shape[2:]
        return _conv_grad_w_array(x, gy, *self.kernel_size, *self.stride, *self.pad)

    def backward(self, ggW):
        x, gy = self.inputs
        gx = ggy = None
        if self.needs_grad(0):
            gx = Deconv2d(self.stride, self.pad, self.x_hw)(gy, ggW)
        if self.needs_grad(1):
            ggy = Conv2d(self.stride, self.pad)(x, ggW)
        return gx, ggy

    def jvp(self, tx, tgy):
        x, gy = self.inputs
        op = (self.kernel_size, self.stride, self.pad)
        return _total([None if tx is None else Conv2DGradW(*op)(tx, gy),
                       None if tgy is None else Conv2DGradW(*op)(x, tgy)])


def conv2d(x, W, b=None, stride=1, pad=0):
    """2-D convolution (cross-correlation, as in every deep-learning library).

    ``y[n, o, i, j] = b[o] + sum_{c, u, v} W[o, c, u, v] * xpad[n, c, s_h i + u, s_w j + v]``

    Args:
        x (Variable or ndarray): ``(N, C, H, W)`` float. A raw ndarray is a constant: its
            gradient is not computed (the data batch of the first layer).
        W (Variable or ndarray): ``(OC, C, KH, KW)``, same float dtype as ``x``.
        b (Variable or ndarray or None): ``(OC,)``.
        stride (int or (int, int)): step ``(s_h, s_w)``, >= 1.
        pad (int or (int, int)): zero padding ``(p_h, p_w)`` on each side, >= 0.
    Returns:
        Variable: ``(N, OC, OH, OW)`` with ``OH = (H + 2 p_h - KH) // s_h + 1``
        (``utils.get_conv_outsize``), dtype of ``x``.

    >>> x = np.ones((1, 1, 4, 4), dtype=np.float32)
    >>> y = conv2d(x, np.ones((2, 1, 3, 3), dtype=np.float32), pad=1)
    >>> y.shape, y.dtype
    ((1, 2, 4, 4), dtype('float32'))
    >>> y.data[0, 0]
    array([[4., 6., 6., 4.],
           [6., 9., 9., 6.],
           [6., 9., 9., 6.],
           [4., 6., 6., 4.]], dtype=float32)
    """
    op = "F.conv2d"
    xd = _helpers.check_image(op, x)
    stride = _helpers.pair(stride, "stride", op, 1)
    pad = _helpers.pair(pad, "pad", op, 0)
    Wd = _check_weight(op, xd, W, b, 1)
    _helpers.Window(Wd.shape[2:], stride, pad).check_fits(op, xd, Wd)
    if b is None:
        return Conv2d(stride, pad)(x, W)
    return Conv2d(stride, pad)(x, W, b)


def deconv2d(x, W, b=None, stride=1, pad=0, outsize=None):
    """2-D transposed convolution: the x-gradient of ``conv2d``, used as an upsampler.

    Args:
        x (Variable or ndarray): ``(N, C, H, W)`` float.
        W (Variable or ndarray): ``(C, OC, KH, KW)`` (PyTorch's ``conv_transpose2d`` layout).
        b (Variable or ndarray or None): ``(OC,)``.
        stride (int or (int, int)): stride of the convolution it transposes.
        pad (int or (int, int)): padding of the convolution it transposes.
        outsize ((int, int) or None): ``(OH, OW)``; default
            ``OH = s_h (H - 1) + KH - 2 p_h`` (``utils.get_deconv_outsize``). A larger size (up to
            ``s_h - 1`` more, PyTorch's ``output_padding``) picks another conv input size
            that gives ``H``.
    Returns:
        Variable: ``(N, OC, OH, OW)``, dtype of ``x``.

    >>> y = deconv2d(np.ones((1, 1, 2, 2)), np.ones((1, 3, 3, 3)), stride=2, pad=1)
    >>> y.shape
    (1, 3, 3, 3)
    """
    op = "F.deconv2d"
    xd = _helpers.check_image(op, x)
    stride = _helpers.pair(stride, "stride", op, 1)
    pad = _helpers.pair(pad, "pad", op, 0)
    Wd = _check_weight(op, xd, W, b, 0)
    KH, KW = Wd.shape[2:]
    win = _helpers.Window((KH, KW), stride, pad)
    if outsize is None:
        outsize = win.deconv_hw(*xd.shape[2:])
    else:
        outsize = _helpers.pair(outsize, "outsize", op, 1)
    if min(outsize) < 1:
        raise ValueError(f"{op}: the output size {outsize} is empty (too much padding "
                         f"pad={pad} for kernel ({KH}, {KW}))"
                         + _helpers.describe_all(x=xd, W=Wd))
    back = win.out_hw(*outsize)
    if back != tuple(xd.shape[2:]) or outsize[0] + 2 * pad[0] < KH or (
            outsize[1] + 2 * pad[1] < KW):
        raise ValueError(f"{op}: outsize {outsize} does not match the input: a conv with "
                         f"kernel ({KH}, {KW}), stride {stride}, pad {pad} maps it to "
                         f"{back}, not {tuple(xd.shape[2:])}"
                         + _helpers.describe_all(x=xd, W=Wd))
    if b is None:
        return Deconv2d(stride, pad, outsize)(x, W)
    return Deconv2d(stride, pad, outsize)(x, W, b)


# =============================================================================
# im2col / col2im
# =============================================================================
class Im2col(Function):
    retain_inputs = ()

    def __init__(self, kernel_size, stride, pad, to_matrix):
        self.kernel_size = _helpers.pair(kernel_size)
        self.stride = _helpers.pair(stride)
        self.pad = _helpers.pair(pad)
        self.to_matrix = to_matrix

    def forward(self, x):
        self.input_shape = x.shape
        col = _im2col_array(x, *self.kernel_size, *self.stride, *self.pad)
        if self.to_matrix:
            N, C, KH, KW, OH, OW = col.shape
            col = col.transpose(0, 4, 5, 1, 2, 3).reshape(N * OH * OW, C * KH * KW)
        return col

    def backward(self, gy):
        return col2im(gy, self.input_shape, self.kernel_size, self.stride, self.pad,
                      self.to_matrix)

    def jvp(self, tx):
        return Im2col(self.kernel_size, self.stride, self.pad, self.to_matrix)(tx)


class Col2im(Function):
    retain_inputs = ()

    def __init__(self, input_shape, kernel_size, stride, pad, to_matrix):
        self.input_shape = tuple(input_shape)
        self.kernel_size = _helpers.pair(kernel_size)
        self.stride = _helpers.pair(stride)
        self.pad = _helpers.pair(pad)
        self.to_matrix = to_matrix

    def forward(self, col):
        N, C, H, W = self.input_shape
        if self.to_matrix:
            OH, OW = _helpers.Window(self.kernel_size, self.stride, self.pad).out_hw(H, W)
            col = col.reshape(N, OH, OW, C, *self.kernel_size).transpose(0, 3, 4, 5, 1, 2)
        return _col2im_array(col, self.input_shape, *self.stride, *self.pad)

    def backward(self, gx):
        return im2col(gx, self.kernel_size, self.stride, self.pad, self.to_matrix)

    def jvp(self, tcol):
        return Col2im(self.input_shape, self.kernel_size, self.stride, self.pad,
                      self.to_matrix)(tcol)


def _col_shape(input_shape, kernel_size, stride, pad, to_matrix):
    N, C, H, W = input_shape
    KH, KW = kernel_size
    OH, OW = _helpers.Window(kernel_size, stride, pad).out_hw(H, W)
    if to_matrix:
        return (N * OH * OW, C * KH * KW)
    return (N, C, KH, KW, OH, OW)


def im2col(x, kernel_size, stride=1, pad=0, to_matrix=True):
    """Extract the convolution patches of ``x`` (DeZero's layout and signature).

    Args:
        x (Variable or ndarray): ``(N, C, H, W)`` float.
        kernel_size (int or (int, int)): ``(KH, KW)``.
        stride (int or (int, int)): >= 1.
        pad (int or (int, int)): zero padding, >= 0.
        to_matrix (bool): return the matrix ``(N*OH*OW, C*KH*KW)`` (rows are output
            pixels) instead of the array ``(N, C, KH, KW, OH, OW)``.
    Returns:
        Variable: the patches; the gradient is summed back by :func:`col2im`.

    >>> im2col(np.arange(9.0).reshape(1, 1, 3, 3), 2).data
    array([[0., 1., 3., 4.],
           [1., 2., 4., 5.],
           [3., 4., 6., 7.],
           [4., 5., 7., 8.]])
    """
    op = "F.im2col"
    xd = _helpers.check_image(op, x, moves_only=True)
    win = _helpers.window(op, kernel_size, stride, pad)
    win.check_fits(op, xd)
    return Im2col(*win, to_matrix)(x)


def col2im(x, input_shape, kernel_size, stride=1, pad=0, to_matrix=True):
    """Sum patches back into an image: the adjoint (and gradient) of :func:`im2col`.

    Args:
        x (Variable or ndarray): patches, ``(N*OH*OW, C*KH*KW)`` if ``to_matrix`` else
            ``(N, C, KH, KW, OH, OW)``.
        input_shape (tuple): ``(N, C, H, W)`` of the image.
        kernel_size, stride, pad: as in :func:`im2col`.
    Returns:
        Variable: ``(N, C, H, W)``; overlapping patches add up.

    >>> col2im(np.ones((4, 4)), (1, 1, 3, 3), 2).data[0, 0]
    array([[1., 2., 1.],
           [2., 4., 2.],
           [1., 2., 1.]])
    """
    op = "F.col2im"
    win = _helpers.window(op, kernel_size, stride, pad)
    kernel_size, stride, pad = win
    input_shape = _helpers.as_ints(input_shape, op, "input_shape", _helpers.as_data(x, op))
    if len(input_shape) != 4:
        raise ValueError(f"{op}: input_shape must be (N, C, H, W), got {input_shape}")
    xd = _helpers.as_data(x, op)
    win.check_fits(op, xd, hw=input_shape[2:])
    expected = _col_shape(input_shape, kernel_size, stride, pad, to_matrix)
    if tuple(xd.shape) != expected:
        raise ValueError(f"{op}: x must have shape {expected} for input_shape "
                         f"{input_shape}, kernel {kernel_size}, stride {stride}, pad {pad}"
                         + _helpers.describe_all(x=xd))
    if xd.dtype.kind not in "iuf":
        raise TypeError(f"{op}: x must be a real-valued array, got dtype={xd.dtype}")
    return Col2im(input_shape, kernel_size, stride, pad, to_matrix)(x)
