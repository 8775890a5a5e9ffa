"""A first-order core to read beside the book's second stage (DeZero's ``core_simple``).

Steps 11-32 of *Deep Learning from Scratch 3* build this engine: a ``Variable`` holding an
ndarray, ``Function`` objects that record the graph when called, and a ``backward`` that
walks it from the output. Gradients here are plain ndarrays, so ``x.data -= lr * x.grad``
works (steps 28/29). ``mibun.core`` is the full engine (gradients are Variables, so they
can be differentiated again); this module stays small on purpose, and its ``Variable`` is
a separate class: ``mibun.functions`` works on ``mibun.Variable`` only.

>>> x = Variable(np.array(3.0))
>>> y = x * x + 2 * x
>>> y.backward()
>>> x.grad
array(8.)
"""
from __future__ import annotations

import heapq
import weakref

import numpy as np

from mibun.config import Config, no_grad, using_config  # noqa: F401  (the names of the book)


class Variable:
    """An ndarray in the graph, with ``grad`` (an ndarray) and ``creator`` (a Function)."""

    __array_priority__ = 200  # ndarray <op> Variable calls Variable's operator

    def __init__(self, data, name=None):
        if data is not None and not isinstance(data, np.ndarray):
            raise TypeError(f"Variable: data must be a numpy.ndarray, got {type(data).__name__}")
        self.data = data
        self.name = name
        self.grad = None
        self.creator = None
        self.generation = 0

    shape = property(lambda self: self.data.shape)
    ndim = property(lambda self: self.data.ndim)
    size = property(lambda self: self.data.size)
    dtype = property(lambda self: self.data.dtype)

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        if self.data is None:
            return "variable(None)"
        return "variable(" + str(self.data).replace("\n", "\n" + " " * 9) + ")"

    def set_creator(self, func):
        self.creator = func
        self.generation = func.generation + 1

    def cleargrad(self):
        self.grad = None

    def backward(self, retain_grad=False):
        """Add d(self)/d(x) to ``x.grad`` for every variable ``x`` below ``self``."""
        if self.grad is None:
            self.grad = np.ones_like(self.data)
        # Functions leave the heap highest generation first: a function runs only after
        # every function that uses its outputs has passed their gradients back.
        heap, seen = [], set()

        def push(f):
            if f is not None and id(f) not in seen:
                seen.add(id(f))
                heapq.heappush(heap, (-f.generation, len(seen), f))

        push(self.creator)
        while heap:
            f = heapq.heappop(heap)[2]
            gys = [y().grad for y in f.outputs]  # outputs are weak references
            gxs = f.backward(*gys)
            if not isinstance(gxs, tuple):
                gxs = (gxs,)
            for x, gx in zip(f.inputs, gxs):
                # never +=: Add hands the same gy to both inputs
                x.grad = as_array(gx if x.grad is None else x.grad + gx)
                push(x.creator)
            if not retain_grad:
                for y in f.outputs:
                    y().grad = None  # an intermediate's gradient is no longer needed


def as_array(x):
    """A NumPy scalar (``np.float64(1)``, what ``x ** 2`` on 0-d arrays gives) as an array."""
    return np.array(x) if np.isscalar(x) else x


def as_variable(obj):
    return obj if isinstance(obj, Variable) else Variable(obj)


class Function:
    """Call it on Variables: ``forward`` computes on ndarrays and the graph is recorded."""

    def __call__(self, *inputs):
        inputs = [as_variable(as_array(x)) for x in inputs]
        ys = self.forward(*[x.data for x in inputs])
        if not isinstance(ys, tuple):
            ys = (ys,)
        outputs = [Variable(as_array(y)) for y in ys]
        if Config.enable_backprop:
            self.generation = max(x.generation for x in inputs)
            for y in outputs:
                y.set_creator(self)
            self.inputs = inputs
            self.outputs = [weakref.ref(y) for y in outputs]  # no reference cycle
        return outputs if len(outputs) > 1 else outputs[0]

    def forward(self, *xs):
        raise NotImplementedError()

    def backward(self, *gys):
        raise NotImplementedError()


# --- the operators (ndarray gradients: first order only) --------------------------------
class Add(Function):
    def forward(self, x0, x1):
        return x0 + x1

    def backward(self, gy):
        return gy, gy


class Mul(Function):
    def forward(self, x0, x1):
        return x0 * x1

    def backward(self, gy):
        x0, x1 = self.inputs[0].data, self.inputs[1].data
        return gy * x1, gy * x0


class Neg(Function):
    def forward(self, x):
        return -x

    def backward(self, gy):
        return -gy


class Sub(Function):
    def forward(self, x0, x1):
        return x0 - x1

    def backward(self, gy):
        return gy, -gy


class Div(Function):
    def forward(self, x0, x1):
        return x0 / x1

    def backward(self, gy):
        x0, x1 = self.inputs[0].data, self.inputs[1].data
        return gy / x1, gy * (-x0 / x1 ** 2)


class Pow(Function):
    """``x ** c`` for a constant ``c``."""

    def __init__(self, c):
        self.c = c

    def forward(self, x):
        return x ** self.c

    def backward(self, gy):
        x, c = self.inputs[0].data, self.c
        return c * x ** (c - 1) * gy


def add(x0, x1):
    return Add()(x0, x1)


def mul(x0, x1):
    return Mul()(x0, x1)


def neg(x):
    return Neg()(x)


def sub(x0, x1):
    return Sub()(x0, x1)


def rsub(x0, x1):
    return Sub()(x1, x0)


def div(x0, x1):
    return Div()(x0, x1)


def rdiv(x0, x1):
    return Div()(x1, x0)


def pow(x, c):  # the book's name (shadows the builtin here only)
    return Pow(c)(x)


def setup_variable():
    """Give this module's Variable its operators (``x * y``, ``2 - x``, ``x ** 3``, ...)."""
    Variable.__add__ = Variable.__radd__ = add
    Variable.__mul__ = Variable.__rmul__ = mul
    Variable.__neg__ = neg
    Variable.__sub__ = sub
    Variable.__rsub__ = rsub
    Variable.__truediv__ = div
    Variable.__rtruediv__ = rdiv
    Variable.__pow__ = pow


setup_variable()
