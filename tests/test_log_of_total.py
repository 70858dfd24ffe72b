"""``_log.log_of_total``: the log of a softmax sum ``k + rest`` (``k`` entries at the max, ``rest``
the sum of the others), taken by every log_softmax/logsumexp kernel, against mpmath."""

import mpmath
import numba
import numpy as np
import pytest

from softmaxkit._kernels._log import log_of_total


@numba.njit
def _log_of_totals(k, rest, out):
    for i in range(k.size):
        out[i] = log_of_total(k[i], rest[i])


def _ulps(got, k, rest):
    """|got - log(k + rest)| in ulps of the exact value (200-bit mpmath)."""
    mpmath.mp.prec = 200
    errors = []
    for g, kk, r in zip(got, k, rest):
        # (log1p: at 200 bits, 1 + 5e-324 would round to 1)
        exact = mpmath.log(float(kk)) + mpmath.log1p(mpmath.mpf(float(r)) / float(kk))
        errors.append(float(abs(mpmath.mpf(float(g)) - exact) / mpmath.mpf(float(np.spacing(float(exact))))))
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
