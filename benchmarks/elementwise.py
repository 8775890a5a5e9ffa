"""A ten-op elementwise chain on 10^6 values, forward + backward, float32 and float64:
mibun vs a hand-written NumPy forward/backward of the same math (the limit) vs PyTorch CPU.

Run:  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/elementwise.py
"""
import os

# One thread for NumPy too (OpenBLAS would use every core, PyTorch is set to one below);
# set before NumPy loads, so OpenBLAS reads it.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
from _timing import optional_torch, timeit  # benchmarks/_timing.py (this folder is on sys.path)

import mibun
import mibun.functions as F

N = 10**6
REPEAT = 15


def chain(x, m):
    """The same ten ops for mibun (m = F) and torch (m = torch)."""
    a = m.sin(x)
    b = a * 1.5
    c = m.tanh(b)
    d = c + 0.5
    e = m.exp(d)
    f = e * d
    g = m.sigmoid(f)
    h = g - 0.25
    i = m.cos(h)
    return i / 2.0


def step_mibun(x0):
    x = mibun.Variable(x0)
    y = chain(x, F)
    y.backward()
    return y.data, x.grad.data


def step_numpy(x):
    a = np.sin(x)
    b = a * 1.5
    c = np.tanh(b)
    d = c + 0.5
    e = np.exp(d)
    f = e * d
    g = np.tanh(f * 0.5) * 0.5 + 0.5
    h = g - 0.25
    i = np.cos(h)
    j = i / 2.0
    gi = np.full_like(j, 0.5)
    gh = gi * -np.sin(h)
    gf = gh * g * (1 - g)
    gd = gf * e
    gd += gf * d * e
    gb = gd * (1 - c * c)
    ga = gb * 1.5
    gx = ga * np.cos(x)
    return j, gx


def step_numpy_fused(x):
    """The same forward and backward written as a NumPy expert would: in place where the
    math allows, a temporary reused, one fewer array per op (what the issue's target is
    measured against)."""
    a = np.sin(x)
    c = np.tanh(a * 1.5)
    d = c + 0.5
    e = np.exp(d)
    f = e * d
    g = np.multiply(f, 0.5, out=f)
    np.tanh(g, out=g)
    g *= 0.5
    g += 0.5
    h = g - 0.25
    j = np.cos(h)
    j /= 2.0
    gh = np.sin(h, out=h)  # d/dh of cos(h) / 2 is -sin(h) / 2
    gh *= -0.5
    gh *= g
    np.subtract(1, g, out=g)
    gh *= g  # gf
    d += 1
    d *= e
    gh *= d  # gd = gf (e + d e)
    np.multiply(c, c, out=c)
    np.subtract(1, c, out=c)
    gh *= c
    gh *= 1.5
    np.cos(x, out=a)
    gh *= a
    return j, gh


def step_torch(x0):
    import torch
    x = torch.from_numpy(x0).requires_grad_(True)
    y = chain(x, torch)
    y.backward(torch.ones_like(y))
    return y.detach().numpy(), x.grad.numpy()


def main():
    torch = optional_torch()
    for dtype in (np.float32, np.float64):
        x = np.random.default_rng(0).uniform(-2, 2, N).astype(dtype)
        ym, gm = step_mibun(x)
        _, gn = step_numpy(x)
        assert ym.dtype == dtype and gm.dtype == dtype, "dtype not preserved"
        tol = 1e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(gm, gn, rtol=tol, atol=tol)
        _, gf = step_numpy_fused(x)
        np.testing.assert_allclose(gf, gn, rtol=tol, atol=tol)
        fns = {"mibun": lambda: step_mibun(x), "numpy": lambda: step_numpy(x),
               "fused": lambda: step_numpy_fused(x)}
        if torch is not None:
            fns["torch"] = lambda: step_torch(x)
        # allocator- and memory-bound: the median of alternating blocks (benchmarks/_timing)
        t = {k: med for k, (_, med) in timeit(fns, REPEAT * 2).items()}
        line = (f"{np.dtype(dtype).name} (median ms): mibun {t['mibun']:6.1f}, hand NumPy "
                f"{t['numpy']:6.1f} -> {t['mibun'] / t['numpy']:.2f}x; fused NumPy "
                f"{t['fused']:6.1f} -> {t['mibun'] / t['fused']:.2f}x")
        if torch is not None:
            line += f"; PyTorch {t['torch']:6.1f} -> mibun/torch {t['mibun'] / t['torch']:.2f}x"
        print(line)


if __name__ == "__main__":
    main()
