"""The small-K column kernels: unmasked softmax, log_softmax and logsumexp over few rows of a
column layout, a vector of columns at a time (``takes_small_k_tiles`` says which layouts).

They compute each column as the block kernels do (the same operations, the same order of the
sum, the same log of it), so their results must equal theirs bit for bit, on ordinary and special
values, with every option and output form, serial and parallel; and they must be what such
layouts take.
"""

from __future__ import annotations

import numpy as np
import pytest

import softmaxkit as sk
from softmaxkit import _numpy_backend as backend
from naive import assert_matches, called_in_mode, logsumexp_ref, softmax_ref, ulp_error

SMALL_K = 12  # the kernels' SMALL_K, checked below
FUNCTIONS = {"softmax": sk.softmax, "log_softmax": sk.log_softmax}


def test_limits_are_the_kernels():
    k = backend.kernels()
    limits = (k.SMALL_K, k.SMALL_K_UNALIGNED, k.SMALL_K_NARROW, k.SMALL_K_NARROW_ROW_BYTES, k.SMALL_K_ANY_ROW_BYTES)
    assert limits == (SMALL_K, 24, 256, 1024, 128)
    assert (k.SMALL_K_QUAD_ROW_BYTES, k.SMALL_K_QUAD_ROWS) == (256, 4096)


def _accurate(result, x, axis, name):
    """Within the policy's 4 ulp of the exact result (log-probabilities near 0 in ulps of 1)."""
    log = name == "log_softmax"
    reference = softmax_ref(x, axis=axis, compute=np.longdouble, log=log)
    return ulp_error(result, reference, floor=1 if log else None).max() <= 4


def _both_kernels(monkeypatch, call):
    """``call()`` through the small-K kernel, then through the block kernels."""
    small = call()
    with monkeypatch.context() as m:
        m.setattr(backend, "SMALL_K", 0)
        blocks = call()
    return small, blocks


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [1, 2, 3, 5, 8, 12, 24, 100, 700])  # 24, 100, 700: see test_the_rule
# whole tiles; a partial last tile; several chunks' worth; part of one tile (layouts of at most
# COLUMN_ANY_WIDTH_ELEMENTS: larger ones move the axis to the end, and both sides take the rows)
@pytest.mark.parametrize("inner", [16, 37, 300, 5, 8])
@pytest.mark.parametrize("parallel", [False, True])
def test_small_k_matches_the_block_kernels(monkeypatch, rng, name, dtype, k, inner, parallel):
    if parallel:
        monkeypatch.setattr(backend, "PARALLEL_MIN_ELEMENTS", 0)
        monkeypatch.setattr(backend, "num_threads", lambda: 2)
        monkeypatch.setattr(backend.kernels(), "SMALL_K_CHUNK", 32)  # several items per worker
    x = (rng.standard_normal((3, k, inner)) * 5).astype(dtype)
    x[0, 1 % k, :] = x[0, 0, :]  # columns with two entries at the max (k = 2 in log_softmax's sum)
    small, blocks = _both_kernels(monkeypatch, lambda: FUNCTIONS[name](x, axis=1))
    np.testing.assert_array_equal(small, blocks)
    assert _accurate(small, x, 1, name)


@pytest.mark.parametrize("name", [*FUNCTIONS, "logsumexp"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tiny_layouts_of_few_columns_take_the_tiles(kernel_calls, rng, name, dtype):
    # Up to COLUMN_ANY_WIDTH_ELEMENTS elements without a mask, columns are taken as they lie
    # however few they are (part of one tile), where larger layouts move the axis to the end first
    # (a copy each way: softmax 10x8 `axis=0` 8.0 us a call, 3.4 as columns)
    assert backend.COLUMN_ANY_WIDTH_ELEMENTS == 4096
    call = {**FUNCTIONS, "logsumexp": sk.logsumexp}[name]
    calls = kernel_calls("softmax_small_k", "softmax_small_k_serial", "log_softmax_small_k", "log_softmax_small_k_serial", "logsumexp_small_k", "logsumexp_small_k_serial")
    cases = [((10, 8), 0, {}, True), ((512, 8), 0, {}, True), ((2, 3, 4, 5), 2, {}, True), ((513, 8), 0, {}, False),
             ((3, 7, 1), 1, {}, False), ((10, 8), 0, {"where": np.ones((10, 8), bool)}, False)]
    for shape, axis, kwargs, taken in cases:
        calls.clear()
        x = (rng.standard_normal(shape) * 3).astype(dtype)
        x.flat[::7] = x.flat[1::7]  # columns with two entries at the max
        result = call(x, axis=axis, **kwargs)
        assert bool(calls) == (taken or (name == "logsumexp" and shape == (513, 8))), shape  # see below
        np.testing.assert_array_equal(result, call(x, axis=(axis,), **kwargs))
        if name == "logsumexp":
            assert ulp_error(result, logsumexp_ref(x, axis=axis, compute=np.longdouble), floor=1).max() <= 4
        else:
            assert _accurate(result, x, axis, name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_logsumexp_takes_narrow_columns_as_they_lie(kernel_calls, monkeypatch, rng, dtype):
    # logsumexp writes no layout: its tiles take any number of rows of 8 to 15 columns, and of
    # fewer columns up to 16 * inner**2 rows, where softmax moves the axis to the end
    assert (backend.COLUMN_READ_WIDTH, backend.COLUMN_READ_ROWS_PER_WIDTH2) == (8, 16)
    calls = kernel_calls("logsumexp_small_k", "logsumexp_small_k_serial")
    cases = [((3000, 8), 0, True), ((3, 2000, 12), 1, True), ((600, 64, 2), 1, True), ((600, 65, 2), 1, False),
             ((40, 256, 4), 1, True), ((40, 257, 4), 1, False), ((100, 10, 3), 1, True), ((2, 3000, 4), 1, False),
             ((3000, 8), 0, False)]
    for i, (shape, axis, taken) in enumerate(cases):
        calls.clear()
        x = (rng.standard_normal(shape) * 3).astype(dtype)
        x.flat[::7] = x.flat[1::7]  # columns with two entries at the max
        kwargs = {"where": np.ones(shape, bool)} if i == len(cases) - 1 else {}  # a mask: the copy
        fast = sk.logsumexp(x, axis=axis, **kwargs)
        general = sk.logsumexp(x, axis=(axis,), **kwargs)
        assert bool(calls) == taken, shape
        np.testing.assert_array_equal(fast, general)
        with monkeypatch.context() as m:  # the axis moved to the end, rows
            m.setattr(backend, "COLUMN_READ_WIDTH", 1 << 30)
            m.setattr(backend, "COLUMN_READ_ROWS_PER_WIDTH2", 0)
            m.setattr(backend, "COLUMN_ANY_WIDTH_ELEMENTS", 0)
            moved = sk.logsumexp(x, axis=axis, **kwargs)
        assert ulp_error(fast, moved, floor=1).max() <= 2
        assert ulp_error(fast, logsumexp_ref(x, axis=axis, compute=np.longdouble), floor=1).max() <= 4


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_narrow_columns_taken_as_they_lie_unless_written_over(kernel_calls, rng, name, dtype):
    # Up to 4 * inner**2 rows of fewer than 16 columns are taken as they lie by the tiles (a
    # partial tile: softmax's exps taken again from the input, not loaded back from masked
    # stores), except where the results go over the input (in place, or into the copy a cast
    # made), where a masked store holds up the next row's loads
    assert backend.COLUMN_ROWS_PER_WIDTH2 == 4
    f = FUNCTIONS[name]
    calls = kernel_calls(f"{name}_small_k")
    cases = [((300, 10, 10), 1, True), ((600, 64, 4), 1, True), ((600, 65, 4), 1, False), ((2000, 8), 0, False),
             ((20, 256, 8), 1, True), ((4000, 4, 2), 1, True)]
    for shape, axis, taken in cases:
        x = (rng.standard_normal(shape) * 3).astype(dtype)
        x.flat[::7] = x.flat[1::7]  # columns with two entries at the max
        reference = softmax_ref(x, axis=axis, compute=np.longdouble, log=name == "log_softmax")
        results = []
        for form in ("fresh", "out", "general", "in place", "cast"):
            calls.clear()
            if form == "fresh":
                result = f(x, axis=axis)
            elif form == "out":
                result = np.full_like(x, np.nan)
                assert f(x, axis=axis, out=result) is result
            elif form == "general":
                result = f(x, axis=(axis,))
            elif form == "in place":
                result = x.copy()
                assert f(result, axis=axis, out=result) is result
            else:  # float16, computed in float32 in place in its cast copy
                result = f(x.astype(np.float16), axis=axis)
            assert bool(calls) == (taken and form in ("fresh", "out", "general")), (shape, form)
            if form != "cast":
                assert _accurate(result, x, axis, name), (shape, form)
                results.append(result)
        for result in results[1:3]:
            np.testing.assert_array_equal(result, results[0])


def test_parallel_threshold_counts_the_lanes_tiles_take(monkeypatch):
    # a tile of fewer columns than a vector costs a whole vector's work: 2000x4x4 `axis=1` has
    # 32000 elements, under the threshold, but its tiles take 128000 lanes
    monkeypatch.setattr(backend, "num_threads", lambda: 2)
    k = backend.kernels()
    assert backend.PARALLEL_MIN_ELEMENTS == 32768
    for shape, dtype, workers in [((2000, 4, 4), np.float32, 2), ((2000, 4, 4), np.float64, 2),
                                  ((1000, 4, 8), np.float64, 1), ((100, 10, 10), np.float32, 1),
                                  ((2, 4, 4000), np.float32, 1), ((2, 4, 4090), np.float32, 2)]:
        x3 = np.zeros(shape, dtype)
        assert backend._small_k_work(k, x3)[1] == workers, (shape, dtype)


def test_log_softmax_keeps_tiny_tails(monkeypatch):
    # exp(-40) is below float64's ulp of 1: log(1 + 4.2e-18) must not round to log(1) = 0
    x = np.zeros((2, 2, 40), np.float32)
    x[:, 1, :] = -40.0
    small, blocks = _both_kernels(monkeypatch, lambda: sk.log_softmax(x, axis=1))
    np.testing.assert_array_equal(small, blocks)
    np.testing.assert_allclose(small[:, 0, :], -np.log1p(np.exp(-40.0)), rtol=1e-6)
    assert (small[:, 0, :] < 0).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", ["fresh", "out", "in place"])
@pytest.mark.parametrize(
    "name, options",
    [(name, options) for name in FUNCTIONS for options in ({}, {"temperature": 0.3}, {"temperature": 9.0})]
    + [("softmin", {})],
)
def test_options_and_outputs(monkeypatch, rng, dtype, mode, name, options):
    x0 = (rng.standard_normal((2, 3, 4, 21)) * 6).astype(dtype)
    f = sk.softmin if name == "softmin" else FUNCTIONS[name]

    def call():
        x = x0.copy()
        if mode == "fresh":
            return f(x, axis=2, **options)
        out = x if mode == "in place" else np.empty_like(x)
        result = f(x, axis=2, out=out, **options)
        assert result is out
        if mode == "out":
            np.testing.assert_array_equal(x, x0)
        return result

    small, blocks = _both_kernels(monkeypatch, call)
    np.testing.assert_array_equal(small, blocks)


def _with_special_columns(dtype, inner):
    """(1, 4, inner): ordinary columns, and at columns 3, 5, 8, 11 and inner - 2 (in the last,
    partial tile) a NaN, two +inf, one +inf, every entry -inf, and a NaN beside -inf: their tiles
    take the scalar form; at column 20, in a tile of finite maxima, a NaN beside finite entries
    (the vector form must make it NaN); and with inner > 62 a +inf at column 60, in the second
    tile of a pair (``test_tiles_in_pairs_match_tiles_one_at_a_time``) whose first is finite."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 4, inner)).astype(dtype)
    inf, nan = np.inf, np.nan
    specials = {
        3: [1.0, nan, 2.0, 0.5],
        5: [inf, 1.0, inf, -inf],
        8: [0.0, inf, -3.0, 2.0],
        11: [-inf, -inf, -inf, -inf],
        inner - 2: [nan, -inf, -inf, -inf],
        20: [0.5, nan, 1.0, 2.0],
    }
    if inner > 62:
        specials[60] = [1.0, inf, 0.0, -1.0]
    for c, column in specials.items():
        x[0, :, c] = column
    return x


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("inplace", [False, True])
def test_special_values(monkeypatch, name, dtype, inplace):
    x0 = _with_special_columns(dtype, 40)
    log = name == "log_softmax"

    def call():
        x = x0.copy()
        return FUNCTIONS[name](x, axis=1, out=x if inplace else None)

    with np.errstate(all="ignore"):
        small, blocks = _both_kernels(monkeypatch, call)
        np.testing.assert_array_equal(small, blocks)
        assert_matches(small, softmax_ref(x0, axis=1, log=log), log=log)
    zero = -np.inf if log else 0.0
    half = -np.log(dtype(2)) if log else 0.5
    np.testing.assert_array_equal(small[0, :, 5], [half, zero, half, zero])
    np.testing.assert_array_equal(small[0, :, 8], [zero, 0.0 if log else 1.0, zero, zero])
    np.testing.assert_array_equal(small[0, :, 11], zero)
    assert np.isnan(small[0, :, [3, 20, 38]]).all()
    ordinary = [c for c in range(40) if c not in (3, 5, 8, 11, 20, 38)]
    assert _accurate(small[..., ordinary], x0[..., ordinary], 1, name)


@pytest.mark.parametrize(
    "k, row_bytes, taken",
    [
        (1, 4, True),
        (SMALL_K, 1 << 20, True),  # any rows
        (SMALL_K + 1, 1 << 20, False),  # rows 4 KiB apart: a tile's 2K lines in one L1 set
        (24, (1 << 20) + 4, True),  # not 4 KiB apart
        (25, (1 << 20) + 4, False),
        (256, 1024, True),  # narrow rows: a narrow block kernel costs more per column
        (257, 1024, False),
        (100, 1028, False),
        (100_000, 128, True),  # one or two tiles a row: any number of rows
        (4096, 256, True),  # four tiles a row: up to 4096 rows
        (4097, 256, False),
        (300, 260, False),
        (100_000, 132, False),
        ((1 << 24) + 1, 64, False),  # float32 counts at the max would no longer be exact
    ],
)
def test_the_rule(k, row_bytes, taken):
    kernels = backend.kernels()
    assert kernels.takes_small_k_tiles(k, row_bytes) == taken
    if k > 16:  # log_softmax takes them wherever softmax does, and up to 16 rows in any layout
        assert kernels.takes_small_k_tiles(k, row_bytes, log=True) == taken


@pytest.mark.parametrize(
    "reads_only, k, row_bytes, layout_bytes, taken",
    [
        (False, 4096, 4000, 4 << 20, True),  # rows not 1 KiB apart: up to 4 MiB
        (False, 4096, 4000, (4 << 20) + 4, False),  # a larger layout: the block kernels
        (False, 256, 3072, 4 << 20, True),  # a multiple of 1 KiB apart (not 4 KiB): up to 256 rows
        (False, 257, 3072, 1 << 20, False),
        (False, 100, 8192, 1 << 20, False),  # rows 4 KiB apart
        (False, 100, 4000, -1, False),  # no layout size given: the rule for K alone
        (True, 100_000, 4000, 8 << 20, True),  # logsumexp (writes no layout): up to 8 MiB
        (True, 100_000, 4000, (8 << 20) + 4, False),
        (True, 257, 3072, 1 << 20, False),
    ],
)
def test_rows_not_4_kib_apart_take_them_in_small_layouts(reads_only, k, row_bytes, layout_bytes, taken):
    kernels = backend.kernels()
    limits = (
        kernels.SMALL_K_LAYOUT_ROWS, kernels.SMALL_K_LAYOUT_BYTES, kernels.SMALL_K_READ_LAYOUT_BYTES,
        kernels.SMALL_K_SPREAD_BYTES,
    )
    assert limits == (256, 4 << 20, 8 << 20, 1024)
    if reads_only:
        assert kernels.takes_small_k_tiles(k, row_bytes, layout_bytes=layout_bytes, reads_only=True) == taken
        return
    for log in (False, True):
        assert kernels.takes_small_k_tiles(k, row_bytes, log, layout_bytes) == taken


@pytest.mark.parametrize(
    "k, row_bytes, parallel, taken",
    [
        (32, 2048, True, True),  # 2 KiB apart (mod 4 KiB): a column's lines in 2 L1 sets, 16 rows a set
        (33, 2048, True, False),
        (33, 2048, False, False),
        (33, 6144, True, False),
        (64, 1024, False, True),  # 1 KiB apart: 4 sets
        (65, 1024, False, False),
        (65, 3072, False, False),
        (65, 1024, True, True),  # ... but a parallel call takes them as before, up to 256 rows
        (256, 3072, True, True),
        (257, 3072, True, False),
        (256, 512, False, True),  # 512 bytes apart: 8 sets, as before
        (256, 4000, False, True),  # not a multiple of 1 KiB: as before
    ],
)
def test_rows_1_kib_apart_crowd_a_tile_into_few_l1_sets(k, row_bytes, parallel, taken):
    kernels = backend.kernels()
    assert (kernels.SMALL_K_ROWS_PER_SET, kernels.SMALL_K_PARALLEL_CROWDED_SETS) == (16, 4)
    for log in (False, True):
        assert kernels.takes_small_k_tiles(k, row_bytes, log, 1 << 20, parallel=parallel) == taken
    # logsumexp, which writes no layout, keeps the rules for rows not 4 KiB apart
    assert kernels.takes_small_k_tiles(k, row_bytes, layout_bytes=1 << 20, reads_only=True, parallel=parallel) == (
        k <= kernels.SMALL_K_LAYOUT_ROWS
    )


def test_a_serial_call_of_rows_1_kib_apart_takes_the_blocks(kernel_calls, rng, monkeypatch):
    # 100 rows 1 KiB apart (4 L1 sets): tiles in a parallel call, the block kernels in a serial one
    calls = kernel_calls("softmax_small_k", "softmax_small_k_serial")
    x = rng.standard_normal((100, 256)).astype(np.float32)
    monkeypatch.setattr(backend, "use_parallel", lambda size: True)
    expected = sk.softmax(x, axis=0)
    assert len(calls) == 1
    monkeypatch.setattr(backend, "use_parallel", lambda size: False)
    np.testing.assert_array_equal(sk.softmax(x, axis=0), expected)  # the same bits either way
    assert len(calls) == 1


@pytest.mark.parametrize(("k", "log", "taken"), [(4096, False, True), (4097, False, False), (100_000, True, True)])
def test_softmax_takes_them_for_up_to_4096_rows_not_1_kib_apart(k, log, taken):
    kernels = backend.kernels()
    assert kernels.SMALL_K_SOFTMAX_SPREAD_ROWS == 4096
    assert kernels.takes_small_k_tiles(k, 4000, log, 1 << 20) == taken  # log_softmax: any number


@pytest.mark.parametrize(("k", "taken"), [(SMALL_K + 1, True), (16, True), (17, False)])
def test_log_softmax_takes_them_up_to_16_rows_4_kib_apart(k, taken):
    kernels = backend.kernels()
    assert kernels.SMALL_K_LOG == 16
    assert kernels.takes_small_k_tiles(k, 1 << 20, log=True) == taken
    assert not kernels.takes_small_k_tiles(k, 1 << 20)  # softmax's and logsumexp's: the blocks


@pytest.mark.parametrize("name", [*FUNCTIONS, "logsumexp"])
@pytest.mark.parametrize(
    "shape, axis, kwargs, taken",
    [
        ((2, 3, 50), 1, {}, True),
        ((2, SMALL_K, 50), 1, {}, True),
        ((2, 100, 50), 1, {}, True),  # narrow rows
        ((2, SMALL_K + 1, 1024), 1, {}, {"log_softmax"}),  # rows 4 KiB apart: blocks, but log_softmax
        ((2, 17, 1024), 1, {}, False),
        ((100, 1000), 0, {}, True),  # rows not 4 KiB apart, a small layout
        ((2, 30, 1000), 1, {}, True),
        ((3000, 100), 0, {}, True),  # ... nor 1 KiB apart: any number of rows
        ((32, 512), 0, {}, True),  # 2 KiB apart: 2 L1 sets, up to 32 rows
        ((33, 512), 0, {}, {"logsumexp"}),  # logsumexp's: up to 256 rows
        ((256, 512), 0, {}, {"logsumexp"}),
        ((300, 512), 0, {}, False),
        ((2, 30, 20000), 1, {}, {"logsumexp"}),  # 4.8 MB: logsumexp's alone (it writes no layout)
        ((2, SMALL_K + 1, 1025), 1, {}, True),
        ((SMALL_K, 64), 0, {}, True),
        ((3000, 32), 0, {}, True),  # 128-byte rows
        ((3000, 64), 0, {}, True),  # 256-byte rows, up to 4096 of them
        ((5000, 64), 0, {}, {"log_softmax", "logsumexp"}),  # softmax: up to 4096 such rows
        ((3000, 128), 0, {}, True),  # 512-byte rows, 1.5 MB
        # a plain mask: softmax's and log_softmax's tiles in place on the output filled with -inf
        # (``_masked_columns_by_filling``); logsumexp's block kernels read it; given as a list,
        # the general path's block kernels
        ((2, 3, 50), 1, {"where": True}, {"softmax", "log_softmax"}),
        ((2, 3, 50), 1, {"where": "list"}, False),
        ((2, 3, 50), -1, {}, False),  # rows
    ],
)
def test_which_layouts_take_the_small_k_kernels(kernel_calls, rng, name, shape, axis, kwargs, taken):
    calls = kernel_calls("softmax_small_k", "softmax_small_k_serial", "log_softmax_small_k", "log_softmax_small_k_serial", "logsumexp_small_k", "logsumexp_small_k_serial")
    x = rng.standard_normal(shape).astype(np.float32)
    if "where" in kwargs:
        mask = rng.random(shape) < 0.8
        kwargs = {"where": mask.tolist() if kwargs["where"] == "list" else mask}
    getattr(sk, name)(x, axis=axis, **kwargs)
    assert bool(calls) == (taken if isinstance(taken, bool) else name in taken)




@pytest.mark.parametrize("name", [*FUNCTIONS, "logsumexp"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("inplace", [False, True])
def test_tiles_in_pairs_match_tiles_one_at_a_time(kernel_calls, monkeypatch, name, dtype, inplace):
    # Up to SMALL_K_PAIRED_ROWS rows the kernels take two tiles at a time (both tiles' reads, then
    # both 1/s or logs, then both writes): per column the same operations, so the same bits.  104
    # columns: pairs of whole tiles, the first tile of the first pair declining (a column whose
    # max is not finite: the scalar form; float64: both), the second of a later pair declining,
    # and a last partial tile one at a time (float64: a last whole one).
    k = backend.kernels()
    assert k.SMALL_K_PAIRED_ROWS == 128
    x0 = _with_special_columns(dtype, 104)
    call = {**FUNCTIONS, "logsumexp": sk.logsumexp}[name]
    calls = kernel_calls("softmax_small_k", "softmax_small_k_serial", "log_softmax_small_k", "log_softmax_small_k_serial", "logsumexp_small_k", "logsumexp_small_k_serial")

    def results():
        x = x0.copy()
        if name == "logsumexp":
            return call(x, axis=1)
        return call(x, axis=1, out=x if inplace else None)

    with np.errstate(all="ignore"):
        paired = results()
        monkeypatch.setattr(k, "SMALL_K_PAIRED_ROWS", 3)  # fewer than the 4 rows
        single = results()
    assert [c[-1] for c in calls] == [True, None]
    np.testing.assert_array_equal(paired, single)
    expected = {"softmax": [0, 1, 0, 0], "log_softmax": [-np.inf, 0, -np.inf, -np.inf], "logsumexp": np.inf}[name]
    np.testing.assert_array_equal(paired[0, 60] if name == "logsumexp" else paired[0, :, 60], expected)


@pytest.mark.parametrize("name, options", [("softmax", {"temperature": 0.3}), ("log_softmax", {"temperature": 7.0}),
                                           ("softmin", {}), ("softmin", {"temperature": 2.0})])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tiles_in_pairs_with_options(kernel_calls, monkeypatch, rng, name, options, dtype):
    # the pairs with a temperature and a negated input (softmin), against one tile at a time
    k = backend.kernels()
    x = (rng.standard_normal((3, 6, 100)) * 5).astype(dtype)
    x[1, 2, :] = x[1, 0, :]  # ties at the max
    f = sk.softmin if name == "softmin" else FUNCTIONS[name]
    calls = kernel_calls("softmax_small_k", "softmax_small_k_serial", "log_softmax_small_k", "log_softmax_small_k_serial")
    paired = f(x, axis=1, **options)
    monkeypatch.setattr(k, "SMALL_K_PAIRED_ROWS", 5)
    single = f(x, axis=1, **options)
    assert [c[-1] for c in calls] == [True, None]
    np.testing.assert_array_equal(paired, single)
    log = name == "log_softmax"
    reference = softmax_ref(x, axis=1, compute=np.longdouble, log=log, negate=name == "softmin", **options)
    assert ulp_error(paired, reference, floor=1 if log else None).max() <= 4


def test_tiles_in_pairs_up_to_128_rows(kernel_calls, rng):
    calls = kernel_calls("log_softmax_small_k", "log_softmax_small_k_serial")
    for n_k, paired in ((128, True), (129, None)):
        sk.log_softmax(rng.standard_normal((n_k, 100)).astype(np.float32), axis=0)
        assert calls[-1][-1] is paired


# logsumexp over the same layouts: a tile's max and stats as log_softmax's, m + log s stored


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [1, 3, 12, 24, 100, 700])
@pytest.mark.parametrize("inner", [16, 37, 300])
@pytest.mark.parametrize("parallel", [False, True])
def test_logsumexp_matches_the_block_kernels(monkeypatch, rng, dtype, k, inner, parallel):
    if parallel:
        monkeypatch.setattr(backend, "PARALLEL_MIN_ELEMENTS", 0)
        monkeypatch.setattr(backend, "num_threads", lambda: 2)
        monkeypatch.setattr(backend.kernels(), "SMALL_K_CHUNK", 32)
    x = (rng.standard_normal((3, k, inner)) * 5).astype(dtype)
    x[0, 1 % k, :] = x[0, 0, :]
    small, blocks = _both_kernels(monkeypatch, lambda: sk.logsumexp(x, axis=1))
    np.testing.assert_array_equal(small, blocks)
    assert ulp_error(small, logsumexp_ref(x, axis=1, compute=np.longdouble), floor=1).max() <= 4


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_logsumexp_special_values(monkeypatch, dtype):
    x = _with_special_columns(dtype, 40)
    with np.errstate(all="ignore"):
        small, blocks = _both_kernels(monkeypatch, lambda: sk.logsumexp(x, axis=1))
    np.testing.assert_array_equal(small, blocks)
    assert small[0, 5] == np.inf and small[0, 8] == np.inf and small[0, 11] == -np.inf
    assert np.isnan(small[0, [3, 20, 38]]).all()
    ordinary = [c for c in range(40) if c not in (3, 5, 8, 11, 20, 38)]
    reference = logsumexp_ref(x[..., ordinary], axis=1, compute=np.longdouble)
    assert ulp_error(small[..., ordinary], reference, floor=1).max() <= 4


def test_logsumexp_keeps_tiny_tails(monkeypatch):
    x = np.zeros((2, 2, 40), np.float32)
    x[:, 1, :] = -40.0
    small, blocks = _both_kernels(monkeypatch, lambda: sk.logsumexp(x, axis=1))
    np.testing.assert_array_equal(small, blocks)
    np.testing.assert_allclose(small, np.log1p(np.exp(-40.0)), rtol=1e-6)


@pytest.mark.parametrize("name", [*FUNCTIONS, "logsumexp"])
@pytest.mark.parametrize(
    "shape, threads, items, softmax_items",
    [
        # one item of 1024 columns would leave a thread idle: two of 32 (softmax's at least 64)
        ((3000, 64), 2, 2, 1),
        ((3000, 64), 4, 4, 1),  # four of 16
        ((3000, 64), 8, 4, 1),  # never below one tile
        ((3000, 200), 2, 2, 2),  # 112 and 88 columns (softmax's 128 and 72)
        ((2, 3000, 64), 2, 2, 2),  # one item per outer index already
        ((2, 3000, 64), 4, 4, 2),
        ((500, 64), 2, 1, 1),  # below SMALL_K_SPLIT_MIN_ELEMENTS: one item
        ((3000, 8, 40), 2, 3000, 3000),
    ],
)
def test_work_items_narrow_for_threads(kernel_calls, monkeypatch, rng, name, shape, threads, items, softmax_items):
    # softmax's items into an output 16 bytes past a cache line (as numpy's arrays start) take at
    # least 256 bytes of a row (SMALL_K_SOFTMAX_ITEM_BYTES); into one on a line, as the others'
    monkeypatch.setattr(backend, "num_threads", lambda: threads)
    calls = kernel_calls("softmax_small_k", "softmax_small_k_serial", "log_softmax_small_k", "log_softmax_small_k_serial", "logsumexp_small_k", "logsumexp_small_k_serial")
    x = (rng.standard_normal(shape) * 5).astype(np.float32)
    x[..., 1, 7] = x[..., 0, 7]
    kwargs = [{}]
    if name in FUNCTIONS:
        kwargs = [{"out": _at_line_offset(x, 16)}, {"out": _at_line_offset(x, 0)}]
    for placement, kw in enumerate(kwargs):
        expected = softmax_items if name == "softmax" and placement == 0 else items
        calls.clear()
        call = {**FUNCTIONS, "logsumexp": sk.logsumexp}[name]
        small, blocks = _both_kernels(monkeypatch, lambda: np.array(call(x, axis=-2, **kw)))
        n_items, workers, chunk = calls[0][0], calls[0][1], calls[0][-2]
        assert (n_items, workers) == (expected, min(expected, threads))
        assert n_items * chunk >= x.shape[-1] * (x.size // x.shape[-1] // x.shape[-2]) and chunk % 16 == 0
        np.testing.assert_array_equal(small, blocks)


def _at_line_offset(like, offset):
    """An empty array like ``like`` starting ``offset`` bytes past a 64-byte boundary."""
    raw = np.empty(like.nbytes + 128, np.uint8)
    start = (offset - raw.ctypes.data) % 64
    return raw[start : start + like.nbytes].view(like.dtype).reshape(like.shape)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_the_layout_limit_counts_bytes_whatever_the_dtype(kernel_calls, rng, name):
    calls = kernel_calls("softmax_small_k", "softmax_small_k_serial", "log_softmax_small_k", "log_softmax_small_k_serial")
    x = rng.standard_normal((2, 30, 10000))  # 4.8 MB in float64: the block kernels
    FUNCTIONS[name](x, axis=1)
    assert not calls
    FUNCTIONS[name](x.astype(np.float32), axis=1)  # 2.4 MB
    assert calls
    calls.clear()
    FUNCTIONS[name](np.ascontiguousarray(x[:, :, :1000]), axis=1)  # float64 in a small layout: the tiles
    assert calls


# Four tiles side by side (``softmax_quad_k``, ``log_softmax_quad_k``): per column the operations of
# one tile, so the block kernels' bits, whatever the quads' neighbours, the columns left over (a
# partial quad, a partial tile) or the values (a quad with a column whose max is not finite
# declines to single tiles and, for that tile, to the scalar form).


def _quads_and_blocks(monkeypatch, call):
    """``call()`` with the quads forced where the tiles are refused, then with the blocks."""
    with monkeypatch.context() as m:
        m.setattr(backend, "SMALL_K", 0)
        m.setattr(backend, "QUADS", True)
        quads = call()
    with monkeypatch.context() as m:
        m.setattr(backend, "SMALL_K", 0)
        m.setattr(backend, "QUADS", False)
        blocks = call()
    return quads, blocks


QUAD_CALLS = {"softmax": sk.softmax, "log_softmax": sk.log_softmax, "softmin": sk.softmin}


@pytest.mark.parametrize("name", QUAD_CALLS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [1, 3, 40, 130])
# four whole tiles; quads and a partial quad of whole tiles; and a partial tile after them; one
# partial quad only
@pytest.mark.parametrize("inner", [64, 200, 203, 40])
@pytest.mark.parametrize("parallel", [False, True])
def test_quad_tiles_match_the_block_kernels(monkeypatch, kernel_calls, rng, name, dtype, k, inner, parallel):
    if parallel:
        monkeypatch.setattr(backend, "PARALLEL_MIN_ELEMENTS", 0)
        monkeypatch.setattr(backend, "num_threads", lambda: 2)
        monkeypatch.setattr(backend.kernels(), "SMALL_K_CHUNK", 80)  # items of a quad and a tile
    calls = kernel_calls("softmax_quad_k", "log_softmax_quad_k")
    x = (rng.standard_normal((2, k, inner)) * 5).astype(dtype)
    x[0, 1 % k, :] = x[0, 0, :]  # two entries at the max
    for options in ({"temperature": 0.3}, {}):
        quads, blocks = _quads_and_blocks(monkeypatch, lambda: QUAD_CALLS[name](x, axis=1, **options))
        np.testing.assert_array_equal(quads, blocks)
    assert len(calls) == 2
    # (temperature 1, the last)
    assert _accurate(quads, -x if name == "softmin" else x, 1, "softmax" if name == "softmin" else name)


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", ["fresh", "out", "in place"])
def test_quad_tiles_with_special_columns(monkeypatch, kernel_calls, name, dtype, mode):
    # columns whose max is not finite in the first quad (3, 5, 8, 11), in the second (20: a NaN
    # beside finite entries; 60: +inf) and in the last partial tile, then four whole tiles of
    # ordinary columns (a quad that takes the vector form)
    x0 = _with_special_columns(dtype, 150)
    log = name == "log_softmax"
    calls = kernel_calls("softmax_quad_k", "log_softmax_quad_k")
    with np.errstate(all="ignore"):
        quads, blocks = _quads_and_blocks(monkeypatch, lambda: called_in_mode(FUNCTIONS[name], x0, mode, axis=1))
    np.testing.assert_array_equal(quads, blocks)
    assert len(calls) == 1
    with np.errstate(all="ignore"):
        assert_matches(quads, softmax_ref(x0, axis=1, log=log), log=log)
    zero, half = (-np.inf, -np.log(dtype(2))) if log else (0.0, 0.5)
    np.testing.assert_array_equal(quads[0, :, 11], [zero] * 4)  # a column of -inf: the limit
    np.testing.assert_array_equal(quads[0, :, 5], [half, zero, half, zero])
    assert np.isnan(quads[0, :, 20]).all() and np.isfinite(quads[0, :, 100]).all()


@pytest.mark.parametrize(
    "k, row_bytes, layout_bytes, taken",
    [
        (64, 2048, 1 << 20, True),  # rows 2 KiB apart: their lines in 2 L1 sets
        (300, 1024, 1 << 20, True),  # 1 KiB apart: 4 sets
        (100, 3072, 1 << 20, True),
        (100, 3072, (1 << 20) + 4, False),  # a larger layout: the blocks
        (100, 4096, 1 << 20, False),  # 4 KiB apart: one set even four lines at a time
        (100, 2000, 1 << 20, False),  # not a multiple of 1 KiB: lines in every set
    ],
)
def test_quad_tiles_rule(k, row_bytes, layout_bytes, taken):
    kernels = backend.kernels()
    assert kernels.QUAD_LAYOUT_BYTES == 1 << 20
    assert kernels.takes_quad_tiles(k, row_bytes, layout_bytes) == taken


@pytest.mark.parametrize(
    "shape, axis, threads, taken",
    [
        ((300, 512), 0, 2, True),  # one block of 512 columns, 2 KiB rows: quads on two threads
        ((300, 512), 0, 1, False),  # a serial call: the blocks
        ((8, 64, 512), 1, 2, False),  # a block for each thread and more: the blocks
        ((20, 512), 0, 2, False),  # few rows: the small-K tiles
        ((300, 500), 0, 2, False),  # rows not 1 KiB apart: the small-K tiles
    ],
)
@pytest.mark.parametrize("name", FUNCTIONS)
def test_which_layouts_take_the_quad_tiles(monkeypatch, kernel_calls, rng, name, shape, axis, threads, taken):
    monkeypatch.setattr(backend, "PARALLEL_MIN_ELEMENTS", 0)
    monkeypatch.setattr(backend, "num_threads", lambda: threads)
    calls = kernel_calls(f"{name}_quad_k")
    x = rng.standard_normal(shape).astype(np.float32)
    FUNCTIONS[name](x, axis=axis)
    assert bool(calls) == taken
    sk.logsumexp(x, axis=axis)  # logsumexp never takes them (it writes no layout)
    assert len(calls) == int(taken)
