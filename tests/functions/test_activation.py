"""Activations against finite differences (1st and 2nd order) and PyTorch."""
import math
import warnings

import numpy as np
import pytest
import torch
from oracle import check_op

import mibun
import mibun.functions as F
from mibun import Variable
from mibun.functions._erf import _erf  # the one erf kernel (gelu uses it)

tF = torch.nn.functional
SHAPES = [(), (5,), (3, 4), (2, 3, 4)]


def _away_from_zero(shape, seed=0, low=0.1, high=2.0):
    """Random values with |x| in [low, high]: finite differences never straddle a kink."""
    rng = np.random.default_rng(seed)
    mag = rng.uniform(low, high, shape)
    return np.asarray(np.where(rng.random(shape) < 0.5, -mag, mag))


@pytest.mark.parametrize("shape", SHAPES)
def test_relu(shape):
    check_op(F.relu, torch.relu, _away_from_zero(shape))


@pytest.mark.parametrize("slope", [0.2, 0.01, 1.5])
@pytest.mark.parametrize("shape", SHAPES[:3])
def test_leaky_relu(shape, slope):
    check_op(lambda x: F.leaky_relu(x, slope), lambda x: tF.leaky_relu(x, slope),
             _away_from_zero(shape))


def test_relu_kink_convention_and_noncontiguous():
    x = Variable(np.array([-1.0, 0.0, 2.0]))
    F.relu(x).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [0.0, 0.0, 1.0])  # relu'(0) = 0, as torch
    x.cleargrad()
    F.leaky_relu(x).sum().backward()
    np.testing.assert_allclose(x.grad.data, [0.2, 0.2, 1.0])
    check_op(F.relu, torch.relu, _away_from_zero((4, 3)).T)
    assert F.leaky_relu(np.array([1, -2])).dtype == np.float64  # ints promoted, not floored


@pytest.mark.parametrize("shape", SHAPES)
def test_gelu(shape):
    check_op(F.gelu, tF.gelu, shape, low=-4, high=4, rtol=1e-12, atol=1e-14)


def test_gelu_extremes_and_erf_precision():
    x = np.array([-40.0, -10.0, -6.0, -1e-8, 0.0, 1e-8, 6.0, 10.0, 40.0, 1e300])
    v = Variable(x[:-1])
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        y = F.gelu(x)
        F.gelu(v).sum().backward()
    tv = torch.tensor(x[:-1], requires_grad=True)
    tF.gelu(tv).sum().backward()
    np.testing.assert_allclose(v.grad.data, tv.grad.numpy(), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(y.data, tF.gelu(torch.tensor(x)).numpy(), rtol=1e-12, atol=1e-300)
    check_op(F.gelu, tF.gelu, np.array([-7.5, -3.0, -1.0, -0.3, 0.2, 0.99, 1.01, 2.49, 2.51]),
             rtol=1e-12, atol=1e-14)
    grid = np.concatenate([np.linspace(-7, 7, 20001), [1.0, 2.5, 6.0, -np.inf, np.inf]])
    ref = np.array([math.erf(v) for v in grid])
    assert np.max(np.abs(_erf(grid) - ref)) <= 4 * np.finfo(float).eps
    assert np.isnan(_erf(np.array([np.nan]))).all()
    assert _erf(np.float32([0.5])).dtype == np.float32


def test_gelu_second_order_at_extremes_and_integer_input():
    # the second derivative goes through erf's own backward, exp(-x²): it underflows to 0
    x = np.array([-1000.0, -40.0, -1.0, 0.5, 40.0, 1000.0])
    v = Variable(x)
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        g, = mibun.grad(F.gelu(v).sum(), [v], create_graph=True)
        h, = mibun.grad(g.sum(), [v])
    t = torch.tensor(x, requires_grad=True)
    tg, = torch.autograd.grad(tF.gelu(t).sum(), [t], create_graph=True)
    th, = torch.autograd.grad(tg.sum(), [t])
    np.testing.assert_allclose(g.data, tg.detach().numpy(), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(h.data, th.numpy(), rtol=1e-12, atol=1e-300)
    # integer input is promoted (it gave gelu(2) = 0: every constant became int 0)
    y = F.gelu(np.array([-1, 2]))
    assert y.dtype == np.float64
    np.testing.assert_allclose(y.data, F.gelu(np.array([-1.0, 2.0])).data)


@pytest.mark.parametrize("axis", [0, 1, -1, 2])
def test_softmax_log_softmax(axis):
    check_op(lambda x: F.softmax(x, axis), lambda x: x.softmax(axis), (2, 3, 4), low=-3, high=3)
    check_op(lambda x: F.log_softmax(x, axis), lambda x: x.log_softmax(axis), (2, 3, 4),
             low=-3, high=3)
    check_op(lambda x: F.softmax_simple(x, axis), lambda x: x.softmax(axis), (2, 3, 4))


def test_softmax_defaults_tuple_axis_and_1d():
    check_op(F.softmax, lambda x: x.softmax(1), (4, 5))  # DeZero default axis=1
    check_op(F.log_softmax, lambda x: x.log_softmax(1), (4, 5))
    check_op(lambda x: F.softmax(x, 0), lambda x: x.softmax(0), (5,))
    check_op(lambda x: F.softmax(x, 0), lambda x: x.softmax(0), ())
    check_op(lambda x: F.log_softmax(x, 0), lambda x: x.log_softmax(0), ())
    x = np.random.default_rng(0).standard_normal((2, 3, 4))
    for op, ref in ((F.softmax, F.softmax_simple),
                    (F.log_softmax, lambda v, a: F.log(F.softmax_simple(v, a)))):
        check_op(lambda v, op=op: op(v, (0, 2)), None, x)
        np.testing.assert_allclose(op(x, (0, 2)).data, ref(x, (0, 2)).data, rtol=1e-12)
    check_op(lambda v: F.softmax(v, 1), lambda v: v.softmax(1),
             np.random.default_rng(1).standard_normal((5, 3)).T)


def test_softmax_family_stable_for_huge_logits():
    x = np.array([[1000.0, -1000.0, 999.0], [-1000.0, -1000.0, -1000.0]])
    for op, tref in ((F.softmax, torch.softmax), (F.log_softmax, torch.log_softmax)):
        v = Variable(x)
        with warnings.catch_warnings(), np.errstate(all="raise"):
            warnings.simplefilter("error")
            y = op(v, axis=1)
            (y * np.arange(6.0).reshape(2, 3)).sum().backward()
        assert np.isfinite(y.data).all() and np.isfinite(v.grad.data).all()
        t = torch.tensor(x, requires_grad=True)
        ty = tref(t, 1)
        (ty * torch.arange(6.0, dtype=torch.float64).reshape(2, 3)).sum().backward()
        np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-12, atol=1e-300)
        np.testing.assert_allclose(v.grad.data, t.grad.numpy(), rtol=1e-10, atol=1e-14)
        with warnings.catch_warnings(), np.errstate(all="raise"):  # second order too
            warnings.simplefilter("error")
            g, = mibun.grad((op(v, axis=1) * np.arange(6.0).reshape(2, 3)).sum(), [v],
                            create_graph=True)
            h, = mibun.grad((g * g).sum(), [v])
        assert np.isfinite(h.data).all()


@pytest.mark.parametrize("shape", SHAPES)
def test_sigmoid_simple_oracle(shape):
    check_op(F.sigmoid_simple, torch.sigmoid, shape, low=-3, high=3)
    x = np.random.default_rng(0).uniform(-20, 20, shape)
    np.testing.assert_allclose(F.sigmoid(x).data, F.sigmoid_simple(x).data, rtol=1e-13)


def test_float32_kept():
    x = Variable(_away_from_zero((3, 4)).astype(np.float32))
    for op in (F.relu, F.leaky_relu, F.gelu, F.softmax, F.log_softmax, F.softmax_simple,
               F.sigmoid_simple):
        y = op(x)
        assert y.dtype == np.float32, op.__name__
        (y * y).sum().backward(create_graph=True)
        assert x.grad.dtype == np.float32, op.__name__
        x.cleargrad()


def test_axis_errors():
    for op in (F.softmax, F.log_softmax):
        with pytest.raises(ValueError, match=rf"F\.{op.__name__}: axis 1 is out of range for a "
                                             r"1-d input\n  x: shape=\(3,\) dtype=float64"):
            op(np.zeros(3))


def test_relu_of_bools_and_integers_promotes_as_numpy():
    for x in (np.array([True, False]), np.array([-1, 2], np.int8)):
        y = F.relu(x)
        assert y.dtype == np.maximum(x, 0).dtype
        np.testing.assert_array_equal(y.data, np.maximum(x, 0))
