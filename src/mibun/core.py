"""The engine: ``Variable``, ``Function`` and backprop.

This follows DeZero's core (a Variable boxes an ndarray; calling a Function records the
graph; ``backward`` walks it from the output) with four changes that matter in practice:

* Backward pops functions from a heap keyed on generation, iteratively: O(n log n) on any
  graph, and no recursion limit.
* A function keeps only what its backward needs. It records, for each input, an *edge*: the
  input's creator and output index (or the leaf Variable itself), not the input's data.
  Built-in ops name the inputs / outputs whose data they read (``retain_inputs`` /
  ``retain_outputs``); a user Function keeps every input, so ``self.input.data`` works.
* Outputs are held by weak reference, and constants (raw arrays, the seed gradient, zero
  fills) never receive a gradient, so a dropped graph is freed at once by refcounting:
  nothing here creates a reference cycle for the garbage collector to chase. (The one
  cycle is the one asked for: under ``create_graph=True`` a leaf's ``grad`` records a graph
  that reads the leaf, as in PyTorch; ``cleargrad()`` breaks it.)
* Grad mode lives in a thread-local ``Config``.
"""
from __future__ import annotations

import heapq
import weakref

import numpy as np

from mibun import backend, errors
from mibun.config import Config, no_grad, test_mode, using_config  # noqa: F401  (DeZero's core)

_array_types = backend.array_types
_REAL_KINDS = errors.REAL_KINDS  # bool, int, float: complex and object data are refused


# =============================================================================
# Variable
# =============================================================================
class Variable:
    """An ndarray in the graph: ``data``, its gradient ``grad`` (a Variable) and ``creator``.

    Args:
        data (ndarray or None): a NumPy or CuPy array (a NumPy scalar is turned into a 0-d
            array). ``None`` is allowed for a parameter that is initialised later.
        name (str): optional, shown in ``repr`` and graph drawings.

    >>> x = Variable(np.array(2.0))
    >>> y = x ** 2
    >>> y.backward()
    >>> x.grad
    variable(4.0)
    """

    # ``_tangents`` ({level: tangent Variable}) is set only by forward mode (mibun.func);
    # left unset otherwise, so the hot path never pays for it.
    __slots__ = ("__weakref__", "_node", "_tangents", "data", "generation", "grad", "name")
    # Make ndarray <op> Variable defer to Variable (NumPy also honours __array_ufunc__).
    __array_priority__ = 200

    def __init__(self, data, name: str | None = None):
        if data is not None and not isinstance(data, _array_types):
            if isinstance(data, np.generic):
                data = np.asarray(data)
            else:
                raise TypeError(
                    f"Variable: data must be a numpy.ndarray (or cupy.ndarray) or None, "
                    f"got {type(data).__name__}: {data!r:.60}. "
                    "Wrap it first, e.g. Variable(np.array(...))."
                )
        if data is not None and data.dtype.kind not in _REAL_KINDS:
            raise errors.unsupported_dtype(errors.op_name("Variable"), "data", data)
        self.data = data
        self.name = name
        self.grad = None
        self._node = None  # (creator Function, output index), or None for a leaf
        self.generation = 0

    # --- graph ----------------------------------------------------------------------------
    @property
    def creator(self):
        """The Function that produced this Variable, or None for a leaf."""
        node = self._node
        return None if node is None else node[0]

    @creator.setter
    def creator(self, func):
        self.set_creator(func)

    def set_creator(self, func, index: int = 0) -> None:
        if func is None:
            self._node = None
            return
        self._node = (func, index)
        self.generation = func.generation + 1

    def cleargrad(self) -> None:
        self.grad = None

    def unchain(self) -> None:
        """Forget the creator: this Variable becomes a leaf for functions called from now on."""
        self._node = None

    def unchain_backward(self) -> None:
        """Cut every Variable of the graph below this one from its creator (truncated BPTT)."""
        node = self._node
        self._node = None
        if node is None:
            return
        stack, seen = [node[0]], {id(node[0])}
        while stack:
            f = stack.pop()
            for ref in f.outputs:
                y = ref()
                if y is not None:
                    y._node = None
            for e in f._edges:
                if type(e) is tuple and id(e[0]) not in seen:
                    seen.add(id(e[0]))
                    stack.append(e[0])

    def backward(self, retain_grad: bool = False, create_graph: bool = False, *,
                 observer=None) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's ``grad``.

        Args:
            retain_grad: also store the gradient of every intermediate Variable still alive.
            create_graph: record the backward computation, so the gradients can be
                differentiated again (higher-order derivatives).
            observer: optional ``observer(f, gys, gxs)`` called after each function's
                backward, in execution order (used by ``mibun grad --trace``).
        """
        _run_backward(self, retain_grad, create_graph, observer)

    # --- array-like -----------------------------------------------------------------------
    @property
    def shape(self):
        return self.data.shape

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def size(self):
        return self.data.size

    @property
    def dtype(self):
        return self.data.dtype

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        if self.data is None:
            return "variable(None)"
        p = str(self.data).replace("\n", "\n" + " " * 9)
        return "variable(" + p + ")"

    def __bool__(self):
        raise TypeError(
            "The truth value of a Variable is ambiguous (it would cut the graph); "
            "compare v.data instead."
        )

    def __hash__(self):
        return id(self)

    def __array__(self, dtype=None, copy=None):
        # Explicit conversion (np.asarray(v)) gives the data; ufuncs dispatch through
        # __array_ufunc__ (installed by mibun.functions) and stay in the graph.
        if dtype is None:
            return backend.as_numpy(self.data)
        return backend.as_numpy(self.data).astype(dtype, copy=False)

    def to_cpu(self) -> None:
        if self.data is not None:
            self.data = backend.as_numpy(self.data)

    def to_gpu(self) -> None:
        if self.data is not None:
            self.data = backend.as_cupy(self.data)


class Parameter(Variable):
    """A Variable that a Layer registers as a trainable parameter (it may carry attributes)."""


def _new_variable(data):
    """``Variable(data)`` for data known to be an ndarray: skips the checks (hot path)."""
    v = _object_new(Variable)
    v.data = data
    v.name = None
    v.grad = None
    v._node = None
    v.generation = 0
    return v


_object_new = object.__new__


def as_array(x, xp=np):
    """Turn a scalar into a 0-d ndarray; arrays pass through unchanged (DeZero's helper)."""
    return backend.as_array(x, xp)


def as_variable(obj) -> Variable:
    """Return ``obj`` if it is a Variable, else wrap it (arrays and scalars) as DeZero
    does: a new leaf Variable, which backprop gives a ``grad``.

    Ops wrap raw operands with :func:`as_operand` instead (a constant).
    """
    if isinstance(obj, Variable):
        return obj
    return Variable(_as_real_array(obj, "mibun.as_variable"))


def as_operand(obj) -> Variable:
    """``obj`` if it is a Variable, else a *constant* wrapping it (arrays and scalars).

    A constant is what a raw array handed to an op is: no gradient flows into it, so a
    loss's raw target, the seed or a zero fill never gets a ``grad`` (``Variable(data)``
    and :func:`as_variable` make a leaf that does).
    """
    if isinstance(obj, Variable):
        return obj
    return _constant(_as_real_array(obj, "mibun.as_operand"))


def _as_real_array(obj, who):
    try:
        data = as_array(obj, backend.get_array_module(obj))
        if data.dtype.kind in _REAL_KINDS:
            return data
        err = None
    except (TypeError, ValueError) as e:  # a ragged list, ...
        err = e
    raise errors.bad_operand(errors.op_name(who), errors.arg_name(obj, depth=3), obj) from err


def _constant(data, op=None, arg="x") -> Variable:
    """A Variable for data that is not trainable: a raw-array operand, the seed gradient.

    ``generation = -1`` marks it: ``Function.__call__`` records no edge to it, so backward
    never gives it a ``grad`` (under ``create_graph=True`` such a grad would record a graph
    that points back at the constant: a reference cycle only the garbage collector frees).
    """
    if not isinstance(data, _array_types) or data.dtype.kind not in _REAL_KINDS:
        raise errors.bad_operand(op or errors.op_name("mibun"), arg, data)
    v = _new_variable(data)
    v.generation = -1
    return v


# =============================================================================
# Function
# =============================================================================
class Function:
    """A differentiable operation: ``forward`` on arrays, ``backward`` on Variables.

    Subclasses define ``forward(self, *xs)`` (raw ndarrays in, ndarray or tuple out) and
    ``backward(self, *gys)`` (Variables in, one gradient per input out; ``None`` for an
    input needing none). Inside backward, ``self.inputs`` are the input Variables and
    ``self.outputs`` weak references to the outputs.

    Class attributes let an op keep less (the default keeps every input, as DeZero does):

    * ``retain_inputs``: indices of the inputs whose Variables backward reads; others are
      stored as ``None`` in ``self.inputs`` so their data can be freed.
    * ``retain_outputs``: indices of the outputs backward reads through
      ``self.retained_output(i)``.
    """

    # Engine state in slots (an op's own attributes still go to its __dict__): cheaper to
    # create and fill than a per-instance dict on the hot path.
    __slots__ = ("__weakref__", "_edges", "_meta", "_ys", "generation", "inputs", "outputs")
    retain_inputs: tuple | None = None
    retain_outputs: tuple = ()

    def __call__(self, *inputs):
        # The hot path of the whole library: keep it lean (see benchmarks/overhead.py).
        record = Config.enable_backprop
        xs = []
        for x in inputs:
            if isinstance(x, Variable):
                xs.append(x.data)
            else:  # a raw array or scalar: a constant, no gradient flows to it
                break
        else:
            variables = inputs
        if len(xs) != len(inputs):
            variables, xs = _wrap_inputs(self, inputs)

        try:
            ys = self.forward(*xs)
        except (TypeError, ValueError, IndexError) as e:  # free until it fires
            names = errors.input_names(self, len(xs))
            raise errors.op_error(e, dict(zip(names, xs)), type(self).__name__) from e
        if record:
            # An edge per input: its (creator, index), the leaf Variable, or None for a
            # constant (a raw array wrapped above, marked by generation -1).
            if len(variables) == 1:
                x = variables[0]
                gen = x.generation
                self._edges = [None if gen < 0 else x._node or x]
            else:
                self._edges = [None if x.generation < 0 else x._node or x for x in variables]
                gen = max([x.generation for x in variables]) if variables else 0
            self.generation = gen
            keep = self.retain_inputs
            if keep is None or len(keep) == len(variables):
                self.inputs = variables
            else:
                self.inputs = [x if i in keep else None for i, x in enumerate(variables)]
        if type(ys) is tuple:
            outputs = self._multiple_outputs(ys, record)
            if _forward_hook is not None:
                _forward_hook(self, variables, outputs, record)
            return outputs

        if not isinstance(ys, _array_types):
            ys = as_array(ys)  # NumPy returns 0-d results as scalars
        y = _object_new(Variable)  # Variable(ys) without the checks
        y.data = ys
        y.name = None
        y.grad = None
        if not record:
            y._node = None
            y.generation = 0
            if _forward_hook is not None:
                _forward_hook(self, variables, (y,), False)
            return y
        y._node = (self, 0)
        y.generation = self.generation + 1
        self.outputs = [weakref.ref(y)]
        self._meta = ((ys.shape, ys.dtype),)
        if self.retain_outputs:
            self._ys = (ys,)
        if _forward_hook is not None:
            _forward_hook(self, variables, (y,), True)
        return y

    def _multiple_outputs(self, ys, record):
        """The tail of ``__call__`` for a forward that returned a tuple."""
        outputs = [_new_variable(y if isinstance(y, _array_types) else as_array(y))
                   for y in ys]
        if record:
            for i, y in enumerate(outputs):
                y._node = (self, i)
                y.generation = self.generation + 1
            self.outputs = [weakref.ref(y) for y in outputs]
            self._meta = [(y.data.shape, y.data.dtype) for y in outputs]
            if self.retain_outputs:
                self._ys = [y.data for y in outputs]
        return outputs

    def forward(self, *xs):
        raise NotImplementedError(f"{type(self).__name__}.forward is not defined")

    def backward(self, *gys):
        raise NotImplementedError(
            f"{type(self).__name__}.backward is not defined: this op cannot be differentiated"
        )

    # --- helpers for backward ---------------------------------------------------------------
    @property
    def input(self):
        """The input Variable of a single-input function (seed style)."""
        return self.inputs[0]

    @input.setter
    def input(self, value):
        self.inputs = [value]

    @property
    def output(self):
        """The output Variable of a single-output function (seed style), or None if freed."""
        return self.outputs[0]()

    @output.setter
    def output(self, value):
        self.outputs = [weakref.ref(value)]

    def retained_output(self, i: int = 0) -> Variable:
        """Output ``i`` as a Variable linked to this function (for backward formulas).

        The op must list ``i`` in ``retain_outputs``. If the user dropped the output, a new
        Variable is made from the kept data and attached to this function, so a
        ``create_graph`` backward still differentiates through it.
        """
        y = self.outputs[i]()
        if y is None:
            y = Variable(self._ys[i])
            y._node = (self, i)
            y.generation = self.generation + 1
            tangents = self.__dict__.get("_output_tangents")  # kept by forward mode
            if tangents is not None and tangents[i] is not None:
                y._tangents = tangents[i]
        return y

    def needs_grad(self, i: int) -> bool:
        """False when input ``i`` is a constant (a raw array): backward may skip its gradient."""
        return self._edges[i] is not None

    def __repr__(self):
        return f"<{type(self).__name__}>"


# Set by mibun.func while a forward-mode level is open: called as
# ``hook(function, input_variables, output_variables, recorded)`` after each forward, it
# computes the outputs' tangents. None otherwise (one global read per op).
_forward_hook = None


def _wrap_inputs(f, inputs):
    variables, xs = [], []
    for i, x in enumerate(inputs):
        if not isinstance(x, Variable):  # a raw array or scalar: a constant
            try:
                x = _constant(as_array(x, backend.get_array_module(x)))
            except (TypeError, ValueError) as e:  # None, a str, a dict, complex data, ...
                name = errors.input_names(f, len(inputs))[i]
                raise errors.bad_operand(errors.op_name(type(f).__name__), name, x) from e
        variables.append(x)
        xs.append(x.data)
    return variables, xs


# =============================================================================
# Backprop
# =============================================================================
def _fmt(shape, dtype) -> str:
    return f"shape={tuple(shape)} dtype={dtype}"


def _check_grad(f, i, gx, shape, dtype):
    """Return ``gx`` as a Variable of the given dtype, or raise if its shape is wrong."""
    if not isinstance(gx, Variable):
        if isinstance(gx, (list, tuple)) or not hasattr(gx, "shape") and not np.isscalar(gx):
            raise TypeError(
                f"{type(f).__name__}.backward returned a {type(gx).__name__} as the "
                f"gradient of input {i}; return a Variable, an ndarray or None"
            )
        gx = _constant(as_array(gx, backend.get_array_module(gx)), type(f).__name__ +
                       ".backward", f"the gradient of input {i}")
    data = gx.data
    if data.shape != shape:
        raise ValueError(
            f"{type(f).__name__}.backward: the gradient of input {i} has the wrong shape\n"
            f"  gradient: {_fmt(data.shape, data.dtype)}\n"
            f"  input:    {_fmt(shape, dtype)}"
        )
    # A float input gets its own float dtype back (float32 stays float32). An integer
    # input (a Variable the user made, as in DeZero) keeps whatever dtype its ops gave:
    # ints for integer arithmetic, float where a float entered, never truncated.
    if data.dtype != dtype and dtype.kind in "fc":
        gx = _cast(gx, dtype)
    return gx


class _Cast(Function):
    retain_inputs = ()

    def __init__(self, dtype):
        self.dtype = dtype

    def forward(self, x):
        self.x_dtype = x.dtype
        return x.astype(self.dtype, copy=False)

    def backward(self, gy):
        if self.x_dtype.kind not in "fc":
            return gy  # an integer input: its gradient is not truncated
        return _cast(gy, self.x_dtype)

    def jvp(self, tx):
        return _cast(tx, self.dtype)


def _cast(x, dtype):
    if x.data.dtype == dtype:
        return x
    return _Cast(dtype)(x)


def _seed(start: Variable) -> Variable:
    """The default output gradient: ones in the output's dtype (float64 for bool), a constant."""
    data = start.data
    xp = backend.get_array_module(data)
    # ones in the output's dtype, as DeZero: integer data gives an integer seed. The seed is
    # a constant: no gradient flows into it, so under create_graph=True no graph points back
    # at it (that made a reference cycle per backward).
    # (signed for unsigned data: the gradient of -x is -1; float64 for bool)
    kind = data.dtype.kind
    dtype = data.dtype if kind in "fci" else np.int64 if kind == "u" else np.float64
    return _constant(xp.ones(data.shape, dtype=dtype))


def _run_backward(start: Variable, retain_grad: bool, create_graph: bool,
                  observer=None, targets=None, seed=None):
    """Backprop from ``start``. With ``targets`` (a list of Variables) nothing's ``.grad``
    is touched: the gradients of the targets are returned (None where none arrived) and
    functions below every target (lower generation) are not visited."""
    if start.data is None:
        raise ValueError("Variable.backward: this Variable has no data (data is None); "
                         "backward starts from a computed output, e.g. loss.backward()")
    if targets is None:
        if start.grad is None:
            start.grad = _seed(start)
        elif not isinstance(start.grad, Variable):  # the seed sets y.grad = np.array(1.0)
            start.grad = _constant(as_array(start.grad, backend.get_array_module(start.grad)),
                                   "Variable.backward", "grad")
        seed = start.grad
        wanted = found = None
        floor = 0
    else:
        # A target is known by its edge key: (creator id, output index), or its own id.
        wanted = {}
        for k, t in enumerate(targets):
            wanted.setdefault((id(t._node[0]), t._node[1]) if t._node else id(t), []).append(k)
        found = [None] * len(targets)
        for k, t in enumerate(targets):
            if t is start:  # its own gradient: the seed, in memory of its own
                found[k] = _new_variable(seed.data.copy())
        floor = min(t.generation for t in targets) if targets else 0
    node = start._node
    if node is None:  # a leaf: d(x)/d(x) is ones, which is now its grad
        return found

    # pending[id(f)] holds the gradients of f's outputs summed so far. A function is pushed
    # on the heap when its first output gradient arrives and popped after every function of
    # a higher generation, i.e. after all gradients for its outputs have been summed.
    f0, i0 = node
    pending = {id(f0): [None] * len(f0.outputs)}
    pending[id(f0)][i0] = seed
    heap = [(-f0.generation, 0, f0)]
    count = 1
    pop, push = heapq.heappop, heapq.heappush
    given = {id(seed.data)}  # arrays already stored as some Variable's grad

    with using_config("enable_backprop", create_graph):
        while heap:
            f = pop(heap)[2]
            if f.generation < floor:  # below every target: nothing left to find
                break
            gys = pending.pop(id(f))
            if None in gys:  # an output that did not reach `start`: its gradient is zero
                gys = _fill_zeros(f, gys)
            if retain_grad:
                for ref, gy in zip(f.outputs, gys):
                    y = ref()
                    if y is not None and y is not start:
                        y.grad = gy if y.grad is None else y.grad + gy

            gxs = f.backward(*gys)
            if not isinstance(gxs, tuple):
                gxs = tuple(gxs) if isinstance(gxs, list) else (gxs,)
            edges = f._edges
            if len(gxs) != len(edges):
                raise RuntimeError(
                    f"{type(f).__name__}.backward returned {len(gxs)} gradient(s) for "
                    f"{len(edges)} input(s); return one per input (None for no gradient)"
                )
            if observer is not None:
                observer(f, gys, gxs)
            for i, e in enumerate(edges):
                gx = gxs[i]
                if e is None or gx is None:
                    continue
                if type(e) is tuple:  # an intermediate Variable: output j of function c
                    c, j = e
                    shape, dtype = c._meta[j]
                    if dtype.kind == "b":
                        continue  # a mask: never differentiated
                    if type(gx) is not Variable or gx.data.shape != shape or (
                            gx.data.dtype != dtype):
                        gx = _check_grad(f, i, gx, shape, dtype)
                    if wanted is not None and (id(c), j) in wanted:
                        _found(found, wanted[id(c), j], gx, given)
                    slot = pending.get(id(c))
                    if slot is None:
                        slot = pending[id(c)] = [None] * len(c.outputs)
                        push(heap, (-c.generation, count, c))
                        count += 1
                    slot[j] = gx if slot[j] is None else slot[j] + gx
                else:  # a leaf Variable: accumulate into its grad
                    x = e.data
                    if x.dtype.kind == "b":
                        continue  # a mask: never differentiated
                    if type(gx) is not Variable or gx.data.shape != x.shape or (
                            gx.data.dtype != x.dtype):
                        gx = _check_grad(f, i, gx, x.shape, x.dtype)
                    if wanted is not None:
                        if id(e) in wanted:
                            _found(found, wanted[id(e)], gx, given)
                    elif e.grad is None:
                        # A leaf's gradient owns its memory, so an in-place update
                        # (p.grad.data *= ...) changes nothing else: Add hands the same gy
                        # to both inputs, reshape returns views, broadcast_to read-only ones.
                        if id(gx.data) in given or not _owns_data(gx.data):
                            gx = gx * 1
                        given.add(id(gx.data))
                        e.grad = gx
                    else:
                        e.grad = e.grad + gx
    return found


def _found(found, ks, gx, given):
    """Add ``gx`` to the gradients of targets ``ks``; a first gradient gets its own memory
    (as a leaf's ``.grad`` does) so the caller may update it in place."""
    for k in ks:
        if found[k] is None:
            if id(gx.data) in given or not _owns_data(gx.data):
                gx = gx * 1
            given.add(id(gx.data))
            found[k] = gx
        else:
            found[k] = found[k] + gx


def _owns_data(a) -> bool:
    flags = a.flags
    return flags.owndata and getattr(flags, "writeable", True)  # CuPy has no read-only


def _fill_zeros(f, gys):
    # f was pushed because one of its outputs got a gradient: that one tells the backend.
    xp = backend.get_array_module(next(gy for gy in gys if gy is not None).data)
    return [_constant(xp.zeros(*f._meta[i])) if gy is None else gy for i, gy in enumerate(gys)]


def grad(outputs, inputs, grad_outputs=None, create_graph=False):
    """Gradients of ``outputs`` w.r.t. ``inputs``, returned without touching any ``.grad``.

    This is the function-of-Variables form of :func:`mibun.func.vjp` (as
    ``torch.autograd.grad`` is of ``torch.func.vjp``): ``outputs`` was already computed
    from ``inputs``, and the vector-Jacobian product with ``grad_outputs`` is returned.
    Pure: no Variable's ``.grad`` changes (not the inputs', not other leaves').

    Args:
        outputs (Variable): a Variable (scalar, or any shape with ``grad_outputs``).
        inputs (Variable or sequence of Variable): the variables to differentiate against
            (leaves or intermediate results).
        grad_outputs (array or Variable): the cotangent; ones by default.
        create_graph (bool): record the computation for higher-order derivatives.
    Returns:
        tuple of Variable (or a single Variable when ``inputs`` is one Variable); an input
        that ``outputs`` does not depend on gets zeros.

    >>> x = Variable(np.array(3.0))
    >>> grad(x ** 3, x)
    variable(27.0)
    """
    single = isinstance(inputs, Variable)
    xs = [inputs] if single else list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    for name, v in [("outputs", outputs)] + [("inputs", x) for x in xs]:
        if not isinstance(v, Variable):
            raise TypeError(f"mibun.grad: {name} must be Variables (inputs may be a list of "
                            f"them), got {type(v).__name__}\n{errors.describe(name, v)}\n"
                            "Wrap data as Variable(x) before computing with it")
        if v.data is None:
            raise ValueError(f"mibun.grad: one of the {name} has no data (data is None)")
    seed = _seed(outputs) if grad_outputs is None else as_operand(grad_outputs)
    found = _run_backward(outputs, False, create_graph, targets=xs, seed=seed)
    gs = []
    for x, g in zip(xs, found):
        if g is None:
            xp = backend.get_array_module(x.data)
            g = Variable(xp.zeros_like(x.data))
        gs.append(g)
    return gs[0] if single else tuple(gs)


def numerical_diff(f, x, eps: float = 1e-4):
    """Central difference ``(f(x + eps) - f(x - eps)) / (2 eps)`` (the seed's check).

    Args:
        f: a Function or any callable taking and returning a Variable.
        x (Variable): the point; integer data is promoted by ``x ± eps``.
    Returns:
        ndarray: the derivative of ``f`` at ``x`` (elementwise for array ``x``).
    """
    x = as_variable(x)
    x0 = Variable(x.data - eps)
    x1 = Variable(x.data + eps)
    y0 = as_variable(f(x0))
    y1 = as_variable(f(x1))
    return (y1.data - y0.data) / (2 * eps)


# =============================================================================
# DeZero's other core names
# =============================================================================
# DeZero's core.py also defines the arithmetic ops; mibun keeps them in functions/math.py.
# They are looked up on first use (functions imports this module, so no import at the top).
_MATH_NAMES = frozenset(("Add", "Sub", "Mul", "Div", "Neg", "Pow", "add", "sub", "rsub", "mul",
                         "div", "rdiv", "neg", "pow"))


def __getattr__(name):
    if name in _MATH_NAMES:
        from mibun.functions import math
        return getattr(math, name)
    raise AttributeError(f"module 'mibun.core' has no attribute {name!r}")


def setup_variable() -> None:
    """DeZero's name: install the operators on Variable (``import mibun`` already does)."""
    from mibun.functions import _operators
    _operators.install()
