"""Masked rows' max, a vector at a time (``_kernels.softmax._masked_max_ignoring_nan``, reading
the mask 16 or 8 entries at once with ``_vector.load_mask``).

It must be the max over the unmasked entries that are not NaN (-inf where there are none) for
any row length (whole vectors and a partial last one), any alignment of the row and its mask,
either dtype and sign; masked entries, NaN or infinite, must not count; and through the public
functions a masked NaN must change nothing while an unmasked one makes the row NaN.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from numba import njit

import softmaxkit as sk
from naive import assert_matches, logsumexp_ref, softmax_ref, ulp_error
from softmaxkit._kernels.softmax import _masked_max_ignoring_nan


@njit
def _row_maxes(x, mask, sign):
    out = np.empty(x.shape[0], x.dtype)
    for r in range(x.shape[0]):
        out[r] = _masked_max_ignoring_nan(x[r], mask[r], sign)
    return out


def _expected_maxes(x, mask, sign):
    v = x if sign is None else x * sign
    kept = np.where(mask & ~np.isnan(v), v, -np.inf)
    return kept.max(axis=1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 7, 8, 9, 15, 16, 17, 31, 33, 100, 1000])
@pytest.mark.parametrize("negate", [False, True])
def test_the_masked_max_is_the_max_of_the_unmasked_entries(rng, dtype, n, negate):
    x = (rng.standard_normal((40, n)) * 10).astype(dtype)
    mask = rng.random((40, n)) < 0.6
    mask[0] = False  # nothing unmasked: -inf
    mask[1] = True
    x[2, ::3] = np.nan  # NaN, masked and not: skipped either way
    x[3, rng.integers(n)] = np.inf  # an infinity, masked or not
    x[4, rng.integers(n)] = -np.inf
    x[5] = np.nan  # every entry NaN: -inf
    mask[6] = False
    mask[6, -1] = True  # only the last (in the partial vector when n % lanes)
    sign = dtype(-1.0) if negate else None
    np.testing.assert_array_equal(_row_maxes(x, mask, sign), _expected_maxes(x, mask, sign))


@pytest.mark.parametrize("offset", range(0, 17, 3))
def test_rows_and_masks_at_any_alignment(rng, offset):
    """Rows of 37 (every row's start at another offset in its line), views starting ``offset``
    entries into their buffers."""
    x = rng.standard_normal(offset + 20 * 37).astype(np.float32)[offset:].reshape(20, 37)
    mask = (rng.random(offset + 20 * 37) < 0.5)[offset:].reshape(20, 37)
    np.testing.assert_array_equal(_row_maxes(x, mask, None), _expected_maxes(x, mask, None))


FUNCTIONS = {"softmax": sk.softmax, "log_softmax": sk.log_softmax, "softmin": sk.softmin}


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [10, 16, 100, 1000, 5000])
def test_masked_entries_count_for_nothing(rng, name, dtype, n):
    x = rng.standard_normal((30, n)).astype(dtype) * 5
    mask = rng.random((30, n)) < 0.7
    hidden = x.copy()
    hidden[~mask] = rng.choice([np.nan, np.inf, -np.inf, 1e30], size=int((~mask).sum()))
    hidden[7, 3] = np.nan  # an unmasked NaN: its row is NaN
    mask[7, 3] = True
    with np.errstate(invalid="ignore"):
        result = FUNCTIONS[name](hidden, where=mask)
    clean = np.where(mask, x, 0.0)
    clean[7, 3] = np.nan
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(result, FUNCTIONS[name](clean, where=mask))
    ordinary = np.arange(30) != 7
    log = name == "log_softmax"
    expected = softmax_ref(clean[ordinary], where=mask[ordinary], log=log, negate=name == "softmin")
    assert_matches(result[ordinary], expected, log=log)
    assert np.isnan(result[7][mask[7]]).all()


from softmaxkit import _api, _numpy_backend as backend  # noqa: E402
from naive import called_in_mode  # noqa: E402

MODES_OF = {"softmax": backend.MODE_SOFTMAX, "log_softmax": backend.MODE_LOG_SOFTMAX, "softmin": backend.MODE_SOFTMAX}


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(10,), (8, 10), (3, 4, 33), (64, 100), (5, 2000)], ids=str)
@pytest.mark.parametrize("mode", ["fresh", "out", "in place"])
def test_a_plain_mask_takes_the_fast_path_to_the_same_bits(monkeypatch, rng, name, dtype, shape, mode):
    """A C-contiguous boolean mask of the input's shape over the last axis goes straight to the
    row kernels; given as a list it takes the general path, which copies it: the same bits."""
    x0 = (rng.standard_normal(shape) * 4).astype(dtype)
    mask = rng.random(shape) < 0.6
    options = {"temperature": 0.7}
    general = called_in_mode(FUNCTIONS[name], x0, mode, where=mask.tolist(), **options)

    def no_general_path(*args, **kwargs):
        raise AssertionError("the general path")

    monkeypatch.setattr(backend, "softmax_family", no_general_path)
    fast = called_in_mode(FUNCTIONS[name], x0, mode, where=mask, **options)
    np.testing.assert_array_equal(fast, general)


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "shape, axis", [((16, 64), 0), ((2, 64, 16, 16), 1), ((3, 40, 33), 1), ((5, 7, 1), 1), ((300, 200), 0)], ids=str
)
@pytest.mark.parametrize("mode", ["fresh", "out", "in place"])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("fill", [None, False], ids=["filled where chosen", "masked blocks"])
def test_a_plain_mask_over_another_axis_takes_the_fast_path_to_the_same_bits(
    monkeypatch, kernel_calls, rng, name, dtype, shape, axis, mode, threads, fill
):
    """Over another axis than the last, a plain mask goes to ``softmax_other_axis``: filled with
    -inf and taken by the unmasked kernels in place (``_masked_columns_by_filling``), or planned
    apart from the unmasked layout (whose tiles take no mask) for the masked block kernels.  Either
    way the general path's bits, columns with an unmasked NaN included, a masked and an unmasked
    call of one layout in turn each keeping its own semantics."""
    from softmaxkit._threads import max_threads

    monkeypatch.setattr(backend, "MASKED_COLUMNS_FILL", fill)
    x0 = (rng.standard_normal(shape) * 4).astype(dtype)
    mask = rng.random(shape) < 0.6
    x0[(0,) * len(shape)] = np.inf  # a column whose max is +inf (masked or not)
    x0[(0,) * (len(shape) - 1) + (-1,)] = np.nan  # a column with a NaN, masked or not
    mask[(0,) * (len(shape) - 1) + (-1,)] = True
    x0[(-1,) * len(shape)] = np.nan  # and one masked
    options = {"temperature": 0.7, "axis": axis}
    before = sk.get_num_threads()
    sk.set_num_threads(min(threads, max_threads()))
    calls = kernel_calls("fill_masked_rows")
    try:
        filled = backend._masked_columns_filled(x0, axis, MODES_OF[name], mode == "in place")
        decided_by_a_plan = fill is None and backend.use_parallel(x0.size)
        general = called_in_mode(FUNCTIONS[name], x0, mode, where=mask.tolist(), **options)
        unmasked = called_in_mode(FUNCTIONS[name], x0, mode, **options)

        def no_general_path(*args, **kwargs):
            raise AssertionError("the general path")

        monkeypatch.setattr(backend, "softmax_family", no_general_path)
        for _ in range(2):  # the plans made, then used
            np.testing.assert_array_equal(called_in_mode(FUNCTIONS[name], x0, mode, where=mask, **options), general)
            np.testing.assert_array_equal(called_in_mode(FUNCTIONS[name], x0, mode, **options), unmasked)
    finally:
        sk.set_num_threads(before)
    assert not np.array_equal(general, unmasked, equal_nan=True)
    assert len(calls) == (2 if filled else 0)
    # masked calls are planned apart, and a filled call only where its plan decided it
    masked_plans = {key[-1] for key in backend._column_plans} == {False, True}
    assert masked_plans == (not filled or (decided_by_a_plan and backend._fills_masked_columns(
        math.prod(shape[axis + 1 :]), x0.itemsize, MODES_OF[name])))



@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, axis", [((16, 64), 0), ((2, 40, 24), 1), ((3, 30, 2, 16), 1)], ids=str)
def test_filled_masked_columns_keep_the_masked_semantics(rng, name, dtype, shape, axis):
    """Masked columns taken by filling: a fully masked column, one of -inf, two +inf entries, an
    unmasked NaN beside masked entries, a masked NaN and +inf, against the float64 reference."""
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    mask = rng.random(shape) < 0.7
    x3 = x.reshape(-1, shape[axis], x.size // (shape[axis] * math.prod(shape[:axis])))  # views: the
    m3 = mask.reshape(x3.shape)  # columns of x's own layout
    m3[0, :, 1] = False  # nothing unmasked
    x3[0, :, 2] = -np.inf
    x3[0, [1, 4], 3], m3[0, [1, 4], 3] = np.inf, True  # two +inf share the probability
    x3[0, 2, 5], m3[0, 2, 5] = np.nan, True  # an unmasked NaN: NaN where unmasked, 0 where masked
    m3[0, 3, 5] = False
    x3[0, 0, 6], m3[0, 0, 6] = np.nan, False  # masked NaN and +inf: nothing
    x3[0, 1, 6], m3[0, 1, 6] = np.inf, False
    assert backend._fills_masked_columns(x3.shape[2], x.itemsize, MODES_OF[name]) or name != "log_softmax"
    log = name == "log_softmax"
    with np.errstate(invalid="ignore"):
        result = FUNCTIONS[name](x, axis=axis, where=mask)
        expected = softmax_ref(x, axis, where=mask, log=log, negate=name == "softmin")
    assert_matches(result, expected, log=log)
    r3 = result.reshape(x3.shape)
    assert (r3[0, :, 1] == (-np.inf if log else 0.0)).all()
    assert np.isnan(r3[0, :, 5][m3[0, :, 5]]).all() and (r3[0, :, 5][~m3[0, :, 5]] == (-np.inf if log else 0.0)).all()


def test_which_masked_columns_are_filled():
    fills = backend._fills_masked_columns
    assert fills(256, 4, backend.MODE_LOG_SOFTMAX) and fills(4096, 8, backend.MODE_LOG_SOFTMAX)
    assert fills(64, 4, backend.MODE_SOFTMAX) and fills(200, 4, backend.MODE_SOFTMAX)
    assert not fills(256, 4, backend.MODE_SOFTMAX)  # rows 1 KiB apart: the masked blocks
    assert not fills(200, 8, backend.MODE_SOFTMAX)
    assert not fills(15, 4, backend.MODE_LOG_SOFTMAX) and not fills(1, 4, backend.MODE_LOG_SOFTMAX)


@pytest.mark.parametrize(
    "shape, axis, threads, forced, filled",
    [
        ((4, 21, 64, 64), 1, 2, None, False),  # the masked blocks share it
        ((1024, 1024), 0, 2, None, False),
        ((4, 21, 64, 64), 1, 1, None, True),  # one thread: filled
        ((4, 21, 64, 64), 1, 2, True, True),  # forced
        ((4096, 64), 0, 2, None, True),  # one block: one thread would take it
        ((16, 64), 0, 2, None, True),  # serial
    ],
    ids=str,
)
def test_masked_columns_shared_among_threads_are_not_filled(monkeypatch, shape, axis, threads, forced, filled):
    """log_softmax's masked columns are filled (one thread's pass), unless the masked block
    kernels would share the layout among threads (``_masked_columns_filled``)."""
    monkeypatch.setattr(backend, "num_threads", lambda: threads)
    monkeypatch.setattr(backend, "MASKED_COLUMNS_FILL", forced)
    x = np.zeros(shape, np.float32)
    assert backend._masked_columns_filled(x, axis, backend.MODE_LOG_SOFTMAX, False) is filled
    assert backend._fills_masked_columns(math.prod(shape[axis + 1 :]), 4, backend.MODE_LOG_SOFTMAX)


def test_a_plain_mask_over_narrow_columns_takes_the_general_path(rng):
    """Columns narrower than COLUMN_MIN_WIDTH are moved to the end with a mask too."""
    x = rng.standard_normal((3000, 3)).astype(np.float32)
    mask = rng.random((3000, 3)) < 0.6
    np.testing.assert_array_equal(sk.softmax(x, axis=0, where=mask), sk.softmax(x, axis=0, where=mask.tolist()))
    assert backend._column_plans[((3000, 3), 0, 4, backend.MODE_SOFTMAX, False, True)] == (None, None, None, None)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(10,), (8, 10), (3, 4, 33), (64, 100)], ids=str)
@pytest.mark.parametrize("axis", [-1, None])
@pytest.mark.parametrize("keepdims", [False, True])
def test_logsumexp_with_a_plain_mask_takes_the_fast_path_to_the_same_bits(monkeypatch, rng, dtype, shape, axis, keepdims):
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    mask = rng.random(shape) < 0.6
    mask.reshape(-1)[:3] = False
    general = sk.logsumexp(x, axis=axis, where=mask.tolist(), keepdims=keepdims)

    def no_general_path(*args, **kwargs):
        raise AssertionError("the general path")

    monkeypatch.setattr(backend, "logsumexp", no_general_path)
    fast = sk.logsumexp(x, axis=axis, where=mask, keepdims=keepdims)
    np.testing.assert_array_equal(fast, general)
    out = np.full(np.shape(general), 7.0, dtype)
    assert sk.logsumexp(x, axis=axis, where=mask, keepdims=keepdims, out=out) is out
    np.testing.assert_array_equal(out, general)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "shape, axis, lies",
    [((16, 64), 0, True), ((2, 64, 16, 16), 1, True), ((3, 40, 33), 1, True), ((5, 7, 1), 1, True),
     ((300, 200), 0, True), ((3000, 3), 0, False)],
    ids=str,
)
@pytest.mark.parametrize("keepdims", [False, True])
def test_logsumexp_with_a_plain_mask_over_another_axis(monkeypatch, rng, dtype, shape, axis, lies, keepdims):
    """Over another axis, a plain mask goes to ``logsumexp_other_axis`` and the column kernels
    read it in x's layout (narrow columns, which the general path moves to the end, excepted):
    the general path's bits, into a new result and into ``out``."""
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    mask = rng.random(shape) < 0.6
    mask[(slice(None),) * axis + (slice(None), 0)] = False  # a slice with nothing unmasked: -inf
    general = sk.logsumexp(x, axis=axis, where=mask.tolist(), keepdims=keepdims)
    assert np.isneginf(general).any()
    if lies:

        def no_general_path(*args, **kwargs):
            raise AssertionError("the general path")

        monkeypatch.setattr(backend, "logsumexp", no_general_path)
    np.testing.assert_array_equal(sk.logsumexp(x, axis=axis, where=mask, keepdims=keepdims), general)
    out = np.full(np.shape(general), 7.0, dtype)
    assert sk.logsumexp(x, axis=axis, where=mask, keepdims=keepdims, out=out) is out
    np.testing.assert_array_equal(out, general)
    np.testing.assert_array_equal(general, sk.logsumexp(np.where(mask, x, -np.inf), axis=axis, keepdims=keepdims))


def test_which_masks_are_plain():
    x = np.zeros((4, 6), np.float32)
    mask = np.ones((4, 6), bool)
    assert _api._is_plain_mask(mask, x, None)
    assert not _api._is_plain_mask(mask.tolist(), x, None)  # a list: the general path checks it
    assert not _api._is_plain_mask(np.asfortranarray(mask), x, None)
    assert not _api._is_plain_mask(mask[:, :3], x[:, :3], None)  # not contiguous
    assert not _api._is_plain_mask(mask[0], x, None)  # broadcast: the general path
    assert not _api._is_plain_mask(mask.astype(np.uint8), x, None)
    buffer = np.zeros(x.nbytes, np.uint8)
    out = buffer.view(np.float32).reshape(x.shape)
    overlapping = buffer[: x.size].view(bool).reshape(x.shape)
    assert not _api._is_plain_mask(overlapping, x, out)  # read while out is written
    assert _api._is_plain_mask(overlapping, x, None)


def test_which_masks_broadcast_over_rows():
    """Over the last axis (``rows=True``) a C-contiguous boolean mask that broadcasts to ``x``
    over the leading axes only is taken as it is; one that broadcasts along the rows is not."""
    x = np.zeros((2, 3, 4, 6), np.float32)
    for shape in [(6,), (1, 6), (4, 6), (2, 1, 1, 6), (2, 3, 4, 6), (1, 3, 1, 6), (1, 1, 1, 1, 6)[1:]]:
        mask = np.ones(shape, bool)
        assert _api._is_plain_mask(mask, x, None, rows=True), shape
        assert _api._is_plain_mask(mask, x, None) == (shape == x.shape), shape  # another axis: its own shape
    for shape in [(2, 3, 4, 1), (1,), (3, 6), (2, 3, 1, 6, 1)[:-1] + (2,), (1, 2, 3, 4, 6), ()]:
        assert not _api._is_plain_mask(np.ones(shape, bool), x, None, rows=True), shape
    assert not _api._is_plain_mask(np.ones((4, 12), bool)[:, ::2], x, None, rows=True)  # not contiguous
    np.testing.assert_array_equal(
        backend.row_mask_of((2, 1, 4, 6), x.shape), np.broadcast_to(np.arange(8).reshape(2, 1, 4), (2, 3, 4)).ravel()
    )
    assert not backend.row_mask_of((4, 6), x.shape).flags.writeable  # kept for later calls


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "shape, mask_shape",
    [
        ((8, 4, 16, 32), (8, 1, 1, 32)),  # a padding mask: packed rows, each its own mask row
        ((8, 4, 16, 32), (16, 32)),  # a causal mask: runs of 16 mask rows
        ((3, 5, 40, 100), (3, 1, 40, 100)),  # short rows (log_softmax: paired)
        ((2, 70, 300), (70, 300)),  # short rows, chunks of 13 float32 rows across the runs
        ((4, 5000, 7), (5000, 7)),  # packed rows, two threads when there are two
        ((5, 600), (600,)),  # softmax's general kernels: the mask's rows taken for every row
        ((12, 10), (1, 10)),  # few rows: the general kernels
        ((2, 8, 64, 16), (2, 1, 1, 16)),  # chunks of rows that all take one mask row: filled against a tile
        ((2, 8, 16, 200), (2, 1, 1, 200)),  # ... rows not shorter than _TILED_ROWS_BELOW: row by row
        ((3000, 10), (10,)),  # a class mask over packed rows: one tile for every chunk
        ((4, 50, 2000), (4, 1, 2000)),  # long rows: the general kernels, two threads when there are two
        ((3, 70000), (70000,)),  # few rows longer than SPLIT_MIN_LENGTH: split into chunks (on one thread not)
    ],
    ids=str,
)
@pytest.mark.parametrize("mode", ["fresh", "out", "in place"])
def test_a_mask_broadcast_over_rows_takes_the_fast_path_to_the_same_bits(
    monkeypatch, rng, name, dtype, shape, mask_shape, mode
):
    """A mask broadcast over the leading axes (attention's padding and causal masks) is read
    where it lies (``row_mask_of``): bit for bit what the same mask broadcast to ``x``'s shape
    gives, with NaN, +inf and fully masked rows among the rows, and never through the general
    path."""
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    mask = rng.random(mask_shape) < 0.7
    flat = x.reshape(-1, shape[-1])
    flat[::7, 0] = np.nan  # unmasked in some rows' masks, masked in others'
    flat[1::11, -1] = np.inf
    if mask.size > shape[-1]:
        mask.reshape(-1, shape[-1])[-1, :] = False  # a mask row with nothing unmasked
    full = np.ascontiguousarray(np.broadcast_to(mask, shape))
    with np.errstate(invalid="ignore"):
        expected = called_in_mode(FUNCTIONS[name], x, mode, where=full)

        def general(*args, **kwargs):
            raise AssertionError("a mask broadcast over rows took the general path")

        monkeypatch.setattr(backend, "softmax_family", general)
        got = called_in_mode(FUNCTIONS[name], x, mode, where=mask)
    np.testing.assert_array_equal(got, expected)
    # (the rows with an unmasked NaN are NaN where unmasked, and only those)
    nan_rows = (np.isnan(x) & full).any(axis=-1, keepdims=True)
    np.testing.assert_array_equal(np.isnan(got), nan_rows & full)
    assert ((got == 0) if name != "log_softmax" else (got == -np.inf))[~full].all()


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("threads", [1, 2])
def test_the_general_row_kernels_read_a_broadcast_mask_where_it_lies(kernel_calls, rng, name, threads):
    """Long rows take the general row kernels, which read a broadcast mask's own rows through
    ``mask_rows`` (a class mask of 2000 entries for 300 rows: one mask row, not a copy of it for
    every row), to the bits of the full mask."""
    from softmaxkit._threads import max_threads

    x = (rng.standard_normal((300, 2000)) * 4).astype(np.float32)
    mask = rng.random(2000) < 0.7
    threads = min(threads, max_threads())
    calls = kernel_calls(f"{name}_rows_serial", f"{name}_rows")
    before = sk.get_num_threads()
    sk.set_num_threads(threads)
    try:
        expected = FUNCTIONS[name](x, where=np.ascontiguousarray(np.broadcast_to(mask, x.shape)))
        calls.clear()
        got = FUNCTIONS[name](x, where=mask)
    finally:
        sk.set_num_threads(before)
    np.testing.assert_array_equal(got, expected)
    (args,) = calls
    mask2, mask_rows = args[2:4] if threads == 1 else args[4:6]  # (the parallel kernels: n_rows, workers first)
    assert mask2.shape == (1, 2000) and np.shares_memory(mask2, mask)
    np.testing.assert_array_equal(mask_rows, np.zeros(300))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "shape, mask_shape",
    [
        ((8, 4, 16, 32), (8, 1, 1, 32)),  # packed rows, each its own mask row
        ((8, 4, 16, 32), (16, 32)),  # a causal mask
        ((3, 5, 40, 100), (3, 1, 40, 100)),  # short rows
        ((2, 8, 64, 16), (2, 1, 1, 16)),  # chunks of rows that all take one mask row: filled against a tile
        ((2, 8, 16, 200), (2, 1, 1, 200)),  # ... rows not shorter than _TILED_ROWS_BELOW: row by row
        ((3000, 10), (10,)),  # a class mask over packed rows: one tile for every chunk
        ((300, 2000), (2000,)),  # long rows: the general kernels, two threads when there are two
        ((12, 10), (1, 10)),  # few rows: the general kernels
        ((3, 70000), (70000,)),  # split into chunks
    ],
    ids=str,
)
@pytest.mark.parametrize("keepdims", [False, True])
def test_logsumexp_with_a_mask_broadcast_over_rows_takes_the_fast_path_to_the_same_bits(
    monkeypatch, rng, dtype, shape, mask_shape, keepdims
):
    """logsumexp over the last axis takes a mask broadcast over the leading axes as softmax
    does: the bits of the same mask broadcast to ``x``'s shape (NaN, +inf and fully masked rows
    among the rows), into a new result and into ``out``, never through the general path."""
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    mask = rng.random(mask_shape) < 0.7
    flat = x.reshape(-1, shape[-1])
    flat[::7, 0] = np.nan
    flat[1::11, -1] = np.inf
    if mask.size > shape[-1]:
        mask.reshape(-1, shape[-1])[-1, :] = False  # a mask row with nothing unmasked: -inf
    full = np.ascontiguousarray(np.broadcast_to(mask, shape))
    expected = sk.logsumexp(x, axis=-1, where=full, keepdims=keepdims)
    np.testing.assert_array_equal(expected, sk.logsumexp(np.where(full, x, -np.inf), axis=-1, keepdims=keepdims))

    def general(*args, **kwargs):
        raise AssertionError("a mask broadcast over rows took the general path")

    monkeypatch.setattr(backend, "logsumexp", general)
    np.testing.assert_array_equal(sk.logsumexp(x, axis=-1, where=mask, keepdims=keepdims), expected)
    out = np.full(expected.shape, 7.0, dtype)
    assert sk.logsumexp(x, axis=-1, where=mask, keepdims=keepdims, out=out) is out
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("n", [5, 20, 100, 1000])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_masked_entries_at_the_max_are_not_counted(rng, n, dtype):
    """A peaked row (the rest 30 below its max: log_softmax's and logsumexp's sums then count the
    entries at the max) whose masked entries tie with the unmasked max, or exceed it."""
    x = np.full((6, n), -30.0, dtype)
    x[:, 0] = 0.0
    mask = np.ones((6, n), bool)
    mask[:, 1::2] = False
    x[:, 1::2] = 0.0  # ties, masked
    x[3:, 1::4] = 50.0  # above the max, masked
    expected_log = softmax_ref(x, where=mask, log=True)
    assert_matches(sk.log_softmax(x, where=mask), expected_log, log=True)
    lse = sk.logsumexp(x, axis=-1, where=mask)
    assert_matches(lse, np.log1p((mask[:, 1:] * np.exp(x[:, 1:].astype(np.float64))).sum(axis=1)), log=True)
    assert (lse < 1e-9).all()  # not log 2 or more: the masked ties count for nothing


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(12, 10), (64, 10), (256, 32), (64, 100), (1000, 3)], ids=str)
@pytest.mark.parametrize("mode", ["fresh", "out", "in place"])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_masked_short_rows_filled_with_minus_inf_keep_the_masked_semantics(
    kernel_calls, rng, name, dtype, shape, mode, temperature
):
    """From MASKED_FILL_MIN_ROWS rows (log_softmax MASKED_LOG_FILL_MIN_ROWS), masked short rows
    take the unmasked kernels over a copy whose masked entries are -inf (``masked_rows_by_filling``);
    rows with an unmasked NaN are written again, so that their masked entries stay 0 (-inf).
    Against the float64 reference, every special row included, in every output form."""
    log = name == "log_softmax"
    general = kernel_calls("log_softmax_rows_serial" if log else "softmax_rows_serial")
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    mask = rng.random(shape) < 0.7
    n = shape[1]
    x[0, 0], mask[0, 0] = np.nan, True  # an unmasked NaN (the row's max skips it)
    x[0, 1 % n], mask[0, 1 % n] = 1.0, False  # ... beside a masked entry
    x[1, :], mask[1, :] = np.nan, True  # a NaN max
    mask[1, 0] = False
    x[2, 0], mask[2, 0] = np.nan, False  # a masked NaN: nothing
    x[3, 0], mask[3, 0] = np.inf, False  # a masked +inf: nothing
    x[4, 0], mask[4, 0] = np.inf, True  # unmasked +inf entries share the probability
    x[4, -1], mask[4, -1] = np.inf, True
    mask[5, :] = False  # nothing unmasked
    x[6, :] = -np.inf  # every entry -inf
    x[7, :] = 1e30  # masked or not, one value
    fill_rows = backend.MASKED_LOG_FILL_MIN_ROWS if log else backend.MASKED_FILL_MIN_ROWS
    with np.errstate(invalid="ignore"):
        result = called_in_mode(FUNCTIONS[name], x, mode, where=mask, temperature=temperature)
        expected = softmax_ref(x, where=mask, temperature=temperature, log=log, negate=name == "softmin")
    assert_matches(result, expected, log=log)
    assert [len(args[0]) for args in general] == ([] if shape[0] >= fill_rows else [shape[0]])


_CHUNKED_SHAPES = [
    (256, 32),  # packed, several chunks
    (64, 100),  # short (log_softmax: paired)
    (70, 300),  # short, chunks of 13 float32 rows: a range that is not a multiple of them
    (20000, 7),  # packed (rows of at most 8 packed row after row), two threads when there are two
    (3000, 100),  # short, two threads
]


# (12, 10): log_softmax only; softmax's rows go to the general kernels below MASKED_FILL_MIN_ROWS
@pytest.mark.parametrize(
    "name, shape", [("log_softmax", (12, 10))] + [(name, shape) for name in FUNCTIONS for shape in _CHUNKED_SHAPES],
    ids=str,
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", ["fresh", "out", "in place"])
@pytest.mark.parametrize("threads", [1, 2])
def test_masked_short_rows_are_filled_a_chunk_at_a_time(kernel_calls, rng, name, dtype, shape, mode, threads):
    """Each worker fills its rows a chunk at a time (``masked_rows_by_filling``) and takes the
    unmasked short or packed kernel on the copy: bit for bit what that kernel gives for the rows
    filled with -inf where masked (softmin: +inf), but for rows with an unmasked NaN, scattered
    through the chunks, which are NaN where unmasked and 0 (-inf) where masked; and the masked
    kernel named for the layout and thread count."""
    from softmaxkit._threads import max_threads

    log = name == "log_softmax"
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    mask = rng.random(shape) < 0.7
    nan_rows = np.unique(rng.integers(0, shape[0], 5))
    x[nan_rows, shape[1] // 2] = np.nan
    mask[nan_rows, shape[1] // 2] = True
    mask[nan_rows, 0] = False
    filled = np.where(mask, x, np.inf if name == "softmin" else -np.inf)
    k = backend.kernels()
    n_rows, n = shape
    width = backend._packed_width(k, x) if n_rows >= backend.PACKED_MIN_ROWS else None
    before = sk.get_num_threads()
    sk.set_num_threads(min(threads, max_threads()))
    try:
        unmasked = FUNCTIONS[name](filled)
        if width is not None:
            expected_kernel = "masked_packed_log_softmax_rows" if log else "masked_packed_softmax_rows"
            work = backend._packed_work(x)
        else:
            if not log:
                expected_kernel = "masked_softmax_short_rows"
            elif dtype == np.float64:
                expected_kernel = "masked_log_softmax_counted_short_rows"
            elif n <= k.PAIRED_ROW:
                expected_kernel = "masked_log_softmax_paired_rows"
            else:
                expected_kernel = "masked_log_softmax_short_rows"
            work = x.size
        if not backend.use_parallel(work):
            expected_kernel += "_serial"
        calls = kernel_calls(expected_kernel)
        with np.errstate(invalid="ignore"):
            got = called_in_mode(FUNCTIONS[name], x, mode, where=mask)
    finally:
        sk.set_num_threads(before)
    assert len(calls) == 1, expected_kernel
    others = np.setdiff1d(np.arange(n_rows), nan_rows)
    np.testing.assert_array_equal(got[others], unmasked[others])
    excluded = -np.inf if log else 0.0
    assert np.isnan(np.where(mask, got, np.nan)[nan_rows]).all()
    assert (got[nan_rows][~mask[nan_rows]] == excluded).all()


def test_masked_short_rows_off_contiguous_memory_are_copied_first(rng):
    """``_run_masked_short_rows`` takes a chunk's rows as one run: rows that do not lie back to
    back (no caller passes them yet) are computed from contiguous copies into their place."""
    x = (rng.standard_normal((64, 40)) * 4).astype(np.float32)
    mask = rng.random(x.shape) < 0.7
    wide = np.full((64, 50), 7.0, np.float32)
    expected = sk.log_softmax(x, where=mask)
    for out2 in (wide[:, :40], None):
        x2 = np.full((64, 50), 3.0, np.float32)
        x2[:, :40] = x
        mask2 = np.zeros((64, 50), bool)
        mask2[:, :40] = mask
        backend._run_masked_short_rows(backend.kernels(), x2[:, :40], out2, mask2[:, :40], None, None, None, True)
        np.testing.assert_array_equal(x2[:, :40] if out2 is None else out2, expected)
        assert (x2[:, 40:] == 3.0).all() and (wide[:, 40:] == 7.0).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "shape, route",
    [
        ((7, 10), "general"),  # below MASKED_LOGSUMEXP_FILL_MIN_ROWS
        ((8, 10), "short"),  # too few rows to pack
        ((64, 3), "packed"),
        ((256, 32), "packed"),
        ((64, 100), "short"),
        ((40, 320), "short"),
        ((40, 321), "general float32"),  # past MASKED_LOGSUMEXP_FILL_MAX_FLOAT32_ROW
        ((20000, 7), "packed"),  # two threads, when there are two
        ((3000, 100), "short"),
    ],
    ids=str,
)
@pytest.mark.parametrize("threads", [1, 2])
def test_masked_short_logsumexp_rows_filled_with_minus_inf(kernel_calls, rng, dtype, shape, route, threads):
    """From MASKED_LOGSUMEXP_FILL_MIN_ROWS rows, masked short rows (float32 up to
    MASKED_LOGSUMEXP_FILL_MAX_FLOAT32_ROW) are copied a chunk at a time with -inf where masked
    and taken by the unmasked short or packed kernels (``masked_logsumexp_by_filling``): bit for
    bit what those kernels give for ``np.where(mask, x, -inf)``, the masked semantics on every
    special row, and within 4 ulp (of 1 near 0) of the float64 reference."""
    from softmaxkit._threads import max_threads

    before = sk.get_num_threads()
    sk.set_num_threads(min(threads, max_threads()))
    try:
        _check_masked_short_logsumexp_rows(kernel_calls, rng, dtype, shape, route)
    finally:
        sk.set_num_threads(before)


def _check_masked_short_logsumexp_rows(kernel_calls, rng, dtype, shape, route):
    if dtype == np.float64 and (route == "general float32" or route == "packed" and shape[1] > 24):
        route = "short"  # float64 rows are packed up to 24
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    mask = rng.random(shape) < 0.7
    x[0, 0], mask[0, 0] = np.nan, True  # an unmasked NaN: the row is NaN
    x[1, :], mask[1, :] = np.nan, True  # NaN but one masked entry
    mask[1, 0] = False
    x[2, 0], mask[2, 0] = np.nan, False  # a masked NaN: nothing
    x[3, 0], mask[3, 0] = np.inf, False  # a masked +inf: nothing
    x[4, 0], mask[4, 0] = np.inf, True  # an unmasked +inf: +inf
    mask[5, :] = False  # nothing unmasked: -inf
    x[-1, :], mask[-1, :] = 1e30, True  # one value (and the last row of a range), but in (7, 10)
    x[6, :] = -np.inf
    names = {
        "general": "logsumexp_rows", "general float32": "logsumexp_rows", "short": "masked_logsumexp_short_rows",
        "packed": "masked_packed_logsumexp_rows",
    }
    calls = {name + tail: kernel_calls(name + tail) for name in set(names.values()) for tail in ("", "_serial")}
    with np.errstate(invalid="ignore"):
        got = sk.logsumexp(x, axis=-1, where=mask)
        out = np.full(shape[0], 7.0, dtype)
        assert sk.logsumexp(x, axis=-1, where=mask, out=out) is out
        unmasked = sk.logsumexp(np.where(mask, x, -np.inf), axis=-1)
        expected = logsumexp_ref(x, -1, where=mask, compute=np.float64)
    np.testing.assert_array_equal(out, got)
    if route != "general" and route != "general float32":
        np.testing.assert_array_equal(got, unmasked)
    assert np.isnan(got[0]) and np.isnan(got[1]) and got[4] == np.inf and got[5] == -np.inf and got[6] == -np.inf
    finite = np.isfinite(expected)
    assert (np.isfinite(got) == finite).all()
    err = ulp_error(got[finite], expected[finite], floor=1)
    assert err.max() <= 4, err.max()
    work = backend._packed_work(x) if route == "packed" else x.size
    expected_kernel = names[route] + ("" if backend.use_parallel(work) else "_serial")
    assert {name: len(c) for name, c in calls.items() if c} == {expected_kernel: 2}  # got and out
