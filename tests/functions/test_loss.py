"""Losses and metrics against finite differences (1st and 2nd order) and PyTorch."""
import warnings

import numpy as np
import pytest
import torch
from oracle import check_op

import mibun.functions as F
from mibun import Variable

tF = torch.nn.functional


def _strict():
    """Warnings are errors and every floating-point exception raises."""
    ctx = warnings.catch_warnings()
    ctx.__enter__()
    warnings.simplefilter("error")
    err = np.errstate(all="raise")
    err.__enter__()
    return ctx, err


class strict:
    def __enter__(self):
        self.ctx = _strict()

    def __exit__(self, *exc):
        for c in reversed(self.ctx):
            c.__exit__(*exc)


# --- mean squared error -------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(), (4,), (5, 1), (3, 4)])
def test_mean_squared_error(shape):
    for op in (F.mean_squared_error, F.mean_squared_error_simple):
        check_op(op, tF.mse_loss, shape, shape)


def test_mean_squared_error_accepts_shapes_differing_by_unit_axes():
    # DeZero's step 59 compares a (1, 1) prediction with a (1,) target
    y = Variable(np.array([[2.0]]))
    loss = F.mean_squared_error(y, np.array([0.5]))
    loss.backward()
    assert float(loss.data) == 2.25 and y.grad.shape == (1, 1)
    check_op(lambda a, b: F.mean_squared_error(a, b),
             lambda a, b: tF.mse_loss(a, b.reshape(a.shape)), (3, 1, 2), (3, 2))
    with pytest.raises(ValueError, match="must have the same shape"):
        F.mean_squared_error(np.zeros((4, 1)), np.zeros(4 * 2))


def test_mean_squared_error_constant_target_and_error():
    check_op(lambda x: F.mean_squared_error(x, np.ones((3, 2))),
             lambda x: tF.mse_loss(x, torch.ones(3, 2, dtype=torch.float64)), (3, 2))
    with pytest.raises(ValueError, match=r"F\.mean_squared_error: x0 and x1 must have the same "
                                         r"shape\n  x0: shape=\(3, 1\)[\s\S]*x1: shape=\(2,\)"):
        F.mean_squared_error(np.zeros((3, 1)), np.zeros(2))
    # (N, 1) against (N,) is compared entry by entry (DeZero broadcast it to N x N)
    y = F.mean_squared_error(np.arange(3.0).reshape(3, 1), np.arange(3.0) + 1)
    assert float(y.data) == 1.0


# --- softmax cross-entropy ------------------------------------------------------------------
LABELS = [np.array([0, 2, 1, 1, 2]), np.array([3, 0, 0, 1, 3]).astype(np.uint8),
          np.array([0]), np.array([1, 1, 1, 1, 1])]


@pytest.mark.parametrize("t", LABELS, ids=str)
def test_softmax_cross_entropy(t):
    C = max(3, int(t.max()) + 1)
    ref = lambda x: tF.cross_entropy(x, torch.as_tensor(t.astype(np.int64)))
    check_op(lambda x: F.softmax_cross_entropy(x, t), ref, (len(t), C), low=-3, high=3)
    check_op(lambda x: F.softmax_cross_entropy_simple(x, t), ref, (len(t), C), low=-3, high=3)
    check_op(lambda x: F.softmax_cross_entropy(x, Variable(t)), ref, (len(t), C))


def test_softmax_cross_entropy_noncontiguous_and_grad_op():
    t = np.array([0, 2, 1, 1])
    x = np.random.default_rng(0).standard_normal((3, 4)).T
    check_op(lambda v: F.softmax_cross_entropy(v, t),
             lambda v: tF.cross_entropy(v, torch.as_tensor(t)), x)
    # a scaled loss: second derivatives go through the fused gradient op in both of its
    # inputs (the logits and the incoming gradient)
    check_op(lambda v, s: F.softmax_cross_entropy(v, t) * s,
             lambda v, s: tF.cross_entropy(v, torch.as_tensor(t)) * s, x, ())


def test_softmax_cross_entropy_stable_for_huge_logits():
    x = Variable(np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 999.0]]))
    t = np.array([1, 2])
    with strict():
        loss = F.softmax_cross_entropy(x, t)
        loss.backward()
    tx = torch.tensor(x.data, requires_grad=True)
    tl = tF.cross_entropy(tx, torch.tensor(t))
    tl.backward()
    np.testing.assert_allclose(loss.data, tl.item(), rtol=1e-12)
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy(), rtol=1e-12, atol=1e-300)


def test_softmax_cross_entropy_float32_end_to_end():
    rng = np.random.default_rng(0)
    x = Variable(rng.standard_normal((100, 10)).astype(np.float32))
    W = Variable(rng.standard_normal((10, 10)).astype(np.float32))
    t = rng.integers(0, 10, 100)
    loss = F.softmax_cross_entropy(F.linear(x, W), t)
    assert loss.dtype == np.float32
    loss.backward(create_graph=True)
    assert W.grad.dtype == np.float32 and x.grad.dtype == np.float32
    g = (W.grad * W.grad).sum()
    W.cleargrad()
    g.backward()
    assert W.grad.dtype == np.float32


def test_softmax_cross_entropy_errors():
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(TypeError, match=r"F\.softmax_cross_entropy: t must hold integer class "
                                        r"ids, found dtype=float64[\s\S]*x: shape=\(2, 3\) "
                                        r"dtype=float32\n  t: shape=\(2,\) dtype=float64"):
        F.softmax_cross_entropy(x, np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"F\.softmax_cross_entropy: labels must be in \[0, 3\), "
                                         r"found \[0, 3\]"):
        F.softmax_cross_entropy(x, np.array([0, 3]))
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\), found \[-1, 1\]"):
        F.softmax_cross_entropy(x, np.array([-1, 1]))
    with pytest.raises(ValueError, match=r"F\.softmax_cross_entropy: t must have shape \(2,\)"):
        F.softmax_cross_entropy(x, np.array([0, 1, 1]))
    with pytest.raises(ValueError, match=r"F\.softmax_cross_entropy: x must be 2-D logits"):
        F.softmax_cross_entropy(np.zeros(3), np.array([0]))
    with pytest.raises(ValueError, match=r"x must be 2-D logits \(N, C\), got 4-D \(for more "
                                         r"axes, move the class axis last and reshape x to "
                                         r"\(-1, C\), t to \(-1,\)\)\n  x: shape=\(2, 3, 4, 4\) "
                                         r"dtype=float32\n  t: shape=\(2, 4, 4\) dtype=int64"):
        F.softmax_cross_entropy(np.zeros((2, 3, 4, 4), np.float32), np.zeros((2, 4, 4), int))


# --- sigmoid / binary cross-entropy -----------------------------------------------------
def _bce_logits_ref(t):
    def ref(x):
        tt = torch.as_tensor(np.asarray(t, dtype=np.float64)).reshape(x.shape)
        n = x.shape[0] if x.dim() else 1
        return tF.binary_cross_entropy_with_logits(x, tt, reduction="sum") / n
    return ref


@pytest.mark.parametrize("shape, t", [
    ((4, 1), np.array([[0], [1], [1], [0]])), ((4,), np.array([0, 1, 1, 0])),
    ((4, 1), np.array([0, 1, 1, 0])), ((3, 2), np.array([[0.2, 1.0], [0.5, 0.0], [1.0, 0.7]])),
])
def test_sigmoid_cross_entropy(shape, t):
    check_op(lambda x: F.sigmoid_cross_entropy(x, t), _bce_logits_ref(t), shape, low=-4, high=4)


def test_sigmoid_cross_entropy_float_target_gets_gradient():
    def ref(x, t):
        return tF.binary_cross_entropy_with_logits(x, t, reduction="sum") / x.shape[0]
    check_op(F.sigmoid_cross_entropy, ref, (3, 2), np.random.default_rng(1).random((3, 2)))


def test_sigmoid_cross_entropy_stable_for_huge_logits():
    x = Variable(np.array([[1000.0], [-1000.0], [1000.0], [-1000.0], [0.0]]))
    t = np.array([1, 0, 0, 1, 1])
    with strict():
        loss = F.sigmoid_cross_entropy(x, t)
        loss.backward()
    tx = torch.tensor(x.data, requires_grad=True)
    tl = _bce_logits_ref(t)(tx)
    tl.backward()
    np.testing.assert_allclose(loss.data, tl.item(), rtol=1e-12)
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy(), rtol=1e-12)
    x32 = Variable(x.data.astype(np.float32))
    with strict():
        loss32 = F.sigmoid_cross_entropy(x32, t)
        loss32.backward()
    assert loss32.dtype == np.float32 and x32.grad.dtype == np.float32
    assert np.isfinite(loss32.data) and np.isfinite(x32.grad.data).all()


@pytest.mark.parametrize("shape", [(4,), (3, 2)])
def test_binary_cross_entropy(shape):
    t = (np.random.default_rng(2).random(shape) < 0.5).astype(np.int64)

    def ref(p):
        return tF.binary_cross_entropy(p, torch.as_tensor(t, dtype=torch.float64),
                                       reduction="sum") / shape[0]

    check_op(lambda p: F.binary_cross_entropy(p, t), ref, shape, low=0.05, high=0.95)


def test_binary_cross_entropy_at_zero_and_one_is_finite():
    p = np.array([0.0, 1.0, 0.0, 1.0])
    t = np.array([0, 1, 1, 0])
    loss = F.binary_cross_entropy(p, t)
    ref = tF.binary_cross_entropy(torch.tensor(p), torch.tensor(t, dtype=torch.float64),
                                  reduction="sum") / 4
    np.testing.assert_allclose(loss.data, ref.item())  # log clamped at -100, as torch


def test_target_shape_errors():
    with pytest.raises(ValueError, match=r"F\.sigmoid_cross_entropy: t must have the shape of x"
                                         r"\n  x: shape=\(4, 1\)[\s\S]*t: shape=\(3,\)"):
        F.sigmoid_cross_entropy(np.zeros((4, 1)), np.array([0, 1, 1]))
    with pytest.raises(ValueError, match=r"F\.binary_cross_entropy: t must have the shape"):
        F.binary_cross_entropy(np.full(2, 0.5), np.array([0, 1, 1]))


# --- accuracy --------------------------------------------------------------------------------
def test_accuracy():
    y = Variable(np.array([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1], [0.2, 0.3, 0.5], [0.0, 1.0, 0.0]],
                          np.float32))
    t = np.array([1, 0, 0, 2])
    acc = F.accuracy(y, t)
    assert isinstance(acc, Variable) and acc.creator is None
    assert acc.shape == () and acc.dtype == np.float32
    assert float(acc.data) == 0.5
    assert float(F.accuracy(y.data, Variable(t)).data) == 0.5
    assert float(F.accuracy(y, t.reshape(4, 1)).data) == 0.5  # (N, 1) labels, as DeZero
    for yy, tt in ((y, t[:3]), (y.data[:, 0], t)):
        with pytest.raises(ValueError, match=r"F\.accuracy: y must be scores \(N, C\) and t "
                                             r"the N labels\n  y: shape="):
            F.accuracy(yy, tt)


def test_losses_keep_float32():
    rng = np.random.default_rng(0)
    x = Variable(rng.standard_normal((4, 3)).astype(np.float32))
    losses = [
        lambda: F.mean_squared_error(x, np.zeros((4, 3), np.float32)),
        lambda: F.mean_squared_error_simple(x, np.zeros((4, 3))),
        lambda: F.softmax_cross_entropy(x, np.array([0, 1, 2, 0])),
        lambda: F.softmax_cross_entropy_simple(x, np.array([0, 1, 2, 0])),
        lambda: F.sigmoid_cross_entropy(x, (x.data > 0).astype(np.int32)),
        lambda: F.binary_cross_entropy(F.sigmoid(x), (x.data > 0).astype(np.int32)),
    ]
    for make in losses:
        loss = make()
        assert loss.dtype == np.float32
        loss.backward()
        assert x.grad.dtype == np.float32
        x.cleargrad()


# --- binary_cross_entropy at p = 0 and 1 (issue 9, defect 1) ---------------------------------
def test_binary_cross_entropy_gradient_is_finite_at_zero_and_one_as_torch():
    # every (p, t) corner, a right and a wrong prediction: PyTorch's clamped gradient
    # (p - t) / max(p (1 - p), 1e-12), where the clamped-log composition gave 0 * inf = nan
    p = np.array([[0.0], [1.0], [0.0], [1.0], [0.5], [1e-13]])
    t = np.array([[0], [1], [1], [0], [1], [0]])
    v = Variable(p.copy())
    loss = F.binary_cross_entropy(v, t)
    loss.backward()
    tp = torch.tensor(p, requires_grad=True)
    ref = tF.binary_cross_entropy(tp, torch.tensor(t, dtype=torch.float64), reduction="sum") / 6
    ref.backward()
    np.testing.assert_allclose(loss.data, ref.item(), rtol=1e-12)
    np.testing.assert_allclose(v.grad.data, tp.grad.numpy(), rtol=1e-12)
    assert np.isfinite(v.grad.data).all()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        simple = Variable(p.copy())
        F.binary_cross_entropy_simple(simple, t).backward()  # the oracle shows the old nan
    assert np.isnan(simple.grad.data).any()
    np.testing.assert_allclose(F.binary_cross_entropy_simple(p, t).data, loss.data)


def test_binary_cross_entropy_of_a_saturated_float32_sigmoid_trains():
    # float32 sigmoid(20) rounds to 1.0: a confident right prediction must not poison training
    x = Variable(np.array([[20.0], [-3.0], [-20.0]], np.float32))
    loss = F.binary_cross_entropy(F.sigmoid(x), np.array([[1], [0], [0]]))
    loss.backward()
    assert loss.dtype == np.float32 and x.grad.dtype == np.float32
    assert np.isfinite(x.grad.data).all()
    tx = torch.tensor(x.data, requires_grad=True)
    tl = tF.binary_cross_entropy(torch.sigmoid(tx), torch.tensor([[1.0], [0.0], [0.0]]))
    tl.backward()
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy(), rtol=1e-5, atol=1e-7)


def test_binary_cross_entropy_float_target_gradient_uses_the_clamped_logs():
    p = np.array([0.3, 0.0, 1.0])
    t = Variable(np.array([0.2, 0.5, 0.7]))
    F.binary_cross_entropy(p, t).backward()
    tp = torch.tensor(p)
    tt = torch.tensor(t.data, requires_grad=True)
    (tF.binary_cross_entropy(tp, tt, reduction="sum") / 3).backward()
    np.testing.assert_allclose(t.grad.data[0], tt.grad[0].item(), rtol=1e-12)
    # PyTorch gives ±inf at p = 0 and 1; mibun's clamped logs give ±100 / N
    np.testing.assert_allclose(t.grad.data[1:], [100 / 3, -100 / 3])


def test_loss_targets_are_constants():
    # a raw-array target must get no gradient (it would keep a graph alive under
    # create_graph=True); a float Variable target still gets one
    x = Variable(np.array([[0.2, -0.4]]))
    for loss in (F.mean_squared_error(x, np.array([[0.0, 1.0]])),
                 F.sigmoid_cross_entropy(x, np.array([[0, 1]])),
                 F.binary_cross_entropy(F.sigmoid(x), np.array([[0.0, 1.0]]))):
        loss.backward(create_graph=True)
        target = loss.creator.inputs[1]  # kept as plain data: nothing to give a grad to
        assert not isinstance(target, Variable) and loss.creator._edges[1] is None
    with pytest.raises(TypeError, match=r"F\.mean_squared_error: x1 must be a Variable, an "
                                        r"ndarray or a real number, got NoneType None"):
        F.mean_squared_error(x, None)  # asarray(None, float) would be a silent nan
