"""DeZero's ``dezero.functions_conv`` module name: the convolution family of ``mibun.functions``."""
from mibun.functions.conv import *  # noqa: F401,F403
from mibun.functions.conv import __all__  # noqa: F401
