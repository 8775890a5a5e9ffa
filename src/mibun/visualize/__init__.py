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

A freed intermediate variable is still drawn, with a dashed outline. One module per job:

* ``walk``: the nodes and edges below the outputs, and each node's label;
* ``dot``: DOT text, rendering with Graphviz, ``plot_dot_graph`` and the notebook ``Graph``;
* ``draw``: the drawing without Graphviz (a layered layout, rendered by matplotlib).

Their settings (``SMALL``, ``COMPACT_ABOVE``, ``QUICK_LAYOUT_ABOVE``, ``DOT_TIMEOUT``,
``FONT_SIZE``) live in their own module; read or set here, they read or set it there, so
``mibun.visualize.DOT_TIMEOUT = 60`` works as it did when this was one file.
"""
import sys
import types

from mibun.visualize import dot, draw, walk
from mibun.visualize.dot import (  # noqa: F401
    Graph,
    GraphvizNotFoundError,
    get_dot_graph,
    graph,
    plot_dot_graph,
    render_dot,
)
from mibun.visualize.draw import draw_graph  # noqa: F401

_SETTINGS = {"SMALL": walk, "COMPACT_ABOVE": walk, "QUICK_LAYOUT_ABOVE": dot,
             "DOT_TIMEOUT": dot, "FONT_SIZE": draw}


def __getattr__(name):
    if name in _SETTINGS:
        return getattr(_SETTINGS[name], name)
    raise AttributeError(f"module 'mibun.visualize' has no attribute {name!r}")


class _Package(types.ModuleType):
    def __setattr__(self, name, value):
        if name in _SETTINGS:  # a setting is set where it is read
            setattr(_SETTINGS[name], name, value)
        else:
            super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package

__all__ = ["Graph", "GraphvizNotFoundError", "draw_graph", "get_dot_graph", "graph",
           "plot_dot_graph", "render_dot"]
