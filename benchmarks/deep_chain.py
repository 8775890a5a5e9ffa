"""Backward time on long and wide graphs: growth must be near-linear.

* chain: y = tanh-free chain of n ops (x * 1.0001 repeated), n = 10k and 100k (no
  RecursionError: the engine is iterative);
* wide: the sum of n products ``x * i`` (n = 5k and 50k), which keeps n functions pending
  at once. DeZero re-sorts its pending list on every insert: 1.4 s and 104 s here (75x for
  10x the size).

Each time is the best of ``REPEAT`` runs, the two sizes taking turns: on the shared 2-core
machine single runs of the 50k graph swung from 0.74 to 1.02 s and the ratio from 9.5x to
21x, and the small size's best moved by 1.5x between processes.

Run:  python benchmarks/deep_chain.py
"""
import time

import numpy as np

import mibun


def chain(n):
    x = mibun.Variable(np.array(1.0))
    y = x
    for _ in range(n):
        y = y * 1.0001
    t0 = time.perf_counter()
    y.backward()
    return time.perf_counter() - t0, float(x.grad.data)


def wide(n):
    x = mibun.Variable(np.array(1.0))
    y = x * 0
    for i in range(n):
        y = y + x * i
    t0 = time.perf_counter()
    y.backward()
    dt = time.perf_counter() - t0
    assert float(x.grad.data) == n * (n - 1) / 2
    return dt, None


REPEAT = 5


def best(f, small, large):
    """The least times of f(small) and f(large) over REPEAT turns, and f(large)'s result
    (f returns its time first)."""
    times, out = [[], []], None
    for _ in range(REPEAT):
        times[0].append(f(small)[0])
        t, out = f(large)
        times[1].append(t)
    return min(times[0]), min(times[1]), out


def main():
    t1, t2, g = best(chain, 10_000, 100_000)
    assert abs(g - 1.0001 ** 100_000) < 1e-6 * g
    print(f"chain backward: 10k ops {t1 * 1e3:8.1f} ms, 100k ops {t2 * 1e3:8.1f} ms "
          f"-> {t2 / t1:.1f}x for 10x the ops")
    w1, w2, _ = best(wide, 5_000, 50_000)
    print(f"wide backward:  5k      {w1 * 1e3:8.1f} ms, 50k     {w2 * 1e3:8.1f} ms "
          f"-> {w2 / w1:.1f}x for 10x the size (DeZero: 1.4 s and 104 s, 75x)")


if __name__ == "__main__":
    main()
