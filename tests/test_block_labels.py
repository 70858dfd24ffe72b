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

from softmaxkit._kernels import _fastmath, _parallel


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
    for kind in ("numba:compiler_lock", "numba:compile"):
        assert _fastmath.LABELS_FROM_ZERO in event._registered[kind]


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


class _Spy(event.Listener):
    """Records, as each dispatcher's compile starts, its function, the compiler lock's depth in
    this thread and the label counter (registered after ours: as ours left it)."""

    def __init__(self):
        self.seen = []

    def on_start(self, event_):
        name = event_.data["dispatcher"].py_func.__name__
        self.seen.append((name, _fastmath.LABELS_FROM_ZERO.depth(), _counter()))

    def on_end(self, event_):
        pass

    def __enter__(self):
        event.register("numba:compile", self)
        return self

    def __exit__(self, *exc):
        event.unregister("numba:compile", self)

    def start_of(self, name):
        return next(entry for entry in self.seen if entry[0] == name)


def test_an_outermost_compile_starts_from_zero():
    # Run up the counter with a compile, then start another: it starts at 0.
    numba.njit(_outer_source)(np.int32(3))
    assert _counter() > 0

    def fresh(a):
        return _middle(a)

    with _Spy() as spy:
        assert numba.njit(fresh)(np.int32(3)) == _middle(np.int32(3))
    assert spy.start_of("fresh")[1:] == (1, 0)


def test_a_compile_nested_in_typing_keeps_counting():
    with _Spy() as spy:
        assert _caller(np.int16(7)) == _middle(np.int16(7)) * 2 - 1
    assert spy.seen[0] == ("_caller", 1, 0), spy.seen
    _, depth, counter = spy.start_of("_nested_callee")
    assert depth >= 2
    assert counter > 0  # _caller's inline of _middle had advanced it, and it was not set back


def test_a_compile_nested_in_a_cfunc_keeps_counting():
    # Our parallel range functions are compiled as numba.cfunc callbacks: numba broadcasts no
    # "numba:compile" for them, but they hold the compiler lock while their callees compile.
    @numba.njit
    def callee_of_a_cfunc(a):
        return _middle(a) + 1

    def callback(a):
        return _middle(a) + callee_of_a_cfunc(a)

    with _Spy() as spy:
        compiled = numba.cfunc("int64(int64)")(callback)
    assert compiled.ctypes(5) == callback(5)
    _, depth, counter = spy.start_of("callee_of_a_cfunc")
    assert depth >= 2
    assert counter > 0


@numba.njit
def _callee_of_a_range(a):
    return _middle(a) - 2


def _range_with_inlines(t, first, stop, out):
    for i in range(first, stop):
        out[i] = _middle(i) + _callee_of_a_range(i)


def test_a_range_function_compile_starts_from_zero(monkeypatch):
    # _parallel compiles range functions as callbacks, which numba broadcasts no compile for: it
    # sets the counter back itself.  (Compiled, never loaded: numba's on-disk cache is left out.)
    monkeypatch.setattr(_parallel, "cached", lambda callback: callback)
    numba.njit(_outer_source)(np.int64(3))
    run_up = _counter()
    out = np.zeros(6, np.int64)
    with _Spy() as spy:
        _parallel.RangeKernel(_range_with_inlines)(6, 2, out)
    np.testing.assert_array_equal(out, [_middle(i) * 2 - 2 for i in range(6)])
    _, depth, counter = spy.start_of("_callee_of_a_range")
    assert depth >= 3  # _parallel's hold, the callback's compile, the callee's
    assert 0 < counter < run_up  # from 0, past the callback's inline of _middle


def test_the_lock_depth_returns_to_zero_after_a_failed_compile():
    @numba.njit
    def broken(a):
        return _middle(a).no_such_attribute

    with pytest.raises(numba.TypingError):
        broken(np.float32(1))
    assert _fastmath.LABELS_FROM_ZERO.depth() == 0
