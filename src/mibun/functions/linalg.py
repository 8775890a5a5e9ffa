"""Linear algebra: matmul (2-D and batched), linear."""
from __future__ import annotations

import numpy as np  # noqa: F401  (doctests)

from mibun import autograd, backend
from mibun.core import Function, as_operand
from mibun.functions import _helpers
from mibun.functions.arithmetic import _sum_to
from mibun.functions.array import reshape, sum_to, transpose

__all__ = [
    "Linear",
    "MatMul",
    "linear",
    "matmul",
]


def _mT(x):
    """Swap the last two axes (a batched transpose)."""
    if x.ndim < 2:
        return x
    axes = list(range(x.ndim))
    axes[-1], axes[-2] = axes[-2], axes[-1]
    return transpose(x, axes)


class MatMul(Function):
    retain_inputs = "all"
    batched_jvp = True

    def forward(self, x, W):
        xp = backend.get_array_module(x)
        return xp.matmul(x, W)

    def backward(self, gy):
        x, W = self.inputs
        gx = gW = None
        if x.ndim == 1 or W.ndim == 1:
            return _matmul_vec_backward(gy, x, W, self)
        if self.needs_grad(0):
            gx = sum_to(matmul(gy, _mT(W)), x.shape)
        if self.needs_grad(1):
            gW = sum_to(matmul(_mT(x), gy), W.shape)
        return gx, gW

    def jvp(self, tx, tW):
        x, W = self.inputs
        t0 = None if tx is None else _matmul_lead(tx, W, x.ndim, W.ndim)
        t1 = None if tW is None else _matmul_lead(x, tW, x.ndim, W.ndim)
        return t1 if t0 is None else t0 if t1 is None else t0 + t1


def _matmul_lead(a, b, na, nb):
    """``a @ b`` in a JVP rule, where one operand is a tangent that may have batch axes in
    front of its primal's ``na`` / ``nb`` axes (mibun.forward_mode): they stay in front."""
    lead = a.ndim - na + b.ndim - nb
    if not lead:
        return matmul(a, b)
    a_is_tangent = a.ndim > na
    # As NumPy, a 1-D operand becomes a matrix and its added axis is dropped from the
    # result; the tangent then gets matmul's batch axes behind its own.
    if na == 1:
        a = reshape(a, a.shape[:-1] + (1, a.shape[-1]))
    if nb == 1:
        b = reshape(b, b.shape + (1,))
    n = max(na, nb, 2)
    if a_is_tangent:
        a = _helpers.lift(a, lead, n)
    else:
        b = _helpers.lift(b, lead, n)
    y = matmul(a, b)
    shape = y.shape[:-2] + y.shape[-1:] if na == 1 else y.shape
    return reshape(y, shape[:-1] if nb == 1 else shape)


def _matmul_vec_backward(gy, x, W, f):
    # Promote 1-D operands to matrices as NumPy does, then reuse the 2-D rule.
    x2 = reshape(x, (1, -1)) if x.ndim == 1 else x
    W2 = reshape(W, (-1, 1)) if W.ndim == 1 else W
    gy2 = gy
    if x.ndim == 1 and W.ndim == 1:
        gy2 = reshape(gy, (1, 1))
    elif x.ndim == 1:
        gy2 = reshape(gy, gy.shape[:-1] + (1, gy.shape[-1]))
    else:
        gy2 = reshape(gy, gy.shape + (1,))
    gx = sum_to(matmul(gy2, _mT(W2)), x2.shape) if f.needs_grad(0) else None
    gW = sum_to(matmul(_mT(x2), gy2), W2.shape) if f.needs_grad(1) else None
    gx = None if gx is None else reshape(gx, x.shape)
    gW = None if gW is None else reshape(gW, W.shape)
    return gx, gW


def matmul(x, W):
    """Matrix product ``x @ W`` with NumPy's rules (1-D, 2-D and batched N-D).

    Args:
        x (Variable or ndarray): ``(..., N, K)`` (or ``(K,)``).
        W (Variable or ndarray): ``(..., K, M)`` (or ``(K,)``).
    Returns:
        Variable: ``(..., N, M)``, NumPy's result dtype.

    >>> matmul(np.array([[1.0, 2.0]]), np.array([[3.0], [4.0]]))
    variable([[11.]])
    """
    x, W = as_operand(x), as_operand(W)
    if x.ndim == 0 or W.ndim == 0:
        raise ValueError("F.matmul: operands must have at least one dimension"
                         + _helpers.describe_all(x=x, W=W))
    kx = x.shape[-1]
    kw = W.shape[0] if W.ndim == 1 else W.shape[-2]
    if kx != kw:
        wi = "W.shape[0]" if W.ndim == 1 else "W.shape[-2]"
        raise ValueError(f"F.matmul: inner dimensions differ: x.shape[-1]={kx}, {wi}={kw}"
                         + _helpers.describe_all(x=x, W=W))
    if x.ndim > 2 or W.ndim > 2:
        bx, bw = x.shape[:-2], W.shape[:-2]
        if any(a != b and a != 1 and b != 1 for a, b in zip(reversed(bx), reversed(bw))):
            raise ValueError(f"F.matmul: batch dimensions {bx} and {bw} do not broadcast"
                             + _helpers.describe_all(x=x, W=W))
    return MatMul()(x, W)


class Linear(Function):
    """``x @ W + b`` as one node: one output buffer, no matmul temporary kept alive."""

    retain_inputs = (0, 1)  # b's data is not needed, only its shape
    batched_jvp = True

    def forward(self, x, W, b=None):
        xp = backend.get_array_module(x)
        y = xp.matmul(x, W)
        if b is not None:
            self.b_shape = b.shape
            y += b
        return y

    def backward(self, gy):
        # operators, not F.matmul / F.sum_to: on arrays they are NumPy's own calls, with no
        # argument checks to repeat (benchmarks/rl_step.py)
        x, W = self.inputs[0], self.inputs[1]
        gx = gy @ W.T if self.needs_grad(0) else None  # skipped for a data batch
        gW = None
        if self.needs_grad(1):
            if x.ndim != 2:  # (..., I) inputs: fold the leading axes into one batch axis
                x, gy = reshape(x, (-1, x.shape[-1])), reshape(gy, (-1, gy.shape[-1]))
            # straight into W's slot of a gradient arena, if it has one (mibun.distributed)
            out = autograd.arena_out(self, 1, gy.dtype) if x.dtype == gy.dtype else None
            gW = x.T @ gy if out is None else backend.get_array_module(gy).matmul(x.T, gy,
                                                                               out=out)
        if len(self.inputs) == 2:
            return gx, gW
        out = autograd.arena_out(self, 2, gy.dtype) if gy.ndim == 2 else None  # b's, alike
        if not self.needs_grad(2) or out is None or out.shape != gy.shape[1:]:
            return gx, gW, _sum_to(gy, self.b_shape) if self.needs_grad(2) else None
        return gx, gW, backend.get_array_module(gy).sum(gy, axis=0, out=out)

    def jvp(self, tx, tW, tb=None):
        x, W = self.inputs[0], self.inputs[1]
        if tb is not None:  # b beside the output's rank, behind batch axes in front
            tb = _helpers.lift(tb, tb.ndim - 1, x.ndim)
        ts = [t for t in (None if tx is None else _matmul_lead(tx, W, x.ndim, 2),
                          None if tW is None else _matmul_lead(x, tW, x.ndim, 2), tb)
              if t is not None]
        total = ts[0]
        for t in ts[1:]:
            total = total + t
        return total


def _check_linear(x, W, b):
    def describe():  # formatted only for an error
        return _helpers.describe_all(x=x, W=W, **({} if b is None else {"b": b}))

    if W.ndim != 2 or x.ndim < 1:
        raise ValueError("F.linear: W must be 2-D (in_size, out_size) and x at least 1-D"
                         + describe())
    if x.shape[-1] != W.shape[0]:
        raise ValueError(f"F.linear: inner dimensions differ: x.shape[-1]={x.shape[-1]}, "
                         f"W.shape[0]={W.shape[0]}" + describe())
    if b is not None and b.shape not in ((W.shape[1],), (1, W.shape[1]), ()):
        raise ValueError(f"F.linear: b must have shape ({W.shape[1]},), got "
                         f"{tuple(b.shape)}" + describe())


def linear(x, W, b=None):
    """Affine map ``y = x @ W + b``, fused into one op.

    Args:
        x (Variable or ndarray): ``(N, I)`` (or ``(..., I)``). A raw ndarray is a constant:
            its gradient is not computed.
        W (Variable): ``(I, O)``.
        b (Variable or None): ``(O,)``.
    Returns:
        Variable: ``(N, O)`` (or ``(..., O)``).

    >>> linear(np.ones((2, 3)), np.ones((3, 4)), np.zeros(4)).shape
    (2, 4)
    """
    x_, W_ = as_operand(x), as_operand(W)
    b_ = None if b is None else as_operand(b)
    _check_linear(x_, W_, b_)
    if b is None:
        return Linear()(x, W)
    return Linear()(x, W, b)
