"""What a drawing of the graph shows: the nodes and edges below some outputs, and each
node's label.

The graph is walked through each function's input *edges* (see ``mibun.core``), not its
``inputs``: an op keeps only the inputs its backward reads, and an intermediate variable may
already be freed. A freed variable is still drawn, from the shape and dtype its creator
recorded. :mod:`mibun.visualize.dot` writes these nodes as DOT text, and
:mod:`mibun.visualize.draw` lays them out with matplotlib.
"""
from __future__ import annotations

import heapq

import numpy as np

from mibun import backend, core
from mibun.core import Variable

__all__ = ["COMPACT_ABOVE", "SMALL", "Nodes", "as_outputs", "func_label", "var_label", "walk"]

#: Arrays with at most this many elements have their values and gradients printed.
SMALL = 4
#: A graph with more function nodes than this is drawn compactly when ``compact=None``.
COMPACT_ABOVE = 40


class Nodes:
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


def walk(outputs) -> Nodes:
    """The functions and variables below ``outputs``, highest generation first."""
    g = Nodes()
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


def fmt_array(a) -> str:
    a = backend.as_numpy(a)
    if a.ndim == 0:
        return f"{a.item():.6g}" if a.dtype.kind in "fc" else str(a.item())
    return np.array2string(a, precision=4, separator=", ", threshold=SMALL)


def fmt_grad(g) -> str:
    d = g.data if isinstance(g, Variable) else g
    if d is None:
        return "grad: None"
    if d.size <= SMALL:
        return "grad: " + fmt_array(d)
    norm = float(np.sqrt((backend.as_numpy(d).astype(np.float64) ** 2).sum()))
    return f"grad: |g|={norm:.4g}"


def var_label(v, shape, dtype, kind, verbose, values, grads):
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
            label += "\n= " + fmt_array(v.data)
        if grads and v.grad is not None:
            label += "\n" + fmt_grad(v.grad)
    return label


def func_label(f, verbose):
    name = type(f).__name__
    c = getattr(f, "c", None)
    if verbose and isinstance(c, (int, float, np.number)) and not isinstance(c, bool):
        name += f"({float(c):g})" if isinstance(c, (float, np.floating)) else f"({c})"
    return name


def as_outputs(output, who):
    outputs = [output] if isinstance(output, Variable) else list(output)
    for y in outputs:
        if not isinstance(y, Variable):
            raise TypeError(
                f"{who}: output must be a Variable or a sequence of Variables, "
                f"got {type(y).__name__}"
            )
    return outputs
