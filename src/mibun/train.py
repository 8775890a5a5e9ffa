"""The training driver behind ``mibun train``: the ``Trainer`` loop, checkpoints, Ctrl-C.

``train(make_config())`` trains an MLP on the bundled 8x8 digits (no download) in about a
second and writes ``checkpoint.npz``, ``metrics.csv`` and ``curves.png`` to an output
directory. The first Ctrl-C (SIGINT) stops after the current step and saves a checkpoint;
``train(cfg, out_dir, resume=path)`` with ``cfg = load_config(path)`` continues from it, to
the same numbers as a run that was never stopped: the checkpoint holds the model, the
optimizer, the epoch and step, the partial sums of the current epoch and NumPy's generator
state, and the order of the examples in epoch *e* is drawn from ``(seed, e)`` alone (a
seeded ``DataLoader``, placed with ``set_epoch(epoch, start_batch=step)``).

The settings (``make_config``, ``load_config``, ``ConfigError``) live in
``mibun.train_config``, what is printed and plotted in ``mibun.train_output``; both are
re-exported here.
"""
from __future__ import annotations

import dataclasses
import inspect
import json
import os
import signal
import sys
import time

import numpy as np

import mibun
import mibun.functions as F
from mibun import backend, checkpoint, datasets, models, optimizers
from mibun import train_output as output
from mibun.dataloaders import DataLoader, SeqDataLoader
from mibun.train_config import (
    _DATASET_CLASSES,
    _MODEL_CLASSES,
    DATASETS,
    OPTIMIZERS,
    ConfigError,
    check_resume_meta,
    default_out,
    load_config,
    make_config,
)
from mibun.train_output import plot_curves

BPTT = 30  # truncated backprop length for sequence models
_data_parallel_trainer: type | None = None  # set by @data_parallel (mibun.distributed)

__all__ = ["DATASETS", "OPTIMIZERS", "ConfigError", "TrainResult", "Trainer", "default_out",
           "load_config", "make_config", "plot_curves", "setup_device", "train"]


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
    xp = setup_device(cfg["device"])
    os.makedirs(out_dir, exist_ok=True)
    if comm is None:
        trainer = Trainer(cfg, xp, out_dir)
    else:  # one rank of a data-parallel run over MPI
        assert _data_parallel_trainer is not None, "import mibun.distributed first"
        trainer = _data_parallel_trainer(cfg, xp, out_dir, comm)
    if resume:
        trainer.restore(checkpoint.load_checkpoint(resume, trainer.model, trainer.optimizer),
                        resume)
    done_before = trainer.epoch

    task, _, about = DATASETS[cfg["dataset"]]
    n_train, n_test = len(trainer.train_set), len(trainer.test_set)
    lr = "" if cfg["lr"] is None else f" (lr {cfg['lr']:g})"
    print(f"mibun train: {cfg['dataset']} ({about}; {n_train} train / {n_test} test)\n"
          f"  model {cfg['model']}, optimizer {cfg['optimizer']}{lr}, batch size "
          f"{cfg['batch_size']}, {output.plural(cfg['epochs'], 'epoch')}, seed {cfg['seed']}, "
          f"device {cfg['device']}" + (f", {comm.size} ranks (MPI)" if comm else ""))
    if resume:
        where = f"epoch {trainer.epoch + 1}" + (f", step {trainer.step}" if trainer.step
                                                  else "")
        print(f"resuming {resume} at {where}")
        for rec in trainer.history:
            print(output.epoch_line(rec, cfg["epochs"]))
    print(f"output: {out_dir}", flush=True)

    t0 = time.perf_counter()
    finished = trainer.run(output.make_progress(progress))
    elapsed = time.perf_counter() - t0
    path = os.path.join(out_dir, "checkpoint.npz")
    plot = os.path.join(out_dir, "curves.png")
    result = TrainResult(finished, trainer.history, out_dir, path)
    if not finished:
        trainer.save(path)
        if trainer.history and trainer.writes:
            plot_curves(trainer.history, plot, output.title(cfg))
        if trainer.seq:
            where = (f"the start of epoch {trainer.epoch + 1}: a recurrent model's state "
                     "is not saved, so it resumes at an epoch boundary")
        else:
            where = f"epoch {trainer.epoch + 1}, step {trainer.step}"
        print(f"interrupted: saved {path} (at {where}).\n"
              f"resume with:  mibun train --resume {output.quote(path)}", flush=True)
        return result

    if trainer.writes:
        plot_curves(trainer.history, plot, output.title(cfg))
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
        print(f"done: {output.plural(n, 'epoch')} (this run: {ran} in {elapsed:.1f} s), {summary}")
    else:
        print(f"done: {output.plural(n, 'epoch')} in {elapsed:.1f} s, {summary}")
    print(f"wrote {os.path.join(out_dir, '')}\n"
          f"  checkpoint.npz  model + optimizer; train on with: mibun train --resume "
          f"{output.quote(path)} --epochs {2 * cfg['epochs']}\n"
          f"  metrics.csv     loss and accuracy per epoch\n"
          f"  curves.png      the learning curves")
    return result


def data_parallel(cls):
    """Class decorator of mibun.distributed's DataParallelTrainer: the Trainer that
    ``train(..., comm=comm)`` runs on each rank. (A subclass of Trainer, so this module
    cannot import it; a Communicator comes from that module, so it is set whenever one is
    passed.)"""
    global _data_parallel_trainer  # one registration, when mibun.distributed is imported
    _data_parallel_trainer = cls
    return cls


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
    """The array module of ``device`` (``'cpu'``: NumPy, ``'gpu'``: CuPy, from ``backend``)."""
    if device == "cpu":
        return np
    if not backend.gpu_enable:
        raise ConfigError("--device gpu needs CuPy, which is not installed (pip install "
                         "cupy-cuda12x, matching your CUDA version); or use --device cpu")
    try:
        count = backend.cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # CUDA driver missing or broken
        raise ConfigError(f"--device gpu: CuPy cannot reach a GPU ({e}); use --device cpu") \
            from None
    if count < 1:
        raise ConfigError("--device gpu: CuPy found no CUDA GPU; use --device cpu")
    return backend.cupy


def _load_data(cfg):
    """(train, test) datasets with ``get_batch``, and the number of classes (0: regression)."""
    name = cfg["dataset"]
    kw = {}
    if name in ("mnist", "fashion-mnist", "cifar10"):
        kw = {"root": cfg["data_dir"], "download": cfg["download"]}
    if name in ("digits", "mnist", "fashion-mnist"):
        kw["flatten"] = False  # images (N, C, H, W): each model's forward_batch reads them
    cls = getattr(datasets, _DATASET_CLASSES[name])
    try:
        train_set, test_set = cls(train=True, **kw), cls(train=False, **kw)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{e} (mibun train: give the directory with --data-dir DIR)") \
            from None
    classify = DATASETS[name][0] == "classify"
    n_classes = int(np.max(train_set.label)) + 1 if classify else 0
    return train_set, test_set, n_classes


def _build_model(cfg, n_classes):
    """The model ``--model`` names, built by its class (``Model.for_training``)."""
    cls = getattr(models, _MODEL_CLASSES[cfg["model"]])
    out = n_classes if DATASETS[cfg["dataset"]][0] == "classify" else 1
    return cls.for_training(cfg["hidden"], out)


def _build_optimizer(cfg, model):
    cls = getattr(optimizers, OPTIMIZERS[cfg["optimizer"]][0])
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


def _windows(loader, size):
    """The batches of ``loader`` in lists of ``size`` time steps (truncated-BPTT windows)."""
    xs, ts = [], []
    for x, t in loader:
        xs.append(x)
        ts.append(t)
        if len(xs) == size:
            yield xs, ts
            xs, ts = [], []
    if xs:
        yield xs, ts


class Trainer:
    """The training loop behind ``mibun train``: state that a checkpoint must restore.

    The batches come from a ``DataLoader`` seeded with the run's seed (the order of epoch
    *e* depends on ``(seed, e)`` only), or, for a recurrent model on a sequence, from a
    ``SeqDataLoader`` cut into truncated-BPTT windows of ``BPTT`` steps; a batch of whole
    examples goes through ``model.forward_batch``.
    """

    writes = True  # writes the files (in a distributed run, rank 0 alone)
    _interrupt_type = _Interrupt  # what a Ctrl-C sets (mibun.distributed: agreed by the ranks)

    def __init__(self, cfg, xp, out_dir):
        self.cfg = cfg
        self.xp = xp
        self.out_dir = out_dir
        self.task = DATASETS[cfg["dataset"]][0]
        np.random.seed(cfg["seed"])
        if xp is not np:
            xp.random.seed(cfg["seed"])
        self.train_set, self.test_set, self.n_classes = _load_data(cfg)
        self.model = _build_model(cfg, self.n_classes)
        # a recurrent model on the one sequence of a regression data set: BPTT windows
        self.seq = self.model.recurrent and self.task == "regress"
        gpu, bs = xp is not np, cfg["batch_size"]
        if self.seq:
            if bs > len(self.train_set):
                raise ConfigError(f"--batch-size {bs} is larger than the sequence "
                                  f"({len(self.train_set)} steps)")
            self.loader = SeqDataLoader(self.train_set, bs, gpu=gpu)
            self.test_loader = DataLoader(self.test_set, 1, shuffle=False, gpu=gpu)
        else:
            self.loader = DataLoader(self.train_set, bs, seed=cfg["seed"], gpu=gpu)
            self.test_loader = DataLoader(self.test_set, max(bs, 256), shuffle=False, gpu=gpu)
        self.optimizer = _build_optimizer(cfg, self.model)
        # Create the lazy parameters now, on the CPU from the seeded NumPy generator, so a
        # resumed run and a fresh run (on either device) start from the same model.
        x0, _ = self.train_set.get_batch(np.arange(min(2, len(self.train_set))))
        with mibun.no_grad():
            self._forward(np.asarray(x0))
        if gpu:
            self.model.to_gpu()
        self.epoch = 0  # completed epochs
        self.step = 0  # batches done in the current epoch
        self.part = [0.0, 0.0, 0]  # loss sum, correct count, examples in this epoch so far
        self.history = []
        self.interrupt = None

    # --- pieces -------------------------------------------------------------------------
    def _forward(self, x):
        if self.seq:  # one time step of the parallel streams, from a fresh state
            self.model.reset_state()
            return self.model(x)
        return self.model.forward_batch(x)

    def _loss(self, y, t):
        if self.task == "classify":
            return F.softmax_cross_entropy(y, t)
        return F.mean_squared_error(y, t)

    def _correct(self, y, t):
        if self.task != "classify":
            return 0.0
        return float((y.data.argmax(axis=1) == t).sum())

    def steps_per_epoch(self):
        if self.seq:  # BPTT windows over each of the batch_size parallel streams
            return -(-len(self.loader) // BPTT)
        return len(self.loader)

    # --- checkpoints ----------------------------------------------------------------------
    def meta(self):
        keys, pos, has_gauss, cached = np.random.get_state()[1:]
        return dict(
            config=json.dumps(self.cfg), epoch=self.epoch, step=self.step,
            part_loss=float(self.part[0]), part_correct=float(self.part[1]),
            part_count=int(self.part[2]), history=json.dumps(self.history),
            rng_keys=np.asarray(keys), rng_pos=int(pos), rng_has_gauss=int(has_gauss),
            rng_cached=float(cached), mibun_version=mibun.__version__,
        )

    def save(self, path=None):
        path = path or os.path.join(self.out_dir, "checkpoint.npz")
        checkpoint.save_checkpoint(path, self.model, self.optimizer, **self.meta())
        return path

    def restore(self, meta, path="the checkpoint"):
        check_resume_meta(meta, path)
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

    def _batches(self):
        if self.seq:  # a stop mid-sequence resumes from the start of the epoch
            self.loader.set_epoch(self.epoch)
            self.model.reset_state()
            return _windows(self.loader, BPTT)
        self.loader.set_epoch(self.epoch, start_batch=self.step)
        return self.loader

    def _train_epoch(self, progress):
        cfg = self.cfg
        t0 = time.perf_counter()
        total = self.steps_per_epoch()
        bar = progress(total, self.epoch + 1, cfg["epochs"], self.step)
        snapshot = self._snapshot() if self.seq else None
        test_hook = int(os.environ.get("_MIBUN_TEST_SIGINT_AT_STEP", "0") or 0)
        try:
            for x, t in self._batches():
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

    def _train_step(self, x, t):
        model, opt = self.model, self.optimizer
        if self.seq:  # one BPTT window: a list of time steps, keeping the state
            loss = 0
            for xk, tk in zip(x, t):
                loss = loss + self._loss(model(xk), tk)
            loss = loss / len(x)
            model.cleargrads()
            self._backward(loss)
            loss.unchain_backward()
            opt.update()
            n = len(x) * len(x[0])
            return float(loss.data), 0.0, n
        y = model.forward_batch(x)
        loss = self._loss(y, t)
        model.cleargrads()
        self._backward(loss)
        opt.update()
        return float(loss.data), self._correct(y, t), len(t)

    def _backward(self, loss):
        loss.backward()  # (a rank of a distributed run weights the loss first)

    def _snapshot(self):
        model = {k: np.array(backend.as_numpy(v), copy=True)
                 for k, v in self.model.state_dict().items()}
        opt = {k: np.array(backend.as_numpy(v), copy=True)
               for k, v in self.optimizer.state_dict().items()}
        return model, opt, (self.step, list(self.part), np.random.get_state())

    def _restore_snapshot(self, snap):
        model, opt, (step, part, rng) = snap
        if self.xp is not np:
            model = {k: backend.as_cupy(v) for k, v in model.items()}
            opt = {k: backend.as_cupy(v) for k, v in opt.items()}
        self.model.load_state_dict(model)
        self.optimizer.load_state_dict(opt)
        self.step, self.part = step, part
        np.random.set_state(rng)

    def evaluate(self):
        loss_sum, correct, count = 0.0, 0.0, 0
        if self.seq:  # one stream through the whole test sequence
            self.model.reset_state()
        with mibun.no_grad(), mibun.test_mode():
            for x, t in self.test_loader:
                y = self.model(x) if self.seq else self.model.forward_batch(x)
                loss_sum += float(self._loss(y, t).data) * len(t)
                correct += self._correct(y, t)
                count += len(t)
        if self.seq:
            return loss_sum / count, None
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
        print(output.epoch_line(rec, self.cfg["epochs"]), flush=True)
        self.save()
        if self.writes:
            output.write_csv(self.history, os.path.join(self.out_dir, "metrics.csv"))
