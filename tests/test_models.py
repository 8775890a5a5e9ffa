"""Models: containers, ready-made architectures, pretrained-weight loading (offline)."""
import numpy as np
import pytest

import mibun
import mibun.functions as F
import mibun.layers as L
from mibun import models
from mibun.models import MLP, VGG16, Model, ResNet, SeqRegressor, Sequential, SmallCNN


def test_top_level_exports():
    assert mibun.Model is Model and mibun.Layer is L.Layer


def test_sequential_layers_and_functions():
    np.random.seed(0)
    model = Sequential(L.Linear(5), F.relu, L.Linear(3), F.sigmoid)
    x = np.random.rand(4, 2).astype(np.float32)
    y = model(x)
    ref = F.sigmoid(model.l2(F.relu(model.l0(x))))
    np.testing.assert_array_equal(y.data, ref.data)
    assert len(model) == 4 and model[1] is F.relu
    assert repr(model).splitlines()[0] == "Sequential(l0, relu, l2, sigmoid)  # 33 params"
    assert [n for n, _ in model.named_params()] == ["l0/W", "l0/b", "l2/W", "l2/b"]
    with pytest.raises(TypeError, match="Sequential: expected a Layer or a function"):
        Sequential(L.Linear(2), 3)


def test_mlp_dezero_signature_and_default_sigmoid():
    np.random.seed(0)
    model = MLP((4, 2))
    x = np.random.rand(3, 5).astype(np.float32)
    ref = model.l1(F.sigmoid(model.l0(x)))
    np.testing.assert_array_equal(model(x).data, ref.data)
    assert [n for n, _ in model.named_params()] == ["l0/W", "l0/b", "l1/W", "l1/b"]


@pytest.mark.parametrize("shape", [(2, 1, 8, 8), (2, 1, 28, 28), (2, 3, 32, 32)])
def test_small_cnn_shapes(shape):
    np.random.seed(0)
    model = SmallCNN(num_classes=7)
    y = model(np.random.rand(*shape).astype(np.float32))
    assert y.shape == (2, 7) and y.dtype == np.float32
    assert model.conv1.W.shape[1] == shape[1]


@pytest.mark.parametrize("cell,cls", [("rnn", L.RNN), ("lstm", L.LSTM), ("gru", L.GRU)])
def test_seq_regressor(cell, cls):
    np.random.seed(0)
    model = SeqRegressor(6, out_size=2, cell=cell)
    assert isinstance(model.rnn, cls)
    x = np.random.rand(3, 4).astype(np.float32)
    y1 = model(x)
    assert y1.shape == (3, 2) and y1.dtype == np.float32
    y2 = model(x)
    assert not np.allclose(y1.data, y2.data)  # the state carries over
    model.reset_state()
    np.testing.assert_array_equal(model(x).data, y1.data)
    with pytest.raises(ValueError, match="cell must be one of"):
        SeqRegressor(4, cell="transformer")


def test_model_plot_calls_visualize(monkeypatch, tmp_path):
    seen = {}

    def fake_plot(y, verbose=True, to_file="graph.png"):
        seen.update(y=y, verbose=verbose, to_file=to_file)

    monkeypatch.setattr(mibun.visualize, "plot_dot_graph", fake_plot)
    np.random.seed(0)
    model = MLP((3, 2))
    model.plot(np.ones((1, 4), np.float32), to_file=str(tmp_path / "m.png"))
    assert seen["verbose"] is True and seen["to_file"] == str(tmp_path / "m.png")
    assert seen["y"].shape == (1, 2)


def test_model_plot_writes_dot(tmp_path):
    np.random.seed(0)
    path = tmp_path / "m.dot"
    MLP((3, 2)).plot(np.ones((1, 4), np.float32), to_file=str(path))
    assert "digraph" in path.read_text()

    class CallOnly(Model):  # DeZero's examples (step 59, vae.py) define __call__ only
        def __init__(self):
            super().__init__()
            self.fc = L.Linear(2)

        def __call__(self, x):
            return F.tanh(self.fc(x))

    CallOnly().plot(np.ones((1, 4), np.float32), to_file=str(path))
    assert "Tanh" in path.read_text()


# =============================================================================
# VGG16 and ResNet
# =============================================================================
def test_vgg16_structure_and_forward():
    np.random.seed(0)
    model = VGG16()
    names = [n for n, _ in model.named_params()]
    assert names[:4] == ["conv1_1/W", "conv1_1/b", "conv1_2/W", "conv1_2/b"]
    assert names[-6:] == ["fc6/W", "fc6/b", "fc7/W", "fc7/b", "fc8/W", "fc8/b"]
    conv = sum(p.size for n, p in model.named_params() if n.startswith("conv"))
    assert conv == 14_714_688  # the published VGG-16 convolutional part
    with mibun.test_mode(), mibun.no_grad():
        y = model(np.random.rand(1, 3, 32, 32).astype(np.float32))
    assert y.shape == (1, 1000) and y.dtype == np.float32
    assert model.fc6.W.shape == (512, 4096)  # lazily sized from 32x32 inputs


def _count_without_init(monkeypatch, n_layers):
    # Initialising ~60M weights takes seconds; the count only needs the shapes.
    monkeypatch.setattr(np.random, "randn", lambda *shape: np.zeros(shape))
    return ResNet(n_layers).count_params()


@pytest.mark.parametrize("n_layers,count", [
    # torchvision's counts plus conv1's bias (64), which DeZero's (Caffe's) ResNet has.
    (50, 25_557_032 + 64), (101, 44_549_160 + 64), (152, 60_192_808 + 64)])
def test_resnet_parameter_counts(monkeypatch, n_layers, count):
    assert _count_without_init(monkeypatch, n_layers) == count


def test_resnet_names_and_classes():
    assert models.ResNet50.__mro__[1] is ResNet
    with pytest.raises(ValueError, match="n_layers must be 50, 101 or 152"):
        ResNet(34)


def test_resnet50_forward_strides():
    np.random.seed(0)
    model = models.ResNet50()
    names = [n for n, _ in model.named_buffers()]
    assert names[:2] == ["bn1/avg_mean", "bn1/avg_var"]
    assert "res2/a/bn4/avg_var" in names and "res5/b2/bn3/avg_mean" in names
    x = np.random.rand(1, 3, 64, 64).astype(np.float32)
    with mibun.test_mode(), mibun.no_grad():
        h = F.pooling(F.relu(model.bn1(model.conv1(x))), 3, 2)
        assert h.shape == (1, 64, 15, 15)
        h = model.res2(h)
        assert h.shape == (1, 256, 15, 15)  # no downsampling in res2 (DeZero halved here)
        h = model.res3(h)
        assert h.shape == (1, 512, 8, 8)
        y = model(x)
    assert y.shape == (1, 1000) and y.dtype == np.float32


# =============================================================================
# Pretrained weights: local files and the download cache, never the network in tests
# =============================================================================
def test_pretrained_from_local_path(tmp_path):
    np.random.seed(0)
    src = MLP((3, 2))
    src(np.ones((1, 4), np.float32))
    path = tmp_path / "w.npz"
    src.save_weights(path)
    dst = MLP((3, 2))
    models._load_pretrained(dst, str(path), "file:///nowhere")
    for p, q in zip(src.params(), dst.params()):
        np.testing.assert_array_equal(p.data, q.data)
    with pytest.raises(TypeError, match="pretrained must be False, True or a path"):
        models._load_pretrained(dst, 3, "file:///nowhere")


def test_pretrained_true_downloads_once_into_the_cache(tmp_path, monkeypatch):
    np.random.seed(0)
    src_model = MLP((3, 2))
    src_model(np.ones((1, 4), np.float32))
    src = tmp_path / "remote" / "mlp.npz"
    src.parent.mkdir()
    src_model.save_weights(src)
    cache = tmp_path / "cache"
    monkeypatch.setenv("MIBUN_CACHE", str(cache))
    for _ in range(2):  # the second time from the cache, with the "server" gone
        dst = MLP((3, 2))
        models._load_pretrained(dst, True, src.as_uri())
        for p, q in zip(src_model.params(), dst.params()):
            np.testing.assert_array_equal(p.data, q.data)
        src.unlink(missing_ok=True)
    assert sorted(p.name for p in cache.iterdir()) == ["mlp.npz"]


def test_offline_download_is_a_clear_error_not_a_hang(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("MIBUN_CACHE", str(cache))
    # the template's "{}" is the depth; only the file name gets it (tmp_path may hold "50")
    missing = (tmp_path / "no" / "resnet{}.npz").as_uri().replace("%7B%7D", "{}")
    monkeypatch.setattr(ResNet, "WEIGHTS_PATH", missing)
    monkeypatch.setattr(np.random, "randn", lambda *shape: np.zeros(shape))
    with pytest.raises(ConnectionError, match="could not download .*resnet50.npz") as e:
        models.ResNet50(pretrained=True)
    assert "pretrained='path/to/resnet50.npz'" in str(e.value)
    assert list(cache.iterdir()) == []  # no partial file left in the cache


def test_silent_server_times_out_instead_of_hanging(tmp_path, monkeypatch):
    import functools
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)  # accepts the connection, never answers
    port = server.getsockname()[1]
    monkeypatch.setenv("MIBUN_CACHE", str(tmp_path))
    monkeypatch.setattr(models.utils, "get_file",
                        functools.partial(mibun.utils.get_file, timeout=0.3, quiet=True))
    try:
        with pytest.raises(ConnectionError, match="timed out") as e:
            models._load_pretrained(MLP((3, 2)), True, f"http://127.0.0.1:{port}/vgg16.npz")
    finally:
        server.close()
    assert "pretrained='path/to/vgg16.npz'" in str(e.value)
    assert list(tmp_path.iterdir()) == []


# --- issue 11: a model says how it reads a batch of whole examples (forward_batch) -----
def test_forward_batch_default_mlp_flattens_seq_regressor_reads_rows():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 2, 3, 4)).astype(np.float32)  # (N, C, H, W)
    np.random.seed(0)
    cnn = Sequential(L.Linear(3))
    assert np.array_equal(cnn.forward_batch(x.reshape(5, -1)).data,
                          cnn(x.reshape(5, -1)).data)  # Model's default: self(x)
    mlp = MLP((6, 3))
    assert np.array_equal(mlp.forward_batch(x).data, mlp(x.reshape(5, -1)).data)
    rnn = SeqRegressor(7, out_size=3)
    y = rnn.forward_batch(x)
    rnn.reset_state()
    for h in range(3):  # row h of every image: its C * W values, channel by channel
        want = rnn(x[:, :, h, :].reshape(5, 8))
    assert np.array_equal(y.data, want.data)
    sq = rng.standard_normal((5, 16)).astype(np.float32)  # flattened 4x4 images
    rnn2 = SeqRegressor(7, out_size=3)
    y = rnn2.forward_batch(sq)
    rnn2.reset_state()
    for h in range(4):
        want = rnn2(sq.reshape(5, 4, 4)[:, h])
    assert np.array_equal(y.data, want.data)
    again = rnn2.forward_batch(sq)  # the state is reset first
    assert np.array_equal(again.data, y.data)


def test_models_own_how_mibun_train_builds_and_feeds_them():
    from mibun import train
    from mibun.train_config import _MODEL_CLASSES

    np.random.seed(0)
    for name, cls_name in _MODEL_CLASSES.items():
        cfg = {"model": name, "hidden": 6, "dataset": "digits"}
        model = train._build_model(cfg, 10)
        assert type(model) is getattr(models, cls_name)
        assert model.recurrent is (name == "lstm")  # SeqRegressor: one time step per call
        y = model.forward_batch(np.zeros((2, 1, 8, 8), np.float32))
        assert y.shape == (2, 10)
    assert MLP.for_training(6, 3).l0.out_size == 6
    assert SeqRegressor.for_training(6, 1).rnn.hidden_size == 6
    assert Model.recurrent is False
    with pytest.raises(NotImplementedError, match="Sequential is not one of mibun train"):
        Sequential.for_training(6, 3)
