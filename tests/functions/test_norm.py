"""batch_norm and layer_norm vs PyTorch in float64: values, grads, Hessian-vector products."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from oracle import check_op

import mibun
import mibun.functions as F
from mibun import Variable

BN_SHAPES = [(4, 3), (3, 2, 4, 5), (2, 3, 6), (1, 2, 3, 3)]


def _bn(eps=1e-5):
    def f(x, g, b):
        C = x.shape[1]
        return F.batch_norm(x, g, b, np.zeros(C), np.ones(C), eps=eps)
    return f


def _tbn(eps=1e-5):
    def f(x, g, b):
        return TF.batch_norm(x, None, None, g, b, training=True, eps=eps)
    return f


@pytest.mark.parametrize("shape", BN_SHAPES)
def test_batch_norm_train(shape):
    C = shape[1]
    # check_op's gradients go through create_graph=True and its HVPs check the second
    # derivative against PyTorch (DeZero's was wrong there).
    check_op(_bn(), _tbn(), shape, (C,), (C,), low=-2, high=2)


def test_batch_norm_non_contiguous():
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (5, 4, 3, 2)).transpose(3, 2, 1, 0)  # (2, 3, 4, 5)
    g = rng.uniform(0.5, 1.5, 6)[::2]
    check_op(_bn(), _tbn(), x, g, (3,))


def test_batch_norm_constant_gamma_beta():
    rng = np.random.default_rng(2)
    g, b = rng.uniform(0.5, 2, 3), rng.uniform(-1, 1, 3)
    check_op(lambda x: _bn()(x, g, b), lambda x: _tbn()(x, torch.tensor(g), torch.tensor(b)),
             (4, 3, 2, 2), low=-2, high=2)


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-10), (np.float32, 2e-5)])
@pytest.mark.parametrize("shape", BN_SHAPES[:3])
def test_batch_norm_plain_backward_matches_torch(shape, dtype, tol):
    # A plain backward (no create_graph) takes the fused array path: check it separately.
    rng = np.random.default_rng(3)
    C = shape[1]
    x = Variable(rng.uniform(-2, 2, shape).astype(dtype))
    g = Variable(rng.uniform(0.5, 1.5, C).astype(dtype))
    b = Variable(rng.uniform(-1, 1, C).astype(dtype))
    w = rng.standard_normal(shape).astype(dtype)
    y = F.batch_norm(x, g, b, np.zeros(C, dtype), np.ones(C, dtype), eps=1e-5)
    F.sum(y * w).backward()
    for v in (x, g, b):
        assert v.grad.dtype == dtype
        assert v.grad.creator is None  # no graph was recorded
    t = [torch.tensor(v.data.astype(np.float64), requires_grad=True) for v in (x, g, b)]
    ty = TF.batch_norm(t[0], None, None, t[1], t[2], training=True, eps=1e-5)
    (ty * torch.tensor(w.astype(np.float64))).sum().backward()
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=tol, atol=tol)
    for v, tv in zip((x, g, b), t):
        np.testing.assert_allclose(v.grad.data, tv.grad.numpy(), rtol=tol, atol=tol)


def test_batch_norm_second_derivative_regression():
    # d/dx of ||d loss/dx||^2 through batch statistics: DeZero's backward treated 1/std as
    # a constant and was off here (by about 1.2 on a case like this).
    rng = np.random.default_rng(4)
    x0 = rng.standard_normal((4, 3))
    w = rng.standard_normal((4, 3))
    x = Variable(x0.copy())
    g, b = Variable(np.ones(3)), Variable(np.zeros(3))
    y = F.batch_norm(x, g, b, np.zeros(3), np.ones(3))
    gx = mibun.grad(F.sum(F.sin(y) * w), x, create_graph=True)
    h = mibun.grad(F.sum(gx * gx), x)
    tx = torch.tensor(x0, requires_grad=True)
    ty = TF.batch_norm(tx, None, None, torch.ones(3, dtype=torch.float64),
                       torch.zeros(3, dtype=torch.float64), training=True, eps=2e-5)
    tgx, = torch.autograd.grad((torch.sin(ty) * torch.tensor(w)).sum(), tx, create_graph=True)
    th, = torch.autograd.grad((tgx * tgx).sum(), tx)
    np.testing.assert_allclose(h.data, th.numpy(), rtol=1e-8, atol=1e-10)


def test_batch_norm_running_statistics_match_torch():
    rng = np.random.default_rng(5)
    C = 3
    mean, var = np.zeros(C, np.float32), np.ones(C, np.float32)
    tmean, tvar = torch.zeros(C), torch.ones(C)
    g, b = np.ones(C, np.float32), np.zeros(C, np.float32)
    for _ in range(3):
        x = rng.standard_normal((4, C, 2, 3)).astype(np.float32) * 2 + 1
        F.batch_norm(x, g, b, mean, var, decay=0.8)
        TF.batch_norm(torch.tensor(x), tmean, tvar, torch.tensor(g), torch.tensor(b),
                      training=True, momentum=0.2)
    assert mean.dtype == np.float32 and var.dtype == np.float32
    np.testing.assert_allclose(mean, tmean.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(var, tvar.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", BN_SHAPES[:3])
def test_batch_norm_test_mode_uses_running_statistics(shape):
    rng = np.random.default_rng(6)
    C = shape[1]
    rm, rv = rng.uniform(-1, 1, C), rng.uniform(0.5, 2, C)
    rm0, rv0 = rm.copy(), rv.copy()
    with mibun.test_mode():
        check_op(lambda x, g, b: F.batch_norm(x, g, b, rm, rv, eps=1e-5),
                 lambda x, g, b: TF.batch_norm(x, torch.tensor(rm0), torch.tensor(rv0), g, b,
                                               training=False, eps=1e-5),
                 shape, (C,), (C,))
    np.testing.assert_array_equal(rm, rm0)  # not updated in test mode
    np.testing.assert_array_equal(rv, rv0)


def test_batch_nrom_alias_and_layer():
    assert F.batch_nrom is F.batch_norm
    x = np.random.default_rng(7).standard_normal((8, 3, 2, 2)).astype(np.float32)
    bn = mibun.layers.BatchNorm()
    y = bn(x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.data.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(y.data.var(axis=(0, 2, 3)), 1, atol=1e-3)


LN_SHAPES = [(5,), (3, 5), (2, 3, 4)]


@pytest.mark.parametrize("shape", LN_SHAPES)
def test_layer_norm(shape):
    D = shape[-1]
    check_op(lambda x, g, b: F.layer_norm(x, g, b),
             lambda x, g, b: TF.layer_norm(x, (D,), g, b), shape, (D,), (D,), low=-2, high=2)


def test_layer_norm_non_contiguous_and_eps():
    x = np.random.default_rng(8).uniform(-1, 1, (4, 3, 2)).transpose(2, 1, 0)  # (2, 3, 4)
    check_op(lambda x, g, b: F.layer_norm(x, g, b, eps=0.1),
             lambda x, g, b: TF.layer_norm(x, (4,), g, b, eps=0.1), x, (4,), (4,))


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-10), (np.float32, 2e-5)])
def test_layer_norm_plain_backward_matches_torch(dtype, tol):
    rng = np.random.default_rng(9)
    x = Variable(rng.uniform(-2, 2, (2, 3, 6)).astype(dtype))
    g = Variable(rng.uniform(0.5, 1.5, 6).astype(dtype))
    b = Variable(rng.uniform(-1, 1, 6).astype(dtype))
    w = rng.standard_normal((2, 3, 6)).astype(dtype)
    y = F.layer_norm(x, g, b)
    F.sum(y * w).backward()
    t = [torch.tensor(v.data.astype(np.float64), requires_grad=True) for v in (x, g, b)]
    ty = TF.layer_norm(t[0], (6,), t[1], t[2])
    (ty * torch.tensor(w.astype(np.float64))).sum().backward()
    assert y.dtype == dtype
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=tol, atol=tol)
    for v, tv in zip((x, g, b), t):
        assert v.grad.dtype == dtype
        np.testing.assert_allclose(v.grad.data, tv.grad.numpy(), rtol=tol, atol=tol)


def test_norm_errors():
    x = np.zeros((4, 3), np.float32)
    with pytest.raises(ValueError, match=r"F.batch_norm: gamma must have shape \(3,\), got "
                                         r"\(2,\)(.|\n)*x: shape=\(4, 3\) dtype=float32"):
        F.batch_norm(x, np.ones(2), np.zeros(3), np.zeros(3), np.ones(3))
    with pytest.raises(ValueError, match=r"F.batch_norm: var must have shape \(3,\)"):
        F.batch_norm(x, np.ones(3), np.zeros(3), np.zeros(3), np.ones(4))
    with pytest.raises(ValueError, match=r"F.batch_norm: x must be \(N, C\) or \(N, C, ...\), "
                                         r"got 1-D"):
        F.batch_norm(np.zeros(3), np.ones(3), np.zeros(3), np.zeros(3), np.ones(3))
    with pytest.raises(TypeError, match=r"F.batch_norm: x must be a floating-point array"):
        F.batch_norm(np.zeros((4, 3), np.int32), np.ones(3), np.zeros(3), np.zeros(3),
                     np.ones(3))
    with pytest.raises(ValueError, match=r"F.layer_norm: beta must have shape \(3,\), got "
                                         r"\(4,\)"):
        F.layer_norm(x, np.ones(3), np.zeros(4))


@pytest.mark.gpu
def test_norm_on_cupy():
    import cupy
    x = np.random.default_rng(0).standard_normal((4, 3, 2, 2)).astype(np.float32)
    for xs in (x, cupy.asarray(x)):
        xv = Variable(xs)
        g = Variable(cupy.ones(3, np.float32) if xs is not x else np.ones(3, np.float32))
        b = Variable(g.data * 0)
        y = F.batch_norm(xv, g, b, g.data * 0, g.data + 0)
        F.sum(F.layer_norm(y, Variable(g.data[:1].repeat(2)), Variable(b.data[:1].repeat(2))
                           ) ** 2).backward()
        assert cupy.asnumpy(xv.grad.data).shape == x.shape


def test_eps_is_checked_by_both_norms_and_errors_name_the_real_op():
    x, g = np.ones((2, 3)), np.ones(3)
    for call in (lambda e: F.batch_norm(x, g, g, g.copy(), g.copy(), eps=e),
                 lambda e: F.layer_norm(x, g, g, eps=e)):
        with pytest.raises(ValueError, match=r"F\.(batch|layer)_norm: eps must be"):
            call(-1e-5)
        with pytest.raises(TypeError, match=r"F\.(batch|layer)_norm: eps must be a real"):
            call(1j)
    with pytest.raises(TypeError, match=r"^F\.batch_norm: mean holds"):  # not F.batch_nrom
        F.batch_norm(x, g, g, np.array(["a", "b", "c"]), g)
