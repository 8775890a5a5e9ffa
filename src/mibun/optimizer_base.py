"""The optimizer base (``Optimizer``: ``setup``, ``update``, per-parameter state, saving
and restoring) and what the update rules share: checked hyper-parameters (``_Setting``) and
the block-by-block update (``_blocks``). The rules themselves are in ``mibun.optimizers``,
which re-exports every name here."""
from __future__ import annotations

import itertools

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


class _Flat:
    """The small parameters of one dtype, updated together: their data, one flat buffer
    per state slot and a gradient buffer, so that one ``update_arrays`` call (a dozen NumPy
    calls) updates them all (PyTorch's ``foreach`` Adam and DDP's gradients as views of a
    bucket are the models). benchmarks/rl_step.py, 6 parameters of 2 to 16384 elements:
    Adam's ``update()`` 150 -> 65 us (a 540 us step).

    The state arrays become views of these buffers (the values copied once). A parameter
    keeps its own ``data`` array, updated in place as by ``update_one``: a step gathers the
    data and the gradients into the buffers (one ``concatenate`` each), updates, and copies
    each parameter's slice back (one ``copyto`` a parameter; the copies cost less than the
    dozen NumPy calls a parameter they save). Replacing a ``param.data`` or the state
    (``load_weights``, ``load_state_dict``, ``to_gpu``) is seen by ``holds``, which checks by
    identity before each step that every array is the one it knows, and the next update
    builds a new _Flat. Large parameters (``_CHUNK`` elements or more: they pay the
    per-call cost once per 128 KB block) and those that cannot join (CuPy arrays, a
    gradient of another dtype, data shared by two parameters) take ``update_one``.
    """

    def __init__(self, opt, items):
        sizes = [p.data.size for _, p in items]
        n, dtype = sum(sizes), items[0][1].data.dtype
        self.names = [name for name, _ in items]
        self.data, self.grad = np.empty(n, dtype), np.empty(n, dtype)
        self.state = [np.empty(n, dtype) for _ in opt.slots]
        self.arrays, self.slices, self.states, self.slot_views = [], [], [], []  # per param
        o = 0
        for (_, p), size in zip(items, sizes):
            s = opt.state_for(p)
            for k, buf in zip(opt.slots, self.state):
                s[k] = _copy_into(buf[o:o + size].reshape(p.data.shape), s[k])
            self.arrays.append(p.data)
            self.slices.append(self.data[o:o + size].reshape(p.data.shape))
            self.states.append(s)
            self.slot_views.append([s[k] for k in opt.slots])
            o += size

    def holds(self, opt, items) -> bool:
        """Whether ``items`` are this _Flat's parameters, their data and state untouched."""
        if len(items) != len(self.names):
            return False
        state = opt.state
        for (n, p), name, a, s, views in zip(items, self.names, self.arrays, self.states,
                                             self.slot_views):
            if n != name or p.data is not a or state.get(n) is not s:
                return False
            for k, v in zip(opt.slots, views):
                if s[k] is not v:
                    return False
        return True

    @staticmethod
    def update(opt, named) -> list:
        """Update the small NumPy parameters in ``named`` whose gradient has their dtype,
        one flat ``update_arrays`` call per dtype; return the others, for ``update_one``.
        Parameters of one dtype whose update counts differ (one was skipped) are grouped by
        count, and the largest group is updated together."""
        groups: dict = {}
        rest = []
        for n, p in named:
            d, g = p.data, p.grad.data
            if (type(d) is np.ndarray and type(g) is np.ndarray and d.size < _CHUNK
                    and g.dtype == d.dtype):
                s = opt.state.get(n) if opt.counts_steps else None
                groups.setdefault((d.dtype.str, 0 if s is None else s["step"]), []).append(
                    (n, p))
            else:
                rest.append((n, p))
        chosen: dict = {}
        for (dtype, _), items in groups.items():
            if len(items) > len(chosen.get(dtype, ())):  # the largest so far: swap it in
                items, chosen[dtype] = chosen.get(dtype, []), items
            rest += items
        for dtype, items in chosen.items():
            flat = opt._flats.get(dtype)
            if flat is None or not flat.holds(opt, items):
                if len(items) == 1 or not _apart(items):
                    rest += items
                    continue
                flat = opt._flats[dtype] = _Flat(opt, items)
            np.concatenate([a.reshape(-1) for a in flat.arrays], out=flat.data)
            np.concatenate([p.grad.data.reshape(-1) for _, p in items], out=flat.grad)
            for s in flat.states:
                k = opt._count(s)  # the same for all: they were grouped by it
            opt.update_arrays(flat.data, flat.grad, flat.state, k)
            for a, v in zip(flat.arrays, flat.slices):
                np.copyto(a, v)
        return rest


def _copy_into(out, a):
    out[...] = a
    return out


# np.byte_bounds moved to np.lib.array_utils in NumPy 2
_byte_bounds = getattr(np.lib, "array_utils", np).byte_bounds


def _apart(items, writeable: bool = True) -> bool:
    """Whether the parameters' data are writeable (unless ``writeable=False``) and share no
    memory (two Parameters on one array must stay on one array, which update_one updates
    twice, as before)."""
    arrays = [p.data for _, p in items]
    if writeable and not all(a.flags.writeable for a in arrays):
        return False  # update_one raises NumPy's error, as before
    bounds = sorted(_byte_bounds(a) for a in arrays if a.size)
    return all(hi <= lo for (_, hi), (lo, _) in itertools.pairwise(bounds))


# =============================================================================
# Optimizer
# =============================================================================
class Optimizer:
    """Base class: ``setup(target)``, then ``update()`` after each backward.

    Subclasses implement ``update_one(param)`` (DeZero's protocol) and keep per-parameter
    arrays in ``self.state_for(param)``, a dict created on the parameter's first update;
    the names of those arrays are listed in the class attribute ``slots``. The built-in
    rules implement ``update_arrays(data, grad, state, k)`` instead, which the base's
    ``update_one`` calls on one parameter; ``update()`` then also updates the small
    parameters of a dtype all at once, on flat buffers (see ``_Flat``).

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
        self._flats: dict = {}  # dtype -> _Flat: the small parameters updated together

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
        self._step(named)

    def _step(self, named) -> None:
        """The rule on each ``(name, parameter)`` of ``named`` (after the hooks); the
        multi-node optimizer's shards of one machine replace this (mibun.distributed)."""
        if type(self).update_one is Optimizer.update_one:  # a rule on arrays: see _Flat
            named = _Flat.update(self, named)
        for n, p in named:
            try:
                self.update_one(p)
            except ValueError as e:  # a read-only parameter: say which, and why it may be
                if getattr(p.data.flags, "writeable", True):
                    raise
                raise ValueError(f"{type(self).__name__}.update: parameter {n!r} is read-only"
                                 " (on one machine the ranks of mibun.distributed share one "
                                 "copy of a multi-node optimizer's parameters); give it an "
                                 "array of its own first: p.data = p.data.copy()") from e
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
        """Update one parameter in place (DeZero's protocol); here by ``update_arrays``."""
        s = self.state_for(param)
        grad = param.grad.data  # type: ignore[union-attr]  # update() passes those with one
        self.update_arrays(param.data, grad, [s[k] for k in self.slots], self._count(s))

    def update_arrays(self, data, grad, state: list, k: int) -> None:
        """The rule, in place on arrays of one shape: the ``data`` of one parameter (or of
        many in one flat array), its gradient ``grad``, its state arrays in ``slots`` order;
        ``k`` counts the updates (with ``counts_steps``, else 0). Every element gets the
        same formula, so one call on a flat array gives each parameter the bits that a call
        on its own arrays gives."""
        raise NotImplementedError(f"{type(self).__name__}.update_one is not defined")

    def _count(self, s) -> int:
        if not self.counts_steps:
            return 0
        s["step"] += 1
        return s["step"]

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
