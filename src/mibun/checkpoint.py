"""Checkpoints that never lose data: model weights, optimizer state and metadata in one .npz.

Three promises, each fixing a way DeZero's ``save_weights`` / ``load_weights`` could lose work:

* **Loading never runs code.** Files are read with ``allow_pickle=False`` and written with
  plain ``.npy`` members only, so a checkpoint from a stranger is just numbers.
* **A save is atomic.** The file is written to a temporary name in the same directory,
  flushed to disk, and renamed over the old one (``os.replace``). A crash, a full disk, a
  Ctrl-C or a SIGTERM during a save leaves the previous checkpoint as it was (and Ctrl-C
  and SIGTERM leave no temporary file; a later save removes those of killed writers). A new
  file gets the mode ``open()`` would give it (0666 less the umask).
* **A load is all-or-nothing.** Every name, shape and dtype is checked, from the arrays'
  headers before any data is read, and then the optimizer's values, before anything is
  assigned; a mismatched, truncated or oversized file raises ``ValueError`` naming the
  first problem and leaves the model and the optimizer exactly as they were.

Layout of a checkpoint file (an ordinary ``.npz``; ``np.load`` can inspect it)::

    __format__          'mibun-checkpoint-1'
    model/<param name>  e.g. model/l0/W, model/bn/avg_mean
    optimizer/<key>     the optimizer's state_dict, if one was given
    __optimizer__       the optimizer's class name
    meta/<key>          the extra keyword arguments (epoch=3, loss=0.25, ...)
"""
from __future__ import annotations

import math
import os

import numpy as np

from mibun import backend
from mibun.errors import shape_dtype
from mibun.npzfile import DEFLATE_MAX_RATIO, _Npz, load_npz, save_npz  # noqa: F401

__all__ = ["load_checkpoint", "load_npz", "save_checkpoint", "save_npz"]

FORMAT = "mibun-checkpoint-1"


# =============================================================================
# A model's state: the parameters and buffers a Layer yields (``named_state``)
# =============================================================================
def model_arrays(model) -> dict:
    """``{name: NumPy array}`` of a Layer's parameters and buffers (NumPy data not copied).

    Raises:
        ValueError: a parameter is not initialised yet (a lazy layer not yet called).
    """
    out = {}
    for name, v in model.named_state():
        if v.data is None:
            raise ValueError(
                f"{type(model).__name__}.state_dict: {name!r} is not initialised yet (its "
                "input size is inferred on the first call); run one forward pass "
                "first, or give the layer its in_size / in_channels")
        out[name] = backend.as_numpy(v.data)
    return out


def check_model_state(model, d: dict, what: str) -> None:
    """Raise ValueError unless ``d`` matches the model's names, shapes and dtypes.

    ``d``'s values may be arrays or stand-ins with ``shape`` and ``dtype`` (a file's
    headers). A lazy (not yet initialised) parameter accepts any shape of a floating dtype.
    The message lists the first five problems.
    """
    own = dict(model.named_state())
    problems = []
    for name, v in own.items():
        if name not in d:
            problems.append(f"{name!r} is missing from the file")
            continue
        a = d[name]
        if not isinstance(a, backend.array_types):
            problems.append(f"{name!r} is a {type(a).__name__}, not an array")
        elif v.data is None:
            if a.dtype.kind != "f":
                problems.append(f"{name!r} has dtype {a.dtype}; expected a float array")
        elif a.shape != v.data.shape:
            problems.append(f"{name!r} has shape {a.shape} in the file but "
                            f"{v.data.shape} in the model")
        elif a.dtype != v.data.dtype:
            problems.append(f"{name!r} has dtype {a.dtype} in the file but "
                            f"{v.data.dtype} in the model")
    problems += [f"{name!r} is in the file but not in the model" for name in d
                 if name not in own]
    if problems:
        more = f"\n  ... and {len(problems) - 5} more" if len(problems) > 5 else ""
        raise ValueError(f"{what}: the state does not match {type(model).__name__} "
                         "(nothing was changed):\n  " + "\n  ".join(problems[:5]) + more)


def assign_model_state(model, d: dict) -> list:
    """Copy a checked ``d`` into the model, each array on its device; return the old data.

    ``restore_model_state(old)`` puts the old data back.
    """
    old = []
    for name, v in model.named_state():
        old.append((v, v.data))
        xp = np if v.data is None else backend.get_array_module(v.data)
        v.data = xp.array(d[name], copy=True)
    return old


def restore_model_state(old: list) -> None:
    for v, data in old:
        v.data = data


def load_weights(model, path) -> None:
    """``model.load_weights(path)``: a file of ``save_weights``, checked from its headers."""
    what = f"{type(model).__name__}.load_weights({str(path)!r})"
    d = load_npz(path, what, check=lambda d: check_model_state(model, d, what))
    assign_model_state(model, d)


# =============================================================================
# An optimizer's state (a mibun Optimizer: ``state``, ``t``, ``lr``, its ``slots``)
# =============================================================================
def check_optimizer_state(opt, d, weights=None):
    """Validate an optimizer's ``state_dict`` ``d``; return what ``assign_optimizer_state``
    needs (``opt`` is not changed).

    ``weights`` ({param name: array}) stands for the parameters' data where given: the
    arrays a checkpoint is about to load into the model (lazy parameters have none yet).
    """
    name_ = f"{type(opt).__name__}.load_state_dict"
    params = dict(opt.named_params("load_state_dict"))
    if not hasattr(d, "items"):
        raise TypeError(f"{name_}: expected a dict of arrays, got {type(d).__name__}")
    weights = weights or {}
    expected = set(opt.slots) | ({"step"} if opt.counts_steps else set())
    for key in ("@t", "@lr"):
        if key not in d:
            raise ValueError(f"{name_}: missing key {key!r}")
    t = _scalar(d["@t"], "iu", name_, "'@t' (the number of updates)")
    lr = _scalar(d["@lr"], "iuf", name_, "'@lr' (the learning rate)")
    new = {}
    for key, value in d.items():
        if key in ("@t", "@lr"):
            continue
        pname, _, slot = key.rpartition("/")
        if pname not in params:
            raise ValueError(f"{name_}: key {key!r} names no parameter of the target "
                             f"(parameters: {', '.join(list(params)[:8])}"
                             f"{', ...' if len(params) > 8 else ''})")
        if slot not in expected:
            raise ValueError(f"{name_}: key {key!r}: {type(opt).__name__} keeps "
                             f"{sorted(expected) or 'no per-parameter state'}, not {slot!r}")
        if slot == "step":
            new.setdefault(pname, {})[slot] = _scalar(value, "iu", name_, repr(key))
            continue
        a = np.asarray(backend.as_numpy(value))
        p = weights.get(pname, params[pname].data)
        if p is None:
            raise ValueError(f"{name_}: parameter {pname!r} is not initialised yet; "
                             "load the model's weights (or run a forward pass) first")
        if a.shape != p.shape or a.dtype != p.dtype:
            raise ValueError(f"{name_}: {key!r} does not match its parameter\n"
                             f"  state:     {shape_dtype(a)}\n  parameter: {shape_dtype(p)}")
        new.setdefault(pname, {})[slot] = a
    for pname, s in new.items():
        missing = expected - set(s)
        if missing:
            raise ValueError(f"{name_}: parameter {pname!r} lacks state {sorted(missing)}")
    return new, t, lr


def assign_optimizer_state(opt, checked) -> None:
    """Replace ``opt``'s state with one ``check_optimizer_state`` accepted, on each
    parameter's device."""
    new, t, lr = checked
    params = dict(opt.named_params())
    state = {}
    for pname, s in new.items():
        data = params[pname].data
        xp = np if data is None else backend.get_array_module(data)
        state[pname] = {k: v if k == "step" else xp.array(v) for k, v in s.items()}
    opt.state = state
    opt.t = t
    opt.lr = lr


def _scalar(value, kinds, op, what):
    """A 0-d integer (kinds "iu") or real (kinds "iuf") array, >= 0, as a Python number."""
    a = np.asarray(backend.as_numpy(value))
    kind = "integer" if kinds == "iu" else "finite real"
    if a.shape != () or a.dtype.kind not in kinds:
        raise ValueError(f"{op}: {what} must be a non-negative {kind} scalar, found "
                         f"{shape_dtype(a)}")
    v = int(a) if kinds == "iu" else float(a)
    if not (v >= 0 and math.isfinite(v)):
        raise ValueError(f"{op}: {what} must be a non-negative {kind} scalar, found {v}")
    return v


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
    state = model_arrays(model) if hasattr(model, "named_state") else model.state_dict()
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

    Everything is checked first: the names, shapes and dtypes of the model's parameters and
    buffers and of the optimizer's state from the arrays' headers, before any data is read
    (a file cannot make the loader allocate what it merely declares), then the optimizer's
    values (step counts, learning rate). On any problem a ``ValueError`` names it and
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
    with _Npz(path, "load_checkpoint") as f:
        fmt = f.headers.get("__format__")
        if fmt is None or fmt[0] != () or fmt[1].kind != "U" or str(
                f.read("__format__")) != FORMAT:
            raise ValueError(f"load_checkpoint: {path!r} is not a mibun checkpoint (no "
                             f"'__format__' = {FORMAT!r} entry); a file from save_weights is "
                             "loaded with model.load_weights(path)")
        # a mibun Optimizer is checked and assigned apart; any other needs only load_state_dict
        two_phase = hasattr(optimizer, "slots") and hasattr(optimizer, "named_params")
        # 1. names, shapes and dtypes, from the headers alone
        check_model_state(model, f.stand_ins("model/"), "load_checkpoint: model")
        if optimizer is not None:
            saved = f.headers.get("__optimizer__")
            if saved is None:
                raise ValueError(f"load_checkpoint: {path!r} holds no optimizer state; "
                                 "call load_checkpoint(path, model) without the optimizer")
            saved = str(f.read("__optimizer__")) if saved[1].kind == "U" else "?"
            if saved != type(optimizer).__name__:
                raise ValueError(f"load_checkpoint: {path!r} holds the state of a "
                                 f"{saved} optimizer, not of a {type(optimizer).__name__}")
            if two_phase:
                _opt_check(optimizer, f.stand_ins("optimizer/"), path, f.stand_ins("model/"))
        # 2. the data (every array now has a size the model or optimizer expects)
        model_d = {k[6:]: f.read(k) for k in f.headers if k.startswith("model/")}
        opt_d = {k[10:]: f.read(k) for k in f.headers if k.startswith("optimizer/")}
        meta = {}
        for k in f.headers:
            if k.startswith("meta/"):
                a = f.read(k)
                meta[k[5:]] = a.item() if a.ndim == 0 else a
    # 3. the values, then assign: nothing below can fail on the file's account
    state = _opt_check(optimizer, opt_d, path, model_d) if two_phase else None
    old = assign_model_state(model, model_d)
    if optimizer is not None:
        try:
            if two_phase:
                assign_optimizer_state(optimizer, state)
            else:  # it validates before changing itself, and may need the model's shapes
                optimizer.load_state_dict(opt_d)
        except BaseException as e:  # put the model back as it was
            restore_model_state(old)
            if isinstance(e, ValueError):  # add the file name to the optimizer's message
                raise ValueError(  # noqa: TRY004
                    f"load_checkpoint: {path!r}: optimizer state: {e}") from e
            raise
    return meta


def _opt_check(optimizer, d, path, weights):
    """``check_optimizer_state(optimizer, d)`` with the file named in its ValueError.

    The optimizer's state is checked against the parameters as they will be after the load
    (``weights``, already checked against the model), so that lazy parameters count too.
    """
    try:
        return check_optimizer_state(optimizer, d, weights)
    except ValueError as e:
        raise ValueError(f"load_checkpoint: {path!r}: optimizer state: {e}") from e
