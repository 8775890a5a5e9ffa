"""Layers, models, optimizers, data and checkpoints on CuPy, against the same run on NumPy.

Every test here needs CuPy and a GPU and is skipped without them (the op tests run on CuPy
through ``check_op``; see tests/functions/conftest.py). The NumPy run of the same seeded
model is the reference: a GPU result must agree with it to float64 round-off.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

import mibun
import mibun.functions as F
import mibun.layers as L
from mibun import DataLoader, backend, checkpoint, datasets, models, optimizers

pytestmark = pytest.mark.gpu
cupy = backend.cupy


def _close(a, b, rtol=1e-4, atol=1e-6, what=""):
    # float32 parameters: cuBLAS and cuDNN sum in another order than OpenBLAS
    np.testing.assert_allclose(backend.as_numpy(a), backend.as_numpy(b), rtol=rtol, atol=atol,
                               err_msg=what)


def _grads(layer):
    return {name: backend.as_numpy(p.grad.data) for name, p in layer.named_params()
            if p.grad is not None}


LAYERS = {  # name: (factory, input shape, forward)
    "Linear": (lambda: L.Linear(5, in_size=4), (3, 4), None),
    "Conv2d": (lambda: L.Conv2d(3, 3, stride=1, pad=1, in_channels=2), (2, 2, 5, 5), None),
    "Deconv2d": (lambda: L.Deconv2d(3, 3, stride=2, pad=1, in_channels=2), (2, 2, 4, 4), None),
    "BatchNorm": (lambda: L.BatchNorm(), (6, 4), None),
    "RNN": (lambda: L.RNN(5, in_size=3), (2, 3), None),
    "LSTM": (lambda: L.LSTM(5, in_size=3), (2, 3), None),
    "GRU": (lambda: L.GRU(5, in_size=3), (2, 3), None),
}


def _run_layer(make, shape, on_gpu):
    np.random.seed(0)
    layer = make()
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    if on_gpu:
        layer.to_gpu()
        x = cupy.asarray(x)
    y = layer(x)
    if isinstance(layer, (L.RNN, L.LSTM, L.GRU)):
        y = layer(x * 0.5)  # a second step exercises the carried state
    (y * y).sum().backward()
    return backend.as_numpy(y.data), _grads(layer), layer


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_on_gpu_matches_numpy(name):
    make, shape, _ = LAYERS[name]
    y_np, g_np, _ = _run_layer(make, shape, on_gpu=False)
    y_gpu, g_gpu, layer = _run_layer(make, shape, on_gpu=True)
    _close(y_gpu, y_np, what=f"{name} forward")
    assert g_gpu.keys() == g_np.keys()
    for k in g_np:
        _close(g_gpu[k], g_np[k], what=f"{name} gradient of {k}")
    for p in layer.params():
        assert isinstance(p.data, cupy.ndarray), f"{name}: a parameter left the GPU"


def _train_steps(opt_cls, on_gpu, steps=3, **kw):
    np.random.seed(0)
    model = models.MLP((16, 3))
    x = np.random.default_rng(2).standard_normal((8, 4)).astype(np.float32)
    t = np.arange(8) % 3
    if on_gpu:
        model.to_gpu()
        x, t = cupy.asarray(x), cupy.asarray(t)
    opt = opt_cls(**kw).setup(model)
    opt.add_hook(optimizers.WeightDecay(1e-3))
    opt.add_hook(optimizers.ClipGrad(1.0))
    for _ in range(steps):
        loss = F.softmax_cross_entropy(model(x), t)
        model.cleargrads()
        loss.backward()
        opt.update()
    return {k: backend.as_numpy(p.data) for k, p in model.named_params()}


@pytest.mark.parametrize("opt_cls", [optimizers.SGD, optimizers.MomentumSGD, optimizers.Adam,
                                     optimizers.AdamW, optimizers.RMSprop, optimizers.AdaGrad,
                                     optimizers.AdaDelta])
def test_optimizer_steps_on_gpu_match_numpy(opt_cls):
    ref = _train_steps(opt_cls, on_gpu=False)
    got = _train_steps(opt_cls, on_gpu=True)
    for k in ref:
        _close(got[k], ref[k], what=f"{opt_cls.__name__}: {k}")


def test_dataloader_to_gpu_yields_cupy():
    data = datasets.Spiral(train=True)
    loader = DataLoader(data, 10, shuffle=False)
    loader.to_gpu()
    x, t = next(iter(loader))
    assert isinstance(x, cupy.ndarray) and isinstance(t, cupy.ndarray)
    loader.to_cpu()
    x, t = next(iter(loader))
    assert isinstance(x, np.ndarray)


def test_checkpoint_from_gpu_loads_on_cpu_and_back(tmp_path):
    np.random.seed(0)
    model = models.MLP((8, 3))
    model(np.zeros((1, 4)))
    model.to_gpu()
    opt = optimizers.Adam().setup(model)
    x = cupy.asarray(np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32))
    loss = F.sum(model(x) ** 2)
    loss.backward()
    opt.update()
    path = tmp_path / "gpu.npz"
    checkpoint.save_checkpoint(path, model, opt, epoch=1)

    cpu_model = models.MLP((8, 3))
    cpu_model(np.zeros((1, 4)))
    cpu_opt = optimizers.Adam().setup(cpu_model)
    checkpoint.load_checkpoint(path, cpu_model, cpu_opt)
    for (k, p), q in zip(model.named_params(), cpu_model.params()):
        assert isinstance(q.data, np.ndarray)
        _close(q.data, p.data, rtol=0, atol=0, what=k)

    back = models.MLP((8, 3))
    back(np.zeros((1, 4)))
    back.to_gpu()
    checkpoint.load_checkpoint(path, back)
    for p, q in zip(model.params(), back.params()):
        assert isinstance(q.data, cupy.ndarray)
        _close(q.data, p.data, rtol=0, atol=0)


def test_train_command_on_gpu(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.join(os.path.dirname(__file__), "..", "src"), os.environ.get("PYTHONPATH", "")]))
    p = subprocess.run([sys.executable, "-m", "mibun", "train", "--device", "gpu", "--epochs",
                        "2", "--out", str(tmp_path)], capture_output=True, text=True, env=env,
                       timeout=300)
    assert p.returncode == 0, p.stderr
    assert "device gpu" in p.stdout
    ckpts = list(tmp_path.rglob("checkpoint.npz"))
    assert len(ckpts) == 1


def _device_to_host_copies(step, warmup=2, steps=3):
    """Count device-to-host memcpys during ``steps`` calls of ``step`` (CUPTI via torch)."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("the transfer count uses torch's CUDA profiler")
    from torch.profiler import ProfilerActivity, profile
    for _ in range(warmup):
        step()
    cupy.cuda.Device().synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            step()
        cupy.cuda.Device().synchronize()
    names = [e.name for e in prof.events()]
    kernels = [n for n in names if "Memcpy" not in n and "Memset" not in n]
    assert kernels, "the profiler saw no CuPy kernel: it cannot count CuPy's copies here"
    return sum(1 for n in names if "Memcpy DtoH" in n or "Memcpy Device -> Pageable" in n
               or "DtoH" in n)


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_training_step_makes_no_device_to_host_copy(kind):
    np.random.seed(0)
    if kind == "mlp":
        model = models.MLP((32, 10))
        x = cupy.random.standard_normal((16, 64)).astype(np.float32)
    else:
        model = models.SmallCNN(10)
        x = cupy.random.standard_normal((8, 1, 8, 8)).astype(np.float32)
    t = cupy.arange(x.shape[0]) % 10
    model.to_gpu()
    opt = optimizers.Adam().setup(model)

    def step():
        loss = F.softmax_cross_entropy(model(x), t)
        model.cleargrads()
        loss.backward()
        opt.update()

    assert _device_to_host_copies(step) == 0


def test_item_is_the_one_copy_asked_for():
    x = mibun.Variable(cupy.arange(3.0))

    def step():
        float(F.sum(x * 2).data)

    assert _device_to_host_copies(step, steps=3) >= 3  # the counter does see copies
