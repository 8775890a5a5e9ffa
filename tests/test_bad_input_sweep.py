"""The standing bad-input sweep: the public ops and the engine on hostile arguments.

Every call must either give NumPy's result (an op with a NumPy counterpart) or raise a
TypeError / ValueError whose message names the op and shows the arguments' shapes and
dtypes: never a raw error from inside NumPy, never a silently wrong value (a NaN from a
``None`` argument, a dropped imaginary part). Arguments are drawn by hypothesis from real
arrays of every kind (float32/64, int, bool; 0-d, empty, NaN/inf), shapes that do not
broadcast, axes out of range or of the wrong type, and non-arrays (None, str, dict,
object(), complex numbers and arrays, ragged lists). The examples are bounded so the whole
sweep stays well under 30 s; ``CASES`` counts the calls made (printed with ``-s``).
"""
import re
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import mibun
import mibun.functions as F
from mibun import Variable

CASES = {"n": 0}
SWEEP = settings(max_examples=300, deadline=None, derandomize=True,
                 suppress_health_check=list(HealthCheck))

# --- argument strategies ------------------------------------------------------------------
DTYPES = st.sampled_from([np.float64, np.float32, np.int64, np.int32, np.bool_])
SHAPES = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3)


def real_arrays(dtype=DTYPES, shape=SHAPES):
    return hnp.arrays(dtype, shape, elements=None).map(np.asarray)


FLOATS = hnp.arrays(st.sampled_from([np.float64, np.float32]), SHAPES,
                    elements=st.one_of(st.floats(-1e3, 1e3, width=32),
                                       st.sampled_from([np.nan, np.inf, -np.inf])))
BAD = st.sampled_from([
    None, "abc", {"a": 1}, object(), 1j, np.complex128(1 + 2j), np.complex64(1j),
    np.array([1 + 1j, 2]), np.array([1.0, None], dtype=object), [[1.0], [1.0, 2.0]],
    np.array(["a", "b"]),
])
SCALARS = st.one_of(st.integers(-3, 3), st.floats(-3, 3), st.sampled_from(
    [np.float32(1.5), np.float64(-2.0), np.int64(2), True, np.nan, np.inf]))


def operands():
    """An argument: a real array (raw or as a Variable), a scalar, or a bad value."""
    arr = st.one_of(real_arrays(), FLOATS)
    return st.one_of(arr, arr.map(Variable), SCALARS, BAD)


def is_bad(v):
    """True for a value mibun must refuse: not a real number or an array of real numbers."""
    if isinstance(v, Variable):
        return False
    if isinstance(v, (list, dict, str)) or v is None or isinstance(v, complex):
        return True
    return isinstance(v, (np.ndarray, np.generic)) and v.dtype.kind not in "biuf" or (
        not isinstance(v, (np.ndarray, np.generic, int, float)))


def raw(v):
    return v.data if isinstance(v, Variable) else v


def ndim(v):
    return raw(v).ndim if isinstance(raw(v), (np.ndarray, np.generic)) else (
        0 if isinstance(v, (int, float, complex)) else -1)


# --- the checks ---------------------------------------------------------------------------
def check_error(err, op, args):
    """``err`` is a TypeError/ValueError naming ``op`` and describing an array argument."""
    assert isinstance(err, (TypeError, ValueError)), f"{op}: raw {type(err).__name__}: {err}"
    msg = str(err)
    ops = op if isinstance(op, tuple) else (op,)
    assert any(f"{o}:" in msg for o in ops), f"op not named: {msg!r}"
    arrays = [a for a in args if isinstance(raw(a), np.ndarray) and a is not None]
    if arrays and not any(is_bad(a) for a in args):
        assert "shape=" in msg and "dtype=" in msg, f"no shapes/dtypes: {msg!r}"


def run(op, fn, args, expected=None, rtol=1e-6):
    """Call ``fn(*args)``; ``expected`` is NumPy's answer (a callable on the raw data) or
    None when the op has none. Checks the promise described in the module docstring."""
    CASES["n"] += 1
    bad = any(is_bad(a) for a in args)
    want, np_err = None, None
    if expected is not None and not bad:
        try:
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                want = np.asarray(expected(*[raw(a) for a in args]))
        except Exception as e:  # noqa: BLE001 (NumPy refuses: mibun must refuse clearly)
            np_err = e
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            got = fn(*args)
    except Exception as e:  # noqa: BLE001
        check_error(e, op, args)
        if expected is not None and not bad and np_err is None:
            # NumPy computes it: mibun may refuse only what it documents (no complex, no
            # object data, no differentiable op on an empty max), never by accident.
            assert isinstance(e, (TypeError, ValueError)), e
        return
    assert not bad, f"{op} accepted a bad argument {args!r:.200} and returned {got!r:.100}"
    assert isinstance(got, Variable), f"{op} returned {type(got).__name__}"
    assert got.data.dtype.kind in "biuf", f"{op} returned dtype {got.data.dtype}"
    if expected is not None:
        assert np_err is None, f"{op}: NumPy raised {np_err!r} but mibun returned {got!r:.80}"
        assert got.shape == want.shape, (got.shape, want.shape)
        tol = 1e-3 if np.float32 in (got.dtype, want.dtype) or np.float16 in (
            got.dtype, want.dtype) else rtol
        np.testing.assert_allclose(got.data.astype(np.float64), want.astype(np.float64),
                                   rtol=tol, atol=tol, equal_nan=True, err_msg=op)


# --- binary arithmetic, through F and through the operators ---------------------------------
BINARY = {
    "F.add": (F.add, np.add), "F.sub": (F.sub, np.subtract), "F.mul": (F.mul, np.multiply),
    "F.div": (F.div, np.true_divide), "F.pow": (F.pow, np.power),
    "F.maximum": (F.maximum, np.maximum), "F.minimum": (F.minimum, np.minimum),
}
OPERATORS = {
    "F.add": lambda a, b: a + b, "F.sub": lambda a, b: a - b, "F.mul": lambda a, b: a * b,
    "F.div": lambda a, b: a / b, "F.pow": lambda a, b: a ** b,
}


@SWEEP
@given(st.sampled_from(sorted(BINARY)), operands(), operands())
def test_binary_ops(op, a, b):
    fn, np_fn = BINARY[op]
    if not isinstance(a, Variable) and not isinstance(b, Variable) and (
            ndim(a) == 0 and ndim(b) == 0 and not is_bad(a) and not is_bad(b)):
        a = Variable(np.asarray(raw(a)))  # two scalars: mibun's dtype rule needs an array
    # pow: a scalar exponent takes the base's dtype (int ** -1 is computed, NumPy refuses),
    # so only the error promise is checked there
    run(op, fn, (a, b), None if op == "F.pow" else mibun_scalars(np_fn, a, b))


def mibun_scalars(np_fn, a, b):
    """NumPy's answer under mibun's documented scalar rule: a scalar operand (a number, a
    NumPy scalar, a raw 0-d array) takes the other operand's float dtype, so
    ``x32 * np.float64(2)`` is float32 (NumPy would promote to float64)."""
    def scalar(v):
        return not isinstance(v, Variable) and not is_bad(v) and ndim(v) == 0

    def f(x, y):
        if scalar(b) and np.asarray(x).dtype.kind == "f":
            y = np.asarray(x).dtype.type(y)
        elif scalar(a) and np.asarray(y).dtype.kind == "f":
            x = np.asarray(y).dtype.type(x)
        return np_fn(x, y)
    return f


@SWEEP
@given(st.sampled_from(sorted(OPERATORS)), operands().map(
    lambda v: v if isinstance(v, Variable) or is_bad(v) else Variable(np.asarray(v))),
    operands(), st.booleans())
def test_operators(op, a, b, reflected):
    if is_bad(a):
        a = Variable(np.ones(2))
    fn = OPERATORS[op]
    args = (b, a) if reflected else (a, b)
    # b <op> a with b not a Variable: Python calls a's reflected operator (F.rsub, ...), or
    # NumPy dispatches an ndarray / NumPy scalar b to the F op itself
    name = op if not reflected or isinstance(b, Variable) else (op, {
        "F.sub": "F.rsub", "F.div": "F.rdiv", "F.pow": "F.rpow"}.get(op, op))
    if reflected and isinstance(b, (np.ndarray, list)) and not is_bad(b):
        return  # ndarray <op> Variable goes through NumPy's own dispatch: tested below
    _, np_fn = BINARY[op]
    run(name, fn, args, None if op == "F.pow" else mibun_scalars(np_fn, *args))


@SWEEP
@given(real_arrays(st.just(np.bool_)), operands(), operands())
def test_where(cond, a, b):
    run("F.where", F.where, (cond, a, b),
        lambda c, x, y: mibun_scalars(lambda p, q: np.where(c, p, q), a, b)(x, y))


# --- unary elementwise ----------------------------------------------------------------------
def _sigmoid(x):
    x = np.asarray(x)
    x = x.astype(np.promote_types(x.dtype, np.float16)) if x.dtype.kind != "f" else x
    return 1 / (1 + np.exp(-x))


def _promoted(f):
    return lambda x: f(np.asarray(x, dtype=np.float64) if np.asarray(x).dtype.kind != "f"
                       else np.asarray(x))


UNARY = {
    "F.exp": (F.exp, np.exp), "F.log": (F.log, np.log), "F.sin": (F.sin, np.sin),
    "F.cos": (F.cos, np.cos), "F.tan": (F.tan, np.tan), "F.tanh": (F.tanh, np.tanh),
    "F.sqrt": (F.sqrt, np.sqrt), "F.abs": (F.abs, np.abs), "F.neg": (F.neg, np.negative),
    "F.square": (F.square, np.square), "F.sigmoid": (F.sigmoid, _sigmoid),
    "F.relu": (F.relu, lambda x: np.maximum(x, 0)),
    "F.leaky_relu": (F.leaky_relu, _promoted(lambda x: np.where(x > 0, x, 0.2 * x))),
    "F.gelu": (F.gelu, None), "F.softmax": (F.softmax, None),
    "F.log_softmax": (F.log_softmax, None), "F.flatten": (F.flatten, None),
}


@SWEEP
@given(st.sampled_from(sorted(UNARY)), st.one_of(operands(), FLOATS.map(Variable)))
def test_unary_ops(op, x):
    fn, np_fn = UNARY[op]
    if op in ("F.softmax", "F.log_softmax") and not is_bad(x) and ndim(x) < 2:
        x = np.zeros((2, 2))  # the class axis 1 must exist (its absence is tested below)
    run(op, fn, (x,), np_fn)


@SWEEP
@given(FLOATS, st.one_of(st.sampled_from([None, "0.1", 1j, [0.1]]), st.floats(-1, 1)))
def test_leaky_relu_slope(x, slope):
    bad = not isinstance(slope, float)
    CASES["n"] += 1
    try:
        with np.errstate(all="ignore"):  # inf * 0.0 slope
            y = F.leaky_relu(x, slope)
    except Exception as e:  # noqa: BLE001
        assert bad and isinstance(e, TypeError) and "F.leaky_relu: slope" in str(e), e
        return
    assert not bad, f"slope={slope!r} accepted"
    with np.errstate(all="ignore"):
        np.testing.assert_allclose(y.data, np.where(x > 0, x, x * x.dtype.type(slope)),
                                   rtol=1e-6, equal_nan=True)


# --- reductions ------------------------------------------------------------------------------
AXES = st.one_of(st.none(), st.integers(-4, 4), st.tuples(st.integers(-3, 3)),
                 st.tuples(st.integers(-3, 3), st.integers(-3, 3)),
                 st.sampled_from([1.0, "0", [0], True]))


def _logsumexp(x, axis=None, keepdims=False):
    x = np.asarray(x, dtype=np.float64) if np.asarray(x).dtype.kind != "f" else x
    # NumPy's own stable form: log(sum(exp(x))) overflows to inf from x = 710 on
    return np.logaddexp.reduce(x, axis=axis, keepdims=keepdims)


REDUCTIONS = {
    "F.sum": (F.sum, np.sum), "F.mean": (F.mean, np.mean), "F.max": (F.max, np.max),
    "F.min": (F.min, np.min), "F.var": (F.var, np.var), "F.std": (F.std, np.std),
    "F.logsumexp": (F.logsumexp, _logsumexp),
}


@SWEEP
@given(st.sampled_from(sorted(REDUCTIONS)), st.one_of(operands(), FLOATS.map(Variable)),
       AXES, st.booleans())
def test_reductions(op, x, axis, keepdims):
    fn, np_fn = REDUCTIONS[op]
    if isinstance(axis, list):  # np.sum accepts a list of axes only as a tuple
        run(op, lambda x: fn(x, axis, keepdims), (x,), None)
        return
    if op in ("F.max", "F.min") and np.size(raw(x)) == 0 and not is_bad(x):
        # NumPy reduces an empty array over an axis of positive length; mibun refuses every
        # empty max (it has no gradient): a documented ValueError, checked as an error
        run(op, lambda x: fn(x, axis, keepdims), (x,), None)
        return
    if ndim(x) == 0 and axis is not None:
        # NumPy is inconsistent here (np.sum(0-d, axis=0) works, np.mean refuses); mibun
        # takes axis 0 / -1 of a 0-d array everywhere: only the error promise is checked
        run(op, lambda x: fn(x, axis, keepdims), (x,), None)
        return
    run(op, lambda x: fn(x, axis, keepdims), (x,),
        lambda x: np_fn(x, axis=axis, keepdims=keepdims))


# --- shape ops -------------------------------------------------------------------------------
NEW_SHAPES = st.one_of(SHAPES, st.tuples(st.integers(-2, 4)), st.sampled_from(
    [(-1,), (-1, -1), "ab", None, (2.0,), (1, -1)]))


@SWEEP
@given(st.one_of(operands(), FLOATS.map(Variable)), NEW_SHAPES,
       st.sampled_from(["reshape", "broadcast_to", "sum_to"]))
def test_reshape_family(x, shape, name):
    fn = getattr(F, name)
    np_fn = {"reshape": np.reshape, "broadcast_to": np.broadcast_to, "sum_to": None}[name]
    if shape is None and name == "reshape":
        np_fn = None  # np.reshape(x, None) is not a reshape
    run(f"F.{name}", lambda x: fn(x, shape), (x,),
        None if np_fn is None else (lambda x: np_fn(x, shape)))


@SWEEP
@given(st.one_of(operands(), FLOATS.map(Variable)), AXES,
       st.sampled_from(["squeeze", "expand_dims", "transpose"]))
def test_axis_family(x, axis, name):
    if isinstance(axis, (list, bool)) or (name != "squeeze" and axis is None
                                          and name == "expand_dims"):
        run(f"F.{name}", lambda x: getattr(F, name)(x, axis), (x,), None)
        return
    if name == "squeeze" and ndim(x) == 0 and isinstance(axis, tuple):
        np_fn = None  # NumPy takes axis=0 but not axis=(0,) for a 0-d array; mibun takes both
        run(f"F.{name}", lambda x: getattr(F, name)(x, axis), (x,), None)
        return
    np_fn = {"squeeze": np.squeeze, "expand_dims": np.expand_dims,
             "transpose": np.transpose}[name]
    run(f"F.{name}", lambda x: getattr(F, name)(x, axis), (x,), lambda x: np_fn(x, axis))


@SWEEP
@given(st.lists(operands(), min_size=0, max_size=3), st.integers(-3, 3),
       st.sampled_from(["concat", "stack"]))
def test_concat_stack(xs, axis, name):
    np_fn = {"concat": np.concatenate, "stack": np.stack}[name]
    CASES["n"] += 1
    args = xs
    bad = any(is_bad(a) for a in xs)
    try:
        with np.errstate(all="ignore"):
            want = np_fn([raw(a) for a in xs], axis=axis)
        np_err = None
    except Exception as e:  # noqa: BLE001
        want, np_err = None, e
    try:
        got = getattr(F, name)(xs, axis=axis)
    except Exception as e:  # noqa: BLE001
        check_error(e, f"F.{name}", args)
        return
    assert not bad and np_err is None, f"F.{name} accepted {xs!r:.200}"
    np.testing.assert_allclose(got.data.astype(np.float64), np.asarray(want, np.float64),
                               equal_nan=True)


# --- losses, linear algebra, the rest: no NumPy counterpart, only the error promise ----------
def _labels():
    return st.one_of(hnp.arrays(np.int64, st.sampled_from([(2,), (3,), (2, 1)]),
                                elements=st.integers(-1, 3)), operands())


OTHER = {
    "F.matmul": (F.matmul, 2), "F.linear": (F.linear, 2),
    "F.mean_squared_error": (F.mean_squared_error, 2),
    "F.softmax_cross_entropy": (F.softmax_cross_entropy, 2),
    "F.sigmoid_cross_entropy": (F.sigmoid_cross_entropy, 2),
    "F.binary_cross_entropy": (F.binary_cross_entropy, 2),
    "F.accuracy": (F.accuracy, 2), "F.clip": (lambda x, lo: F.clip(x, lo, None), 2),
    "F.get_item": (F.get_item, 2), "F.dropout": (F.dropout, 1),
}


@SWEEP
@given(st.sampled_from(sorted(OTHER)), st.one_of(operands(), FLOATS.map(Variable)),
       st.one_of(_labels(), FLOATS.map(Variable)))
def test_other_ops(op, x, y):
    fn, n = OTHER[op]
    args = (x, y)[:n]
    if op == "F.get_item":
        y = raw(y)
        if isinstance(y, np.ndarray) and y.dtype.kind == "f":
            y = 0  # float indices: NumPy's IndexError is the documented refusal
        args = (x, y if not isinstance(y, np.ndarray) or y.dtype.kind in "biu" else 0)
        CASES["n"] += 1
        try:
            fn(*args)
        except IndexError:
            return  # indexing out of bounds stays an IndexError (Python's protocol)
        except Exception as e:  # noqa: BLE001
            check_error(e, op, args)
        return
    run(op, fn, args, None)


# --- the engine --------------------------------------------------------------------------------
@SWEEP
@given(st.one_of(operands(), FLOATS.map(Variable), st.just(Variable(None))))
def test_engine_entry_points(v):
    CASES["n"] += 1
    x = Variable(np.array([1.0, 2.0]))
    for call, name in ((lambda: mibun.grad(v, x), "mibun.grad"),
                       (lambda: mibun.grad(F.sum(x * x), v), "mibun.grad")):
        try:
            call()
        except (TypeError, ValueError) as e:
            assert name in str(e) or "Variable.backward: this Variable has no data" in str(e), e
        else:
            assert isinstance(v, Variable) and v.data is not None
    if isinstance(v, Variable):
        try:
            v.backward()
        except (TypeError, ValueError) as e:
            assert "backward" in str(e), e
        else:
            assert v.data is not None


@SWEEP
@given(st.one_of(real_arrays(), BAD))
def test_variable_constructor(data):
    CASES["n"] += 1
    ok = data is None or (isinstance(data, (np.ndarray, np.generic))
                          and data.dtype.kind in "biuf")
    try:
        v = Variable(data)
    except TypeError as e:
        assert not ok and str(e).startswith("Variable:"), e
        return
    assert ok and (data is None or v.data.dtype.kind in "biuf")


# --- every public op: required arguments from arrays, scalars and bad values ------------------
def _public_ops():
    import inspect
    ops = {}
    for name, fn in vars(F).items():
        if inspect.isfunction(fn) and fn.__module__.startswith("mibun.functions") and (
                not name.startswith("_")):
            params = inspect.signature(fn).parameters.values()
            ops[name] = (fn, sum(p.default is p.empty and p.kind == p.POSITIONAL_OR_KEYWORD
                                 for p in params))
    return ops


PUBLIC = _public_ops()
MOST = max(n for _, n in PUBLIC.values())


@settings(SWEEP, max_examples=600)
@given(st.sampled_from(sorted(PUBLIC)), st.lists(st.one_of(
    FLOATS, FLOATS.map(Variable), st.integers(-1, 3), BAD,
    hnp.arrays(np.float64, st.sampled_from([(2, 3), (2, 1, 4, 4), (3, 2), (4,)]),
               elements=st.floats(-1, 1))), min_size=MOST, max_size=MOST))
def test_every_public_op(name, pool):
    fn, n = PUBLIC[name]
    args = pool[:n]
    CASES["n"] += 1
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            got = fn(*args)
    except (TypeError, ValueError, IndexError) as e:
        if isinstance(e, IndexError):
            assert name in ("get_item", "embed_id"), f"F.{name}: IndexError {e}"
        # a composed op (softmax_simple, an alias such as max_pooling) may name the op
        # inside it that refused: the message must still start with an op's name
        assert re.match(r"F\.\w+: ", str(e)), f"F.{name}: {type(e).__name__}: {e}"
        return
    checked = args[:1] if name == "get_item" else args  # x[None] is NumPy's newaxis
    assert not any(is_bad(a) for a in checked), f"F.{name} accepted {args!r:.200}"
    for y in got if isinstance(got, (list, tuple)) else (got,):
        assert isinstance(y, Variable) and y.data.dtype.kind in "biuf", (name, y)


def teardown_module():
    print(f"\nbad-input sweep: {CASES['n']} cases")  # the count docs/guide/reliability.md quotes (with -s)


@pytest.mark.parametrize("call", [
    lambda r: F.accuracy(r, np.array([0, 1])),
    lambda r: F.average_pooling(r, 2),
    lambda r: F.pooling(r, 2),
    lambda r: F.im2col(r, 2),
    lambda r: F.conv2d(r, np.ones((1, 1, 1, 1))),
    lambda r: F.batch_norm(r, np.ones(2), np.zeros(2), np.zeros(2), np.ones(2)),
    lambda r: F.layer_norm(r, np.ones(2), np.zeros(2)),
    lambda r: F.softmax_cross_entropy(np.ones((2, 2)), r),
], ids=lambda c: "")
def test_a_ragged_list_is_an_op_named_type_error(call):
    # found by the sweep after the DeZero names changed its draws: NumPy's raw ValueError
    with pytest.raises(TypeError, match=r"^F\.\w+: \w+ must be a Variable, an ndarray"):
        call([[1.0], [1.0, 2.0]])
