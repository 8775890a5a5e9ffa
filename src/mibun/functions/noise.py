"""Noise: dropout (inverted dropout, identity in ``test_mode``)."""
from __future__ import annotations

import numbers

import numpy as np

from mibun import backend, errors
from mibun.config import Config
from mibun.core import Function, Variable, as_operand

__all__ = ["Dropout", "dropout"]


class Dropout(Function):
    """``y = x * mask * scale`` for a fixed boolean ``mask``; backward reuses the mask."""

    retain_inputs = ()

    def __init__(self, mask, scale):
        self.mask = mask  # bool: a quarter of a float32 mask's memory
        self.scale = scale

    def forward(self, x):
        y = x * self.mask
        y *= self.scale  # a Python float: float32 stays float32
        return y

    def backward(self, gy):
        # Multiplying by a constant array is a mibun op, so this is differentiable again.
        return gy * (self.mask * self.scale).astype(gy.dtype, copy=False)

    jvp = backward  # elementwise: the Jacobian is diagonal, so J t = J^T t
    batched_jvp = True  # a batch axis in front broadcasts (mibun.forward_mode)


def dropout(x, dropout_ratio=0.5, *, rng=None):
    """Inverted dropout: zero entries with probability ``dropout_ratio``, scale the rest.

    The kept entries are scaled by ``1 / (1 - dropout_ratio)`` so the expectation is
    unchanged. The identity when ``Config.train`` is False (``with mibun.test_mode():``).

    Randomness: by default the mask comes from the array module's global generator
    (``np.random``, or ``cupy.random`` for CuPy input), as in DeZero, so
    ``np.random.seed(0)`` makes a run repeatable. Pass ``rng`` (a
    ``numpy.random.Generator``, or a ``cupy.random.Generator`` for CuPy input) for a stream
    independent of the global state.

    Args:
        x (Variable or ndarray): float, any shape.
        dropout_ratio (float): probability of dropping an entry, in ``[0, 1)``.
        rng (Generator or None): source of the mask.
    Returns:
        Variable: same shape and dtype as ``x``; in test mode ``x`` itself (as a Variable).

    >>> x = np.ones(8, dtype=np.float32)
    >>> y = dropout(x, 0.5, rng=np.random.default_rng(0))
    >>> y.data
    array([2., 2., 2., 0., 0., 0., 0., 0.], dtype=float32)
    >>> import mibun
    >>> with mibun.test_mode():
    ...     dropout(x).data is x
    True
    """
    if not isinstance(dropout_ratio, numbers.Real) or not 0 <= dropout_ratio < 1:
        raise ValueError(f"F.dropout: dropout_ratio must be a number in [0, 1), "
                         f"got {dropout_ratio!r}")
    if not Config.train:
        return as_operand(x)
    data = x.data if isinstance(x, Variable) else x
    if not isinstance(data, backend.array_types) or data.dtype.kind != "f":
        got = getattr(data, "dtype", type(data).__name__)
        raise TypeError(f"F.dropout: x must be a floating-point array, got {got}\n"
                        + errors.describe("x", data))
    if rng is None:
        xp = backend.get_array_module(data)
        mask = xp.random.rand(*data.shape) > dropout_ratio  # DeZero's draw
    elif not callable(getattr(rng, "random", None)):
        raise TypeError(f"F.dropout: rng must be a numpy.random.Generator (e.g. "
                        f"np.random.default_rng({rng!r:.20})), got {type(rng).__name__}\n"
                        + errors.describe("x", data))
    else:
        dtype = np.float32 if data.dtype == np.float32 else np.float64
        mask = rng.random(data.shape, dtype=dtype) >= dropout_ratio
    return Dropout(mask, 1.0 / (1.0 - dropout_ratio))(x)
