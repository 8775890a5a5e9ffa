"""The ``mibun`` command (a placeholder demo until the trainer lands)."""
from __future__ import annotations

import numpy as np


def demo() -> None:
    from mibun import Variable, numerical_diff
    import mibun.functions as F

    def f(x):
        return F.exp(x ** 2) ** 2

    x = Variable(np.array(0.5))
    y = f(x)
    y.backward()
    print("f(x) = exp(x**2)**2 at x = 0.5")
    print(f"  value:               {float(y.data):.16g}")
    print(f"  backprop:            {float(x.grad.data):.16g}")
    print(f"  central difference:  {float(numerical_diff(f, x)):.16g}")


def main(argv=None) -> int:
    demo()
    return 0
