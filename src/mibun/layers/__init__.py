"""Layers, ``import mibun.layers as L``: parameters plus the ops that use them.

One module per family, every public name re-exported here flat (as DeZero's
``dezero.layers``, so ``L.LSTM`` and ``import mibun as dezero; dezero.layers.Linear`` work):

* ``base``: ``Layer``, which registers Parameters, buffers and sub-Layers by name;
* ``linear``: ``Linear``, ``EmbedID``;   ``conv``: ``Conv2d``, ``Deconv2d``;
* ``norm``: ``BatchNorm``, ``Dropout`` (they act differently under ``test_mode()``);
* ``recurrent``: ``RNN``, ``LSTM``, ``GRU`` (one time step per call);
* ``_helpers``: what they share (argument checks, parameter creation, repr pieces).

Initialisation follows DeZero (``W ~ randn * sqrt(1 / fan_in)`` from ``np.random``, float32
by default); a layer whose input size is not given creates its weights on the first call.
"""
from mibun.core import Parameter, Variable  # noqa: F401  (DeZero's layers module has Parameter)
from mibun.layers.base import Layer
from mibun.layers.conv import Conv2d, Deconv2d
from mibun.layers.linear import EmbedID, Linear
from mibun.layers.norm import BatchNorm, Dropout
from mibun.layers.recurrent import GRU, LSTM, RNN

__all__ = [
    "GRU", "LSTM", "RNN", "BatchNorm", "Conv2d", "Deconv2d", "Dropout", "EmbedID", "Layer",
    "Linear",
]
