"""Normalisation: batch_norm (training and inference statistics) and layer_norm.

Both compute ``y = gamma * (x - mean) / sqrt(var + eps) + beta`` in one fused forward.
The backward is written in mibun ops on ``x``, ``gamma`` and ``gy``, with the mean and
variance recomputed *from x*, so under ``create_graph=True`` the second derivative includes
how the batch statistics move with ``x``. (DeZero's backward reused the forward's
``1 / std`` as a constant, which gets the second derivative wrong.)
"""
from __future__ import annotations

import numpy as np  # noqa: F401  (the doctests use np)

from mibun import backend
from mibun.config import Config
from mibun.core import Function, as_operand
from mibun.functions import _helpers
from mibun.functions.array import reshape
from mibun.functions.reduction import mean
from mibun.functions.reduction import sum as fsum

__all__ = ["BatchNorm", "LayerNorm", "batch_norm", "batch_nrom", "layer_norm"]


class _Normalize(Function):
    """Normalise over ``axes``; gamma/beta broadcast as ``pshape``, summed over ``p_axes``.

    Subclasses set ``axes``, ``p_axes`` and ``pshape`` in ``forward`` before calling
    ``_normalize``.
    """

    retain_inputs = (0, 1)  # x and gamma (beta's gradient needs only gy)

    def _normalize(self, x, gamma, beta):
        xp = backend.get_array_module(x)
        mu = x.mean(axis=self.axes, keepdims=True)
        xc = x - mu
        var = (xc * xc).mean(axis=self.axes, keepdims=True)
        inv_std = var + self.eps  # a Python float: float32 stays float32
        xp.sqrt(inv_std, out=inv_std)
        xp.reciprocal(inv_std, out=inv_std)
        self.mu, self.inv_std = mu, inv_std
        xc *= inv_std * gamma.reshape(self.pshape)
        xc += beta.reshape(self.pshape)
        return xc, mu, var

    def jvp(self, tx, tgamma, tbeta):
        # d xhat = inv_std (t - mean(t) - xhat mean(xhat t)), with the statistics recomputed
        # from x in the graph (as _backward_graph), so the tangent is differentiable again
        x, gamma = self.inputs[0], self.inputs[1]
        axes = self.axes
        xc = x - mean(x, axes, keepdims=True)
        inv_std = (mean(xc * xc, axes, keepdims=True) + self.eps) ** -0.5
        xhat = xc * inv_std
        terms = []
        if tx is not None:
            dxhat = inv_std * (tx - mean(tx, axes, keepdims=True)
                               - xhat * mean(xhat * tx, axes, keepdims=True))
            terms.append(dxhat * reshape(gamma, self.pshape))
        if tgamma is not None:
            terms.append(xhat * reshape(tgamma, self.pshape))
        if tbeta is not None:
            terms.append(reshape(tbeta, self.pshape))
        total = terms[0]
        for t in terms[1:]:
            total = total + t
        return total

    def backward(self, gy):
        x, gamma = self.inputs[0], self.inputs[1]
        axes = self.axes
        mu = mean(x, axes, keepdims=True)
        xc = x - mu
        inv_std = (mean(xc * xc, axes, keepdims=True) + self.eps) ** -0.5
        xhat = xc * inv_std
        gx = ggamma = gbeta = None
        if self.needs_grad(1):
            ggamma = fsum(gy * xhat, self.p_axes) if self.p_axes else gy * xhat
        if self.needs_grad(2):
            gbeta = fsum(gy, self.p_axes) if self.p_axes else gy
        if self.needs_grad(0):
            g = gy * reshape(gamma, self.pshape)
            gx = inv_std * (g - mean(g, axes, keepdims=True)
                            - xhat * mean(g * xhat, axes, keepdims=True))
        return gx, ggamma, gbeta


def _sum(a, axes):
    return a.sum(axis=axes) if axes else a


class BatchNorm(_Normalize):
    def __init__(self, mean, var, decay, eps):
        self.avg_mean = mean
        self.avg_var = var
        self.decay = decay
        self.eps = eps

    def forward(self, x, gamma, beta):
        self.axes = (0,) + tuple(range(2, x.ndim))
        self.p_axes = self.axes
        self.pshape = (1, -1) + (1,) * (x.ndim - 2)
        y, mu, var = self._normalize(x, gamma, beta)
        if self.avg_mean is not None:
            # Running statistics, updated in place; the variance is the unbiased one.
            m = x.size // x.shape[1]
            d = self.decay
            self.avg_mean *= d
            self.avg_mean += (1 - d) * mu.reshape(-1)
            self.avg_var *= d
            self.avg_var += (1 - d) * m / max(m - 1, 1) * var.reshape(-1)
        return y


class LayerNorm(_Normalize):
    def __init__(self, eps):
        self.eps = eps

    def forward(self, x, gamma, beta):
        self.axes = (x.ndim - 1,)
        self.p_axes = tuple(range(x.ndim - 1))
        self.pshape = (-1,)
        y, _, _ = self._normalize(x, gamma, beta)
        return y


def _check_params(op, x, shape, **params):
    for name, p in params.items():
        if tuple(p.shape) != shape:
            raise ValueError(f"{op}: {name} must have shape {shape}, got {tuple(p.shape)}"
                             + _helpers.describe_all(x=x, **params))


def batch_norm(x, gamma, beta, mean, var, decay=0.9, eps=2e-5):
    """Batch normalisation over every axis but the channel axis 1.

    In training (``Config.train``): ``y = gamma * (x - mu_B) / sqrt(var_B + eps) + beta``
    with the batch mean and (biased) variance, and the running statistics are updated in
    place: ``mean = decay * mean + (1 - decay) * mu_B``, ``var`` likewise with the
    unbiased batch variance (PyTorch's ``momentum = 1 - decay``). In ``test_mode()`` the
    running ``mean`` and ``var`` are used instead and not changed.

    Args:
        x (Variable or ndarray): ``(N, C)`` or ``(N, C, H, W)`` (any ``(N, C, ...)``), float.
        gamma (Variable or ndarray): scale, ``(C,)``.
        beta (Variable or ndarray): shift, ``(C,)``.
        mean (ndarray): running mean ``(C,)``, updated in place in training.
        var (ndarray): running variance ``(C,)``, updated in place in training.
        decay (float): running-average decay.
        eps (float): added to the variance.
    Returns:
        Variable: same shape and dtype as ``x``.

    >>> x = np.array([[1.0, 2.0], [3.0, 6.0]])
    >>> mean, var = np.zeros(2), np.ones(2)
    >>> batch_norm(x, np.ones(2), np.zeros(2), mean, var, eps=0.0)
    variable([[-1. -1.]
              [ 1.  1.]])
    >>> mean
    array([0.2, 0.4])
    """
    op = "F.batch_norm"
    # negative or NaN: sqrt(var + eps) is NaN for small variances
    eps = _helpers.check_real(op, "eps", eps, low=0.0)
    xd = _helpers.as_data(x, op)
    if xd.ndim < 2:
        raise ValueError(f"{op}: x must be (N, C) or (N, C, ...), got {xd.ndim}-D"
                         + _helpers.describe_all(x=xd))
    if xd.dtype.kind != "f":
        raise TypeError(f"{op}: x must be a floating-point array, got dtype={xd.dtype}"
                        + _helpers.describe_all(x=xd))
    mean = _helpers.as_data(mean, op, "mean")
    var = _helpers.as_data(var, op, "var")
    C = xd.shape[1]
    _check_params(op, xd, (C,), gamma=_helpers.as_data(gamma, op, "gamma"),
                  beta=_helpers.as_data(beta, op, "beta"), mean=mean, var=var)
    if Config.train:
        return BatchNorm(mean, var, decay, eps)(x, gamma, beta)
    # Inference: an affine map with constant statistics, composed from mibun ops.
    xp = backend.get_array_module(xd)
    shape = (1, C) + (1,) * (xd.ndim - 2)
    inv_std = 1 / xp.sqrt(xp.asarray(var, dtype=xd.dtype) + eps)
    mu = xp.asarray(mean, dtype=xd.dtype).reshape(shape)
    scale = reshape(gamma, shape) * inv_std.reshape(shape).astype(xd.dtype)
    return (as_operand(x) - mu) * scale + reshape(beta, shape)


batch_nrom = batch_norm  # DeZero's misspelt name


def layer_norm(x, gamma, beta, eps=1e-5):
    """Layer normalisation over the last axis.

    As ``torch.nn.functional.layer_norm`` with ``normalized_shape = (D,)``:
    ``y = gamma * (x - mu) / sqrt(var + eps) + beta`` with the mean and biased variance
    of each row.

    Args:
        x (Variable or ndarray): ``(..., D)``, float.
        gamma (Variable or ndarray): scale, ``(D,)``.
        beta (Variable or ndarray): shift, ``(D,)``.
        eps (float): added to the variance.
    Returns:
        Variable: same shape and dtype as ``x``.

    >>> layer_norm(np.array([[1.0, 3.0]]), np.ones(2), np.zeros(2), eps=0.0)
    variable([[-1.  1.]])
    """
    op = "F.layer_norm"
    eps = _helpers.check_real(op, "eps", eps, low=0.0)
    xd = _helpers.as_data(x, op)
    if xd.ndim < 1:
        raise ValueError(f"{op}: x must have at least one axis" + _helpers.describe_all(x=xd))
    if xd.dtype.kind != "f":
        raise TypeError(f"{op}: x must be a floating-point array, got dtype={xd.dtype}"
                        + _helpers.describe_all(x=xd))
    _check_params(op, xd, (xd.shape[-1],), gamma=_helpers.as_data(gamma, op, "gamma"),
                  beta=_helpers.as_data(beta, op, "beta"))
    return LayerNorm(eps)(x, gamma, beta)
