"""What a gradient is, and ``mibun.grad``.

The backward engine (:mod:`mibun.core`) applies these rules to every gradient: the seed
(ones in the output's dtype), the type and dtype a gradient must have in each backward
mode, memory of its own for a first gradient, zeros for an output no gradient reached.
``mibun.grad`` asks the engine for the gradients of some targets, returned as values
without touching any ``.grad`` (``torch.autograd.grad``).

This module sits above the engine: it imports :mod:`mibun.core` and, when imported, hands
core these rules (``core.autograd``), as :mod:`mibun.functions` installs the operators on
``Variable``; ``import mibun`` does both."""
from __future__ import annotations

import sys
import weakref

import numpy as np

from mibun import backend, core, errors
from mibun.config import Config
from mibun.core import Variable
from mibun.functions import array


def grad(outputs, inputs, grad_outputs=None, create_graph=False):
    """Gradients of ``outputs`` w.r.t. ``inputs``, returned without touching any ``.grad``.

    The function-of-Variables form of :func:`mibun.func.vjp` (as ``torch.autograd.grad``
    is of ``torch.func.vjp``): the vector-Jacobian product with ``grad_outputs``.

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
    gy = seed(outputs) if grad_outputs is None else core.as_operand(grad_outputs)
    wanted = {}  # a target is known by its edge: (creator id, output index), or its own id
    for k, x in enumerate(xs):
        wanted.setdefault((id(x._node[0]), x._node[1]) if x._node else id(x), []).append(k)
    found = [Variable(gy.data.copy()) if x is outputs else None for x in xs]
    found = core._run_backward(outputs, False, create_graph, seed=gy, wanted=wanted,
                               found=found, floor=min(x.generation for x in xs) if xs else 0)
    gs = [Variable(backend.get_array_module(x.data).zeros_like(x.data)) if g is None else g
          for x, g in zip(xs, found)]
    return gs[0] if single else tuple(gs)


def start_grad(start: Variable) -> Variable:
    """The gradient ``start.backward()`` starts from: ``start.grad`` as a constant Variable
    (the seed's style sets ``y.grad = np.array(1.0)``), or the seed."""
    if start.grad is None:
        return seed(start)
    if isinstance(start.grad, Variable):
        return start.grad
    return core._new_variable(core._real_array(start.grad, lambda: ("Variable.backward",
                                                                    "grad")), -1)


def seed(start: Variable) -> Variable:
    """The default output gradient: ones in the output's dtype (as DeZero: integer for an
    integer output; signed for unsigned data, float64 for bool), a constant."""
    d = start.data
    dtype = d.dtype if d.dtype.kind in "fci" else np.int64 if d.dtype.kind == "u" else np.float64
    return core._new_variable(backend.get_array_module(d).ones(d.shape, dtype=dtype), -1)


# The gradient types the fast check in _run_backward accepts (0-d NumPy results are scalars).
ARRAY_GRADS = frozenset((np.float64, np.float32) + core._array_types)
VARIABLE_GRADS = frozenset((Variable,))


def as_grad(f, i, gx, shape, dtype, arrays):
    """``gx`` as the mode's gradient (an array, or a Variable when a graph is recorded) in
    the input's float dtype, or an error naming the op if it is not a gradient of that
    shape. (An integer input, a Variable the user made as in DeZero, keeps the dtype its
    ops gave: never truncated.)"""
    if isinstance(gx, (list, tuple)) or not hasattr(gx, "shape") and not np.isscalar(gx):
        raise errors.bad_gradient(f, i, gx)
    d = core._real_array(core.data_of(gx), lambda: (type(f).__name__ + ".backward",
                                          f"the gradient of input {i}"))
    if d.shape != shape:
        raise errors.bad_gradient(f, i, d, shape, dtype)
    if arrays:
        return d.astype(dtype) if d.dtype != dtype and dtype.kind in "fc" else d
    gx = gx if isinstance(gx, Variable) else core._new_variable(d, -1)
    if d.dtype != dtype and dtype.kind in "fc":
        gx = array.astype(gx, dtype)
    return gx


def accumulate(grad, gx, given, arrays, leaf=None):
    """``grad + gx`` as a new Variable. A first gradient gets memory of its own, so an
    in-place update (``p.grad.data *= ...``) changes nothing else: Add hands the same gy to
    both inputs, reshape returns views. (The ``leaf``'s arena slot, which a formula wrote
    through :func:`arena_out`, is its own.)"""
    if grad is not None:
        return grad + gx if not arrays else core._new_variable(np.asarray(grad.data + gx))
    d = gx if arrays else gx.data
    if (id(d) in given or not isinstance(d, core._array_types) or not (
            d.flags.owndata and getattr(d.flags, "writeable", True))  # CuPy: no read-only
            ) and (leaf is None or id(d) in given or d is not arena_slot(leaf)):
        d = d.copy() if isinstance(d, core._array_types) else np.asarray(d)
        gx = d if arrays else gx * 1
    given.add(id(d))
    return core._new_variable(d) if arrays else gx


# id of a Parameter -> (a weak reference to it, its slot in a gradient arena): the flat
# buffer that mibun.distributed reduces in one message, per model and dtype (set_arena)
ARENA_SLOTS: dict = {}


def set_arena(p, slot) -> None:
    """Give ``p`` its ``slot`` (a view of a gradient arena) for :func:`arena_out` (None:
    take it away); the entry goes when ``p`` does."""
    key = id(p)
    if slot is None:
        ARENA_SLOTS.pop(key, None)
        return

    def gone(ref):
        if ARENA_SLOTS.get(key, (None,))[0] is ref:
            del ARENA_SLOTS[key]

    ARENA_SLOTS[key] = (weakref.ref(p, gone), slot)


def arena_slot(p):
    """``p``'s gradient-arena slot, or None."""
    e = ARENA_SLOTS.get(id(p))
    return e[1] if e is not None and e[0]() is p else None


def arena_out(f, i, dtype):
    """Where ``f.backward`` may write input ``i``'s gradient, of ``dtype``, in place: the
    slot of the leaf behind that input in a gradient arena (:func:`set_arena`), when that
    gradient is the leaf's first of a backward on arrays; else None.

    The slot then *is* ``grad.data`` (:func:`accumulate` keeps it), so the reduction copies
    nothing. The next backward after ``cleargrads()`` writes it again, as PyTorch's
    ``gradient_as_bucket_view``. Another contribution to the same leaf, or
    ``mibun.grad`` (which returns copies), leaves ``.grad`` as without an arena."""
    if not ARENA_SLOTS or not Config.array_backward:
        return None
    e = f._edges[i]
    p = None if e is None or e[0] is not None else e[1]()  # a leaf input, still alive
    out = None if p is None else arena_slot(p)
    if (out is None or p.grad is not None or out.dtype != dtype
            or out.shape != p.data.shape or type(out) is not type(p.data)):
        return None
    return out


def fill_zeros(f, gys, arrays):
    # f was pushed because one of its outputs got a gradient: that one tells the backend.
    xp = backend.get_array_module(core.data_of(next(gy for gy in gys if gy is not None)))
    return [gy if gy is not None else xp.zeros(*f._meta[i]) if arrays else
            core._new_variable(xp.zeros(*f._meta[i]), -1) for i, gy in enumerate(gys)]


core.autograd = sys.modules[__name__]  # the engine calls the rules above as core.autograd.*
