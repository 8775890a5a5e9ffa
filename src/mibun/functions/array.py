"""Shape ops: reshape, transpose, broadcast_to, sum_to, expand_dims, squeeze, flatten,
concat, split, stack, astype.

Shape ops move data around without arithmetic, so each backward is the inverse move
(reshape back, transpose by the inverse permutation, sum a broadcast back, split a
concatenation). Indexing (``get_item``, ``embed_id``) is :mod:`mibun.functions.indexing`.
"""
from __future__ import annotations

import itertools

import numpy as np

from mibun import backend, errors
from mibun.core import Function, Variable, as_operand, data_of
from mibun.functions import _helpers
from mibun.functions.indexing import get_item

__all__ = [
    "BroadcastTo",
    "Cast",
    "Reshape",
    "SumTo",
    "Transpose",
    "astype",
    "broadcast_to",
    "concat",
    "expand_dims",
    "flatten",
    "reshape",
    "split",
    "squeeze",
    "stack",
    "sum_to",
    "transpose",
]


def _zeros_like(x):
    return as_operand(backend.get_array_module(x).zeros_like(data_of(x)))  # a constant


class Reshape(Function):
    retain_inputs = ()
    batched_jvp = True

    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        self.x_shape = x.shape
        return x.reshape(self.shape)

    def backward(self, gy):
        return reshape(gy, self.x_shape)

    def jvp(self, tx):  # a batch axis in front stays (mibun.forward_mode)
        return reshape(tx, tx.shape[:tx.ndim - len(self.x_shape)] + tuple(self.shape))


def reshape(x, *shape):
    """Return ``x`` with a new shape (one entry may be -1).

    Args:
        x (Variable or ndarray): any shape.
        shape (int or tuple of int): ``reshape(x, (2, 3))`` or ``reshape(x, 2, 3)``.
    Returns:
        Variable: the same data in the new shape.

    >>> reshape(np.arange(6.0), 2, 3)
    variable([[0. 1. 2.]
              [3. 4. 5.]])
    """
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    x = as_operand(x)
    if x.shape == shape:
        return x
    try:
        np.empty(x.shape, dtype=np.bool_).reshape(shape)  # validate cheaply, same rules
    except (ValueError, TypeError) as e:
        raise ValueError(f"F.reshape: cannot reshape size {x.size} into shape {shape}"
                         + _helpers.describe_all(x=x)) from e
    return Reshape(shape)(x)


class Transpose(Function):
    retain_inputs = ()
    batched_jvp = True

    def __init__(self, axes=None):
        self.axes = axes

    def forward(self, x):
        return x.transpose(self.axes)

    def backward(self, gy):
        if self.axes is None:
            return transpose(gy)
        inv = tuple(int(i) for i in np.argsort(self.axes))
        return transpose(gy, inv)

    def jvp(self, tx):
        lead = tx.ndim - self.inputs[0].ndim  # batch axes in front stay (mibun.forward_mode)
        if not lead:
            return transpose(tx, self.axes)
        axes = range(self.inputs[0].ndim)[::-1] if self.axes is None else self.axes
        return transpose(tx, tuple(range(lead)) + tuple(a + lead for a in axes))


def transpose(x, axes=None):
    """Permute the axes of ``x`` (reverse them when ``axes`` is None), as ``np.transpose``.

    Args:
        x (Variable or ndarray): any shape.
        axes (None or sequence of int): a permutation of ``range(x.ndim)`` (negative
            entries count from the end).
    Returns:
        Variable: ``x.shape`` permuted, same dtype (a view in the forward pass).

    >>> transpose(np.zeros((2, 3, 4)), (1, 2, 0)).shape
    (3, 4, 2)
    """
    x = as_operand(x)
    if axes is not None:
        axes = _helpers.as_ints(axes, "F.transpose", "axes", x)
        n = x.ndim
        if not (len(axes) == n and all(-n <= a < n for a in axes)
                and sorted(a % n for a in axes) == list(range(n))):
            raise ValueError(f"F.transpose: axes {axes} are not a permutation of "
                             f"{n} axes" + _helpers.describe_all(x=x))
        axes = tuple(a % n for a in axes)
    return Transpose(axes)(x)


class BroadcastTo(Function):
    retain_inputs = ()
    batched_jvp = True

    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        self.x_shape = x.shape
        xp = backend.get_array_module(x)
        return xp.broadcast_to(x, self.shape)

    def backward(self, gy):
        return sum_to(gy, self.x_shape)

    def jvp(self, tx):
        lead = tx.ndim - len(self.x_shape)  # batch axes in front stay (mibun.forward_mode)
        return broadcast_to(_helpers.lift(tx, lead, len(self.shape)), tx.shape[:lead] + self.shape)


def broadcast_to(x, shape):
    """Broadcast ``x`` to ``shape`` (NumPy rules); the gradient is summed back.

    Args:
        x (Variable or ndarray): a shape that broadcasts to ``shape``.
        shape (tuple of int): the target shape.
    Returns:
        Variable: ``shape``, dtype of ``x`` (a read-only view in the forward pass).

    >>> broadcast_to(np.arange(3.0), (2, 3)).shape
    (2, 3)
    """
    x = as_operand(x)
    shape = _helpers.as_ints(shape, "F.broadcast_to", "shape", x)
    if x.shape == shape:
        return x
    try:
        np.broadcast_shapes(x.shape, shape)
        if np.broadcast_shapes(x.shape, shape) != shape:
            raise ValueError
    except ValueError as e:
        raise ValueError(f"F.broadcast_to: cannot broadcast to shape {shape}"
                         + _helpers.describe_all(x=x)) from e
    return BroadcastTo(shape)(x)


class SumTo(Function):
    retain_inputs = ()
    batched_jvp = True

    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        self.x_shape = x.shape
        return _helpers.sum_to(x, self.shape)

    def backward(self, gy):
        return broadcast_to(gy, self.x_shape)

    def jvp(self, tx):
        lead = tx.ndim - len(self.x_shape)  # batch axes in front stay (mibun.forward_mode)
        if not lead:
            return sum_to(tx, self.shape)
        kept = (1,) * (len(self.x_shape) - len(self.shape)) + self.shape
        return reshape(sum_to(tx, tx.shape[:lead] + kept), tx.shape[:lead] + self.shape)


def sum_to(x, shape):
    """Sum ``x`` down to ``shape``: the adjoint of ``broadcast_to(., x.shape)``.

    Args:
        x (Variable or ndarray): any shape.
        shape (tuple of int): a shape that broadcasts to ``x.shape``.
    Returns:
        Variable: ``shape``, dtype of ``x``; the gradient is broadcast back.

    >>> sum_to(np.ones((2, 3)), (1, 3))
    variable([[2. 2. 2.]])
    """
    x = as_operand(x)
    shape = _helpers.as_ints(shape, "F.sum_to", "shape", x)
    if x.shape == shape:
        return x
    if len(shape) > x.ndim or any(
            s != 1 and s != n for s, n in zip(reversed(shape), reversed(x.shape))):
        raise ValueError(f"F.sum_to: shape {shape} does not broadcast to x's shape"
                         + _helpers.describe_all(x=x))
    return SumTo(shape)(x)


# --- expand_dims, squeeze, flatten --------------------------------------------------------
def expand_dims(x, axis):
    """Insert axes of length 1 at ``axis`` (an int or a tuple, as ``np.expand_dims``).

    Args:
        x (Variable or ndarray): any shape.
        axis (int or tuple of int): positions of the new axes in the result.
    Returns:
        Variable: ``x.ndim + len(axis)`` axes, same data and dtype.

    >>> expand_dims(np.zeros((2, 3)), 1).shape
    (2, 1, 3)
    """
    x = as_operand(x)
    axis = _helpers.as_ints(axis, "F.expand_dims", "axis", x) if not isinstance(
        axis, (int, np.integer)) else axis
    single = not isinstance(axis, (tuple, list))
    ndim = x.ndim + (1 if single else len(axis))
    axes = _helpers.normalize_axis(axis if single else tuple(axis), ndim, "F.expand_dims", x)
    axes = (axes,) if single else axes
    it = iter(x.shape)
    shape = tuple(1 if i in axes else next(it) for i in range(ndim))
    return reshape(x, shape)


def squeeze(x, axis=None):
    """Remove axes of length 1 (all of them when ``axis`` is None).

    Args:
        x (Variable or ndarray): any shape.
        axis (None, int or tuple of int): axes to remove; each must have length 1.
    Returns:
        Variable: same data and dtype, fewer axes.

    >>> squeeze(np.zeros((2, 1, 3, 1)), axis=1).shape
    (2, 3, 1)
    """
    x = as_operand(x)
    if axis is None:
        axes = tuple(i for i, n in enumerate(x.shape) if n == 1)
    else:
        axes = _helpers.normalize_axis(axis, x.ndim, "F.squeeze", x)
        axes = axes if isinstance(axes, tuple) else (axes,)
        bad = [a for a in axes if x.ndim and x.shape[a] != 1]  # 0-d: axis 0 is allowed
        if bad:
            raise ValueError(f"F.squeeze: axis {axis} has length {x.shape[bad[0]]}, "
                             "expected 1" + _helpers.describe_all(x=x))
    return reshape(x, tuple(n for i, n in enumerate(x.shape) if i not in axes))


def flatten(x):
    """Keep the first axis, flatten the rest: ``(N, ...) -> (N, -1)`` (DeZero's flatten).

    Args:
        x (Variable or ndarray): at least 1-D, ``(N, ...)``.
    Returns:
        Variable: ``(N, prod(rest))``, same dtype.

    >>> flatten(np.zeros((2, 3, 4))).shape
    (2, 12)
    """
    x = as_operand(x)
    if x.ndim == 0:
        raise ValueError("F.flatten: x needs at least one axis (the batch axis)"
                         + _helpers.describe_all(x=x))
    return reshape(x, (x.shape[0], int(np.prod(x.shape[1:], dtype=np.int64))))  # N may be 0


# --- concat, split, stack -------------------------------------------------------------------
class Concat(Function):
    retain_inputs = ()
    batched_jvp = True

    def __init__(self, axis):
        self.axis = axis

    def forward(self, *xs):
        xp = backend.get_array_module(xs[0])
        self.sections = list(np.cumsum([x.shape[self.axis] for x in xs])[:-1])
        return xp.concatenate(xs, axis=self.axis)

    def backward(self, gy):
        gxs = Split(self.sections, self.axis)(gy)
        return tuple(gxs) if isinstance(gxs, list) else gxs

    def jvp(self, *txs):
        # linear: the same concatenation of the tangents (a missing one is zeros)
        lead = next(t.shape[:t.ndim - x.ndim] for t, x in zip(txs, self.inputs) if t is not None)
        txs = [tx if tx is not None else broadcast_to(_zeros_like(x), lead + x.shape)
               for tx, x in zip(txs, self.inputs)]
        return Concat(self.axis + len(lead))(*txs)  # behind batch axes (mibun.forward_mode)


class Split(Function):
    retain_inputs = ()
    batched_jvp = True

    def __init__(self, indices, axis):
        self.indices = indices
        self.axis = axis

    def forward(self, x):
        xp = backend.get_array_module(x)
        return tuple(xp.split(x, self.indices, axis=self.axis))

    def backward(self, *gys):
        return Concat(self.axis)(*gys)

    def jvp(self, tx):  # the axis behind batch axes in front (mibun.forward_mode)
        return Split(self.indices, self.axis + tx.ndim - self.inputs[0].ndim)(tx)


def _sequence(xs, op):
    """``xs`` as a list (a sequence of arrays, or an array iterated along its first axis)."""
    try:
        return list(xs)
    except TypeError as e:
        raise TypeError(f"{op}: xs must be a sequence of arrays, got {type(xs).__name__} "
                        f"{xs!r:.60}") from e


def concat(xs, axis=0):
    """Join a sequence of arrays along an existing ``axis`` (``np.concatenate``).

    Args:
        xs (sequence of Variable or ndarray): same shape except along ``axis``.
        axis (int): the axis to join along.
    Returns:
        Variable: the joined array; the gradient is split back to the pieces.

    >>> concat([np.zeros((2, 3)), np.ones((1, 3))]).shape
    (3, 3)
    """
    xs = [as_operand(x) for x in _sequence(xs, "F.concat")]
    if not xs:
        raise ValueError("F.concat: need at least one array")
    ndim = xs[0].ndim
    if ndim == 0:
        raise ValueError("F.concat: 0-d arrays cannot be concatenated; use F.stack"
                         + _helpers.describe_all(x0=xs[0]))
    axis = _helpers.normalize_axis(axis, ndim, "F.concat", xs[0])
    ref = xs[0].shape[:axis] + xs[0].shape[axis + 1:]
    for x in xs:
        if x.ndim != ndim or x.shape[:axis] + x.shape[axis + 1:] != ref:
            shapes = ", ".join(str(tuple(v.shape)) for v in xs)
            raise ValueError(f"F.concat: shapes must match except along axis {axis}, "
                             f"got {shapes}\n" + _helpers.describe("xs[0]", xs[0]) + "\n"
                             + _helpers.describe(f"xs[{xs.index(x)}]", x))
    if len(xs) == 1:
        return xs[0]
    return Concat(axis)(*xs)


def split(x, indices_or_sections, axis=0):
    """Split along ``axis`` into equal sections or at the given indices (``np.split``).

    Args:
        x (Variable or ndarray): at least 1-D.
        indices_or_sections (int or sequence of int): a number of equal sections, or the
            split points along ``axis`` (slice bounds, as ``np.split``).
        axis (int): the axis to split.
    Returns:
        list of Variable: the pieces (views of ``x``'s data in the forward pass).

    >>> [p.shape for p in split(np.zeros((4, 2)), 2)]
    [(2, 2), (2, 2)]
    """
    x = as_operand(x)
    if x.ndim == 0:
        raise ValueError("F.split: x needs at least one axis to split" + _helpers.describe_all(x=x))
    axis = _helpers.normalize_axis(axis, x.ndim, "F.split", x)
    n = x.shape[axis]
    if isinstance(indices_or_sections, (int, np.integer)):
        k = int(indices_or_sections)
        if k <= 0 or n % k:
            raise ValueError(f"F.split: axis {axis} of length {n} does not split into "
                             f"{k} equal sections" + _helpers.describe_all(x=x))
        indices = [n // k * i for i in range(1, k)]
    else:
        # slice-bound semantics, as np.split: negative counts from the end, then clip
        indices = list(_helpers.as_ints(indices_or_sections, "F.split", "indices_or_sections",
                                     x))
        indices = [min(i + n if i < 0 else i, n) for i in indices]
        indices = [max(0, i) for i in indices]
        if any(a > b for a, b in itertools.pairwise(indices)):
            # decreasing bounds make overlapping/empty pieces: plain slices get it right
            bounds = [0, *indices, n]
            return [get_item(x, (slice(None),) * axis + (slice(lo, max(lo, hi)),))
                    for lo, hi in itertools.pairwise(bounds)]
    ys = Split(indices, axis)(x)
    return ys if isinstance(ys, list) else [ys]


def stack(xs, axis=0):
    """Join arrays of equal shape along a new ``axis`` (``np.stack``).

    Args:
        xs (sequence of Variable or ndarray): ``k`` arrays of one shape ``S``.
        axis (int): position of the new axis in the result.
    Returns:
        Variable: ``S`` with ``k`` inserted at ``axis``; the gradient is split back.

    >>> stack([np.zeros(3), np.ones(3)], axis=1).shape
    (3, 2)
    """
    xs = [as_operand(x) for x in _sequence(xs, "F.stack")]
    if not xs:
        raise ValueError("F.stack: need at least one array")
    shapes = {tuple(x.shape) for x in xs}
    if len(shapes) != 1:
        odd = next(x for x in xs if x.shape != xs[0].shape)
        raise ValueError("F.stack: all arrays must have the same shape, got "
                         + ", ".join(str(tuple(x.shape)) for x in xs) + "\n"
                         + _helpers.describe("xs[0]", xs[0]) + "\n"
                         + _helpers.describe(f"xs[{xs.index(odd)}]", odd))
    axis = _helpers.normalize_axis(axis, xs[0].ndim + 1, "F.stack", xs[0])
    return concat([expand_dims(x, axis) for x in xs], axis)


class Cast(Function):
    retain_inputs = ()
    batched_jvp = True

    def __init__(self, dtype):
        self.dtype = dtype

    def forward(self, x):
        self.x_dtype = x.dtype
        return x.astype(self.dtype, copy=False)

    def backward(self, gy):
        if self.x_dtype.kind not in "fc":
            return gy  # an integer input: its gradient is not truncated
        return astype(gy, self.x_dtype)

    def jvp(self, tx):
        return astype(tx, self.dtype)


def astype(x, dtype):
    """``x`` converted to ``dtype`` (``x`` itself when it has it already).

    The gradient is cast back to ``x``'s float dtype. ``Variable.astype`` calls this.

    Args:
        x (Variable or ndarray): any shape.
        dtype (dtype or str): a bool, integer or float NumPy dtype, or its name.
    Returns:
        Variable: same shape as ``x``, dtype ``dtype``.

    >>> astype(np.array([1.5, 2.0]), "float32").dtype
    dtype('float32')
    """
    given = dtype
    try:  # np.dtype reads an array's (or a Variable's) .dtype, and None as float64: refused
        if given is None or isinstance(given, (Variable, *backend.array_types)):
            raise TypeError
        dtype = np.dtype(given)
    except (TypeError, ValueError):
        raise TypeError(f"F.astype: dtype must be a NumPy dtype or its name, got "
                        f"{type(given).__name__} {given!r:.40}") from None
    if dtype.kind not in errors.REAL_KINDS:
        raise TypeError(f"F.astype: mibun computes on bool, integer and float arrays only, "
                        f"not {dtype}")
    if isinstance(x, Variable) and x.dtype == dtype:
        return x
    return Cast(dtype)(x)  # an array of that dtype passes through as it is
