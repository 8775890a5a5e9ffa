"""Optimizer steps and data loading: mibun against PyTorch, in one process.

* optimizer: one ``update()`` / ``step()`` over the float32 parameters of a
  784-1000-1000-10 MLP (1.8 M parameters, 6 arrays) with fixed gradients; mibun against
  ``torch.optim`` with ``foreach=False`` (per-parameter loop, like mibun) and its default.
* data: one epoch of batches of 100 from 60,000 uint8 28x28 images with MNIST's default
  transform (flatten, float32, / 255): mibun's ``DataLoader`` (vectorised ``get_batch``),
  the same done example by example (DeZero's way), and ``torch.utils.data.DataLoader``
  over a dataset with the same transform, and over pre-transformed tensors.

PyTorch runs on one thread (mibun's NumPy elementwise ops use one).

Run:  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/optim_data.py
"""
import os
import time

# One thread for NumPy too (OpenBLAS would use every core, PyTorch is set to one below);
# set before NumPy loads, so OpenBLAS reads it.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

import mibun
from mibun import datasets, optimizers

try:
    import torch
except ImportError:
    torch = None


def best(f, repeat=5, number=1):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            f()
        times.append((time.perf_counter() - t0) / number)
    return min(times)


class Params:
    def __init__(self, arrays, grads):
        self._named = []
        for i, (a, g) in enumerate(zip(arrays, grads)):
            p = mibun.Parameter(a.copy())
            p.grad = mibun.Variable(g)
            self._named.append((f"p{i}", p))

    def named_params(self):
        return iter(self._named)

    def params(self):
        return (p for _, p in self._named)


def bench_optimizers():
    rng = np.random.default_rng(0)
    shapes = [(784, 1000), (1000,), (1000, 1000), (1000,), (1000, 10), (10,)]
    arrays = [rng.standard_normal(s).astype(np.float32) * 0.01 for s in shapes]
    grads = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    cases = [
        ("SGD", optimizers.SGD, {"lr": 0.01}, "SGD", {"lr": 0.01}),
        ("MomentumSGD", optimizers.MomentumSGD, {"lr": 0.01},
         "SGD", {"lr": 0.01, "momentum": 0.9}),
        ("Adam", optimizers.Adam, {}, "Adam", {}),
        ("AdamW", optimizers.AdamW, {}, "AdamW", {}),
        ("RMSprop", optimizers.RMSprop, {}, "RMSprop", {}),
    ]
    print("optimizer step, 1.8 M float32 parameters (ms; ratio = mibun / torch)")
    for name, cls, kw, tname, tkw in cases:
        opt = cls(**kw).setup(Params(arrays, grads))
        t_m = best(opt.update, number=20)
        line = f"  {name:12s} mibun {t_m * 1e3:7.3f}"
        if torch is not None:
            for foreach in (False, None):
                ps = [torch.tensor(a, requires_grad=True) for a in arrays]
                for p, g in zip(ps, grads):
                    p.grad = torch.tensor(g)
                topt = getattr(torch.optim, tname)(ps, foreach=foreach, **tkw)
                t_t = best(topt.step, number=20)
                label = "torch(foreach=False)" if foreach is False else "torch(default)"
                line += f" | {label} {t_t * 1e3:7.3f} ratio {t_m / t_t:5.2f}"
        print(line)


class FakeMNIST(datasets.MNIST):
    def prepare(self):
        rng = np.random.default_rng(0)
        self.data = rng.integers(0, 256, size=(60000, 1, 28, 28), dtype=np.uint8)
        self.label = rng.integers(0, 10, size=60000).astype(np.int64)


def bench_data():
    ds = FakeMNIST(download=False)
    loader = mibun.DataLoader(ds, 100, seed=0)

    def mibun_epoch():
        for x, t in loader:
            pass

    def per_example_epoch():  # DeZero's loader: one dataset[i] call per example
        index = np.random.permutation(len(ds))
        for i in range(0, len(ds), 100):
            batch = [ds[int(j)] for j in index[i:i + 100]]
            np.array([b[0] for b in batch])
            np.array([b[1] for b in batch])

    t_m = best(mibun_epoch, repeat=3)
    t_e = best(per_example_epoch, repeat=1)
    print("one epoch, 60,000 MNIST-sized images, batch 100, flatten + float32 + /255 (s)")
    print(f"  mibun DataLoader        {t_m:7.3f}")
    print(f"  example by example      {t_e:7.3f}  ratio mibun/this {t_m / t_e:5.2f}")
    if torch is None:
        return

    class TorchDS(torch.utils.data.Dataset):
        def __len__(self):
            return len(ds)

        def __getitem__(self, i):
            x, t = ds[i]
            return torch.from_numpy(x), int(t)

    tl = torch.utils.data.DataLoader(TorchDS(), batch_size=100, shuffle=True)

    def torch_epoch():
        for x, t in tl:
            pass

    tensors = torch.utils.data.TensorDataset(
        torch.from_numpy(ds.data.reshape(60000, -1).astype(np.float32) / 255),
        torch.from_numpy(ds.label))
    tl2 = torch.utils.data.DataLoader(tensors, batch_size=100, shuffle=True)

    def torch_tensor_epoch():
        for x, t in tl2:
            pass

    t_t = best(torch_epoch, repeat=1)
    t_t2 = best(torch_tensor_epoch, repeat=3)
    print(f"  torch DataLoader        {t_t:7.3f}  ratio mibun/torch {t_m / t_t:5.2f}")
    print(f"  torch, TensorDataset    {t_t2:7.3f}  ratio mibun/torch {t_m / t_t2:5.2f}"
          "  (data transformed up front)")


if __name__ == "__main__":
    if torch is not None:
        torch.set_num_threads(1)
    bench_optimizers()
    bench_data()
