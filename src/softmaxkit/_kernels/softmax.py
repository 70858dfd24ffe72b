"""numba kernels for softmax, log_softmax and logsumexp over canonical layouts.

The Python layer (``softmaxkit._numpy_backend``) reduces every call to one of two layouts of a
C-contiguous block, so kernels never see strides or axis numbers:

* rows ``(R, n)``: reduce over the contiguous last axis;
* columns ``(outer, K, inner)``: reduce over the middle axis, streaming whole contiguous rows of
  ``inner`` elements and keeping per-column state (the NCHW ``axis=1`` case).

Every kernel takes the same scalar parameters, in the kernel dtype:

* ``sign``: +1, or -1 for softmin; values are ``v = sign * x`` (exact); ``None`` means +1;
* ``t_hi + t_lo``: the inverse temperature as a double-word; ``None, None`` means exactly 1.
  The ``None`` forms compile to loops without the multiplications (softmax with default
  options is compute-bound on AVX2 and every instruction in the exp loop shows);
* ``mask``: a boolean array of the same layout, or ``None`` (numba prunes the branches, so
  unmasked calls compile to mask-free loops);
* ``out``: the output array, or ``None`` to write into ``x`` (in place: a separate compiled
  loop, because LLVM's runtime alias check fails when ``out is x`` and falls back to scalar code).

Algorithm per slice (three passes, the later ones hitting cache): ``m = max(v)`` with a vector
max (unmasked rows: one that skips NaN, which then shows as a NaN sum; see
``slice_max_unchecked``); ``e = exp((v - m)/T) * 2**B`` with ``v - m`` split exactly (TwoSum) so
the exp argument carries no rounding (the fixed power of two ``2**B`` cancels in ``e / s`` and
saves an instruction per element, see ``_exp``); the sum accumulated in float64; then
``y = e * (1/s)`` in float64 and rounded once.  The log forms separate the terms equal to the max
(each exactly 1) from the rest and take ``log(k + rest)`` with ``k + rest`` as an exact
double-word (``_log.log_of_total``), which keeps tiny tails such as ``logsumexp([0, -40]) =
4.25e-18``.  Slices with a NaN, or whose max is +inf or -inf, take a scalar path that writes
the limits documented in ``docs/semantics.md``.

A few rows longer than a cache-sized chunk are split into chunks processed in parallel.  Each
chunk keeps its own ``(max, rest, count)`` state, merged per row as
``rest = sum((count_c + rest_c) * exp(m_c - M))`` (Milakov & Gimelshein 2018; the same mergeable
state serves a dask front end); every chunk is then written in one more pass.  softmax stores
each chunk's exps against the chunk's own max in its first pass and re-scales them by
``exp(m_c - M) / s`` in that second pass, so the input is read once.
"""

from __future__ import annotations

import math

import numpy as np
from numba import types

from ._fastmath import ORDERED, REDUCTION, callee, callee_overload, kernel, optimised_alone, target_cpu
from ._intrinsics import borrowed, fma, line_offset, max_ignoring_nan, nan_max, prefetch_read, prefetch_write
from ._parallel import RangeKernel
from ._vector import (
    LANES, all_lanes, first_or, lanes_of, load, load_mask, load_part, max_lanes, narrow_halves, only_first, select, splat,
    store_part, sum_lanes, widen_high, widen_low,
)
from ._exp import SCALE_LOG2_F64, unscaled
from ._log import log_of_total, log_of_total_f32, log_of_totals_f32
from ._scalar import (
    cast_like,
    compensated_add,
    exp_of_difference,
    given,
    pair_like,
    scaled_difference,
    scaled_shifted_exp,
    shifted_log_probability,
    signed,
    target,
    two_sum,
)

_MODE_SOFTMAX = 0
_MODE_LOG_SOFTMAX = 1

# ----------------------------------------------------------------------------------------------
# One slice (a contiguous run of a row)
# ----------------------------------------------------------------------------------------------


@callee(fastmath=REDUCTION)
def slice_max(x, mask, sign):
    """``max(sign * x)`` over the unmasked entries (-inf if none), NaN if any is NaN."""
    ninf = cast_like(-np.inf, x)
    m = ninf
    for i in range(x.size):
        v = signed(x[i], sign)
        if mask is not None:
            v = v if mask[i] else ninf
        m = nan_max(m, v)
    return m


def slice_max_unchecked(x, mask, sign):
    """``slice_max``, except that NaN entries may be skipped rather than propagated (numba only).

    Without a mask or sign it is ``max_ignoring_nan``'s explicit vector loop, 0.010 against
    0.034 ns per float32 element (Zen 5, in L1): a tenth of an in-place softmax.  A caller must
    then catch NaN entries downstream: the exp of a NaN is NaN and makes the slice's sum NaN.
    """
    raise NotImplementedError("slice_max_unchecked is callable from numba-compiled code only")


def inlined_slice_max_unchecked(x, mask, sign):
    """``slice_max_unchecked`` inlined into its caller (numba only; see ``probabilities_slice``)."""
    raise NotImplementedError("inlined_slice_max_unchecked is callable from numba-compiled code only")


def _slice_max_unchecked_overload(x, mask, sign):
    contiguous = isinstance(x, types.Array) and x.layout == "C"
    if contiguous and isinstance(mask, types.NoneType) and isinstance(sign, types.NoneType):
        return lambda x, mask, sign: max_ignoring_nan(x)
    if contiguous and isinstance(mask, types.Array) and mask.layout == "C":
        return lambda x, mask, sign: _masked_max_ignoring_nan(x, mask, sign)
    return lambda x, mask, sign: slice_max(x, mask, sign)


@callee(fastmath=ORDERED)
def _masked_max_ignoring_nan(x, mask, sign):
    """``max(sign * x)`` over the unmasked entries that are not NaN (-inf if none), a vector at a
    time (``load_mask``).  ``slice_max``'s loop with a mask ran entry by entry: 1.7 ns per float32
    entry of a random mask (Zen 5), five times the rest of a masked softmax."""
    lanes = lanes_of(x)
    best = splat(cast_like(-np.inf, x))
    whole = x.size - x.size % lanes
    for j in range(0, whole, lanes):
        v = signed(load(x, j), sign)
        best = select(load_mask(mask, j, x, None), select(v > best, v, best), best)
    if whole < x.size:
        part = x.size - whole
        v = signed(load_part(x, whole, part), sign)
        best = select(load_mask(mask, whole, x, part), select(v > best, v, best), best)
    return max_lanes(best)


callee_overload(slice_max_unchecked)(_slice_max_unchecked_overload)
callee_overload(inlined_slice_max_unchecked, forceinline=True)(_slice_max_unchecked_overload)


# Sums are accumulated per block: a vectorised loop stores ``exp`` for a block, a second loop
# adds the (L1-resident) block to a float64 total.  One fused loop that widens each float32
# term to float64 as it goes does not vectorise (LLVM 22), and a float32 running sum over a
# whole row drifts (torch's 2**24-element rows sum to 1 +- 1e-3).  The block is also the step at
# which the next row is prefetched: 512 elements spread the prefetches through the exp pass.
# Measured on Zen 5 (AVX-512), 4096x4096 float32, 25th percentile of 30 calls, against 1024:
# one thread out= 6.0 vs 6.9 ms, in place 4.9 vs 6.3, log_softmax 8.4 vs 9.9; two threads in
# place 2.5 vs 3.1-3.2.  256 was no better than 512 and slower out= (7.1 ms).
_BLOCK = 512

# While a row is exponentiated (compute-bound), the next row is prefetched a block at a time, so
# that its max pass finds it in cache instead of waiting on memory: without it the memory
# system idles during the exp pass and the cores idle during the max pass.  Only its first
# _PREFETCH_BYTES: a longer row would not fit in L2 beside the current row and its output, and
# prefetching all of it evicts the lines the current row still needs (the hardware prefetcher
# follows the max pass anyway).  Zen 5, 2 threads, float32 out=, interleaved medians, whole row
# against the first 256 KiB: 4x2**22 8.64 -> 6.81 ms, 8x2**20 3.03 -> 2.64, 64x2**17 2.70 ->
# 2.56, 32x128256 0.80 -> 0.79 (64 KiB: 0.91).
#
# A row longer than _SPLIT_ABOVE spreads that prefetch over two passes: the first
# _EARLY_EIGHTHS eighths evenly through its exp pass, the rest evenly through its final pass
# (the scaling, or log_softmax's writing), which otherwise left the memory system idle while
# it ran.  Xeon, 2 threads, float32, paired against the whole prefetch in the exp pass:
# 4096x4096 in place 0.87-0.91, out= 0.92-0.95, fresh 0.93-0.95, log_softmax fresh 0.93-0.96;
# 8192x2048 in place 0.92; 128x65536 out= 0.91; 32x128256 fresh 0.96-0.97; float64 2048x2048
# fresh 0.97.  5 to 7 eighths early did alike; 4 and 2 less well (in place 0.95, 0.96);
# scaling in blocks without prefetching there: 1.00.  Rows of two blocks or less gained nothing
# (16384x1000 in place 1.03 slower split) and keep one scaling call (8x10: 1.05 slower with
# the blocked final pass).
_LINE_BYTES = 64
_PREFETCH_BYTES = 1 << 18
_EARLY_EIGHTHS = 6
_SPLIT_ABOVE = 2 * _BLOCK


# A pass prefetches by a plan ``(first, stop, pace)``: ``ahead[first:stop]``, ``pace`` eighths of
# an element of it per element of the pass (8: one for one).  Index bounds rather than slices of
# ``ahead``: a slice is a new array struct, which cost 3.5% of a softmax of 8x10.


def prefetch_plan(ahead):
    """The plan for a slice with one pass: the first _PREFETCH_BYTES of ``ahead`` (the next row
    or chunk, or None), one for one (numba only)."""
    raise NotImplementedError("prefetch_plan is callable from numba-compiled code only")


@callee_overload(prefetch_plan)
def _prefetch_plan_overload(ahead):
    if isinstance(ahead, types.NoneType):
        return lambda ahead: (0, 0, 8)
    return lambda ahead: (0, min(ahead.size, _PREFETCH_BYTES // ahead.itemsize), 8)


@callee()
def prefetch_plans(ahead, size):
    """``(early, late)`` plans for a slice of ``size`` elements with an exp pass and a final pass:
    ``prefetch_plan``'s range split at _EARLY_EIGHTHS eighths, each part spread over its pass.
    A slice of at most _SPLIT_ABOVE elements prefetches it all in its exp pass."""
    plan = prefetch_plan(ahead)
    if size <= _SPLIT_ABOVE:
        return plan, (0, 0, 8)
    stop = plan[1]
    split = stop * _EARLY_EIGHTHS // 8
    return (0, split, _EARLY_EIGHTHS), (split, stop, 8 - _EARLY_EIGHTHS)


@callee()
def prefetch_share(ahead, plan, start):
    """Hint that the share of ``ahead`` (None: nothing) that goes with the block of a pass at
    ``start`` (a multiple of _BLOCK) will be read soon, following ``plan``, one cache line at
    a time."""
    if ahead is not None:
        first, stop, pace = plan
        lo = first + start * pace // 8
        for i in range(lo, min(stop, lo + _BLOCK * pace // 8), _LINE_BYTES // ahead.itemsize):
            prefetch_read(ahead, i)


@callee(fastmath=REDUCTION)
def _store_exp(x, y, mask, sign, m, t_hi, t_lo):
    """``y = exp((sign * x - m) / T) * 2**B`` (scaled: see ``_exp``); ``y=None`` writes into ``x``
    (a separate loop: with ``y is x`` LLVM's runtime alias check fails and the loop runs scalar,
    ~7x slower)."""
    zero = cast_like(0.0, x)
    destination = target(x, y)  # hoisted: a call in the loop blocks vectorisation
    for i in range(x.size):
        e = scaled_shifted_exp(signed(x[i], sign), m, t_hi, t_lo)
        if mask is not None:
            e = e if mask[i] else zero
        destination[i] = e


@callee(fastmath=REDUCTION)
def _store_exp_below_max(x, y, mask, sign, m, t_hi, t_lo):
    """Like ``_store_exp`` but 0 for entries equal to ``m`` (those are counted separately); a NaN
    entry gives NaN (``not v >= m``, not ``v < m``), so that a sum shows it."""
    zero = cast_like(0.0, x)
    for i in range(x.size):
        v = signed(x[i], sign)
        e = scaled_shifted_exp(v, m, t_hi, t_lo)
        keep = not v >= m
        if mask is not None:
            keep = keep and mask[i]
        y[i] = e if keep else zero


@callee(fastmath=REDUCTION)
def _count_equal(x, mask, sign, m):
    """Number of unmasked entries with ``sign * x == m`` (float32 counts are exact to 2**24,
    far above the block length)."""
    one = np.float32(1.0)
    zero = np.float32(0.0)
    k = zero
    for i in range(x.size):
        equal = signed(x[i], sign) == m
        if mask is not None:
            equal = equal and mask[i]
        k += one if equal else zero
    return np.float64(k)


# Sums are float64.  For float32 terms one vectorised float64 loop per block is ample: its chains
# of ~32 additions err by ~32 * 2**-53, a hundred-millionth of a float32 ulp; the block sums are
# added with error-free compensation so rows of 2**24 and more do not drift.


@callee(fastmath=REDUCTION)
def _short_sum(y):
    s = 0.0
    for i in range(y.size):
        s += np.float64(y[i])
    return s


@callee(fastmath=ORDERED)
def add_sum_float64(total, compensation, y):
    """Add ``sum(y)`` (float32 terms, widened to float64) to the compensated pair
    ``(total, compensation)``."""
    return compensated_add(total, compensation, _short_sum(y))


# For float64 terms a vectorised sum's own rounding (~n/32 ulp: 10 ulp measured on a row of
# 1000) is too much for a 4 ulp softmax.  The terms are scaled exps in [0, 2**B] (B = 600; below,
# every power of two is relative to 2**B) and a block holds at most _BLOCK of them, so each is
# split against the fixed power of two _SPLIT > _BLOCK (Rump, Ogita & Oishi's ExtractVector):
# ``hi = (_SPLIT + t) - _SPLIT`` and ``lo = t - hi`` are exact, every ``hi`` is a multiple of
# ulp(_SPLIT) (2**-42 for _BLOCK = 512) of magnitude at most 1, so the ``hi`` parts add up
# exactly in any order (partial sums stay below _SPLIT), and the ``lo`` parts (each at most
# ulp(_SPLIT) / 2) add up with an absolute error below _BLOCK**2 * 2**-53 * ulp(_SPLIT) / 2
# (2**-78 for _BLOCK = 512).  Both sums are then plain vectorised reductions: 0.09 against 0.27
# ns per element for the 64 TwoSum lanes this replaced (Zen 5, one thread, in cache), with the
# same accuracy (the exact sum, rounded once).
_SPLIT = 2.0 * _BLOCK * 2.0**SCALE_LOG2_F64


@callee(fastmath=ORDERED)
def _split_at(t, split):
    """``(hi, lo)`` with ``hi = (split + t) - split`` and ``t = hi + lo`` exactly (``ORDERED``:
    ``reassoc`` would fold ``hi`` to ``t``; inlined, the instructions keep these flags)."""
    hi = (split + t) - split
    return hi, t - hi


@callee(fastmath=REDUCTION)
def _split_sums(y):
    """``(sum of hi, sum of lo)`` of the float64 terms ``y`` (at most _BLOCK, each in [0, 2**B])."""
    s_hi = 0.0
    s_lo = 0.0
    for i in range(y.size):
        hi, lo = _split_at(y[i], _SPLIT)
        s_hi += hi
        s_lo += lo
    return s_hi, s_lo


@callee(fastmath=ORDERED)
def add_exact_sum_float64(total, compensation, y):
    """Add ``sum(y)`` (float64 terms in [0, 2**B], at most _BLOCK) to ``(total, compensation)``."""
    s_hi, s_lo = _split_sums(y)
    total, compensation = compensated_add(total, compensation, s_hi)
    return total, compensation + s_lo


def _accumulate(total, compensation, y):
    """Add ``sum(y)`` (a block of exps) to the running float64 sum ``(total, compensation)``,
    as accurately as the dtype of ``y`` needs (numba only)."""
    raise NotImplementedError("_accumulate is callable from numba-compiled code only")


@callee_overload(_accumulate)
def _accumulate_overload(total, compensation, y):
    if isinstance(y, types.Array) and y.dtype == types.float64:
        return lambda total, compensation, y: add_exact_sum_float64(total, compensation, y)
    return lambda total, compensation, y: add_sum_float64(total, compensation, y)


# Stores that straddle two cache lines.  numpy aligns arrays to 16 bytes, so a user's ``out=``
# (or an array softmaxed in place) starts 16, 32 or 48 bytes into a line three times in four, and
# then every 512-bit store of the exp pass, the first write of each output line, touches two
# lines.  A long slice therefore stores its exps, and scales or writes its results, by blocks that
# start at the output's first line boundary (after a first block of the ``head`` elements before
# it), while its sums still go by blocks from its first element: no result depends on where the
# arrays lie (tests/test_semantics.py).  Measured on the Xeon, paired against blocks from element
# 0 with input and output 16 bytes past a line: one thread in L2, 16x4096 softmax 0.93,
# log_softmax 0.95, in place 0.95, float64 16x2048 softmax and log_softmax 0.93; two threads in
# a slow-memory phase (memory-bound), 4096x4096 out= 0.99, in place 0.98, log_softmax 0.99, one
# row of 2**24 0.98, float64 2048x2048 0.97; line-aligned arrays even.  Slices of up to
# _SPLIT_ABOVE elements or _ALIGN_MIN_BYTES keep one block grid: their passes are not blocked,
# and aligning rows of 1000 (a scalar head, then the rest) saved nothing (64x1000 1.02 slower
# misaligned, 0.99 aligned, in one paired run).
_ALIGN_MIN_BYTES = 8192


@callee(inline="always")
def line_head(y):
    """How many elements of ``y`` precede its first cache-line boundary; 0 for a slice of at
    most _SPLIT_ABOVE elements or under _ALIGN_MIN_BYTES, whose passes are not blocked."""
    if y.size <= _SPLIT_ABOVE or y.size * y.itemsize < _ALIGN_MIN_BYTES:
        return 0
    return min(y.size, ((_LINE_BYTES - line_offset(y)) % _LINE_BYTES) // y.itemsize)


@callee(inline="always")
def block_origin(head):
    """The start of a slice's grid of _BLOCK-element blocks: ``head - _BLOCK`` (a first block of
    the ``head`` elements before the line boundary) or 0; blocks are clipped to ``[0, size)``."""
    return head - _BLOCK if head > 0 else 0


@callee(forceinline=True)
def slice_exp_store_sum(x, out, mask, sign, m, t_hi, t_lo, ahead, plan, head):
    """Store ``e = exp((v - m)/T) * 2**B`` (0 where masked) and return ``sum(e)`` in float64;
    prefetch ``ahead`` (or None) alongside by ``plan`` (see ``prefetch_share``).  The exps are
    stored by blocks that start ``head`` elements into the slice (see ``line_head``), summed by
    blocks that start at 0: the sum does not depend on where ``out`` lies."""
    s = 0.0
    c = 0.0
    y = target(x, out)
    summed = 0
    for origin in range(block_origin(head), x.size, _BLOCK):
        start = max(origin, 0)
        stop = min(x.size, origin + _BLOCK)
        mask_block = part_of(mask, slice(start, stop))
        prefetch_share(ahead, plan, start)
        _store_exp(x[start:stop], part_of(out, slice(start, stop)), mask_block, sign, m, t_hi, t_lo)
        # sum the blocks from 0 stored by now (after the last block: all); one call site, not
        # two: with two, a cold first call of 4096x4096 softmax took ~0.5 s longer (Xeon)
        while summed < stop and (summed + _BLOCK <= stop or stop == x.size):
            end = min(summed + _BLOCK, stop)
            s, c = _accumulate(s, c, y[summed:end])
            summed = end
    return s + c


def unstaged_log_stats(x, mask, sign, m, t_hi, t_lo, ahead, plan, buffer):
    """``slice_log_stats`` for callers that need no terms staged (logsumexp, the chunks of split
    rows, whose ``buffer`` is scratch): unmasked float32 rows by vectors in one pass per block,
    summing and counting in registers and storing nothing; the others by ``slice_log_stats``
    (numba only).

    Measured on the Xeon against ``slice_log_stats``'s three loops per block (exps staged, then
    summed, then the ties counted): logsumexp 4096x4096 0.78-0.91, 32x128256 0.74-0.83, one row
    of 2**24 0.71-0.91, 64x1000 0.92-0.96; log_softmax one row of 2**24 (chunks) fresh 0.89.
    log_softmax's own rows use the vector pass too, through ``_log_row_stats``, which also warms
    their output lines for the writing pass."""
    raise NotImplementedError("unstaged_log_stats is callable from numba-compiled code only")


def _stats_by_vectors(x, mask) -> bool:
    """Whether a row's log stats take ``_slice_log_stats_by_vectors`` (typing time): a float32
    C-contiguous row, unmasked or with a C-contiguous mask (masked rows were staged, 0.8 ns an
    entry of a random mask against 0.25 by vectors: Zen 5, log_softmax 256x1000, one thread)."""
    unmasked = isinstance(mask, types.NoneType)
    return (unmasked or mask.layout == "C") and x.dtype == types.float32 and x.layout == "C"


@callee_overload(unstaged_log_stats)
def _unstaged_log_stats_overload(x, mask, sign, m, t_hi, t_lo, ahead, plan, buffer):
    if _stats_by_vectors(x, mask):
        return lambda x, mask, sign, m, t_hi, t_lo, ahead, plan, buffer: _slice_log_stats_by_vectors(
            x, mask, sign, m, t_hi, t_lo, ahead, plan, None, 0, True
        )
    return lambda x, mask, sign, m, t_hi, t_lo, ahead, plan, buffer: slice_log_stats(
        x, mask, sign, m, t_hi, t_lo, ahead, plan, buffer, 0
    )


@callee(fastmath=ORDERED, inline="always")
def _row_log_stats_lanes(x, mask, sign, m, t_hi, t_lo, i, part, a, b, c, counted):
    """``(a, b, c)`` after the lanes at ``i``: their exps below the max added to the float64 sums
    ``a``, ``b`` and the entries at the max counted in ``c`` (float32 lanes); with ``counted``
    False the exps of all of them added, each exactly ``2**B`` at the max, and ``c`` left as it
    is (see ``uncounted_total_suffices``).  ``counted`` is a literal: numba compiles each caller
    once for each value, the other branch pruned (see ``_column_log_sums_by_vectors``).  With a
    ``mask`` (a C-contiguous boolean row, or None) its masked lanes add and count nothing."""
    v = signed(load_part(x, i, part), sign)
    e = scaled_shifted_exp(v, m, t_hi, t_lo)
    if counted:
        # 0 at the max (counted instead); a NaN the max skipped gives NaN (``v == m`` is false for
        # it, and ``v > m`` is not possible: one comparison for both)
        at = v == m
        e = select(at, cast_like(0.0, x), e)
        if mask is None:
            c = c + only_first(select(at, cast_like(1.0, x), cast_like(0.0, x)), part)
        else:
            ones = select(at, cast_like(1.0, x), cast_like(0.0, x))
            c = c + only_first(select(load_mask(mask, i, x, part), ones, cast_like(0.0, x)), part)
    if mask is not None:  # (a masked NaN or infinity adds nothing either)
        e = select(load_mask(mask, i, x, part), e, cast_like(0.0, x))
    a, b = _add_row_lanes(a, b, only_first(e, part))
    return a, b, c


# log_softmax's float32 rows need the count ``k`` of the entries at the max only where the row's
# sum ``s = k + rest`` is close to 1.  The count keeps ``rest``'s own bits: ``log s`` is then as
# precise relatively as ``rest`` is, however small (for a row that is all max, ``log s`` is about
# ``rest`` itself, and the max's result is ``-log s``).  Summed uncounted, every exp added to the
# float64 lanes (exactly 1 each at the max, ``scaled_shifted_exp`` of 0), the sum's rounding is
# at most ``d u s`` (``u = 2**-53``; ``d`` additions deep: ``n/lanes`` in a lane, then the two
# halves' trees, ``row_additions``; for a column, its K rows), so ``log s`` is off by at most
# ``d u``, and a result ``r`` (``|r| >= log s >= (s - 1)/s``) by at most ``d u s / (s - 1)`` of
# itself: at most 2**-26, a quarter of a float32 ulp, for ``s <= 2`` when ``s - 1 >= d 2**-26``,
# and for ``s >= 2`` always (``d < 2**26``).  A row whose sum falls short (a peaked row: its
# entries but the max below ``-log(d 2**-26)``, 14.6 below it for n = 64) or is NaN takes the
# counted pass again, and so do the next COUNTED_ROWS_AFTER_SHORTFALL rows of its worker outright;
# a column block with such a column takes it again too, and a worker's column blocks try the
# uncounted sums only after a block whose sums would have sufficed (its first block counts).  So
# a peaked input seldom pays for both passes.  logsumexp keeps the count: its ``m + log s`` can
# cancel, so it needs ``log s`` to float64's precision; float64 keeps it for the 4 ulp bound.
#
# Paired against the counted pass alone (Zen 4, float32, 1 thread / 2 threads): rows 4096x64
# out= 0.99 / 0.94, 1000x100 0.98 / 0.97, 16x12x128x128 0.96 / 0.94, 1024x1024 out= 0.97 / 0.95,
# 4096x4096 0.94 / 0.98; columns 64x4096 ``axis=0`` out= 0.91 / 0.96, 4x21x256x256 ``axis=1``
# 0.90 / 0.77, 2000x2048 ``axis=0`` 0.96 / 0.97; 8x10 1.02 / 1.00.  A peaked input (one entry 30
# above the rest: every slice falls short), 2 threads: 0.99-1.01 (both passes for every slice, as
# first written: rows 4096x64 2.27, 1024x1024 1.78; columns 64x4096 1.54).  The count removed
# outright (wrong with ties, a ceiling): rows 4096x64 0.93, 1000x100 0.88, 1024x1024 0.89;
# columns 64x4096 0.91, with the select at the max too 0.88.  Results bit-identical on inputs of
# standard normals times 3.


@callee(inline="always")
def uncounted_total_suffices(total, additions):
    """Whether the uncounted float64 sum ``total`` of float32 exps, each of which went through at
    most ``additions`` roundings, gives its log to a quarter of a float32 ulp of each result (as
    ``(rest, k) = (total - 1, 1)``; see above); False for a NaN total."""
    return total - 1.0 >= additions * 2.0**-26


#: after a row whose uncounted sum fell short, the rows of the same worker that take the counted
#: pass directly (a peaked input's rows would otherwise take both passes: 4096x64 2.3x the
#: counted pass alone)
COUNTED_ROWS_AFTER_SHORTFALL = 256


@callee(inline="always")
def counted_left_after(left, fell_short, after):
    """The slices still to take the counted pass directly after one that ``fell_short`` (its
    uncounted sum did, and it took the counted pass), given ``left`` of them before it."""
    if fell_short:
        return after
    return max(left - 1, 0)


@callee(inline="always")
def row_additions(n):
    """The roundings a term of a row of ``n`` goes through in the float64 lanes (at least 8 of
    them, then two trees of 8 and their sum), with room to spare."""
    return n // 8 + 8


@callee(fastmath=ORDERED)
def _slice_log_stats_by_vectors(x, mask, sign, m, t_hi, t_lo, ahead, plan, warm, warm_stop, counted):
    """``slice_log_stats`` of a float32 row (masked or not: ``_stats_by_vectors``), storing
    nothing: per vector the exps below the max added to float64 sums (two 8-lane halves) and the
    entries at the max counted (float32 lanes, exact, moved to a float64 total per block), masked
    entries neither, in one pass; with ``counted`` False
    uncounted, ``(total, 0)`` (see ``uncounted_total_suffices``).  ``warm`` (or None): an
    array to be written next, whose first ``warm_stop`` elements are fetched for writing
    alongside."""
    a = splat(0.0)
    b = splat(0.0)
    k = 0.0
    lanes = lanes_of(x)
    for start in range(0, x.size, _BLOCK):
        stop = min(x.size, start + _BLOCK)
        prefetch_share(ahead, plan, start)
        c = splat(np.float32(0.0))
        i = start
        while i + lanes <= stop:
            if warm is not None and i < warm_stop:
                prefetch_write(warm, i)
            a, b, c = _row_log_stats_lanes(x, mask, sign, m, t_hi, t_lo, i, None, a, b, c, counted)
            i += lanes
        if i < stop:
            a, b, c = _row_log_stats_lanes(x, mask, sign, m, t_hi, t_lo, i, stop - i, a, b, c, counted)
        k += np.float64(sum_lanes(c))
    return unscaled(sum_lanes(a) + sum_lanes(b), x), k


@callee()
def slice_log_stats(x, mask, sign, m, t_hi, t_lo, ahead, plan, buffer, head):
    """``(rest, k)``: the sum of ``exp((v - m)/T)`` over entries below ``m`` and the count of
    entries equal to ``m`` (each contributing exactly 1), both float64; prefetch ``ahead`` (or
    None) alongside by ``plan`` (see ``prefetch_share``).
    The terms of each block are staged in ``buffer`` (of the dtype): at the block's own place
    when it has ``x.size`` elements or more, else at its start (it then holds at least
    ``min(x.size, _BLOCK)``).  Staged at their own places, they are stored by blocks that start
    ``head`` elements into the slice (see ``line_head``) and summed by blocks that start at 0, as
    in ``slice_exp_store_sum``; otherwise ``head`` is ignored."""
    rest = 0.0
    c = 0.0
    k = 0.0
    at_own_place = buffer.size >= x.size
    summed = 0
    for origin in range(block_origin(head if at_own_place else 0), x.size, _BLOCK):
        start = max(origin, 0)
        stop = min(x.size, origin + _BLOCK)
        x_block = x[start:stop]
        mask_block = part_of(mask, slice(start, stop))
        terms = buffer[start:stop] if at_own_place else buffer[: stop - start]
        prefetch_share(ahead, plan, start)
        _store_exp_below_max(x_block, terms, mask_block, sign, m, t_hi, t_lo)
        k += _count_equal(x_block, mask_block, sign, m)
        staged, offset = (buffer, 0) if at_own_place else (terms, start)
        while summed < stop and (summed + _BLOCK <= stop or stop == x.size):
            end = min(summed + _BLOCK, stop)
            rest, c = _accumulate(rest, c, staged[summed - offset : end - offset])
            summed = end
    return unscaled(rest + c, x), k


# The final scale ``y *= 1/s`` rounds once.  float64 multiplies directly.  float32 holds the
# float64 factor as a pair ``hi + lo`` of float32s: ``fma(y, hi, y*lo)`` adds the small
# product to the exact ``y * hi`` and rounds once, so it is the correctly rounded product up to
# a 2**-48 relative term (the rounding of ``y*lo``, itself ~2**-24 of the result).  Two
# operations per element; the TwoProd form used before, ``p + fma(y, lo, fma(y, hi, -p))``,
# gave the same results with four (bit-identical on 4M random elements; Xeon, one float32 row
# of 4096 in L1, one thread: the scale pass 0.054 -> 0.040 ns per element).  Widening to
# float64 instead gave the same results at 0.18 ns per element (two conversions each way)
# against 0.06 (Zen 5, in cache, one thread).


@callee(fastmath=ORDERED)
def _scale_by_pair(y, hi, lo):
    for i in range(y.size):
        v = y[i]
        y[i] = fma(v, hi, v * lo)


@callee(fastmath=REDUCTION)
def _scale_float64(y, factor):
    for i in range(y.size):
        y[i] = y[i] * factor


def slice_scale(y, factor_hi, factor_lo):
    """``y *= factor_hi + factor_lo`` (a float64 double-word) with the product rounded once
    (numba only).  float64 ``y`` multiplies by ``factor_hi`` directly when ``factor_lo`` is 0."""
    raise NotImplementedError("slice_scale is callable from numba-compiled code only")


@callee_overload(slice_scale)
def _slice_scale_overload(y, factor_hi, factor_lo):
    # chosen at typing time: a runtime dtype test would compile both loops for every dtype
    if isinstance(y, types.Array) and y.dtype == types.float64:

        def scale(y, factor_hi, factor_lo):
            if factor_lo == 0.0:
                _scale_float64(y, factor_hi)
            else:
                _scale_by_pair(y, factor_hi, factor_lo)

        return scale

    def scale_pair(y, factor_hi, factor_lo):
        hi, lo = pair_like(factor_hi, factor_lo, y)
        _scale_by_pair(y, hi, lo)

    return scale_pair


# log_softmax's writing pass.  With T = 1 it subtracts one double-word ``m + log_sum`` (formed
# once per slice with TwoSum): ``y = (v - shift_hi) - shift_lo``, two subtractions instead of
# a TwoSum and three more operations per element (0.21 -> ~0.06 ns per float32 element).  The
# first subtraction is exact wherever the result is small (Sterbenz), so the entries at the max
# still get ``-log_sum`` to the last bit; elsewhere the two roundings stay within 1.5 ulp.


@callee(fastmath=ORDERED)
def _store_minus_pair(x, out, mask, sign, shift_hi, shift_lo):
    """Store ``(v - shift_hi) - shift_lo`` (-inf where masked).  ``ORDERED``: ``reassoc`` would
    turn this into ``v - (shift_hi + shift_lo)`` and drop ``shift_lo``."""
    ninf = cast_like(-np.inf, x)
    destination = target(x, out)  # hoisted: a call in the loop blocks vectorisation
    for i in range(x.size):
        y = (signed(x[i], sign) - shift_hi) - shift_lo
        if mask is not None:
            y = y if mask[i] else ninf
        destination[i] = y


@callee()
def _shift_pair(m, log_sum, like):
    """``m + log_sum`` (a float64) as a pair in the dtype of ``like``, exact to about 2**-48."""
    total, error = two_sum(np.float64(m), log_sum)
    return pair_like(total, error, like)


def write_log_probabilities(x, out, mask, sign, m, t_hi, t_lo, log_sum):
    """Store ``(v - m)/T - log_sum`` (``log_sum`` a float64; -inf where masked) (numba only)."""
    raise NotImplementedError("write_log_probabilities is callable from numba-compiled code only")


@callee_overload(write_log_probabilities)
def _write_log_probabilities_overload(x, out, mask, sign, m, t_hi, t_lo, log_sum):
    if isinstance(t_hi, types.NoneType):

        def write(x, out, mask, sign, m, t_hi, t_lo, log_sum):
            shift_hi, shift_lo = _shift_pair(m, log_sum, x)
            _store_minus_pair(x, out, mask, sign, shift_hi, shift_lo)

        return write

    def write_scaled(x, out, mask, sign, m, t_hi, t_lo, log_sum):
        log_sum_hi, log_sum_lo = pair_like(log_sum, 0.0, x)
        slice_log_softmax_store(x, out, mask, sign, m, t_hi, t_lo, log_sum_hi, log_sum_lo)

    return write_scaled


@callee(fastmath=REDUCTION)
def slice_log_softmax_store(x, out, mask, sign, m, t_hi, t_lo, log_sum_hi, log_sum_lo):
    """Store ``(v - m)/T - log_sum`` (-inf where masked)."""
    ninf = cast_like(-np.inf, x)
    destination = target(x, out)  # hoisted: a call in the loop blocks vectorisation
    for i in range(x.size):
        y = shifted_log_probability(signed(x[i], sign), m, t_hi, t_lo, log_sum_hi, log_sum_lo)
        if mask is not None:
            y = y if mask[i] else ninf
        destination[i] = y


@callee()
def slice_special(x, out, mask, sign, m, mode):
    """Write the limits for a slice whose max ``m`` is NaN, +inf or -inf.

    NaN: NaN everywhere unmasked.  -inf (every unmasked entry -inf, or none unmasked): softmax
    0, log_softmax -inf.  +inf: the k entries equal to +inf share the probability (1/k, log
    -log(k)); every other entry gets 0 / -inf.  Masked entries always get 0 / -inf.
    """
    ninf = cast_like(-np.inf, x)
    zero = cast_like(0.0, x)
    excluded = ninf if mode == _MODE_LOG_SOFTMAX else zero
    k = 0
    if m == np.inf:
        for i in range(x.size):
            if signed(x[i], sign) == m and (mask is None or mask[i]):
                k += 1
    if mode == _MODE_LOG_SOFTMAX:
        at_inf = cast_like(0.0 - math.log(max(k, 1)), x)  # 0.0 - 0.0 is +0, not -0
    else:
        at_inf = cast_like(1.0 / max(k, 1), x)
    destination = target(x, out)  # hoisted: a call in the loop blocks vectorisation
    for i in range(x.size):
        unmasked = mask is None or mask[i]
        if not unmasked:
            y = excluded
        elif m != m:
            y = m
        elif m == np.inf and signed(x[i], sign) == m:
            y = at_inf
        else:
            y = excluded
        destination[i] = y


@callee()
def log_of_sum(rest, k):
    """``log(k + rest)`` (``k >= 1``), keeping tiny tails (``_log.log_of_total``)."""
    return log_of_total(np.float64(k), np.float64(rest))


def column_log(k, rest, like):
    """``log(k + rest)`` as a float64, as log_softmax's column kernels take it for ``like``'s dtype
    (an array or a float type): to float32 precision for float32 (``_log.log_of_total_f32``: a
    column's results are ``v - m - log s`` with ``|v - m - log s| >= log s``, so an error of an ulp
    of ``log s`` stays within an ulp of the result), else ``log_of_total``, as for ``like=None``,
    logsumexp's (its ``m + log s`` can cancel).  The rows take ``log_of_total`` whatever the dtype:
    one log a row costs next to nothing (numba only)."""
    raise NotImplementedError("column_log is callable from numba-compiled code only")


@callee_overload(column_log)
def _column_log_overload(k, rest, like):
    if isinstance(like, types.Array):
        like = like.dtype
    if like == types.float32:
        return lambda k, rest, like: np.float64(log_of_total_f32(k, rest))
    return lambda k, rest, like: log_of_total(k, rest)


@callee(fastmath=ORDERED)
def log_of_sums(rest, compensation, count, like, log_like):
    """``rest[j] = column_log(max(count[j], 1), unscaled(rest[j] + compensation[j]), log_like)`` for
    every column (sums of scaled exps of ``like``'s dtype; ``log_like``: ``like`` for log_softmax,
    None for logsumexp): the column kernels take one log per column, in a loop that vectorises (the
    logs are branch-free)."""
    for j in range(rest.size):
        rest[j] = column_log(max(count[j], 1.0), unscaled(rest[j] + compensation[j], like), log_like)


# softmax's slice function is inlined into the row drivers, with its max and its exp-and-sum
# loop (not the exp loop itself): called, the three cost 25-30 ns a row, most of a row of 10.
# Paired against the calls (Zen 5, float32 unless stated): 8x10 0.90, 64x10 0.72, 64x1000 0.93,
# 4096x4096 out= 0.97, in place 0.96, float64 64x1000 0.95, 2048x2048 out= 0.96.  Inlining the
# exp loop too made float64 rows slower (64x1000 1.06-1.08); log_softmax, inlining the same max,
# ran 2-6% slower (4096x4096 1.06, 2**24 1.02), so it keeps the called one.  (numba's
# ``forceinline``: LLVM's ``alwaysinline``.  ``kernel`` sets it explicitly false elsewhere: numba
# would otherwise let a callee inherit it from whichever caller compiled it first.)


@callee(forceinline=True)
def probabilities_slice(x, out, mask, sign, t_hi, t_lo, ahead):
    """softmax of one contiguous slice (``out=None``: in place); prefetch ``ahead`` (or None).

    A NaN the max skipped shows as a NaN sum; the NaN limits written then do not read ``x``
    (which holds exps by then when in place)."""
    m = inlined_slice_max_unchecked(x, mask, sign)
    if not math.isfinite(m):
        slice_special(x, out, mask, sign, slice_max(x, mask, sign), _MODE_SOFTMAX)
    else:
        early, late = prefetch_plans(ahead, x.size)
        y = target(x, out)
        head = line_head(y)
        s = slice_exp_store_sum(x, out, mask, sign, m, t_hi, t_lo, ahead, early, head)
        if s != s:
            slice_special(x, out, mask, sign, cast_like(np.nan, x), _MODE_SOFTMAX)
        else:
            factor = 1.0 / s
            if x.size <= _SPLIT_ABOVE:
                slice_scale(y, factor, 0.0)
            else:
                for origin in range(block_origin(head), x.size, _BLOCK):
                    start = max(origin, 0)
                    prefetch_share(ahead, late, start)
                    slice_scale(y[start : min(x.size, origin + _BLOCK)], factor, 0.0)


# Only log_softmax's last pass writes the output.  That pass does two operations per element, so
# it waited on the output's lines (read for ownership from memory) with nothing to compute
# meanwhile: 4096x4096 out= took 7.6 ms against softmax's 4.9 (Xeon, 2 threads), whose output is
# first written by the compute-bound exp pass.  A row of up to _OUT_AS_TERMS_BYTES with a separate
# output therefore has its output lines fetched during the (compute-bound) stats pass: unmasked
# float32 rows by a write prefetch (``prefetchw``) per vector of the one-pass vector stats, the
# others by staging their exps in the output row itself; the last pass then finds them in cache.
# (Longer rows stage in the buffer and fetch nothing early: written out early, their output would
# leave L2 before the last pass, and be fetched twice.  The split-row chunks do the same.)
#
# The vector pass with write prefetches against the staged loops (paired runs, Xeon, 2 threads):
# 4096x4096 out= 0.93, fresh 0.95, in place 0.69-0.72; 64x1000 out= 0.94, fresh 0.93; 32x128256
# fresh 0.87; 8x10 fresh 0.96.  A burst of prefetches for a whole block at its start instead of
# one per vector was 1.11 slower (out=).
_OUT_AS_TERMS_BYTES = 1 << 18


def _log_terms_staging(x, out, buffer):
    """The staging ``buffer`` for ``slice_log_stats`` on log_softmax's masked or float64 rows:
    ``out`` for an output row of up to _OUT_AS_TERMS_BYTES, else ``buffer`` (numba only)."""
    raise NotImplementedError("_log_terms_staging is callable from numba-compiled code only")


@callee_overload(_log_terms_staging)
def _log_terms_staging_overload(x, out, buffer):
    if isinstance(out, types.NoneType):  # in place: x must keep its values until the last pass
        return lambda x, out, buffer: buffer

    def staging(x, out, buffer):
        return out if x.size * x.itemsize <= _OUT_AS_TERMS_BYTES else buffer

    return staging


def _log_row_stats(x, out, mask, sign, m, t_hi, t_lo, ahead, plan, buffer, head, uncounted):
    """``(rest, k, fell_short)``: ``slice_log_stats`` for log_softmax's rows.  Unmasked float32
    rows by vectors in one pass (``_slice_log_stats_by_vectors``), fetching an output row of up to
    _OUT_AS_TERMS_BYTES for writing as it goes: first ``uncounted`` if asked, then counted where
    that sum fell short (``fell_short``: see ``uncounted_total_suffices``); the others staged in
    ``_log_terms_staging`` (numba only)."""
    raise NotImplementedError("_log_row_stats is callable from numba-compiled code only")


@callee_overload(_log_row_stats)
def _log_row_stats_overload(x, out, mask, sign, m, t_hi, t_lo, ahead, plan, buffer, head, uncounted):
    if _stats_by_vectors(x, mask):

        def by_vectors(x, out, mask, sign, m, t_hi, t_lo, ahead, plan, buffer, head, uncounted):
            # in place (out=None) fetches nothing: the max pass left the lines in cache
            warm_stop = x.size if x.size * x.itemsize <= _OUT_AS_TERMS_BYTES else 0
            if uncounted:
                total, _ = _slice_log_stats_by_vectors(x, mask, sign, m, t_hi, t_lo, ahead, plan, out, warm_stop, False)
                if uncounted_total_suffices(total, row_additions(x.size)):
                    return total - 1.0, 1.0, False
            rest, k = _slice_log_stats_by_vectors(x, mask, sign, m, t_hi, t_lo, ahead, plan, out, warm_stop, True)
            return rest, k, uncounted

        return by_vectors

    def staged(x, out, mask, sign, m, t_hi, t_lo, ahead, plan, buffer, head, uncounted):
        rest, k = slice_log_stats(x, mask, sign, m, t_hi, t_lo, ahead, plan, _log_terms_staging(x, out, buffer), head)
        return rest, k, False

    return staged


@callee()
def log_probabilities_slice(x, out, mask, sign, t_hi, t_lo, ahead, buffer, uncounted):
    """log_softmax of one contiguous slice (``out=None``: in place); prefetch ``ahead`` (or None);
    ``buffer``: see ``slice_log_stats``; ``uncounted``: try the uncounted sum first (see
    ``_log_row_stats``).  Returns whether that sum fell short.  A NaN the max skipped shows as a
    NaN ``rest``."""
    fell_short = False
    m = slice_max_unchecked(x, mask, sign)
    if not math.isfinite(m):
        slice_special(x, out, mask, sign, slice_max(x, mask, sign), _MODE_LOG_SOFTMAX)
    else:
        early, late = prefetch_plans(ahead, x.size)
        head = line_head(target(x, out))
        rest, k, fell_short = _log_row_stats(x, out, mask, sign, m, t_hi, t_lo, ahead, early, buffer, head, uncounted)
        if rest != rest:
            slice_special(x, out, mask, sign, cast_like(np.nan, x), _MODE_LOG_SOFTMAX)
        else:
            log_sum = log_of_sum(rest, k)
            if x.size <= _SPLIT_ABOVE:
                write_log_probabilities(x, out, mask, sign, m, t_hi, t_lo, log_sum)
            else:
                for origin in range(block_origin(head), x.size, _BLOCK):
                    start = max(origin, 0)
                    stop = min(x.size, origin + _BLOCK)
                    prefetch_share(ahead, late, start)
                    write_log_probabilities(
                        x[start:stop], part_of(out, slice(start, stop)), part_of(mask, slice(start, stop)),
                        sign, m, t_hi, t_lo, log_sum,
                    )
    return fell_short


@callee()
def logsumexp_slice(x, mask, ahead, buffer):
    """``log(sum(exp(x)))`` over the unmasked entries, as float64; prefetch ``ahead`` (or None).
    A NaN the max skipped makes ``rest``, and so the result, NaN."""
    m = slice_max_unchecked(x, mask, None)
    if not math.isfinite(m):
        return np.float64(slice_max(x, mask, None))
    rest, k = unstaged_log_stats(x, mask, None, m, None, None, ahead, prefetch_plan(ahead), buffer)
    return np.float64(m) + log_of_sum(rest, k)


# ----------------------------------------------------------------------------------------------
# Rows (R, n): one work item per row
# ----------------------------------------------------------------------------------------------


def part_of(array, index):
    """``array[index]``, or None for ``array=None``, decided at typing time (numba only).

    ``None if a is None else a[i]`` does not do this: numba prunes the branch only when ``a``
    is None, so for an array it types the expression as an Optional array, and every callee
    then compiles (and checks at run time) both cases.  ``index`` is anything an array takes:
    an integer, a slice, a tuple such as ``(o, k, slice(j0, j1))``."""
    raise NotImplementedError("part_of is callable from numba-compiled code only")


@callee_overload(part_of)
def _part_of_overload(array, index):
    if isinstance(array, types.NoneType):
        return lambda array, index: None
    return lambda array, index: array[index]


# Every driver starts by replacing its array arguments with ``borrowed`` views: the slices it
# passes down then carry no reference count (an atomic increment and decrement per slice and
# call; see ``_intrinsics.borrowed``).  Not the logsumexp result arrays: they are never sliced,
# and a borrowed array written by ``res[r] = ...`` inside a ``prange`` loop came out garbage
# (numba's parfor lowering, when the row kernels were parfor drivers; regression test in
# tests/test_borrowed.py).

# One driver per function and per serial/parallel, rather than a ``mode`` argument: numba
# compiles both arms of a runtime branch (``numba.literally`` does not prune them), and the
# first call of a fresh install pays for every arm it compiles.


@kernel()
def softmax_rows_serial(x2, out2, mask2, mask_rows, sign, t_hi, t_lo):
    x2, out2, mask2 = borrowed(x2), borrowed(out2), borrowed(mask2)
    for r in range(x2.shape[0]):
        probabilities_slice(
            x2[r],
            part_of(out2, r),
            mask_row(mask2, mask_rows, r),
            sign,
            t_hi,
            t_lo,
            x2[min(r + 1, x2.shape[0] - 1)],
        )


def _softmax_row_range(t, first, stop, x2, out2, mask2, mask_rows, sign, t_hi, t_lo):
    x2, out2, mask2 = borrowed(x2), borrowed(out2), borrowed(mask2)
    for r in range(first, stop):
        probabilities_slice(
            x2[r], part_of(out2, r), mask_row(mask2, mask_rows, r), sign, t_hi, t_lo, x2[min(r + 1, x2.shape[0] - 1)]
        )


#: the parallel driver (``_parallel``): ``(n_rows, workers, x2, out2, mask2, mask_rows, sign, t_hi, t_lo)``,
#: row ``r``'s mask ``mask_row(mask2, mask_rows, r)`` (``mask2=None``: unmasked)
softmax_rows = RangeKernel(_softmax_row_range)


@kernel()
def fill_masked_rows(x2, mask2, sign, filled2):
    """``filled2 = sign * x2`` where ``mask2`` is True, -inf elsewhere (``filled2=None``: into
    ``x2``): masked rows as the unmasked kernels read them, which then give the masked semantics
    (a masked entry's softmax 0, its log_softmax -inf; a row with nothing unmasked all -inf; +inf
    entries sharing the probability) -- except in a row with an unmasked NaN, whose masked
    entries stay 0 (-inf) while the unmasked kernels would make the whole row NaN.  Returns
    whether there is an unmasked NaN, for the caller to write those rows again.  For short rows,
    whose own kernels take no mask (``_numpy_backend._run_rows``, which passes rows that lie back
    to back as one: a loop over ten entries a row took 20 ns a row)."""
    x2, mask2, filled2 = borrowed(x2), borrowed(mask2), borrowed(filled2)
    nan = False
    for r in range(x2.shape[0]):
        nan |= _fill_masked_row(x2[r], mask2[r], sign, target(x2[r], part_of(filled2, r)))
    return nan


@callee(inline="always")
def _fill_masked_row(x, keep, sign, f):
    """``f = sign * x`` where ``keep``, -inf elsewhere (``f`` may be ``x``); whether an entry
    kept is NaN.  (``f`` is taken before the loop: a call in it blocks vectorisation.)"""
    ninf = cast_like(-np.inf, x)
    nan = False
    for j in range(x.size):
        v = x[j]
        nan |= keep[j] and v != v
        f[j] = signed(v, sign) if keep[j] else ninf
    return nan


@callee(inline="always")
def masked_logsumexp_by_filling(rows, x2, mask2, mask_rows, width, res, scratch, chunk, first, stop):
    """logsumexp of the masked rows ``first:stop`` of ``x2`` into ``res`` by the unmasked
    kernels' ``rows(filled2, width, res, first, stop)`` (short or packed rows), ``chunk`` rows at
    a time copied into ``scratch`` (a worker's, at least ``chunk`` rows long) with -inf where
    masked.  That is the masked logsumexp exactly: a masked entry, NaN or +inf included, counts
    for nothing, a row with nothing unmasked is -inf, and an unmasked NaN makes its row NaN; the
    logsumexp kernels write nothing else, so no row needs writing again (as ``fill_masked_rows``'
    do).  The copy stays in the worker's cache between the two passes.  Row ``r``'s mask is
    ``mask_row(mask2, mask_rows, r)``."""
    x2, mask2 = borrowed(x2), borrowed(mask2)  # (not scratch: the serial kernels allocate theirs)
    n = x2.shape[1]
    tile = np.empty(0, np.bool_)
    tiled = -1
    r = first
    while r < stop:
        count = min(chunk, stop - r)
        filled = scratch[: count * n]
        tile, tiled = _fill_chunk_rows(x2, mask2, mask_rows, None, r, count, filled, tile, tiled, chunk)
        rows(filled.reshape((count, n)), width, res[r : r + count], 0, count)  # (a NaN shows in the sum)
        r += count


#: ``_fill_chunk_rows`` fills a chunk against a tile of its one mask row only for rows shorter than
#: this: the tile saves the vector loop's remainder on every row, which only short rows notice.
#: Paired at two threads on the Emerald Rapids Xeon (no tile / tile): rows of 64 1.08-1.10 and
#: of 100 1.05-1.06 (the tile is faster), rows of 128 1.00-1.01, rows of 1000 0.90 (log_softmax
#: 64x1000 with a class mask, chunks of four rows: the tile is slower).
_TILED_ROWS_BELOW = 128


@callee(inline="always")
def _fill_chunk_rows(x2, mask2, mask_rows, sign, r, count, filled, tile, tiled, chunk):
    """Fill ``filled`` with the ``count`` rows of ``x2`` from ``r`` as ``sign * x`` where
    unmasked, -inf where masked (``_fill_masked_row``), and return ``(tile, tiled)``.  A mask of
    x2's rows (``mask_rows=None``) is filled as one run; a broadcast mask's rows (``mask_rows``)
    by runs of consecutive mask rows (a causal mask's T rows), except a chunk of rows shorter
    than ``_TILED_ROWS_BELOW`` that all take one mask row (a padding mask's T rows, a class mask's
    every row), which is filled as one run against ``tile``, that mask row repeated for ``chunk``
    rows (``tiled``: which row ``tile`` holds, -1 for none; it is allocated on first use).  A
    loop over a short row costs its vector loop's remainder per row (about 20 ns a row of 10)."""
    n = x2.shape[1]
    if not given(mask_rows):
        # the chunk's rows as one run (C-contiguous arrays: a loop per row cost its remainder,
        # 20% of a masked log_softmax of 1000x100)
        _fill_masked_row(x2[r : r + count].reshape(count * n), mask2[r : r + count].reshape(count * n), sign, filled)
        return tile, tiled
    m0 = mask_row_index(mask_rows, r)
    one_row = count > 1 and n < _TILED_ROWS_BELOW
    for i in range(1, count):
        if mask_row_index(mask_rows, r + i) != m0:
            one_row = False
            break
    if one_row:
        if tiled != m0:
            if tile.size == 0:
                tile = np.empty(chunk * n, np.bool_)
            for i in range(chunk):
                tile[i * n : (i + 1) * n] = mask2[m0]
            tiled = m0
        _fill_masked_row(x2[r : r + count].reshape(count * n), tile[: count * n], sign, filled)
        return tile, tiled
    i = 0
    while i < count:  # runs of rows whose mask rows follow each other as one
        m0 = mask_row_index(mask_rows, r + i)
        run = 1
        while i + run < count and mask_row_index(mask_rows, r + i + run) == m0 + run:
            run += 1
        if run == 1:
            _fill_masked_row(x2[r + i], mask2[m0], sign, filled[i * n : (i + 1) * n])
        else:
            _fill_masked_row(x2[r + i : r + i + run].reshape(run * n), mask2[m0 : m0 + run].reshape(run * n), sign,
                             filled[i * n : (i + run) * n])
        i += run
    return tile, tiled


def mask_row(mask2, mask_rows, r):
    """Row ``r``'s mask: ``mask2[r]``, or with ``mask_rows`` (a mask broadcast over the leading
    axes, its rows given once) ``mask2[mask_rows[r]]``, or None for ``mask2=None``, decided at
    typing time (numba only)."""
    raise NotImplementedError("mask_row is callable from numba-compiled code only")


@callee_overload(mask_row)
def _mask_row_overload(mask2, mask_rows, r):
    if isinstance(mask2, types.NoneType):
        return lambda mask2, mask_rows, r: None
    return lambda mask2, mask_rows, r: mask2[mask_row_index(mask_rows, r)]


def mask_row_index(mask_rows, r):
    """``mask_rows[r]``, or ``r`` for ``mask_rows=None`` (numba only)."""
    raise NotImplementedError("mask_row_index is callable from numba-compiled code only")


@callee_overload(mask_row_index)
def _mask_row_index_overload(mask_rows, r):
    if isinstance(mask_rows, types.NoneType):
        return lambda mask_rows, r: r
    return lambda mask_rows, r: np.intp(mask_rows[r])


@callee(inline="always")
def masked_rows_by_filling(rows, x2, mask2, mask_rows, out2, width, sign, t_hi, t_lo, log, scratch, chunk, first,
                           stop):
    """softmax (``log``: log_softmax) of the masked rows ``first:stop`` of ``x2`` into ``out2``
    (None: in place) by the unmasked kernels' ``rows(filled2, out2, width, sign, t_hi, t_lo,
    first, stop)`` (short or packed rows), ``chunk`` rows at a time copied into ``scratch`` (a
    worker's, at least ``chunk`` rows long) as ``sign * x`` where unmasked and -inf where masked
    (``fill_masked_rows``' copy, made in cache, a chunk's rows then written from it in one pass:
    in place the chunk's rows are all read before any is written).  Row ``r``'s mask is
    ``mask_row(mask2, mask_rows, r)``.  A row with an unmasked NaN, which those kernels make NaN
    throughout (and only such a row: the limits they write are never NaN, so its first result
    tells), then gets its masked entries back as 0 (-inf)."""
    x2, mask2, out2 = borrowed(x2), borrowed(mask2), borrowed(out2)
    y2 = target(x2, out2)
    n = x2.shape[1]
    excluded = cast_like(-np.inf if log else 0.0, x2)
    tile = np.empty(0, np.bool_)
    tiled = -1
    r = first
    while r < stop:
        count = min(chunk, stop - r)
        filled = scratch[: count * n]
        tile, tiled = _fill_chunk_rows(x2, mask2, mask_rows, sign, r, count, filled, tile, tiled, chunk)
        rows(filled.reshape((count, n)), y2[r : r + count], width, None, t_hi, t_lo, 0, count)
        for i in range(r, r + count):
            if y2[i, 0] != y2[i, 0]:
                keep, y = mask_row(mask2, mask_rows, i), y2[i]
                for j in range(n):
                    if not keep[j]:
                        y[j] = excluded
        r += count


# log_softmax and logsumexp stage each block's terms in a buffer of _BLOCK elements, one per
# worker: allocated per row it cost about 100 ns a row, 9% of log_softmax on rows of 4096 in
# cache and 18% on rows of 1000 (Zen 5, one thread).  The parallel kernels take the buffers from
# the caller (``row_terms``); the serial ones allocate theirs (0.3 us less per call than
# allocating it in Python, 10% of a log_softmax of 8x10).
#
# The serial row drivers stay ordinary numba functions, not range functions run serially: the
# smallest calls (8x10, issue 3's per-call-overhead case) would pay the range kernel's extra
# microsecond.


def row_terms(workers, dtype):
    """One terms buffer per worker for the log_softmax and logsumexp row drivers."""
    return np.empty((workers, _BLOCK), dtype)


@kernel()
def log_softmax_rows_serial(x2, out2, mask2, mask_rows, sign, t_hi, t_lo):
    x2, out2, mask2 = borrowed(x2), borrowed(out2), borrowed(mask2)
    terms = np.empty(_BLOCK, x2.dtype)
    counted_left = 0
    for r in range(x2.shape[0]):
        fell_short = log_probabilities_slice(
            x2[r], part_of(out2, r), mask_row(mask2, mask_rows, r), sign, t_hi, t_lo, x2[min(r + 1, x2.shape[0] - 1)],
            terms, counted_left == 0,
        )
        counted_left = counted_left_after(counted_left, fell_short, COUNTED_ROWS_AFTER_SHORTFALL)


def _log_softmax_row_range(t, first, stop, x2, out2, mask2, mask_rows, sign, t_hi, t_lo, terms):
    x2, out2, mask2 = borrowed(x2), borrowed(out2), borrowed(mask2)
    n_rows = x2.shape[0]
    counted_left = 0
    for r in range(first, stop):
        fell_short = log_probabilities_slice(
            x2[r], part_of(out2, r), mask_row(mask2, mask_rows, r), sign, t_hi, t_lo, x2[min(r + 1, n_rows - 1)],
            terms[t], counted_left == 0,
        )
        counted_left = counted_left_after(counted_left, fell_short, COUNTED_ROWS_AFTER_SHORTFALL)


#: ``(n_rows, workers, x2, out2, mask2, mask_rows, sign, t_hi, t_lo, terms)``, ``terms`` from ``row_terms``
log_softmax_rows = RangeKernel(_log_softmax_row_range)


@kernel()
def logsumexp_rows_serial(x2, mask2, mask_rows, res):
    x2, mask2 = borrowed(x2), borrowed(mask2)
    terms = np.empty(_BLOCK, x2.dtype)
    for r in range(x2.shape[0]):
        res[r] = logsumexp_slice(x2[r], mask_row(mask2, mask_rows, r), x2[min(r + 1, x2.shape[0] - 1)], terms)


def _logsumexp_row_range(t, first, stop, x2, mask2, mask_rows, res, terms):
    x2, mask2 = borrowed(x2), borrowed(mask2)
    n_rows = x2.shape[0]
    for r in range(first, stop):
        res[r] = logsumexp_slice(x2[r], mask_row(mask2, mask_rows, r), x2[min(r + 1, n_rows - 1)], terms[t])


#: ``(n_rows, workers, x2, mask2, mask_rows, res, terms)``
logsumexp_rows = RangeKernel(_logsumexp_row_range)


# ----------------------------------------------------------------------------------------------
# Short rows (R, n <= SHORT_ROW): every pass one loop of explicit vectors, nothing called per row
# ----------------------------------------------------------------------------------------------


# A row of a few vectors spends most of its time outside the vector loops of the general slice
# functions: their calls (array arguments, LLVM's run-time overlap checks), the prefetch plans
# and block bookkeeping, and scalar remainder loops (a row of 10 floats is all remainder).  On the
# Xeon, one thread, a row cost about 70 ns more than its elements (softmax), 165 (log_softmax)
# and 115 (logsumexp), whatever its length: torch was 1.5-3x faster on 4096x64 and 1000x100.
# Unmasked float32 rows of up to SHORT_ROW elements therefore take drivers of their own (chosen
# in Python, so that they compile only when such rows turn up), whose passes are single loops of
# ``_vector`` vectors with the row's last vector partial (masked loads and stores), inlined into
# the driver, and whose exp (or stats) pass prefetches the next row, a line per vector.  The
# arithmetic is the general path's, operation for operation (the max, ``scaled_shifted_exp``,
# the float64 sums in two 8-lane halves as in ``_slice_log_stats_by_vectors``, the one-rounding
# scaling); only the order in which a row's float64 sum is added up differs.
#
# Paired on the Xeon, 2 threads, against the general kernels: 1000x10 softmax 0.36, log_softmax
# 0.38 (the write loops inlined: 0.74 of what they cost called; log1p alone for libm's log and
# log1p, since replaced by ``log_of_total``: 0.90); 4096x64
# softmax 0.66, in place 0.62, log_softmax 0.47, logsumexp 0.52; 1000x100 log_softmax 0.54;
# attention rows 16x12x128x128 softmax 0.76, log_softmax 0.57; 4096x128 softmax 0.77; 16384x512
# softmax 0.89, log_softmax
# 0.82; 4096x1000 log_softmax 0.96-1.01, logsumexp 0.87; 64x1000 log_softmax 0.89-0.92,
# logsumexp 0.90; 8x10 0.96.  The prefetch: memory-bound 16384x256 softmax
# 0.85, log_softmax 0.91, in cache 0.99.  (Without it rows from 512 lost: 2048x512 softmax 1.09,
# 4096x1000 log_softmax fresh 1.23.)  Rows longer than _SPLIT_ABOVE keep the general kernels,
# whose blocks start at the output's line boundary.
#
# float64 rows take them too, but for their sums: a lane-wise float64 sum of float64 exps would
# cost the 4 ulp bound its margin, so each exp is split against _SPLIT as the general rows'
# exact block sums split them (``_add_row_lanes``): the high parts add up exactly in any order
# (a row is at most SHORT_ROW = 2 * _BLOCK terms), the low ones with an error far below the sum's
# ulp, and the results are the general kernels' (where a row's sum below its max is tiny against
# the max's term, and so all low parts, its rounding may differ: an ulp or two of that sum, in
# ulps of 1 for the log results it enters).  Their log_softmax rows are all counted (the count
# keeps float64's 4 ulp bound: ``uncounted_total_suffices``).  Before them a float64 row took the
# general kernels' per-row cost (Zen 5, 2 threads, torch / softmaxkit): 4096x4 log_softmax
# 413.7 us (torch/sk 0.19), logsumexp 405.0 (0.14), 1000x10 log_softmax 98.5 (0.43), logsumexp
# 95.6 (0.29), 4096x16 logsumexp 181.3 (0.41); with them 86.4 (0.90), 75.8 (0.75), 28.2 (1.57),
# 25.0 (1.32), 43.9 (1.62), softmax 4096x4 141.7 -> 42.3 us (0.87 -> 2.90).
#
# A log_softmax row's log of its sum is a chain of dependent operations its writing pass waited
# on: with the log replaced by an addition (to measure) 4096x64 took 0.76 of its time.  So each row
# is written after the next row's max and stats (``_short_log_rows``), and its log runs alongside
# them: paired, 4096x64 0.86-0.87 (fresh 0.86), 1000x10 0.90, 1000x100 0.88-0.94, 16x12x128x128
# 0.97, 8x10 and 64x1000 unchanged.
#
# A row of up to a few vectors is still a chain of dependent steps (its max, reduced across the
# lanes; its exps; their sums, reduced; the log), too short for the core to overlap with the next
# row's.  Rows of at most PAIRED_ROW elements therefore go two at a time (``_short_log_pair_run``,
# its own kernel, chosen in Python): the two maxes in one loop, the two rows' stats in another
# that takes a vector of each in turn, the two rows written after the next pair's stats; row for
# row the same arithmetic (results bit-identical).  Paired on Zen 4 against a row at a time, 2 / 1
# threads: 4096x64 0.93 / 0.94, 4096x32 `out=` 0.85 / 0.84, 1000x100 0.94 / 0.94, 2000x120 0.96 /
# 0.95, 1000x10 0.73 / 0.72, 8x10 0.97 / 0.95; rows of 128 1.01-1.03 (hence PAIRED_ROW = 120),
# 2000x256 1.11 (two rows' exps in flight spill registers).  A peaked input (every row's uncounted
# sum falls short, the counted runs a row at a time) paid 1.04 (4096x64) to 1.13 (1000x100).  A
# first version, with both rows' code written out and the special cases inline, gained nothing
# (4096x64 1.01): the loop's code doubled, and its cold first call took 7.4-8.1 s against 4.0-4.4.


@callee(fastmath=ORDERED, inline="always")
def _running_max(best, x, i, part, sign):
    """``best`` after the lanes at ``i`` of ``x`` (``part``: see ``load_part``), NaN skipped, a
    partial vector's missing lanes taken as -inf."""
    return _max_step(best, signed(load_part(x, i, part), sign), part, x)


@callee(fastmath=ORDERED, inline="always")
def _max_step(best, v, part, like):
    """``best`` after the vector ``v`` (of ``like``'s dtype), as ``_running_max``."""
    v = first_or(v, part, cast_like(-np.inf, like))
    return select(v > best, v, best)


@callee(fastmath=ORDERED, inline="always")
def _short_max(x, sign):
    """``max(sign * x)`` skipping NaN (as ``slice_max_unchecked``); -inf for a row of -inf."""
    lanes = lanes_of(x)
    best = splat(cast_like(-np.inf, x))
    i = 0
    while i + lanes <= x.size:
        best = _running_max(best, x, i, None, sign)
        i += lanes
    if i < x.size:
        best = _running_max(best, x, i, x.size - i, sign)
    return max_lanes(best)


@callee(fastmath=ORDERED, inline="always")
def _short_exps(x, y, sign, m, t_hi, t_lo, ahead):
    """Store ``exp((v - m)/T) * 2**B`` into ``y`` and return their float64 sum and the row's
    last, partial vector of them (zero lanes past the row; all zero for a row of whole vectors),
    which is not stored but scaled in registers; prefetch the row ``ahead`` alongside."""
    lanes = lanes_of(x)
    a = splat(0.0)
    b = splat(0.0)
    tail = splat(cast_like(0.0, x))
    i = 0
    while i + lanes <= x.size:
        prefetch_read(ahead, i)
        e = scaled_shifted_exp(signed(load_part(x, i, None), sign), m, t_hi, t_lo)
        store_part(y, i, e, None)
        a, b = _add_row_lanes(a, b, e)
        i += lanes
    if i < x.size:
        part = x.size - i
        tail = only_first(scaled_shifted_exp(signed(load_part(x, i, part), sign), m, t_hi, t_lo), part)
        a, b = _add_row_lanes(a, b, tail)
    return sum_lanes(a) + sum_lanes(b), tail


@callee(fastmath=ORDERED, inline="always")
def _short_scale(y, hi, lo):
    """``y *= hi + lo`` (``factor`` as ``pair_like``'s pair) rounded once, as ``slice_scale``,
    over the row's whole vectors only (the last, partial one is ``_short_exps``'s ``tail``)."""
    lanes = lanes_of(y)
    i = 0
    while i + lanes <= y.size:
        v = load_part(y, i, None)
        store_part(y, i, fma(v, hi, v * lo), None)
        i += lanes


@callee(fastmath=ORDERED, inline="always")
def _short_log_stats(x, sign, m, t_hi, t_lo, ahead, counted):
    """``(rest, k)`` of ``slice_log_stats`` for a short row, by ``_row_log_stats_lanes``
    (``counted`` False: uncounted, ``(total, 0)``); prefetch the row ``ahead`` alongside."""
    lanes = lanes_of(x)
    a = splat(0.0)
    b = splat(0.0)
    c = splat(cast_like(0.0, x))
    i = 0
    while i + lanes <= x.size:
        prefetch_read(ahead, i)
        a, b, c = _row_log_stats_lanes(x, None, sign, m, t_hi, t_lo, i, None, a, b, c, counted)
        i += lanes
    if i < x.size:
        a, b, c = _row_log_stats_lanes(x, None, sign, m, t_hi, t_lo, i, x.size - i, a, b, c, counted)
    return unscaled(sum_lanes(a) + sum_lanes(b), x), np.float64(sum_lanes(c))


def _short_log_pair(m, log_sum, t_hi, like):
    """The pair a short row's results are written with: ``m + log_sum`` (``_shift_pair``) for
    T = 1, else ``log_sum`` (``pair_like``), as ``write_log_probabilities`` forms them (numba
    only)."""
    raise NotImplementedError("_short_log_pair is callable from numba-compiled code only")


@callee_overload(_short_log_pair)
def _short_log_pair_overload(m, log_sum, t_hi, like):
    if isinstance(t_hi, types.NoneType):
        return lambda m, log_sum, t_hi, like: _shift_pair(m, log_sum, like)
    return lambda m, log_sum, t_hi, like: pair_like(log_sum, 0.0, like)


def _short_log_lanes(x, sign, m, t_hi, t_lo, hi, lo, i, part):
    """The results of the lanes at ``i`` given ``(hi, lo) = _short_log_pair(...)``: for T = 1
    ``(v - hi) - lo``, as ``_store_minus_pair``; else ``shifted_log_probability`` (numba only)."""
    raise NotImplementedError("_short_log_lanes is callable from numba-compiled code only")


@callee_overload(_short_log_lanes)
def _short_log_lanes_overload(x, sign, m, t_hi, t_lo, hi, lo, i, part):
    if isinstance(t_hi, types.NoneType):
        return lambda x, sign, m, t_hi, t_lo, hi, lo, i, part: (signed(load_part(x, i, part), sign) - hi) - lo

    def scaled(x, sign, m, t_hi, t_lo, hi, lo, i, part):
        d_hi, d_lo = scaled_difference(signed(load_part(x, i, part), sign), m, t_hi, t_lo)
        return select(d_hi == cast_like(-np.inf, x), d_hi, (d_hi - hi) + (d_lo - lo))

    return scaled


@callee(fastmath=ORDERED, inline="always")
def _short_log_write(x, y, sign, m, t_hi, t_lo, log_sum):
    """Store ``(v - m)/T - log_sum`` into ``y``, as ``write_log_probabilities``."""
    hi, lo = _short_log_pair(m, log_sum, t_hi, x)
    lanes = lanes_of(x)
    i = 0
    while i + lanes <= x.size:
        store_part(y, i, _short_log_lanes(x, sign, m, t_hi, t_lo, hi, lo, i, None), None)
        i += lanes
    if i < x.size:
        part = x.size - i
        store_part(y, i, _short_log_lanes(x, sign, m, t_hi, t_lo, hi, lo, i, part), part)


@callee(fastmath=ORDERED, inline="always")
def _short_probabilities(x, out, sign, t_hi, t_lo, ahead):
    """softmax of a short row (``out=None``: in place), as ``probabilities_slice``, but for its
    last, partial vector (if any): ``(True, its results)`` for the caller to store, or ``(False,
    zeros)`` where a special row (a max that is not finite, a NaN) has been written whole."""
    zeros = splat(cast_like(0.0, x))
    m = _short_max(x, sign)
    if not math.isfinite(m):
        slice_special(x, out, None, sign, slice_max(x, None, sign), _MODE_SOFTMAX)
        return False, zeros
    y = target(x, out)
    s, tail = _short_exps(x, y, sign, m, t_hi, t_lo, ahead)
    if s != s:  # a NaN entry (the max skipped it)
        slice_special(x, out, None, sign, cast_like(np.nan, x), _MODE_SOFTMAX)
        return False, zeros
    hi, lo = pair_like(1.0 / s, 0.0, y)
    _short_scale(y, hi, lo)
    return True, fma(tail, hi, tail * lo)


@callee(fastmath=ORDERED, inline="always")
def _one_vector_softmax_rows(x2, out2, sign, t_hi, t_lo, first, stop):
    """``_short_softmax_rows`` for rows of at most one vector: each row loaded once and kept in
    registers, its results stored after the next row's load (the same operations as a longer
    row's, so the same bits: 1000x10 in place 12 us a call, into another array too)."""
    n = x2.shape[1]
    ninf = cast_like(-np.inf, x2)
    due = -1  # the row whose result ``pending`` is still to be stored
    pending = splat(cast_like(0.0, x2))
    for r in range(first, stop):
        x = x2[r]
        v = signed(load_part(x, 0, n), sign)
        if due >= 0:
            store_part(target(x2[due], part_of(out2, due)), 0, pending, n)
            due = -1
        m = max_lanes(_max_step(splat(ninf), v, n, x2))
        if not math.isfinite(m):
            slice_special(x, part_of(out2, r), None, sign, slice_max(x, None, sign), _MODE_SOFTMAX)
            continue
        e = only_first(scaled_shifted_exp(v, m, t_hi, t_lo), n)
        a, b = _add_row_lanes(splat(0.0), splat(0.0), e)
        s = sum_lanes(a) + sum_lanes(b)
        if s != s:  # a NaN entry (the max skipped it)
            slice_special(x, part_of(out2, r), None, sign, cast_like(np.nan, x), _MODE_SOFTMAX)
            continue
        hi, lo = pair_like(1.0 / s, 0.0, x)
        pending = fma(e, hi, e * lo)
        due = r
    if due >= 0:
        store_part(target(x2[due], part_of(out2, due)), 0, pending, n)


@callee(fastmath=ORDERED, inline="always")
def _short_softmax_rows(x2, out2, sign, t_hi, t_lo, first, stop):
    """softmax of the short rows ``first:stop`` of ``x2`` (``out2=None``: in place), each as
    ``probabilities_slice``, a row's last, partial vector kept in registers from its exps to its
    scaling and stored after the next row's passes.  In place, a masked store held up the next
    row's loads that came soon after it, though they read none of its bytes (on Zen 5, one thread,
    softmax in place against into another array: 1000x10 37 us a call against 14, 1000x20 40
    against 19, 1000x50 49 against 26; rows of whole vectors, 1000x16 and 1000x64, the same).
    Stored after the next row's max alone, 1000x20 still took 32 us, 1000x10 31."""
    x2, out2 = borrowed(x2), borrowed(out2)
    last = x2.shape[0] - 1
    n = x2.shape[1]
    lanes = lanes_of(x2)
    if n <= lanes:
        _one_vector_softmax_rows(x2, out2, sign, t_hi, t_lo, first, stop)
        return
    whole = n - n % lanes
    part = n - whole
    if part == 0:  # no masked store
        for r in range(first, stop):
            _short_probabilities(x2[r], part_of(out2, r), sign, t_hi, t_lo, x2[min(r + 1, last)])
        return
    due = -1  # the row whose partial vector ``pending`` is still to be stored
    pending = splat(cast_like(0.0, x2))
    for r in range(first, stop):
        scaled, tail = _short_probabilities(x2[r], part_of(out2, r), sign, t_hi, t_lo, x2[min(r + 1, last)])
        if due >= 0:  # after this row's loads, which the store would have held up
            store_part(target(x2[due], part_of(out2, due)), whole, pending, part)
        due = r if scaled else -1
        pending = tail
    if due >= 0:
        store_part(target(x2[due], part_of(out2, due)), whole, pending, part)


@callee(fastmath=ORDERED, inline="always")
def _short_max_pair(xa, xb, sign):
    """``(_short_max(xa, sign), _short_max(xb, sign))`` for two rows of one length, in one loop."""
    lanes = lanes_of(xa)
    best_a = splat(cast_like(-np.inf, xa))
    best_b = best_a
    i = 0
    while i + lanes <= xa.size:
        best_a = _running_max(best_a, xa, i, None, sign)
        best_b = _running_max(best_b, xb, i, None, sign)
        i += lanes
    if i < xa.size:
        best_a = _running_max(best_a, xa, i, xa.size - i, sign)
        best_b = _running_max(best_b, xb, i, xa.size - i, sign)
    return max_lanes(best_a), max_lanes(best_b)


@callee(fastmath=ORDERED, inline="always")
def _short_log_stats_pair(xa, xb, sign, ma, mb, t_hi, t_lo, ahead):
    """``_short_log_stats`` of two rows of one length (maxes ``ma``, ``mb``), uncounted, lane for
    lane the same arithmetic: ``(total_a, total_b)``.  One loop takes a vector of each row in
    turn, swapping the two rows' sums after each (two independent chains, one copy of the exp's
    code); it prefetches the lines of ``ahead`` (the next pair: adjacent rows) alongside."""
    lanes = lanes_of(xa)
    x, m, x_next, m_next = xa, ma, xb, mb
    a, b, c = splat(0.0), splat(0.0), splat(np.float32(0.0))  # the sums of row x
    a_next, b_next, c_next = a, b, c  # of row x_next
    full = xa.size // lanes
    for step in range(2 * full):
        prefetch_read(ahead, step * lanes)
        a, b, c = _row_log_stats_lanes(x, None, sign, m, t_hi, t_lo, (step >> 1) * lanes, None, a, b, c, False)
        a, b, c, a_next, b_next, c_next = a_next, b_next, c_next, a, b, c
        x, m, x_next, m_next = x_next, m_next, x, m
    i = full * lanes
    if i < xa.size:
        for _ in range(2):
            a, b, c = _row_log_stats_lanes(x, None, sign, m, t_hi, t_lo, i, xa.size - i, a, b, c, False)
            a, b, c, a_next, b_next, c_next = a_next, b_next, c_next, a, b, c
            x, m, x_next, m_next = x_next, m_next, x, m
    return unscaled(sum_lanes(a) + sum_lanes(b), xa), unscaled(sum_lanes(a_next) + sum_lanes(b_next), xb)


@callee(inline="always")
def _short_log_due(x2, out2, sign, r, total, k, counted):
    """What row ``r``'s stats ``(total, k)`` leave to do: ``(fell_short, due, log_sum)``.  Its
    uncounted sum fell short (``counted`` False; nothing done), or its writing pass is due
    (``due = r``) with ``log_sum``, or it has a NaN, and its results are written (``due = -1``)."""
    if counted:
        rest = total
    elif uncounted_total_suffices(total, row_additions(x2.shape[1])):
        rest, k = total - 1.0, 1.0
    else:
        return True, -1, 0.0
    if rest != rest:
        slice_special(x2[r], part_of(out2, r), None, sign, cast_like(np.nan, x2), _MODE_LOG_SOFTMAX)
        return False, -1, 0.0
    return False, r, log_of_sum(rest, k)


@callee(inline="always")
def _short_log_write_due(x2, out2, sign, t_hi, t_lo, due, m, log_sum):
    """Row ``due``'s writing pass (none for ``due < 0``)."""
    if due >= 0:
        _short_log_write(x2[due], target(x2[due], part_of(out2, due)), sign, m, t_hi, t_lo, log_sum)


@callee(inline="always")
def _short_log_row_run(x2, out2, sign, t_hi, t_lo, first, stop, counted):
    """log_softmax of the short rows ``first:stop`` (``out2=None``: in place), each as
    ``log_probabilities_slice``, each prefetching the next; a row is written after the next row's
    max and stats, so that its log (a chain of dependent operations) runs alongside those.
    Uncounted for ``counted`` False (a literal, as in ``_row_log_stats_lanes``), up to the first
    row whose sum falls short (or is NaN) or whose max is not finite, which is left untouched and
    returned (``stop`` when none did): the counted run takes it."""
    last = x2.shape[0] - 1
    due = -1  # the row whose writing pass is due, with its max and log-sum
    due_m = cast_like(0.0, x2)
    due_log_sum = 0.0
    r = first
    while r < stop:
        x = x2[r]
        m = _short_max(x, sign)
        if not math.isfinite(m):
            if not counted:
                break
            slice_special(x, part_of(out2, r), None, sign, slice_max(x, None, sign), _MODE_LOG_SOFTMAX)
            r += 1
            continue
        total, k = _short_log_stats(x, sign, m, t_hi, t_lo, x2[min(r + 1, last)], counted)
        _short_log_write_due(x2, out2, sign, t_hi, t_lo, due, due_m, due_log_sum)
        fell_short, due, due_log_sum = _short_log_due(x2, out2, sign, r, total, k, counted)
        due_m = m
        if fell_short:
            break
        r += 1
    _short_log_write_due(x2, out2, sign, t_hi, t_lo, due, due_m, due_log_sum)
    return r


@callee(inline="always")
def _short_log_pair_run(x2, out2, sign, t_hi, t_lo, first, stop):
    """``_short_log_row_run`` uncounted, two rows at a time: the pair's max passes in one loop and
    its stats passes in another, so that two rows' chains of dependent operations run side by
    side (as torch takes a chunk of rows pass by pass), each pair prefetching the next; a pair is
    written after the next pair's max and stats.  The same arithmetic, row for row.  A pair with
    a row of infinities or a NaN ends the run, as a sum that falls short does: the counted
    run takes it."""
    last = x2.shape[0] - 1
    due_a = -1  # the rows whose writing passes are due, with their maxes and log-sums
    due_b = -1
    m_a = cast_like(0.0, x2)
    m_b = cast_like(0.0, x2)
    log_a = 0.0
    log_b = 0.0
    total_a = 0.0
    total_b = 0.0
    ending = False  # once set, the loop writes what is due and ends (one place for the writes)
    r = first
    while True:
        rb = min(r + 1, stop - 1)  # the pair's second row (a last row alone: itself again)
        ma = mb = m_a
        if r >= stop:
            ending = True
        if not ending:
            ma, mb = _short_max_pair(x2[r], x2[rb], sign)
            if math.isfinite(ma) and math.isfinite(mb):
                total_a, total_b = _short_log_stats_pair(x2[r], x2[rb], sign, ma, mb, t_hi, t_lo, x2[min(r + 2, last)])
            else:
                ending = True
        _short_log_write_due(x2, out2, sign, t_hi, t_lo, due_a, m_a, log_a)
        _short_log_write_due(x2, out2, sign, t_hi, t_lo, due_b, m_b, log_b)
        due_b = -1
        if ending:
            break
        fell_short, due_a, log_a = _short_log_due(x2, out2, sign, r, total_a, 0.0, False)
        m_a = ma
        if fell_short:
            break
        if rb > r:
            fell_short, due_b, log_b = _short_log_due(x2, out2, sign, rb, total_b, 0.0, False)
            m_b = mb
            if fell_short:
                r = rb
                ending = True
                continue
        r = rb + 1
    return r


@callee(inline="always")
def _uncounted_row_run(x2, out2, sign, t_hi, t_lo, first, stop):
    """``_short_log_row_run`` uncounted, as ``_short_log_rows`` takes its uncounted runs."""
    return _short_log_row_run(x2, out2, sign, t_hi, t_lo, first, stop, False)


@callee(inline="always")
def _short_log_rows(uncounted_run, x2, out2, sign, t_hi, t_lo, first, stop):
    """log_softmax of the short rows ``first:stop`` (``out2=None``: in place): uncounted by
    ``uncounted_run`` (``_uncounted_row_run`` or ``_short_log_pair_run``), but a row whose sum
    fell short (or whose max is not finite) counted, and the next COUNTED_ROWS_AFTER_SHORTFALL
    rows with it (as the long rows' ``counted_left_after``)."""
    x2, out2 = borrowed(x2), borrowed(out2)
    r = first
    while r < stop:
        r = uncounted_run(x2, out2, sign, t_hi, t_lo, r, stop)
        if r < stop:
            resume = min(stop, r + 1 + COUNTED_ROWS_AFTER_SHORTFALL)
            _short_log_row_run(x2, out2, sign, t_hi, t_lo, r, resume, True)
            r = resume


@callee(inline="always")
def _counted_short_log_rows(x2, out2, sign, t_hi, t_lo, first, stop):
    """log_softmax of the short rows ``first:stop`` of ``x2`` (``out2=None``: in place), every
    row counted: float64 rows, whose sums keep the count for the 4 ulp bound (see
    ``uncounted_total_suffices``)."""
    x2, out2 = borrowed(x2), borrowed(out2)
    _short_log_row_run(x2, out2, sign, t_hi, t_lo, first, stop, True)


@callee(inline="always")
def _short_logsumexp(x, ahead):
    m = _short_max(x, None)
    if not math.isfinite(m):
        return np.float64(slice_max(x, None, None))  # NaN if any entry is NaN, else the max
    rest, k = _short_log_stats(x, None, m, None, None, ahead, True)
    return np.float64(m) + log_of_sum(rest, k)


@callee(inline="always")
def _short_logsumexp_rows(x2, res, first, stop):
    x2 = borrowed(x2)
    last = x2.shape[0] - 1
    for r in range(first, stop):
        res[r] = _short_logsumexp(x2[r], x2[min(r + 1, last)])


@kernel()
def softmax_short_rows_serial(x2, out2, sign, t_hi, t_lo):
    _short_softmax_rows(x2, out2, sign, t_hi, t_lo, 0, x2.shape[0])


def _softmax_short_row_range(t, first, stop, x2, out2, sign, t_hi, t_lo):
    _short_softmax_rows(x2, out2, sign, t_hi, t_lo, first, stop)


@kernel()
def log_softmax_short_rows_serial(x2, out2, sign, t_hi, t_lo):
    _short_log_rows(_uncounted_row_run, x2, out2, sign, t_hi, t_lo, 0, x2.shape[0])


def _log_softmax_short_row_range(t, first, stop, x2, out2, sign, t_hi, t_lo):
    _short_log_rows(_uncounted_row_run, x2, out2, sign, t_hi, t_lo, first, stop)


@kernel()
def log_softmax_paired_rows_serial(x2, out2, sign, t_hi, t_lo):
    _short_log_rows(_short_log_pair_run, x2, out2, sign, t_hi, t_lo, 0, x2.shape[0])


def _log_softmax_paired_row_range(t, first, stop, x2, out2, sign, t_hi, t_lo):
    _short_log_rows(_short_log_pair_run, x2, out2, sign, t_hi, t_lo, first, stop)


@kernel()
def log_softmax_counted_short_rows_serial(x2, out2, sign, t_hi, t_lo):
    _counted_short_log_rows(x2, out2, sign, t_hi, t_lo, 0, x2.shape[0])


def _log_softmax_counted_short_row_range(t, first, stop, x2, out2, sign, t_hi, t_lo):
    _counted_short_log_rows(x2, out2, sign, t_hi, t_lo, first, stop)


@kernel()
def logsumexp_short_rows_serial(x2, res):
    _short_logsumexp_rows(x2, res, 0, x2.shape[0])


def _logsumexp_short_row_range(t, first, stop, x2, res):
    _short_logsumexp_rows(x2, res, first, stop)


@callee(inline="always")
def _short_logsumexp_rows_given_width(x2, width, res, first, stop):
    """``_short_logsumexp_rows`` called as the packed rows' driver is (``width`` unused)."""
    _short_logsumexp_rows(x2, res, first, stop)


@kernel()
def masked_logsumexp_short_rows_serial(x2, mask2, mask_rows, res, chunk):
    scratch = np.empty(chunk * x2.shape[1], x2.dtype)
    masked_logsumexp_by_filling(
        _short_logsumexp_rows_given_width, x2, mask2, mask_rows, None, res, scratch, chunk, 0, x2.shape[0]
    )


def _masked_logsumexp_short_row_range(t, first, stop, x2, mask2, mask_rows, res, chunk, scratch):
    masked_logsumexp_by_filling(
        _short_logsumexp_rows_given_width, x2, mask2, mask_rows, None, res, scratch[t], chunk, first, stop
    )


# The short rows' drivers as ``masked_rows_by_filling`` calls them (``width`` unused), and its
# range functions over them: masked softmax and log_softmax of short rows in one pass.


@callee(inline="always")
def _short_softmax_rows_given_width(x2, out2, width, sign, t_hi, t_lo, first, stop):
    _short_softmax_rows(x2, out2, sign, t_hi, t_lo, first, stop)


@callee(inline="always")
def _short_log_rows_given_width(x2, out2, width, sign, t_hi, t_lo, first, stop):
    _short_log_rows(_uncounted_row_run, x2, out2, sign, t_hi, t_lo, first, stop)


@callee(inline="always")
def _paired_log_rows_given_width(x2, out2, width, sign, t_hi, t_lo, first, stop):
    _short_log_rows(_short_log_pair_run, x2, out2, sign, t_hi, t_lo, first, stop)


@callee(inline="always")
def _counted_log_rows_given_width(x2, out2, width, sign, t_hi, t_lo, first, stop):
    _counted_short_log_rows(x2, out2, sign, t_hi, t_lo, first, stop)


@kernel()
def masked_softmax_short_rows_serial(x2, mask2, mask_rows, out2, width, sign, t_hi, t_lo, chunk):
    scratch = np.empty(chunk * x2.shape[1], x2.dtype)
    masked_rows_by_filling(_short_softmax_rows_given_width, x2, mask2, mask_rows, out2, width, sign, t_hi, t_lo, False,
                           scratch, chunk, 0, x2.shape[0])


@kernel()
def masked_log_softmax_short_rows_serial(x2, mask2, mask_rows, out2, width, sign, t_hi, t_lo, chunk):
    scratch = np.empty(chunk * x2.shape[1], x2.dtype)
    masked_rows_by_filling(_short_log_rows_given_width, x2, mask2, mask_rows, out2, width, sign, t_hi, t_lo, True,
                           scratch, chunk, 0, x2.shape[0])


@kernel()
def masked_log_softmax_paired_rows_serial(x2, mask2, mask_rows, out2, width, sign, t_hi, t_lo, chunk):
    scratch = np.empty(chunk * x2.shape[1], x2.dtype)
    masked_rows_by_filling(_paired_log_rows_given_width, x2, mask2, mask_rows, out2, width, sign, t_hi, t_lo, True,
                           scratch, chunk, 0, x2.shape[0])


@kernel()
def masked_log_softmax_counted_short_rows_serial(x2, mask2, mask_rows, out2, width, sign, t_hi, t_lo, chunk):
    scratch = np.empty(chunk * x2.shape[1], x2.dtype)
    masked_rows_by_filling(_counted_log_rows_given_width, x2, mask2, mask_rows, out2, width, sign, t_hi, t_lo, True,
                           scratch, chunk, 0, x2.shape[0])


def _masked_softmax_short_row_range(
    t, first, stop, x2, mask2, mask_rows, out2, width, sign, t_hi, t_lo, chunk, scratch
):
    masked_rows_by_filling(_short_softmax_rows_given_width, x2, mask2, mask_rows, out2, width, sign, t_hi, t_lo, False,
                           scratch[t], chunk, first, stop)


def _masked_log_softmax_short_row_range(
    t, first, stop, x2, mask2, mask_rows, out2, width, sign, t_hi, t_lo, chunk, scratch
):
    masked_rows_by_filling(_short_log_rows_given_width, x2, mask2, mask_rows, out2, width, sign, t_hi, t_lo, True,
                           scratch[t], chunk, first, stop)


def _masked_log_softmax_paired_row_range(
    t, first, stop, x2, mask2, mask_rows, out2, width, sign, t_hi, t_lo, chunk, scratch
):
    masked_rows_by_filling(_paired_log_rows_given_width, x2, mask2, mask_rows, out2, width, sign, t_hi, t_lo, True,
                           scratch[t], chunk, first, stop)


def _masked_log_softmax_counted_short_row_range(
    t, first, stop, x2, mask2, mask_rows, out2, width, sign, t_hi, t_lo, chunk, scratch
):
    masked_rows_by_filling(_counted_log_rows_given_width, x2, mask2, mask_rows, out2, width, sign, t_hi, t_lo, True,
                           scratch[t], chunk, first, stop)


#: ``(n_rows, workers, x2, out2, sign, t_hi, t_lo)``: unmasked float32 rows of at most SHORT_ROW
softmax_short_rows = RangeKernel(_softmax_short_row_range)
#: as ``softmax_short_rows``
log_softmax_short_rows = RangeKernel(_log_softmax_short_row_range)
#: as ``log_softmax_short_rows``, two rows at a time: for rows of at most PAIRED_ROW elements
log_softmax_paired_rows = RangeKernel(_log_softmax_paired_row_range)
#: as ``log_softmax_short_rows``, every row counted: float64 rows
log_softmax_counted_short_rows = RangeKernel(_log_softmax_counted_short_row_range)
#: ``(n_rows, workers, x2, res)``
logsumexp_short_rows = RangeKernel(_logsumexp_short_row_range)
#: ``(n_rows, workers, x2, mask2, mask_rows, res, chunk, scratch)``: masked short rows (``mask_rows``
#: as ``masked_softmax_short_rows``'), ``scratch`` a row of at least ``chunk * n`` elements a worker
#: (``masked_logsumexp_by_filling``)
masked_logsumexp_short_rows = RangeKernel(_masked_logsumexp_short_row_range)
#: ``(n_rows, workers, x2, mask2, mask_rows, out2, width, sign, t_hi, t_lo, chunk, scratch)``:
#: masked short rows by ``masked_rows_by_filling`` over ``softmax_short_rows``' driver (``width``
#: None; ``mask_rows`` None or the rows of ``mask2`` the rows of ``x2`` take; ``scratch`` as
#: ``masked_logsumexp_short_rows``')
masked_softmax_short_rows = RangeKernel(_masked_softmax_short_row_range)
#: as ``masked_softmax_short_rows``, over ``log_softmax_short_rows``' driver
masked_log_softmax_short_rows = RangeKernel(_masked_log_softmax_short_row_range)
#: ... over ``log_softmax_paired_rows``'
masked_log_softmax_paired_rows = RangeKernel(_masked_log_softmax_paired_row_range)
#: ... over ``log_softmax_counted_short_rows``'
masked_log_softmax_counted_short_rows = RangeKernel(_masked_log_softmax_counted_short_row_range)
#: the longest row (elements) the short-row kernels of log_softmax and logsumexp are for: rows
#: of the general kernels' one block grid
SHORT_ROW = _SPLIT_ABOVE
#: the longest row (elements) log_softmax's short rows take two at a time for (see
#: ``_short_log_pair_run``)
PAIRED_ROW = 120
#: the same for softmax, whose general kernel is as fast from there (64x1000 1.01-1.03 slower
#: short, 1024x1000 1.00, 256x1024 1.03; 2048x512 1.01 but 16384x512 0.89)
SHORT_SOFTMAX_ROW = _BLOCK


# ----------------------------------------------------------------------------------------------
# Rows longer than a chunk: (max, sum) per chunk in parallel, merged per row
# ----------------------------------------------------------------------------------------------


# The kernels take their state arrays from the caller (``split_states``, plain Python): numba's
# np.empty/np.zeros, compiled for every call site in and outside the parallel regions, took
# 0.3-0.4 s of a cold first call.


def split_states(n_rows, per_row, workers, dtype):
    """The drivers' state for ``n_rows`` rows of ``per_row`` chunks each: per chunk ``max``
    (dtype), ``rest`` and ``count`` (float64, zero); per row ``max`` (dtype) and the float64
    factor (``s`` or ``log s``, zero); one terms buffer per worker (dtype)."""
    n_chunks = n_rows * per_row
    return (
        np.empty(n_chunks, dtype), np.zeros(n_chunks), np.zeros(n_chunks),
        np.empty(n_rows, dtype), np.zeros(n_rows), np.empty((workers, _BLOCK), dtype),
    )


@callee(inline="always")
def _chunk_bounds(w, chunks_per_row, chunk, n):
    r = w // chunks_per_row
    lo = (w - r * chunks_per_row) * chunk
    return r, lo, min(n, lo + chunk)


@callee()
def merge_chunk_states(chunk_max, chunk_rest, chunk_count):
    """Merge per-chunk ``(max, rest, count)`` log states of one row into ``(M, rest, k)``.

    A chunk whose max is below the row max contributes ``(count + rest) * exp(m_c - M)`` to
    ``rest``; chunks at the row max add their own ``rest`` and ``count``.
    """
    big_m = chunk_max[0]
    for c in range(1, chunk_max.size):
        big_m = nan_max(big_m, chunk_max[c])
    rest = 0.0
    compensation = 0.0
    k = 0.0
    if math.isfinite(big_m):
        for c in range(chunk_max.size):
            mc = chunk_max[c]
            if mc == big_m:
                term = chunk_rest[c]
                k += chunk_count[c]
            elif mc > -np.inf:
                term = (chunk_count[c] + chunk_rest[c]) * exp_of_difference(mc, big_m)
            else:
                continue
            rest, compensation = compensated_add(rest, compensation, term)
    return big_m, rest + compensation, k


@callee()
def _next_chunk(x2, r, hi, chunk):
    """The chunk after ``x2[r, :hi]`` in the same row (empty at the row end), to prefetch."""
    return x2[r, hi : min(x2.shape[1], hi + chunk)]


def _chunk_log_range(t, first, stop, x2, mask2, sign, t_hi, t_lo, chunk, chunk_max, chunk_rest, chunk_count, terms):
    """Each chunk's ``(max, rest, count)`` log state (``rest`` and ``count`` stay 0 where the max
    is not finite): its max pass reads memory, its exp pass re-reads the chunk from L2, and the
    next chunk is prefetched meanwhile."""
    x2, mask2 = borrowed(x2), borrowed(mask2)
    n = x2.shape[1]
    per_row = (n + chunk - 1) // chunk
    for w in range(first, stop):
        r, lo, hi = _chunk_bounds(w, per_row, chunk, n)
        xc = x2[r, lo:hi]
        maskc = part_of(mask2, (r, slice(lo, hi)))
        m = slice_max(xc, maskc, sign)
        chunk_max[w] = m
        if math.isfinite(m):
            ahead = _next_chunk(x2, r, hi, chunk)
            chunk_rest[w], chunk_count[w] = unstaged_log_stats(
                xc, maskc, sign, m, t_hi, t_lo, ahead, prefetch_plan(ahead), terms[t]
            )


def _chunk_exp_range(t, first, stop, x2, out2, mask2, sign, t_hi, t_lo, chunk, chunk_max, chunk_sum):
    """softmax's first pass: each chunk's max ``m_c``, and ``exp(v - m_c)`` stored with its sum
    (a chunk whose max is not finite is left alone, its sum 0)."""
    x2, out2, mask2 = borrowed(x2), borrowed(out2), borrowed(mask2)
    n = x2.shape[1]
    per_row = (n + chunk - 1) // chunk
    for w in range(first, stop):
        r, lo, hi = _chunk_bounds(w, per_row, chunk, n)
        xc = x2[r, lo:hi]
        maskc = part_of(mask2, (r, slice(lo, hi)))
        m = slice_max(xc, maskc, sign)
        chunk_max[w] = m
        if math.isfinite(m):
            ahead = _next_chunk(x2, r, hi, chunk)
            outc = part_of(out2, (r, slice(lo, hi)))
            chunk_sum[w] = slice_exp_store_sum(
                xc, outc, maskc, sign, m, t_hi, t_lo, ahead, prefetch_plan(ahead), line_head(target(xc, outc))
            )


def _scale_chunk_range(t, first, stop, y2, chunk, chunk_max, chunk_sum, row_max, row_sum):
    """softmax's second pass: chunk ``c`` of a row with a finite max ``M`` is scaled by
    ``exp(m_c - M) / s`` (0 for a chunk with no unmasked entry)."""
    y2 = borrowed(y2)
    n = y2.shape[1]
    per_row = (n + chunk - 1) // chunk
    for w in range(first, stop):
        r, lo, hi = _chunk_bounds(w, per_row, chunk, n)
        if math.isfinite(row_max[r]):
            if chunk_max[w] == -np.inf:
                y2[r, lo:hi] = 0.0
            else:
                # exp(m_c - M) / s as a double-word: the quotient's rounding would otherwise add
                # half an ulp to every float64 output of the chunk
                a = exp_of_difference(chunk_max[w], row_max[r])
                q = a / row_sum[r]
                q_lo = fma(-q, row_sum[r], a) / row_sum[r]
                head = line_head(y2[r, lo:hi])
                if head > 0:
                    slice_scale(y2[r, lo : lo + head], q, q_lo)
                slice_scale(y2[r, lo + head : hi], q, q_lo)


def _store_log_chunk_range(t, first, stop, x2, out2, mask2, sign, t_hi, t_lo, chunk, row_max, row_log_sum):
    """log_softmax's second pass: ``v - M - log s`` for every chunk of a row with finite max."""
    x2, out2, mask2 = borrowed(x2), borrowed(out2), borrowed(mask2)
    n = x2.shape[1]
    per_row = (n + chunk - 1) // chunk
    for w in range(first, stop):
        r, lo, hi = _chunk_bounds(w, per_row, chunk, n)
        big_m = row_max[r]
        if math.isfinite(big_m):
            head = line_head(target(x2[r, lo:hi], part_of(out2, (r, slice(lo, hi)))))
            if head > 0:
                write_log_probabilities(
                    x2[r, lo : lo + head],
                    part_of(out2, (r, slice(lo, lo + head))),
                    part_of(mask2, (r, slice(lo, lo + head))),
                    sign, big_m, t_hi, t_lo, row_log_sum[r],
                )
            write_log_probabilities(
                x2[r, lo + head : hi],
                part_of(out2, (r, slice(lo + head, hi))),
                part_of(mask2, (r, slice(lo + head, hi))),
                sign, big_m, t_hi, t_lo, row_log_sum[r],
            )


# The split passes, run over the chunks by ``RangeKernel`` (``n_chunks, workers, *args``).
chunk_log_states = RangeKernel(_chunk_log_range)
chunk_exp_states = RangeKernel(_chunk_exp_range)
scale_chunks = RangeKernel(_scale_chunk_range)
store_log_chunks = RangeKernel(_store_log_chunk_range)


@callee(inline="always")
def _merge_row_states(x2, out2, mask2, sign, mode, chunk_max, chunk_rest, chunk_count, row_max, row_factor):
    """Each row's ``(M, s)`` (log_softmax: ``(M, log s)``) from its chunks' states, into
    ``row_max`` and ``row_factor``.  A row whose ``M`` is not finite gets its limits from the
    scalar path here; the second pass skips it."""
    n_rows = x2.shape[0]
    per_row = chunk_max.size // n_rows
    for r in range(n_rows):
        states = slice(r * per_row, (r + 1) * per_row)
        big_m, rest, k = merge_chunk_states(chunk_max[states], chunk_rest[states], chunk_count[states])
        row_max[r] = big_m
        if not math.isfinite(big_m):
            slice_special(x2[r], part_of(out2, r), part_of(mask2, r), sign, big_m, mode)
        else:
            row_factor[r] = log_of_sum(rest, k) if mode == _MODE_LOG_SOFTMAX else k + rest


# Rows split into chunks of ``chunk`` elements (parallel).  Per chunk, a max pass (reading
# memory) and an exp pass against that max (re-reading the chunk from L2); the chunks' states
# merge per row into ``(M, s)``; a second pass writes the results.  The caller runs the three
# steps, each its own driver (``_numpy_backend._run_split_rows``): one driver calling the two
# parallel passes compiled everything below it once more, and a cold first call of softmax of
# one row of 2**24 spent 0.65-0.9 s in that layer alone.  One set of functions per function,
# as for whole rows: with ``mode`` a runtime argument, a cold first call of softmax also
# compiled log_softmax's two parallel passes.
#
# In place, a chunk's exps replace its input before the row's max is known.  A row whose max
# turns out NaN or +inf is still right: its entries equal to +inf lie in chunks whose own max is
# not finite, which the first pass leaves alone, and every other entry's limit does not depend
# on its value.


@kernel()
def merge_softmax_rows(x2, out2, mask2, sign, chunk_max, chunk_sum, chunk_count, row_max, row_sum):
    """softmax's merge (``_merge_row_states``): after ``chunk_exp_states``, before
    ``scale_chunks``; ``chunk_count`` is zeros (softmax counts no entries at the max)."""
    x2, out2, mask2 = borrowed(x2), borrowed(out2), borrowed(mask2)
    _merge_row_states(x2, out2, mask2, sign, _MODE_SOFTMAX, chunk_max, chunk_sum, chunk_count, row_max, row_sum)


@kernel()
def merge_log_softmax_rows(x2, out2, mask2, sign, chunk_max, chunk_rest, chunk_count, row_max, row_log_sum):
    """log_softmax's merge: after ``chunk_log_states``, before ``store_log_chunks``."""
    x2, out2, mask2 = borrowed(x2), borrowed(out2), borrowed(mask2)
    _merge_row_states(
        x2, out2, mask2, sign, _MODE_LOG_SOFTMAX, chunk_max, chunk_rest, chunk_count, row_max, row_log_sum
    )


@kernel()
def merge_logsumexp_rows(chunk_max, chunk_rest, chunk_count, res):
    """logsumexp of split rows from their chunks' states (after ``chunk_log_states``)."""
    per_row = chunk_max.size // res.size
    for r in range(res.size):
        states = slice(r * per_row, (r + 1) * per_row)
        big_m, rest, k = merge_chunk_states(chunk_max[states], chunk_rest[states], chunk_count[states])
        res[r] = np.float64(big_m) + log_of_sum(rest, k) if math.isfinite(big_m) else np.float64(big_m)


# ----------------------------------------------------------------------------------------------
# Columns (outer, K, inner): reduce over K, streaming contiguous rows with per-column state
# ----------------------------------------------------------------------------------------------


# The small column glue functions (state, bounds, all-finite) are inlined at numba-IR
# level (``inline="always"``): as separate functions each was compiled, and compiled again in
# every layer above, on the first call (about 0.1 s of it).  They have no float arithmetic whose
# fastmath flags would change, and no ``None`` branches that IR inlining would fail to prune.
# Every column block works in its worker's scratch arrays, not arrays of its own: per-block
# allocations (seven small arrays) cost about 2 us a block, 0.03 ns per element at NCHW widths
# and 0.3 at 256 columns (Zen 5, one thread, in cache).  The kernels take them from the caller
# (``_numpy_backend.column_scratch``, plain Python, reused by a thread's later calls), which
# keeps numba's ``np.empty`` implementations out of their cold first call (about 0.4 s of NCHW
# log_softmax).


@callee(inline="always")
def _column_state(wide, narrow, t, width):
    """Worker ``t``'s scratch cut to a block of ``width`` columns: ``(m, total, compensation,
    count, hi, lo, buffer)``, the per-column max, float64 sum pair and count, a dtype pair
    (``1/s`` or ``log s``) and a row buffer."""
    return (
        narrow[t, 0, :width], wide[t, 0, :width], wide[t, 1, :width], wide[t, 2, :width],
        narrow[t, 1, :width], narrow[t, 2, :width], narrow[t, 3, :width],
    )


# The max pass reads the slab from memory (the later passes find it in L2).  Unmasked, it takes
# eight rows per loop: more streams in flight, and the state loaded and stored once per eight
# rows.  NCHW 4x21x65536 out=, 2 threads, Zen 5, interleaved medians: one row at a time
# 1.83-2.15 ms, four 1.79-2.11, eight 1.71-2.01.  The last K % 8 rows used to take a four-row and
# a one-row loop; padding them to eight instead (repeating the last row) compiles one loop
# function, not three: a cold first call of NCHW softmax 4.8-5.2 -> 4.2-4.4 s, log_softmax
# 5.5-5.9 -> 5.0-5.2 s, at no cost for K >= 8 (within noise) and 6-10% for K = 3.  Prefetching
# row k + 1 while row k is scanned makes the read-only pass faster (0.51 -> 0.36 ms) but the
# kernel slower (2.15 -> 2.29 ms).


@callee()
def _column_block_max(x3, mask3, o, j0, j1, sign, m):
    """``m[:] = `` the per-column max of block ``o``, columns ``j0:j1``."""
    m[:] = cast_like(-np.inf, x3)
    n_k = x3.shape[1]
    last = n_k - 1
    if mask3 is None:
        # Eight rows per loop, and the last K % 8 rows padded to eight by repeating the block's
        # last row (max is idempotent), so that one loop function serves every K: each function
        # compiled here is compiled again in every layer above it on the first call.  (Row by
        # row: a 2-d slice x3[o, k:k+8, j0:j1] has layout "A" and its rows do not vectorise.)
        k = 0
        while k < n_k:
            _accumulate_max8(
                m, x3[o, k, j0:j1], x3[o, min(k + 1, last), j0:j1], x3[o, min(k + 2, last), j0:j1],
                x3[o, min(k + 3, last), j0:j1], x3[o, min(k + 4, last), j0:j1], x3[o, min(k + 5, last), j0:j1],
                x3[o, min(k + 6, last), j0:j1], x3[o, min(k + 7, last), j0:j1], sign,
            )
            k += 8
    else:
        for k in range(n_k):
            _accumulate_max(m, x3[o, k, j0:j1], mask3[o, k, j0:j1], sign)


@callee(fastmath=REDUCTION)
def _accumulate_max8(m, a, b, c, d, e, f, g, h, sign):
    for j in range(m.size):
        ab = nan_max(signed(a[j], sign), signed(b[j], sign))
        cd = nan_max(signed(c[j], sign), signed(d[j], sign))
        ef = nan_max(signed(e[j], sign), signed(f[j], sign))
        gh = nan_max(signed(g[j], sign), signed(h[j], sign))
        m[j] = nan_max(nan_max(ab, cd), nan_max(nan_max(ef, gh), m[j]))


@callee(fastmath=REDUCTION)
def _accumulate_max(m, row, mask, sign):
    ninf = cast_like(-np.inf, row)
    for j in range(m.size):
        v = signed(row[j], sign)
        if mask is not None:
            v = v if mask[j] else ninf
        # not nan_max(m[j], v): LLVM lowers that to "keep m[j] if it is NaN", i.e. a masked
        # store (vmaskmovps, microcoded on AMD): 0.39 against 0.07 ns per element
        m[j] = nan_max(v, m[j])


# As for rows, each column pass stores float32/float64 terms with one vectorised loop and widens
# them into the float64 state with another: a loop doing both does not vectorise.


@callee(fastmath=REDUCTION)
def _store_exp_columns(row, out_row, mask, sign, m, t_hi, t_lo, below_max_only):
    zero = cast_like(0.0, row)
    destination = target(row, out_row)  # hoisted: a call in the loop blocks vectorisation
    for j in range(m.size):
        v = signed(row[j], sign)
        e = scaled_shifted_exp(v, m[j], t_hi, t_lo)
        keep = v < m[j] if below_max_only else True
        if mask is not None:
            keep = keep and mask[j]
        destination[j] = e if keep else zero


@callee(fastmath=ORDERED)
def _add_compensated(total, compensation, terms):
    """Per column: ``total + compensation += terms`` (TwoSum; vectorised across columns, and
    accurate however many rows K are summed)."""
    for j in range(total.size):
        a = total[j]
        b = terms[j]
        s = a + b
        bb = s - a
        compensation[j] += (a - (s - bb)) + (b - bb)
        total[j] = s


@callee(fastmath=REDUCTION)
def _add_float32(total, terms):
    for j in range(total.size):
        total[j] += np.float64(terms[j])


def _add_widened(total, compensation, terms):
    """Per column ``total (+ compensation) += terms``.  float64 terms need the TwoSum (a plain
    running sum over K rows errs by ~K/2 ulp); float32 terms summed in float64 err by ~K * 2**-53,
    far below a float32 ulp, so they skip it (measured ~15% of the NCHW column kernel).
    (numba only; chosen at typing time, so each dtype compiles one loop.)"""
    raise NotImplementedError("_add_widened is callable from numba-compiled code only")


@callee_overload(_add_widened)
def _add_widened_overload(total, compensation, terms):
    if terms.dtype == types.float64:
        return lambda total, compensation, terms: _add_compensated(total, compensation, terms)
    return lambda total, compensation, terms: _add_float32(total, terms)


@callee(fastmath=REDUCTION)
def _add_equal_counts(count, row, mask, sign, m):
    for j in range(count.size):
        equal = signed(row[j], sign) == m[j]
        if mask is not None:
            equal = equal and mask[j]
        count[j] += 1.0 if equal else 0.0


# softmax's sum and scaling passes loop over the block's rows inside one function each: a loop
# function called once per row costs about 100 cycles a call (its array arguments and LLVM's
# run-time overlap checks), which at 256 columns was 0.16 ns per element for the scaling pass
# alone.  The exp loop stays a function called per row: inlined into a loop over the rows it
# was faster on narrow blocks but 5-7% slower at NCHW's 3120 columns.  Zen 5, one thread, a
# K = 21 block in cache, ns per float32 element, before -> after, two runs: 256 columns
# 0.43-0.47 -> 0.39-0.41, 1024 0.31-0.33 -> 0.30, 3120 0.298-0.308 -> 0.29-0.30.  Paired
# end-to-end (out=, 2 threads, with the scratch change), after / before: 4x21x65536 0.95-0.96,
# float64 0.94, 16x64x8192 0.95-0.97, 64x10x4096 0.94-0.99.


def _add_rows(s, s_comp, y3, o, k0, k1, j0, j1):
    """Add rows ``k0:k1`` (at most 4) of ``y3[o, :, j0:j1]`` to the per-column sums (numba only).
    float32 rows are added four at a time, so that the float64 state is loaded and stored once
    per four rows (0.084 against 0.125 ns per element, one row at a time)."""
    raise NotImplementedError("_add_rows is callable from numba-compiled code only")


@callee_overload(_add_rows)
def _add_rows_overload(s, s_comp, y3, o, k0, k1, j0, j1):
    if y3.dtype == types.float64:

        def add_compensated(s, s_comp, y3, o, k0, k1, j0, j1):
            for k in range(k0, k1):
                _add_compensated(s, s_comp, y3[o, k, j0:j1])

        return add_compensated

    def add_float32(s, s_comp, y3, o, k0, k1, j0, j1):
        if k1 - k0 == 4:
            a, b, c, d = y3[o, k0, j0:j1], y3[o, k0 + 1, j0:j1], y3[o, k0 + 2, j0:j1], y3[o, k0 + 3, j0:j1]
            for j in range(s.size):
                s[j] += (np.float64(a[j]) + np.float64(b[j])) + (np.float64(c[j]) + np.float64(d[j]))
        else:
            for k in range(k0, k1):
                _add_float32(s, y3[o, k, j0:j1])

    return add_float32


@callee(fastmath=ORDERED)
def _scale_rows(y3, o, j0, j1, inv_s_hi, inv_s_lo):
    """Per column ``y *= inv_s`` over every row of block ``o``, rounded once (the pair form of
    ``slice_scale``; float64 passes ``inv_s_lo = 0``, which the fma then adds exactly)."""
    for k in range(y3.shape[1]):
        y = y3[o, k, j0:j1]
        for j in range(y.size):
            v = y[j]
            y[j] = fma(v, inv_s_hi[j], v * inv_s_lo[j])


@callee(fastmath=REDUCTION)
def _log_softmax_row(row, out_row, mask, sign, m, t_hi, t_lo, log_sum_hi, log_sum_lo):
    ninf = cast_like(-np.inf, row)
    destination = target(row, out_row)  # hoisted: a call in the loop blocks vectorisation
    for j in range(m.size):
        y = shifted_log_probability(signed(row[j], sign), m[j], t_hi, t_lo, log_sum_hi[j], log_sum_lo[j])
        if mask is not None:
            y = y if mask[j] else ninf
        destination[j] = y


@callee(fastmath=ORDERED)
def _store_minus_pairs(row, out_row, mask, sign, shift_hi, shift_lo):
    """Per column ``(v - shift_hi) - shift_lo`` (-inf where masked): the column form of
    ``_store_minus_pair`` (``ORDERED``: ``reassoc`` would drop ``shift_lo``)."""
    ninf = cast_like(-np.inf, row)
    destination = target(row, out_row)  # hoisted: a call in the loop blocks vectorisation
    for j in range(shift_hi.size):
        y = (signed(row[j], sign) - shift_hi[j]) - shift_lo[j]
        if mask is not None:
            y = y if mask[j] else ninf
        destination[j] = y


# log_softmax's writing pass over a column block.  With T = 1 it subtracts one double-word
# ``m + log s`` per column, as the row kernel does (two subtractions per element instead of a
# TwoSum and three more operations: 0.17 -> 0.05 ns per float32 element, in L2, one thread).


def write_log_probability_rows(x3, out3, mask3, sign, m, t_hi, t_lo, log_sum, hi, lo, o, j0, j1):
    """Write rows of block ``o``, columns ``j0:j1``, of log_softmax given the per-column max ``m``
    and float64 ``log_sum``; ``hi``, ``lo`` are scratch of the dtype (numba only)."""
    raise NotImplementedError("write_log_probability_rows is callable from numba-compiled code only")


@callee_overload(write_log_probability_rows)
def _write_log_probability_rows_overload(x3, out3, mask3, sign, m, t_hi, t_lo, log_sum, hi, lo, o, j0, j1):
    if isinstance(t_hi, types.NoneType):

        # optimised on its own (see _fastmath): NCHW log_softmax took 1.08-1.14x as long without
        @optimised_alone
        def write_shifted(x3, out3, mask3, sign, m, t_hi, t_lo, log_sum, hi, lo, o, j0, j1):
            for j in range(m.size):
                hi[j], lo[j] = _shift_pair(m[j], log_sum[j], x3)
            for k in range(x3.shape[1]):
                _store_minus_pairs(
                    x3[o, k, j0:j1], part_of(out3, (o, k, slice(j0, j1))),
                    part_of(mask3, (o, k, slice(j0, j1))), sign, hi, lo,
                )

        return write_shifted

    def write_scaled(x3, out3, mask3, sign, m, t_hi, t_lo, log_sum, hi, lo, o, j0, j1):
        for j in range(m.size):
            hi[j], lo[j] = pair_like(log_sum[j], 0.0, x3)
        for k in range(x3.shape[1]):
            _log_softmax_row(
                x3[o, k, j0:j1], part_of(out3, (o, k, slice(j0, j1))),
                part_of(mask3, (o, k, slice(j0, j1))), sign, m, t_hi, t_lo, hi, lo,
            )

    return write_scaled


# One pass function and one set of drivers per function, as for rows: a runtime ``mode`` would
# compile both functions' loops into every call's first use.  A block holding a column whose max
# is NaN or +inf is left untouched by the drivers, which flag it in ``pending``.  The caller then
# takes those columns' limits (with NumPy: rare inputs, and nothing more to compile), and runs
# the same driver again on the pending blocks with ``stand_ins``: a finite stand-in max (0) for
# those columns, so that the vector passes stay cheap and NaN-free, and the caller overwrites
# their results with the limits.  The limits come first because in place the passes overwrite
# the input.  (Until 2026-12-02 a separate driver per function did the pending blocks, compiling
# the passes again below it, and the scalar limits with them: a cold first call of NCHW
# log_softmax whose input holds a NaN took 5.1-5.6 s where one without took 4.2-4.5.)
#
# A column whose max is -inf (every entry -inf, or none unmasked: a mask that drops pixels of
# NCHW drops whole columns) the drivers do at once with the same stand-in: its exps are all 0,
# so its sum is 0, which softmax's ``1/s`` takes as 0 and log_softmax's ``log(max(count, 1) +
# 0)`` as 0, and the passes write its limits, 0 and -inf, themselves.  (log_softmax's uncounted
# sum of such a column, 0, never suffices: it takes the counted one.)  Until 2026-12-06 those
# columns were flagged too: 4x21x256x256 over axis 1 with 1% of its pixels masked took 4.4x the
# unmasked call, with 30% 15x.


@callee()
def _stand_in_max(m):
    """Replace each non-finite max of ``m`` by 0 (the stand-ins); returns True, so that the
    drivers can call it in their condition."""
    for j in range(m.size):
        if not math.isfinite(m[j]):
            m[j] = 0.0
    return True


@callee(inline="always")
def _all_finite(m):
    for j in range(m.size):
        if not math.isfinite(m[j]):
            return False
    return True


@callee(inline="always")
def _none_above_finite(m):
    """Whether no max of ``m`` is NaN or +inf: every one that is not finite is -inf."""
    for j in range(m.size):
        if not m[j] < np.inf:
            return False
    return True


# Unmasked softmax blocks (the wide ones, on most CPUs) store and sum their exps in one pass of
# explicit vectors (``_vector``; the functions are with log_softmax's below): per vector of
# columns and group of four rows, the float64 sums loaded once, the rows' exps stored and added,
# the sums stored back, and one cache line of the worker's next block prefetched per vector (the
# same row, the same column offset).  The whole next block is so requested evenly through the exp
# pass, and its max pass reads it from L2 instead of waiting for memory.  (A scalar loop does not
# vectorise with a prefetch in it, nor when it both stores the exps and adds them to the state.)
# "Wide" is four output rows of the block larger than ``COLUMN_FUSE_ABOVE_BYTES``, 32 KiB: then
# the separate sum pass would read them back from L2.  Narrower blocks keep the two loops, exps
# then sums, whose sums read L1 -- except on Zen 5, which fuses every block (below).
#
# NCHW 4x21x65536 (3120-column blocks), one thread, in cache: max 0.05 ns per element, exps 0.20,
# sums 0.08, scaling 0.10; the fused pass costs what the exp and sum loops cost (0.28: the exp's
# vector arithmetic bounds both), so the gain is the prefetch (without it the fused pass was
# 6-9% slower).  Paired against the two loops (Xeon): NCHW 0.91-0.97, float64 0.87.  On narrow
# blocks the fused pass lost there (8x256x4096 1.09, 16x64x8192 1.02), and an exp pass by vectors
# with the prefetch but the sums apart was mixed (8x256x4096 0.91-0.97, 16x64x8192 0.94, but
# 4x150x4096 1.05 and 1024x3x1024 1.06 slower).  Also tried: one row's prefetches as a burst
# after its exp loop (1.07 slower), a quarter of the prefetch in the scaling pass (1.05), and
# register tiles, a 16-column tile's max, exps, sum and scaling over all K rows in L1 (1.39:
# NCHW's rows are 256 KiB apart, so a tile's 42 lines share one L1 set).
#
# On Zen 5 the fused pass won on narrow blocks too.  Paired both ways against the two loops, 2
# threads: 8x256x4096 out= 0.81, fresh 0.88, in place 0.93, float64 0.75; 1024x3x1024 0.84 /
# 0.83 / 0.92, float64 0.81; 2x1000x8192 0.84; 16x64x8192 0.93; 4x150x4096 0.98; 64x10x4096
# 0.99.  NCHW (wide): float32 0.86-0.96 in every mode; float64 in place 0.88-0.93, but out=
# 1.18-1.20 slower (kept fused: one form per block width).  The Xeon's narrow-block figures may
# carry the bias that, on Zen 5, favoured the older code by 5-7% when each version had its own
# out= buffer (docs/performance.md, "An eighth Zen 5 session"; not checked on the Xeon); until a
# Xeon measures them again, CPUs other than Zen 5 keep the 32 KiB threshold.
#
# On Zen 4 (2026-12-04, benchmarks/pair_revisions.py, 2 threads, every block fused against the
# threshold) it depends on the layout's size: from 32 MiB, where input and output no longer fit
# the 32 MiB L3 and the next block's prefetch pays, 64x32x4096 0.83, 8x256x4096 0.88 (fresh 0.92),
# 32x64x4096 softmin 0.89, 16x64x8192 0.86-0.95, float64 4x256x4096 0.73; in place it lost
# (8x256x4096 1.16, 16x64x8192 1.04); at 16 MiB mixed (16x64x4096 0.93, 4x256x4096 1.02); in
# cache it lost (32x32x512 1.19, 4x32x5000 1.11, 1x1024x1024 1.09, 2x256x4096 1.09, 8x64x4096
# 1.07, 128x64x256 1.03).  So Zen 4 fuses every block of a layout of COLUMN_FUSE_LAYOUT_BYTES
# or more computed out of place, and keeps the threshold otherwise.  (An earlier Zen 4 figure
# here, "lost or tied", compared a copy of the package with itself.)  The backend passes the
# threshold per call, so tests can pick either form anywhere.
_FUSE_EVERY_COLUMN_BLOCK = ("znver5",)
_FUSE_EVERY_BLOCK_OF_LARGE_LAYOUTS = ("znver4",)
#: Four output rows of an unmasked softmax column block above this many bytes: the exps are
#: summed in the vector pass; at or below it, by the two loops.
COLUMN_FUSE_ABOVE_BYTES = -1 if target_cpu() in _FUSE_EVERY_COLUMN_BLOCK else 32 << 10
#: Layouts of at least this many bytes, computed out of place, fuse every block whatever
#: COLUMN_FUSE_ABOVE_BYTES says (-1: no such size on this CPU).
COLUMN_FUSE_LAYOUT_BYTES = 32 << 20 if target_cpu() in _FUSE_EVERY_BLOCK_OF_LARGE_LAYOUTS else -1


def _store_exps_and_sums(x3, out3, mask3, sign, t_hi, t_lo, o, j0, j1, m, total, compensation, ahead, fuse_above):
    """The exps of block ``o``'s columns ``j0:j1`` stored and summed (``total + compensation``)
    per column: by one pass of vectors, prefetching the block at ``ahead = (o, j0)``, for blocks
    without a mask whose four output rows take more than ``fuse_above`` bytes; else by scalar
    loops (numba only)."""
    raise NotImplementedError("_store_exps_and_sums is callable from numba-compiled code only")


@callee_overload(_store_exps_and_sums)
def _store_exps_and_sums_overload(
    x3, out3, mask3, sign, t_hi, t_lo, o, j0, j1, m, total, compensation, ahead, fuse_above
):
    contiguous = all(a.layout == "C" for a in (x3, out3, m, total, compensation) if isinstance(a, types.Array))
    if isinstance(mask3, types.NoneType) and contiguous:  # (vector loads need rows of stride 1)

        def by_vectors(x3, out3, mask3, sign, t_hi, t_lo, o, j0, j1, m, total, compensation, ahead, fuse_above):
            if 4 * (j1 - j0) * x3.itemsize <= fuse_above:
                _exps_then_sums(x3, out3, mask3, sign, t_hi, t_lo, o, j0, j1, m, total, compensation)
                return
            y3 = target(x3, out3)
            narrow_compensation = _lane_compensation(compensation, x3)
            for k0 in range(0, x3.shape[1], 4):
                k1 = min(x3.shape[1], k0 + 4)
                _exp_sum_row_group(x3, y3, sign, t_hi, t_lo, o, k0, k1, j0, j1, m, total, narrow_compensation, ahead)

        return by_vectors

    return lambda x3, out3, mask3, sign, t_hi, t_lo, o, j0, j1, m, total, compensation, ahead, fuse_above: (
        _exps_then_sums(x3, out3, mask3, sign, t_hi, t_lo, o, j0, j1, m, total, compensation)
    )


@callee(inline="always")
def _exps_then_sums(x3, out3, mask3, sign, t_hi, t_lo, o, j0, j1, m, total, compensation):
    """The exps of block ``o``'s columns ``j0:j1`` stored by one loop per row, then summed four
    rows at a time by another."""
    y3 = target(x3, out3)
    for k0 in range(0, x3.shape[1], 4):
        k1 = min(x3.shape[1], k0 + 4)
        for k in range(k0, k1):
            _store_exp_columns(
                x3[o, k, j0:j1], part_of(out3, (o, k, slice(j0, j1))),
                part_of(mask3, (o, k, slice(j0, j1))), sign, m, t_hi, t_lo, False,
            )
        _add_rows(total, compensation, y3, o, k0, k1, j0, j1)


@callee()
def _probabilities_column_passes(x3, out3, mask3, sign, t_hi, t_lo, o, j0, j1, state, ahead, fuse_above):
    """softmax over K of the columns ``j0:j1`` of block ``o``, given their (finite) max in
    ``state``: exps stored and summed four rows at a time, then scaled by ``1/s``; ``ahead =
    (o, j0)`` is the block to prefetch meanwhile (``fuse_above``: see ``_store_exps_and_sums``)."""
    m, total, compensation, _, inv_s_hi, inv_s_lo, _ = state
    total[:] = 0.0
    compensation[:] = 0.0
    _store_exps_and_sums(x3, out3, mask3, sign, t_hi, t_lo, o, j0, j1, m, total, compensation, ahead, fuse_above)
    y3 = target(x3, out3)
    for j in range(m.size):
        s = total[j] + compensation[j]
        inv_s_hi[j], inv_s_lo[j] = pair_like(1.0 / s if s > 0.0 else 0.0, 0.0, x3)
    _scale_rows(y3, o, j0, j1, inv_s_hi, inv_s_lo)


def _column_terms_staging(out3, buffer, o, k, j0, j1):
    """Where ``_column_log_sums`` stages row ``k``'s terms: its output row ``out3[o, k, j0:j1]``
    (a block of output fits in L2 beside its input, so the writing pass then finds it in cache),
    or ``buffer`` for ``out3=None`` (numba only)."""
    raise NotImplementedError("_column_terms_staging is callable from numba-compiled code only")


@callee_overload(_column_terms_staging)
def _column_terms_staging_overload(out3, buffer, o, k, j0, j1):
    if isinstance(out3, types.NoneType):  # in place, or logsumexp
        return lambda out3, buffer, o, k, j0, j1: buffer
    return lambda out3, buffer, o, k, j0, j1: out3[o, k, j0:j1]


# log_softmax and logsumexp of unmasked blocks take their stats by vectors in one pass, per vector
# of columns and group of four rows: the max, the float64 sums and the counts at the max loaded
# once, the exps below the max added and the entries at it counted in registers, the state stored
# back; each row's terms are still staged in its output row for out= (it warms the output lines
# for the writing pass), and one line of the worker's next block is prefetched per vector, as
# for softmax.  float32 exps are summed in float64 (two 8-lane halves), float64 ones by TwoSum,
# as in the row-by-row passes.  Here the fused pass replaces three loops over the block's rows
# (and, in place and for logsumexp, the staging of terms in a buffer): paired on the Xeon against
# those, NCHW log_softmax 0.78-0.81, logsumexp 0.73, 8x256x4096 logsumexp 0.79.  The entries at the max are
# counted in the dtype's lanes through a group (small integers: exact) and added to the float64
# counts once per group, not widened row by row: float32 64x4096 `axis=0` log_softmax 0.89,
# logsumexp 0.91, NCHW 0.97 / 0.91, 1024x1024 `axis=0` 0.97 (float64: unchanged).


def _lane_sums(total, compensation, index, part):
    """The float64 sums of the lanes at ``index`` of a float32 (``compensation`` None) or
    float64 block: ``(sums of the first half, of the second)`` or ``(sums, compensations)``
    (numba only)."""
    raise NotImplementedError("_lane_sums is callable from numba-compiled code only")


@callee_overload(_lane_sums)
def _lane_sums_overload(total, compensation, index, part):
    half = LANES[types.float64]
    if isinstance(compensation, types.NoneType):
        if isinstance(part, types.NoneType):
            return lambda total, compensation, index, part: (load(total, index), load(total, index + half))
        return lambda total, compensation, index, part: (
            load_part(total, index, min(part, half)), load_part(total, index + half, part - half)
        )
    return lambda total, compensation, index, part: (
        load_part(total, index, part), load_part(compensation, index, part)
    )


def _store_lane_sums(total, compensation, index, part, a, b):
    """Store what ``_lane_sums`` loads (numba only)."""
    raise NotImplementedError("_store_lane_sums is callable from numba-compiled code only")


@callee_overload(_store_lane_sums)
def _store_lane_sums_overload(total, compensation, index, part, a, b):
    half = LANES[types.float64]
    if isinstance(compensation, types.NoneType):
        if isinstance(part, types.NoneType):

            def store_halves(total, compensation, index, part, a, b):
                store_part(total, index, a, None)
                store_part(total, index + half, b, None)

            return store_halves

        def store_part_halves(total, compensation, index, part, a, b):
            store_part(total, index, a, min(part, half))
            store_part(total, index + half, b, part - half)

        return store_part_halves

    def store_pair(total, compensation, index, part, a, b):
        store_part(total, index, a, part)
        store_part(compensation, index, b, part)

    return store_pair


def _add_lanes(a, b, e):
    """``(a, b) += e`` per lane (see ``_lane_sums``; numba only)."""
    raise NotImplementedError("_add_lanes is callable from numba-compiled code only")


@callee_overload(_add_lanes)
def _add_lanes_overload(a, b, e):
    if e.dtype == types.float32:
        return lambda a, b, e: (a + widen_low(e), b + widen_high(e))
    return lambda a, b, e: compensated_add(a, b, e)


def _add_row_lanes(a, b, e):
    """``(a, b) += e`` per lane for a short row's float64 sum ``sum_lanes(a) + sum_lanes(b)``:
    float32 as ``_add_lanes``; a float64 ``e``'s exps split against _SPLIT (``_split_sums``,
    the general rows' exact block sums, lane by lane): ``a`` adds their high parts, exactly in
    any order (a row of at most SHORT_ROW = 2 * _BLOCK terms), ``b`` the low ones (numba only)."""
    raise NotImplementedError("_add_row_lanes is callable from numba-compiled code only")


@callee_overload(_add_row_lanes)
def _add_row_lanes_overload(a, b, e):
    if e.dtype == types.float32:
        return lambda a, b, e: _add_lanes(a, b, e)

    def split(a, b, e):
        hi, lo = _split_at(e, _SPLIT)
        return a + hi, b + lo

    return split


def _lane_compensation(compensation, like):
    """``compensation`` for float64 blocks, None for float32 ones (their float64 sums need none;
    numba only)."""
    raise NotImplementedError("_lane_compensation is callable from numba-compiled code only")


@callee_overload(_lane_compensation)
def _lane_compensation_overload(compensation, like):
    if like.dtype == types.float32:
        return lambda compensation, like: None
    return lambda compensation, like: compensation


def _lane_counts(count, index, part, like):
    """The float64 counts of the lanes at ``index``, for ``_add_lanes``: two halves for float32
    lanes; for float64 ones the counts and a zero compensation (their TwoSum of small integers
    leaves it zero, so it is not stored; numba only)."""
    raise NotImplementedError("_lane_counts is callable from numba-compiled code only")


@callee_overload(_lane_counts)
def _lane_counts_overload(count, index, part, like):
    if like.dtype == types.float32:
        return lambda count, index, part, like: _lane_sums(count, None, index, part)
    return lambda count, index, part, like: (load_part(count, index, part), splat(0.0))


def _store_lane_counts(count, index, part, like, ca, cb):
    """Store what ``_lane_counts`` loads (numba only)."""
    raise NotImplementedError("_store_lane_counts is callable from numba-compiled code only")


@callee_overload(_store_lane_counts)
def _store_lane_counts_overload(count, index, part, like, ca, cb):
    if like.dtype == types.float32:
        return lambda count, index, part, like, ca, cb: _store_lane_sums(count, None, index, part, ca, cb)
    return lambda count, index, part, like, ca, cb: store_part(count, index, ca, part)


def _stage_terms(out3, index, terms, part):
    """``out3[index:] = terms`` (lanes as ``store_part``); nothing for ``out3=None`` (numba only)."""
    raise NotImplementedError("_stage_terms is callable from numba-compiled code only")


@callee_overload(_stage_terms)
def _stage_terms_overload(out3, index, terms, part):
    if isinstance(out3, types.NoneType):
        return lambda out3, index, terms, part: None
    return lambda out3, index, terms, part: store_part(out3, index, terms, part)


# The column passes by vectors also prefetch the line _L1_AHEAD columns on in the same row: the
# block comes from L2 (the max pass read it there), its K rows interleaved, and the hardware's L1
# prefetch did not keep up.  Paired on the Xeon, 2 threads, against no such prefetch: NCHW
# 4x21x65536 logsumexp 0.91, log_softmax 0.94, softmax out= 0.97, fresh 0.94, float64
# log_softmax 0.96; 8x256x4096 logsumexp 0.85, log_softmax 0.87 (its softmax blocks are narrow:
# scalar loops, unchanged).  One thread, NCHW logsumexp: 32 columns on 0.86, 64 0.82, 128 0.88,
# 256 0.91.  (A prefetch past the row's end fetches a line of the next row, or nothing: it
# never faults.)
_L1_AHEAD = 64


@callee(fastmath=ORDERED, inline="always")
def _exp_sum_lanes(x3, y3, sign, t_hi, t_lo, o, k0, k1, j, m, total, compensation, index, part, ahead):
    """Rows ``k0:k1`` of the lanes at column ``j`` of block ``o``: their exps stored and added to
    the sums at ``index`` (``_lane_sums``); the lines at ``index`` of the same rows of the block at
    ``ahead`` prefetched, and those _L1_AHEAD columns on in this block."""
    mm = load_part(m, index, part)
    a, b = _lane_sums(total, compensation, index, part)
    for k in range(k0, k1):
        e = scaled_shifted_exp(signed(load_part(x3, (o, k, j), part), sign), mm, t_hi, t_lo)
        store_part(y3, (o, k, j), e, part)
        prefetch_read(x3, (ahead[0], k, ahead[1] + index))
        prefetch_read(x3, (o, k, j + _L1_AHEAD))
        a, b = _add_lanes(a, b, e)
    _store_lane_sums(total, compensation, index, part, a, b)


@callee(fastmath=ORDERED)
def _exp_sum_row_group(x3, y3, sign, t_hi, t_lo, o, k0, k1, j0, j1, m, total, compensation, ahead):
    """``_exp_sum_lanes`` for every vector of columns ``j0:j1``."""
    lanes = lanes_of(x3)
    j = j0
    while j + lanes <= j1:
        _exp_sum_lanes(x3, y3, sign, t_hi, t_lo, o, k0, k1, j, m, total, compensation, j - j0, None, ahead)
        j += lanes
    if j < j1:
        _exp_sum_lanes(x3, y3, sign, t_hi, t_lo, o, k0, k1, j, m, total, compensation, j - j0, j1 - j, ahead)


@callee(fastmath=ORDERED, inline="always")
def _log_stats_lanes(x3, out3, sign, t_hi, t_lo, o, k0, k1, j, m, total, compensation, count, index, part, ahead, counted):
    """Rows ``k0:k1`` of the lanes at column ``j`` of block ``o``: the exps below the max added to
    the sums and staged in ``out3``, the entries at the max counted (``counted``; else every exp
    added, see ``uncounted_total_suffices``); the block at ``ahead`` and this block's lines
    _L1_AHEAD columns on prefetched (see ``_exp_sum_lanes``)."""
    mm = load_part(m, index, part)
    a, b = _lane_sums(total, compensation, index, part)
    zero = cast_like(0.0, x3)
    at_max = splat(zero)  # the group's counts, in the dtype's lanes (small integers: exact)
    for k in range(k0, k1):
        v = signed(load_part(x3, (o, k, j), part), sign)
        e = scaled_shifted_exp(v, mm, t_hi, t_lo)
        if counted:  # a literal: numba compiles the loop once for each, the other branch pruned
            e = select(v < mm, e, zero)
            at_max = at_max + select(v == mm, cast_like(1.0, x3), zero)
        _stage_terms(out3, (o, k, j), e, part)
        prefetch_read(x3, (ahead[0], k, ahead[1] + index))
        prefetch_read(x3, (o, k, j + _L1_AHEAD))
        a, b = _add_lanes(a, b, e)
    _store_lane_sums(total, compensation, index, part, a, b)
    if counted:
        ca, cb = _lane_counts(count, index, part, x3)
        ca, cb = _add_lanes(ca, cb, at_max)
        _store_lane_counts(count, index, part, x3, ca, cb)


@callee(fastmath=ORDERED)
def _log_stats_row_group(x3, out3, sign, t_hi, t_lo, o, k0, k1, j0, j1, m, total, compensation, count, ahead, counted):
    """``_log_stats_lanes`` for every vector of columns ``j0:j1``."""
    lanes = lanes_of(x3)
    j = j0
    while j + lanes <= j1:
        _log_stats_lanes(
            x3, out3, sign, t_hi, t_lo, o, k0, k1, j, m, total, compensation, count, j - j0, None, ahead, counted
        )
        j += lanes
    if j < j1:
        _log_stats_lanes(
            x3, out3, sign, t_hi, t_lo, o, k0, k1, j, m, total, compensation, count, j - j0, j1 - j, ahead, counted
        )


def _column_log_sums(x3, out3, mask3, sign, t_hi, t_lo, o, j0, j1, m, log_sum, compensation, count, buffer, ahead, log_like, uncounted):
    """``log_sum[:] = log(sum over K of exp((v - m)/T))`` per column of block ``o`` (finite ``m``):
    the entries below the max summed, those at it counted, then ``log_of_sums`` (``log_like``: see
    there); by vectors without a mask (prefetching the block at ``ahead``), else row by row.
    Float32 log_softmax's vectors sum ``uncounted`` if asked, and count where a column's sum falls
    short (``uncounted_total_suffices``).  Returns whether every column's uncounted sum sufficed,
    or would have: whether the next block should try it (False where it is never tried; numba
    only)."""
    raise NotImplementedError("_column_log_sums is callable from numba-compiled code only")


@callee_overload(_column_log_sums)
def _column_log_sums_overload(
    x3, out3, mask3, sign, t_hi, t_lo, o, j0, j1, m, log_sum, compensation, count, buffer, ahead, log_like, uncounted
):
    contiguous = all(a.layout == "C" for a in (x3, out3, m, log_sum, compensation, count) if isinstance(a, types.Array))
    if isinstance(mask3, types.NoneType) and contiguous:
        # float32 log_softmax only (logsumexp: log_like None)
        may_skip_count = x3.dtype == types.float32 and not isinstance(log_like, types.NoneType)

        def by_vectors(x3, out3, mask3, sign, t_hi, t_lo, o, j0, j1, m, log_sum, compensation, count, buffer, ahead, log_like, uncounted):
            additions = x3.shape[1] + 8 if may_skip_count else 0
            return _column_log_sums_by_vectors(
                x3, out3, sign, t_hi, t_lo, o, j0, j1, m, log_sum, compensation, count, ahead, log_like,
                may_skip_count and uncounted, additions,
            )

        return by_vectors

    def by_rows(x3, out3, mask3, sign, t_hi, t_lo, o, j0, j1, m, log_sum, compensation, count, buffer, ahead, log_like, uncounted):
        _column_log_sums_by_rows(x3, out3, mask3, sign, t_hi, t_lo, o, j0, j1, m, log_sum, compensation, count, buffer, log_like)
        return False

    return by_rows


@callee()
def _column_log_sums_by_vectors(
    x3, out3, sign, t_hi, t_lo, o, j0, j1, m, log_sum, compensation, count, ahead, log_like, uncounted, additions
):
    """``_column_log_sums`` by vectors: uncounted first if asked, then counted where a column's
    sum fell short (or without trying); returns whether every column's uncounted sum sufficed or
    would have, with ``additions`` (0: never, False)."""
    narrow_compensation = _lane_compensation(compensation, x3)
    # The flag a literal, False here and True below: numba compiles the loop function for each
    # with the other branch pruned.  (A runtime flag, one compiled loop, measured NCHW 1.03-1.05
    # slower, and its cold first call no faster within the noise.)
    if uncounted:
        log_sum[:] = 0.0
        count[:] = 0.0  # (the uncounted pass leaves it 0: counted as 1, see below)
        for k0 in range(0, x3.shape[1], 4):
            k1 = min(x3.shape[1], k0 + 4)
            _log_stats_row_group(
                x3, out3, sign, t_hi, t_lo, o, k0, k1, j0, j1, m, log_sum, narrow_compensation, count, ahead, False
            )
        if _sums_suffice_uncounted(log_sum, count, x3, additions):
            # each sum less the max's 1 is the ``rest`` of ``k = 1``: the counted pass's log loop
            one = 1.0 / unscaled(1.0, x3)  # 1 in the sums' scale (a power of two: exact)
            for j in range(log_sum.size):
                log_sum[j] -= one
            compensation[:] = 0.0
            log_of_sums(log_sum, compensation, count, x3, log_like)  # count 0: taken as 1
            return True
    log_sum[:] = 0.0
    compensation[:] = 0.0
    count[:] = 0.0
    for k0 in range(0, x3.shape[1], 4):
        k1 = min(x3.shape[1], k0 + 4)
        _log_stats_row_group(
            x3, out3, sign, t_hi, t_lo, o, k0, k1, j0, j1, m, log_sum, narrow_compensation, count, ahead, True
        )
    would_suffice = additions > 0 and _sums_suffice_uncounted(log_sum, count, x3, additions)
    log_of_sums(log_sum, compensation, count, x3, log_like)
    return would_suffice


@callee(fastmath=ORDERED)
def _sums_suffice_uncounted(total, count, like, additions):
    """Whether every column's sum ``count + total`` (``total`` scaled, of ``like``'s dtype; the
    counts 0 after an uncounted pass) suffices uncounted (``uncounted_total_suffices``)."""
    suffices = True
    for j in range(total.size):
        suffices &= uncounted_total_suffices(count[j] + unscaled(total[j], like), additions)
    return suffices


@callee()
def _column_log_sums_by_rows(x3, out3, mask3, sign, t_hi, t_lo, o, j0, j1, m, log_sum, compensation, count, buffer, log_like):
    """``_column_log_sums`` row by row (``_add_column_log_terms_by_rows``)."""
    log_sum[:] = 0.0
    compensation[:] = 0.0
    count[:] = 0.0
    _add_column_log_terms_by_rows(x3, out3, mask3, sign, t_hi, t_lo, o, j0, j1, m, log_sum, compensation, count, buffer)
    log_of_sums(log_sum, compensation, count, x3, log_like)


@callee(inline="always")
def _add_column_log_terms_by_rows(x3, out3, mask3, sign, t_hi, t_lo, o, j0, j1, m, total, compensation, count, buffer):
    """Row by row, the exps of block ``o`` below the per-column max ``m`` added to ``total +
    compensation``, the entries at it counted in ``count``.  Each row's terms are staged in its
    output row (``out3``, see ``_column_terms_staging``), or in ``buffer`` for ``out3=None``."""
    for k in range(x3.shape[1]):
        mask_row = part_of(mask3, (o, k, slice(j0, j1)))
        terms = _column_terms_staging(out3, buffer, o, k, j0, j1)
        _store_exp_columns(x3[o, k, j0:j1], terms, mask_row, sign, m, t_hi, t_lo, True)
        _add_widened(total, compensation, terms)
        _add_equal_counts(count, x3[o, k, j0:j1], mask_row, sign, m)


@callee()
def _log_probabilities_column_passes(x3, out3, mask3, sign, t_hi, t_lo, o, j0, j1, state, ahead, uncounted, stage):
    """log_softmax over K of the columns ``j0:j1`` of block ``o``, given their (finite) max;
    ``ahead = (o, j0)`` is the block to prefetch meanwhile; ``uncounted``: see
    ``_column_log_sums``, whose result this returns; ``stage``: True to stage the exps in the
    output block (see ``staging_into``), else None."""
    m, log_sum, compensation, count, hi, lo, buffer = state
    next_uncounted = _column_log_sums(
        x3, staging_into(out3, stage), mask3, sign, t_hi, t_lo, o, j0, j1, m, log_sum, compensation, count, buffer,
        ahead, x3, uncounted,
    )
    write_log_probability_rows(x3, out3, mask3, sign, m, t_hi, t_lo, log_sum, hi, lo, o, j0, j1)
    return next_uncounted


# log_softmax's stats pass by vectors stages each exp in the output block (``_stage_terms``),
# which its write pass then overwrites: in layouts beyond the last-level cache that writes the
# output's lines while the pass waits on its exps, not on memory, and the write pass finds them
# owned.  In smaller ones it is a store an element for nothing.  Paired on a Zen 5 VM (2026-12-05,
# float32 `out=`, without the staging against with it, 1 thread | 2 threads): 100x256 `axis=0`
# 0.937 | 0.933, 64x4096 0.958 | 0.942, 1024x1024 0.942 | 0.994, 2048x1024 0.980 (2 threads),
# 4x21x128x128 `axis=1` (5.5 MiB) 0.974, 10x100000 1.007, 2048x2048 (16 MiB) 0.990, 4096x4096
# 1.000, but 4x21x256x256 (22 MiB) 1.111 | 1.095 and 8x256x4096 (32 MiB) 1.082: hence above
# ``_numpy_backend.COLUMN_LOG_STAGE_ABOVE_BYTES`` only.


def staging_into(out3, stage):
    """``out3`` where ``stage`` is True, else None (the exps then staged nowhere, or for the row
    by row sums in the block's buffer), decided at typing time (numba only)."""
    raise NotImplementedError("staging_into is callable from numba-compiled code only")


@callee_overload(staging_into)
def _staging_into_overload(out3, stage):
    if isinstance(stage, types.NoneType):
        return lambda out3, stage: None
    return lambda out3, stage: out3


@callee()
def _logsumexp_column_block(x3, mask3, res2, o, j0, j1, state, ahead):
    w = j1 - j0
    m, log_sum, compensation, count, finite_m, _, buffer = state
    _column_block_max(x3, mask3, o, j0, j1, None, m)
    for j in range(w):
        finite_m[j] = m[j] if math.isfinite(m[j]) else 0.0
    _column_log_sums(
        x3, None, mask3, None, None, None, o, j0, j1, finite_m, log_sum, compensation, count, buffer, ahead, None, False
    )
    for j in range(w):
        res2[o, j0 + j] = np.float64(m[j]) + log_sum[j] if math.isfinite(m[j]) else m[j]


@callee(inline="always")
def _column_block_bounds(w, blocks_per_outer, block, inner):
    o = w // blocks_per_outer
    j0 = (w - o * blocks_per_outer) * block
    return o, j0, min(inner, j0 + block)


@callee(inline="always")
def _next_block(w, stop, blocks_per_outer, block, inner):
    """``(o, j0)`` of the block a worker doing blocks ``..stop`` prefetches while it does block
    ``w``: the next one (its last block prefetches itself: in cache, no cost)."""
    o, j0, _ = _column_block_bounds(min(w + 1, stop - 1), blocks_per_outer, block, inner)
    return o, j0


# The column kernels are range functions (``_parallel``): worker ``t`` does blocks
# ``first:stop`` in its own rows of the scratch arrays (``_numpy_backend.column_scratch``), and
# ``RangeKernel`` runs them serially or in parallel, compiling each one once for both.  With
# ``stand_ins`` a kernel does only the blocks flagged in ``pending`` (see above).


def _softmax_column_range(
    t, first, stop, x3, out3, mask3, sign, t_hi, t_lo, block, stand_ins, pending, wide, narrow, fuse_above
):
    x3, out3, mask3 = borrowed(x3), borrowed(out3), borrowed(mask3)
    per_outer = (x3.shape[2] + block - 1) // block
    for w in range(first, stop):
        if stand_ins and not pending[w]:
            continue
        o, j0, j1 = _column_block_bounds(w, per_outer, block, x3.shape[2])
        state = _column_state(wide, narrow, t, j1 - j0)
        _column_block_max(x3, mask3, o, j0, j1, sign, state[0])
        if _all_finite(state[0]) or ((stand_ins or _none_above_finite(state[0])) and _stand_in_max(state[0])):
            ahead = _next_block(w, stop, per_outer, block, x3.shape[2])
            _probabilities_column_passes(x3, out3, mask3, sign, t_hi, t_lo, o, j0, j1, state, ahead, fuse_above)
        else:
            pending[w] = True


def _log_softmax_column_range(
    t, first, stop, x3, out3, mask3, sign, t_hi, t_lo, block, stand_ins, pending, wide, narrow, stage
):
    x3, out3, mask3 = borrowed(x3), borrowed(out3), borrowed(mask3)
    per_outer = (x3.shape[2] + block - 1) // block
    # each worker's first block counts; the next tries the uncounted sums where this one's would
    # have sufficed (a peaked input then never takes both passes)
    uncounted = False
    for w in range(first, stop):
        if stand_ins and not pending[w]:
            continue
        o, j0, j1 = _column_block_bounds(w, per_outer, block, x3.shape[2])
        state = _column_state(wide, narrow, t, j1 - j0)
        _column_block_max(x3, mask3, o, j0, j1, sign, state[0])
        if _all_finite(state[0]) or ((stand_ins or _none_above_finite(state[0])) and _stand_in_max(state[0])):
            ahead = _next_block(w, stop, per_outer, block, x3.shape[2])
            uncounted = _log_probabilities_column_passes(
                x3, out3, mask3, sign, t_hi, t_lo, o, j0, j1, state, ahead, uncounted and not stand_ins, stage
            )
        else:
            pending[w] = True


def _logsumexp_column_range(t, first, stop, x3, mask3, res2, block, wide, narrow):
    x3, mask3 = borrowed(x3), borrowed(mask3)
    per_outer = (x3.shape[2] + block - 1) // block
    for w in range(first, stop):
        o, j0, j1 = _column_block_bounds(w, per_outer, block, x3.shape[2])
        state = _column_state(wide, narrow, t, j1 - j0)
        _logsumexp_column_block(x3, mask3, res2, o, j0, j1, state, _next_block(w, stop, per_outer, block, x3.shape[2]))


#: ``(n_blocks, workers, x3, out3, mask3, sign, t_hi, t_lo, block, stand_ins, pending, wide, narrow,
#: fuse_above)``, ``fuse_above`` usually ``COLUMN_FUSE_ABOVE_BYTES``
softmax_columns = RangeKernel(_softmax_column_range)
#: as ``softmax_columns``, with ``stage`` (True or None: see ``staging_into``) for ``fuse_above``
log_softmax_columns = RangeKernel(_log_softmax_column_range)
#: ``(n_blocks, workers, x3, mask3, res2, block, wide, narrow)``
logsumexp_columns = RangeKernel(_logsumexp_column_range)


# ----------------------------------------------------------------------------------------------
# Columns split along K (slabs): every worker a contiguous run of whole rows
# ----------------------------------------------------------------------------------------------


# A layout whose column blocks leave a thread idle (one block of 64 columns over 16384 rows) or
# cut every row into short pieces (two blocks of 128 columns of 1 KiB rows: each worker reads
# and writes half of every row) is split along K instead: item ``w`` is rows ``k0:k1`` of one
# outer index, all its columns, a contiguous slab.  Each pass is the block kernels' own pass on
# the slab (viewed as a block of one outer index), with the per-column state merged in between
# by the caller (``_numpy_backend``): the slab maxes into the max, the slab sums (taken against
# that max) into the sum; for log_softmax the slab sums below the max and the counts at it, then
# one log per column (``column_logs``) before the writing pass.  The caller takes the block
# kernels instead where a column's max is NaN or +inf, before anything is written.


@callee(inline="always")
def _slab_bounds(w, n_slabs, n_k):
    """``(o, k0, k1)``: item ``w`` is rows ``k0:k1`` of outer index ``o``, ``n_slabs`` per index."""
    o = w // n_slabs
    s = w - o * n_slabs
    return o, s * n_k // n_slabs, (s + 1) * n_k // n_slabs


def _slab_of(array, o, k0, k1):
    """Rows ``k0:k1`` of ``array[o]`` as a C-contiguous block of one outer index, or None for
    ``array=None`` (numba only)."""
    raise NotImplementedError("_slab_of is callable from numba-compiled code only")


@callee_overload(_slab_of)
def _slab_of_overload(array, o, k0, k1):
    if isinstance(array, types.NoneType):
        return lambda array, o, k0, k1: None
    return lambda array, o, k0, k1: array[o][k0:k1].reshape((1, k1 - k0, array.shape[2]))


def _slab_max_range(t, first, stop, x3, mask3, sign, n_slabs, block, maxes):
    """``maxes[w] = `` the per-column max of slab ``w`` (NaN where a column holds one), in column
    blocks of ``block``."""
    x3, mask3 = borrowed(x3), borrowed(mask3)
    inner = x3.shape[2]
    for w in range(first, stop):
        o, k0, k1 = _slab_bounds(w, n_slabs, x3.shape[1])
        slab, slab_mask = _slab_of(x3, o, k0, k1), _slab_of(mask3, o, k0, k1)
        for j0 in range(0, inner, block):
            j1 = min(inner, j0 + block)
            _column_block_max(slab, slab_mask, 0, j0, j1, sign, maxes[w, j0:j1])


def _softmax_slab_exp_range(
    t, first, stop, x3, out3, mask3, sign, t_hi, t_lo, n_slabs, block, m, totals, compensations, fuse_above
):
    """The exps of slab ``w`` against the max ``m[o]`` stored, and summed per column into
    ``totals[w] + compensations[w]`` (zero on entry), in column blocks of ``block``."""
    x3, out3, mask3 = borrowed(x3), borrowed(out3), borrowed(mask3)
    inner = x3.shape[2]
    for w in range(first, stop):
        o, k0, k1 = _slab_bounds(w, n_slabs, x3.shape[1])
        slab, slab_out, slab_mask = _slab_of(x3, o, k0, k1), _slab_of(out3, o, k0, k1), _slab_of(mask3, o, k0, k1)
        for j0 in range(0, inner, block):
            j1 = min(inner, j0 + block)
            ahead = (np.int64(0), j1 if j1 < inner else j0)  # the slab's next block (its last: itself)
            _store_exps_and_sums(
                slab, slab_out, slab_mask, sign, t_hi, t_lo, 0, j0, j1,
                m[o, j0:j1], totals[w, j0:j1], compensations[w, j0:j1], ahead, fuse_above,
            )


def _scale_slab_range(t, first, stop, y3, n_slabs, block, inv_s_hi, inv_s_lo):
    """Slab ``w`` of the stored exps times ``1/s`` of its outer index, rounded once."""
    y3 = borrowed(y3)
    inner = y3.shape[2]
    for w in range(first, stop):
        o, k0, k1 = _slab_bounds(w, n_slabs, y3.shape[1])
        slab = _slab_of(y3, o, k0, k1)
        for j0 in range(0, inner, block):
            j1 = min(inner, j0 + block)
            _scale_rows(slab, 0, j0, j1, inv_s_hi[o, j0:j1], inv_s_lo[o, j0:j1])


def _add_slab_log_terms(slab, mask, sign, t_hi, t_lo, j0, j1, m, total, compensation, count, buffer, ahead):
    """The exps of columns ``j0:j1`` of ``slab`` (a block of one outer index) below the
    per-column max ``m`` added to ``total + compensation``, the entries at it counted in
    ``count``: reading only, by vectors unmasked (the column passes' counted
    ``_log_stats_row_group``), else row by row, each row's terms staged in ``buffer`` (numba
    only)."""
    raise NotImplementedError("_add_slab_log_terms is callable from numba-compiled code only")


@callee_overload(_add_slab_log_terms)
def _add_slab_log_terms_overload(slab, mask, sign, t_hi, t_lo, j0, j1, m, total, compensation, count, buffer, ahead):
    contiguous = all(a.layout == "C" for a in (slab, m, total, compensation, count))
    if isinstance(mask, types.NoneType) and contiguous:

        def by_vectors(slab, mask, sign, t_hi, t_lo, j0, j1, m, total, compensation, count, buffer, ahead):
            narrow_compensation = _lane_compensation(compensation, slab)
            for k0 in range(0, slab.shape[1], 4):
                k1 = min(slab.shape[1], k0 + 4)
                _log_stats_row_group(
                    slab, None, sign, t_hi, t_lo, 0, k0, k1, j0, j1, m, total, narrow_compensation, count, ahead, True
                )

        return by_vectors

    def by_rows(slab, mask, sign, t_hi, t_lo, j0, j1, m, total, compensation, count, buffer, ahead):
        _add_column_log_terms_by_rows(slab, None, mask, sign, t_hi, t_lo, 0, j0, j1, m, total, compensation, count, buffer)

    return by_rows


def _log_softmax_slab_sum_range(
    t, first, stop, x3, mask3, sign, t_hi, t_lo, n_slabs, block, m, totals, compensations, counts, narrow
):
    """The exps of slab ``w`` against the max ``m[o]`` of its outer index: those below it summed
    per column into ``totals[w] + compensations[w]``, those at it counted in ``counts[w]`` (all
    zero on entry), in column blocks of ``block``, reading only (a masked slab's terms staged in
    worker ``t``'s buffer of the column scratch ``narrow``)."""
    x3, mask3 = borrowed(x3), borrowed(mask3)
    inner = x3.shape[2]
    for w in range(first, stop):
        o, k0, k1 = _slab_bounds(w, n_slabs, x3.shape[1])
        slab, slab_mask = _slab_of(x3, o, k0, k1), _slab_of(mask3, o, k0, k1)
        for j0 in range(0, inner, block):
            j1 = min(inner, j0 + block)
            ahead = (np.int64(0), j1 if j1 < inner else j0)  # the slab's next block (its last: itself)
            _add_slab_log_terms(
                slab, slab_mask, sign, t_hi, t_lo, j0, j1, m[o, j0:j1],
                totals[w, j0:j1], compensations[w, j0:j1], counts[w, j0:j1], narrow[t, 3, : j1 - j0], ahead,
            )


def _log_softmax_slab_write_range(t, first, stop, x3, out3, mask3, sign, t_hi, t_lo, n_slabs, block, m, log_sum, narrow):
    """Slab ``w`` of log_softmax written, given the per-column max ``m`` and float64 ``log_sum``
    of its outer index (the column blocks' ``write_log_probability_rows``, in worker ``t``'s
    rows of the column scratch ``narrow``)."""
    x3, out3, mask3 = borrowed(x3), borrowed(out3), borrowed(mask3)
    inner = x3.shape[2]
    for w in range(first, stop):
        o, k0, k1 = _slab_bounds(w, n_slabs, x3.shape[1])
        slab, slab_out, slab_mask = _slab_of(x3, o, k0, k1), _slab_of(out3, o, k0, k1), _slab_of(mask3, o, k0, k1)
        for j0 in range(0, inner, block):
            j1 = min(inner, j0 + block)
            write_log_probability_rows(
                slab, slab_out, slab_mask, sign, m[o, j0:j1], t_hi, t_lo, log_sum[o, j0:j1],
                narrow[t, 1, : j1 - j0], narrow[t, 2, : j1 - j0], 0, j0, j1,
            )


@kernel()
def column_logs(rest, compensation, count, like):
    """``rest[j] = log(max(count[j], 1) + rest[j] + compensation[j])`` as log_softmax's column
    kernels take it for ``like``'s dtype (``log_of_sums``), for the merged slab sums (1-d)."""
    log_of_sums(rest, compensation, count, like, like)


#: ``(n_items, workers, x3, mask3, sign, n_slabs, block, maxes)``
slab_max = RangeKernel(_slab_max_range)
#: ``(n_items, workers, x3, out3, mask3, sign, t_hi, t_lo, n_slabs, block, m, totals, compensations,
#: fuse_above)``
softmax_slab_exps = RangeKernel(_softmax_slab_exp_range)
#: ``(n_items, workers, y3, n_slabs, block, inv_s_hi, inv_s_lo)``
scale_slabs = RangeKernel(_scale_slab_range)
#: ``(n_items, workers, x3, mask3, sign, t_hi, t_lo, n_slabs, block, m, totals, compensations,
#: counts, narrow)``
log_softmax_slab_sums = RangeKernel(_log_softmax_slab_sum_range)
#: ``(n_items, workers, x3, out3, mask3, sign, t_hi, t_lo, n_slabs, block, m, log_sum, narrow)``
log_softmax_slab_writes = RangeKernel(_log_softmax_slab_write_range)


# ----------------------------------------------------------------------------------------------
# Columns over few rows (``takes_small_k_tiles``): a vector of columns at a time, its K rows in L1
# ----------------------------------------------------------------------------------------------


# With few rows per column the block kernels above spend most of their time on per-column state
# (stored and reloaded between passes, a float64 sum pair, a division and a pair per column) and on
# passes over the block in L2: NCHW 32x3x224x224 softmax ran at 0.64-0.71 of torch's speed.  Here
# a tile is one vector of columns (16 float32, 8 float64) through its K rows: the max, then the
# exps stored and summed, then the scaling, each a loop over the K rows of the tile, the per-column
# state in registers; the K input lines come from memory once, and the tile's three loops find
# them in cache.  Rows a multiple of 4 KiB apart put all of a tile's lines (K in, K out) in one
# 12-way L1 set: up to 12 rows that still measured faster than the block kernels, from 16 on not
# (4x16x65536 `out=` 1.16, in place 1.21, float64 1.10 slower), hence SMALL_K.
# The arithmetic is the block kernels' per column (the max, ``scaled_shifted_exp``, float32
# exps summed in float64, float64 ones by TwoSum, ``1/s`` as a pair and one rounding per result).
# A tile whose max is not finite in some column (+inf, or no finite entry) takes the scalar form
# below, column by column, before anything is stored; a NaN in a column with a finite max makes
# its sum NaN, and so its results.
#
# Paired on the Xeon, 2 threads, against the block kernels: 32x3x224x224 `axis=1` fresh 0.62,
# `out=` 0.69, in place 0.70, float64 0.84; 16x2x256x256 0.54; 4096x8x64 0.59; 8x5x128x128 0.75;
# 2x3x4x5000 `axis=2` 0.74; 4x8x4096 0.80; 4x8x65536 0.87-0.88, in place 0.90, float64 0.95;
# 16x10x100x100 0.76; 4x12x4096 0.87; 4x12x65536 fresh 0.96, `out=` 0.95, in place 0.94.
#
# Which layouts (2026-12-03, with log_softmax's tiles below; paired against the block kernels, 2
# threads, float32 unless stated; softmax / log_softmax): beyond 12 rows the tiles still win where
# the rows are not 4 KiB apart -- 128x16x256 0.80 / 0.73, 4x16x5000 0.86 / 0.82, 16x24x1000 0.87 /
# 0.85, 4x21x50000 0.87 / 0.84, 4x24x5000 0.93 / 0.97, 4x20x16000 0.94 / 0.94 -- but not from 32
# rows on with wide ones (4x32x5000 0.97 / 1.24, 8x32x2000 0.95 / 1.12, 4x64x5000 1.09 / 1.59,
# 2x128x4000 1.11 / 1.34, 32x100000 axis 0 1.52 / 1.56: many rows' lines per tile, each its own
# prefetch stream), hence SMALL_K_UNALIGNED = 24.  With narrow rows (at most 1 KiB) the block
# kernels' narrow blocks cost more per column and the tiles win up to 256 rows: 16x64x250 0.67 /
# 0.74, 8x128x250 0.71 / 0.73, 4x256x250 0.83 / 0.78, 16x64x256 0.91 / 0.82, float64 16x64x100
# 0.72 / 0.74, 4x256x128 1.05 / 0.97 (neutral); 32x32x512 (2 KiB) 0.97 / 0.98, hence
# SMALL_K_NARROW_ROW_BYTES = 1 KiB.  Rows 4 KiB apart: 4x16x65536 1.18 / 0.92, 64x4096 axis 0
# 1.17 / 1.13.  Rows of one or two tiles take them whatever K (a tile's passes then stream the
# whole layout from L2, but the block kernels' blocks of 16-32 columns cost far more):
# 16384x16 `axis=0` 0.25 / 0.40, 65536x16 0.31 / 0.48, 8192x32 0.52 / 0.59, float64 16384x16
# 0.79 / 0.73; at four tiles a row float32 still wins (4096x64 0.88 / 0.91), float64 does not
# (8192x32 1.29 / 1.01, 4096x64 1.67 / 1.16), hence SMALL_K_ANY_ROW_BYTES = 128.  Four tiles a row
# (256 bytes) win up to 4096 rows, whose 256 KiB per tile stay in L2 through the tile's three
# passes (2026-12-03, tiles / blocks, one thread each, before the chunks were narrowed for threads:
# float32 `axis=0` 1000x64 0.59 / 0.67, 2048x64 0.53 / 0.68, 4096x64 0.69-0.77 / 0.84-0.85, float64
# 4096x32 0.86 / 0.85), not beyond (float32 16384x64 softmax 1.52; float64 8192x32 above), nor at
# eight tiles (float32 4096x128 1.39 / 1.17), hence SMALL_K_QUAD_ROW_BYTES and SMALL_K_QUAD_ROWS.


def _tile_factors(a, b, like):
    """``1/s`` per column of a tile, as a pair ``(hi, lo)`` of vectors of ``like``'s dtype, from
    the tile's sums ``(a, b)`` (``_add_lanes``: float32 columns' float64 sums in two halves,
    float64 columns' sums and compensations; numba only)."""
    raise NotImplementedError("_tile_factors is callable from numba-compiled code only")


@callee_overload(_tile_factors)
def _tile_factors_overload(a, b, like):
    if like.dtype == types.float32:

        def pair_of_halves(a, b, like):
            inv_a = 1.0 / a
            inv_b = 1.0 / b
            hi = narrow_halves(inv_a, inv_b)  # pair_like, lane by lane
            return hi, narrow_halves(inv_a - widen_low(hi), inv_b - widen_high(hi))

        return pair_of_halves
    return lambda a, b, like: (1.0 / (a + b), splat(0.0))


def _add_term(total, compensation, e):
    """``_add_lanes`` for one column's scalar term (numba only)."""
    raise NotImplementedError("_add_term is callable from numba-compiled code only")


@callee_overload(_add_term)
def _add_term_overload(total, compensation, e):
    if e == types.float32:
        return lambda total, compensation, e: (total + np.float64(e), compensation)
    return lambda total, compensation, e: compensated_add(total, compensation, e)


@callee()
def _small_k_columns_special(x3, out3, sign, t_hi, t_lo, o, j, count):
    """softmax of columns ``j:j + count`` of ``x3[o]`` one at a time (scalar; a tile holding a
    column whose max is not finite), as the vector tile does each column, with the limits of
    ``slice_special`` where the max is not finite."""
    y3 = target(x3, out3)
    for c in range(j, j + count):
        m = slice_max(x3[o, :, c], None, sign)
        if not math.isfinite(m):
            slice_special(x3[o, :, c], part_of(out3, (o, slice(None), c)), None, sign, m, _MODE_SOFTMAX)
            continue
        total = 0.0
        compensation = 0.0
        for k in range(x3.shape[1]):
            e = scaled_shifted_exp(signed(x3[o, k, c], sign), m, t_hi, t_lo)
            y3[o, k, c] = e
            total, compensation = _add_term(total, compensation, e)
        hi, lo = pair_like(1.0 / (total + compensation), 0.0, x3)
        for k in range(x3.shape[1]):
            e = y3[o, k, c]
            y3[o, k, c] = fma(e, hi, e * lo)


@callee(fastmath=ORDERED, inline="always")
def _tile_max(x3, sign, o, j, part):
    """``(best, finite)``: the per-column max of the tile at column ``j`` of ``x3[o]``, skipping
    NaN (which the tile's sum then catches; -inf in a column of -inf, 0 in the lanes past ``part``,
    read as 0), and whether it is finite in every column (else the tile declines, for
    ``special``): ``inf - inf`` is NaN, one mask test."""
    best = splat(cast_like(-np.inf, x3))
    for k in range(x3.shape[1]):
        v = signed(load_part(x3, (o, k, j), part), sign)
        best = select(v > best, v, best)
    return best, all_lanes(best - best == cast_like(0.0, x3))


# After its max (``_tile_max``; a tile whose max is not finite in some column goes to ``special``)
# a tile is taken in three steps, so that two tiles can go side by side (``_small_k_tiles``):
# ``reads`` passes over the tile again from its max (its exps stored and summed, or its sums) and
# returns its state; ``middle`` turns the state into the per-column values the results are formed
# with (``1/s``, ``m + log s``: a division or a log per column, a tile's long dependency chain);
# ``finish`` writes the tile's results from the state and those values.


@callee(fastmath=ORDERED, inline="always")
def _tile_exps(x3, y3, sign, t_hi, t_lo, o, j, part, best):
    """softmax's ``reads``: the tile's exps stored in ``y3`` (a whole tile's; a partial tile's are
    taken again by ``_tile_scale``) and the state ``(a, b, best)``, their sums (``_add_lanes``)
    and the max."""
    a = splat(0.0)
    b = splat(0.0)
    for k in range(x3.shape[1]):
        e = scaled_shifted_exp(signed(load_part(x3, (o, k, j), part), sign), best, t_hi, t_lo)
        if not given(part):
            store_part(y3, (o, k, j), e, part)
        a, b = _add_lanes(a, b, e)
    return a, b, best


@callee(fastmath=ORDERED, inline="always")
def _tile_exp_step(x3, y3, sign, t_hi, t_lo, best, index, part, a, b):
    """One row of ``_tile_exps`` (for the quads: ``_tile_exps`` keeps its own loop body, which
    32x3x224x224 `axis=1` ran 1.16-1.43x slower through this step)."""
    e = scaled_shifted_exp(signed(load_part(x3, index, part), sign), best, t_hi, t_lo)
    if not given(part):
        store_part(y3, index, e, part)
    return _add_lanes(a, b, e)


@callee(inline="always")
def _tile_sum_factors(state, t_hi, like):
    """softmax's ``middle``: ``1/s`` per column as a pair of vectors (``_tile_factors``)."""
    return _tile_factors(state[0], state[1], like)


@callee(fastmath=ORDERED, inline="always")
def _tile_scale(x3, y3, sign, t_hi, t_lo, o, j, part, state, factors):
    """softmax's ``finish``: the tile's exps times ``1/s``, one rounding each.  A whole tile's are
    loaded from where ``_tile_exps`` stored them; a partial tile's are taken again from the input,
    as log_softmax's results are: loaded back from a masked store they waited for it (paired, 2
    threads, ``out=``: 100x64x8 `axis=1` 0.62, 2000x4x4 0.40, 1000x10x10 0.69; whole tiles
    0.98-1.01).  ``given``, not ``part is None``, which numba left as a branch in the loop
    (4x8x4096 1.03)."""
    hi, lo = factors
    for k in range(x3.shape[1]):
        if not given(part):
            e = load_part(y3, (o, k, j), part)
        else:
            e = scaled_shifted_exp(signed(load_part(x3, (o, k, j), part), sign), state[2], t_hi, t_lo)
        store_part(y3, (o, k, j), fma(e, hi, e * lo), part)


@callee(fastmath=ORDERED, inline="always")
def _tile_scale_step(x3, y3, sign, t_hi, t_lo, index, part, best, factors):
    """One row of ``_tile_scale`` (for the quads, as ``_tile_exp_step``)."""
    hi, lo = factors
    if not given(part):
        e = load_part(y3, index, part)
    else:
        e = scaled_shifted_exp(signed(load_part(x3, index, part), sign), best, t_hi, t_lo)
    store_part(y3, index, fma(e, hi, e * lo), part)


@callee(inline="always")
def _one_tile(reads, middle, finish, x3, y3, sign, t_hi, t_lo, o, j, part):
    """The tile at column ``j`` of ``x3[o]`` (``part``: see ``load_part``) by its steps; False,
    storing nothing, if a column's max is not finite."""
    best, finite = _tile_max(x3, sign, o, j, part)
    if finite:
        state = reads(x3, y3, sign, t_hi, t_lo, o, j, part, best)
        finish(x3, y3, sign, t_hi, t_lo, o, j, part, state, middle(state, t_hi, x3))
    return finite


# Two tiles side by side: both tiles' maxes, then both reads, then both ``middle`` steps, then
# both writes, so that the out-of-order core overlaps the two tiles' per-column chains (a float32
# log per 16 columns cost a third of a 4-row log_softmax tile: 2x3x4x5000 `axis=2`, with it
# replaced by an addition, 0.68 of the time).  Paired against one tile at a time (a Zen 5 VM,
# 2026-12-04, 1 / 2 threads, float32 `out=`): log_softmax 2x3x4x5000 `axis=2` 0.89 / 0.91,
# 4x8x4096 `axis=1` 0.90 / 0.92, 128x16x256 0.95 / 0.88, 32x3x224x224 0.67 / 0.80, 4x64x1000
# 0.93, 4x128x1000 0.95, float64 4x12x4096 0.93 / 0.93; softmax 0.75-0.98, logsumexp 0.74-0.92.
# With more rows the two tiles' lines no longer stay in L1 through their passes: 2x256x1000 1.09,
# 300x200 `axis=0` 1.03, 600x100 1.06, 4096x64 1.03.  Four tiles side by side lost to two
# (4x8x4096 0.94, 128x16x256 0.99 of one at a time).  Hence SMALL_K_PAIRED_ROWS, and the pair's
# code compiled only for calls that take it (``paired``): beside the one-tile loop of larger K it
# slowed that loop by 2-7% (600x100, 300x200, 4096x64).


@callee(inline="always")
def _tiles_to(reads, middle, finish, special, x3, out3, y3, sign, t_hi, t_lo, o, j, stop_j):
    """The tiles of columns ``j:stop_j`` of ``x3[o]`` one at a time (the last one partial), as
    ``_small_k_tiles`` takes them."""
    lanes = lanes_of(x3)
    while j < stop_j:
        count = min(lanes, stop_j - j)
        if count == lanes:
            done = _one_tile(reads, middle, finish, x3, y3, sign, t_hi, t_lo, o, j, None)
        else:
            done = _one_tile(reads, middle, finish, x3, y3, sign, t_hi, t_lo, o, j, count)
        if not done:
            special(x3, out3, sign, t_hi, t_lo, o, j, count)
        j += lanes


@callee(inline="always")
def _small_k_tiles(reads, middle, finish, special, first, stop, x3, out3, sign, t_hi, t_lo, chunk, paired):
    """Items ``first:stop`` of ``(outer, inner / chunk)``: the tiles of ``chunk`` columns each, by
    ``reads``, ``middle`` and ``finish``, two at a time unless ``paired`` is None (for more than
    SMALL_K_PAIRED_ROWS rows: no code for pairs is compiled then), or by ``special`` where a
    column's max is not finite (function arguments: numba compiles one loop per set, with no
    branch on them)."""
    x3, out3 = borrowed(x3), borrowed(out3)
    y3 = target(x3, out3)
    inner = x3.shape[2]
    lanes = lanes_of(x3)
    pairs = given(paired)
    per_outer = (inner + chunk - 1) // chunk
    for w in range(first, stop):
        o = w // per_outer
        j = (w - o * per_outer) * chunk
        stop_j = min(inner, j + chunk)
        while pairs and j + 2 * lanes <= stop_j:
            j2 = j + lanes
            best, finite = _tile_max(x3, sign, o, j, None)
            best2, finite2 = _tile_max(x3, sign, o, j2, None)
            if finite and finite2:
                state = reads(x3, y3, sign, t_hi, t_lo, o, j, None, best)
                state2 = reads(x3, y3, sign, t_hi, t_lo, o, j2, None, best2)
                values = middle(state, t_hi, x3)
                values2 = middle(state2, t_hi, x3)
                finish(x3, y3, sign, t_hi, t_lo, o, j, None, state, values)
                finish(x3, y3, sign, t_hi, t_lo, o, j2, None, state2, values2)
            else:
                for jj in (j, j2):
                    if not _one_tile(reads, middle, finish, x3, y3, sign, t_hi, t_lo, o, jj, None):
                        special(x3, out3, sign, t_hi, t_lo, o, jj, lanes)
            j += 2 * lanes
        _tiles_to(reads, middle, finish, special, x3, out3, y3, sign, t_hi, t_lo, o, j, stop_j)


def _softmax_small_k_range(t, first, stop, x3, out3, sign, t_hi, t_lo, chunk, paired):
    _small_k_tiles(_tile_exps, _tile_sum_factors, _tile_scale, _small_k_columns_special, first, stop, x3, out3,
                   sign, t_hi, t_lo, chunk, paired)


# Serial calls of the small-K tiles take ordinary numba functions, with the range kernels'
# arguments (``workers`` unused), rather than a range kernel run by one worker, whose argument
# tuple numba's dispatcher types on every call: that cost about 0.3 us more (paired, one thread:
# log_softmax 16x64 ``axis=0`` 0.889, softmax 0.872, 2x3x4x16 ``axis=2`` 0.875, softmax fresh
# 0.752, 16x1024 0.963, 100x10x10 0.958).


@kernel()
def softmax_small_k_serial(n_items, workers, x3, out3, sign, t_hi, t_lo, chunk, paired):
    _small_k_tiles(_tile_exps, _tile_sum_factors, _tile_scale, _small_k_columns_special, 0, n_items, x3, out3,
                   sign, t_hi, t_lo, chunk, paired)


#: ``(n_items, workers, x3, out3, sign, t_hi, t_lo, chunk, paired)``: softmax over the rows of a
#: layout ``takes_small_k_tiles`` accepts, unmasked; ``n_items = outer * ceil(inner / chunk)``;
#: ``paired``: True to take tiles two at a time, else None (``_numpy_backend._small_k_work``)
softmax_small_k = RangeKernel(_softmax_small_k_range)
#: the most rows the small-K column kernels take in any layout
SMALL_K = 12
#: ... two tiles side by side up to this many rows (two tiles' input lines: 16 KiB)
SMALL_K_PAIRED_ROWS = 128
#: ... when the rows are not a multiple of ``L1_ALIAS_BYTES`` apart
SMALL_K_UNALIGNED = 24
#: ... when the rows take at most ``SMALL_K_NARROW_ROW_BYTES``
SMALL_K_NARROW = 256
SMALL_K_NARROW_ROW_BYTES = 1024
#: rows of at most this many bytes take them whatever their number, up to the most rows whose
#: counts at the max the log tiles keep exactly (in float32 lanes)
SMALL_K_ANY_ROW_BYTES = 128
SMALL_K_COUNTS_EXACT = 1 << 24
#: rows of at most this many bytes (four tiles) take them up to SMALL_K_QUAD_ROWS rows (a tile's
#: lines then stay in L2 through its three passes)
SMALL_K_QUAD_ROW_BYTES = 256
SMALL_K_QUAD_ROWS = 4096
#: addresses this far apart share an L1 set (64 sets of 64-byte lines)
L1_ALIAS_BYTES = 4096


# log_softmax's tiles write their K output lines only in their last pass (softmax's in two), and
# win with more rows 4 KiB apart: on Zen 4 (2026-12-04, benchmarks/pair_revisions.py, 2 threads,
# float32 `out=`, tiles against the block kernels, two runs) 16x4096 `axis=0` 0.72 / 0.86 (float64
# 0.83 / 0.93), 16x8192 0.94 / 0.88, 16x16384 0.92 / 0.86, 2x16x4096 `axis=1` 0.94 / 0.96,
# 4x16x16384 0.97 / 0.94, 4x16x65536 1.03; but 24 and 32 rows were mixed (24x4096 0.99 / 0.81,
# 2x24x16384 1.25, 32x4096 0.95, 4x32x4096 1.28).  softmax with 16 rows lost (4x16x65536 1.26,
# 16x8192 1.07) and logsumexp tied (16x4096 0.98): hence SMALL_K_LOG for log_softmax alone.
#
# With rows not 4 KiB apart float32 log_softmax's tiles won far beyond 24 rows, in layouts of up
# to a few MiB (same measurements): 32x1000 `axis=0` 0.68, 25x1000 0.76, 48x2000 0.64, 100x1000
# 0.45 (fresh 0.75), 200x1000 0.27 (in place 0.83), 256x3000 0.53, 64x10000 0.82, 8x32x2000
# `axis=1` 0.69, 2x28x10000 0.70, 4x32x5000 0.77, 4x48x5000 0.81, 3x100x3000 0.86, 2x128x4000 0.77,
# 1x256x4000 0.94, 4x64x5000 (5 MiB) 0.93, 32x50000 `axis=0` (6.4 MiB) 0.75; but from 10 MiB they
# lost (16x32x5000 1.69, 8x64x5000 1.25, 64x40000 1.22, 32x100000 1.25), and so did float64
# (100x1000 1.14), softmax (4x64x5000 1.08; 100x1000 0.84) and logsumexp (100x1000 1.22; 4x32x5000
# 0.86): hence, then, up to 256 rows in layouts of up to 4 MiB.  (The Xeon figures above
# for 32 rows and more, which chose SMALL_K_UNALIGNED, may have compared a copy of the package
# with itself: docs/performance.md, "A second Zen 4 session".)  float32 softmax's tiles won too
# in layouts of up to 1 MiB (25x1000 `axis=0` 0.81, 48x2000 0.73, 100x1000 0.82 (fresh 0.57, in
# place 0.98), 200x1000 0.73, 256x1000 0.75, 64x4000 0.92) and tied or lost beyond (4x32x5000
# 1.00, 2x128x4000 1.03, 4x64x5000 1.08): 1 MiB then.  logsumexp's were mixed (48x2000 0.72,
# 64x4000 0.83, but 100x1000 1.09-1.22) and float64 softmax's too (100x1000 1.05), all with
# 100x1000 on one thread (one item of 1024 columns): they kept SMALL_K_UNALIGNED then.
#
# Measured again on Zen 4 (2026-12-04, 2 threads, `out=`, tiles with their items narrowed for
# threads (``_numpy_backend._small_k_work``) against the block kernels, within one package), the
# tiles won over far more rows: float32 log_softmax `axis=0` 300x500 0.27, 300x1000 0.24, 600x100
# 0.51, 1000x200 0.49, 2000x100 0.43, 4000x200 0.53, 8000x64 0.53, 1000x1000 0.71, 2000x500 0.64,
# 8x300x200 `axis=1` 0.66, 3x1000x500 0.88; softmax 300x200 0.59, 600x500 0.68, 1000x1000 0.92,
# 2000x200 0.66, 2000x500 0.87, 4000x200 0.79, 2x128x4000 0.92, 16x100x500 0.95; logsumexp 600x1000
# 0.76, 2000x200 0.76, 4000x500 (8 MiB) 0.85, 1000x2000 0.90, 4x32x5000 0.85; float64 softmax 300x500
# 0.21, 1000x100 0.47, 1000x500 0.71, log_softmax 600x200 0.56, 1000x500 0.76, logsumexp 1000x500
# 0.82 (the block kernels are slow on several of these: 300x500 float32 log_softmax 2.4 ns an
# element).  They lost in larger layouts (log_softmax 2000x1000 (8 MiB) 1.09, 4000x2000 1.29;
# softmax 2000x1000 2.18, 4000x500 1.39, 3x1000x500 (6 MiB) 1.06; logsumexp 4000x1000 (16 MiB)
# 0.97, 8000x1000 1.15), with rows a multiple of 1 KiB apart and many of them (softmax 1000x512
# (2 KiB) 1.28, 2000x512 1.98, 4000x256 1.25; log_softmax 2000x512 1.16; logsumexp 2000x512 1.24:
# a tile's lines then crowd into few L2 sets), and with rows 4 KiB apart (softmax 300x1024 1.91,
# 100x1024 1.07; logsumexp 100x1024 1.20), hence SMALL_K_LAYOUT_BYTES, SMALL_K_READ_LAYOUT_BYTES
# and SMALL_K_SPREAD_BYTES, for every dtype.  (log_softmax also won with rows 4 KiB apart, 300x1024
# 0.43, 600x1024 0.44, but 1000x1024 1.23: not taken.)  softmax's tiles stop gaining at about 4096
# rows (tiles against blocks: 2000x100 0.68, 3000x100 0.84, 4000x100 0.99, 4000x200 0.92, 8000x64
# 1.00, 8000x100 1.16, 16384x64 1.01, 3000x128 0.77, 4096x128 0.97, 8000x128 1.06; log_softmax
# 8000x128 0.60, logsumexp 0.67): SMALL_K_SOFTMAX_SPREAD_ROWS.
#: ... for log_softmax
SMALL_K_LOG = 16
#: ... with rows not L1_ALIAS_BYTES apart in layouts of at most SMALL_K_LAYOUT_BYTES (logsumexp,
#: which writes no layout: SMALL_K_READ_LAYOUT_BYTES): up to SMALL_K_LAYOUT_ROWS rows, and any
#: number when the rows are not a multiple of SMALL_K_SPREAD_BYTES apart either (softmax, which
#: writes its output twice, up to SMALL_K_SOFTMAX_SPREAD_ROWS; at most 2**21 float32 rows in 8 MiB:
#: log_softmax's counts at the max stay exact, see SMALL_K_COUNTS_EXACT)
SMALL_K_LAYOUT_ROWS = 256
SMALL_K_LAYOUT_BYTES = 4 << 20
SMALL_K_READ_LAYOUT_BYTES = 8 << 20
SMALL_K_SPREAD_BYTES = 1024
SMALL_K_SOFTMAX_SPREAD_ROWS = 4096
# Rows a multiple of 1 KiB apart but not of 4 KiB put a tile's K lines in only
# ``L1_ALIAS_BYTES // gcd(row_bytes, L1_ALIAS_BYTES)`` L1 sets: 2 for rows 2 KiB (mod 4 KiB)
# apart, 4 for rows 1 or 3 KiB apart.  Their tiles then thrash L1 (and crowd a few L2 sets) from
# about 16 rows a set on, where the rules above (measured on Zen 4) took them up to 256 rows.
# Measured on a Zen 5 VM (2026-12-05, tiles / blocks, float32, fresh results, softmax and
# log_softmax, 1 thread | 2 threads): 2 sets, 2 KiB rows: 24x512 0.75, 0.70 | 0.76, 0.68; 32x512
# 1.31, 1.00 | 0.87, 0.79; 40x512 1.69, 1.09 | 1.26, 0.97; 64x512 1.93, 1.30 | 1.08, 0.94; 128x512
# 2.76, 1.94 | 1.36, 1.13; 256x512 2.37, 1.74 | 1.74, 1.10; 6 KiB rows: 64x1536 1.80, 1.42 | 2.45,
# 1.39; 128x1536 2.86, 1.55 | 2.42, 1.69.  4 sets: 64x256 0.92, 0.94 | 0.95, 0.96; 100x256 1.09,
# 0.91; 120x256 1.10, 1.11; 128x256 1.23, 1.14 | 1.04, 0.86; 256x256 1.42, 1.31 | 0.98, 0.91;
# 48x768 0.82, 0.76 | 0.76, 0.74; 64x768 0.99, 1.07 | 0.89, 0.41; 100x768 1.22-1.28, 1.21-1.26 |
# 0.93, 1.03; 200x768 1.50, 1.18 | 0.89, 0.70 (the block kernels' narrowed blocks scale poorly on
# two threads).  8 sets won to 256 rows (512-byte rows: 256x128 0.89, 0.85 | 0.87, 0.78; 1536:
# 256x384 0.97, 0.97 | 0.24, 0.80).  Hence at most SMALL_K_ROWS_PER_SET rows a set over 2 sets,
# and over 4 sets in a serial call; logsumexp, which writes no layout, was mixed (128x1536 1.23 |
# 1.10, 256x512 1.08 | 0.90, 64x1536 0.91 | 1.05) and keeps the rules above.
SMALL_K_ROWS_PER_SET = 16
#: ... in parallel calls, only over fewer L1 sets than this
SMALL_K_PARALLEL_CROWDED_SETS = 4


def crowded_sets(row_bytes):
    """The L1 sets a column's lines fall in, for rows ``row_bytes`` apart that are a multiple of
    SMALL_K_SPREAD_BYTES but not of L1_ALIAS_BYTES (2 or 4); 0 for any other rows."""
    if row_bytes % SMALL_K_SPREAD_BYTES != 0 or row_bytes % L1_ALIAS_BYTES == 0:
        return 0
    return L1_ALIAS_BYTES // math.gcd(row_bytes, L1_ALIAS_BYTES)


def takes_small_k_tiles(n_k, row_bytes, log=False, layout_bytes=-1, reads_only=False, parallel=True):
    """Whether unmasked softmax, log_softmax (``log``) or logsumexp (``reads_only``) over ``n_k``
    rows ``row_bytes`` apart (a column layout of ``layout_bytes``, -1 if not given; a ``parallel``
    call or a serial one) takes the small-K tile kernels rather than the block kernels."""
    unaligned = row_bytes % L1_ALIAS_BYTES != 0
    sets = crowded_sets(row_bytes)
    if not reads_only and sets and n_k > SMALL_K_ROWS_PER_SET * sets:
        if sets < SMALL_K_PARALLEL_CROWDED_SETS or not parallel:
            return False
    limit = SMALL_K_READ_LAYOUT_BYTES if reads_only else SMALL_K_LAYOUT_BYTES
    return (
        n_k <= (SMALL_K_LOG if log else SMALL_K)
        or (
            0 <= layout_bytes <= limit
            and unaligned
            and (
                n_k <= SMALL_K_LAYOUT_ROWS
                or (
                    row_bytes % SMALL_K_SPREAD_BYTES != 0
                    and (log or reads_only or n_k <= SMALL_K_SOFTMAX_SPREAD_ROWS)
                )
            )
        )
        or (n_k <= SMALL_K_UNALIGNED and unaligned)
        or (n_k <= SMALL_K_NARROW and row_bytes <= SMALL_K_NARROW_ROW_BYTES)
        or (row_bytes <= SMALL_K_ANY_ROW_BYTES and n_k <= SMALL_K_COUNTS_EXACT)
        or (row_bytes <= SMALL_K_QUAD_ROW_BYTES and n_k <= SMALL_K_QUAD_ROWS)
    )


#: columns per work item of the small-K kernels (fewer where threads would be idle:
#: ``_numpy_backend._small_k_work``)
SMALL_K_CHUNK = 1024


# log_softmax over few rows, tile by tile as softmax above: the max (skipping NaN), then per row
# the exps below the max summed and the entries at it counted (as ``_log_stats_lanes``, except
# that an entry that is neither below nor at the max -- NaN -- adds its NaN exp, so that the
# column's results are NaN, where the block kernels catch NaN in their max), the log of each
# column's sum in registers (``column_log``'s, 16 float32 lanes or 8 float64 at once), and the
# results written as ``write_log_probability_rows`` writes them.  The same arithmetic as the block
# kernels, column by column: bit-identical results.
#
# Paired on the Xeon, 2 threads, against the block kernels (both with ``log_of_total``): 32x3x224x224
# axis 1 0.82, float64 0.81; 16x2x256x256 0.70 / 0.69; 4x8x4096 0.80 / 0.79; 128x12x256 0.78 /
# 0.84; 4x12x65536 0.90 / 0.77.  (In 2026-12-02's attempt the sums were staged in scratch for the
# block kernels' log loop, with its four divisions: 0.89-0.96.)  With ``log_of_total`` the log was
# 19% (K = 8) to 36% (K = 3) of a float32 tile's time (replaced by an addition, to measure): two
# float64 logs per 16 columns, four 8-lane divisions.  ``log_of_totals_f32`` takes one 16-lane
# float32 division (2026-12-03, paired against the float64 log): 32x3x224x224 0.79, 2x3x4x5000
# `axis=2` 0.87, 4x8x4096 0.88, 128x16x256 0.91; the block kernels unchanged (NCHW 0.99, 64x4096
# `axis=0` 0.99: one log per column of 21-4096 rows).  Summing every exp with no count at the max
# (wrong for tails below float64's ulp of 1; measured to see what counting costs): 0.95-0.99 more.


def _tile_log_pair(best, a, b, ca, cb, t_hi, like):
    """The pair ``(hi, lo)`` a tile's results are written with, as vectors of ``like``'s dtype,
    from its max ``best`` and its sums and counts (as ``_add_lanes`` holds them): ``m + log s``
    (``_shift_pair``) for T = 1, else ``log s`` (``pair_like``), per column (numba only)."""
    raise NotImplementedError("_tile_log_pair is callable from numba-compiled code only")


@callee_overload(_tile_log_pair)
def _tile_log_pair_overload(best, a, b, ca, cb, t_hi, like):
    shifted = isinstance(t_hi, types.NoneType)
    if like.dtype == types.float32:

        def narrowed(best, a, b, ca, cb, t_hi, like):
            # column_log's float32 log, 16 lanes at once; the pair by TwoSum in float32 is the
            # one _shift_pair forms from the same log in float64 (double rounding of a sum of
            # two float32 through float64 is innocuous, and the error term is exact in both)
            log_sum = log_of_totals_f32(ca, unscaled(a, like), cb, unscaled(b, like))
            if shifted:
                return two_sum(best, log_sum)
            return log_sum, splat(np.float32(0.0))

        return narrowed

    def wide(best, a, b, ca, cb, t_hi, like):
        log_sum = log_of_total(ca, unscaled(a + b, like))
        if shifted:
            return two_sum(best, log_sum)
        return log_sum, splat(0.0)

    return wide


@callee(fastmath=ORDERED, inline="always")
def _tile_log_stats(x3, sign, t_hi, t_lo, best, o, j, part):
    """``(a, b, ca, cb)``: the sums of a tile's exps below its (finite) max ``best`` and the counts
    of its entries at it, as ``_add_lanes`` holds them; a NaN entry adds its NaN exp."""
    zero = cast_like(0.0, x3)
    a = splat(0.0)
    b = splat(0.0)
    at_max = splat(zero)  # counts in the dtype's lanes: exact up to 2**24 rows
    for k in range(x3.shape[1]):
        v = signed(load_part(x3, (o, k, j), part), sign)
        at = v == best  # v > best is not possible, and NaN is neither: one comparison for both
        a, b = _add_lanes(a, b, select(at, zero, scaled_shifted_exp(v, best, t_hi, t_lo)))
        at_max = at_max + select(at, cast_like(1.0, x3), zero)
    ca, cb = _add_lanes(splat(0.0), splat(0.0), at_max)
    return a, b, ca, cb


@callee(inline="always")
def _tile_counts(at_max):
    """A tile's counts at the max, held in the dtype's lanes, as ``_add_lanes`` holds sums."""
    return _add_lanes(splat(0.0), splat(0.0), at_max)


@callee(fastmath=ORDERED, inline="always")
def _tile_log_step(x3, sign, t_hi, t_lo, best, index, part, a, b, at_max):
    """One row of ``_tile_log_stats``, for the quads: its sums ``(a, b)`` and counts ``at_max``
    after the lanes at ``index`` (``_tile_log_stats`` keeps its own loop body, as ``_tile_exps``)."""
    zero = cast_like(0.0, x3)
    v = signed(load_part(x3, index, part), sign)
    at = v == best  # v > best is not possible, and NaN is neither: one comparison for both
    a, b = _add_lanes(a, b, select(at, zero, scaled_shifted_exp(v, best, t_hi, t_lo)))
    return a, b, at_max + select(at, cast_like(1.0, x3), zero)


@callee(inline="always")
def _tile_log_reads(x3, y3, sign, t_hi, t_lo, o, j, part, best):
    """log_softmax's and logsumexp's ``reads`` (see ``_tile_exps``): the state ``(best, a, b,
    ca, cb)``, the tile's max and its stats (``_tile_log_stats``)."""
    a, b, ca, cb = _tile_log_stats(x3, sign, t_hi, t_lo, best, o, j, part)
    return best, a, b, ca, cb


@callee(inline="always")
def _tile_log_middle(state, t_hi, like):
    """log_softmax's ``middle``: the pair ``_tile_log_pair``."""
    best, a, b, ca, cb = state
    return _tile_log_pair(best, a, b, ca, cb, t_hi, like)


@callee(fastmath=ORDERED, inline="always")
def _tile_log_write(x3, y3, sign, t_hi, t_lo, o, j, part, state, pair):
    """log_softmax's ``finish``: the tile's results from its max and the pair."""
    hi, lo = pair
    for k in range(x3.shape[1]):
        store_part(y3, (o, k, j), _short_log_lanes(x3, sign, state[0], t_hi, t_lo, hi, lo, (o, k, j), part), part)


@callee()
def _small_k_log_columns_special(x3, out3, sign, t_hi, t_lo, o, j, count):
    """log_softmax of columns ``j:j + count`` of ``x3[o]`` one at a time (as
    ``_small_k_columns_special``)."""
    for c in range(j, j + count):
        x = x3[o, :, c]
        out = part_of(out3, (o, slice(None), c))
        m = slice_max(x, None, sign)
        if not math.isfinite(m):
            slice_special(x, out, None, sign, m, _MODE_LOG_SOFTMAX)
            continue
        write_log_probabilities(x, out, None, sign, m, t_hi, t_lo, _column_log_sum(x, sign, m, t_hi, t_lo, x))


@callee()
def _column_log_sum(x, sign, m, t_hi, t_lo, log_like):
    """``log(sum exp((v - m)/T))`` of one column ``x`` with a finite max ``m``, as a tile takes it
    (scalar; ``log_like``: see ``column_log``)."""
    total = 0.0
    compensation = 0.0
    at_max = 0.0
    for k in range(x.size):
        v = signed(x[k], sign)
        if v < m:
            total, compensation = _add_term(total, compensation, scaled_shifted_exp(v, m, t_hi, t_lo))
        elif v == m:
            at_max += 1.0
    return column_log(max(at_max, 1.0), unscaled(total + compensation, x), log_like)


def _log_softmax_small_k_range(t, first, stop, x3, out3, sign, t_hi, t_lo, chunk, paired):
    _small_k_tiles(_tile_log_reads, _tile_log_middle, _tile_log_write, _small_k_log_columns_special, first, stop,
                   x3, out3, sign, t_hi, t_lo, chunk, paired)


@kernel()
def log_softmax_small_k_serial(n_items, workers, x3, out3, sign, t_hi, t_lo, chunk, paired):
    _small_k_tiles(_tile_log_reads, _tile_log_middle, _tile_log_write, _small_k_log_columns_special, 0, n_items,
                   x3, out3, sign, t_hi, t_lo, chunk, paired)


#: as ``softmax_small_k``, for log_softmax
log_softmax_small_k = RangeKernel(_log_softmax_small_k_range)


# Four tiles side by side, row by row (softmax and log_softmax): for rows a multiple of 1 KiB apart (not 4
# KiB), whose lines crowd into 2 or 4 L1 sets, too many rows for a tile to stay in L1 through its
# passes (``SMALL_K_ROWS_PER_SET``).  Each pass reads the four tiles' lines of a row in sequence
# (256 bytes), as a block does, while their states stay in registers, as a tile's do; per column
# the same operations as one tile, so the same bits.  Measured on a Zen 5 VM (2026-12-05, float32
# `axis=0`, fresh), quads / the better of blocks and tiles, 2 threads: 64x512 0.76, 96x512 0.67,
# 100x256 0.87, 150x512 0.62, 300x512 0.60-0.66, 600x256 0.86, 1000x256 0.69-0.76, 100x768 0.88,
# 64x1536 0.65, 250x1280 0.78, but 1000x512 (2 MiB) 0.91-1.09, 2000x512 (4 MiB) 1.02-1.17; where the blocks
# already have a block a thread, mixed (4x128x256 `axis=1` 0.87-0.91, 2x128x512 1.00, 8x64x512
# 1.07-1.10, 16x128x256 1.01).  One thread, mixed too (100x256 0.88, 40x512 0.88, 64x512 0.95,
# 1000x256 0.94-1.02, but 64x1536 1.12, 150x512 1.15, 1000x512 1.11, 8x64x512 1.20-1.23), and
# rows 4 KiB apart lost (64x4096 123 against 95.5 us: their lines share one set even four at a
# time).  Hence ``takes_quad_tiles``: parallel calls whose block kernels would give no thread
# more than one block (the blocks narrowed for threads scale poorly here, and quads split by
# columns instead), in layouts of up to QUAD_LAYOUT_BYTES.  softmax's quads, paired against the
# blocks (2 threads, fresh): 64x512 0.981, 128x512 0.920, 300x512 0.727 (`out=` 0.776), 600x256
# 0.746, 1000x256 0.805, 64x1536 0.721; one thread they lost 1-10% (600x256 1.10, 1000x256 1.09).
QUAD_LAYOUT_BYTES = 1 << 20


def takes_quad_tiles(n_k, row_bytes, layout_bytes):
    """Whether a parallel softmax or log_softmax over ``n_k`` rows ``row_bytes`` apart (a column layout of
    ``layout_bytes``, unmasked, which ``takes_small_k_tiles`` refused, and whose block kernels would
    give no thread more than one block) takes four tiles side by side (``softmax_quad_k``,
    ``log_softmax_quad_k``)."""
    return crowded_sets(row_bytes) > 0 and layout_bytes <= QUAD_LAYOUT_BYTES and n_k <= SMALL_K_COUNTS_EXACT


@callee(fastmath=ORDERED, inline="always")
def _quad_max(x3, sign, o, j):
    """``(m0, m1, m2, m3, finite)``: ``_tile_max`` of the four whole tiles at columns ``j``,
    ``j + lanes``, ... of ``x3[o]``, row by row."""
    lanes = lanes_of(x3)
    m0 = splat(cast_like(-np.inf, x3))
    m1, m2, m3 = m0, m0, m0
    for k in range(x3.shape[1]):
        m0 = _running_max(m0, x3, (o, k, j), None, sign)
        m1 = _running_max(m1, x3, (o, k, j + lanes), None, sign)
        m2 = _running_max(m2, x3, (o, k, j + 2 * lanes), None, sign)
        m3 = _running_max(m3, x3, (o, k, j + 3 * lanes), None, sign)
    zero = cast_like(0.0, x3)
    # inf - inf is NaN: one test per tile for a max that is not finite, as _tile_max's
    finite = (all_lanes(m0 - m0 == zero) and all_lanes(m1 - m1 == zero) and all_lanes(m2 - m2 == zero)
              and all_lanes(m3 - m3 == zero))
    return m0, m1, m2, m3, finite


@callee(fastmath=ORDERED, inline="always")
def _softmax_quad(x3, y3, sign, t_hi, t_lo, o, j):
    """softmax of the four whole tiles at columns ``j``, ``j + lanes``, ... of ``x3[o]`` into
    ``y3`` (``_tile_exps``, ``_tile_sum_factors``, ``_tile_scale``), each pass over them row by
    row; False, storing nothing, if a column's max is not finite."""
    lanes = lanes_of(x3)
    j1, j2, j3 = j + lanes, j + 2 * lanes, j + 3 * lanes
    m0, m1, m2, m3, finite = _quad_max(x3, sign, o, j)
    if not finite:
        return False
    a0 = splat(0.0)
    b0, a1, b1, a2, b2, a3, b3 = a0, a0, a0, a0, a0, a0, a0
    for k in range(x3.shape[1]):
        a0, b0 = _tile_exp_step(x3, y3, sign, t_hi, t_lo, m0, (o, k, j), None, a0, b0)
        a1, b1 = _tile_exp_step(x3, y3, sign, t_hi, t_lo, m1, (o, k, j1), None, a1, b1)
        a2, b2 = _tile_exp_step(x3, y3, sign, t_hi, t_lo, m2, (o, k, j2), None, a2, b2)
        a3, b3 = _tile_exp_step(x3, y3, sign, t_hi, t_lo, m3, (o, k, j3), None, a3, b3)
    f0 = _tile_factors(a0, b0, x3)
    f1 = _tile_factors(a1, b1, x3)
    f2 = _tile_factors(a2, b2, x3)
    f3 = _tile_factors(a3, b3, x3)
    for k in range(x3.shape[1]):
        _tile_scale_step(x3, y3, sign, t_hi, t_lo, (o, k, j), None, m0, f0)
        _tile_scale_step(x3, y3, sign, t_hi, t_lo, (o, k, j1), None, m1, f1)
        _tile_scale_step(x3, y3, sign, t_hi, t_lo, (o, k, j2), None, m2, f2)
        _tile_scale_step(x3, y3, sign, t_hi, t_lo, (o, k, j3), None, m3, f3)
    return True


@callee(fastmath=ORDERED, inline="always")
def _log_quad(x3, y3, sign, t_hi, t_lo, o, j):
    """log_softmax of the four whole tiles at columns ``j``, ``j + lanes``, ... of ``x3[o]``
    into ``y3``, each pass over them row by row; False, storing nothing, if a column's max is
    not finite (the caller then takes them one at a time)."""
    lanes = lanes_of(x3)
    j1, j2, j3 = j + lanes, j + 2 * lanes, j + 3 * lanes
    m0, m1, m2, m3, finite = _quad_max(x3, sign, o, j)
    if not finite:
        return False
    zero = cast_like(0.0, x3)
    a0 = splat(0.0)
    b0, a1, b1, a2, b2, a3, b3 = a0, a0, a0, a0, a0, a0, a0
    n0 = splat(zero)
    n1, n2, n3 = n0, n0, n0
    for k in range(x3.shape[1]):
        a0, b0, n0 = _tile_log_step(x3, sign, t_hi, t_lo, m0, (o, k, j), None, a0, b0, n0)
        a1, b1, n1 = _tile_log_step(x3, sign, t_hi, t_lo, m1, (o, k, j1), None, a1, b1, n1)
        a2, b2, n2 = _tile_log_step(x3, sign, t_hi, t_lo, m2, (o, k, j2), None, a2, b2, n2)
        a3, b3, n3 = _tile_log_step(x3, sign, t_hi, t_lo, m3, (o, k, j3), None, a3, b3, n3)
    # the four logs (a tile's long dependency chain) side by side, as a pair's
    h0, l0 = _tile_log_pair(m0, a0, b0, *_tile_counts(n0), t_hi, x3)
    h1, l1 = _tile_log_pair(m1, a1, b1, *_tile_counts(n1), t_hi, x3)
    h2, l2 = _tile_log_pair(m2, a2, b2, *_tile_counts(n2), t_hi, x3)
    h3, l3 = _tile_log_pair(m3, a3, b3, *_tile_counts(n3), t_hi, x3)
    for k in range(x3.shape[1]):
        store_part(y3, (o, k, j), _short_log_lanes(x3, sign, m0, t_hi, t_lo, h0, l0, (o, k, j), None), None)
        store_part(y3, (o, k, j1), _short_log_lanes(x3, sign, m1, t_hi, t_lo, h1, l1, (o, k, j1), None), None)
        store_part(y3, (o, k, j2), _short_log_lanes(x3, sign, m2, t_hi, t_lo, h2, l2, (o, k, j2), None), None)
        store_part(y3, (o, k, j3), _short_log_lanes(x3, sign, m3, t_hi, t_lo, h3, l3, (o, k, j3), None), None)
    return True


@callee(inline="always")
def _quad_tiles(quad, reads, middle, finish, special, first, stop, x3, out3, sign, t_hi, t_lo, chunk):
    """Items ``first:stop`` as ``_small_k_tiles``'s, four whole tiles at a time by ``quad`` (one
    at a time by the other steps where ``quad`` declines), the last columns a tile at a time."""
    x3, out3 = borrowed(x3), borrowed(out3)
    y3 = target(x3, out3)
    inner = x3.shape[2]
    lanes = lanes_of(x3)
    per_outer = (inner + chunk - 1) // chunk
    for w in range(first, stop):
        o, j, stop_j = _column_block_bounds(w, per_outer, chunk, inner)
        while j + 4 * lanes <= stop_j:
            if not quad(x3, y3, sign, t_hi, t_lo, o, j):
                for jj in range(j, j + 4 * lanes, lanes):
                    if not _one_tile(reads, middle, finish, x3, y3, sign, t_hi, t_lo, o, jj, None):
                        special(x3, out3, sign, t_hi, t_lo, o, jj, lanes)
            j += 4 * lanes
        _tiles_to(reads, middle, finish, special, x3, out3, y3, sign, t_hi, t_lo, o, j, stop_j)


def _softmax_quad_k_range(t, first, stop, x3, out3, sign, t_hi, t_lo, chunk):
    _quad_tiles(_softmax_quad, _tile_exps, _tile_sum_factors, _tile_scale, _small_k_columns_special, first, stop,
                x3, out3, sign, t_hi, t_lo, chunk)


def _log_softmax_quad_k_range(t, first, stop, x3, out3, sign, t_hi, t_lo, chunk):
    _quad_tiles(_log_quad, _tile_log_reads, _tile_log_middle, _tile_log_write, _small_k_log_columns_special, first,
                stop, x3, out3, sign, t_hi, t_lo, chunk)


#: ``(n_items, workers, x3, out3, sign, t_hi, t_lo, chunk)``: softmax over the rows of a layout
#: ``takes_quad_tiles`` accepts, unmasked, four tiles side by side (``n_items`` as ``softmax_small_k``)
softmax_quad_k = RangeKernel(_softmax_quad_k_range)
#: as ``softmax_quad_k``, for log_softmax
log_softmax_quad_k = RangeKernel(_log_softmax_quad_k_range)


# logsumexp over few rows: a tile's max and stats as log_softmax's, ``m + log s`` stored per column
# (float32 results rounded from float64, as ``_logsumexp_column_block`` stores them): bit-identical
# to the block kernels.  Paired against them, 2 threads: 32x3x224x224 `axis=1` 0.81 (float64
# 0.88), 4x8x4096 0.89, 2x3x4x5000 `axis=2` 0.89, 128x16x256 0.87, 4x24x5000 0.92, 4x21x50000 0.93,
# 4x256x250 0.76, 16384x16 `axis=0` 0.42.


def _tile_logsumexp(best, a, b, ca, cb, like):
    """``m + log s`` per column of a tile, as a vector of ``like``'s dtype (numba only)."""
    raise NotImplementedError("_tile_logsumexp is callable from numba-compiled code only")


@callee_overload(_tile_logsumexp)
def _tile_logsumexp_overload(best, a, b, ca, cb, like):
    if like.dtype == types.float32:
        return lambda best, a, b, ca, cb, like: narrow_halves(
            widen_low(best) + log_of_total(ca, unscaled(a, like)), widen_high(best) + log_of_total(cb, unscaled(b, like))
        )
    return lambda best, a, b, ca, cb, like: best + log_of_total(ca, unscaled(a + b, like))


@callee(inline="always")
def _tile_logsumexp_middle(state, t_hi, like):
    """logsumexp's ``middle``: ``m + log s`` per column (``_tile_logsumexp``)."""
    best, a, b, ca, cb = state
    return _tile_logsumexp(best, a, b, ca, cb, like)


@callee(inline="always")
def _tile_logsumexp_store(x3, res2, sign, t_hi, t_lo, o, j, part, state, values):
    """logsumexp's ``finish``: the tile's values into ``res2[o, j:]``."""
    store_part(res2, (o, j), values, part)


@callee()
def _small_k_logsumexp_special(x3, res2, sign, t_hi, t_lo, o, j, count):
    """logsumexp of columns ``j:j + count`` of ``x3[o]`` one at a time: the max where it is NaN
    or infinite, as the block kernels."""
    for c in range(j, j + count):
        x = x3[o, :, c]
        m = slice_max(x, None, None)
        res2[o, c] = np.float64(m) + _column_log_sum(x, None, m, None, None, None) if math.isfinite(m) else m


def _logsumexp_small_k_range(t, first, stop, x3, res2, chunk, paired):
    _small_k_tiles(_tile_log_reads, _tile_logsumexp_middle, _tile_logsumexp_store, _small_k_logsumexp_special, first,
                   stop, x3, res2, None, None, None, chunk, paired)


@kernel()
def logsumexp_small_k_serial(n_items, workers, x3, res2, chunk, paired):
    _small_k_tiles(_tile_log_reads, _tile_logsumexp_middle, _tile_logsumexp_store, _small_k_logsumexp_special, 0,
                   n_items, x3, res2, None, None, None, chunk, paired)


#: ``(n_items, workers, x3, res2, chunk, paired)``: logsumexp over the rows of a small-K layout into
#: ``res2`` (``outer, inner``), unmasked
logsumexp_small_k = RangeKernel(_logsumexp_small_k_range)
