"""dropout: inverted scaling, mask reuse in backward, test mode, seeding."""
import numpy as np
import pytest
import torch
from oracle import check_op

import mibun
import mibun.functions as F
from mibun import Variable


def test_dropout_preserves_mean_statistically():
    np.random.seed(0)
    n, ratio = 200_000, 0.3
    x = np.full(n, 2.0, dtype=np.float32)
    y = F.dropout(x, ratio).data
    kept = y != 0
    # kept fraction ~ Binomial(n, 0.7): within 5 standard deviations
    assert abs(kept.mean() - (1 - ratio)) < 5 * np.sqrt(ratio * (1 - ratio) / n)
    np.testing.assert_allclose(y[kept], 2.0 / (1 - ratio), rtol=1e-6)
    assert abs(y.mean() - 2.0) < 5 * 2.0 * np.sqrt(ratio / (1 - ratio) / n)
    assert y.dtype == np.float32


def test_dropout_backward_reuses_the_mask():
    np.random.seed(1)
    x = Variable(np.random.uniform(1, 2, (50, 40)).astype(np.float32))
    y = F.dropout(x, 0.5)
    w = np.random.standard_normal(y.shape).astype(np.float32)
    F.sum(y * w).backward()
    mask = y.data != 0
    assert 0.3 < mask.mean() < 0.7
    assert x.grad.dtype == np.float32
    np.testing.assert_allclose(x.grad.data, np.where(mask, 2.0 * w, 0.0), rtol=1e-6)


@pytest.mark.parametrize("shape", [(), (7,), (3, 4, 5)])
def test_dropout_with_fixed_generator_vs_masked_reference(shape):
    # A fixed Generator makes the op deterministic, so the full oracle applies (incl. 2nd
    # order: dropout is linear, its second derivative is 0).
    ratio = 0.4
    mask = torch.tensor(np.random.default_rng(3).random(shape) >= ratio, dtype=torch.float64)
    check_op(lambda x: F.dropout(x, ratio, rng=np.random.default_rng(3)),
             lambda x: x * mask / (1 - ratio), shape)


def test_dropout_double_backward_is_linear_in_gy():
    x = Variable(np.ones((4, 5)))
    y = F.dropout(x, 0.5, rng=np.random.default_rng(0))
    gx = mibun.grad(F.sum(y * y), x, create_graph=True)  # 2 y dy/dx = 2 m^2 s^2 x
    h = mibun.grad(F.sum(gx), x)
    m = (y.data != 0) * 2.0
    np.testing.assert_allclose(h.data, 2 * m * m)


def test_dropout_is_identity_in_test_mode():
    x = np.random.default_rng(0).standard_normal((3, 4))
    with mibun.test_mode():
        y = F.dropout(x, 0.9)
    assert y.data is x
    v = Variable(x)
    with mibun.test_mode():
        assert F.dropout(v) is v


def test_dropout_global_seed_is_repeatable():
    x = np.ones((10, 10))
    np.random.seed(42)
    a = F.dropout(x).data
    np.random.seed(42)
    b = F.dropout(x).data
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, F.dropout(x).data)


def test_dropout_ratio_zero_is_identity():
    x = np.random.default_rng(0).standard_normal(100).astype(np.float32)
    np.testing.assert_array_equal(F.dropout(x, 0.0).data, x)


def test_dropout_errors():
    with pytest.raises(ValueError, match=r"F.dropout: dropout_ratio must be a number in "
                                         r"\[0, 1\), got 1.0"):
        F.dropout(np.ones(3), 1.0)
    with pytest.raises(ValueError, match="got -0.1"):
        F.dropout(np.ones(3), -0.1)
    with pytest.raises(TypeError, match=r"F.dropout: x must be a floating-point array, "
                                        r"got int64"):
        F.dropout(np.ones(3, np.int64))


@pytest.mark.gpu
def test_dropout_on_cupy():
    import cupy
    x = Variable(cupy.ones((100, 10), dtype=cupy.float32))
    y = F.dropout(x, 0.5)
    F.sum(y).backward()
    assert isinstance(x.grad.data, cupy.ndarray) and x.grad.dtype == np.float32
    cupy.testing.assert_array_equal(x.grad.data, y.data)
