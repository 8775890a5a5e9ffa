"""Optimizers against torch.optim in float64, hooks, schedules, float32, saved state."""
import math

import numpy as np
import pytest

import mibun
import mibun.optimizers as O
from mibun import Parameter, Variable, optimizer_base, optimizers

torch = pytest.importorskip("torch")

SHAPES = [(3, 4), (), (5,), (2, 1, 3)]


class Params:
    """A stand-in target: named parameters, as Layer.named_params() gives them."""

    def __init__(self, arrays, names=None):
        names = names or [f"l{i}/W" for i in range(len(arrays))]
        self._named = [(n, Parameter(a.copy())) for n, a in zip(names, arrays)]

    def named_params(self):
        return iter(self._named)

    def params(self):
        return (p for _, p in self._named)


def make_problem(seed=0, dtype=np.float64, steps=6):
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    grads = [[rng.standard_normal(s).astype(dtype) for s in SHAPES] for _ in range(steps)]
    # Some steps leave a parameter without a gradient: it must be skipped (state untouched).
    skips = {1: {1}, 3: {0, 3}}
    return arrays, grads, skips


def run_mibun(opt, arrays, grads, skips, lrs=None):
    target = Params(arrays)
    opt.setup(target)
    for k, gs in enumerate(grads):
        if lrs is not None:
            opt.lr = lrs[k]
        for i, (p, g) in enumerate(zip(target.params(), gs)):
            p.grad = None if i in skips.get(k, ()) else Variable(g.copy())
        opt.update()
    return [p.data for p in target.params()], opt


def run_torch(make, arrays, grads, skips, lrs=None):
    ps = [torch.tensor(a.copy(), requires_grad=True) for a in arrays]
    opt = make(ps)
    for k, gs in enumerate(grads):
        if lrs is not None:
            for group in opt.param_groups:
                group["lr"] = lrs[k]
        for i, (p, g) in enumerate(zip(ps, gs)):
            p.grad = None if i in skips.get(k, ()) else torch.tensor(g.copy())
        opt.step()
    return [p.detach().numpy() for p in ps]


CASES = {
    "SGD": (lambda: optimizers.SGD(lr=0.1),
            lambda ps: torch.optim.SGD(ps, lr=0.1, foreach=False)),
    "MomentumSGD": (lambda: optimizers.MomentumSGD(lr=0.1, momentum=0.8),
                    lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.8, foreach=False)),
    "Nesterov": (lambda: optimizers.Nesterov(lr=0.05, momentum=0.9),
                 lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True,
                                            foreach=False)),
    "AdaGrad": (lambda: optimizers.AdaGrad(lr=0.1, eps=1e-8),
                lambda ps: torch.optim.Adagrad(ps, lr=0.1, eps=1e-8, foreach=False)),
    "AdaDelta": (lambda: optimizers.AdaDelta(rho=0.95, eps=1e-6, lr=0.7),
                 lambda ps: torch.optim.Adadelta(ps, lr=0.7, rho=0.95, eps=1e-6,
                                                 foreach=False)),
    "RMSprop": (lambda: optimizers.RMSprop(lr=0.01, alpha=0.9, eps=1e-8),
                lambda ps: torch.optim.RMSprop(ps, lr=0.01, alpha=0.9, eps=1e-8,
                                               foreach=False)),
    "RMSprop-momentum": (lambda: optimizers.RMSprop(lr=0.01, alpha=0.9, momentum=0.5),
                         lambda ps: torch.optim.RMSprop(ps, lr=0.01, alpha=0.9, eps=1e-8,
                                                        momentum=0.5, foreach=False)),
    "Adam": (lambda: optimizers.Adam(alpha=0.01, beta1=0.8, beta2=0.99, eps=1e-3),
             lambda ps: torch.optim.Adam(ps, lr=0.01, betas=(0.8, 0.99), eps=1e-3,
                                         foreach=False)),
    "Adam-lr-alias": (lambda: optimizers.Adam(lr=0.02),
                      lambda ps: torch.optim.Adam(ps, lr=0.02, foreach=False)),
    "AdamW": (lambda: optimizers.AdamW(alpha=0.01, weight_decay=0.1, eps=1e-3),
              lambda ps: torch.optim.AdamW(ps, lr=0.01, weight_decay=0.1, eps=1e-3,
                                           foreach=False)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_matches_torch_float64(name):
    make_m, make_t = CASES[name]
    arrays, grads, skips = make_problem()
    got, _ = run_mibun(make_m(), arrays, grads, skips)
    want = run_torch(make_t, arrays, grads, skips)
    for g, w, a in zip(got, want, arrays):
        assert not np.array_equal(g, a)  # the parameter moved
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14, err_msg=name)


@pytest.mark.parametrize("name", ["SGD", "MomentumSGD", "Nesterov", "RMSprop-momentum",
                                  "Adam", "AdamW"])
def test_matches_torch_with_changing_lr(name):
    # A schedule changes lr between steps; the momentum buffer must follow PyTorch's form.
    make_m, make_t = CASES[name]
    arrays, grads, skips = make_problem(seed=1)
    lrs = [0.1 * 0.5 ** k for k in range(len(grads))]
    got, _ = run_mibun(make_m(), arrays, grads, skips, lrs)
    want = run_torch(make_t, arrays, grads, skips, lrs)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14, err_msg=name)


@pytest.mark.parametrize("name", list(CASES))
def test_float32_stays_float32(name):
    make_m, _ = CASES[name]
    arrays, grads, skips = make_problem(dtype=np.float32)
    got, opt = run_mibun(make_m(), arrays, grads, skips)
    for g in got:
        assert g.dtype == np.float32
    for s in opt.state.values():
        for k, v in s.items():
            assert k == "step" or v.dtype == np.float32
    # and the float32 result follows the float64 one
    got64, _ = run_mibun(make_m(), [a.astype(np.float64) for a in arrays],
                         [[g.astype(np.float64) for g in gs] for gs in grads], skips)
    for g, w in zip(got, got64):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)


def test_adam_lr_is_alpha():
    opt = optimizers.Adam(alpha=0.003)
    assert opt.lr == opt.alpha == 0.003
    opt.lr = 0.5
    assert opt.alpha == 0.5
    assert optimizers.Adam(lr=0.1).alpha == 0.1


def test_adam_differs_from_dezero_eps_placement():
    # Documented choice: eps is added to the bias-corrected sqrt(v) (PyTorch), not to the
    # raw sqrt(v) (DeZero). With a large eps the first step shows the difference.
    p = Parameter(np.array([1.0]))
    p.grad = Variable(np.array([0.5]))
    opt = optimizers.Adam(alpha=0.1, eps=0.1).setup(Params([p.data]))
    target = opt.target
    next(target.params()).grad = Variable(np.array([0.5]))
    opt.update()
    got = next(target.params()).data
    # PyTorch: m_hat = g, v_hat = g^2: step = alpha g / (|g| + eps)
    np.testing.assert_allclose(got, 1.0 - 0.1 * 0.5 / (0.5 + 0.1), rtol=1e-14)


def test_skips_params_without_grad_and_keeps_no_state():
    target = Params([np.ones(3), np.ones(2)])
    opt = optimizers.Adam().setup(target)
    p0, p1 = target.params()
    p0.grad = Variable(np.ones(3))
    opt.update()
    assert np.array_equal(p1.data, np.ones(2))
    assert list(opt.state) == ["l0/W"]
    assert opt.t == 1


# --- hooks ----------------------------------------------------------------------------------
def test_weight_decay_hook_matches_torch():
    arrays, grads, skips = make_problem(seed=2)

    def make():
        opt = optimizers.MomentumSGD(lr=0.1, momentum=0.9)
        opt.add_hook(optimizers.WeightDecay(0.01))
        return opt

    got, _ = run_mibun(make(), arrays, grads, skips)
    want = run_torch(lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01,
                                                foreach=False), arrays, grads, skips)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("max_norm", [0.5, 1e6])
def test_clip_grad_matches_torch(max_norm):
    rng = np.random.default_rng(3)
    arrays = [rng.standard_normal(s) for s in SHAPES]
    gs = [rng.standard_normal(s) for s in SHAPES]
    target = Params(arrays)
    for p, g in zip(target.params(), gs):
        p.grad = Variable(g.copy())
    optimizers.ClipGrad(max_norm)(list(target.params()))
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    for t, g in zip(ts, gs):
        t.grad = torch.tensor(g.copy())
    torch.nn.utils.clip_grad_norm_(ts, max_norm, foreach=False)
    for p, t in zip(target.params(), ts):
        np.testing.assert_allclose(p.grad.data, t.grad.numpy(), rtol=1e-12)
    total = math.sqrt(sum(float((p.grad.data ** 2).sum()) for p in target.params()))
    assert total <= max_norm * (1 + 1e-9) or max_norm > 1e5


def test_clip_grad_float32_and_shared_grad():
    # y = W1 + W2 gives both parameters the same gradient Variable; clipping must scale it
    # once for each parameter, not twice (no in-place change of a shared array).
    W1 = Parameter(np.zeros(4, dtype=np.float32))
    W2 = Parameter(np.zeros(4, dtype=np.float32))
    y = mibun.functions.sum(W1 + W2)
    y.backward()
    target = Params([], [])
    target._named = [("a", W1), ("b", W2)]
    opt = optimizers.SGD(lr=1.0).setup(target)
    opt.add_hook(optimizers.ClipGrad(1.0))
    opt.update()
    # global norm of two ones(4) grads is sqrt(8): each grad becomes ones / sqrt(8)
    expected = -np.ones(4) / math.sqrt(8)
    np.testing.assert_allclose(W1.data, expected, rtol=1e-5)
    np.testing.assert_allclose(W2.data, expected, rtol=1e-5)
    assert W1.data.dtype == np.float32


def test_weight_decay_shared_grad():
    W1 = Parameter(np.ones(2))
    W2 = Parameter(np.full(2, 3.0))
    mibun.functions.sum(W1 + W2).backward()
    target = Params([], [])
    target._named = [("a", W1), ("b", W2)]
    opt = optimizers.SGD(lr=1.0).setup(target)
    opt.add_hook(optimizers.WeightDecay(0.5))
    opt.update()
    np.testing.assert_allclose(W1.data, 1 - (1 + 0.5 * 1))
    np.testing.assert_allclose(W2.data, 3 - (1 + 0.5 * 3))


def test_freeze_param_layer_and_parameter():
    model = mibun.models.MLP((5, 3))
    x = np.random.default_rng(0).standard_normal((4, 2)).astype(np.float32)
    mibun.functions.sum(model(x)).backward()
    frozen = {n: p.data.copy() for n, p in model.named_params() if n.startswith("l0/")}
    other = {n: p.data.copy() for n, p in model.named_params() if n.startswith("l1/")}
    opt = optimizers.Adam(alpha=0.1).setup(model)
    opt.add_hook(optimizers.FreezeParam(model.l0))
    opt.update()  # DeZero's update crashed here (update_one on a None grad)
    for n, p in model.named_params():
        if n in frozen:
            assert np.array_equal(p.data, frozen[n])
        else:
            assert not np.array_equal(p.data, other[n])
    assert set(opt.state) == set(other)
    p = next(model.l1.params())
    opt2 = optimizers.SGD().setup(model)
    opt2.add_hook(optimizers.FreezeParam(p))
    before = p.data.copy()
    opt2.update()
    assert np.array_equal(p.data, before)


def test_hooks_after_freeze_param_see_only_the_trained_params():
    # FreezeParam drops gradients; a ClipGrad or WeightDecay added after it used to crash
    # on the frozen parameters (None.data). The clip norm is that of the trained ones only.
    rng = np.random.default_rng(4)
    arrays = [rng.standard_normal(s) for s in SHAPES]
    gs = [rng.standard_normal(s) for s in SHAPES]
    target = Params(arrays)
    frozen = list(target.params())[:2]
    for p, g in zip(target.params(), gs):
        p.grad = Variable(g.copy())
    opt = optimizers.SGD(lr=0.1).setup(target)
    opt.add_hook(optimizers.FreezeParam(*frozen))
    opt.add_hook(optimizers.WeightDecay(0.01))
    opt.add_hook(optimizers.ClipGrad(0.5))
    opt.update()
    ts = [torch.tensor(a.copy(), requires_grad=True) for a in arrays[2:]]
    for t, g in zip(ts, gs[2:]):
        t.grad = torch.tensor(g.copy()) + 0.01 * t.detach()
    torch.nn.utils.clip_grad_norm_(ts, 0.5, foreach=False)
    with torch.no_grad():
        for t in ts:
            t -= 0.1 * t.grad
    params = list(target.params())
    for p, a in zip(params[:2], arrays[:2]):
        np.testing.assert_array_equal(p.data, a)
    for p, t in zip(params[2:], ts):
        np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=1e-12)


# --- schedules ------------------------------------------------------------------------------
def test_step_lr_matches_torch():
    opt = optimizers.SGD(lr=0.3)
    sched = optimizers.StepLR(opt, step_size=3, gamma=0.5)
    t = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.3)
    tsched = torch.optim.lr_scheduler.StepLR(t, step_size=3, gamma=0.5)
    for _ in range(10):
        sched.step()
        t.step()
        tsched.step()
        assert opt.lr == pytest.approx(t.param_groups[0]["lr"], rel=1e-12)


def test_cosine_lr_matches_torch():
    opt = optimizers.Adam(alpha=0.1)
    sched = optimizers.CosineLR(opt, t_max=7, eta_min=0.01)
    t = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    tsched = torch.optim.lr_scheduler.CosineAnnealingLR(t, T_max=7, eta_min=0.01)
    for _ in range(7):
        sched.step()
        t.step()
        tsched.step()
        assert opt.lr == pytest.approx(t.param_groups[0]["lr"], rel=1e-12)
        assert opt.alpha == opt.lr
    assert sched.step() == pytest.approx(0.01)  # held at eta_min after t_max


def test_schedule_state_roundtrip():
    opt = optimizers.SGD(lr=1.0)
    sched = optimizers.StepLR(opt, 2, 0.1)
    for _ in range(3):
        sched.step()
    opt2 = optimizers.SGD(lr=1.0)
    sched2 = optimizers.StepLR(opt2, 2, 0.1)
    sched2.load_state_dict(sched.state_dict())
    assert opt2.lr == opt.lr
    assert sched2.step() == sched.step()


@pytest.mark.parametrize("bad", [0, -1])
def test_schedule_bad_args(bad):
    with pytest.raises(ValueError, match="StepLR"):
        optimizers.StepLR(optimizers.SGD(), step_size=bad)
    with pytest.raises(ValueError, match="CosineLR"):
        optimizers.CosineLR(optimizers.SGD(), t_max=bad)


# --- state dict -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["SGD", "MomentumSGD", "AdaDelta", "RMSprop-momentum",
                                  "Adam", "AdamW"])
def test_state_dict_resume_is_exact(name):
    make_m, _ = CASES[name]
    arrays, grads, skips = make_problem(seed=4, steps=6)
    full, _ = run_mibun(make_m(), arrays, grads, skips)
    half, opt = run_mibun(make_m(), arrays, grads[:3], skips)
    d = opt.state_dict()
    for v in d.values():
        assert isinstance(v, np.ndarray)
    resumed = make_m()
    target = Params(half)
    resumed.setup(target)
    resumed.load_state_dict(d)
    assert resumed.t == 3
    for k, gs in enumerate(grads[3:], start=3):
        for i, (p, g) in enumerate(zip(target.params(), gs)):
            p.grad = None if i in skips.get(k, ()) else Variable(g.copy())
        resumed.update()
    for a, b in zip(full, target.params()):
        assert np.array_equal(a, b.data)


def test_state_dict_keys_use_parameter_names():
    model = mibun.models.MLP((4, 2))
    x = np.ones((3, 5), dtype=np.float32)
    mibun.functions.sum(model(x)).backward()
    opt = optimizers.Adam().setup(model)
    opt.update()
    d = opt.state_dict()
    names = [n for n, _ in model.named_params()]
    assert set(d) == {"@t", "@lr"} | {f"{n}/{s}" for n in names for s in ("m", "v", "step")}
    assert d["l0/W/m"].shape == model.l0.W.shape and d["l0/W/m"].dtype == np.float32
    assert d["@t"].dtype == np.int64 and d["@t"].shape == ()
    # a fresh model and optimizer take the state
    model2 = mibun.models.MLP((4, 2))
    model2(x)
    opt2 = optimizers.Adam().setup(model2)
    opt2.load_state_dict(d)
    for k, v in opt2.state_dict().items():
        assert np.array_equal(v, d[k]), k


def _trained_adam():
    arrays, grads, _ = make_problem(seed=5, steps=2)
    _, opt = run_mibun(optimizers.Adam(), arrays, grads, {})
    return opt


@pytest.mark.parametrize("mutate, match", [
    (lambda d: d.update({"l9/W/m": np.zeros(3)}), "names no parameter"),
    (lambda d: d.update({"l0/W/m": np.zeros((4, 3))}), "does not match"),
    (lambda d: d.update({"l0/W/m": d["l0/W/m"].astype(np.float32)}), "does not match"),
    (lambda d: d.update({"l0/W/q": d["l0/W/m"]}), "not 'q'"),
    (lambda d: d.pop("l1/W/v"), "lacks state"),
    (lambda d: d.pop("@t"), "missing key"),
    (lambda d: d.update({"l0/W/step": np.array(1.5)}), "non-negative integer"),
    (lambda d: d.update({"@lr": np.zeros(2)}), "scalar"),
])
def test_load_state_dict_validates_and_leaves_state_unchanged(mutate, match):
    opt = _trained_adam()
    before = opt.state_dict()
    d = opt.state_dict()
    for k in d:
        if not k.startswith("@"):
            d[k] = d[k] + 1 if d[k].dtype.kind == "f" else d[k]
    d["@t"] = np.array(99)
    mutate(d)
    with pytest.raises(ValueError, match=match):
        opt.load_state_dict(d)
    after = opt.state_dict()
    assert set(after) == set(before)
    for k in before:
        assert np.array_equal(after[k], before[k]), k


def test_load_state_dict_wrong_optimizer_slots():
    d = _trained_adam().state_dict()
    opt = optimizers.MomentumSGD().setup(_trained_adam().target)
    with pytest.raises(ValueError, match="MomentumSGD keeps"):
        opt.load_state_dict(d)


def test_errors_without_setup():
    with pytest.raises(RuntimeError, match="setup"):
        optimizers.SGD().update()
    with pytest.raises(RuntimeError, match="setup"):
        optimizers.SGD().load_state_dict({})
    with pytest.raises(TypeError, match="setup"):
        optimizers.SGD().setup(42)


# --- DeZero compatibility -------------------------------------------------------------------
def test_dezero_style_subclass_and_params_only_target():
    class MySGD(optimizers.Optimizer):
        def __init__(self, lr=0.1):
            super().__init__()
            self.lr = lr

        def update_one(self, param):
            param.data -= self.lr * param.grad.data

    class OnlyParams:  # a DeZero-era target: params() only
        def __init__(self):
            self.p = Parameter(np.array([1.0, 2.0]))

        def params(self):
            yield self.p

    target = OnlyParams()
    target.p.grad = Variable(np.array([1.0, 1.0]))
    opt = MySGD().setup(target)
    assert opt.setup(target) is opt
    opt.update()
    np.testing.assert_allclose(target.p.data, [0.9, 1.9])
    mom = optimizers.MomentumSGD().setup(target)
    mom.update()
    assert set(mom.state_dict()) == {"@t", "@lr", "p0/v"}


def test_training_reduces_loss_with_a_model():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 3)).astype(np.float32)
    y = (x @ np.array([[1.0], [-2.0], [0.5]], dtype=np.float32)).astype(np.float32)
    makers = [lambda: optimizers.SGD(lr=0.05), optimizers.MomentumSGD, optimizers.Nesterov,
              lambda: optimizers.Adam(alpha=0.03), lambda: optimizers.AdamW(lr=0.03),
              optimizers.RMSprop, lambda: optimizers.AdaGrad(lr=0.1), optimizers.AdaDelta]
    for make in makers:
        model = mibun.models.MLP((8, 1), activation=mibun.functions.tanh)
        opt = make().setup(model)
        opt_cls = type(opt)
        losses = []
        for _ in range(60):
            loss = mibun.functions.mean_squared_error(model(x), y)
            model.cleargrads()
            loss.backward()
            opt.update()
            losses.append(float(loss.data))
        assert losses[-1] < 0.7 * losses[0], opt_cls.__name__
        assert all(p.data.dtype == np.float32 for p in model.params())


@pytest.mark.parametrize("shape", [(70001,), (300, 250), (250, 300)])
def test_sgd_large_params_chunked_update_is_exact(shape):
    # Big float32 parameters are updated chunk by chunk (cache-sized temporaries); the
    # result must be exactly p - lr * g, including the last partial chunk and a transposed
    # (non-contiguous) parameter or gradient, which take the plain path.
    rng = np.random.default_rng(5)
    a = rng.standard_normal(shape).astype(np.float32)
    g = rng.standard_normal(shape).astype(np.float32)
    for a_, g_ in [(a, g), (a, g.T.copy().T), (a.T.copy().T, g)]:
        p = Parameter(a_.copy(order="K"))
        p.grad = Variable(g_.copy(order="K"))
        target = Params([], [])
        target._named = [("l0/W", p)]
        optimizers.SGD(lr=0.3).setup(target).update()
        assert p.data.dtype == np.float32
        np.testing.assert_array_equal(p.data, a - np.float32(0.3) * g)
        np.testing.assert_array_equal(p.grad.data, g)  # the gradient is left as it was


# =============================================================================
# Issue 9, defect 12: settings are range-checked (as torch.optim), gradients shape-checked
# =============================================================================
@pytest.mark.parametrize("make, name", [
    (lambda: O.SGD(lr=-0.1), "lr"), (lambda: O.SGD(lr=float("nan")), "lr"),
    (lambda: O.SGD(lr=float("inf")), "lr"), (lambda: O.Adam(alpha=-1.0), "lr"),
    (lambda: O.MomentumSGD(momentum=-0.5), "momentum"),
    (lambda: O.MomentumSGD(momentum=1.0), "momentum"),
    (lambda: O.Nesterov(momentum=1.5), "momentum"),
    (lambda: O.Adam(beta1=1.0), "beta1"), (lambda: O.Adam(beta2=1.5), "beta2"),
    (lambda: O.Adam(eps=-1e-8), "eps"), (lambda: O.AdaGrad(eps=-1.0), "eps"),
    (lambda: O.AdamW(weight_decay=-0.01), "weight_decay"),
    (lambda: O.RMSprop(alpha=2.0), "alpha"), (lambda: O.RMSprop(momentum=-1), "momentum"),
    (lambda: O.AdaDelta(rho=2.0), "rho"), (lambda: O.AdaDelta(eps=-1), "eps"),
    (lambda: O.ClipGrad(0), "max_norm"), (lambda: O.ClipGrad(-1.0), "max_norm"),
    (lambda: O.WeightDecay(-1e-4), "rate"),
    (lambda: O.StepLR(O.SGD(), 2, gamma=-0.5), "gamma"),
    (lambda: O.CosineLR(O.SGD(), 3, eta_min=-1.0), "eta_min"),
])
def test_bad_settings_are_refused_at_construction(make, name):
    with pytest.raises(ValueError, match=rf"\b{name} must be a"):
        make()


@pytest.mark.parametrize("value", ["0.1", None, 1j, True, [0.1]])
def test_settings_must_be_real_numbers(value):
    with pytest.raises(TypeError, match="lr must be a real number"):
        O.SGD(lr=value)


def test_torch_refuses_the_same_settings():
    torch = pytest.importorskip("torch")
    w = [torch.zeros(2, requires_grad=True)]
    for make in (lambda: torch.optim.SGD(w, lr=-0.1), lambda: torch.optim.Adam(w, eps=-1),
                 lambda: torch.optim.Adam(w, betas=(0.9, 1.0)),
                 lambda: torch.optim.AdamW(w, weight_decay=-0.01),
                 lambda: torch.optim.Adadelta(w, rho=2.0)):
        with pytest.raises(ValueError):
            make()


def test_assignments_are_checked_too_and_reads_give_floats():
    opt = O.Adam(alpha=np.float64(0.5))
    assert type(opt.lr) is float and opt.alpha == 0.5
    for attr, value in (("lr", -1.0), ("alpha", float("nan")), ("beta1", 1.0)):
        with pytest.raises(ValueError, match="must be a"):
            setattr(opt, attr, value)
    assert (opt.lr, opt.beta1) == (0.5, 0.9)
    # the edges that work are accepted
    O.MomentumSGD(lr=0.0, momentum=0.0)
    O.RMSprop(alpha=1.0, eps=0.0)
    O.AdaDelta(rho=0.0)
    assert O.ClipGrad(float("inf")).max_norm == float("inf")


def test_a_gradient_of_the_wrong_shape_is_refused_before_any_change():
    import mibun.models as M
    m = M.MLP((2,))
    m(np.ones((1, 3), np.float32))
    for opt in (O.SGD(lr=0.1), O.Adam()):
        opt.setup(m)
        opt.add_hook(O.WeightDecay(0.1))  # it would broadcast the (1,) gradient too
        W, b = m.l0.W, m.l0.b
        b.grad = Variable(np.ones(2, np.float32))
        W.grad = Variable(np.ones((1,), np.float32))
        before = (W.data.copy(), b.data.copy())
        with pytest.raises(ValueError, match=r"gradient of 'l0/W' does not have its "
                                             r"parameter's shape\n.*\(1,\).*\n.*\(3, 2\)"):
            opt.update()
        np.testing.assert_array_equal(W.data, before[0])
        np.testing.assert_array_equal(b.data, before[1])
        assert opt.t == 0


def test_a_complex_gradient_is_named():
    import mibun.models as M
    m = M.MLP((2,))
    m(np.ones((1, 3), np.float32))
    for cls in (O.SGD, O.MomentumSGD, O.Adam, O.RMSprop, O.AdaDelta, O.AdaGrad, O.Nesterov):
        opt = cls().setup(m)
        m.l0.W.grad = Variable(np.ones((3, 2)))
        m.l0.W.grad.data = np.ones((3, 2), np.complex128)  # Variable() itself refuses complex
        with pytest.raises(TypeError, match=rf"{cls.__name__}.update: the gradient of 'l0/W' "
                                            "has dtype complex128; a real"):
            opt.update()


@pytest.mark.parametrize("make", [lambda: optimizers.SGD(0.1), lambda: optimizers.MomentumSGD(0.1),
                                  lambda: optimizers.Nesterov(0.1), lambda: optimizers.AdaGrad(),
                                  lambda: optimizers.AdaDelta(), lambda: optimizers.RMSprop(),
                                  lambda: optimizers.RMSprop(momentum=0.9),
                                  lambda: optimizers.Adam(), lambda: optimizers.AdamW()])
def test_updates_block_by_block_give_the_same_bits(make, monkeypatch):
    # a parameter bigger than a block is updated block by block (cache-sized temporaries);
    # the result must be bit-identical to one pass over the whole array
    rng = np.random.default_rng(0)
    n = 3 * optimizer_base._CHUNK + 7
    p0 = rng.standard_normal((n,)).astype(np.float32)
    grads = [rng.standard_normal((n,)).astype(np.float32) for _ in range(3)]

    def run():
        p = mibun.Parameter(p0.copy())
        opt = make().setup(optimizers._Params(p))
        for g in grads:
            p.grad = mibun.Variable(g.copy())
            opt.update()
        return p.data

    blocked = run()
    monkeypatch.setattr(optimizer_base, "_CHUNK", 10 ** 9)
    np.testing.assert_array_equal(blocked, run())


# =============================================================================
# Small parameters updated together (optimizer_base._Flat): the same bits as one by one
# =============================================================================
ALL_RULES = [lambda: optimizers.SGD(0.1), lambda: optimizers.MomentumSGD(0.1),
             lambda: optimizers.Nesterov(0.1), lambda: optimizers.AdaGrad(),
             lambda: optimizers.AdaDelta(), lambda: optimizers.RMSprop(),
             lambda: optimizers.RMSprop(momentum=0.9), lambda: optimizers.Adam(alpha=0.01),
             lambda: optimizers.AdamW(alpha=0.01)]


def one_by_one(opt):
    """``opt`` made to update parameter by parameter: a subclass with its own update_one
    (DeZero's protocol) takes the plain path."""
    cls = type(opt)
    opt.__class__ = type("OneByOne" + cls.__name__, (cls,),
                         {"update_one": lambda self, p: cls.update_one(self, p)})
    return opt


def mixed_problem(seed=0, steps=5):
    """Small float32 and float64 parameters (a 0-d one among them), a big one, and steps
    that skip some parameters."""
    rng = np.random.default_rng(seed)
    shapes = [(3, 4), (), (5,), (2, 1, 3), (3, 4), (6,), (optimizer_base._CHUNK + 5,)]
    dtypes = [np.float32, np.float32, np.float64, np.float32, np.float32, np.float64,
              np.float32]
    arrays = [rng.standard_normal(s).astype(d) for s, d in zip(shapes, dtypes)]
    grads = [[rng.standard_normal(s).astype(d) for s, d in zip(shapes, dtypes)]
             for _ in range(steps)]
    skips = {2: {1}, 3: {0, 4}}
    return arrays, grads, skips


def set_grads(ps, gs, skip, k):
    for i, (p, g) in enumerate(zip(ps, gs)):
        p.grad = None if i in skip else Variable(g.copy())
    if 4 not in skip:  # a non-contiguous gradient, or one Variable given to two parameters
        ps[4].grad = ps[0].grad if k % 2 and 0 not in skip else Variable(gs[4].T.copy().T)


def run_mixed(opt, arrays, grads, skips, replace_at=None, start=0):
    target = Params(arrays)
    opt.setup(target)
    ps = list(target.params())
    for k, gs in enumerate(grads, start=start):
        if k == replace_at:  # as load_weights does: new arrays for the parameters
            for p in ps:
                p.data = p.data * 1
        set_grads(ps, gs, skips.get(k, ()), k)
        opt.update()
    return ps, opt


@pytest.mark.parametrize("make", ALL_RULES)
@pytest.mark.parametrize("replace_at", [None, 2])
def test_small_params_updated_together_give_the_same_bits(make, replace_at):
    arrays, grads, skips = mixed_problem()
    got, opt = run_mixed(make(), arrays, grads, skips, replace_at)
    want, ref = run_mixed(one_by_one(make()), arrays, grads, skips, replace_at)
    for g, w, a in zip(got, want, arrays):
        assert g.data.dtype == a.dtype and g.data.shape == a.shape
        np.testing.assert_array_equal(g.data, w.data)
    assert opt.state.keys() == ref.state.keys()
    for k, v in ref.state_dict().items():
        np.testing.assert_array_equal(opt.state_dict()[k], v, err_msg=k)
    # and they were updated together: the small float32 ones share one flat buffer
    flats = {f.names[i]: f for f in opt._flats.values() for i in range(len(f.names))}
    names = [n for n, _ in Params(arrays).named_params()]
    assert flats[names[0]] is flats[names[4]]
    assert not getattr(ref, "_flats", None)


@pytest.mark.parametrize("make", ALL_RULES)
def test_a_parameter_keeps_its_data_array_on_the_flat_path(make):
    # DeZero's and PyTorch's optimizers update param.data in place: a reference to it
    # (a plot, an EMA, a test) sees every update, on the flat path too
    rng = np.random.default_rng(3)
    ps = [Parameter(rng.standard_normal(s).astype(np.float32), name=f"p{i}")
          for i, s in enumerate([(3, 4), (4,), ()])]
    target = Params([], [])
    target._named = [(p.name, p) for p in ps]
    opt = make().setup(target)
    held = [p.data for p in ps]
    before = [a.copy() for a in held]
    for _ in range(3):
        for p in ps:
            p.grad = Variable(rng.standard_normal(p.shape).astype(np.float32))
        opt.update()
        assert all(p.data is a for p, a in zip(ps, held))
    assert opt._flats  # the flat path ran
    assert all(not np.array_equal(a, b) for a, b in zip(held, before))


def test_checkpoints_of_either_path_resume_on_either_path_identically():
    # the state of the flat path is the same dict of arrays (old checkpoints load)
    arrays, grads, skips = mixed_problem(seed=1, steps=6)
    full, _ = run_mixed(optimizers.Adam(alpha=0.01), arrays, grads, skips)
    for first, second in [(False, True), (True, False), (True, True)]:
        def make(flat):
            opt = optimizers.Adam(alpha=0.01)
            return opt if flat else one_by_one(opt)
        half, opt = run_mixed(make(first), arrays, grads[:3], skips)
        resumed = make(second)
        ps, _ = run_mixed(resumed, [p.data for p in half], [], skips)
        resumed.load_state_dict(opt.state_dict())
        ps, _ = run_mixed(resumed, [p.data for p in half], grads[3:], skips, start=3)
        assert resumed.t == 6
        for a, b in zip(full, ps):
            np.testing.assert_array_equal(a.data, b.data)


def test_parameters_on_one_array_stay_on_it():
    # two Parameters sharing one ndarray: each update applies to the shared array, as the
    # one-by-one path always did; they are not copied apart into a flat buffer
    a = np.ones(3)
    p, q, r = Parameter(a), Parameter(a), Parameter(np.ones(2))
    target = Params([], [])
    target._named = [("p", p), ("q", q), ("r", r)]
    opt = optimizers.SGD(lr=0.5).setup(target)
    for _ in range(2):
        p.grad, q.grad, r.grad = (Variable(np.ones(3)), Variable(np.ones(3)),
                                  Variable(np.ones(2)))
        opt.update()
    assert p.data is a and q.data is a
    np.testing.assert_array_equal(a, 1 - 4 * 0.5)
    np.testing.assert_array_equal(r.data, 1 - 2 * 0.5)


def test_a_model_trained_with_hooks_and_reloaded_weights(tmp_path):
    # a model: hooks on the flat path, then load_weights (new arrays) mid-run
    import mibun.models as M
    x = np.random.default_rng(0).standard_normal((8, 3)).astype(np.float32)

    def run(flat):
        np.random.seed(0)
        m = M.MLP((5, 4, 2))
        m(x)
        opt = optimizers.Adam(alpha=0.05)
        opt = (opt if flat else one_by_one(opt)).setup(m)
        opt.add_hook(optimizers.WeightDecay(0.01))
        opt.add_hook(optimizers.ClipGrad(0.5))
        for k in range(4):
            if k == 2:
                m.save_weights(str(tmp_path / f"w{flat}.npz"))
                m.load_weights(str(tmp_path / f"w{flat}.npz"))
            loss = mibun.functions.sum(m(x) ** 2)
            m.cleargrads()
            loss.backward()
            opt.update()
        return [p.data for p in m.params()]

    for a, b in zip(run(True), run(False)):
        np.testing.assert_array_equal(a, b)
