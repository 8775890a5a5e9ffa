"""The engine: ``Variable``, ``Function`` and backprop.

DeZero's core (a Variable boxes an ndarray; calling a Function records the graph;
``backward`` walks it back from the output), with these changes:

* Backward pops functions from a heap on generation: O(n log n), no recursion limit.
* A function records an *edge* per input (:func:`edge_source` decodes one): ``(creator,
  index)``, ``(None, weakref to the leaf)``, or ``None`` for a constant (a raw array, the
  seed), which gets no gradient.
* It keeps only what backward reads: a user's Function its input Variables (as DeZero), a
  built-in op the *data* of the inputs and outputs it names (``retain_inputs`` /
  ``retain_outputs``). Outputs are held weakly and no leaf strongly, so a dropped graph is
  freed by refcounting alone, even the graph of a ``create_graph=True`` gradient.

**Two backward modes, one formula.** Each op's backward is written once, with operators
and mibun ops. Under ``backward(create_graph=True)`` it runs on Variables (a built-in op's
``self.inputs`` and ``retained_output()`` rebuilt as Variables in the graph), so the
gradients are recorded and can be differentiated again. Otherwise, the usual case, the
engine hands a built-in op plain arrays (gradients, ``self.inputs``, ``retained_output()``)
with ``Config.array_backward`` on, under which a mibun op called with arrays just runs its
forward: nothing is made or recorded. A user's Function (which may read ``gy.data``) still
gets Variables. A formula must mean the same on arrays and Variables: no ``.data`` (a
memoryview on an ndarray), :func:`data_of` instead; the op tests compare both modes.
"""
from __future__ import annotations

import heapq
import weakref
from typing import Any

import numpy as np

from mibun import backend, errors
from mibun.config import Config, no_grad, test_mode, using_config  # noqa: F401  (DeZero's core)

_array_types = backend.array_types
_raw_types = _array_types + (np.generic,)  # what a backward on arrays computes with


class Variable:
    """An ndarray in the graph: ``data``, its gradient ``grad`` (a Variable), ``creator``.
    (``shape``, ``ndim``, ``size``, ``dtype``, ``len()``, ``repr()`` and the operators come
    from :mod:`mibun.functions`.)

    Args:
        data (ndarray or None): a NumPy or CuPy array (a NumPy scalar becomes a 0-d array);
            ``None`` for a parameter initialised later.
        name (str): optional, shown in ``repr`` and graph drawings.

    >>> x = Variable(np.array(2.0)); (x ** 2).backward(); x.grad
    variable(4.0)
    """

    # ``_tangents`` ({level: tangent Variable}) is set only by forward mode (mibun.func).
    __slots__ = ("__weakref__", "_node", "_tangents", "data", "generation", "grad", "name")
    __array_priority__ = 200  # ndarray <op> Variable defers to Variable

    def __init__(self, data, name: str | None = None):
        if isinstance(data, np.generic):
            data = np.asarray(data)
        elif data is not None and not isinstance(data, _array_types):
            raise TypeError(f"Variable: data must be a numpy.ndarray (or cupy.ndarray) or "
                            f"None, got {type(data).__name__}: {data!r:.60}. Wrap it "
                            "first, e.g. Variable(np.array(...)).")
        if data is not None and data.dtype.kind not in errors.REAL_KINDS:
            raise errors.unsupported_dtype(errors.op_name("Variable"), "data", data)
        self.data, self.name = data, name
        self.grad: Variable | None = None
        self._node: tuple | None = None  # (creator Function, output index), None: a leaf
        self.generation = 0

    creator = property(lambda self: None if self._node is None else self._node[0],
                       lambda self, f: self.set_creator(f),
                       doc="The Function that produced this Variable, or None for a leaf.")

    def set_creator(self, func, index: int = 0) -> None:
        self._node = None if func is None else (func, index)
        self.generation = 0 if func is None else func.generation + 1

    def cleargrad(self) -> None:
        self.grad = None

    def unchain(self) -> None:
        """Forget the creator: this Variable becomes a leaf for functions called from now on."""
        self._node = None

    def unchain_backward(self) -> None:
        """Cut every Variable of the graph below this one from its creator (truncated BPTT)."""
        for f in functions_below(self):
            for y in [ref() for ref in f.outputs if ref() is not None]:
                y._node = None
        self._node = None

    def backward(self, retain_grad: bool = False, create_graph: bool = False, *,
                 observer=None) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's ``grad``.

        Args:
            retain_grad: also store the gradient of every intermediate Variable still alive.
            create_graph: record the backward, so the gradients can be differentiated again.
            observer: ``observer(f, gys, gxs)`` after each function's backward, in order
                (``mibun grad --trace``).
        """
        _run_backward(self, retain_grad, create_graph, observer)

    def to_cpu(self) -> None:
        self.data = None if self.data is None else backend.as_numpy(self.data)

    def to_gpu(self) -> None:
        self.data = None if self.data is None else backend.as_cupy(self.data)


class Parameter(Variable):
    """A Variable that a Layer registers as a trainable parameter (it may carry attributes)."""


_object_new = object.__new__


def _new_variable(data, generation=0):
    """``Variable(data)`` for an ndarray, unchecked; generation -1 marks a *constant*."""
    v = _object_new(Variable)
    v.data, v.generation = data, generation
    v.name = v.grad = v._node = None
    return v


as_array = backend.as_array  # DeZero's helper: a scalar as a 0-d array, arrays unchanged


def as_variable(obj) -> Variable:
    """``obj`` if it is a Variable, else a new leaf wrapping it (DeZero's: backprop gives it
    a ``grad``); ops wrap raw operands with :func:`as_operand` instead."""
    if isinstance(obj, Variable):
        return obj
    return Variable(_real_array(obj, lambda: (errors.op_name("mibun.as_variable"),
                                              errors.arg_name(obj, depth=4))))


def as_operand(obj) -> Variable:
    """``obj`` if it is a Variable, else a *constant* wrapping it, which never gets a ``grad``
    (a loss's raw target). In a backward on arrays an array stays an array."""
    if isinstance(obj, Variable) or Config.array_backward and isinstance(obj, _raw_types):
        return obj
    return _new_variable(_real_array(obj, lambda: (errors.op_name("mibun.as_operand"),
                                                   errors.arg_name(obj, depth=4))), -1)


def with_constants(inputs, xs):
    """``inputs`` as Variables: one given raw becomes a constant of its data ``xs[i]``."""
    return [x if isinstance(x, Variable) else _new_variable(as_array(d), -1) for x, d in
            zip(inputs, xs)]


def data_of(x):
    """The array of a Variable, or ``x``: how a formula reads data in both backward modes."""
    return x.data if isinstance(x, Variable) else x


def _real_array(obj, where):
    """``obj`` as an array of real numbers, or a TypeError naming ``where()``'s (op, arg)."""
    try:
        data = as_array(obj, backend.get_array_module(obj))
        if data.dtype.kind in errors.REAL_KINDS:
            return data
        err = None
    except (TypeError, ValueError) as e:  # a ragged list, None, a str, ...
        err = e
    raise errors.bad_operand(*where(), obj) from err


class Function:
    """A differentiable operation: ``forward`` on arrays, ``backward`` on gradients.

    Subclasses define ``forward(self, *xs)`` (ndarrays in, an ndarray or a tuple out) and
    ``backward(self, *gys)`` (a gradient per input, ``None`` for one needing none), which
    reads ``self.inputs`` and ``self.outputs`` (weak references): Variables for a user's
    Function, as in DeZero. A built-in op sets these (see the module docstring):

    * ``retain_inputs``: indices (or ``"all"``) of the inputs whose data backward reads
      in ``self.inputs`` (the others are ``None`` there);
    * ``retain_outputs``: indices of the outputs it reads with ``retained_output(i)``;
    * ``grad_reads``: per input, the inputs its gradient reads (Mul: ``((1,), (0,))``), to
      keep only what the needed gradients read (``x * 2.0`` keeps nothing of ``x``);
    * ``weak_scalars``: a Python number operand reaches ``forward`` as it is, so NumPy's
      weak-scalar rule keeps ``float32 * 2.0`` float32 (arithmetic sets this).
    """

    __slots__ = ("__weakref__", "_edges", "_meta", "_ys", "generation", "inputs", "outputs")
    retain_inputs: tuple | str | None = None
    retain_outputs: tuple = ()
    grad_reads: tuple | None = None
    weak_scalars = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._keeps = {}  # mask of constant inputs -> what the other inputs' gradients read

    def __call__(self, *inputs):
        record = Config.enable_backprop  # the hot path: one pass over inputs, one over outputs
        xs, edges, gen, plain, consts = [], [], 0, True, 0
        for x in inputs:
            if isinstance(x, Variable):
                xs.append(x.data)
                if record:
                    g = x.generation
                    if g < 0:  # a constant
                        consts |= 1 << len(edges)
                        edges.append(None)
                    else:
                        edges.append(x._node or (None, weakref.ref(x)))
                        if g > gen:  # noqa: PLR1730  (max() is a call: slower here)
                            gen = g
                continue
            if self.weak_scalars and (type(x) is float or type(x) is int):
                xs.append(x)  # a Python number, kept weak
            elif Config.array_backward:  # a formula in a backward on arrays: arrays out
                return self._forward([data_of(x) for x in inputs])
            else:  # a raw array: a constant
                xs.append(_real_array(x, lambda: (errors.op_name(type(self).__name__), errors
                                                  .input_names(self, len(inputs))[len(xs)])))
            plain = False
            consts |= 1 << len(edges)
            edges.append(None)
        ys = self._forward(xs)
        keep, variables = self.retain_inputs, inputs
        if not plain and keep is None:  # a user's Function reads Variables
            variables = with_constants(inputs, xs)
        if record:
            self._edges, self.generation = edges, gen
            if consts and self.grad_reads is not None:  # keep what the needed gradients read
                keep = self._keeps.get(consts)
                if keep is None:  # (worked out once per class and mask of constant inputs)
                    keep = self._keeps[consts] = tuple(sorted({j for i, js in enumerate(
                        self.grad_reads) if not consts >> i & 1 for j in js}))
            if keep is None:
                self.inputs = variables
            elif len(keep) == len(xs) or keep == "all":
                self.inputs = xs
            else:
                self.inputs = inputs_kept = [None] * len(xs)
                for i in keep:
                    inputs_kept[i] = xs[i]
            gen, refs, meta = gen + 1, [], []
            self.outputs, self._meta = refs, meta
        single = type(ys) is not tuple  # one path links any number of outputs
        outputs = []
        for i, y in enumerate((ys,) if single else ys):
            if not isinstance(y, _array_types):
                y = np.asarray(y)  # NumPy returns 0-d results as scalars
            v = _object_new(Variable)
            v.data, v.name, v.grad = y, None, None
            outputs.append(v)
            if not record:
                v._node, v.generation = None, 0
                continue
            v._node, v.generation = (self, i), gen
            refs.append(weakref.ref(v))
            meta.append((y.shape, y.dtype))
        if record and self.retain_outputs:
            self._ys = [v.data for v in outputs]
        if _forward_hook is not None:
            _forward_hook(self, variables, xs, outputs, record)
        return outputs[0] if single else outputs

    def _forward(self, xs):
        try:
            return self.forward(*xs)
        except (TypeError, ValueError, IndexError) as e:  # NumPy's error, naming the op
            names = errors.input_names(self, len(xs))
            raise errors.op_error(e, dict(zip(names, xs)), type(self).__name__) from e

    def forward(self, *xs):
        raise NotImplementedError(f"{type(self).__name__}.forward is not defined")

    def backward(self, *gys):
        raise NotImplementedError(f"{type(self).__name__}.backward is not defined: this op "
                                  "cannot be differentiated")

    # The seed's names for a one-input, one-output function (the output None once freed).
    input = property(lambda self: self.inputs[0], lambda self, x: setattr(self, "inputs", [x]))
    output = property(lambda self: self.outputs[0](),
                      lambda self, y: setattr(self, "outputs", [weakref.ref(y)]))

    def retained_output(self, i: int = 0):
        """Output ``i`` (listed in ``retain_outputs``) for a backward formula: its array in a
        backward on arrays, else a Variable in the graph (rebuilt if the user dropped it)."""
        return self._ys[i] if Config.array_backward else _output_variable(self, i)

    def needs_grad(self, i: int) -> bool:
        """False for a constant input (a raw array): backward may skip its gradient."""
        return self._edges[i] is not None

    def __repr__(self):
        return f"<{type(self).__name__}>"


_forward_hook = None  # mibun.func's hook(function, inputs, their data, outputs, recorded)
autograd: Any = None  # backward's gradient rules: mibun.autograd (it imports us) sets itself here


def edge_source(e):
    """What an edge points at: ``(creator, index)`` for an intermediate Variable,
    ``(None, leaf)`` for a leaf (``leaf`` None once dropped), ``None`` for a constant."""
    return e if e is None or e[0] is not None else (None, e[1]())


def functions_below(v):
    """Every Function the graph of ``v`` reaches, once each (in no particular order)."""
    stack, seen = [v.creator] if v._node else [], set()
    while stack:
        f = stack.pop()
        yield f
        for e in f._edges:
            if e is not None and e[0] is not None and id(e[0]) not in seen:
                seen.add(id(e[0]))
                stack.append(e[0])


def _output_variable(f, i, data=None):
    """Output ``i`` of ``f``: the live one, or rebuilt from ``data`` (or the kept output)."""
    y = f.outputs[i]()
    if y is None:
        y = _new_variable(f._ys[i] if data is None else data, f.generation + 1)
        y._node = (f, i)
        tangents = (f.__dict__.get("_output_tangents") or {i: None})[i]
        if tangents is not None:
            y._tangents = tangents
    return y


def _input_variables(f):
    """A built-in op's inputs as Variables in the graph (a dropped leaf: its data)."""
    vs = list(f.inputs)
    for i, e in enumerate(f._edges):
        src = edge_source(e)
        if src is not None and vs[i] is not None:
            c, j = src
            vs[i] = _output_variable(c, j, vs[i]) if c is not None else vs[i] if j is None else j
    return vs


# --- backprop -----------------------------------------------------------------------------
def _run_backward(start: Variable, retain_grad: bool, create_graph: bool,
                  observer=None, seed=None, wanted=None, found=None, floor=0):
    """Backprop from ``start`` into the leaves' ``grad``; with ``wanted`` ({edge key: target
    numbers}, see ``mibun.grad``) into the list ``found`` instead, touching no ``.grad``
    and visiting no function below generation ``floor``."""
    if start.data is None:
        raise ValueError("Variable.backward: this Variable has no data (data is None); "
                         "backward starts from a computed output, e.g. loss.backward()")
    if wanted is None:  # the output's grad, ones unless the user set one
        seed = start.grad = autograd.start_grad(start)
    if start._node is None:  # a leaf: d(x)/d(x) is ones, which is now its grad
        return found
    arrays = not create_graph
    seed = seed.data if arrays else seed
    # pending[id(f)]: f's output gradients so far (f waits on the heap for all of them).
    f, i = start._node
    pending = {id(f): [None] * len(f.outputs)}
    pending[id(f)][i] = seed
    heap, count = [(-f.generation, 0, f)], 1
    given = {id(data_of(seed))}  # arrays already given out as some Variable's grad
    ok = autograd.ARRAY_GRADS if arrays else autograd.VARIABLE_GRADS
    saved = Config.enable_backprop, Config.array_backward  # (set directly: per thread)
    Config.enable_backprop, Config.array_backward = create_graph, arrays
    try:
        while heap:
            f = heapq.heappop(heap)[2]
            if f.generation < floor:  # below every target: nothing left to find
                break
            gys = pending.pop(id(f))
            if len(gys) > 1 and any(gy is None for gy in gys):  # an output that did not
                gys = autograd.fill_zeros(f, gys, arrays)  # reach `start`: zeros
            if retain_grad:
                for ref, gy in zip(f.outputs, gys):
                    y = ref()
                    if y is not None and y is not start:
                        y.grad = autograd.accumulate(y.grad, gy, given, arrays)
            if f._edges.count(None) == len(f._edges):
                continue  # every input a constant: nothing to pass on
            gxs = _call_backward(f, gys, arrays)
            if observer is not None:
                observer(f, gys, gxs)
            for i, e in enumerate(f._edges):
                gx = gxs[i]
                if e is None or gx is None:
                    continue
                c, j = e  # (creator, output index), or (None, weakref to a leaf)
                if c is None:  # (edge_source's decoding, inlined: the hot loop)
                    j = j()
                    if j is None:
                        continue  # a leaf the user dropped: nobody can read its grad
                    shape, dtype = j.data.shape, j.data.dtype
                else:
                    shape, dtype = c._meta[j]
                if dtype.kind == "b":
                    continue  # a mask: never differentiated
                d = gx if arrays else data_of(gx)
                if type(gx) not in ok or d.shape != shape or d.dtype != dtype:
                    gx = autograd.as_grad(f, i, gx, shape, dtype, arrays)
                if wanted is not None:
                    for k in wanted.get(id(j) if c is None else (id(c), j), ()):
                        found[k] = autograd.accumulate(found[k], gx, given, arrays)
                if c is not None:  # output j of function c: sum it into c's pending slot
                    slot = pending.get(id(c))
                    if slot is None:
                        slot = pending[id(c)] = [None] * len(c.outputs)
                        heapq.heappush(heap, (-c.generation, count, c))
                        count += 1
                    slot[j] = gx if slot[j] is None else slot[j] + gx
                elif wanted is None:
                    j.grad = autograd.accumulate(j.grad, gx, given, arrays, j)
    finally:
        Config.enable_backprop, Config.array_backward = saved
    return found


def _call_backward(f, gys, arrays):
    """``f.backward(*gys)`` in the current mode, as a tuple with one gradient per input."""
    if f.retain_inputs is None and arrays:  # a user's Function gets Variables in both modes
        Config.array_backward = False
        try:
            gxs = f.backward(*[_new_variable(np.asarray(gy), -1) for gy in gys])
        finally:
            Config.array_backward = True
    elif f.retain_inputs is None or arrays:
        gxs = f.backward(*gys)
    else:  # create_graph: a built-in op reads its inputs as Variables in the graph
        kept, f.inputs = f.inputs, _input_variables(f)
        try:
            gxs = f.backward(*gys)
        finally:
            f.inputs = kept
    gxs = gxs if type(gxs) is tuple else tuple(gxs) if isinstance(gxs, list) else (gxs,)
    if len(gxs) != len(f._edges):
        raise RuntimeError(f"{type(f).__name__}.backward returned {len(gxs)} gradient(s) for "
                           f"{len(f._edges)} input(s); return one per input (None for none)")
    return gxs

