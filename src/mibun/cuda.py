"""DeZero's ``dezero.cuda`` names, provided by ``mibun.backend``."""
from mibun.backend import (array_types, as_cupy, as_numpy, cupy, get_array_module,  # noqa: F401
                           gpu_enable)
