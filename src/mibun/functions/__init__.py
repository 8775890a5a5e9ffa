"""The differentiable op library, ``import mibun.functions as F``.

One module per family (math, array, reduction, linalg, activation, loss, conv, norm,
noise); every public name is re-exported here flat, as in DeZero.
"""
from mibun.functions import _operators
from mibun.functions.activation import *
from mibun.functions.array import *
from mibun.functions.conv import *
from mibun.functions.linalg import *
from mibun.functions.loss import *
from mibun.functions.math import *
from mibun.functions.noise import *
from mibun.functions.norm import *
from mibun.functions.reduction import *

_operators.install()
# DeZero's F also exposes these op classes by name (F.Sin, F.Exp, ...).
from mibun.functions.math import Clip, Cos, Exp, Log, Sigmoid, Sin, Tanh  # noqa: F401
