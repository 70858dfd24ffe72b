"""The result cache (``softmaxkit._results``): large results' memory is reused once the caller
lets a result go, and never while any array can still reach it.

The cache takes results of ``MIN_BYTES`` (32 MiB) and more; the tests lower that to 1 MiB (where
the per-call paths start allocating results with ``aligned_empty``) so that their arrays stay
small.  Each test starts with an empty cache and leaves one behind.
"""

from __future__ import annotations

import gc
import os
import threading

import numpy as np
import pytest

import softmaxkit as sk
from softmaxkit import _numpy_backend as backend
from softmaxkit import _results

SMALL_MIN = 1 << 20
SHAPE = (512, 1024)  # float32: 2 MiB, a block of 4 MiB (2 MiB + a page, in 2 MiB granules)


@pytest.fixture(autouse=True)
def fresh_cache(monkeypatch):
    monkeypatch.setattr(_results, "MIN_BYTES", SMALL_MIN)
    monkeypatch.setattr(_results, "_reused", 0)
    monkeypatch.setattr(_results, "_allocated", 0)
    previous = sk.set_result_cache(0)
    sk.set_result_cache(_results.DEFAULT_MAX_BYTES)
    yield
    sk.set_result_cache(0)
    sk.set_result_cache(previous)


def _x(seed: int = 0, shape: tuple[int, ...] = SHAPE, dtype: type = np.float32) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _uncached(fn, *args, **kwargs) -> np.ndarray:
    before = sk.set_result_cache(0)
    try:
        return fn(*args, **kwargs)
    finally:
        sk.set_result_cache(before)


def _block(y: np.ndarray) -> np.ndarray:
    """The cache's block that the result ``y`` lies in."""
    while isinstance(y, np.ndarray):
        y = y.base
    return y._block


def _is_cached(y: np.ndarray) -> bool:
    while isinstance(y, np.ndarray):
        y = y.base
    return isinstance(y, _results._Lease)


@pytest.mark.parametrize("fn", [sk.softmax, sk.log_softmax, sk.softmin])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("axis", [-1, 0])
def test_a_freed_result_is_reused_with_the_same_bits(fn, dtype, axis):
    x = _x(1, dtype=dtype)
    expected = _uncached(fn, x, axis=axis)
    assert not _is_cached(expected)
    first = fn(x, axis=axis)
    assert _is_cached(first)
    np.testing.assert_array_equal(first, expected)
    address = first.__array_interface__["data"][0]
    del first
    info = sk.result_cache_info()
    block_bytes = -(-(x.nbytes + 4095) // (2 << 20)) * (2 << 20)  # 4 MiB for float32, 6 for float64
    assert info.held_blocks == 1 and info.held_bytes == block_bytes
    second = fn(x, axis=axis)
    assert second.__array_interface__["data"][0] == address  # the same memory, taken again
    np.testing.assert_array_equal(second, expected)
    info = sk.result_cache_info()
    assert (info.held_blocks, info.reused, info.allocated) == (0, 1, 1)


@pytest.mark.parametrize("fn", [sk.softmax_backward, sk.log_softmax_backward])
def test_backward_results_are_reused_with_the_same_bits(fn):
    y = _uncached(sk.softmax, _x(5))
    grad = _x(6)
    expected = _uncached(fn, grad, y)
    first = fn(grad, y)
    assert _is_cached(first)
    np.testing.assert_array_equal(first, expected)
    del first
    second = fn(grad, y)
    np.testing.assert_array_equal(second, expected)
    assert sk.result_cache_info().reused == 1


def test_a_live_result_is_never_reused():
    x = _x()
    results = [sk.softmax(x) for _ in range(3)]
    for i, a in enumerate(results):
        for b in results[i + 1:]:
            assert not np.shares_memory(a, b)
    assert sk.result_cache_info().allocated == 3


@pytest.mark.parametrize("keep", ["view", "transpose", "memoryview", "copy of base chain", "cycle"])
def test_memory_reachable_from_anything_is_not_reused(keep):
    # The result goes, something reaching its memory stays: the next result must not take it,
    # and what stays must keep its values.
    x, y = _x(2), _x(3)
    p = sk.softmax(x)
    expected = p.copy()
    if keep == "view":
        kept = p[100:]
    elif keep == "transpose":
        kept = p.T
    elif keep == "memoryview":
        kept = memoryview(p)
    elif keep == "copy of base chain":
        kept = p.base  # the lease itself
    else:
        kept = [p]
        kept.append(kept)  # a reference cycle, alive until collected
    del p
    q = sk.softmax(y)
    if keep == "view":
        np.testing.assert_array_equal(kept, expected[100:])
        assert not np.shares_memory(kept, q)
    elif keep == "transpose":
        np.testing.assert_array_equal(kept, expected.T)
        assert not np.shares_memory(kept, q)
    elif keep == "memoryview":
        np.testing.assert_array_equal(np.asarray(kept), expected)
        assert not np.shares_memory(np.asarray(kept), q)
    elif keep == "copy of base chain":
        np.testing.assert_array_equal(np.asarray(kept), expected)
        assert not np.shares_memory(np.asarray(kept), q)
    else:
        np.testing.assert_array_equal(kept[0], expected)
        assert not np.shares_memory(kept[0], q)
    assert sk.result_cache_info().reused == 0
    # once it goes too, the memory comes back
    del kept, q
    gc.collect()
    assert sk.result_cache_info().held_blocks == 2


def test_results_below_min_bytes_are_numpys():
    small = sk.softmax(_x(shape=(255, 1024)))  # 1 MiB - 4 KiB: below MIN_BYTES with the page added
    assert not _is_cached(small)
    assert _is_cached(sk.softmax(_x(shape=(256, 1024))))


def test_cached_results_start_apart_from_their_input():
    # where aligned_empty places a result: APART_BYTES past the input's cache line, modulo a page
    for offset in (0, 16, 64, 1000, 4000):
        raw = np.empty(2 * 2**20 + 8192, np.uint8)
        start = (-raw.__array_interface__["data"][0] + offset) % 4096
        x = raw[start:start + 2 * 2**20].view(np.float32).reshape(SHAPE)
        x[...] = _x(4)
        p = sk.softmax(x)
        assert _is_cached(p)
        x_address = x.__array_interface__["data"][0]
        assert p.__array_interface__["data"][0] % 4096 == ((x_address & -64) + backend.APART_BYTES) % 4096
        np.testing.assert_array_equal(p, _uncached(sk.softmax, x))


def test_a_bound_keeps_the_newest_blocks():
    sk.set_result_cache(8 << 20)  # two 4 MiB blocks
    a, b, c = (sk.softmax(_x(i)) for i in range(3))
    blocks = [_block(r) for r in (a, b, c)]  # (a result starts where its input's address puts it)
    del a, b, c  # in this order: a's block is the oldest, and goes when c's comes
    info = sk.result_cache_info()
    assert (info.held_blocks, info.held_bytes) == (2, 8 << 20)
    # the newest first
    p = sk.softmax(_x(9))
    q = sk.softmax(_x(9))
    assert _block(p) is blocks[2] and _block(q) is blocks[1]


def test_a_block_over_the_bound_is_freed_at_once():
    sk.set_result_cache(3 << 20)
    p = sk.softmax(_x())
    assert _is_cached(p)
    del p
    assert sk.result_cache_info().held_bytes == 0


def test_zero_frees_everything_and_turns_reuse_off():
    p, q = sk.softmax(_x(0)), sk.softmax(_x(1))
    del p, q
    assert sk.result_cache_info().held_blocks == 2
    assert sk.set_result_cache(0) == _results.DEFAULT_MAX_BYTES
    assert sk.result_cache_info().held_bytes == 0
    assert not _is_cached(sk.softmax(_x()))
    # a lease alive across the switch is freed, not held, when it goes
    sk.set_result_cache(64 << 20)
    r = sk.softmax(_x())
    sk.set_result_cache(0)
    del r
    assert sk.result_cache_info().held_blocks == 0


def test_other_sizes_do_not_take_a_block():
    p = sk.softmax(_x(shape=(512, 1024)))
    del p
    q = sk.softmax(_x(shape=(1024, 1024)))  # 4 MiB: a 6 MiB block, not the held 4 MiB one
    info = sk.result_cache_info()
    assert (info.reused, info.held_blocks) == (0, 1)
    assert q.shape == (1024, 1024)


def test_a_lease_that_goes_while_the_lock_is_held_frees_its_block():
    # __del__ only tries the lock (a garbage collection in the middle of _take runs it in the
    # thread that holds it): the block is freed, nothing waits.
    p = sk.softmax(_x())
    with _results._lock:
        del p
    assert sk.result_cache_info().held_blocks == 0


def test_threads_never_share_a_live_result():
    x = [_x(i) for i in range(4)]
    expected = [_uncached(sk.softmax, xi) for xi in x]
    failures = []

    def work(i):
        for _ in range(25):
            p = sk.softmax(x[i])
            if not np.array_equal(p, expected[i]):
                failures.append(i)
            p[...] = -1  # a result another thread shared would show this
            del p

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    info = sk.result_cache_info()
    assert info.reused + info.allocated == 100 and info.reused > 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_starts_with_an_empty_cache():
    p = sk.softmax(_x())
    del p
    assert sk.result_cache_info().held_blocks == 1
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no numba call (the parent's OpenMP threads are not in the child)
        try:
            info = _results.result_cache_info()
            block = _results.cached_empty((512, 1024), np.dtype(np.float32), 2 << 20, 64, 0)
            ok = info.held_blocks == 0 and info.reused == 0 and isinstance(block.base, _results._Lease)
            os.write(write, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(write)
    answer = os.read(read, 1)
    os.close(read)
    os.waitpid(pid, 0)
    assert answer == b"1"
    assert sk.result_cache_info().held_blocks == 1  # the parent's is still there


@pytest.mark.parametrize("dtype", [np.dtype(">f4"), np.dtype([("a", "<f4")])])
def test_non_native_or_structured_dtypes_are_left_to_numpy(dtype):
    assert _results.cached_empty((512, 1024), dtype, 2 << 20, 64, 0) is None


@pytest.mark.parametrize("bad, error", [(-1, ValueError), (1.5, TypeError), (True, TypeError), ("1", TypeError)])
def test_bad_bounds_are_refused(bad, error):
    with pytest.raises(error, match="set_result_cache: max_bytes"):
        sk.set_result_cache(bad)
    assert sk.result_cache_info().max_bytes == _results.DEFAULT_MAX_BYTES


def test_numpy_integer_bounds_are_taken():
    assert sk.set_result_cache(np.int64(1 << 20)) == _results.DEFAULT_MAX_BYTES
    assert sk.result_cache_info().max_bytes == 1 << 20
