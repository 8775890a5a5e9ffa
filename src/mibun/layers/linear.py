"""Layers holding a weight matrix ``W`` that the input multiplies (``Linear``) or indexes
(``EmbedID``: a row per id, what a Linear layer does to one-hot inputs).

Initialisation follows DeZero (``W ~ randn * sqrt(1 / in_size)`` from ``np.random``, float32
by default); a Linear layer whose input size is not given creates ``W`` on the first call.
"""
from __future__ import annotations

import numpy as np

import mibun.functions as F
from mibun import backend, utils
from mibun.core import Parameter
from mibun.layers._helpers import check_dtype, check_input, check_size, kwargs_repr, randn
from mibun.layers.base import Layer

__all__ = ["EmbedID", "Linear"]


class Linear(Layer):
    """Fully connected layer ``y = x W + b`` (DeZero's signature).

    Args:
        out_size (int): output features.
        nobias (bool): no bias ``b``.
        dtype: parameter dtype (float32).
        in_size (int or None): input features; None infers it from the first input.

    Shapes: ``x (N, in_size)`` -> ``y (N, out_size)``; ``W (in_size, out_size)``, ``b
    (out_size,)``. ``W ~ randn * sqrt(1 / in_size)``, ``b = 0``.

    >>> np.random.seed(0)
    >>> layer = Linear(3)
    >>> layer(np.ones((2, 4), dtype=np.float32)).shape
    (2, 3)
    >>> layer
    Linear(in_size=4, out_size=3)  W (4, 3) float32, b (3,) float32  # 15 params
    """

    def __init__(self, out_size: int, nobias: bool = False, dtype=np.float32,
                 in_size: int | None = None):
        super().__init__()
        self.in_size = check_size("L.Linear", "in_size", in_size, none=True)
        self.out_size = check_size("L.Linear", "out_size", out_size)
        self.dtype = check_dtype("L.Linear", dtype)
        self.W = Parameter(None, name="W")
        if self.in_size is not None:
            self._init_W()
        if nobias:
            self.b = None
        else:
            self.b = Parameter(randn("L.Linear", np, (out_size,), dtype, 0), name="b")

    def _init_W(self, xp=np):
        I, O = self.in_size, self.out_size
        W = randn("L.Linear", xp, (I, O), self.dtype)
        W *= W.dtype.type(np.sqrt(1 / I))  # in W's dtype: float32 stays float32
        self.W.data = W

    def forward(self, x):
        W = self.W.data
        check_input("L.Linear", x)
        if x.ndim == 0:
            raise ValueError(f"L.Linear: the input must have a feature axis (N, in_size); "
                             f"got a 0-d {x.dtype} value")
        if W is None:
            if x.shape[-1] == 0:
                raise ValueError("L.Linear: the input has no features (x.shape[-1] is 0), so "
                                 "in_size cannot be inferred\n" + utils.describe("x", x))
            self.in_size = x.shape[-1]
            self._init_W(backend.get_array_module(x))
        elif x.shape[-1] != W.shape[0]:
            self.in_size = W.shape[0]  # it may have come from a weight file
            raise ValueError(
                f"L.Linear: the input has {x.shape[-1]} features (x.shape[-1]) but the layer "
                f"was built for in_size={self.in_size}\n"
                + utils.describe("x", x) + "\n" + utils.describe("W", self.W))
        return F.linear(x, self.W, self.b)

    def extra_repr(self):
        return kwargs_repr(in_size=self.in_size, out_size=self.out_size) + (
            ", nobias=True" if self.b is None else "")


class EmbedID(Layer):
    """Embedding lookup: integer ids -> rows of ``W`` (DeZero's ``EmbedID(in_size, out_size)``).

    Args:
        in_size (int): vocabulary size.
        out_size (int): embedding width.
        dtype: parameter dtype (float32; DeZero's was float64).

    Shapes: ids ``x`` of any shape -> ``y (*x.shape, out_size)``; ``W (in_size, out_size)``
    ``~ randn``.
    """

    def __init__(self, in_size: int, out_size: int, dtype=np.float32):
        super().__init__()
        self.in_size = check_size("L.EmbedID", "in_size", in_size)
        self.out_size = check_size("L.EmbedID", "out_size", out_size)
        dtype = check_dtype("L.EmbedID", dtype)
        self.W = Parameter(randn("L.EmbedID", np, (in_size, out_size), dtype), name="W")

    def forward(self, x):
        return F.embed_id(x, self.W)

    def extra_repr(self):
        return kwargs_repr(in_size=self.in_size, out_size=self.out_size)
