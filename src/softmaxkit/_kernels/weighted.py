"""logsumexp with weights ``b`` (possibly negative), with a sign, or of complex input.

These forms are rarer and not bandwidth-critical, so they use one simple row kernel each over a
``(R, n)`` C-contiguous layout.  Entries with ``b == 0`` or ``where == False`` are left out
entirely, so an infinite or NaN ``a`` there adds nothing (SciPy's long-standing behaviour for
``b == 0``).  As in the unweighted kernel, the terms at the maximum are summed separately
(``at_max``) from the rest so that ``log(at_max + rest) = log|at_max| + log1p(rest/at_max)``
keeps small tails.
"""

from __future__ import annotations

import cmath
import math

import numpy as np

from ._fastmath import REDUCTION, callee, kernel
from ._exp import unscaled
from ._scalar import cast_like, scaled_shifted_exp


@callee(fastmath=REDUCTION)
def _included(b, mask, r, i):
    keep = True
    if b is not None:
        keep = b[r, i] != 0
    if mask is not None:
        keep = keep and mask[r, i]
    return keep


@kernel()
def signed_logsumexp_rows(x2, b2, mask2, res, sign):
    """``res = log|sum(b * exp(x))|`` and ``sign = sign(sum)`` per row (``b = 1`` if None)."""
    one = cast_like(1.0, x2)
    zero = one - one
    for r in range(x2.shape[0]):
        m = -np.inf
        for i in range(x2.shape[1]):
            if _included(b2, mask2, r, i):
                v = np.float64(x2[r, i])
                if v != v:
                    m = v
                    break
                m = max(m, v)
        if m != m:
            res[r] = np.nan
            sign[r] = np.nan
            continue
        if m == -np.inf:
            res[r] = -np.inf
            sign[r] = 0.0
            continue
        m_typed = cast_like(m, x2)
        at_max = 0.0
        rest = 0.0
        for i in range(x2.shape[1]):
            if _included(b2, mask2, r, i):
                weight = 1.0 if b2 is None else np.float64(b2[r, i])
                if x2[r, i] == m_typed:
                    at_max += weight
                elif m != np.inf:
                    rest += weight * unscaled(np.float64(scaled_shifted_exp(x2[r, i], m_typed, one, zero)), x2)
        total = at_max + rest
        if m == np.inf:
            # exp(+inf) terms dominate; weights at +inf that cancel leave inf - inf: undefined.
            res[r] = np.inf if at_max != 0 else np.nan
            sign[r] = (1.0 if at_max > 0 else -1.0) if at_max != 0 else np.nan
        elif total == 0.0:
            res[r] = -np.inf
            sign[r] = 0.0
        elif total != total:
            res[r] = np.nan
            sign[r] = np.nan
        else:
            if at_max != 0.0 and rest / at_max > -0.5:
                magnitude = math.log(abs(at_max)) + math.log1p(rest / at_max)
            else:
                magnitude = math.log(abs(total))
            res[r] = m + magnitude
            sign[r] = 1.0 if total > 0 else -1.0


@kernel()
def complex_logsumexp_rows(x2, b2, mask2, res, sign):
    """Complex ``res = log(sum(b * exp(x)))`` (imaginary part in (-pi, pi]) and its phase.

    The shift is the largest real part; ``sign`` receives ``sum / |sum|``.
    """
    for r in range(x2.shape[0]):
        m = -np.inf
        has_nan = False
        for i in range(x2.shape[1]):
            if _included(b2, mask2, r, i):
                v = x2[r, i].real
                if v != v or x2[r, i].imag != x2[r, i].imag:
                    has_nan = True
                m = max(m, v)
        if has_nan:
            res[r] = complex(np.nan, np.nan)
            sign[r] = complex(np.nan, np.nan)
            continue
        if m == -np.inf:
            res[r] = complex(-np.inf, 0.0)
            sign[r] = 0.0
            continue
        shift = m if math.isfinite(m) else 0.0
        total = 0j
        for i in range(x2.shape[1]):
            if _included(b2, mask2, r, i):
                weight = 1.0 + 0j if b2 is None else complex(b2[r, i])
                total += weight * cmath.exp(complex(x2[r, i]) - shift)
        if total == 0:
            res[r] = complex(-np.inf, 0.0)
            sign[r] = 0.0
            continue
        value = cmath.log(total) + shift
        res[r] = value
        sign[r] = total / abs(total)
