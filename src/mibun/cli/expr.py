"""The safe expression language of ``mibun grad``: parse, check, evaluate on Variables.

An expression such as ``"exp(x**2)**2"`` is parsed with ``ast`` and every node is checked
against an allow-list (numbers, named variables, ``pi``/``e``, ``+ - * / **``, unary ``-``,
and calls of the functions in :data:`FUNCTIONS` that ``mibun.functions`` provides); it is
never given to ``eval``. :class:`Evaluator` then computes it with mibun ops, keeping every
intermediate so that ``mibun grad --trace`` and ``--graph`` can show them.

This is the lowest module of ``mibun.cli``. Its errors are :class:`UsageError`s (defined in
:mod:`mibun.errors`, below every command, which ``mibun.distributed`` reports too).
"""
from __future__ import annotations

import ast
import math
import warnings

import numpy as np

from mibun import config, core
from mibun import functions as F
from mibun.errors import UsageError

__all__ = ["CONSTANTS", "FUNCTIONS", "Evaluator", "ExpressionError", "UsageError",
           "evaluate", "parse_expression"]


class ExpressionError(UsageError):
    """An expression ``mibun grad`` cannot parse or refuses to evaluate."""


# name -> number of arguments. Each is looked up in mibun.functions when called, so ops
# that another module adds later (relu, softplus ...) are allowed only if they exist.
FUNCTIONS = {
    "exp": 1, "log": 1, "sin": 1, "cos": 1, "tan": 1, "tanh": 1, "sqrt": 1, "abs": 1,
    "sigmoid": 1, "square": 1, "relu": 1, "softplus": 1, "arcsin": 1, "arccos": 1,
    "arctan": 1, "sinh": 1, "cosh": 1, "log1p": 1, "expm1": 1, "erf": 1,
    "maximum": 2, "minimum": 2,
}
CONSTANTS = {"pi": math.pi, "e": math.e}
_BINOPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**"}
_MAX_EXPRESSION = 2000

# What to call a refused node in the message.
_REFUSED = {
    ast.Attribute: "attribute access", ast.Subscript: "a subscript", ast.Lambda: "a lambda",
    ast.Compare: "a comparison", ast.BoolOp: "and/or", ast.IfExp: "an if-else expression",
    ast.List: "a list", ast.Tuple: "a tuple", ast.Dict: "a dict", ast.Set: "a set",
    ast.ListComp: "a comprehension", ast.SetComp: "a comprehension",
    ast.DictComp: "a comprehension", ast.GeneratorExp: "a generator",
    ast.NamedExpr: "an assignment (:=)", ast.JoinedStr: "an f-string", ast.Starred: "*args",
    ast.Await: "await", ast.Yield: "yield", ast.YieldFrom: "yield", ast.Slice: "a slice",
}


def _functions_available():
    return {name: n for name, n in FUNCTIONS.items() if callable(getattr(F, name, None))}


def _at(node):
    col = getattr(node, "col_offset", None)
    return f" at column {col + 1}" if col is not None else ""


def clip(text, n=40):
    """``text`` cut to ``n`` characters, so that an error message stays one short line."""
    return text if len(text) <= n else text[:n - 1] + "…"


def _where(node, text):
    """``: 'source text' at column N`` for a refused node."""
    try:
        seg = ast.get_source_segment(text, node)
    except Exception:  # a malformed position: just leave the snippet out
        seg = None
    return (f": {clip(seg)!r}" if seg else "") + _at(node)


def parse(text):
    """``ast.parse`` in eval mode, without the SyntaxWarnings Python prints for text such as
    ``1not`` (the error that follows, or our own message, is what the user should see)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)
        return ast.parse(text, mode="eval")


def parse_expression(text: str, variables=()) -> ast.Expression:
    """Parse ``text`` and check every node against the allow-list.

    Allowed: numbers, the variables named in ``variables``, the constants ``pi`` and ``e``,
    ``+ - * / **``, unary ``-``/``+``, and calls ``f(a)`` of the functions listed by
    ``mibun grad --help`` (``maximum``/``minimum`` take two). Anything else (attributes,
    subscripts, unknown names or calls, lambdas, keywords, comparisons ...) is refused.

    Args:
        text (str): the expression, e.g. ``"exp(x**2)**2"``.
        variables (iterable of str): the names the expression may use as variables.
    Returns:
        ast.Expression: the checked tree.
    Raises:
        ExpressionError: with the refused construct and its column.

    >>> tree = parse_expression("exp(x**2)**2", ["x"])
    >>> parse_expression("x.__class__", ["x"])
    Traceback (most recent call last):
    ...
    mibun.cli.expr.ExpressionError: attribute access is not allowed: 'x.__class__' at column 1
    """
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError("the expression is empty")
    if len(text) > _MAX_EXPRESSION:
        raise ExpressionError(f"the expression is too long ({len(text)} characters, at most "
                              f"{_MAX_EXPRESSION})")
    try:
        tree = parse(text.strip())
    except SyntaxError as e:
        col = f" at column {e.offset}" if e.offset else ""
        raise ExpressionError(f"cannot parse {clip(text)!r}: {e.msg}{col} (only an expression "
                              "such as 'exp(x**2)**2' is accepted)") from None
    except (RecursionError, MemoryError, ValueError) as e:
        raise ExpressionError(f"cannot parse the expression: {type(e).__name__}") from None
    text = text.strip()
    variables = set(variables)
    funcs = _functions_available()

    def check(node):
        if isinstance(node, ast.Expression):
            return check(node.body)
        if isinstance(node, ast.Constant):
            v = node.value
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ExpressionError(f"only numbers are allowed as constants, not "
                                      f"{type(v).__name__}{_where(node, text)}")
            return
        if isinstance(node, ast.Name):
            if node.id in variables or node.id in CONSTANTS:
                return
            if node.id in funcs:
                raise ExpressionError(f"{node.id!r}{_at(node)} is a function; call it, e.g. "
                                      f"{node.id}(x)")
            raise ExpressionError(f"unknown name {node.id!r}{_at(node)}: give its "
                                  f"value with --at {node.id}=VALUE (constants: pi, e)")
        if isinstance(node, ast.BinOp):
            if type(node.op) not in _BINOPS:
                op = type(node.op).__name__
                raise ExpressionError(f"the operator {op} is not allowed (allowed: + - * / **)"
                                      f"{_where(node, text)}")
            check(node.left)
            check(node.right)
            return
        if isinstance(node, ast.UnaryOp):
            if not isinstance(node.op, (ast.USub, ast.UAdd)):
                raise ExpressionError(f"the operator {type(node.op).__name__} is not allowed "
                                      f"(allowed: unary - and +){_where(node, text)}")
            check(node.operand)
            return
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name):
                raise ExpressionError("only calls of the allowed functions by name are "
                                      f"allowed{_where(node, text)}")
            name = node.func.id
            if name not in funcs:
                raise ExpressionError(f"unknown function {name!r}{_at(node)} "
                                      f"(allowed: {', '.join(sorted(funcs))})")
            if node.keywords:
                raise ExpressionError(f"keyword arguments are not allowed{_where(node, text)}")
            if len(node.args) != funcs[name]:
                raise ExpressionError(f"{name}() takes {funcs[name]} argument(s), got "
                                      f"{len(node.args)}{_where(node, text)}")
            for a in node.args:
                check(a)
            return
        what = _REFUSED.get(type(node), type(node).__name__)
        raise ExpressionError(f"{what} is not allowed{_where(node, text)}")

    try:
        check(tree)
    except RecursionError:
        raise ExpressionError("the expression is nested too deeply") from None
    return tree


class Evaluator:
    """Evaluates a checked tree on Variables, keeping every intermediate alive.

    Keeping them lets ``--trace`` show each function's input values and ``--graph`` draw
    values and retained gradients; ``texts`` maps ``id(Variable)`` to its sub-expression.
    """

    def __init__(self, tree, text):
        self.tree = tree
        self.text = text
        self.keep = []
        self.texts = {}

    def __call__(self, env):
        self.keep = []
        self.texts = {}
        for name, v in env.items():
            self.texts[id(v)] = name
        self.env = env
        try:
            with np.errstate(all="ignore"):
                y = self.eval(self.tree.body)
        except RecursionError:
            raise ExpressionError("the expression is nested too deeply") from None
        except (OverflowError, ZeroDivisionError) as e:
            raise ExpressionError(f"cannot evaluate the expression: {e}") from None
        if not isinstance(y, core.Variable):  # a constant expression: d/dx = 0
            y = core.Variable(np.array(float(y)))
        return y

    def _record(self, v, node):
        if hasattr(v, "data"):
            self.keep.append(v)
            self.texts.setdefault(id(v), ast.unparse(node))
        return v

    def eval(self, node):
        if isinstance(node, ast.Constant):
            return float(node.value)
        if isinstance(node, ast.Name):
            if node.id in self.env:
                return self.env[node.id]
            return CONSTANTS[node.id]
        if isinstance(node, ast.UnaryOp):
            v = self.eval(node.operand)
            return self._record(-v if isinstance(node.op, ast.USub) else v, node)
        if isinstance(node, ast.BinOp):
            a, b = self.eval(node.left), self.eval(node.right)
            op = type(node.op)
            if op is ast.Add:
                y = a + b
            elif op is ast.Sub:
                y = a - b
            elif op is ast.Mult:
                y = a * b
            elif op is ast.Div:
                y = a / b
            else:
                y = a ** b
            return self._record(y, node)
        if isinstance(node, ast.Call):
            args = [self.eval(a) for a in node.args]
            fn = getattr(F, node.func.id)
            if all(isinstance(a, float) for a in args):  # a constant: keep it off the graph
                with config.no_grad():
                    return float(fn(*[np.array(a) for a in args]).data)
            args = [np.array(a) if isinstance(a, float) else a for a in args]
            return self._record(fn(*args), node)
        raise ExpressionError(f"cannot evaluate {type(node).__name__}")  # checked before


def evaluate(text: str, **values):
    """Evaluate an allowed expression at the given point; return the output Variable.

    >>> import mibun
    >>> y = evaluate("exp(x**2)**2", x=mibun.Variable(np.array(0.5)))
    >>> round(float(y.data), 6)
    1.648721
    """
    env = {k: v if isinstance(v, core.Variable) else core.Variable(np.array(float(v)))
           for k, v in values.items()}
    return Evaluator(parse_expression(text, env), text)(env)
