"""Shape and indexing ops against finite differences (1st and 2nd order) and PyTorch."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis.extra import numpy as hnp
from oracle import check_op

import mibun.functions as F
from mibun import Variable


def _noncontig(shape, seed=0):
    """A random array of ``shape`` laid out transposed in memory (not C-contiguous)."""
    a = np.random.default_rng(seed).uniform(-1, 1, shape[::-1]).T
    assert not a.flags.c_contiguous or a.ndim < 2
    return a


# --- reshape, transpose, broadcast_to, sum_to -----------------------------------------------
@pytest.mark.parametrize("src, dst", [
    ((), (1,)), ((1,), ()), ((6,), (2, 3)), ((2, 3), (3, 2)), ((2, 3, 4), (4, -1)),
    ((2, 3, 4), (24,)),
])
def test_reshape(src, dst):
    check_op(lambda x: F.reshape(x, dst), lambda x: x.reshape(dst), src)


def test_reshape_varargs_method_and_noncontiguous():
    check_op(lambda x: F.reshape(x, 3, 2), lambda x: x.reshape(3, 2), _noncontig((2, 3)))
    check_op(lambda x: x.reshape(6), lambda x: x.reshape(6), _noncontig((2, 3)))
    x = Variable(np.ones((2, 3)))
    assert F.reshape(x, (2, 3)) is x  # no-op reshape adds no node


def test_reshape_error():
    with pytest.raises(ValueError, match=r"F\.reshape: cannot reshape size 6 into shape \(4, 2\)"
                       r"[\s\S]*shape=\(2, 3\) dtype=float32"):
        F.reshape(np.zeros((2, 3), np.float32), (4, 2))


@pytest.mark.parametrize("shape, axes", [
    ((), None), ((3,), None), ((2, 3), None), ((2, 3, 4), (1, 0, 2)), ((2, 3, 4), (2, 0, 1)),
    ((2, 3, 4), (-1, 0, -2)),
])
def test_transpose(shape, axes):
    tax = tuple(reversed(range(len(shape)))) if axes is None else axes
    check_op(lambda x: F.transpose(x, axes), lambda x: x.permute(tax), shape)


def test_transpose_method_and_T():
    check_op(lambda x: x.transpose(1, 0, 2), lambda x: x.permute(1, 0, 2), (2, 3, 4))
    check_op(lambda x: x.T, lambda x: x.permute(1, 0), _noncontig((3, 4)))


def test_transpose_error():
    with pytest.raises(ValueError, match=r"F\.transpose: axes \(0, 0\) are not a permutation"):
        F.transpose(np.zeros((2, 3)), (0, 0))


@pytest.mark.parametrize("src, dst", [
    ((), (2, 3)), ((3,), (2, 3)), ((3, 1), (3, 4)), ((1, 4), (2, 3, 4)), ((2, 3), (2, 3)),
])
def test_broadcast_to_and_sum_to(src, dst):
    check_op(lambda x: F.broadcast_to(x, dst), lambda x: x.broadcast_to(dst), src)

    def torch_sum_to(x):
        lead = x.dim() - len(src)
        axes = tuple(range(lead)) + tuple(
            lead + i for i, n in enumerate(src) if n == 1 and x.shape[lead + i] != 1)
        y = x.sum(axes, keepdim=True) if axes else x
        return y.reshape(src)

    check_op(lambda x: F.sum_to(x, src), torch_sum_to, dst)


@pytest.mark.parametrize("shape", [(5,), (2, 4), (1, 3, 4), (3, 2)])
def test_sum_to_error(shape):
    # these were silently wrong: (5,) summed to (4,), (2, 4) returned x unchanged
    with pytest.raises(ValueError, match=r"F\.sum_to: shape .* does not broadcast to x's shape"
                                         r"\n  x: shape=\(3, 4\) dtype=float32"):
        F.sum_to(np.zeros((3, 4), np.float32), shape)


def test_broadcast_to_error():
    with pytest.raises(ValueError, match=r"F\.broadcast_to: cannot broadcast to shape "
                                         r"\(2, 4\)[\s\S]*shape=\(3,\)"):
        F.broadcast_to(np.zeros(3), (2, 4))


@settings(max_examples=25, deadline=None)
@given(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=3))
def test_broadcast_sum_to_roundtrip(shapes):
    """sum_to is the adjoint of broadcast_to: <B x, y> = <x, S y> for random x, y."""
    src, out = shapes.input_shapes[0], shapes.result_shape
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal(src), rng.standard_normal(out)
    lhs = float((F.broadcast_to(x, out).data * y).sum())
    rhs = float((x * F.sum_to(y, src).data).sum())
    assert np.isclose(lhs, rhs)
    v = Variable(x)
    F.broadcast_to(v, out).backward()
    np.testing.assert_allclose(v.grad.data, F.sum_to(np.ones(out), src).data)


# --- expand_dims, squeeze, flatten --------------------------------------------------------------
@pytest.mark.parametrize("shape, axis", [((), 0), ((3,), 1), ((2, 3), 1), ((2, 3), -1),
                                         ((2, 3), (0, 3))])
def test_expand_dims(shape, axis):
    expected = np.expand_dims(np.zeros(shape), axis).shape
    check_op(lambda x: F.expand_dims(x, axis), lambda x: x.reshape(expected), shape)


@pytest.mark.parametrize("shape, axis", [((1,), None), ((2, 1, 3, 1), None),
                                         ((2, 1, 3, 1), 1), ((2, 1, 3, 1), (1, -1))])
def test_squeeze(shape, axis):
    expected = np.squeeze(np.zeros(shape), axis).shape
    check_op(lambda x: F.squeeze(x, axis), lambda x: x.reshape(expected), shape)


def test_flatten():
    check_op(F.flatten, lambda x: x.flatten(1), (2, 3, 4))
    check_op(F.flatten, lambda x: x.reshape(3, 1), (3,))


def test_shape_errors():
    with pytest.raises(ValueError, match=r"F\.squeeze: axis 0 has length 2"):
        F.squeeze(np.zeros((2, 1)), 0)
    with pytest.raises(ValueError, match=r"F\.expand_dims: axis 3 is out of range"):
        F.expand_dims(np.zeros((2, 3)), 3)
    with pytest.raises(ValueError, match=r"F\.flatten"):
        F.flatten(np.zeros(()))


def test_numpy_functions_dispatch():
    x = Variable(np.ones((2, 1, 3)))
    for y in (np.squeeze(x, 1), np.expand_dims(x, 0), np.concatenate([x, x], axis=1),
              np.stack([x, x]), np.split(x, 3, axis=2)[0]):
        assert isinstance(y, Variable)


# --- get_item ---------------------------------------------------------------------------------
INDICES = [
    1, -1, (1, 2), slice(1, 3), slice(None, None, -1), (slice(None), slice(3, 0, -2)),
    Ellipsis, (Ellipsis, 1), (None, 1), (slice(None), None, 2), np.array([0, 2, 0, 0]),
    (np.array([0, 1, 1]), np.array([3, 0, 3])), [2, 0], (slice(None), np.array([[1, 1], [0, 3]])),
    np.array([True, False, True]), np.array([[True, False, True, True]] * 3), (1, [0, 0, 2]),
]


def _torch_index(shape, index):
    """The same selection as flat positions, so torch (no negative steps) can take it."""
    flat = np.arange(int(np.prod(shape))).reshape(shape)[index]
    return lambda t: t.reshape(-1)[torch.as_tensor(np.array(flat, dtype=np.int64))]


@pytest.mark.parametrize("index", INDICES, ids=repr)
def test_get_item(index):
    shape = (3, 4)
    check_op(lambda x: F.get_item(x, index), _torch_index(shape, index), shape)
    check_op(lambda x: x[index], _torch_index(shape, index), _noncontig(shape), float32=False,
             order=1)


def test_get_item_scalar_input_and_ellipsis():
    check_op(lambda x: x[...], lambda x: x[...], ())
    check_op(lambda x: x[None], lambda x: x[None], ())


def test_get_item_repeated_indices_accumulate():
    x = Variable(np.arange(4.0))
    y = x[np.array([1, 1, 3, 1])]
    y.backward()
    np.testing.assert_array_equal(x.grad.data, [0.0, 3.0, 0.0, 1.0])
    # the gradient op is differentiable again: d/dgy of GetItemGrad is get_item
    x.cleargrad()
    gy = Variable(np.array([1.0, 2.0, 3.0, 4.0]))
    gx = F.GetItemGrad(np.array([1, 1, 3, 1]), (4,))(gy)
    np.testing.assert_array_equal(gx.data, [0.0, 7.0, 0.0, 3.0])
    (gx * np.arange(4.0)).sum().backward()
    np.testing.assert_array_equal(gy.grad.data, [1.0, 1.0, 3.0, 1.0])


def test_get_item_variable_index_and_error():
    x = Variable(np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(x[Variable(np.array([1, 0]))].data, [[3, 4, 5], [0, 1, 2]])
    with pytest.raises(IndexError, match=r"F\.get_item: [\s\S]*shape=\(2, 3\)"):
        x[5]


# --- embed_id -------------------------------------------------------------------------------
@pytest.mark.parametrize("ids", [np.array(2), np.array([1, 1, 0]), np.array([[0, 3], [3, 3]])])
def test_embed_id(ids):
    check_op(lambda W: F.embed_id(ids, W),
             lambda W: torch.nn.functional.embedding(torch.as_tensor(ids), W), (4, 5))


def test_embed_id_errors():
    W = Variable(np.zeros((4, 2), np.float32))
    with pytest.raises(TypeError, match=r"F\.embed_id: x must hold integer ids.*float64"):
        F.embed_id(np.array([0.0, 1.0]), W)
    with pytest.raises(ValueError, match=r"F\.embed_id: ids must be in \[0, 4\), found \[0, 4\]"):
        F.embed_id(np.array([0, 4]), W)
    # a 0-d W has no rows: a ValueError naming the op, not NumPy's bare IndexError
    with pytest.raises(ValueError, match=r"F\.embed_id: W must have at least one axis"):
        F.embed_id(0, np.array(0.0))


# --- concat, stack, split -----------------------------------------------------------------
@pytest.mark.parametrize("shapes, axis", [
    (((2, 3), (2, 1), (2, 2)), 1), (((1, 3), (2, 3)), 0), (((2, 3), (2, 3)), -1),
    (((3,), (2,)), 0), (((2, 0), (2, 2)), 1),
])
def test_concat(shapes, axis):
    check_op(lambda *xs: F.concat(xs, axis=axis), lambda *ts: torch.cat(ts, axis), *shapes)


def test_concat_single_and_noncontiguous():
    check_op(lambda x: F.concat([x], axis=0), lambda x: torch.cat([x], 0), (2, 3))
    check_op(lambda a, b: F.concat([a, b], axis=1), lambda a, b: torch.cat([a, b], 1),
             _noncontig((3, 2)), _noncontig((3, 4), seed=1))


@pytest.mark.parametrize("shape, axis", [((), 0), ((3,), 0), ((3,), 1), ((2, 3), -1)])
def test_stack(shape, axis):
    check_op(lambda a, b, c: F.stack([a, b, c], axis=axis),
             lambda a, b, c: torch.stack([a, b, c], axis), shape, shape, shape)


@pytest.mark.parametrize("shape, sections, axis", [
    ((6, 2), 3, 0), ((2, 6), [1, 4], 1), ((2, 6), [4, 1], -1), ((4,), 1, 0),
])
def test_split(shape, sections, axis):
    def torch_split(x):
        flat = np.split(np.arange(x.numel()).reshape(shape), sections, axis=axis)
        return tuple(x.reshape(-1)[torch.as_tensor(f.copy())] for f in flat)

    check_op(lambda x: tuple(F.split(x, sections, axis)), torch_split, shape)


def test_split_unused_piece_gets_zero_gradient():
    x = Variable(np.arange(6.0))
    _, b, _ = F.split(x, 3)
    (b * 2).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [0, 0, 2, 2, 0, 0])


def test_concat_stack_split_errors():
    with pytest.raises(ValueError, match=r"F\.concat: shapes must match except along axis 1, "
                                         r"got \(2, 3\), \(3, 1\)"):
        F.concat([np.zeros((2, 3)), np.zeros((3, 1))], axis=1)
    with pytest.raises(ValueError, match=r"F\.concat: axis 2 is out of range"):
        F.concat([np.zeros((2, 3))], axis=2)
    with pytest.raises(ValueError, match=r"F\.stack: all arrays must have the same shape"):
        F.stack([np.zeros(3), np.zeros(2)])
    with pytest.raises(ValueError, match=r"F\.split: axis 0 of length 5 does not split into "
                                         r"2 equal sections"):
        F.split(np.zeros(5), 2)


def test_float32_kept():
    x = Variable(np.ones((2, 3), np.float32))
    for y in (x[1], x[np.array([0, 0])], F.concat([x, x]), F.stack([x, x]), F.split(x, 3, 1)[0],
              F.expand_dims(x, 0), F.squeeze(x[None]), F.flatten(x)):
        assert y.dtype == np.float32
        y.sum().backward()
        assert x.grad.dtype == np.float32
        x.cleargrad()


def test_squeeze_of_a_0d_array():
    x = np.array(1.5)
    for axis in (None, 0, -1):
        y = F.squeeze(x, axis)
        assert y.shape == () and float(y.data) == 1.5
    with pytest.raises(ValueError, match=r"F\.squeeze: axis 1 is out of range"):
        F.squeeze(x, 1)


def test_shape_arguments_of_the_wrong_kind_are_type_errors_naming_the_op():
    x = np.zeros((2, 3))
    for call, op in [(lambda: F.broadcast_to(x, None), "F.broadcast_to"),
                     (lambda: F.broadcast_to(x, (2.0, 3)), "F.broadcast_to"),
                     (lambda: F.sum_to(x, "ab"), "F.sum_to"),
                     (lambda: F.transpose(x, "ab"), "F.transpose"),
                     (lambda: F.expand_dims(x, None), "F.expand_dims")]:
        with pytest.raises(TypeError, match=rf"^{op}: .* must be an int or a tuple of ints"
                                            r"[\s\S]*x: shape=\(2, 3\) dtype=float64"):
            call()
    with pytest.raises(ValueError, match=r"F\.transpose: axes \(0,\) are not a permutation"):
        F.transpose(np.array(0.0), 0)


def test_astype_refuses_what_is_not_a_real_dtype():
    # np.dtype would read a Variable's .dtype, None as float64, and fail on 0 without the op
    x = Variable(np.zeros(3))
    for bad in (0, None, "abc", object(), Variable(np.zeros(())), np.zeros(2), [0], {"a": 1}):
        with pytest.raises(TypeError, match=r"F\.astype: dtype must be a NumPy dtype"):
            F.astype(x, bad)
    with pytest.raises(TypeError, match=r"F\.astype: mibun computes on bool, integer"):
        F.astype(x, np.complex128)
    y = F.astype(np.zeros(2, np.float32), "float32")  # an array of that dtype: a Variable
    assert isinstance(y, Variable) and y.dtype == np.float32
    assert F.astype(x, np.float64) is x
