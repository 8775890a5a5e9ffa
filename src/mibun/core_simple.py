"""DeZero's ``dezero.core_simple`` (the book's second stage, steps 23-32) under its own name.

DeZero keeps two cores: a first-order one for steps 11-32 and the full one. mibun has a single
engine, which is first-order unless ``create_graph=True`` is asked for, so this module gives
that engine's names: ``from mibun.core_simple import Variable, setup_variable`` works as in
step 28, and such a Variable is the same class as ``mibun.Variable``.
"""
from mibun.config import Config, no_grad, using_config  # noqa: F401
from mibun.core import Function, Variable, as_array, as_variable, setup_variable  # noqa: F401
from mibun.functions.math import (  # noqa: F401
                                  Add,
                                  Div,
                                  Mul,
                                  Neg,
                                  Pow,
                                  Sub,
                                  add,
                                  div,
                                  mul,
                                  neg,
                                  pow,
                                  rdiv,
                                  rsub,
                                  sub,
)
