"""One DQN update: a Q-network MLP 4 -> 128 -> 128 -> 2 (ReLU), batch 32, float32. The
target network is evaluated without a graph, the TD target ``r + gamma * max_a Q'(s', a)``
(zero past the end of an episode) is formed, the MSE on the chosen actions' Q values is
backpropagated, and Adam updates the Q-network: mibun vs PyTorch CPU in one process, one
thread each. At this size every op is cheap, so the step measures per-op overhead.

Both start from the same weights; the script checks that they give the same loss and the
same updated weights before it times the step.

Run:  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/rl_step.py [--repeat N]
"""
import argparse
import os

# One thread for NumPy too (OpenBLAS would use every core, PyTorch is set to one below);
# set before NumPy loads, so OpenBLAS reads it.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
from _timing import timeit  # benchmarks/_timing.py (this folder is on sys.path)

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
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        torch.set_num_threads(1)
        t = torch_setup(m[0])
        tbatch = [torch.from_numpy(v) for v in batch]
        for _ in range(3):  # the same losses and weights, step by step
            lm, lt = float(mibun_step(*m, *batch).data), torch_step(*t, *tbatch).item()
            assert abs(lm - lt) <= 1e-5 * max(1.0, abs(lt)), (lm, lt)
        w_m, w_t = m[0].l0.W.data, t[0][0].weight.detach().numpy().T
        assert np.allclose(w_m, w_t, atol=1e-5), np.abs(w_m - w_t).max()
    # the same step with Adam's old update, one parameter at a time (the path a DeZero-style
    # subclass with its own update_one takes), against the flat one (optimizer_base._Flat)
    m1 = mibun_setup()
    adam = type(m1[2])
    m1[2].__class__ = type("AdamOneByOne", (adam,),
                           {"update_one": lambda self, p: adam.update_one(self, p)})
    fns = {"mibun": lambda: mibun_step(*m, *batch), "one-by-one": lambda: mibun_step(*m1, *batch)}
    if torch is not None:
        fns["pytorch"] = lambda: torch_step(*t, *tbatch)
    times = timeit(fns, args.repeat)
    print(f"DQN update: Q-network MLP {'-'.join(map(str, SIZES))}, batch {BATCH}, float32, "
          f"target net without a graph, MSE, Adam (one thread; best and median of "
          f"{args.repeat})")
    for name, (best, med) in times.items():
        label = "mibun, Adam one parameter at a time" if name == "one-by-one" else name
        print(f"  {label:8s} {best * 1e3:7.1f} us  (median {med * 1e3:.1f})")
    if torch is not None:
        (mb, mm), (tb, tm) = times["mibun"], times["pytorch"]
        print(f"  mibun / pytorch  {mb / tb:.2f}x  (median {mm / tm:.2f}x)")


if __name__ == "__main__":
    main()
