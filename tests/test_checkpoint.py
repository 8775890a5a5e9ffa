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
    save_checkpoint(path, net, epoch=0)  # removes any temporary file the killed save left
    assert os.listdir(tmp_path) == ["c.npz"]


# =============================================================================
# Issue 9: all-or-nothing optimizer state, header-first checks, umask, temporary files
# =============================================================================
def _adam_checkpoint(tmp_path, steps=3):
    import mibun.functions as F
    import mibun.models as M
    import mibun.optimizers as O
    np.random.seed(0)
    m = M.MLP((4, 2))
    opt = O.Adam().setup(m)
    x = np.random.randn(5, 3).astype(np.float32)
    for _ in range(steps):
        loss = F.sum(m(x) ** 2)
        m.cleargrads()
        loss.backward()
        opt.update()
    path = tmp_path / "adam.npz"
    save_checkpoint(path, m, opt, epoch=1)
    return path, m, opt


def _rewrite(path, **changes):
    """The checkpoint ``path`` with some arrays replaced (None: removed), written plainly."""
    arrays = checkpoint.load_npz(path)
    for k, v in changes.items():
        k = k.replace("__", "/")
        if v is None:
            arrays.pop(k)
        else:
            arrays[k] = v
    checkpoint.save_npz(path, arrays)


@pytest.mark.parametrize("key, value", [
    ("optimizer/@lr", np.asarray("abc")), ("optimizer/@lr", np.asarray(1 + 2j)),
    ("optimizer/@lr", np.asarray(np.nan)), ("optimizer/@lr", np.asarray(-0.1)),
    ("optimizer/@t", np.asarray(-1)), ("optimizer/@t", np.asarray(2.0)),
    ("optimizer/l0/W/step", np.asarray(-3)),
])
def test_bad_optimizer_values_change_nothing(tmp_path, key, value):
    path, _, _ = _adam_checkpoint(tmp_path)
    arrays = checkpoint.load_npz(path)
    arrays[key] = value
    checkpoint.save_npz(path, arrays)
    (tmp_path / "other").mkdir()
    _, dst, opt = _adam_checkpoint(tmp_path / "other", steps=1)
    before = snapshot(dst, opt)
    t, lr = opt.t, opt.lr
    with pytest.raises(ValueError, match=f"optimizer state: .*{key[10:]}"):
        load_checkpoint(path, dst, opt)
    assert_same(snapshot(dst, opt), before)
    assert (opt.t, opt.lr) == (t, lr)


def _with_member(good, out, name, header, data=b""):
    with zipfile.ZipFile(good) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for info in zin.infolist():
            z.writestr(info.filename, zin.read(info))
        with z.open(name, "w", force_zip64=True) as fh:
            if header is not None:
                np.lib.format.write_array_header_1_0(fh, header)
            fh.write(data)
    return out


def test_names_and_shapes_are_checked_before_any_data_is_read(tmp_path, monkeypatch):
    good = tmp_path / "good.npz"
    save_checkpoint(good, Net(1))
    reads = []
    real = np.lib.format.read_array
    monkeypatch.setattr(np.lib.format, "read_array",
                        lambda fp, *a, **k: reads.append(fp.name) or real(fp, *a, **k))
    # an extra member of 16 MiB (deflated to a few KiB): refused from its name alone
    bomb = _with_member(good, tmp_path / "bomb.npz", "model/extra.npy",
                        {"descr": "<f8", "fortran_order": False, "shape": (2 ** 21,)},
                        bytes(2 ** 24))
    with pytest.raises(ValueError, match="'extra' is in the file but not in the model"):
        load_checkpoint(bomb, Net(2))
    Net(1).save_weights(tmp_path / "w.npz")
    bomb = _with_member(tmp_path / "w.npz", tmp_path / "wbomb.npz", "extra.npy",
                        {"descr": "<f8", "fortran_order": False, "shape": (2 ** 21,)},
                        bytes(2 ** 24))
    with pytest.raises(ValueError, match="'extra' is in the file but not in the model"):
        Net(2).load_weights(bomb)
    # a known name with the wrong shape: refused from its header
    wrong = tmp_path / "wrong.npz"
    with zipfile.ZipFile(tmp_path / "w.npz") as zin, zipfile.ZipFile(wrong, "w") as z:
        for info in zin.infolist():
            if info.filename != "sub/b.npy":
                z.writestr(info.filename, zin.read(info))
        with z.open("sub/b.npy", "w") as fh:
            np.lib.format.write_array(fh, np.zeros(2 ** 20, np.float32))
    with pytest.raises(ValueError, match=r"'sub/b' has shape \(1048576,\) in the file"):
        Net(2).load_weights(wrong)
    assert set(reads) == {"__format__.npy"}  # the one 0-d string, and no other data


def test_a_declared_size_that_the_file_does_not_hold_is_refused(tmp_path):
    good = tmp_path / "good.npz"
    save_checkpoint(good, Net(1))
    huge = _with_member(good, tmp_path / "huge.npz", "meta/x.npy",
                        {"descr": "<f8", "fortran_order": False, "shape": (10 ** 12,)})
    with pytest.raises(ValueError, match=r"'meta/x.npy' declares shape \(1000000000000,\)"):
        load_checkpoint(huge, Net(2))
    with pytest.raises(ValueError, match="declares shape"):
        checkpoint.load_npz(huge)


@pytest.mark.parametrize("member", ["__format__", "meta/epoch", "model/W"])
def test_member_without_npy_suffix_is_a_value_error(tmp_path, member):
    good, bad = tmp_path / "good.npz", tmp_path / "bad.npz"
    save_checkpoint(good, Net(1), epoch=1)
    with zipfile.ZipFile(good) as zin, zipfile.ZipFile(bad, "w") as zout:
        for info in zin.infolist():
            if info.filename != member + ".npy":
                zout.writestr(info, zin.read(info))
        zout.writestr(member, b"1")
    with pytest.raises(ValueError, match=f"member '{member}' is not an .npy array"):
        load_checkpoint(bad, Net(2))
    with pytest.raises(ValueError, match=f"member '{member}' is not an .npy array"):
        checkpoint.load_npz(bad)


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_new_files_follow_the_umask_and_old_ones_keep_their_mode(tmp_path):
    old = os.umask(0o077)
    try:
        save_checkpoint(tmp_path / "c.npz", Net(1))
        with open(tmp_path / "plain", "w"):
            pass
    finally:
        os.umask(old)
    assert (tmp_path / "c.npz").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "plain").stat().st_mode & 0o777 == 0o600
    os.chmod(tmp_path / "c.npz", 0o640)
    save_checkpoint(tmp_path / "c.npz", Net(2))  # as open(path, "w"): the mode stays
    assert (tmp_path / "c.npz").stat().st_mode & 0o777 == 0o640


def _dead_pid():
    import subprocess
    import sys
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


@pytest.mark.skipif(os.name != "posix", reason="needs os.kill(pid, 0)")
def test_next_save_removes_temporary_files_of_dead_writers(tmp_path):
    stale = tmp_path / f".c.npz.{_dead_pid()}-0badf00d.tmp"
    live = tmp_path / f".c.npz.{os.getpid()}-12345678.tmp"  # a save still running
    other = tmp_path / f".d.npz.{_dead_pid()}-0badf00d.tmp"  # another checkpoint's
    for p in (stale, live, other):
        p.write_bytes(b"partial")
    save_checkpoint(tmp_path / "c.npz", Net(1))
    assert sorted(os.listdir(tmp_path)) == sorted(["c.npz", live.name, other.name])


_SIGTERM_WRITER = r"""
import os, signal, sys
import numpy as np
import mibun.layers as L
from mibun import Parameter
from mibun.checkpoint import save_checkpoint
net = L.Layer()
net.W = Parameter(np.zeros((100, 20), np.float32))
save_checkpoint(sys.argv[1], net, epoch=0)
import zipfile
owner = {"write_array": np.lib.format, "close": zipfile._ZipWriteFile}[sys.argv[2]]
real, calls = getattr(owner, sys.argv[2]), []
def hit(*a, **k):
    calls.append(1)
    if len(calls) == 2:  # in the middle of the second save
        os.kill(os.getpid(), signal.SIGTERM)
    return real(*a, **k)
setattr(owner, sys.argv[2], hit)
save_checkpoint(sys.argv[1], net, epoch=1)
print("not reached")
"""


@pytest.mark.skipif(os.name != "posix", reason="needs SIGTERM")
@pytest.mark.parametrize("where", ["write_array", "close"])  # close: zipfile then raises
def test_sigterm_during_save_removes_the_temporary_file(tmp_path, where):  # its own error
    import signal
    import subprocess
    import sys
    path = tmp_path / "c.npz"
    p = subprocess.run([sys.executable, "-c", _SIGTERM_WRITER, str(path), where],
                       check=False, capture_output=True, text=True, timeout=120)
    assert p.returncode == -signal.SIGTERM, p.stderr  # still dies of the signal, quietly
    assert "Traceback" not in p.stderr
    assert "not reached" not in p.stdout
    assert os.listdir(tmp_path) == ["c.npz"]
    net = L.Layer()
    net.W = Parameter(np.ones((100, 20), np.float32))
    assert load_checkpoint(path, net) == {"epoch": 0}


# --- issue 11: one owner of serialization ---------------------------------------------
def test_layer_yields_its_state_and_checkpoint_checks_assigns_and_restores_it():
    from mibun import optimizers
    from mibun.layers import Layer
    for gone in ("_state_arrays", "_assign_state", "_restore_state"):
        assert not hasattr(Layer, gone)
    for gone in ("_check_state", "_assign_state"):
        assert not hasattr(optimizers.Optimizer, gone)
    np.random.seed(0)
    net = L.BatchNorm()
    net(np.random.randn(4, 3).astype(np.float32))
    names = [n for n, _ in net.named_state()]
    assert names == ["gamma", "beta", "avg_mean", "avg_var"]  # parameters, then buffers
    arrays = checkpoint.model_arrays(net)
    assert all(arrays[n] is v.data for n, v in net.named_state())  # not copied
    with pytest.raises(ValueError, match=r"X: the state does not match BatchNorm"):
        checkpoint.check_model_state(net, {**arrays, "extra": arrays["gamma"]}, "X")
    new = {n: a + 1 for n, a in arrays.items()}
    checkpoint.check_model_state(net, new, "X")
    old = checkpoint.assign_model_state(net, new)
    assert all(np.array_equal(v.data, new[n]) for n, v in net.named_state())
    checkpoint.restore_model_state(old)
    assert all(v.data is arrays[n] for n, v in net.named_state())

    lin = L.Linear(2, in_size=3)
    opt = optimizers.Adam().setup(lin)
    lin.W.grad, lin.b.grad = Parameter(np.ones((3, 2), np.float32)), Parameter(
        np.ones(2, np.float32))
    opt.update()
    saved = opt.state_dict()
    fresh = optimizers.Adam().setup(lin)
    checked = checkpoint.check_optimizer_state(fresh, saved)
    assert fresh.t == 0 and fresh.state == {}  # checking changes nothing
    checkpoint.assign_optimizer_state(fresh, checked)
    assert fresh.t == 1 and all(np.array_equal(fresh.state_dict()[k], v)
                                for k, v in saved.items())
    with pytest.raises(ValueError, match="names no parameter"):
        checkpoint.check_optimizer_state(fresh, {**saved, "nope/m": saved["W/m"]})
