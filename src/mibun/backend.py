"""Array backend: the one place that knows about NumPy versus CuPy.

Every op asks ``get_array_module(x)`` for ``xp`` instead of importing numpy, so the same
code runs on CuPy arrays. CuPy is optional: mibun imports and works without it.
"""
from __future__ import annotations

from typing import Any

import numpy as np

try:  # CuPy is an optional extra; a missing or broken install just means "CPU only".
    import cupy
    import cupyx

    gpu_enable = True
except Exception:  # noqa: BLE001  (a broken CuPy install must not break import mibun)
    cupy = None
    cupyx = None
    gpu_enable = False

Array = Any  # numpy.ndarray or cupy.ndarray

#: The ndarray types mibun accepts as Variable data.
array_types: tuple = (np.ndarray,) if cupy is None else (np.ndarray, cupy.ndarray)


def get_array_module(x) -> Any:
    """Return ``cupy`` for CuPy arrays (or Variables holding them), else ``numpy``."""
    if cupy is None:
        return np
    if not isinstance(x, (np.ndarray, cupy.ndarray)):  # a Variable (a CuPy array's .data
        x = getattr(x, "data", x)                      # is its memory pointer)
    return cupy.get_array_module(x)


def as_numpy(x) -> np.ndarray:
    """Return a NumPy array for a NumPy/CuPy array or a Python/NumPy scalar."""
    if cupy is not None and isinstance(x, cupy.ndarray):
        return cupy.asnumpy(x)
    return np.asarray(x)


def as_cupy(x):
    """Return a CuPy array; raise a clear error when CuPy is not installed."""
    if cupy is None:
        raise RuntimeError(
            "CuPy is not installed, so mibun cannot use a GPU. "
            "Install a CuPy build matching your CUDA (e.g. pip install cupy-cuda12x)."
        )
    return cupy.asarray(x)


def as_array(x, xp=np):
    """Turn a scalar result (NumPy returns 0-d results as scalars) into an ndarray."""
    if isinstance(x, array_types):
        return x
    return xp.asarray(x)


def scatter_add(a, indices, b) -> None:
    """``a[indices] += b`` with repeated indices accumulated (np.add.at / cupyx.scatter_add)."""
    if cupy is not None and isinstance(a, cupy.ndarray):
        cupyx.scatter_add(a, indices, b)
    else:
        np.add.at(a, indices, b)


def is_float(x) -> bool:
    """True for floating (or complex) arrays: the only kind backprop flows into."""
    return x.dtype.kind in "fc"
