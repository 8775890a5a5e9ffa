"""One DQN update: a Q-network MLP 4 -> 128 -> 128 -> 2 (ReLU), batch 32, float32. The
target network is evaluated without a graph, the TD target ``r + gamma * max_a Q'(s', a)``
(zero past the end of an episode) is formed, the MSE on the chosen actions' Q values is
backpropagated, and Adam updates the Q-network: mibun vs PyTorch CPU vs the same update
written by hand in NumPy (the kernels' floor), in one process, one thread each. At this
size every op is cheap, so the step measures per-op overhead.

All start from the same weights; the script checks that they give the same losses and the
same updated weights before it times the step.

Run:  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/rl_step.py [--repeat N]
"""
import argparse
import math
import os

# One thread for NumPy too (OpenBLAS would use every core, PyTorch is set to one below);
# set before NumPy loads, so OpenBLAS reads it.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
from _timing import (  # benchmarks/_timing.py (this folder is on sys.path)
    optional_torch,
    same_losses,
    timeit,
)

import mibun
import mibun.functions as F
from mibun import optimizers
from mibun.models import MLP

SIZES = (4, 128, 128, 2)
BATCH = 32
GAMMA = 0.98
LR = 1e-3


def make_batch(seed=0):
    rng = np.random.default_rng(seed)
    s = rng.standard_normal((BATCH, SIZES[0])).astype(np.float32)
    a = rng.integers(0, SIZES[-1], BATCH)
    r = rng.standard_normal(BATCH).astype(np.float32)
    s2 = rng.standard_normal((BATCH, SIZES[0])).astype(np.float32)
    done = (rng.random(BATCH) < 0.1).astype(np.float32)
    return s, a, r, s2, done


def mibun_setup():
    np.random.seed(0)
    q, target = MLP(SIZES[1:], activation=F.relu), MLP(SIZES[1:], activation=F.relu)
    q(np.zeros((1, SIZES[0]), np.float32))
    target(np.zeros((1, SIZES[0]), np.float32))
    for p, p_target in zip(q.params(), target.params()):
        p_target.data = p.data.copy()
    return q, target, optimizers.Adam(LR).setup(q)


def mibun_step(q, target, optimizer, s, a, r, s2, done):
    with mibun.no_grad():
        next_q = target(s2).max(axis=1)
    td = r + GAMMA * next_q.data * (1 - done)
    q_sa = q(s)[np.arange(BATCH), a]
    loss = F.mean_squared_error(q_sa, td)
    q.cleargrads()
    loss.backward()
    optimizer.update()
    return loss


# --- hand-written NumPy: the kernels' floor --------------------------------------------------
def numpy_setup(q_mibun):
    """The Q-network's weights as plain arrays (W, b per layer), a frozen copy as the target
    network, and Adam's moments."""
    q = [(getattr(q_mibun, f"l{i}").W.data.copy(), getattr(q_mibun, f"l{i}").b.data.copy())
         for i in range(len(SIZES) - 1)]
    target = [(W.copy(), b.copy()) for W, b in q]
    flat = [p for layer in q for p in layer]
    return q, target, {"m": [np.zeros_like(p) for p in flat],
                       "v": [np.zeros_like(p) for p in flat], "t": 0}


def _numpy_forward(layers, x):
    hs = [x]
    for i, (W, b) in enumerate(layers):
        y = hs[-1] @ W
        y += b
        hs.append(np.maximum(y, 0) if i < len(layers) - 1 else y)
    return hs


def numpy_step(q, target, adam, s, a, r, s2, done):
    """The same update by hand, as a NumPy programmer would write it: the forward keeping
    its activations, the backward of MSE, indexing, linear and ReLU, and Adam parameter by
    parameter, in place (torch.optim.Adam's formula)."""
    next_q = _numpy_forward(target, s2)[-1].max(axis=1)
    td = r + GAMMA * next_q * (1 - done)
    hs = _numpy_forward(q, s)
    rows = np.arange(BATCH)
    diff = hs[-1][rows, a] - td
    loss = np.float32(diff @ diff / BATCH)
    gy = np.zeros_like(hs[-1])
    gy[rows, a] = diff * np.float32(2 / BATCH)
    grads = []
    for i in range(len(q) - 1, -1, -1):
        W, _ = q[i]
        grads[:0] = [hs[i].T @ gy, gy.sum(axis=0)]
        if i:
            gy = gy @ W.T
            gy *= hs[i] > 0
    adam["t"] += 1
    t, b1, b2 = adam["t"], 0.9, 0.999
    step, c2 = LR / (1 - b1 ** t), math.sqrt(1 - b2 ** t)  # Python floats: float32 stays
    for p, g, m, v in zip([p for layer in q for p in layer], grads, adam["m"], adam["v"]):
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * g * g
        p -= step * m / (np.sqrt(v) / c2 + 1e-8)
    return loss


def torch_setup(q_mibun):
    import torch
    layers = []
    for i in range(len(SIZES) - 1):
        lin = torch.nn.Linear(SIZES[i], SIZES[i + 1])
        layer = getattr(q_mibun, f"l{i}")
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(layer.W.data.T.copy()))
            lin.bias.copy_(torch.from_numpy(layer.b.data.copy()))
        layers += [lin, torch.nn.ReLU()]
    q = torch.nn.Sequential(*layers[:-1])
    target = torch.nn.Sequential(*[torch.nn.Linear(m.in_features, m.out_features)
                                   if isinstance(m, torch.nn.Linear) else m for m in q])
    target.load_state_dict(q.state_dict())
    return q, target, torch.optim.Adam(q.parameters(), lr=LR)


def torch_step(q, target, optimizer, s, a, r, s2, done):
    import torch
    with torch.no_grad():
        next_q = target(s2).max(dim=1).values
    td = r + GAMMA * next_q * (1 - done)
    q_sa = q(s)[torch.arange(BATCH), a]
    loss = torch.nn.functional.mse_loss(q_sa, td)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=500)
    args = parser.parse_args()
    batch = make_batch()
    m = mibun_setup()
    torch = optional_torch()
    if torch is not None:
        t = torch_setup(m[0])
        tbatch = [torch.from_numpy(v) for v in batch]
        same_losses(lambda: float(mibun_step(*m, *batch).data),  # and the same weights:
                    lambda: torch_step(*t, *tbatch).item())
        w_m, w_t = m[0].l0.W.data, t[0][0].weight.detach().numpy().T
        assert np.allclose(w_m, w_t, atol=1e-5), np.abs(w_m - w_t).max()
    m0 = mibun_setup()
    n = numpy_setup(m0[0])
    same_losses(lambda: float(mibun_step(*m0, *batch).data),  # the hand-written step: the
                lambda: float(numpy_step(*n, *batch)))  # same losses and weights
    assert np.allclose(m0[0].l0.W.data, n[0][0][0], atol=1e-5)
    # the same step with Adam's old update, one parameter at a time (the path a DeZero-style
    # subclass with its own update_one takes), against the flat one (optimizer_base._Flat)
    m1 = mibun_setup()
    adam = type(m1[2])
    m1[2].__class__ = type("AdamOneByOne", (adam,),
                           {"update_one": lambda self, p: adam.update_one(self, p)})
    fns = {"mibun": lambda: mibun_step(*m, *batch), "one-by-one": lambda: mibun_step(*m1, *batch),
           "numpy": lambda: numpy_step(*n, *batch)}
    if torch is not None:
        fns["pytorch"] = lambda: torch_step(*t, *tbatch)
    times = timeit(fns, args.repeat)
    print(f"DQN update: Q-network MLP {'-'.join(map(str, SIZES))}, batch {BATCH}, float32, "
          f"target net without a graph, MSE, Adam (one thread; best and median of "
          f"{args.repeat})")
    for name, (best, med) in times.items():
        label = {"one-by-one": "mibun, Adam one parameter at a time",
                 "numpy": "NumPy by hand"}.get(name, name)
        print(f"  {label:36s} {best * 1e3:7.1f} us  (median {med * 1e3:.1f})")
    if torch is not None:
        (mb, mm), (tb, tm) = times["mibun"], times["pytorch"]
        print(f"  mibun / pytorch  {mb / tb:.2f}x  (median {mm / tm:.2f}x)")
        nb, nm = times["numpy"]
        print(f"  NumPy by hand / pytorch  {nb / tb:.2f}x  (median {nm / tm:.2f}x): the "
              "kernels' floor")


if __name__ == "__main__":
    main()
