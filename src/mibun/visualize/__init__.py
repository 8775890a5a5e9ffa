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

Their settings are shown here too, but read in their own module, so set them there:
``walk.SMALL``, ``walk.COMPACT_ABOVE``, ``dot.QUICK_LAYOUT_ABOVE``, ``dot.DOT_TIMEOUT``,
``draw.FONT_SIZE``.
"""
from mibun.visualize.dot import (  # noqa: F401  (and the settings, shown here)
    DOT_TIMEOUT,
    QUICK_LAYOUT_ABOVE,
    Graph,
    GraphvizNotFoundError,
    get_dot_graph,
    graph,
    plot_dot_graph,
    render_dot,
)
from mibun.visualize.draw import FONT_SIZE, draw_graph  # noqa: F401
from mibun.visualize.walk import COMPACT_ABOVE, SMALL  # noqa: F401

__all__ = ["Graph", "GraphvizNotFoundError", "draw_graph", "get_dot_graph", "graph",
           "plot_dot_graph", "render_dot"]
