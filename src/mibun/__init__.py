"""mibun (미분): define-by-run automatic differentiation on NumPy (CuPy on a GPU).

DeZero's public names work unchanged: ``import mibun as dezero``.
"""
import mibun.functions  # noqa: F401  (installs the operators on Variable)
from mibun import (  # noqa: F401
    checkpoint,
    cuda,
    dataloaders,
    datasets,
    func,
    layers,
    models,
    optimizers,
    transforms,
    utils,
    visualize,
)
from mibun.config import Config, enable_grad, no_grad, test_mode, using_config
from mibun.core import Function, Parameter, Variable, as_array, as_variable, grad, numerical_diff
from mibun.dataloaders import *  # noqa: F403  (DataLoader, SeqDataLoader)
from mibun.layers import *  # noqa: F403  (Layer and the layer classes)
from mibun.models import *  # noqa: F403  (Model)

__all__ = [
    "Config", "Function", "Parameter", "Variable", "as_array", "as_variable", "enable_grad",
    "func", "functions", "grad", "no_grad", "numerical_diff", "test_mode", "using_config", "utils",
    "Layer", "Model", "DataLoader", "SeqDataLoader",
]
__version__ = "0.1.0"
