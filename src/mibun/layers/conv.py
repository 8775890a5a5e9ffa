"""Convolution layers: ``Conv2d`` and its transpose ``Deconv2d`` (DeZero's signatures).

``W ~ randn * sqrt(1 / (C KH KW))`` from ``np.random``, float32 by default; without
``in_channels`` the weights are created on the first call, from the input's channels.
"""
from __future__ import annotations

import numpy as np

import mibun.functions as F
from mibun import backend, utils
from mibun.core import Parameter
from mibun.layers._helpers import (
    check_dtype,
    check_input,
    check_pair,
    check_size,
    kwargs_repr,
    randn,
)
from mibun.layers.base import Layer

__all__ = ["Conv2d", "Deconv2d"]


class Conv2d(Layer):
    """2-D convolution layer (DeZero's signature).

    Args:
        out_channels (int): output channels ``OC``.
        kernel_size (int or (int, int)): ``(KH, KW)``.
        stride (int or (int, int)): step.
        pad (int or (int, int)): zero padding on each side.
        nobias (bool): no bias.
        dtype: parameter dtype (float32).
        in_channels (int or None): input channels ``C``; None infers it on the first call.

    Shapes: ``x (N, C, H, W)`` -> ``y (N, OC, OH, OW)``; ``W (OC, C, KH, KW)``, ``b (OC,)``.
    ``W ~ randn * sqrt(1 / (C KH KW))``.
    """

    def __init__(self, out_channels: int, kernel_size, stride=1, pad=0, nobias: bool = False,
                 dtype=np.float32, in_channels: int | None = None):
        super().__init__()
        op = self._op
        self.in_channels = check_size(op, "in_channels", in_channels, none=True)
        self.out_channels = check_size(op, "out_channels", out_channels)
        self.kernel_size = check_pair(op, "kernel_size", kernel_size)
        self.stride = check_pair(op, "stride", stride)
        self.pad = check_pair(op, "pad", pad, zero=True)
        self.dtype = check_dtype(op, dtype)
        self.W = Parameter(None, name="W")
        if in_channels is not None:
            self._init_W()
        if nobias:
            self.b = None
        else:
            self.b = Parameter(randn(self._op, np, (out_channels,), dtype, 0), name="b")

    def _w_shape(self):
        KH, KW = utils.pair(self.kernel_size)
        return (self.out_channels, self.in_channels, KH, KW)

    def _init_W(self, xp=np):
        shape = self._w_shape()
        fan_in = int(np.prod(shape)) // shape[0]
        W = randn(self._op, xp, shape, self.dtype)
        W *= W.dtype.type(np.sqrt(1 / fan_in))
        self.W.data = W

    _in_axis = 1  # the axis of W that counts input channels
    _op = "L.Conv2d"

    def _prepare(self, x):
        W = self.W.data
        check_input(self._op, x)
        if W is None and x.ndim == 4 and x.shape[1] > 0:
            self.in_channels = x.shape[1]
            self._init_W(backend.get_array_module(x))
            return
        if W is not None:
            self.in_channels = W.shape[self._in_axis]  # it may have come from a weight file
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            C = "C" if self.in_channels is None else self.in_channels
            raise ValueError(
                f"{self._op}: expected an input of shape (N, {C}, H, W) "
                f"(in_channels={self.in_channels})\n"
                + utils.describe("x", x) + "\n"
                + ("  W: (lazy)" if self.W.data is None else utils.describe("W", self.W)))

    def forward(self, x):
        if self.W.data is None or getattr(x, "ndim", None) != 4 \
                or x.shape[1] != self.in_channels:
            self._prepare(x)
        return F.conv2d(x, self.W, self.b, self.stride, self.pad)

    def extra_repr(self):
        return kwargs_repr(in_channels=self.in_channels, out_channels=self.out_channels,
                            kernel_size=self.kernel_size, stride=self.stride,
                            pad=self.pad) + (", nobias=True" if self.b is None else "")


class Deconv2d(Conv2d):
    """2-D transposed convolution layer (DeZero's signature, as ``Conv2d``).

    Shapes: ``x (N, C, H, W)`` -> ``y (N, OC, OH, OW)`` with ``OH = stride (H - 1) + KH -
    2 pad``; ``W (C, OC, KH, KW)``, ``b (OC,)``. ``W ~ randn * sqrt(1 / (C KH KW))``.
    """

    def _w_shape(self):
        KH, KW = utils.pair(self.kernel_size)
        return (self.in_channels, self.out_channels, KH, KW)

    def _init_W(self, xp=np):
        C, OC, KH, KW = self._w_shape()
        W = randn(self._op, xp, (C, OC, KH, KW), self.dtype)
        W *= W.dtype.type(np.sqrt(1 / (C * KH * KW)))
        self.W.data = W

    _in_axis = 0
    _op = "L.Deconv2d"

    def forward(self, x):
        if self.W.data is None or getattr(x, "ndim", None) != 4 \
                or x.shape[1] != self.in_channels:
            self._prepare(x)
        return F.deconv2d(x, self.W, self.b, self.stride, self.pad)
