"""The in-place list path: one kernel over a whole list, shared by threads.

An in-place kernel op (``log1p_`` and the other transcendental ops) on a list of float32/float64
arrays runs as one kernel over a table of the arrays' data addresses (``_kernels.survey``), split
into blocks that several threads claim.  These tests pin what that must not change: results equal
the per-array op bit for bit, an array listed twice (or arrays sharing memory) are updated one
after the other in list order, a call that raises writes nothing, and a forked child can still
run parallel ops.
"""

from __future__ import annotations

import multiprocessing
import sys
import threading
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from softmaxkit import foreach
from softmaxkit.foreach import _kernels

BLOCK = _kernels.BLOCK
BIG = _kernels.PARALLEL_MIN_SIZE  # a list at least this large runs on several threads


def per_array(name, arrays):
    """The reference: the op on one array at a time, in list order, on copies."""
    out = [a.copy() for a in arrays]
    for a in out:
        getattr(foreach, name + "_")([a])
    return out


def positive(rng, size, dtype):
    return (rng.random(size) * 4 + 0.01).astype(dtype)


# ------------------------------------------------------------------------------------------------
# the fast path is taken, and gives the per-array results


def test_survey_reads_the_headers_on_this_interpreter():
    # On 64-bit CPython the object layouts are the ones survey_list reads; if this fails, every
    # list silently takes the slower per-array path.
    assert _kernels._layout_ok()
    arrays = [np.ones(3, np.float32), np.zeros((2, 2)), np.empty(0, np.float32), np.array(1.0)]
    surveyed = _kernels.survey(arrays)
    assert surveyed is not None
    table = surveyed.table
    assert table[_kernels._ADDRESS].tolist() == [a.ctypes.data for a in arrays]
    assert np.diff(table[_kernels._END], prepend=0).tolist() == [3, 4, 0, 1]
    assert table[_kernels._WIDE].tolist() == [0, 1, 0, 1]
    assert (surveyed.first_read_only, surveyed.first_unsuitable, surveyed.overlap) == (-1, -1, False)


@pytest.mark.parametrize(
    "other",
    [1.0, np.arange(3), np.ones(3, np.float16), np.ones(3).astype(">f8"), np.ones(3).view(np.recarray)],
    ids=["float", "int-array", "float16", "byteswapped", "subclass"],
)
def test_survey_declines_anything_but_exact_native_float_arrays(other):
    assert _kernels.survey([np.ones(2), other]) is None


def test_survey_reports_layout_and_read_only():
    ro = np.ones(4)
    ro.flags.writeable = False
    surveyed = _kernels.survey([np.ones(4), np.ones((4, 4))[:, 1], ro])
    assert surveyed is not None
    assert (surveyed.first_unsuitable, surveyed.first_read_only) == (1, 2)


@pytest.mark.parametrize("name", ["log1p", "exp", "tanh", "sigmoid", "log"])
@pytest.mark.parametrize(
    "sizes",
    [[100] * 1000, [1000] * 100, [3 * BLOCK + 5, 7, 0, BLOCK - 1, 2 * BLOCK], [BIG + 1], [1, 2, 3]],
    ids=["10^3x100", "100x1000", "straddling-blocks", "one-big", "tiny"],
)
@pytest.mark.parametrize("dtypes", ["f32", "f64", "mixed"])
def test_list_results_equal_per_array_results(name, sizes, dtypes, rng):
    kinds = {"f32": [np.float32], "f64": [np.float64], "mixed": [np.float32, np.float64]}[dtypes]
    arrays = [positive(rng, n, kinds[k % len(kinds)]) for k, n in enumerate(sizes)]
    want = per_array(name, arrays)
    got = getattr(foreach, name + "_")(arrays)
    assert got is arrays
    for g, w in zip(arrays, want):
        assert g.dtype == w.dtype
        np.testing.assert_array_equal(g, w)


def test_list_of_mixed_shapes_and_0d(rng):
    arrays = [positive(rng, (30, 40), np.float32), np.array(0.5), positive(rng, (BLOCK, 3), np.float64)]
    want = per_array("log1p", arrays)
    foreach.log1p_(arrays)
    for g, w in zip(arrays, want):
        np.testing.assert_array_equal(g, w)


def test_set_num_threads_one_gives_the_same_bits(rng):
    import softmaxkit

    arrays = [positive(rng, 5000, np.float32) for _ in range(40)]
    want = per_array("expm1", arrays)
    before = softmaxkit.get_num_threads()
    softmaxkit.set_num_threads(1)
    try:
        foreach.expm1_(arrays)
    finally:
        softmaxkit.set_num_threads(before)
    for g, w in zip(arrays, want):
        np.testing.assert_array_equal(g, w)


def test_concurrent_callers_share_the_pool(rng):
    lists = [[positive(rng, 2000, np.float32) for _ in range(100)] for _ in range(4)]
    wants = [per_array("log1p", lst) for lst in lists]
    errors = []

    def work(lst):
        try:
            for _ in range(3):
                foreach.log1p_(lst)
                foreach.expm1_(lst)  # the inverse, so the values come back
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(lst,)) for lst in lists]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for lst, want in zip(lists, wants):
        foreach.log1p_(lst)
        for g, w in zip(lst, want):
            np.testing.assert_allclose(g, w, rtol=1e-5)


# ------------------------------------------------------------------------------------------------
# arrays that share memory: updated one after the other, as torch does


def test_big_array_listed_twice_is_updated_twice(rng):
    a = positive(rng, BIG + 3, np.float32)
    b = positive(rng, BIG, np.float32)
    want_a = per_array("log1p", per_array("log1p", [a])[0:1])[0]
    want_b = per_array("log1p", [b])[0]
    foreach.log1p_([a, b, a])
    np.testing.assert_array_equal(a, want_a)
    np.testing.assert_array_equal(b, want_b)


@pytest.mark.parametrize("count", [3, 200], ids=["pairwise-check", "sorted-check"])
def test_overlapping_views_are_updated_in_list_order(count, rng):
    # Views of one buffer in shuffled order (out of address order), two of them overlapping.
    base = positive(rng, count * 1000, np.float64)
    views = [base[k * 1000 : (k + 1) * 1000] for k in range(count)]
    order = rng.permutation(count)
    views = [views[k] for k in order]
    overlapping = base[500:1500]  # covers halves of the first two views
    arrays = views[:1] + [overlapping] + views[1:]
    surveyed = _kernels.survey(arrays)
    assert surveyed is not None and surveyed.overlap
    want = base.copy()
    for v in arrays:  # sequential reference on a copy of the buffer
        lo = (v.ctypes.data - base.ctypes.data) // 8
        seg = want[lo : lo + v.size]
        seg[:] = per_array("log1p", [seg])[0]
    foreach.log1p_(arrays)
    np.testing.assert_array_equal(base, want)


@pytest.mark.parametrize("count", [3, 200])
def test_disjoint_views_out_of_order_are_not_overlap(count, rng):
    base = positive(rng, count * 700, np.float32)
    views = [base[k * 700 : (k + 1) * 700] for k in rng.permutation(count)]
    surveyed = _kernels.survey(views)
    assert surveyed is not None and not surveyed.overlap
    want = per_array("log1p", [base])[0]
    foreach.log1p_(views)
    np.testing.assert_array_equal(base, want)


@given(st.lists(st.tuples(st.integers(0, 60), st.integers(1, 20)), min_size=0, max_size=80))
def test_overlap_detection_matches_brute_force(ranges):
    """survey_list's in-order scan, its pairwise check and ranges_overlap's sort, against all pairs."""
    base = np.zeros(100)
    views = [base[s : s + n] for s, n in ranges]
    brute = any(
        s1 < s2 + n2 and s2 < s1 + n1 for k, (s1, n1) in enumerate(ranges) for (s2, n2) in ranges[k + 1 :]
    )
    surveyed = _kernels.survey(views)
    assert surveyed is not None
    assert surveyed.overlap == brute
    starts = np.array([s for s, _ in ranges], np.int64)
    stops = np.array([s + n for s, n in ranges], np.int64)
    if len(ranges) > 1:
        assert _kernels.ranges_overlap(starts, stops) == brute


# ------------------------------------------------------------------------------------------------
# a call that raises writes nothing


def _read_only(a):
    a = a.copy()
    a.flags.writeable = False
    return a


@pytest.mark.parametrize("name", ["log1p", "sigmoid", "sqrt", "neg", "frac"])
@pytest.mark.parametrize("size", [10, BIG], ids=["small", "parallel"])
def test_read_only_array_in_the_middle_leaves_every_array_untouched(name, size, rng):
    arrays = [positive(rng, size, np.float32) for _ in range(5)]
    arrays[3] = _read_only(arrays[3])
    before = [a.copy() for a in arrays]
    with pytest.raises(ValueError, match=r"arrays\[3\] is read-only"):
        getattr(foreach, name + "_")(arrays)
    for a, b in zip(arrays, before):
        np.testing.assert_array_equal(a, b)


def test_read_only_after_arrays_that_need_the_general_path(rng):
    # float16 and strided arrays take the per-array path; the check still comes first.
    arrays = [positive(rng, 8, np.float16), positive(rng, (6, 4), np.float32)[:, ::2], positive(rng, 8, np.float64)]
    arrays.append(_read_only(arrays[2]))
    before = [a.copy() for a in arrays]
    with pytest.raises(ValueError, match=r"arrays\[3\] is read-only"):
        foreach.log1p_(arrays)
    for a, b in zip(arrays, before):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "call",
    [
        lambda xs: foreach.add_(xs, 1.0),
        lambda xs: foreach.mul_(xs, [2.0] * len(xs)),
        lambda xs: foreach.addcmul_(xs, xs, xs, value=0.5),
        lambda xs: foreach.lerp_(xs, [np.ones_like(x) for x in xs], 0.5),
        lambda xs: foreach.copy_(xs, [np.zeros_like(x) for x in xs]),
        lambda xs: foreach.zero_(xs),
    ],
    ids=["add_", "mul_", "addcmul_", "lerp_", "copy_", "zero_"],
)
def test_read_only_in_the_middle_for_every_in_place_op(call, rng):
    arrays = [positive(rng, 6, np.float64) for _ in range(4)]
    arrays[2] = _read_only(arrays[2])
    before = [a.copy() for a in arrays]
    with pytest.raises(ValueError, match=r"arrays\[2\] is read-only"):
        call(arrays)
    for a, b in zip(arrays, before):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "make_list, op, error, match",
    [
        (lambda: [np.ones(2), np.array([True, False])], foreach.frac_, TypeError, r"arrays\[1\].*bool"),
        (lambda: [np.ones(2), np.array([True, False])], foreach.neg_, TypeError, r"arrays\[1\].*bool"),
        (lambda: [np.ones(2), np.ones(2, np.uint64)], lambda xs: foreach.add_(xs, -1), OverflowError,
         r"arrays\[1\].*uint64"),
        (lambda: [np.arange(3), np.arange(3)], lambda xs: foreach.pow_(xs, [2, -1]), ValueError,
         r"arrays\[1\].*negative integer powers"),
        (lambda: [np.ones(2), np.array([1, "x"], dtype=object)], foreach.log1p_, TypeError, "log1p"),
        (lambda: [np.ones(2), np.array([1, None], dtype=object)], lambda xs: foreach.add_(xs, 1), TypeError, "NoneType"),
    ],
    ids=["frac-bool", "neg-bool", "uint64-minus-one", "int-negative-power", "object-log1p", "object-add"],
)
def test_errors_numpy_would_raise_midway_are_raised_before_writing(make_list, op, error, match):
    """NumPy raises these only when it reaches the array (or the element): checked up front."""
    arrays = make_list()
    before = arrays[0].copy()
    with pytest.raises(error, match=match):
        op(arrays)
    np.testing.assert_array_equal(arrays[0], before)


def test_packed_read_only_buffer_is_checked_before_writing():
    p = foreach.pack([np.ones(2), np.ones(3, np.float32), np.ones(2)])
    p.buffers[np.dtype(np.float32)].flags.writeable = False
    before = [v.copy() for v in p]
    for call in (foreach.log1p_, foreach.zero_, lambda q: foreach.add_(q, 1.0), lambda q: foreach.copy_(q, foreach.clone(q))):
        with pytest.raises(ValueError, match=r"arrays\[1\] is read-only"):
            call(p)
        for v, b in zip(p, before):
            np.testing.assert_array_equal(v, b)


def test_packed_errors_name_the_list_index():
    p = foreach.pack([np.ones(2), np.ones(2), np.arange(3, dtype=np.int64)])
    with pytest.raises(TypeError, match=r"arrays\[2\].*int64"):
        foreach.log1p_(p)
    with pytest.raises(OverflowError, match=r"arrays\[2\].*uint64"):
        foreach.add_(foreach.pack([np.ones(2), np.ones(2), np.ones(2, np.uint64)]), -1)


# ------------------------------------------------------------------------------------------------
# fork


def _child_runs_parallel_op(queue):
    try:
        a = np.full(4 * BLOCK, 1.0, np.float32)
        arrays = [a, np.full(BIG, 3.0, np.float32)]
        foreach.log1p_(arrays)
        pool = _kernels._POOL
        queue.put((
            float(arrays[0][-1]),
            float(arrays[1][0]),
            pool is not None and len(pool._threads) >= 1 and all(t.is_alive() for t in pool._threads),
        ))
    except BaseException as exc:  # pragma: no cover - reported by the parent
        queue.put(repr(exc))


@pytest.mark.skipif(
    sys.platform == "win32" or "fork" not in multiprocessing.get_all_start_methods(),
    reason="fork() is not available on this platform",
)
def test_forked_child_builds_its_own_pool_and_runs_parallel_ops(rng):
    # The parent uses the pool first, so the child inherits a pool whose threads do not exist.
    warm = [positive(rng, BIG, np.float32) for _ in range(2)]
    foreach.log1p_(warm)
    parent_pool = _kernels._POOL
    assert parent_pool is not None and len(parent_pool._threads) >= 1

    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    with warnings.catch_warnings():
        # Python 3.12+ warns that fork() in a multi-threaded process may deadlock: the
        # at-fork handler is what makes it safe here.
        warnings.simplefilter("ignore", DeprecationWarning)
        child = ctx.Process(target=_child_runs_parallel_op, args=(queue,))
        child.start()
    try:
        result = queue.get(timeout=120)
    finally:
        child.join(timeout=60)
        if child.is_alive():  # pragma: no cover - a hang is the failure being tested
            child.kill()
    assert not isinstance(result, str), result
    last, first, threads_alive = result
    assert last == pytest.approx(np.log(2.0), rel=1e-6)
    assert first == pytest.approx(np.log(4.0), rel=1e-6)
    assert threads_alive
    assert child.exitcode == 0
    # and the parent's pool is untouched by the child's handler
    assert _kernels._POOL is parent_pool
