"""DeZero's ``dezero.functions_conv`` module name: the convolution and pooling families of
``mibun.functions`` (DeZero keeps both in one module)."""
from mibun.functions.conv import *
from mibun.functions.conv import __all__ as _conv_all
from mibun.functions.pooling import *
from mibun.functions.pooling import __all__ as _pooling_all

__all__ = _conv_all + _pooling_all  # noqa: PLE0605  (both lists, joined)
