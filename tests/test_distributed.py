"""mibun.distributed: in-process checks, and real MPI jobs of 2 ranks (tests/mpi_worker.py
and `mpiexec -n 2 mibun train --distributed`). Every mpiexec runs under a hard timeout
(mpiexec's own --timeout, and ours that ends it), so a hang fails the test instead of CI.
Without mpi4py or mpiexec the MPI tests skip, except under MIBUN_REQUIRE_MPI=1 (CI)."""
import csv
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from mibun import checkpoint, optimizers

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")


def _mpiexec():
    exe = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return exe if os.path.exists(exe) else shutil.which("mpiexec")


try:
    import mpi4py  # noqa: F401
    HAS_MPI = _mpiexec() is not None
except ImportError:
    HAS_MPI = False

needs_mpi = pytest.mark.skipif(not HAS_MPI and not os.environ.get("MIBUN_REQUIRE_MPI"),
                               reason="needs mpi4py and mpiexec (pip install 'mibun[mpi]')")


def _env(extra=None):
    env = dict(os.environ)
    env.pop("MIBUN_DEBUG", None)
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env.update(extra or {})
    return env


def mpi_command(n, *argv, limit=60):
    root = ["--allow-run-as-root"] if os.geteuid() == 0 else []
    return [_mpiexec(), "-n", str(n), "--oversubscribe", "--timeout", str(limit), *root,
            *argv]


def _finish(proc, timeout):
    """Wait for ``proc``; past ``timeout`` end it (mpiexec ends its ranks) and fail."""
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            out, err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        pytest.fail(f"mpiexec did not finish within {timeout} s:\n{out}\n{err}")


def mpirun(n, *argv, env=None, limit=60):
    proc = subprocess.Popen(mpi_command(n, *argv, limit=limit), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env(env))
    out, err = _finish(proc, limit + 30)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def mibun_train(*args, n=None, env=None):
    """``mibun train ARGS`` on one process, or on ``n`` ranks with --distributed."""
    cmd = [sys.executable, "-m", "mibun", "train", "--no-progress", *args]
    if n is None:
        return subprocess.run(cmd, capture_output=True, text=True, env=_env(env), timeout=120,
                              check=False)
    return mpirun(n, *cmd, "--distributed", env=env)


def read_metrics(path):
    with open(path) as fh:
        return [{k: float(v) for k, v in r.items() if k != "seconds" and v}
                for r in csv.DictReader(fh)]


def assert_metrics_close(a, b, rtol):
    assert len(a) == len(b)
    for ra, rb in zip(a, b):
        for k in ra:
            assert ra[k] == pytest.approx(rb[k], rel=rtol, abs=rtol), (k, ra, rb)


# =============================================================================
# Without MPI
# =============================================================================
def test_import_mibun_needs_no_mpi():
    code = ("import sys; sys.modules['mpi4py'] = None; import mibun, mibun.train, mibun.cli; "
            "assert 'mibun.distributed' not in sys.modules; import mibun.distributed as D\n"
            "try:\n    D.create_communicator()\nexcept ImportError as e:\n    print(e)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                       env=_env(), timeout=60)
    assert p.returncode == 0, p.stderr
    assert "pip install 'mibun[mpi]'" in p.stdout and "mpi4py" in p.stdout


def test_train_distributed_without_mpi4py_is_one_line(tmp_path):
    code = ("import sys; sys.modules['mpi4py'] = None; from mibun import cli; "
            f"sys.exit(cli.main(['train', '--distributed', '--out', {str(tmp_path)!r}]))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                       env=_env(), timeout=60)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert p.stderr.count("\n") == 1 and "pip install 'mibun[mpi]'" in p.stderr


class _Ranks:
    def __init__(self, rank, size):
        self.rank, self.size = rank, size


@pytest.mark.parametrize("n,size", [(10, 3), (12, 4), (5, 5), (3, 4)])
@pytest.mark.parametrize("shuffle", [False, True])
def test_scatter_dataset_equal_deterministic_shards(n, size, shuffle):
    from mibun import distributed as D
    data = [(np.float32(i), i) for i in range(n)]
    shards = [D.scatter_dataset(data, _Ranks(r, size), shuffle=shuffle, seed=7)
              for r in range(size)]
    m = -(-n // size)
    assert all(len(s) == m for s in shards)
    every = np.concatenate([s.indices for s in shards])
    assert sorted(set(every.tolist())) == list(range(n))  # every example, ...
    assert len(every) - n == m * size - n  # ... and only the padding twice
    again = D.scatter_dataset(data, _Ranks(0, size), shuffle=shuffle, seed=7)
    np.testing.assert_array_equal(again.indices, shards[0].indices)
    if not shuffle:
        np.testing.assert_array_equal(every[:n], np.arange(n))
    _, t = shards[0].get_batch(np.arange(m))
    np.testing.assert_array_equal(t, shards[0].indices)
    assert shards[0][0] == data[shards[0].indices[0]]


def test_scatter_dataset_of_a_dataset_uses_get_batch():
    import mibun
    from mibun import distributed as D
    ds = mibun.datasets.Spiral()
    shard = D.scatter_dataset(ds, _Ranks(1, 2), shuffle=True)
    loader = mibun.DataLoader(shard, batch_size=50, shuffle=False)
    x, t = next(loader)
    np.testing.assert_array_equal(x, ds.data[shard.indices[:50]])
    np.testing.assert_array_equal(t, ds.label[shard.indices[:50]])


@pytest.mark.parametrize("p, n, dtype", [(2, 80_000, np.float32), (3, 3, np.float64),
                                         (4, (1 << 17) + 4099, np.float32)])
def test_shared_sum_is_the_rank_ordered_sum_of_each_share(p, n, dtype):
    from mibun.distributed.shared import CHUNK, _split_bounds, _sum
    rng = np.random.default_rng(p)
    arenas = [rng.standard_normal(n).astype(dtype) for _ in range(p)]
    want = arenas[0].copy()
    for a in arenas[1:]:
        want += a  # the order of the sum: rank 0 + rank 1, then + rank 2 ...
    before = [a.copy() for a in arenas]
    r = p - 1
    lo, hi = _split_bounds(n, p)[r]  # the last rank's share (n > CHUNK: several chunks)
    assert n < CHUNK or hi - lo > CHUNK
    out = np.full(n, -1.0, dtype)
    _sum(arenas, out, lo, hi)
    np.testing.assert_array_equal(out[lo:hi], want[lo:hi])  # bit for bit
    assert (out[:lo] == -1).all() and (out[hi:] == -1).all()  # the other shares untouched
    for a, b in zip(arenas, before):
        np.testing.assert_array_equal(a, b)  # the arenas are only read
    out = np.zeros(n, dtype)
    _sum([arenas[0]], out, lo, hi)  # one source: a copy
    np.testing.assert_array_equal(out[lo:hi], arenas[0][lo:hi])


def test_quietly_drops_only_open_mpi_ucx_window_notices(capfd):
    from mibun.distributed.shared import _quietly

    def make():
        os.write(2, b"[vm:1] /ompi/mca/osc/ucx/osc_ucx_component.c:375  Error: OSC UCX "
                    b"component priority set inside component query failed \n \n")
        os.write(2, b"a real warning\n")
        return 42
    assert _quietly(make) == 42
    err = capfd.readouterr().err
    assert "a real warning" in err and "osc_ucx" not in err and "Error" not in err
    with pytest.raises(ZeroDivisionError):  # stderr is given back when make() raises
        _quietly(lambda: 1 / 0)
    os.write(2, b"after\n")
    assert "after" in capfd.readouterr().err


@pytest.mark.parametrize("n, dtype", [(10, np.float64), (1_796_016, np.float32),
                                      ((1 << 19) + 3, np.float64)])
def test_arena_memory_is_zeros_in_whole_huge_pages(n, dtype):
    import gc
    import mmap

    from mibun.distributed.communicator import HUGE_PAGE, _zeros
    a = _zeros(np, n, dtype)
    assert a.shape == (n,) and a.dtype == dtype and a.flags.c_contiguous
    assert a.flags.writeable and not a.any()
    big = n * np.dtype(dtype).itemsize >= HUGE_PAGE and hasattr(mmap, "MADV_HUGEPAGE")
    if big:  # starts on a huge-page boundary (the kernel may then back it with them)
        assert a.ctypes.data % HUGE_PAGE == 0
    a[:] = 1
    tail = a[-5:].reshape(5, 1)  # a view outlives the name of the buffer
    del a
    gc.collect()
    assert tail.sum() == 5


def test_split_bounds_is_array_split():
    from mibun import distributed as D
    for n in (1, 5, 29, 32):
        for size in (1, 2, 3, 4):
            want = [(int(a[0]), int(a[-1]) + 1) if len(a) else None
                    for a in np.array_split(np.arange(n), size)]
            got = D._split_bounds(n, size)
            assert [g if g[1] > g[0] else None for g in got] == want


# =============================================================================
# One-rank communicator in this process (MPI initialises as a singleton)
# =============================================================================
@needs_mpi
def test_single_rank_communicator_and_optimizer_state_round_trip(tmp_path):
    import mibun.functions as F
    from mibun import distributed as D
    from mibun import models
    comm = D.create_communicator()
    assert (comm.rank, comm.size, comm.intra_rank) == (0, 1, 0)
    np.random.seed(0)
    model = models.MLP((5, 3))
    model(np.ones((1, 4), np.float32))
    opt = D.create_multi_node_optimizer(optimizers.Adam().setup(model), comm)
    assert isinstance(opt, optimizers.Adam) and type(opt).__name__ == "Adam"
    F.sum(model(np.ones((2, 4), np.float32))).backward()
    g = {n: p.grad.data.copy() for n, p in model.named_params()}
    opt.update()
    for n, p in model.named_params():  # the mean over one rank is the gradient itself
        np.testing.assert_array_equal(p.grad.data, g[n])
    path = tmp_path / "c.npz"
    checkpoint.save_checkpoint(path, model, opt)
    plain = optimizers.Adam().setup(model)
    checkpoint.load_checkpoint(path, model, plain)  # a plain Adam takes the state
    assert plain.t == 1
    with pytest.raises(ValueError, match="not initialised"):
        comm.bcast_data(models.MLP((3,)))


def _arena_models(seed=0):
    """The same small MLP twice: one to reduce (it gets a gradient arena), one reference."""
    from mibun import models
    pair = []
    for _ in range(2):
        np.random.seed(seed)
        m = models.MLP((6, 3))
        m(np.ones((1, 4), np.float32))
        pair.append(m)
    return pair


@needs_mpi
def test_backward_writes_linear_weight_gradients_into_the_arena():
    import mibun.functions as F
    from mibun import autograd
    from mibun import distributed as D
    comm = D.create_communicator()
    model, ref = _arena_models()
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    comm.allreduce_grad(model)  # no gradients yet: makes the arena, grads stay None
    assert all(p.grad is None for p in model.params())
    ((_, _, arena, _, _),), = comm._arenas.values()
    for step in range(3):
        for m in (model, ref):
            m.cleargrads()
            F.sum(F.tanh(m(x + step))).backward()
        for (n, p), (_, q) in zip(model.named_params(), ref.named_params()):
            np.testing.assert_array_equal(p.grad.data, q.grad.data, err_msg=n)
            # Linear's gradients are written by backward into their slots: no copy
            assert p.grad.data is autograd.arena_slot(p), n
        comm.allreduce_grad(model)
        for (n, p), (_, q) in zip(model.named_params(), ref.named_params()):
            assert np.shares_memory(p.grad.data, arena), n
            np.testing.assert_array_equal(p.grad.data, q.grad.data, err_msg=n)
    # the slot is rewritten by the next backward after cleargrads (as documented)
    kept = model.l0.W.grad.data
    model.cleargrads()
    F.sum(model(x) * 2).backward()
    assert model.l0.W.grad.data is kept


@needs_mpi
def test_arena_keeps_the_gradient_semantics():
    """A second use of the weight, accumulation without cleargrads, mibun.grad,
    create_graph and a leaf whose data changed shape: each gradient is what it is
    without an arena, and mibun.grad's result does not alias the arena."""
    import mibun
    import mibun.functions as F
    from mibun import autograd
    from mibun import distributed as D
    comm = D.create_communicator()
    model, ref = _arena_models(1)
    x = np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32)
    comm.allreduce_grad(model)

    def shared(m):  # the first layer's weight used twice in one graph
        h = F.tanh(m.l0(x))
        return F.sum(m.l1(h)) + F.sum(F.linear(x, m.l0.W) ** 2)

    for loss_of in (shared, lambda m: F.sum(m(x) ** 2)):
        for m in (model, ref):
            m.cleargrads()
            loss_of(m).backward()
            loss_of(m).backward()  # accumulates onto the first backward's gradients
        for (n, p), (_, q) in zip(model.named_params(), ref.named_params()):
            np.testing.assert_allclose(p.grad.data, q.grad.data, rtol=1e-6, err_msg=n)
        comm.allreduce_grad(model)
        for (n, p), (_, q) in zip(model.named_params(), ref.named_params()):
            np.testing.assert_allclose(p.grad.data, q.grad.data, rtol=1e-6, err_msg=n)
    W = model.l0.W
    model.cleargrads()
    g, = mibun.grad(F.sum(model(x) ** 2), [W])
    ref.cleargrads()
    F.sum(ref(x) ** 2).backward()
    np.testing.assert_array_equal(g.data, ref.l0.W.grad.data)
    assert W.grad is None and not np.shares_memory(g.data, autograd.arena_slot(W))
    model.cleargrads()  # create_graph: gradients with a graph, not the arena's arrays
    F.sum(model(x) ** 2).backward(create_graph=True)
    assert W.grad.creator is not None and W.grad.data is not autograd.arena_slot(W)
    np.testing.assert_allclose(W.grad.data, ref.l0.W.grad.data, rtol=1e-6)
    slot = autograd.arena_slot(W)  # a parameter whose data changed shape: no arena write
    W.data = np.ones((4, 7), np.float32)
    W.cleargrad()
    F.sum(F.linear(x, W)).backward()
    assert W.grad.data.shape == (4, 7) and W.grad.data is not slot
    np.testing.assert_array_equal(W.grad.data, np.repeat(x.sum(0)[:, None], 7, axis=1))
    comm.allreduce_grad(model)  # a new arena for the new shape
    assert autograd.arena_slot(W).shape == (4, 7) and W.grad.data is autograd.arena_slot(W)


# =============================================================================
# Two ranks
# =============================================================================
@needs_mpi
@pytest.mark.parametrize("n, method, machines, env", [
    (2, "shared-memory", 1, None),  # the default on one machine
    (2, "allreduce", 1, {"MIBUN_SHARED_ARENA": "0"}),  # as with one rank per machine
    (4, "hierarchical", 2, None),  # as if 2 machines of 2 ranks
])
def test_n_ranks_equal_one_process_with_n_times_the_batch(n, method, machines, env):
    p = mpirun(n, sys.executable, os.path.join(HERE, "mpi_worker.py"), "check", method,
               str(machines), env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "check: ok" in p.stdout
    assert "Error" not in p.stderr, p.stderr  # (Open MPI's UCX notice on making a window)


@needs_mpi
def test_train_distributed_matches_one_process(tmp_path):
    args = ["--epochs", "2", "--seed", "3", "--batch-size", "31", "--optimizer", "momentum"]
    one = mibun_train(*args, "--out", str(tmp_path / "one"))
    two = mibun_train(*args, "--out", str(tmp_path / "two"), n=2)
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stdout + two.stderr
    # rank 0 alone prints: one header, one line per epoch
    assert two.stdout.count("mibun train:") == 1 and "2 ranks (MPI)" in two.stdout
    assert two.stdout.count("epoch 2/2") == 1
    assert_metrics_close(read_metrics(tmp_path / "two" / "metrics.csv"),
                         read_metrics(tmp_path / "one" / "metrics.csv"), 1e-4)
    w1 = checkpoint.load_npz(tmp_path / "one" / "checkpoint.npz")
    w2 = checkpoint.load_npz(tmp_path / "two" / "checkpoint.npz")
    for k in w1:
        if k.startswith("model/"):
            np.testing.assert_allclose(w2[k], w1[k], rtol=1e-4, atol=1e-5, err_msg=k)
    assert sorted(os.listdir(tmp_path / "two")) == ["checkpoint.npz", "curves.png",
                                                   "metrics.csv"]


@needs_mpi
def test_ctrl_c_under_mpi_saves_and_resumes_with_another_number_of_ranks(tmp_path):
    args = ["--epochs", "3", "--seed", "1"]
    whole = mibun_train(*args, "--out", str(tmp_path / "whole"), n=2)
    assert whole.returncode == 0, whole.stderr
    # every rank sends itself SIGINT after global step 60 (epoch 2, as a Ctrl-C would)
    out = tmp_path / "cut"
    p = mibun_train(*args, "--out", str(out), n=2, env={"_MIBUN_TEST_SIGINT_AT_STEP": "60"})
    assert p.returncode == 130, p.stdout + p.stderr
    assert p.stdout.count("interrupted: saved") == 1
    meta = checkpoint.load_npz(out / "checkpoint.npz")
    assert int(meta["meta/epoch"]) == 1 and int(meta["meta/step"]) > 0
    r = mibun_train("--resume", str(out / "checkpoint.npz"))  # one process, no MPI
    assert r.returncode == 0, r.stderr
    assert_metrics_close(read_metrics(out / "metrics.csv"),
                         read_metrics(tmp_path / "whole" / "metrics.csv"), 1e-4)


@needs_mpi
def test_real_ctrl_c_on_mpiexec_keeps_a_checkpoint(tmp_path):
    out = tmp_path / "run"
    cmd = mpi_command(2, sys.executable, "-m", "mibun", "train", "--no-progress",
                      "--distributed", "--epochs", "1000", "--batch-size", "8", "--out",
                      str(out))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env())
    try:
        for line in proc.stdout:  # the first epoch's checkpoint is written
            if line.startswith("epoch "):
                break
        proc.send_signal(signal.SIGINT)  # what Ctrl-C on a terminal sends mpiexec
        _finish(proc, 60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0
    meta = checkpoint.load_npz(out / "checkpoint.npz")  # a whole checkpoint, old or new
    assert int(meta["meta/epoch"]) >= 1
    r = mibun_train("--resume", str(out / "checkpoint.npz"), "--epochs",
                    str(int(meta["meta/epoch"]) + 1))
    assert r.returncode == 0, r.stderr


@needs_mpi
def test_an_exception_on_one_rank_stops_every_rank(tmp_path):
    t0 = time.monotonic()
    p = mibun_train("--epochs", "50", "--out", str(tmp_path), n=2,
                    env={"_MIBUN_TEST_FAULT": "1:30:raise"})
    assert time.monotonic() - t0 < 60
    assert p.returncode != 0
    assert "rank 1 of 2 failed: mibun train: test fault at step 30" in p.stderr
    # and in a script of one's own, through create_communicator's hook
    p = mpirun(2, sys.executable, os.path.join(HERE, "mpi_worker.py"), "raise", "20")
    assert p.returncode != 0
    assert "ValueError: a bad batch at step 20" in p.stderr and "rank 1 of 2 failed" in \
        p.stderr


@needs_mpi
def test_kill_9_of_one_rank_stops_every_rank(tmp_path):
    proc = subprocess.Popen(mpi_command(2, sys.executable, os.path.join(HERE, "mpi_worker.py"),
                                        "loop", str(tmp_path)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env())
    try:
        pidfile = tmp_path / "rank1.pid"
        deadline = time.monotonic() + 60
        while not (pidfile.exists() and pidfile.read_text()) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # reducing
        os.kill(int(pidfile.read_text()), signal.SIGKILL)
        t0 = time.monotonic()
        _, err = _finish(proc, 60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert time.monotonic() - t0 < 60
    assert proc.returncode != 0
    assert "rank 1" in err and "signal 9" in err
