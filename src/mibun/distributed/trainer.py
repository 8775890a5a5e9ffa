"""``mibun train --distributed``: the command on every rank, the data-parallel trainer
(rank 0 alone prints and writes), agreed interrupts, and the fault hook the tests use."""
from __future__ import annotations

import os
import signal
import sys

import numpy as np

from mibun import errors, train
from mibun.distributed.communicator import create_communicator
from mibun.distributed.multi_node import create_multi_node_optimizer
from mibun.distributed.shared import _split_bounds


def run_command(command, args) -> int:
    """Run ``command(args)`` (the ``mibun train`` command) on this rank of an MPI job.

    Sets ``args.comm``; ranks other than 0 print nothing on stdout. Any error on any rank
    is printed with the rank's number and ends every rank (``MPI_Abort``, exit status
    2 for a bad argument, 1 otherwise, 130 for a second Ctrl-C), so no rank waits for
    one that has stopped.
    """
    try:
        comm = create_communicator()
    except ImportError as e:
        raise train.ConfigError(f"--distributed: {e}") from None
    args.comm = comm
    if comm.rank != 0:  # rank 0 alone prints; errors still go to every rank's stderr
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (for the life of the process)
    try:
        return command(args)
    except BaseException as e:  # any rank that stops must stop them all
        if comm.size == 1 or (isinstance(e, SystemExit) and not e.code):
            raise  # no other rank to stop: the usual one-line report
        code = 130 if isinstance(e, KeyboardInterrupt) else (
            2 if isinstance(e, (train.ConfigError, errors.UsageError)) else 1)
        text = " ".join(str(e).split()) or type(e).__name__
        if os.environ.get("MIBUN_DEBUG"):
            import traceback
            traceback.print_exc()
        comm.abort(f"mibun train: {text}", code)
        raise  # not reached


class _AgreedInterrupt(train._Interrupt):
    """Ctrl-C on ``mpiexec`` reaches the ranks as SIGTERM (then SIGKILL soon after); a
    signal sets ``local``, and the ranks agree on ``requested`` once per step, so they
    all stop after the same step."""

    flag = "local"
    stream = "stdout"  # only rank 0 has one (the others' stdout goes to /dev/null)

    def __init__(self):
        super().__init__()
        self.local = False

    def __enter__(self):
        super().__enter__()
        if self.installed:
            self.old_term = signal.signal(signal.SIGTERM, self.handle)
        return self

    def __exit__(self, *exc):
        if self.installed:
            signal.signal(signal.SIGTERM, self.old_term)
        return super().__exit__(*exc)


def _rows(x, lo, hi):
    if isinstance(x, list):  # the time steps of a BPTT window: streams lo..hi of each
        return [a[lo:hi] for a in x]
    return x[lo:hi]


@train.data_parallel  # what train.train(..., comm=comm) runs on each rank
class DataParallelTrainer(train.Trainer):
    """``mibun train``'s loop on one rank of ``mpiexec -n N mibun train --distributed``.

    ``--batch-size`` stays the number of examples per step, shared by the ranks: step *k*
    takes the same examples as on one process (the order of epoch *e* comes from
    ``(seed, e)``), rank *r* its *r*-th contiguous part (``np.array_split``); a recurrent
    model's parallel streams are split the same way. Gradients are weighted by each rank's
    share (the loss is, before backward: then the reduction is a plain sum), so the step
    is the one process's step up to float summation order, whatever the number of ranks, and a checkpoint resumes with any number of ranks (or none).
    Losses and accuracies are summed over the ranks every step (with the stop flag, in one
    small message); the test set is evaluated whole on every rank (the same weights give
    the same numbers). Rank 0 alone writes files.
    """

    _interrupt_type = _AgreedInterrupt

    def __init__(self, cfg, xp, out_dir, comm):
        if cfg["batch_size"] < comm.size:
            raise train.ConfigError(f"--batch-size {cfg['batch_size']} is smaller than the "
                                    f"number of ranks ({comm.size}); each step's examples "
                                    "are shared by the ranks")
        if xp is not np:  # one GPU per rank of a machine
            xp.cuda.Device(comm.intra_rank % xp.cuda.runtime.getDeviceCount()).use()
        self.comm = comm
        super().__init__(cfg, xp, out_dir)
        self.writes = comm.rank == 0
        comm.bcast_data(self.model)
        self.optimizer = create_multi_node_optimizer(self.optimizer, comm)
        self._fault = _test_fault(comm.rank)

    def run(self, progress):
        if not self.writes:  # rank 0 alone shows a progress bar
            progress = train.output.make_progress(False)
        return super().run(progress)

    def _train_step(self, x, t):
        n = len(x[0]) if self.seq else len(x)  # the step's examples (streams), all ranks
        lo, hi = _split_bounds(n, self.comm.size)[self.comm.rank]
        self._share = (hi - lo) / n  # this rank's weight, on the loss (see _backward)
        self.optimizer.grad_weight = 1.0
        if hi > lo:
            loss, correct, k = super()._train_step(_rows(x, lo, hi), _rows(t, lo, hi))
        else:  # the epoch's last batch has fewer examples than there are ranks
            self.model.cleargrads()
            self.optimizer.update()  # no gradient here, but the reduction needs every rank
            loss, correct, k = 0.0, 0.0, 0
        if self._fault is not None:
            self._fault(self.epoch * self.steps_per_epoch() + self.step + 1)
        s = self.comm.allreduce(np.array([loss * k, correct, k, self.interrupt.local],
                                         dtype=np.float64))
        self.interrupt.requested = bool(s[3])
        return float(s[0] / s[2]), float(s[1]), int(s[2])

    def _backward(self, loss):
        (loss * self._share).backward()

    def save(self, path=None):
        path = path or os.path.join(self.out_dir, "checkpoint.npz")
        if self.writes:
            super().save(path)
        return path


def _test_fault(rank):
    """``_MIBUN_TEST_FAULT=RANK:STEP:raise|kill``: what the fault tests do to one rank."""
    spec = os.environ.get("_MIBUN_TEST_FAULT")
    if not spec:
        return None
    r, step, kind = spec.split(":")
    if int(r) != rank:
        return None

    def fault(global_step):
        if global_step == int(step):
            if kind == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            raise RuntimeError(f"test fault at step {global_step}")
    return fault
