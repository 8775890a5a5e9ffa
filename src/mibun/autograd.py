"""``mibun.grad``: gradients returned as values, without touching any ``.grad``
(``torch.autograd.grad``). The engine is :mod:`mibun.core`'s; this asks it to collect the
gradients of some targets instead of accumulating into leaves."""
from __future__ import annotations

import numpy as np  # noqa: F401  (the doctest)

from mibun import backend, core, errors
from mibun.core import Variable


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
    seed = core._seed(outputs) if grad_outputs is None else core.as_operand(grad_outputs)
    found = core._run_backward(outputs, False, create_graph, targets=xs, seed=seed)
    gs = [Variable(backend.get_array_module(x.data).zeros_like(x.data)) if g is None else g
          for x, g in zip(xs, found)]
    return gs[0] if single else tuple(gs)
