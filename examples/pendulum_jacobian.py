"""The Jacobian of one step of a pendulum integrator, by forward mode (mibun.func.jacfwd).

State s = (theta, omega); one step of the semi-implicit (symplectic) Euler method:
    omega' = omega - dt * g / l * sin(theta)
    theta' = theta + dt * omega'
Its Jacobian has determinant 1 (the map preserves phase-space area), and the Jacobian of
n steps, the product of the one-step Jacobians, shows how a small error in the initial
state grows.

Run:  python examples/pendulum_jacobian.py
"""
import numpy as np

import mibun.functions as F
from mibun import func

DT, G, LENGTH = 0.05, 9.81, 1.0


def step(s):
    theta, omega = s[0], s[1]
    omega = omega - DT * G / LENGTH * F.sin(theta)
    theta = theta + DT * omega
    return F.stack([theta, omega])


def steps(s, n=40):
    for _ in range(n):
        s = step(s)
    return s


s0 = np.array([1.0, 0.0])
J = func.jacfwd(step)(s0).data
print("one-step Jacobian:\n", J)
k = DT * G / LENGTH * np.cos(s0[0])
expected = np.array([[1 - DT * k, DT], [-k, 1.0]])
assert np.allclose(J, expected, rtol=1e-12)
print("det =", np.linalg.det(J))  # 1: symplectic

Jn = func.jacfwd(steps)(s0).data
prod, s = np.eye(2), s0
for _ in range(40):
    prod = func.jacfwd(step)(s).data @ prod
    s = step(s).data
print("40-step Jacobian:\n", Jn)
assert np.allclose(Jn, prod, rtol=1e-10)
assert np.allclose(Jn, func.jacrev(steps)(s0).data, rtol=1e-10)
print("det =", np.linalg.det(Jn))
