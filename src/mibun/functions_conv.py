"""DeZero's ``dezero.functions_conv`` module name: the convolution and pooling families of
``mibun.functions`` (DeZero keeps both in one module), and DeZero's size helpers."""
from mibun.functions.conv import *
from mibun.functions.conv import __all__ as _conv_all
from mibun.functions.pooling import *
from mibun.functions.pooling import __all__ as _pooling_all
from mibun.utils import get_conv_outsize, get_deconv_outsize

__all__ = [*_conv_all, *_pooling_all, "get_conv_outsize", "get_deconv_outsize"]  # noqa: PLE0604
