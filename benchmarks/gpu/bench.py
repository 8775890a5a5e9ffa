"""mibun on CuPy beside PyTorch CUDA, same process, synchronised timing (issue targets).

The four cases of the GPU targets:
  chain : 1000-op tanh / multiply-by-constant chain on a 0-d float32 value, fwd + bwd, per op
  mlp   : MLP 784-1000-1000-10 step (forward, softmax cross entropy, backward, SGD), batch 1000
  elem  : ten-op elementwise chain on 10^7 float32, forward + backward
  cnn   : two-conv CNN step with Adam, batch 32 of 1x28x28 (models.SmallCNN)

Run on a GPU machine:  python benchmarks/gpu/bench.py [--repeat 20] [--only chain,mlp]
Prints one line per case: mibun ms, torch ms, ratio (best of the timed calls; medians too).
"""
import argparse
import os
import sys
import time

import cupy
import numpy as np
import torch

import mibun
import mibun.functions as F
from mibun import models, optimizers

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))  # the CPU benchmarks
from elementwise import chain as elem_chain
from overhead import N_OPS, chain

DEV = torch.device(os.environ.get("BENCH_TORCH_DEVICE", "cuda"))  # cpu: dry run


def sync():
    cupy.cuda.Device().synchronize()
    torch.cuda.synchronize()


def timed(fn, repeat, warmup=3):
    for _ in range(warmup):
        fn()
    sync()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync()
        ts.append(time.perf_counter() - t0)
    return min(ts) * 1e3, float(np.median(ts)) * 1e3


# --- chain -------------------------------------------------------------------------------
def chain_mibun():
    x = mibun.Variable(cupy.asarray(0.5, dtype=np.float32))
    chain(x, F.tanh).backward()
    return x.grad


def chain_torch():
    x = torch.tensor(0.5, dtype=torch.float32, device=DEV, requires_grad=True)
    chain(x, torch.tanh).backward()
    return x.grad


def _steps(model, opt, x, t, tm, topt):
    """One training step of the mibun model on the GPU, and of its torch twin."""
    model(x[:1])
    model.to_gpu()
    opt.setup(model)
    xg, tg = cupy.asarray(x), cupy.asarray(t)
    tx, tt = torch.tensor(x, device=DEV), torch.tensor(t, device=DEV)

    def step_mibun():
        loss = F.softmax_cross_entropy(model(xg), tg)
        model.cleargrads()
        loss.backward()
        opt.update()

    def step_torch():
        loss = torch.nn.functional.cross_entropy(tm(tx), tt)
        topt.zero_grad(set_to_none=True)
        loss.backward()
        topt.step()

    return step_mibun, step_torch


# --- mlp ---------------------------------------------------------------------------------
def make_mlp(batch=1000):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 784)).astype(np.float32)
    t = rng.integers(0, 10, batch)
    np.random.seed(0)
    tm = torch.nn.Sequential(torch.nn.Linear(784, 1000), torch.nn.ReLU(),
                             torch.nn.Linear(1000, 1000), torch.nn.ReLU(),
                             torch.nn.Linear(1000, 10)).to(DEV)
    return _steps(models.MLP((1000, 1000, 10), activation=F.relu), optimizers.SGD(0.01), x, t,
                  tm, torch.optim.SGD(tm.parameters(), lr=0.01))


# --- elem --------------------------------------------------------------------------------
def make_elem(n=10**7):
    x0 = cupy.random.default_rng(0).standard_normal(n, dtype=np.float32)
    tx0 = torch.as_tensor(x0, device=DEV)

    def step_mibun():
        x = mibun.Variable(x0)
        y = elem_chain(x, F)
        y.backward()

    def step_torch():
        x = tx0.detach().requires_grad_(True)
        y = elem_chain(x, torch)
        y.backward(torch.ones_like(y))

    return step_mibun, step_torch


# --- cnn ---------------------------------------------------------------------------------
def make_cnn(batch=32):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 1, 28, 28)).astype(np.float32)
    t = rng.integers(0, 10, batch)
    np.random.seed(0)
    tn = torch.nn
    tm = tn.Sequential(tn.Conv2d(1, 32, 3, 1, 1), tn.ReLU(), tn.MaxPool2d(2),
                       tn.Conv2d(32, 64, 3, 1, 1), tn.ReLU(), tn.MaxPool2d(2), tn.Flatten(),
                       tn.Linear(64 * 7 * 7, 128), tn.ReLU(), tn.Linear(128, 10)).to(DEV)
    return _steps(models.SmallCNN(10), optimizers.Adam(), x, t, tm,
                  torch.optim.Adam(tm.parameters()))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--only", default="chain,mlp,elem,cnn")
    args = ap.parse_args()
    cases = {"chain": lambda: (chain_mibun, chain_torch), "mlp": make_mlp, "elem": make_elem,
             "cnn": make_cnn}
    print(f"GPU: {cupy.cuda.runtime.getDeviceProperties(0)['name'].decode()}, "
          f"CuPy {cupy.__version__}, torch {torch.__version__}, NumPy {np.__version__}")
    for name in args.only.split(","):
        fm, ft = cases[name]()
        m_best, m_med = timed(fm, args.repeat)
        t_best, t_med = timed(ft, args.repeat)
        scale, unit = (1e3 / N_OPS, "us/op") if name == "chain" else (1.0, "ms")
        print(f"{name:5s}: mibun {m_best * scale:8.3f} {unit} (median {m_med * scale:.3f})  "
              f"torch {t_best * scale:8.3f} {unit} (median {t_med * scale:.3f})  "
              f"ratio {m_best / t_best:.2f}x (median {m_med / t_med:.2f}x)", flush=True)


if __name__ == "__main__":
    main()
