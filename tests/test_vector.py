"""The explicit SIMD vectors of ``_kernels._vector``: the scalar kernels' code run on lanes.

The column kernels' fused exp pass relies on two properties checked here: each lane's result is
bit for bit what the scalar code gives for that element, and partial vectors (a row's last
columns) neither read nor write past the lanes they are given.
"""

from __future__ import annotations

import numpy as np
import pytest

numba = pytest.importorskip("numba")

from softmaxkit._kernels._exp import scaled_exp_hilo_nonpositive  # noqa: E402
from softmaxkit._kernels._intrinsics import fma, nan_max  # noqa: E402
from softmaxkit._kernels._scalar import scaled_shifted_exp, two_sum  # noqa: E402
from softmaxkit._kernels._vector import (  # noqa: E402
    LANES,
    all_lanes,
    lanes_of,
    load,
    load_part,
    select,
    splat,
    store,
    store_part,
    widen_high,
    widen_low,
)

DTYPES = [np.float32, np.float64]


def _lanes(dtype):
    return LANES[numba.from_dtype(np.dtype(dtype))]


@numba.njit(cache=False)
def _vector_exps(hi, lo, out):
    lanes = lanes_of(hi)
    for i in range(0, hi.size, lanes):
        store(out, i, scaled_exp_hilo_nonpositive(load(hi, i), load(lo, i)))


@numba.njit(cache=False)
def _scalar_exps(hi, lo, out):
    for i in range(hi.size):
        out[i] = scaled_exp_hilo_nonpositive(hi[i], lo[i])


def _exp_arguments(dtype, rng, n):
    low = -110.0 if dtype == np.float32 else -750.0
    hi = np.concatenate([
        -rng.uniform(0, -low, n - 64),
        np.array([0.0, -0.0, -np.inf, low, low / 2, -1e-30, -1e-7], dtype),
        -rng.uniform(0, 1e-3, 57),
    ]).astype(dtype)
    # a residual within half an ulp of hi, as two_sum leaves it
    lo = (rng.uniform(-0.5, 0.5, hi.size) * np.spacing(np.abs(hi).astype(dtype))).astype(dtype)
    lo[~np.isfinite(hi)] = 0.0
    return hi, lo


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_vector_exp_is_the_scalar_exp_bit_for_bit(dtype, rng):
    hi, lo = _exp_arguments(dtype, rng, 4096)
    vector, scalar = np.empty_like(hi), np.empty_like(hi)
    _vector_exps(hi, lo, vector)
    _scalar_exps(hi, lo, scalar)
    assert np.array_equal(vector.view(np.uint8), scalar.view(np.uint8))
    assert (scalar[hi == -np.inf] == 0).all() and (scalar > 0).sum() > hi.size // 2  # not trivial


@numba.njit(cache=False)
def _shifted_exps_lanes(v, m, t_hi, t_lo, out):
    lanes = lanes_of(v)
    for i in range(0, v.size, lanes):
        store(out, i, scaled_shifted_exp(load(v, i), load(m, i), t_hi, t_lo))


@numba.njit(cache=False)
def _shifted_exps_scalar(v, m, t_hi, t_lo, out):
    for i in range(v.size):
        out[i] = scaled_shifted_exp(v[i], m[i], t_hi, t_lo)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_shifted_exp_with_two_sum_and_temperature_bit_for_bit(dtype, rng):
    # x - max split exactly (TwoSum), times a double-word inverse temperature: the arithmetic
    # operators, unary minus and fma with scalar operands broadcast, as in the column kernels.
    n = 2048
    m = (rng.standard_normal(n) * 50).astype(dtype)
    v = (m - np.abs(rng.standard_normal(n) * 30)).astype(dtype)
    v[:5] = m[:5]
    v[5] = -np.inf
    for t_hi, t_lo in ((None, None), (dtype(1 / 0.7), dtype(1 / 0.7 - float(dtype(1 / 0.7))))):
        vector, scalar = np.empty_like(v), np.empty_like(v)
        _shifted_exps_lanes(v, m, t_hi, t_lo, vector)
        _shifted_exps_scalar(v, m, t_hi, t_lo, scalar)
        assert np.array_equal(vector.view(np.uint8), scalar.view(np.uint8)), t_hi


@numba.njit(cache=False)
def _arithmetic(a, b, out):
    lanes = lanes_of(a)
    x, y = load(a, 0), load(b, 0)
    c = a[0]
    s, e = two_sum(x, y)
    store(out, 0, s)
    store(out, lanes, e)
    store(out, 2 * lanes, (x - c) * c / y + c)
    store(out, 3 * lanes, fma(x, c, -y))
    store(out, 4 * lanes, nan_max(x, y))
    store(out, 5 * lanes, select(x < y, x, c))
    store(out, 6 * lanes, select(x >= c, splat(c), y))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_arithmetic_matches_numpy_lane_by_lane(dtype, rng):
    lanes = _lanes(dtype)
    a = (rng.standard_normal(lanes) * 10).astype(dtype)
    b = (rng.standard_normal(lanes) * 10).astype(dtype)
    b[1] = np.nan
    out = np.empty(7 * lanes, dtype)
    _arithmetic(a, b, out)
    rows = out.reshape(7, lanes)
    c = a[0]
    s = a + b
    bb = s - a
    with np.errstate(invalid="ignore"):
        assert np.array_equal(rows[0], s, equal_nan=True)
        assert np.array_equal(rows[1], (a - (s - bb)) + (b - bb), equal_nan=True)
        assert np.array_equal(rows[2], (a - c) * c / b + c, equal_nan=True)
        exact = (a.astype(np.longdouble) * c - b).astype(dtype)  # fma: one rounding
        assert np.array_equal(rows[3], exact, equal_nan=True)
        assert np.array_equal(rows[4], np.maximum(a, b), equal_nan=True)  # NaN propagates
        assert np.array_equal(rows[5], np.where(a < b, a, c), equal_nan=True)
        assert np.array_equal(rows[6], np.where(a >= c, c, b), equal_nan=True)


@numba.njit(cache=False)
def _widen(a, wide):
    v = load(a, 0)
    store(wide, 0, widen_low(v))
    store(wide, 8, widen_high(v))


def test_widen_is_exact(rng):
    a = (rng.standard_normal(16) * 1e3).astype(np.float32)
    a[3] = np.float32(1 + 2**-23)  # all 24 significant bits
    wide = np.empty(16)
    _widen(a, wide)
    assert np.array_equal(wide, a.astype(np.float64))


@numba.njit(cache=False)
def _all_finite_differences(a, zero):
    v = load(a, 0)
    return all_lanes(v - v == zero)


@numba.njit(cache=False)
def _choose(flags, a, b):
    # select on a bool and scalars: the scalar form one function shares with vectors
    out = np.empty(flags.size)
    for i in range(flags.size):
        out[i] = select(flags[i], a[i], b[i])
    return out


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_all_lanes_and_scalar_select(dtype, rng):
    # all_lanes is the small-K tiles' test that every column's max is finite (x - x == 0)
    lanes = _lanes(dtype)
    a = rng.standard_normal(lanes).astype(dtype)
    assert _all_finite_differences(a, dtype(0))
    for lane in (0, lanes // 2, lanes - 1):
        for special in (np.inf, -np.inf, np.nan):
            b = a.copy()
            b[lane] = special
            assert not _all_finite_differences(b, dtype(0)), (lane, special)
    flags = np.array([True, False, True])
    np.testing.assert_array_equal(_choose(flags, np.array([1.0, 2.0, np.nan]), np.array([4.0, 5.0, 6.0])), [1.0, 5.0, np.nan])


@numba.njit(cache=False)
def _partial_copy(src, dst, start, count):
    store_part(dst, start, load_part(src, start, count), count)


@numba.njit(cache=False)
def _partial_load(src, start, count, out):
    store(out, 0, load_part(src, start, count))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_partial_vectors_touch_only_their_lanes(dtype):
    lanes = _lanes(dtype)
    src = np.arange(3 * lanes, dtype=dtype) + 1
    for start in (0, 1, lanes + 3):
        for count in range(-1, lanes + 1):
            dst = np.full(3 * lanes, np.nan, dtype)
            _partial_copy(src, dst, start, count)
            n = max(0, min(count, lanes))
            assert np.array_equal(dst[start:start + n], src[start:start + n])
            assert np.isnan(np.delete(dst, np.arange(start, start + n))).all(), (start, count)
            got = np.empty(lanes, dtype)
            _partial_load(src, start, count, got)
            assert np.array_equal(got[:n], src[start:start + n]) and (got[n:] == 0).all()


@numba.njit(cache=False)
def _copy_3d(src, dst, o, k, j):
    store(dst, (o, k, j), load(src, (o, k, j)) * 2.0)


def test_tuple_indices_address_the_row(rng):
    src = rng.standard_normal((2, 3, 40))
    dst = np.zeros_like(src)
    _copy_3d(src, dst, 1, 2, 5)
    expected = np.zeros_like(src)
    expected[1, 2, 5:13] = src[1, 2, 5:13] * 2.0
    assert np.array_equal(dst, expected)


def test_mixed_precision_is_refused():
    # a float64 scalar with float32 lanes is a typing error, not a silent promotion
    @numba.njit(cache=False)
    def mixed(a, out):
        store(out, 0, load(a, 0) * 2.0)

    with pytest.raises(numba.core.errors.TypingError):
        mixed(np.ones(16, np.float32), np.ones(16, np.float32))
