"""Higher-order derivatives of tanh through create_graph (DeZero step 35).

Run:  python examples/tanh_derivatives.py [order]   (draws the graph with Graphviz if present)
"""
import sys

import numpy as np

import mibun
import mibun.functions as F

order = int(sys.argv[1]) if len(sys.argv) > 1 else 3
x = mibun.Variable(np.array(1.0), name="x")
y = F.tanh(x)
for i in range(order):
    x.cleargrad()
    y.backward(create_graph=True)
    y = x.grad
    print(f"d^{i + 1}/dx^{i + 1} tanh(x) at 1.0 = {float(y.data): .12f}")
