"""Recurrent cells: ``RNN``, ``LSTM`` (DeZero's) and ``GRU``, one time step per call.

Each cell keeps its state (``h``, and the LSTM's ``c``) from one call to the next;
``reset_state()`` starts a new sequence, whose first step uses a zero state.
"""
from __future__ import annotations

import mibun.functions as F
from mibun import utils
from mibun.layers._helpers import check_input, check_size, kwargs_repr
from mibun.layers.base import Layer
from mibun.layers.linear import Linear

__all__ = ["GRU", "LSTM", "RNN"]


def _check_state(op, x, h):
    """The input's batch must match the state kept from the previous step."""
    check_input(op, x)
    if h is not None and x.shape[:-1] != h.shape[:-1]:
        raise ValueError(f"{op}: the input has a batch of shape {x.shape[:-1]} but the state "
                         f"kept from the previous step has {h.shape[:-1]}; call reset_state() "
                         "to start a new sequence\n" + utils.describe("x", x) + "\n"
                         + utils.describe("h", h))


class RNN(Layer):
    """Elman RNN cell: ``h = tanh(x W_x + b + h_prev W_h)`` (DeZero's ``RNN``).

    Each call processes one time step and keeps ``h`` for the next; ``reset_state()``
    starts a new sequence (the first step uses ``h_prev = 0``).

    Args:
        hidden_size (int): ``H``.
        in_size (int or None): input features; None infers it on the first call.

    Shapes: ``x (N, in_size)`` -> ``h (N, H)``. Sub-layers ``x2h`` (with bias), ``h2h``.
    """

    def __init__(self, hidden_size: int, in_size: int | None = None):
        super().__init__()
        self.hidden_size = check_size("L.RNN", "hidden_size", hidden_size)
        in_size = check_size("L.RNN", "in_size", in_size, none=True)
        self.x2h = Linear(hidden_size, in_size=in_size)
        # DeZero gave h2h in_size=in_size, which breaks whenever in_size != hidden_size.
        self.h2h = Linear(hidden_size, in_size=hidden_size, nobias=True)
        self.h = None

    def reset_state(self) -> None:
        self.h = None

    def forward(self, x):
        _check_state("L.RNN", x, self.h)
        if self.h is None:
            h_new = F.tanh(self.x2h(x))
        else:
            h_new = F.tanh(self.x2h(x) + self.h2h(self.h))
        self.h = h_new
        return h_new

    def extra_repr(self):
        return kwargs_repr(in_size=self.x2h.in_size, hidden_size=self.hidden_size)


class LSTM(Layer):
    """LSTM cell (DeZero's ``LSTM``), one time step per call.

    ``f, i, o = sigmoid(x W_x* + b_* + h W_h*)``, ``u = tanh(x W_xu + b_u + h W_hu)``,
    ``c = f c_prev + i u``, ``h = o tanh(c)``; the first step after ``reset_state()`` uses
    ``h_prev = c_prev = 0``.

    Args:
        hidden_size (int): ``H``.
        in_size (int or None): input features; None infers it on the first call.

    Shapes: ``x (N, in_size)`` -> ``h (N, H)``. Sub-layers (DeZero's names, so DeZero
    weight files load): ``x2f x2i x2o x2u`` (with bias), ``h2f h2i h2o h2u`` (no bias).
    """

    def __init__(self, hidden_size: int, in_size: int | None = None):
        super().__init__()
        H, I = (check_size("L.LSTM", "hidden_size", hidden_size),
                check_size("L.LSTM", "in_size", in_size, none=True))
        self.hidden_size = H
        self.x2f = Linear(H, in_size=I)
        self.x2i = Linear(H, in_size=I)
        self.x2o = Linear(H, in_size=I)
        self.x2u = Linear(H, in_size=I)
        self.h2f = Linear(H, in_size=H, nobias=True)
        self.h2i = Linear(H, in_size=H, nobias=True)
        self.h2o = Linear(H, in_size=H, nobias=True)
        self.h2u = Linear(H, in_size=H, nobias=True)
        self.reset_state()

    def reset_state(self) -> None:
        self.h = None
        self.c = None

    def forward(self, x):
        _check_state("L.LSTM", x, self.h)
        if self.h is None:
            f = F.sigmoid(self.x2f(x))
            i = F.sigmoid(self.x2i(x))
            o = F.sigmoid(self.x2o(x))
            u = F.tanh(self.x2u(x))
        else:
            h = self.h
            f = F.sigmoid(self.x2f(x) + self.h2f(h))
            i = F.sigmoid(self.x2i(x) + self.h2i(h))
            o = F.sigmoid(self.x2o(x) + self.h2o(h))
            u = F.tanh(self.x2u(x) + self.h2u(h))
        if self.c is None:
            c_new = i * u
        else:
            c_new = (f * self.c) + (i * u)
        h_new = o * F.tanh(c_new)
        self.h, self.c = h_new, c_new
        return h_new

    def extra_repr(self):
        return kwargs_repr(in_size=self.x2f.in_size, hidden_size=self.hidden_size)


class GRU(Layer):
    """GRU cell, one time step per call (PyTorch's formulation; not in DeZero).

    ``r = sigmoid(x W_xr + b_r + h W_hr)``, ``z = sigmoid(x W_xz + b_z + h W_hz)``,
    ``n = tanh(x W_xn + b_xn + r (h W_hn + b_hn))``, ``h = (1 - z) n + z h_prev``; the first
    step after ``reset_state()`` uses ``h_prev = 0``.

    Args:
        hidden_size (int): ``H``.
        in_size (int or None): input features; None infers it on the first call.

    Shapes: ``x (N, in_size)`` -> ``h (N, H)``. Sub-layers ``x2r x2z x2n`` (with bias),
    ``h2r h2z`` (no bias) and ``h2n`` (with bias ``b_hn``, which ``r`` gates).
    """

    def __init__(self, hidden_size: int, in_size: int | None = None):
        super().__init__()
        H, I = (check_size("L.GRU", "hidden_size", hidden_size),
                check_size("L.GRU", "in_size", in_size, none=True))
        self.hidden_size = H
        self.x2r = Linear(H, in_size=I)
        self.x2z = Linear(H, in_size=I)
        self.x2n = Linear(H, in_size=I)
        self.h2r = Linear(H, in_size=H, nobias=True)
        self.h2z = Linear(H, in_size=H, nobias=True)
        self.h2n = Linear(H, in_size=H)
        self.reset_state()

    def reset_state(self) -> None:
        self.h = None

    def forward(self, x):
        _check_state("L.GRU", x, self.h)
        if self.h is None:  # h_prev = 0: the h terms vanish except h2n's bias
            r = F.sigmoid(self.x2r(x))
            z = F.sigmoid(self.x2z(x))
            n = F.tanh(self.x2n(x) + r * self.h2n.b)
            h_new = (1 - z) * n
        else:
            h = self.h
            r = F.sigmoid(self.x2r(x) + self.h2r(h))
            z = F.sigmoid(self.x2z(x) + self.h2z(h))
            n = F.tanh(self.x2n(x) + r * self.h2n(h))
            h_new = (1 - z) * n + z * h
        self.h = h_new
        return h_new

    def extra_repr(self):
        return kwargs_repr(in_size=self.x2r.in_size, hidden_size=self.hidden_size)
