"""Rows of a few elements, a group of rows at a time (16 float32 rows, 8 of rows longer than 32;
8 float64 rows), one row per lane.

A row of up to a few vectors takes the short-row kernels (``softmax._short_softmax_rows`` and
kin) a row at a time: its max, exp, sum and scaling are a chain of dependent operations, each
reduction across a vector's lanes a further chain of shuffles, about 12 ns a row for softmax, 16
for log_softmax and 20 for logsumexp on Zen 5, whatever the row's length up to 16.  torch's
log_softmax and logsumexp were ahead on such rows (4096x2: 0.49 and 0.50; logsumexp 4096x4 0.60;
log_softmax of rows of 17-64 0.77-0.91).

Here a group of rows is loaded as one wide vector (``_vector.load_rows``): rows of at most 8
packed, row after row (``n`` registers for 16 rows of ``n``); longer rows padded, each in
registers of its own.  Each row's max and float64 sum are taken one row per lane (``row_max``,
``row_sums``: no reduction across a row's lanes but once for the whole group), and every per-row
quantity (the max, the factor, the log-sum) is computed once for the group.  The elementwise
work is the short rows' own, lane for lane, and ``row_sums`` adds a row's terms in the order a
row's own vectors would (each lane's terms in turn, then ``sum_lanes`` of each float64 half):
softmax and logsumexp give the short-row kernels' bits (a float64 row's exps split against
``softmax._SPLIT`` as its short row splits them: ``_vector._split_row_sums``; its log is taken
lane by lane, the short rows' by the scalar function, so that a peaked row's log near 0, all
low parts, may differ within an ulp of 1).  log_softmax chooses the counted sum row by row (the
short rows, once one row falls short, count the next COUNTED_ROWS_AFTER_SHORTFALL rows too): a
row may differ from the short-row kernel's by the rounding of its log-sum, both well within the
bound (see ``softmax.uncounted_total_suffices``); float64 rows are all counted.

A row with a NaN, or whose max is +-inf, is left out of the group's store (a masked store, so in
place its input is still there) and written by ``slice_special``, as the short rows write it.
The last rows of a range, fewer than a group, take masked loads and stores.

``n`` is a compile-time constant: the drivers take a tuple of ``n`` zeros (``width``), so that
numba compiles a kernel for each row length (the wide vector's layout, the columns' shuffles).
"""

from __future__ import annotations

import math

import numpy as np
from numba import types

from ._fastmath import ORDERED, callee, callee_overload, kernel
from ._intrinsics import borrowed, fma
from ._exp import unscaled
from ._log import log_of_total
from ._parallel import RangeKernel
from ._scalar import cast_like, given, pair_like, scaled_difference, scaled_shifted_exp, signed, target, two_sum
from ._vector import (
    all_lanes, filled, group_rows, lane, lanes_like, load_rows, narrowed, row_counts, row_max, row_sums, select,
    spread, store_rows, widened,
)
from .softmax import (
    _MODE_LOG_SOFTMAX, _MODE_SOFTMAX, masked_logsumexp_by_filling, masked_rows_by_filling, part_of, row_additions,
    slice_max, slice_special, uncounted_total_suffices,
)

#: the longest row (elements) the packed kernels take: four float32 vectors (groups of 8 rows);
#: rows of 65 (groups of 4 rows of 8 registers) gained little on log_softmax (111 us against 117
#: for 4096 rows, one thread)
PACKED_ROW = 64
#: the same for float64 rows (registers of 8 lanes: groups of 8 rows of up to 4 registers)
PACKED_ROW_FLOAT64 = 24


@callee(fastmath=ORDERED, inline="always")
def _special(m, total):
    """Per row (lane), 0 where its max ``m`` is finite and its float64 sum ``total`` is not NaN,
    else NaN: ``x - x`` is 0 for a finite ``x``, NaN for an infinity or a NaN."""
    return (m - m) + lanes_like(total - total, m)


@callee(inline="always")
def _group_stored(x2, out2, width, sign, r, count, y, m, total, mode):
    """Store the group ``y`` at ``r`` (``count``: see ``load_rows``), but for its rows with a NaN
    or an infinite max (see ``_special``), written afterwards by ``slice_special``: the store
    leaves them out, so that in place their input is still there."""
    special = _special(m, total)
    y2 = target(x2, out2)
    if all_lanes(special == cast_like(0.0, x2)):
        store_rows(y2, r, width, y, count, None)
        return
    store_rows(y2, r, width, y, count, spread(special, y) == cast_like(0.0, x2))
    for i in range(group_rows(x2, width) if count is None else count):
        if lane(special, i) != 0.0:
            x = x2[r + i]
            slice_special(x, part_of(out2, r + i), None, sign, slice_max(x, None, sign), mode)


@callee(fastmath=ORDERED, inline="always")
def _softmax_group(x2, out2, width, sign, t_hi, t_lo, r, count):
    """softmax of the group of rows at ``r``, as ``softmax._one_vector_softmax_rows`` takes each."""
    v = signed(load_rows(x2, r, width, count), sign)
    m = row_max(v, width)
    e = scaled_shifted_exp(v, spread(m, v), t_hi, t_lo)
    s = row_sums(e, width)
    hi, lo = pair_like(1.0 / s, 0.0, x2)
    y = fma(e, spread(hi, e), e * spread(lo, e))
    _group_stored(x2, out2, width, sign, r, count, y, m, s, _MODE_SOFTMAX)


def _counts_every_row(like):
    """Whether log_softmax's rows of ``like``'s dtype are all counted: float64's, for their 4 ulp
    bound (``softmax.uncounted_total_suffices``), as its short rows (numba only)."""
    raise NotImplementedError("_counts_every_row is callable from numba-compiled code only")


@callee_overload(_counts_every_row)
def _counts_every_row_overload(like):
    counted = like.dtype == types.float64
    return lambda like: counted


@callee(fastmath=ORDERED, inline="always")
def _counted_stats(v, m, e, width, like):
    """``(rest, k)`` of each row of the group ``v``: its entries at the max counted, the others
    summed, as float64 vectors."""
    at = v == spread(m, v)
    rest = unscaled(row_sums(select(at, cast_like(0.0, like), e), width), like)
    return rest, row_counts(select(at, cast_like(1.0, like), cast_like(0.0, like)), width)


@callee(fastmath=ORDERED, inline="always")
def _log_stats(v, m, e, width, like):
    """``(rest, k)`` of each row of the group ``v`` (maxes ``m``, exps ``e``) as float64 vectors:
    uncounted, ``(total - 1, 1)``, where the row's total suffices (``uncounted_total_suffices``),
    else counted (``_counted_stats``); float64 rows always counted."""
    if _counts_every_row(like):
        return _counted_stats(v, m, e, width, like)
    total = unscaled(row_sums(e, width), like)
    suffices = uncounted_total_suffices(total, row_additions(len(width)))
    rest = total - 1.0
    k = filled(1.0, total)
    if not all_lanes(suffices):
        counted_rest, counted_k = _counted_stats(v, m, e, width, like)
        rest = select(suffices, rest, counted_rest)
        k = select(suffices, k, counted_k)
    return rest, k


@callee(fastmath=ORDERED, inline="always")
def _log_softmax_values(v, m, t_hi, t_lo, log_sum):
    """``(v - m)/T - log_sum`` per element, as ``softmax._short_log_lanes``."""
    if not given(t_hi):
        total, error = two_sum(widened(m), log_sum)  # ``softmax._shift_pair``
        hi, lo = pair_like(total, error, v)
        return (v - spread(hi, v)) - spread(lo, v)
    hi, lo = pair_like(log_sum, 0.0, v)
    d_hi, d_lo = scaled_difference(v, spread(m, v), t_hi, t_lo)
    return select(d_hi == cast_like(-np.inf, m), d_hi, (d_hi - spread(hi, v)) + (d_lo - spread(lo, v)))


@callee(fastmath=ORDERED, inline="always")
def _log_softmax_group(x2, out2, width, sign, t_hi, t_lo, r, count):
    """log_softmax of the group of rows at ``r``, as the short rows take each (but for the choice
    of the counted sum, row by row: see above)."""
    v = signed(load_rows(x2, r, width, count), sign)
    m = row_max(v, width)
    e = scaled_shifted_exp(v, spread(m, v), t_hi, t_lo)
    rest, k = _log_stats(v, m, e, width, x2)
    log_sum = log_of_total(k, rest)
    y = _log_softmax_values(v, m, t_hi, t_lo, log_sum)
    _group_stored(x2, out2, width, sign, r, count, y, m, rest, _MODE_LOG_SOFTMAX)


@callee(fastmath=ORDERED, inline="always")
def _logsumexp_group(x2, width, res, r, count):
    """logsumexp of the group of rows at ``r`` into ``res``, as ``softmax._short_logsumexp``
    takes each: counted; a row whose max is +-inf gets ``slice_max`` (NaN if it has a NaN)."""
    v = load_rows(x2, r, width, count)
    m = row_max(v, width)
    e = scaled_shifted_exp(v, spread(m, v), None, None)
    at = v == spread(m, v)
    rest = unscaled(row_sums(select(at, cast_like(0.0, x2), e), width), x2)
    k = row_counts(select(at, cast_like(1.0, x2), cast_like(0.0, x2)), width)
    result = widened(m) + log_of_total(k, rest)
    _store_results(res, r, count, result)
    finite = m - m == cast_like(0.0, x2)
    if not all_lanes(finite):
        stop = group_rows(x2, width) if count is None else count
        for i in range(stop):
            if not math.isfinite(lane(m, i)):
                res[r + i] = slice_max(x2[r + i], None, None)


def _store_results(res, r, count, result):
    """Store the float64 vector ``result`` at ``res[r:]`` in ``res``'s dtype (numba only)."""
    raise NotImplementedError("_store_results is callable from numba-compiled code only")


@callee_overload(_store_results)
def _store_results_overload(res, r, count, result):
    if res.dtype == types.float32:
        return lambda res, r, count, result: store_rows(res, r, None, narrowed(result), count, None)
    return lambda res, r, count, result: store_rows(res, r, None, result, count, None)


@callee(inline="always")
def _packed_rows(group, x2, out2, width, sign, t_hi, t_lo, first, stop):
    """softmax or log_softmax (``group``: ``_softmax_group`` or ``_log_softmax_group``) of the
    rows ``first:stop`` of ``x2`` (``out2=None``: in place): whole groups, then the rest, if any,
    as one group of fewer rows (and so ``_packed_logsumexp_rows``)."""
    x2, out2 = borrowed(x2), borrowed(out2)
    rows = group_rows(x2, width)
    r = first
    while r + rows <= stop:
        group(x2, out2, width, sign, t_hi, t_lo, r, None)
        r += rows
    if r < stop:
        group(x2, out2, width, sign, t_hi, t_lo, r, stop - r)


@callee(inline="always")
def _packed_logsumexp_rows(x2, width, res, first, stop):
    x2 = borrowed(x2)
    rows = group_rows(x2, width)
    r = first
    while r + rows <= stop:
        _logsumexp_group(x2, width, res, r, None)
        r += rows
    if r < stop:
        _logsumexp_group(x2, width, res, r, stop - r)


@callee(inline="always")
def _packed_softmax_rows(x2, out2, width, sign, t_hi, t_lo, first, stop):
    """``_packed_rows`` of softmax, as ``softmax.masked_rows_by_filling`` calls it."""
    _packed_rows(_softmax_group, x2, out2, width, sign, t_hi, t_lo, first, stop)


@callee(inline="always")
def _packed_log_softmax_rows(x2, out2, width, sign, t_hi, t_lo, first, stop):
    _packed_rows(_log_softmax_group, x2, out2, width, sign, t_hi, t_lo, first, stop)


def _packed_softmax_range(t, first, stop, x2, out2, width, sign, t_hi, t_lo):
    _packed_rows(_softmax_group, x2, out2, width, sign, t_hi, t_lo, first, stop)


def _packed_log_softmax_range(t, first, stop, x2, out2, width, sign, t_hi, t_lo):
    _packed_rows(_log_softmax_group, x2, out2, width, sign, t_hi, t_lo, first, stop)


def _packed_logsumexp_range(t, first, stop, x2, width, res):
    _packed_logsumexp_rows(x2, width, res, first, stop)


@kernel()
def packed_softmax_rows_serial(x2, out2, width, sign, t_hi, t_lo):
    _packed_rows(_softmax_group, x2, out2, width, sign, t_hi, t_lo, 0, x2.shape[0])


@kernel()
def packed_log_softmax_rows_serial(x2, out2, width, sign, t_hi, t_lo):
    _packed_rows(_log_softmax_group, x2, out2, width, sign, t_hi, t_lo, 0, x2.shape[0])


@kernel()
def packed_logsumexp_rows_serial(x2, width, res):
    _packed_logsumexp_rows(x2, width, res, 0, x2.shape[0])


@kernel()
def masked_packed_logsumexp_rows_serial(x2, mask2, mask_rows, width, res, chunk):
    scratch = np.empty(chunk * x2.shape[1], x2.dtype)
    masked_logsumexp_by_filling(_packed_logsumexp_rows, x2, mask2, mask_rows, width, res, scratch, chunk, 0,
                                x2.shape[0])


def _masked_packed_logsumexp_range(t, first, stop, x2, mask2, mask_rows, width, res, chunk, scratch):
    masked_logsumexp_by_filling(_packed_logsumexp_rows, x2, mask2, mask_rows, width, res, scratch[t], chunk, first,
                                stop)


@kernel()
def masked_packed_softmax_rows_serial(x2, mask2, mask_rows, out2, width, sign, t_hi, t_lo, chunk):
    scratch = np.empty(chunk * x2.shape[1], x2.dtype)
    masked_rows_by_filling(_packed_softmax_rows, x2, mask2, mask_rows, out2, width, sign, t_hi, t_lo, False,
                           scratch, chunk, 0, x2.shape[0])


@kernel()
def masked_packed_log_softmax_rows_serial(x2, mask2, mask_rows, out2, width, sign, t_hi, t_lo, chunk):
    scratch = np.empty(chunk * x2.shape[1], x2.dtype)
    masked_rows_by_filling(_packed_log_softmax_rows, x2, mask2, mask_rows, out2, width, sign, t_hi, t_lo, True,
                           scratch, chunk, 0, x2.shape[0])


def _masked_packed_softmax_range(
    t, first, stop, x2, mask2, mask_rows, out2, width, sign, t_hi, t_lo, chunk, scratch
):
    masked_rows_by_filling(_packed_softmax_rows, x2, mask2, mask_rows, out2, width, sign, t_hi, t_lo, False,
                           scratch[t], chunk, first, stop)


def _masked_packed_log_softmax_range(
    t, first, stop, x2, mask2, mask_rows, out2, width, sign, t_hi, t_lo, chunk, scratch
):
    masked_rows_by_filling(_packed_log_softmax_rows, x2, mask2, mask_rows, out2, width, sign, t_hi, t_lo, True,
                           scratch[t], chunk, first, stop)


#: ``(n_rows, workers, x2, out2, width, sign, t_hi, t_lo)``: unmasked float32 rows of at most
#: PACKED_ROW elements, ``width`` a tuple of ``n`` zeros (``n`` the rows' length)
packed_softmax_rows = RangeKernel(_packed_softmax_range)
#: as ``packed_softmax_rows``
packed_log_softmax_rows = RangeKernel(_packed_log_softmax_range)
#: ``(n_rows, workers, x2, width, res)``
packed_logsumexp_rows = RangeKernel(_packed_logsumexp_range)
#: ``(n_rows, workers, x2, mask2, mask_rows, width, res, chunk, scratch)``: masked packed rows, by
#: ``softmax.masked_logsumexp_by_filling``
masked_packed_logsumexp_rows = RangeKernel(_masked_packed_logsumexp_range)
#: ``(n_rows, workers, x2, mask2, mask_rows, out2, width, sign, t_hi, t_lo, chunk, scratch)``: masked packed
#: rows, by ``softmax.masked_rows_by_filling`` (``chunk`` a multiple of a group's rows)
masked_packed_softmax_rows = RangeKernel(_masked_packed_softmax_range)
#: as ``masked_packed_softmax_rows``
masked_packed_log_softmax_rows = RangeKernel(_masked_packed_log_softmax_range)
