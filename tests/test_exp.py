"""The vectorisable ``exp(hi + lo)`` kernels against float64 / long double references.

Tolerances: the Cephes float32 polynomial and the degree-13 Taylor float64 polynomial are each
measured at <= 1.01 ulp over their whole range (including subnormal results); the assertion
allows 1.5 ulp so that a change in evaluation order (e.g. ``reassoc`` creeping into the flag set,
which ../shared/KERNELS.md reports as ~5 ulp for float32 and ~200 ulp for float64) fails loudly while harmless
last-bit differences between LLVM versions do not.
"""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit

from softmaxkit._kernels._exp import (
    exp_hilo_f32,
    exp_hilo_f64,
    scaled_exp_nonpositive_hilo_f32,
    scaled_exp_nonpositive_hilo_f64,
    SCALE_LOG2_F32,
    SCALE_LOG2_F64,
)

EXP_ULP = 1.5


@njit(cache=True)
def _apply(f, hi, lo, out):
    for i in range(hi.size):
        out[i] = f(hi[i], lo[i])


def _ulps(actual, reference, dtype):
    rounded = reference.astype(dtype)
    spacing = np.spacing(np.abs(rounded)).astype(reference.dtype)
    # below the smallest normal the spacing is the subnormal step
    spacing = np.maximum(spacing, np.asarray(np.finfo(dtype).smallest_subnormal, reference.dtype))
    return np.abs(actual.astype(reference.dtype) - reference) / spacing


# (kernel, dtype, reference dtype, argument range, log2 of the factor the kernel multiplies by)
CASES = [
    (exp_hilo_f32, np.float32, np.float64, (-103.5, 88.5), 0),
    (scaled_exp_nonpositive_hilo_f32, np.float32, np.float64, (-103.5, 0.0), SCALE_LOG2_F32),
    (exp_hilo_f64, np.float64, np.longdouble, (-744.0, 709.0), 0),
    (scaled_exp_nonpositive_hilo_f64, np.float64, np.longdouble, (-744.0, 0.0), SCALE_LOG2_F64),
]


_IDS = dict(ids=lambda c: getattr(c, "__name__", None))


@pytest.mark.parametrize("kernel, dtype, wide, bounds, scale_log2", CASES, **_IDS)
def test_exp_hilo_within_ulp_bound(kernel, dtype, wide, bounds, scale_log2, rng):
    hi = np.concatenate([rng.uniform(*bounds, 200_000), rng.uniform(-1, min(bounds[1], 1), 50_000)]).astype(dtype)
    # a low part of up to half an ulp of hi, as TwoSum produces
    lo = (rng.uniform(-0.5, 0.5, hi.size) * np.spacing(np.abs(hi))).astype(dtype)
    out = np.empty_like(hi)
    _apply(kernel, hi, lo, out)
    reference = np.exp(hi.astype(wide) + lo.astype(wide)) * wide(2.0) ** scale_log2
    err = _ulps(out, reference, dtype)
    assert float(err.max()) <= EXP_ULP, f"{float(err.max()):.2f} ulp at hi={hi[np.argmax(err)]!r}"


@pytest.mark.parametrize("kernel, dtype, wide, bounds, scale_log2", CASES, **_IDS)
def test_exp_hilo_uses_the_low_part(kernel, dtype, wide, bounds, scale_log2):
    # exp(hi + lo) must differ from exp(hi) by the factor (1 + lo) when lo is a whole ulp
    hi = np.full(4, dtype(-20.0))
    lo = np.spacing(np.abs(hi)) * np.array([0, 64, -64, 1], dtype)
    out = np.empty_like(hi)
    _apply(kernel, hi, lo, out)
    reference = np.exp(hi.astype(wide) + lo.astype(wide)) * wide(2.0) ** scale_log2
    assert float(_ulps(out, reference, dtype).max()) <= EXP_ULP
    assert out[1] > out[0] > out[2]


@pytest.mark.parametrize("kernel, dtype, wide, bounds, scale_log2", CASES, **_IDS)
def test_exp_hilo_special_values(kernel, dtype, wide, bounds, scale_log2):
    hi = np.array([-np.inf, np.nan, 0.0, -0.0, -1e30], dtype)
    out = np.empty_like(hi)
    _apply(kernel, hi, np.zeros_like(hi), out)
    one = dtype(2.0) ** scale_log2
    assert out[0] == 0 and np.isnan(out[1]) and out[2] == one and out[3] == one and out[4] == 0


@pytest.mark.parametrize("kernel, dtype", [(exp_hilo_f32, np.float32), (exp_hilo_f64, np.float64)])
def test_exp_hilo_overflows_to_inf(kernel, dtype):
    hi = np.array([np.inf, 1e30, float(np.log(np.finfo(dtype).max)) * 1.01], dtype)
    out = np.empty_like(hi)
    _apply(kernel, hi, np.zeros_like(hi), out)
    assert np.all(out == np.inf)


@pytest.mark.parametrize("kernel, dtype, wide", [
    (exp_hilo_f32, np.float32, np.float64),
    (exp_hilo_f64, np.float64, np.longdouble),
])
def test_subnormal_results_round_once(kernel, dtype, wide):
    tiny = np.finfo(dtype).smallest_normal
    hi = np.log(np.geomspace(tiny / 2**20, tiny, 2000).astype(wide)).astype(dtype)
    out = np.empty_like(hi)
    _apply(kernel, hi, np.zeros_like(hi), out)
    # in the subnormal range the result's ulp is the fixed subnormal step
    assert float(_ulps(out, np.exp(hi.astype(wide)), dtype).max()) <= EXP_ULP


@pytest.mark.parametrize("kernel, dtype, low", [
    (scaled_exp_nonpositive_hilo_f32, np.float32, -103.9),
    (scaled_exp_nonpositive_hilo_f64, np.float64, -745.0),
], **_IDS)
def test_scaled_exp_is_normal_down_to_the_underflow_threshold(kernel, dtype, low, rng):
    # What the softmax kernels store, exp(hi + lo) * 2**B, is a normal number wherever exp
    # itself is above half the smallest subnormal (so it is rounded once, at full precision, even
    # where the probability it becomes is subnormal); below, +0.
    hi = rng.uniform(low, low + 20, 100_000).astype(dtype)
    out = np.empty_like(hi)
    _apply(kernel, hi, np.zeros_like(hi), out)
    assert np.all(out >= np.finfo(dtype).smallest_normal)
    below = np.array([low - 0.5, low - 50], dtype)
    _apply(kernel, below, np.zeros_like(below), out[:2])
    assert np.all(out[:2] == 0)


@pytest.mark.parametrize("dtype", ["f32", "f64"])
def test_polynomial_is_within_seven_hundredths_of_an_ulp(dtype):
    # The exp's p in expm1(r) ~= r + r**2 p(r), |r| <= ln(2)/2 (float32: degree 4, float64:
    # degree 9), its coefficients as rounded, evaluated exactly (mpmath) against mpmath's exp:
    # 0.061 and 0.050 ulp, leaving room for the evaluation's own rounding inside the 1.5 ulp
    # bound above (float32 degree 3 would be 1.8 ulp; float64 with the leading 1/2 left to the
    # fit and rounded, 0.099).
    mpmath = pytest.importorskip("mpmath")
    from softmaxkit._kernels import _exp

    if dtype == "f32":
        coefficients = [float(getattr(_exp, f"_P{i}_F32")) for i in range(5)]
        eps = 2.0**-24
    else:
        coefficients = list(_exp._Q_F64)
        eps = 2.0**-53
    with mpmath.workdps(40):
        half_range = mpmath.log(2) / 2 * mpmath.mpf("1.0005")
        worst = mpmath.mpf(0)
        for i in range(2001):
            r = half_range * mpmath.cos(mpmath.pi * i / 2000)
            p = mpmath.polyval([mpmath.mpf(c) for c in reversed(coefficients)], r)
            exact = mpmath.exp(r)
            worst = max(worst, abs(1 + r + r * r * p - exact) / exact)
    assert worst <= 0.07 * eps, f"{float(worst / eps):.3f} ulp"
