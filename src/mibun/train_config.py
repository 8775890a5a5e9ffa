"""The settings of ``mibun train``: data sets, defaults, ``make_config``, ``load_config``.

A run's settings are a plain dict (what a checkpoint stores as JSON). ``mibun.cli`` parses the
arguments into it with ``make_config`` and reports a ``ConfigError`` as a usage error;
``load_config`` reads them back from a checkpoint and checks every value of its metadata as
carefully as the command-line arguments (``check_resume_meta``).
"""
from __future__ import annotations

import json
import math
import os
import time

import numpy as np

from mibun import checkpoint

__all__ = ["DATASETS", "DEFAULTS", "OPTIMIZERS", "ConfigError", "check_resume_meta",
           "default_out", "load_config", "make_config"]


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
_DATASET_CLASSES = {"digits": "Digits", "spiral": "Spiral", "sincurve": "SinCurve",
                    "mnist": "MNIST", "fashion-mnist": "FashionMNIST", "cifar10": "CIFAR10"}
# --model NAME: the mibun.models class (its ``for_training`` builds the model)
_MODEL_CLASSES = {"mlp": "MLP", "cnn": "SmallCNN", "lstm": "SeqRegressor"}


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
    cfg = check_resume_meta(meta, path)
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


def check_resume_meta(meta: dict, path) -> dict:
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
