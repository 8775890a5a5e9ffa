"""An LSTM (or RNN / GRU) learns a noisy sine wave by truncated BPTT, then predicts the
next value of a cosine one step at a time (the book's steps 59-60).

Run:  python examples/lstm_sincurve.py [--cell lstm|rnn|gru] [--epochs 20]
"""
import argparse

import numpy as np

import mibun
import mibun.functions as F
from mibun import datasets, optimizers
from mibun.dataloaders import SeqDataLoader
from mibun.models import SeqRegressor

ap = argparse.ArgumentParser()
ap.add_argument("--cell", default="lstm", choices=["lstm", "rnn", "gru"])
ap.add_argument("--epochs", type=int, default=20)
ap.add_argument("--hidden", type=int, default=32)
ap.add_argument("--bptt", type=int, default=30)
args = ap.parse_args()

np.random.seed(0)
train, test = datasets.SinCurve(train=True), datasets.SinCurve(train=False)
loader = SeqDataLoader(train, batch_size=30)
model = SeqRegressor(args.hidden, out_size=1, cell=args.cell)
optimizer = optimizers.Adam(0.01).setup(model)

for epoch in range(args.epochs):
    model.reset_state()
    loss, count, total = 0, 0, 0.0
    for x, t in loader:
        loss += F.mean_squared_error(model(x), t)
        count += 1
        if count % args.bptt == 0 or count == len(loader):
            model.cleargrads()
            loss.backward()
            loss.unchain_backward()  # truncate: the next segment starts a new graph
            optimizer.update()
            total += float(loss.data)
            loss = 0
    print(f"epoch {epoch + 1:2d}  loss {total / count:.5f}")

model.reset_state()
with mibun.no_grad():
    pred = np.array([model(test.data[i:i + 1]).data[0, 0] for i in range(len(test))])
mse = float(np.mean((pred - test.label[:, 0]) ** 2))
print(f"cosine, one step ahead: mse {mse:.5f} (predicting 0 everywhere: "
      f"{float(np.mean(test.label ** 2)):.3f})")
