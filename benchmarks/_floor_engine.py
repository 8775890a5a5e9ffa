"""The floor of mibun's design, for benchmarks/overhead.py: the least a define-by-run
engine of the same shape can do per op in Python (not part of mibun, and not a second
implementation of it: nothing but the chain's two ops, no checks, no modes).

Like mibun, each op call makes a Function object and an output Variable, records one edge
per input (the creator and output index, or a weak reference to a leaf) and keeps what its
backward reads; backward pops functions from a heap on generation and sums gradients per
function. Everything mibun adds on top (argument and gradient shape/dtype checks, the
``create_graph`` mode, constants, retained-input bookkeeping, hooks for forward mode,
``retain_grad``, observers) is left out, so the distance between the two is what those
cost, and the distance from here to PyTorch is what the design itself costs.
"""
import heapq
import weakref

import numpy as np


class Var:
    __slots__ = ("__weakref__", "data", "gen", "grad", "node")

    def __init__(self, data, node=None, gen=0):
        self.data, self.grad, self.node, self.gen = data, None, node, gen


class Fn:
    __slots__ = ("__weakref__", "edges", "gen", "kept", "out")

    def __call__(self, *inputs):
        xs, edges, gen = [], [], 0
        for x in inputs:
            if type(x) is Var:
                xs.append(x.data)
                edges.append(x.node or (None, weakref.ref(x)))
                gen = max(gen, x.gen)
            else:  # a constant
                xs.append(x)
                edges.append(None)
        y = np.asarray(self.forward(*xs))
        self.edges, self.gen = edges, gen + 1
        v = Var(y, (self, 0), gen + 1)
        self.out = weakref.ref(v)
        return v


class Tanh(Fn):
    __slots__ = ()

    def forward(self, x):
        self.kept = y = np.tanh(x)
        return y

    def backward(self, gy):
        y = self.kept
        return (gy * (1 - y * y),)


class Mul(Fn):
    __slots__ = ()

    def forward(self, a, b):
        self.kept = (a, b)
        return a * b

    def backward(self, gy):
        (a, b), e = self.kept, self.edges
        return (None if e[0] is None else gy * b, None if e[1] is None else gy * a)


def backward(out):
    """Every leaf's ``grad`` from ``out`` (seeded with ones), as Variable.backward does."""
    f = out.node[0]
    pending, heap, count = {id(f): np.ones_like(out.data)}, [(-f.gen, 0, f)], 1
    while heap:
        f = heapq.heappop(heap)[2]
        for e, gx in zip(f.edges, f.backward(pending.pop(id(f)))):
            if e is None or gx is None:
                continue
            c, j = e
            if c is None:  # a leaf
                leaf = j()
                if leaf is not None:
                    leaf.grad = gx if leaf.grad is None else leaf.grad + gx
            elif id(c) in pending:
                pending[id(c)] = pending[id(c)] + gx
            else:
                pending[id(c)] = gx
                heapq.heappush(heap, (-c.gen, count, c))
                count += 1
