"""Error messages for bad input: the op, the argument, expected against found, shapes, dtypes.

Everything here runs only once something has already failed, so the success path pays
nothing: ops do not pre-check their arguments; ``Function.__call__`` catches NumPy's
TypeError / ValueError / IndexError and re-raises it, as the same kind, through
:func:`op_error`, prefixed with the public op the user called (found on the call stack by
:func:`op_name`) and followed by one ``describe`` line per argument.
"""
from __future__ import annotations

import inspect
import sys

import numpy as np

from mibun import backend

#: Array kinds mibun computes on: bool, signed and unsigned int, float. Complex, object,
#: string and datetime data are refused where data enters, with one TypeError, instead of
#: half working (a complex scalar added to float32 would lose its imaginary part).
REAL_KINDS = "biuf"

_public_ops: dict = {}  # code object of each public mibun.functions function -> "F.<name>"


class UsageError(Exception):
    """A bad command-line argument (``mibun grad``, ``mibun train``): reported as one line,
    exit status 2. Here, below the commands, so that mibun.cli and mibun.distributed (which
    runs a command on every rank) share it."""

    def __init__(self, message, prog=None):
        super().__init__(message)
        self.prog = prog


def shape_dtype(x) -> str:
    """``"shape=(3, 4) dtype=float32"``: an array (or Variable) as error messages show it."""
    return f"shape={tuple(x.shape)} dtype={x.dtype}"


def describe(name, x) -> str:
    """One line of an error message: ``"  x: shape=(3, 4) dtype=float32"`` (for a Variable
    or an array), or the type and value of anything else (``"  x: NoneType None"``)."""
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        return f"  {name}: {shape_dtype(x)}"
    return f"  {name}: {type(x).__name__} {x!r:.60}"


def op_name(default):
    """The public op the user called, to name it in an error message.

    It is the outermost ``mibun.functions`` function on the call stack (``F.maximum`` when
    maximum fails inside ``where``; ``F.add`` for ``x + y``), else ``default``.
    """
    if not _public_ops:
        # mibun.functions sits above this module (its ops import it): read from sys.modules,
        # where it is by the time an op fails, not imported
        F = sys.modules.get("mibun.functions")
        for obj in vars(F).values() if F is not None else ():
            if inspect.isfunction(obj) and obj.__module__.startswith("mibun.functions"):
                # by the function's own name: an alias (batch_nrom) must not rename it
                _public_ops.setdefault(obj.__code__, "F." + obj.__name__)
    name = default
    frame = sys._getframe(1)
    while frame is not None:
        name = _public_ops.get(frame.f_code, name)
        frame = frame.f_back
    return name


def arg_name(obj, depth=2) -> str:
    """The name a caller gave ``obj`` (``x`` in ``x = as_variable(x)``): the first local of
    the frame ``depth`` levels up (parameters come first) that holds it."""
    names = [k for k, v in sys._getframe(depth).f_locals.items() if v is obj]
    return names[0] if names else "an argument"


def input_names(f, n):
    """The names ``f.forward`` gives its inputs (x, W, b), or x0, x1, ... for ``*xs``."""
    try:
        params = list(inspect.signature(f.forward).parameters.values())
    except (TypeError, ValueError):
        params = []
    names = [p.name for p in params if p.kind == p.POSITIONAL_OR_KEYWORD]
    if len(names) != n:
        names = [f"x{i}" for i in range(n)] if n > 1 else ["x"]
    return names


def _tagged(err):
    err._mibun_op = True  # already names the op: op_error up the stack passes it on as is
    return err


def unsupported_dtype(op, arg, data):
    """TypeError for data of a kind mibun does not compute on (complex, object, str...)."""
    what = "complex numbers" if data.dtype.kind == "c" else f"dtype {data.dtype}"
    return _tagged(TypeError(
        f"{op}: {arg} holds {what}, which mibun does not support: it computes on bool, "
        f"integer and float arrays only\n{describe(arg, data)}"))


def bad_operand(op, arg, x):
    """TypeError for an operand that is not an array of real numbers (None, str, ...)."""
    data = np.asarray(x) if isinstance(x, (np.generic, complex)) else x
    if isinstance(data, backend.array_types) and data.dtype.kind != "O":
        return unsupported_dtype(op, arg, data)
    return _tagged(TypeError(
        f"{op}: {arg} must be a Variable, an ndarray or a real number, got "
        f"{type(x).__name__} {x!r:.60}"))


def op_error(e, args, default="mibun"):
    """NumPy's TypeError / ValueError / IndexError ``e`` as the same kind, prefixed with the
    public op being called and followed by its arguments' shapes and dtypes (``args``: name
    -> value). Use as ``raise errors.op_error(e, {"x0": x0, "x1": x1}) from e``.
    """
    if getattr(e, "_mibun_op", False) or str(e).startswith("F."):
        return e  # already says which op and arguments
    lines = "\n".join(describe(n, x) for n, x in args.items())
    try:  # the same class, so `except LinAlgError` (or a user's own error class) still works
        err = type(e)(f"{op_name(default)}: {str(e).rstrip()}\n{lines}")  # NumPy ends some in " "
    except Exception:  # noqa: BLE001  (a class whose constructor takes other arguments)
        return e
    return _tagged(err)


def bad_gradient(f, i, gx, shape=None, dtype=None):
    """TypeError for a backward that returned no gradient-like value for input ``i``, or
    ValueError (with ``shape``) for a gradient of the wrong shape."""
    op = type(f).__name__ + ".backward"
    if shape is None:
        return TypeError(f"{op} returned a {type(gx).__name__} as the gradient of input "
                         f"{i}; return a Variable, an ndarray or None")
    return ValueError(f"{op}: the gradient of input {i} has the wrong shape\n"
                      f"{describe('gradient', gx)}\n  input:    shape={tuple(shape)} "
                      f"dtype={dtype}")
