"""One-line op checks: finite differences (1st and 2nd order) and PyTorch in float64.

    check_op(F.sin, torch.sin, (3, 4))
    check_op(lambda x, y: x * y, lambda x, y: x * y, (3, 1), (1, 4))

``check_op`` runs, for random inputs of the given shapes (or given arrays):
  1. forward values against PyTorch;
  2. ``gradient_check`` (random projections, every float input, ``order`` 1 or 2);
  3. gradients for a random cotangent and Hessian-vector products (through
     ``create_graph=True``) against ``torch.autograd``; the JVP along a random direction
     (``mibun.func.jvp``) against torch's, and the forward-over-reverse HVP
     (``jvp`` of the gradient) against the reverse-over-reverse one;
  4. float32 inputs give float32 outputs, gradients and tangents.
(``gradient_check`` in step 2 also checks every JVP against finite differences and by
duality with the VJP, to ``order``.)
"""
from __future__ import annotations

import numpy as np

import mibun
from mibun import Variable, func
from mibun.utils import gradient_check

try:
    import torch
except ImportError:  # the reference is optional; tests using it are skipped
    torch = None


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
             atol=1e-8, gc_rtol=1e-4, gc_atol=1e-5, float32=True, hvp=True, diff_args=None):
    """Check a mibun op thoroughly; see the module docstring.

    Args:
        fn: mibun callable on Variables/arrays.
        torch_fn: the PyTorch equivalent on tensors (None to skip the reference).
        specs: a shape tuple (random float input) or a fixed value per argument.
        order: highest derivative order checked by finite differences.
        diff_args: indices of inputs to differentiate (default: every float array).
    """
    rng = np.random.default_rng(seed)
    xs = make_inputs(specs, rng, low, high)
    idx = [i for i, a in enumerate(xs) if _is_float_array(a)] if diff_args is None \
        else list(diff_args)

    def only_diff(*args):
        return fn(*_fill(xs, idx, args))

    # 1. forward against the reference, 3. gradients and HVPs against the reference
    vs = [Variable(a) if i in idx else a for i, a in enumerate(xs)]  # keep the layout
    ys = _as_tuple(fn(*vs))
    if torch_fn is not None and torch is not None:
        # torch.tensor refuses negative strides: hand it a copy
        torch_consts = [torch.tensor(a.copy()) if isinstance(a, np.ndarray) else a for a in xs]
        ts = [torch.tensor(a.copy(), requires_grad=True) if i in idx else
              (torch.tensor(a.copy()) if isinstance(a, np.ndarray) else a)
              for i, a in enumerate(xs)]
        tys = _as_tuple(torch_fn(*ts))
        assert len(tys) == len(ys), "output count differs from the reference"
        for y, ty in zip(ys, tys):
            np.testing.assert_allclose(y.data, ty.detach().numpy(force=True), rtol=rtol, atol=atol,
                                       err_msg="forward differs from PyTorch")
            assert y.shape == tuple(ty.shape)
        ws = [rng.standard_normal(y.shape) for y in ys]
        L = sum(((y * w).sum() for y, w in zip(ys, ws) if y.dtype.kind == "f"), start=0.0)
        tL = sum((ty * torch.tensor(w)).sum() for ty, w in zip(tys, ws)
                 if ty.dtype.is_floating_point)
        dvs = [vs[i] for i in idx]
        gs = mibun.grad(L, dvs, create_graph=hvp)
        tgs = torch.autograd.grad(tL, [ts[i] for i in idx], create_graph=hvp,
                                  allow_unused=True)
        for k, (g, tg) in enumerate(zip(gs, tgs)):
            tg = np.zeros(g.shape) if tg is None else tg.detach().numpy(force=True)
            np.testing.assert_allclose(g.data, tg, rtol=rtol, atol=atol,
                                       err_msg=f"gradient of input {idx[k]} differs from PyTorch")
        if hvp:
            us = [rng.standard_normal(vs[i].shape) for i in idx]
            gu = sum(((g * u).sum() for g, u in zip(gs, us)), start=0.0)
            tgu = sum((tg * torch.tensor(u)).sum() for tg, u in zip(tgs, us)
                      if tg is not None and tg.requires_grad)
            if isinstance(gu, Variable) and gu.creator is not None:
                hs = mibun.grad(gu, dvs)
            else:
                hs = [Variable(np.zeros(v.shape)) for v in dvs]
            if isinstance(tgu, torch.Tensor) and tgu.requires_grad:
                ths = torch.autograd.grad(tgu, [ts[i] for i in idx], allow_unused=True)
            else:
                ths = [None] * len(idx)
            for k, (h, th) in enumerate(zip(hs, ths)):
                th = np.zeros(h.shape) if th is None else th.detach().numpy(force=True)
                np.testing.assert_allclose(h.data, th, rtol=rtol, atol=atol,
                                           err_msg=f"HVP for input {idx[k]} differs from PyTorch")

        # forward mode against torch's JVP (torch.autograd.functional: unlike torch.func it
        # runs any reference, also one that builds a torch module)
        vs_t = [rng.standard_normal(vs[i].shape) for i in idx]
        _, touts = func.jvp(only_diff, tuple(xs[i] for i in idx), tuple(vs_t))
        primals = [torch.tensor(xs[i].copy()) for i in idx]
        _, ttouts = torch.autograd.functional.jvp(
            lambda *a: torch_fn(*_fill(xs, idx, a, torch_consts)), tuple(primals),
            tuple(torch.tensor(v) for v in vs_t))
        for k, (t, tt) in enumerate(zip(_as_tuple(touts), _as_tuple(ttouts))):
            if tt.dtype.is_floating_point:
                np.testing.assert_allclose(t.data, tt.numpy(force=True), rtol=rtol, atol=atol,
                                           err_msg=f"jvp of output {k} differs from torch.func")
        if hvp:  # forward-over-reverse: d/de grad(L)(x + e u) = H u, as the HVP above
            def grad_L(*a):
                return tuple(mibun.grad(_loss(only_diff(*a), ws), list(a), create_graph=True))
            _, fhs = func.jvp(grad_L, tuple(xs[i] for i in idx), tuple(us))
            for k, (h, fh) in enumerate(zip(hs, fhs)):
                np.testing.assert_allclose(fh.data, h.data, rtol=rtol, atol=atol,
                                           err_msg=f"jvp of the gradient (input {idx[k]}) "
                                                   "differs from the HVP")

    # 2. finite differences, every float input, up to `order`
    gradient_check(only_diff, *[xs[i] for i in idx], order=order, rtol=gc_rtol, atol=gc_atol,
                   seed=seed)

    # 4. float32 stays float32, gradients and tangents too
    if float32:
        vs32 = [Variable(a.astype(np.float32)) if i in idx else a for i, a in enumerate(xs)]
        ys32 = _as_tuple(fn(*vs32))
        for y in ys32:
            if y.dtype.kind == "f":
                assert y.dtype == np.float32, f"float32 input gave a {y.dtype} output"
        _, t32 = func.jvp(lambda *a: fn(*_fill(vs32, idx, a)), tuple(vs32[i] for i in idx),
                          tuple(np.ones(vs32[i].shape, np.float32) for i in idx))
        for t, y in zip(_as_tuple(t32), ys32):
            if y.dtype.kind == "f":
                assert t.dtype == np.float32, f"float32 input gave a {t.dtype} tangent"
        L32 = sum(((y * 1.5).sum() for y in ys32 if y.dtype.kind == "f"), start=0.0)
        if isinstance(L32, Variable):
            L32.backward()
            for i in idx:
                g = vs32[i].grad
                if g is not None:
                    assert g.dtype == np.float32, f"float32 input {i} got a {g.dtype} grad"
    return ys


def _fill(full, idx, args, base=None):
    """``full`` (or ``base``) with the entries at ``idx`` replaced by ``args``."""
    out = list(full if base is None else base)
    for i, a in zip(idx, args):
        out[i] = a
    return out


def _loss(ys, ws):
    ys = _as_tuple(ys)
    return sum(((y * w).sum() for y, w in zip(ys, ws) if y.dtype.kind == "f"), start=0.0)
