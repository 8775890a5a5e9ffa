"""What the layers share: argument checks at construction, parameter creation, the input
check of a call, and the pieces of a layer's repr."""
from __future__ import annotations

import numpy as np

from mibun import backend
from mibun.core import Variable
from mibun.functions._helpers import check_int as check_size  # noqa: F401  (layers' name)


def shape_str(v) -> str:
    """A parameter as a repr shows it: ``(4, 3) float32``, or ``(lazy)``."""
    if v.data is None:
        return "(lazy)"
    return f"{tuple(v.data.shape)} {v.data.dtype}"


def kwargs_repr(**kw) -> str:
    """``in_size=4, out_size=3``: a layer's settings in its repr."""
    return ", ".join(f"{k}={v}" for k, v in kw.items())


# --- argument checks: at construction, so that a bad setting fails where it is given ----------
def check_pair(op, name, value, zero=False):
    """``k`` or ``(kh, kw)``, each checked as ``_size``."""
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return tuple(check_size(op, name, v, zero=zero) for v in value)
    if isinstance(value, (tuple, list)):
        raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
    return check_size(op, name, value, zero=zero)


def check_dtype(op, dtype):
    try:
        d = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{op}: dtype must be a NumPy dtype, got {dtype!r}") from None
    if d.kind != "f":
        raise ValueError(f"{op}: dtype must be a floating-point type (parameters are trained "
                         f"by gradients), got {d}")
    return dtype


def randn(op, xp, shape, dtype, fill=None):
    """``randn(*shape)`` (or ``fill``) in ``dtype``; a size that cannot be allocated is a
    ValueError naming the layer, not NumPy's "array is too big" or a MemoryError."""
    try:
        if fill is None:
            return xp.random.randn(*shape).astype(dtype)
        return xp.full(shape, fill, dtype=dtype)
    except (ValueError, MemoryError, OverflowError) as e:
        raise ValueError(f"{op}: cannot create parameters of shape {shape}: {e}") from None


def check_input(op, x):
    """A layer's input must be a Variable or an array (a cheap isinstance per call)."""
    if not isinstance(x, (Variable, np.generic, *backend.array_types)):
        raise TypeError(f"{op}: the input must be a Variable or an ndarray, got "
                        f"{type(x).__name__}")
