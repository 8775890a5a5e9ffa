"""Proof that it learns: real models on real (bundled) data, seeded, each a few seconds."""
import numpy as np
import pytest

import mibun
import mibun.functions as F
import mibun.layers as L
from mibun import DataLoader, datasets, optimizers
from mibun.checkpoint import load_checkpoint, save_checkpoint
from mibun.dataloaders import SeqDataLoader
from mibun.models import MLP, SeqRegressor, Sequential, SmallCNN


def train_classifier(model, optimizer, train, epochs, batch_size, seed, schedule=None):
    loader = DataLoader(train, batch_size, seed=seed)
    for _ in range(epochs):
        for x, t in loader:
            loss = F.softmax_cross_entropy(model(x), t)
            model.cleargrads()
            loss.backward()
            optimizer.update()
        if schedule is not None:
            schedule.step()
    return float(loss.data)


def accuracy(model, data, label):
    with mibun.no_grad(), mibun.test_mode():
        y = model(data)
    assert y.dtype == np.float32  # float32 end to end
    return float(F.accuracy(y, label).data)


def test_mlp_learns_digits():
    np.random.seed(0)
    train, test = datasets.Digits(train=True), datasets.Digits(train=False)
    model = MLP((100, 10), activation=F.relu)
    optimizer = optimizers.Adam(0.005).setup(model)
    train_classifier(model, optimizer, train, 20, 32, seed=0,
                     schedule=optimizers.CosineLR(optimizer, 20))
    assert all(p.dtype == np.float32 for p in model.params())
    assert accuracy(model, test.data, test.label) >= 0.97


def test_small_cnn_learns_digits():
    np.random.seed(0)
    train = datasets.Digits(train=True, flatten=False)
    test = datasets.Digits(train=False, flatten=False)
    model = SmallCNN(10)
    optimizer = optimizers.Adam(0.002).setup(model)
    train_classifier(model, optimizer, train, 8, 32, seed=0,
                     schedule=optimizers.CosineLR(optimizer, 8))
    assert accuracy(model, test.data, test.label) >= 0.97


def test_spiral_dezero_example():
    # The book's step 48: hidden 10, sigmoid, SGD lr 1.0, 300 epochs, batch 30.
    np.random.seed(0)
    train = datasets.Spiral(train=True)
    model = MLP((10, 3))
    optimizer = optimizers.SGD(1.0).setup(model)
    train_classifier(model, optimizer, train, 300, 30, seed=0)
    assert accuracy(model, train.data, train.label) >= 0.95


@pytest.mark.parametrize("cell", ["lstm", "rnn", "gru"])
def test_recurrent_learns_sin_curve(cell):
    # Truncated BPTT over the noisy sine, then one-step-ahead prediction of the cosine.
    np.random.seed(0)
    train, test = datasets.SinCurve(train=True), datasets.SinCurve(train=False)
    model = SeqRegressor(32, 1, cell=cell)
    optimizer = optimizers.Adam(0.01).setup(model)
    loader = SeqDataLoader(train, batch_size=30)
    bptt_length = 30
    for _ in range(10):
        model.reset_state()
        loss = 0
        for count, (x, t) in enumerate(loader, 1):
            loss += F.mean_squared_error(model(x), t)
            if count % bptt_length == 0 or count == len(loader):
                model.cleargrads()
                loss.backward()
                loss.unchain_backward()
                optimizer.update()
                loss = 0
    model.reset_state()
    with mibun.no_grad():
        pred = np.array([model(test.data[i:i + 1]).data[0, 0] for i in range(len(test))])
    assert pred.dtype == np.float32
    mse = np.mean((pred - test.label[:, 0]) ** 2)
    zero = np.mean(test.label ** 2)  # predicting 0 everywhere: 0.5
    assert mse < zero / 20, (mse, zero)


def _resume_model():
    return Sequential(L.Linear(32), L.BatchNorm(), F.relu, L.Linear(10))


def _batches(n_steps, n_data, batch_size=64):
    rng = np.random.default_rng(0)
    return [rng.choice(n_data, batch_size, replace=False) for _ in range(n_steps)]


def _steps(model, optimizer, train, batches):
    losses = []
    for idx in batches:
        loss = F.softmax_cross_entropy(model(train.data[idx]), train.label[idx])
        model.cleargrads()
        loss.backward()
        optimizer.update()
        losses.append(float(loss.data))
    return losses


@pytest.mark.parametrize("opt_cls", [optimizers.Adam, optimizers.MomentumSGD])
def test_save_load_resume_is_identical(tmp_path, opt_cls):
    train = datasets.Digits(train=True)
    batches = _batches(12, len(train))

    np.random.seed(0)
    model = _resume_model()
    optimizer = opt_cls(lr=0.01).setup(model)
    uninterrupted = _steps(model, optimizer, train, batches)

    np.random.seed(0)
    model = _resume_model()
    optimizer = opt_cls(lr=0.01).setup(model)
    first = _steps(model, optimizer, train, batches[:5])
    path = tmp_path / "ckpt.npz"
    save_checkpoint(path, model, optimizer, epoch=0, step=5)
    del model, optimizer

    np.random.seed(123)  # a different init, and lazy: the checkpoint must supply everything
    model = _resume_model()
    optimizer = opt_cls(lr=0.5).setup(model)
    meta = load_checkpoint(path, model, optimizer)
    assert meta == {"epoch": 0, "step": 5}
    assert optimizer.lr == 0.01
    rest = _steps(model, optimizer, train, batches[5:])
    assert first + rest == uninterrupted  # bit for bit
    np.random.seed(0)
    ref = _resume_model()
    ref_opt = opt_cls(lr=0.01).setup(ref)
    _steps(ref, ref_opt, train, batches)
    with mibun.test_mode():  # the BatchNorm running statistics came back too
        np.testing.assert_array_equal(model(train.data[:50]).data, ref(train.data[:50]).data)
    for (name, a), b in zip(model.state_dict().items(), ref.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=name)


def _epochs(model, optimizer, schedule, loader, epochs, start=0, path=None):
    losses = []
    for epoch in range(start, epochs):
        for x, t in loader:
            loss = F.softmax_cross_entropy(model(x), t)
            model.cleargrads()
            loss.backward()
            optimizer.update()
            losses.append(float(loss.data))
        schedule.step()
        if path is not None:
            save_checkpoint(path, model, optimizer, epoch=epoch)
    return losses


def test_resume_by_epochs_with_shuffling_loader_and_schedule(tmp_path):
    # The examples' resume recipe: a seeded DataLoader (set_epoch) and a schedule driven
    # by the saved epoch continue exactly where the interrupted run stopped.
    train = datasets.Digits(train=True)

    def setup(seed):
        np.random.seed(seed)
        model = MLP((32, 10), activation=F.relu)
        optimizer = optimizers.Adam(0.01).setup(model)
        schedule = optimizers.CosineLR(optimizer, t_max=3)
        return model, optimizer, schedule, DataLoader(train, 256, seed=7)

    uninterrupted = _epochs(*setup(0), epochs=3)
    path = tmp_path / "ckpt.npz"
    first = _epochs(*setup(0), epochs=1, path=path)
    model, optimizer, schedule, loader = setup(1)  # a fresh process
    start = load_checkpoint(path, model, optimizer)["epoch"] + 1
    schedule.last_epoch = start
    loader.set_epoch(start)
    rest = _epochs(model, optimizer, schedule, loader, epochs=3, start=start)
    assert first + rest == uninterrupted  # bit for bit


# --- issue 11: mibun train is built on DataLoader / SeqDataLoader ----------------------
@pytest.mark.parametrize("dataset, model, loader", [
    ("spiral", "mlp", DataLoader), ("sincurve", "lstm", SeqDataLoader)])
def test_mibun_train_takes_its_batches_from_the_data_loaders(tmp_path, monkeypatch, capsys,
                                                            dataset, model, loader):
    from mibun import dataloaders, train
    seen = []
    gather = dataloaders.DataLoader._gather

    def spy(self, indices):
        seen.append((type(self), len(indices)))
        return gather(self, indices)
    monkeypatch.setattr(dataloaders.DataLoader, "_gather", spy)
    cfg = train.make_config(dataset=dataset, model=model, epochs=1, hidden=8)
    trainer = train.Trainer(cfg, np, str(tmp_path))
    assert type(trainer.loader) is loader
    assert trainer.run(lambda *a: None)
    n_train = sum(n for cls, n in seen if cls is loader)
    if loader is DataLoader:  # one pass over the training set, then the test set
        assert n_train >= len(trainer.train_set) + len(trainer.test_set)
    else:
        assert n_train == (len(trainer.train_set) // cfg["batch_size"]) * cfg["batch_size"]


def test_train_module_leaves_cupy_to_the_backend():
    import inspect

    from mibun import train
    src = inspect.getsource(train)
    assert "import cupy" not in src and "from cupy" not in src
    assert "_rows_input" not in src and "get_batch(np.arange(start" not in src


def test_mibun_train_refuses_more_streams_than_the_sequence_has_steps(tmp_path):
    from mibun import train
    cfg = train.make_config(dataset="sincurve", batch_size=5000, epochs=1)
    with pytest.raises(train.ConfigError, match="--batch-size 5000 is larger than the "
                                                r"sequence \(\d+ steps\)"):
        train.Trainer(cfg, np, str(tmp_path))
