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
  4. float32 inputs give float32 outputs, gradients and tangents;
  5. the backward run on plain arrays (no graph recorded) and on Variables
     (``create_graph=True``) give the same gradients: one formula, two modes.
(``gradient_check`` in step 2 also checks every JVP against finite differences and by
duality with the VJP, to ``order``.)

The array module is a parameter (``xp``; by default ``oracle.BACKEND``, which
tests/functions/conftest.py sets per test). On CuPy the inputs move to the GPU and steps 1,
3 and 4 run there, against PyTorch on the CPU and against the same graph on NumPy; the finite
differences (step 2) run on NumPy only: they check the formula, not the device.
"""
from __future__ import annotations

import numpy as np

import mibun
from mibun import Variable, backend, func
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

    # 1. forward, 3. gradients of <w, y>, HVPs along u and JVPs along v: against PyTorch
    # (and, on another backend, against the same graph on NumPy)
    ys = _as_tuple(fn(*[Variable(to_dev(a)) if i in idx else to_dev(a)
                        for i, a in enumerate(xs)]))
    have_torch = torch_fn is not None and torch is not None
    if have_torch or xp is not np:
        ws = [rng.standard_normal(y.shape) for y in ys]
        us = [rng.standard_normal(xs[i].shape) for i in idx] if hvp else None
        vs_t = [rng.standard_normal(xs[i].shape) for i in idx]
        got = _mibun_graph(fn, xs, idx, ws, us, vs_t, to_dev)
        refs = []
        if have_torch:
            refs.append(("PyTorch", _torch_graph(torch_fn, xs, idx, ws, us, vs_t)))
        if xp is not np:
            refs.append(("NumPy", _mibun_graph(fn, xs, idx, ws, us, vs_t, lambda a: a)))
        for ref_name, ref in refs:
            for key, what in (("y", "forward"), ("g", "gradient"), ("h", "HVP"),
                              ("t", "JVP")):
                for k, (a, b) in enumerate(zip(got.get(key, ()), ref.get(key, ()))):
                    if b is None:  # a non-float output: no tangent to compare
                        continue
                    np.testing.assert_allclose(
                        a, b, rtol=rtol, atol=atol,
                        err_msg=f"{what} {k} on {xp.__name__} differs from {ref_name}")
                    assert a.shape == b.shape, (what, k, a.shape, b.shape)
        # forward-over-reverse: d/de grad(L)(x + e u) = H u, the HVP above
        for k, (fh, h) in enumerate(zip(got.get("fh", ()), got.get("h", ()))):
            np.testing.assert_allclose(fh, h, rtol=rtol, atol=atol,
                                       err_msg=f"jvp of the gradient (input {idx[k]}) "
                                               "differs from the HVP")

    # 2. finite differences, every float input, up to `order` (on NumPy: they check the
    # formula, not the device)
    if xp is np:
        gradient_check(lambda *a: fn(*_fill(xs, idx, a)), *[xs[i] for i in idx],
                       order=order, rtol=gc_rtol, atol=gc_atol, seed=seed)

    # 4. float32 stays float32 (and on the device): outputs, tangents and gradients
    if float32:
        vs32 = [Variable(to_dev(a.astype(np.float32))) if i in idx else to_dev(a)
                for i, a in enumerate(xs)]
        ys32 = _as_tuple(fn(*vs32))
        for y in ys32:
            assert backend.get_array_module(y.data) is xp, "the output left the device"
            if y.dtype.kind == "f":
                assert y.dtype == np.float32, f"float32 input gave a {y.dtype} output"
        _, t32 = func.jvp(lambda *a: fn(*_fill(vs32, idx, a)), tuple(vs32[i] for i in idx),
                          tuple(xp.ones(vs32[i].shape, np.float32) for i in idx))
        for t, y in zip(_as_tuple(t32), ys32):
            if y.dtype.kind == "f":
                assert t.dtype == np.float32, f"float32 input gave a {t.dtype} tangent"
        L32 = sum(((y * 1.5).sum() for y in ys32 if y.dtype.kind == "f"), start=0.0)
        if isinstance(L32, Variable):
            L32.backward()
            for i in idx:
                g = vs32[i].grad
                if g is not None:
                    assert backend.get_array_module(g.data) is xp, "a gradient left the device"
                    assert g.dtype == np.float32, f"float32 input {i} got a {g.dtype} grad"

    # 5. one backward formula, two modes: run on plain arrays (no graph recorded) and on
    # Variables (create_graph=True), it gives the same gradients, shapes and dtypes
    for dtype in (np.float64, np.float32) if float32 else (np.float64,):
        vsb = [Variable(to_dev(a.astype(dtype))) if i in idx else to_dev(a)
               for i, a in enumerate(xs)]
        ysb = _as_tuple(fn(*vsb))
        Lb = _loss(ysb, [to_dev(rng.standard_normal(y.shape).astype(dtype)) for y in ysb])
        if isinstance(Lb, Variable) and Lb.creator is not None:
            dvs = [vsb[i] for i in idx]
            for k, (a, b) in enumerate(zip(mibun.grad(Lb, dvs),
                                           mibun.grad(Lb, dvs, create_graph=True))):
                assert a.dtype == b.dtype and a.shape == b.shape, (k, a.dtype, b.dtype)
                np.testing.assert_allclose(
                    backend.as_numpy(a.data), backend.as_numpy(b.data),
                    rtol=1e-12 if dtype == np.float64 else 1e-5, atol=0,
                    err_msg=f"input {idx[k]}: the backward on arrays differs from the "
                            "backward on Variables")
    return ys


def _fill(full, idx, args, base=None):
    """``full`` (or ``base``) with the entries at ``idx`` replaced by ``args``."""
    out = list(full if base is None else base)
    for i, a in zip(idx, args):
        out[i] = a
    return out


def _loss(ys, ws, to_dev=lambda a: a):
    ys = _as_tuple(ys)
    return sum(((y * to_dev(w)).sum() for y, w in zip(ys, ws) if y.dtype.kind == "f"),
               start=0.0)


def _mibun_graph(fn, xs, idx, ws, us, vs_t, to_dev):
    """mibun's forward, gradients of <w, y>, HVPs along ``us`` (if given) both reverse over
    reverse ("h") and forward over reverse ("fh"), and JVPs along ``vs_t``, as NumPy."""
    dev = [to_dev(a) for a in xs]
    vs = [Variable(a) if i in idx else a for i, a in enumerate(dev)]
    ys = _as_tuple(fn(*vs))
    dvs = [vs[i] for i in idx]
    gs = mibun.grad(_loss(ys, ws, to_dev), dvs, create_graph=us is not None)
    out = {"y": [backend.as_numpy(y.data) for y in ys],
           "g": [backend.as_numpy(g.data) for g in gs]}

    def only_diff(*a):
        return fn(*_fill(dev, idx, a))

    _, touts = func.jvp(only_diff, tuple(dev[i] for i in idx), tuple(to_dev(v) for v in vs_t))
    out["t"] = [backend.as_numpy(t.data) for t in _as_tuple(touts)]
    if us is not None:
        gu = sum(((g * to_dev(u)).sum() for g, u in zip(gs, us)), start=0.0)
        if isinstance(gu, Variable) and gu.creator is not None:
            out["h"] = [backend.as_numpy(h.data) for h in mibun.grad(gu, dvs)]
        else:
            out["h"] = [np.zeros(v.shape) for v in dvs]

        def grad_L(*a):
            return tuple(mibun.grad(_loss(only_diff(*a), ws, to_dev), list(a),
                                    create_graph=True))
        _, fhs = func.jvp(grad_L, tuple(dev[i] for i in idx), tuple(to_dev(u) for u in us))
        out["fh"] = [backend.as_numpy(fh.data) for fh in fhs]
    return out


def _torch_graph(torch_fn, xs, idx, ws, us, vs_t):
    """The same as ``_mibun_graph`` through torch.autograd, in float64 on the CPU."""
    # torch.tensor refuses negative strides: hand it a copy
    consts = [torch.tensor(a.copy()) if isinstance(a, np.ndarray) else a for a in xs]
    ts = [torch.tensor(a.copy(), requires_grad=True) if i in idx else consts[i]
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
    # forward mode through torch.autograd.functional: unlike torch.func it runs any
    # reference, also one that builds a torch module
    _, ttouts = torch.autograd.functional.jvp(
        lambda *a: torch_fn(*_fill(xs, idx, a, consts)),
        tuple(torch.tensor(xs[i].copy()) for i in idx), tuple(torch.tensor(v) for v in vs_t))
    out["t"] = [tt.numpy(force=True) if tt.dtype.is_floating_point else None
                for tt in _as_tuple(ttouts)]
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
