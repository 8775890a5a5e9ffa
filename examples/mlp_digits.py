"""An MLP on the bundled 8x8 digits, with a checkpoint you can resume from.

Run:  python examples/mlp_digits.py [--epochs 20] [--resume digits_mlp.npz]
Reaches about 98% test accuracy in a second or two on a laptop CPU.
"""
import argparse
import os

import numpy as np

import mibun
import mibun.functions as F
from mibun import DataLoader, datasets, optimizers
from mibun.checkpoint import load_checkpoint, save_checkpoint
from mibun.models import MLP

ap = argparse.ArgumentParser()
ap.add_argument("--epochs", type=int, default=20)
ap.add_argument("--batch-size", type=int, default=32)
ap.add_argument("--checkpoint", default="digits_mlp.npz")
ap.add_argument("--resume", action="store_true", help="continue from --checkpoint")
args = ap.parse_args()

np.random.seed(0)
train, test = datasets.Digits(train=True), datasets.Digits(train=False)
train_loader = DataLoader(train, args.batch_size, seed=0)
model = MLP((100, 10), activation=F.relu)
optimizer = optimizers.Adam(0.005).setup(model)
schedule = optimizers.CosineLR(optimizer, t_max=args.epochs)
start = 0
if args.resume and os.path.exists(args.checkpoint):
    start = load_checkpoint(args.checkpoint, model, optimizer)["epoch"] + 1
    schedule.last_epoch = start  # the schedule follows the epoch count (and --epochs)
    optimizer.lr = schedule.get_lr(start)
    train_loader.set_epoch(start)  # the batches this epoch would have had without a break
    print(f"resumed from {args.checkpoint} after epoch {start}")

for epoch in range(start, args.epochs):
    total, n = 0.0, 0
    for x, t in train_loader:
        loss = F.softmax_cross_entropy(model(x), t)
        model.cleargrads()
        loss.backward()
        optimizer.update()
        total += float(loss.data) * len(t)
        n += len(t)
    schedule.step()
    with mibun.no_grad(), mibun.test_mode():
        acc = float(F.accuracy(model(test.data), test.label).data)
    print(f"epoch {epoch + 1:2d}  train loss {total / n:.4f}  test accuracy {acc:.4f}")
    save_checkpoint(args.checkpoint, model, optimizer, epoch=epoch)  # atomic

print(model)
