"""A vectorisable ``exp`` of a double-word argument, ``exp(hi + lo)``, for float32 and float64.

numba's ``math.exp``/``np.exp`` are scalar libm calls that do not vectorise here (no SVML), so
kernels use this one.  Taking the argument as ``hi + lo`` lets a caller pass ``x - max`` exactly
(``lo`` is the TwoSum residual): the rounding of ``x - max`` is what makes a naive float32
softmax ~60 ulp wrong when ``|x - max|`` is large.

Method (Cody & Waite; Cephes ``expf``/fdlibm ``exp``): ``n = round(hi / ln 2)``,
``r = (hi - n*ln2_hi) - n*ln2_lo + lo`` with ``ln2_hi`` short enough that ``n*ln2_hi`` is exact,
``exp(r)`` by a polynomial on ``|r| <= ln(2)/2``, then the result is scaled by ``2**n`` in two
exact steps so that subnormal results round once, correctly.  Measured error (``tests/test_exp.py``):
float32 <= 1 ulp, float64 <= 1 ulp against a long-double / float64 reference.

Compiled with the ``ORDERED`` flag set: ``reassoc`` would merge the hi/lo reduction terms.
"""

from __future__ import annotations

import numpy as np
from numba import types

from ._fastmath import ORDERED, callee, callee_overload
from ._intrinsics import pow2_of_integral, pow2_of_rounded, trunc
from ._vector import Vector, select

# float32 constants (reduction as in Cephes expf).  LN2_HI_F32 has 15 significant bits so
# n * LN2_HI_F32 is exact for |n| <= 2**9, which covers every n the clamps below let through.
_LOG2E_F32 = np.float32(1.44269504088896341)
_LN2_HI_F32 = np.float32(0.693359375)
_LN2_LO_F32 = np.float32(-2.12194440e-4)
_ROUND_MAGIC_F32 = np.float32(12582912.0)  # 1.5 * 2**23: adding it rounds to an integer
# exp(x) < 2**-150 / 2 below this (rounds to +0); above _HIGH_F32 it overflows to +inf.
_LOW_F32 = np.float32(-103.972084)
_HIGH_F32 = np.float32(88.7228394)
# expm1(r) ~= r + r**2 * p(r) on |r| <= ln(2)/2 with p of degree 4: minimax for the relative
# error of 1 + expm1(r) (Lawson's iteration on Chebyshev nodes against mpmath, then rounded to
# float32; tests/test_exp.py checks it): 3.6e-9, 0.061 ulp of float32.  Cephes' expf
# takes degree 5 (7 in all); this is one fma fewer in a compute-bound loop.
_P0_F32 = np.float32(0.4999999403953552)
_P1_F32 = np.float32(0.1666652113199234)
_P2_F32 = np.float32(0.04166838899254799)
_P3_F32 = np.float32(0.00836874544620514)
_P4_F32 = np.float32(0.0013814540579915047)
_ZERO_F32 = np.float32(0.0)
_INF_F32 = np.float32(np.inf)

# float64 constants (reduction as in fdlibm).  LN2_HI_F64 has 32 significant bits: n * LN2_HI_F64
# is exact for |n| <= 2**20.
_LOG2E_F64 = 1.4426950408889634
_LN2_HI_F64 = 6.93147180369123816490e-01
_LN2_LO_F64 = 1.90821492927058770002e-10
_ROUND_MAGIC_F64 = 6755399441055744.0  # 1.5 * 2**52
_LOW_F64 = -745.1332191019412
_HIGH_F64 = 709.782712893384
# expm1(r) ~= r + r**2 * p(r) with p(r) = 1/2 + r * (...) of degree 9: minimax for the relative
# error of 1 + expm1(r) with the leading 1/2 held exact (Lawson's iteration against mpmath at 40
# digits, then rounded to float64): 5.5e-18, 0.05 ulp, as accurate as the Taylor series of
# degree 13 it replaces (1/k!, k = 2..13: 5e-18) with two fmas and a multiplication fewer.
_Q_F64 = (
    0.5,
    0.16666666666666433,
    0.04166666666660374,
    0.008333333333500594,
    0.0013888888926893487,
    0.00019841269465287865,
    2.480150854827634e-05,
    2.7557641391645886e-06,
    2.762524477571264e-07,
    2.497832315047397e-08,
)
(_Q0, _Q1, _Q2, _Q3, _Q4, _Q5, _Q6, _Q7, _Q8, _Q9) = _Q_F64


# The polynomials are evaluated in Estrin's scheme, not Horner's: the exp loops are limited by
# how many dependent instructions the core can keep in flight, and Estrin shortens the chain of
# dependent multiply-adds from 4 to 2 (float32) and from 9 to 4 (float64).  Measured on AVX2
# (znver3): the float32 softmax exp loop went from 0.65 to 0.53 ns per element.


@callee(fastmath=ORDERED)
def _reduced_exp_f32(hi, lo):
    """``(q, kf, nf)`` with ``exp(hi + lo) ~= (1 + q) * 2**n``, ``q = expm1(r)`` on
    ``|r| <= ln(2)/2``, ``nf = n`` and ``kf = n + 1.5 * 2**23`` (``n`` in its low mantissa bits)."""
    kf = hi * _LOG2E_F32 + _ROUND_MAGIC_F32
    nf = kf - _ROUND_MAGIC_F32
    # (hi - n*LN2_HI) is exact; the two small terms are added to it last.
    r = (hi - nf * _LN2_HI_F32) + (lo - nf * _LN2_LO_F32)
    r2 = r * r
    p = (_P4_F32 * r2 + (_P3_F32 * r + _P2_F32)) * r2 + (_P1_F32 * r + _P0_F32)
    return p * r2 + r, kf, nf


@callee(fastmath=ORDERED)
def _reduced_exp_f64(hi, lo):
    """``(q, kf, nf)`` with ``exp(hi + lo) ~= (1 + q) * 2**n``, ``q = expm1(r)`` on
    ``|r| <= ln(2)/2``, ``nf = n`` and ``kf = n + 1.5 * 2**52`` (``n`` in its low mantissa bits)."""
    kf = hi * _LOG2E_F64 + _ROUND_MAGIC_F64
    nf = kf - _ROUND_MAGIC_F64
    r = (hi - nf * _LN2_HI_F64) + (lo - nf * _LN2_LO_F64)
    r2 = r * r
    r4 = r2 * r2
    low = (_Q3 * r + _Q2) * r2 + (_Q1 * r + _Q0)
    high = (_Q7 * r + _Q6) * r2 + (_Q5 * r + _Q4)
    p = ((_Q9 * r + _Q8) * r4 + high) * r4 + low
    return p * r2 + r, kf, nf


@callee(fastmath=ORDERED)
def exp_hilo_f32(hi, lo):
    """``exp(hi + lo)`` for float32 ``hi``, ``lo`` with ``|lo| <= ulp(hi)``; see the module docstring."""
    q, _, nf = _reduced_exp_f32(hi, lo)
    # 2**n in two halves, each a normal float32 for every n in [-150, 128]; (1 + q) * 2**n1
    # is rounded once (an fma), the product with 2**(n - n1) rounds once more only if subnormal.
    n1 = trunc(nf * np.float32(0.5))
    s1 = pow2_of_integral(n1)
    y = (q * s1 + s1) * pow2_of_integral(nf - n1)
    if hi < _LOW_F32:
        y = _ZERO_F32
    if hi > _HIGH_F32:
        y = _INF_F32
    return y


@callee(fastmath=ORDERED)
def exp_hilo_f64(hi, lo):
    """``exp(hi + lo)`` for float64 ``hi``, ``lo`` with ``|lo| <= ulp(hi)``; see the module docstring."""
    q, _, nf = _reduced_exp_f64(hi, lo)
    n1 = trunc(nf * 0.5)
    s1 = pow2_of_integral(n1)
    y = (q * s1 + s1) * pow2_of_integral(nf - n1)
    if hi < _LOW_F64:
        y = 0.0
    if hi > _HIGH_F64:
        y = np.inf
    return y


# exp(hi + lo) for hi <= 0, the only arguments softmax needs.  The result is then at most 1,
# so instead of scaling by 2**n in two steps (needed near overflow) it is scaled by 2**(n + B),
# a normal number for every n in the range: ``(1 + q) * 2**(n + B)`` is one fma, rounded once,
# and the result ``exp(hi + lo) * 2**B`` is normal (or +0 below _LOW).  2**(n + B) is built from
# the bits of ``kf`` directly (no float-to-integer conversion, which AVX2 lacks for float64).
#
# The scaled form is what the softmax kernels store: a softmax divides its exps by their sum, so
# the factor 2**B cancels and multiplying it away would be one more instruction per element in a
# compute-bound loop (in place, 4096x4096 float32 on Zen 5: 3.20 -> 2.99 ms without it).  Sums
# of scaled exps are unscaled exactly by ``unscaled`` where the sum itself is needed (logs and
# weighted sums); the product of a scaled exp and ``1/s`` is the only rounding of a probability
# that is subnormal, which an unscaled exp would have rounded once more.
SCALE_LOG2_F32 = 64
SCALE_LOG2_F64 = 600
_BIAS_F32 = np.float32(SCALE_LOG2_F32)
_BIAS_F64 = float(SCALE_LOG2_F64)


@callee(fastmath=ORDERED)
def scaled_exp_nonpositive_hilo_f32(hi, lo):
    """``exp(hi + lo) * 2**64`` for float32 ``hi <= 0`` (normal, or +0 below _LOW_F32);
    unspecified for ``hi > 0``."""
    q, kf, _ = _reduced_exp_f32(hi, lo)
    s = pow2_of_rounded(kf, _BIAS_F32)
    y = q * s + s
    if hi < _LOW_F32:
        y = _ZERO_F32
    return y


@callee(fastmath=ORDERED)
def scaled_exp_nonpositive_hilo_f64(hi, lo):
    """``exp(hi + lo) * 2**600`` for float64 ``hi <= 0`` (normal, or +0 below _LOW_F64);
    unspecified for ``hi > 0``."""
    q, kf, _ = _reduced_exp_f64(hi, lo)
    s = pow2_of_rounded(kf, _BIAS_F64)
    y = q * s + s
    if hi < _LOW_F64:
        y = 0.0
    return y


# The same for a ``_vector.Vector`` of arguments, lane by lane: the operations of the scalar
# functions above, with the underflow test a select.


@callee(fastmath=ORDERED)
def scaled_exp_nonpositive_lanes_f32(hi, lo):
    """``scaled_exp_nonpositive_hilo_f32`` of each lane of float32 vectors."""
    q, kf, _ = _reduced_exp_f32(hi, lo)
    s = pow2_of_rounded(kf, _BIAS_F32)
    return select(hi < _LOW_F32, _ZERO_F32, q * s + s)


@callee(fastmath=ORDERED)
def scaled_exp_nonpositive_lanes_f64(hi, lo):
    """``scaled_exp_nonpositive_hilo_f64`` of each lane of float64 vectors."""
    q, kf, _ = _reduced_exp_f64(hi, lo)
    s = pow2_of_rounded(kf, _BIAS_F64)
    return select(hi < _LOW_F64, 0.0, q * s + s)


def scaled_exp_hilo_nonpositive(hi, lo):
    """``exp(hi + lo) * 2**B`` for ``hi <= 0``, float32 (B = 64) or float64 (B = 600) by type
    (numba only)."""
    raise NotImplementedError("scaled_exp_hilo_nonpositive is callable from numba-compiled code only")


@callee_overload(scaled_exp_hilo_nonpositive, inline="never")
def _scaled_exp_hilo_nonpositive_overload(hi, lo):
    if hi == types.float32 and lo == types.float32:
        return lambda hi, lo: scaled_exp_nonpositive_hilo_f32(hi, lo)
    if hi == types.float64 and lo == types.float64:
        return lambda hi, lo: scaled_exp_nonpositive_hilo_f64(hi, lo)
    if isinstance(hi, Vector) and hi == lo:
        if hi.dtype == types.float32:
            return lambda hi, lo: scaled_exp_nonpositive_lanes_f32(hi, lo)
        return lambda hi, lo: scaled_exp_nonpositive_lanes_f64(hi, lo)
    return None


def unscaled(total, like):
    """``total * 2**-B`` (exact, float64) for a sum of scaled exps of the float type of ``like``,
    a float or an array (numba only)."""
    raise NotImplementedError("unscaled is callable from numba-compiled code only")


@callee_overload(unscaled)
def _unscaled_overload(total, like):
    if isinstance(like, types.Array):
        like = like.dtype
    if like == types.float32:
        return lambda total, like: total * 2.0**-SCALE_LOG2_F32
    if like == types.float64:
        return lambda total, like: total * 2.0**-SCALE_LOG2_F64
    return None


def exp_hilo(hi, lo):
    """``exp(hi + lo)`` for a float32 or float64 pair; chooses the kernel by type (numba only)."""
    raise NotImplementedError("exp_hilo is callable from numba-compiled code only")


@callee_overload(exp_hilo, inline="never")
def _exp_hilo_overload(hi, lo):
    if hi == types.float32 and lo == types.float32:
        return lambda hi, lo: exp_hilo_f32(hi, lo)
    if hi == types.float64 and lo == types.float64:
        return lambda hi, lo: exp_hilo_f64(hi, lo)
    return None
