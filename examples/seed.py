"""The seed study: Square -> Exp -> Square, by manual and automatic backprop, with the
central-difference check beside it. Run:  python examples/seed.py"""
import numpy as np

from mibun import Function, Variable, numerical_diff


class Square(Function):
    def forward(self, x):
        return x ** 2

    def backward(self, gy):
        x = self.input.data
        return 2 * x * gy


class Exp(Function):
    def forward(self, x):
        return np.exp(x)

    def backward(self, gy):
        x = self.input.data
        return np.exp(x) * gy


A, B, C = Square(), Exp(), Square()
x = Variable(np.array(0.5))
a = A(x)
b = B(a)
y = C(b)

# manual backprop: call each backward in reverse order
y.grad = np.array(1.0)
b.grad = C.backward(y.grad)
a.grad = B.backward(b.grad)
x.grad = A.backward(a.grad)
print("manual backprop:   ", x.grad)

# automatic backprop
x.grad = None
y.backward()
print("automatic backprop:", x.grad)

print("central difference:", numerical_diff(lambda v: C(B(A(v))), x))
