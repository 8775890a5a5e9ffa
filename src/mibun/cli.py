"""The ``mibun`` command: ``mibun train`` (train a model) and ``mibun grad`` (differentiate).

``mibun train`` with no arguments trains an MLP on the bundled 8x8 digits (no download) in
about a second, and writes a checkpoint, a CSV of the metrics and a PNG of the learning
curves to the output directory it names. Ctrl-C stops after the current step and saves a
checkpoint that ``mibun train --resume`` continues from, to the same numbers as a run that
was never stopped. This module parses the arguments; ``mibun.train`` does the training.

``mibun grad "exp(x**2)**2" --at x=0.5`` prints the value, the derivative by backprop and the
central difference beside it (the seed's check); ``--order``, ``--hessian``, ``--graph`` and
``--trace`` go further. The expression is parsed with ``ast`` and evaluated from an
allow-list of mibun functions and operators: it is never given to ``eval``.

Exit status: 0 done, 1 failed (one line on stderr), 2 bad arguments, 130 interrupted.
"""
from __future__ import annotations

import argparse
import ast
import math
import os
import re
import sys
import warnings

import numpy as np

from mibun import core, train

__all__ = ["ExpressionError", "evaluate", "main", "parse_expression"]

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    """A bad command-line argument: reported as one line, exit status 2."""

    def __init__(self, message, prog=None):
        super().__init__(message)
        self.prog = prog


class ExpressionError(UsageError):
    """An expression ``mibun grad`` cannot parse or refuses to evaluate."""


# =============================================================================
# Safe expressions for `mibun grad`
# =============================================================================
# name -> number of arguments. Each is looked up in mibun.functions when called, so ops
# that another module adds later (relu, softplus ...) are allowed only if they exist.
_FUNCTIONS = {
    "exp": 1, "log": 1, "sin": 1, "cos": 1, "tan": 1, "tanh": 1, "sqrt": 1, "abs": 1,
    "sigmoid": 1, "square": 1, "relu": 1, "softplus": 1, "arcsin": 1, "arccos": 1,
    "arctan": 1, "sinh": 1, "cosh": 1, "log1p": 1, "expm1": 1, "erf": 1,
    "maximum": 2, "minimum": 2,
}
_CONSTANTS = {"pi": math.pi, "e": math.e}
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
    import mibun.functions as F
    return {name: n for name, n in _FUNCTIONS.items() if callable(getattr(F, name, None))}


def _at(node):
    col = getattr(node, "col_offset", None)
    return f" at column {col + 1}" if col is not None else ""


def _clip(text, n=40):
    """``text`` cut to ``n`` characters, so that an error message stays one short line."""
    return text if len(text) <= n else text[:n - 1] + "…"


def _where(node, text):
    """``: 'source text' at column N`` for a refused node."""
    try:
        seg = ast.get_source_segment(text, node)
    except Exception:  # a malformed position: just leave the snippet out
        seg = None
    return (f": {_clip(seg)!r}" if seg else "") + _at(node)


def _parse(text):
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
    mibun.cli.ExpressionError: attribute access is not allowed: 'x.__class__' at column 1
    """
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError("the expression is empty")
    if len(text) > _MAX_EXPRESSION:
        raise ExpressionError(f"the expression is too long ({len(text)} characters, at most "
                              f"{_MAX_EXPRESSION})")
    try:
        tree = _parse(text.strip())
    except SyntaxError as e:
        col = f" at column {e.offset}" if e.offset else ""
        raise ExpressionError(f"cannot parse {_clip(text)!r}: {e.msg}{col} (only an expression "
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
            if node.id in variables or node.id in _CONSTANTS:
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


class _Evaluator:
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
        import mibun
        import mibun.functions as F
        self.keep = []
        self.texts = {}
        for name, v in env.items():
            self.texts[id(v)] = name
        self.F = F
        self.env = env
        try:
            with np.errstate(all="ignore"):
                y = self.eval(self.tree.body)
        except RecursionError:
            raise ExpressionError("the expression is nested too deeply") from None
        except (OverflowError, ZeroDivisionError) as e:
            raise ExpressionError(f"cannot evaluate the expression: {e}") from None
        if not isinstance(y, mibun.Variable):  # a constant expression: d/dx = 0
            y = mibun.Variable(np.array(float(y)))
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
            return _CONSTANTS[node.id]
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
            fn = getattr(self.F, node.func.id)
            if all(isinstance(a, float) for a in args):  # a constant: keep it off the graph
                import mibun
                with mibun.no_grad():
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
    import mibun
    env = {k: v if isinstance(v, mibun.Variable) else mibun.Variable(np.array(float(v)))
           for k, v in values.items()}
    return _Evaluator(parse_expression(text, env), text)(env)


def _parse_point(specs):
    """``["x=0.5,y=pi/4"]`` -> ``{"x": 0.5, "y": 0.785...}`` (values are safe expressions)."""
    point = {}
    for spec in specs:
        for item in re.split(r",(?=\s*[A-Za-z_]\w*\s*=)", spec):
            if "=" not in item:
                raise UsageError(f"--at expects NAME=VALUE pairs such as x=0.5,y=2; got "
                                 f"{item.strip()!r}")
            name, value = (s.strip() for s in item.split("=", 1))
            if not name.isidentifier() or name in _CONSTANTS or name in _FUNCTIONS:
                raise UsageError(f"--at: {name!r} cannot be a variable name (use a name such "
                                 "as x, y, w1 that is not a function or constant)")
            if name in point:
                raise UsageError(f"--at: {name} is given twice")
            try:
                v = _Evaluator(parse_expression(value), value)({})
                v = float(v.data)
            except ExpressionError as e:
                raise UsageError(f"--at {name}={value}: {e}") from None
            if not math.isfinite(v):
                raise UsageError(f"--at {name}={value} is not a finite number")
            point[name] = v
    return point


# =============================================================================
# `mibun grad`
# =============================================================================
def _num(v) -> str:
    """A float in full (shortest round-trip) precision."""
    return repr(float(v))


def _short(v) -> str:
    return f"{float(v):.10g}"


def _deriv_name(var, k, several):
    if several:
        return f"d{k}f/d{var}{k}" if k > 1 else f"df/d{var}"
    return "f" + ("'" * k if k <= 3 else f"^({k})") + f"({var})"


class _Tracer:
    """Collects the rows of the backward table as ``Variable.backward`` runs."""

    def __init__(self, texts):
        self.texts = texts
        self.rows = []
        self.step = 0

    def name(self, v):
        if v is None:
            return "(freed)"
        # a leaf the expression did not name: a number an op wrapped, e.g. the 1 of maximum(x, 1)
        text = self.texts.get(id(v), v.name or ("const" if v.creator is None else "?"))
        return _clip(text, 22)

    def __call__(self, f, gys, gxs):
        self.step += 1
        y = f.outputs[0]()
        gy = gys[0]
        inputs = getattr(f, "inputs", None) or ()
        first = True
        for i, e in enumerate(f._edges):
            src = core.edge_source(e)
            if src is None:  # a constant: a user op keeps its Variable, a built-in its data
                x = inputs[i] if i < len(inputs) else None
                xname = "const"
            else:
                c, j = src
                x = j if c is None else c.outputs[j]()
                xname = self.name(x)
            gx = gxs[i] if i < len(gxs) else None
            row = {
                "step": str(self.step) if first else "",
                "function": _func_name(f) if first else "",
                "output": self.name(y) if first else "",
                "grad in": _short(core.data_of(gy)) if first else "",
                "input": xname,
                "value": _short(d) if (d := core.data_of(x)) is not None and np.size(d) == 1
                else "",
                "local": _local(f, i, gy, gx, len(f._edges)),
                "grad out": "—" if gx is None or e is None else _short(core.data_of(gx)),
            }
            self.rows.append(row)
            first = False

    def table(self):
        if not self.rows:
            return "(no function ran: f is one of the variables itself)"
        cols = [("step", "step"), ("function", "function"), ("output", "output"),
                ("grad in", "d f/d output"), ("input", "input"), ("value", "input value"),
                ("local", "local derivative"), ("grad out", "d f/d input")]
        widths = [max(len(title), *(len(r[key]) for r in self.rows)) for key, title in cols]
        lines = ["  ".join(title.ljust(w) for (_, title), w in zip(cols, widths)).rstrip()]
        lines.append("  ".join("-" * w for w in widths))
        for r in self.rows:
            lines.append("  ".join(r[key].ljust(w) for (key, _), w in
                                   zip(cols, widths)).rstrip())
        return "\n".join(lines)


def _func_name(f):
    name = type(f).__name__
    c = getattr(f, "c", None)
    if isinstance(c, (int, float, np.number)) and not isinstance(c, bool):
        name += f"({float(c):g})"
    return name


def _local(f, i, gy, gx, n_inputs):
    """d output / d input ``i`` of ``f``: gx / gy, or backward of a unit gradient if gy is 0."""
    if gx is None:
        return "—"
    g = float(np.asarray(core.data_of(gy)).reshape(-1)[0])
    gxv = float(np.asarray(core.data_of(gx)).reshape(-1)[0])
    if g != 0.0:
        return _short(gxv / g)
    import mibun
    with mibun.no_grad():
        ones = mibun.Variable(np.ones_like(core.data_of(gy)))
        gxs = f.backward(ones)
    gxs = gxs if isinstance(gxs, tuple) else (gxs,)
    return _short(np.asarray(core.data_of(gxs[i])).item())


# The work `mibun grad` may do, in graph nodes (Functions) built in all: each order of
# derivative multiplies the graph by ~2-3, and the central differences rebuild the lower
# orders, so a long expression with a high --order, or a Hessian over many variables, would
# run for minutes. Refused above this (a few seconds of work), with what to lower.
_WORK_BUDGET = 60_000


def _graph_size(v) -> int:
    """The number of Functions in the graph that computed ``v``."""
    return sum(1 for _ in core.functions_below(v))


def _order_work(sizes, n_vars) -> int:
    """Nodes built for derivatives of orders 1..n, whose graphs have ``sizes[1..n]``:
    the derivatives themselves, and for order k the central difference of order k - 1 at
    two points for each variable (each rebuilding the graphs of orders 0..k-1)."""
    n = len(sizes) - 1
    return sum(sizes[1:]) + sum(2 * n_vars * sum(sizes[:k]) for k in range(1, n + 1))


def _grad_command(args) -> int:
    # Outside a function's domain (log(-1), sqrt'(0)) the numbers say nan / inf; a note
    # follows them, instead of NumPy warnings pointing into mibun's source.
    with np.errstate(all="ignore"):
        return _grad(args)


def _grad(args) -> int:
    import mibun

    point = _parse_point(args.at or [])
    if not point:
        try:  # only to name a variable in the message; nothing is evaluated
            names = sorted({n.id for n in ast.walk(_parse(args.expression))
                            if isinstance(n, ast.Name) and n.id not in _CONSTANTS
                            and n.id not in _FUNCTIONS})
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            names = []
        example = ",".join(f"{n}=0.5" for n in names) or "x=0.5"
        raise UsageError(f"give the point to differentiate at, e.g. --at {example}")
    tree = parse_expression(args.expression, point)
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} - set(_CONSTANTS)
    unused = [n for n in point if n not in used]
    if unused:
        raise UsageError(f"--at gives {', '.join(unused)}, which the expression does not use")
    if args.order < 1:
        raise UsageError(f"--order must be at least 1, got {args.order}")
    if args.order > 8:
        raise UsageError(f"--order at most 8 (the graph doubles with each order), got "
                         f"{args.order}")
    if not args.eps > 0:
        raise UsageError(f"--eps must be positive, got {args.eps}")
    names = list(point)
    several = len(names) > 1
    if several and args.order > 2:
        raise UsageError("--order above 2 needs a single variable; with several, --hessian "
                         "gives the second derivatives")
    if args.graph:
        ext = os.path.splitext(args.graph)[1].lower()
        if ext not in (".dot", ".gv", ".svg", ".png", ".pdf"):
            raise UsageError(f"--graph {args.graph}: use a .dot, .svg, .png or .pdf file name")
        folder = os.path.dirname(args.graph)
        if folder and not os.path.isdir(folder):
            raise UsageError(f"--graph {args.graph}: no such directory {folder!r}")
    hessian = args.hessian or (several and args.order == 2)
    evaluator = _Evaluator(tree, args.expression)  # keeps the traced graph's intermediates
    probe = _Evaluator(tree, args.expression)  # for the central differences
    eps = args.eps

    def f_at(values, order=0, create_graph=False):
        """The expression's ``order``-th derivative (a list per variable for order 1)."""
        env = {n: mibun.Variable(np.array(values[n]), name=n) for n in names}
        y = probe(env)
        xs = [env[n] for n in names]
        if order == 0:
            return y
        g = mibun.grad(y, xs, create_graph=True)
        for _ in range(order - 1):  # one variable only
            g = mibun.grad(g[0], xs, create_graph=True)
        return g

    # --- value and first derivatives through Variable.backward (the observer traces it)
    env = {n: mibun.Variable(np.array(point[n]), name=n) for n in names}
    y = evaluator(env)
    if y.creator is not None:  # not when f is just one of the variables
        y.name = "f"
    xs = [env[n] for n in names]
    tracer = _Tracer(evaluator.texts) if args.trace else None
    need_graph = args.order > 1 or hessian
    y.backward(retain_grad=True, create_graph=need_graph, observer=tracer)
    grads = [x.grad if x.grad is not None else mibun.Variable(np.zeros(())) for x in xs]

    # --- the work budget, checked before anything is printed
    sizes = [_graph_size(y), max(_graph_size(g) for g in grads)]
    v = len(names)
    if hessian:  # a backprop row per variable, and v * v central differences of gradients
        work = _order_work(sizes, v) + v * sizes[1] + 2 * v * v * (sizes[0] + sizes[1])
        if work > _WORK_BUDGET:
            raise UsageError(f"--hessian over {v} variables would build about {work:,} graph "
                             f"nodes (at most {_WORK_BUDGET:,}); use fewer variables or a "
                             "shorter expression")
    # higher orders of a single variable, by backprop through create_graph; the sizes of
    # the orders not built yet are predicted from the growth so far, and checked again as
    # each order is built
    higher = []
    for k in range(2, args.order + 1) if not several else ():
        growth = max(2.0, sizes[-1] / max(sizes[-2], 1))
        predicted = [*sizes] + [round(sizes[-1] * growth ** i)
                                for i in range(1, args.order - len(sizes) + 2)]
        fits = max(j for j in range(1, args.order + 1)
                   if j < len(sizes) or _order_work(predicted[:j + 1], 1) <= _WORK_BUDGET)
        if fits < args.order:
            work = _order_work(predicted, 1)
            raise UsageError(f"--order {args.order} would build about {work:,} graph nodes "
                             f"(at most {_WORK_BUDGET:,}: the graph grows with each order); "
                             f"lower --order to {fits} or shorten the expression")
        higher.append(mibun.grad(higher[-1] if higher else grads[0], xs[0],
                                 create_graph=True))
        sizes.append(_graph_size(higher[-1]))

    var_list = ", ".join(names)
    print(f"f({var_list}) = {ast.unparse(tree)}")
    print("at " + ", ".join(f"{n} = {_num(point[n])}" for n in names))
    print(f"value  f = {_num(y.data)}")

    def central(fun, n):
        lo, hi = dict(point), dict(point)
        lo[n] -= eps
        hi[n] += eps
        return (fun(hi) - fun(lo)) / (2 * eps)

    rows = []
    for k, n in enumerate(names):
        num = central(lambda p: float(f_at(p).data), n)
        rows.append((_deriv_name(n, 1, several), float(grads[k].data), num))
    # higher orders of a single variable: backprop through create_graph, and the central
    # difference of the backprop derivative one order below, beside it
    for k, d in enumerate(higher, start=2):
        num = central(lambda p, k=k: float(f_at(p, k - 1)[0].data), names[0])
        rows.append((_deriv_name(names[0], k, False), float(d.data), num))

    title = "gradient" if several else "derivative"
    w0 = max(len(title), *(len(r[0]) for r in rows))
    bp = [_num(r[1]) for r in rows]
    cd = [_num(r[2]) for r in rows]
    w1 = max(len("backprop"), *(len(s) for s in bp))
    w2 = max(len(f"central difference (eps={eps:g})"), *(len(s) for s in cd))
    print()
    print(f"{title.ljust(w0)}  {'backprop'.ljust(w1)}  "
          f"{f'central difference (eps={eps:g})'.ljust(w2)}  difference")
    for (label, a, b), s1, s2 in zip(rows, bp, cd):
        print(f"{label.ljust(w0)}  {s1.ljust(w1)}  {s2.ljust(w2)}  {abs(a - b):.2g}")

    if not all(math.isfinite(v) for r in rows for v in r[1:]) or not np.isfinite(y.data):
        print("note: a value is not finite: the point is outside the domain of the "
              "expression or of its derivative (log of x <= 0, sqrt'(0), overflow ...)")

    if hessian:
        H = np.zeros((len(names), len(names)))
        Hn = np.zeros_like(H)
        for i in range(len(names)):
            row = mibun.grad(grads[i], xs, create_graph=True)
            H[i] = [float(r.data) for r in row]
            for j, n in enumerate(names):
                Hn[i, j] = central(lambda p, i=i: float(f_at(p, 1)[i].data), n)
        print()
        print("Hessian (backprop through create_graph=True)")
        cells = [[_num(v) for v in r] for r in H]
        w = max(len(n) for n in names)
        cw = max(max(len(c) for r in cells for c in r), max(len(n) for n in names))
        print(("  " + " " * w + "".join("  " + n.ljust(cw) for n in names)).rstrip())
        for n, r in zip(names, cells):
            print(f"  {n.ljust(w)}" + "".join("  " + c.ljust(cw) for c in r).rstrip())
        print(f"max |backprop - central difference of the gradient| = "
              f"{np.max(np.abs(H - Hn)):.2g}")

    if tracer is not None:
        print()
        print("backward pass, in the order backprop runs each function\n"
              "(local derivative = d output/d input; d f/d input = d f/d output x local)")
        print(tracer.table())
        for n, x_ in zip(names, xs):
            print(f"{n}.grad = {_num(x_.grad.data) if x_.grad is not None else '0'} "
                  f"(the sum of the d f/d input entries for {n})")

    if args.graph:
        from mibun import visualize
        for v in evaluator.keep:  # label each intermediate with its sub-expression
            if v.name is None:
                v.name = _clip(evaluator.texts[id(v)], 30)
        if higher:
            target = higher[-1]
            target.name = _deriv_name(names[0], args.order, False)
            visualize.plot_dot_graph(target, verbose=True, to_file=args.graph, grads=False)
            what = f"the graph of {target.name}"
        else:
            visualize.plot_dot_graph(y, verbose=True, to_file=args.graph)
            what = "the computational graph"
        print()
        print(f"wrote {what} to {args.graph}")
    return EXIT_OK


# =============================================================================
# `mibun train` (the training itself is mibun.train)
# =============================================================================
def _number(kind, positive=False, between=None):
    """An argparse type: a finite ``kind`` (int or float), > 0 or in ``between`` if asked."""
    what = "an integer" if kind is int else "a number"

    def parse(s):
        try:
            v = kind(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {s!r}") from None
        if not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {s}")
        if positive and not v > 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {s}")
        if between and not between[0] <= v <= between[1]:
            raise argparse.ArgumentTypeError(f"must be between {between[0]} and "
                                             f"{between[1]}, got {s}")
        return v
    parse.__name__ = kind.__name__
    return parse


def _positive(kind):
    return _number(kind, positive=True)




def _train_command(args) -> int:
    if args.distributed and args.comm is None:  # on every rank of mpiexec -n N mibun train
        from mibun import distributed
        return distributed.run_command(_train_command, args)
    if args.resume:
        cfg, done = train.load_config(
            args.resume, epochs=args.epochs, device=args.device, data_dir=args.data_dir,
            dataset=args.dataset, model=args.model, batch_size=args.batch_size, lr=args.lr,
            optimizer=args.optimizer, seed=args.seed, hidden=args.hidden)
        if done >= cfg["epochs"]:
            print(f"nothing to do: {args.resume} already finished {done} epoch(s); pass "
                  f"--epochs N with N > {done} to train further")
            return EXIT_OK
    else:
        cfg = train.make_config(
            dataset=args.dataset, model=args.model, epochs=args.epochs,
            batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer, seed=args.seed,
            hidden=args.hidden, data_dir=args.data_dir, download=not args.no_download,
            device=args.device)
    out_dir = args.out or ((os.path.dirname(args.resume) or ".") if args.resume
                           else train.default_out(cfg))
    if args.comm is not None:  # one directory for all ranks (default_out reads the clock)
        out_dir = args.comm.bcast_obj(out_dir)
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--out {out_dir}: cannot create the directory ({e.strerror})") \
            from None
    progress = sys.stderr.isatty() and not args.no_progress
    result = train.train(cfg, out_dir, resume=args.resume, progress=progress,
                         comm=args.comm)
    return EXIT_OK if result.finished else EXIT_INTERRUPTED

# =============================================================================
# Argument parsing and main
# =============================================================================
class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (no usage dump) and exit status 2."""

    def error(self, message):
        raise UsageError(f"{message} (see {self.prog} --help)", prog=self.prog)


def _parser():
    p = _Parser(prog="mibun", description="mibun (미분): train a model or differentiate an "
                "expression. Run 'mibun train' or 'mibun grad --help'.")
    p.add_argument("--version", action="store_true", help="print the version and exit")
    sub = p.add_subparsers(dest="command", parser_class=_Parser, metavar="{train,grad}")

    t = sub.add_parser("train", help="train a model (default: an MLP on the bundled digits)",
                       description="Train a model and write a checkpoint, metrics.csv and "
                       "curves.png to an output directory. Ctrl-C stops after the current "
                       "step and saves a checkpoint that --resume continues from.")
    t.add_argument("--dataset", choices=list(train.DATASETS),
                   help="digits (default, bundled), spiral, sincurve, or mnist, "
                        "fashion-mnist, cifar10 from --data-dir or the cache")
    t.add_argument("--model", choices=["mlp", "cnn", "lstm"],
                   help="mlp (default), cnn (images), lstm (sincurve; images row by row)")
    t.add_argument("--epochs", type=_positive(int), help="number of epochs")
    t.add_argument("--batch-size", type=_positive(int), help="examples per step")
    t.add_argument("--lr", type=_positive(float), help="learning rate")
    t.add_argument("--optimizer", choices=list(train.OPTIMIZERS), help="default: adam")
    t.add_argument("--hidden", type=_positive(int), help="hidden units (mlp, lstm)")
    t.add_argument("--seed", type=_number(int, between=(0, 2**32 - 1)),
                   help="random seed, 0 to 2**32-1 (default 0): same seed, same numbers")
    t.add_argument("--out", help="output directory (default ./mibun-out/<run name>)")
    t.add_argument("--resume", metavar="CHECKPOINT",
                   help="continue the run saved in CHECKPOINT (its settings are reused)")
    t.add_argument("--device", choices=["cpu", "gpu"], default="cpu",
                   help="gpu needs CuPy and a CUDA GPU")
    t.add_argument("--data-dir", help="directory holding the MNIST / CIFAR-10 files")
    t.add_argument("--no-download", action="store_true",
                   help="never download a missing data set")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--distributed", action="store_true",
                   help="data-parallel over MPI: mpiexec -n N mibun train --distributed "
                        "(needs mpi4py: pip install 'mibun[mpi]')")
    t.set_defaults(comm=None)

    g = sub.add_parser("grad", help="differentiate an expression, e.g. "
                       "mibun grad 'exp(x**2)**2' --at x=0.5",
                       description="Print an expression's value and derivatives by backprop, "
                       "beside central differences. Functions: "
                       + ", ".join(sorted(_FUNCTIONS)) + " (those mibun provides); "
                       "constants pi, e; operators + - * / **.")
    g.add_argument("expression", help="e.g. 'exp(x**2)**2' or 'x*y + sin(x)'")
    g.add_argument("--at", action="append", metavar="X=V[,Y=W]",
                   help="the point, e.g. x=0.5 or x=1,y=2 (values may use pi, e)")
    g.add_argument("--order", type=int, default=1, help="derivatives up to this order")
    g.add_argument("--hessian", action="store_true", help="print the Hessian")
    g.add_argument("--eps", type=float, default=1e-4, help="central-difference step")
    g.add_argument("--graph", metavar="FILE",
                   help="draw the graph to FILE (.dot, .svg, .png, .pdf); with --order N > 1 "
                        "the graph of the N-th derivative")
    g.add_argument("--trace", action="store_true",
                   help="print each step of the backward pass")
    return p


def _dash_expression(argv):
    """Let ``mibun grad "-x**2"`` work: argparse takes any word starting with ``-`` for an
    option, but one containing a space for a value, so such a word gets a leading space
    (``parse_expression`` strips it). ``grad`` has no short options besides ``-h``."""
    argv = list(argv)
    if argv[:1] != ["grad"]:
        return argv
    return [a if not a.startswith("-") or a.startswith("--") or a == "-h" else " " + a
            for a in argv]


def _one_line(text):
    """A multi-line message on one line: ``a:\n  b\n  c\nd`` -> ``a: b; c; d``."""
    parts = [p.strip() for p in text.splitlines() if p.strip()]
    out = ""
    for p in parts:
        out += p if not out else (" " if out.endswith((":", ",", ";")) else "; ") + p
    return " ".join(out.split())


def main(argv=None) -> int:
    """Run the ``mibun`` command; return the exit status (0, 1, 2 or 130)."""
    parser = _parser()
    args = None
    try:
        args = parser.parse_args(_dash_expression(sys.argv[1:] if argv is None else argv))
        if args.version:
            import mibun
            print(f"mibun {mibun.__version__}")
            return EXIT_OK
        if args.command is None:
            parser.print_help()
            return EXIT_OK
        code = _grad_command(args) if args.command == "grad" else _train_command(args)
        sys.stdout.flush()  # a closed pipe (`mibun ... | head`) fails here, caught below
        return code
    except (UsageError, train.ConfigError) as e:
        cmd = getattr(args, "command", None)
        prog = getattr(e, "prog", None) or f"mibun{' ' + cmd if cmd else ''}"
        print(f"{prog}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("mibun: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `mibun ... | head`: the reader left; stop without a message
        try:  # and keep Python's final flush of stdout from failing again at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return EXIT_FAIL
    except Exception as e:  # one line for the user; MIBUN_DEBUG=1 shows the traceback
        if os.environ.get("MIBUN_DEBUG"):
            raise
        msg = _one_line(str(e)) or type(e).__name__
        name = getattr(args, "command", None)
        print(f"mibun{' ' + name if name else ''}: error: {msg}", file=sys.stderr)
        if not isinstance(e, (OSError, ValueError, RuntimeError)):
            print("(an unexpected error: run with MIBUN_DEBUG=1 for the traceback)",
                  file=sys.stderr)
        return EXIT_FAIL
