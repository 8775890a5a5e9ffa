"""Collectives on CuPy arrays: through a CUDA-aware MPI, NCCL (``cupy.cuda.nccl``), or
staged through host memory."""
from __future__ import annotations

import os

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
