"""A ten-op elementwise chain on 10^6 values, forward + backward, float32 and float64:
mibun vs a hand-written NumPy forward/backward of the same math (the limit) vs PyTorch CPU.

Run:  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/elementwise.py
"""
import time

import numpy as np

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


def step_torch(x0):
    import torch
    x = torch.from_numpy(x0).requires_grad_(True)
    y = chain(x, torch)
    y.backward(torch.ones_like(y))
    return y.detach().numpy(), x.grad.numpy()


def best(fn, x):
    fn(x)
    ts = []
    for _ in range(REPEAT):
        t0 = time.perf_counter()
        fn(x)
        ts.append(time.perf_counter() - t0)
    return min(ts)


def main():
    try:
        import torch
        torch.set_num_threads(1)
    except ImportError:
        torch = None
    for dtype in (np.float32, np.float64):
        x = np.random.default_rng(0).uniform(-2, 2, N).astype(dtype)
        ym, gm = step_mibun(x)
        _, gn = step_numpy(x)
        assert ym.dtype == dtype and gm.dtype == dtype, "dtype not preserved"
        tol = 1e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(gm, gn, rtol=tol, atol=tol)
        t_m, t_n = best(step_mibun, x), best(step_numpy, x)
        line = (f"{np.dtype(dtype).name}: mibun {t_m * 1e3:6.1f} ms, hand NumPy {t_n * 1e3:6.1f} ms"
                f" -> {t_m / t_n:.2f}x")
        if torch is not None:
            t_t = best(step_torch, x)
            line += f"; PyTorch {t_t * 1e3:6.1f} ms -> mibun/torch {t_m / t_t:.2f}x"
        print(line)


if __name__ == "__main__":
    main()
