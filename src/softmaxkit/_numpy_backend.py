"""NumPy arrays: choose a canonical layout, allocate, and call the kernels.

The public functions in ``softmaxkit._api`` validate arguments and apply the policy; this module
receives a validated ndarray and reduces the call to a kernel over one of two canonical
layouts of a C-contiguous block (see ``softmaxkit._kernels.softmax``):

* if the array is contiguous in *some* axis order (C, F, any transpose) and the reduction axes
  are adjacent in that order, the block is a view: no copy, and the result gets the same memory
  layout as the input;
* otherwise the reduction axes are moved to the end and the array is copied once.
"""

from __future__ import annotations

import math
import sys
import threading
from functools import lru_cache
from types import ModuleType, SimpleNamespace
from typing import Any, Callable, NamedTuple

import numpy as np

from ._results import cached_empty

# Work per call below which a serial kernel is used.  The kernels are compute-bound (about 1 ns
# per float32 element per thread on this AVX2 machine), so a parallel call (a few microseconds of
# OpenMP overhead) pays off from a few tens of thousands of elements: 64x1000 takes 84 us serial,
# about 45 us on two threads.  Caveat: on a machine whose other core is busy, an OpenMP region
# waits for its descheduled thread (64x1000 measured 7 ms under heavy load).
PARALLEL_MIN_ELEMENTS = 1 << 15
# Rows longer than this are split into chunks of SPLIT_CHUNK elements processed in parallel.
SPLIT_MIN_LENGTH = 1 << 16
SPLIT_CHUNK = 1 << 14
# Column blocks: a block's K x width slab of input and output is about COLUMN_BLOCK_BYTES, and a
# block is at least COLUMN_MIN_BLOCK_WIDTH columns wide (narrower blocks touch one or two cache
# lines per row and pay the per-row loop overheads on a handful of vectors).  Measured on Zen 5
# (float32, out=, 2 threads, median of 75 calls interleaved), 1 MiB / 512 KiB / 512 KiB with at
# least 128 columns: 4x21x65536 2.02 / 1.89 / 1.84 ms (widths 6240 / 3120 / 3120: at 1 MiB the
# slab overflows the 1 MiB L2), 8x256x4096 3.83 / 3.77 / 3.82 (512 / 256 / 256 columns),
# 16x64x8192 2.80 / 2.77 / 2.76, 2x1000x8192 9.47 / 10.9 / 9.53 ms (128 / 64 / 128 columns).
# For large K the minimum decides: 1x10000x2048 at least 16 / 64 / 128 columns 55 / 20 / 18 ms.
# And wider still: a block's rows are at least COLUMN_MIN_BLOCK_ROW_BYTES, even where its slab
# then overflows L2.  Rows of 512 bytes (128 float32 columns) are eight cache lines every K-stride:
# the hardware prefetchers never get going, and every pass waits on memory.  Measured on the Xeon
# (float32, out=, 2 threads, per width / the old 128 columns): softmax 1x10000x2048 256 0.62, 512
# 0.44, 1024 0.35, 2048 0.53; 2x1000x8192 0.55 / 0.48 / 0.44 / 0.41; 4x2048x512 512 0.53;
# 1x512x2048 512 0.61, 1024 0.65; 1x4096x4096 1024 0.40; log_softmax alike (1x10000x2048 1024 0.31,
# 4x2048x512 512 0.66); float64 1x4000x2048 512 0.64, 1024 0.58.  (Where that leaves fewer blocks
# than threads, _column_work narrows them again, to no less than COLUMN_MIN_BLOCK_WIDTH.)
COLUMN_BLOCK_BYTES = 1 << 19
# log_softmax's column blocks stage their exps in the output only in layouts of more than this
# many bytes (``_kernels.softmax.staging_into``, where the measurements are).
COLUMN_LOG_STAGE_ABOVE_BYTES = 16 << 20
# log_softmax's blocks take half as much (COLUMN_BLOCK_BYTES // COLUMN_LOG_BLOCK_DIVISOR): its
# stats pass stages the exps in the output block (since 2026-12-05 only above
# COLUMN_LOG_STAGE_ABOVE_BYTES) while it prefetches the next block, so input,
# output and the next input of 512 KiB blocks filled a 1 MiB L2.  Measured on Zen 4 (2026-12-04,
# benchmarks/pair_revisions.py, 2 threads, float32 out= unless stated, 256 KiB against 512 KiB):
# 4x21x65536 0.87-0.89 (fresh 0.89-0.90, float64 0.93-0.95), 16x24x16384 0.85-0.90, 8x32x16384
# 0.93-1.00, 2x48x65536 0.99-1.01, 8x256x4096 1.02, 16x64x8192 0.99, 4x150x4096 1.00; 128 KiB no
# better (4x21x65536 0.87, 16x64x8192 1.04, 4x150x4096 1.04).  softmax lost at 256 KiB
# (4x21x65536 1.12) and logsumexp tied (0.98): they keep COLUMN_BLOCK_BYTES.
COLUMN_LOG_BLOCK_DIVISOR = 2
COLUMN_MIN_BLOCK_WIDTH = 128
COLUMN_MIN_BLOCK_ROW_BYTES = 1 << 12
# Column softmax blocks whose four output rows take more than this many bytes store and sum
# their exps in one vector pass, narrower ones by two loops; None: the kernels' choice for the
# CPU they compile for (``_kernels.softmax.COLUMN_FUSE_ABOVE_BYTES``, and on some CPUs every
# block of a large layout: ``COLUMN_FUSE_LAYOUT_BYTES``).
COLUMN_FUSE_ABOVE_BYTES: int | None = None
# Unmasked float32 rows of at most this many elements take the short-row kernels; None: the
# kernels' own limits, ``SHORT_SOFTMAX_ROW`` and ``SHORT_ROW`` (tests set 0 to compare the short
# kernels with the general ones, or a larger value to try longer rows).
SHORT_ROW: int | None = None
# ... and of at most this many, the packed kernels (a group of 16 or 8 rows at a time, a row per
# lane); None: the kernels' ``PACKED_ROW`` (float64: ``PACKED_ROW_FLOAT64``; tests set 0 to
# compare the packed kernels with the short ones,
# and the two minimums below to 0 to take them on any number of rows).  Per call, on Zen 5, one
# thread, packed against short (softmax, the last to gain): rows of 4 from 16 rows (411 ns
# against 471); of 8 from 24-32; of 9-16 from 40-48; of 17-24 from 40-48 (24: 48 rows 0.97 of
# the time); of 32 from 64-72 (64 rows 1.07, 96 rows 0.92); of 33 from 48, of 48 from 96-128,
# of 64 from 128-192 (log_softmax 192 rows 0.94, 256 rows 0.97).  float64 rows the same (of 4
# from 16-24, of 12 from 48, of 24 from 96: 1.04 / 0.85 / 0.85).
PACKED_ROW: int | None = None
PACKED_MIN_ROWS = 18
PACKED_MIN_ROWS_PER_ELEMENT = 4
# A packed row element of a row of at most 8 costs about a quarter of a short row's: they take
# two threads from 8192 elements (2048x4 softmax 3.6 us against 4.3 on one thread, log_softmax
# 4.5 against 6.4; 1024x8 3.3 against 3.7; 1024x4 2.6 against 2.5).  Longer rows, each in
# registers of its own, from 16384 (1024x16 softmax 6.4 us against 7.0, 512x16 5.2 against 4.6;
# 512x32 6.2 against 6.4, 256x32 5.0 against 4.2; 410x40 6.9 against 7.4, 204x40 5.5 against
# 4.7; 256x64 6.8 against 6.5, 512x64 8.7 against 10.5).
PACKED_WORK_FACTOR = 4
PACKED_LONG_WORK_FACTOR = 2
# Unmasked softmax, log_softmax and logsumexp over at most this many rows K of a column layout
# take the small-K kernels; None: the kernels' choice, ``takes_small_k_tiles`` (tests set 0 to compare
# them with the block kernels, or a larger value to try more rows).
SMALL_K: int | None = None
# Four tiles side by side (softmax, log_softmax): None, the kernels' choice (``takes_quad_tiles``, for a
# parallel call whose blocks would be no more than its workers); True or False forces them
# wherever the small-K tiles were refused (tests).
QUADS: bool | None = None
# ... whose work items (SMALL_K_CHUNK columns of one outer index) narrow for threads from this
# many elements (``_small_k_work``); softmax's, into rows not on cache lines, to no fewer than
# SMALL_K_SOFTMAX_ITEM_BYTES a row.
# Measured on the Xeon (2 threads, items of 16 or 32 columns against one of 1024, float32
# ``axis=0``): log_softmax 32768x32 0.65, 4096x64 0.95, 2048x64 1.01, softmax 4096x64 1.02, 2048x64
# 0.97, but log_softmax 1000x64 1.27, hence 1 << 17 then.  On Zen 4 (2026-12-04, 2 threads, `out=`,
# tiles narrowed against tiles of one item, within one package) from PARALLEL_MIN_ELEMENTS:
# log_softmax 1000x64 0.87, 2000x64 0.70, 1000x100 0.76, 2000x100 0.67, 600x100 0.77, 300x200 0.78;
# softmax 1000x100 0.85, 2000x100 0.76, 4000x100 0.77, 1000x200 0.66, 300x200 0.75; but softmax's
# items of 32 columns into an output 16 bytes past a line (numpy's, a user's `out=`), two threads
# writing one line of every row twice, 2000x64 2.43 slower, 3000x64 3.13, bimodal (4096x64 0.84
# with quartiles 0.83-2.46); into rows that start on lines (softmaxkit's fresh results from 1 MiB)
# 1000x64 0.92, 2000x64 0.85, 4096x64 0.89, 3000x64 1.14, 2000x32 0.94.
SMALL_K_SPLIT_MIN_ELEMENTS = PARALLEL_MIN_ELEMENTS
SMALL_K_SOFTMAX_ITEM_BYTES = 256
# Masked short rows (the short kernels' lengths) of at least this many rows fill their masked
# entries with -inf and take the unmasked short or packed kernels (``_run_rows``); fewer take the
# general kernels with the mask, whose cost per row the fill's fixed 0.7-0.8 us outweighs there.
# Zen 5, one thread, random 70% masks, fill against general: log_softmax 8x10 3.22 / 3.13 us,
# 12x10 3.24 / 3.51, 16x100 3.85 / 4.59, 256x32 6.8 / 27; softmax 32x32 3.74 / 3.40, 48x32
# 4.02 / 3.93, 64x10 3.94 / 4.37, 64x100 5.88 / 5.72, 128x10 4.35 / 6.41, 256x32 6.5 / 12.2.
# Emerald Rapids (2026-12-06, `out=`, paired, filled / general): softmax 8x10 1.20, 16x32 1.16,
# 32x32 1.12, 48x32 1.04, 32x100 1.12; 64x32 1.00, 64x100 1.03, 64x10 0.80, 96x32 0.91, 128x10
# 0.61, 256x32 0.61; log_softmax 4x10 1.12, 8x10 1.06, 8x100 1.03; 12x10 0.96, 16x100 0.89, 32x32
# 0.80, 256x32 0.26: both thresholds hold there.
MASKED_FILL_MIN_ROWS = 64
MASKED_LOG_FILL_MIN_ROWS = 10
# Masked logsumexp over short rows (float32 rows only up to MASKED_LOGSUMEXP_FILL_MAX_FLOAT32_ROW),
# from this many rows, copies them with -inf where masked into a worker's scratch, FILL_CHUNK_BYTES
# at a time, and takes the unmasked short or packed kernels (``_run_masked_short_logsumexp_rows``).
# Zen 5, random 70% masks, `out=`, filled against the general kernels with the mask: one thread,
# float32 (float64) 16x10 0.89 (0.78), 8x10 0.99 (0.91), 4x10 1.04 (0.99), 256x32 6.9 against
# 18.9 us, 10000x10 113 against 644, 2000x128 0.58 (0.55), 2000x256 0.74 (0.71), 1000x400 0.89
# (0.79), 500x1000 1.05 (0.82); two threads 10000x10 56 against 365 us, 4096x64 58 against 158,
# 2000x256 0.87 (0.83), 1000x300 0.93 (0.81), 1000x400 1.03 (0.82), 500x1000 1.19 (0.82).  The
# fill is a pass of its own, which float32's masked vector stats (``_row_log_stats_lanes``) come
# close to on long rows; float64's masked stats are slower.
MASKED_LOGSUMEXP_FILL_MIN_ROWS = 8
MASKED_LOGSUMEXP_FILL_MAX_FLOAT32_ROW = 320
FILL_CHUNK_BYTES = 16384
# Masked columns (a plain mask over another axis, ``softmax_other_axis``) are filled with -inf
# into the output and taken by the unmasked column kernels in place (``_masked_columns_by_filling``):
# log_softmax's always, softmax's (softmin's) over rows less than MASKED_COLUMNS_SOFTMAX_FILL_ROW_BYTES
# apart; else the block kernels with the mask.  None: that rule; True or False forces it (tests).
# Zen 5, one thread, random 70% masks, filled against the masked blocks (same bits): log_softmax
# 16x64 `axis=0` 3.0 / 5.1 us, 2x64x16x16 `axis=1` 13.4 / 20.0, 1000x100 38 / 72, 64x4096 98 / 120,
# 1024x1024 385 / 422, 4x21x64x64 `axis=1` 138 / 167, 100x256 12.9 / 15.5; softmax 16x64 2.9 / 4.5,
# 1000x100 40 / 48, but over rows 1 KiB apart or more 2x64x16x16 16.2 / 14.7, 100x256 12.4 / 11.1,
# 64x4096 95 / 78, 1024x1024 362 / 264, 4x21x64x64 128 / 106: its masked blocks are nearly as fast
# as its unmasked ones, and the fill is a pass of its own.  But the fill is one thread's pass: where
# the masked blocks would share the layout among threads (``_masked_columns_filled``) they take it.
# Emerald Rapids, 2 threads, random 70% masks, `out=`, masked blocks / filled (best of 3 paired):
# log_softmax 4x21x256x256 `axis=1` 0.83, 8x19x128x128 0.75, 4x21x64x64 0.80, 1024x1024 `axis=0`
# 0.87, 64x4096 0.75, 1000x100 0.83, 2x64x16x16 0.79, 512x512 1.03; softmax 1000x100 0.54; but in
# one block (one thread) log_softmax 4096x64 1.41, and at one thread log_softmax 0.95-1.38 (filled).
MASKED_COLUMNS_FILL: bool | None = None
MASKED_COLUMNS_SOFTMAX_FILL_ROW_BYTES = 1024
# Below this many contiguous columns the strided-column kernel loses to one transposing copy.
COLUMN_MIN_WIDTH = 16
# ... except in layouts of at most this many elements without a mask, where the copies' fixed cost
# is most of a call and the small-K tiles take part of a vector of columns.  Paired against the
# copies (a Zen 5 VM, 2 threads, fresh results): softmax 10x8 `axis=0` 0.42, 512x8 0.86, float64
# 0.50; log_softmax 64x8 0.46, 1000x4 0.80, 16x16x15 `axis=1` 0.38, 100x10x10 0.27; but beyond it
# tall narrow columns lose (softmax 2000x8 1.55, 8192x8 2.53; log_softmax 4x2000x4 1.59).
COLUMN_ANY_WIDTH_ELEMENTS = 1 << 12


# Narrower columns too are taken as they lie, up to COLUMN_ROWS_PER_WIDTH2 * inner**2 rows, unless
# the results go over the input (in place, or into the copy a cast made): there each row's
# masked store held up the next row's loads (100x64x8 `axis=1` in place: log_softmax 1.19 as
# tiles, at 1 thread).  Against the rows moved to the end by a copy (a Zen 5 VM, 2 threads, fresh
# results): softmax 200x16x15 0.27, 2000x4x4 0.34, 1000x10x10 0.35, 10x5000x12 0.59, 50x128x8
# 0.69, 100x32x10 0.70, 100x64x8 0.73, 500x10x4 0.90, 2000x8 `axis=0` 0.91, 5000x8x3 0.92, but
# 20000x10 1.11, 8192x8 1.38, 200x256x4 1.64, 4x2000x4 1.97, 400x64x2 2.31; log_softmax
# 1000x10x10 0.30, 2000x4x4 0.41, 100x64x8 0.68, 500x10x4 0.74, 5000x8x3 0.79, 2000x8 0.77, but
# 200x256x4 1.38, 8192x8 1.13, 4x2000x4 1.61.
COLUMN_ROWS_PER_WIDTH2 = 4


def _columns_as_they_lie(n_k: int, inner: int, size: int, masked: bool, over_input: bool) -> bool:
    """Whether softmax's and log_softmax's kernels take a column layout of ``n_k`` rows of
    ``inner`` columns, ``size`` elements, as it lies (``inner == 1``: rows), rather than after a
    copy that moves the axis to the end; ``over_input``: whether the results go where it lies."""
    if inner == 1 or inner >= COLUMN_MIN_WIDTH:
        return True
    if masked:
        return False
    return size <= COLUMN_ANY_WIDTH_ELEMENTS or (not over_input and n_k <= COLUMN_ROWS_PER_WIDTH2 * inner * inner)


# logsumexp writes no layout, so its tiles take fewer columns than a vector further: from
# COLUMN_READ_WIDTH columns any number of rows, and up to COLUMN_READ_ROWS_PER_WIDTH2 * inner**2
# rows of fewer, against the rows moved to the end by one copy (a Zen 5 VM, 2 threads): inner 2:
# 20000x16x2 `axis=1` 0.88, but 400x256x2 1.55, 100x1000x2 1.71; inner 3: 5000x8x3 0.39, 1000x100x3
# 0.93, 100x512x3 1.06; inner 4: 2000x4x4 0.36, 500x10x4 0.56, 200x256x4 0.80, but 4x2000x4 1.51,
# 100000x4 `axis=0` 2.38; inner 5-7: 2000x16x5 0.55, 2000x24x5 0.58, 1000x64x6 0.76, 50x1000x6
# 0.57, 2000x32x7 0.55; inner 8: 2000x8 0.74, 10x10000x8 0.46, 65536x8 1.05, 30000x8 1.05; inner
# 10-12: 1000x10x10 0.22, 20000x10 0.81, 10x5000x12 0.40.
COLUMN_READ_WIDTH = 8
COLUMN_READ_ROWS_PER_WIDTH2 = 16


def _reads_columns_as_they_lie(n_k: int, inner: int, size: int, masked: bool) -> bool:
    """``_columns_as_they_lie`` for logsumexp."""
    return _columns_as_they_lie(n_k, inner, size, masked, False) or (
        not masked and (inner >= COLUMN_READ_WIDTH or n_k <= COLUMN_READ_ROWS_PER_WIDTH2 * inner * inner)
    )


# Column layouts split along K (``_takes_slabs``): None, the rule; True or False forces it (tests).
SLABS: bool | None = None
# ... from this many elements, with at least this many rows a slab, rows over this many bytes;
# slabs of at least SLAB_WHOLE_ROWS_FROM rows are passed over whole rows (and taken wherever blocks cut rows)
SLAB_MIN_ELEMENTS = 1 << 17
SLAB_MIN_ROWS = 64
SLAB_MIN_ROW_BYTES = 256
SLAB_WHOLE_ROWS_FROM = 512
# ... but log_softmax's slabs that are whole outer indices (one a slab: at least as many outer
# indices as threads) from this many rows.  Paired against the blocks on Zen 4 (2 threads, out=):
# 2x2000x2048 0.75, 3x2000x2048 0.85, 4x1000x2048 0.83, 2x1000x8192 0.90-1.03 (float64
# 0.84-0.95), but 6x700x2048 0.95, 2x700x3000 float64 1.04, 3x800x4096 1.19, 4x600x4096 1.07-1.08
# (float64 1.07-1.13), 8x600x1024 1.03, 4x512x2048 1.00-1.03 (float64 1.00-1.09).  Split along K
# they win from fewer rows: 1200x4096 0.84 (slabs of 600 rows), 1024x1024 0.78.
SLAB_LOG_WHOLE_INDEX_ROWS_FROM = 1000

MODE_SOFTMAX = 0
MODE_LOG_SOFTMAX = 1


@lru_cache(maxsize=None)
def kernels() -> Any:
    """The kernel module, imported (with numba) on first use, never at ``import softmaxkit``."""
    from ._kernels import backward, dropped, packed, softmax, weighted

    public = {}
    for module in (softmax, packed, weighted, backward, dropped):
        public.update({name: value for name, value in vars(module).items() if not name.startswith("_")})
    return _Kernels(**public)


class _Kernels(SimpleNamespace):
    """The kernels' namespace: setting an attribute (a test's replacement kernel or limit) forgets
    the plans made under the old value (``_forget_plans``)."""

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        _forget_plans()


def num_threads() -> int:
    """numba's thread count for the calling thread (``set_num_threads`` is per thread)."""
    n = _thread_count_reader()()
    return n if n > 0 else _numba_get_num_threads()


def _numba_get_num_threads() -> int:
    import numba

    return numba.get_num_threads()


@lru_cache(maxsize=None)
def _thread_count_reader() -> Any:
    """numba's C-level reader of the thread count once its threading layer is up.

    ``numba.get_num_threads()`` takes two locks on every call to check that the layer is
    initialised: 0.96 us, against 0.14 us for the reader itself.  A numba without the private
    reader falls back to the public function.
    """
    from numba.np.ufunc import parallel

    _numba_get_num_threads()  # starts the threading layer
    reader = getattr(parallel, "_get_num_threads", None)
    return reader if callable(reader) else _numba_get_num_threads


def use_parallel(size: int) -> bool:
    """Whether a kernel call over ``size`` elements should take its parallel variant."""
    return size >= PARALLEL_MIN_ELEMENTS and num_threads() > 1


def _workers(n_items: int) -> int:
    """How many workers a parallel kernel splits ``n_items`` work items among."""
    return min(n_items, num_threads())


class Block(NamedTuple):
    """How an ndarray maps onto the canonical ``(outer, K, inner)`` block."""

    order: tuple[int, ...]  # axis order in which the array is C-contiguous (size-1 axes last)
    outer: int
    k: int
    inner: int


def canonical_block(x: np.ndarray, axes: tuple[int, ...]) -> Block | None:
    """The zero-copy block for reducing ``x`` over ``axes``, or None if a copy is needed."""
    return _canonical_block(x.shape, x.strides, x.itemsize, axes)


@lru_cache(maxsize=1024)
def _canonical_block(
    shape: tuple[int, ...], strides: tuple[int, ...], itemsize: int, axes: tuple[int, ...]
) -> Block | None:
    # A pure function of the layout, cached: it runs on every call of the general path.
    ndim = len(shape)
    big = [d for d in range(ndim) if shape[d] != 1]
    if any(strides[d] <= 0 for d in big):
        return None
    order = tuple(sorted(big, key=lambda d: -strides[d])) + tuple(d for d in range(ndim) if shape[d] == 1)
    expected = itemsize
    for d in reversed(order):
        if shape[d] != 1:
            if strides[d] != expected:
                return None  # not C-contiguous in any axis order
            expected *= shape[d]
    positions = [i for i, d in enumerate(order) if d in axes and shape[d] != 1]
    if positions and positions != list(range(positions[0], positions[0] + len(positions))):
        return None
    if positions:
        first, last = positions[0], positions[-1] + 1
    else:  # every reduction axis has length 1: each element is its own slice
        first = last = len(big)
    sizes = [shape[d] for d in order]
    return Block(order, math.prod(sizes[:first]), math.prod(sizes[first:last]), math.prod(sizes[last:]))


def _moved_to_end(x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    return np.moveaxis(x, axes, tuple(range(x.ndim - len(axes), x.ndim)))


@lru_cache(maxsize=256)
def _inverse(order: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argsort(order))


@lru_cache(maxsize=1024)
def inverse_temperature(temperature: float, dtype: np.dtype) -> tuple[Any, Any]:
    """``1/temperature`` as a double-word ``(hi, lo)`` in ``dtype``.  (Temperature 1 is passed
    to the kernels as ``(None, None)`` instead, which compiles the multiplication away.)
    Cached: an RL loop calls softmax with the same temperature millions of times."""
    exact = np.longdouble(1.0) / np.longdouble(temperature)
    hi = dtype.type(exact)
    lo = dtype.type(exact - np.longdouble(hi))
    return hi, lo


def _same_memory(a: np.ndarray, b: np.ndarray) -> bool:
    return (
        a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
        and a.strides == b.strides
        and a.shape == b.shape
        and a.dtype == b.dtype
    )


def softmax_family(
    x: np.ndarray,
    axes: tuple[int, ...],
    *,
    mode: int,
    negate: bool,
    temperature: float,
    where: np.ndarray | None,
    kernel_dtype: np.dtype,
    result_dtype: np.dtype,
    out: np.ndarray | None,
) -> np.ndarray:
    """softmax / log_softmax / softmin of a validated ndarray; see ``softmaxkit.softmax``."""
    kept = None if where is None else slices_kept(where, x.shape, axes)
    if kept is not None:
        if out is not None and np.may_share_memory(out, where):
            kept = kept.copy()  # (read after the results are written)
        # A mask that keeps or drops whole slices (a query-padding mask (B, 1, T, 1), a pixel mask
        # (N, 1, H, W) over the channels): the unmasked kernels, then the dropped slices written
        # as an entirely masked slice is (0; log_softmax -inf), rather than a mask of x's size.
        result = softmax_family(
            x, axes, mode=mode, negate=negate, temperature=temperature, where=None,
            kernel_dtype=kernel_dtype, result_dtype=result_dtype, out=out,
        )
        write_dropped(result, kept, axes, -np.inf if mode == MODE_LOG_SOFTMAX else 0.0)
        return result
    xk = x if x.dtype == kernel_dtype else x.astype(kernel_dtype, order="K")
    if xk.size == 0:
        result = np.empty(x.shape, result_dtype)
        return _deliver(result, out)
    sign = kernel_dtype.type(-1.0) if negate else None
    t_hi, t_lo = (None, None) if temperature == 1.0 else inverse_temperature(temperature, kernel_dtype)
    mask = None if where is None else np.broadcast_to(where, x.shape)

    block = canonical_block(xk, axes)
    in_place = out is not None and result_dtype == kernel_dtype and _same_memory(out, xk)
    over_input = in_place or (xk is not x and out is None)  # the kernels' results go where xk lies
    if block is not None and _columns_as_they_lie(block.k, block.inner, xk.size, mask is not None, over_input):
        order = block.order
        shape3 = (block.outer, block.k, block.inner)
        x3 = xk.transpose(order).reshape(shape3)
        mask3 = None if mask is None else np.ascontiguousarray(mask.transpose(order)).reshape(shape3)
        direct = (
            out is not None
            and not in_place
            and out.dtype == kernel_dtype == result_dtype
            and out.transpose(order).flags.c_contiguous
            and not np.may_share_memory(out, xk)
        )
        if in_place:
            _run_softmax(x3, None, mask3, sign, t_hi, t_lo, mode)
            return out
        if direct:
            _run_softmax(x3, out.transpose(order).reshape(shape3), mask3, sign, t_hi, t_lo, mode)
            return out
        if xk is not x and out is None:
            # xk is our own cast copy: compute in place in it.
            _run_softmax(x3, None, mask3, sign, t_hi, t_lo, mode)
            result = xk
        else:
            buffer_t = result_empty([xk.shape[d] for d in order], kernel_dtype, xk.nbytes, xk)
            _run_softmax(x3, buffer_t.reshape(shape3), mask3, sign, t_hi, t_lo, mode)
            result = buffer_t.transpose(_inverse(order))
    else:
        moved = np.ascontiguousarray(_moved_to_end(xk, axes))
        if np.may_share_memory(moved, x):  # the kernel below writes into ``moved``
            moved = moved.copy()
        n = math.prod(xk.shape[d] for d in axes)
        x2 = moved.reshape(-1, n, 1)
        mask2 = None if mask is None else np.ascontiguousarray(_moved_to_end(mask, axes)).reshape(-1, n, 1)
        _run_softmax(x2, None, mask2, sign, t_hi, t_lo, mode)
        result = np.moveaxis(moved, tuple(range(xk.ndim - len(axes), xk.ndim)), axes)
    return _deliver(_narrow(result, result_dtype), out)


def slices_kept(where: np.ndarray, shape: tuple[int, ...], axes: tuple[int, ...]) -> np.ndarray | None:
    """For a mask ``where`` (broadcasting to ``shape``) of length 1 along every axis of ``axes``,
    or without them: which slices over ``axes`` it keeps, of ``shape`` without ``axes`` (a
    read-only broadcast view); None for a mask that varies along a slice, or an empty ``shape``
    (whose slices, or their entries, are none: the general path's)."""
    if 0 in shape:
        return None
    lead = len(shape) - where.ndim
    if any(d >= lead and where.shape[d - lead] != 1 for d in axes):
        return None
    return np.broadcast_to(where, shape)[tuple(0 if d in axes else slice(None) for d in range(len(shape)))]


def write_dropped(result: np.ndarray, kept: np.ndarray, axes: tuple[int, ...], value: float) -> None:
    """Write ``value`` into the slices of ``result`` over ``axes`` that ``kept`` (of
    ``result``'s shape without ``axes``, ``slices_kept``) drops (``axes`` empty: the entries of
    ``result`` that ``kept``, of its shape, drops): by the kernel (``_kernels.dropped``) where
    ``result`` is a C-contiguous float32/float64 array whose axes ``axes`` lie next to each
    other, else by NumPy (indexing a view, 1.5-7x slower).  Nothing where ``kept`` drops none."""
    if kept.all():
        return
    first, stop = (min(axes), max(axes) + 1) if axes else (0, 0)
    if not (result.flags.c_contiguous and result.dtype in FAST_DTYPES and stop - first == len(axes)):
        _moved_to_end(result, axes)[~kept] = value
        return
    shape = result.shape
    outer, inner = math.prod(shape[:first]), math.prod(shape[stop:])
    y3 = result.reshape(outer, -1, inner)
    kept2 = np.ascontiguousarray(kept).reshape(outer, inner)
    n_items = outer if inner == 1 else outer * y3.shape[1]
    workers = _workers(n_items) if use_parallel(result.size) else 1
    kernels().write_dropped(n_items, workers, y3, kept2, result.dtype.type(value))


def _deliver(result: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    if out is None:
        return result
    np.copyto(out, result, casting="same_kind")
    return out


FAST_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


@lru_cache(maxsize=8)
def row_mask_of(mask_shape: tuple[int, ...], shape: tuple[int, ...]) -> np.ndarray:
    """For a mask of ``mask_shape`` (as many entries in a row as ``shape``) broadcast over the
    leading axes of ``shape`` (an attention layout's padding mask ``(B, 1, 1, T)`` or causal mask
    ``(T, T)`` for scores ``(B, H, T, T)``): which of the mask's rows each row of ``shape`` takes,
    read-only, kept for the next call.  The kernels read those rows where they lie, rather than a
    copy of the mask broadcast to the whole layout (a quarter of float32 softmax's traffic)."""
    lead = mask_shape[:-1]
    n_rows = math.prod(lead)
    rows = np.arange(n_rows, dtype=np.int32 if n_rows < 2**31 else np.intp).reshape(lead)
    rows = np.ascontiguousarray(np.broadcast_to(rows, shape[:-1])).reshape(-1)
    rows.flags.writeable = False
    return rows


def softmax_last_axis(
    x: np.ndarray, *, mode: int, negate: bool, temperature: float, out: np.ndarray | None,
    where: np.ndarray | None = None,
) -> np.ndarray:
    """The per-call-overhead path: a non-empty C-contiguous float32/float64 ndarray, last axis,
    no dtype; ``out`` is None, ``x`` itself, or a C-contiguous writable array of the same shape
    and dtype not overlapping ``x``; ``where`` None or a C-contiguous boolean array of ``x``'s
    shape, or of a shape broadcast to it over the leading axes only (``row_mask_of``), not
    overlapping ``out``.  ``softmaxkit._api`` checks those conditions and the
    temperature; nothing else is validated here."""
    dtype = x.dtype
    n = x.shape[-1]
    t_hi, t_lo = (None, None) if temperature == 1.0 else inverse_temperature(temperature, dtype)
    if out is not None:
        result = out
    elif x.nbytes < ALIGNED_RESULT_BYTES:  # result_empty spelled out: the call cost 8 x 10 ~2%
        result = np.empty(x.shape, dtype)
    else:
        result = aligned_empty(x.shape, dtype, x)
    if x.ndim == 2:  # a 2-D array is its own rows: two reshapes were ~12% of an 8 x 10 call
        x2, out2 = x, result
    elif x.ndim == 1:  # (x[None]: 55 ns against a reshape's 80)
        x2, out2 = x[None], result[None]
    else:
        x2, out2 = x.reshape(-1, n), result.reshape(-1, n)
    out2 = None if result is x else out2
    sign = dtype.type(-1.0) if negate else None
    if where is not None:
        if where.shape == x.shape:
            mask2, mask_rows = (where if x.ndim == 2 else where.reshape(x2.shape)), None
        else:  # broadcast over the leading axes: the mask's rows, read where they lie
            mask2, mask_rows = where.reshape(-1, n), row_mask_of(where.shape, x.shape)
        key = (x.shape, x.itemsize, mode, where.shape)
        masked_plan = _row_plans.get(key)
        if masked_plan is None:
            masked_plan = _masked_row_plan(key, x2, mask2, mode)
        serial, filled = masked_plan  # what _run_rows would run:
        if serial is None:
            _run_rows(x2, out2, mask2, sign, t_hi, t_lo, mode, mask_rows)
        elif filled is None:  # the general kernels
            serial(x2, out2, mask2, mask_rows, sign, t_hi, t_lo)
        else:  # the fill's (the fast path's arrays are C-contiguous, as it needs)
            serial(x2, mask2, mask_rows, out2, filled[0], sign, t_hi, t_lo, filled[1])
        return result
    key = (x.shape, x.itemsize, mode)
    plan = _row_plans.get(key)
    if plan is None:
        plan = _row_plan(key, x2, mode)
    # what _run_rows runs, from the remembered choice
    serial, parallel, middle, work = plan
    if not work or not use_parallel(work):
        if middle:
            serial(x2, out2, *middle, sign, t_hi, t_lo)
        else:  # the short rows' (unpacking an empty tuple into the call costs 60 ns)
            serial(x2, out2, sign, t_hi, t_lo)
    elif parallel is not None:
        parallel(x2.shape[0], _workers(x2.shape[0]), x2, out2, *middle, sign, t_hi, t_lo)
    else:
        _run_general_rows(x2, out2, None, sign, t_hi, t_lo, mode == MODE_LOG_SOFTMAX)
    return result


def softmax_other_axis(
    x: np.ndarray, axis: int, *, mode: int, negate: bool, temperature: float, out: np.ndarray | None,
    where: np.ndarray | None = None,
) -> np.ndarray:
    """``softmax_last_axis`` for another axis ``axis`` (``0 <= axis < x.ndim - 1``), under the
    same conditions: ``x`` is its own column layout ``(outer, K, inner)``, taken with no block
    analysis, transposes or checks of ``out`` beyond ``softmaxkit._api``'s, and with the layout's
    choices made once (``_column_plan``; log_softmax of 2x3x4x16 over axis 2: 2.3 us a call,
    against 3.3 choosing each time and 6.0 through the general path; a Zen 5 VM).  Where the
    general path would move the axis to the end (``_columns_as_they_lie``) it takes that path.
    ``where``: None, or a mask as ``softmax_last_axis`` takes it: filled into the output for the
    unmasked kernels (``_fills_masked_columns``), or read by the masked column kernels in x's
    layout, planned apart from the unmasked calls (the tiles take no mask).  Through the general
    path a masked softmax of 16x64 over ``axis=0`` took 10.7 us a call (2.6 of them the kernel)."""
    shape = x.shape
    masked = where is not None
    if masked and _masked_columns_filled(x, axis, mode, out is x):
        return _masked_columns_by_filling(x, axis, mode, negate, temperature, out, where)
    plan = _column_plans.get((shape, axis, x.itemsize, mode, out is x, masked))
    if plan is None:
        plan = _column_plan(x, axis, mode, out is x, masked)
    shape3, small_k, blocks, by_threads = plan
    dtype = x.dtype
    if shape3 is None:
        return softmax_family(
            x, (axis,), mode=mode, negate=negate, temperature=temperature, where=where, kernel_dtype=dtype,
            result_dtype=dtype, out=out,
        )
    t_hi, t_lo = (None, None) if temperature == 1.0 else inverse_temperature(temperature, dtype)
    if out is not None:
        result = out
    elif x.nbytes < ALIGNED_RESULT_BYTES:  # result_empty spelled out, as in softmax_last_axis
        result = np.empty(shape, dtype)
    else:
        result = aligned_empty(shape, dtype, x)
    out3 = None if result is x else result.reshape(shape3)
    sign = dtype.type(-1.0) if negate else None
    if small_k is not None:  # what _run_softmax would run
        run, n_items, chunk, paired = small_k
        run(n_items, 1, x.reshape(shape3), out3, sign, t_hi, t_lo, chunk, paired)
    elif blocks is not None:
        block, n_blocks = blocks
        _run_column_blocks(kernels(), x.reshape(shape3), out3, None, sign, t_hi, t_lo, mode == MODE_LOG_SOFTMAX,
                           block, n_blocks, 1)
    elif by_threads is not None:  # a parallel size, or a mask: the choice for this thread count
        threads = num_threads()
        choice = by_threads.get(threads)
        if choice is None:
            choice = by_threads[threads] = _column_choice(x.reshape(shape3), mode, tiles=not masked)
        if choice is BY_ADDRESS:  # softmax's narrowed tiles: also by whether the output starts on a line
            into3 = x.reshape(shape3) if out3 is None else out3
            key = (threads, into3.__array_interface__["data"][0] % 64 == 0)
            choice = by_threads.get(key)
            if choice is None:
                choice = by_threads[key] = _column_choice(x.reshape(shape3), mode, into3)
        mask3 = None if where is None else where.reshape(shape3)
        _run_column_choice(choice, x.reshape(shape3), out3, mask3, sign, t_hi, t_lo, mode == MODE_LOG_SOFTMAX)
    else:
        _run_softmax(x.reshape(shape3), out3, None if where is None else where.reshape(shape3), sign, t_hi, t_lo, mode)
    return result


# Plans: the choices the per-call-overhead paths make for a layout, made once, as FFT libraries
# plan a transform (over another axis 1-1.5 us of a small call's 2.5-4 us, over the last axis
# 0.1-0.4 us of 1.4-4 us; paired on a Zen 5 VM, one thread).  ``softmax_other_axis``'s by ``(shape,
# axis, itemsize, mode, in place)``: ``(shape3, small_k, blocks)`` (``_column_plan``); and
# ``softmax_last_axis``'s by ``(shape, itemsize, mode)`` (``_row_plans``, below; masked rows by
# ``(shape, itemsize, mode, the mask's shape)``).  Each dict is cleared when it reaches PLANS_MAX
# entries, and both whenever an attribute of this module or of ``kernels()`` is set
# (``_Settings``, ``_Kernels``): every choice depends on some of them, and tests and tuning set
# them.  A plan holds no array (scratch is per thread) and nothing that
# depends on the thread count or on where an array lies, so any thread may use any plan.
_column_plans: dict = {}
PLANS_MAX = 1024


def _forget_plans() -> None:
    """Forget the row and column plans (``_row_plans``, ``_column_plans``)."""
    _column_plans.clear()
    _row_plans.clear()


def _column_plan(x: np.ndarray, axis: int, mode: int, over_input: bool, masked: bool = False) -> tuple:
    """``softmax_other_axis``'s choices for ``x``'s layout, remembered in ``_column_plans``:
    ``(shape3, small_k, blocks, by_threads)``.  ``shape3``: the column layout ``(outer, K,
    inner)``, or None where the general path moves the axis to the end.  For a ``masked`` call
    (the block kernels' or slabs' choice, per thread count: the tiles take no mask) ``by_threads``
    only.  For a layout that
    ``_run_softmax`` would run serially whatever the thread count, what it would run:
    ``small_k``, ``(run, n_items, chunk, paired)`` for a small-K tile kernel, or ``blocks``,
    ``(block, n_blocks)`` for the block kernels.  For a layout of the parallel size, whose
    choices depend on the calling thread's thread count, ``by_threads``: a dict from a thread
    count to ``_column_choice``'s choice, filled as calls come.  Rows (``inner == 1``) have all
    three None and go to ``_run_softmax``."""
    if len(_column_plans) >= PLANS_MAX:
        _column_plans.clear()
    shape = x.shape
    n_k = shape[axis]
    inner = math.prod(shape[axis + 1 :])
    plan: tuple = (None, None, None, None)
    if masked:
        if _columns_as_they_lie(n_k, inner, x.size, True, over_input):
            plan = ((x.size // (n_k * inner), n_k, inner), None, None, {} if inner > 1 else None)
    elif _columns_as_they_lie(n_k, inner, x.size, False, over_input):
        x3 = x.reshape(x.size // (n_k * inner), n_k, inner)
        small_k = blocks = by_threads = None
        log = mode == MODE_LOG_SOFTMAX
        k = kernels()
        # (below PARALLEL_MIN_ELEMENTS use_parallel is False whatever the thread count, unless a
        # test replaced it)
        if inner > 1 and x.size < PARALLEL_MIN_ELEMENTS and not use_parallel(x.size):
            if not _takes_small_k_tiles(k, x3, log):
                block, n_blocks, workers = _column_work(x3, block_bytes=_column_block_bytes(log))
                # (neither takes a serial call unless a test forces it)
                if not _takes_quad_tiles(k, x3, n_blocks, workers) and not _takes_slabs(x3, block, n_blocks, log):
                    blocks = (block, n_blocks)
            elif (lanes := _small_k_lanes(x3)) < PARALLEL_MIN_ELEMENTS and not use_parallel(lanes):
                n_items, _, chunk, paired = _small_k_work(k, x3)
                small_k = (_small_k_kernel(k, log, 1), n_items, chunk, paired)
        if inner > 1 and small_k is None and blocks is None:
            by_threads = {}
        plan = (x3.shape, small_k, blocks, by_threads)
    _column_plans[(shape, axis, x.itemsize, mode, over_input, masked)] = plan
    return plan


BY_ADDRESS = "by address"  # _column_choice's answer where the output's alignment decides
BY_SLABS = "by slabs"  # a column choice's first entry where the slabs take the layout (else the blocks)


def _column_choice(x3: np.ndarray, mode: int, into3: np.ndarray | None = None, tiles: bool = True) -> tuple | str:
    """What softmax (``mode``) runs over the column layout ``x3`` (``inner > 1``) at the calling
    thread's thread count (``_run_column_choice`` runs it): ``(run, n_items, workers, extra)``
    for a tile kernel, called ``run(n_items, workers, x3, out3, sign, t_hi, t_lo, *extra)``;
    ``(None, block, n_blocks, workers)`` for the block kernels; ``(BY_SLABS, block, n_blocks,
    workers)`` for the slabs (which split their work themselves, and may hand the layout back to
    those blocks); or BY_ADDRESS for softmax's tiles narrowed for threads over rows on cache
    lines, whose items depend on whether the output starts on a line (``_small_k_work``), unless
    ``into3``, where softmax writes (the output's column layout, or ``x3`` in place), is given.
    ``tiles`` False: neither tile kernel (they take no mask).  ``softmax_other_axis`` remembers
    the choice in its plans: choosing took 4-5 us of a 20 us call (log_softmax 128x512
    ``axis=0``, 2 threads)."""
    k = kernels()
    log = mode == MODE_LOG_SOFTMAX
    # Rows off cache lines (inner elements apart, as x3's) fix the unit whatever the address:
    # x3 then stands in for the output in _small_k_work.  (log_softmax's items never look.)
    if log:
        into3 = None
    elif into3 is None:
        if (x3.shape[2] * x3.itemsize) % 64 == 0 and _narrows_small_k_items(k, x3):
            into3 = BY_ADDRESS
        else:
            into3 = x3
    if tiles and _takes_small_k_tiles(k, x3, log):
        if into3 is BY_ADDRESS:
            return BY_ADDRESS
        n_items, workers, chunk, paired = _small_k_work(k, x3, into3)
        return (_small_k_kernel(k, log, workers), n_items, workers, (chunk, paired))
    block, n_blocks, workers = _column_work(x3, block_bytes=_column_block_bytes(log))
    if tiles and _takes_quad_tiles(k, x3, n_blocks, workers):
        if into3 is BY_ADDRESS:
            return BY_ADDRESS
        n_items, workers, chunk, _ = _small_k_work(k, x3, into3)
        return (k.log_softmax_quad_k if log else k.softmax_quad_k, n_items, workers, (chunk,))
    return (BY_SLABS if _takes_slabs(x3, block, n_blocks, log) else None, block, n_blocks, workers)


def _small_k_kernel(k, log: bool, workers: int):
    """softmax's (``log``: log_softmax's) small-K tile kernel for ``workers`` workers: the range
    kernel, or its serial entry for one (the same arguments)."""
    if workers > 1:
        return k.log_softmax_small_k if log else k.softmax_small_k
    return k.log_softmax_small_k_serial if log else k.softmax_small_k_serial


def _run_column_choice(choice: tuple, x3, out3, mask3, sign, t_hi, t_lo, log: bool) -> None:
    """Run ``_column_choice``'s ``choice`` over the column layout ``x3`` (``mask3``: None for
    the tile kernels)."""
    run, first, second, third = choice
    if run is None or run is BY_SLABS:
        k = kernels()
        by_slabs = _log_softmax_by_slabs if log else _softmax_by_slabs
        if run is None or not by_slabs(k, x3, out3, mask3, sign, t_hi, t_lo):
            _run_column_blocks(k, x3, out3, mask3, sign, t_hi, t_lo, log, first, second, third)
    else:
        run(first, second, x3, out3, sign, t_hi, t_lo, *third)


def _short_rows(k, x2, mask2, softmax: bool = False) -> bool:
    """Whether the rows of ``x2`` take the short-row kernels (of ``k``, the kernel module):
    unmasked rows of at most SHORT_ROW elements (when None, the kernels' ``SHORT_SOFTMAX_ROW``
    for softmax, else their ``SHORT_ROW``); float64 rows never longer than the kernels'
    ``SHORT_ROW``, within which their split sums are exact."""
    if SHORT_ROW is None:
        limit = k.SHORT_SOFTMAX_ROW if softmax else k.SHORT_ROW
    else:
        limit = SHORT_ROW if x2.dtype == np.float32 else min(SHORT_ROW, k.SHORT_ROW)
    return x2.shape[1] <= limit and mask2 is None


def _packed_width(k, x2) -> tuple[int, ...] | None:
    """For short rows that take the packed kernels, their ``width`` argument (a tuple of ``n``
    zeros); else None.  Rows of at most PACKED_ROW elements (when None, the kernels'
    ``PACKED_ROW``, or ``PACKED_ROW_FLOAT64`` for float64 rows), and at least
    PACKED_MIN_ROWS_PER_ELEMENT * n rows of them: a lone group's chain of operations takes longer
    than the rows one at a time.  (The callers test
    PACKED_MIN_ROWS first, which turns a call of a few rows away without a call of this.)"""
    n_rows, n = x2.shape
    if PACKED_ROW is not None:
        limit = PACKED_ROW
    else:
        limit = k.PACKED_ROW if x2.dtype == np.float32 else k.PACKED_ROW_FLOAT64
    if n > limit or n_rows < PACKED_MIN_ROWS_PER_ELEMENT * n:
        return None
    return _WIDTHS[n]


_WIDTHS = [(0,) * n for n in range(65)]  # up to the kernels' PACKED_ROW, 64: four vectors of float32


def _packed_work(x2) -> int:
    """The size ``use_parallel`` judges packed rows by: a quarter of ``use_parallel``'s size takes
    the parallel kernels (a half for rows of more than 8, which the kernels hold in registers of
    their own)."""
    return (PACKED_WORK_FACTOR if x2.shape[1] <= 8 else PACKED_LONG_WORK_FACTOR) * x2.size


def _row_kernels(k, x2, mask2, log: bool, mask_rows=None) -> tuple[Any, Any, tuple, int]:
    """``(serial, parallel, middle, work)``: the kernels softmax (``log``: log_softmax) takes
    over the rows of ``x2`` -- ``serial(x2, out2, *middle, sign, t_hi, t_lo)``, or where
    ``use_parallel(work)`` ``parallel(n_rows, workers, x2, out2, *middle, sign, t_hi, t_lo)``;
    ``parallel`` None for rows of the general kernels, whose parallel forms ``_run_rows``
    chooses (and whose ``middle`` is ``(mask2, mask_rows)``, see ``_run_rows``)."""
    n_rows, n = x2.shape
    short = _short_rows(k, x2, mask2, softmax=not log)
    if short and n_rows >= PACKED_MIN_ROWS and (width := _packed_width(k, x2)) is not None:
        if log:
            return k.packed_log_softmax_rows_serial, k.packed_log_softmax_rows, (width,), _packed_work(x2)
        return k.packed_softmax_rows_serial, k.packed_softmax_rows, (width,), _packed_work(x2)
    if short:
        serial, parallel = _short_kernels(k, x2.dtype, n, log)
        return serial, parallel, (), x2.size
    return (k.log_softmax_rows_serial if log else k.softmax_rows_serial), None, (mask2, mask_rows), x2.size


def _run_rows(x2, out2, mask2, sign, t_hi, t_lo, mode, mask_rows=None) -> None:
    """softmax (``mode``) over the rows of ``x2``; ``mask_rows`` (or None): a mask broadcast over
    the leading axes, row ``r``'s mask ``mask2[mask_rows[r]]`` (``row_mask_of``), which every
    kernel reads where it lies (but the split rows', a few rows gathered)."""
    n_rows = x2.shape[0]
    log = mode == MODE_LOG_SOFTMAX
    k = kernels()
    if mask2 is not None and _fills_masked_rows(k, x2, log):
        _run_masked_short_rows(k, x2, out2, mask2, sign, t_hi, t_lo, log, mask_rows)
        return
    serial, parallel, middle, work = _row_kernels(k, x2, mask2, log, mask_rows)
    if not use_parallel(work):
        serial(x2, out2, *middle, sign, t_hi, t_lo)
    elif parallel is not None:
        parallel(n_rows, _workers(n_rows), x2, out2, *middle, sign, t_hi, t_lo)
    else:
        _run_general_rows(x2, out2, mask2, sign, t_hi, t_lo, log, mask_rows)


def _fills_masked_rows(k, x2, log: bool) -> bool:
    """Whether masked rows ``x2`` are filled for the unmasked short or packed kernels
    (``_run_masked_short_rows``): short rows, from MASKED_FILL_MIN_ROWS rows (log_softmax's from
    MASKED_LOG_FILL_MIN_ROWS)."""
    return x2.shape[0] >= (MASKED_LOG_FILL_MIN_ROWS if log else MASKED_FILL_MIN_ROWS) and _short_rows(
        k, x2, None, softmax=not log
    )


def _run_masked_short_rows(k, x2, out2, mask2, sign, t_hi, t_lo, log: bool, mask_rows=None) -> None:
    """Masked short rows by the unmasked short or packed kernels, each worker copying its rows,
    FILL_CHUNK_BYTES at a time, as ``sign * x`` with -inf where masked (``masked_rows_by_filling``:
    the general kernels spend about 90 ns a log_softmax row on their own, see
    MASKED_FILL_MIN_ROWS).  A row with an unmasked NaN is NaN where unmasked and 0 (log_softmax
    -inf) where masked, as ``slice_special`` writes it: the kernel writes its masked entries again.
    ``mask_rows``: see ``_run_rows``."""
    y2 = x2 if out2 is None else out2
    if not (x2.flags.c_contiguous and mask2.flags.c_contiguous and y2.flags.c_contiguous):
        # (the kernels take a chunk's rows as one run; every caller passes C-contiguous rows)
        result = np.empty(x2.shape, x2.dtype)
        mask2 = np.ascontiguousarray(mask2)
        _run_masked_short_rows(k, np.ascontiguousarray(x2), result, mask2, sign, t_hi, t_lo, log, mask_rows)
        y2[...] = result
        return
    serial, parallel, width, work = _masked_short_kernels(k, x2, log)
    chunk = _fill_chunk(x2)
    if not use_parallel(work):
        serial(x2, mask2, mask_rows, out2, width, sign, t_hi, t_lo, chunk)
        return
    n_rows, n = x2.shape
    workers = _workers(n_rows)
    scratch = fill_scratch(workers, chunk * n, x2.dtype)
    parallel(n_rows, workers, x2, mask2, mask_rows, out2, width, sign, t_hi, t_lo, chunk, scratch)


def _masked_short_kernels(k, x2, log: bool) -> tuple[Any, Any, tuple[int, ...] | None, int]:
    """``(serial, parallel, width, work)``: the kernels ``_run_masked_short_rows`` fills the
    rows of ``x2`` for, short or packed (``width``, else None), and the size ``use_parallel``
    judges them by."""
    width = _packed_width(k, x2) if x2.shape[0] >= PACKED_MIN_ROWS else None
    if width is None:
        serial, parallel = _short_kernels(k, x2.dtype, x2.shape[1], log, masked=True)
        return serial, parallel, None, x2.size
    if log:
        return k.masked_packed_log_softmax_rows_serial, k.masked_packed_log_softmax_rows, width, _packed_work(x2)
    return k.masked_packed_softmax_rows_serial, k.masked_packed_softmax_rows, width, _packed_work(x2)


def _fill_chunk(x2) -> int:
    """The rows a worker fills at a time (``masked_logsumexp_by_filling``,
    ``masked_rows_by_filling``): FILL_CHUNK_BYTES of them, whole groups of packed rows."""
    chunk = max(1, FILL_CHUNK_BYTES // (x2.shape[1] * x2.itemsize))
    if chunk > 16:
        chunk -= chunk % 16
    return chunk


def _run_general_rows(x2, out2, mask2, sign, t_hi, t_lo, log: bool, mask_rows=None) -> None:
    """softmax (``log``: log_softmax) over the rows of ``x2`` by the general row kernels, in
    parallel: rows split into chunks where they are few and long, else a share of them a worker.
    ``mask_rows``: see ``_run_rows``."""
    k = kernels()
    n_rows, n = x2.shape
    if n >= SPLIT_MIN_LENGTH and n_rows < 2 * num_threads():
        _run_split_rows(x2, out2, _gathered(mask2, mask_rows), sign, t_hi, t_lo, log)
    elif log:
        workers = _workers(n_rows)
        terms = k.row_terms(workers, x2.dtype)
        k.log_softmax_rows(n_rows, workers, x2, out2, mask2, mask_rows, sign, t_hi, t_lo, terms)
    else:
        k.softmax_rows(n_rows, _workers(n_rows), x2, out2, mask2, mask_rows, sign, t_hi, t_lo)


def _gathered(mask2, mask_rows):
    """A mask of x2's rows for the kernels that take no ``mask_rows`` (the split rows': fewer rows
    than two a thread): ``mask2[mask_rows]``, or ``mask2`` itself for ``mask_rows=None``."""
    return mask2 if mask_rows is None else mask2[mask_rows]


def _fills_masked_columns(inner: int, itemsize: int, mode: int) -> bool:
    """Whether masked columns, ``inner`` of ``itemsize`` bytes a row, are taken by filling
    (``_masked_columns_by_filling``; see MASKED_COLUMNS_FILL).  Never rows (``inner == 1``: the
    row kernels fill their own) nor narrow columns, which the general path moves to the end."""
    if inner < COLUMN_MIN_WIDTH:
        return False
    if MASKED_COLUMNS_FILL is not None:
        return MASKED_COLUMNS_FILL
    return mode == MODE_LOG_SOFTMAX or inner * itemsize < MASKED_COLUMNS_SOFTMAX_FILL_ROW_BYTES


def _masked_columns_filled(x: np.ndarray, axis: int, mode: int, over_input: bool) -> bool:
    """Whether ``softmax_other_axis`` takes ``x``'s masked columns by filling: where
    ``_fills_masked_columns`` says so, unless the masked block kernels would share the layout
    among threads (the fill is one thread's pass; see MASKED_COLUMNS_FILL)."""
    if not _fills_masked_columns(math.prod(x.shape[axis + 1 :]), x.itemsize, mode):
        return False
    if MASKED_COLUMNS_FILL is not None or not use_parallel(x.size):
        return True
    plan = _column_plans.get((x.shape, axis, x.itemsize, mode, over_input, True))
    if plan is None:
        plan = _column_plan(x, axis, mode, over_input, True)
    shape3, _, _, by_threads = plan
    if by_threads is None:  # the general path or rows: filled as they would be
        return True
    threads = num_threads()
    choice = by_threads.get(threads)
    if choice is None:
        choice = by_threads[threads] = _column_choice(x.reshape(shape3), mode, tiles=False)
    return choice[3] < 2  # (the choice's workers)


def _masked_columns_by_filling(x, axis, mode, negate, temperature, out, where) -> np.ndarray:
    """``softmax_other_axis`` with a mask, as the masked short rows are taken (``_run_rows``):
    the output filled with ``sign * x`` where unmasked and -inf where masked
    (``fill_masked_rows``, the layout as one row), then the unmasked column kernels in place on
    it (the tiles, which take no mask), then the columns with an unmasked NaN written again
    (NaN where unmasked, 0 or -inf where masked, as ``slice_special`` writes them)."""
    result = result_empty(x.shape, x.dtype, x.nbytes, x) if out is None else out
    sign = x.dtype.type(-1.0) if negate else None
    flat_out = None if result is x else result.reshape(1, -1)
    nan = kernels().fill_masked_rows(x.reshape(1, -1), where.reshape(1, -1), sign, flat_out)
    softmax_other_axis(result, axis, mode=mode, negate=False, temperature=temperature, out=result)
    if nan:
        inner = math.prod(x.shape[axis + 1 :])
        shape3 = (x.size // (x.shape[axis] * inner), x.shape[axis], inner)
        _masked_nan_slices_again(result.reshape(shape3), where.reshape(shape3), mode == MODE_LOG_SOFTMAX)
    return result


def _masked_nan_slices_again(y3, m3, log: bool) -> None:
    """After the unmasked kernels ran over a filled input (``fill_masked_rows``), the slices over
    axis 1 of ``y3`` with an unmasked NaN (``m3`` the mask), which those kernels made NaN
    throughout, get their masked entries back: 0 (log_softmax -inf), as ``slice_special`` writes
    them.  (In place the input is gone there, but its NaN are still NaN in the results.)"""
    slices = (np.isnan(y3) & m3).any(axis=1, keepdims=True)
    y3[slices & ~m3] = -np.inf if log else 0.0


# ``softmax_last_axis``'s plans (see ``_column_plans``)
_row_plans: dict = {}


def _row_plan(key: tuple, x2: np.ndarray, mode: int) -> tuple:
    """``softmax_last_axis``'s choice for the rows ``x2``, remembered in ``_row_plans``:
    ``_row_kernels``' ``(serial, parallel, middle, work)``, with ``work`` 0 where the call is
    serial whatever the thread count (below PARALLEL_MIN_ELEMENTS), which spares such calls
    ``use_parallel``."""
    if len(_row_plans) >= PLANS_MAX:
        _row_plans.clear()
    serial, parallel, middle, work = _row_kernels(kernels(), x2, None, mode == MODE_LOG_SOFTMAX)
    if work < PARALLEL_MIN_ELEMENTS and not use_parallel(work):
        work = 0
    _row_plans[key] = plan = (serial, parallel, middle, work)
    return plan


def _masked_row_plan(key: tuple, x2: np.ndarray, mask2: np.ndarray, mode: int) -> tuple:
    """``softmax_last_axis``'s choice for the rows ``x2`` with a mask (``mask2``: its rows, of
    ``x2``'s or broadcast over the leading axes), remembered in ``_row_plans`` (under ``key``,
    with the mask's shape: apart from the unmasked plan), where ``_run_rows``
    would run one serial kernel whatever the thread count (below PARALLEL_MIN_ELEMENTS: an RL
    policy's action mask over 8 x 10 logits): ``(serial, None)``, the general kernels' serial
    form, for rows too few for the fill; ``(serial, (width, chunk))``, the fill's
    (``_run_masked_short_rows``); else ``(None, None)``, and ``_run_rows`` chooses per call."""
    if len(_row_plans) >= PLANS_MAX:
        _row_plans.clear()
    k = kernels()
    log = mode == MODE_LOG_SOFTMAX
    if _fills_masked_rows(k, x2, log):
        serial, _, width, work = _masked_short_kernels(k, x2, log)
        filled = (width, _fill_chunk(x2))
    else:
        serial, _, _, work = _row_kernels(k, x2, mask2, log)  # (the general kernels: masked)
        filled = None
    if work >= PARALLEL_MIN_ELEMENTS or use_parallel(work):
        serial = filled = None
    _row_plans[key] = plan = (serial, filled)
    return plan


def _short_kernels(k, dtype: np.dtype, n: int, log: bool, masked: bool = False) -> tuple[Any, Any]:
    """The short-row kernels ``(serial, parallel)`` of softmax (``log``: log_softmax) for rows
    of ``n`` elements of ``dtype``; ``masked``: their masked forms by filling
    (``_run_masked_short_rows``)."""
    if not log:
        name = "softmax_short_rows"
    elif dtype == np.float64:  # every row counted
        name = "log_softmax_counted_short_rows"
    elif n <= k.PAIRED_ROW:  # two rows at a time
        name = "log_softmax_paired_rows"
    else:
        name = "log_softmax_short_rows"
    if masked:
        name = "masked_" + name
    return getattr(k, name + "_serial"), getattr(k, name)


def _split_states(x2):
    """State arrays for the split-row kernels (rows of SPLIT_CHUNK-element chunks)."""
    n_rows, n = x2.shape
    per_row = -(-n // SPLIT_CHUNK)
    return kernels().split_states(n_rows, per_row, _workers(n_rows * per_row), x2.dtype)


def _split_log_states(x2, mask2, sign, t_hi, t_lo):
    """``_split_states`` with the chunks' log states taken (log_softmax's and logsumexp's
    first pass)."""
    states = _split_states(x2)
    chunk_max, chunk_rest, chunk_count, _, _, terms = states
    kernels().chunk_log_states(
        chunk_max.size, terms.shape[0],
        x2, mask2, sign, t_hi, t_lo, SPLIT_CHUNK, chunk_max, chunk_rest, chunk_count, terms,
    )
    return states


def _run_split_rows(x2, out2, mask2, sign, t_hi, t_lo, log: bool) -> None:
    """softmax or log_softmax of rows split into SPLIT_CHUNK-element chunks: the chunks' states
    (parallel), their merge per row, the writing pass (parallel)."""
    k = kernels()
    if log:
        chunk_max, chunk_rest, chunk_count, row_max, row_factor, terms = _split_log_states(x2, mask2, sign, t_hi, t_lo)
        n, workers = chunk_max.size, terms.shape[0]
        k.merge_log_softmax_rows(x2, out2, mask2, sign, chunk_max, chunk_rest, chunk_count, row_max, row_factor)
        k.store_log_chunks(n, workers, x2, out2, mask2, sign, t_hi, t_lo, SPLIT_CHUNK, row_max, row_factor)
    else:
        chunk_max, chunk_rest, chunk_count, row_max, row_factor, terms = _split_states(x2)
        n, workers = chunk_max.size, terms.shape[0]
        k.chunk_exp_states(n, workers, x2, out2, mask2, sign, t_hi, t_lo, SPLIT_CHUNK, chunk_max, chunk_rest)
        k.merge_softmax_rows(x2, out2, mask2, sign, chunk_max, chunk_rest, chunk_count, row_max, row_factor)
        y2 = x2 if out2 is None else out2
        k.scale_chunks(n, workers, y2, SPLIT_CHUNK, chunk_max, chunk_rest, row_max, row_factor)


def _takes_small_k_tiles(k, x3, log: bool = False, reads_only: bool = False) -> bool:
    """Whether the column layout ``x3`` (unmasked) takes the small-K tile kernels of softmax,
    log_softmax (``log``) or logsumexp (``reads_only``)."""
    n_k, row_bytes = x3.shape[1], x3.shape[2] * x3.itemsize
    if SMALL_K is not None:
        return n_k <= SMALL_K
    return k.takes_small_k_tiles(n_k, row_bytes, log, x3.nbytes, reads_only, use_parallel(x3.size))


def _takes_quad_tiles(k, x3, n_blocks: int, workers: int) -> bool:
    """Whether unmasked softmax or log_softmax over the column layout ``x3``, which the small-K
    tiles refused, takes four tiles side by side rather than ``n_blocks`` column blocks on
    ``workers``."""
    if QUADS is not None:
        return QUADS
    return 1 < workers == n_blocks and k.takes_quad_tiles(x3.shape[1], x3.shape[2] * x3.itemsize, x3.nbytes)


def _small_k_work(k, x3, softmax_into=None):
    """``(n_items, workers, chunk, paired)`` for the small-K tile kernels on ``x3``: work items of
    ``chunk`` columns of one outer index each, narrower than SMALL_K_CHUNK (down to one tile)
    where a parallel call of at least SMALL_K_SPLIT_MIN_ELEMENTS would have fewer items than
    threads.  ``softmax_into``: softmax's output layout, whose items take no fewer than
    SMALL_K_SOFTMAX_ITEM_BYTES of a row unless its rows start on cache lines (two threads would
    otherwise write one line of every row, twice).  ``paired``: True where the kernels take two
    tiles at a time (up to SMALL_K_PAIRED_ROWS rows), else None."""
    chunk = k.SMALL_K_CHUNK
    outer, n_k, inner = x3.shape
    paired = True if n_k <= k.SMALL_K_PAIRED_ROWS else None
    if not use_parallel(_small_k_lanes(x3)):  # (a serial call's checks end here)
        return _column_blocks(x3, chunk), 1, chunk, paired
    if _narrows_small_k_items(k, x3):
        unit = 64
        if softmax_into is not None and (softmax_into.ctypes.data % 64 or softmax_into.strides[1] % 64):
            unit = SMALL_K_SOFTMAX_ITEM_BYTES
        chunk = min(chunk, _width_for_threads(outer, inner, unit // x3.itemsize))
    n_items = _column_blocks(x3, chunk)
    return n_items, _workers(n_items), chunk, paired


def _narrows_small_k_items(k, x3) -> bool:
    """Whether ``_small_k_work`` narrows the tiles' work items below SMALL_K_CHUNK columns for the
    calling thread's thread count (and for softmax then looks at where the output lies)."""
    return (
        _column_blocks(x3, k.SMALL_K_CHUNK) < num_threads()
        and x3.size >= SMALL_K_SPLIT_MIN_ELEMENTS
        and use_parallel(x3.size)
    )


def _small_k_lanes(x3: np.ndarray) -> int:
    """The lanes the small-K tiles take over ``x3``, which the parallel threshold counts, so that
    a layout of fewer columns than a vector counts its partial tiles whole (2000x4x4 `axis=1`:
    32000 elements, 128000 lanes)."""
    outer, n_k, inner = x3.shape
    lanes = 64 // x3.itemsize
    return outer * n_k * (-(-inner // lanes) * lanes)


def _width_for_threads(outer: int, inner: int, unit: int) -> int:
    """Column blocks of a multiple of ``unit`` columns, as wide as they can be while each outer
    index's ``inner`` columns make enough of them for every thread to have one (at least ``unit``)."""
    per_outer = -(-num_threads() // outer)
    return max(unit, -(-inner // per_outer // unit) * unit)


def _run_softmax(x3, out3, mask3, sign, t_hi, t_lo, mode) -> None:
    outer, n_k, inner = x3.shape
    if inner == 1:
        _run_rows(
            x3.reshape(outer, n_k),
            None if out3 is None else out3.reshape(outer, n_k),
            None if mask3 is None else mask3.reshape(outer, n_k),
            sign, t_hi, t_lo, mode,
        )
        return
    choice = _column_choice(x3, mode, x3 if out3 is None else out3, tiles=mask3 is None)
    _run_column_choice(choice, x3, out3, mask3, sign, t_hi, t_lo, mode == MODE_LOG_SOFTMAX)


def _column_block_bytes(log: bool) -> int:
    """The slab of input and output a column block of softmax (``log``: log_softmax) takes."""
    return COLUMN_BLOCK_BYTES // COLUMN_LOG_BLOCK_DIVISOR if log else COLUMN_BLOCK_BYTES


def _run_column_blocks(
    k, x3, out3, mask3, sign, t_hi, t_lo, log: bool, block: int, n_blocks: int, workers: int
) -> None:
    """softmax (``log``: log_softmax) over the column layout ``x3`` by ``n_blocks`` column blocks
    of ``block`` columns on ``workers`` workers, the columns whose max is not finite included
    (those whose max is NaN or +inf by ``_column_limits``)."""
    pending = np.zeros(n_blocks, np.bool_)
    run = k.log_softmax_columns if log else k.softmax_columns
    wide, narrow = column_scratch(workers, block, x3.dtype)
    # softmax's: the width from which a block's exps are summed in its vector pass; log_softmax's:
    # whether its stats pass stages the exps in the output (``_kernels.softmax.staging_into``)
    if log:
        passes = True if x3.nbytes > COLUMN_LOG_STAGE_ABOVE_BYTES else None
    else:
        passes = _fuse_above(k, x3, out3 is None)
    run(n_blocks, workers, x3, out3, mask3, sign, t_hi, t_lo, block, False, pending, wide, narrow, passes)
    if np.count_nonzero(pending):  # blocks with a column whose max is NaN or +inf, left untouched
        # (count_nonzero, not pending.any(): 0.14 against 0.64 us a call, a tenth of the front end)
        blocks = np.flatnonzero(pending)
        # those columns' limits before the passes, which in place overwrite the input
        limits = _column_limits(x3, mask3, sign, log, block, blocks)
        run(n_blocks, workers, x3, out3, mask3, sign, t_hi, t_lo, block, True, pending, wide, narrow, passes)
        y3 = x3 if out3 is None else out3
        for o, columns, values in limits:
            y3[o][:, columns] = values


def _column_limits(x3, mask3, sign, log: bool, block: int, blocks: np.ndarray) -> list:
    """``[(o, columns, values)]``: the results of the columns of the listed blocks whose max is
    not finite, ``values[k, c]`` for row ``k`` of column ``columns[c]`` of outer index ``o``.  As
    the row kernels' ``slice_special``: NaN where the max is NaN; where it is +inf, the entries
    equal to +inf share the probability (1/k, log -log k); 0 (log -inf) for every other and every
    masked entry.  NumPy, not numba: such inputs are rare, and a kernel for them was 0.5 s more of
    a cold first call."""
    per_outer = _blocks_per_outer(x3, block)
    excluded = -np.inf if log else 0.0
    found = []
    for w in blocks.tolist():
        o, b = divmod(w, per_outer)
        j = slice(b * block, min(x3.shape[2], (b + 1) * block))
        v = x3[o, :, j] if sign is None else -x3[o, :, j]
        m = (v if mask3 is None else np.where(mask3[o, :, j], v, -np.inf)).max(axis=0)
        special = np.flatnonzero(~np.isfinite(m))
        v, m = v[:, special], m[special]
        unmasked = np.ones(v.shape, np.bool_) if mask3 is None else mask3[o, :, j][:, special]
        at_inf = unmasked & (v == np.inf) & (m == np.inf)  # a NaN max wins over +inf entries
        k = np.maximum(at_inf.sum(axis=0), 1)
        share = np.subtract(0.0, np.log(k)) if log else 1.0 / k  # 0.0 - log(1) is +0, not -0
        values = np.where(at_inf, share, np.where(unmasked & np.isnan(m), np.nan, excluded))
        found.append((o, special + j.start, values.astype(x3.dtype)))
    return found


# The column kernels' scratch (per-column state, a few KiB to a few hundred) is 64-byte aligned
# and kept per calling thread for its later calls.  numpy aligns to 16 bytes, so a 512-bit load
# of the state could straddle two cache lines, at an offset that changed from call to call; and
# a fresh allocation per call was measurably slower than a reused one (with 1024-column blocks,
# 2 threads, Zen 5, against the code before: 4x21x65536 0.93 fresh and aligned, 0.91 reused;
# 64x10x4096 1.05 and 0.94).  Per thread, so that concurrent calls from several Python threads
# never share it; the kernels initialise everything they read in it for every block.  A thread
# keeps at most _SCRATCH_CACHE_BYTES in all: a new shape that would pass it lets the others go.
_SCRATCH_CACHE_BYTES = 1 << 20
_thread_scratch = threading.local()


# A result softmaxkit allocates starts APART_BYTES (half a page) past its input modulo a page.
# Where the two start at the same offset in their pages, or a line or two apart, each pass's loads
# of the input and stores of the result fall in the same L1 sets at the same time, and a load
# may wait on an older store to an address that matches it in its low 12 bits (4K aliasing).
# Measured on the 2-core Zen 4 VM (L1d 32 KiB 8-way), input at a page's offset 16 (where numpy's
# large arrays start), paired, result at offset 2048 against 64 (where a 64-byte-aligned result
# in a fresh mapping starts), 2 threads, float32 `out=`: 1024x1024 softmax 0.89, log_softmax
# 0.93; 4096x4096 0.90; 4x21x65536 axis 1 0.90; 32x3x224x224 axis 1 0.89; 4x8x4096 axis 1 (the
# small-K tiles) 0.60; 256x4096 log_softmax 0.98.  With glibc the results happened to land about
# 2 KiB apart already (numpy's own allocations); this places them so whatever the allocator.  (A
# user's `out=` from ``np.empty_like(x)`` starts at the input's offset: 4x8x4096 0.63-0.86,
# 4x21x65536 0.89-0.92, 4096x4096 0.94-1.03 of what 2048 bytes apart took; docs/performance.md,
# "A Zen 4 session".)
PAGE_BYTES = 4096
APART_BYTES = 2048


def aligned_empty(shape: tuple[int, ...], dtype: Any, apart_from: np.ndarray | None = None) -> np.ndarray:
    """``np.empty(shape, dtype)`` starting on a 64-byte boundary (a cache line); with
    ``apart_from`` (an array), APART_BYTES past its first cache line modulo PAGE_BYTES.  From
    ``_results.MIN_BYTES`` (32 MiB) up, in memory a freed result left (``_results.cached_empty``)."""
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    # the start wanted, modulo ``period``: a line boundary, or APART_BYTES past the input's line
    if apart_from is None:
        period, wanted = 64, 0
    else:
        period, wanted = PAGE_BYTES, (apart_from.__array_interface__["data"][0] & -64) + APART_BYTES
    cached = cached_empty(shape, dtype, nbytes, period, wanted)  # from 32 MiB up (_results.py)
    if cached is not None:
        return cached
    raw = np.empty(nbytes + period - 1, np.uint8)
    start = (wanted - raw.__array_interface__["data"][0]) % period
    return raw[start : start + nbytes].view(dtype).reshape(shape)


# Results of at least ALIGNED_RESULT_BYTES that softmaxkit allocates start on a cache line too:
# the kernels' 512-bit stores into numpy's 16-byte-aligned arrays straddle two lines each.
# Paired against np.empty (fresh results, 2 threads, Zen 5): 4x21x65536 softmax 0.92,
# 32x128256 0.94, 4096x4096 1.01; in a phase where the VM backed fresh memory slowly (page
# faults then dominate), 4x21x65536 1.00, float64 2048x2048 0.99-1.02.  Not below it: the
# aligned allocation costs about 2 us a call (64x1000: 17 -> 19 us).
ALIGNED_RESULT_BYTES = 1 << 20


def result_empty(shape: Any, dtype: np.dtype, nbytes: int, apart_from: np.ndarray | None = None) -> np.ndarray:
    """A new result array of ``nbytes`` bytes: ``aligned_empty`` (apart from ``apart_from``, the
    input) from ALIGNED_RESULT_BYTES up, else ``np.empty``."""
    if nbytes >= ALIGNED_RESULT_BYTES:
        return aligned_empty(tuple(shape), dtype, apart_from)
    return np.empty(shape, dtype)


def column_scratch(workers: int, width: int, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """Scratch for the column kernels, ``workers`` workers and blocks of up to ``width`` columns:
    float64 rows ``(total, compensation, count)`` and rows of the dtype ``(m, hi, lo, buffer)``
    (see ``_kernels.softmax._column_state``).  The kernels initialise what they use for every
    block, so the calling thread's earlier scratch of the same shape is handed out again."""
    return _kept_scratch(
        ("columns", workers, width, dtype.char),
        lambda: (aligned_empty((workers, 3, width), np.float64), aligned_empty((workers, 4, width), dtype)),
    )


def fill_scratch(workers: int, size: int, dtype: np.dtype) -> np.ndarray:
    """Scratch for the masked rows filled with -inf (``_kernels.softmax.masked_logsumexp_by_filling``):
    a row of at least ``size`` elements a worker, each on cache lines of its own."""
    row = -(-size * dtype.itemsize // 64) * 64 // dtype.itemsize
    return _kept_scratch(("fill", workers, row, dtype.char), lambda: (aligned_empty((workers, row), dtype),))[0]


def _kept_scratch(key: tuple, make: Callable[[], tuple[np.ndarray, ...]]) -> tuple[np.ndarray, ...]:
    """The calling thread's scratch arrays for ``key``: those made for it before, or ``make()``'s,
    kept unless they would take the thread past _SCRATCH_CACHE_BYTES (then the others go)."""
    cache = _thread_scratch.__dict__.setdefault("arrays", {})
    scratch = cache.get(key)
    if scratch is None:
        scratch = make()
        kept = sum(a.nbytes for arrays in cache.values() for a in arrays)
        size = sum(a.nbytes for a in scratch)
        if size <= _SCRATCH_CACHE_BYTES:
            if kept + size > _SCRATCH_CACHE_BYTES:
                cache.clear()
            cache[key] = scratch
    return scratch


def _blocks_per_outer(x3: np.ndarray, block: int) -> int:
    """How many column blocks of ``block`` columns each outer index of ``x3`` has."""
    return -(-x3.shape[2] // block)


def _column_blocks(x3: np.ndarray, block: int) -> int:
    """How many column blocks of ``block`` columns the kernels split ``x3`` into."""
    return x3.shape[0] * _blocks_per_outer(x3, block)


def _takes_slabs(x3: np.ndarray, block: int, n_blocks: int, log: bool = False) -> bool:
    """Whether softmax (``log``: log_softmax) splits a column layout along K (``_kernels.softmax``,
    "Columns split along K") rather than into column blocks: a parallel float32 call (log_softmax:
    float64 too) with rows over SLAB_MIN_ROW_BYTES
    whose blocks would leave a thread idle or cut its rows into pieces of under
    COLUMN_MIN_BLOCK_ROW_BYTES, with SLAB_MIN_ROWS rows a slab; or whose blocks cut its rows at
    all, with SLAB_WHOLE_ROWS_FROM rows a slab (whose passes then take whole rows; log_softmax's
    slabs that are whole outer indices, SLAB_LOG_WHOLE_INDEX_ROWS_FROM).

    Measured on the Xeon (2 threads, out=, paired against the blocks): 2048x256 0.73 (fresh 0.68),
    4096x128 0.71, 8192x128 0.79, 16384x128 0.73, 4096x512 0.81, 1024x1024 0.76 (in place 0.82),
    2048x100 0.81; but rows of 64 float32 columns lost (16384x64 0.81-1.17 from run to run,
    32768x64 1.45), and float64 was mixed (4096x128 0.82, 16384x64 0.89, 2048x256 1.09, 8192x64
    1.09).  Whole-row passes on slabs of at least 512 rows, paired against the blocks (of 1024
    columns): 4096x4096 0.79 (fresh 0.74), 2x1000x8192 0.85, 2048x2048 0.93, 1024x4096 1.01-1.03,
    4x512x2048 1.00 (an in-process toggle also gave 1x2000x4096 0.76, 1x10000x2048 0.88); on
    shorter slabs they lost or tied (8x256x4096 1.00, 512x2048 0.81, but 4x150x4096 1.13, 256x4096
    1.15, 128x8192 1.22, 16x64x8192 1.38), and slab passes in column blocks lost on the tall ones
    (4096x4096 1.03, 2x1000x8192 1.10)."""
    if SLABS is not None:
        return SLABS
    outer, n_k, inner = x3.shape
    if (x3.dtype != np.float32 and not log) or inner * x3.itemsize <= SLAB_MIN_ROW_BYTES:
        return False
    if x3.size < SLAB_MIN_ELEMENTS or not use_parallel(x3.size):
        return False
    threads = num_threads()
    n_slabs, slab_rows = _slab_layout(outer, n_k)
    if n_k < SLAB_MIN_ROWS * n_slabs:
        return False
    if n_blocks < threads or (block < inner and block * x3.itemsize < COLUMN_MIN_BLOCK_ROW_BYTES):
        return True
    whole_index = log and n_slabs == 1
    return block < inner and slab_rows >= (SLAB_LOG_WHOLE_INDEX_ROWS_FROM if whole_index else SLAB_WHOLE_ROWS_FROM)


def _slab_layout(outer: int, n_k: int) -> tuple[int, int]:
    """``(n_slabs, slab_rows)``: the slabs per outer index of a layout split along K (as many in
    all as a multiple of the threads: 3 outer indices on 2 threads take 2 each, not 1, which
    left one thread a third of the work idle) and the most rows a slab has."""
    threads = num_threads()
    n_slabs = max(1, min(threads // math.gcd(outer, threads), n_k))
    return n_slabs, -(-n_k // n_slabs)


def _fuse_above(k, x3: np.ndarray, in_place: bool) -> int:
    """The width (bytes of four output rows) above which softmax's column passes over ``x3`` fuse
    their exps and sums: COLUMN_FUSE_ABOVE_BYTES, or the kernels' choice for the CPU (every
    block, -1, for a layout of at least their COLUMN_FUSE_LAYOUT_BYTES computed out of place)."""
    if COLUMN_FUSE_ABOVE_BYTES is not None:
        return COLUMN_FUSE_ABOVE_BYTES
    if not in_place and 0 <= k.COLUMN_FUSE_LAYOUT_BYTES <= x3.nbytes:
        return -1
    return k.COLUMN_FUSE_ABOVE_BYTES


def _slab_column_max(k, x3, mask3, sign) -> tuple[int, int, int, int, np.ndarray | None]:
    """The slab kernels' first pass on ``x3``: ``(n_slabs, n_items, workers, block, m)``, the
    slabs per outer index and in all, the workers, the columns a pass takes at a time (whole rows
    for slabs of at least SLAB_WHOLE_ROWS_FROM rows), and the per-column max over K, ``(outer,
    inner)``, the slab maxes merged: None where a column's max is NaN or +inf.  A max of -inf
    (every entry masked or -inf) is stood in for by 0, as the block kernels do it (see
    ``_kernels.softmax._stand_in_max``): its exps are 0, its sum 0, and the passes write its
    limits, 0 (log -inf)."""
    outer, n_k, inner = x3.shape
    n_slabs, slab_rows = _slab_layout(outer, n_k)
    n_items = outer * n_slabs
    workers = _workers(n_items)
    block = inner if slab_rows >= SLAB_WHOLE_ROWS_FROM else column_block_width(slab_rows, inner, x3.itemsize)
    maxes = np.empty((n_items, inner), x3.dtype)
    k.slab_max(n_items, workers, x3, mask3, sign, n_slabs, block, maxes)
    m = maxes.reshape(outer, n_slabs, inner).max(axis=1)  # NaN propagates
    if not np.isfinite(m).all():
        if not (m < np.inf).all():
            return n_slabs, n_items, workers, block, None
        m[m == -np.inf] = 0.0
    return n_slabs, n_items, workers, block, m


def _merged(slab_sums: np.ndarray, n_slabs: int) -> np.ndarray:
    """Per-slab sums ``(outer * n_slabs, inner)`` added up per outer index: ``(outer, inner)``."""
    return slab_sums.reshape(-1, n_slabs, slab_sums.shape[1]).sum(axis=1)


def _softmax_by_slabs(k, x3, out3, mask3, sign, t_hi, t_lo) -> bool:
    """softmax over K of ``x3`` split along K: the slab maxes, merged; the exps stored and summed
    per slab, the sums merged; the scaling.  Returns False, having written nothing, where a
    column's max is NaN or +inf: the block kernels handle those."""
    n_slabs, n_items, workers, block, m = _slab_column_max(k, x3, mask3, sign)
    if m is None:
        return False
    totals = np.zeros((n_items, x3.shape[2]))
    compensations = np.zeros_like(totals)
    k.softmax_slab_exps(
        n_items, workers, x3, out3, mask3, sign, t_hi, t_lo, n_slabs, block, m, totals, compensations,
        _fuse_above(k, x3, out3 is None))
    s = _merged(totals + compensations, n_slabs)
    inv_s = np.zeros_like(s)
    np.divide(1.0, s, out=inv_s, where=s > 0.0)
    # the kernels' pair_like: the float64 1/s as a pair of the data's dtype
    inv_s_hi = inv_s.astype(x3.dtype)
    inv_s_lo = (inv_s - inv_s_hi).astype(x3.dtype) if x3.dtype == np.float32 else np.zeros_like(inv_s)
    k.scale_slabs(n_items, workers, x3 if out3 is None else out3, n_slabs, block, inv_s_hi, inv_s_lo)
    return True


def _log_softmax_by_slabs(k, x3, out3, mask3, sign, t_hi, t_lo) -> bool:
    """log_softmax over K of ``x3`` split along K: the slab maxes, merged; per slab the exps
    below the max summed and the entries at it counted (reading only), merged into one
    ``log s`` per column (``column_logs``, as the block kernels take it); the writing pass.
    Returns False, having written nothing, where a column's max is NaN or +inf."""
    n_slabs, n_items, workers, block, m = _slab_column_max(k, x3, mask3, sign)
    if m is None:
        return False
    totals = np.zeros((n_items, x3.shape[2]))
    compensations = np.zeros_like(totals)
    counts = np.zeros_like(totals)
    _, narrow = column_scratch(workers, block, x3.dtype)
    k.log_softmax_slab_sums(
        n_items, workers, x3, mask3, sign, t_hi, t_lo, n_slabs, block, m, totals, compensations, counts, narrow
    )
    log_sum = _merged(totals, n_slabs)
    k.column_logs(log_sum.reshape(-1), _merged(compensations, n_slabs).reshape(-1),
                  _merged(counts, n_slabs).reshape(-1), np.empty(0, x3.dtype))
    k.log_softmax_slab_writes(n_items, workers, x3, out3, mask3, sign, t_hi, t_lo, n_slabs, block, m, log_sum, narrow)
    return True


def _column_work(x3: np.ndarray, reads_only: bool = False, block_bytes: int | None = None) -> tuple[int, int, int]:
    """``(block, n_blocks, workers)`` for the column block kernels on ``x3``: blocks of
    ``column_block_width`` columns (slabs of ``block_bytes``, default COLUMN_BLOCK_BYTES),
    narrower where a parallel call would have fewer blocks than threads: for a kernel that
    ``reads_only`` (logsumexp) down to COLUMN_MIN_WIDTH, for the others only to blocks of at least
    COLUMN_MIN_BLOCK_WIDTH (1x1024x1024 float32, two blocks of 512 against one of 1024: softmax
    0.87, log_softmax 0.77).

    Measured on the Xeon, 2 threads, float32 ``axis=0``, two blocks against one: logsumexp 4096x64
    0.71, 4096x128 0.69, 2048x100 0.76, 8192x48 0.62; softmax 4096x64 1.19-1.29 (slower than one
    thread), 4096x128 1.18, 2048x100 1.23, log_softmax 4096x64 0.98-1.06 -- two threads writing
    the two halves of every 256-byte row, each thread's prefetch streams pulling in the other's
    lines, whatever the alignment."""
    outer, n_k, inner = x3.shape
    block = column_block_width(n_k, inner, x3.itemsize, block_bytes)
    n_blocks = _column_blocks(x3, block)
    threads = num_threads() if x3.size >= PARALLEL_MIN_ELEMENTS else 1  # (use_parallel, read once)
    if n_blocks < threads:
        narrower = _width_for_threads(outer, inner, COLUMN_MIN_WIDTH)
        if reads_only or narrower >= COLUMN_MIN_BLOCK_WIDTH:
            block = narrower
            n_blocks = _column_blocks(x3, block)
    return block, n_blocks, min(n_blocks, threads)


def column_block_width(n_k: int, inner: int, itemsize: int, block_bytes: int | None = None) -> int:
    """Columns per block: a slab of about ``block_bytes`` (default COLUMN_BLOCK_BYTES) of input
    and output, with rows of at least COLUMN_MIN_BLOCK_ROW_BYTES and COLUMN_MIN_BLOCK_WIDTH
    columns (a multiple of COLUMN_MIN_WIDTH), at most ``inner``."""
    block_bytes = COLUMN_BLOCK_BYTES if block_bytes is None else block_bytes
    width = max(block_bytes // (2 * n_k * itemsize), COLUMN_MIN_BLOCK_ROW_BYTES // itemsize)
    width = max(COLUMN_MIN_BLOCK_WIDTH, width - width % COLUMN_MIN_WIDTH)
    return min(inner, width)


def logsumexp(
    x: np.ndarray,
    axes: tuple[int, ...],
    *,
    b: np.ndarray | None,
    where: np.ndarray | None,
    return_sign: bool,
    kernel_dtype: np.dtype,
    result_dtype: np.dtype,
) -> tuple[np.ndarray, np.ndarray | None]:
    """logsumexp of a validated ndarray over ``axes``; returns ``(res, sign)`` with the reduced
    axes removed (the caller applies ``keepdims`` and ``out``)."""
    kept = None
    if where is not None and b is None and not return_sign and kernel_dtype.kind != "c":
        kept = slices_kept(where, x.shape, axes)
    if kept is not None:  # whole slices kept or dropped: as softmax_family takes them
        res, _ = logsumexp(
            x, axes, b=None, where=None, return_sign=False, kernel_dtype=kernel_dtype, result_dtype=result_dtype
        )
        write_dropped(res, kept, (), -np.inf)
        return res, None
    xk = x if x.dtype == kernel_dtype else x.astype(kernel_dtype, order="K")
    kept_shape = tuple(s for d, s in enumerate(x.shape) if d not in axes)
    n = math.prod(x.shape[d] for d in axes)
    mask = None if where is None else np.broadcast_to(where, x.shape)
    if xk.size == 0:
        res = np.full(kept_shape, -np.inf, kernel_dtype)
        sign = np.zeros(kept_shape, kernel_dtype) if return_sign else None
        return _cast_pair(res, sign, result_dtype)
    k = kernels()
    if b is not None or return_sign or kernel_dtype.kind == "c":
        moved = np.ascontiguousarray(_moved_to_end(xk, axes)).reshape(-1, n)
        weights = None
        if b is not None:
            weights = np.ascontiguousarray(_moved_to_end(np.broadcast_to(b, x.shape), axes)).reshape(-1, n)
            weights = weights.astype(kernel_dtype, copy=False)
        mask2 = None if mask is None else np.ascontiguousarray(_moved_to_end(mask, axes)).reshape(-1, n)
        res = np.empty(moved.shape[0], kernel_dtype)
        sign = np.empty(moved.shape[0], kernel_dtype)
        if kernel_dtype.kind == "c":
            k.complex_logsumexp_rows(moved, weights, mask2, res, sign)
        else:
            k.signed_logsumexp_rows(moved, weights, mask2, res, sign)
        res = res.reshape(kept_shape)
        sign = sign.reshape(kept_shape)
        if not return_sign:
            if kernel_dtype.kind != "c":
                res[sign < 0] = np.nan
            sign = None
        return _cast_pair(res, sign, result_dtype)

    block = canonical_block(xk, axes)
    if block is not None and _reads_columns_as_they_lie(block.k, block.inner, xk.size, mask is not None):
        x3 = xk.transpose(block.order).reshape(block.outer, block.k, block.inner)
        mask3 = None if mask is None else np.ascontiguousarray(mask.transpose(block.order)).reshape(x3.shape)
        kept_order = [d for d in block.order if d not in axes]
    else:
        x3 = np.ascontiguousarray(_moved_to_end(xk, axes)).reshape(-1, n, 1)
        mask3 = None if mask is None else np.ascontiguousarray(_moved_to_end(mask, axes)).reshape(x3.shape)
        kept_order = [d for d in range(x.ndim) if d not in axes]
    res2 = np.empty((x3.shape[0], x3.shape[2]), kernel_dtype)
    _run_logsumexp(x3, mask3, res2)
    res_t = res2.reshape([x.shape[d] for d in kept_order])
    res = res_t.transpose([kept_order.index(d) for d in sorted(kept_order)])
    return _cast_pair(res, None, result_dtype)


def _run_logsumexp(x3, mask3, res2) -> None:
    """logsumexp of the column layout ``x3`` (``mask3``: its mask, or None) into ``res2``, of
    shape ``(outer, inner)``."""
    k = kernels()
    if x3.shape[2] == 1:
        x2 = x3.reshape(x3.shape[:2])
        _run_logsumexp_rows(x2, None if mask3 is None else mask3.reshape(x2.shape), res2.reshape(-1))
    elif mask3 is None and _takes_small_k_tiles(k, x3, reads_only=True):
        n_items, workers, chunk, paired = _small_k_work(k, x3)
        (k.logsumexp_small_k if workers > 1 else k.logsumexp_small_k_serial)(n_items, workers, x3, res2, chunk, paired)
    else:
        block_width, n_blocks, workers = _column_work(x3, reads_only=True)
        wide, narrow = column_scratch(workers, block_width, x3.dtype)
        k.logsumexp_columns(n_blocks, workers, x3, mask3, res2, block_width, wide, narrow)


def logsumexp_other_axis(
    x: np.ndarray, axis: int, out: np.ndarray | None = None, mask: np.ndarray | None = None
) -> np.ndarray:
    """``logsumexp_rows`` for another axis ``axis`` (``0 <= axis < x.ndim - 1``) of a non-empty
    C-contiguous float32/float64 ndarray, no options but ``mask`` (as ``logsumexp_rows``'s, read
    in x's layout): ``x`` is its own column layout ``(outer, K, inner)`` and its result, of shape
    ``x.shape`` without ``axis``, is C-contiguous as the kernels write it.  ``out``: as
    ``logsumexp_rows``'s, flat.  Where the general path would move the axis to the end
    (``_reads_columns_as_they_lie``) it takes that path."""
    shape = x.shape
    inner = math.prod(shape[axis + 1 :])
    kept = shape[:axis] + shape[axis + 1 :]
    n_k = shape[axis]
    if not _reads_columns_as_they_lie(n_k, inner, x.size, mask is not None):
        res, _ = logsumexp(
            x, (axis,), b=None, where=mask, return_sign=False, kernel_dtype=x.dtype, result_dtype=x.dtype
        )
        if out is None:
            return res
        out.reshape(kept)[...] = res
        return out
    res = np.empty(kept, x.dtype) if out is None else out
    shape3 = (x.size // (n_k * inner), n_k, inner)
    _run_logsumexp(x.reshape(shape3), None if mask is None else mask.reshape(shape3), res.reshape(-1, inner))
    return res


def logsumexp_rows(
    x2: np.ndarray, out: np.ndarray | None = None, mask: np.ndarray | None = None, mask_rows: np.ndarray | None = None
) -> np.ndarray:
    """The per-call-overhead path: logsumexp of each row of a non-empty C-contiguous 2-D
    float32/float64 array, no options but a ``mask`` (C-contiguous, boolean, of x2's shape, or
    with ``mask_rows`` the rows of a mask broadcast over the leading axes, see ``_run_rows``),
    into ``out`` (1-D, C-contiguous, x2's dtype, overlapping neither) or a new array
    (``softmaxkit._api`` checks all that)."""
    res = np.empty(x2.shape[0], x2.dtype) if out is None else out
    _run_logsumexp_rows(x2, mask, res, mask_rows)
    return res


def _run_logsumexp_rows(x2, mask2, res, mask_rows=None) -> None:
    k = kernels()
    n_rows, n = x2.shape
    if (
        mask2 is not None
        and n_rows >= MASKED_LOGSUMEXP_FILL_MIN_ROWS
        and (n <= MASKED_LOGSUMEXP_FILL_MAX_FLOAT32_ROW or x2.dtype != np.float32)
        and _short_rows(k, x2, None)
    ):
        _run_masked_short_logsumexp_rows(k, x2, mask2, res, mask_rows)
        return
    short = _short_rows(k, x2, mask2)
    if short and n_rows >= PACKED_MIN_ROWS and (width := _packed_width(k, x2)) is not None:
        if not use_parallel(_packed_work(x2)):
            k.packed_logsumexp_rows_serial(x2, width, res)
        else:
            k.packed_logsumexp_rows(n_rows, _workers(n_rows), x2, width, res)
    elif short:
        if not use_parallel(x2.size):
            k.logsumexp_short_rows_serial(x2, res)
        else:
            k.logsumexp_short_rows(n_rows, _workers(n_rows), x2, res)
    elif not use_parallel(x2.size):
        k.logsumexp_rows_serial(x2, mask2, mask_rows, res)
    elif n >= SPLIT_MIN_LENGTH and n_rows < 2 * num_threads():
        states = _split_log_states(x2, _gathered(mask2, mask_rows), None, None, None)
        chunk_max, chunk_rest, chunk_count = states[:3]
        k.merge_logsumexp_rows(chunk_max, chunk_rest, chunk_count, res)
    else:
        workers = _workers(n_rows)
        k.logsumexp_rows(n_rows, workers, x2, mask2, mask_rows, res, k.row_terms(workers, x2.dtype))


def _run_masked_short_logsumexp_rows(k, x2, mask2, res, mask_rows=None) -> None:
    """Masked short rows by the unmasked short or packed kernels, each worker copying its rows,
    FILL_CHUNK_BYTES at a time, with -inf where masked (``masked_logsumexp_by_filling``).
    ``mask_rows``: see ``_run_rows``."""
    if not (x2.flags.c_contiguous and mask2.flags.c_contiguous):  # (a chunk's rows are filled as one run)
        x2, mask2 = np.ascontiguousarray(x2), np.ascontiguousarray(mask2)
    n_rows, n = x2.shape
    width = _packed_width(k, x2) if n_rows >= PACKED_MIN_ROWS else None
    chunk = _fill_chunk(x2)
    if not use_parallel(x2.size if width is None else _packed_work(x2)):
        if width is None:
            k.masked_logsumexp_short_rows_serial(x2, mask2, mask_rows, res, chunk)
        else:
            k.masked_packed_logsumexp_rows_serial(x2, mask2, mask_rows, width, res, chunk)
        return
    workers = _workers(n_rows)
    scratch = fill_scratch(workers, chunk * n, x2.dtype)
    if width is None:
        k.masked_logsumexp_short_rows(n_rows, workers, x2, mask2, mask_rows, res, chunk, scratch)
    else:
        k.masked_packed_logsumexp_rows(n_rows, workers, x2, mask2, mask_rows, width, res, chunk, scratch)


def _narrow(result: np.ndarray, result_dtype: np.dtype) -> np.ndarray:
    """Round a float32 kernel result to float16/bfloat16.  A value just above the largest
    finite float16 that rounds to it (65504.7 -> 65504) makes NumPy warn "overflow in cast";
    results that really overflow become inf, which is their correctly rounded value."""
    if result.dtype == result_dtype:
        return result
    with np.errstate(over="ignore"):
        return result.astype(result_dtype)


def _cast_pair(res, sign, result_dtype):
    return _narrow(res, result_dtype), None if sign is None else _narrow(sign, result_dtype)


def backward(
    grad: np.ndarray, y: np.ndarray, axes: tuple[int, ...], *, log: bool, kernel_dtype: np.dtype, result_dtype: np.dtype
) -> np.ndarray:
    """The vector-Jacobian product of softmax (``log=False``) or log_softmax."""
    if grad.size == 0:
        return np.empty(grad.shape, result_dtype)
    n = math.prod(grad.shape[d] for d in axes)
    g2 = np.ascontiguousarray(_moved_to_end(grad, axes), dtype=kernel_dtype).reshape(-1, n)
    y2 = np.ascontiguousarray(_moved_to_end(y, axes), dtype=kernel_dtype).reshape(-1, n)
    out2 = result_empty(g2.shape, g2.dtype, g2.nbytes, g2)
    k = kernels()
    if not use_parallel(g2.size):
        (k.log_softmax_backward_serial if log else k.softmax_backward_serial)(g2, y2, out2)
    else:
        rows = k.log_softmax_backward_rows if log else k.softmax_backward_rows
        rows(g2.shape[0], _workers(g2.shape[0]), g2, y2, out2)
    moved_shape = _moved_to_end(grad, axes).shape
    result = np.moveaxis(out2.reshape(moved_shape), tuple(range(grad.ndim - len(axes), grad.ndim)), axes)
    return _narrow(result, result_dtype)


class _Settings(ModuleType):
    """This module's class: setting any of its attributes (a tuning constant such as
    PARALLEL_MIN_ELEMENTS, or a function a test replaces, e.g. with ``monkeypatch.setattr``)
    forgets the plans made under the old value (``_forget_plans``)."""

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        _forget_plans()


sys.modules[__name__].__class__ = _Settings
