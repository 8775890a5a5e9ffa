"""Optimizers, gradient hooks and learning-rate schedules (DeZero's ``dezero.optimizers``).

    model = MLP((100, 10))
    optimizer = optimizers.Adam().setup(model)
    ...
    model.cleargrads(); loss.backward(); optimizer.update()

Each update runs in place on ``param.data`` with array ops of the parameter's own backend
and dtype (hyper-parameters are Python floats, so float32 stays float32), and skips
parameters whose ``grad`` is None. The small NumPy parameters of a dtype are updated
together, on flat buffers per dtype (``optimizer_base._Flat``); each keeps its own
``param.data`` array, updated in place (a multi-node optimizer on a machine of several
ranks is the exception: ``mibun.distributed.sharded`` puts the parameters and the state
in one shared copy, each rank updating its share).

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

This module holds the update rules; the ``Optimizer`` base is in ``mibun.optimizer_base``,
the hooks and schedules in ``mibun.optimizer_hooks``, and every name is importable from here
(DeZero's ``dezero.optimizers.SGD``, ...).
"""
from __future__ import annotations

import math

from mibun import backend
from mibun.optimizer_base import _DECAY, _RATE, Optimizer, _blocks, _Params, _Setting  # noqa: F401
from mibun.optimizer_hooks import ClipGrad, CosineLR, FreezeParam, StepLR, WeightDecay

__all__ = [
    "SGD", "AdaDelta", "AdaGrad", "Adam", "AdamW", "ClipGrad", "CosineLR", "FreezeParam",
    "MomentumSGD", "Nesterov", "Optimizer", "RMSprop", "StepLR", "WeightDecay",
]


# =============================================================================
# Optimizers
# =============================================================================
class SGD(Optimizer):
    """Plain gradient descent: ``p -= lr * g``.

    >>> import mibun, numpy as np
    >>> p = mibun.Parameter(np.array([1.0, 2.0]))
    >>> p.grad = mibun.Variable(np.array([1.0, -1.0]))
    >>> opt = SGD(lr=0.5).setup(_Params(p))
    >>> opt.update(); p.data
    array([0.5, 2.5])
    """

    def __init__(self, lr: float = 0.01):
        super().__init__(lr)

    def update_arrays(self, data, grad, state, k):
        xp = backend.get_array_module(data)
        for p, g, tmp in _blocks(self, (data, grad)):
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

    def update_arrays(self, data, grad, state, k):
        xp = backend.get_array_module(data)
        for p, g, v, tmp in _blocks(self, (data, grad, *state)):
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

    def update_arrays(self, data, grad, state, k):
        xp = backend.get_array_module(data)
        for p, g, v, tmp in _blocks(self, (data, grad, *state)):
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

    def update_arrays(self, data, grad, state, k):
        xp = backend.get_array_module(data)
        for p, g, h, tmp in _blocks(self, (data, grad, *state)):
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

    def update_arrays(self, data, grad, state, k):
        xp = backend.get_array_module(data)
        rho, eps = self.rho, self.eps
        for p, g, msg, msdx, std, dx in _blocks(self, (data, grad, *state), 2):
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

    def update_arrays(self, data, grad, state, k):
        xp = backend.get_array_module(data)
        for p, g, s, *b, tmp in _blocks(self, (data, grad, *state)):  # state: s, and b if momentum
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

    def update_arrays(self, data, grad, state, k):
        xp = backend.get_array_module(data)
        b1, b2 = self.beta1, self.beta2
        c2, step = math.sqrt(1 - b2 ** k), self.lr / (1 - b1 ** k)
        for p, g, m, v, tmp in _blocks(self, (data, grad, *state)):
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
