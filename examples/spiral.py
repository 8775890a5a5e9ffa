"""The book's spiral (step 48): a 2-10-3 sigmoid MLP trained by plain SGD.

Run:  python examples/spiral.py [--plot spiral.png]   (the plot needs matplotlib)
"""
import argparse

import numpy as np

import mibun
import mibun.functions as F
from mibun import DataLoader, datasets, optimizers
from mibun.models import MLP

ap = argparse.ArgumentParser()
ap.add_argument("--epochs", type=int, default=300)
ap.add_argument("--plot", help="save the decision regions to this image")
args = ap.parse_args()

np.random.seed(0)
train = datasets.Spiral(train=True)
loader = DataLoader(train, batch_size=30, seed=0)
model = MLP((10, 3))
optimizer = optimizers.SGD(lr=1.0).setup(model)

for epoch in range(args.epochs):
    total = 0.0
    for x, t in loader:
        loss = F.softmax_cross_entropy(model(x), t)
        model.cleargrads()
        loss.backward()
        optimizer.update()
        total += float(loss.data) * len(t)
    if (epoch + 1) % 50 == 0:
        print(f"epoch {epoch + 1:3d}  loss {total / len(train):.4f}")

with mibun.no_grad():
    acc = float(F.accuracy(model(train.data), train.label).data)
print(f"training accuracy {acc:.4f}")

if args.plot:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    xx, yy = np.meshgrid(np.linspace(-1, 1, 300), np.linspace(-1, 1, 300))
    grid = np.c_[xx.ravel(), yy.ravel()].astype(np.float32)
    with mibun.no_grad():
        zz = model(grid).data.argmax(axis=1).reshape(xx.shape)
    plt.contourf(xx, yy, zz, alpha=0.3)
    plt.scatter(train.data[:, 0], train.data[:, 1], c=train.label, s=12)
    plt.savefig(args.plot)
    print(f"wrote {args.plot}")
