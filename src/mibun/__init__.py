"""mibun (미분): define-by-run automatic differentiation on NumPy (CuPy on a GPU).

DeZero's public names work unchanged: ``import mibun as dezero``.
"""
from mibun.config import Config, enable_grad, no_grad, test_mode, using_config
from mibun.core import (Function, Parameter, Variable, as_array, as_variable, grad,
                        numerical_diff)
import mibun.functions  # noqa: F401  (installs the operators on Variable)
from mibun import utils  # noqa: F401

__all__ = [
    "Variable", "Parameter", "Function", "Config", "using_config", "no_grad", "enable_grad",
    "test_mode", "as_array", "as_variable", "grad", "numerical_diff", "functions", "utils",
]
__version__ = "0.1.0"
