"""Vectorisable natural logarithms (``log``, ``log1p``) for float32 and float64.

numba's ``math.log``/``math.log1p`` are scalar libm calls that do not vectorise here (no SVML).
These are branch-free (every special case is a select at the end), so a loop over them compiles to
vector code.  Method (fdlibm/musl ``log1p``): ``u = 1 + x`` is split as ``u = m * 2**k`` with ``m``
in ``[sqrt(2)/2, sqrt(2))`` by integer arithmetic on the bits (:func:`log_reduce`), the rounding error
of ``1 + x`` is carried as ``c = err / u`` (Fast2Sum), and ``log(m)`` comes from ``s = f / (2 + f)``,
``f = m - 1``, ``log(m) = 2 atanh(s)`` with a minimax polynomial in ``s**2`` (4 terms for float32, 7
for float64).  When ``k == 0`` the argument is used as ``f`` directly, so small arguments lose
nothing.  Measured: below 1 ulp (``tests/foreach/test_foreach_accuracy.py``).

Used by the foreach kernels (``softmaxkit.foreach._vecmath`` re-exports them with log2 and log10)
and by the column kernels of log_softmax and logsumexp, which take one log per column.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from ._fastmath import ORDERED, callee
from ._vector import Vector, narrow_halves, select, widen_high, widen_low

F32 = np.float32

_JIT = {"fastmath": ORDERED, "error_model": "numpy"}


@intrinsic
def log_reduce(typingctx, u):
    """``(m, k)`` with ``u = m * 2**k``, ``m`` in ``[sqrt(2)/2, sqrt(2))``, ``k`` as a float; lane
    by lane for a ``_vector.Vector`` ``u``.

    Valid for positive normal finite ``u``; other inputs give garbage that callers select away.
    Integer arithmetic is done at the float's own width so the loop keeps its vector width.
    """
    if not isinstance(u, (types.Float, Vector)):
        return None

    def codegen(context, builder, signature, args):
        llty = context.get_value_type(signature.args[0])
        lanes = llty.count if isinstance(llty, ir.VectorType) else None
        element = llty.element if lanes else llty
        if element == ir.FloatType():
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
        if lanes:
            ity = ir.VectorType(ity, lanes)

        def constant(value):
            return ir.Constant(ity, [value] * lanes if lanes else value)

        bits = builder.bitcast(args[0], ity)
        # Adding (1.0 - sqrt(2)/2) in bit space moves the exponent boundary to sqrt(2)/2.
        bits = builder.add(bits, constant(one - sqrt_half))
        k = builder.sub(builder.ashr(bits, constant(shift)), constant(bias))
        kf = builder.sitofp(k, llty)
        mbits = builder.add(builder.and_(bits, constant(mask)), constant(sqrt_half))
        m = builder.bitcast(mbits, llty)
        return context.make_tuple(builder, signature.return_type, [m, kf])

    return types.UniTuple(u, 2)(u), codegen


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
_LN2_F64 = float(np.log(2.0))


@callee(**_JIT)
def _log_poly_f32(f):
    """``(hfsq, tail)`` with ``log(1 + f) = f - hfsq + tail``, for ``f`` in ``[-0.293, 0.414]``."""
    s = f / (F32(2.0) + f)
    z = s * s
    w = z * z
    r = z * (_LG1_F32 + w * _LG3_F32) + w * (_LG2_F32 + w * _LG4_F32)
    hfsq = F32(0.5) * f * f
    return hfsq, s * (hfsq + r)


@callee(**_JIT)
def _log_poly_f64(f):
    """``(hfsq, tail)`` with ``log(1 + f) = f - hfsq + tail``, for ``f`` in ``[-0.293, 0.414]``."""
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    t1 = w * (_LG2_F64 + w * (_LG4_F64 + w * _LG6_F64))
    t2 = z * (_LG1_F64 + w * (_LG3_F64 + w * (_LG5_F64 + w * _LG7_F64)))
    hfsq = 0.5 * f * f
    return hfsq, s * (hfsq + (t1 + t2))


@callee(**_JIT)
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


@callee(**_JIT)
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


@callee(**_JIT)
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


@callee(**_JIT)
def _log_parts_f64(x):
    sub = x < 2.2250738585072014e-308
    xs = x * 2.0**54 if sub else x
    m, dk = log_reduce(xs)
    if sub:
        dk = dk - 54.0
    f = m - 1.0
    hfsq, tail = _log_poly_f64(f)
    return dk, f, hfsq, tail


@callee(**_JIT)
def _log_specials(x, y):
    """The IEEE special cases shared by log, log2 and log10."""
    if x == 0:
        y = -np.inf
    if x == np.inf:
        y = x
    if not (x >= 0):  # x < 0 or NaN
        y = np.nan
    return y


@callee(**_JIT)
def log_f32(x):
    """Natural log for float32."""
    dk, f, hfsq, tail = _log_parts_f32(x)
    y = dk * _LN2_HI_F32 + (f - (hfsq - (tail + dk * _LN2_LO_F32)))
    return F32(_log_specials(x, y))


@callee(**_JIT)
def log_f64(x):
    """Natural log for float64."""
    dk, f, hfsq, tail = _log_parts_f64(x)
    y = dk * _LN2_HI_F64 + (f - (hfsq - (tail + dk * _LN2_LO_F64)))
    return _log_specials(x, y)


# The log of a softmax sum.  The log kernels hold ``s = k + rest``: ``k >= 1`` entries equal to the
# max (each term exactly 1) and the float64 sum ``rest >= 0`` of the others.  ``log(k) +
# log1p(rest / k)`` keeps a tail below float64's ulp of ``k`` (``logsumexp([0, -40])``), but costs
# four divisions and two logs; vectorised over a block of columns that was 4.6-5.7 ns a column
# (Xeon, 2 GHz, ``zmm``), more than the rest of a three-row column's log_softmax.  Here ``s`` is
# kept as a double-word instead: ``t + err = k + rest`` exactly (TwoSum), ``log(t)`` as
# ``log_f64`` takes it (``t >= 1``: normal, positive), and ``log(t + err) = log(t) + err / t`` to
# within ``(err / t)**2 / 2 < 2**-107``.  Two divisions: 2.0-2.4 ns a column; against mpmath at
# 200 bits, within 0.78 ulp on sums 1 + 1e-30 ... 4000 (the two-log form: 1.27).  Scalar (the
# rows' one log each) it replaces libm's log and log1p, so every path takes the same log.
# (``err / t`` needs little precision -- ``err`` is below an ulp of ``t`` -- but neither a float32
# reciprocal in its place nor one division shared with ``s = f / (2 + f)`` measured faster, in
# the block kernels' loop or in the small-K tiles.)


@callee(**_JIT)
def log_of_total(k, rest):
    """``log(k + rest)`` for float64 ``k >= 1`` and finite ``rest >= 0``, keeping ``rest``'s bits
    below the ulp of ``k``; NaN for a NaN ``rest`` (through ``err``: the reduction of a NaN is
    garbage).  Scalars, or ``_vector.Vector`` values lane by lane (the small-K column tiles)."""
    t = k + rest
    bb = t - k
    err = (k - (t - bb)) + (rest - bb)  # TwoSum: t + err == k + rest
    m, dk = log_reduce(t)
    f = m - 1.0
    hfsq, tail = _log_poly_f64(f)
    return dk * _LN2_HI_F64 + (f - (hfsq - (tail + (dk * _LN2_LO_F64 + err / t))))


# log_softmax's float32 columns need ``log(k + rest)`` only to float32's precision: a column's results
# are ``(v - m) - log s`` with ``v - m <= 0``, so ``|result| >= log s`` and an error of an ulp of
# ``log s`` is at most an ulp of the result (logsumexp's ``m + log s`` can cancel, so it keeps the
# float64 log).  ``k + rest = (1 + f) * 2**dk`` is reduced in float64 and the polynomial taken in
# float32, a 16-lane vector at a time in the small-K tiles (one division, against four float64
# 8-lane ones for ``log_of_total`` on the two halves).  No TwoSum is needed: below sqrt(2), ``k``
# is 1 and ``f`` is ``rest`` itself, every bit kept; above, ``log s >= log sqrt(2)`` and float64's
# rounding of ``k + rest`` is far below float32's ulp.  The polynomial's correction ``f - log(1 + f)``
# is small beside ``f``, which with ``dk ln 2`` is added in float64, so the one float32 rounding of
# ``f`` the polynomial sees costs little: within 0.74 float32 ulp of mpmath (the whole log in
# float32, ``f`` rounded first: 1.33; ``tests/test_log_of_total.py``).


#: where ``log_reduce`` moves to the next exponent: ``t < _SQRT2_F64`` means ``dk = 0`` for ``t >= 1``
_SQRT2_F64 = float(np.frombuffer(np.uint64(0x3FF6A09E667F3BCD).tobytes(), np.float64)[0])


@callee(**_JIT)
def _total_parts(k, rest):
    """``(f, dk)`` with ``k + rest = (1 + f) * 2**dk`` in float64 (scalars or vectors; ``k`` a
    whole number), ``f`` in ``[sqrt(2)/2 - 1, sqrt(2) - 1)``; exactly ``rest`` when ``dk = 0``
    (then ``k + rest < sqrt(2)``, so ``k = 1``).  A NaN ``rest`` fails the comparison and gives a
    NaN ``f`` (the reduction of a NaN is garbage)."""
    t = k + rest
    m, dk = log_reduce(t)
    return select(t >= _SQRT2_F64, m - 1.0, rest), dk


@callee(**_JIT)
def _log_correction_f32(f):
    """``f - log(1 + f)`` (= hfsq - tail) in float32, for float32 ``f`` as ``_total_parts`` (one
    division; scalars or vectors)."""
    hfsq, tail = _log_poly_f32(f)
    return hfsq - tail


@callee(**_JIT)
def log_of_total_f32(k, rest):
    """``log(k + rest)`` to float32 precision (see above), as a float32, for a float64 count
    ``k >= 1`` (a whole number) and finite ``rest >= 0``; NaN for a NaN ``rest``."""
    f, dk = _total_parts(k, rest)
    return F32(dk * _LN2_F64 + (f - np.float64(_log_correction_f32(F32(f)))))


@callee(**_JIT)
def log_of_totals_f32(k_low, rest_low, k_high, rest_high):
    """``log_of_total_f32`` of two float64 vectors' lanes, as one float32 vector (the low halves'
    lanes first, as ``narrow_halves``); bit for bit the scalar function's results, lane by lane."""
    f_low, dk_low = _total_parts(k_low, rest_low)
    f_high, dk_high = _total_parts(k_high, rest_high)
    correction = _log_correction_f32(narrow_halves(f_low, f_high))
    return narrow_halves(
        dk_low * _LN2_F64 + (f_low - widen_low(correction)), dk_high * _LN2_F64 + (f_high - widen_high(correction))
    )
