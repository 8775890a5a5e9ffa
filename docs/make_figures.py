"""Draw the figures of the docs: ``python docs/make_figures.py [--out DIR]``.

Each figure is computed by mibun here, from the same code as the page that shows it, and
written as SVG to ``docs/figures/`` (or ``--out``). The SVGs are committed, so building the
site needs neither Graphviz nor a training run; run this script again after a change that
alters a figure (tests/test_docs_check.py checks that it still runs and draws them all).
The graph pictures need Graphviz's ``dot``; the plots need matplotlib.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

import mibun
import mibun.functions as F
import mibun.layers as L
from mibun import Function, Variable
from mibun.datasets import Digits
from mibun.visualize import plot_dot_graph

HERE = os.path.dirname(os.path.abspath(__file__))


# --- graphs (Graphviz) ------------------------------------------------------------------------
def chain(path):
    """tutorial/backprop-by-hand.md, automatic-backprop.md: y = exp(x ** 2) ** 2 at 0.5."""
    x = Variable(np.array(0.5), name="x")
    a = x ** 2
    b = F.exp(a)
    y = b ** 2
    a.name, b.name, y.name = "a", "b", "y"
    y.backward(retain_grad=True)  # show every gradient of the backward pass
    plot_dot_graph(y, verbose=True, to_file=path)


class Square(Function):  # as in tutorial/generations.md
    def forward(self, x):
        return x ** 2

    def backward(self, gy):
        return 2 * self.input.data * gy


class Add(Function):
    def forward(self, x0, x1):
        return x0 + x1

    def backward(self, gy):
        return gy, gy


def diamond(path):
    """tutorial/generations.md: a = x², b = a², c = a², y = b + c, names with generations."""
    x = Variable(np.array(2.0))
    a = Square()(x)
    b, c = Square()(a), Square()(a)
    y = Add()(b, c)
    for v, n in [(x, "x"), (a, "a"), (b, "b"), (c, "c"), (y, "y")]:
        v.name = f"{n}  (generation {v.generation})"
    y.backward(retain_grad=True)
    plot_dot_graph(y, verbose=False, to_file=path)


# --- plots (matplotlib) -----------------------------------------------------------------------
def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    plt.rcParams.update({"svg.hashsalt": "mibun-docs", "svg.fonttype": "none",
                         "font.size": 11})
    return plt


def _save(fig, path):
    fig.tight_layout()
    fig.savefig(path, metadata={"Date": None})  # no timestamp: same inputs, same file
    fig.clf()


def central_difference_error(path):
    """tutorial/numerical-differentiation.md: error of the central difference against eps."""
    plt = _pyplot()

    def f(x):
        return F.exp(x ** 2) ** 2

    x = Variable(np.array(0.5))
    exact = 2 * np.exp(0.5)
    eps = np.logspace(-13, -1, 49)
    err = [abs(mibun.numerical_diff(f, x, e) - exact) for e in eps]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.loglog(eps, err, "o-", ms=3)
    ax.set_xlabel("step eps")
    ax.set_ylabel("|central difference - exact|")
    ax.set_title("f(x) = exp(x²)² at x = 0.5")
    ax.grid(True, which="major", alpha=0.3)
    _save(fig, path)


def tanh_derivatives(path):
    """tutorial/higher-order.md: tanh and its first three derivatives, all by backprop."""
    plt = _pyplot()
    x = Variable(np.linspace(-4, 4, 201))
    y = F.tanh(x)
    curves = [("tanh(x)", y.data)]
    g = y
    for k in range(1, 4):
        x.cleargrad()
        g.backward(create_graph=True)
        g = x.grad
        curves.append((f"order {k}", g.data))
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for label, values in curves:
        ax.plot(x.data, values, label=label)
    ax.set_xlabel("x")
    ax.legend()
    ax.grid(True, alpha=0.3)
    _save(fig, path)


class TwoLayerNet(mibun.Model):  # as in tutorial/neural-network.md
    def __init__(self, hidden, out):
        super().__init__()
        self.l1 = L.Linear(hidden)
        self.l2 = L.Linear(out)

    def forward(self, x):
        return self.l2(F.relu(self.l1(x)))


def digits_curves(path):
    """tutorial/neural-network.md: the page's exact run (its first step, then 10 epochs)."""
    plt = _pyplot()
    train_set, test_set = Digits(train=True), Digits(train=False)
    np.random.seed(0)
    model = TwoLayerNet(100, 10)
    loader = mibun.DataLoader(train_set, batch_size=32, shuffle=True, seed=0)
    lr = 0.2

    def step(x, t):
        loss = F.softmax_cross_entropy(model(x), t)
        model.cleargrads()
        loss.backward()
        for p in model.params():
            p.data -= lr * p.grad.data
        return float(loss.data)

    step(*next(iter(loader)))
    loader.reset()
    losses, accs = [], []
    for _ in range(10):
        total = sum(step(x, t) * len(t) for x, t in loader)
        losses.append(total / len(train_set))
        with mibun.no_grad():
            accs.append(float(F.accuracy(model(test_set.data), test_set.label).data))
    epochs = np.arange(1, 11)
    fig, (a0, a1) = plt.subplots(1, 2, figsize=(8, 3.2))
    a0.plot(epochs, losses, "o-")
    a0.set_xlabel("epoch")
    a0.set_ylabel("train loss")
    a1.plot(epochs, np.array(accs) * 100, "o-", color="C1")
    a1.set_xlabel("epoch")
    a1.set_ylabel("test accuracy (%)")
    for a in (a0, a1):
        a.grid(True, alpha=0.3)
    _save(fig, path)


FIGURES = {
    "chain.svg": chain,
    "diamond.svg": diamond,
    "central-difference-error.svg": central_difference_error,
    "tanh-derivatives.svg": tanh_derivatives,
    "digits-curves.svg": digits_curves,
}
NEEDS_GRAPHVIZ = ("chain.svg", "diamond.svg")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=os.path.join(HERE, "figures"))
    p.add_argument("names", nargs="*", help=f"figures to draw (default: all of {list(FIGURES)})")
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    for name in args.names or FIGURES:
        FIGURES[name](os.path.join(args.out, name))
        print(f"wrote {os.path.join(args.out, name)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
