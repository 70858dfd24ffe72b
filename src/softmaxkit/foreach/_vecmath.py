"""Vectorisable scalar math for the foreach kernels: log1p, log, log2, log10, exp, expm1, sigmoid,
tanh, and libm-backed erf, erfc, lgamma.  See ``softmaxkit.foreach`` for semantics.

numba's ``math.log1p``/``np.log1p`` are scalar libm calls that do not vectorise here (no SVML), and
NumPy's float32/float64 ``log1p`` is scalar too (about 0.1 G elements/s on this machine).  The
functions below are branch-free (every special case is a select at the end), so a loop over them
compiles to AVX-512 code.

Methods
-------
log1p, log, log2, log10
    fdlibm/musl ``log1p``: ``u = 1 + x`` is split as ``u = m * 2**k`` with ``m`` in
    ``[sqrt(2)/2, sqrt(2))`` by integer arithmetic on the bits (:func:`log_reduce`), the rounding
    error of ``1 + x`` is carried as ``c = err / u`` (Fast2Sum), and ``log(m)`` comes from
    ``s = f / (2 + f)``, ``f = m - 1``, ``log(m) = 2 atanh(s)`` with a minimax polynomial in ``s**2``
    (4 terms for float32, 7 for float64).  When ``k == 0`` the argument is used as ``f`` directly,
    so small arguments lose nothing.  Measured: below 1 ulp (``tests/foreach/test_accuracy.py``).
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
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from .._kernels._exp import exp_hilo_f32, exp_hilo_f64
from .._kernels._fastmath import ORDERED
from .._kernels._intrinsics import pow2_of_integral

F32 = np.float32

_JIT = {"fastmath": ORDERED, "error_model": "numpy", "cache": True}


@intrinsic
def log_reduce(typingctx, u):
    """``(m, k)`` with ``u = m * 2**k``, ``m`` in ``[sqrt(2)/2, sqrt(2))``, ``k`` as a float.

    Valid for positive normal finite ``u``; other inputs give garbage that callers select away.
    Integer arithmetic is done at the float's own width so the loop keeps its vector width.
    """
    if not isinstance(u, types.Float):
        return None

    def codegen(context, builder, signature, args):
        llty = context.get_value_type(signature.args[0])
        if llty == ir.FloatType():
            ity, one, sqrt_half, shift, bias, mask = (
                ir.IntType(32),
                0x3F800000,
                0x3F3504F3,
                23,
                127,
                (1 << 23) - 1,
            )
        else:
            ity, one, sqrt_half, shift, bias, mask = (
                ir.IntType(64),
                0x3FF0000000000000,
                0x3FE6A09E667F3BCD,
                52,
                1023,
                (1 << 52) - 1,
            )
        bits = builder.bitcast(args[0], ity)
        # Adding (1.0 - sqrt(2)/2) in bit space moves the exponent boundary to sqrt(2)/2.
        bits = builder.add(bits, ir.Constant(ity, one - sqrt_half))
        k = builder.sub(builder.ashr(bits, ir.Constant(ity, shift)), ir.Constant(ity, bias))
        kf = builder.sitofp(k, llty)
        mbits = builder.add(builder.and_(bits, ir.Constant(ity, mask)), ir.Constant(ity, sqrt_half))
        m = builder.bitcast(mbits, llty)
        return context.make_tuple(builder, signature.return_type, [m, kf])

    return types.UniTuple(u, 2)(u), codegen


# ------------------------------------------------------------------------------------------------
# log family

# musl logf/log1pf (float32) and fdlibm log/log1p (float64) constants.
_LN2_HI_F32 = F32(6.9313812256e-01)
_LN2_LO_F32 = F32(9.0580006145e-06)
_LG1_F32 = F32(0.66666662693)
_LG2_F32 = F32(0.40000972152)
_LG3_F32 = F32(0.28498786688)
_LG4_F32 = F32(0.24279078841)

_LN2_HI_F64 = 6.93147180369123816490e-01
_LN2_LO_F64 = 1.90821492927058770002e-10
_LG1_F64 = 6.666666666666735130e-01
_LG2_F64 = 3.999999999940941908e-01
_LG3_F64 = 2.857142874366239149e-01
_LG4_F64 = 2.222219843214978396e-01
_LG5_F64 = 1.818357216161805012e-01
_LG6_F64 = 1.531383769920937332e-01
_LG7_F64 = 1.479819860511658591e-01

_INV_LN2_F64 = 1.4426950408889634
_INV_LN2_HI_F64 = 1.44269504072144627571e00  # 33 bits, as in fdlibm log2
_INV_LN2_LO_F64 = 1.67517131648865118353e-10
_INV_LN10_HI_F64 = 4.34294481878168880939e-01  # fdlibm log10
_INV_LN10_LO_F64 = 2.50829467116452752298e-11
_LOG10_2_HI_F64 = 3.01029995663611771306e-01
_LOG10_2_LO_F64 = 3.69423907715893078616e-13


@njit(**_JIT)
def _log_poly_f32(f):
    """``(hfsq, tail)`` with ``log(1 + f) = f - hfsq + tail``, for ``f`` in ``[-0.293, 0.414]``."""
    s = f / (F32(2.0) + f)
    z = s * s
    w = z * z
    r = z * (_LG1_F32 + w * _LG3_F32) + w * (_LG2_F32 + w * _LG4_F32)
    hfsq = F32(0.5) * f * f
    return hfsq, s * (hfsq + r)


@njit(**_JIT)
def _log_poly_f64(f):
    """``(hfsq, tail)`` with ``log(1 + f) = f - hfsq + tail``, for ``f`` in ``[-0.293, 0.414]``."""
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    t1 = w * (_LG2_F64 + w * (_LG4_F64 + w * _LG6_F64))
    t2 = z * (_LG1_F64 + w * (_LG3_F64 + w * (_LG5_F64 + w * _LG7_F64)))
    hfsq = 0.5 * f * f
    return hfsq, s * (hfsq + (t1 + t2))


@njit(**_JIT)
def log1p_f32(x):
    """``log(1 + x)`` for float32; see the module docstring."""
    one = F32(1.0)
    u = one + x
    m, dk = log_reduce(u)
    # Fast2Sum residual of 1 + x, ordered by magnitude, divided by u: log(u + err) ~ log(u) + err/u.
    c = (one - (u - x)) if dk >= F32(2.0) else (x - (u - one))
    c = c / u
    f = m - one
    if dk == F32(0.0):
        f = x
        c = F32(0.0)
    hfsq, tail = _log_poly_f32(f)
    y = tail + (dk * _LN2_LO_F32 + c) - hfsq + f + dk * _LN2_HI_F32
    if abs(x) < F32(2.0**-24):
        y = x  # log1p(x) = x to working precision; keeps -0.0 and subnormals
    if x == F32(np.inf):
        y = x
    if x == F32(-1.0):
        y = F32(-np.inf)
    if not (x >= F32(-1.0)):  # x < -1 or NaN
        y = F32(np.nan)
    return y


@njit(**_JIT)
def log1p_f64(x):
    """``log(1 + x)`` for float64; see the module docstring."""
    u = 1.0 + x
    m, dk = log_reduce(u)
    c = (1.0 - (u - x)) if dk >= 2.0 else (x - (u - 1.0))
    c = c / u
    f = m - 1.0
    if dk == 0.0:
        f = x
        c = 0.0
    hfsq, tail = _log_poly_f64(f)
    y = tail + (dk * _LN2_LO_F64 + c) - hfsq + f + dk * _LN2_HI_F64
    if abs(x) < 2.0**-54:
        y = x
    if x == np.inf:
        y = x
    if x == -1.0:
        y = -np.inf
    if not (x >= -1.0):
        y = np.nan
    return y


@njit(**_JIT)
def _log_parts_f32(x):
    """``(dk, f, hfsq, tail)`` with ``log(x) = dk ln2 + f - hfsq + tail``; subnormals rescaled."""
    sub = x < F32(1.1754944e-38)
    xs = x * F32(2.0**25) if sub else x
    m, dk = log_reduce(xs)
    if sub:
        dk = dk - F32(25.0)
    f = m - F32(1.0)
    hfsq, tail = _log_poly_f32(f)
    return dk, f, hfsq, tail


@njit(**_JIT)
def _log_parts_f64(x):
    sub = x < 2.2250738585072014e-308
    xs = x * 2.0**54 if sub else x
    m, dk = log_reduce(xs)
    if sub:
        dk = dk - 54.0
    f = m - 1.0
    hfsq, tail = _log_poly_f64(f)
    return dk, f, hfsq, tail


@njit(**_JIT)
def _log_specials(x, y):
    """The IEEE special cases shared by log, log2 and log10."""
    if x == 0:
        y = -np.inf
    if x == np.inf:
        y = x
    if not (x >= 0):  # x < 0 or NaN
        y = np.nan
    return y


@njit(**_JIT)
def log_f32(x):
    """Natural log for float32."""
    dk, f, hfsq, tail = _log_parts_f32(x)
    y = dk * _LN2_HI_F32 + (f - (hfsq - (tail + dk * _LN2_LO_F32)))
    return F32(_log_specials(x, y))


@njit(**_JIT)
def log_f64(x):
    """Natural log for float64."""
    dk, f, hfsq, tail = _log_parts_f64(x)
    y = dk * _LN2_HI_F64 + (f - (hfsq - (tail + dk * _LN2_LO_F64)))
    return _log_specials(x, y)


@njit(**_JIT)
def log2_f32(x):
    """Base-2 log for float32 (the float32 parts are combined in float64, then rounded once)."""
    dk, f, hfsq, tail = _log_parts_f32(x)
    logm = np.float64(f) - np.float64(hfsq) + np.float64(tail)
    y = F32(np.float64(dk) + logm * _INV_LN2_F64)
    return F32(_log_specials(x, y))


@njit(**_JIT)
def log2_f64(x):
    """Base-2 log for float64: ``k + log(m) / ln 2`` with ``1 / ln 2`` split in two parts."""
    dk, f, hfsq, tail = _log_parts_f64(x)
    y = dk + (f * _INV_LN2_HI_F64 + ((tail - hfsq) * _INV_LN2_F64 + f * _INV_LN2_LO_F64))
    return _log_specials(x, y)


@njit(**_JIT)
def log10_f32(x):
    """Base-10 log for float32 (combined in float64, rounded once)."""
    dk, f, hfsq, tail = _log_parts_f32(x)
    logm = np.float64(f) - np.float64(hfsq) + np.float64(tail)
    y = F32(np.float64(dk) * 0.30102999566398120 + logm * 0.43429448190325182)
    return F32(_log_specials(x, y))


@njit(**_JIT)
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


@njit(**_JIT)
def exp_f32(x):
    """``exp`` for float32 (``exp_hilo_f32`` with a zero low part)."""
    return exp_hilo_f32(x, F32(0.0))


@njit(**_JIT)
def exp_f64(x):
    """``exp`` for float64 (``exp_hilo_f64`` with a zero low part)."""
    return exp_hilo_f64(x, 0.0)


@njit(**_JIT)
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


@njit(**_JIT)
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


@njit(**_JIT)
def sigmoid_f32(x):
    """``1 / (1 + exp(-x))`` for float32; see the module docstring."""
    e = exp_hilo_f32(-abs(x), F32(0.0))
    d = F32(1.0) + e
    return (F32(1.0) / d) if x >= F32(0.0) else (e / d)


@njit(**_JIT)
def sigmoid_f64(x):
    """``1 / (1 + exp(-x))`` for float64; see the module docstring."""
    e = exp_hilo_f64(-abs(x), 0.0)
    d = 1.0 + e
    return (1.0 / d) if x >= 0.0 else (e / d)


@njit(**_JIT)
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


@njit(**_JIT)
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


@njit(**_JIT)
def erf_f32(x):
    return F32(math.erf(np.float64(x)))


@njit(**_JIT)
def erf_f64(x):
    return math.erf(x)


@njit(**_JIT)
def erfc_f32(x):
    return F32(math.erfc(np.float64(x)))


@njit(**_JIT)
def erfc_f64(x):
    return math.erfc(x)


@njit(**_JIT)
def lgamma_f32(x):
    return F32(math.lgamma(np.float64(x)))


@njit(**_JIT)
def lgamma_f64(x):
    # math.lgamma raises at poles in Python; numba's libm call returns +inf, as NumPy-style code
    # expects (scipy.special.gammaln does the same).
    return math.lgamma(x)
