"""Drawing the graph without Graphviz: a layered layout by generation, rendered by
matplotlib (imported when a graph is drawn: it is an optional dependency's cost)."""
from __future__ import annotations

import itertools
import os

from mibun.visualize.walk import COMPACT_ABOVE, as_outputs, func_label, var_label, walk

__all__ = ["FONT_SIZE", "draw_graph", "layout"]

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


def layout(g, verbose, values, grads, compact):
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
        nodes[fid] = _Node(func_label(f, verbose), "box", "lightblue", font=font)
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
            label = var_label(v, shape, dtype, kind, verbose, values, grads)
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

    g = walk(as_outputs(output, "draw_graph"))
    if compact is None:
        compact = len(g.funcs) > COMPACT_ABOVE
    nodes, paths = layout(g, verbose, values, grads, compact)
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
