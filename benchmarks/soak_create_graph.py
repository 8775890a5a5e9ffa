"""Soak: a create_graph=True training loop with the garbage collector off.

Every step trains an MLP on Spiral with an input-gradient penalty (``mibun.grad(...,
create_graph=True)``), and ``loss.backward(create_graph=True)``; the model's and the input's
gradients are cleared each step, as a training loop does. With ``gc.disable()`` anything
caught in a reference cycle would pile up, so a flat resident memory shows that reference
counting alone frees every graph. ``mse`` instead regresses on a raw-array target.

Run:  python benchmarks/soak_create_graph.py [penalty|mse] [steps=10000]
"""
import gc
import sys

import numpy as np

import mibun
import mibun.functions as F
import mibun.optimizers as O
from mibun import Variable


def rss_mb():
    with open("/proc/self/statm") as f:  # Linux: resident pages
        return int(f.read().split()[1]) * 4096 / 2**20


def main(variant="penalty", steps=10000):
    gc.collect()
    gc.disable()
    np.random.seed(0)
    ds = mibun.datasets.Spiral()
    x, t = ds.data, ds.label
    model = mibun.models.MLP((64, 64, 3), activation=F.tanh)
    opt = O.Adam().setup(model)
    marks = {}
    for i in range(steps):
        idx = np.random.randint(0, len(x), 32)
        xv = Variable(x[idx])
        if variant == "mse":
            loss = F.mean_squared_error(model(xv), np.eye(3, dtype=np.float32)[t[idx]])
        else:
            loss = F.softmax_cross_entropy(model(xv), t[idx])
            gx = mibun.grad(loss, xv, create_graph=True)
            loss = loss + 0.1 * F.sum(gx ** 2)
        model.cleargrads()
        loss.backward(create_graph=True)
        opt.update()
        xv.cleargrad()  # a leaf's create_graph gradient reads the leaf (as in PyTorch)
        if i in (100, steps - 1):
            marks[i] = rss_mb()
    model.cleargrads()
    left = gc.collect()
    print(f"{variant}: {steps} steps with gc disabled, RSS {marks[100]:.0f} MB at step 100 -> "
          f"{marks[steps - 1]:.0f} MB at the end (+{marks[steps - 1] - marks[100]:.1f} MB); "
          f"objects left for the cyclic collector: {left}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "penalty",
         int(sys.argv[2]) if len(sys.argv) > 2 else 10000)
