"""Checkpoints that never lose data: model weights, optimizer state and metadata in one .npz.

Three promises, each fixing a way DeZero's ``save_weights`` / ``load_weights`` could lose work:

* **Loading never runs code.** Files are read with ``allow_pickle=False`` and written with
  plain ``.npy`` members only, so a checkpoint from a stranger is just numbers.
* **A save is atomic.** The file is written to a temporary name in the same directory,
  flushed to disk, and renamed over the old one (``os.replace``). A crash, a full disk or a
  Ctrl-C during a save leaves the previous checkpoint as it was.
* **A load is all-or-nothing.** Every name, shape and dtype is checked before anything is
  assigned; a mismatched or truncated file raises ``ValueError`` naming the first problem
  and leaves the model and the optimizer exactly as they were.

Layout of a checkpoint file (an ordinary ``.npz``; ``np.load`` can inspect it)::

    __format__          'mibun-checkpoint-1'
    model/<param name>  e.g. model/l0/W, model/bn/avg_mean
    optimizer/<key>     the optimizer's state_dict, if one was given
    __optimizer__       the optimizer's class name
    meta/<key>          the extra keyword arguments (epoch=3, loss=0.25, ...)
"""
from __future__ import annotations

import os
import tempfile
import zipfile

import numpy as np

from mibun import backend

__all__ = ["load_checkpoint", "load_npz", "save_checkpoint", "save_npz"]

FORMAT = "mibun-checkpoint-1"


# =============================================================================
# Safe .npz files
# =============================================================================
def save_npz(path, arrays: dict, compress: bool = False) -> None:
    """Write ``arrays`` (name -> ndarray) to ``path`` as an .npz, atomically.

    The name is used as given (no ``.npz`` is appended, unlike ``np.savez``). Object
    arrays are refused, so the file can always be loaded with ``allow_pickle=False``.

    Args:
        path (str or PathLike): destination file; its directory must exist.
        arrays (dict): str -> NumPy or CuPy array (CuPy arrays are copied to the host).
        compress (bool): deflate the members (smaller, slower).
    Raises:
        TypeError: a name is not a str, or an array has dtype object.
    """
    path = os.fspath(path)
    items = []
    for name, a in arrays.items():
        if not isinstance(name, str):
            raise TypeError(f"save_npz: array names must be str, got {type(name).__name__}")
        a = np.asarray(backend.as_numpy(a))
        if a.dtype.hasobject:
            raise TypeError(f"save_npz: {name!r} has dtype object, which cannot be saved "
                            "without pickle; convert it to a numeric or str array")
        items.append((name, a))

    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".",
                               suffix=".tmp", dir=directory)
    try:
        method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        with os.fdopen(fd, "wb") as f:
            with zipfile.ZipFile(f, "w", compression=method, allowZip64=True) as zf:
                for name, a in items:
                    with zf.open(name + ".npy", "w", force_zip64=True) as member:
                        np.lib.format.write_array(member, a, allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())  # the data is on disk before the rename makes it visible
        # mkstemp creates the file private (0600); give it the usual mode, or the old file's.
        try:
            mode = os.stat(path).st_mode & 0o777
        except FileNotFoundError:
            mode = 0o644
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:  # including KeyboardInterrupt: never leave the temporary file
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(directory)


def _fsync_dir(directory: str) -> None:
    # Make the rename itself durable. Not every platform can open a directory (Windows).
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_npz(path, what: str = "load_npz") -> dict:
    """Read every array of the .npz ``path`` into a dict, refusing pickled data.

    Args:
        path (str or PathLike): the file.
        what (str): the caller's name, used in error messages.
    Returns:
        dict: name -> NumPy array.
    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a complete .npz of plain arrays (truncated, corrupted,
            not an .npz, or holding pickled objects).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{what}: no such file: {path!r}")
    try:
        f = np.load(path, allow_pickle=False)
        if not isinstance(f, np.lib.npyio.NpzFile):
            raise ValueError(  # noqa: TRY004  (reported below as "not an .npz")
                f"it holds a single {type(f).__name__}, not named arrays")
        with f:
            return {name: f[name] for name in f.files}
    except (zipfile.BadZipFile, ValueError, EOFError, OSError, KeyError) as e:
        raise ValueError(f"{what}: cannot read {path!r}: it is not a complete .npz of plain "
                         f"arrays (truncated, corrupted or pickled?): {e}") from e


# =============================================================================
# Checkpoints
# =============================================================================
def _meta_array(key, value):
    if isinstance(value, (bool, int, float, str, np.generic)):
        a = np.asarray(value)
    elif isinstance(value, np.ndarray):
        a = value
    else:
        raise TypeError(f"save_checkpoint: meta value {key}={value!r:.40} is a "
                        f"{type(value).__name__}; use an int, float, bool, str or ndarray")
    if a.dtype.hasobject:
        raise TypeError(f"save_checkpoint: meta value {key}={value!r:.40} cannot be stored "
                        "without pickle (too large an int?)")
    return a


def save_checkpoint(path, model, optimizer=None, **meta) -> None:
    """Save the model's weights and buffers, the optimizer's state and ``meta``, atomically.

    Args:
        path (str or PathLike): destination .npz (written to a temporary file, then renamed
            into place, so an interrupted save keeps the previous checkpoint intact).
        model (Layer): anything with ``state_dict()``.
        optimizer: an optimizer with ``state_dict()`` (its step count, moments, ...), or None.
        **meta: ints, floats, bools, strs (or small arrays), e.g. ``epoch=3``.

    >>> import os, tempfile, numpy as np, mibun.layers as L
    >>> np.random.seed(0); layer = L.Linear(2, in_size=3)
    >>> path = os.path.join(tempfile.mkdtemp(), 'ckpt.npz')
    >>> save_checkpoint(path, layer, epoch=5)
    >>> load_checkpoint(path, layer)
    {'epoch': 5}
    """
    arrays = {"__format__": np.asarray(FORMAT)}
    # A Layer's arrays as they are (no copy of every weight just to write it).
    state = model._state_arrays() if hasattr(model, "_state_arrays") else model.state_dict()
    for name, a in state.items():
        arrays["model/" + name] = a
    if optimizer is not None:
        arrays["__optimizer__"] = np.asarray(type(optimizer).__name__)
        for name, a in optimizer.state_dict().items():
            arrays["optimizer/" + name] = a
    for key, value in meta.items():
        arrays["meta/" + key] = _meta_array(key, value)
    save_npz(path, arrays)


def load_checkpoint(path, model, optimizer=None) -> dict:
    """Restore a checkpoint written by ``save_checkpoint``; return its metadata.

    Everything is checked first (names, shapes and dtypes of the model's parameters and
    buffers, then the optimizer's state): on any mismatch a ``ValueError`` names it and
    neither the model nor the optimizer is changed.

    Args:
        path (str or PathLike): the .npz file.
        model (Layer): receives the weights (its lazy, not yet initialised parameters are
            created from the file).
        optimizer: receives the optimizer state, or None to ignore it.
    Returns:
        dict: the ``meta`` given to ``save_checkpoint`` (0-d values as Python scalars).
    """
    path = os.fspath(path)
    arrays = load_npz(path, "load_checkpoint")
    fmt = arrays.get("__format__")
    if fmt is None or fmt.dtype.kind != "U" or str(fmt) != FORMAT:
        raise ValueError(f"load_checkpoint: {path!r} is not a mibun checkpoint (no "
                         f"'__format__' = {FORMAT!r} entry); a file from save_weights is "
                         "loaded with model.load_weights(path)")
    model_d, opt_d, meta = {}, {}, {}
    for key, a in arrays.items():
        if key.startswith("model/"):
            model_d[key[6:]] = a
        elif key.startswith("optimizer/"):
            opt_d[key[10:]] = a
        elif key.startswith("meta/"):
            meta[key[5:]] = a.item() if a.ndim == 0 else a

    model.check_state_dict(model_d, what="load_checkpoint: model")
    if optimizer is not None:
        saved_type = arrays.get("__optimizer__")
        if saved_type is None:
            raise ValueError(f"load_checkpoint: {path!r} holds no optimizer state; "
                             "call load_checkpoint(path, model) without the optimizer")
        if str(saved_type) != type(optimizer).__name__:
            raise ValueError(f"load_checkpoint: {path!r} holds the state of a "
                             f"{saved_type} optimizer, not of a {type(optimizer).__name__}")

    # The model is checked, so this assignment cannot fail; keep the old arrays so the
    # model can be put back if the optimizer rejects its state (the optimizer validates
    # everything before changing itself, and may need the model's shapes to do so).
    old = model._assign_state(model_d)
    if optimizer is not None:
        try:
            optimizer.load_state_dict(opt_d)
        except BaseException as e:
            model._restore_state(old)
            if isinstance(e, ValueError):  # add the file name to the optimizer's message
                raise ValueError(  # noqa: TRY004
                    f"load_checkpoint: {path!r}: optimizer state: {e}") from e
            raise
    return meta
