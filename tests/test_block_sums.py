"""The float64 block sum of the softmax kernels (``softmax._accumulate`` on float64 exps).

Each block of at most ``_BLOCK`` terms in [0, 2**B] (exps scaled by the fixed power of two
``2**B`` that ``_exp.scaled_exp_nonpositive_hilo_f64`` returns) is split against a fixed power
of two so that its high parts add up exactly in any order and its low parts with an error below
2**-78; the blocks are then combined with a compensated sum.  The result must therefore be the
exact sum rounded once: these tests compare it with ``math.fsum`` (correctly rounded) and allow
1 ulp, where a plain vectorised float64 sum is off by several ulp on the same data.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

numba = pytest.importorskip("numba")

from softmaxkit._kernels import softmax as kernels  # noqa: E402
from softmaxkit._kernels._exp import SCALE_LOG2_F64  # noqa: E402

SCALE = 2.0**SCALE_LOG2_F64  # the kernels sum exps times this (exact: a power of two)


@numba.njit(cache=False)
def _blocked_sum(y):
    total = 0.0
    compensation = 0.0
    for start in range(0, y.size, kernels._BLOCK):
        total, compensation = kernels._accumulate(total, compensation, y[start : start + kernels._BLOCK])
    return total + compensation


def _ulps_off(got: float, exact: float) -> float:
    return abs(got - exact) / math.ulp(exact)


@pytest.mark.parametrize("n", [1, 7, 511, 512, 513, 4096, 100_003])
def test_float64_block_sum_is_the_rounded_exact_sum(n, rng):
    for scale in (0.5, 3.0, 30.0):
        y = np.exp(-np.abs(rng.standard_normal(n)) * scale)
        y[rng.integers(0, n)] = 1.0  # a softmax row always has its max's term, exactly 1
        y *= SCALE
        assert _ulps_off(_blocked_sum(y), math.fsum(y)) <= 1.0


def test_float64_block_sum_where_a_plain_sum_drifts(rng):
    # many terms just below 1 and tiny ones: each addition of a plain running sum rounds
    y = np.concatenate([1.0 - rng.random(50_000) * 2**-30, rng.random(50_000) * 1e-12, [1.0]]) * SCALE
    rng.shuffle(y)
    exact = math.fsum(y)
    assert _ulps_off(_blocked_sum(y), exact) <= 1.0
    plain = 0.0
    for value in y:
        plain += value
    assert _ulps_off(plain, exact) > 1.0  # the data is hard enough to tell the two apart


def test_float64_block_sum_of_extremes():
    ones = np.full(kernels._BLOCK, SCALE)  # the largest block sum the split must hold exactly
    assert _blocked_sum(ones) == kernels._BLOCK * SCALE
    assert _blocked_sum(np.full(3 * kernels._BLOCK + 5, SCALE)) == (3 * kernels._BLOCK + 5) * SCALE
    # below the split's unit: kept in the low part (the smallest scaled exp is about 2**-475)
    tiny = np.array([1.0, 2**-475, 1e-140, 2**-60]) * SCALE
    assert _blocked_sum(tiny) == math.fsum(tiny)
    assert _blocked_sum(np.zeros(9)) == 0.0


def test_float64_block_sum_keeps_terms_below_the_leading_ulp():
    # 1 followed by 511 terms of 2**-54: each is lost when added to 1 alone (a plain sum, or the
    # split folded away by ``reassoc``, drops those in the accumulator that holds the 1 and is
    # ulps off); the split keeps them all in the low part and rounds once.
    y = np.concatenate([[1.0], np.full(kernels._BLOCK - 1, 2.0**-54)]) * SCALE
    assert _blocked_sum(y) == math.fsum(y)
    assert _blocked_sum(y[::-1].copy()) == math.fsum(y)
