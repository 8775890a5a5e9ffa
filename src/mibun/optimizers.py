"""Optimizers, gradient hooks and learning-rate schedules (DeZero's ``dezero.optimizers``).

    model = MLP((100, 10))
    optimizer = optimizers.Adam().setup(model)
    ...
    model.cleargrads(); loss.backward(); optimizer.update()

Each update runs in place on ``param.data`` with array ops of the parameter's own backend
and dtype (hyper-parameters are Python floats, so float32 stays float32), and skips
parameters whose ``grad`` is None.

The update formulas are PyTorch's (``torch.optim``), so the same hyper-parameters give the
same numbers. Where DeZero differs:

* ``MomentumSGD`` keeps PyTorch's buffer ``v = momentum v + g`` and steps ``-lr v``;
  DeZero kept ``v = momentum v - lr g``. Equal while ``lr`` is constant; with a schedule
  PyTorch's form applies the new ``lr`` to the whole buffer.
* ``Adam`` divides by ``sqrt(v_hat) + eps`` with bias-corrected ``v_hat`` (PyTorch, and
  the Adam paper); DeZero folded the correction into the step size and added ``eps`` to
  the uncorrected ``sqrt(v)``, an eps ``sqrt(1 - beta2^t)`` times larger. Bias correction
  counts each parameter's own updates. ``Adam.lr`` is ``alpha`` (settable), not DeZero's
  read-only corrected step size.

Optimizer state is keyed by parameter name (``target.named_params()``), never ``id()``:
``state_dict()`` gives flat arrays such as ``"l0/W/m"``, so it can be saved and restored.
"""
from __future__ import annotations

import math

import numpy as np

from mibun import backend, checkpoint, utils
from mibun.core import Parameter, Variable
from mibun.errors import shape_dtype

__all__ = [
    "SGD", "AdaDelta", "AdaGrad", "Adam", "AdamW", "ClipGrad", "CosineLR", "FreezeParam",
    "MomentumSGD", "Nesterov", "Optimizer", "RMSprop", "StepLR", "WeightDecay",
]


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


# =============================================================================
# Optimizers
# =============================================================================
class SGD(Optimizer):
    """Plain gradient descent: ``p -= lr * g``.

    >>> import mibun
    >>> p = mibun.Parameter(np.array([1.0, 2.0]))
    >>> p.grad = mibun.Variable(np.array([1.0, -1.0]))
    >>> opt = SGD(lr=0.5).setup(_Params(p))
    >>> opt.update(); p.data
    array([0.5, 2.5])
    """

    def __init__(self, lr: float = 0.01):
        super().__init__(lr)

    def update_one(self, param):
        xp = backend.get_array_module(param.data)
        for p, g, tmp in _blocks(self, (param.data, param.grad.data)):
            xp.multiply(g, self.lr, out=tmp)
            p -= tmp


class MomentumSGD(Optimizer):
    """SGD with momentum (PyTorch's form): ``v = momentum v + g``, ``p -= lr v``.

    Args:
        lr (float): learning rate.
        momentum (float): decay of the velocity ``v`` (state ``"v"``).
    """

    slots = ("v",)
    momentum = _Setting(**_DECAY)

    def __init__(self, lr: float = 0.01, momentum: float = 0.9):
        super().__init__(lr)
        self.momentum = momentum

    def update_one(self, param):
        xp = backend.get_array_module(param.data)
        for p, g, v, tmp in _blocks(self, (param.data, param.grad.data,
                                           self.state_for(param)["v"])):
            v *= self.momentum
            v += g
            xp.multiply(v, self.lr, out=tmp)
            p -= tmp


class Nesterov(Optimizer):
    """Nesterov momentum (PyTorch's ``SGD(nesterov=True)``): ``v = m v + g``,
    ``p -= lr (g + m v)``."""

    slots = ("v",)
    momentum = _Setting(**_DECAY)

    def __init__(self, lr: float = 0.01, momentum: float = 0.9):
        super().__init__(lr)
        self.momentum = momentum

    def update_one(self, param):
        xp = backend.get_array_module(param.data)
        for p, g, v, tmp in _blocks(self, (param.data, param.grad.data,
                                           self.state_for(param)["v"])):
            v *= self.momentum
            v += g
            xp.multiply(v, self.momentum, out=tmp)
            tmp += g
            tmp *= self.lr
            p -= tmp


class AdaGrad(Optimizer):
    """AdaGrad: ``h += g^2``, ``p -= lr g / (sqrt(h) + eps)`` (DeZero's defaults)."""

    slots = ("h",)
    eps = _Setting(**_RATE)

    def __init__(self, lr: float = 0.001, eps: float = 1e-8):
        super().__init__(lr)
        self.eps = eps

    def update_one(self, param):
        xp = backend.get_array_module(param.data)
        for p, g, h, tmp in _blocks(self, (param.data, param.grad.data,
                                           self.state_for(param)["h"])):
            xp.multiply(g, g, out=tmp)
            h += tmp
            xp.sqrt(h, out=tmp)
            tmp += self.eps
            xp.divide(g, tmp, out=tmp)
            tmp *= self.lr
            p -= tmp


class AdaDelta(Optimizer):
    """AdaDelta (Zeiler 2012), DeZero's defaults; ``lr`` scales the step (PyTorch, 1.0).

    ``msg = rho msg + (1 - rho) g^2``, ``dx = sqrt(msdx + eps) / sqrt(msg + eps) g``,
    ``msdx = rho msdx + (1 - rho) dx^2``, ``p -= lr dx``.
    """

    slots = ("msg", "msdx")
    rho = _Setting(low=0.0, high=1.0)
    eps = _Setting(**_RATE)

    def __init__(self, rho: float = 0.95, eps: float = 1e-6, lr: float = 1.0):
        super().__init__(lr)
        self.rho = rho
        self.eps = eps

    def update_one(self, param):
        s = self.state_for(param)
        xp = backend.get_array_module(param.data)
        rho, eps = self.rho, self.eps
        for p, g, msg, msdx, std, dx in _blocks(self, (param.data, param.grad.data, s["msg"],
                                                       s["msdx"]), 2):
            msg *= rho
            xp.multiply(g, g, out=std)
            std *= 1 - rho
            msg += std
            xp.add(msg, eps, out=std)
            xp.sqrt(std, out=std)
            xp.add(msdx, eps, out=dx)
            xp.sqrt(dx, out=dx)
            dx /= std
            dx *= g
            msdx *= rho
            xp.multiply(dx, dx, out=std)
            std *= 1 - rho
            msdx += std
            dx *= self.lr
            p -= dx


class RMSprop(Optimizer):
    """RMSprop (PyTorch's): ``s = alpha s + (1 - alpha) g^2``, ``p -= lr g / (sqrt(s) + eps)``.

    With ``momentum > 0``: ``b = momentum b + g / (sqrt(s) + eps)``, ``p -= lr b``.
    """

    slots: tuple = ("s",)
    alpha = _Setting(low=0.0, high=1.0)
    eps = _Setting(**_RATE)
    momentum = _Setting(**_DECAY)

    def __init__(self, lr: float = 0.01, alpha: float = 0.99, eps: float = 1e-8,
                 momentum: float = 0.0):
        super().__init__(lr)
        self.alpha = alpha
        self.eps = eps
        self.momentum = momentum
        if momentum:
            self.slots = ("s", "b")

    def update_one(self, param):
        st = self.state_for(param)
        xp = backend.get_array_module(param.data)
        b_state = (st["b"],) if self.momentum else ()
        for p, g, s, *b, tmp in _blocks(self, (param.data, param.grad.data, st["s"],
                                               *b_state)):
            s *= self.alpha
            xp.multiply(g, g, out=tmp)
            tmp *= 1 - self.alpha
            s += tmp
            xp.sqrt(s, out=tmp)
            tmp += self.eps
            xp.divide(g, tmp, out=tmp)
            if b:
                b[0] *= self.momentum
                b[0] += tmp
                xp.multiply(b[0], self.lr, out=tmp)
            else:
                tmp *= self.lr
            p -= tmp


class Adam(Optimizer):
    """Adam (Kingma & Ba), with PyTorch's exact formulas.

    ``m = beta1 m + (1 - beta1) g``, ``v = beta2 v + (1 - beta2) g^2``,
    ``p -= alpha / (1 - beta1^k) * m / (sqrt(v) / sqrt(1 - beta2^k) + eps)``, with ``k``
    the number of updates of that parameter.

    Args:
        alpha (float): learning rate (``lr=`` is accepted as an alias; ``.lr`` is alpha).
        beta1, beta2 (float): decay of the first and second moments (states ``m``, ``v``).
        eps (float): added to the corrected ``sqrt(v)``.
    """

    slots = ("m", "v")
    counts_steps = True
    beta1 = _Setting(**_DECAY)
    beta2 = _Setting(**_DECAY)
    eps = _Setting(**_RATE)

    def __init__(self, alpha: float = 0.001, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8, *, lr: float | None = None):
        super().__init__(alpha if lr is None else lr)
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps

    @property
    def alpha(self):
        return self.lr

    @alpha.setter
    def alpha(self, value):
        self.lr = value

    def update_one(self, param):
        s = self.state_for(param)
        s["step"] += 1
        k = s["step"]
        xp = backend.get_array_module(param.data)
        b1, b2 = self.beta1, self.beta2
        c2, step = math.sqrt(1 - b2 ** k), self.lr / (1 - b1 ** k)
        for p, g, m, v, tmp in _blocks(self, (param.data, param.grad.data, s["m"], s["v"])):
            xp.subtract(g, m, out=tmp)  # m += (1 - b1) (g - m), PyTorch's lerp
            tmp *= 1 - b1
            m += tmp
            v *= b2
            xp.multiply(g, g, out=tmp)
            tmp *= 1 - b2
            v += tmp
            xp.sqrt(v, out=tmp)  # the denominator
            tmp /= c2
            tmp += self.eps
            xp.divide(m, tmp, out=tmp)
            tmp *= step
            self._decay(p)  # AdamW's p *= 1 - lr wd (the step above does not depend on p)
            p -= tmp

    def _decay(self, p):
        pass


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): ``p *= 1 - lr wd`` first.

    Args:
        weight_decay (float): the decay rate (PyTorch's default 0.01); other arguments as
            in ``Adam``.
    """

    weight_decay = _Setting(**_RATE)

    def __init__(self, alpha: float = 0.001, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8, weight_decay: float = 0.01, *, lr: float | None = None):
        super().__init__(alpha, beta1, beta2, eps, lr=lr)
        self.weight_decay = weight_decay

    def _decay(self, p):
        p *= 1 - self.lr * self.weight_decay


# =============================================================================
# Hooks: called as f(params) on the parameters that have a gradient
# =============================================================================
# A hook replaces ``param.grad`` with a new Variable instead of changing its array in
# place: backprop may hand the same gradient Variable to several parameters (y = W1 + W2
# gives W1.grad is W2.grad), and an in-place change would hit all of them.
class WeightDecay:
    """L2 penalty through the gradient: ``g += rate * p`` (DeZero's hook).

    With ``SGD`` this equals adding ``rate / 2 * ||p||^2`` to the loss; with ``Adam`` it
    is *not* decoupled weight decay (use ``AdamW``).
    """

    rate = _Setting(**_RATE)

    def __init__(self, rate: float):
        self.rate = rate

    def __call__(self, params):
        for p in params:
            p.grad = Variable(p.grad.data + self.rate * p.data)


class ClipGrad:
    """Scale all gradients so their global L2 norm is at most ``max_norm``.

    As ``torch.nn.utils.clip_grad_norm_``: with ``total = sqrt(sum of ||g||^2)``, every
    gradient is multiplied by ``min(1, max_norm / (total + 1e-6))``. The scale is computed
    on the device, without copying the norm to the host.
    """

    max_norm = _Setting(low=0.0, low_open=True, inf=True)  # inf: no clipping

    def __init__(self, max_norm: float):
        self.max_norm = max_norm

    def __call__(self, params):
        if not params:
            return
        xp = backend.get_array_module(params[0].grad.data)
        total = 0.0
        for p in params:
            g = p.grad.data
            total = total + xp.vdot(g.ravel(), g.ravel()).real
        rate = xp.minimum(self.max_norm / (xp.sqrt(total) + 1e-6), 1.0)
        for p in params:
            g = p.grad.data
            p.grad = Variable(g * rate.astype(g.dtype))


class FreezeParam:
    """Do not update the parameters of the given layers (or Parameters): drop their grads.

    Args:
        *layers: Layers and/or Parameters to freeze.
    """

    def __init__(self, *layers):
        self.freeze_params = []
        for layer in layers:
            if isinstance(layer, Parameter):
                self.freeze_params.append(layer)
            else:
                self.freeze_params.extend(layer.params())

    def __call__(self, params):
        for p in self.freeze_params:
            p.grad = None


# =============================================================================
# Learning-rate schedules: call .step() once per epoch
# =============================================================================
class _Schedule:
    def get_lr(self, epoch: int) -> float:
        raise NotImplementedError

    def __init__(self, optimizer):
        self.optimizer = optimizer
        self.base_lr = optimizer.lr
        self.last_epoch = 0

    def step(self) -> float:
        """Advance one epoch and set ``optimizer.lr``; returns the new rate."""
        self.last_epoch += 1
        self.optimizer.lr = self.get_lr(self.last_epoch)
        return self.optimizer.lr

    def state_dict(self) -> dict:
        return {"base_lr": np.array(self.base_lr, np.float64),
                "last_epoch": np.array(self.last_epoch, np.int64)}

    def load_state_dict(self, d) -> None:
        self.base_lr = float(d["base_lr"])
        self.last_epoch = int(d["last_epoch"])
        self.optimizer.lr = self.get_lr(self.last_epoch)


class StepLR(_Schedule):
    """``lr = base_lr * gamma ** (epoch // step_size)`` (``torch.optim.lr_scheduler.StepLR``).

    >>> opt = SGD(lr=1.0)
    >>> sched = StepLR(opt, step_size=2, gamma=0.5)
    >>> [sched.step() for _ in range(4)]
    [1.0, 0.5, 0.5, 0.25]
    """

    def __init__(self, optimizer, step_size: int, gamma: float = 0.1):
        if isinstance(step_size, bool) or not isinstance(step_size, (int, np.integer)):
            raise TypeError(f"StepLR: step_size must be an int, got {type(step_size).__name__}")
        if step_size < 1:
            raise ValueError(f"StepLR: step_size must be at least 1, got {step_size}")
        self.gamma = utils.check_real("StepLR", "gamma", gamma, low=0.0)
        super().__init__(optimizer)
        self.step_size = step_size

    def get_lr(self, epoch):
        return self.base_lr * self.gamma ** (epoch // self.step_size)


class CosineLR(_Schedule):
    """Cosine annealing from ``base_lr`` to ``eta_min`` over ``t_max`` epochs, then held.

    ``lr = eta_min + (base_lr - eta_min) (1 + cos(pi epoch / t_max)) / 2`` (the closed
    form of ``torch.optim.lr_scheduler.CosineAnnealingLR``, without its restarts).

    >>> opt = SGD(lr=1.0)
    >>> sched = CosineLR(opt, t_max=2)
    >>> [round(sched.step(), 6) for _ in range(3)]
    [0.5, 0.0, 0.0]
    """

    def __init__(self, optimizer, t_max: int, eta_min: float = 0.0):
        if isinstance(t_max, bool) or not isinstance(t_max, (int, np.integer)):
            raise TypeError(f"CosineLR: t_max must be an int, got {type(t_max).__name__}")
        if t_max < 1:
            raise ValueError(f"CosineLR: t_max must be at least 1, got {t_max}")
        self.eta_min = utils.check_real("CosineLR", "eta_min", eta_min, low=0.0)
        super().__init__(optimizer)
        self.t_max = t_max

    def get_lr(self, epoch):
        e = min(epoch, self.t_max)
        return self.eta_min + (self.base_lr - self.eta_min) * (
            1 + math.cos(math.pi * e / self.t_max)) / 2


class _Params:
    """A minimal target for doctests: a fixed list of parameters."""

    def __init__(self, *params):
        self._params = params

    def params(self):
        return iter(self._params)
