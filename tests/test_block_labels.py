"""numba's block labels stay short however much a process compiles (``_fastmath._LabelsFromZero``).

numba numbers IR blocks from one process-wide counter, and each inline of a callee that itself
inlined callees doubles it.  Before the counter was set back for each outermost compile, the test
suite compiled enough for a label to pass LLVM's limit of 1024 characters, and every later compile
in the process failed ("LLVM IR parsing error ... name is too long").  These tests compile nested
inlines of their own (cheap, and new signatures each run) and check the counter, and that a
compile nested in another never sets it back (the caller's IR still holds labels from it).
"""

from __future__ import annotations

import numba
import numpy as np
import pytest
from numba.core import event, ir_utils

from softmaxkit._kernels import _fastmath


@numba.njit(inline="always")
def _leaf(a):
    return a + 1 if a > 0 else a - 1


@numba.njit(inline="always")
def _middle(a):  # inlines _leaf: its own labels come out near the counter
    return _leaf(a) * 2 + _leaf(a - 3)


def _outer_source(a):  # each call site of _middle doubles the counter when nothing sets it back
    return _middle(a) + _middle(a + 1) + _middle(a + 2) + _middle(a + 3)


@numba.njit  # not inlined: typing _caller compiles it, a compile nested in _caller's
def _nested_callee(a):
    return _middle(a) - 1


@numba.njit
def _caller(a):
    return _middle(a) + _nested_callee(a)


def _counter() -> int:
    return ir_utils._the_max_label._value


def test_numba_still_has_the_counter_we_set_back():
    # If numba renames it, _LabelsFromZero does nothing: this says so before labels overflow.
    assert isinstance(_counter(), int)
    assert _fastmath.LABELS_FROM_ZERO in event._registered["numba:compile"]


def test_labels_do_not_grow_across_compiles():
    # Ten outermost compiles of a function with four nested inlines, each a new signature.
    # Measured with numba 0.68: with the reset every compile ends with the counter at 2250; with
    # the listener unregistered each compile multiplies it by 16 (2 per nested inline), 2250 after
    # the first and 1.6e14 after the tenth.
    outer = numba.njit(_outer_source)
    after = []
    for dtype in (np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64,
                  np.float32, np.float64):
        value = dtype(5)
        assert outer(value) == _outer_source(value)
        after.append(_counter())
    assert max(after) < 100_000, after
    assert after[-1] <= 4 * after[0], after


def test_a_nested_compile_keeps_counting():
    seen = []

    class Spy(event.Listener):
        def on_start(self, event_):
            seen.append((event_.data["dispatcher"].py_func.__name__, _fastmath.LABELS_FROM_ZERO.depth, _counter()))

        def on_end(self, event_):
            pass

    spy = Spy()
    event.register("numba:compile", spy)  # after ours: it sees the counter as ours left it
    try:
        assert _caller(np.int16(7)) == _middle(np.int16(7)) * 2 - 1
    finally:
        event.unregister("numba:compile", spy)
    names = [name for name, _, _ in seen]
    assert names[0] == "_caller" and "_nested_callee" in names, seen
    outer_depth = seen[0][1]
    _, depth, counter = seen[names.index("_nested_callee")]
    assert depth == outer_depth + 1
    assert counter > 0  # _caller's inline of _middle had advanced it, and the nested start kept it


def test_outermost_depth_returns_to_zero_after_a_failed_compile():
    @numba.njit
    def broken(a):
        return _middle(a).no_such_attribute

    with pytest.raises(numba.TypingError):
        broken(np.float32(1))
    assert _fastmath.LABELS_FROM_ZERO.depth == 0
