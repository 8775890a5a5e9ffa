"""The training driver behind ``mibun train``: data, model, loop, checkpoints, Ctrl-C, plots.

``train(make_config())`` trains an MLP on the bundled 8x8 digits (no download) in about a
second and writes ``checkpoint.npz``, ``metrics.csv`` and ``curves.png`` to an output
directory. The first Ctrl-C (SIGINT) stops after the current step and saves a checkpoint;
``train(cfg, out_dir, resume=path)`` with ``cfg = load_config(path)`` continues from it, to
the same numbers as a run that was never stopped: the checkpoint holds the model, the
optimizer, the epoch and step, the partial sums of the current epoch and NumPy's generator
state, and the order of the examples in epoch *e* is drawn from ``(seed, e)`` alone.

``mibun.cli`` parses the arguments into the settings dict (``make_config``) and reports a
``ConfigError`` as a usage error.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import re
import signal
import sys
import time

import numpy as np

__all__ = ["DATASETS", "OPTIMIZERS", "ConfigError", "TrainResult", "Trainer", "default_out",
           "load_config", "make_config", "plot_curves", "setup_device", "train"]


class ConfigError(ValueError):
    """Settings that cannot work (a model that does not fit the data, no GPU ...).

    ``mibun train`` reports it as a bad argument: one line, exit status 2.
    """


# =============================================================================
# Data sets, models, optimizers
# =============================================================================
DATASETS = {
    # name: (task, models (first = default), description)
    "digits": ("classify", ("mlp", "cnn", "lstm"), "8x8 handwritten digits, bundled"),
    "spiral": ("classify", ("mlp",), "2-d spiral, 3 classes"),
    "sincurve": ("regress", ("lstm", "mlp"), "sine wave, predict the next value"),
    "mnist": ("classify", ("mlp", "cnn", "lstm"), "28x28 handwritten digits"),
    "fashion-mnist": ("classify", ("mlp", "cnn", "lstm"), "28x28 clothing images"),
    "cifar10": ("classify", ("cnn", "mlp"), "32x32 colour images"),
}
# per dataset: epochs, batch size, hidden size, default optimizer, its learning rate
DEFAULTS = {
    "digits": (20, 32, 100, "adam", 0.002),
    "spiral": (100, 30, 30, "adam", 0.02),
    "sincurve": (30, 10, 50, "adam", 0.005),
    "mnist": (5, 100, 256, "adam", 0.001),
    "fashion-mnist": (5, 100, 256, "adam", 0.001),
    "cifar10": (10, 64, 256, "adam", 0.001),
}
OPTIMIZERS = {
    "sgd": ("SGD", 0.1), "momentum": ("MomentumSGD", 0.05), "nesterov": ("Nesterov", 0.05),
    "adagrad": ("AdaGrad", 0.05), "adadelta": ("AdaDelta", None), "rmsprop": ("RMSprop", 0.001),
    "adam": ("Adam", 0.001), "adamw": ("AdamW", 0.001),
}
BPTT = 30  # truncated backprop length for sequence models
_DATASET_CLASSES = {"digits": "Digits", "spiral": "Spiral", "sincurve": "SinCurve",
                    "mnist": "MNIST", "fashion-mnist": "FashionMNIST", "cifar10": "CIFAR10"}


# =============================================================================
# Settings
# =============================================================================
def make_config(dataset=None, model=None, epochs=None, batch_size=None, lr=None,
                optimizer=None, seed=None, hidden=None, data_dir=None, download=True,
                device="cpu") -> dict:
    """The settings of a new run; ``None`` takes the data set's default.

    Returns:
        dict: dataset, model, epochs, batch_size, lr, optimizer, seed, hidden, data_dir,
        download, device (what a checkpoint stores as the run's configuration).
    Raises:
        ConfigError: the model does not fit the data set.

    >>> cfg = make_config()
    >>> cfg["dataset"], cfg["model"], cfg["epochs"], cfg["optimizer"], cfg["lr"]
    ('digits', 'mlp', 20, 'adam', 0.002)
    """
    dataset = dataset or "digits"
    if dataset not in DATASETS:
        raise ConfigError(f"--dataset {dataset}: unknown; use one of {', '.join(DATASETS)}")
    models = DATASETS[dataset][1]
    model = model or models[0]
    if model not in models:
        raise ConfigError(f"--model {model} does not fit --dataset {dataset}; use "
                          f"{' or '.join(models)}")
    default_epochs, batch, default_hidden, opt, default_lr = DEFAULTS[dataset]
    optimizer = optimizer or opt
    if optimizer not in OPTIMIZERS:
        raise ConfigError(f"--optimizer {optimizer}: unknown; use one of "
                          f"{', '.join(OPTIMIZERS)}")
    if lr is None:  # the data set's tuned rate for its default optimizer, else the usual one
        lr = default_lr if optimizer == opt else OPTIMIZERS[optimizer][1]
    return dict(dataset=dataset, model=model, epochs=epochs or default_epochs,
                batch_size=batch_size or batch, lr=lr, optimizer=optimizer,
                seed=0 if seed is None else seed, hidden=hidden or default_hidden,
                data_dir=data_dir, download=download, device=device)


def load_config(path, epochs=None, device="cpu", data_dir=None, **given):
    """The settings saved in the checkpoint ``path``, and the epochs it has completed.

    Args:
        path (str): a ``checkpoint.npz`` written by ``train``.
        epochs (int or None): a new total number of epochs.
        device, data_dir: where this session runs and finds the data.
        **given: settings that must equal the checkpoint's (``None`` skips the check).
    Returns:
        (dict, int): the settings, and the number of completed epochs.
    Raises:
        ConfigError: no such file, not a checkpoint, or a setting differs.
    """
    from mibun import checkpoint
    if not os.path.isfile(path):
        raise ConfigError(f"--resume {path}: no such file")
    try:
        raw = checkpoint.load_npz(path, "mibun train --resume", prefix="meta/")
    except ValueError:
        raise ConfigError(f"--resume {path}: not a checkpoint (cannot read it as an .npz "
                          "file of arrays)") from None
    if "meta/config" not in raw:
        raise ConfigError(f"--resume {path}: not a checkpoint written by mibun train (no run "
                          "configuration in it)")
    meta = {k[5:]: a.item() if a.ndim == 0 else a for k, a in raw.items()}
    cfg = _check_resume_meta(meta, path)
    for k, v in given.items():
        if v is not None and v != cfg.get(k):
            flag = "--" + k.replace("_", "-")
            raise ConfigError(f"{flag} {v} differs from the checkpoint's {flag} "
                              f"{cfg.get(k)}; drop {flag} to resume, or start a new run")
    if epochs is not None:
        cfg["epochs"] = epochs
    cfg["device"] = device
    if data_dir is not None:
        cfg["data_dir"] = data_dir
    return cfg, meta["epoch"]


# What a checkpoint of `mibun train` holds besides the weights: name -> (check, what it
# must be), each checked as carefully as the command-line arguments are.
def _is_int(v, lo=0, hi=None):
    return isinstance(v, int) and not isinstance(v, bool) and v >= lo and (hi is None
                                                                          or v <= hi)


def _is_real(v, lo=0.0):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) \
        and v >= lo


_META = {
    "epoch": (_is_int, "an integer >= 0"),
    "step": (_is_int, "an integer >= 0"),
    "part_loss": (_is_real, "a finite number >= 0"),
    "part_correct": (_is_real, "a finite number >= 0"),
    "part_count": (_is_int, "an integer >= 0"),
    "history": (lambda v: isinstance(v, str), "a JSON list of epoch records"),
    "rng_keys": (lambda v: isinstance(v, np.ndarray) and v.shape == (624,)
                 and v.dtype.kind in "iu", "624 integers (NumPy's MT19937 state)"),
    "rng_pos": (lambda v: _is_int(v, 0, 624), "an integer in 0..624"),
    "rng_has_gauss": (lambda v: _is_int(v, 0, 1), "0 or 1"),
    "rng_cached": (lambda v: isinstance(v, float) and math.isfinite(v), "a finite float"),
}
_CONFIG = {
    "epochs": (lambda v: _is_int(v, 1), "a positive integer"),
    "batch_size": (lambda v: _is_int(v, 1), "a positive integer"),
    "hidden": (lambda v: _is_int(v, 1), "a positive integer"),
    "lr": (lambda v: v is None or (_is_real(v) and v > 0), "a positive number or null"),
    "seed": (lambda v: _is_int(v, 0, 2 ** 32 - 1), "an integer in 0..2**32-1"),
    "data_dir": (lambda v: v is None or isinstance(v, str), "a directory name or null"),
    "download": (lambda v: isinstance(v, bool), "true or false"),
    "device": (lambda v: v in ("cpu", "gpu"), "'cpu' or 'gpu'"),
}
_RECORD = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "seconds")


def _check_resume_meta(meta: dict, path) -> dict:
    """Check the metadata of a ``mibun train`` checkpoint; return its run configuration.

    Raises:
        ConfigError: a value is missing or cannot be right; the message says that the
            checkpoint (not the command line) is at fault and which value is wrong.
    """
    def bad(what):
        return ConfigError(f"--resume {path}: the checkpoint is damaged or not written by "
                           f"mibun train: {what}")

    try:
        cfg = json.loads(str(meta.get("config")))
    except ValueError:
        raise bad("its run configuration (meta/config) is not JSON") from None
    if not isinstance(cfg, dict):
        raise bad("its run configuration (meta/config) is not a JSON object")
    for key in ("dataset", "model", "optimizer", *_CONFIG):
        if key not in cfg:
            raise bad(f"its run configuration has no {key!r}")
    for key, (ok, want) in _CONFIG.items():
        if not ok(cfg[key]):
            raise bad(f"its {key} is {cfg[key]!r:.40}; it must be {want}")
    try:  # the same checks (and messages) as for a new run's arguments
        make_config(**{k: cfg[k] for k in ("dataset", "model", "optimizer")})
    except (ConfigError, TypeError) as e:  # TypeError: e.g. a list where a name belongs
        raise bad(f"its run configuration is not valid: {e}") from None
    for key, (ok, want) in _META.items():
        if key not in meta:
            raise bad(f"it has no meta/{key}")
        if not ok(meta[key]):
            v = meta[key]
            shown = f"{v.dtype} array of shape {v.shape}" if isinstance(v, np.ndarray) \
                else f"{v!r:.40}"
            raise bad(f"meta/{key} is {shown}; it must be {want}")
    try:
        history = json.loads(meta["history"])
    except ValueError:
        history = None
    if not (isinstance(history, list) and len(history) == meta["epoch"] and all(
            isinstance(r, dict) and all(k in r for k in _RECORD) for r in history)):
        raise bad(f"meta/history is not a list of {meta['epoch']} epoch records")
    return cfg


def default_out(cfg) -> str:
    """``mibun-out/<dataset>-<model>-<time>``, numbered if that exists already."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = os.path.join("mibun-out", f"{cfg['dataset']}-{cfg['model']}-{stamp}")
    path, k = base, 1
    while os.path.exists(path):
        k += 1
        path = f"{base}-{k}"
    return path


# =============================================================================
# A whole run
# =============================================================================
@dataclasses.dataclass
class TrainResult:
    """What ``train`` did: ``finished`` is False when Ctrl-C stopped it."""

    finished: bool
    history: list  # one dict per completed epoch (the rows of metrics.csv)
    out_dir: str
    checkpoint: str


def train(cfg: dict, out_dir: str, resume: str | None = None,
          progress: bool = False, comm=None) -> TrainResult:
    """Train as ``cfg`` says, printing a header, a line per epoch and a summary.

    Writes ``checkpoint.npz`` (after every epoch, and when stopped), ``metrics.csv`` and
    ``curves.png`` into ``out_dir`` (created if needed). The first Ctrl-C stops after the
    current step, saves the checkpoint and prints how to resume; a second one aborts.

    Args:
        cfg (dict): from ``make_config`` or ``load_config``.
        out_dir (str): the output directory.
        resume (str or None): the checkpoint to continue from (``cfg`` from its
            ``load_config``).
        progress (bool): a tqdm progress bar per epoch: on stderr, or as a widget in a
            Jupyter notebook.
        comm (mibun.distributed.Communicator or None): train data-parallel over its ranks
            (``mibun.distributed.DataParallelTrainer``); rank 0 alone writes files.
    Returns:
        TrainResult
    Raises:
        ConfigError: the device or the optimizer cannot work with these settings.
    """
    from mibun import checkpoint
    xp = setup_device(cfg["device"])
    os.makedirs(out_dir, exist_ok=True)
    if comm is None:
        trainer = Trainer(cfg, xp, out_dir)
    else:  # one rank of a data-parallel run over MPI
        from mibun import distributed
        trainer = distributed.DataParallelTrainer(cfg, xp, out_dir, comm)
    if resume:
        trainer.restore(checkpoint.load_checkpoint(resume, trainer.model, trainer.optimizer),
                        resume)
    done_before = trainer.epoch

    task, _, about = DATASETS[cfg["dataset"]]
    n_train, n_test = len(trainer.train_set), len(trainer.test_set)
    lr = "" if cfg["lr"] is None else f" (lr {cfg['lr']:g})"
    print(f"mibun train: {cfg['dataset']} ({about}; {n_train} train / {n_test} test)\n"
          f"  model {cfg['model']}, optimizer {cfg['optimizer']}{lr}, batch size "
          f"{cfg['batch_size']}, {_plural(cfg['epochs'], 'epoch')}, seed {cfg['seed']}, "
          f"device {cfg['device']}" + (f", {comm.size} ranks (MPI)" if comm else ""))
    if resume:
        where = f"epoch {trainer.epoch + 1}" + (f", step {trainer.step}" if trainer.step
                                                  else "")
        print(f"resuming {resume} at {where}")
        for rec in trainer.history:
            print(_epoch_line(rec, cfg["epochs"]))
    print(f"output: {out_dir}", flush=True)

    t0 = time.perf_counter()
    finished = trainer.run(_make_progress(progress))
    elapsed = time.perf_counter() - t0
    path = os.path.join(out_dir, "checkpoint.npz")
    plot = os.path.join(out_dir, "curves.png")
    result = TrainResult(finished, trainer.history, out_dir, path)
    if not finished:
        trainer.save(path)
        if trainer.history and trainer.writes:
            plot_curves(trainer.history, plot, _title(cfg))
        if trainer.seq:
            where = (f"the start of epoch {trainer.epoch + 1}: a recurrent model's state "
                     "is not saved, so it resumes at an epoch boundary")
        else:
            where = f"epoch {trainer.epoch + 1}, step {trainer.step}"
        print(f"interrupted: saved {path} (at {where}).\n"
              f"resume with:  mibun train --resume {_quote(path)}", flush=True)
        return result

    if trainer.writes:
        plot_curves(trainer.history, plot, _title(cfg))
    last = trainer.history[-1]
    if task == "classify":
        best = max(trainer.history, key=lambda r: r["test_acc"])
        summary = (f"test accuracy {100 * last['test_acc']:.1f}% (best "
                   f"{100 * best['test_acc']:.1f}% at epoch {best['epoch']})")
    else:
        summary = f"test loss {last['test_loss']:.5f}"
    n = trainer.epoch
    if done_before:  # the time covers this session's epochs only
        ran = f"epoch {n}" if done_before + 1 == n else f"epochs {done_before + 1}-{n}"
        print(f"done: {_plural(n, 'epoch')} (this run: {ran} in {elapsed:.1f} s), {summary}")
    else:
        print(f"done: {_plural(n, 'epoch')} in {elapsed:.1f} s, {summary}")
    print(f"wrote {os.path.join(out_dir, '')}\n"
          f"  checkpoint.npz  model + optimizer; train on with: mibun train --resume "
          f"{_quote(path)} --epochs {2 * cfg['epochs']}\n"
          f"  metrics.csv     loss and accuracy per epoch\n"
          f"  curves.png      the learning curves")
    return result


def _plural(n, word):
    return f"{n} {word}" + ("" if n == 1 else "s")


def _title(cfg):
    return f"mibun train: {cfg['dataset']}, {cfg['model']}, {cfg['optimizer']}"


def _quote(path):
    """``path`` as a shell word (quoted only when needed), for the printed commands."""
    return path if re.fullmatch(r"[\w./\-:\\]+", path) else "'" + path.replace(
        "'", "'\\''") + "'"


# =============================================================================
# The pieces: device, data, model, optimizer, the loop, files
# =============================================================================
class _Interrupt:
    """SIGINT handler: the first Ctrl-C asks to stop after the current step, a second aborts."""

    flag = "requested"  # the attribute a signal sets (distributed runs agree on it per step)
    stream = "stderr"  # where the notice goes

    def __init__(self):
        self.requested = False
        self.old = None

    def __enter__(self):
        try:
            self.old = signal.signal(signal.SIGINT, self.handle)
            self.installed = True
        except ValueError:  # not the main thread (main() called from a worker): no handler
            self.installed = False
        return self

    def __exit__(self, *exc):
        if self.installed:
            signal.signal(signal.SIGINT, self.old)

    def handle(self, signum, frame):
        if getattr(self, self.flag):
            raise KeyboardInterrupt
        setattr(self, self.flag, True)
        print("\nCtrl-C: stopping after this step and saving a checkpoint "
              "(press Ctrl-C again to quit without saving)", file=getattr(sys, self.stream),
              flush=True)


def setup_device(device):
    from mibun import backend
    if device == "cpu":
        return np
    if not backend.gpu_enable:
        raise ConfigError("--device gpu needs CuPy, which is not installed (pip install "
                         "cupy-cuda12x, matching your CUDA version); or use --device cpu")
    import cupy
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # CUDA driver missing or broken
        raise ConfigError(f"--device gpu: CuPy cannot reach a GPU ({e}); use --device cpu") \
            from None
    if count < 1:
        raise ConfigError("--device gpu: CuPy found no CUDA GPU; use --device cpu")
    return cupy


def _load_data(cfg):
    """(train, test) datasets with ``get_batch``, and the number of classes (0: regression)."""
    import mibun.datasets as D
    name = cfg["dataset"]
    kw = {}
    if name in ("mnist", "fashion-mnist", "cifar10"):
        kw = {"root": cfg["data_dir"], "download": cfg["download"]}
    if name in ("digits", "mnist", "fashion-mnist"):
        kw["flatten"] = cfg["model"] != "cnn"
    cls = getattr(D, _DATASET_CLASSES[name])
    try:
        train_set, test_set = cls(train=True, **kw), cls(train=False, **kw)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{e} (mibun train: give the directory with --data-dir DIR)") \
            from None
    classify = DATASETS[name][0] == "classify"
    n_classes = int(np.max(train_set.label)) + 1 if classify else 0
    return train_set, test_set, n_classes


def _build_model(cfg, n_classes):
    import mibun.functions as F
    import mibun.models as M
    model, hidden = cfg["model"], cfg["hidden"]
    task = DATASETS[cfg["dataset"]][0]
    out = n_classes if task == "classify" else 1
    if model == "mlp":
        return M.MLP((hidden, out), activation=F.relu)
    if model == "cnn":
        return M.SmallCNN(num_classes=out)
    return M.SeqRegressor(hidden, out_size=out, cell="lstm")


def _build_optimizer(cfg, model):
    import inspect

    import mibun.optimizers as O
    cls = getattr(O, OPTIMIZERS[cfg["optimizer"]][0])
    params = inspect.signature(cls).parameters
    if cfg["lr"] is None:
        opt = cls()
    elif "lr" in params:
        opt = cls(lr=cfg["lr"])
    elif "alpha" in params:
        opt = cls(alpha=cfg["lr"])
    else:
        raise ConfigError(f"--optimizer {cfg['optimizer']} has no learning rate; drop --lr")
    return opt.setup(model)


def _rows_input(x):
    """(N, ...) images as a sequence of rows for a recurrent model: (T, N, features)."""
    if x.ndim == 2:  # flattened square images
        side = int(round(math.sqrt(x.shape[1])))
        x = x.reshape(x.shape[0], side, side)
    elif x.ndim == 4:  # (N, C, H, W) -> (N, H, C * W)
        x = x.transpose(0, 2, 1, 3).reshape(x.shape[0], x.shape[2], -1)
    return x.transpose(1, 0, 2)


class Trainer:
    """The training loop behind ``mibun train``: state that a checkpoint must restore."""

    writes = True  # writes the files (in a distributed run, rank 0 alone)
    _interrupt_type = _Interrupt  # what a Ctrl-C sets (mibun.distributed: agreed by the ranks)

    def __init__(self, cfg, xp, out_dir):
        import mibun
        self.cfg = cfg
        self.xp = xp
        self.out_dir = out_dir
        self.task = DATASETS[cfg["dataset"]][0]
        self.seq = cfg["model"] == "lstm" and self.task == "regress"
        np.random.seed(cfg["seed"])
        if xp is not np:
            xp.random.seed(cfg["seed"])
        self.train_set, self.test_set, self.n_classes = _load_data(cfg)
        self.model = _build_model(cfg, self.n_classes)
        self.optimizer = _build_optimizer(cfg, self.model)
        # Create the lazy parameters now, on the CPU from the seeded NumPy generator, so a
        # resumed run and a fresh run (on either device) start from the same model.
        x0, _ = self.train_set.get_batch(np.arange(min(2, len(self.train_set))))
        with mibun.no_grad():
            self._forward(np.asarray(x0))
        if xp is not np:
            self.model.to_gpu()
        self.epoch = 0  # completed epochs
        self.step = 0  # batches done in the current epoch
        self.part = [0.0, 0.0, 0]  # loss sum, correct count, examples in this epoch so far
        self.history = []
        self.interrupt = None

    # --- pieces -------------------------------------------------------------------------
    def _to_device(self, a):
        a = np.asarray(a)
        return a if self.xp is np else self.xp.asarray(a)

    def _forward(self, x):
        if self.cfg["model"] == "lstm" and self.task == "classify":
            self.model.reset_state()
            y = None
            for row in _rows_input(x):
                y = self.model(row)
            return y
        if self.seq:
            self.model.reset_state()
        if self.cfg["model"] == "mlp" and x.ndim > 2:  # e.g. CIFAR's (N, 3, 32, 32)
            x = x.reshape(len(x), -1)
        return self.model(x)

    def _loss(self, y, t):
        import mibun.functions as F
        if self.task == "classify":
            return F.softmax_cross_entropy(y, t)
        return F.mean_squared_error(y, t)

    def _correct(self, y, t):
        if self.task != "classify":
            return 0.0
        return float((y.data.argmax(axis=1) == t).sum())

    def steps_per_epoch(self):
        n = len(self.train_set)
        if self.seq:  # BPTT windows over each of the batch_size parallel streams
            return -(-(n // self.cfg["batch_size"]) // BPTT)
        return (n + self.cfg["batch_size"] - 1) // self.cfg["batch_size"]

    def _order(self, epoch):
        # The order of epoch e depends on (seed, e) only: resuming needs no generator state.
        rng = np.random.default_rng([self.cfg["seed"], epoch])
        return rng.permutation(len(self.train_set))

    # --- checkpoints ----------------------------------------------------------------------
    def meta(self):
        import mibun
        keys, pos, has_gauss, cached = np.random.get_state()[1:]
        return dict(
            config=json.dumps(self.cfg), epoch=self.epoch, step=self.step,
            part_loss=float(self.part[0]), part_correct=float(self.part[1]),
            part_count=int(self.part[2]), history=json.dumps(self.history),
            rng_keys=np.asarray(keys), rng_pos=int(pos), rng_has_gauss=int(has_gauss),
            rng_cached=float(cached), mibun_version=mibun.__version__,
        )

    def save(self, path=None):
        from mibun import checkpoint
        path = path or os.path.join(self.out_dir, "checkpoint.npz")
        checkpoint.save_checkpoint(path, self.model, self.optimizer, **self.meta())
        return path

    def restore(self, meta, path="the checkpoint"):
        _check_resume_meta(meta, path)
        if meta["step"] >= self.steps_per_epoch() and meta["step"]:
            raise ConfigError(f"--resume {path}: the checkpoint is damaged or not written by "
                              f"mibun train: meta/step is {meta['step']}, but an epoch has "
                              f"{self.steps_per_epoch()} steps")
        self.epoch = int(meta["epoch"])
        self.step = int(meta["step"])
        self.part = [float(meta["part_loss"]), float(meta["part_correct"]),
                     int(meta["part_count"])]
        self.history = json.loads(meta["history"])
        np.random.set_state(("MT19937", np.asarray(meta["rng_keys"], dtype=np.uint32),
                             int(meta["rng_pos"]), int(meta["rng_has_gauss"]),
                             float(meta["rng_cached"])))

    # --- the loop -------------------------------------------------------------------------
    def run(self, progress):
        """Train up to ``cfg['epochs']``; return False if stopped by Ctrl-C."""
        with self._interrupt_type() as self.interrupt:
            while self.epoch < self.cfg["epochs"]:
                if not self._train_epoch(progress):
                    return False
                self._end_epoch()
                if self.interrupt.requested:
                    return self.epoch >= self.cfg["epochs"]
        return True

    def _train_epoch(self, progress):
        cfg = self.cfg
        t0 = time.perf_counter()
        total = self.steps_per_epoch()
        bar = progress(total, self.epoch + 1, cfg["epochs"], self.step)
        snapshot = None
        if self.seq:  # a stop mid-sequence resumes from the start of the epoch
            snapshot = self._snapshot()
        test_hook = int(os.environ.get("_MIBUN_TEST_SIGINT_AT_STEP", "0") or 0)
        batches = self._seq_batches() if self.seq else self._batches()
        try:
            for x, t in batches:
                loss, correct, n = self._train_step(x, t)
                self.step += 1
                self.part[0] += loss * n
                self.part[1] += correct
                self.part[2] += n
                if bar is not None:
                    bar.update(1)
                    if self.step % 10 == 0 or self.step == total:
                        bar.set_postfix(loss=f"{self.part[0] / self.part[2]:.4f}")
                if test_hook and self.epoch * total + self.step == test_hook:
                    os.kill(os.getpid(), signal.SIGINT)  # what the tests use as Ctrl-C
                if self.interrupt.requested and self.step < total:
                    if snapshot is not None:
                        self._restore_snapshot(snapshot)
                    return False
        finally:
            if bar is not None:
                bar.close()
        self.train_time = time.perf_counter() - t0
        return True

    def _batches(self):
        order = self._order(self.epoch)
        bs = self.cfg["batch_size"]
        for start in range(self.step * bs, len(order), bs):
            x, t = self.train_set.get_batch(order[start:start + bs])
            yield self._to_device(x), self._to_device(t)

    def _seq_batches(self):
        """Truncated-BPTT windows: ``batch_size`` parallel streams through the sequence."""
        n = len(self.train_set)
        bs = self.cfg["batch_size"]
        jump = n // bs
        offsets = np.arange(bs) * jump
        self.model.reset_state()
        for start in range(0, jump, BPTT):
            steps = range(start, min(start + BPTT, jump))
            xs, ts = [], []
            for k in steps:
                x, t = self.train_set.get_batch((offsets + k) % n)
                xs.append(self._to_device(x))
                ts.append(self._to_device(t))
            yield xs, ts

    def _train_step(self, x, t):
        model, opt = self.model, self.optimizer
        if self.seq:  # one BPTT window: a list of time steps, keeping the state
            loss = 0
            for xk, tk in zip(x, t):
                loss = loss + self._loss(model(xk), tk)
            loss = loss / len(x)
            model.cleargrads()
            loss.backward()
            loss.unchain_backward()
            opt.update()
            n = len(x) * len(x[0])
            return float(loss.data), 0.0, n
        y = self._forward(x)
        loss = self._loss(y, t)
        model.cleargrads()
        loss.backward()
        opt.update()
        return float(loss.data), self._correct(y, t), len(t)

    def _snapshot(self):
        model = {k: np.array(self.xp.asnumpy(v) if self.xp is not np else v, copy=True)
                 for k, v in self.model.state_dict().items()}
        opt = {k: np.array(self.xp.asnumpy(v) if self.xp is not np else v, copy=True)
               for k, v in self.optimizer.state_dict().items()}
        return model, opt, (self.step, list(self.part), np.random.get_state())

    def _restore_snapshot(self, snap):
        model, opt, (step, part, rng) = snap
        if self.xp is not np:
            model = {k: self.xp.asarray(v) for k, v in model.items()}
            opt = {k: self.xp.asarray(v) for k, v in opt.items()}
        self.model.load_state_dict(model)
        self.optimizer.load_state_dict(opt)
        self.step, self.part = step, part
        np.random.set_state(rng)

    def evaluate(self):
        import mibun
        loss_sum, correct, count = 0.0, 0.0, 0
        data = self.test_set
        with mibun.no_grad(), mibun.test_mode():
            if self.seq:  # one stream through the whole test sequence
                self.model.reset_state()
                for k in range(len(data)):
                    x, t = data.get_batch(np.array([k]))
                    y = self.model(self._to_device(x))
                    loss_sum += float(self._loss(y, self._to_device(t)).data)
                    count += 1
                return loss_sum / count, None
            bs = max(self.cfg["batch_size"], 256)
            for start in range(0, len(data), bs):
                x, t = data.get_batch(np.arange(start, min(start + bs, len(data))))
                x, t = self._to_device(x), self._to_device(t)
                y = self._forward(x)
                loss_sum += float(self._loss(y, t).data) * len(t)
                correct += self._correct(y, t)
                count += len(t)
        acc = correct / count if self.task == "classify" else None
        return loss_sum / count, acc

    def _end_epoch(self):
        test_loss, test_acc = self.evaluate()
        loss, correct, n = self.part
        rec = {"epoch": self.epoch + 1, "train_loss": loss / n,
               "train_acc": correct / n if self.task == "classify" else None,
               "test_loss": test_loss, "test_acc": test_acc,
               "seconds": round(self.train_time, 3)}
        self.history.append(rec)
        self.epoch += 1
        self.step = 0
        self.part = [0.0, 0.0, 0]
        print(_epoch_line(rec, self.cfg["epochs"]), flush=True)
        self.save()
        if self.writes:
            _write_csv(self.history, os.path.join(self.out_dir, "metrics.csv"))


def _epoch_line(rec, epochs):
    w = len(str(epochs))
    s = f"epoch {rec['epoch']:>{w}}/{epochs}  train loss {rec['train_loss']:.4f}"
    if rec["train_acc"] is not None:
        s += f" acc {100 * rec['train_acc']:5.1f}%"
    s += f"  test loss {rec['test_loss']:.4f}"
    if rec["test_acc"] is not None:
        s += f" acc {100 * rec['test_acc']:5.1f}%"
    sec = rec["seconds"]
    return s + (f"  ({sec:.1f} s)" if sec >= 1 else f"  ({1000 * sec:.0f} ms)")


def _write_csv(history, path):
    keys = ["epoch", "train_loss", "train_acc", "test_loss", "test_acc", "seconds"]
    tmp = path + ".tmp"
    with open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(keys)
        for rec in history:
            w.writerow(["" if rec[k] is None else repr(rec[k]) for k in keys])
    os.replace(tmp, path)


def plot_curves(history, path, title):
    import matplotlib
    matplotlib.use("Agg")  # no display needed (CI, ssh)
    import matplotlib.pyplot as plt
    epochs = [r["epoch"] for r in history]
    has_acc = history[0]["train_acc"] is not None
    fig, axes = plt.subplots(1, 2 if has_acc else 1, figsize=(10 if has_acc else 5, 3.8))
    axes = np.atleast_1d(axes)
    axes[0].plot(epochs, [r["train_loss"] for r in history], "o-", label="train", ms=3)
    axes[0].plot(epochs, [r["test_loss"] for r in history], "o-", label="test", ms=3)
    axes[0].set(xlabel="epoch", ylabel="loss", title="loss")
    if has_acc:
        axes[1].plot(epochs, [100 * r["train_acc"] for r in history], "o-", label="train",
                     ms=3)
        axes[1].plot(epochs, [100 * r["test_acc"] for r in history], "o-", label="test",
                     ms=3)
        axes[1].set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.suptitle(title)
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


def _make_progress(enabled):
    """A factory of per-epoch progress bars (tqdm on a terminal, nothing otherwise)."""
    if not enabled:
        return lambda total, epoch, epochs, done: None
    from tqdm.auto import tqdm  # the notebook widget in Jupyter (with ipywidgets), else text

    def make(total, epoch, epochs, done):
        return tqdm(total=total, initial=done, desc=f"epoch {epoch}/{epochs}", unit="batch",
                    leave=False, file=sys.stderr, dynamic_ncols=True)
    return make
