"""Functional transforms: mibun.func beside torch.func, one thread, float64.

* jvp of the 1000-op chain of overhead.py (tanh and multiply-by-constant on a 0-d value)
  against mibun's forward alone, and against torch.func.jvp;
* jacfwd and jacrev of a tall function R^4 -> R^2000 and of a wide one R^2000 -> R^4;
* hessian of a 100-parameter function.

Every mibun transform is timed in grad mode (the default, as the user calls it) and under
``no_grad()`` (no graph kept; the values are the same), torch.func as it is called.

Run:  python benchmarks/func.py   (unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE first)
"""
import argparse
import os
import sys

# One thread for NumPy too (OpenBLAS would use every core, PyTorch is set to one below);
# set before NumPy loads, so OpenBLAS reads it.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _timing import timeit

import mibun
import mibun.functions as F
from mibun import func

N_OPS = 1000


def chain(x):
    y = x
    for _ in range(N_OPS // 2):
        y = F.tanh(y)
        y = y * 1.01
    return y


def torch_chain(x):
    import torch
    y = x
    for _ in range(N_OPS // 2):
        y = torch.tanh(y)
        y = y * 1.01
    return y


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=10)
    args = ap.parse_args()
    import torch
    from torch import func as tfunc
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    rows = []

    def row(name, fns, against):
        t = timeit(fns, args.repeat)
        base = t[against][0]
        for k, (best, med) in t.items():
            ratio = "" if k == against else f"  {best / base:5.2f}x of {against}"
            rows.append(f"{name:28s} {k:22s} {best:9.3f} ms (median {med:8.3f}){ratio}")
        rows.append("")
        print("\n".join(rows[-len(t) - 1:]), flush=True)
        return t

    # 1. jvp of the chain
    x0, v0 = np.array(0.5), np.array(1.0)
    tx0, tv0 = torch.tensor(0.5, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64)

    def fwd_nograd():
        with mibun.no_grad():
            chain(mibun.Variable(x0))

    def jvp_nograd():
        with mibun.no_grad():
            func.jvp(chain, (x0,), (v0,))

    _, t = func.jvp(chain, (x0,), (v0,))
    _, tt = tfunc.jvp(torch_chain, (tx0,), (tv0,))
    assert abs(float(t.data) - float(tt)) < 1e-12
    tj = row("jvp, 1000-op chain", {
        "mibun forward": lambda: chain(mibun.Variable(x0)),
        "mibun jvp": lambda: func.jvp(chain, (x0,), (v0,)),
        "mibun forward no_grad": fwd_nograd,
        "mibun jvp no_grad": jvp_nograd,
        "torch.func.jvp": lambda: tfunc.jvp(torch_chain, (tx0,), (tv0,)),
    }, "torch.func.jvp")

    # 2. tall and wide Jacobians
    A = rng.standard_normal((2000, 4)) / 2
    tA = torch.tensor(A)
    xt, xw = rng.standard_normal(4), rng.standard_normal(2000) / 40

    def tall(x):
        return F.tanh(F.matmul(A, x)) * 2.0

    def wide(x):
        return F.tanh(F.matmul(A.T, x)) * 2.0

    ttall = lambda x: torch.tanh(tA @ x) * 2.0
    twide = lambda x: torch.tanh(tA.T @ x) * 2.0
    txt, txw = torch.tensor(xt), torch.tensor(xw)
    for f, tf_, x, tx in ((tall, ttall, xt, txt), (wide, twide, xw, txw)):
        np.testing.assert_allclose(func.jacfwd(f)(x).data, tfunc.jacrev(tf_)(tx).numpy(),
                                   rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(func.jacrev(f)(x).data, tfunc.jacfwd(tf_)(tx).numpy(),
                                   rtol=1e-10, atol=1e-12)

    def nograd(fn):
        def run():
            with mibun.no_grad():
                fn()
        return run

    tt_ = row("tall R^4 -> R^2000", {
        "mibun jacfwd": lambda: func.jacfwd(tall)(xt),
        "mibun jacfwd no_grad": nograd(lambda: func.jacfwd(tall)(xt)),
        "mibun jacrev no_grad": nograd(lambda: func.jacrev(tall)(xt)),
        "torch.func.jacfwd": lambda: tfunc.jacfwd(ttall)(txt),
        "torch.func.jacrev": lambda: tfunc.jacrev(ttall)(txt),
    }, "torch.func.jacfwd")
    tw = row("wide R^2000 -> R^4", {
        "mibun jacrev": lambda: func.jacrev(wide)(xw),
        "mibun jacrev no_grad": nograd(lambda: func.jacrev(wide)(xw)),
        "mibun jacfwd no_grad": nograd(lambda: func.jacfwd(wide)(xw)),
        "torch.func.jacrev": lambda: tfunc.jacrev(twide)(txw),
        "torch.func.jacfwd": lambda: tfunc.jacfwd(twide)(txw),
    }, "torch.func.jacrev")

    # 3. hessian of a 100-parameter function
    W = rng.standard_normal((10, 100)) / 10
    tW = torch.tensor(W)
    xh = rng.standard_normal(100)

    def h(x):
        return F.sum(F.tanh(F.matmul(W, x))) + F.sum(x * x) * 0.5

    th = lambda x: torch.tanh(tW @ x).sum() + (x * x).sum() * 0.5
    np.testing.assert_allclose(func.hessian(h)(xh).data,
                               tfunc.hessian(th)(torch.tensor(xh)).numpy(),
                               rtol=1e-10, atol=1e-12)
    txh = torch.tensor(xh)
    thh = row("hessian, 100 parameters", {
        "mibun hessian": lambda: func.hessian(h)(xh),
        "mibun hessian no_grad": nograd(lambda: func.hessian(h)(xh)),
        "torch.func.hessian": lambda: tfunc.hessian(th)(txh),
    }, "torch.func.hessian")

    def r(t, a, b):
        return t[a][0] / t[b][0]

    print("targets (best times):")
    print(f"  jvp / forward, grad mode:       {r(tj, 'mibun jvp', 'mibun forward'):5.2f}  (<= 2.5)")
    print(f"  jvp / forward, no_grad:         "
          f"{r(tj, 'mibun jvp no_grad', 'mibun forward no_grad'):5.2f}  (<= 2.5)")
    print(f"  jvp / torch.func.jvp:           {r(tj, 'mibun jvp', 'torch.func.jvp'):5.2f}  (<= 1.0)")
    print(f"  tall: jacfwd / jacrev:          "
          f"{r(tt_, 'mibun jacfwd no_grad', 'mibun jacrev no_grad'):7.4f}  (< 1)")
    print(f"  tall: jacfwd / torch.func:      "
          f"{r(tt_, 'mibun jacfwd', 'torch.func.jacfwd'):5.2f}  (<= 1.0)")
    print(f"  wide: jacrev / jacfwd:          "
          f"{r(tw, 'mibun jacrev no_grad', 'mibun jacfwd no_grad'):7.4f}  (< 1)")
    print(f"  wide: jacrev / torch.func:      "
          f"{r(tw, 'mibun jacrev', 'torch.func.jacrev'):5.2f}  (<= 1.0)")
    print(f"  hessian / torch.func.hessian:   "
          f"{r(thh, 'mibun hessian', 'torch.func.hessian'):5.2f}  (<= 1.0)")


if __name__ == "__main__":
    main()
