"""Masked rows' max, a vector at a time (``_kernels.softmax._masked_max_ignoring_nan``, reading
the mask 16 or 8 entries at once with ``_vector.load_mask``).

It must be the max over the unmasked entries that are not NaN (-inf where there are none) for
any row length (whole vectors and a partial last one), any alignment of the row and its mask,
either dtype and sign; masked entries, NaN or infinite, must not count; and through the public
functions a masked NaN must change nothing while an unmasked one makes the row NaN.
"""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit

import softmaxkit as sk
from naive import assert_matches, softmax_ref
from softmaxkit._kernels.softmax import _masked_max_ignoring_nan


@njit
def _row_maxes(x, mask, sign):
    out = np.empty(x.shape[0], x.dtype)
    for r in range(x.shape[0]):
        out[r] = _masked_max_ignoring_nan(x[r], mask[r], sign)
    return out


def _expected_maxes(x, mask, sign):
    v = x if sign is None else x * sign
    kept = np.where(mask & ~np.isnan(v), v, -np.inf)
    return kept.max(axis=1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 7, 8, 9, 15, 16, 17, 31, 33, 100, 1000])
@pytest.mark.parametrize("negate", [False, True])
def test_the_masked_max_is_the_max_of_the_unmasked_entries(rng, dtype, n, negate):
    x = (rng.standard_normal((40, n)) * 10).astype(dtype)
    mask = rng.random((40, n)) < 0.6
    mask[0] = False  # nothing unmasked: -inf
    mask[1] = True
    x[2, ::3] = np.nan  # NaN, masked and not: skipped either way
    x[3, rng.integers(n)] = np.inf  # an infinity, masked or not
    x[4, rng.integers(n)] = -np.inf
    x[5] = np.nan  # every entry NaN: -inf
    mask[6] = False
    mask[6, -1] = True  # only the last (in the partial vector when n % lanes)
    sign = dtype(-1.0) if negate else None
    np.testing.assert_array_equal(_row_maxes(x, mask, sign), _expected_maxes(x, mask, sign))


@pytest.mark.parametrize("offset", range(0, 17, 3))
def test_rows_and_masks_at_any_alignment(rng, offset):
    """Rows of 37 (every row's start at another offset in its line), views starting ``offset``
    entries into their buffers."""
    x = rng.standard_normal(offset + 20 * 37).astype(np.float32)[offset:].reshape(20, 37)
    mask = (rng.random(offset + 20 * 37) < 0.5)[offset:].reshape(20, 37)
    np.testing.assert_array_equal(_row_maxes(x, mask, None), _expected_maxes(x, mask, None))


FUNCTIONS = {"softmax": sk.softmax, "log_softmax": sk.log_softmax, "softmin": sk.softmin}


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [10, 16, 100, 1000, 5000])
def test_masked_entries_count_for_nothing(rng, name, dtype, n):
    x = rng.standard_normal((30, n)).astype(dtype) * 5
    mask = rng.random((30, n)) < 0.7
    hidden = x.copy()
    hidden[~mask] = rng.choice([np.nan, np.inf, -np.inf, 1e30], size=int((~mask).sum()))
    hidden[7, 3] = np.nan  # an unmasked NaN: its row is NaN
    mask[7, 3] = True
    with np.errstate(invalid="ignore"):
        result = FUNCTIONS[name](hidden, where=mask)
    clean = np.where(mask, x, 0.0)
    clean[7, 3] = np.nan
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(result, FUNCTIONS[name](clean, where=mask))
    ordinary = np.arange(30) != 7
    log = name == "log_softmax"
    expected = softmax_ref(clean[ordinary], where=mask[ordinary], log=log, negate=name == "softmin")
    assert_matches(result[ordinary], expected, log=log)
    assert np.isnan(result[7][mask[7]]).all()
