"""Convolution family: im2col / col2im, conv2d, deconv2d, max and average pooling.

Everything is vectorised over the batch and the pixels:

* ``im2col`` is one strided view of the (padded) input, copied once into the layout
  ``(N, C, KH, KW, OH, OW)``. Then a convolution is a single ``matmul`` of the weight
  matrix ``(OC, C*KH*KW)`` with ``(N, C*KH*KW, OH*OW)``, whose result is already in the
  ``(N, OC, OH, OW)`` layout (no transpose copy, unlike DeZero's ``(N*OH*OW, C*KH*KW)``).
* ``col2im`` and pooling loop only over the KH x KW kernel offsets, each step a strided
  slice of the whole batch.

Every op here is linear in each input, so each backward is another op of the family
(conv2d <-> deconv2d, im2col <-> col2im, ``Conv2DGradW``, pooling <-> its gradient), all
built from differentiable Functions: derivatives of every order are exact.

Layouts follow DeZero and PyTorch: ``x (N, C, H, W)``; conv weight ``W (OC, C, KH, KW)``;
deconv weight ``W (C, OC, KH, KW)``; bias ``b (OC,)``.
"""
from __future__ import annotations

import numpy as np

from mibun import backend, utils
from mibun.config import Config
from mibun.core import Function, as_operand, data_of

__all__ = [
    "AveragePooling",
    "AveragePoolingGrad",
    "Col2im",
    "Conv2DGradW",
    "Conv2d",
    "Deconv2d",
    "Im2col",
    "Pooling",
    "Pooling2DGrad",
    "Pooling2DWithIndexes",
    "average_pooling",
    "col2im",
    "conv2d",
    "conv2d_simple",
    "deconv2d",
    "get_conv_outsize",
    "get_deconv_outsize",
    "im2col",
    "max_pooling",
    "pooling",
    "pooling_simple",
]

# DeZero's output-size helpers (dezero.functions_conv imports them from dezero.utils)
get_conv_outsize = utils.get_conv_outsize
get_deconv_outsize = utils.get_deconv_outsize


# =============================================================================
# Argument checks
# =============================================================================
def _describe(name, x):
    return "\n" + utils.describe(name, x)


_data = utils.as_data


def _pair(v, name, op, minimum):
    """``v`` (an int or a pair of ints) as a pair, each at least ``minimum``."""
    def is_int(a):
        return isinstance(a, (int, np.integer)) and not isinstance(a, bool)

    if is_int(v):
        p = (int(v), int(v))
    elif isinstance(v, (tuple, list)) and len(v) == 2 and all(is_int(a) for a in v):
        p = (int(v[0]), int(v[1]))
    else:
        raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {v!r}")
    if min(p) < minimum:
        raise ValueError(f"{op}: {name} must be >= {minimum}, got {v!r}")
    return p


def _check_x(op, x, *more, moves_only=False):
    """x as a 4-D ndarray: float for a convolution; any real dtype, as in NumPy, for an op
    that only moves or averages values (``moves_only``: im2col, pooling; DeZero's tests
    feed them int64 images)."""
    x = _data(x, op)
    if x.ndim != 4:
        raise ValueError(f"{op}: x must be 4-D (N, C, H, W), got {x.ndim}-D"
                         + _describe("x", x) + "".join(more))
    if x.dtype.kind not in ("iuf" if moves_only else "f"):
        what = "a real-valued" if moves_only else "a floating-point"
        raise TypeError(f"{op}: x must be {what} array, got dtype={x.dtype}"
                        + _describe("x", x) + "".join(more))
    return x


def _check_window(op, x, kh, kw, ph, pw, W=None):
    H, Wd = x.shape[2:]
    if H + 2 * ph < kh or Wd + 2 * pw < kw:
        raise ValueError(f"{op}: kernel ({kh}, {kw}) is larger than the padded input "
                         f"({H + 2 * ph}, {Wd + 2 * pw}) (pad=({ph}, {pw}))"
                         + _describe("x", x) + ("" if W is None else _describe("W", W)))


def _check_weight(op, x, W, b, c_axis):
    """x and W are ndarrays; W must be 4-D float with W.shape[c_axis] == C."""
    W = _data(W, op, "W")

    def where():  # formatted only for an error (dtype names are slow to format)
        return _describe("x", x) + _describe("W", W)

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
        b = _data(b, op, "b")
        oc = W.shape[1 - c_axis]
        if b.shape != (oc,):
            raise ValueError(f"{op}: b must have shape ({oc},), got {tuple(b.shape)}"
                             + where() + _describe("b", b))
    return W


# =============================================================================
# Array-level kernels (ndarrays in and out; shared by the Functions below)
# =============================================================================
def _pad(x, ph, pw, value=0.0):
    """Pad the two spatial axes with a constant (a fresh array; ``x`` itself if no pad)."""
    if ph == 0 and pw == 0:
        return x
    xp = backend.get_array_module(x)
    N, C, H, W = x.shape
    y = xp.full((N, C, H + 2 * ph, W + 2 * pw), value, dtype=x.dtype)
    y[:, :, ph:ph + H, pw:pw + W] = x
    return y


def _lowest(dtype):
    """The padding that never wins a max: ``-inf``, or the smallest integer."""
    return -np.inf if dtype.kind in "fc" else np.iinfo(dtype).min


def _windows(xpad, kh, kw, sy, sx):
    """A strided view ``(N, C, KH, KW, OH, OW)`` of a padded input: no copy."""
    xp = backend.get_array_module(xpad)
    N, C, H, W = xpad.shape
    oh = (H - kh) // sy + 1
    ow = (W - kw) // sx + 1
    sn, sc, sh, sw = xpad.strides
    return xp.lib.stride_tricks.as_strided(
        xpad, (N, C, kh, kw, oh, ow), (sn, sc, sh, sw, sh * sy, sw * sx))


def _im2col_array(x, kh, kw, sy, sx, ph, pw):
    """Patches of ``x``, contiguous, ``(N, C, KH, KW, OH, OW)``: one strided copy."""
    xp = backend.get_array_module(x)
    return xp.ascontiguousarray(_windows(_pad(x, ph, pw), kh, kw, sy, sx))


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
        win = _windows(_pad(x, ph, pw), kh, kw, sy, sx).transpose(1, 2, 3, 0, 4, 5)
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
    from mibun.functions.reduction import sum as fsum
    return fsum(fsum(gy, axis=0), axis=(1, 2))  # the batch axis first: faster than (0, 2, 3)


# =============================================================================
# conv2d / deconv2d
# =============================================================================
class Conv2d(Function):
    retain_inputs = (0, 1)  # b's data is not needed, only its shape

    def __init__(self, stride=1, pad=0):
        self.stride = utils.pair(stride)
        self.pad = utils.pair(pad)

    def forward(self, x, W, b=None):
        sy, sx = self.stride
        ph, pw = self.pad
        y = _conv_array(x, W, sy, sx, ph, pw)
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
        self.stride = utils.pair(stride)
        self.pad = utils.pair(pad)
        self.outsize = outsize

    def forward(self, x, W, b=None):
        sy, sx = self.stride
        ph, pw = self.pad
        KH, KW = W.shape[2:]
        out_hw = self.outsize
        if out_hw is None:
            out_hw = (get_deconv_outsize(x.shape[2], KH, sy, ph),
                      get_deconv_outsize(x.shape[3], KW, sx, pw))
        self.out_hw = out_hw  # for jvp
        y = _deconv_array(x, W, sy, sx, ph, pw, out_hw)
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
        (``get_conv_outsize``), dtype of ``x``.

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
    xd = _check_x(op, x)
    stride = _pair(stride, "stride", op, 1)
    pad = _pair(pad, "pad", op, 0)
    Wd = _check_weight(op, xd, W, b, 1)
    _check_window(op, xd, *Wd.shape[2:], *pad, Wd)
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
            ``OH = s_h (H - 1) + KH - 2 p_h`` (``get_deconv_outsize``). A larger size (up to
            ``s_h - 1`` more, PyTorch's ``output_padding``) picks another conv input size
            that gives ``H``.
    Returns:
        Variable: ``(N, OC, OH, OW)``, dtype of ``x``.

    >>> y = deconv2d(np.ones((1, 1, 2, 2)), np.ones((1, 3, 3, 3)), stride=2, pad=1)
    >>> y.shape
    (1, 3, 3, 3)
    """
    op = "F.deconv2d"
    xd = _check_x(op, x)
    stride = _pair(stride, "stride", op, 1)
    pad = _pair(pad, "pad", op, 0)
    Wd = _check_weight(op, xd, W, b, 0)
    KH, KW = Wd.shape[2:]
    if outsize is None:
        outsize = (get_deconv_outsize(xd.shape[2], KH, stride[0], pad[0]),
                   get_deconv_outsize(xd.shape[3], KW, stride[1], pad[1]))
    else:
        outsize = _pair(outsize, "outsize", op, 1)
    if min(outsize) < 1:
        raise ValueError(f"{op}: the output size {outsize} is empty (too much padding "
                         f"pad={pad} for kernel ({KH}, {KW}))"
                         + _describe("x", xd) + _describe("W", Wd))
    back = (get_conv_outsize(outsize[0], KH, stride[0], pad[0]),
            get_conv_outsize(outsize[1], KW, stride[1], pad[1]))
    if back != tuple(xd.shape[2:]) or outsize[0] + 2 * pad[0] < KH or (
            outsize[1] + 2 * pad[1] < KW):
        raise ValueError(f"{op}: outsize {outsize} does not match the input: a conv with "
                         f"kernel ({KH}, {KW}), stride {stride}, pad {pad} maps it to "
                         f"{back}, not {tuple(xd.shape[2:])}"
                         + _describe("x", xd) + _describe("W", Wd))
    if b is None:
        return Deconv2d(stride, pad, outsize)(x, W)
    return Deconv2d(stride, pad, outsize)(x, W, b)


def conv2d_simple(x, W, b=None, stride=1, pad=0):
    """``conv2d`` composed from ``im2col``, ``linear`` and a transpose (DeZero's version).

    Same arguments and result as :func:`conv2d`; slower, kept as a readable oracle.

    >>> conv2d_simple(np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2))).shape
    (1, 1, 2, 2)
    """
    from mibun.functions.linalg import linear
    op = "F.conv2d_simple"
    xd = _check_x(op, x)
    stride = _pair(stride, "stride", op, 1)
    pad = _pair(pad, "pad", op, 0)
    Wd = _check_weight(op, xd, W, b, 1)
    N, _, H, Wx = xd.shape
    OC, _, KH, KW = Wd.shape
    _check_window(op, xd, KH, KW, *pad, Wd)
    OH = get_conv_outsize(H, KH, stride[0], pad[0])
    OW = get_conv_outsize(Wx, KW, stride[1], pad[1])
    col = im2col(x, (KH, KW), stride, pad, to_matrix=True)  # (N*OH*OW, C*KH*KW)
    Wm = as_operand(W).reshape(OC, -1).transpose()
    t = linear(col, Wm, b)
    return t.reshape(N, OH, OW, OC).transpose(0, 3, 1, 2)


# =============================================================================
# im2col / col2im
# =============================================================================
class Im2col(Function):
    retain_inputs = ()

    def __init__(self, kernel_size, stride, pad, to_matrix):
        self.kernel_size = utils.pair(kernel_size)
        self.stride = utils.pair(stride)
        self.pad = utils.pair(pad)
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
        self.kernel_size = utils.pair(kernel_size)
        self.stride = utils.pair(stride)
        self.pad = utils.pair(pad)
        self.to_matrix = to_matrix

    def forward(self, col):
        N, C, H, W = self.input_shape
        KH, KW = self.kernel_size
        sy, sx = self.stride
        ph, pw = self.pad
        if self.to_matrix:
            OH = get_conv_outsize(H, KH, sy, ph)
            OW = get_conv_outsize(W, KW, sx, pw)
            col = col.reshape(N, OH, OW, C, KH, KW).transpose(0, 3, 4, 5, 1, 2)
        return _col2im_array(col, self.input_shape, sy, sx, ph, pw)

    def backward(self, gx):
        return im2col(gx, self.kernel_size, self.stride, self.pad, self.to_matrix)

    def jvp(self, tcol):
        return Col2im(self.input_shape, self.kernel_size, self.stride, self.pad,
                      self.to_matrix)(tcol)


def _col_shape(input_shape, kernel_size, stride, pad, to_matrix):
    N, C, H, W = input_shape
    KH, KW = kernel_size
    OH = get_conv_outsize(H, KH, stride[0], pad[0])
    OW = get_conv_outsize(W, KW, stride[1], pad[1])
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
    xd = _check_x(op, x, moves_only=True)
    kernel_size = _pair(kernel_size, "kernel_size", op, 1)
    stride = _pair(stride, "stride", op, 1)
    pad = _pair(pad, "pad", op, 0)
    _check_window(op, xd, *kernel_size, *pad)
    return Im2col(kernel_size, stride, pad, to_matrix)(x)


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
    kernel_size = _pair(kernel_size, "kernel_size", op, 1)
    stride = _pair(stride, "stride", op, 1)
    pad = _pair(pad, "pad", op, 0)
    input_shape = utils.as_ints(input_shape, op, "input_shape", _data(x, op))
    if len(input_shape) != 4:
        raise ValueError(f"{op}: input_shape must be (N, C, H, W), got {input_shape}")
    xd = _data(x, op)
    H, W = input_shape[2:]
    if H + 2 * pad[0] < kernel_size[0] or W + 2 * pad[1] < kernel_size[1]:
        raise ValueError(f"{op}: kernel {kernel_size} is larger than the padded image "
                         f"({H + 2 * pad[0]}, {W + 2 * pad[1]})")
    expected = _col_shape(input_shape, kernel_size, stride, pad, to_matrix)
    if tuple(xd.shape) != expected:
        raise ValueError(f"{op}: x must have shape {expected} for input_shape "
                         f"{input_shape}, kernel {kernel_size}, stride {stride}, pad {pad}"
                         + _describe("x", xd))
    if xd.dtype.kind not in "iuf":
        raise TypeError(f"{op}: x must be a real-valued array, got dtype={xd.dtype}")
    return Col2im(input_shape, kernel_size, stride, pad, to_matrix)(x)


# =============================================================================
# Pooling
# =============================================================================
def _index_dtype(n):
    return np.uint8 if n <= 256 else np.int32


class Pooling(Function):
    """Max pooling. Remembers which window entry won (``indexes``) for the backward."""

    retain_inputs = ()

    def __init__(self, kernel_size, stride=1, pad=0):
        self.kernel_size = utils.pair(kernel_size)
        self.stride = utils.pair(stride)
        self.pad = utils.pair(pad)

    def forward(self, x):
        xp = backend.get_array_module(x)
        self.input_shape = x.shape
        KH, KW = self.kernel_size
        # -inf padding: the padding never wins (PyTorch); DeZero padded with 0.
        win = _windows(_pad(x, *self.pad, value=_lowest(x.dtype)), KH, KW, *self.stride)
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
            win = _windows(_pad(x, *self.pad, value=-np.inf), KH, KW, *self.stride)
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
        win = _windows(_pad(x, *self.pad), KH, KW, *self.stride)
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

    def __init__(self, kernel_size, stride=1, pad=0):
        self.kernel_size = utils.pair(kernel_size)
        self.stride = utils.pair(stride)
        self.pad = utils.pair(pad)

    def forward(self, x):
        self.input_shape = x.shape
        KH, KW = self.kernel_size
        if x.dtype.kind != "f":
            x = x.astype(np.float64)  # a mean of integers is a float (as np.mean)
        win = _windows(_pad(x, *self.pad), KH, KW, *self.stride)
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
    xd = _check_x(op, x, moves_only=True)
    kernel_size = _pair(kernel_size, "kernel_size", op, 1)
    stride = _pair(stride, "stride", op, 1)
    pad = _pair(pad, "pad", op, 0)
    if max_pool and (pad[0] >= kernel_size[0] or pad[1] >= kernel_size[1]):
        raise ValueError(f"{op}: pad {pad} must be smaller than kernel_size {kernel_size} "
                         "(else a window could hold only padding)" + _describe("x", xd))
    _check_window(op, xd, *kernel_size, *pad)
    return kernel_size, stride, pad


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


def pooling_simple(x, kernel_size, stride=1, pad=0):
    """Max pooling composed from ``im2col`` and ``F.max`` (DeZero's version, an oracle).

    Same arguments and result shape as :func:`pooling`; pads with ``-inf`` like it. Its
    gradient splits ties evenly (``F.max``'s rule), so it matches :func:`pooling` only on
    inputs without ties.

    >>> pooling_simple(np.arange(16.0).reshape(1, 1, 4, 4), 2, stride=2).shape
    (1, 1, 2, 2)
    """
    from mibun.functions.array import concat
    from mibun.functions.reduction import max as fmax
    kernel_size, stride, pad = _pool_args("F.pooling_simple", x, kernel_size, stride,
                                          pad, True)
    x = as_operand(x)
    N, C, H, W = x.shape
    ph, pw = pad
    xp = backend.get_array_module(x)
    if ph:
        wall = xp.full((N, C, ph, W), _lowest(x.dtype), dtype=x.dtype)
        x = concat([wall, x, wall], axis=2)
    if pw:
        wall = xp.full((N, C, H + 2 * ph, pw), _lowest(x.dtype), dtype=x.dtype)
        x = concat([wall, x, wall], axis=3)
    KH, KW = kernel_size
    OH = get_conv_outsize(H, KH, stride[0], ph)
    OW = get_conv_outsize(W, KW, stride[1], pw)
    col = im2col(x, kernel_size, stride, 0, to_matrix=True).reshape(-1, KH * KW)
    y = fmax(col, axis=1)
    return y.reshape(N, OH, OW, C).transpose(0, 3, 1, 2)


def average_pooling(x, kernel_size, stride=1, pad=0):
    """2-D average pooling; zero padding counts in the average (PyTorch's default
    ``count_include_pad=True``, and DeZero).

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
