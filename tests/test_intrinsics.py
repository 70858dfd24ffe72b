"""The explicit-vector max of ``_kernels._intrinsics`` (the row kernels' max pass)."""

from __future__ import annotations

import numpy as np
import pytest

numba = pytest.importorskip("numba")

from softmaxkit._kernels._intrinsics import max_ignoring_nan  # noqa: E402


@numba.njit(cache=False)
def _max(x):
    return max_ignoring_nan(x)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_ignoring_nan_every_length_and_position(dtype, rng):
    # lengths around the vector width (16 / 8 lanes) times the four accumulators, and the tail
    for n in list(range(0, 140)) + [4096, 4099]:
        x = rng.standard_normal(n).astype(dtype)
        assert _max(x) == (x.max() if n else -np.inf), n
        for p in {0, n // 3, n - 1} if n else ():
            y = x.copy()
            y[p] = 100.0  # the max in every part of the loop
            assert _max(y) == 100.0, (n, p)
            y[p] = np.nan  # skipped, wherever it is
            assert _max(y) == (np.nanmax(y) if n > 1 else -np.inf), (n, p)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_ignoring_nan_special_values(dtype):
    assert _max(np.full(100, np.nan, dtype)) == -np.inf
    assert _max(np.full(100, -np.inf, dtype)) == -np.inf
    assert _max(np.array([-np.inf, np.nan, np.inf, 3.0], dtype)) == np.inf
    big = np.full(1000, -1.0, dtype)
    big[::7] = np.nan
    big[500] = np.finfo(dtype).max
    assert _max(big) == np.finfo(dtype).max
    assert _max(big[1:]) == np.finfo(dtype).max  # a view that starts off the vector alignment
