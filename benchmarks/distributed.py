"""Data-parallel training over MPI: throughput at 1 and 2 ranks, and the cost of
``Communicator.allreduce_grad`` against a raw mpi4py ``Allreduce`` of one buffer.

* Throughput: SGD steps of the MLP 784-1000-1000-10 (1.8 M float32 parameters, as
  benchmarks/mlp.py) with 100 examples per rank and step (so 2 ranks train on twice the
  examples per step), one BLAS thread per rank; examples per second, and 2 ranks / 1 rank.
  The SmallCNN of ``mibun train --model cnn`` on 28x28 images, batch 32 per rank, likewise.
  Each rank's loss is weighted by 1 / size before backward and the gradients summed, as
  ``mibun train --distributed`` does (no pass over the gradients to scale them); the
  multi-node optimizer's step on 2 ranks updates each rank's share of the one copy of the
  parameters the ranks share (mibun.distributed.sharded), on 1 rank the whole of its own.
  One job of 2 ranks measures both, in turns: a block of steps on rank 0 alone (a
  communicator of one rank; rank 1 sleeps meanwhile), then a block on both ranks, and so
  on (``--blocks``), so that the machine's drift (this 2-core guest's speed moves by tens
  of percent within minutes) hits both alike. Shown: the sustained throughput (all the
  blocks' examples over their time), and the best block of each.
* allreduce_grad: the MLP's gradients averaged over 2 ranks (the mean: one scaling pass),
  and summed (``weight=1.0``: for a loss weighted before backward), against ``Allreduce``
  of one float32 buffer of the same 1.8 M elements in place (the floor of one MPI call: no
  packing, no scaling), and against that plus the in-place scaling the mean needs. The
  gradients are as a training step leaves them: written into the gradient arena by
  backward. ``allreduce_grad`` sums them in shared memory (``host_method``
  ``'shared-memory'``); the row ``one Allreduce`` is the same call with
  ``MIBUN_SHARED_ARENA=0``, the path of one rank per machine. Also: a raw ``Allreduce``
  inside a training step (after the step's compute and a barrier), what a step would pay,
  and ``allreduce_grad`` there, what it does pay.
* On paper: the time of a ring allreduce of each model's gradients at 8, 64 and 512 ranks,
  ``2 (p - 1) alpha + 2 (p - 1) / p * bytes / beta``, beside the step's compute measured
  here, for two networks (the assumptions are printed with the table).

Run:  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/distributed.py
(it starts ``mpiexec -n 2`` of itself; ``--allow-run-as-root`` is added as root).
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SIZES = (784, 1000, 1000, 10)
NETWORKS = {  # name: (latency alpha in s, bandwidth beta in bytes/s), per message and link
    "10 GbE (alpha 30 us, 1.1 GB/s)": (30e-6, 1.1e9),
    "InfiniBand HDR 200 Gb/s (alpha 2 us, 22 GB/s)": (2e-6, 22e9),
}


def build(model_name, batch):
    import mibun.functions as F
    from mibun import models
    np.random.seed(0)
    rng = np.random.default_rng(0)
    if model_name == "mlp":
        model = models.MLP(SIZES[1:], activation=F.relu)
        x = rng.random((batch, SIZES[0]), dtype=np.float32)
    else:
        model = models.SmallCNN(10)
        x = rng.random((batch, 1, 28, 28), dtype=np.float32)
    t = rng.integers(0, 10, batch)
    model(x[:1])
    return model, x, t


def throughput(world, alone, model_name, batch, steps, blocks):
    """Blocks of ``steps`` training steps, in turns: on rank 0 alone (``alone``, a
    communicator of one rank), then on both ranks of ``world``."""
    import mibun.functions as F
    from mibun import distributed, optimizers

    def setup(comm):
        model, x, t = build(model_name, batch)
        comm.bcast_data(model)
        opt = distributed.create_multi_node_optimizer(optimizers.SGD(0.01).setup(model),
                                                      comm)
        opt.grad_weight = 1.0  # the loss is weighted before backward, as mibun train does

        def step():
            loss = F.softmax_cross_entropy(model(x), t)
            model.cleargrads()
            (loss * (1 / comm.size)).backward()
            opt.update()
        for _ in range(3):
            step()
        return step, model

    solo = setup(alone)[0] if world.rank == 0 else None
    both, model = setup(world)
    times = {1: [], 2: []}
    for _ in range(blocks):
        if world.rank == 0:
            t0 = time.perf_counter()
            for _ in range(steps):
                solo()
            times[1].append(time.perf_counter() - t0)
        _idle_barrier(world)  # rank 1 sleeps while rank 0 runs alone
        world.barrier()
        t0 = time.perf_counter()
        for _ in range(steps):
            both()
        world.barrier()
        times[2].append(time.perf_counter() - t0)
    n_params = sum(p.data.size for p in model.params())
    out = {"params": int(n_params)}
    for n, ts in times.items():
        if not ts:  # rank 1 has no 1-rank blocks; rank 0 reports
            continue
        out[n] = {"examples_per_s": n * batch * steps * len(ts) / sum(ts),
                  "best_examples_per_s": n * batch * steps / min(ts),
                  "ms_per_step": 1e3 * sum(ts) / (steps * len(ts))}
    return out


def _idle_barrier(world):
    """A barrier that sleeps instead of spinning (MPI's own polls a core at full speed)."""
    req = world.mpi_comm.Ibarrier()
    while not req.Test():
        time.sleep(0.0005)


# the mean (weight 1/size: one scaling pass), a sum (a loss weighted before backward, as
# mibun train --distributed does: no pass), and their floors
ALLREDUCE_ROWS = ("allreduce_grad", "allreduce_grad, weight 1",
                  "allreduce_grad, weight 1, one Allreduce", "raw Allreduce",
                  "raw Allreduce + scaling", "allreduce_grad, weight 1, in a step",
                  "raw Allreduce in a step")


def allreduce_cost(comm, repeat):
    import mibun.functions as F
    from mibun import distributed
    os.environ["MIBUN_SHARED_ARENA"] = "0"  # read when a communicator is made
    plain = distributed.create_communicator(comm.mpi_comm.Dup())
    model, x, t = build("mlp", 100)
    other = build("mlp", 100)[0]

    def backward(m=model):
        m.cleargrads()
        F.softmax_cross_entropy(m(x), t).backward()

    grads = {}
    for c, m in ((comm, model), (plain, other)):
        backward(m)
        c.allreduce_grad(m)  # the first call makes the gradient arena
        backward(m)  # the gradients as in a training step: written into the arena
        grads.update({id(p): p.grad for p in m.params()})
    del os.environ["MIBUN_SHARED_ARENA"]
    assert (comm.host_method, plain.host_method) == ("shared-memory", "allreduce")
    n = sum(p.data.size for p in model.params())
    buf = np.ones(n, np.float32)
    MPI, mc = comm.MPI, comm.mpi_comm

    def timed(f, setup=None):
        def run():
            if setup is not None:
                setup()
            comm.barrier()
            t0 = time.perf_counter()
            f()
            return time.perf_counter() - t0
        return run

    def after_backward():  # the gradients as after that backward, each time
        for p in (*model.params(), *other.params()):
            p.grad = grads[id(p)]

    def raw():
        mc.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)

    def raw_mean():
        mc.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        np.multiply(buf, 1.0 / comm.size, out=buf)

    def raw_in_step():  # after a step's compute, as the reduction of a training step
        backward()
        return timed(raw)()

    def grad_in_step():
        backward()
        return timed(lambda: comm.allreduce_grad(model, 1.0))()

    fns = {"allreduce_grad": timed(lambda: comm.allreduce_grad(model), after_backward),
           "allreduce_grad, weight 1": timed(lambda: comm.allreduce_grad(model, 1.0),
                                             after_backward),
           "allreduce_grad, weight 1, one Allreduce": timed(
               lambda: plain.allreduce_grad(other, 1.0), after_backward),
           "raw Allreduce": timed(raw),
           "raw Allreduce + scaling": timed(raw_mean),
           "allreduce_grad, weight 1, in a step": grad_in_step,
           "raw Allreduce in a step": raw_in_step}
    times = {k: [] for k in fns}
    for _ in range(3):
        for f in fns.values():
            f()
    for _ in range(repeat // 5):  # in turns, blocks of five, as benchmarks/_timing.py
        for name, f in fns.items():
            for _ in range(5):
                times[name].append(f())
    # a rank's time is the slower of the two ranks' (the step waits for both)
    out = {}
    for name, ts in times.items():
        ts = comm.allreduce(np.array(ts), op="max")
        out[name] = (1e3 * float(np.min(ts)), 1e3 * float(np.median(ts)))
    out["elements"] = int(n)
    return out


def worker(args):
    from mpi4py import MPI

    from mibun import distributed
    world = distributed.create_communicator()
    alone = distributed.create_communicator(MPI.COMM_SELF)
    res = {"mlp": throughput(world, alone, "mlp", 100, args.steps, args.blocks),
           "cnn": throughput(world, alone, "cnn", 32, max(3, args.steps // 4), args.blocks),
           "allreduce": allreduce_cost(world, args.repeat)}
    if world.rank == 0:
        print("RESULT " + json.dumps(res), flush=True)


def launch(args):
    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    if not os.path.exists(mpiexec):
        mpiexec = "mpiexec"
    root = ["--allow-run-as-root"] if os.geteuid() == 0 else []
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
               MKL_NUM_THREADS="1")  # one thread per rank
    cmd = [mpiexec, "-n", "2", "--oversubscribe", "--bind-to", "none", *root,
           sys.executable, os.path.abspath(__file__), "--worker", "--steps", str(args.steps),
           "--repeat", str(args.repeat), "--blocks", str(args.blocks)]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900,
                       check=False)
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise SystemExit(f"mpiexec -n 2 failed:\n{p.stdout}\n{p.stderr}")


def ring_ms(p, nbytes, alpha, beta):
    return 1e3 * (2 * (p - 1) * alpha + 2 * (p - 1) / p * nbytes / beta)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker", action="store_true")
    ap.add_argument("--steps", type=int, default=20, help="MLP steps per block (CNN: 1/4)")
    ap.add_argument("--blocks", type=int, default=12,
                    help="blocks of 1 rank and of 2 ranks, in turns")
    ap.add_argument("--repeat", type=int, default=200, help="timed calls per allreduce row")
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    res = launch(args)
    print(f"load average at the end: {os.getloadavg()[0]:.2f} (on {os.cpu_count()} cores)")
    print(f"\nthroughput, one BLAS thread per rank (examples per second; weak scaling), "
          f"{args.blocks} blocks of each in turns: sustained (best block)")
    for m, what in (("mlp", "MLP 784-1000-1000-10, 100 per rank"),
                    ("cnn", "SmallCNN 28x28, 32 per rank")):
        a, b = res[m]["1"], res[m]["2"]
        print(f"  {what:36s} {res[m]['params'] / 1e6:.2f} M params  1 rank "
              f"{a['examples_per_s']:6.0f} ({a['best_examples_per_s']:6.0f}), "
              f"{a['ms_per_step']:.1f} ms/step  2 ranks {b['examples_per_s']:6.0f} "
              f"({b['best_examples_per_s']:6.0f}), {b['ms_per_step']:.1f} ms/step  "
              f"{b['examples_per_s'] / a['examples_per_s']:.2f}x "
              f"({b['best_examples_per_s'] / a['best_examples_per_s']:.2f}x)")
    ar = res["allreduce"]
    print(f"\nallreduce of the MLP's {ar['elements']:,} float32 gradients over 2 ranks "
          "(min / median ms)")
    base = ar["raw Allreduce"]
    for name in ALLREDUCE_ROWS:
        lo, med = ar[name]
        print(f"  {name:40s} {lo:6.2f} / {med:6.2f}   {lo / base[0]:.2f}x / "
              f"{med / base[1]:.2f}x raw")
    print("\non paper: ring allreduce per step beside the compute measured here (1 rank), "
          "no overlap of the two")
    for net, (alpha, beta) in NETWORKS.items():
        print(f"  {net}")
        for m in ("mlp", "cnn"):
            c = res[m]["1"]["ms_per_step"]
            nbytes = 4 * res[m]["params"]
            row = []
            for p in (8, 64, 512):
                r = ring_ms(p, nbytes, alpha, beta)
                row.append(f"p={p}: {r:6.2f} ms, {100 * c / (c + r):3.0f}%")
            print(f"    {m}: compute {c:.1f} ms, {nbytes / 1e6:.1f} MB   " + "   ".join(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
