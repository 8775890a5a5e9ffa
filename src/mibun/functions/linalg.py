"""Linear algebra: matmul (2-D and batched), linear."""
from __future__ import annotations

from mibun import backend
from mibun.core import Function, as_variable
from mibun.functions.array import sum_to, transpose

__all__ = ["matmul"]


def _mT(x):
    """Swap the last two axes (a batched transpose)."""
    if x.ndim < 2:
        return x
    axes = list(range(x.ndim))
    axes[-1], axes[-2] = axes[-2], axes[-1]
    return transpose(x, axes)


class MatMul(Function):
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


def _matmul_vec_backward(gy, x, W, f):
    from mibun.functions.array import reshape
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
        Variable: ``(..., N, M)``.
    """
    x, W = as_variable(x), as_variable(W)
    if x.ndim == 0 or W.ndim == 0:
        raise ValueError("F.matmul: operands must have at least one dimension\n"
                         f"  x: shape={x.shape} dtype={x.dtype}\n"
                         f"  W: shape={W.shape} dtype={W.dtype}")
    kx = x.shape[-1]
    kw = W.shape[0] if W.ndim == 1 else W.shape[-2]
    if kx != kw:
        wi = "W.shape[0]" if W.ndim == 1 else "W.shape[-2]"
        raise ValueError(f"F.matmul: inner dimensions differ: x.shape[-1]={kx}, {wi}={kw}\n"
                         f"  x: shape={x.shape} dtype={x.dtype}\n"
                         f"  W: shape={W.shape} dtype={W.dtype}")
    return MatMul()(x, W)
