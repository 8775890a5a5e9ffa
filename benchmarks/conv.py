"""A small CNN step, forward + backward: conv2d 1->16 (3x3, pad 1) -> relu -> 2x2 max pool
-> linear 3136->10 -> softmax cross entropy, batch 32 of 1x28x28, float32.

mibun vs PyTorch CPU vs two hand-written NumPy im2col steps, in one process:

* ``numpy-book``: the textbook layout (*Deep Learning from Scratch*): patches as a
  ``(N*OH*OW, C*KH*KW)`` matrix filled by a loop over kernel offsets, an ``argmax`` pool;
* ``numpy-fast``: the same math written as fast as we could by hand: one strided copy for
  the patches, a batched matmul straight into NCHW, the 2x2 pool as a maximum of four
  strided views (the algorithm mibun uses, without the framework).

All start from the same weights; the script first checks that they compute the same loss
and gradients, then times them taking turns in blocks (best and median).

Memory note: NumPy takes each big array from malloc, and glibc gives freed heap memory back
to the OS, so a step that allocates more also pays page faults (about 1 us per 4 KiB page),
and how often depends on everything else the process allocates. Measured here (2 CPUs):
with the PyTorch step in the rotation mibun was 1.12-1.20x numpy-fast; with
``--without-torch`` both steps got ~50% slower and mibun 1.15-1.35x. mibun's extra
buffers are the relu output and the relu gradient, which numpy-fast computes in place.
``MALLOC_TRIM_THRESHOLD_=268435456 MALLOC_MMAP_THRESHOLD_=268435456`` (keep freed
memory) gave about 1.15x again. Compare ratios from one run only.

Run:  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/conv.py [--repeat N]
      [--without-torch]
"""
import argparse
import functools
import gc
import os

import numpy as np
from _timing import timeit  # benchmarks/_timing.py (this folder is on sys.path)
from numpy.lib.stride_tricks import as_strided

import mibun
import mibun.functions as F

N, C, H, W = 32, 1, 28, 28
OC, K, PAD = 16, 3, 1
CLASSES = 10
PH, PW = H // 2, W // 2  # after the 2x2 pool


def make_problem(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((N, C, H, W), dtype=np.float32)
    t = rng.integers(0, CLASSES, N)
    Wc = (rng.standard_normal((OC, C, K, K)) * np.sqrt(1 / (C * K * K))).astype(np.float32)
    bc = (rng.standard_normal(OC) * 0.1).astype(np.float32)
    Wl = (rng.standard_normal((OC * PH * PW, CLASSES)) * np.sqrt(1 / (OC * PH * PW)))
    Wl = Wl.astype(np.float32)
    bl = np.zeros(CLASSES, np.float32)
    return x, t, [Wc, bc, Wl, bl]


# --- mibun ---------------------------------------------------------------------------------
def mibun_step(params, x, t):
    Wc, bc, Wl, bl = params
    for p in params:
        p.cleargrad()
    h = F.relu(F.conv2d(x, Wc, bc, stride=1, pad=PAD))
    h = F.pooling(h, 2, stride=2)
    y = F.linear(F.reshape(h, (N, -1)), Wl, bl)
    loss = F.softmax_cross_entropy(y, t)
    loss.backward()
    return loss.data, [p.grad.data for p in params]


# --- hand-written NumPy: the textbook layout ---------------------------------------------------
def _im2col_book(x, k, pad):
    n, c, h, w = x.shape
    oh, ow = h + 2 * pad - k + 1, w + 2 * pad - k + 1
    img = np.pad(x, [(0, 0), (0, 0), (pad, pad), (pad, pad)])
    col = np.empty((n, c, k, k, oh, ow), dtype=x.dtype)
    for j in range(k):
        for i in range(k):
            col[:, :, j, i] = img[:, :, j:j + oh, i:i + ow]
    return col.transpose(0, 4, 5, 1, 2, 3).reshape(n * oh * ow, -1)


def numpy_book_step(params, x, t):
    Wc, bc, Wl, bl = params
    col = _im2col_book(x, K, PAD)  # (N*H*W, C*K*K); stride 1, pad 1 keeps H, W
    Wm = Wc.reshape(OC, -1)
    h = col @ Wm.T
    h += bc
    a = np.maximum(h, 0)  # (N*H*W, OC), rows (n, i, j)
    a4 = a.reshape(N, H, W, OC).transpose(0, 3, 1, 2)
    # 2x2 pool, the textbook way: windows as rows, argmax per row
    pcol = a4.reshape(N, OC, PH, 2, PW, 2).transpose(0, 2, 4, 1, 3, 5).reshape(-1, 4)
    arg = pcol.argmax(axis=1)
    p = pcol[np.arange(pcol.shape[0]), arg].reshape(N, PH, PW, OC).transpose(0, 3, 1, 2)
    flat = p.reshape(N, -1)
    y = flat @ Wl
    y += bl
    y -= y.max(axis=1, keepdims=True)
    e = np.exp(y)
    e /= e.sum(axis=1, keepdims=True)
    loss = -np.log(e[np.arange(N), t]).mean()
    gy = e
    gy[np.arange(N), t] -= 1
    gy *= np.float32(1 / N)
    gWl = flat.T @ gy
    gbl = gy.sum(axis=0)
    gflat = gy @ Wl.T
    gp = gflat.reshape(N, OC, PH, PW).transpose(0, 2, 3, 1).reshape(-1)
    gpcol = np.zeros((gp.size, 4), np.float32)
    gpcol[np.arange(gp.size), arg] = gp
    ga4 = gpcol.reshape(N, PH, PW, OC, 2, 2).transpose(0, 3, 1, 4, 2, 5).reshape(N, OC, H, W)
    gh = ga4.transpose(0, 2, 3, 1).reshape(-1, OC) * (h > 0)
    gWc = (gh.T @ col).reshape(Wc.shape)
    gbc = gh.sum(axis=0)
    return loss, [gWc, gbc, gWl, gbl]


# --- hand-written NumPy: as fast as we could -----------------------------------------------------
def numpy_fast_step(params, x, t):
    Wc, bc, Wl, bl = params
    img = np.zeros((N, C, H + 2 * PAD, W + 2 * PAD), np.float32)
    img[:, :, PAD:PAD + H, PAD:PAD + W] = x
    sn, sc, sh, sw = img.strides
    col = np.ascontiguousarray(as_strided(img, (N, C, K, K, H, W), (sn, sc, sh, sw, sh, sw)))
    col = col.reshape(N, C * K * K, H * W)
    h = np.matmul(Wc.reshape(OC, -1), col)  # (N, OC, H*W): already NCHW
    h += bc[:, None]
    a = np.maximum(h, 0, out=h).reshape(N, OC, H, W)
    # 2x2 pool: a maximum over the four strided views (a multi-axis .max() is much slower)
    views = [a[:, :, j::2, i::2] for j in (0, 1) for i in (0, 1)]
    p = np.maximum(np.maximum(views[0], views[1]), np.maximum(views[2], views[3]))
    flat = p.reshape(N, -1)
    y = flat @ Wl
    y += bl
    y -= y.max(axis=1, keepdims=True)
    e = np.exp(y)
    e /= e.sum(axis=1, keepdims=True)
    loss = -np.log(e[np.arange(N), t]).mean()
    gy = e
    gy[np.arange(N), t] -= 1
    gy *= np.float32(1 / N)
    gWl = flat.T @ gy
    gbl = gy.sum(axis=0)
    gp = (gy @ Wl.T).reshape(N, OC, PH, PW)
    # the max entry of each window gets the gradient (this data has ties only among the
    # relu's zeros, which the relu mask clears)
    ga = np.empty_like(a)
    for k, v in enumerate(views):
        np.multiply(v == p, gp, out=ga[:, :, k // 2::2, k % 2::2])
    ga *= a > 0
    gh = ga.reshape(N, OC, H * W)
    gWc = np.matmul(gh, col.transpose(0, 2, 1)).sum(axis=0).reshape(Wc.shape)
    gbc = gh.sum(axis=(0, 2))
    return loss, [gWc, gbc, gWl, gbl]


# --- PyTorch --------------------------------------------------------------------------------
def torch_step(params, x, t):
    import torch.nn.functional as TF
    Wc, bc, Wl, bl = params
    for p in params:
        p.grad = None
    h = TF.relu(TF.conv2d(x, Wc, bc, padding=PAD))
    h = TF.max_pool2d(h, 2, 2)
    y = TF.linear(h.reshape(N, -1), Wl.T, bl)  # F.linear takes (out, in): pass a view
    loss = TF.cross_entropy(y, t)
    loss.backward()
    return loss.detach(), [p.grad for p in params]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=100)
    ap.add_argument("--without-torch", action="store_true",
                    help="leave the PyTorch step out (see the note on memory above)")
    args = ap.parse_args()
    x, t, params = make_problem()

    mparams = [mibun.Parameter(p.copy()) for p in params]
    loss_m, g_m = mibun_step(mparams, x, t)
    assert loss_m.dtype == np.float32 and all(g.dtype == np.float32 for g in g_m)
    fns = {}
    try:
        if args.without_torch:
            raise ImportError
        import torch
        tparams = [torch.from_numpy(p.copy()).requires_grad_(True) for p in params]
        tx, tt = torch.from_numpy(x), torch.from_numpy(t)
        loss_t, g_t = torch_step(tparams, tx, tt)
        results = [("pytorch", loss_t.numpy(), [g.numpy() for g in g_t])]
        fns["pytorch"] = lambda: torch_step(tparams, tx, tt)
        threads = f"torch threads {torch.get_num_threads()}, "
    except ImportError:
        results, threads = [], ""
        print("pytorch left out or not installed: no ratio against it")
    for name, step in (("numpy-book", numpy_book_step), ("numpy-fast", numpy_fast_step)):
        loss, gs = step(params, x, t)
        results.append((name, loss, gs))
        fns[name] = functools.partial(step, params, x, t)
    for name, loss, gs in results:  # same loss and same gradients everywhere
        np.testing.assert_allclose(loss, loss_m, rtol=1e-5, err_msg=name)
        for g, gm in zip(gs, g_m):
            np.testing.assert_allclose(g, gm, rtol=1e-3, atol=1e-5, err_msg=name)
    fns["mibun"] = lambda: mibun_step(mparams, x, t)
    gc.collect()
    timings = timeit(fns, args.repeat)

    print(f"CNN conv{C}->{OC} {K}x{K} pad {PAD}, relu, 2x2 max pool, linear->{CLASSES}, "
          f"softmax CE; batch {N}x{C}x{H}x{W} float32, forward + backward "
          f"({threads}{os.cpu_count()} CPUs; best and median of {args.repeat})")
    for name, (best, med) in timings.items():
        print(f"  {name:10s} {best:7.2f} ms  (median {med:.2f})")
    m_best, m_med = timings["mibun"]
    for name in ("pytorch", "numpy-book", "numpy-fast"):
        if name in timings:
            best, med = timings[name]
            print(f"  mibun / {name:10s} {m_best / best:5.2f}x  (median {m_med / med:.2f}x)")


if __name__ == "__main__":
    main()
