"""mibun (미분): define-by-run automatic differentiation on NumPy (CuPy on a GPU).

DeZero's public names work unchanged: ``import mibun as dezero``.
"""
from mibun.config import Config, enable_grad, no_grad, test_mode, using_config
from mibun.core import (Function, Parameter, Variable, as_array, as_variable, grad,
                        numerical_diff)
import mibun.functions  # noqa: F401  (installs the operators on Variable)
from mibun import cuda, utils  # noqa: F401
from mibun import layers, models, optimizers, datasets, dataloaders, transforms  # noqa: F401
from mibun import checkpoint, visualize  # noqa: F401
from mibun.layers import *  # noqa: F401,F403  (Layer)
from mibun.models import *  # noqa: F401,F403  (Model)
from mibun.dataloaders import *  # noqa: F401,F403  (DataLoader, SeqDataLoader)

__all__ = [
    "Variable", "Parameter", "Function", "Config", "using_config", "no_grad", "enable_grad",
    "test_mode", "as_array", "as_variable", "grad", "numerical_diff", "functions", "utils",
]
__version__ = "0.1.0"
