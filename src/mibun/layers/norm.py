"""The layers that act differently in training and under ``test_mode()``: ``BatchNorm``
(batch statistics, or the running ones) and ``Dropout`` (active in training only)."""
from __future__ import annotations

import numpy as np

import mibun.functions as F
from mibun import backend, utils
from mibun.config import Config
from mibun.core import Parameter
from mibun.layers._helpers import check_dtype, check_input, check_size, kwargs_repr, randn
from mibun.layers.base import Layer

__all__ = ["BatchNorm", "Dropout"]


class BatchNorm(Layer):
    """Batch normalisation with running statistics (DeZero's ``BatchNorm()``).

    In training (``Config.train``) it normalises with the batch mean and variance and
    updates the running ones: ``avg = decay * avg + (1 - decay) * batch``; in
    ``test_mode()`` it uses the running ones. Normalises over every axis but 1 (channels).

    Args:
        decay (float): running-average decay.
        eps (float): added to the variance.
        in_size (int or None): channels ``C``; None infers it on the first call.
        dtype: parameter dtype when ``in_size`` is given (else the input's float dtype).

    Parameters ``gamma (C,)`` (ones), ``beta (C,)`` (zeros); buffers ``avg_mean (C,)``,
    ``avg_var (C,)``.
    """

    def __init__(self, decay: float = 0.9, eps: float = 2e-5, in_size: int | None = None,
                 dtype=np.float32):
        super().__init__()
        self.decay = utils.check_real("L.BatchNorm", "decay", decay, low=0.0, high=1.0)
        self.eps = utils.check_real("L.BatchNorm", "eps", eps, low=0.0)
        in_size = check_size("L.BatchNorm", "in_size", in_size, none=True)
        dtype = check_dtype("L.BatchNorm", dtype)
        self.gamma = Parameter(None, name="gamma")
        self.beta = Parameter(None, name="beta")
        self.register_buffer("avg_mean")
        self.register_buffer("avg_var")
        if in_size is not None:
            self._init_params(np, in_size, dtype)

    def _init_params(self, xp, D, dtype):
        zeros = randn("L.BatchNorm", xp, (D,), dtype, 0)
        self.avg_mean.data = zeros
        self.avg_var.data = zeros + 1
        self.gamma.data = zeros + 1
        self.beta.data = zeros.copy()

    def forward(self, x):
        if self.gamma.data is None:
            check_input("L.BatchNorm", x)
            if x.ndim < 2 or x.shape[1] == 0:  # the channels are axis 1
                raise ValueError("L.BatchNorm: the input must be (N, C) or (N, C, ...) with "
                                 f"C >= 1, got shape {tuple(x.shape)}\n"
                                 + utils.describe("x", x))
            dtype = x.dtype if x.dtype.kind == "f" else np.float32
            self._init_params(backend.get_array_module(x), x.shape[1], dtype)
        if Config.train and getattr(x, "size", 1) == 0:  # no statistics to normalise with
            raise ValueError("L.BatchNorm: an empty batch has no mean or variance (in "
                             "training)\n" + utils.describe("x", x))
        return F.batch_norm(x, self.gamma, self.beta, self.avg_mean.data, self.avg_var.data,
                            decay=self.decay, eps=self.eps)

    def extra_repr(self):
        size = None if self.gamma.data is None else self.gamma.data.shape[0]
        return kwargs_repr(in_size=size, decay=self.decay, eps=self.eps)


class Dropout(Layer):
    """``F.dropout`` as a layer (active only while ``Config.train``).

    Args:
        dropout_ratio (float): probability of zeroing an element, in [0, 1).
    """

    def __init__(self, dropout_ratio: float = 0.5):
        super().__init__()
        self.dropout_ratio = utils.check_real("L.Dropout", "dropout_ratio", dropout_ratio,
                                              low=0.0, high=1.0, high_open=True)

    def forward(self, x):
        return F.dropout(x, self.dropout_ratio)

    def extra_repr(self):
        return f"dropout_ratio={self.dropout_ratio}"
