"""``_kernels._parallel.RangeKernel``: a range function run serially or split among workers.

The column kernels run through it; these tests pin down its contract with a range function that
records what each worker was given.
"""

from __future__ import annotations

import numpy as np
import pytest

from softmaxkit._kernels._parallel import RangeKernel, callbacks_compiled


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
