"""One training step of the two-conv CNN of ``mibun train --model cnn`` (``models.SmallCNN``:
conv 3x3 (32) - relu - max-pool 2 - conv 3x3 (64) - relu - max-pool 2 - linear 128 - relu -
linear 10), softmax cross entropy, Adam, batch 32 of 1x28x28 float32: mibun vs the same
network in PyTorch CPU, in one process, one thread each.

Both start from the same weights; the script checks that they give the same losses and
the same updated weights over three steps before it times the step.

Run:  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/cnn_step.py [--repeat N]
"""
import argparse
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
from mlp import mibun_step, torch_step  # the same training steps as benchmarks/mlp.py

from mibun import optimizers
from mibun.models import SmallCNN

BATCH = 32
LR = 1e-3


def make_batch(seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random((BATCH, 1, 28, 28), dtype=np.float32),
            rng.integers(0, 10, BATCH))


def mibun_setup(x):
    np.random.seed(0)
    model = SmallCNN(10)
    model(x[:1])  # the lazy parameters
    return model, optimizers.Adam(LR).setup(model)


def torch_setup(model):
    import torch
    nn = torch.nn
    net = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))
    pairs = ((net[0], model.conv1, False), (net[3], model.conv2, False),
             (net[7], model.fc3, True), (net[9], model.fc4, True))
    with torch.no_grad():
        for mod, layer, is_linear in pairs:  # mibun's Linear keeps W as (in, out)
            w = layer.W.data.T if is_linear else layer.W.data
            mod.weight.copy_(torch.from_numpy(np.ascontiguousarray(w)))
            mod.bias.copy_(torch.from_numpy(layer.b.data.copy()))
    return net, torch.optim.Adam(net.parameters(), lr=LR)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=100)
    args = parser.parse_args()
    x, t = make_batch()
    m = mibun_setup(x)
    fns = {"mibun": lambda: mibun_step(*m, x, t)}
    torch = optional_torch()
    if torch is not None:
        tm = torch_setup(m[0])
        tx, tt = torch.from_numpy(x), torch.from_numpy(t)
        same_losses(lambda: float(mibun_step(*m, x, t).data),  # and the same weights:
                    lambda: torch_step(*tm, tx, tt).item())
        w_m, w_t = m[0].conv2.W.data, tm[0][3].weight.detach().numpy()
        assert np.allclose(w_m, w_t, atol=1e-5), np.abs(w_m - w_t).max()
        fns["pytorch"] = lambda: torch_step(*tm, tx, tt)
    times = timeit(fns, args.repeat)
    print(f"SmallCNN step (two convs), batch {BATCH} of 1x28x28 float32, softmax CE, Adam "
          f"(one thread; best and median of {args.repeat})")
    for name, (best, med) in times.items():
        print(f"  {name:8s} {best:7.2f} ms  (median {med:.2f})")
    if torch is not None:
        (mb, mm), (tb, tmed) = times["mibun"], times["pytorch"]
        print(f"  mibun / pytorch  {mb / tb:.2f}x  (median {mm / tmed:.2f}x)")


if __name__ == "__main__":
    main()
