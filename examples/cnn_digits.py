"""A small CNN on the bundled 8x8 digits (images shaped (N, 1, 8, 8)).

Run:  python examples/cnn_digits.py [--epochs 8]
Reaches about 98.5% test accuracy in a few seconds on a laptop CPU.
"""
import argparse
import time

import numpy as np

import mibun
import mibun.functions as F
from mibun import DataLoader, datasets, optimizers
from mibun.models import SmallCNN

ap = argparse.ArgumentParser()
ap.add_argument("--epochs", type=int, default=8)
ap.add_argument("--gpu", action="store_true", help="train on CuPy")
args = ap.parse_args()

np.random.seed(0)
train = datasets.Digits(train=True, flatten=False)
test = datasets.Digits(train=False, flatten=False)
loader = DataLoader(train, batch_size=32, seed=0)
model = SmallCNN(num_classes=10)
optimizer = optimizers.Adam(0.002).setup(model)
schedule = optimizers.CosineLR(optimizer, t_max=args.epochs)
test_x, test_t = test.data, test.label
if args.gpu:
    model(test_x[:1])  # create the lazy weights, then move them
    model.to_gpu()
    loader.to_gpu()
    test_x, test_t = mibun.backend.as_cupy(test_x), mibun.backend.as_cupy(test_t)

start = time.perf_counter()
for epoch in range(args.epochs):
    for x, t in loader:
        loss = F.softmax_cross_entropy(model(x), t)
        model.cleargrads()
        loss.backward()
        optimizer.update()
    schedule.step()
    with mibun.no_grad(), mibun.test_mode():
        acc = float(F.accuracy(model(test_x), test_t).data)
    print(f"epoch {epoch + 1}  loss {float(loss.data):.4f}  test accuracy {acc:.4f}  "
          f"({time.perf_counter() - start:.1f} s)")
print(model)
