"""Scalar building blocks shared by the softmax kernels: error-free transformations and casts.

Everything here is compiled with the ``ORDERED`` flag set: the TwoSum/TwoProd residuals are
exactly the quantities that ``reassoc`` would simplify to zero.  LLVM inlines these into the
vectorised loops of the callers and keeps each instruction's own flags.
"""

from __future__ import annotations

import math

import numpy as np
from numba import types

from ._exp import scaled_exp_hilo_nonpositive
from ._fastmath import ORDERED, callee, callee_overload
from ._intrinsics import fma
from ._vector import Vector, filled, narrowed, widened


def cast_like(value, like):
    """``value`` converted to the float type of ``like``, a float, an array or a ``Vector`` (numba
    only)."""
    raise NotImplementedError("cast_like is callable from numba-compiled code only")


@callee_overload(cast_like)
def _cast_like_overload(value, like):
    if isinstance(like, (types.Array, Vector)):
        like = like.dtype
    if like == types.float32:
        return lambda value, like: np.float32(value)
    if like == types.float64:
        return lambda value, like: np.float64(value)
    return None


@callee(fastmath=ORDERED)
def two_sum(a, b):
    """``(s, e)`` with ``s = fl(a + b)`` and ``a + b == s + e`` exactly (Knuth's TwoSum)."""
    s = a + b
    bb = s - a
    e = (a - (s - bb)) + (b - bb)
    return s, e


@callee(fastmath=ORDERED)
def compensated_add(total, compensation, value):
    """Neumaier-style running sum: ``total + compensation`` carries the sum of the values
    added so far with an error independent of their number (Ogita, Rump & Oishi's Sum2)."""
    total, error = two_sum(total, value)
    return total, compensation + error


@callee(fastmath=ORDERED)
def _scaled_difference(v, m, t_hi, t_lo):
    d_hi, d_lo = two_sum(v, -m)
    p = d_hi * t_hi
    p_err = fma(d_hi, t_hi, -p)
    return p, p_err + (d_hi * t_lo + d_lo * t_hi)


def scaled_difference(v, m, t_hi, t_lo):
    """``(v - m) * (t_hi + t_lo)`` as an unevaluated pair ``hi + lo`` (numba only).

    ``v - m`` is split exactly by TwoSum, then multiplied by the inverse temperature held as a
    double-word ``t_hi + t_lo``; ``t_hi = t_lo = None`` means exactly 1 (the pair is then
    exact and no multiplication is compiled).  Otherwise the pair is accurate to about
    ``2**-2p`` relative, far below one ulp of the result.
    """
    raise NotImplementedError("scaled_difference is callable from numba-compiled code only")


@callee_overload(scaled_difference)
def _scaled_difference_overload(v, m, t_hi, t_lo):
    if isinstance(t_hi, types.NoneType):
        return lambda v, m, t_hi, t_lo: two_sum(v, -m)
    return lambda v, m, t_hi, t_lo: _scaled_difference(v, m, t_hi, t_lo)


def signed(value, sign):
    """``sign * value``; ``sign=None`` means +1 and compiles to nothing (numba only)."""
    raise NotImplementedError("signed is callable from numba-compiled code only")


@callee_overload(signed)
def _signed_overload(value, sign):
    if isinstance(sign, types.NoneType):
        return lambda value, sign: value
    return lambda value, sign: value * sign


@callee(fastmath=ORDERED)
def scaled_shifted_exp(v, m, t_hi, t_lo):
    """``exp((v - m) / T) * 2**B`` for ``v <= m`` with ``v - m`` taken exactly; +0 for
    ``v = -inf``.  ``2**B`` is the dtype's fixed power of two (see ``_exp``): it cancels in a
    softmax's ``e / s``, and ``_exp.unscaled`` removes it from a sum.

    (For ``v > m`` the result is unspecified: callers only use it for masked-out entries,
    which they replace.)
    """
    hi, lo = scaled_difference(v, m, t_hi, t_lo)
    return scaled_exp_hilo_nonpositive(hi, lo)


@callee(fastmath=ORDERED)
def shifted_log_probability(v, m, t_hi, t_lo, log_sum_hi, log_sum_lo):
    """``(v - m) / T - log_sum`` rounded once, where ``log_sum = log_sum_hi + log_sum_lo``.

    The subtraction of the two leading parts is exact when they are close (Sterbenz), which is
    where the result is small and cancellation would otherwise cost accuracy.
    """
    hi, lo = scaled_difference(v, m, t_hi, t_lo)
    y = (hi - log_sum_hi) + (lo - log_sum_lo)
    if hi == -np.inf:
        y = hi
    return y


def target(x, out):
    """The array results go to: ``out``, or ``x`` itself when ``out`` is None (numba only)."""
    raise NotImplementedError("target is callable from numba-compiled code only")


@callee_overload(target)
def _target_overload(x, out):
    # Chosen at typing time, so a read-only ``x`` never meets a setitem when ``out`` is given
    # (numba's branch pruning does not remove ``if out is None: x[i] = ...`` for array ``out``).
    if out is None or isinstance(out, types.NoneType):
        return lambda x, out: x
    return lambda x, out: out


def given(value):
    """Whether ``value`` is not None, decided when numba types it: a constant, so that LLVM drops
    the code on the other side of a branch on it, even in an ``inline="always"`` callee (numba
    only)."""
    raise NotImplementedError("given is callable from numba-compiled code only")


@callee_overload(given)
def _given_overload(value):
    if isinstance(value, types.NoneType):
        return lambda value: False
    return lambda value: True


@callee(fastmath=ORDERED)
def _exp_of_double_word(hi, lo):
    """``exp(hi + lo)`` for ``|lo| <= ulp(hi)/2``: libm's exp of ``hi`` (within about 0.5 ulp,
    against the vector kernel's 1) with the first-order term of ``lo``."""
    e = math.exp(hi)
    return fma(e, lo, e)


def exp_of_difference(a, b):
    """``exp(a - b)`` as a float64 with ``a - b`` taken exactly (numba only).

    float32 operands subtract exactly in float64; float64 operands are split by TwoSum and
    exponentiated by libm (scalar: this is for merging per-chunk states, where the factor's
    error reaches every output of the chunk).
    """
    raise NotImplementedError("exp_of_difference is callable from numba-compiled code only")


@callee_overload(exp_of_difference)
def _exp_of_difference_overload(a, b):
    if a == types.float64 and b == types.float64:
        return lambda a, b: _exp_of_double_word(*two_sum(a, -b))
    if a == types.float32 and b == types.float32:
        return lambda a, b: math.exp(np.float64(a) - np.float64(b))
    return None


def pair_like(hi, lo, like):
    """The float64 double-word ``hi + lo`` as a pair in the float type of ``like`` (numba only):
    itself for float64, ``(hi', lo')`` with ``hi' + lo' ~= hi + lo`` to 2**-48 for float32; lane
    by lane for a float64 ``Vector`` ``hi`` (``lo`` a vector or a float) and a float32 ``like``
    (an array, a float type or a ``Vector``)."""
    raise NotImplementedError("pair_like is callable from numba-compiled code only")


@callee_overload(pair_like)
def _pair_like_overload(hi, lo, like):
    if isinstance(like, (types.Array, Vector)):
        like = like.dtype
    if isinstance(hi, Vector) and hi.dtype == types.float64 and like == types.float32:

        def pair_of_lanes(hi, lo, like):
            head = narrowed(hi)
            return head, narrowed((hi - widened(head)) + lo)

        return pair_of_lanes
    if isinstance(hi, Vector) and hi.dtype == types.float64 and like == types.float64:
        if isinstance(lo, Vector):
            return lambda hi, lo, like: (hi, lo)
        return lambda hi, lo, like: (hi, filled(np.float64(lo), hi))
    if like == types.float64:
        return lambda hi, lo, like: (np.float64(hi), np.float64(lo))
    if like == types.float32:

        def pair(hi, lo, like):
            head = np.float32(hi)
            return head, np.float32((hi - np.float64(head)) + lo)

        return pair
    return None
