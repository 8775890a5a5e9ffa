"""What runs around an optimizer's update: gradient hooks (``add_hook``: ``WeightDecay``,
``ClipGrad``, ``FreezeParam``) and learning-rate schedules (``StepLR``, ``CosineLR``).
Re-exported by ``mibun.optimizers``."""
from __future__ import annotations

import math

import numpy as np

from mibun import backend, utils
from mibun.core import Parameter, Variable
from mibun.optimizer_base import _RATE, _Setting


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

    >>> from mibun.optimizers import SGD
    >>> opt = SGD(lr=1.0)
    >>> sched = StepLR(opt, step_size=2, gamma=0.5)
    >>> [sched.step() for _ in range(4)]
    [1.0, 0.5, 0.5, 0.25]
    """

    def __init__(self, optimizer, step_size: int, gamma: float = 0.1):
        step_size = utils.check_int("StepLR", "step_size", step_size)
        self.gamma = utils.check_real("StepLR", "gamma", gamma, low=0.0)
        super().__init__(optimizer)
        self.step_size = step_size

    def get_lr(self, epoch):
        return self.base_lr * self.gamma ** (epoch // self.step_size)


class CosineLR(_Schedule):
    """Cosine annealing from ``base_lr`` to ``eta_min`` over ``t_max`` epochs, then held.

    ``lr = eta_min + (base_lr - eta_min) (1 + cos(pi epoch / t_max)) / 2`` (the closed
    form of ``torch.optim.lr_scheduler.CosineAnnealingLR``, without its restarts).

    >>> from mibun.optimizers import SGD
    >>> opt = SGD(lr=1.0)
    >>> sched = CosineLR(opt, t_max=2)
    >>> [round(sched.step(), 6) for _ in range(3)]
    [0.5, 0.0, 0.0]
    """

    def __init__(self, optimizer, t_max: int, eta_min: float = 0.0):
        t_max = utils.check_int("CosineLR", "t_max", t_max)
        self.eta_min = utils.check_real("CosineLR", "eta_min", eta_min, low=0.0)
        super().__init__(optimizer)
        self.t_max = t_max

    def get_lr(self, epoch):
        e = min(epoch, self.t_max)
        return self.eta_min + (self.base_lr - self.eta_min) * (
            1 + math.cos(math.pi * e / self.t_max)) / 2
