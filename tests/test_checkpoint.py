"""Checkpoints: atomic saves, all-or-nothing loads, no pickle."""
import os
import pickle
import zipfile

import numpy as np
import pytest

import mibun.layers as L
from mibun import Parameter, checkpoint
from mibun.checkpoint import load_checkpoint, save_checkpoint


class Net(L.Layer):
    def __init__(self, seed=0, hidden=4):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.W = Parameter(rng.standard_normal((3, hidden)).astype(np.float32), name="W")
        self.sub = L.Layer()
        self.sub.b = Parameter(rng.standard_normal(hidden).astype(np.float32), name="b")
        self.sub.register_buffer("running", rng.standard_normal(hidden).astype(np.float32))


class FakeOptimizer:
    """The optimizer interface checkpoint relies on: state_dict / validating load_state_dict."""

    def __init__(self, target, value=0.0):
        self.target = target
        self.t = 0
        self.m = {n: np.full(p.shape, value, np.float32) for n, p in target.named_params()}

    def state_dict(self):
        d = {n + "/m": m.copy() for n, m in self.m.items()}
        d["t"] = np.asarray(self.t)
        return d

    def load_state_dict(self, d):
        expected = {n + "/m": m for n, m in self.m.items()}
        if set(d) != set(expected) | {"t"}:
            raise ValueError(f"keys differ: {sorted(set(d) ^ (set(expected) | {'t'}))}")
        for k, m in expected.items():
            if d[k].shape != m.shape or d[k].dtype != m.dtype:
                raise ValueError(f"{k!r} mismatch")
        for k in expected:
            self.m[k[:-2]] = d[k].copy()
        self.t = int(d["t"])


def snapshot(model, opt=None):
    s = {n: v.data.copy() for n, v in model._state_items()}
    if opt is not None:
        s.update({"opt/" + k: v for k, v in opt.state_dict().items()})
    return s


def assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
        assert a[k].dtype == b[k].dtype


def test_roundtrip_model_optimizer_meta(tmp_path):
    path = tmp_path / "ckpt.npz"
    src = Net(seed=1)
    opt = FakeOptimizer(src, value=2.5)
    opt.t = 7
    save_checkpoint(path, src, opt, epoch=3, loss=0.25, tag="run-1", done=False)
    dst = Net(seed=2)
    dopt = FakeOptimizer(dst)
    meta = load_checkpoint(path, dst, dopt)
    assert meta == {"epoch": 3, "loss": 0.25, "tag": "run-1", "done": False}
    assert type(meta["epoch"]) is int and type(meta["tag"]) is str
    assert_same(snapshot(dst, dopt), snapshot(src, opt))
    # the file is an ordinary npz, free of pickles
    with np.load(path, allow_pickle=False) as f:
        assert "model/W" in f.files and "model/sub/running" in f.files
        assert "optimizer/t" in f.files and "meta/epoch" in f.files


def test_optimizer_optional_and_ignored(tmp_path):
    path = tmp_path / "c.npz"
    save_checkpoint(path, Net(1), FakeOptimizer(Net(1)))
    dst = Net(2)
    assert load_checkpoint(path, dst) == {}
    assert_same(snapshot(dst), snapshot(Net(1)))


def test_missing_optimizer_state_is_an_error(tmp_path):
    path = tmp_path / "c.npz"
    save_checkpoint(path, Net(1))
    dst = Net(2)
    opt = FakeOptimizer(dst)
    before = snapshot(dst, opt)
    with pytest.raises(ValueError, match="no optimizer state"):
        load_checkpoint(path, dst, opt)
    assert_same(snapshot(dst, opt), before)


def test_wrong_optimizer_type_is_an_error(tmp_path):
    class Other(FakeOptimizer):
        pass

    path = tmp_path / "c.npz"
    save_checkpoint(path, Net(1), FakeOptimizer(Net(1)))
    dst = Net(2)
    opt = Other(dst)
    before = snapshot(dst, opt)
    with pytest.raises(ValueError, match="FakeOptimizer optimizer, not of a Other"):
        load_checkpoint(path, dst, opt)
    assert_same(snapshot(dst, opt), before)


def test_shape_mismatch_leaves_everything_untouched(tmp_path):
    path = tmp_path / "c.npz"
    save_checkpoint(path, Net(1, hidden=5), FakeOptimizer(Net(1, hidden=5)))
    dst = Net(2, hidden=4)
    opt = FakeOptimizer(dst, value=1.0)
    before = snapshot(dst, opt)
    with pytest.raises(ValueError, match=r"'W' has shape \(3, 5\) in the file but \(3, 4\)"):
        load_checkpoint(path, dst, opt)
    assert_same(snapshot(dst, opt), before)


def test_optimizer_rejection_rolls_back_the_model(tmp_path):
    # The model part matches but the optimizer state does not: the model must be restored.
    path = tmp_path / "c.npz"
    src = Net(1)
    save_checkpoint(path, src, FakeOptimizer(src))
    arrays = checkpoint.load_npz(path)
    arrays["optimizer/W/m"] = np.zeros((9, 9), np.float32)
    checkpoint.save_npz(path, arrays)
    dst = Net(2)
    opt = FakeOptimizer(dst, value=1.0)
    before = snapshot(dst, opt)
    with pytest.raises(ValueError, match="optimizer state"):
        load_checkpoint(path, dst, opt)
    assert_same(snapshot(dst, opt), before)


def test_dtype_and_name_mismatch(tmp_path):
    path = tmp_path / "c.npz"
    src = Net(1)
    src.W.data = src.W.data.astype(np.float64)
    save_checkpoint(path, src)
    dst = Net(2)
    before = snapshot(dst)
    with pytest.raises(ValueError, match="'W' has dtype float64 in the file but float32"):
        load_checkpoint(path, dst)
    assert_same(snapshot(dst), before)

    extra = Net(1)
    extra.V = Parameter(np.zeros(2, np.float32))
    save_checkpoint(path, extra)
    with pytest.raises(ValueError, match="'V' is in the file but not in the model"):
        load_checkpoint(path, dst)
    save_checkpoint(path, L.Layer())
    with pytest.raises(ValueError, match="'W' is missing from the file"):
        load_checkpoint(path, dst)
    assert_same(snapshot(dst), before)


@pytest.mark.parametrize("cut", [0.3, 0.9, 0.999])
def test_truncated_file_is_a_clear_error(tmp_path, cut):
    path = tmp_path / "c.npz"
    save_checkpoint(path, Net(1), FakeOptimizer(Net(1)), epoch=1)
    raw = path.read_bytes()
    path.write_bytes(raw[:int(len(raw) * cut)])
    dst = Net(2)
    opt = FakeOptimizer(dst)
    before = snapshot(dst, opt)
    with pytest.raises(ValueError, match="not a complete .npz"):
        load_checkpoint(path, dst, opt)
    assert_same(snapshot(dst, opt), before)


def test_corrupted_member_is_a_clear_error(tmp_path):
    path = tmp_path / "c.npz"
    save_checkpoint(path, Net(1))
    raw = bytearray(path.read_bytes())
    i = raw.index(b"\x93NUMPY") + 200  # inside the first array's data: a CRC mismatch
    raw[i] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="not a complete .npz"):
        load_checkpoint(path, Net(2))


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "w.npz"
    Net(1).save_weights(path)
    with pytest.raises(ValueError, match="not a mibun checkpoint"):
        load_checkpoint(path, Net(2))
    np.save(tmp_path / "a.npy", np.zeros(3))
    with pytest.raises(ValueError, match="not a complete .npz"):
        load_checkpoint(tmp_path / "a.npy", Net(2))
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_checkpoint(tmp_path / "missing.npz", Net(2))


class _Evil:
    ran = False

    def __reduce__(self):
        return (_mark_ran, ())


def _mark_ran():
    _Evil.ran = True
    return "pwned"


def test_pickled_payload_is_never_executed(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, **{"__format__": np.asarray(checkpoint.FORMAT),
                      "model/W": np.array([_Evil()], dtype=object)})
    with pytest.raises(ValueError, match="pickled"):
        load_checkpoint(path, Net(2))
    assert not _Evil.ran
    raw = tmp_path / "raw.npz"
    raw.write_bytes(pickle.dumps({"W": _Evil()}))
    with pytest.raises(ValueError):
        load_checkpoint(raw, Net(2))
    assert not _Evil.ran


def test_meta_values_must_be_plain(tmp_path):
    with pytest.raises(TypeError, match="meta value"):
        save_checkpoint(tmp_path / "c.npz", Net(1), history=[1, 2])
    with pytest.raises(TypeError, match="meta value"):
        save_checkpoint(tmp_path / "c.npz", Net(1), big=10 ** 30)
    assert not os.listdir(tmp_path)
    save_checkpoint(tmp_path / "c.npz", Net(1), curve=np.arange(3.0))
    meta = load_checkpoint(tmp_path / "c.npz", Net(2))
    np.testing.assert_array_equal(meta["curve"], [0.0, 1.0, 2.0])


@pytest.mark.parametrize("exc", [OSError("disk full"), KeyboardInterrupt()])
def test_interrupted_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch, exc):
    path = tmp_path / "c.npz"
    save_checkpoint(path, Net(1), epoch=1)
    good = path.read_bytes()

    calls = []
    real = np.lib.format.write_array

    def failing_write(fp, array, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # die in the middle of the file
            raise exc
        return real(fp, array, *args, **kwargs)

    monkeypatch.setattr(np.lib.format, "write_array", failing_write)
    with pytest.raises(type(exc)):
        save_checkpoint(path, Net(3), epoch=2)
    monkeypatch.undo()
    assert path.read_bytes() == good
    assert os.listdir(tmp_path) == ["c.npz"]  # no temporary file left behind
    assert load_checkpoint(path, Net(2)) == {"epoch": 1}


def test_save_replaces_atomically_with_os_replace(tmp_path, monkeypatch):
    # The new content must appear in one rename of a complete temporary file.
    path = tmp_path / "c.npz"
    save_checkpoint(path, Net(1), epoch=1)
    seen = []
    real = os.replace

    def spy(src, dst):
        with zipfile.ZipFile(src) as zf:  # complete when renamed
            assert zf.testzip() is None
        seen.append((os.path.dirname(src), dst))
        return real(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    save_checkpoint(path, Net(1), epoch=2)
    assert seen == [(str(tmp_path), str(path))]
    assert (path.stat().st_mode & 0o777) == 0o644 or os.name == "nt"


def test_save_npz_keeps_names_with_awkward_keys(tmp_path):
    # np.savez(file, **d) breaks on a key named 'file'; save_npz has no such limit.
    path = tmp_path / "x.npz"
    checkpoint.save_npz(path, {"file": np.ones(2), "allow_pickle": np.zeros(1), "a/b": np.eye(2)})
    d = checkpoint.load_npz(path)
    assert sorted(d) == ["a/b", "allow_pickle", "file"]
    np.testing.assert_array_equal(d["a/b"], np.eye(2))
    with pytest.raises(TypeError, match="dtype object"):
        checkpoint.save_npz(path, {"x": np.array([None], dtype=object)})


_WRITER = r"""
import sys
import numpy as np
import mibun.layers as L
from mibun import Parameter
from mibun.checkpoint import save_checkpoint

net = L.Layer()
net.W = Parameter(np.zeros((1000, 2000), np.float32))  # 8 MB: a save takes a while
epoch = 0
while True:
    net.W.data[...] = epoch
    save_checkpoint(sys.argv[1], net, epoch=epoch)
    epoch += 1
"""


@pytest.mark.skipif(os.name != "posix", reason="needs SIGKILL")
def test_kill_during_save_leaves_a_loadable_checkpoint(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    path = tmp_path / "c.npz"
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)])
    try:
        deadline = time.monotonic() + 60
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert path.exists(), "the writer never produced a checkpoint"
        time.sleep(0.3)  # several saves in, most likely in the middle of one
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    net = L.Layer()
    net.W = Parameter(np.ones((1000, 2000), np.float32))
    meta = load_checkpoint(path, net)  # whichever save completed last, whole
    assert np.all(net.W.data == meta["epoch"])
