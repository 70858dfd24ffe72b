"""The packed kernels: many unmasked float32 rows of at most ``PACKED_ROW`` (64) elements, a group
of 16 rows at a time (8 of rows longer than 32), one row per lane (``softmaxkit._kernels.packed``):
rows of at most 8 packed in registers, longer ones in registers of their own.

softmax, softmin and logsumexp must give the short-row kernels' results bit for bit (the same
operations, each row's float64 sum added in the same order); log_softmax may differ from them by
the rounding of a row's log-sum (it chooses the counted sum row by row), so it is held to the
short kernels within an ulp and to a long-double reference within 4.  On every row length, on
row counts that leave part of a group (and parallel ranges that split one), with special rows
among ordinary ones, with every option, fresh, ``out=`` and in place.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

import softmaxkit as sk
from softmaxkit import _numpy_backend as backend
from naive import called_in_mode, log_softmax_ref, logsumexp_ref, mixed_rows, softmax_ref, special_rows, ulp_error

LIMIT = 64  # the kernels' PACKED_ROW
# every packed width, and padded ones of each kind: one register a row, two, four; the last part
# or whole; four of which the last is not loaded (33-48)
WIDTHS = list(range(1, 18)) + [20, 24, 31, 32, 33, 40, 47, 48, 49, 63, 64]


def test_limit_is_the_kernels():
    assert backend.kernels().PACKED_ROW == LIMIT


CALLS = {
    "softmax": lambda x, **kw: sk.softmax(x, **kw),
    "softmin": lambda x, **kw: sk.softmin(x, **kw),
    "log_softmax": lambda x, **kw: sk.log_softmax(x, **kw),
    "logsumexp": lambda x, **kw: sk.logsumexp(x, axis=-1, **kw),
}


def _packed_and_short(monkeypatch, call):
    """``call()`` through the packed kernels (whatever the row count), then the short ones."""
    with monkeypatch.context() as m:
        _any_rows(m)
        packed = call()
    with monkeypatch.context() as m:
        m.setattr(backend, "PACKED_ROW", 0)
        short = call()
    return packed, short


def _any_rows(m):
    """Packed kernels for any number of rows of at most LIMIT."""
    m.setattr(backend, "PACKED_MIN_ROWS", 0)
    m.setattr(backend, "PACKED_MIN_ROWS_PER_ELEMENT", 0)


def _mixed_rows(rng, n_rows, n):
    """``naive.mixed_rows`` (ordinary, peaked and special rows), with ties at the max in some
    ordinary rows and some rows of -inf alone."""
    x = mixed_rows(rng, n_rows, n)
    tied = np.flatnonzero((rng.random(n_rows) < 0.2) & np.isfinite(x).all(axis=1))
    x[tied, 0] = x[tied].max(axis=1)
    x[rng.random(n_rows) < 0.07] = -np.inf
    return x


def _assert_packed_matches_short(name, packed, short):
    """Bit for bit, but log_softmax (float32: its counted choice, row by row) and float64's log
    results: within an ulp of 1 (float64: a peaked row's sum below its max is tiny, and its log
    is taken lane by lane here, by the scalar function there, which LLVM may contract apart)."""
    if name == "log_softmax" or (packed.dtype == np.float64 and name == "logsumexp"):
        np.testing.assert_array_equal(np.isnan(packed), np.isnan(short))
        finite = np.isfinite(short)
        np.testing.assert_array_equal(packed[~finite], short[~finite])
        wide = np.longdouble if packed.dtype == np.float64 else np.float64
        assert ulp_error(packed[finite], short[finite].astype(wide), packed.dtype, floor=1).max() <= 1
    else:
        np.testing.assert_array_equal(packed, short)


def _reference(name, x, temperature=1.0):
    with np.errstate(all="ignore"):
        if name == "logsumexp":
            return logsumexp_ref(x, axis=-1, compute=np.longdouble)
        if name == "log_softmax":
            return log_softmax_ref(x, temperature=temperature, compute=np.longdouble)
        return softmax_ref(x, temperature=temperature, compute=np.longdouble, negate=name == "softmin")


def _assert_accurate(name, y, x, temperature=1.0):
    """Within 4 ulp of the long-double reference on the ordinary rows (log results near 0 in
    ulps of 1), as every other kernel (not rows whose results leave float32's range)."""
    ordinary = (np.abs(x) < 1e38).all(axis=1)
    ref = _reference(name, x[ordinary], temperature)
    floor = 1 if name == "log_softmax" or (x.dtype == np.float64 and name == "logsumexp") else None
    assert ulp_error(y[ordinary], ref, x.dtype, floor=floor).max() <= 4


# float64 rows: packed up to PACKED_ROW_FLOAT64 (24); groups of 8 rows, packed up to 4, then
# one register a row, two, four (the last part or whole)
LIMIT_FLOAT64 = 24
WIDTHS_FLOAT64 = [1, 2, 3, 4, 5, 8, 9, 12, 16, 17, 24]


def test_float64_limit_is_the_kernels():
    assert backend.kernels().PACKED_ROW_FLOAT64 == LIMIT_FLOAT64


@pytest.mark.parametrize("name", list(CALLS))
@pytest.mark.parametrize("n", WIDTHS_FLOAT64)
def test_every_float64_width_matches_the_short_kernels(monkeypatch, rng, name, n):
    x = _mixed_rows(rng, 8 * 5 + 3, n).astype(np.float64)
    with np.errstate(all="ignore"):
        packed, short = _packed_and_short(monkeypatch, lambda: CALLS[name](x))
    _assert_packed_matches_short(name, packed, short)
    _assert_accurate(name, packed, x)


@pytest.mark.parametrize("name", ["softmax", "log_softmax", "logsumexp"])
@pytest.mark.parametrize("n_rows", [1, 7, 9, 33, 301])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("mode", ["fresh", "in place"])
def test_float64_row_counts_threads_and_outputs(monkeypatch, rng, name, n_rows, threads, mode):
    if threads > 1:
        monkeypatch.setattr(backend, "PARALLEL_MIN_ELEMENTS", 0)
        monkeypatch.setattr(backend, "num_threads", lambda: threads)
    x0 = _mixed_rows(rng, n_rows, 6).astype(np.float64)
    options = {} if name == "logsumexp" else {"temperature": 0.7}
    with np.errstate(all="ignore"):
        packed, short = _packed_and_short(
            monkeypatch, lambda: called_in_mode(CALLS[name], x0, "fresh" if name == "logsumexp" else mode, **options)
        )
    _assert_packed_matches_short(name, packed, short)


@pytest.mark.parametrize("name", list(CALLS))
@pytest.mark.parametrize("n", WIDTHS)
def test_every_width_matches_the_short_kernels(monkeypatch, rng, name, n):
    x = _mixed_rows(rng, 16 * 3 + 5, n)  # whole groups and part of one
    with np.errstate(all="ignore"):
        packed, short = _packed_and_short(monkeypatch, lambda: CALLS[name](x))
    _assert_packed_matches_short(name, packed, short)
    _assert_accurate(name, packed, x)


@pytest.mark.parametrize("name", list(CALLS))
@pytest.mark.parametrize("n_rows", [1, 7, 9, 15, 16, 17, 33, 301])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("n", [6, 20, 40])  # groups of 16 rows, packed and padded, and of 8
def test_row_counts_and_threads(monkeypatch, rng, name, n_rows, threads, n):
    if threads > 1:  # two ranges, which split a group unless n_rows / 2 is a multiple of it
        monkeypatch.setattr(backend, "PARALLEL_MIN_ELEMENTS", 0)
        monkeypatch.setattr(backend, "num_threads", lambda: threads)
    x = _mixed_rows(rng, n_rows, n)
    with np.errstate(all="ignore"):
        packed, short = _packed_and_short(monkeypatch, lambda: CALLS[name](x))
    _assert_packed_matches_short(name, packed, short)


@pytest.mark.parametrize("name", ["softmax", "softmin", "log_softmax"])
@pytest.mark.parametrize("temperature", [0.3, 1.0, 7.5])
@pytest.mark.parametrize("mode", ["fresh", "out", "in place"])
@pytest.mark.parametrize("n", [2, 5, 16, 20, 40])
def test_options_and_outputs(monkeypatch, rng, name, temperature, mode, n):
    x0 = _mixed_rows(rng, 70, n)
    with np.errstate(all="ignore"):
        packed, short = _packed_and_short(
            monkeypatch, lambda: called_in_mode(CALLS[name], x0, mode, temperature=temperature)
        )
    _assert_packed_matches_short(name, packed, short)
    _assert_accurate(name, packed, x0, temperature)


@pytest.mark.parametrize("name, in_place", [(name, False) for name in CALLS]
                         + [(name, True) for name in CALLS if name != "logsumexp"])  # (none in place)
@pytest.mark.parametrize("width, dtype", [(4, np.float32), (13, np.float32), (16, np.float32), (20, np.float32),
                                          (32, np.float32), (40, np.float32), (64, np.float32),
                                          (4, np.float64), (13, np.float64), (24, np.float64)])
def test_special_values_match_the_general_kernels(monkeypatch, name, width, dtype, in_place):
    # the special rows twice over (a group with some, written around them by a masked store;
    # in place their input must still be there for ``slice_special``), then ordinary ones
    rows = special_rows().astype(dtype)
    x0 = np.full((40, width), -np.inf, dtype)
    x0[:11, :4] = rows
    x0[11:22, -4:] = rows
    x0[22:] = np.linspace(-3, 3, 18 * width, dtype=dtype).reshape(18, width)
    def call():
        x = x0.copy()
        return CALLS[name](x, out=x) if in_place else CALLS[name](x)

    with np.errstate(all="ignore"), monkeypatch.context() as m:
        _any_rows(m)
        packed = call()
        m.setattr(backend, "SHORT_ROW", 0)
        m.setattr(backend, "PACKED_ROW", 0)
        general = call()
    special = ~np.isfinite(x0).all(axis=1) | (np.abs(x0) > 1e38).any(axis=1)
    np.testing.assert_array_equal(packed[special], general[special])
    _assert_accurate(name, packed, x0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_logsumexp_results_in_either_dtype(rng, dtype):
    # the kernel narrows its float64 results for a float32 ``res``, stores them as they are else
    k = backend.kernels()
    x = _mixed_rows(rng, 45, 7)
    res = np.full(45, 7.0, dtype)
    short = np.full(45, 7.0, dtype)
    with np.errstate(all="ignore"):
        k.packed_logsumexp_rows_serial(x, (0,) * 7, res)
        k.logsumexp_short_rows_serial(x, short)
    np.testing.assert_array_equal(res, short)


@pytest.mark.parametrize(
    "name, shape, dtype, where, kernel",
    [
        ("softmax", (18, 2), np.float32, None, "packed_softmax_rows_serial"),
        ("softmax", (17, 2), np.float32, None, "softmax_short_rows_serial"),  # too few rows
        ("softmax", (40, 10), np.float32, None, "packed_softmax_rows_serial"),
        ("softmax", (39, 10), np.float32, None, "softmax_short_rows_serial"),
        ("softmax", (8, 10), np.float32, None, "softmax_short_rows_serial"),  # the per-call path
        ("log_softmax", (96, 16), np.float32, None, "packed_log_softmax_rows_serial"),
        ("log_softmax", (128, 32), np.float32, None, "packed_log_softmax_rows_serial"),
        ("log_softmax", (127, 32), np.float32, None, "log_softmax_paired_rows_serial"),
        ("logsumexp", (192, 48), np.float32, None, "packed_logsumexp_rows_serial"),
        ("logsumexp", (191, 48), np.float32, None, "logsumexp_short_rows_serial"),
        ("log_softmax", (400, 65), np.float32, None, "log_softmax_paired_rows_serial"),  # too long
        ("logsumexp", (1000, 3), np.float32, None, "packed_logsumexp_rows_serial"),
        ("softmax", (1000, 3), np.float64, None, "packed_softmax_rows_serial"),
        ("log_softmax", (11, 3), np.float64, None, "log_softmax_counted_short_rows_serial"),
        ("log_softmax", (1000, 3), np.float64, None, "packed_log_softmax_rows_serial"),
        ("logsumexp", (200, 24), np.float64, None, "packed_logsumexp_rows_serial"),
        ("logsumexp", (200, 25), np.float64, None, "logsumexp_short_rows_serial"),  # float64: up to 24
        # masked: short rows from MASKED_FILL_MIN_ROWS (log_softmax MASKED_LOG_FILL_MIN_ROWS) take
        # the unmasked kernels' loops over their masked entries filled with -inf, a chunk at a
        # time (their masked forms); fewer, the general ones
        ("softmax", (1000, 3), np.float32, "mask", "masked_packed_softmax_rows_serial"),
        ("softmax", (64, 100), np.float32, "mask", "masked_softmax_short_rows_serial"),
        ("softmax", (63, 10), np.float32, "mask", "softmax_rows_serial"),
        ("log_softmax", (256, 32), np.float32, "mask", "masked_packed_log_softmax_rows_serial"),
        ("log_softmax", (10, 10), np.float32, "mask", "masked_log_softmax_paired_rows_serial"),
        ("log_softmax", (9, 10), np.float32, "mask", "log_softmax_rows_serial"),
        ("log_softmax", (12, 2000), np.float32, "mask", "log_softmax_rows_serial"),  # long rows
    ],
)
def test_which_rows_take_the_packed_kernels(kernel_calls, rng, name, shape, dtype, where, kernel):
    calls = kernel_calls(kernel)
    x = rng.standard_normal(shape).astype(dtype)
    mask = None if where is None else rng.random(shape) < 0.7
    if name == "logsumexp":
        sk.logsumexp(x, axis=-1, where=mask)
    else:
        getattr(sk, name)(x, where=mask)
    assert len(calls) == 1


def test_parallel_threshold_is_a_quarter_of_the_rows(monkeypatch, kernel_calls, rng):
    monkeypatch.setattr(backend, "num_threads", lambda: 2)
    parallel, serial = kernel_calls("packed_softmax_rows"), kernel_calls("packed_softmax_rows_serial")
    size = backend.PARALLEL_MIN_ELEMENTS // backend.PACKED_WORK_FACTOR
    x = rng.standard_normal((size // 4, 4)).astype(np.float32)
    sk.softmax(x)
    sk.softmax(x[:-1])
    assert len(parallel) == 1 and parallel[0][:2] == (size // 4, 2)
    assert len(serial) == 1


@functools.cache
def _row_sum_kernels():
    """``(packed, one_row_at_a_time)``: each row's float64 sum and count of ``x2`` by
    ``row_sums``/``row_counts`` on packed groups, and each row's sum as its own vectors add it
    (``softmax._add_row_lanes``: each lane's terms in turn, float32 widened into two halves or
    float64 split against _SPLIT, then ``sum_lanes`` of each part, the two added)."""
    from numba import njit

    from softmaxkit._kernels._vector import (
        group_rows, lanes_of, load_part, load_rows, row_counts, row_sums, splat, store_rows, sum_lanes,
    )
    from softmaxkit._kernels.softmax import _add_row_lanes

    @njit
    def packed(x2, width, sums, counts):
        rows = group_rows(x2, width)
        for r in range(0, x2.shape[0], rows):
            v = load_rows(x2, r, width, None)
            store_rows(sums, r, None, row_sums(v, width), None, None)
            store_rows(counts, r, None, row_counts(v, width), None, None)

    @njit
    def one_row_at_a_time(x2, sums):
        n = x2.shape[1]
        lanes = lanes_of(x2)
        for r in range(x2.shape[0]):
            a, b = splat(0.0), splat(0.0)
            for i in range(0, n, lanes):
                a, b = _add_row_lanes(a, b, load_part(x2[r], i, min(lanes, n - i)))
            sums[r] = sum_lanes(a) + sum_lanes(b)

    return packed, one_row_at_a_time


def test_row_sums_add_in_the_order_of_a_rows_own_vectors(rng):
    # the float64 sums of terms spread over 2**-40 ... 2**40 depend on the order they are added
    # in (a float32 result rarely shows it): each row's sum must be the one its own vectors give
    # (each lane's terms in turn, ``widen_low``/``widen_high``, ``sum_lanes`` of each half, the
    # two added), for every width
    packed, one_row_at_a_time = _row_sum_kernels()
    orders_mattered = 0
    for n in WIDTHS:
        x = (2.0 ** rng.uniform(-40, 40, (16, n)) * rng.uniform(1, 2, (16, n))).astype(np.float32)
        got, expected, counts = np.empty(16), np.empty(16), np.empty(16)
        packed(x, (0,) * n, got, counts)
        one_row_at_a_time(x, expected)
        np.testing.assert_array_equal(got, expected)
        orders_mattered += int(np.any(expected != x.astype(np.float64).sum(axis=1)))
        ones = (x > np.median(x)).astype(np.float32)  # and a count of ones
        packed(ones, (0,) * n, got, counts)
        np.testing.assert_array_equal(counts, ones.sum(axis=1))
    assert orders_mattered >= 16  # (the test can tell orders apart)


def test_float64_row_sums_add_in_the_order_of_a_rows_own_vectors(rng):
    # a float64 row's terms (scaled exps in [0, 2**B]) split against _SPLIT: the high parts add
    # up exactly in any order, the low ones in the order a short row's own vectors add them
    # (``softmax._add_row_lanes``: each lane's in turn, then ``sum_lanes``' plain halving); rows
    # of terms all below the high parts' unit show that order
    from softmaxkit._kernels._exp import SCALE_LOG2_F64

    packed, one_row_at_a_time = _row_sum_kernels()
    orders_mattered = 0
    for n in WIDTHS_FLOAT64:
        x = 2.0 ** (SCALE_LOG2_F64 + rng.uniform(-90, 0, (16, n)))
        x[::2] *= 2.0**-44  # rows of low parts alone (below ulp(_SPLIT) / 2), where their order shows
        got, expected, counts = np.empty(16), np.empty(16), np.empty(16)
        packed(x, (0,) * n, got, counts)
        one_row_at_a_time(x, expected)
        np.testing.assert_array_equal(got, expected)
        plain = np.array([np.sum(row[np.argsort(rng.random(n))]) for row in x])  # another order
        orders_mattered += int(np.any(expected != plain))
        ones = (x > np.median(x)).astype(np.float64)
        packed(ones, (0,) * n, got, counts)
        np.testing.assert_array_equal(counts, ones.sum(axis=1))
    assert orders_mattered >= 4  # (the test can tell orders apart)
