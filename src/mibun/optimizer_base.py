"""The optimizer base (``Optimizer``: ``setup``, ``update``, per-parameter state, saving
and restoring) and what the update rules share: checked hyper-parameters (``_Setting``) and
the block-by-block update (``_blocks``). The rules themselves are in ``mibun.optimizers``,
which re-exports every name here."""
from __future__ import annotations

import numpy as np

from mibun import backend, checkpoint, utils
from mibun.core import Parameter, Variable
from mibun.errors import shape_dtype


def _named_params(target):
    """``(name, Parameter)`` pairs of ``target``, in its (definition) order."""
    named = getattr(target, "named_params", None)
    if named is not None:
        return list(named())
    # A target with only params() (DeZero style): name parameters by position.
    return [(f"p{i}", p) for i, p in enumerate(target.params())]


_CHUNK = 1 << 15  # elements per block of an update (128 KB of float32: fits L2)


def _blocks(self, arrays, n_tmp=1):
    """The arrays (a parameter, its gradient, its state: one shape) as lists of matching flat
    blocks of ``_CHUNK`` elements, each followed by ``n_tmp`` work arrays of its size. Every
    built-in update runs block by block, its temporaries in one block-sized buffer: the
    update's ~10 passes then read a block from the CPU cache instead of memory
    (benchmarks/optim_data.py: Adam on 1.8 M float32 parameters 10.9 -> 7.7 ms). One block
    for a small, non-contiguous or GPU array; the same arithmetic either way, bit for bit."""
    n = arrays[0].size
    if n <= _CHUNK or not isinstance(arrays[0], np.ndarray) or not all(
            a.flags.c_contiguous for a in arrays):
        return [[*arrays, *self.scratch(arrays[0], n_tmp)]]
    flat = [a.reshape(-1) for a in arrays]
    tmps = self.scratch(flat[0][:_CHUNK], n_tmp)
    return [[f[i:i + _CHUNK] for f in flat] + [t[:min(_CHUNK, n - i)] for t in tmps]
            for i in range(0, n, _CHUNK)]


class _Setting:
    """A hyper-parameter (``lr``, ``momentum`` ...) checked whenever it is assigned.

    A descriptor with ``__set__`` but no ``__get__``: assignments (construction, schedules,
    ``opt.lr = ...``) go through the check, while reads find the plain float in the
    instance's ``__dict__`` at no extra cost, so ``update()`` stays as fast as before.
    """

    def __init__(self, **limits):
        self.limits = limits  # the keyword arguments of utils.check_real

    def __set_name__(self, owner, name):
        self.name = name

    def __set__(self, obj, value):
        obj.__dict__[self.name] = utils.check_real(type(obj).__name__, self.name, value,
                                                   **self.limits)


_RATE = {"low": 0.0}  # lr, eps, weight decay: >= 0
_DECAY = {"low": 0.0, "high": 1.0, "high_open": True}  # momentum, betas: [0, 1)


# =============================================================================
# Optimizer
# =============================================================================
class Optimizer:
    """Base class: ``setup(target)``, then ``update()`` after each backward.

    Subclasses implement ``update_one(param)`` (DeZero's protocol) and keep per-parameter
    arrays in ``self.state_for(param)``, a dict created on the parameter's first update;
    the names of those arrays are listed in the class attribute ``slots``.

    Attributes:
        target: the Layer (or any object with ``params()``) being optimised.
        lr (float): learning rate, settable (schedules change it).
        t (int): number of ``update()`` calls so far.
        hooks (list): callables ``f(params)`` run on the parameters with a gradient
            before each update (``WeightDecay``, ``ClipGrad``, ``FreezeParam``).
    """

    slots: tuple = ()  # names of the per-parameter state arrays
    counts_steps = False  # keep a per-parameter update count "step" (bias corrections)
    lr = _Setting(**_RATE)

    def __init__(self, lr: float = 0.01):
        self.target = None
        self.lr = lr
        self.hooks: list = []
        self.t = 0
        self.state: dict = {}  # parameter name -> {slot: ndarray, "step": int}
        self._names: dict = {}  # id(param) -> name, rebuilt by each update()
        self._scratch: dict = {}  # (backend, dtype) -> flat work buffer, see scratch()

    def setup(self, target):
        """Attach the model (a Layer); returns ``self`` so ``Adam().setup(model)`` chains."""
        if not (hasattr(target, "params") or hasattr(target, "named_params")):
            raise TypeError(f"{type(self).__name__}.setup: target must be a Layer (with "
                            f"params()), got {type(target).__name__}")
        self.target = target
        return self

    def _require_target(self, what):
        if self.target is None:
            raise RuntimeError(f"{type(self).__name__}.{what}: no target; call "
                               "optimizer.setup(model) first")

    def update(self) -> None:
        """Apply the hooks, then one step to every parameter that has a gradient."""
        self._require_target("update")
        named = [(n, p) for n, p in _named_params(self.target) if p.grad is not None]
        for n, p in named:  # else the update would broadcast it over the parameter silently
            if p.grad.data.shape != p.data.shape:  # .data: ~0.2 us per parameter, no property
                self._bad_grad(n, p)
        for f in self.hooks:
            f([p for _, p in named])
            # A hook may drop gradients (FreezeParam): later hooks and the update skip them.
            named = [(n, p) for n, p in named if p.grad is not None]
        self._names = {id(p): n for n, p in named}
        self.t += 1
        for n, p in named:
            try:
                self.update_one(p)
            except TypeError as e:  # NumPy's casting error (a complex gradient ...): name it
                if p.grad.data.dtype.kind in "biuf":
                    raise
                raise TypeError(f"{type(self).__name__}.update: the gradient of {n!r} has "
                                f"dtype {p.grad.dtype}; a real (float) gradient is needed\n"
                                f"  grad:      {shape_dtype(p.grad)}\n"
                                f"  parameter: {shape_dtype(p)}") from e

    def _bad_grad(self, name, p):
        g = p.grad
        if not isinstance(g, Variable):
            raise TypeError(f"{type(self).__name__}.update: {name}.grad must be a Variable "
                            f"(or None), got {type(g).__name__}")
        raise ValueError(f"{type(self).__name__}.update: the gradient of {name!r} does not "
                         f"have its parameter's shape\n  grad:      {shape_dtype(g)}\n"
                         f"  parameter: {shape_dtype(p)}")

    def update_one(self, param: Parameter) -> None:
        raise NotImplementedError(f"{type(self).__name__}.update_one is not defined")

    def add_hook(self, f) -> None:
        """Run ``f(params)`` on the parameters with a gradient before each update."""
        self.hooks.append(f)

    def state_for(self, param: Parameter) -> dict:
        """The state dict of ``param``, with zero arrays for ``slots`` on first use."""
        name = self._names.get(id(param))
        if name is None:
            raise RuntimeError(f"{type(self).__name__}: state_for() is for parameters "
                               "being updated by update()")
        s = self.state.get(name)
        if s is None:
            xp = backend.get_array_module(param.data)
            s = {k: xp.zeros_like(param.data) for k in self.slots}
            if self.counts_steps:
                s["step"] = 0
            self.state[name] = s
        return s

    def scratch(self, like, n: int = 1) -> list:
        """``n`` work arrays shaped like ``like``, reused from step to step.

        The updates write their temporaries here with ``out=`` instead of allocating fresh
        arrays for every parameter at every step (for big arrays each new allocation costs
        page faults, more than the arithmetic). The contents are garbage between calls.
        """
        xp = backend.get_array_module(like)
        key = (xp.__name__, like.dtype.str)
        size = like.size
        buf = self._scratch.get(key)
        if buf is None or buf.size < n * size:
            buf = self._scratch[key] = xp.empty(n * size, dtype=like.dtype)
        return [buf[i * size:(i + 1) * size].reshape(like.shape) for i in range(n)]

    # --- saving and restoring -----------------------------------------------------------------
    def state_dict(self) -> dict:
        """The optimizer's state as a flat ``{key: ndarray}`` (NumPy arrays, copies).

        Keys: ``"<param name>/<slot>"`` for per-parameter arrays (e.g. ``"l0/W/m"``),
        ``"<param name>/step"`` (0-d int64) for per-parameter update counts, and
        ``"@t"`` (0-d int64, the number of updates) and ``"@lr"`` (0-d float64).
        """
        d = {"@t": np.array(self.t, dtype=np.int64), "@lr": np.array(self.lr, np.float64)}
        for name, s in self.state.items():
            for k, v in s.items():
                if k == "step":
                    d[f"{name}/{k}"] = np.array(v, dtype=np.int64)
                else:
                    d[f"{name}/{k}"] = backend.as_numpy(v).copy()
        return d

    def load_state_dict(self, d) -> None:
        """Restore ``state_dict()`` output; everything is checked before anything changes.

        Raises:
            RuntimeError: no target (call ``setup`` first).
            ValueError: a key names no parameter of the target or an unknown slot, a
                parameter's state is incomplete, a shape or dtype does not match, or
                ``@t`` / ``@lr`` / a step count is not a valid number (the message names
                the first problem).
        """
        checkpoint.assign_optimizer_state(self, checkpoint.check_optimizer_state(self, d))

    def named_params(self, what: str = "named_params") -> list:
        """``(name, Parameter)`` of the target, named as the state's keys name them."""
        self._require_target(what)
        return _named_params(self.target)


class _Params:
    """A minimal target for doctests: a fixed list of parameters."""

    def __init__(self, *params):
        self._params = params

    def params(self):
        return iter(self._params)
