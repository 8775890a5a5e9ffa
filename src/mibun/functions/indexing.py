"""Indexing: ``get_item`` (``x[slices]``, differentiable) and ``embed_id`` (rows of ``W``).

The backward of an index scatters the gradient into zeros of the input's shape
(``GetItemGrad``), accumulating where an integer array repeats an index; its own backward
is the same index again.
"""
from __future__ import annotations

import numpy as np

from mibun import backend
from mibun.core import Function, Variable, as_operand, data_of
from mibun.functions import _helpers

__all__ = ["GetItem", "GetItemGrad", "embed_id", "get_item"]


def _plain_index(slices):
    """Variables inside an index become their data; a list of indices becomes an array."""
    if isinstance(slices, Variable):
        return slices.data
    if isinstance(slices, tuple):
        return tuple(s.data if isinstance(s, Variable) else s for s in slices)
    return slices


def _has_int_array(slices):
    """True when the index holds an integer array, whose entries may repeat."""
    items = slices if isinstance(slices, tuple) else (slices,)
    for s in items:
        if isinstance(s, list) or (isinstance(s, backend.array_types) and s.dtype.kind != "b"):
            return True
    return False


class GetItem(Function):
    retain_inputs = ()
    batched_jvp = True

    def __init__(self, slices):
        self.slices = slices

    def forward(self, x):
        self.x_shape = x.shape
        return x[self.slices]

    def backward(self, gy):
        return GetItemGrad(self.slices, self.x_shape)(gy)

    def jvp(self, tx):
        return GetItem(_helpers.lead_index(self.slices, tx.ndim - len(self.x_shape)))(tx)


class GetItemGrad(Function):
    """Scatter ``gy`` into zeros of the input's shape; its backward is ``get_item`` again."""

    retain_inputs = ()
    batched_jvp = True

    def __init__(self, slices, in_shape):
        self.slices = slices
        self.in_shape = in_shape

    def forward(self, gy):
        xp = backend.get_array_module(gy)
        gx = xp.zeros(self.in_shape, dtype=gy.dtype)
        if _has_int_array(self.slices):
            backend.scatter_add(gx, self.slices, gy)  # repeated indices accumulate
        else:
            gx[self.slices] = gy  # slices and masks never select an entry twice
        return gx

    def backward(self, ggx):
        return get_item(ggx, self.slices)

    def jvp(self, tgy):
        lead = tgy.shape[:tgy.ndim - self.inputs[0].ndim]  # batch axes in front
        return GetItemGrad(_helpers.lead_index(self.slices, len(lead)), lead + self.in_shape)(tgy)


def get_item(x, slices):
    """NumPy indexing ``x[slices]``, differentiable.

    Supports ints, slices (negative steps too), ``None``, ``Ellipsis``, integer arrays
    (repeated indices accumulate their gradients) and boolean masks.

    Args:
        x (Variable or ndarray): any shape.
        slices: any NumPy index; Variables in it are used as data.
    Returns:
        Variable: ``x[slices]``.

    >>> x = Variable(np.arange(6.0).reshape(2, 3))
    >>> get_item(x, (1, slice(None, None, -1)))
    variable([5. 4. 3.])
    """
    x = as_operand(x)
    slices = _plain_index(slices)
    if isinstance(slices, list):
        slices = np.asarray(slices)
    return GetItem(slices)(x)  # an IndexError is re-raised by the engine, naming the op


def embed_id(x, W):
    """Embedding lookup ``W[x]`` (DeZero's embed_id).

    Args:
        x (ndarray or Variable): integer ids, any shape ``S``, each in ``[0, V)``.
        W (Variable): ``(V, D)`` embedding matrix.
    Returns:
        Variable: ``S + (D,)``; the gradient is scatter-added into ``W`` (repeated ids sum).

    >>> embed_id(np.array([2, 0]), np.arange(6.0).reshape(3, 2))
    variable([[4. 5.]
              [0. 1.]])
    """
    W = as_operand(W)
    ids = data_of(x) if isinstance(x, Variable) else x
    xp = backend.get_array_module(W)
    ids = xp.asarray(ids)
    if W.ndim == 0:  # W.shape[0] below would be NumPy's bare IndexError
        raise ValueError("F.embed_id: W must have at least one axis (the ids pick its rows)"
                         + _helpers.describe_all(x=ids, W=W))
    if ids.dtype.kind not in "iu":
        raise TypeError(f"F.embed_id: x must hold integer ids, got dtype={ids.dtype}"
                        + _helpers.describe_all(x=ids, W=W))
    if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= W.shape[0]):
        raise ValueError(f"F.embed_id: ids must be in [0, {W.shape[0]}), found "
                         f"[{int(ids.min())}, {int(ids.max())}]"
                         + _helpers.describe_all(x=ids, W=W))
    return GetItem(ids)(W)
