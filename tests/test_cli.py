"""The `mibun` command, run through its real entry point in a subprocess where it matters
(exit codes, signals, files), and in-process through `main(argv)` for the many small cases."""
import csv
import os
import re
import shutil
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import mibun
import mibun.functions as F
from mibun import backend, checkpoint, cli, models, optimizers, train

HAS_DOT = shutil.which("dot") is not None
SEED_VALUE = np.exp(0.25) ** 2
SEED_BACKPROP = "3.297442541400256"
SEED_CENTRAL = "3.2974426293330694"


def mibun_command():
    exe = os.path.join(os.path.dirname(sys.executable), "mibun")
    if os.path.exists(exe):  # the console script that pip installed
        return [exe]
    return [sys.executable, "-m", "mibun"]


def run(*args, env=None, cwd=None, timeout=120):
    full_env = dict(os.environ)
    full_env.pop("MIBUN_DEBUG", None)
    full_env.update(env or {})
    return subprocess.run(mibun_command() + list(args), capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=timeout)


def read_metrics(path):
    """metrics.csv without the timing column: exactly what must repeat."""
    with open(path) as fh:
        rows = list(csv.DictReader(fh))
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def assert_one_line_error(p, code=2):
    assert p.returncode == code, (p.returncode, p.stdout, p.stderr)
    err = p.stderr.strip().splitlines()
    assert len(err) == 1, p.stderr
    assert err[0].startswith("mibun") and "error:" in err[0]
    assert "Traceback" not in p.stderr


# =============================================================================
# mibun grad
# =============================================================================
def test_grad_prints_the_seeds_numbers():
    p = run("grad", "exp(x**2)**2", "--at", "x=0.5")
    assert p.returncode == 0, p.stderr
    assert SEED_BACKPROP in p.stdout  # 3.2974425414... by backprop
    assert SEED_CENTRAL in p.stdout  # 3.2974426293... by central difference, eps=1e-4
    assert f"value  f = {float(SEED_VALUE)!r}"[:20] in p.stdout
    line = next(s for s in p.stdout.splitlines() if s.startswith("f'(x)"))
    assert line.split()[1:3] == [SEED_BACKPROP, SEED_CENTRAL]
    assert p.stderr == ""


def test_grad_central_difference_matches_numerical_diff():
    x = mibun.Variable(np.array(0.5))
    expected = float(mibun.numerical_diff(lambda v: F.exp(v ** 2) ** 2, x))
    assert repr(expected) == SEED_CENTRAL


def test_grad_higher_orders(capsys):
    assert cli.main(["grad", "exp(x**2)**2", "--at", "x=0.5", "--order", "3"]) == 0
    out = capsys.readouterr().out
    e = np.exp(0.5)  # f = exp(2x²): f'' = (4 + 16x²) f, f''' = (48x + 64x³) f
    rows = {s.split()[0]: [float(v) for v in s.split()[1:3]] for s in out.splitlines()
            if s.startswith("f'")}
    assert set(rows) == {"f'(x)", "f''(x)", "f'''(x)"}
    np.testing.assert_allclose(rows["f''(x)"][0], 8 * e, rtol=1e-14)
    np.testing.assert_allclose(rows["f'''(x)"][0], 32 * e, rtol=1e-14)
    np.testing.assert_allclose(rows["f'''(x)"][1], 32 * e, rtol=1e-6)  # central difference


def test_grad_several_variables_and_hessian(capsys):
    assert cli.main(["grad", "x*y + sin(x)*y**2", "--at", "x=1,y=2", "--hessian"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    dfdx = next(s for s in lines if s.startswith("df/dx")).split()
    dfdy = next(s for s in lines if s.startswith("df/dy")).split()
    np.testing.assert_allclose(float(dfdx[1]), 2 + np.cos(1) * 4, rtol=1e-15)
    np.testing.assert_allclose(float(dfdy[1]), 1 + 2 * np.sin(1) * 2, rtol=1e-15)
    i = lines.index("Hessian (backprop through create_graph=True)")
    H = [[float(v) for v in lines[i + k].split()[1:]] for k in (2, 3)]
    expected = [[-4 * np.sin(1), 1 + 4 * np.cos(1)], [1 + 4 * np.cos(1), 2 * np.sin(1)]]
    np.testing.assert_allclose(H, expected, rtol=1e-14)


def test_grad_point_values_may_be_expressions(capsys):
    assert cli.main(["grad", "sin(x)", "--at", "x=pi/3"]) == 0
    out = capsys.readouterr().out
    line = next(s for s in out.splitlines() if s.startswith("f'(x)"))
    np.testing.assert_allclose(float(line.split()[1]), 0.5, rtol=1e-15)
    # several --at flags, and a function call with a comma inside a value
    assert cli.main(["grad", "x*y", "--at", "x=maximum(1,2)", "--at", "y=3"]) == 0
    assert "df/dx     3.0" in capsys.readouterr().out


def test_grad_trace_is_the_manual_backprop_table(capsys):
    assert cli.main(["grad", "exp(x**2)**2", "--at", "x=0.5", "--trace"]) == 0
    out = capsys.readouterr().out
    table = out[out.index("step  function"):].splitlines()
    rows = [r.split() for r in table[2:5]]
    # backprop order: the last function first; local derivatives 2a, exp(x²), 2x
    assert [r[1] for r in rows] == ["Pow(2)", "Exp", "Pow(2)"]
    a = np.exp(0.25)
    assert rows[0][-3:] == [f"{a:.10g}", f"{2 * a:.10g}", f"{2 * a:.10g}"]
    assert rows[1][-3:] == ["0.25", f"{a:.10g}", f"{2 * a * a:.10g}"]
    assert rows[2][-4:] == ["x", "0.5", "1", f"{2 * a * a:.10g}"]
    assert f"x.grad = {SEED_BACKPROP}" in out


def test_grad_trace_sums_paths_into_shared_input(capsys):
    assert cli.main(["grad", "x*x + x", "--at", "x=3", "--trace"]) == 0
    out = capsys.readouterr().out
    assert "x.grad = 7.0" in out
    mul = next(s for s in out.splitlines() if " Mul " in s).split()
    assert mul[-4:] == ["x", "3", "3", "3"]


def test_grad_trace_of_a_bare_variable_and_a_wrapped_constant(capsys):
    assert cli.main(["grad", "x", "--at", "x=1", "--trace"]) == 0  # no function: no table
    out = capsys.readouterr().out
    assert "no function ran" in out and "x.grad = 1.0" in out
    assert cli.main(["grad", "maximum(x, 1)", "--at", "x=2", "--trace"]) == 0
    out = capsys.readouterr().out
    assert "?" not in out
    # the 1 is a constant: it gets no gradient (Where keeps no input data, so no value shows)
    assert any(r.split()[0] == "const" and r.split()[-1] == "—" for r in out.splitlines()
               if r.split())


def test_grad_expression_starting_with_minus(capsys):
    # argparse would take "-x**2" for an option
    assert cli.main(["grad", "-x**2", "--at", "x=3"]) == 0
    assert "f'(x)       -6.0" in capsys.readouterr().out
    assert cli.main(["grad", "--at", "x=3", "-sin(x)", "--eps", "1e-5"]) == 0
    assert "f(x) = -sin(x)" in capsys.readouterr().out


def test_grad_graph_shows_every_intermediate(tmp_path, capsys):
    # the central differences evaluate the expression again: that must not free the
    # intermediates of the graph that is drawn
    path = tmp_path / "g.dot"
    assert cli.main(["grad", "exp(x**2)**2", "--at", "x=0.5", "--graph", str(path)]) == 0
    text = path.read_text()
    assert "dashed" not in text
    assert r'label="x ** 2: () float64\n= 0.25\ngrad: 3.29744"' in text
    assert r'label="exp(x ** 2): () float64\n= 1.28403\ngrad: 2.56805"' in text


def test_grad_output_into_a_closed_pipe():
    # `mibun grad ... | head -1`: no "Broken pipe" message, no traceback
    proc = subprocess.Popen(mibun_command() + ["grad", "tanh(x)", "--at", "x=1", "--order",
                                               "3"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()  # before the command writes anything
    err = proc.stderr.read()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 1
    assert err == b""


def test_grad_graph_dot(tmp_path, capsys):
    path = tmp_path / "g.dot"
    assert cli.main(["grad", "exp(x**2)**2", "--at", "x=0.5", "--graph", str(path)]) == 0
    text = path.read_text()
    assert text.startswith("digraph g {")
    assert text.count("shape=box") == 3 and text.count(" -> ") == 6
    assert f"grad: {float(SEED_BACKPROP):.6g}" in text  # x's gradient after backward
    assert "wrote the computational graph" in capsys.readouterr().out
    # --order 3 draws the third derivative's (bigger) graph
    assert cli.main(["grad", "tanh(x)", "--at", "x=1", "--order", "3",
                     "--graph", str(path)]) == 0
    assert path.read_text().count("shape=box") > 10
    assert "the graph of f'''(x)" in capsys.readouterr().out


@pytest.mark.skipif(not HAS_DOT, reason="Graphviz `dot` is not installed")
def test_grad_graph_svg(tmp_path):
    path = tmp_path / "g.svg"
    p = run("grad", "exp(x**2)**2", "--at", "x=0.5", "--graph", str(path))
    assert p.returncode == 0, p.stderr
    assert ET.parse(path).getroot().tag.endswith("svg")


def test_grad_graph_svg_without_graphviz(tmp_path, monkeypatch, capsys):
    # without `dot` the graph is drawn by matplotlib, with a warning that says so
    from mibun import visualize
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(visualize.dot, "_warned_no_dot", False)
    with pytest.warns(UserWarning, match="graphviz"):
        code = cli.main(["grad", "x**2", "--at", "x=1", "--graph", str(tmp_path / "g.svg")])
    captured = capsys.readouterr()
    assert code == 0
    assert "2.0" in captured.out and "wrote the computational graph" in captured.out
    assert ET.parse(tmp_path / "g.svg").getroot().tag.endswith("svg")


REFUSED = [
    ("__import__('os').system('touch SENTINEL')", "only calls of the allowed functions"),
    ("open('SENTINEL', 'w')", "unknown function 'open'"),
    ("exec('open(1)')", "unknown function 'exec'"),
    ("x.__class__", "attribute access is not allowed"),
    ("[x][0]", "a subscript is not allowed"),
    ("(lambda: x)()", "only calls of the allowed functions"),
    ("lambda: x", "a lambda is not allowed"),
    ("import os", "cannot parse"),
    ("x if x else 1", "an if-else expression is not allowed"),
    ("(y := x)", "an assignment (:=) is not allowed"),
    ("x < 1", "a comparison is not allowed"),
    ("x % 2", "the operator Mod is not allowed"),
    ("'a' * x", "only numbers are allowed as constants"),
    ("exp(x, y=1)", "keyword arguments are not allowed"),
    ("exp", "'exp' at column 1 is a function"),
    ("z * x", "unknown name 'z'"),
    ("maximum(x)", "maximum() takes 2 argument(s)"),
    ("f'{x}'", "an f-string is not allowed"),
    ("[i for i in x]", "a comprehension is not allowed"),
    ("x +", "cannot parse"),
    ("", "the expression is empty"),
]


@pytest.mark.parametrize("expr,message", REFUSED)
def test_refused_expressions(expr, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = cli.main(["grad", expr, "--at", "x=1"])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    assert message in captured.err and captured.err.startswith("mibun grad: error: ")
    assert len(captured.err.strip().splitlines()) == 1
    assert not (tmp_path / "SENTINEL").exists()


def test_refused_expression_runs_nothing_in_a_subprocess(tmp_path):
    sentinel = tmp_path / "SENTINEL"
    p = run("grad", f"__import__('os').system('touch {sentinel}')", "--at", "x=1")
    assert_one_line_error(p, 2)
    assert p.stdout == ""
    assert not sentinel.exists()


def test_parse_expression_never_uses_eval(monkeypatch):
    import builtins

    def boom(*a, **k):
        raise AssertionError("eval/exec called")

    monkeypatch.setattr(builtins, "eval", boom)
    monkeypatch.setattr(builtins, "exec", boom)
    y = cli.evaluate("exp(x**2)**2 + pi - e", x=0.5)
    np.testing.assert_allclose(float(y.data), SEED_VALUE + np.pi - np.e)


@pytest.mark.parametrize("argv,message", [
    (["grad", "x**2"], "give the point"),
    (["grad", "x**2", "--at", "x"], "NAME=VALUE"),
    (["grad", "x**2", "--at", "x=1,x=2"], "given twice"),
    (["grad", "x**2", "--at", "x=1,y=2"], "does not use"),
    (["grad", "x**2", "--at", "exp=1"], "cannot be a variable name"),
    (["grad", "x**2", "--at", "x=foo"], "--at x=foo"),
    (["grad", "x**2", "--at", "x=1/0"], "--at x=1/0"),
    (["grad", "x**2", "--at", "x=1", "--order", "0"], "--order must be at least 1"),
    (["grad", "x*y", "--at", "x=1,y=2", "--order", "3"], "single variable"),
    (["grad", "x**2", "--at", "x=1", "--graph", "g.txt"], ".dot, .svg"),
    (["grad", "x**2", "--at", "x=1", "--eps", "0"], "--eps must be positive"),
    (["grad", "x**2", "--at", "x=1", "--graph", "/no/such/dir/g.svg"], "no such directory"),
    (["grad", "(" * 300 + "x", "--at", "x=1"], "too many nested parentheses"),
    (["train", "--seed", "-1"], "--seed: must be between 0 and 4294967295"),
    (["train", "--seed", str(2**32)], "--seed: must be between 0 and 4294967295"),
    (["train", "--epochs", "1.5"], "--epochs: expected an integer, got '1.5'"),
    (["train", "--lr", "inf"], "--lr: expected a finite number"),
    (["train", "--lr", "nan"], "--lr: expected a finite number"),
    (["train", "--epochs", "0"], "must be positive"),
    (["train", "--lr", "abc"], "--lr: expected a number, got 'abc'"),
    (["train", "--dataset", "imagenet"], "invalid choice"),
    (["train", "--dataset", "spiral", "--model", "cnn"], "does not fit"),
    (["train", "--resume", "/no/such/checkpoint.npz"], "no such file"),
    (["frobnicate"], "invalid choice"),
    (["train", "--bogus"], "unrecognized arguments"),
])
def test_bad_arguments_give_one_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert len(captured.err.strip().splitlines()) == 1
    assert len(captured.err) < 300  # a long expression is not echoed whole
    assert "Traceback" not in captured.err


def test_bad_arguments_in_a_subprocess():
    for args in (["train", "--epochs", "-3"], ["grad", "x +", "--at", "x=1"]):
        p = run(*args)
        assert_one_line_error(p, 2)


def test_help_version_and_no_command(capsys):
    assert cli.main([]) == 0
    assert "train" in capsys.readouterr().out
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"mibun {mibun.__version__}"
    with pytest.raises(SystemExit) as e:
        cli.main(["grad", "--help"])
    assert e.value.code == 0
    assert "exp" in capsys.readouterr().out


def test_python_dash_m():
    p = subprocess.run([sys.executable, "-m", "mibun", "grad", "x**3", "--at", "x=2"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "12.0" in p.stdout


# =============================================================================
# mibun train
# =============================================================================
def test_train_defaults_on_digits(tmp_path):
    # `mibun train` with no arguments, in a fresh directory: the README's first command
    p = run("train", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "digits" in out and "output: mibun-out" in out
    out_dir = tmp_path / out.split("output: ")[1].split()[0]
    assert sorted(os.listdir(out_dir)) == ["checkpoint.npz", "curves.png", "metrics.csv"]
    rows = read_metrics(out_dir / "metrics.csv")
    assert len(rows) == 20
    assert float(rows[-1]["test_acc"]) >= 0.95
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"]) / 5
    assert "done: 20 epochs in " in out and ", test accuracy " in out
    assert sum(line.startswith("epoch ") for line in out.splitlines()) == 20
    assert "\r" not in out + p.stderr  # no progress bar when not on a terminal


def test_train_writes_loadable_checkpoint_and_png(tmp_path):
    out = tmp_path / "run"
    p = run("train", "--epochs", "2", "--out", str(out))
    assert p.returncode == 0, p.stderr
    png = (out / "curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image
    img = matplotlib.image.imread(out / "curves.png")
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 200
    # the checkpoint restores into a fresh model and optimizer of the same kind
    model = models.MLP((100, 10), activation=F.relu)
    opt = optimizers.Adam().setup(model)
    meta = checkpoint.load_checkpoint(out / "checkpoint.npz", model, opt)
    assert meta["epoch"] == 2 and meta["step"] == 0
    x = mibun.datasets.Digits(train=False).data[:50]
    t = mibun.datasets.Digits(train=False).label[:50]
    with mibun.no_grad():
        acc = float((model(x).data.argmax(1) == t).mean())
    assert acc > 0.8


def test_same_seed_same_numbers(tmp_path):
    a = run("train", "--epochs", "2", "--seed", "3", "--out", str(tmp_path / "a"))
    b = run("train", "--epochs", "2", "--seed", "3", "--out", str(tmp_path / "b"))
    c = run("train", "--epochs", "2", "--seed", "4", "--out", str(tmp_path / "c"))
    assert a.returncode == b.returncode == c.returncode == 0
    ma = read_metrics(tmp_path / "a" / "metrics.csv")
    assert ma == read_metrics(tmp_path / "b" / "metrics.csv")
    assert ma != read_metrics(tmp_path / "c" / "metrics.csv")


@pytest.mark.parametrize("extra,stop_at", [
    ([], 60),  # mlp on digits: 45 steps per epoch, so epoch 2, step 15
    (["--dataset", "sincurve", "--hidden", "20"], 6),  # lstm: resumes at an epoch start
])
def test_sigint_saves_checkpoint_and_resume_gives_identical_numbers(tmp_path, extra,
                                                                    stop_at):
    args = ["train", "--epochs", "3", "--seed", "1"] + extra
    whole = run(*args, "--out", str(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr

    # the process sends itself SIGINT after global step `stop_at` (through the real handler)
    out = tmp_path / "cut"
    p = run(*args, "--out", str(out), env={"_MIBUN_TEST_SIGINT_AT_STEP": str(stop_at)})
    assert p.returncode == 130, (p.stdout, p.stderr)
    assert "Ctrl-C" in p.stderr and "Traceback" not in p.stderr
    ckpt = out / "checkpoint.npz"
    assert f"resume with:  mibun train --resume {ckpt}" in p.stdout
    meta = checkpoint.load_checkpoint(ckpt, *_fresh(extra))
    assert meta["epoch"] == 1  # stopped inside the second epoch
    assert len(read_metrics(out / "metrics.csv")) == 1

    r = run("train", "--resume", str(ckpt))
    assert r.returncode == 0, r.stderr
    assert "resuming" in r.stdout
    assert read_metrics(out / "metrics.csv") == read_metrics(tmp_path / "whole" /
                                                             "metrics.csv")
    w1 = checkpoint.load_npz(out / "checkpoint.npz")
    w2 = checkpoint.load_npz(tmp_path / "whole" / "checkpoint.npz")
    for k in w1:
        if k.startswith(("model/", "optimizer/")):
            np.testing.assert_array_equal(w1[k], w2[k], err_msg=k)


def _fresh(extra):
    if "sincurve" in extra:
        model = models.SeqRegressor(20, out_size=1, cell="lstm")
    else:
        model = models.MLP((100, 10), activation=F.relu)
    return model, optimizers.Adam().setup(model)


def test_real_sigint_from_outside(tmp_path):
    out = tmp_path / "run"
    env = dict(os.environ)
    env.pop("_MIBUN_TEST_SIGINT_AT_STEP", None)
    proc = subprocess.Popen(mibun_command() + ["train", "--epochs", "100000", "--out",
                                               str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        lines = []
        for line in proc.stdout:  # wait until training is under way
            lines.append(line)
            if line.startswith("epoch "):
                break
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "resume with:  mibun train --resume" in rest
    assert "Traceback" not in err
    meta = checkpoint.load_checkpoint(out / "checkpoint.npz",
                                      *_fresh([]))
    done = meta["epoch"]
    assert done >= 1
    r = run("train", "--resume", str(out / "checkpoint.npz"), "--epochs", str(done + 1))
    assert r.returncode == 0, r.stderr
    # the time is this run's, and the summary says so
    assert f"done: {done + 1} epochs (this run: epoch {done + 1} in " in r.stdout


def test_resume_checks_its_arguments(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "--epochs", "1", "--out", str(out)]) == 0
    capsys.readouterr()
    ckpt = str(out / "checkpoint.npz")
    assert cli.main(["train", "--resume", ckpt, "--dataset", "spiral"]) == 2
    assert "differs from the checkpoint" in capsys.readouterr().err
    assert cli.main(["train", "--resume", ckpt]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert cli.main(["train", "--resume", str(out / "metrics.csv")]) == 2
    assert "not a checkpoint" in capsys.readouterr().err


@pytest.mark.parametrize("extra", [
    ["--dataset", "spiral", "--epochs", "3"],
    ["--model", "lstm", "--epochs", "1", "--hidden", "16"],
    ["--dataset", "sincurve", "--model", "mlp", "--epochs", "2"],
    ["--optimizer", "momentum", "--epochs", "1"],
    ["--model", "cnn", "--epochs", "1"],
])
def test_train_variants(extra, tmp_path, capsys):
    assert cli.main(["train", "--out", str(tmp_path / "o"), "--no-progress"] + extra) == 0
    out = capsys.readouterr().out
    assert "done:" in out
    assert (tmp_path / "o" / "curves.png").exists()


def test_missing_dataset_files(tmp_path):
    p = run("train", "--dataset", "mnist", "--data-dir", str(tmp_path), "--no-download")
    assert_one_line_error(p, 1)
    assert "train-images-idx3-ubyte" in p.stderr and str(tmp_path) in p.stderr
    assert "--data-dir" in p.stderr
    assert f"looked in: {tmp_path}; " in p.stderr  # the lines of the message, joined


def test_train_function_api(tmp_path, capsys):
    with pytest.raises(train.ConfigError, match="--model cnn does not fit --dataset spiral"):
        train.make_config(dataset="spiral", model="cnn")
    cfg = train.make_config(dataset="spiral", epochs=1)
    assert (cfg["model"], cfg["seed"], cfg["device"]) == ("mlp", 0, "cpu")
    result = train.train(cfg, str(tmp_path / "o"))
    assert result.finished and len(result.history) == 1
    assert result.checkpoint == str(tmp_path / "o" / "checkpoint.npz")
    out = capsys.readouterr().out
    assert ", 1 epoch, seed 0" in out and "done: 1 epoch in " in out
    cfg2, done = train.load_config(result.checkpoint, epochs=2)
    assert done == 1 and cfg2 == dict(cfg, epochs=2)
    with pytest.raises(train.ConfigError, match="--seed 5 differs"):
        train.load_config(result.checkpoint, seed=5)


@pytest.mark.skipif(backend.gpu_enable, reason="CuPy is installed")
def test_gpu_without_cupy(capsys):
    assert cli.main(["train", "--device", "gpu"]) == 2
    err = capsys.readouterr().err
    assert "CuPy" in err and "pip install" in err


def write_fake_mnist(directory, n_train=300, n_test=100):
    """Tiny MNIST-format files (idx, gzipped): class k lights up row block k."""
    import gzip
    import struct
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        t = rng.integers(0, 10, n).astype(np.uint8)
        x = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for i, k in enumerate(t):
            x[i, 2 + 2 * k:4 + 2 * k, 4:24] = 255
        with gzip.open(directory / f"{prefix}-images-idx3-ubyte.gz", "wb") as f:
            f.write(struct.pack(">IIII", 0x803, n, 28, 28) + x.tobytes())
        with gzip.open(directory / f"{prefix}-labels-idx1-ubyte.gz", "wb") as f:
            f.write(struct.pack(">II", 0x801, n) + t.tobytes())


@pytest.mark.parametrize("model", ["mlp", "lstm"])
def test_train_mnist_from_a_local_directory(model, tmp_path, capsys):
    write_fake_mnist(tmp_path)
    out = tmp_path / "o"
    argv = ["train", "--dataset", "mnist", "--model", model, "--data-dir", str(tmp_path),
            "--no-download", "--epochs", "3", "--hidden", "32", "--batch-size", "20",
            "--lr", "0.01", "--out", str(out)]
    assert cli.main(argv) == 0
    text = capsys.readouterr().out
    assert "300 train / 100 test" in text
    assert float(read_metrics(out / "metrics.csv")[-1]["test_acc"]) > 0.5


def write_fake_cifar(directory, n=100):
    """The python-pickle layout of CIFAR-10, tiny: class k is brightest in channel k % 3."""
    import pickle
    folder = directory / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        t = rng.integers(0, 10, n)
        x = rng.integers(0, 50, (n, 3, 32, 32)).astype(np.uint8)
        for i, k in enumerate(t):
            x[i, k % 3, 3 * k:3 * k + 3] = 255
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": x.reshape(n, -1), b"labels": [int(k) for k in t]}, f,
                        protocol=2)


@pytest.mark.parametrize("model", ["cnn", "mlp"])
def test_train_cifar10_from_a_local_directory(model, tmp_path, capsys):
    write_fake_cifar(tmp_path)
    out = tmp_path / "o"
    argv = ["train", "--dataset", "cifar10", "--model", model, "--data-dir", str(tmp_path),
            "--no-download", "--epochs", "2", "--batch-size", "25", "--out", str(out)]
    assert cli.main(argv) == 0
    assert "500 train / 100 test" in capsys.readouterr().out
    assert float(read_metrics(out / "metrics.csv")[-1]["test_acc"]) > 0.3


# --- issue 9: a resumed checkpoint's contents are checked like command-line arguments ----
@pytest.fixture(scope="module")
def spiral_checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("spiral")
    cfg = train.make_config(dataset="spiral", epochs=1)
    return train.train(cfg, str(out)).checkpoint


def _config_with(path, **changes):
    import json

    from mibun import checkpoint
    cfg = json.loads(str(checkpoint.load_npz(path)["meta/config"]))
    cfg.update(changes)
    return np.asarray(json.dumps(cfg))


@pytest.mark.parametrize("change, match", [
    ({"meta/epoch": None}, "it has no meta/epoch"),
    ({"meta/epoch": np.asarray(-1)}, "meta/epoch is -1; it must be an integer >= 0"),
    ({"meta/config": np.asarray("{not json")}, r"meta/config\) is not JSON"),
    ({"meta/config": np.asarray("[1, 2]")}, "is not a JSON object"),
    ({"meta/config": {"batch_size": 0}}, "its batch_size is 0; it must be a positive integer"),
    ({"meta/config": {"lr": -1}}, "its lr is -1"),
    ({"meta/config": {"seed": 2 ** 40}}, "its seed is"),
    ({"meta/config": {"dataset": "imagenet"}}, "--dataset imagenet: unknown"),
    ({"meta/config": {"model": "cnn"}}, "--model cnn does not fit --dataset spiral"),
    ({"meta/rng_keys": np.zeros(3, np.uint32)}, "meta/rng_keys is uint32 array of shape"),
    ({"meta/history": np.asarray("[]")}, "meta/history is not a list of 1 epoch records"),
])
def test_resume_refuses_a_damaged_checkpoint_and_says_so(spiral_checkpoint, tmp_path, capsys,
                                                         change, match):
    from mibun import checkpoint
    arrays = checkpoint.load_npz(spiral_checkpoint)
    for key, value in change.items():
        if value is None:
            del arrays[key]
        elif isinstance(value, dict):  # changes of the run configuration
            arrays[key] = _config_with(spiral_checkpoint, **value)
        else:
            arrays[key] = value
    path = tmp_path / "checkpoint.npz"
    checkpoint.save_npz(path, arrays)
    assert cli.main(["train", "--resume", str(path), "--epochs", "2"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert "the checkpoint is damaged or not written by mibun train" in err
    assert re.search(match, err), err
    with pytest.raises(train.ConfigError, match="checkpoint is damaged"):  # the API too
        train.train(train.make_config(dataset="spiral", epochs=2), str(tmp_path / "o"),
                    resume=str(path))


def test_resume_refuses_a_step_beyond_the_epoch(spiral_checkpoint, tmp_path):
    from mibun import checkpoint
    arrays = checkpoint.load_npz(spiral_checkpoint)
    arrays["meta/step"] = np.asarray(10 ** 6)
    path = tmp_path / "checkpoint.npz"
    checkpoint.save_npz(path, arrays)
    cfg, _ = train.load_config(str(path), epochs=2)
    with pytest.raises(train.ConfigError, match="meta/step is 1000000, but an epoch has"):
        train.train(cfg, str(tmp_path / "o"), resume=str(path))


# --- issue 9: a work budget for `mibun grad`, and no SyntaxWarning before our error --------
SIN10 = "*".join(["sin(x)"] * 10)


def test_grad_refuses_an_order_beyond_the_budget_and_says_what_to_lower(capsys):
    assert cli.main(["grad", SIN10, "--at", "x=0.7", "--order", "8"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    m = re.search(r"--order 8 would build about [\d,]+ graph nodes \(at most [\d,]+.*\); "
                  r"lower --order to (\d) or shorten the expression", err)
    assert m, err
    assert cli.main(["grad", SIN10, "--at", "x=0.7", "--order", m[1]]) == 0  # which works
    assert f"f^({m[1]})(x)" in capsys.readouterr().out


def test_grad_refuses_a_hessian_over_too_many_variables(capsys):
    names = [f"x{i}" for i in range(60)]
    expr = "*".join(f"sin({n})" for n in names)
    at = ",".join(f"{n}=0.5" for n in names)
    assert cli.main(["grad", expr, "--at", at, "--hessian"]) == 2
    err = capsys.readouterr().err
    assert re.search(r"--hessian over 60 variables would build about [\d,]+ graph nodes "
                     r"\(at most [\d,]+\); use fewer variables", err), err
    assert cli.main(["grad", "x*y + sin(x)", "--at", "x=1,y=2", "--hessian"]) == 0


def test_grad_work_counts_what_is_built():
    # the count the budget uses: one node per Function of the graph
    import mibun
    x = mibun.Variable(np.array(0.5))
    y = mibun.functions.sin(x) * mibun.functions.sin(x) + x
    assert cli._graph_size(y) == 4 and cli._graph_size(x) == 0


def test_grad_parse_error_has_no_syntax_warning():
    import warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(cli.ExpressionError, match="cannot parse '1not'"):
            cli.parse_expression("1not", ["x"])
    assert not [w for w in caught if issubclass(w.category, SyntaxWarning)]
    p = run("grad", "1not", "--at", "x=1")
    assert "SyntaxWarning" not in p.stderr
    assert_one_line_error(p, 2)
