"""Drawing the computational graph: DOT text, and SVG/PNG through Graphviz.

``get_dot_graph(y)`` walks the graph below ``y`` and returns Graphviz DOT text; it needs no
external program. ``plot_dot_graph(y, to_file='graph.png')`` writes that text, or renders it
with Graphviz's ``dot`` program for any other extension (svg, png, pdf ...). The names and
signatures are DeZero's (step 26); the drawing adds what helps when learning backprop:

* a variable shows its name, shape and dtype (``verbose=True``), its value when small, and
  after ``backward`` its gradient (values for small arrays, the norm for large ones);
* a function shows its class name and, for ops holding a scalar constant, the constant
  (``Pow(2)``);
* a graph too big to read node by node, such as the 5th derivative of tanh (DeZero step 35),
  is drawn compactly: unnamed intermediate variables become dots, so the structure of the
  function nodes stays legible.

The graph is walked through each function's input *edges* (see ``mibun.core``), not its
``inputs``: an op keeps only the inputs its backward reads, and an intermediate variable may
already be freed. A freed variable is still drawn, from the shape and dtype its creator
recorded, with a dashed outline.
"""
from __future__ import annotations

import heapq
import os
import shutil
import subprocess
import sys

import numpy as np

from mibun import backend
from mibun.core import Variable

__all__ = ["GraphvizNotFoundError", "get_dot_graph", "plot_dot_graph", "render_dot"]

#: Arrays with at most this many elements have their values and gradients printed.
SMALL = 4
#: A graph with more function nodes than this is drawn compactly when ``compact=None``.
COMPACT_ABOVE = 40
#: Above this many function nodes Graphviz is told to spend less effort on edge crossings:
#: the 8th derivative of tanh (1,700 functions) then takes 15 s instead of over 5 minutes.
QUICK_LAYOUT_ABOVE = 300
#: Seconds Graphviz's ``dot`` may take before ``render_dot`` gives up.
DOT_TIMEOUT = 300


class GraphvizNotFoundError(RuntimeError):
    """Rendering SVG/PNG needs Graphviz's ``dot`` program, which is not installed."""


# =============================================================================
# Walking the graph
# =============================================================================
class _Graph:
    """The nodes and edges below some output Variables, in a deterministic order."""

    def __init__(self):
        self.var_ids = {}  # key -> "v<n>"
        self.vars = []  # (node id, key, Variable or None, shape, dtype, kind)
        self.funcs = []  # (node id, Function)
        self.edges = []  # (from node id, to node id)
        self.outputs = set()

    def var(self, key, v, shape, dtype, kind):
        vid = self.var_ids.get(key)
        if vid is None:
            vid = self.var_ids[key] = f"v{len(self.var_ids)}"
            self.vars.append((vid, key, v, shape, dtype, kind))
        return vid


def _var_key(v: Variable):
    node = v._node
    if node is None:
        return ("leaf", id(v))
    return ("out", id(node[0]), node[1])


def _walk(outputs) -> _Graph:
    g = _Graph()
    heap, seen, count = [], set(), 0

    def push(f):
        nonlocal count
        if id(f) not in seen:
            seen.add(id(f))
            heapq.heappush(heap, (-f.generation, count, f))
            count += 1

    for y in outputs:
        shape = None if y.data is None else y.data.shape
        dtype = None if y.data is None else y.data.dtype
        g.outputs.add(g.var(_var_key(y), y, shape, dtype, "leaf" if y._node is None
                            else "out"))
        if y._node is not None:
            push(y._node[0])

    # Highest generation first (as backward runs), so the DOT text reads top-down.
    while heap:
        f = heapq.heappop(heap)[2]
        fid = f"f{len(g.funcs)}"
        g.funcs.append((fid, f))
        for j, ref in enumerate(f.outputs):
            key = ("out", id(f), j)
            y = ref()
            if y is None and key not in g.var_ids:
                continue  # a dead output nothing below uses (e.g. an unused split part)
            shape, dtype = f._meta[j]
            g.edges.append((fid, g.var(key, y, shape, dtype, "out")))
        inputs = getattr(f, "inputs", None) or ()
        for i, e in enumerate(f._edges):
            if e is None:  # a raw array the op wrapped as a constant
                x = inputs[i] if i < len(inputs) else None
                shape = None if x is None else x.data.shape
                dtype = None if x is None else x.data.dtype
                vid = g.var(("const", id(f), i), x, shape, dtype, "const")
            elif type(e) is tuple:  # an intermediate: output j of function c
                c, j = e
                shape, dtype = c._meta[j]
                vid = g.var(("out", id(c), j), c.outputs[j](), shape, dtype, "out")
                push(c)
            else:  # a leaf Variable
                vid = g.var(("leaf", id(e)), e, e.data.shape, e.data.dtype, "leaf")
            g.edges.append((vid, fid))
    return g


# =============================================================================
# DOT text
# =============================================================================
def _escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _fmt_array(a) -> str:
    a = backend.as_numpy(a)
    if a.ndim == 0:
        return f"{a.item():.6g}" if a.dtype.kind in "fc" else str(a.item())
    return np.array2string(a, precision=4, separator=", ", threshold=SMALL)


def _fmt_grad(g) -> str:
    d = g.data if isinstance(g, Variable) else g
    if d is None:
        return "grad: None"
    if d.size <= SMALL:
        return "grad: " + _fmt_array(d)
    norm = float(np.sqrt((backend.as_numpy(d).astype(np.float64) ** 2).sum()))
    return f"grad: |g|={norm:.4g}"


def _var_label(v, shape, dtype, kind, verbose, values, grads):
    name = v.name if v is not None and v.name is not None else ""
    if kind == "const" and not name:
        name = "const"
    if not verbose:
        return name
    # DeZero's verbose label first: "name: (2, 3) float64"
    label = name + ": " if name else ""
    label += f"{shape} {dtype}" if shape is not None else "(freed)"
    if v is not None and v.data is not None:
        if values and v.data.size <= SMALL:
            label += "\n= " + _fmt_array(v.data)
        if grads and v.grad is not None:
            label += "\n" + _fmt_grad(v.grad)
    return label


def _func_label(f, verbose):
    name = type(f).__name__
    c = getattr(f, "c", None)
    if verbose and isinstance(c, (int, float, np.number)) and not isinstance(c, bool):
        name += f"({float(c):g})" if isinstance(c, (float, np.floating)) else f"({c})"
    return name


def get_dot_graph(output, verbose: bool = True, *, values: bool = True, grads: bool = True,
                  compact: bool | None = None, rankdir: str | None = None) -> str:
    """Graphviz DOT text for the graph that computed ``output`` (DeZero's step 26).

    Args:
        output (Variable or sequence of Variable): the end(s) of the graph.
        verbose (bool): label variables with name, shape and dtype (and, below, value and
            gradient); ``False`` shows names only, as DeZero does.
        values (bool): with ``verbose``, show the values of arrays of at most ``SMALL``
            elements.
        grads (bool): with ``verbose``, show each variable's ``grad`` when it has one (leaves
            after ``backward``; intermediates with ``retain_grad=True``).
        compact (bool or None): draw unnamed intermediate variables as dots. ``None``
            (default) turns it on for graphs with more than ``COMPACT_ABOVE`` functions.
        rankdir (str or None): Graphviz layout direction, e.g. ``"LR"``; default top-down.
    Returns:
        str: ``digraph g { ... }``. Variables are ``v0, v1, ...`` (orange ellipses,
        constants grey), functions ``f0, f1, ...`` (light blue boxes); edges go from a
        function's inputs to it, and from it to its outputs.

    >>> import numpy as np, mibun.functions as F
    >>> x = Variable(np.array(0.5), name="x")
    >>> y = F.exp(x ** 2)
    >>> y.name = "y"
    >>> print(get_dot_graph(y, verbose=False), end="")  # x ** 2 is freed: dashed
    digraph g {
    v0 [label="y", color=orange, style=filled, penwidth=2]
    f0 [label="Exp", color=lightblue, style=filled, shape=box]
    v1 [label="", color=orange, style="filled,dashed"]
    f1 [label="Pow", color=lightblue, style=filled, shape=box]
    v2 [label="x", color=orange, style=filled]
    f0 -> v0
    v1 -> f0
    f1 -> v1
    v2 -> f1
    }
    """
    outputs = [output] if isinstance(output, Variable) else list(output)
    for y in outputs:
        if not isinstance(y, Variable):
            raise TypeError(
                f"get_dot_graph: output must be a Variable or a sequence of Variables, "
                f"got {type(y).__name__}"
            )
    g = _walk(outputs)
    if compact is None:
        compact = len(g.funcs) > COMPACT_ABOVE

    lines = ["digraph g {"]
    if rankdir:
        lines.append(f"rankdir={rankdir}")
    if compact:
        lines.append("graph [ranksep=0.25, nodesep=0.2]")
    if len(g.funcs) > QUICK_LAYOUT_ABOVE:  # dot's crossing minimisation is superlinear
        lines.append("graph [mclimit=0.1, nslimit=1, nslimit1=1, remincross=false]")
    if compact:
        lines.append("node [fontsize=10, height=0.3]")

    # Emit each function after the variables it produces, as DeZero's text reads.
    var_by_id = {vid: (vid, key, v, shape, dtype, kind)
                 for vid, key, v, shape, dtype, kind in g.vars}
    emitted = set()

    def emit_var(vid):
        if vid in emitted:
            return
        emitted.add(vid)
        _, _, v, shape, dtype, kind = var_by_id[vid]
        label = _var_label(v, shape, dtype, kind, verbose, values, grads)
        named = v is not None and v.name is not None
        attrs = []
        if compact and kind == "out" and not named and vid not in g.outputs:
            attrs = ['label=""', "shape=point", "width=0.08", "color=orange"]
        else:
            color = "lightgrey" if kind == "const" else "orange"
            style = "filled" if v is not None or kind == "const" else '"filled,dashed"'
            attrs = [f'label="{_escape(label)}"', f"color={color}", f"style={style}"]
            if vid in g.outputs:
                attrs.append("penwidth=2")
        if compact and verbose and shape is not None:
            attrs.append(f'tooltip="{_escape(f"{shape} {dtype}")}"')
        lines.append(f"{vid} [{', '.join(attrs)}]")

    producer = {}
    for a, b in g.edges:
        if a.startswith("f"):
            producer.setdefault(a, []).append(b)
    for vid in sorted(g.outputs, key=lambda s: int(s[1:])):
        emit_var(vid)
    for fid, f in g.funcs:
        for vid in producer.get(fid, ()):
            emit_var(vid)
        lines.append(f'{fid} [label="{_escape(_func_label(f, verbose))}", color=lightblue, '
                     "style=filled, shape=box]")
        for a, b in g.edges:
            if b == fid:
                emit_var(a)
    for vid, *_ in g.vars:
        emit_var(vid)
    lines.extend(f"{a} -> {b}" for a, b in g.edges)
    lines.append("}")
    return "\n".join(lines) + "\n"


# =============================================================================
# Files
# =============================================================================
def render_dot(dot_text: str, to_file, fmt: str | None = None) -> None:
    """Render DOT text to ``to_file`` with Graphviz's ``dot`` (format from the extension).

    Raises:
        GraphvizNotFoundError: ``dot`` is not on PATH (install the ``graphviz`` package).
        RuntimeError: ``dot`` failed (its message is included) or ran past ``DOT_TIMEOUT``.
    """
    to_file = os.fspath(to_file)
    fmt = fmt or os.path.splitext(to_file)[1][1:].lower()
    exe = shutil.which("dot")
    if exe is None:
        raise GraphvizNotFoundError(
            f"drawing {to_file!r} needs the Graphviz program `dot`, which is not on PATH. "
            "Install the graphviz package (apt-get install graphviz, brew install graphviz "
            "or conda install graphviz), or write DOT text with a .dot file name."
        )
    try:
        proc = subprocess.run([exe, "-T" + fmt, "-o", to_file], input=dot_text.encode(),
                              capture_output=True, timeout=DOT_TIMEOUT)
    except subprocess.TimeoutExpired:
        n = dot_text.count("shape=box")
        raise RuntimeError(f"Graphviz dot did not finish {to_file!r} within {DOT_TIMEOUT} s "
                           f"(the graph has {n} functions); draw a smaller graph, or write "
                           "the DOT text with a .dot file name") from None
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip()
        raise RuntimeError(f"Graphviz dot could not write {to_file!r} as {fmt!r}: {err}")


def plot_dot_graph(output, verbose: bool = True, to_file="graph.png", **kwargs):
    """Draw the graph below ``output`` into ``to_file`` (DeZero's step 26 name).

    Args:
        output (Variable or sequence of Variable): the end(s) of the graph.
        verbose (bool): see ``get_dot_graph``; other keywords are passed to it too.
        to_file (str or PathLike): ``.dot`` / ``.gv`` writes the DOT text (no external
            program needed); any other extension (``.svg``, ``.png``, ``.pdf`` ...) is
            rendered by Graphviz's ``dot``.
    Returns:
        an ``IPython.display.Image`` of a PNG when running in IPython/Jupyter (as DeZero
        does), else None.
    Raises:
        GraphvizNotFoundError: an image was asked for and ``dot`` is not installed.
    """
    text = get_dot_graph(output, verbose, **kwargs)
    to_file = os.fspath(to_file)
    ext = os.path.splitext(to_file)[1][1:].lower()
    if not ext:
        raise ValueError(
            f"plot_dot_graph: to_file={to_file!r} has no extension; use .dot, .svg or .png"
        )
    if ext in ("dot", "gv"):
        with open(to_file, "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        render_dot(text, to_file, ext)
    return _ipython_image(to_file) if ext == "png" else None


def _ipython_image(path):
    ipython = sys.modules.get("IPython")  # only when already imported: never import it here
    if ipython is None or ipython.get_ipython() is None:
        return None
    from IPython import display
    return display.Image(filename=path)
