"""DOT text for the graph, rendered to SVG/PNG by Graphviz; the notebook ``Graph``.

``get_dot_graph`` needs no external program; ``render_dot`` runs Graphviz's ``dot``;
``plot_dot_graph`` and ``graph`` use it when it is installed, and
:func:`mibun.visualize.draw.draw_graph` (matplotlib) when it is not.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import warnings

from mibun.visualize import draw
from mibun.visualize.walk import COMPACT_ABOVE, as_outputs, func_label, var_label, walk

__all__ = ["DOT_TIMEOUT", "QUICK_LAYOUT_ABOVE", "Graph", "GraphvizNotFoundError",
           "get_dot_graph", "graph", "plot_dot_graph", "render_dot"]

#: Above this many function nodes Graphviz is told to spend less effort on edge crossings:
#: the 8th derivative of tanh (1,700 functions) then takes 15 s instead of over 5 minutes.
QUICK_LAYOUT_ABOVE = 300
#: Seconds Graphviz's ``dot`` may take before ``render_dot`` gives up.
DOT_TIMEOUT = 300


class GraphvizNotFoundError(RuntimeError):
    """Rendering SVG/PNG needs Graphviz's ``dot`` program, which is not installed."""


def _escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


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
    >>> from mibun import Variable
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
    g = walk(as_outputs(output, "get_dot_graph"))
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
        label = var_label(v, shape, dtype, kind, verbose, values, grads)
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
        lines.append(f'{fid} [label="{_escape(func_label(f, verbose))}", color=lightblue, '
                     "style=filled, shape=box]")
        for a, b in g.edges:
            if b == fid:
                emit_var(a)
    for vid, *_ in g.vars:
        emit_var(vid)
    lines.extend(f"{a} -> {b}" for a, b in g.edges)
    lines.append("}")
    return "\n".join(lines) + "\n"


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
        draw.draw_graph(output, verbose, to_file, **kwargs)
    else:
        render_dot(get_dot_graph(output, verbose, **kwargs), to_file, ext)
    return _ipython_image(to_file) if ext == "png" else None


class Graph:
    """A drawing of a computational graph that Jupyter shows inline; see :func:`graph`."""

    def __init__(self, output, verbose: bool = True, *, format: str = "svg", **kwargs):
        if format not in ("svg", "png"):
            raise ValueError(f"graph: format must be 'svg' or 'png', got {format!r}")
        self._outputs = as_outputs(output, "graph")
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
    >>> from mibun import Variable
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
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # mibun/
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
