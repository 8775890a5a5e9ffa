"""Layers: registration, naming, state, and every layer against PyTorch in float64."""
import contextlib

import numpy as np
import pytest
from oracle import check_op

import mibun
import mibun.functions as F
import mibun.layers as L
from mibun import Parameter, Variable

torch = pytest.importorskip("torch")


# =============================================================================
# Registration and traversal
# =============================================================================
class Two(L.Layer):
    def __init__(self):
        super().__init__()
        self.z = L.Linear(2, in_size=3)
        self.a = Parameter(np.zeros(2, np.float32), name="a")
        self.m = L.Linear(4, in_size=2, nobias=True)


def test_params_in_definition_order_with_paths():
    net = Two()
    assert [n for n, _ in net.named_params()] == ["z/W", "z/b", "a", "m/W"]
    assert [p.shape for p in net.params()] == [(3, 2), (2,), (2,), (2, 4)]
    assert [n for n, _ in net.named_children()] == ["z", "m"]


def test_reassign_and_delete_unregister():
    net = Two()
    net.z = None
    del net.m
    net.plain = Variable(np.ones(2))  # a plain Variable (RNN state) is not a parameter
    assert [n for n, _ in net.named_params()] == ["a"]
    net.z = L.Linear(1, in_size=1)  # re-registered, at the end of the order
    assert [n for n, _ in net.named_params()] == ["a", "z/W", "z/b"]


def test_shared_parameter_listed_once_and_cycles_terminate():
    net = Two()
    net.m.W = net.z.W  # tie weights
    assert [n for n, _ in net.named_params()] == ["z/W", "z/b", "a"]
    net.z.parent = net  # a cycle must not loop forever
    assert len(list(net.params())) == 3


def test_subclass_without_super_init_still_registers():
    class Forgetful(L.Layer):
        def __init__(self):
            self.W = Parameter(np.ones(2))

    assert [n for n, _ in Forgetful().named_params()] == ["W"]


def test_cleargrads_and_count():
    net = Two()
    for p in net.params():
        p.grad = Variable(np.ones_like(p.data))
    net.cleargrads()
    assert all(p.grad is None for p in net.params())
    assert net.count_params() == 6 + 2 + 2 + 8


def test_repr_tree_shapes_and_counts():
    np.random.seed(0)
    model = mibun.models.MLP((5, 2))
    text = repr(model)
    assert text.splitlines()[0] == "MLP(activation=sigmoid)  # 7 params + lazy"
    model(np.zeros((1, 3), np.float32))
    lines = repr(model).splitlines()
    assert lines[0] == "MLP(activation=sigmoid)  # 32 params"
    assert lines[1] == ("  (l0): Linear(in_size=3, out_size=5)  W (3, 5) float32, "
                        "b (5,) float32  # 20 params")
    assert "(l1): Linear(in_size=5, out_size=2)" in lines[2]


# =============================================================================
# state_dict, save / load
# =============================================================================
def snapshot(layer):
    return {n: v.data.copy() for n, v in layer._state_items()}


def test_state_dict_roundtrip_and_copies():
    a, b = Two(), Two()
    sd = a.state_dict()
    assert list(sd) == ["z/W", "z/b", "a", "m/W"]
    sd["z/W"][...] = 7  # a copy: the layer is not changed through it
    assert not np.any(a.z.W.data == 7)
    b.load_state_dict(a.state_dict())
    for (n, p), (_, q) in zip(a.named_params(), b.named_params()):
        np.testing.assert_array_equal(p.data, q.data)
        assert p.data is not q.data


def test_load_state_dict_validates_everything_first():
    a, b = Two(), Two()
    before = snapshot(b)
    sd = a.state_dict()
    sd["m/W"] = np.zeros((2, 5), np.float32)  # the last entry is wrong
    with pytest.raises(ValueError, match=r"'m/W' has shape \(2, 5\) in the file but \(2, 4\)"):
        b.load_state_dict(sd)
    sd = a.state_dict()
    sd["a"] = sd["a"].astype(np.float64)
    with pytest.raises(ValueError, match="'a' has dtype float64 in the file but float32"):
        b.load_state_dict(sd)
    sd = a.state_dict()
    del sd["z/b"]
    sd["extra"] = np.zeros(1)
    with pytest.raises(ValueError, match="'z/b' is missing") as e:
        b.load_state_dict(sd)
    assert "'extra' is in the file but not in the model" in str(e.value)
    for n, v in snapshot(b).items():
        np.testing.assert_array_equal(v, before[n])


def test_state_dict_of_lazy_layer_is_a_clear_error():
    with pytest.raises(ValueError, match="'W' is not initialised yet"):
        L.Linear(3).state_dict()


def test_save_load_weights_exact_path_and_lazy_target(tmp_path):
    np.random.seed(0)
    src = mibun.models.MLP((4, 3))
    x = np.random.rand(2, 5).astype(np.float32)
    y = src(x)
    path = tmp_path / "weights"  # no .npz appended (np.savez would add one)
    src.save_weights(path)
    assert path.exists() and not (tmp_path / "weights.npz").exists()
    dst = mibun.models.MLP((4, 3))  # lazy: the file gives the shapes
    dst.load_weights(path)
    np.testing.assert_array_equal(dst(x).data, y.data)
    wrong = mibun.models.MLP((6, 3))
    wrong(x)
    with pytest.raises(ValueError, match="load_weights"):
        wrong.load_weights(path)


# =============================================================================
# Linear
# =============================================================================
def test_linear_init_like_dezero_and_float32():
    np.random.seed(3)
    layer = L.Linear(50, in_size=200)
    np.random.seed(3)
    expected = np.random.randn(200, 50).astype(np.float32) * np.float32(np.sqrt(1 / 200))
    np.testing.assert_array_equal(layer.W.data, expected)
    assert layer.W.dtype == np.float32 and layer.b.dtype == np.float32
    assert np.all(layer.b.data == 0)
    x = Variable(np.random.rand(4, 200).astype(np.float32))
    y = layer(x)
    F.sum(y * y).backward()
    assert y.dtype == np.float32
    assert layer.W.grad.dtype == np.float32 and x.grad.dtype == np.float32
    assert L.Linear(3, in_size=2, dtype=np.float64).W.dtype == np.float64


def test_linear_lazy_and_mismatch_error():
    layer = L.Linear(3)
    assert layer.W.data is None
    layer(np.ones((2, 7), np.float32))
    assert layer.W.shape == (7, 3) and layer.in_size == 7
    with pytest.raises(ValueError, match=r"L.Linear: the input has 6 features.*in_size=7"):
        layer(np.ones((2, 6), np.float32))


@contextlib.contextmanager
def bound(layer, values):
    """Temporarily replace parameters (by name) with the given Variables."""
    saved = []
    for name, v in values.items():
        *path, attr = name.split("/")
        owner = layer
        for p in path:
            owner = getattr(owner, p)
        saved.append((owner, attr, owner.__dict__[attr]))
        object.__setattr__(owner, attr, v)  # bypass registration: test-only rebinding
    try:
        yield
    finally:
        for owner, attr, old in saved:
            object.__setattr__(owner, attr, old)


def functional(layer, names, run):
    """A function of (x, *params) calling ``run(layer, x)`` with those parameters."""
    def fn(x, *ps):
        with bound(layer, dict(zip(names, ps))):
            return run(layer, x)
    return fn


def param_arrays(layer, names):
    d = dict(layer.named_params())
    return [d[n].data.astype(np.float64) for n in names]


def test_linear_vs_torch():
    np.random.seed(0)
    layer = L.Linear(4, in_size=3)
    names = ["W", "b"]
    fn = functional(layer, names, lambda lay, x: lay(x))
    tfn = lambda x, W, b: torch.nn.functional.linear(x, W.T, b)
    check_op(fn, tfn, (5, 3), *param_arrays(layer, names))
    x = np.random.rand(3, 5).T  # non-contiguous input
    check_op(fn, tfn, x, *param_arrays(layer, names))
    layer = L.Linear(2, in_size=3, nobias=True)
    check_op(functional(layer, ["W"], lambda lay, x: lay(x)),
             lambda x, W: x @ W, (4, 3), *param_arrays(layer, ["W"]))


# =============================================================================
# EmbedID
# =============================================================================
def test_embed_id_vs_torch():
    np.random.seed(0)
    layer = L.EmbedID(7, 3)
    assert layer.W.dtype == np.float32
    ids = np.array([[0, 6, 2], [2, 2, 5]])  # repeated ids accumulate gradients
    fn = functional(layer, ["W"], lambda lay, x: lay(x))
    check_op(lambda W: fn(ids, W), lambda W: torch.nn.functional.embedding(
        torch.tensor(ids), W), param_arrays(layer, ["W"])[0])


# =============================================================================
# Recurrent layers: several steps, compared with torch.nn.RNN / LSTM / GRU
# =============================================================================
def run_steps(layer, xs):
    layer.reset_state()
    return F.stack([layer(xs[t]) for t in range(xs.shape[0])])


def _T(v):
    return v.transpose(0, 1)


RNN_NAMES = ["x2h/W", "x2h/b", "h2h/W"]
LSTM_NAMES = [f"{s}/{p}" for s in ("x2f", "x2i", "x2o", "x2u") for p in ("W", "b")] + [
    f"h2{g}/W" for g in "fiou"]
GRU_NAMES = [f"{s}/{p}" for s in ("x2r", "x2z", "x2n") for p in ("W", "b")] + [
    "h2r/W", "h2z/W", "h2n/W", "h2n/b"]


def _torch_run(cls, xs, H, w_ih, w_hh, b_ih, b_hh, **kw):
    """Run ``torch.nn.<cls>`` on ``xs`` with the given (differentiable) weights."""
    module = cls(xs.shape[-1], H, **kw).double()
    weights = {"weight_ih_l0": w_ih, "weight_hh_l0": w_hh, "bias_ih_l0": b_ih,
               "bias_hh_l0": b_hh}
    return torch.func.functional_call(module, weights, (xs,))[0]


def torch_rnn(xs, Wx, bx, Wh):
    return _torch_run(torch.nn.RNN, xs, Wx.shape[1], _T(Wx), _T(Wh), bx, torch.zeros_like(bx))


def torch_lstm(xs, Wf, bf, Wi, bi, Wo, bo, Wu, bu, Hf, Hi, Ho, Hu):
    # PyTorch stacks the gates as (i, f, g, o) rows of W^T; DeZero's u is PyTorch's g.
    w_ih = torch.cat([_T(Wi), _T(Wf), _T(Wu), _T(Wo)])
    w_hh = torch.cat([_T(Hi), _T(Hf), _T(Hu), _T(Ho)])
    b_ih = torch.cat([bi, bf, bu, bo])
    return _torch_run(torch.nn.LSTM, xs, Wf.shape[1], w_ih, w_hh, b_ih, torch.zeros_like(b_ih))


def torch_gru(xs, Wr, br, Wz, bz, Wn, bn, Hr, Hz, Hn, bhn):
    # PyTorch stacks (r, z, n); b_hn sits inside r * (h W_hn + b_hn) as in mibun's h2n.
    w_ih = torch.cat([_T(Wr), _T(Wz), _T(Wn)])
    w_hh = torch.cat([_T(Hr), _T(Hz), _T(Hn)])
    b_ih = torch.cat([br, bz, bn])
    b_hh = torch.cat([torch.zeros_like(br), torch.zeros_like(bz), bhn])
    return _torch_run(torch.nn.GRU, xs, Wr.shape[1], w_ih, w_hh, b_ih, b_hh)


@pytest.mark.parametrize("cls,names,tfn", [
    (L.RNN, RNN_NAMES, torch_rnn),
    (L.LSTM, LSTM_NAMES, torch_lstm),
    (L.GRU, GRU_NAMES, torch_gru),
])
def test_recurrent_vs_torch(cls, names, tfn):
    np.random.seed(1)
    layer = cls(3, in_size=2)
    ps = param_arrays(layer, names)
    for n, p in zip(names, ps):
        if n.endswith("/b"):  # nonzero biases, so a misplaced bias shows
            p[...] = np.random.uniform(-0.5, 0.5, p.shape)
    fn = functional(layer, names, run_steps)
    check_op(fn, tfn, (3, 2, 2), *ps, rtol=1e-6, atol=1e-9)


def test_rnn_in_size_differs_from_hidden_size():
    # DeZero built h2h with in_size=in_size, which fails for in_size != hidden_size.
    rnn = L.RNN(4, in_size=2)
    x = np.ones((3, 2), np.float32)
    rnn(x)
    h = rnn(x)
    assert h.shape == (3, 4) and h.dtype == np.float32


@pytest.mark.parametrize("cls", [L.RNN, L.LSTM, L.GRU])
def test_recurrent_state_reset_and_truncated_bptt(cls):
    np.random.seed(0)
    layer = cls(3)
    x = np.random.rand(2, 4).astype(np.float32)
    y1 = layer(x)
    layer(x)
    layer.reset_state()
    np.testing.assert_array_equal(layer(x).data, y1.data)
    loss = F.sum(layer(x))
    loss.backward()
    loss.unchain_backward()  # truncated BPTT: the next backward stops here
    layer.cleargrads()
    F.sum(layer(x)).backward()
    assert all(p.grad is None or p.grad.dtype == np.float32 for p in layer.params())


# =============================================================================
# Dropout and BatchNorm layers, buffers
# =============================================================================
def test_dropout_layer():
    layer = L.Dropout(0.5)
    x = np.ones((100, 100), np.float32)
    with mibun.test_mode():
        np.testing.assert_array_equal(layer(x).data, x)
    y = layer(x).data
    assert y.dtype == np.float32
    assert 0.4 < np.mean(y == 0) < 0.6
    assert np.allclose(y[y != 0], 2.0)


def test_batchnorm_buffers_are_state_not_params():
    bn = L.BatchNorm(in_size=3)
    assert [n for n, _ in bn.named_params()] == ["gamma", "beta"]
    assert list(bn.state_dict()) == ["gamma", "beta", "avg_mean", "avg_var"]
    assert bn.avg_mean.data.dtype == np.float32  # DeZero code reads bn.avg_mean.data
    lazy = L.BatchNorm()
    lazy.load_state_dict(bn.state_dict())
    assert lazy.avg_var.data.shape == (3,)


def test_assigning_an_array_to_a_buffer_sets_its_data():
    # It used to replace the buffer's Variable by the bare array: state_dict then read
    # ndarray.data (a memoryview) and load_state_dict crashed.
    bn = L.BatchNorm(in_size=3)
    buf = bn.avg_mean
    bn.avg_mean = np.full(3, 2.0, np.float32)
    assert bn.avg_mean is buf and buf.data.tolist() == [2.0, 2.0, 2.0]
    assert [n for n, _ in bn.named_buffers()] == ["avg_mean", "avg_var"]
    bn(np.zeros((4, 3), np.float32))  # the running mean moves towards 0
    np.testing.assert_allclose(bn.avg_mean.data, 1.8)
    bn.load_state_dict(bn.state_dict())
    with pytest.raises(TypeError, match="avg_var is a buffer"):
        bn.avg_var = [1.0, 1.0, 1.0]
    bn.avg_var = mibun.Variable(np.ones(3, np.float32))  # a new Variable replaces it
    assert bn.state_dict()["avg_var"].tolist() == [1.0, 1.0, 1.0]


def test_to_gpu_without_cupy_is_a_clear_error():
    if mibun.backend.gpu_enable:
        pytest.skip("CuPy is installed")
    with pytest.raises(RuntimeError, match="CuPy is not installed"):
        L.Linear(2, in_size=2).to_gpu()
    layer = L.Linear(2, in_size=2)
    assert layer.to_cpu() is layer


@pytest.mark.gpu
def test_to_gpu_roundtrip():
    import cupy
    bn = L.BatchNorm(in_size=3)
    bn.to_gpu()
    assert isinstance(bn.gamma.data, cupy.ndarray)
    assert isinstance(bn.avg_mean.data, cupy.ndarray)
    sd = bn.state_dict()
    assert isinstance(sd["avg_mean"], np.ndarray)
    bn.load_state_dict(sd)
    assert isinstance(bn.avg_mean.data, cupy.ndarray)
    bn.to_cpu()
    assert isinstance(bn.beta.data, np.ndarray)


# =============================================================================
# Conv2d, Deconv2d
# =============================================================================
@pytest.mark.parametrize("kernel,stride,pad", [(3, 1, 0), ((3, 2), 2, 1), (1, (1, 2), 0)])
def test_conv2d_vs_torch(kernel, stride, pad):
    np.random.seed(0)
    layer = L.Conv2d(4, kernel, stride, pad, in_channels=3)
    b = param_arrays(layer, ["b"])[0]
    b[...] = np.random.uniform(-1, 1, b.shape)
    fn = functional(layer, ["W", "b"], lambda lay, x: lay(x))
    check_op(fn, lambda x, W, b: torch.nn.functional.conv2d(x, W, b, stride, pad),
             (2, 3, 6, 5), param_arrays(layer, ["W"])[0], b)


@pytest.mark.parametrize("kernel,stride,pad", [(3, 1, 0), (3, 2, 1), ((2, 3), (2, 1), 0)])
def test_deconv2d_vs_torch(kernel, stride, pad):
    np.random.seed(0)
    layer = L.Deconv2d(2, kernel, stride, pad, in_channels=3)
    assert layer.W.shape[:2] == (3, 2)
    b = param_arrays(layer, ["b"])[0]
    b[...] = np.random.uniform(-1, 1, b.shape)
    fn = functional(layer, ["W", "b"], lambda lay, x: lay(x))
    check_op(fn, lambda x, W, b: torch.nn.functional.conv_transpose2d(x, W, b, stride, pad),
             (2, 3, 4, 3), param_arrays(layer, ["W"])[0], b)


def test_conv_init_lazy_float32_and_errors():
    np.random.seed(0)
    conv = L.Conv2d(8, 3, pad=1, nobias=True)
    y = conv(np.random.rand(2, 5, 6, 6).astype(np.float32))
    assert conv.W.shape == (8, 5, 3, 3) and conv.b is None
    assert y.shape == (2, 8, 6, 6) and y.dtype == np.float32
    np.random.seed(1)
    big = L.Conv2d(64, 3, in_channels=32)
    assert abs(big.W.data.std() - np.sqrt(1 / (32 * 9))) < 0.005
    with pytest.raises(ValueError, match=r"L.Conv2d: expected an input of shape \(N, 5, H, W\)"
                                         r".*\n  x: shape=\(2, 4, 6, 6\) dtype=float32"
                                         r"\n  W: shape=\(8, 5, 3, 3\) dtype=float32$"):
        conv(np.zeros((2, 4, 6, 6), np.float32))
    with pytest.raises(ValueError, match="L.Conv2d"):
        conv(np.zeros((5, 6, 6), np.float32))
    de = L.Deconv2d(3, 2, stride=2)
    assert de(np.zeros((1, 4, 3, 3), np.float32)).shape == (1, 3, 6, 6)
    assert de.W.shape == (4, 3, 2, 2)
    with pytest.raises(ValueError, match="L.Deconv2d"):
        de(np.zeros((1, 3, 3, 3), np.float32))
    # A lazy layer given a non-image: the same clear error (it was an AttributeError
    # while describing the not-yet-created W).
    with pytest.raises(ValueError, match=r"shape \(N, C, H, W\)(.|\n)*W: \(lazy\)"):
        L.Conv2d(3, 3)(np.zeros((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match="L.Linear: the input must have a feature axis"):
        L.Linear(3)(np.float32(2.0))


# =============================================================================
# BatchNorm vs torch: batch statistics, running statistics, test mode
# =============================================================================
@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 2, 3)])
def test_batchnorm_vs_torch(shape):
    np.random.seed(0)
    C = shape[1]
    layer = L.BatchNorm(decay=0.8, eps=1e-3, in_size=C, dtype=np.float64)
    gamma = np.random.uniform(0.5, 1.5, C)
    beta = np.random.uniform(-1, 1, C)
    fn = functional(layer, ["gamma", "beta"], lambda lay, x: lay(x))
    check_op(fn, lambda x, g, b: torch.nn.functional.batch_norm(
        x, None, None, g, b, training=True, eps=1e-3), shape, gamma, beta,
        gc_rtol=1e-3, gc_atol=1e-4)

    # running statistics: the same update as torch with momentum = 1 - decay
    layer = L.BatchNorm(decay=0.8, eps=1e-3)
    x = np.random.rand(*shape)
    rm, rv = torch.zeros(C, dtype=torch.float64), torch.ones(C, dtype=torch.float64)
    for _ in range(3):
        layer(x)
        torch.nn.functional.batch_norm(torch.tensor(x), rm, rv, training=True, momentum=0.2,
                                       eps=1e-3)
    np.testing.assert_allclose(layer.avg_mean.data, rm.numpy(), rtol=1e-12)
    np.testing.assert_allclose(layer.avg_var.data, rv.numpy(), rtol=1e-12)
    assert layer.gamma.dtype == np.float64  # the lazy layer takes the input's dtype

    # test mode: the running statistics, unchanged by the call
    gamma, beta = layer.gamma.data, layer.beta.data
    fn = functional(layer, ["gamma", "beta"], lambda lay, x: lay(x))
    with mibun.test_mode():
        check_op(fn, lambda x, g, b: torch.nn.functional.batch_norm(
            x, rm, rv, g, b, training=False, eps=1e-3), shape, gamma, beta)
    np.testing.assert_allclose(layer.avg_mean.data, rm.numpy(), rtol=1e-12)


def test_batchnorm_float32_lazy():
    bn = L.BatchNorm()
    y = bn(np.random.rand(5, 4, 3, 3).astype(np.float32))
    assert y.dtype == np.float32 and bn.gamma.dtype == np.float32
    assert bn.avg_mean.data.dtype == np.float32 and bn.avg_mean.data.shape == (4,)
    F.sum(y * y).backward()
    assert bn.gamma.grad.dtype == np.float32


def test_dezero_flatten_params():
    d = {}
    Two()._flatten_params(d)
    assert list(d) == ["z/W", "z/b", "a", "m/W"]
    d = {}
    Two()._flatten_params(d, "net")
    assert list(d) == ["net/z/W", "net/z/b", "net/a", "net/m/W"]


# =============================================================================
# Issue 9: bad settings fail at construction, bad inputs with the layer's name
# =============================================================================
@pytest.mark.parametrize("make, error, match", [
    (lambda: L.Conv2d(4, 0), ValueError, "L.Conv2d: kernel_size must be positive"),
    (lambda: L.Conv2d(4, (3, 0)), ValueError, "L.Conv2d: kernel_size must be positive"),
    (lambda: L.Conv2d(0, 3), ValueError, "L.Conv2d: out_channels must be positive"),
    (lambda: L.Conv2d(4, 3, stride=0), ValueError, "L.Conv2d: stride must be positive"),
    (lambda: L.Conv2d(4, 3, pad=-1), ValueError, r"L.Conv2d: pad must be >= 0"),
    (lambda: L.Deconv2d(4, 3, in_channels=0), ValueError, "L.Deconv2d: in_channels"),
    (lambda: L.Conv2d(4, 2.5), TypeError, "L.Conv2d: kernel_size must be an int"),
    (lambda: L.Linear(0), ValueError, "L.Linear: out_size must be positive"),
    (lambda: L.Linear(3, in_size=-2), ValueError, "L.Linear: in_size must be positive"),
    (lambda: L.Linear("3"), TypeError, "L.Linear: out_size must be an int"),
    (lambda: L.Linear(3, dtype=np.int64), ValueError, "L.Linear: dtype must be a floating"),
    (lambda: L.Linear(3, dtype="nonsense"), TypeError, "L.Linear: dtype must be a NumPy"),
    (lambda: L.LSTM(0), ValueError, "L.LSTM: hidden_size must be positive"),
    (lambda: L.RNN(-1), ValueError, "L.RNN: hidden_size must be positive"),
    (lambda: L.GRU(None), TypeError, "L.GRU: hidden_size must be an int"),
    (lambda: L.BatchNorm(decay=2.0), ValueError, r"L.BatchNorm: decay must be .* \[0, 1\]"),
    (lambda: L.BatchNorm(eps=-1e-5), ValueError, "L.BatchNorm: eps must be"),
    (lambda: L.BatchNorm(decay=float("nan")), ValueError, "L.BatchNorm: decay"),
    (lambda: L.EmbedID(0, 3), ValueError, "L.EmbedID: in_size must be positive"),
    (lambda: L.Dropout(1.0), ValueError, r"L.Dropout: dropout_ratio must be .* \[0, 1\)"),
])
def test_bad_layer_settings_fail_at_construction(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_torch_refuses_integer_weights_and_an_empty_state():
    with pytest.raises(RuntimeError, match="floating point"):
        torch.nn.Linear(2, 3, dtype=torch.int64)
    with pytest.raises(ValueError, match="hidden_size"):
        torch.nn.LSTM(2, 0)


@pytest.mark.parametrize("layer", [L.Linear(2), L.Conv2d(2, 3), L.BatchNorm(), L.RNN(3),
                                   L.LSTM(3), L.GRU(3)])
@pytest.mark.parametrize("x", [None, "abc", [[1.0, 2.0]], {"a": 1}])
def test_layers_name_a_wrong_kind_of_input(layer, x):
    with pytest.raises(TypeError, match=r"L\.\w+: the input must be a Variable or an ndarray"):
        layer(x)


def test_batchnorm_refuses_a_1d_input_and_eps_below_zero():
    with pytest.raises(ValueError, match=r"L.BatchNorm: the input must be \(N, C\)"):
        L.BatchNorm()(np.ones(3, np.float32))
    x = np.ones((4, 2))
    with pytest.raises(ValueError, match="F.batch_norm: eps must be a finite number >= 0"):
        F.batch_norm(x, np.ones(2), np.zeros(2), np.zeros(2), np.ones(2), eps=-1e-3)


@pytest.mark.parametrize("cell", [L.RNN, L.LSTM, L.GRU])
def test_recurrent_layers_say_reset_state_when_the_batch_changes(cell):
    np.random.seed(0)
    layer = cell(3)
    layer(np.ones((4, 2), np.float32))
    with pytest.raises(ValueError, match=r"batch of shape \(2,\) but the state .* has "
                                         r"\(4,\); call reset_state\(\)"):
        layer(np.ones((2, 2), np.float32))
    layer.reset_state()
    assert layer(np.ones((2, 2), np.float32)).shape == (2, 3)
