"""matmul and linear against finite differences (1st and 2nd order) and PyTorch."""
import numpy as np
import pytest
import torch
from oracle import check_op

import mibun.functions as F
from mibun import Variable


@pytest.mark.parametrize("a, b", [
    ((3, 4), (4, 2)), ((1, 4), (4, 1)), ((2, 3, 4), (4, 5)), ((2, 3, 4), (2, 4, 5)),
    ((2, 1, 3, 4), (5, 4, 2)), ((4,), (4, 3)), ((2, 4), (4,)), ((4,), (4,)),
    ((2, 3, 4), (4,)), ((4,), (2, 4, 3)),
])
def test_matmul(a, b):
    check_op(F.matmul, torch.matmul, a, b)


def test_matmul_operator_and_noncontiguous():
    rng = np.random.default_rng(0)
    xT = rng.standard_normal((4, 3)).T  # (3, 4), Fortran order
    W = rng.standard_normal((2, 4))[:, ::-1].T  # (4, 2) with a negative stride
    check_op(lambda x, w: x @ w, torch.matmul, xT, W.copy())
    check_op(F.matmul, torch.matmul, xT, W)


def test_matmul_constant_operand():
    W = Variable(np.ones((3, 2)))
    x = np.ones((4, 3))
    F.matmul(x, W).sum().backward()
    np.testing.assert_array_equal(W.grad.data, np.full((3, 2), 4.0))


def test_matmul_errors():
    x = np.zeros((3, 4), np.float32)
    with pytest.raises(ValueError, match=r"F\.matmul: inner dimensions differ: x\.shape\[-1\]=4, "
                                         r"W\.shape\[-2\]=5\n  x: shape=\(3, 4\) dtype=float32\n"
                                         r"  W: shape=\(5, 2\) dtype=float64"):
        F.matmul(x, np.zeros((5, 2)))
    with pytest.raises(ValueError, match=r"W\.shape\[0\]=3"):
        F.matmul(x, np.zeros(3))
    with pytest.raises(ValueError, match=r"F\.matmul: operands must have at least one dim"):
        F.matmul(np.zeros(()), x)
    with pytest.raises(ValueError, match=r"F\.matmul: batch dimensions \(2,\) and \(3,\) do "
                                         r"not broadcast\n  x: shape=\(2, 3, 4\)"):
        F.matmul(np.zeros((2, 3, 4)), np.zeros((3, 4, 5)))
    assert F.matmul(np.zeros((2, 1, 3, 4)), np.zeros((5, 4, 2))).shape == (2, 5, 3, 2)


def _torch_linear(x, W, b=None):
    return torch.nn.functional.linear(x, W.T, b)


@pytest.mark.parametrize("shapes", [
    ((5, 3), (3, 4), (4,)), ((5, 3), (3, 4)), ((2, 5, 3), (3, 4), (4,)), ((3,), (3, 4), (4,)),
    ((1, 1), (1, 1), (1,)),
])
def test_linear(shapes):
    check_op(F.linear, _torch_linear, *shapes)
    check_op(F.linear_simple, _torch_linear, *shapes)


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("shapes", [
    ((5, 3), (3, 4), (4,)), ((5, 3), (3, 4), None), ((2, 5, 3), (3, 4), (4,)),
    ((3,), (3, 4), (4,)), ((5, 3), (3, 4), (1, 4)), ((5, 3), (3, 4), ()),
])
def test_linear_plain_backward_matches_torch(shapes, dtype, tol):
    # a plain backward (no create_graph) multiplies the arrays directly: check it too
    rng = np.random.default_rng(7)
    vs = [Variable(rng.standard_normal(s).astype(dtype)) for s in shapes if s is not None]
    y = F.linear(*vs)
    w = rng.standard_normal(y.shape)
    (y * w.astype(dtype)).sum().backward()
    ts = [torch.tensor(v.data.astype(np.float64), requires_grad=True) for v in vs]
    ty = ts[0] @ ts[1] + (ts[2] if len(ts) == 3 else 0)
    (ty * torch.tensor(w)).sum().backward()
    for v, tv in zip(vs, ts):
        assert v.grad.dtype == dtype and v.grad.shape == v.shape and v.grad.creator is None
        np.testing.assert_allclose(v.grad.data, tv.grad.numpy(), rtol=tol, atol=tol)


def test_linear_noncontiguous():
    rng = np.random.default_rng(1)
    check_op(F.linear, _torch_linear, rng.standard_normal((3, 5)).T,
             rng.standard_normal((4, 3)).T, (4,))


def test_linear_skips_constant_input_gradient():
    """A raw-array batch is a constant: backward must not compute its gradient."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 3))
    W, b = Variable(rng.standard_normal((3, 4))), Variable(rng.standard_normal(4))
    seen = []
    F.linear(x, W, b).sum().backward(observer=lambda f, gys, gxs: seen.append((f, gxs)))
    gxs, = [g for f, g in seen if type(f).__name__ == "Linear"]
    assert gxs[0] is None
    np.testing.assert_allclose(W.grad.data, x.T @ np.ones((5, 4)))
    np.testing.assert_allclose(b.grad.data, np.full(4, 5.0))


def test_linear_float32_and_simple_frees_temporary():
    rng = np.random.default_rng(0)
    x = Variable(rng.standard_normal((5, 3)).astype(np.float32))
    W = Variable(rng.standard_normal((3, 4)).astype(np.float32))
    b = Variable(np.zeros(4, np.float32))
    y = F.linear(x, W, b)
    assert y.dtype == np.float32
    y2 = F.linear_simple(x, W, b)
    np.testing.assert_allclose(y.data, y2.data, rtol=1e-6)
    assert y2.creator.inputs[0] is None or y2.creator.inputs[0].data is None
    y2.sum().backward()
    for v in (x, W, b):
        assert v.grad.dtype == np.float32


def test_linear_errors():
    x = np.zeros((5, 3), np.float32)
    with pytest.raises(ValueError, match=r"F\.linear: inner dimensions differ: x\.shape\[-1\]=3, "
                                         r"W\.shape\[0\]=4\n  x: shape=\(5, 3\) dtype=float32"):
        F.linear(x, np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"F\.linear: b must have shape \(2,\), got \(3,\)"
                                         r"[\s\S]*b: shape=\(3,\)"):
        F.linear(x, np.zeros((3, 2)), np.zeros(3))
    with pytest.raises(ValueError, match=r"F\.linear: W must be 2-D"):
        F.linear(x, np.zeros(3))
