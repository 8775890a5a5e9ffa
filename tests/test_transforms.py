"""Transforms: per-example results, their vectorised batch() equivalents, dtypes, errors."""
import numpy as np
import pytest

from mibun import transforms as T


def image(shape=(3, 4, 5), dtype=np.uint8, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=shape).astype(dtype)


def check_batch_matches_examples(t, xs):
    """t.batch on a stacked batch equals stacking t on each example."""
    want = np.stack([t(x) for x in xs])
    got = t.batch(np.stack(xs))
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_compose_order_and_identity():
    x = image((1, 2, 2))
    f = T.Compose([T.Flatten(), T.ToFloat(), T.Normalize(0.0, 255.0)])
    y = f(x)
    assert y.shape == (4,) and y.dtype == np.float32
    np.testing.assert_allclose(y, x.reshape(-1) / 255.0, rtol=1e-6)
    assert T.Compose()(x) is x and T.Compose([])(x) is x
    g = T.Compose([T.Normalize(1.0, 1.0), T.Normalize(0.0, 2.0)])  # order matters
    assert g(np.array([3.0]))[0] == 1.0
    check_batch_matches_examples(f, [image((1, 2, 2), seed=s) for s in range(4)])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_normalize_scalar_keeps_dtype(dtype):
    x = image((2, 3), dtype=dtype)
    y = T.Normalize(mean=10.0, std=4.0)(x)
    assert y.dtype == dtype
    np.testing.assert_allclose(y, (x.astype(np.float64) - 10) / 4, rtol=1e-6)
    y = T.Normalize(np.float64(10), np.float64(4))(x)  # NumPy scalars must not upcast
    assert y.dtype == dtype


def test_normalize_per_channel():
    x = image((3, 4, 5), np.float32)
    mean, std = [10.0, 20.0, 30.0], [1.0, 2.0, 4.0]
    y = T.Normalize(mean, std)(x)
    assert y.dtype == np.float32
    for c in range(3):
        np.testing.assert_allclose(y[c], (x[c] - mean[c]) / std[c], rtol=1e-6)
    check_batch_matches_examples(T.Normalize(mean, std),
                                 [image((3, 4, 5), np.float32, s) for s in range(3)])
    check_batch_matches_examples(T.Normalize([5.0], 2.0),
                                 [image((3, 4, 5), np.float32, s) for s in range(2)])
    with pytest.raises(ValueError, match="per-channel"):
        T.Normalize([1.0, 2.0], 1.0)(x)
    with pytest.raises(ValueError, match="nonzero"):
        T.Normalize(0.0, 0.0)


def test_flatten():
    x = image((2, 3, 4))
    assert T.Flatten()(x).shape == (24,)
    check_batch_matches_examples(T.Flatten(), [image((2, 3, 4), seed=s) for s in range(3)])
    noncontig = image((4, 6))[:, ::2]
    assert np.array_equal(T.Flatten()(noncontig), noncontig.ravel())


def test_astype_tofloat_toint():
    x = np.array([1.7, -2.2])
    assert T.AsType(np.int32)(x).dtype == np.int32
    y = T.ToFloat()(np.array([1, 2], np.uint8))
    assert y.dtype == np.float32 and y.tolist() == [1.0, 2.0]
    assert T.ToFloat(np.float64)(y).dtype == np.float64
    f32 = np.ones(3, np.float32)
    assert T.ToFloat()(f32) is f32  # no copy when the dtype already matches
    assert T.ToInt()(x).dtype == np.int64 and T.ToInt()(x).tolist() == [1, -2]
    assert T.ToInt(np.uint8)(np.array([3.0])).dtype == np.uint8
    with pytest.raises(TypeError, match="ToFloat"):
        T.ToFloat(np.int32)
    with pytest.raises(TypeError, match="ToInt"):
        T.ToInt(np.float32)
    check_batch_matches_examples(T.ToInt(), [x, x + 1])


def test_can_batch():
    assert T.can_batch(T.Compose([T.Flatten(), T.ToFloat()]))
    assert not T.can_batch(T.Compose([T.Flatten(), lambda a: a]))
    assert not T.can_batch(lambda a: a)
    assert T.can_batch(T.Normalize())
