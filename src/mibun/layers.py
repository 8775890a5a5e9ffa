"""Layers, ``import mibun.layers as L``: parameters plus the ops that use them.

A ``Layer`` registers every ``Parameter`` and sub-``Layer`` assigned to one of its attributes,
in definition order (a dict, where DeZero used a set: the same model always lists its
parameters in the same order, so optimizer state and saved files line up). Parameters are
named by their attribute path, ``'l0/W'``, which is how weights, checkpoints and optimizer
state are keyed.

Besides parameters a layer may hold *buffers*: arrays that are saved with the weights but not
trained (BatchNorm's running mean and variance; DeZero made them Parameters, so optimizers
and weight decay saw them).

Initialisation follows DeZero (``W ~ randn * sqrt(1 / fan_in)`` from ``np.random``, float32
by default); a layer whose input size is not given creates its weights on the first call.
"""
from __future__ import annotations

import numpy as np

import mibun.functions as F
from mibun import backend, checkpoint, utils
from mibun.config import Config
from mibun.core import Parameter, Variable

__all__ = [
    "GRU", "LSTM", "RNN", "BatchNorm", "Conv2d", "Deconv2d", "Dropout", "EmbedID", "Layer",
    "Linear",
]


# =============================================================================
# Layer
# =============================================================================
class Layer:
    """Base class: a callable holding Parameters, buffers and sub-Layers.

    Subclasses call ``super().__init__()``, assign their parameters and sub-layers as
    attributes, and define ``forward``.

    >>> class Affine(Layer):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.W = Parameter(np.ones((2, 3), dtype=np.float32), name='W')
    ...         self.b = Parameter(np.zeros(3, dtype=np.float32), name='b')
    ...     def forward(self, x):
    ...         return F.matmul(x, self.W) + self.b
    >>> [name for name, p in Affine().named_params()]
    ['W', 'b']
    """

    def __init__(self):
        # name -> None: an insertion-ordered set of the attributes that are Parameters or
        # Layers (DeZero's Layer._params, ordered). Buffers are kept apart.
        self.__dict__["_params"] = {}
        self.__dict__["_buffers"] = {}

    def __setattr__(self, name, value):
        d = self.__dict__
        if "_params" not in d:  # a subclass that forgot super().__init__()
            Layer.__init__(self)
        if isinstance(value, (Parameter, Layer)):
            d["_params"][name] = None
            d["_buffers"].pop(name, None)
        elif name in d["_params"]:  # re-assigned to something else (e.g. None)
            del d["_params"][name]
        elif name in d["_buffers"] and not isinstance(value, Variable):
            if value is None or isinstance(value, backend.array_types):
                d[name].data = value  # ``bn.avg_mean = array`` sets the buffer's data
                return
            raise TypeError(f"{type(self).__name__}.{name} is a buffer: assign an array, a "
                            f"Variable or None, not a {type(value).__name__}")
        d[name] = value

    def __delattr__(self, name):
        self.__dict__.get("_params", {}).pop(name, None)
        self.__dict__.get("_buffers", {}).pop(name, None)
        super().__delattr__(name)

    def register_buffer(self, name: str, data=None) -> Variable:
        """Add a persistent, untrained array (saved in ``state_dict``, moved by ``to_gpu``).

        It is stored as a plain Variable attribute ``name`` (so ``layer.name.data`` works as
        for DeZero's BatchNorm) and is not among ``params()``.
        """
        d = self.__dict__
        if "_buffers" not in d:
            Layer.__init__(self)
        v = data if isinstance(data, Variable) else Variable(data, name=name)
        d["_params"].pop(name, None)
        d["_buffers"][name] = None
        d[name] = v
        return v

    def __call__(self, *inputs):
        return self.forward(*inputs)

    def forward(self, *inputs):
        raise NotImplementedError(f"{type(self).__name__}.forward is not defined")

    # --- traversal ------------------------------------------------------------------------
    def named_params(self, prefix: str = ""):
        """Yield ``(name, Parameter)`` in definition order, names joined by '/'.

        A parameter shared by two layers (weight tying) is yielded once, under its first
        name, so an optimizer updates it once.
        """
        seen = set()
        for name, obj in self._walk(prefix, set()):
            if isinstance(obj, Parameter) and id(obj) not in seen:
                seen.add(id(obj))
                yield name, obj

    def params(self):
        """Yield every Parameter of this layer and its sub-layers, in definition order."""
        for _, p in self.named_params():
            yield p

    def _flatten_params(self, params_dict: dict, parent_key: str = "") -> None:
        """DeZero's helper: fill ``params_dict`` with ``{'l0/W': Parameter, ...}``."""
        params_dict.update(self.named_params(parent_key + "/" if parent_key else ""))

    def named_buffers(self, prefix: str = ""):
        """Yield ``(name, Variable)`` for every buffer (running statistics, ...)."""
        seen = set()
        for name, obj in self._walk(prefix, set(), buffers=True):
            if id(obj) not in seen:
                seen.add(id(obj))
                yield name, obj

    def named_children(self):
        """Yield ``(name, Layer)`` for the direct sub-layers, in definition order."""
        for name in self._params:
            obj = self.__dict__[name]
            if isinstance(obj, Layer):
                yield name, obj

    def _walk(self, prefix, visiting, buffers=False):
        if id(self) in visiting:  # a layer reachable from itself: do not loop forever
            return
        visiting.add(id(self))
        d = self.__dict__
        if buffers:
            for name in d["_buffers"]:
                yield prefix + name, d[name]
        for name in d["_params"]:
            obj = d[name]
            if isinstance(obj, Layer):
                yield from obj._walk(prefix + name + "/", visiting, buffers)
            elif not buffers:
                yield prefix + name, obj
        visiting.discard(id(self))

    def cleargrads(self) -> None:
        """Set every parameter's ``grad`` to None (call before each backward)."""
        for p in self.params():
            p.cleargrad()

    def to_cpu(self):
        """Move parameters and buffers to NumPy; returns self."""
        for p in self.params():
            p.to_cpu()
        for _, b in self.named_buffers():
            b.to_cpu()
        return self

    def to_gpu(self):
        """Move parameters and buffers to CuPy; returns self."""
        for p in self.params():
            p.to_gpu()
        for _, b in self.named_buffers():
            b.to_gpu()
        return self

    def count_params(self) -> int:
        """Number of scalars in the (initialised) parameters."""
        return sum(p.data.size for p in self.params() if p.data is not None)

    # --- state (checked, assigned and restored by mibun.checkpoint) -----------------------
    def named_state(self, prefix: str = ""):
        """Yield ``(name, Variable)`` for the parameters, then the buffers: what is saved."""
        yield from self.named_params(prefix)
        yield from self.named_buffers(prefix)

    _state_items = named_state

    def state_dict(self) -> dict:
        """Parameters and buffers as ``{name: NumPy array}`` (copies), e.g. ``'l0/W'``.

        Raises:
            ValueError: a parameter is not initialised yet (a lazy layer that has not been
                called): run one forward pass first, or give its input size.
        """
        return {name: a.copy() for name, a in checkpoint.model_arrays(self).items()}

    def check_state_dict(self, d: dict, what: str | None = None) -> None:
        """Raise ValueError unless ``d`` matches this layer's names, shapes and dtypes.

        A lazy (not yet initialised) parameter accepts any shape of a floating dtype.
        """
        checkpoint.check_model_state(self, d, what or f"{type(self).__name__}.load_state_dict")

    def load_state_dict(self, d: dict) -> None:
        """Load ``{name: array}`` (as from ``state_dict``) into the parameters and buffers.

        Every name, shape and dtype is checked first; on a mismatch a ValueError lists the
        problems and the layer is left untouched.
        """
        self.check_state_dict(d)
        checkpoint.assign_model_state(self, d)

    def save_weights(self, path) -> None:
        """Save ``state_dict()`` to the .npz ``path`` (atomically; see mibun.checkpoint).

        Unlike DeZero this does not move the model to the CPU, and writes exactly ``path``.
        """
        checkpoint.save_npz(path, checkpoint.model_arrays(self))

    def load_weights(self, path) -> None:
        """Load weights saved by ``save_weights`` (checked first; never runs pickled code)."""
        checkpoint.load_weights(self, path)

    # --- repr -----------------------------------------------------------------------------
    def extra_repr(self) -> str:
        """The layer's settings, shown inside the parentheses of its repr."""
        return ""

    def __repr__(self):
        return "\n".join(self._repr_lines(None))

    def _repr_lines(self, name):
        head = (f"({name}): " if name else "") + f"{type(self).__name__}({self.extra_repr()})"
        own = [(n, self.__dict__[n]) for n in self._params
               if isinstance(self.__dict__[n], Parameter)]
        own += [(n, self.__dict__[n]) for n in self._buffers]
        subs = list(self.named_children())
        total = self.count_params()
        lazy = any(p.data is None for p in self.params())
        count = f"{total:,} params" + (" + lazy" if lazy else "")
        if not subs:
            shapes = ", ".join(f"{n} {_shape_str(v)}" for n, v in own)
            return [head + (f"  {shapes}" if shapes else "") + f"  # {count}"]
        lines = [head + f"  # {count}"]
        lines += [f"  {n}: {_shape_str(v)}" for n, v in own]
        for n, layer in subs:
            lines += ["  " + s for s in layer._repr_lines(n)]
        return lines


def _shape_str(v) -> str:
    if v.data is None:
        return "(lazy)"
    return f"{tuple(v.data.shape)} {v.data.dtype}"


def _kwargs_repr(**kw) -> str:
    return ", ".join(f"{k}={v}" for k, v in kw.items())


def _dtype_name(dtype) -> str:
    return np.dtype(dtype).name


# --- argument checks: at construction, so that a bad setting fails where it is given ----------
def _size(op, name, value, none=False, zero=False):
    """A layer size (int >= 1, or >= 0 with ``zero``; None allowed with ``none``)."""
    if value is None and none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{op}: {name} must be an int{' or None' if none else ''}, got "
                        f"{type(value).__name__} {value!r:.40}")
    if value < (0 if zero else 1):
        raise ValueError(f"{op}: {name} must be {'>= 0' if zero else 'positive'}, got {value}")
    return int(value)


def _pair(op, name, value, zero=False):
    """``k`` or ``(kh, kw)``, each checked as ``_size``."""
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return tuple(_size(op, name, v, zero=zero) for v in value)
    if isinstance(value, (tuple, list)):
        raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
    return _size(op, name, value, zero=zero)


def _float_dtype(op, dtype):
    try:
        d = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{op}: dtype must be a NumPy dtype, got {dtype!r}") from None
    if d.kind != "f":
        raise ValueError(f"{op}: dtype must be a floating-point type (parameters are trained "
                         f"by gradients), got {d}")
    return dtype


def _randn(op, xp, shape, dtype, fill=None):
    """``randn(*shape)`` (or ``fill``) in ``dtype``; a size that cannot be allocated is a
    ValueError naming the layer, not NumPy's "array is too big" or a MemoryError."""
    try:
        if fill is None:
            return xp.random.randn(*shape).astype(dtype)
        return xp.full(shape, fill, dtype=dtype)
    except (ValueError, MemoryError, OverflowError) as e:
        raise ValueError(f"{op}: cannot create parameters of shape {shape}: {e}") from None


def _check_input(op, x):
    """A layer's input must be a Variable or an array (a cheap isinstance per call)."""
    if not isinstance(x, (Variable, np.generic, *backend.array_types)):
        raise TypeError(f"{op}: the input must be a Variable or an ndarray, got "
                        f"{type(x).__name__}")


# =============================================================================
# Linear and convolution
# =============================================================================
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
        self.in_size = _size("L.Linear", "in_size", in_size, none=True)
        self.out_size = _size("L.Linear", "out_size", out_size)
        self.dtype = _float_dtype("L.Linear", dtype)
        self.W = Parameter(None, name="W")
        if self.in_size is not None:
            self._init_W()
        if nobias:
            self.b = None
        else:
            self.b = Parameter(_randn("L.Linear", np, (out_size,), dtype, 0), name="b")

    def _init_W(self, xp=np):
        I, O = self.in_size, self.out_size
        W = _randn("L.Linear", xp, (I, O), self.dtype)
        W *= W.dtype.type(np.sqrt(1 / I))  # in W's dtype: float32 stays float32
        self.W.data = W

    def forward(self, x):
        W = self.W.data
        _check_input("L.Linear", x)
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
                f"  x: shape={tuple(x.shape)} dtype={x.dtype}\n"
                f"  W: shape={tuple(self.W.shape)} dtype={self.W.dtype}")
        return F.linear(x, self.W, self.b)

    def extra_repr(self):
        return _kwargs_repr(in_size=self.in_size, out_size=self.out_size) + (
            ", nobias=True" if self.b is None else "")


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
        self.in_channels = _size(op, "in_channels", in_channels, none=True)
        self.out_channels = _size(op, "out_channels", out_channels)
        self.kernel_size = _pair(op, "kernel_size", kernel_size)
        self.stride = _pair(op, "stride", stride)
        self.pad = _pair(op, "pad", pad, zero=True)
        self.dtype = _float_dtype(op, dtype)
        self.W = Parameter(None, name="W")
        if in_channels is not None:
            self._init_W()
        if nobias:
            self.b = None
        else:
            self.b = Parameter(_randn(self._op, np, (out_channels,), dtype, 0), name="b")

    def _w_shape(self):
        KH, KW = utils.pair(self.kernel_size)
        return (self.out_channels, self.in_channels, KH, KW)

    def _init_W(self, xp=np):
        shape = self._w_shape()
        fan_in = int(np.prod(shape)) // shape[0]
        W = _randn(self._op, xp, shape, self.dtype)
        W *= W.dtype.type(np.sqrt(1 / fan_in))
        self.W.data = W

    _in_axis = 1  # the axis of W that counts input channels
    _op = "L.Conv2d"

    def _prepare(self, x):
        W = self.W.data
        _check_input(self._op, x)
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
                f"  x: shape={tuple(x.shape)} dtype={x.dtype}\n"
                f"  W: {_shape_str(self.W)}")

    def forward(self, x):
        if self.W.data is None or getattr(x, "ndim", None) != 4 \
                or x.shape[1] != self.in_channels:
            self._prepare(x)
        return F.conv2d(x, self.W, self.b, self.stride, self.pad)

    def extra_repr(self):
        return _kwargs_repr(in_channels=self.in_channels, out_channels=self.out_channels,
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
        W = _randn(self._op, xp, (C, OC, KH, KW), self.dtype)
        W *= W.dtype.type(np.sqrt(1 / (C * KH * KW)))
        self.W.data = W

    _in_axis = 0
    _op = "L.Deconv2d"

    def forward(self, x):
        if self.W.data is None or getattr(x, "ndim", None) != 4 \
                or x.shape[1] != self.in_channels:
            self._prepare(x)
        return F.deconv2d(x, self.W, self.b, self.stride, self.pad)


# =============================================================================
# Normalisation, embedding, dropout
# =============================================================================
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
        in_size = _size("L.BatchNorm", "in_size", in_size, none=True)
        dtype = _float_dtype("L.BatchNorm", dtype)
        self.gamma = Parameter(None, name="gamma")
        self.beta = Parameter(None, name="beta")
        self.register_buffer("avg_mean")
        self.register_buffer("avg_var")
        if in_size is not None:
            self._init_params(np, in_size, dtype)

    def _init_params(self, xp, D, dtype):
        zeros = _randn("L.BatchNorm", xp, (D,), dtype, 0)
        self.avg_mean.data = zeros
        self.avg_var.data = zeros + 1
        self.gamma.data = zeros + 1
        self.beta.data = zeros.copy()

    def forward(self, x):
        if self.gamma.data is None:
            _check_input("L.BatchNorm", x)
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
        return _kwargs_repr(in_size=size, decay=self.decay, eps=self.eps)


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
        self.in_size = _size("L.EmbedID", "in_size", in_size)
        self.out_size = _size("L.EmbedID", "out_size", out_size)
        dtype = _float_dtype("L.EmbedID", dtype)
        self.W = Parameter(_randn("L.EmbedID", np, (in_size, out_size), dtype), name="W")

    def forward(self, x):
        return F.embed_id(x, self.W)

    def extra_repr(self):
        return _kwargs_repr(in_size=self.in_size, out_size=self.out_size)


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


# =============================================================================
# Recurrent layers (one time step per call; the state lives in the layer)
# =============================================================================
def _check_state(op, x, h):
    """The input's batch must match the state kept from the previous step."""
    _check_input(op, x)
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
        self.hidden_size = _size("L.RNN", "hidden_size", hidden_size)
        in_size = _size("L.RNN", "in_size", in_size, none=True)
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
        return _kwargs_repr(in_size=self.x2h.in_size, hidden_size=self.hidden_size)


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
        H, I = (_size("L.LSTM", "hidden_size", hidden_size),
                _size("L.LSTM", "in_size", in_size, none=True))
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
        return _kwargs_repr(in_size=self.x2f.in_size, hidden_size=self.hidden_size)


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
        H, I = (_size("L.GRU", "hidden_size", hidden_size),
                _size("L.GRU", "in_size", in_size, none=True))
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
        return _kwargs_repr(in_size=self.x2r.in_size, hidden_size=self.hidden_size)
