"""The MLP of mlp_digits.py trained data-parallel over MPI, with mibun.distributed.

Run:  mpiexec -n 2 python examples/distributed_digits.py [--epochs 10]
(as root add --allow-run-as-root; needs pip install "mibun[mpi]"). Each rank trains on its
shard of the training set, 32 examples per step; the gradients are averaged over the ranks
before each step, so the ranks keep identical weights. Rank 0 prints and saves.
"""
import argparse

import numpy as np

import mibun
import mibun.distributed as D
import mibun.functions as F
from mibun import DataLoader, datasets, optimizers
from mibun.checkpoint import save_checkpoint
from mibun.models import MLP

ap = argparse.ArgumentParser()
ap.add_argument("--epochs", type=int, default=10)
ap.add_argument("--batch-size", type=int, default=32, help="examples per rank and step")
ap.add_argument("--checkpoint", default="digits_mlp_mpi.npz")
args = ap.parse_args()

comm = D.create_communicator()
np.random.seed(0)
train = D.scatter_dataset(datasets.Digits(train=True), comm, shuffle=True, seed=0)
test = datasets.Digits(train=False)
loader = DataLoader(train, args.batch_size, seed=comm.rank)  # each rank its own order
model = MLP((100, 10), activation=F.relu)
model(test.data[:1])  # create the lazy weights ...
comm.bcast_data(model)  # ... and start every rank from rank 0's
optimizer = D.create_multi_node_optimizer(optimizers.Adam(0.005).setup(model), comm)

for epoch in range(args.epochs):
    total, n = 0.0, 0
    for x, t in loader:
        loss = F.softmax_cross_entropy(model(x), t)
        model.cleargrads()
        loss.backward()
        optimizer.update()  # the mean gradient of all ranks, then Adam's step
        total += float(loss.data) * len(t)
        n += len(t)
    # every rank tests its half of the test set; the counts are summed over the ranks
    mine = np.array_split(np.arange(len(test)), comm.size)[comm.rank]
    with mibun.no_grad(), mibun.test_mode():
        correct = int((model(test.data[mine]).data.argmax(axis=1) == test.label[mine]).sum())
    acc = comm.allreduce(correct) / len(test)
    loss = comm.allreduce(total) / comm.allreduce(n)
    if comm.rank == 0:
        print(f"epoch {epoch + 1:2d}  train loss {loss:.4f}  test accuracy {acc:.4f}  "
              f"({comm.size} ranks)", flush=True)
        save_checkpoint(args.checkpoint, model, optimizer, epoch=epoch)  # atomic
