"""Memory for large results, kept for reuse once the caller lets a result go.

A result of 32 MiB or more costs more to fault in than to compute: glibc's malloc serves such a
request with a fresh ``mmap`` every time (its dynamic mmap threshold stops at 32 MiB on 64-bit
systems, ``DEFAULT_MMAP_THRESHOLD_MAX``) and returns it to the kernel on ``free``, so every
page of a new result is zeroed by the kernel on first touch.  Below that size glibc already
reuses freed memory.  Measured on a 2-core Zen 5 VM, softmax of n x 4096 float32, 2 threads, a
fresh result against ``out=``: 31 MiB 0.95, 33 MiB 2.42, 64 MiB 1.82, 128 MiB 1.39 (and
``x.copy()`` against ``np.copyto``: 0.97, 2.87, 2.03, 1.74).

So a result of at least ``MIN_BYTES`` lives in a *block* this module owns.  The result is a
view of a small ``_Lease`` object (through ``__array_interface__``), and every view of the
result keeps the lease alive; when the last one goes, the lease's ``__del__`` hands its block
back here, and the next result of the same size class takes it with its pages already in
memory.  A block is therefore never given out while any array can still reach it.  At most
``max_bytes`` (``set_result_cache``) of blocks nobody uses are held; past that the oldest are
freed, and a block larger than the bound is freed at once.  ``set_result_cache(0)`` frees them
all and turns the reuse off.  This is what a caching allocator does (torch's for CUDA, jemalloc's
retained extents); unlike an allocator it only ever holds softmaxkit's own results.

Threads: taking and giving back happen under one lock.  ``__del__`` may run in any thread, or in
this thread in the middle of ``_take`` (a garbage collection); it only *tries* the lock, and
where it is held it lets the block be freed instead of waiting, so it can never deadlock.  A
forked child starts with a fresh lock and no held blocks (their pages are the parent's,
copy-on-write, so reusing them would fault anyway).
"""

from __future__ import annotations

import os
import threading
from typing import Any, NamedTuple

import numpy as np

# glibc's largest mmap threshold on 64-bit systems: requests from here up are fresh mappings.
MIN_BYTES = 32 << 20
# blocks come in multiples of a transparent huge page (numpy asks for them from 4 MiB up)
GRANULE_BYTES = 2 << 20
DEFAULT_MAX_BYTES = 256 << 20


class ResultCacheInfo(NamedTuple):
    """What ``result_cache_info`` reports."""

    max_bytes: int
    """the most bytes of unused blocks held (``set_result_cache``)"""
    held_bytes: int
    """bytes of blocks held now, waiting for a result of their size"""
    held_blocks: int
    """how many blocks are held now"""
    reused: int
    """results that took a held block, since the process (or the fork) began"""
    allocated: int
    """results of at least ``MIN_BYTES`` that needed a new block"""


_lock = threading.Lock()
_max_bytes = DEFAULT_MAX_BYTES
_held: list[np.ndarray] = []  # blocks nobody uses, oldest first
_held_bytes = 0
_reused = 0
_allocated = 0


class _Lease:
    """The owner (``base``) of one result: its block returns to the cache when it goes."""

    __slots__ = ("__array_interface__", "_block")

    def __del__(self) -> None:
        try:
            _give_back(self._block)
        except Exception:  # interpreter shutdown: module globals may already be gone
            pass


def _take(size: int) -> np.ndarray:
    """A block of exactly ``size`` bytes: the newest held one, else a new one."""
    global _held_bytes, _reused, _allocated
    with _lock:
        for i in range(len(_held) - 1, -1, -1):
            if _held[i].nbytes == size:
                _held_bytes -= size
                _reused += 1
                return _held.pop(i)
        _allocated += 1
    return np.empty(size, np.uint8)


def _give_back(block: np.ndarray) -> None:
    global _held_bytes
    if not _lock.acquire(blocking=False):
        return  # see the module's docstring: the block is freed instead
    try:
        if block.nbytes > _max_bytes:
            return
        _held.append(block)
        _held_bytes += block.nbytes
        while _held_bytes > _max_bytes:
            _held_bytes -= _held.pop(0).nbytes
    finally:
        _lock.release()


def cached_empty(shape: tuple[int, ...], dtype: np.dtype, nbytes: int, period: int, wanted: int) -> np.ndarray | None:
    """An uninitialised C-contiguous array of ``shape`` and ``dtype`` (``nbytes`` bytes) whose
    start is ``wanted`` modulo ``period`` (a power of two up to a page), in a block of this
    cache; None where the request is below ``MIN_BYTES``, the reuse is off, or the dtype is
    not a plain native number (numpy then allocates as usual)."""
    need = nbytes + period - 1
    if need < MIN_BYTES or not _max_bytes or dtype.fields is not None or not dtype.isnative:
        return None
    block = _take(-(-need // GRANULE_BYTES) * GRANULE_BYTES)
    address = block.__array_interface__["data"][0]
    lease = _Lease()
    lease._block = block
    lease.__array_interface__ = {
        "shape": shape,
        "typestr": dtype.str,
        "data": (address + (wanted - address) % period, False),
        "version": 3,
    }
    return np.asarray(lease)


def set_result_cache(max_bytes: int) -> int:
    """Hold at most ``max_bytes`` of memory from large results the caller has let go, for reuse.

    A result of 32 MiB or more that softmaxkit allocates is otherwise a fresh memory mapping,
    and faulting its pages in costs about as much as computing it (a 64 MiB softmax: 5.5 ms
    into a fresh array, 3.0 ms into a reused one, on a 2-core VM).  softmaxkit keeps the memory
    of such results once every view of them is gone, and gives it to its next result of the
    same size.  Memory a live array can reach is never reused.

    Parameters
    ----------
    max_bytes : int
        The most bytes held for reuse (default 256 MiB).  Larger results are freed when they
        go.  0 frees everything held and turns the reuse off.

    Returns
    -------
    int
        The previous bound.

    Raises
    ------
    ValueError
        If ``max_bytes`` is negative.

    Examples
    --------
    >>> import softmaxkit as sk
    >>> previous = sk.set_result_cache(0)      # no memory held after results go
    >>> sk.result_cache_info().held_bytes
    0
    >>> sk.set_result_cache(previous)
    0
    """
    global _max_bytes, _held_bytes
    max_bytes = _as_bytes(max_bytes)
    with _lock:
        previous, _max_bytes = _max_bytes, max_bytes
        while _held_bytes > _max_bytes:
            _held_bytes -= _held.pop(0).nbytes
    return previous


def result_cache_info() -> ResultCacheInfo:
    """What the result cache holds and has done (see ``set_result_cache``).

    Returns
    -------
    ResultCacheInfo
        ``(max_bytes, held_bytes, held_blocks, reused, allocated)``.

    Examples
    --------
    >>> import softmaxkit as sk
    >>> sk.result_cache_info().max_bytes >= 0
    True
    """
    with _lock:
        return ResultCacheInfo(_max_bytes, _held_bytes, len(_held), _reused, _allocated)


def _as_bytes(max_bytes: Any) -> int:
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, (int, np.integer)):
        raise TypeError(f"set_result_cache: max_bytes must be an int, got {type(max_bytes).__name__}")
    if max_bytes < 0:
        raise ValueError(f"set_result_cache: max_bytes must be >= 0, got {max_bytes}")
    return int(max_bytes)


def _after_fork_in_child() -> None:
    global _lock, _held, _held_bytes, _reused, _allocated
    _lock = threading.Lock()
    _held, _held_bytes, _reused, _allocated = [], 0, 0, 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
