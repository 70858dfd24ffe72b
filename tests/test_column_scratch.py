"""The column kernels' scratch (``_numpy_backend.column_scratch``): cache-line aligned, kept per
calling thread and handed out again, so nothing a call leaves in it may reach a later call.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

import softmaxkit as sk
from softmaxkit import _numpy_backend
from softmaxkit._numpy_backend import aligned_empty, column_scratch

from naive import assert_matches, log_softmax_ref, logsumexp_ref, softmax_ref


def _address(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


@pytest.mark.parametrize("shape", [(1,), (3, 5), (2, 3, 3120), (7, 1, 17)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8])
def test_aligned_empty(shape, dtype):
    a = aligned_empty(shape, dtype)
    assert a.shape == shape and a.dtype == dtype and a.flags.c_contiguous and a.flags.writeable
    assert _address(a) % 64 == 0
    a[...] = 1  # the whole array is ours to write
    assert (a == 1).all()


def _at_page_offset(shape, dtype, offset: int) -> np.ndarray:
    """An array of ``shape`` starting ``offset`` bytes into a page."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    raw = np.empty(nbytes + 2 * _numpy_backend.PAGE_BYTES, np.uint8)
    start = (offset - _address(raw)) % _numpy_backend.PAGE_BYTES
    return raw[start : start + nbytes].view(dtype).reshape(shape)


def _apart(result: np.ndarray, x: np.ndarray) -> int:
    return (_address(result) - (_address(x) & -64)) % _numpy_backend.PAGE_BYTES


@pytest.mark.parametrize("offset", [0, 16, 64, 2000, 2048, 4080])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8])
def test_aligned_empty_apart_from(offset, dtype):
    x = _at_page_offset((1000,), np.float32, offset)
    a = aligned_empty((3, 5, 7), dtype, x)
    assert a.shape == (3, 5, 7) and a.dtype == dtype and a.flags.c_contiguous and a.flags.writeable
    assert _address(a) % 64 == 0
    assert _apart(a, x) == _numpy_backend.APART_BYTES
    a[...] = 1
    assert (a == 1).all()


# Fresh results of ALIGNED_RESULT_BYTES or more start half a page from their input (modulo a page)
# on both paths: the last-axis one and the general one (a column layout, and one whose axis order
# is not the array's).
@pytest.mark.parametrize("offset", [16, 64, 2048])
@pytest.mark.parametrize(
    "shape, axis, transpose", [((512, 1024), -1, False), ((4, 16, 4096), 1, False), ((512, 1024), 0, True)]
)
@pytest.mark.parametrize("function", [sk.softmax, sk.log_softmax])
def test_fresh_results_start_apart_from_their_input(function, shape, axis, transpose, offset):
    assert np.prod(shape) * 4 >= _numpy_backend.ALIGNED_RESULT_BYTES
    x = _at_page_offset(shape, np.float32, offset)
    x[...] = np.random.default_rng(1).standard_normal(shape)
    if transpose:
        x = x.T
    result = function(x, axis=axis)
    assert _apart(result, x) == _numpy_backend.APART_BYTES  # (a transposed view starts where its base does)
    log = function is sk.log_softmax
    assert_matches(result, (log_softmax_ref if log else softmax_ref)(x, axis=axis), log=log)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scratch_is_aligned_and_reused_by_its_thread(dtype):
    dtype = np.dtype(dtype)
    wide, narrow = column_scratch(2, 3120, dtype)
    assert wide.shape == (2, 3, 3120) and wide.dtype == np.float64
    assert narrow.shape == (2, 4, 3120) and narrow.dtype == dtype
    assert _address(wide) % 64 == 0 and _address(narrow) % 64 == 0
    again = column_scratch(2, 3120, dtype)
    assert again[0] is wide and again[1] is narrow
    other = column_scratch(1, 3120, dtype)  # another shape: other arrays
    assert other[0] is not wide


def test_scratch_is_not_shared_between_threads():
    mine = column_scratch(2, 256, np.dtype(np.float32))
    theirs = []
    worker = threading.Thread(target=lambda: theirs.append(column_scratch(2, 256, np.dtype(np.float32))))
    worker.start()
    worker.join()
    assert theirs[0][0] is not mine[0] and theirs[0][1] is not mine[1]
    assert not np.shares_memory(theirs[0][0], mine[0])


def test_large_scratch_is_not_kept(monkeypatch):
    monkeypatch.setattr(_numpy_backend, "_SCRATCH_CACHE_BYTES", 1000)
    first = column_scratch(2, 64, np.dtype(np.float32))  # 2 * 64 * (24 + 16) bytes > 1000
    assert column_scratch(2, 64, np.dtype(np.float32))[0] is not first[0]


def test_a_thread_keeps_at_most_the_cache_bytes(monkeypatch):
    monkeypatch.setattr(_numpy_backend, "_SCRATCH_CACHE_BYTES", 4000)
    _numpy_backend._thread_scratch.__dict__.clear()
    f32 = np.dtype(np.float32)
    a = column_scratch(1, 32, f32)  # 32 * (24 + 16) = 1280 bytes each
    b = column_scratch(1, 48, f32)  # 1920: 3200 kept
    assert column_scratch(1, 32, f32)[0] is a[0] and column_scratch(1, 48, f32)[0] is b[0]
    column_scratch(1, 64, f32)  # 2560 more would pass 4000: the earlier ones are let go
    kept = _numpy_backend._thread_scratch.arrays
    assert sum(w.nbytes + n.nbytes for w, n in kept.values()) <= 4000
    assert column_scratch(1, 32, f32)[0] is not a[0]


def _column_input(rng, dtype, shape=(3, 21, 300)):
    x = (rng.standard_normal(shape) * 5).astype(dtype)
    x[0, :, 7] = np.nan  # a block with a NaN column (the limits path, a second kernel pass)
    x[1, 3, 250] = np.inf
    x[-1, :, 100] = -np.inf
    return x


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_reused_scratch_carries_nothing_between_calls(dtype, rng):
    # softmax, log_softmax and logsumexp of the same (outer, K, inner) shape share one scratch;
    # each must get the result it gets with scratch nobody used before
    x = _column_input(rng, dtype)
    y = (rng.standard_normal(x.shape) * 30).astype(dtype)
    _numpy_backend._thread_scratch.__dict__.clear()
    first = sk.softmax(x, axis=1)
    first_log = sk.log_softmax(y, axis=1)
    assert_matches(first, softmax_ref(x.astype(np.float64), 1))
    assert_matches(first_log, softmax_ref(y.astype(np.float64), 1, log=True), log=True)
    for _ in range(2):
        sk.log_softmax(y, axis=1)
        sk.logsumexp(y, axis=1)
        sk.softmin(y, axis=1, where=y > 0)
        np.testing.assert_array_equal(sk.softmax(x, axis=1), first)
        np.testing.assert_array_equal(sk.log_softmax(y, axis=1), first_log)
    assert_matches(sk.logsumexp(x, axis=1), logsumexp_ref(x.astype(np.float64), 1), log=True)


def test_concurrent_column_calls_from_threads(rng, monkeypatch):
    # Several Python threads, each with its own scratch, run the parallel column kernels at the
    # same time: every result must equal the one computed alone.
    monkeypatch.setattr(_numpy_backend, "PARALLEL_MIN_ELEMENTS", 0)
    inputs = [_column_input(rng, dtype, (2, 13, 700)) for dtype in (np.float32, np.float64) for _ in range(2)]
    expected = [(sk.softmax(x, axis=1), sk.log_softmax(x, axis=1)) for x in inputs]
    failures = []

    def work(i):
        x = inputs[i]
        for _ in range(20):
            got = sk.softmax(x, axis=1), sk.log_softmax(x, axis=1)
            for a, b in zip(got, expected[i]):
                if not np.array_equal(a, b, equal_nan=True):
                    failures.append(i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


@pytest.mark.parametrize("function", [sk.softmax, sk.log_softmax, sk.softmin])
@pytest.mark.parametrize("shape, axis", [((600, 512), -1), ((4, 21, 64, 64), 1), ((512, 600), 0)])
def test_large_results_start_on_a_cache_line(function, shape, axis, rng):
    # results of at least ALIGNED_RESULT_BYTES that softmaxkit allocates are 64-byte aligned,
    # and are ordinary writable arrays of the right shape, layout and values
    x = rng.standard_normal(shape).astype(np.float32)
    assert x.nbytes >= _numpy_backend.ALIGNED_RESULT_BYTES
    result = function(x, axis=axis)
    assert _address(result) % 64 == 0
    assert result.shape == x.shape and result.dtype == x.dtype and result.flags.writeable
    assert result.flags.c_contiguous
    is_log = function is sk.log_softmax
    sign = -1 if function is sk.softmin else 1
    assert_matches(result, softmax_ref(sign * x.astype(np.float64), axis, log=is_log), log=is_log)


@pytest.mark.parametrize(("layout_bytes", "nbytes", "in_place", "expected"), [
    (-1, 1 << 30, False, 32 << 10),  # no such size on this CPU: the width threshold
    (32 << 20, (32 << 20) - 4, False, 32 << 10),  # below the size
    (32 << 20, 32 << 20, False, -1),  # from the size on, out of place: every block fused
    (32 << 20, 32 << 20, True, 32 << 10),  # in place: the width threshold
])
def test_large_layouts_fuse_every_block_where_the_cpu_says(layout_bytes, nbytes, in_place, expected, monkeypatch):
    # softmax's column blocks sum their exps in the vector pass above a width, or on some CPUs
    # (Zen 4) on every block of a large layout computed out of place
    from types import SimpleNamespace

    monkeypatch.setattr(_numpy_backend, "COLUMN_FUSE_ABOVE_BYTES", None)
    k = SimpleNamespace(COLUMN_FUSE_ABOVE_BYTES=32 << 10, COLUMN_FUSE_LAYOUT_BYTES=layout_bytes)
    x3 = np.broadcast_to(np.float32(0), (1, 4, nbytes // 16))  # nbytes without allocating them
    assert _numpy_backend._fuse_above(k, x3, in_place) == expected
    monkeypatch.setattr(_numpy_backend, "COLUMN_FUSE_ABOVE_BYTES", 7)  # a test's override wins
    assert _numpy_backend._fuse_above(k, x3, in_place) == 7


def test_log_softmax_takes_column_blocks_of_half_the_bytes(monkeypatch):
    # log_softmax's block kernels take slabs of COLUMN_BLOCK_BYTES // COLUMN_LOG_BLOCK_DIVISOR
    # (its stats pass stages the exps in the output); softmax's and logsumexp's the whole
    widths = []
    work = _numpy_backend._column_work

    def recording(x3, *args, **kwargs):
        result = work(x3, *args, **kwargs)
        widths.append(result[0])
        return result

    monkeypatch.setattr(_numpy_backend, "_column_work", recording)
    monkeypatch.setattr(_numpy_backend, "SLABS", False)
    x = np.ones((21, 8192), np.float32)  # K = 21, rows 32 KiB apart: the block kernels
    for function in (sk.softmax, sk.log_softmax, sk.logsumexp):
        function(x, axis=0)
    assert _numpy_backend.COLUMN_LOG_BLOCK_DIVISOR == 2
    assert widths == [
        _numpy_backend.column_block_width(21, 8192, 4),
        _numpy_backend.column_block_width(21, 8192, 4, _numpy_backend.COLUMN_BLOCK_BYTES // 2),
        _numpy_backend.column_block_width(21, 8192, 4),
    ]
    assert widths[1] < widths[0]
