"""One-line op checks: finite differences (1st and 2nd order) and PyTorch in float64.

    check_op(F.sin, torch.sin, (3, 4))
    check_op(lambda x, y: x * y, lambda x, y: x * y, (3, 1), (1, 4))

``check_op`` runs, for random inputs of the given shapes (or given arrays):
  1. forward values against PyTorch;
  2. ``gradient_check`` (random projections, every float input, ``order`` 1 or 2);
  3. gradients for a random cotangent and Hessian-vector products (through
     ``create_graph=True``) against ``torch.autograd``;
  4. float32 inputs give float32 outputs and float32 gradients.

The array module is a parameter (``xp``; by default ``oracle.BACKEND``, which
tests/functions/conftest.py sets per test). On CuPy the inputs move to the GPU and steps 1,
3 and 4 run there, against PyTorch on the CPU and against the same graph on NumPy; the finite
differences (step 2) run on NumPy only: they check the formula, not the device.
"""
from __future__ import annotations

import numpy as np

import mibun
from mibun import Variable, backend
from mibun.utils import gradient_check

try:
    import torch
except ImportError:  # the reference is optional; tests using it are skipped
    torch = None


#: The array module the op tests run on (tests/functions/conftest.py sets it per test).
BACKEND = np


def available_backends():
    """``["numpy"]``, plus ``"cupy"`` when CuPy imports and sees a GPU."""
    names = ["numpy"]
    if backend.gpu_enable:
        try:
            if backend.cupy.cuda.runtime.getDeviceCount() > 0:
                names.append("cupy")
        except Exception:  # noqa: BLE001  (a CuPy without a usable driver: CPU only)
            pass
    return names


def make_inputs(specs, rng, low=-1.0, high=1.0, dtype=np.float64):
    """Shapes become uniform random arrays; arrays and other values pass through."""
    out = []
    for s in specs:
        if isinstance(s, tuple):
            out.append(rng.uniform(low, high, size=s).astype(dtype))
        else:
            out.append(s)
    return out


def _is_float_array(a):
    return isinstance(a, np.ndarray) and a.dtype.kind == "f"


def _as_tuple(y):
    return tuple(y) if isinstance(y, (tuple, list)) else (y,)


def check_op(fn, torch_fn, *specs, order=2, low=-1.0, high=1.0, seed=0, rtol=1e-6,
             atol=1e-8, gc_rtol=1e-4, gc_atol=1e-5, float32=True, hvp=True, diff_args=None,
             xp=None):
    """Check a mibun op thoroughly; see the module docstring.

    Args:
        fn: mibun callable on Variables/arrays.
        torch_fn: the PyTorch equivalent on tensors (None to skip the reference).
        specs: a shape tuple (random float input) or a fixed value per argument.
        order: highest derivative order checked by finite differences.
        diff_args: indices of inputs to differentiate (default: every float array).
        xp: the array module to run on (numpy or cupy); ``oracle.BACKEND`` by default.
    """
    xp = BACKEND if xp is None else xp
    rng = np.random.default_rng(seed)
    xs = make_inputs(specs, rng, low, high)
    idx = [i for i, a in enumerate(xs) if _is_float_array(a)] if diff_args is None \
        else list(diff_args)

    def to_dev(a):
        return xp.asarray(a) if isinstance(a, np.ndarray) and xp is not np else a

    # 1. forward, 3. gradients of <w, y> and HVPs along u: against PyTorch (and NumPy)
    ys = _as_tuple(fn(*[Variable(to_dev(a)) if i in idx else to_dev(a)
                        for i, a in enumerate(xs)]))
    have_torch = torch_fn is not None and torch is not None
    if have_torch or xp is not np:
        ws = [rng.standard_normal(y.shape) for y in ys]
        us = [rng.standard_normal(xs[i].shape) for i in idx] if hvp else None
        got = _mibun_graph(fn, xs, idx, ws, us, to_dev)
        refs = []
        if have_torch:
            refs.append(("PyTorch", _torch_graph(torch_fn, xs, idx, ws, us)))
        if xp is not np:
            refs.append(("NumPy", _mibun_graph(fn, xs, idx, ws, us, lambda a: a)))
        for ref_name, ref in refs:
            for key, what in (("y", "forward"), ("g", "gradient"), ("h", "HVP")):
                for k, (a, b) in enumerate(zip(got.get(key, ()), ref.get(key, ()))):
                    np.testing.assert_allclose(
                        a, b, rtol=rtol, atol=atol,
                        err_msg=f"{what} {k} on {xp.__name__} differs from {ref_name}")
                    assert a.shape == b.shape, (what, k, a.shape, b.shape)

    # 2. finite differences, every float input, up to `order` (on NumPy: they check the
    # formula, not the device)
    if xp is np:
        def only_diff(*args):
            full = list(xs)
            for i, a in zip(idx, args):
                full[i] = a
            return fn(*full)

        gradient_check(only_diff, *[xs[i] for i in idx], order=order, rtol=gc_rtol,
                       atol=gc_atol, seed=seed)

    # 4. float32 stays float32 (and on the device), gradients too
    if float32:
        vs32 = [Variable(to_dev(a.astype(np.float32))) if i in idx else to_dev(a)
                for i, a in enumerate(xs)]
        ys32 = _as_tuple(fn(*vs32))
        for y in ys32:
            assert backend.get_array_module(y.data) is xp, "the output left the device"
            if y.dtype.kind == "f":
                assert y.dtype == np.float32, f"float32 input gave a {y.dtype} output"
        L32 = sum(((y * 1.5).sum() for y in ys32 if y.dtype.kind == "f"), start=0.0)
        if isinstance(L32, Variable):
            L32.backward()
            for i in idx:
                g = vs32[i].grad
                if g is not None:
                    assert backend.get_array_module(g.data) is xp, "a gradient left the device"
                    assert g.dtype == np.float32, f"float32 input {i} got a {g.dtype} grad"
    return ys


def _mibun_graph(fn, xs, idx, ws, us, to_dev):
    """mibun's forward, gradients of <w, y> and HVPs along ``us`` (if given), as NumPy."""
    vs = [Variable(to_dev(a)) if i in idx else to_dev(a) for i, a in enumerate(xs)]
    ys = _as_tuple(fn(*vs))
    L = sum(((y * to_dev(w)).sum() for y, w in zip(ys, ws) if y.dtype.kind == "f"),
            start=0.0)
    dvs = [vs[i] for i in idx]
    gs = mibun.grad(L, dvs, create_graph=us is not None)
    out = {"y": [backend.as_numpy(y.data) for y in ys],
           "g": [backend.as_numpy(g.data) for g in gs]}
    if us is not None:
        gu = sum(((g * to_dev(u)).sum() for g, u in zip(gs, us)), start=0.0)
        if isinstance(gu, Variable) and gu.creator is not None:
            out["h"] = [backend.as_numpy(h.data) for h in mibun.grad(gu, dvs)]
        else:
            out["h"] = [np.zeros(v.shape) for v in dvs]
    return out


def _torch_graph(torch_fn, xs, idx, ws, us):
    """The same as ``_mibun_graph`` through torch.autograd, in float64 on the CPU."""
    # torch.tensor refuses negative strides: hand it a copy
    ts = [torch.tensor(a.copy(), requires_grad=True) if i in idx else
          (torch.tensor(a.copy()) if isinstance(a, np.ndarray) else a)
          for i, a in enumerate(xs)]
    tys = _as_tuple(torch_fn(*ts))
    assert len(tys) == len(ws), "output count differs from the reference"
    tL = sum((ty * torch.tensor(w)).sum() for ty, w in zip(tys, ws)
             if ty.dtype.is_floating_point)
    dts = [ts[i] for i in idx]
    tgs = torch.autograd.grad(tL, dts, create_graph=us is not None, allow_unused=True)
    out = {"y": [ty.detach().numpy(force=True) for ty in tys],
           "g": [np.zeros(t.shape) if tg is None else tg.detach().numpy(force=True)
                 for t, tg in zip(dts, tgs)]}
    if us is not None:
        tgu = sum((tg * torch.tensor(u)).sum() for tg, u in zip(tgs, us)
                  if tg is not None and tg.requires_grad)
        if isinstance(tgu, torch.Tensor) and tgu.requires_grad:
            ths = torch.autograd.grad(tgu, dts, allow_unused=True)
        else:
            ths = [None] * len(dts)
        out["h"] = [np.zeros(t.shape) if th is None else th.detach().numpy(force=True)
                    for t, th in zip(dts, ths)]
    return out
