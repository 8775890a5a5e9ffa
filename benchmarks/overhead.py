"""Per-op overhead: a 1000-op chain alternating tanh and multiply-by-constant on a 0-d
float64 value, forward + backward, mibun vs PyTorch CPU in one process; beside them the
floor of mibun's design (benchmarks/_floor_engine.py: the same engine with nothing but
the two ops, no checks, no modes), so the distance from mibun to it is what mibun's checks
and modes cost, and from it to PyTorch what a Python engine of this design costs.

Run:  python benchmarks/overhead.py   (unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE first)
"""
import gc
import os

# One thread for NumPy too (OpenBLAS would use every core, PyTorch is set to one below);
# set before NumPy loads, so OpenBLAS reads it.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import _floor_engine as floor  # benchmarks/ (this folder is on sys.path)
import numpy as np
from _timing import timeit  # benchmarks/_timing.py

import mibun
import mibun.functions as F

N_OPS = 1000
REPEAT = 60


def chain(x, tanh, n=N_OPS):
    """The chain for any framework: ``tanh`` is F.tanh or torch.tanh."""
    y = x
    for _ in range(n // 2):
        y = tanh(y)
        y = y * 1.01
    return y


def chain_mibun():
    x = mibun.Variable(np.array(0.5))
    chain(x, F.tanh).backward()
    return x.grad


def floor_chain(x, n=N_OPS):
    """The same chain in the floor engine (its Var has no operators)."""
    y = x
    for _ in range(n // 2):
        y = floor.Mul()(floor.Tanh()(y), 1.01)
    return y


def chain_floor():
    x = floor.Var(np.array(0.5))
    floor.backward(floor_chain(x))
    return x.grad


def chain_torch():
    import torch
    x = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    chain(x, torch.tanh).backward()
    return x.grad


def main():
    fns = {"mibun": chain_mibun, "floor": chain_floor}
    assert abs(float(chain_floor()) - float(chain_mibun().data)) < 1e-12
    try:
        import torch
        torch.set_num_threads(1)
        assert abs(float(chain_torch()) - float(chain_mibun().data)) < 1e-12
        fns["pytorch"] = chain_torch
    except ImportError:
        torch = None
    gc.collect()
    # alternating blocks (benchmarks/_timing.py): this machine's speed drifts by 2x over
    # seconds, which separate runs of each framework read as a ratio
    times = timeit(fns, REPEAT)
    (m_best, m_med) = times["mibun"]
    print(f"mibun  : {m_best / N_OPS * 1e3:6.2f} us/op (median {m_med / N_OPS * 1e3:.2f})")
    f_best, f_med = times["floor"]
    print(f"floor  : {f_best / N_OPS * 1e3:6.2f} us/op (median {f_med / N_OPS * 1e3:.2f}), "
          f"the design's floor: mibun/floor {m_best / f_best:.2f}x")
    if torch is None:
        print("pytorch not installed: no ratio")
        return
    t_best, t_med = times["pytorch"]
    print(f"pytorch: {t_best / N_OPS * 1e3:6.2f} us/op (median {t_med / N_OPS * 1e3:.2f})")
    print(f"ratio mibun/pytorch: {m_best / t_best:.2f}x (median {m_med / t_med:.2f}x); "
          f"floor/pytorch {f_best / t_best:.2f}x")


if __name__ == "__main__":
    main()
