"""Python operators and NumPy protocols on Variable, bound to the mibun ops."""
from __future__ import annotations

import numpy as np

from mibun import backend
from mibun.core import Variable
from mibun.functions import arithmetic, array, indexing, linalg, math, reduction, select


def _ufunc_table():
    return {
        np.add: arithmetic.add, np.subtract: arithmetic.sub, np.multiply: arithmetic.mul,
        np.true_divide: arithmetic.div, np.divide: arithmetic.div, np.power: arithmetic.pow,
        np.negative: arithmetic.neg, np.positive: lambda x: x,
        np.exp: math.exp, np.log: math.log, np.sin: math.sin, np.cos: math.cos,
        np.tan: math.tan, np.tanh: math.tanh, np.sqrt: math.sqrt, np.absolute: math.abs,
        np.square: arithmetic.square, np.maximum: select.maximum, np.minimum: select.minimum,
        np.arcsin: math.arcsin, np.arccos: math.arccos, np.arctan: math.arctan,
        np.sinh: math.sinh, np.cosh: math.cosh, np.log1p: math.log1p, np.expm1: math.expm1,
        np.matmul: linalg.matmul,
    }


def _function_table():
    """NumPy functions (``np.sum(v)``, ...) and the mibun ops they stand for."""
    return {
        np.sum: reduction.sum, np.mean: reduction.mean, np.max: reduction.max,
        np.min: reduction.min, np.var: reduction.var, np.std: reduction.std,
        np.reshape: array.reshape, np.transpose: array.transpose,
        np.broadcast_to: array.broadcast_to, np.concatenate: array.concat,
        np.stack: array.stack, np.split: array.split, np.squeeze: array.squeeze,
        np.expand_dims: array.expand_dims, np.matmul: linalg.matmul, np.dot: linalg.matmul,
        np.where: select.where, np.clip: select.clip,
    }


def install():
    V = Variable
    # DeZero's array-like Variable: shape, ndim, size, dtype, len() and repr() of the data
    V.shape = property(lambda self: self.data.shape)
    V.ndim = property(lambda self: self.data.ndim)
    V.size = property(lambda self: self.data.size)
    V.dtype = property(lambda self: self.data.dtype)
    V.__len__ = lambda self: len(self.data)

    def vrepr(self):
        text = "None" if self.data is None else str(self.data).replace("\n", "\n" + " " * 9)
        return f"variable({text})"

    def vbool(self):
        raise TypeError("The truth value of a Variable is ambiguous (it would cut the "
                        "graph); compare v.data instead.")

    def varray(self, dtype=None, copy=None):
        # np.asarray(v) gives the data; ufuncs go through __array_ufunc__ below
        data = backend.as_numpy(self.data)
        return data if dtype is None else data.astype(dtype, copy=False)

    V.__repr__, V.__bool__, V.__array__ = vrepr, vbool, varray
    V.__add__ = arithmetic.add
    V.__radd__ = arithmetic.add
    V.__sub__ = arithmetic.sub
    V.__rsub__ = arithmetic.rsub
    V.__mul__ = arithmetic.mul
    V.__rmul__ = arithmetic.mul
    V.__truediv__ = arithmetic.div
    V.__rtruediv__ = arithmetic.rdiv
    V.__neg__ = arithmetic.neg
    V.__pos__ = lambda self: self
    V.__pow__ = arithmetic.pow
    V.__rpow__ = arithmetic.rpow
    V.__abs__ = math.abs
    V.__matmul__ = linalg.matmul
    V.__rmatmul__ = lambda self, other: linalg.matmul(other, self)

    def getitem(self, slices):
        return indexing.get_item(self, slices)

    V.__getitem__ = getitem

    def vreshape(self, *shape):
        """``x.reshape(2, 3)`` or ``x.reshape((2, 3))``."""
        return array.reshape(self, *shape)

    def vtranspose(self, *axes):
        """``x.transpose()``, ``x.transpose(1, 0, 2)`` or ``x.transpose((1, 0, 2))``."""
        if len(axes) == 0 or axes == (None,):
            axes = None
        elif len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = axes[0]
        return array.transpose(self, axes)

    def vsum(self, axis=None, keepdims=False):
        return reduction.sum(self, axis, keepdims)

    # DeZero's setup_variable adds these methods (``qs.max(axis=1)``, ``x.dot(W)``).
    V.matmul = linalg.matmul
    V.dot = linalg.matmul
    V.max = reduction.max
    V.min = reduction.min

    V.reshape = vreshape
    V.transpose = vtranspose
    V.T = property(lambda self: array.transpose(self))
    V.sum = vsum

    def astype(self, dtype):
        return array.astype(self, dtype)

    V.astype = astype

    ufuncs = _ufunc_table()

    def array_ufunc(self, ufunc, method, *inputs, **kwargs):
        fn = ufuncs.get(ufunc)
        if method != "__call__" or fn is None or kwargs:
            raise TypeError(
                f"np.{ufunc.__name__}{'' if method == '__call__' else '.' + method} "
                f"is not differentiable in mibun{' with ' + str(list(kwargs)) if kwargs else ''}"
                f"; use the mibun op (mibun.functions), or apply it to v.data to leave "
                f"the graph on purpose"
            )
        return fn(*inputs)

    V.__array_ufunc__ = array_ufunc

    functions = {}

    def array_function(self, func, types, args, kwargs):
        if not functions:
            functions.update(_function_table())
        fn = functions.get(func)
        if fn is None:
            raise TypeError(
                f"np.{func.__name__} on a Variable would leave the graph; use the mibun op "
                "(mibun.functions) or apply it to v.data explicitly"
            )
        return fn(*args, **kwargs)

    V.__array_function__ = array_function
