"""The timing loop the benchmarks share."""
import time

import numpy as np


def timeit(fns, repeat, block=5):
    """Best and median ms of each function in ``fns`` (a dict name -> callable).

    The functions take turns in blocks of ``block`` timed calls, so that load from other
    processes hits all of them alike; each block starts with one untimed call. Single calls
    in turn measured each step in the state the previous one left (freed buffers, cache, and
    NumPy's and PyTorch's thread pools slowing each other down for a moment after a switch):
    the numbers swung by 20% with the order of the functions.
    """
    for fn in fns.values():
        for _ in range(3):
            fn()
    times = {name: [] for name in fns}
    for _ in range(max(1, repeat // block)):
        for name, fn in fns.items():
            fn()
            for _ in range(block):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    return {name: (min(ts) * 1e3, float(np.median(ts)) * 1e3) for name, ts in times.items()}


def optional_torch():
    """PyTorch set to one thread, or None where it is not installed (the benchmark then
    runs without its PyTorch row)."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)
    return torch


def same_losses(step_a, step_b, steps=3, rtol=1e-5):
    """Take ``steps`` training steps of both (each returns its loss as a float) and assert
    the losses agree step by step, so both sides train the same network the same way."""
    for _ in range(steps):
        a, b = step_a(), step_b()
        assert abs(a - b) <= rtol * max(1.0, abs(b)), (a, b)
