"""Peak memory of a 100-op chain (sin and scale alternating) on 10^6 float64 values,
forward + backward: mibun vs a hand-written NumPy forward/backward that saves only the sin
inputs (the minimum any reverse mode must keep). Traced by tracemalloc (NumPy reports its
buffers to it). DeZero keeps every input and peaks at 1.9x; the target is <= 1.2x.

Run:  python benchmarks/memory.py
"""
import tracemalloc

import numpy as np

import mibun
import mibun.functions as F

N = 10**6
N_OPS = 100
SCALE = 0.9


def by_hand(x0):
    saved = []
    x = x0
    for _ in range(N_OPS // 2):
        saved.append(x)
        x = np.sin(x)
        x = x * SCALE
    gx = np.ones_like(x)
    for xs in reversed(saved):
        gx = gx * SCALE
        gx = gx * np.cos(xs)
    return gx


def with_mibun(x0):
    x = mibun.Variable(x0)
    y = x
    for _ in range(N_OPS // 2):
        y = F.sin(y)
        y = y * SCALE
    y.backward()
    return x.grad.data


def peak(fn, x0):
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    out = fn(x0)
    p = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return p, out


def main():
    x0 = np.random.default_rng(0).uniform(-1, 1, N)
    p_hand, g_hand = peak(by_hand, x0)
    p_mibun, g_mibun = peak(with_mibun, x0)
    np.testing.assert_allclose(g_mibun, g_hand, rtol=1e-12)
    print(f"hand-written NumPy: {p_hand / 2**20:8.1f} MiB peak")
    print(f"mibun:              {p_mibun / 2**20:8.1f} MiB peak")
    print(f"ratio mibun/hand:   {p_mibun / p_hand:.2f}x (target <= 1.2x; DeZero 1.9x)")


if __name__ == "__main__":
    main()
