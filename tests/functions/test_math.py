"""Elementwise math: every op against finite differences (1st and 2nd order) and PyTorch."""
import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from oracle import check_op

import mibun.functions as F
from mibun import Variable
from mibun.functions import math as fmath

tF = torch.nn.functional
SHAPES = [(), (3,), (3, 4)]
BROADCAST = [((3, 1), (1, 4)), ((3, 4), (4,)), ((), (2, 3)), ((2, 1, 3), (4, 1))]

UNARY = [  # (mibun op, torch op, sampling range)
    (F.exp, torch.exp, (-1, 1)),
    (F.log, torch.log, (0.5, 2)),
    (F.sin, torch.sin, (-3, 3)),
    (F.cos, torch.cos, (-3, 3)),
    (F.tan, torch.tan, (-1, 1)),
    (F.tanh, torch.tanh, (-2, 2)),
    (F.sqrt, torch.sqrt, (0.5, 2)),
    (F.sigmoid, torch.sigmoid, (-3, 3)),
    (F.softplus, tF.softplus, (-3, 3)),
    (F.arcsin, torch.arcsin, (-0.9, 0.9)),
    (F.arccos, torch.arccos, (-0.9, 0.9)),
    (F.arctan, torch.arctan, (-3, 3)),
    (F.sinh, torch.sinh, (-2, 2)),
    (F.cosh, torch.cosh, (-2, 2)),
    (F.log1p, torch.log1p, (-0.5, 2)),
    (F.expm1, torch.expm1, (-1, 1)),
    (F.erf, torch.erf, (-2, 2)),
    (F.neg, torch.neg, (-1, 1)),
    (F.square, torch.square, (-1, 1)),
    (lambda x: F.clip(x, -0.5, 0.5), lambda x: torch.clamp(x, -0.5, 0.5), (-1, 1)),
]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("op, torch_op, rng", UNARY, ids=lambda v: getattr(v, "__name__", ""))
def test_unary(op, torch_op, rng, shape):
    check_op(op, torch_op, shape, low=rng[0], high=rng[1])


@pytest.mark.parametrize("shape", SHAPES)
def test_abs_away_from_kink(shape):
    x = np.asarray(np.random.default_rng(0).uniform(0.2, 1.0, shape) * np.where(
        np.random.default_rng(1).random(shape) < 0.5, -1, 1))
    check_op(F.abs, torch.abs, x)


def test_abs_kink_convention():
    x = Variable(np.array([-1.0, 0.0, 2.0]))
    F.abs(x).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [-1.0, 0.0, 1.0])  # sign(0) = 0, as PyTorch


BINARY = [
    (F.add, torch.add, (-1, 1)),
    (F.sub, torch.sub, (-1, 1)),
    (F.mul, torch.mul, (-1, 1)),
    (F.div, torch.div, (0.5, 2)),
    (F.pow, torch.pow, (0.5, 2)),
]


@pytest.mark.parametrize("shapes", [(s, s) for s in SHAPES] + BROADCAST)
@pytest.mark.parametrize("op, torch_op, rng", BINARY, ids=lambda v: getattr(v, "__name__", ""))
def test_binary_broadcasting(op, torch_op, rng, shapes):
    check_op(op, torch_op, *shapes, low=rng[0], high=rng[1])


@pytest.mark.parametrize("c", [2.5, -3, 0.5])
def test_scalar_operands(c):
    check_op(lambda x: x + c, lambda x: x + c, (3,))
    check_op(lambda x: c - x, lambda x: c - x, (3,))
    check_op(lambda x: x * c, lambda x: x * c, (3,))
    check_op(lambda x: x / c, lambda x: x / c, (3,))
    check_op(lambda x: c / x, lambda x: c / x, (3,), low=0.5, high=2)
    check_op(lambda x: x ** c, lambda x: x ** c, (3,), low=0.5, high=2)
    if c > 0:
        check_op(lambda x: c ** x, lambda x: c ** x, (3,))


def test_maximum_minimum_where():
    rng = np.random.default_rng(0)
    a = rng.uniform(-1, 1, (3, 4))
    b = a + np.where(rng.random((3, 4)) < 0.5, -0.3, 0.3)  # no ties
    check_op(F.maximum, torch.maximum, a, b)
    check_op(F.minimum, torch.minimum, a, b)
    cond = rng.random((3, 4)) < 0.5
    check_op(lambda x, y: F.where(cond, x, y),
             lambda x, y: torch.where(torch.tensor(cond), x, y), (3, 4), (1, 4))
    check_op(lambda x: F.maximum(x, 0.1), lambda x: torch.clamp(x, min=0.1), a)


def test_maximum_tie_convention():
    x0 = Variable(np.array([1.0, 2.0]))
    x1 = Variable(np.array([1.0, 3.0]))
    F.maximum(x0, x1).sum().backward()
    np.testing.assert_array_equal(x0.grad.data, [1.0, 0.0])  # ties go to x0 (documented)
    np.testing.assert_array_equal(x1.grad.data, [0.0, 1.0])


def test_clip_bounds_convention():
    x = Variable(np.array([-1.0, -0.5, 0.0, 0.5, 1.0]))
    F.clip(x, -0.5, 0.5).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [0, 1, 1, 1, 0])


def test_non_contiguous_inputs():
    base = np.random.default_rng(0).uniform(-1, 1, (4, 6))
    x = base.T  # Fortran order
    y = base[::2, ::-2]  # strided, negative step
    assert not x.flags.c_contiguous and not y.flags.c_contiguous
    check_op(F.sin, torch.sin, x)
    check_op(F.mul, torch.mul, y, y.copy())


def test_extreme_values():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x = Variable(np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0]))
        y = F.sigmoid(x)
        y.sum().backward()
        np.testing.assert_allclose(y.data, torch.sigmoid(torch.tensor(x.data)).numpy(),
                                   rtol=1e-15)
        assert np.all(np.isfinite(x.grad.data))
        x32 = Variable(x.data.astype(np.float32))
        F.sigmoid(x32).sum().backward()
        assert np.all(np.isfinite(x32.grad.data)) and x32.grad.dtype == np.float32
        t = Variable(np.array([-1000.0, 1000.0]))
        F.tanh(t).sum().backward()
        np.testing.assert_array_equal(t.grad.data, [0.0, 0.0])


def test_log_and_div_near_zero_follow_numpy():
    # documented: log(0) = -inf with gradient inf; x/0 = inf; NumPy's warnings are kept
    with np.errstate(divide="ignore"):
        x = Variable(np.array([0.0, 1.0]))
        y = F.log(x)
        y.sum().backward()
        assert y.data[0] == -np.inf and x.grad.data[0] == np.inf
        z = Variable(np.array([1.0])) / Variable(np.array([0.0]))
        assert z.data[0] == np.inf
    x = Variable(np.array([1e-300]))
    F.log(x).backward()
    assert np.isfinite(x.grad.data[0])


@settings(max_examples=25, deadline=None)
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=3),
       seed=st.integers(0, 2**16))
def test_broadcasting_property(shapes, seed):
    s0, s1 = shapes.input_shapes
    rng = np.random.default_rng(seed)
    a, b = rng.uniform(0.5, 2, s0), rng.uniform(0.5, 2, s1)
    check_op(lambda x, y: x * y / (x + y), lambda x, y: x * y / (x + y), a, b, order=1,
             hvp=False)


def test_numpy_scalar_does_not_upcast_float32():
    x = Variable(np.ones(4, dtype=np.float32))
    for y in (F.exp(x), F.sigmoid(x), F.clip(x, np.float64(0), np.float64(0.5)),
              F.maximum(x, np.float64(0.5)), F.where(x.data > 0, x, np.float64(3.0))):
        assert y.dtype == np.float32


def test_sigmoid_of_integers_and_bools_promotes_as_numpy():
    for x in (np.array([1, 2], np.int64), np.array([1, -2], np.int8), np.array([True, False])):
        y = F.sigmoid(x)
        want = 1 / (1 + np.exp(-x.astype(np.float64)))
        assert y.dtype == np.exp(x).dtype  # float64 for int64, float16 for int8 and bool
        np.testing.assert_allclose(y.data, want, rtol=1e-3)


def test_maximum_and_minimum_propagate_nan_as_numpy():
    a = np.array([np.nan, 1.0, 2.0, np.nan])
    b = np.array([0.0, np.nan, 1.0, np.nan])
    for op, ref in ((F.maximum, np.maximum), (F.minimum, np.minimum)):
        np.testing.assert_array_equal(op(a, b).data, ref(a, b))
        np.testing.assert_array_equal(op(Variable(a), 0.5).data, ref(a, 0.5))


# --- the unary base and the ops on it ---------------------------------------------------------
# (op, what its backward reads: "x" the input, "y" the output)
RETAINS = [(F.exp, "y"), (F.log, "x"), (F.log1p, "x"), (F.expm1, "y"), (F.sin, "x"),
           (F.cos, "x"), (F.tan, "y"), (F.arcsin, "x"), (F.arccos, "x"), (F.arctan, "x"),
           (F.sinh, "x"), (F.cosh, "x"), (F.tanh, "y"), (F.sqrt, "y"), (F.abs, "x"),
           (F.sigmoid, "y"), (F.softplus, "x"), (F.erf, "x")]


@pytest.mark.parametrize("op, reads", RETAINS, ids=lambda v: getattr(v, "__name__", v))
def test_unary_ops_keep_only_what_backward_reads(op, reads):
    x = Variable(np.array([0.25, 0.5]))
    y = op(x)
    f = y.creator
    assert isinstance(f, fmath.Unary)
    assert (f.inputs[0] is not None) == (reads == "x")
    assert bool(f.retain_outputs) == (reads == "y")


def test_erf_matches_math_erf_to_4_ulp_and_torch():
    rng = np.random.default_rng(0)
    x = np.concatenate([np.linspace(-7, 7, 140001), rng.standard_normal(20000) * 3,
                        np.logspace(-300, 0.8, 5000), -np.logspace(-20, 0.8, 5000),
                        [0.46875, 4.0, 6.0, 26.6, 1e300, np.inf, -np.inf, 5e-324]])
    ref = np.array([math.erf(v) for v in x])
    got = F.erf(x).data
    ulp = np.abs(got - ref) / np.spacing(np.abs(ref))
    assert ulp.max() <= 4, (ulp.max(), x[ulp.argmax()])
    np.testing.assert_allclose(got, torch.erf(torch.tensor(x)).numpy(), rtol=1e-15, atol=0)
    assert np.isnan(F.erf(np.array([np.nan, 1.0])).data[0])
    assert np.signbit(F.erf(np.array(-0.0)).data)
    assert F.erf(np.float32([0.5, 3.0])).dtype == np.float32
    assert F.erf(np.array([1, 2])).dtype == np.float64  # integers are not truncated
    np.testing.assert_allclose(F.erf(np.array([1, 2])).data, [math.erf(1), math.erf(2)])


def test_softplus_is_stable_and_accurate_in_both_tails():
    x = np.array([-1000.0, -50.0, -20.0, -1e-8, 0.0, 1e-8, 20.0, 50.0, 1000.0])
    with warnings.catch_warnings():  # (exp(-1000) underflows to 0, silently as in sigmoid)
        warnings.simplefilter("error")
        v = Variable(x)
        y = F.softplus(v)
        y.sum().backward()
        v32 = Variable(x.astype(np.float32))
        F.softplus(v32).sum().backward()
    np.testing.assert_allclose(y.data, np.logaddexp(0, x), rtol=1e-15, atol=0)
    np.testing.assert_allclose(v.grad.data, torch.sigmoid(torch.tensor(x)).numpy(),
                               rtol=1e-15, atol=0)
    assert y.data[1] == np.exp(-50.0)  # the left tail keeps its relative precision
    assert v32.grad.dtype == np.float32 and np.all(np.isfinite(v32.grad.data))
    # PyTorch's default (beta=1, threshold=20) agrees where it does not switch to x
    np.testing.assert_allclose(y.data[2:-3], tF.softplus(torch.tensor(x[2:-3])).numpy(),
                               rtol=1e-15)


def test_log1p_expm1_keep_tiny_arguments():
    x = np.array([1e-300, 1e-20, -1e-20])
    np.testing.assert_array_equal(F.log1p(x).data, x)
    np.testing.assert_array_equal(F.expm1(x).data, x)
    v = Variable(np.array([1e-20, 0.5]))
    F.expm1(v).sum().backward()
    np.testing.assert_allclose(v.grad.data, np.exp(v.data), rtol=1e-15)


def test_new_ops_are_numpy_ufuncs_on_variables():
    x = Variable(np.array([0.1, 0.2]))
    for ufunc, op in ((np.arcsin, F.arcsin), (np.arccos, F.arccos), (np.arctan, F.arctan),
                      (np.sinh, F.sinh), (np.cosh, F.cosh), (np.log1p, F.log1p),
                      (np.expm1, F.expm1)):
        y = ufunc(x)
        assert isinstance(y, Variable) and isinstance(y.creator, type(op(x).creator))
        np.testing.assert_array_equal(y.data, ufunc(x.data))


def test_new_ops_of_integers_promote_as_numpy():
    for op in (F.softplus, F.erf):
        assert op(np.array([1, 2], np.int64)).dtype == np.float64
        assert op(np.array([True, False])).dtype == np.float16
    for op in (F.arcsin, F.arccos, F.arctan, F.sinh, F.cosh, F.log1p, F.expm1):
        x = np.array([0, 1], np.int64)
        assert op(x).dtype == getattr(np, op.__name__)(x).dtype


def test_two_scalar_operands_follow_numpy():
    # found by tests/test_bad_input_sweep.py: rdiv(0, 0) raised Python's ZeroDivisionError
    with np.errstate(invalid="ignore"):
        for y in (F.div(0, 0), F.rdiv(0, 0)):
            assert isinstance(y, Variable) and np.isnan(y.data)
    assert F.add(1, 2).data == 3 and F.mul(1.5, 2).data == 3.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_is_the_two_branch_formula_bit_for_bit(dtype):
    # Sigmoid's forward takes one exp: exp(min(x, 0)) is read off exp(-|x|)
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.standard_normal(1000) * s for s in (1, 30, 1e3)]
                       + [[0.0, -0.0, np.inf, -np.inf, 88.7, -88.7, 1e-45, -1e-45, 745, -745]]
                       ).astype(dtype)
    with np.errstate(over="ignore", under="ignore"):
        want = np.exp(np.minimum(x, 0)) / (1 + np.exp(-np.abs(x)))
    got = F.sigmoid(x).data
    assert got.dtype == dtype
    np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))
