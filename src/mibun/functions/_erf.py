"""The erf kernel on arrays (``F.erf`` and ``F.gelu`` use it): CuPy's own where CuPy is
the array module, else Cody's rational approximations in NumPy."""
from __future__ import annotations

import math

import numpy as np

from mibun import backend


def _float_dtype(dtype):
    """``dtype`` if it is a float type, else the float type NumPy's ``np.exp`` would give."""
    return dtype if dtype.kind == "f" else np.promote_types(dtype, np.float16)


# erf on NumPy: W. J. Cody's rational approximations ("Rational Chebyshev approximations for
# the error function", Math. Comp. 23 (1969) 631-638; the coefficients of netlib's specfun
# CALERF), evaluated in float64. erf(x) = x R(x²) for |x| <= 0.46875; beyond, 1 - erfc with
# erfc(x) = exp(-x²) R(x) up to 4 and exp(-x²) / x (1/√π - R(1/x²) / x²) up to 6, where erf
# rounds to 1. Within 4 ulp of math.erf (tests/functions/test_math.py).
_ERF_SMALL = ((3.16112374387056560e00, 1.13864154151050156e02, 3.77485237685302021e02,
               3.20937758913846947e03, 1.85777706184603153e-1),
              (2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03,
               2.84423683343917062e03))
_ERFC_MID = ((5.64188496988670089e-1, 8.88314979438837594e0, 6.61191906371416295e01,
              2.98635138197400131e02, 8.81952221241769090e02, 1.71204761263407058e03,
              2.05107837782607147e03, 1.23033935479799725e03, 2.15311535474403846e-8),
             (1.57449261107098347e01, 1.17693950891312499e02, 5.37181101862009858e02,
              1.62138957456669019e03, 3.29079923573345963e03, 4.36261909014324716e03,
              3.43936767414372164e03, 1.23033935480374942e03))
_ERFC_TAIL = ((3.05326634961232344e-1, 3.60344899949804439e-1, 1.25781726111229246e-1,
               1.60837851487422766e-2, 6.58749161529837803e-4, 1.63153871373020978e-2),
              (2.56852019228982242e00, 1.87295284992346047e00, 5.27905102951428412e-1,
               6.05183413124413191e-2, 2.33520497626869185e-3))


def _rational(coefs, t):
    """Cody's ratio of polynomials in ``t``: the numerator's leading coefficient is last,
    the denominator is monic. In place on the temporaries (they are the time on 10^6 values)."""
    p, q = coefs
    n = p[-1] * t
    n += p[0]
    d = t + q[0]
    for a, b in zip(p[1:-1], q[1:]):
        n *= t
        n += a
        d *= t
        d += b
    n /= d
    return n


def _erf(x):
    """Elementwise erf of an ndarray, in ``x``'s float dtype (float64 for integers)."""
    xp = backend.get_array_module(x)
    dtype = _float_dtype(x.dtype)
    if xp is not np:
        try:  # CuPy's own erf kernel (cupyx is optional: imported only for a CuPy array)
            from cupyx.scipy import special
        except ImportError:
            pass
        else:
            y = special.erf(x.astype(np.promote_types(dtype, np.float32), copy=False))
            return y.astype(dtype, copy=False)
    a = xp.abs(x.astype(np.float64).ravel())
    out = xp.ones_like(a)  # |x| >= 6 (and inf): erf rounds to ±1
    m = a <= 0.46875
    s = a[m]
    out[m] = s * _rational(_ERF_SMALL, s * s)
    m = (a > 0.46875) & (a <= 4)
    s = a[m]
    out[m] = 1 - xp.exp(-s * s) * _rational(_ERFC_MID, s)
    m = (a > 4) & (a < 6)
    s = a[m]
    z = 1 / (s * s)
    out[m] = 1 - xp.exp(-s * s) / s * (1 / math.sqrt(math.pi) - z * _rational(_ERFC_TAIL, z))
    out[xp.isnan(a)] = np.nan
    return xp.copysign(out, x.ravel(), out=out).reshape(x.shape).astype(dtype, copy=False)
