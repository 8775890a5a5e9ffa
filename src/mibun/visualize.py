"""Drawing the computational graph: DOT text, and SVG/PNG through Graphviz.

``get_dot_graph(y)`` walks the graph below ``y`` and returns Graphviz DOT text; it needs no
external program. ``graph(y)`` returns a drawing that Jupyter shows inline (SVG or PNG).
``plot_dot_graph(y, to_file='graph.png')`` writes that text, or renders it
with Graphviz's ``dot`` program for any other extension (svg, png, pdf ...). Without ``dot``
(a laptop with only ``pip install mibun``) it draws the same nodes itself with matplotlib,
layered by generation. The names and signatures are DeZero's (step 26); the drawing adds what
helps when learning backprop:

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
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import warnings

import numpy as np

from mibun import backend, core
from mibun.core import Variable

__all__ = ["Graph", "GraphvizNotFoundError", "draw_graph", "get_dot_graph", "graph",
           "plot_dot_graph", "render_dot"]

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
    heap: list = []
    seen, count = set(), 0

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
            src = core.edge_source(e)
            if src is None:  # a constant: a user op keeps its Variable, a built-in its data
                x = inputs[i] if i < len(inputs) else None
                d = core.data_of(x)
                vid = g.var(("const", id(f), i), x if isinstance(x, Variable) else None,
                            getattr(d, "shape", None), getattr(d, "dtype", None), "const")
            elif src[0] is not None:  # an intermediate: output j of function c
                c, j = src
                shape, dtype = c._meta[j]
                vid = g.var(("out", id(c), j), c.outputs[j](), shape, dtype, "out")
                push(c)
            else:  # a leaf Variable (held weakly: None once the user dropped it)
                x = src[1]
                d = None if x is None else x.data
                vid = g.var(("leaf", id(e[1]) if x is None else id(x)), x,
                            getattr(d, "shape", None), getattr(d, "dtype", None), "leaf")
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


def _as_outputs(output, who):
    outputs = [output] if isinstance(output, Variable) else list(output)
    for y in outputs:
        if not isinstance(y, Variable):
            raise TypeError(
                f"{who}: output must be a Variable or a sequence of Variables, "
                f"got {type(y).__name__}"
            )
    return outputs


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
    g = _walk(_as_outputs(output, "get_dot_graph"))
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

    producer: dict = {}
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
            rendered by Graphviz's ``dot``, or, when ``dot`` is not installed, drawn by
            matplotlib (same nodes and labels, layered by generation; a warning says so
            once per process).
    Returns:
        an ``IPython.display.Image`` of a PNG when running in IPython/Jupyter (as DeZero
        does), else None.
    """
    to_file = os.fspath(to_file)
    ext = os.path.splitext(to_file)[1][1:].lower()
    if not ext:
        raise ValueError(
            f"plot_dot_graph: to_file={to_file!r} has no extension; use .dot, .svg or .png"
        )
    if ext in ("dot", "gv"):
        with open(to_file, "w", encoding="utf-8") as fh:
            fh.write(get_dot_graph(output, verbose, **kwargs))
    elif shutil.which("dot") is None:
        _warn_no_dot("plot_dot_graph", repr(to_file))
        draw_graph(output, verbose, to_file, **kwargs)
    else:
        render_dot(get_dot_graph(output, verbose, **kwargs), to_file, ext)
    return _ipython_image(to_file) if ext == "png" else None


class Graph:
    """A drawing of a computational graph that Jupyter shows inline; see :func:`graph`."""

    def __init__(self, output, verbose: bool = True, *, format: str = "svg", **kwargs):
        if format not in ("svg", "png"):
            raise ValueError(f"graph: format must be 'svg' or 'png', got {format!r}")
        self._outputs = _as_outputs(output, "graph")
        self._verbose, self._kwargs = verbose, kwargs
        self.format = format
        #: The DOT text of the graph when it was made (``get_dot_graph``).
        self.source = get_dot_graph(self._outputs, verbose, **kwargs)
        self._drawn: dict = {}

    def _draw(self, ext):
        if ext not in self._drawn:
            if shutil.which("dot") is None:
                _warn_no_dot("graph", "this graph")  # not the temporary file's name
            with tempfile.TemporaryDirectory(prefix="mibun-graph-") as tmp:
                path = os.path.join(tmp, "graph." + ext)
                plot_dot_graph(self._outputs, self._verbose, to_file=path, **self._kwargs)
                with open(path, "rb") as fh:
                    self._drawn[ext] = fh.read()
        return self._drawn[ext]

    def svg(self) -> str:
        """The drawing as SVG text (Graphviz, or matplotlib without it)."""
        return self._draw("svg").decode("utf-8")

    def png(self) -> bytes:
        """The drawing as PNG bytes (Graphviz, or matplotlib without it)."""
        return self._draw("png")

    def save(self, to_file) -> None:
        """Write the drawing (``.svg``, ``.png``, ``.pdf`` ...; ``.dot`` for the DOT text)."""
        plot_dot_graph(self._outputs, self._verbose, to_file=to_file, **self._kwargs)

    # IPython calls both and shows what it gets: only the chosen format is drawn.
    def _repr_svg_(self):
        return self.svg() if self.format == "svg" else None

    def _repr_png_(self):
        return self.png() if self.format == "png" else None

    def __repr__(self):
        n = self.source.count("shape=box")
        return f"<mibun.visualize.Graph: {n} function(s), format={self.format!r}>"


def graph(output, verbose: bool = True, *, format: str = "svg", **kwargs) -> Graph:
    """The graph below ``output``, as an object that Jupyter draws inline.

    The last expression of a notebook cell, ``graph(y)``, shows the graph as an image:
    drawn by Graphviz's ``dot`` when it is installed, else by matplotlib (the nodes and
    labels of ``plot_dot_graph``). Outside a notebook, ``.svg()``, ``.png()`` and
    ``.save(path)`` give the drawing; ``.source`` is the DOT text.

    Args:
        output (Variable or sequence of Variable): the end(s) of the graph.
        verbose (bool): see ``get_dot_graph``; its other keywords (``values``, ``grads``,
            ``compact``, ``rankdir``) are accepted too.
        format (str): ``"svg"`` (sharp at any zoom) or ``"png"``: what the notebook shows.
    Returns:
        Graph: drawn when first shown (or asked for), then kept.

    >>> import numpy as np, mibun.functions as F
    >>> x = Variable(np.array(0.5), name="x")
    >>> y = F.exp(x ** 2)
    >>> g = graph(y)
    >>> g
    <mibun.visualize.Graph: 2 function(s), format='svg'>
    >>> "<svg" in g.svg()
    True
    """
    return Graph(output, verbose, format=format, **kwargs)


_warned_no_dot = False


def _warn_no_dot(who, what):
    global _warned_no_dot
    if _warned_no_dot:
        return
    _warned_no_dot = True
    # Point the warning at the caller's line, past mibun's own frames (utils.plot_dot_graph).
    here = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(here):
        frame, level = frame.f_back, level + 1
    warnings.warn(f"{who}: Graphviz's `dot` is not installed, so {what} "
                  "(and later graphs) are drawn with matplotlib; install graphviz "
                  "(apt-get / brew / conda install graphviz) for the classic layout",
                  stacklevel=level)


def _ipython_image(path):
    ipython = sys.modules.get("IPython")  # only when already imported: never import it here
    if ipython is None or ipython.get_ipython() is None:
        return None
    from IPython import display
    return display.Image(filename=path)


# =============================================================================
# Drawing without Graphviz: a layered layout by generation, rendered by matplotlib
# =============================================================================
#: Font size (points) of the matplotlib drawing; monospace, so a label's size is known.
FONT_SIZE = 10
_FONT = "DejaVu Sans Mono"  # ships with matplotlib
_CHAR_W = 0.602  # advance of one DejaVu Sans Mono character, in font sizes
_LINE_H = 1.2
_POINT = 0.08  # diameter (inches) of a compact intermediate variable
_DUMMY = 0.05  # width (inches) kept free where a long edge crosses a layer


class _Node:
    """A box, an oval, a point or a bend of a long edge, with its place in the layout."""

    __slots__ = (
        "bold",
        "dashed",
        "downs",
        "fill",
        "font",
        "h",
        "label",
        "layer",
        "shape",
        "ups",
        "w",
        "x",
        "y",
    )

    def __init__(self, label, shape, fill="white", dashed=False, bold=False, font=FONT_SIZE):
        self.label, self.shape, self.fill = label, shape, fill
        self.dashed, self.bold, self.font = dashed, bold, font
        lines = label.split("\n")
        tw = max(len(t) for t in lines) * _CHAR_W * font / 72  # text size, inches
        th = len(lines) * _LINE_H * font / 72
        if shape == "box":
            self.w, self.h = tw + 0.2, th + 0.14
        elif shape == "oval":  # the ellipse through the corners of the padded text box
            self.w, self.h = (tw + 0.12) * 1.42, (th + 0.06) * 1.42
        else:  # "point" or "dummy"
            self.w = self.h = _POINT if shape == "point" else _DUMMY
        self.ups, self.downs = [], []  # neighbours one layer up / down
        self.x = self.y = 0.0


def _layout(g, verbose, values, grads, compact):
    """Nodes of ``g`` placed in layers by generation, and the edges as lists of nodes.

    A function of generation k sits in layer 2k+1 and its outputs in layer 2k+2; a leaf
    right above the first function that reads it. An edge spanning layers gets a bend per
    crossed layer (Sugiyama's dummies), so it never runs through a node. In each layer
    nodes are ordered by the mean position of their neighbours (a few sweeps down and up)
    and then packed without overlap as close to that mean as they fit.
    """
    font = FONT_SIZE - 2 if compact else FONT_SIZE
    nodes, layer = {}, {}
    for fid, f in g.funcs:
        nodes[fid] = _Node(_func_label(f, verbose), "box", "lightblue", font=font)
        layer[fid] = 2 * f.generation + 1
    producer, consumers = {}, {}
    for a, b in g.edges:
        if a.startswith("f"):
            producer[b] = a
        else:
            consumers.setdefault(a, []).append(b)
    for vid, _, v, shape, dtype, kind in g.vars:
        named = v is not None and v.name is not None
        if compact and kind == "out" and not named and vid not in g.outputs:
            nodes[vid] = _Node("", "point", "orange")
        else:
            label = _var_label(v, shape, dtype, kind, verbose, values, grads)
            nodes[vid] = _Node(label, "oval", "lightgrey" if kind == "const" else "orange",
                               dashed=v is None and kind != "const", bold=vid in g.outputs,
                               font=font)
        if vid in producer:
            layer[vid] = layer[producer[vid]] + 1
        else:
            layer[vid] = min((layer[c] for c in consumers.get(vid, ())), default=1) - 1
    rank = {r: i for i, r in enumerate(sorted(set(layer.values())))}
    layers = [[] for _ in rank]
    for key, n in nodes.items():  # walk order: outputs first, then down the graph
        n.layer = rank[layer[key]]
        layers[n.layer].append(n)
    paths = []
    for a, b in g.edges:
        path = [nodes[a]]
        for k in range(nodes[a].layer + 1, nodes[b].layer):
            d = _Node("", "dummy", font=font)
            d.layer = k
            layers[k].append(d)
            path.append(d)
        path.append(nodes[b])
        for u, w in itertools.pairwise(path):
            u.downs.append(w)
            w.ups.append(u)
        paths.append(path)

    def pos(n):
        return n.x

    for row in layers:
        for i, n in enumerate(row):
            n.x = i
    for sweep in range(8):  # barycentre ordering, alternately from above and from below
        rows = layers[1:] if sweep % 2 == 0 else layers[-2::-1]
        for row in rows:
            key = {id(n): (sum(map(pos, n.ups if sweep % 2 == 0 else n.downs))
                           / max(1, len(n.ups if sweep % 2 == 0 else n.downs)))
                   if (n.ups if sweep % 2 == 0 else n.downs) else n.x for n in row}
            row.sort(key=lambda n: key[id(n)])
            for i, n in enumerate(row):
                n.x = i

    gap = 0.12 if compact else 0.25
    for row in layers:  # pack each layer left to right
        x = 0.0
        for n in row:
            n.x = x + n.w / 2
            x += n.w + gap
    for sweep in range(8):  # then pull each layer towards its neighbours, keeping the order
        rows = layers if sweep % 2 == 0 else layers[::-1]
        for row in rows:
            want = [sum(map(pos, n.ups + n.downs)) / len(n.ups + n.downs)
                    if n.ups or n.downs else n.x for n in row]
            for n, x in zip(row, _closest_placement(row, want, gap)):
                n.x = x

    vgap = 0.25 if compact else 0.4
    y = 0.0
    for row in layers:  # top to bottom, each layer as tall as its tallest node
        h = max(n.h for n in row)
        for n in row:
            n.y = y - h / 2
        y -= h + vgap
    return [n for row in layers for n in row], paths


def _closest_placement(row, want, gap):
    """x for a layer's nodes, in their order and without overlap, nearest to ``want``.

    Least squares subject to ``x[i+1] - x[i] >= d[i]`` (half widths plus a gap; bends of
    long edges may run closer together, and weigh more, so edges stay straight). With
    ``c`` the running sum of ``d`` this is an isotonic regression of ``want - c``, solved
    exactly by pooling adjacent violators.
    """
    c = [0.0]
    for a, b in itertools.pairwise(row):
        c.append(c[-1] + (a.w + b.w) / 2 + (gap / 3 if a.shape == b.shape == "dummy" else gap))
    blocks = []  # [weighted mean, total weight, count]
    for n, w, ci in zip(row, want, c):
        blocks.append([w - ci, 4.0 if n.shape == "dummy" else 1.0, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, w2, k2 = blocks.pop()
            m1, w1, k1 = blocks.pop()
            blocks.append([(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2, k1 + k2])
    ys = [m for m, _, k in blocks for _ in range(k)]
    return [y + ci for y, ci in zip(ys, c)]


def draw_graph(output, verbose: bool = True, to_file="graph.png", *, values: bool = True,
               grads: bool = True, compact: bool | None = None, rankdir: str | None = None):
    """Draw the graph below ``output`` with matplotlib (no Graphviz needed).

    The nodes and labels are those of ``get_dot_graph`` (function boxes, variable ovals,
    constants grey, freed variables dashed, outputs bold), in layers by generation, inputs at
    the top. ``plot_dot_graph`` uses this when Graphviz's ``dot`` is not installed.

    Args:
        output (Variable or sequence of Variable): the end(s) of the graph.
        verbose, values, grads, compact: as in ``get_dot_graph``.
        to_file (str or PathLike): any format matplotlib writes (png, svg, pdf, ...).
        rankdir: accepted for ``get_dot_graph``'s signature; the drawing is top-down.
    """
    from matplotlib import patches
    from matplotlib.figure import Figure

    g = _walk(_as_outputs(output, "draw_graph"))
    if compact is None:
        compact = len(g.funcs) > COMPACT_ABOVE
    nodes, paths = _layout(g, verbose, values, grads, compact)
    x0 = min(n.x - n.w / 2 for n in nodes) - 0.2
    x1 = max(n.x + n.w / 2 for n in nodes) + 0.2
    y0 = min(n.y - n.h / 2 for n in nodes) - 0.2
    y1 = max(n.y + n.h / 2 for n in nodes) + 0.2
    width, height = x1 - x0, y1 - y0
    # A huge graph (the 8th derivative of tanh) gets fewer dots per inch: at most 30,000
    # pixels a side and 40 megapixels in all, so its PNG stays writable and viewable.
    dpi = min(100.0, 30000 / max(width, height), (4e7 / (width * height)) ** 0.5)
    fig = Figure(figsize=(width, height), dpi=dpi)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_axis_off()
    line = 0.8 if compact else 1.0
    for path in paths:  # edges first, under the nodes
        pts = [(n.x, n.y) for n in path]
        pts[0] = (path[0].x, path[0].y - path[0].h / 2)
        pts[-1] = (path[-1].x, path[-1].y + path[-1].h / 2)
        if len(pts) > 2:
            xs, ys = zip(*pts[:-1])
            ax.plot(xs, ys, color="black", lw=line, solid_capstyle="butt")
        ax.add_patch(patches.FancyArrowPatch(pts[-2], pts[-1], arrowstyle="-|>",
                                             mutation_scale=8 if compact else 10,
                                             lw=line, color="black", shrinkA=0, shrinkB=0))
    for n in nodes:
        style = {"facecolor": n.fill, "edgecolor": "black",
                 "lw": 2 * line if n.bold else line, "linestyle": "--" if n.dashed else "-"}
        if n.shape == "box":
            ax.add_patch(patches.Rectangle((n.x - n.w / 2, n.y - n.h / 2), n.w, n.h,
                                           **style))
        elif n.shape == "oval":
            ax.add_patch(patches.Ellipse((n.x, n.y), n.w, n.h, **style))
        elif n.shape == "point":
            ax.add_patch(patches.Circle((n.x, n.y), n.w / 2, facecolor=n.fill,
                                        edgecolor=n.fill))
        if n.label:
            ax.text(n.x, n.y, n.label, ha="center", va="center", fontsize=n.font,
                    family=_FONT, linespacing=_LINE_H)
    fig.savefig(os.fspath(to_file))
