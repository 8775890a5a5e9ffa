"""What the op families share, below all of them: error lines, argument checks, axis
normalisation, the array-level ``sum_to``, window geometry for conv and pooling, the axes
of batched tangents (mibun.forward_mode).

This module imports only NumPy and mibun's lowest modules (backend, core, errors), so every
``mibun.functions`` module can import it, and ``mibun.utils`` (gradient checks, downloads,
DeZero's names) sits above ``functions/`` instead of beside it.
"""
from __future__ import annotations

import math
import operator
from typing import NamedTuple

import numpy as np

from mibun import backend, core, errors

__all__ = ["Window", "as_data", "as_ints", "check_image", "check_int", "check_real", "conv_outsize",
           "deconv_outsize", "describe", "describe_all", "lead_axis", "lead_index", "lift",
           "max_backward_shape", "normalize_axis", "pad_hw", "pair", "reshape_sum_backward",
           "sum_to", "window", "windows"]


# =============================================================================
# Error lines and arguments
# =============================================================================
describe = errors.describe  # one error line: "  x: shape=(3, 4) dtype=float32"


def describe_all(**values) -> str:
    """The error lines of the named values, each after a newline (to end a message with).

    >>> print("F.op: bad shapes" + describe_all(x=np.zeros((2, 3)), W=np.zeros(3, np.int32)))
    F.op: bad shapes
      x: shape=(2, 3) dtype=float64
      W: shape=(3,) dtype=int32
    """
    return "".join("\n" + describe(name, v) for name, v in values.items())


def as_data(x, op="mibun", arg="x"):
    """The ndarray behind a Variable or an array-like (for argument checks); a TypeError
    naming ``op`` and ``arg`` for what is not one (a ragged list, a dict, ...)."""
    if isinstance(x, core.Variable):
        a = x.data
    elif isinstance(x, backend.array_types):
        a = x
    else:
        try:
            a = np.asarray(x)
        except (TypeError, ValueError) as e:
            raise errors.bad_operand(op, arg, x) from e
    if a is None or a.dtype.kind not in errors.REAL_KINDS:  # complex, object, str...
        raise errors.bad_operand(op, arg, x)
    return a


def as_ints(seq, op, name, x):
    """``seq`` as a tuple of Python ints (an int alone is one), or a TypeError naming the
    op: floats, strings and None are refused, as NumPy refuses them."""
    try:
        if isinstance(seq, (int, np.integer)):
            return (operator.index(seq),)
        return tuple(operator.index(s) for s in seq)
    except TypeError as e:
        raise TypeError(f"{op}: {name} must be an int or a tuple of ints, got "
                        f"{type(seq).__name__} {seq!r:.60}" + describe_all(x=x)) from e


def check_int(owner, name, value, none=False, zero=False):
    """``value`` as an int >= 1 (>= 0 with ``zero``; None allowed with ``none``), else a
    TypeError or ValueError naming ``owner``'s ``name``: the integer settings of layers
    (sizes), loaders (batch sizes) and schedules (step counts)."""
    if value is None and none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{owner}: {name} must be an int{' or None' if none else ''}, got "
                        f"{type(value).__name__} {value!r:.40}")
    if value < (0 if zero else 1):
        raise ValueError(f"{owner}: {name} must be {'>= 0' if zero else 'positive'}, "
                         f"got {value}")
    return int(value)


def check_real(owner, name, value, low=None, high=None, low_open=False, high_open=False,
               inf=False):
    """``value`` as a float, checked to be a real number in range (NaN never is), else a
    TypeError or ValueError naming ``owner``'s ``name``: the one check of the settings of
    optimizers, layers and ops (learning rates, decays, eps ...). ``inf``: +inf is allowed.

    >>> check_real("SGD", "lr", 0.5, low=0.0)
    0.5
    >>> check_real("L.BatchNorm", "decay", 2, low=0.0, high=1.0)
    Traceback (most recent call last):
    ...
    ValueError: L.BatchNorm: decay must be a finite number in [0, 1], got 2
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{owner}: {name} must be a real number, got "
                        f"{type(value).__name__} {value!r:.40}")
    v = float(value)
    ok = math.isfinite(v) or (inf and v == math.inf)
    ok = ok and (low is None or (v > low if low_open else v >= low))
    ok = ok and (high is None or (v < high if high_open else v <= high))
    if not ok:
        if low is not None and high is not None:
            where = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        elif low is not None:
            where = f"{'>' if low_open else '>='} {low:g}"
        else:
            where = f"{'<' if high_open else '<='} {high:g}"
        raise ValueError(f"{owner}: {name} must be a {'' if inf else 'finite '}number "
                         f"{where}, got {value!r}")
    return v


# =============================================================================
# Axes and shapes (array level)
# =============================================================================
def normalize_axis(axis, ndim, op="F.op", x=None):
    """Validate ``axis`` (None, int or tuple) for an ``ndim``-array; return it non-negative.

    >>> normalize_axis((-1, 0), 3)
    (2, 0)
    """
    if axis is None:
        return None
    single = not isinstance(axis, (tuple, list))
    axes = (axis,) if single else tuple(axis)
    out = []

    def where():  # formatted only for an error
        return "" if x is None else describe_all(x=x)

    for a in axes:
        if not isinstance(a, (int, np.integer)) or isinstance(a, bool):
            raise TypeError(f"{op}: axis must be None, an int or a tuple of ints, "
                            f"got {type(a).__name__} {a!r}" + where())
        # NumPy lets a 0-d array reduce over axis 0 or -1
        if not -max(ndim, 1) <= a < max(ndim, 1):
            raise ValueError(f"{op}: axis {axis} is out of range for a {ndim}-d input"
                             + where())
        out.append(int(a) % ndim if ndim else 0)
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: repeated axis in {axis}" + where())
    return out[0] if single else tuple(out)


def sum_to(x, shape):
    """Sum the ndarray ``x`` down to ``shape`` (undo NumPy broadcasting).

    >>> sum_to(np.ones((2, 3)), (1, 3))
    array([[2., 2., 2.]])
    """
    shape = tuple(shape)
    ndim = len(shape)
    lead = x.ndim - ndim
    lead_axis = tuple(range(lead))
    axis = tuple(i + lead for i, sx in enumerate(shape) if sx == 1 and x.shape[i + lead] != 1)
    y = x.sum(lead_axis + axis, keepdims=True)
    if lead > 0:
        y = y.squeeze(lead_axis)
    return y


def reshape_sum_backward(gy, x_shape, axis, keepdims):
    """Reshape the gradient of a reduction so it broadcasts back to ``x_shape``."""
    ndim = len(x_shape)
    if axis is None:
        tupled_axis = None
    elif not isinstance(axis, tuple):
        tupled_axis = (axis,)
    else:
        tupled_axis = axis
    if not (ndim == 0 or tupled_axis is None or keepdims):
        actual_axis = [a if a >= 0 else a + ndim for a in tupled_axis]
        shape = list(gy.shape)
        for a in sorted(actual_axis):
            shape.insert(a, 1)
    elif ndim and (tupled_axis is None and not keepdims):
        shape = (1,) * ndim
    else:
        shape = gy.shape
    if tuple(shape) != tuple(gy.shape):
        gy = gy.reshape(tuple(shape))
    return gy


def max_backward_shape(x, axis):
    """Shape of a max/min result with the reduced axes kept as 1 (DeZero's helper)."""
    if axis is None:
        axis = range(x.ndim)
    elif isinstance(axis, int):
        axis = (axis,)
    return [s if ax not in axis else 1 for ax, s in enumerate(x.shape)]


# =============================================================================
# Window geometry (conv2d, deconv2d, im2col, col2im, pooling)
# =============================================================================
def _is_int(a):
    return isinstance(a, (int, np.integer)) and not isinstance(a, bool)


def pair(v, name="value", op="mibun", minimum=None):
    """``v`` (an int or a pair of ints) as a pair of Python ints, each at least
    ``minimum`` if given: ``3 -> (3, 3)``. A TypeError for another kind, a ValueError for a
    value below ``minimum``, both naming ``op`` and ``name``.

    >>> pair(3), pair((1, 2))
    ((3, 3), (1, 2))
    >>> pair(0, "stride", "F.conv2d", 1)
    Traceback (most recent call last):
    ...
    ValueError: F.conv2d: stride must be >= 1, got 0
    """
    if type(v) is tuple and len(v) == 2 and type(v[0]) is int and type(v[1]) is int:
        p = v  # the common case, first: every conv and pooling node normalises its geometry
    elif type(v) is int:
        p = (v, v)
    elif _is_int(v):
        p = (int(v), int(v))
    elif isinstance(v, (tuple, list)) and len(v) == 2 and _is_int(v[0]) and _is_int(v[1]):
        p = (int(v[0]), int(v[1]))
    else:
        raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {v!r}")
    if minimum is not None and min(p) < minimum:
        raise ValueError(f"{op}: {name} must be >= {minimum}, got {v!r}")
    return p


def conv_outsize(input_size, kernel_size, stride, pad):
    """Output length of a convolution: ``(H + 2 pad - K) // stride + 1``."""
    return (input_size + pad * 2 - kernel_size) // stride + 1


def deconv_outsize(size, k, s, p):
    """Output length of a transposed convolution: ``s (H - 1) + k - 2 p``."""
    return s * (size - 1) + k - 2 * p


class Window(NamedTuple):
    """A 2-D sliding window: ``kernel (KH, KW)``, ``stride (SY, SX)``, ``pad (PH, PW)``.

    >>> w = window("F.pooling", 2, 2, 0)
    >>> w.out_hw(28, 28), w.deconv_hw(14, 14)
    ((14, 14), (28, 28))
    """

    kernel: tuple
    stride: tuple
    pad: tuple

    def out_hw(self, H, W):
        """``(OH, OW)`` of a convolution or pooling over an ``H x W`` image."""
        (kh, kw), (sy, sx), (ph, pw) = self
        return conv_outsize(H, kh, sy, ph), conv_outsize(W, kw, sx, pw)

    def deconv_hw(self, H, W):
        """``(OH, OW)`` of the transposed convolution of an ``H x W`` image."""
        (kh, kw), (sy, sx), (ph, pw) = self
        return deconv_outsize(H, kh, sy, ph), deconv_outsize(W, kw, sx, pw)

    def check_fits(self, op, x, W=None, hw=None):
        """A ValueError naming ``op`` when the kernel is larger than the padded ``x`` (or
        than an image of size ``hw`` when ``x`` holds its patches: col2im)."""
        (kh, kw), _, (ph, pw) = self
        H, Wd = x.shape[2:] if hw is None else hw
        if H + 2 * ph < kh or Wd + 2 * pw < kw:
            raise ValueError(f"{op}: kernel ({kh}, {kw}) is larger than the padded "
                             f"{'input' if hw is None else 'image'} ({H + 2 * ph}, "
                             f"{Wd + 2 * pw}) (pad=({ph}, {pw}))"
                             + ("" if hw is not None else
                                describe_all(x=x, **({} if W is None else {"W": W}))))


def window(op, kernel_size, stride=1, pad=0) -> Window:
    """The checked :class:`Window` of an op's arguments: kernel and stride >= 1, pad >= 0."""
    return Window(pair(kernel_size, "kernel_size", op, 1), pair(stride, "stride", op, 1),
                  pair(pad, "pad", op, 0))


def pad_hw(x, ph, pw, value=0.0):
    """Pad the two spatial axes with a constant (a fresh array; ``x`` itself if no pad)."""
    if ph == 0 and pw == 0:
        return x
    xp = backend.get_array_module(x)
    N, C, H, W = x.shape
    y = xp.full((N, C, H + 2 * ph, W + 2 * pw), value, dtype=x.dtype)
    y[:, :, ph:ph + H, pw:pw + W] = x
    return y


def windows(xpad, kh, kw, sy, sx):
    """A strided view ``(N, C, KH, KW, OH, OW)`` of a padded input: no copy."""
    xp = backend.get_array_module(xpad)
    N, C, H, W = xpad.shape
    oh, ow = conv_outsize(H, kh, sy, 0), conv_outsize(W, kw, sx, 0)
    sn, sc, sh, sw = xpad.strides
    return xp.lib.stride_tricks.as_strided(
        xpad, (N, C, kh, kw, oh, ow), (sn, sc, sh, sw, sh * sy, sw * sx))


def check_image(op, x, moves_only=False):
    """``x`` as a 4-D ndarray ``(N, C, H, W)``: float for a convolution; any real dtype, as
    in NumPy, for an op that only moves or averages values (``moves_only``: im2col, pooling;
    DeZero's tests feed them int64 images)."""
    x = as_data(x, op)
    if x.ndim != 4:
        raise ValueError(f"{op}: x must be 4-D (N, C, H, W), got {x.ndim}-D"
                         + describe_all(x=x))
    if x.dtype.kind not in ("iuf" if moves_only else "f"):
        what = "a real-valued" if moves_only else "a floating-point"
        raise TypeError(f"{op}: x must be {what} array, got dtype={x.dtype}"
                        + describe_all(x=x))
    return x


# =============================================================================
# Batched tangents (mibun.func)
# =============================================================================
# jacfwd pushes all its directions through at once: a tangent then has a batch axis in front
# of its primal's axes. A JVP rule marked ``batched_jvp = True`` accepts such tangents (and
# plain ones); these helpers put its axes behind the batch axes.
def lead_axis(axis, ndim, lead):
    """A normalized ``axis`` of an ``ndim``-array, for a tangent with ``lead`` batch axes
    in front (None: all of the array's own axes).

    >>> lead_axis(None, 2, 1), lead_axis((0, 2), 3, 1), lead_axis(0, 2, 1)
    ((1, 2), (1, 3), 1)
    """
    if not lead:
        return axis
    if axis is None or ndim == 0:  # (a 0-d array allows axis 0: it has no axis of its own)
        return tuple(range(lead, lead + ndim))
    if isinstance(axis, tuple):
        return tuple(a + lead for a in axis)
    return axis + lead


def lead_index(slices, lead):
    """An index of an array, for a tangent with ``lead`` batch axes in front."""
    if not lead:
        return slices
    return (slice(None),) * lead + (slices if isinstance(slices, tuple) else (slices,))


def lift(t, lead, ndim):
    """``t`` with axes of length 1 inserted behind its ``lead`` batch axes, up to ``lead +
    ndim`` axes: broadcasting's right alignment, with the batch axes kept in front.

    >>> lift(np.zeros((5, 3)), 1, 2).shape
    (5, 1, 3)
    """
    k = t.ndim - lead
    if k >= ndim:
        return t
    return t.reshape(t.shape[:lead] + (1,) * (ndim - k) + t.shape[lead:])
