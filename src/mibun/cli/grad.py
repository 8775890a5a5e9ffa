"""The ``mibun grad`` command: an expression's value and derivatives, checked.

``mibun grad "exp(x**2)**2" --at x=0.5`` prints the value, the derivative by backprop and the
central difference beside it (the seed's check); ``--order`` (higher derivatives of one
variable), ``--hessian``, ``--graph`` (draw the graph) and ``--trace`` (a table of the backward
pass, function by function) go further. The expression language is :mod:`mibun.cli.expr`;
the arguments are parsed in :mod:`mibun.cli`.
"""
from __future__ import annotations

import ast
import math
import os
import re

import numpy as np

from mibun import autograd, config, core, visualize
from mibun.cli import expr
from mibun.cli.expr import UsageError

__all__ = ["command"]


def _parse_point(specs):
    """``["x=0.5,y=pi/4"]`` -> ``{"x": 0.5, "y": 0.785...}`` (values are safe expressions)."""
    point = {}
    for spec in specs:
        for item in re.split(r",(?=\s*[A-Za-z_]\w*\s*=)", spec):
            if "=" not in item:
                raise UsageError(f"--at expects NAME=VALUE pairs such as x=0.5,y=2; got "
                                 f"{item.strip()!r}")
            name, value = (s.strip() for s in item.split("=", 1))
            if not name.isidentifier() or name in expr.CONSTANTS or name in expr.FUNCTIONS:
                raise UsageError(f"--at: {name!r} cannot be a variable name (use a name such "
                                 "as x, y, w1 that is not a function or constant)")
            if name in point:
                raise UsageError(f"--at: {name} is given twice")
            try:
                v = expr.Evaluator(expr.parse_expression(value), value)({})
                v = float(v.data)
            except expr.ExpressionError as e:
                raise UsageError(f"--at {name}={value}: {e}") from None
            if not math.isfinite(v):
                raise UsageError(f"--at {name}={value} is not a finite number")
            point[name] = v
    return point




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
        return expr.clip(text, 22)

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
    with config.no_grad():
        ones = core.Variable(np.ones_like(core.data_of(gy)))
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


def command(args) -> None:
    """Run ``mibun grad`` with the parsed ``args``; a bad argument raises UsageError."""
    # Outside a function's domain (log(-1), sqrt'(0)) the numbers say nan / inf; a note
    # follows them, instead of NumPy warnings pointing into mibun's source.
    with np.errstate(all="ignore"):
        _grad(args)


def _grad(args):
    point = _parse_point(args.at or [])
    if not point:
        try:  # only to name a variable in the message; nothing is evaluated
            names = sorted({n.id for n in ast.walk(expr.parse(args.expression))
                            if isinstance(n, ast.Name) and n.id not in expr.CONSTANTS
                            and n.id not in expr.FUNCTIONS})
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            names = []
        example = ",".join(f"{n}=0.5" for n in names) or "x=0.5"
        raise UsageError(f"give the point to differentiate at, e.g. --at {example}")
    tree = expr.parse_expression(args.expression, point)
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} - set(expr.CONSTANTS)
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
    evaluator = expr.Evaluator(tree, args.expression)  # keeps the traced graph's intermediates
    probe = expr.Evaluator(tree, args.expression)  # for the central differences
    eps = args.eps

    def f_at(values, order=0, create_graph=False):
        """The expression's ``order``-th derivative (a list per variable for order 1)."""
        env = {n: core.Variable(np.array(values[n]), name=n) for n in names}
        y = probe(env)
        xs = [env[n] for n in names]
        if order == 0:
            return y
        g = autograd.grad(y, xs, create_graph=True)
        for _ in range(order - 1):  # one variable only
            g = autograd.grad(g[0], xs, create_graph=True)
        return g

    # --- value and first derivatives through Variable.backward (the observer traces it)
    env = {n: core.Variable(np.array(point[n]), name=n) for n in names}
    y = evaluator(env)
    if y.creator is not None:  # not when f is just one of the variables
        y.name = "f"
    xs = [env[n] for n in names]
    tracer = _Tracer(evaluator.texts) if args.trace else None
    need_graph = args.order > 1 or hessian
    y.backward(retain_grad=True, create_graph=need_graph, observer=tracer)
    grads = [x.grad if x.grad is not None else core.Variable(np.zeros(())) for x in xs]

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
        higher.append(autograd.grad(higher[-1] if higher else grads[0], xs[0],
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
            row = autograd.grad(grads[i], xs, create_graph=True)
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
        for v in evaluator.keep:  # label each intermediate with its sub-expression
            if v.name is None:
                v.name = expr.clip(evaluator.texts[id(v)], 30)
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
