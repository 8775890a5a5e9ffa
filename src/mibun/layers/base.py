"""``Layer``: the base class that registers Parameters, buffers and sub-Layers.

A ``Layer`` registers every ``Parameter`` and sub-``Layer`` assigned to one of its attributes,
in definition order (a dict, where DeZero used a set: the same model always lists its
parameters in the same order, so optimizer state and saved files line up). Parameters are
named by their attribute path, ``'l0/W'``, which is how weights, checkpoints and optimizer
state are keyed.

Besides parameters a layer may hold *buffers*: arrays that are saved with the weights but not
trained (BatchNorm's running mean and variance; DeZero made them Parameters, so optimizers
and weight decay saw them). Saving, checking and restoring that state is
:mod:`mibun.checkpoint`'s job; a Layer only names it (``named_state``).
"""
from __future__ import annotations

from mibun import backend, checkpoint
from mibun.core import Parameter, Variable
from mibun.layers._helpers import shape_str

__all__ = ["Layer"]


class Layer:
    """Base class: a callable holding Parameters, buffers and sub-Layers.

    Subclasses call ``super().__init__()``, assign their parameters and sub-layers as
    attributes, and define ``forward``.

    >>> import numpy as np, mibun.functions as F
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
            shapes = ", ".join(f"{n} {shape_str(v)}" for n, v in own)
            return [head + (f"  {shapes}" if shapes else "") + f"  # {count}"]
        lines = [head + f"  # {count}"]
        lines += [f"  {n}: {shape_str(v)}" for n, v in own]
        for n, layer in subs:
            lines += ["  " + s for s in layer._repr_lines(n)]
        return lines
