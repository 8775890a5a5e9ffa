"""The differentiable op library, ``import mibun.functions as F``.

One module per family (math, array, reduction, linalg, activation, loss, conv, norm,
noise); every public name is re-exported here flat, as in DeZero.
"""
from mibun.functions.math import *  # noqa: F401,F403
from mibun.functions.array import *  # noqa: F401,F403
from mibun.functions.reduction import *  # noqa: F401,F403
from mibun.functions.linalg import *  # noqa: F401,F403
from mibun.functions.activation import *  # noqa: F401,F403
from mibun.functions.loss import *  # noqa: F401,F403
from mibun.functions.conv import *  # noqa: F401,F403
from mibun.functions.norm import *  # noqa: F401,F403
from mibun.functions.noise import *  # noqa: F401,F403
from mibun.functions import _operators

_operators.install()
