"""The differentiable op library, ``import mibun.functions as F``.

One module per family (arithmetic, math, select, array, indexing, reduction, linalg,
activation, loss, conv, pooling, norm, noise; simple: DeZero's compositions, kept as
oracles); every public name is re-exported here flat, as in DeZero. What the families
share (error lines, axis normalisation, array ``sum_to``, window geometry) is ``_helpers``.
"""
from mibun import core
from mibun.functions import _operators
from mibun.functions import arithmetic as _arithmetic
from mibun.functions.activation import *
from mibun.functions.arithmetic import *
from mibun.functions.array import *
from mibun.functions.conv import *
from mibun.functions.indexing import *
from mibun.functions.linalg import *
from mibun.functions.loss import *
from mibun.functions.math import *

# DeZero's F also exposes these op classes by name (F.Sin, F.Exp, ...).
from mibun.functions.math import Cos, Exp, Log, Sigmoid, Sin, Tanh  # noqa: F401
from mibun.functions.noise import *
from mibun.functions.norm import *
from mibun.functions.pooling import *
from mibun.functions.reduction import *
from mibun.functions.select import *
from mibun.functions.select import Clip  # noqa: F401
from mibun.functions.simple import *

_operators.install()


def _setup_variable() -> None:
    """DeZero's name: install the operators on Variable (``import mibun`` already does)."""
    _operators.install()


# DeZero's core module defines the arithmetic ops and setup_variable: the same names there.
setattr(core, "setup_variable", _setup_variable)
for _name in ("Add", "Sub", "Mul", "Div", "Neg", "Pow", "add", "sub", "rsub", "mul", "div",
              "rdiv", "neg", "pow"):
    setattr(core, _name, getattr(_arithmetic, _name))
