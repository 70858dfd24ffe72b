"""Vectorisable scalar math for the foreach kernels: log1p, log, log2, log10, exp, expm1, sigmoid,
tanh, and libm-backed erf, erfc, lgamma.  See ``softmaxkit.foreach`` for semantics.

numba's ``math.log1p``/``np.log1p`` are scalar libm calls that do not vectorise here (no SVML), and
NumPy's float32/float64 ``log1p`` is scalar too (about 0.1 G elements/s on this machine).  The
functions below are branch-free (every special case is a select at the end), so a loop over them
compiles to AVX-512 code.

Methods
-------
log1p, log, log2, log10
    ``softmaxkit._kernels._log`` (fdlibm/musl ``log1p``, shared with the column kernels of
    log_softmax and logsumexp); log2 and log10 combine its parts with split constants here.
    Measured: below 1 ulp (``tests/foreach/test_foreach_accuracy.py``).
expm1
    ``x = n ln2 + r`` (Cody-Waite, as in ``softmaxkit._kernels._exp``), ``expm1(r)`` by its Taylor
    series (degree 8 / 13, truncation error below 2**-30 / 2**-60 relative), then
    ``expm1(x) = 2 * (t * expm1(r) + (t - 1/2))`` with ``t = 2**(n-1)``: scaling by powers of two
    is exact, and ``t - 1/2`` is exact for every ``n`` that is not clamped.
exp
    ``softmaxkit._kernels._exp`` (``exp_hilo`` with a zero low part).
sigmoid
    ``e = exp(-|x|)``; ``1 / (1 + e)`` for ``x >= 0`` and ``e / (1 + e)`` for ``x < 0``, so large
    negative ``x`` gives the (possibly subnormal) ``exp(x)`` rather than ``1 / inf = 0``.
tanh
    ``t = expm1(2|x|)``, ``tanh|x| = t / (t + 2)``, sign restored by a select; ``|x|`` below
    ``2**-12`` (float32) / ``2**-27`` (float64) returns ``x`` (this keeps ``-0.0``), large ``|x|``
    returns +-1.
erf, erfc, lgamma
    libm (``math.erf`` ...) in float64; for float32 the float64 result is rounded once.  These are
    scalar calls; no vectorisable version is provided (they are not on any benchmark path).

All functions here are compiled with the ``ORDERED`` flag set (no ``reassoc``): the hi/lo range
reductions and the ``c`` correction depend on evaluation order.
"""

from __future__ import annotations

import math

import numpy as np

from .._kernels._exp import exp_hilo_f32, exp_hilo_f64
from .._kernels._fastmath import ORDERED, callee
from .._kernels._intrinsics import pow2_of_integral
from .._kernels._log import (  # noqa: F401  (log/log1p are part of this module's interface)
    _log_parts_f32,
    _log_parts_f64,
    _log_specials,
    log1p_f32,
    log1p_f64,
    log_f32,
    log_f64,
)

F32 = np.float32

_JIT = {"fastmath": ORDERED, "error_model": "numpy"}


# ------------------------------------------------------------------------------------------------
# log family: log and log1p live in softmaxkit._kernels._log (the column kernels use them too)

_INV_LN2_F64 = 1.4426950408889634
_INV_LN2_HI_F64 = 1.44269504072144627571e00  # 33 bits, as in fdlibm log2
_INV_LN2_LO_F64 = 1.67517131648865118353e-10
_INV_LN10_HI_F64 = 4.34294481878168880939e-01  # fdlibm log10
_INV_LN10_LO_F64 = 2.50829467116452752298e-11
_LOG10_2_HI_F64 = 3.01029995663611771306e-01
_LOG10_2_LO_F64 = 3.69423907715893078616e-13


@callee(**_JIT)
def log2_f32(x):
    """Base-2 log for float32 (the float32 parts are combined in float64, then rounded once)."""
    dk, f, hfsq, tail = _log_parts_f32(x)
    logm = np.float64(f) - np.float64(hfsq) + np.float64(tail)
    y = F32(np.float64(dk) + logm * _INV_LN2_F64)
    return F32(_log_specials(x, y))


@callee(**_JIT)
def log2_f64(x):
    """Base-2 log for float64: ``k + log(m) / ln 2`` with ``1 / ln 2`` split in two parts."""
    dk, f, hfsq, tail = _log_parts_f64(x)
    y = dk + (f * _INV_LN2_HI_F64 + ((tail - hfsq) * _INV_LN2_F64 + f * _INV_LN2_LO_F64))
    return _log_specials(x, y)


@callee(**_JIT)
def log10_f32(x):
    """Base-10 log for float32 (combined in float64, rounded once)."""
    dk, f, hfsq, tail = _log_parts_f32(x)
    logm = np.float64(f) - np.float64(hfsq) + np.float64(tail)
    y = F32(np.float64(dk) * 0.30102999566398120 + logm * 0.43429448190325182)
    return F32(_log_specials(x, y))


@callee(**_JIT)
def log10_f64(x):
    """Base-10 log for float64: ``k log10(2) + log(m) / ln 10`` with both constants split."""
    dk, f, hfsq, tail = _log_parts_f64(x)
    small = (tail - hfsq) * 0.43429448190325182 + f * _INV_LN10_LO_F64 + dk * _LOG10_2_LO_F64
    y = dk * _LOG10_2_HI_F64 + (f * _INV_LN10_HI_F64 + small)
    return _log_specials(x, y)


# ------------------------------------------------------------------------------------------------
# exp family

_LOG2E_F32 = F32(1.44269504088896341)
_EXP_LN2_HI_F32 = F32(0.693359375)
_EXP_LN2_LO_F32 = F32(-2.12194440e-4)
_ROUND_MAGIC_F32 = F32(12582912.0)
_LOG2E_F64 = 1.4426950408889634
_EXP_LN2_HI_F64 = 6.93147180369123816490e-01
_EXP_LN2_LO_F64 = 1.90821492927058770002e-10
_ROUND_MAGIC_F64 = 6755399441055744.0

_INV_FACT = tuple(1.0 / math.factorial(k) for k in range(2, 14))
_E2_F32, _E3_F32, _E4_F32, _E5_F32, _E6_F32, _E7_F32, _E8_F32 = (F32(c) for c in _INV_FACT[:7])
(_E2, _E3, _E4, _E5, _E6, _E7, _E8, _E9, _E10, _E11, _E12, _E13) = _INV_FACT


@callee(**_JIT)
def exp_f32(x):
    """``exp`` for float32 (``exp_hilo_f32`` with a zero low part)."""
    return exp_hilo_f32(x, F32(0.0))


@callee(**_JIT)
def exp_f64(x):
    """``exp`` for float64 (``exp_hilo_f64`` with a zero low part)."""
    return exp_hilo_f64(x, 0.0)


@callee(**_JIT)
def expm1_f32(x):
    """``exp(x) - 1`` for float32; see the module docstring."""
    xc = min(max(x, F32(-30.0)), F32(88.8))
    nf = (xc * _LOG2E_F32 + _ROUND_MAGIC_F32) - _ROUND_MAGIC_F32
    r = xc - nf * _EXP_LN2_HI_F32
    r = r - nf * _EXP_LN2_LO_F32
    p = _E8_F32
    p = p * r + _E7_F32
    p = p * r + _E6_F32
    p = p * r + _E5_F32
    p = p * r + _E4_F32
    p = p * r + _E3_F32
    p = p * r + _E2_F32
    e = p * (r * r) + r
    t = pow2_of_integral(nf - F32(1.0))
    y = F32(2.0) * (t * e + (t - F32(0.5)))
    if x > F32(88.72283):
        y = F32(np.inf)
    if x < F32(-30.0):
        y = F32(-1.0)
    if x == F32(0.0):
        y = x  # keeps -0.0
    return y


@callee(**_JIT)
def expm1_f64(x):
    """``exp(x) - 1`` for float64; see the module docstring."""
    xc = min(max(x, -60.0), 709.8)
    nf = (xc * _LOG2E_F64 + _ROUND_MAGIC_F64) - _ROUND_MAGIC_F64
    r = xc - nf * _EXP_LN2_HI_F64
    r = r - nf * _EXP_LN2_LO_F64
    p = _E13
    p = p * r + _E12
    p = p * r + _E11
    p = p * r + _E10
    p = p * r + _E9
    p = p * r + _E8
    p = p * r + _E7
    p = p * r + _E6
    p = p * r + _E5
    p = p * r + _E4
    p = p * r + _E3
    p = p * r + _E2
    e = p * (r * r) + r
    t = pow2_of_integral(nf - 1.0)
    y = 2.0 * (t * e + (t - 0.5))
    if x > 709.782712893384:
        y = np.inf
    if x < -60.0:
        y = -1.0
    if x == 0.0:
        y = x
    return y


@callee(**_JIT)
def sigmoid_f32(x):
    """``1 / (1 + exp(-x))`` for float32; see the module docstring."""
    e = exp_hilo_f32(-abs(x), F32(0.0))
    d = F32(1.0) + e
    return (F32(1.0) / d) if x >= F32(0.0) else (e / d)


@callee(**_JIT)
def sigmoid_f64(x):
    """``1 / (1 + exp(-x))`` for float64; see the module docstring."""
    e = exp_hilo_f64(-abs(x), 0.0)
    d = 1.0 + e
    return (1.0 / d) if x >= 0.0 else (e / d)


@callee(**_JIT)
def tanh_f32(x):
    """``tanh`` for float32; see the module docstring."""
    a = abs(x)
    t = expm1_f32(min(F32(2.0) * a, F32(40.0)))
    y = t / (t + F32(2.0))
    if x < F32(0.0):
        y = -y
    if a < F32(2.0**-12):
        y = x
    return y


@callee(**_JIT)
def tanh_f64(x):
    """``tanh`` for float64; see the module docstring."""
    a = abs(x)
    t = expm1_f64(min(2.0 * a, 80.0))
    y = t / (t + 2.0)
    if x < 0.0:
        y = -y
    if a < 2.0**-27:
        y = x
    return y


# ------------------------------------------------------------------------------------------------
# libm-backed (scalar) special functions


@callee(**_JIT)
def erf_f32(x):
    return F32(math.erf(np.float64(x)))


@callee(**_JIT)
def erf_f64(x):
    return math.erf(x)


@callee(**_JIT)
def erfc_f32(x):
    return F32(math.erfc(np.float64(x)))


@callee(**_JIT)
def erfc_f64(x):
    return math.erfc(x)


@callee(**_JIT)
def lgamma_f32(x):
    return F32(math.lgamma(np.float64(x)))


@callee(**_JIT)
def lgamma_f64(x):
    # math.lgamma raises at poles in Python; numba's libm call returns +inf, as NumPy-style code
    # expects (scipy.special.gammaln does the same).
    return math.lgamma(x)
