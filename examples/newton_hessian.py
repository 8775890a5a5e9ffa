"""Newton's method in n dimensions with mibun.func.hessian: minimise the Rosenbrock function.

Each step solves H(x) dx = -grad f(x) with the exact Hessian (forward-over-reverse) and
converges quadratically near the minimum at (1, ..., 1).

Run:  python examples/newton_hessian.py [n]
"""
import sys

import numpy as np

import mibun.functions as F
from mibun import func


def rosenbrock(x):
    return F.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


def newton(f, x, steps=50, tol=1e-12):
    grad_f, hess_f = func.grad(f), func.hessian(f)
    for i in range(steps):
        g = grad_f(x).data
        if np.linalg.norm(g) < tol:
            break
        H = hess_f(x).data
        x = x - np.linalg.solve(H, g)
        print(f"step {i + 1:2d}  f = {float(f(x).data):.3e}  |grad| = {np.linalg.norm(g):.3e}")
    return x


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    x = newton(rosenbrock, np.full(n, -0.5) + 0.1 * np.arange(n))
    print("minimum at", np.round(x, 10))
    assert np.allclose(x, 1.0), "Newton's method did not reach (1, ..., 1)"
