"""Convolution family: every op vs PyTorch in float64, finite differences to 2nd order."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st
from oracle import check_op

import mibun
import mibun.functions as F
from mibun import Variable
from mibun.functions import conv as conv_mod


def _tpair(v):
    return v if isinstance(v, tuple) else (v, v)


def distinct(shape, seed=0, scale=0.01):
    """Values without ties (a shuffled range), so max pooling is differentiable."""
    n = int(np.prod(shape))
    return np.random.default_rng(seed).permutation(n).reshape(shape) * scale - n * scale / 2


# --- conv2d -------------------------------------------------------------------------------
CONV_CASES = [  # x shape, W shape, stride, pad
    ((2, 3, 5, 6), (4, 3, 3, 2), 1, 0),
    ((1, 2, 5, 5), (3, 2, 3, 3), 1, 1),
    ((2, 3, 7, 6), (2, 3, 3, 2), (2, 1), (1, 2)),
    ((2, 1, 6, 6), (3, 1, 2, 2), 2, 0),
    ((1, 2, 4, 5), (2, 2, 1, 1), 1, 0),
    ((2, 2, 3, 3), (5, 2, 3, 3), 3, 1),  # more channels than output pixels: the 1-GEMM gW
    ((2, 1, 5, 4), (9, 1, 3, 3), 1, 1),  # a first layer: C*KH*KW <= OC
]


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("xs, ws, stride, pad", CONV_CASES)
def test_conv2d(xs, ws, stride, pad, bias):
    def f(x, W, b=None):
        return F.conv2d(x, W, b, stride=stride, pad=pad)

    def tf(x, W, b=None):
        return TF.conv2d(x, W, b, stride=_tpair(stride), padding=_tpair(pad))

    specs = (xs, ws, (ws[0],)) if bias else (xs, ws)
    check_op(f, tf, *specs)


def test_conv2d_non_contiguous():
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (6, 5, 3, 2)).transpose(3, 2, 1, 0)  # (2, 3, 5, 6) F-order
    W = rng.uniform(-1, 1, (3, 2, 3, 4))[:, :, ::-1].transpose(0, 2, 1, 3)  # (3, 3, 2, 4)
    check_op(lambda x, W: F.conv2d(x, W, stride=(1, 2), pad=1),
             lambda x, W: TF.conv2d(x, W, stride=(1, 2), padding=1), x, W)


@pytest.mark.parametrize("xs, ws, stride, pad", CONV_CASES[:3])
def test_conv2d_simple_matches_conv2d(xs, ws, stride, pad):
    rng = np.random.default_rng(2)
    x, W, b = (Variable(rng.standard_normal(s)) for s in (xs, ws, (ws[0],)))
    y = F.conv2d(x, W, b, stride, pad)
    y2 = F.conv2d_simple(x, W, b, stride, pad)
    np.testing.assert_allclose(y.data, y2.data, rtol=1e-12, atol=1e-12)
    gy = rng.standard_normal(y.shape)
    g = mibun.grad(F.sum(y * gy), [x, W, b])
    g2 = mibun.grad(F.sum(y2 * gy), [x, W, b])
    for a, c in zip(g, g2):
        np.testing.assert_allclose(a.data, c.data, rtol=1e-10, atol=1e-12)
    check_op(lambda x, W: F.conv2d_simple(x, W, None, stride, pad),
             lambda x, W: TF.conv2d(x, W, None, _tpair(stride), _tpair(pad)), xs, ws)


@pytest.mark.parametrize("oc", [9, 8])
def test_conv2d_repeated_backward(oc):
    # a second backward over the same graph gives the same W gradient as torch
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 1, 5, 4))
    W = Variable(rng.standard_normal((oc, 1, 3, 3)))
    y = F.conv2d(x, W, pad=1)
    w = rng.standard_normal(y.shape)
    loss = F.sum(y * w)
    loss.backward()
    g1 = W.grad.data.copy()
    W.cleargrad()
    loss.backward()
    tx, tW = torch.tensor(x), torch.tensor(W.data, requires_grad=True)
    (TF.conv2d(tx, tW, padding=1) * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(g1, tW.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(W.grad.data, g1)


def test_conv2d_data_batch_gradient_skipped():
    # A raw ndarray batch is a constant: the (expensive) deconv for gx must not run.
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 1, 5, 5)).astype(np.float32)
    W = Variable(rng.standard_normal((3, 1, 3, 3)).astype(np.float32))
    b = Variable(np.zeros(3, np.float32))
    calls = []
    F.sum(F.conv2d(x, W, b, pad=1)).backward(observer=lambda f, gys, gxs: calls.append(
        (type(f).__name__, gxs)))
    conv = [gxs for name, gxs in calls if name == "Conv2d"]
    assert len(conv) == 1 and conv[0][0] is None
    assert not any(name == "Deconv2d" for name, _ in calls)
    assert W.grad.dtype == np.float32 and b.grad.dtype == np.float32


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-10), (np.float32, 1e-4)])
def test_conv_pool_plain_backward_matches_torch(dtype, tol):
    # A plain backward (no create_graph) takes a few array shortcuts: check them too.
    rng = np.random.default_rng(6)
    x = Variable(rng.standard_normal((2, 3, 6, 6)).astype(dtype))
    W = Variable(rng.standard_normal((4, 3, 3, 3)).astype(dtype))
    b = Variable(rng.standard_normal(4).astype(dtype))
    y = F.pooling(F.conv2d(x, W, b, pad=1), 2, 2)
    w = rng.standard_normal(y.shape).astype(dtype)
    F.sum(y * w).backward()
    t = [torch.tensor(v.data.astype(np.float64), requires_grad=True) for v in (x, W, b)]
    ty = TF.max_pool2d(TF.conv2d(t[0], t[1], t[2], padding=1), 2, 2)
    (ty * torch.tensor(w.astype(np.float64))).sum().backward()
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=tol, atol=tol)
    for v, tv in zip((x, W, b), t):
        assert v.grad.dtype == dtype and v.grad.creator is None
        np.testing.assert_allclose(v.grad.data, tv.grad.numpy(), rtol=tol, atol=tol)
    with mibun.no_grad():  # no graph: the pooling skips its argmax bookkeeping
        np.testing.assert_array_equal(F.pooling(F.conv2d(x, W, b, pad=1), 2, 2).data, y.data)


def test_conv2d_float32_forward_matches_float64():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 8, 8))
    W = rng.standard_normal((4, 3, 3, 3))
    y32 = F.conv2d(x.astype(np.float32), W.astype(np.float32), pad=1)
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32.data, F.conv2d(x, W, pad=1).data, rtol=1e-4, atol=1e-4)


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 2), c=st.integers(1, 3), oc=st.integers(1, 3),
       h=st.integers(1, 7), w=st.integers(1, 7), kh=st.integers(1, 3), kw=st.integers(1, 3),
       sy=st.integers(1, 3), sx=st.integers(1, 3), ph=st.integers(0, 2), pw=st.integers(0, 2))
def test_conv2d_property_vs_torch(n, c, oc, h, w, kh, kw, sy, sx, ph, pw):
    if h + 2 * ph < kh or w + 2 * pw < kw:
        return
    rng = np.random.default_rng(h * 7 + w)
    x = Variable(rng.standard_normal((n, c, h, w)))
    W = Variable(rng.standard_normal((oc, c, kh, kw)))
    y = F.conv2d(x, W, None, (sy, sx), (ph, pw))
    tx = torch.tensor(x.data, requires_grad=True)
    tW = torch.tensor(W.data, requires_grad=True)
    ty = TF.conv2d(tx, tW, None, (sy, sx), (ph, pw))
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    gy = rng.standard_normal(y.shape)
    gx, gW = mibun.grad(F.sum(y * gy), [x, W])
    tgx, tgW = torch.autograd.grad((ty * torch.tensor(gy)).sum(), [tx, tW])
    np.testing.assert_allclose(gx.data, tgx.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gW.data, tgW.numpy(), rtol=1e-10, atol=1e-12)


# --- deconv2d -----------------------------------------------------------------------------
DECONV_CASES = [  # x shape, W shape (C, OC, KH, KW), stride, pad, outsize
    ((2, 3, 4, 3), (3, 2, 3, 2), 1, 0, None),
    ((1, 2, 3, 3), (2, 3, 3, 3), 2, 1, None),
    ((2, 3, 4, 3), (3, 2, 3, 2), (2, 1), (1, 0), None),
    ((2, 2, 3, 2), (2, 2, 3, 3), 2, 1, (6, 4)),  # PyTorch output_padding=(1, 1)
]


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("xs, ws, stride, pad, outsize", DECONV_CASES)
def test_deconv2d(xs, ws, stride, pad, outsize, bias):
    sy, sx = _tpair(stride)
    ph, pw = _tpair(pad)
    opad = (0, 0)
    if outsize is not None:
        opad = (outsize[0] - (sy * (xs[2] - 1) + ws[2] - 2 * ph),
                outsize[1] - (sx * (xs[3] - 1) + ws[3] - 2 * pw))

    def f(x, W, b=None):
        return F.deconv2d(x, W, b, stride=stride, pad=pad, outsize=outsize)

    def tf(x, W, b=None):
        return TF.conv_transpose2d(x, W, b, stride=(sy, sx), padding=(ph, pw),
                                   output_padding=opad)

    specs = (xs, ws, (ws[1],)) if bias else (xs, ws)
    check_op(f, tf, *specs)


def test_deconv2d_is_conv2d_adjoint():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 7, 6))
    W = rng.standard_normal((4, 3, 3, 2))
    y = F.conv2d(x, W, stride=2, pad=1).data
    g = rng.standard_normal(y.shape)
    back = F.deconv2d(g, W, stride=2, pad=1, outsize=(7, 6)).data
    assert np.isclose(np.sum(y * g), np.sum(x * back))


# --- im2col / col2im ------------------------------------------------------------------------
IM2COL_CASES = [((2, 3, 5, 4), (3, 2), 1, 0), ((1, 2, 5, 5), 3, 2, 1),
                ((2, 1, 4, 6), (2, 3), (1, 2), (2, 1))]


def _t_unfold(x, k, s, p, to_matrix):
    k, s, p = _tpair(k), _tpair(s), _tpair(p)
    col = TF.unfold(x, k, padding=p, stride=s)  # (N, C*KH*KW, L)
    N, C = x.shape[:2]
    OH = (x.shape[2] + 2 * p[0] - k[0]) // s[0] + 1
    OW = (x.shape[3] + 2 * p[1] - k[1]) // s[1] + 1
    if to_matrix:
        return col.transpose(1, 2).reshape(N * OH * OW, -1)
    return col.reshape(N, C, k[0], k[1], OH, OW)


def _t_fold(col, x_shape, k, s, p, to_matrix):
    k, s, p = _tpair(k), _tpair(s), _tpair(p)
    N, C, H, W = x_shape
    OH = (H + 2 * p[0] - k[0]) // s[0] + 1
    OW = (W + 2 * p[1] - k[1]) // s[1] + 1
    if to_matrix:
        col = col.reshape(N, OH * OW, -1).transpose(1, 2)
    else:
        col = col.reshape(N, C * k[0] * k[1], OH * OW)
    return TF.fold(col, (H, W), k, padding=p, stride=s)


@pytest.mark.parametrize("to_matrix", [True, False])
@pytest.mark.parametrize("xs, k, s, p", IM2COL_CASES)
def test_im2col(xs, k, s, p, to_matrix):
    check_op(lambda x: F.im2col(x, k, s, p, to_matrix),
             lambda x: _t_unfold(x, k, s, p, to_matrix), xs)


@pytest.mark.parametrize("to_matrix", [True, False])
@pytest.mark.parametrize("xs, k, s, p", IM2COL_CASES)
def test_col2im(xs, k, s, p, to_matrix):
    col_shape = conv_mod._col_shape(xs, _tpair(k), _tpair(s), _tpair(p), to_matrix)
    check_op(lambda c: F.col2im(c, xs, k, s, p, to_matrix),
             lambda c: _t_fold(c, xs, k, s, p, to_matrix), col_shape)


def test_im2col_dezero_layout():
    x = np.arange(2 * 2 * 3 * 3, dtype=np.float32).reshape(2, 2, 3, 3)
    col = F.im2col(x, 2, to_matrix=True).data
    assert col.shape == (2 * 2 * 2, 2 * 2 * 2) and col.dtype == np.float32
    # row = output pixel (n, oh, ow), column = (c, kh, kw)
    np.testing.assert_array_equal(col[5], x[1, :, 0:2, 1:3].reshape(-1))


# --- pooling --------------------------------------------------------------------------------
POOL_CASES = [  # x shape, kernel, stride, pad
    ((2, 3, 6, 6), 2, 2, 0),
    ((1, 2, 5, 7), 3, 1, 1),
    ((2, 2, 6, 5), (3, 2), (2, 1), (1, 0)),
    ((2, 1, 7, 7), 3, 2, 1),
    ((1, 2, 4, 4), 2, 1, 0),
]


@pytest.mark.parametrize("xs, k, s, p", POOL_CASES)
def test_max_pooling(xs, k, s, p):
    check_op(lambda x: F.pooling(x, k, s, p),
             lambda x: TF.max_pool2d(x, k, _tpair(s), _tpair(p)), distinct(xs))


def test_max_pooling_non_contiguous_and_negative_padding():
    x = distinct((6, 5, 2, 2)).transpose(3, 2, 1, 0) - 10.0  # all negative: pad must lose
    check_op(lambda x: F.pooling(x, 3, 2, 1), lambda x: TF.max_pool2d(x, 3, 2, 1), x)


@pytest.mark.parametrize("xs, k, s, p", POOL_CASES)
def test_pooling_simple_matches(xs, k, s, p):
    x = distinct(xs)
    check_op(lambda x: F.pooling_simple(x, k, s, p),
             lambda x: TF.max_pool2d(x, k, _tpair(s), _tpair(p)), x)


def test_pooling_tie_goes_to_first_entry():
    x = Variable(np.array([[[[1.0, 3.0], [3.0, 3.0]]]], dtype=np.float32))
    y = F.pooling(x, 2, 2)
    y.backward()
    np.testing.assert_array_equal(x.grad.data, [[[[0, 1], [0, 0]]]])
    tx = torch.tensor(x.data, requires_grad=True)
    TF.max_pool2d(tx, 2, 2).sum().backward()
    np.testing.assert_array_equal(x.grad.data, tx.grad.numpy())


def test_max_pooling_alias_and_default_stride():
    x = distinct((1, 1, 4, 4))
    assert F.max_pooling is F.pooling
    assert F.pooling(x, 2).shape == (1, 1, 3, 3)  # DeZero's stride=1 default


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 2), c=st.integers(1, 2), h=st.integers(1, 7), w=st.integers(1, 7),
       kh=st.integers(1, 3), kw=st.integers(1, 3), sy=st.integers(1, 3), sx=st.integers(1, 3),
       ph=st.integers(0, 1), pw=st.integers(0, 1), avg=st.booleans())
def test_pooling_property_vs_torch(n, c, h, w, kh, kw, sy, sx, ph, pw, avg):
    ph, pw = min(ph, kh // 2), min(pw, kw // 2)  # PyTorch's limit on the padding
    if h + 2 * ph < kh or w + 2 * pw < kw:
        return
    x = Variable(distinct((n, c, h, w), seed=h * 7 + w))
    op, top = (F.average_pooling, TF.avg_pool2d) if avg else (F.pooling, TF.max_pool2d)
    y = op(x, (kh, kw), (sy, sx), (ph, pw))
    tx = torch.tensor(x.data, requires_grad=True)
    ty = top(tx, (kh, kw), (sy, sx), (ph, pw))
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    gy = np.random.default_rng(0).standard_normal(y.shape)
    gx = mibun.grad(F.sum(y * gy), x)
    tgx, = torch.autograd.grad((ty * torch.tensor(gy)).sum(), tx)
    np.testing.assert_allclose(gx.data, tgx.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("xs, k, s, p", POOL_CASES)
def test_average_pooling(xs, k, s, p):
    check_op(lambda x: F.average_pooling(x, k, s, p),
             lambda x: TF.avg_pool2d(x, k, _tpair(s), _tpair(p)), xs)


def test_average_pooling_non_contiguous():
    x = np.random.default_rng(5).uniform(-1, 1, (5, 6, 3, 2)).transpose(3, 2, 1, 0)
    check_op(lambda x: F.average_pooling(x, (2, 3), (1, 2), 1),
             lambda x: TF.avg_pool2d(x, (2, 3), (1, 2), 1), x)


# --- errors ---------------------------------------------------------------------------------
def test_conv2d_errors_name_the_problem():
    x = np.zeros((2, 3, 5, 5), np.float32)
    W = np.zeros((4, 2, 3, 3), np.float32)
    with pytest.raises(ValueError, match=r"F.conv2d: channel mismatch: x.shape\[1\]=3, "
                                         r"W.shape\[1\]=2(.|\n)*x: shape=\(2, 3, 5, 5\) "
                                         r"dtype=float32(.|\n)*W: shape=\(4, 2, 3, 3\)"):
        F.conv2d(x, W)
    with pytest.raises(ValueError, match=r"F.conv2d: kernel \(8, 8\) is larger than the "
                                         r"padded input \(7, 7\) \(pad=\(1, 1\)\)"):
        F.conv2d(x, np.zeros((1, 3, 8, 8), np.float32), pad=1)
    with pytest.raises(ValueError, match=r"F.conv2d: x must be 4-D \(N, C, H, W\), got 3-D"):
        F.conv2d(np.zeros((3, 5, 5)), W)
    with pytest.raises(ValueError, match=r"F.conv2d: W must be 4-D"):
        F.conv2d(x, np.zeros((4, 3, 3)))
    with pytest.raises(ValueError, match=r"F.conv2d: b must have shape \(4,\), got \(3,\)"):
        F.conv2d(x, np.zeros((4, 3, 3, 3)), np.zeros(3))
    with pytest.raises(TypeError, match=r"F.conv2d: x must be a floating-point array, "
                                        r"got dtype=int64"):
        F.conv2d(np.zeros((2, 3, 5, 5), np.int64), W)
    with pytest.raises(TypeError, match=r"F.conv2d: stride must be an int or a pair"):
        F.conv2d(x, np.zeros((4, 3, 3, 3)), stride=1.5)
    with pytest.raises(ValueError, match=r"F.conv2d: stride must be >= 1, got 0"):
        F.conv2d(x, np.zeros((4, 3, 3, 3)), stride=0)
    with pytest.raises(ValueError, match=r"F.conv2d: pad must be >= 0, got \(1, -1\)"):
        F.conv2d(x, np.zeros((4, 3, 3, 3)), pad=(1, -1))


def test_other_errors():
    x = np.zeros((1, 2, 4, 4))
    with pytest.raises(ValueError, match=r"F.deconv2d: channel mismatch: x.shape\[1\]=2, "
                                         r"W.shape\[0\]=3"):
        F.deconv2d(x, np.zeros((3, 2, 3, 3)))
    with pytest.raises(ValueError, match=r"F.deconv2d: outsize \(20, 20\) does not match"):
        F.deconv2d(x, np.zeros((2, 2, 3, 3)), stride=2, outsize=(20, 20))
    with pytest.raises(ValueError, match=r"F.pooling: pad \(2, 2\) must be smaller than "
                                         r"kernel_size \(2, 2\)"):
        F.pooling(x, 2, pad=2)
    with pytest.raises(ValueError, match=r"F.average_pooling: kernel \(5, 5\) is larger"):
        F.average_pooling(x, 5)
    with pytest.raises(ValueError, match=r"F.col2im: x must have shape \(1, 18\)"):
        F.col2im(np.zeros((4, 4)), (1, 2, 3, 3), 3)
    # the image's size, not the patches' array, is what the kernel must fit (Window's check)
    with pytest.raises(ValueError, match=r"F.col2im: kernel \(3, 3\) is larger than the "
                                         r"padded image \(2, 2\) \(pad=\(0, 0\)\)$"):
        F.col2im(np.zeros((4, 4)), (1, 1, 2, 2), 3)
    with pytest.raises(ValueError, match=r"F.im2col: x must be 4-D"):
        F.im2col(np.zeros((4, 4)), 2)


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8])
def test_data_movement_ops_take_integer_images(dtype):
    # im2col, col2im and pooling only move (or average) values: any real dtype, as NumPy
    # (DeZero's tests feed F.im2col an int64 image); convolutions still want floats
    xi = (np.arange(2 * 2 * 5 * 5) % 11).reshape(2, 2, 5, 5).astype(dtype)
    xf = xi.astype(np.float64)
    for f in (lambda x: F.im2col(x, 3, 1, 1), lambda x: F.im2col(x, 2, 2, to_matrix=False),
              lambda x: F.pooling(x, 2, 2), lambda x: F.pooling(x, 3, 1, 1),
              lambda x: F.pooling_simple(x, 3, 2, 1), lambda x: F.max_pooling(x, 2)):
        y = f(xi)
        assert y.dtype == dtype
        np.testing.assert_array_equal(y.data, f(xf).data)
    for f in (lambda x: F.average_pooling(x, 2, 2), lambda x: F.average_pooling(x, 3, 1, 1)):
        y = f(xi)
        assert y.dtype == np.float64  # a mean of integers, as np.mean
        np.testing.assert_allclose(y.data, f(xf).data)
    col = F.im2col(xi, 3, 1, 1).data
    np.testing.assert_array_equal(F.col2im(col, xi.shape, 3, 1, 1).data,
                                  F.col2im(col.astype(np.float64), xi.shape, 3, 1, 1).data)
    with pytest.raises(TypeError, match=r"F.im2col: x must be a real-valued array, got dtype=bool"):
        F.im2col(xi > 3, 2)


def test_integer_image_variable_gets_a_gradient():
    # an integer Variable is differentiable (DeZero's rule); its gradient keeps the dtype the
    # ops give: integers through max pooling / im2col, float through average pooling
    xi = np.random.default_rng(0).permutation(2 * 1 * 4 * 4).reshape(2, 1, 4, 4)
    for f, kind in ((lambda x: F.pooling(x, 2, 2), "i"), (lambda x: F.im2col(x, 2), "i"),
                    (lambda x: F.average_pooling(x, 2, 1), "f")):
        x, v = Variable(xi), Variable(xi.astype(np.float64))
        F.sum(f(x)).backward()
        F.sum(f(v)).backward()
        assert x.grad.dtype.kind == kind
        np.testing.assert_allclose(x.grad.data, v.grad.data)  # never truncated


# --- GPU ------------------------------------------------------------------------------------
@pytest.mark.gpu
def test_conv_family_on_cupy():
    import cupy
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    W = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    for f in (lambda x, W: F.pooling(F.conv2d(x, W, pad=1), 2, 2),
              lambda x, W: F.average_pooling(F.deconv2d(x, W.transpose(1, 0, 2, 3)), 2, 2)):
        xc, Wc = Variable(cupy.asarray(x)), Variable(cupy.asarray(W))
        xn, Wn = Variable(x), Variable(W)
        yc, yn = f(xc, Wc), f(xn, Wn)
        F.sum(yc).backward()
        F.sum(yn).backward()
        np.testing.assert_allclose(cupy.asnumpy(yc.data), yn.data, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(cupy.asnumpy(Wc.grad.data), Wn.grad.data, rtol=1e-3,
                                   atol=1e-3)


def test_output_size_helpers_where_dezero_has_them():
    # DeZero code calls them as dezero.utils.* and dezero.functions_conv.*
    import mibun.functions_conv as FC
    for mod in (FC, F, mibun.utils):
        assert mod.get_conv_outsize(28, 3, 1, 1) == 28
        assert mod.get_conv_outsize(7, 3, 2, 0) == 3
        assert mod.get_deconv_outsize(3, 3, 2, 0) == 7
