"""mibun (미분): define-by-run automatic differentiation on NumPy (CuPy on a GPU).

DeZero's public names work unchanged: ``import mibun as dezero``.
"""
import mibun.autograd  # first: it installs the gradient rules into the engine
import mibun.functions  # noqa: F401  (installs the operators on Variable)
from mibun import (  # noqa: F401
    checkpoint,
    core_simple,
    cuda,
    dataloaders,
    datasets,
    func,
    functions_conv,
    layers,
    models,
    optimizers,
    transforms,
    utils,
    visualize,
)
from mibun.config import Config, enable_grad, no_grad, test_mode, using_config
from mibun.core import (
    Function,
    Parameter,
    Variable,
    as_array,
    as_variable,
)
from mibun.dataloaders import *  # noqa: F403  (DataLoader, SeqDataLoader)
from mibun.datasets import Dataset
from mibun.layers import *  # noqa: F403  (Layer and the layer classes)
from mibun.models import *  # noqa: F403  (Model)
from mibun.autograd import grad
from mibun.utils import numerical_diff

# DeZero's size helpers are mibun.utils' (they are not ops, and utils sits above functions/);
# F shows them too, set from here, the package above both.
setattr(mibun.functions, "get_conv_outsize", utils.get_conv_outsize)
setattr(mibun.functions, "get_deconv_outsize", utils.get_deconv_outsize)
setup_variable = mibun.functions._setup_variable  # DeZero has it in core (set there too)

#: DeZero's switch between its two cores (steps 23-32 read it). mibun has one engine;
#: ``mibun.core_simple`` gives its names under the first-stage module name.
is_simple_core = False

__all__ = [
    "Config", "Function", "Parameter", "Variable", "as_array", "as_variable", "enable_grad",
    "func", "functions", "grad", "no_grad", "numerical_diff", "test_mode", "using_config",
    "utils", "Layer", "Model", "DataLoader", "SeqDataLoader", "Dataset", "setup_variable",
]
__version__ = "0.1.0"
