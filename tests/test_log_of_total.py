"""``_log.log_of_total``: the log of a softmax sum ``k + rest`` (``k`` entries at the max, ``rest``
the sum of the others), taken by every log_softmax/logsumexp kernel, against mpmath; and
``log_of_total_f32``, the same log to float32 precision that float32 log_softmax columns take."""

import mpmath
import numba
import numpy as np
import pytest

from softmaxkit._kernels._log import log_of_total, log_of_total_f32, log_of_totals_f32
from softmaxkit._kernels._vector import load, store


@numba.njit
def _log_of_totals(k, rest, out):
    for i in range(k.size):
        out[i] = log_of_total(k[i], rest[i])


def _ulps(got, k, rest):
    """|got - log(k + rest)| in ulps of the exact value in ``got``'s dtype (200-bit mpmath)."""
    mpmath.mp.prec = 200
    errors = []
    for g, kk, r in zip(got, k, rest):
        # (log1p: at 200 bits, 1 + 5e-324 would round to 1)
        exact = mpmath.log(float(kk)) + mpmath.log1p(mpmath.mpf(float(r)) / float(kk))
        ulp = float(np.spacing(got.dtype.type(float(exact))))
        errors.append(float(abs(mpmath.mpf(float(g)) - exact) / mpmath.mpf(ulp)))
    return np.array(errors)


def _cases():
    rng = np.random.default_rng(7)
    rest = np.concatenate([
        rng.random(2000) * 3,  # typical: a few terms below the max
        10.0 ** rng.uniform(-30, 0, 2000),  # tails far below the ulp of k
        rng.random(1000) * 4000,  # long rows
        1.0 - 10.0 ** rng.uniform(-16, -1, 500),  # totals just below 2 (a reduction boundary)
        np.sqrt(2.0) - 1.0 + rng.uniform(-1e-12, 1e-12, 500),  # around sqrt(2) (another)
        [0.0, 5e-324, 2.0**-1074 * 3, 2.0**-60, 1.0, 3.0],
    ])
    k = np.ones_like(rest)
    k[: rest.size // 2 : 3] = rng.integers(2, 50, k[: rest.size // 2 : 3].size)
    return k, rest


def test_within_one_ulp_of_mpmath():
    # Measured 0.75 ulp at most; libm's log(k) + log1p(rest / k), which it replaced, 1.27.  Below
    # 1 ulp leaves the kernels' 4-ulp float64 results their margin.
    k, rest = _cases()
    got = np.empty_like(rest)
    _log_of_totals(k, rest, got)
    assert _ulps(got, k, rest).max() < 1.0


@pytest.mark.parametrize("rest", [0.0, 1e-300, 4.25e-18, 2.0**-53, 2.0**-54])
def test_tail_below_the_ulp_of_one_is_kept(rest):
    # log(1 + rest) = rest for these: a sum 1 + rest rounded to 1 would give 0
    got = np.empty(1)
    _log_of_totals(np.ones(1), np.array([rest]), got)
    assert got[0] == pytest.approx(np.log1p(rest), rel=2**-52, abs=0)
    assert (got[0] == 0.0) == (rest == 0.0)


def test_nan_propagates():
    got = np.empty(2)
    _log_of_totals(np.array([1.0, 3.0]), np.array([np.nan, np.nan]), got)
    assert np.isnan(got).all()


@numba.njit
def _log_of_totals_f32(k, rest, out):
    for i in range(k.size):
        out[i] = log_of_total_f32(k[i], rest[i])


@numba.njit
def _log_of_totals_f32_by_vectors(k, rest, out):
    # 16 sums a vector: the low 8 lanes from k[i:i+8], the high from k[i+8:i+16], as the tiles hold them
    for i in range(0, k.size, 16):
        store(out, i, log_of_totals_f32(load(k, i), load(rest, i), load(k, i + 8), load(rest, i + 8)))


def _cases_f32():
    k, rest = _cases()
    rng = np.random.default_rng(11)
    more = np.concatenate([
        10.0 ** rng.uniform(-45, -30, 500),  # float32 subnormal and tiny logs
        rng.random(3000) * 0.5,  # k = 1, below and above sqrt(2) - 1
        np.sqrt(2.0) - 1.0 + rng.uniform(-1e-6, 1e-6, 1000),
    ])
    return np.concatenate([k, np.ones_like(more)]), np.concatenate([rest, more])


def test_float32_log_within_one_float32_ulp_of_mpmath():
    # Measured 0.74 float32 ulp at most: the float32 polynomial's error on the correction
    # f - log(1 + f) only (the leading f and dk ln 2 are added in float64).  A log_softmax column's
    # results are v - m - log s with |v - m - log s| >= log s, so this is at most as many ulps of
    # the result: inside the 4-ulp bound with the result's own rounding.
    k, rest = _cases_f32()
    got = np.empty(k.size, np.float32)
    _log_of_totals_f32(k, rest, got)
    assert _ulps(got, k, rest).max() < 0.8


def test_float32_log_keeps_tails_and_nan():
    k = np.array([1.0, 1.0, 1.0, 1.0, 3.0, 2.0])
    rest = np.array([0.0, 1e-30, 2.0**-60, np.nan, np.nan, 5e-324])
    got = np.empty(k.size, np.float32)
    _log_of_totals_f32(k, rest, got)
    assert got[0] == 0.0
    assert got[1] == np.float32(1e-30)  # log(1 + rest) = rest: the tail is the whole result
    assert got[2] == np.float32(2.0**-60)
    assert np.isnan(got[3]) and np.isnan(got[4])
    assert got[5] == np.float32(np.log(2.0))


def test_float32_log_of_vectors_is_the_scalar_one():
    # the small-K tiles take it 16 lanes at a time; the block kernels column by column: the same bits
    k, rest = _cases_f32()
    n = k.size - k.size % 16
    k, rest = np.ascontiguousarray(k[:n]), np.ascontiguousarray(rest[:n])
    scalar = np.empty(n, np.float32)
    vector = np.empty(n, np.float32)
    _log_of_totals_f32(k, rest, scalar)
    _log_of_totals_f32_by_vectors(k, rest, vector)
    np.testing.assert_array_equal(vector, scalar)
