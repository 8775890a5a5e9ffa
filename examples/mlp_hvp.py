"""A Hessian-vector product of a small MLP's loss with respect to its parameters.

``jvp(grad(loss), params, v)`` is forward-over-reverse: one forward and one backward
pass carrying tangents, never the (P x P) Hessian. Checked against the Hessian itself
(``func.hessian`` on the flattened parameters) and a finite difference of the gradient.

Run:  python examples/mlp_hvp.py
"""
import numpy as np

import mibun
import mibun.functions as F
from mibun import func

rng = np.random.default_rng(0)
x = rng.standard_normal((16, 3))
t = (x[:, 0] * x[:, 1] > 0).astype(int)  # two classes
model = mibun.models.MLP((8, 2), activation=F.tanh)
model(x)  # creates the parameters (float32 by default): use them in float64
params = tuple(p.data.astype(np.float64) for p in (model.l0.W, model.l0.b,
                                                   model.l1.W, model.l1.b))


def loss(W0, b0, W1, b1):
    h = F.tanh(F.linear(x, W0, b0))
    return F.softmax_cross_entropy(F.linear(h, W1, b1), t)


argnums = (0, 1, 2, 3)
v = tuple(rng.standard_normal(p.shape) for p in params)
g, hv = func.jvp(func.grad(loss, argnums=argnums), params, v)
print("parameters:", sum(p.size for p in params))
print("|grad| =", np.sqrt(sum(float((gi.data ** 2).sum()) for gi in g)))

# The same product from the full Hessian of the flattened parameters.
sizes = [p.size for p in params]


def flat_loss(theta):
    parts, i = [], 0
    for p, n in zip(params, sizes):
        parts.append(F.reshape(theta[i:i + n], p.shape))
        i += n
    return loss(*parts)


theta = np.concatenate([p.ravel() for p in params])
H = func.hessian(flat_loss)(theta).data
hv_flat = np.concatenate([h.data.ravel() for h in hv])
vflat = np.concatenate([u.ravel() for u in v])
print("max |Hv (jvp of grad) - H @ v| =", np.abs(hv_flat - H @ vflat).max())
assert np.allclose(hv_flat, H @ vflat, rtol=1e-10, atol=1e-12)

# And a central difference of the gradient along v.
eps = 1e-6
gp = func.grad(flat_loss)(theta + eps * vflat).data
gm = func.grad(flat_loss)(theta - eps * vflat).data
print("max |Hv - finite difference| =", np.abs(hv_flat - (gp - gm) / (2 * eps)).max())
