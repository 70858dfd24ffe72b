"""``_kernels._parallel.RangeKernel``: a range function run serially or split among workers.

The column kernels run through it; these tests pin down its contract with a range function that
records what each worker was given.
"""

from __future__ import annotations

import sys

import numba
import numpy as np
import pytest
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from softmaxkit._kernels._parallel import RangeKernel, callbacks_compiled
from softmaxkit._threads import get_num_threads, max_threads, set_num_threads


def _record_ranges(t, first, stop, seen, owner, scale):
    """Mark items ``first:stop`` as done by worker ``t``; ``seen`` counts visits per item."""
    for i in range(first, stop):
        seen[i] += 1
        owner[i] = t if scale is None else t * scale


record_ranges = RangeKernel(_record_ranges)


def _read_sum(t, first, stop, source, total):
    for i in range(first, stop):
        total[0] += source[i]


@pytest.mark.parametrize("n_items", [1, 2, 7, 64, 1001])
@pytest.mark.parametrize("workers", [1, 2, 3, 8])
def test_every_item_once_in_contiguous_ranges(n_items, workers):
    seen = np.zeros(n_items, np.int64)
    owner = np.full(n_items, -1, np.int64)
    record_ranges(n_items, workers, seen, owner, None)
    assert (seen == 1).all()
    # worker t takes items [t * n // w, (t + 1) * n // w): contiguous, in worker order
    expected = np.repeat(np.arange(workers), np.diff([t * n_items // workers for t in range(workers + 1)]))
    np.testing.assert_array_equal(owner, expected)


def test_argument_types_get_their_own_callbacks():
    n = 10
    seen = np.zeros(n, np.int64)
    owner = np.zeros(n, np.int64)
    record_ranges(n, 2, seen, owner, None)
    record_ranges(n, 2, seen, owner, 10)  # an int where None was: another callback
    np.testing.assert_array_equal(owner, np.repeat([0, 10], 5))
    owner32 = np.zeros(n, np.int32)
    record_ranges(n, 2, seen, owner32, 3)  # another array dtype: another callback
    np.testing.assert_array_equal(owner32, np.repeat([0, 3], 5))
    assert (seen == 3).all()
    assert len(record_ranges._callbacks) >= 3


def test_a_known_argument_type_compiles_nothing_more():
    seen = np.zeros(4, np.int64)
    owner = np.zeros(4, np.int64)
    record_ranges(4, 2, seen, owner, None)
    before = callbacks_compiled(), len(record_ranges._callbacks)
    record_ranges(4, 1, seen, owner, None)
    record_ranges(4, 2, np.zeros(4, np.int64), owner, None)
    assert (callbacks_compiled(), len(record_ranges._callbacks)) == before


def test_read_only_arrays_are_a_different_type():
    # numba types a read-only array apart from a writable one; a callback compiled for one
    # must not be handed the other (the fingerprint tells them apart)
    seen = np.zeros(3, np.int64)
    owner = np.zeros(3, np.int64)
    record_ranges(3, 1, seen, owner, None)
    n_callbacks = len(record_ranges._callbacks)
    read = RangeKernel(_read_sum)
    source = np.arange(5.0)
    total = np.zeros(1)
    read(5, 1, source, total)
    source.flags.writeable = False
    read(5, 1, source, total)
    assert total[0] == 20.0
    assert len(read._callbacks) == 2
    assert len(record_ranges._callbacks) == n_callbacks


def _record_threads(t, first, stop, thread):
    for i in range(first, stop):
        thread[i] = numba.get_thread_id()


record_threads = RangeKernel(_record_threads)


@pytest.mark.parametrize("threads", sorted({1, 2, max_threads()} & set(range(1, max_threads() + 1))))
@pytest.mark.parametrize("workers", [2, 3, 8])
def test_workers_run_on_at_most_the_callers_thread_count(threads, workers):
    # The driver hands the threading layer min(workers, numba's thread count for this thread):
    # with set_num_threads(1) every worker runs on the calling thread (id 0); with more, each
    # of the first workers gets its own thread (a static schedule: one each while they last).
    before = get_num_threads()
    set_num_threads(threads)
    try:
        thread = np.full(workers * 5, -1, np.int64)
        record_threads(thread.size, workers, thread)
    finally:
        set_num_threads(before)
    used = min(workers, threads)
    assert set(thread.tolist()) == set(range(used))
    per_worker = thread.reshape(workers, 5)
    assert (per_worker == per_worker[:, :1]).all()  # a worker's range runs on one thread


def test_parallel_driver_compiles_no_parfor():
    # The driver calls the threading layer itself: numba's parfor machinery (a gufunc and two
    # wrappers around the loop body, about 1 s of a cold first call) is not involved.
    from softmaxkit._kernels._parallel import _run_ranges

    record_ranges(6, 2, np.zeros(6, np.int64), np.zeros(6, np.int64), None)
    assert _run_ranges.signatures
    assert not _run_ranges.targetoptions.get("parallel")


@intrinsic
def _counted(typingctx, array):
    """Whether ``array`` carries a reference count (a non-null meminfo)."""
    if not isinstance(array, types.Array):
        return None

    def codegen(context, builder, signature, args):
        view = context.make_array(signature.args[0])(context, builder, value=args[0])
        return cgutils.is_not_null(builder, view.meminfo)

    return types.boolean(array), codegen


def _record_counted(t, first, stop, data, counted):
    for i in range(first, stop):
        counted[i] = _counted(data) or _counted(counted)


record_counted = RangeKernel(_record_counted)


@pytest.mark.parametrize("workers", [1, 2])
def test_range_functions_get_arrays_without_reference_counts(workers):
    # Views a worker takes would otherwise each update one count shared by all workers (an
    # atomic on a line the workers pass back and forth: column kernels 1.14-1.42x slower).
    counted = np.ones(4, np.bool_)
    data = np.zeros(3)
    record_counted(4, workers, data, counted)
    assert not counted.any()
    before = sys.getrefcount(data)
    record_counted(4, workers, data, counted)
    assert sys.getrefcount(data) == before  # the caller's references are untouched
