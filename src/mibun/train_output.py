"""What ``mibun train`` prints and writes besides checkpoints: lines, metrics.csv, curves.png.

One line per epoch (``epoch_line``), the rows of ``metrics.csv`` (``write_csv``), the learning
curves (``plot_curves``, with matplotlib's Agg backend, no display needed) and a tqdm
progress bar per epoch (``make_progress``).
"""
from __future__ import annotations

import csv
import os
import re
import sys

import numpy as np

__all__ = ["epoch_line", "make_progress", "plot_curves", "plural", "quote", "title",
           "write_csv"]


def plural(n, word):
    return f"{n} {word}" + ("" if n == 1 else "s")


def title(cfg):
    return f"mibun train: {cfg['dataset']}, {cfg['model']}, {cfg['optimizer']}"


def quote(path):
    """``path`` as a shell word (quoted only when needed), for the printed commands."""
    return path if re.fullmatch(r"[\w./\-:\\]+", path) else "'" + path.replace(
        "'", "'\\''") + "'"


def epoch_line(rec, epochs):
    w = len(str(epochs))
    s = f"epoch {rec['epoch']:>{w}}/{epochs}  train loss {rec['train_loss']:.4f}"
    if rec["train_acc"] is not None:
        s += f" acc {100 * rec['train_acc']:5.1f}%"
    s += f"  test loss {rec['test_loss']:.4f}"
    if rec["test_acc"] is not None:
        s += f" acc {100 * rec['test_acc']:5.1f}%"
    sec = rec["seconds"]
    return s + (f"  ({sec:.1f} s)" if sec >= 1 else f"  ({1000 * sec:.0f} ms)")


def write_csv(history, path):
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


def make_progress(enabled):
    """A factory of per-epoch progress bars (tqdm on a terminal, nothing otherwise)."""
    if not enabled:
        return lambda total, epoch, epochs, done: None
    from tqdm.auto import tqdm  # the notebook widget in Jupyter (with ipywidgets), else text

    def make(total, epoch, epochs, done):
        return tqdm(total=total, initial=done, desc=f"epoch {epoch}/{epochs}", unit="batch",
                    leave=False, file=sys.stderr, dynamic_ncols=True)
    return make
