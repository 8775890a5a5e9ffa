"""Reductions against finite differences (1st and 2nd order) and PyTorch."""
import warnings

import numpy as np
import pytest
import torch
from oracle import check_op

import mibun.functions as F
from mibun import Variable

# (shape, axis, keepdims) combos: None, int, negative, tuple, all axes, 0-d input
AXES = [((), None, False), ((), 0, True), ((4,), None, False), ((4,), 0, True),
        ((2, 3, 4), None, True), ((2, 3, 4), 1, False), ((2, 3, 4), -1, True),
        ((2, 3, 4), (0, 2), False), ((2, 3, 4), (2, 0), True), ((2, 3, 4), (0, 1, 2), False)]


def _dims(shape, axis):
    if axis is None:
        return tuple(range(len(shape)))
    return axis if isinstance(axis, tuple) else (axis,)


def _noncontig(shape):
    return np.random.default_rng(3).uniform(-1, 1, shape[::-1]).T


REDUCTIONS = [  # (mibun op, torch op on (x, dims, keepdim))
    (F.sum, lambda x, d, k: x.sum(d, keepdim=k) if d else x),
    (F.mean, lambda x, d, k: x.mean(d, keepdim=k) if d else x),
    (F.max, lambda x, d, k: x.amax(d, keepdim=k) if d else x),
    (F.min, lambda x, d, k: x.amin(d, keepdim=k) if d else x),
    (F.logsumexp, lambda x, d, k: x.logsumexp(d, keepdim=k) if d else x),
    (F.var, lambda x, d, k: x.var(d, keepdim=k, correction=0) if d else x * 0),
    (F.std, None),
]


@pytest.mark.parametrize("shape, axis, keepdims", AXES, ids=str)
@pytest.mark.parametrize("op, torch_op", REDUCTIONS, ids=lambda v: getattr(v, "__name__", ""))
def test_reduction(op, torch_op, shape, axis, keepdims):
    if op is F.std:
        if np.zeros(shape).size // np.zeros(shape).sum(axis=axis).size < 2:
            pytest.skip("std of one entry has an infinite gradient")
        torch_op = lambda x, d, k: x.std(d, keepdim=k, correction=0)
    dims = _dims(shape, axis)
    check_op(lambda x: op(x, axis=axis, keepdims=keepdims),
             lambda x: torch_op(x, dims, keepdims), shape)


@pytest.mark.parametrize("op, torch_op", REDUCTIONS[:6], ids=lambda v: getattr(v, "__name__", ""))
def test_reduction_noncontiguous(op, torch_op):
    check_op(lambda x: op(x, axis=0), lambda x: torch_op(x, (0,), False), _noncontig((3, 4)))


def test_method_and_numpy_dispatch():
    x = Variable(np.arange(6.0).reshape(2, 3))
    assert float(x.sum().data) == 15
    for fn, ref in ((np.mean, 2.5), (np.max, 5.0), (np.min, 0.0), (np.var, 35 / 12),
                    (np.std, np.sqrt(35 / 12))):
        y = fn(x)
        assert isinstance(y, Variable)
        assert np.isclose(float(y.data), ref)
    assert F.average is F.mean  # DeZero's name


@pytest.mark.parametrize("ddof", [0, 1])
def test_var_std_ddof(ddof):
    check_op(lambda x: F.var(x, axis=1, ddof=ddof),
             lambda x: x.var(1, correction=ddof), (3, 4))
    check_op(lambda x: F.std(x, ddof=ddof), lambda x: x.std(correction=ddof), (3, 4))


def test_max_min_ties_split_evenly():
    """Ties share the gradient equally (torch.amax's convention), so it still sums to gy."""
    a = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0], [0.0, 5.0, 1.0]])
    for op, top, data in ((F.max, torch.amax, a), (F.min, torch.amin, -a)):
        for axis, keepdims in ((1, False), (0, True), (None, False)):
            x = Variable(data)
            y = op(x, axis=axis, keepdims=keepdims)
            w = np.random.default_rng(0).standard_normal(y.shape)
            (y * w).sum().backward()
            t = torch.tensor(data, requires_grad=True)
            dims = (0, 1) if axis is None else axis
            (top(t, dims, keepdim=keepdims) * torch.tensor(w)).sum().backward()
            np.testing.assert_allclose(x.grad.data, t.grad.numpy(), rtol=1e-12)
    x = Variable(np.array([[1.0, 3.0, 3.0]]))
    F.max(x, axis=1).backward()
    np.testing.assert_array_equal(x.grad.data, [[0.0, 0.5, 0.5]])


def test_logsumexp_stable():
    x = Variable(np.array([[1000.0, 1000.0, -1000.0], [-1000.0, -1000.0, -1000.0]]))
    with warnings.catch_warnings(), np.errstate(all="raise"):  # exp(-2000) is no error
        warnings.simplefilter("error")
        y = F.logsumexp(x, axis=1)
        y.sum().backward()
    np.testing.assert_allclose(y.data, [1000 + np.log(2), -1000 + np.log(3)])
    np.testing.assert_allclose(x.grad.data, [[0.5, 0.5, 0.0], [1 / 3, 1 / 3, 1 / 3]])
    check_op(lambda v: F.logsumexp(v, axis=1), lambda v: v.logsumexp(1),
             np.array([[1000.0, 999.0, -1000.0], [-1000.0, -1001.0, -999.5]]))


def test_logsumexp_infinite_entries():
    x = np.array([[-np.inf, -np.inf], [-np.inf, 0.0]])
    y = F.logsumexp(x, axis=1)
    np.testing.assert_array_equal(y.data, [-np.inf, 0.0])


def test_float32_kept():
    x = Variable(np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32))
    for op in (F.sum, F.mean, F.max, F.min, F.logsumexp, F.var, F.std):
        y = op(x, axis=1)
        assert y.dtype == np.float32, op.__name__
        y.sum().backward()
        assert x.grad.dtype == np.float32, op.__name__
        x.cleargrad()


@pytest.mark.parametrize("op", [F.sum, F.mean, F.max, F.min, F.logsumexp, F.var, F.std])
def test_axis_errors(op):
    name = "F." + op.__name__
    with pytest.raises(ValueError, match=rf"{name}: axis 2 is out of range for a 2-d input"
                                         r"[\s\S]*shape=\(2, 3\) dtype=float64"):
        op(np.zeros((2, 3)), axis=2)
    with pytest.raises(ValueError, match=rf"{name}: repeated axis"):
        op(np.zeros((2, 3)), axis=(0, -2))


def test_max_of_empty_is_an_error():
    with pytest.raises(ValueError, match=r"F\.max: zero-size input"):
        F.max(np.zeros((0, 3)))


@pytest.mark.parametrize("op, ref", [(F.var, np.var), (F.std, np.std), (F.mean, np.mean)])
def test_reductions_of_an_empty_array_give_nan_with_a_warning_as_numpy(op, ref):
    x = np.zeros((0, 3))
    with pytest.warns(RuntimeWarning):
        y = op(x, axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = ref(x, axis=0)
    np.testing.assert_array_equal(y.data, want)
    with pytest.warns(RuntimeWarning, match="degrees of freedom"):
        F.var(np.ones(2), ddof=2)  # count <= ddof: nan, as np.var(..., ddof=2)
