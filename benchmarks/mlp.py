"""One SGD training step of an MLP 784-1000-1000-10 (ReLU, softmax cross entropy), batch
100, float32: mibun vs PyTorch CPU vs a hand-written NumPy step, in one process.

All three start from the same weights; the script first checks that they compute the same
loss and the same updated weights, then times ``forward + backward + update``. It also times
the step's eight matrix products alone in NumPy and in PyTorch: their ratio is the floor for
mibun / PyTorch (mibun's matmuls are NumPy's BLAS calls; PyTorch may bring a faster BLAS).

Run:  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/mlp.py [--repeat N]
"""
import argparse
import gc
import os

import numpy as np
from _timing import timeit  # benchmarks/_timing.py (this folder is on sys.path)

import mibun.functions as F
from mibun import optimizers
from mibun.models import MLP

SIZES = (784, 1000, 1000, 10)
BATCH = 100
LR = 0.01


def make_data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((BATCH, SIZES[0]), dtype=np.float32)
    t = rng.integers(0, SIZES[-1], BATCH)
    return x, t


# --- mibun ---------------------------------------------------------------------------------
def mibun_setup():
    np.random.seed(0)
    model = MLP(SIZES[1:], activation=F.relu)
    model(np.zeros((1, SIZES[0]), np.float32))  # create the lazy weights
    optimizer = optimizers.SGD(LR).setup(model)
    return model, optimizer


def mibun_step(model, optimizer, x, t):
    loss = F.softmax_cross_entropy(model(x), t)
    model.cleargrads()
    loss.backward()
    optimizer.update()
    return loss


# --- hand-written NumPy ---------------------------------------------------------------------
def numpy_step(params, x, t):
    W1, b1, W2, b2, W3, b3 = params
    N = x.shape[0]
    h1 = x @ W1
    h1 += b1
    a1 = np.maximum(h1, 0, out=h1)
    h2 = a1 @ W2
    h2 += b2
    a2 = np.maximum(h2, 0, out=h2)
    y = a2 @ W3
    y += b3
    y -= y.max(axis=1, keepdims=True)  # softmax cross entropy, stable
    p = np.exp(y)
    p /= p.sum(axis=1, keepdims=True)
    loss = -np.log(p[np.arange(N), t]).mean()
    gy = p
    gy[np.arange(N), t] -= 1
    gy *= np.float32(1 / N)
    gW3 = a2.T @ gy
    gb3 = gy.sum(axis=0)
    ga2 = gy @ W3.T
    ga2 *= a2 > 0
    gW2 = a1.T @ ga2
    gb2 = ga2.sum(axis=0)
    ga1 = ga2 @ W2.T
    ga1 *= a1 > 0
    gW1 = x.T @ ga1
    gb1 = ga1.sum(axis=0)
    for p_, g in zip(params, (gW1, gb1, gW2, gb2, gW3, gb3)):
        g *= np.float32(LR)
        p_ -= g
    return loss


# --- PyTorch --------------------------------------------------------------------------------
def torch_setup(params):
    import torch
    layers = []
    for i in range(3):
        lin = torch.nn.Linear(SIZES[i], SIZES[i + 1])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(params[2 * i].T.copy()))
            lin.bias.copy_(torch.from_numpy(params[2 * i + 1].copy()))
        layers += [lin, torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers[:-1])
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    return model, optimizer


def torch_step(model, optimizer, x, t):
    import torch
    loss = torch.nn.functional.cross_entropy(model(x), t)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss


# --- the BLAS floor ---------------------------------------------------------------------------
def matmul_operands(params, x):
    """The eight matrix products of one step (3 forward, 5 backward), as (a, b) pairs."""
    W1, _, W2, _, W3, _ = params
    rng = np.random.default_rng(1)
    a1, a2 = (rng.random((BATCH, n), dtype=np.float32) for n in SIZES[1:3])
    gy, ga2, ga1 = (rng.random((BATCH, n), dtype=np.float32) for n in SIZES[:0:-1])
    return [(x, W1), (a1, W2), (a2, W3),  # forward
            (a2.T, gy), (gy, W3.T), (a1.T, ga2), (ga2, W2.T), (x.T, ga1)]  # backward


def numpy_matmuls(pairs):
    for a, b in pairs:
        a @ b


def torch_matmuls(pairs):
    import torch
    for a, b in pairs:
        torch.matmul(a, b)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=100)
    args = ap.parse_args()
    x, t = make_data()

    model, optimizer = mibun_setup()
    params = [p.data.copy() for p in model.params()]
    np_params = [p.copy() for p in params]

    # Same computation: one step each from the same weights.
    loss_m = float(mibun_step(model, optimizer, x, t).data)
    loss_n = float(numpy_step(np_params, x, t))
    assert all(p.dtype == np.float32 for p in model.params()), "mibun left float32"
    assert all(p.grad.dtype == np.float32 for p in model.params())
    for p, q in zip(model.params(), np_params):
        np.testing.assert_allclose(p.data, q, rtol=1e-4, atol=1e-5)
    print(f"loss after one step: mibun {loss_m:.6f}  numpy {loss_n:.6f}", end="")

    fns = {}
    try:
        import torch
        tmodel, topt = torch_setup(params)
        tx, tt = torch.from_numpy(x), torch.from_numpy(t)
        loss_t = torch_step(tmodel, topt, tx, tt).item()
        print(f"  pytorch {loss_t:.6f}")
        assert abs(loss_t - loss_m) < 1e-4
        fns["pytorch"] = lambda: torch_step(tmodel, topt, tx, tt)
        threads = f"torch threads {torch.get_num_threads()}, "
    except ImportError:
        print("\npytorch not installed: no ratio against it")
        threads = ""
    fns["numpy"] = lambda: numpy_step(np_params, x, t)
    fns["mibun"] = lambda: mibun_step(model, optimizer, x, t)
    if "pytorch" in fns:
        pairs = matmul_operands(params, x)
        tpairs = [(torch.from_numpy(a), torch.from_numpy(b)) for a, b in pairs]
        fns["numpy matmuls"] = lambda: numpy_matmuls(pairs)
        fns["torch matmuls"] = lambda: torch_matmuls(tpairs)
    gc.collect()
    results = timeit(fns, args.repeat)
    len_runs = max(1, args.repeat // 5) * 5

    print(f"MLP {'-'.join(map(str, SIZES))}, batch {BATCH}, float32, one SGD step "
          f"({threads}{os.cpu_count()} CPUs; best and median of {len_runs} runs)")
    for name, (best, med) in results.items():
        print(f"  {name:14s} {best:7.2f} ms  (median {med:.2f})")
    m_best, m_med = results["mibun"]
    for name in ("pytorch", "numpy"):
        if name in results:
            best, med = results[name]
            print(f"  mibun / {name:8s} {m_best / best:5.2f}x  (median {m_med / med:.2f}x)")
    if "torch matmuls" in results:
        (nb, _), (tb, _) = results["numpy matmuls"], results["torch matmuls"]
        print(f"  BLAS floor: the step's 8 matmuls alone, numpy / torch {nb / tb:5.2f}x (best "
              "times): mibun / pytorch cannot go below this while NumPy's BLAS is the slower")


if __name__ == "__main__":
    main()
