"""Plans: the per-call-overhead paths make a layout's choices once and remember them --
``softmax_other_axis`` (a non-last axis) by shape, axis, item size, function and whether the
result goes over the input (``_column_plans``), ``softmax_last_axis`` by shape, item size and
function (``_row_plans``).

A remembered plan must give what choosing again gives, bit for bit, in every output form; it must
be used; it must never hold a choice that depends on the calling thread's thread count or on where
an output lies; and setting any limit or kernel of the backend must forget the plans made under
the old value, so that tests and tuning that set them see their effect.
"""

from __future__ import annotations

import numpy as np
import pytest

import softmaxkit as sk
from softmaxkit import _numpy_backend as backend
from naive import called_in_mode, softmax_ref, ulp_error

FUNCTIONS = {"softmax": sk.softmax, "log_softmax": sk.log_softmax, "softmin": sk.softmin}
MODES = {"softmax": backend.MODE_SOFTMAX, "log_softmax": backend.MODE_LOG_SOFTMAX, "softmin": backend.MODE_SOFTMAX}

# (shape, axis): small-K tiles, serial (rows 256 B apart, 64 B in a 4-d layout, 1 KiB, a partial
# tile, 256 B in a 4-d layout); the block kernels (rows 4 KiB apart; 1 KiB apart over the tiles'
# limit); rows (inner == 1); narrow columns, moved to the end by the general path; a layout of the
# parallel size, whose choices are made per call; and tiles in float32, blocks in float64
LAYOUTS = [
    ((16, 64), 0), ((2, 3, 4, 16), 2), ((64, 256), 0), ((5, 37), 0), ((4, 32, 8, 8), 1),
    ((16, 1024), 0), ((100, 256), 0), ((7, 1), 0), ((3000, 3), 0), ((64, 1024), 0), ((250, 128), 0),
]


# rows: a lone vector; a few short rows (log_softmax's in pairs up to PAIRED_ROW, one at a time
# beyond); packed rows; short rows in groups too few to pack; general rows; and rows of the
# parallel size (packed rows count their work twice or four times: _packed_work)
ROW_SHAPES = [(10,), (1, 10), (3, 2, 121), (17, 512), (100, 10), (4, 32, 16), (64, 100), (20, 2000),
              (64, 1000), (2048, 4), (1000, 4)]
# (axis -1: a row plan)
PLANNED = LAYOUTS + [(shape, -1) for shape in ROW_SHAPES]


def _unplanned(x, axis, name, mode, temperature):
    """The same call through the general path, which chooses every time and remembers nothing."""
    call = lambda a, **out: backend.softmax_family(  # noqa: E731
        a, (axis,), mode=MODES[name], negate=name == "softmin", temperature=temperature, where=None,
        kernel_dtype=a.dtype, result_dtype=a.dtype, **({"out": None} | out),
    )
    return called_in_mode(call, x, mode)


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", PLANNED, ids=str)
@pytest.mark.parametrize("mode", ["fresh", "out", "in place"])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_a_remembered_plan_gives_what_choosing_again_gives(rng, name, dtype, layout, mode, temperature):
    shape, axis = layout
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    x.reshape(-1)[:: 7] = np.inf  # some slices with an infinite max
    x.reshape(-1)[5] = np.nan
    plans = backend._row_plans if axis == -1 else backend._column_plans
    plans.clear()
    function = FUNCTIONS[name]
    first = called_in_mode(function, x, mode, axis=axis, temperature=temperature)
    assert len(plans) == 1
    second = called_in_mode(function, x, mode, axis=axis, temperature=temperature)  # the plan's
    expected = _unplanned(x, axis % len(shape), name, mode, temperature)  # (rows: through _run_rows)
    np.testing.assert_array_equal(first, expected)
    np.testing.assert_array_equal(second, expected)


def _plan(shape, axis, name="softmax", dtype=np.float32):
    backend._column_plans.clear()
    FUNCTIONS[name](np.zeros(shape, dtype), axis=axis)
    ((key, plan),) = backend._column_plans.items()
    assert key == (shape, axis, np.dtype(dtype).itemsize, MODES[name], False, False)
    return plan


def test_what_a_plan_holds():
    k = backend.kernels()
    shape3, small_k, blocks, by_threads = _plan((2, 3, 4, 16), 2)
    assert shape3 == (6, 4, 16)
    assert small_k == (k.softmax_small_k_serial, 6, k.SMALL_K_CHUNK, True)  # a tile kernel, serial
    assert blocks is None and by_threads is None
    assert _plan((16, 64), 0, "log_softmax")[1][0] is k.log_softmax_small_k_serial
    # the block kernels, serial: blocks of at least COLUMN_MIN_BLOCK_ROW_BYTES a row
    assert _plan((16, 1024), 0) == ((1, 16, 1024), None, (1024, 1), None)
    assert _plan((100, 256), 0, "log_softmax") == ((1, 100, 256), None, (256, 1), None)
    assert _plan((250, 128), 0, dtype=np.float64) == ((1, 250, 128), None, (128, 1), None)
    assert _plan((7, 1), 0) == ((1, 7, 1), None, None, None)  # rows: _run_softmax hands them on
    assert _plan((3000, 3), 0) == (None, None, None, None)  # narrow columns: the general path
    # from the parallel size the choices depend on the thread count: one per thread count, made
    # by the first call with it (the tiles count lanes: 2000x4x4 is 32000 elements and 128000
    # lanes)
    threads = backend.num_threads()
    for shape, axis in [((64, 1024), 0), ((16, 4096), 0), ((2000, 4, 4), 1)]:
        shape3, small_k, blocks, by_threads = _plan(shape, axis, "log_softmax")
        assert small_k is None and blocks is None and list(by_threads) == [threads]
    assert _plan((7, 4, 4), 1)[1] is not None


@pytest.mark.parametrize("forced", ["QUADS", "SLABS"])
def test_forced_quads_or_slabs_are_not_planned_as_blocks(monkeypatch, forced):
    monkeypatch.setattr(backend, "SMALL_K", 0)
    assert _plan((16, 64), 0) == ((1, 16, 64), None, (64, 1), None)
    monkeypatch.setattr(backend, forced, True)  # (their tests force them on small layouts)
    assert _plan((16, 64), 0)[:3] == ((1, 16, 64), None, None)


def test_the_remembered_tile_plan_is_what_runs(rng):
    x = rng.standard_normal((2, 3, 4, 16)).astype(np.float32)
    backend._column_plans.clear()
    expected = sk.softmax(x, axis=2)
    ((key, (shape3, (run, n_items, chunk, paired), blocks, by_threads)),) = backend._column_plans.items()
    calls = []

    def spy(*args):
        calls.append(args[:2])
        run(*args)

    backend._column_plans[key] = (shape3, (spy, n_items, chunk, paired), blocks, by_threads)  # (a dict store: kept)
    np.testing.assert_array_equal(sk.softmax(x, axis=2), expected)
    assert calls == [(n_items, 1)]


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_the_remembered_block_plan_is_what_runs(monkeypatch, rng, name):
    x = rng.standard_normal((10, 1000)).astype(np.float32)
    x[3, 17] = np.inf  # a column whose max is infinite: the blocks' second round
    kernel = getattr(backend.kernels(), f"{name}_columns")
    calls = []

    def spy(*args):
        calls.append((args[0], args[1], args[8], args[9]))  # n_blocks, workers, block, second round
        kernel(*args)

    monkeypatch.setattr(backend, "SMALL_K", 0)  # (10 rows: the block kernels)
    monkeypatch.setattr(backend.kernels(), f"{name}_columns", spy)
    expected = FUNCTIONS[name](x, axis=0)
    key = ((10, 1000), 0, 4, MODES[name], False, False)
    assert backend._column_plans[key] == ((1, 10, 1000), None, (1000, 1), None)
    assert calls == [(1, 1, 1000, False), (1, 1, 1000, True)]
    backend._column_plans[key] = ((1, 10, 1000), None, (256, 4), None)  # (a dict store: kept)
    np.testing.assert_array_equal(FUNCTIONS[name](x, axis=0), expected)  # narrower blocks: the same bits
    assert calls[2:] == [(4, 1, 256, False), (4, 1, 256, True)]


def test_setting_a_backend_limit_forgets_the_plans(monkeypatch, rng):
    x = rng.standard_normal((16, 64)).astype(np.float32)
    expected = sk.softmax(x, axis=0)
    key = ((16, 64), 0, 4, backend.MODE_SOFTMAX, False, False)
    assert backend._column_plans[key][1] is not None  # the small-K tiles
    calls = []
    block_kernel = backend.kernels().softmax_columns

    def spy(*args):
        calls.append(args[0])
        block_kernel(*args)

    with monkeypatch.context() as m:
        m.setattr(backend, "SMALL_K", 0)  # no small-K tiles: the block kernels
        assert not backend._column_plans
        m.setattr(backend.kernels(), "softmax_columns", spy)
        np.testing.assert_array_equal(sk.softmax(x, axis=0), expected)
        assert calls == [1]
        assert backend._column_plans[key] == ((1, 16, 64), None, (64, 1), None)
    assert not backend._column_plans  # undone: forgotten again
    np.testing.assert_array_equal(sk.softmax(x, axis=0), expected)
    assert calls == [1]
    assert backend._column_plans[key][1] is not None


def test_setting_a_kernel_or_its_limit_forgets_the_plans(monkeypatch, rng):
    k = backend.kernels()
    x = rng.standard_normal((16, 64)).astype(np.float32)
    expected = sk.log_softmax(x, axis=0)
    key = ((16, 64), 0, 4, backend.MODE_LOG_SOFTMAX, False, False)
    assert backend._column_plans[key][1][1:3] == (1, k.SMALL_K_CHUNK)
    monkeypatch.setattr(k, "SMALL_K_CHUNK", 32)  # items of 32 columns
    assert not backend._column_plans
    np.testing.assert_array_equal(sk.log_softmax(x, axis=0), expected)
    assert backend._column_plans[key][1][1:3] == (2, 32)
    calls = []
    tiles = k.log_softmax_small_k_serial

    def spy(*args):
        calls.append(args[:2])
        tiles(*args)

    monkeypatch.setattr(k, "log_softmax_small_k_serial", spy)
    assert not backend._column_plans
    np.testing.assert_array_equal(sk.log_softmax(x, axis=0), expected)
    assert calls == [(2, 1)]


# parallel sizes: small-K tiles (rows on cache lines, whose softmax items at 2 threads are split
# by the output's address; rows off them), four tiles side by side (softmax's split by address
# too), column blocks, slabs (2 threads)
PARALLEL_LAYOUTS = [((256, 256), 0), ((16, 4096), 0), ((2000, 4, 4), 1), ((128, 512), 0), ((64, 4096), 0),
                    ((8192, 64), 0), ((2, 64, 16, 16), 1), ((2048, 256), 0)]
COLUMN_KERNELS = ("softmax_small_k", "log_softmax_small_k", "softmax_small_k_serial", "log_softmax_small_k_serial",
                  "softmax_quad_k", "log_softmax_quad_k",
                  "softmax_columns", "log_softmax_columns", "slab_max", "softmax_slab_exps",
                  "log_softmax_slab_sums")


def _choices(calls):
    """What a kernel call was asked to do: its arguments other than arrays."""
    return [tuple(a for a in args if not isinstance(a, np.ndarray)) for args in calls]


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("layout", PARALLEL_LAYOUTS, ids=str)
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("mode", ["fresh", "out", "in place"])
def test_a_parallel_size_plan_runs_what_choosing_again_runs(monkeypatch, kernel_calls, rng, name, layout,
                                                            threads, mode):
    shape, axis = layout
    x = rng.standard_normal(shape).astype(np.float32)
    monkeypatch.setattr(backend, "num_threads", lambda: threads)
    calls = kernel_calls(*COLUMN_KERNELS)
    expected = _unplanned(x, axis, name, mode, 1.0)
    chosen = _choices(calls)
    backend._column_plans.clear()
    for _ in range(2):  # the first call makes the plan's choice for the thread count, the second uses it
        calls.clear()
        np.testing.assert_array_equal(called_in_mode(FUNCTIONS[name], x, mode, axis=axis), expected)
        assert _choices(calls) == chosen
    ((key, (shape3, small_k, blocks, by_threads)),) = backend._column_plans.items()
    if mode == "in place" and shape == (2000, 4, 4):  # narrow columns in place: moved to the end
        assert (shape3, by_threads, chosen) == (None, None, [])
        return
    assert chosen  # a column kernel ran
    assert small_k is None and blocks is None
    # the slabs (which split their work on each call) are chosen as BY_SLABS; softmax's tiles split
    # by the output's address choose once for each thread count and alignment of the output
    slabs = threads == 2 and shape == (2048, 256)
    by_address = threads == 2 and name == "softmax" and shape in [(256, 256), (128, 512)]
    choice = by_threads[threads]
    assert (isinstance(choice, tuple) and choice[0] is backend.BY_SLABS) == slabs
    assert (choice is backend.BY_ADDRESS) == by_address
    others = [key for key in by_threads if key != threads]
    if by_address:  # one or two alignments, as the outputs came
        assert 1 <= len(others) <= 2 and all(key[0] == threads and key[1] in (True, False) for key in others)
    else:
        assert others == []


@pytest.mark.parametrize("layout", [((64, 4096), 0), ((128, 512), 0), ((8192, 64), 0)], ids=str)
def test_a_parallel_size_plan_chooses_for_each_thread_count(monkeypatch, kernel_calls, rng, layout):
    shape, axis = layout
    x = rng.standard_normal(shape).astype(np.float32)
    threads = [1]
    monkeypatch.setattr(backend, "num_threads", lambda: threads[0])  # (changing threads[0] keeps the plans)
    calls = kernel_calls(*COLUMN_KERNELS)
    backend._column_plans.clear()
    for threads[0] in (1, 2, 1, 2):
        calls.clear()
        expected = _unplanned(x, axis, "log_softmax", "fresh", 1.0)
        chosen = _choices(calls)
        calls.clear()
        np.testing.assert_array_equal(sk.log_softmax(x, axis=axis), expected)
        assert _choices(calls) == chosen
    ((key, plan),) = backend._column_plans.items()
    assert sorted(plan[3]) == [1, 2]
    assert plan[3][1] != plan[3][2]  # these layouts split their work for two threads


@pytest.mark.parametrize("shape", [(400, 96), (1000, 64)])
def test_softmax_tiles_split_by_address_choose_for_each_alignment(monkeypatch, kernel_calls, rng, shape):
    x = rng.standard_normal(shape).astype(np.float32)
    monkeypatch.setattr(backend, "num_threads", lambda: 2)
    calls = kernel_calls(*COLUMN_KERNELS)
    raw = np.empty(x.nbytes + 128, np.uint8)
    line = (-raw.__array_interface__["data"][0]) % 64

    def out_at(offset):  # an output starting ``offset`` bytes past a cache line
        return raw[line + offset : line + offset + x.nbytes].view(np.float32).reshape(shape)

    backend._column_plans.clear()
    for offset in (0, 16, 0, 16):
        out = out_at(offset)
        calls.clear()
        expected = backend.softmax_family(  # the general path, into the same output
            x, (0,), mode=backend.MODE_SOFTMAX, negate=False, temperature=1.0, where=None,
            kernel_dtype=x.dtype, result_dtype=x.dtype, out=out,
        ).copy()
        chosen = _choices(calls)
        calls.clear()
        np.testing.assert_array_equal(sk.softmax(x, axis=0, out=out), expected)
        assert _choices(calls) == chosen
    ((key, plan),) = backend._column_plans.items()
    by_threads = plan[3]
    assert by_threads[2] is backend.BY_ADDRESS
    assert by_threads[(2, True)] != by_threads[(2, False)]  # items of 64 bytes a row against 256


def test_plans_are_bounded(monkeypatch):
    monkeypatch.setattr(backend, "PLANS_MAX", 5)
    for n in range(2, 20):
        sk.log_softmax(np.ones((n, 16), np.float32), axis=0)
        assert 1 <= len(backend._column_plans) <= 5


def test_in_place_has_plans_of_its_own(rng):
    """Narrow columns: taken as they lie into a fresh result, moved to the end in place (where
    each row's masked store would hold up the next row's loads; ``_columns_as_they_lie``)."""
    backend._column_plans.clear()
    x = rng.standard_normal((400, 12)).astype(np.float32)
    expected = sk.softmax(x, axis=0)
    np.testing.assert_array_equal(sk.softmax(x, axis=0, out=x), expected)
    plans = backend._column_plans
    assert plans[((400, 12), 0, 4, backend.MODE_SOFTMAX, False, False)][0] == (1, 400, 12)
    assert plans[((400, 12), 0, 4, backend.MODE_SOFTMAX, True, False)] == (None, None, None, None)




def _row_plan(shape, name="softmax", dtype=np.float32):
    backend._row_plans.clear()
    FUNCTIONS[name](np.zeros(shape, dtype))
    ((key, plan),) = backend._row_plans.items()
    assert key == (shape, np.dtype(dtype).itemsize, MODES[name])
    return plan


def test_what_a_row_plan_holds():
    k = backend.kernels()
    short = (k.softmax_short_rows_serial, k.softmax_short_rows, (), 0)  # work 0: serial
    assert _row_plan((10,)) == short
    assert _row_plan((3, 2, 121), "log_softmax") == (k.log_softmax_short_rows_serial, k.log_softmax_short_rows, (), 0)
    assert _row_plan((3, 2, 120), "log_softmax") == (k.log_softmax_paired_rows_serial, k.log_softmax_paired_rows, (), 0)
    assert _row_plan((3, 10), "log_softmax", np.float64)[0] is k.log_softmax_counted_short_rows_serial
    packed = (k.packed_softmax_rows_serial, k.packed_softmax_rows, ((0,) * 10,), 0)
    assert _row_plan((100, 10)) == packed
    assert _row_plan((10, 2000), "log_softmax") == (k.log_softmax_rows_serial, None, (None, None), 0)  # (no mask)
    # from the parallel size, the work that use_parallel judges per call (the thread count)
    assert _row_plan((64, 1000)) == (k.softmax_rows_serial, None, (None, None), 64000)
    assert _row_plan((2048, 4))[3] == 4 * 8192  # packed rows: their work counted four times
    assert _row_plan((1000, 4))[3] == 0


@pytest.mark.parametrize("threads", [1, 2])
def test_a_row_plan_takes_the_threads_of_each_call(monkeypatch, kernel_calls, rng, threads):
    serial, parallel = kernel_calls("packed_log_softmax_rows_serial"), kernel_calls("packed_log_softmax_rows")
    x = rng.standard_normal((256, 64)).astype(np.float32)  # packed: work 2 x 16384
    expected = sk.log_softmax(x)
    plan = backend._row_plans[((256, 64), 4, backend.MODE_LOG_SOFTMAX)]
    assert plan[3] == 32768
    monkeypatch.setattr(backend, "num_threads", lambda: threads)  # (forgets the plan)
    backend._row_plans[((256, 64), 4, backend.MODE_LOG_SOFTMAX)] = plan
    serial.clear(), parallel.clear()
    np.testing.assert_array_equal(sk.log_softmax(x), expected)
    assert (len(serial), len(parallel)) == ((1, 0) if threads == 1 else (0, 1))
    if threads == 2:
        assert parallel[0][:2] == (256, 2)


def test_the_remembered_row_plan_is_what_runs(rng):
    x = rng.standard_normal((8, 10)).astype(np.float32)
    backend._row_plans.clear()
    expected = sk.softmax(x)
    ((key, (kernel, parallel, middle, work)),) = backend._row_plans.items()
    calls = []

    def spy(*args):
        calls.append(len(args))
        kernel(*args)

    backend._row_plans[key] = (spy, parallel, middle, work)  # (a dict store: kept)
    np.testing.assert_array_equal(sk.softmax(x), expected)
    assert calls == [5]


def test_setting_a_limit_forgets_the_row_plans(monkeypatch, kernel_calls, rng):
    x = rng.standard_normal((8, 10)).astype(np.float32)
    expected = sk.log_softmax(x)
    assert backend._row_plans[((8, 10), 4, backend.MODE_LOG_SOFTMAX)][0] is backend.kernels().log_softmax_paired_rows_serial
    monkeypatch.setattr(backend, "SHORT_ROW", 0)  # no short rows: the general kernels
    assert not backend._row_plans
    calls = kernel_calls("log_softmax_rows_serial")
    result = sk.log_softmax(x)
    assert len(calls) == 1
    # another kernel: within the policy's 4 ulp of the exact result (near 0 in ulps of 1)
    assert ulp_error(result, softmax_ref(x, compute=np.longdouble, log=True), floor=1).max() <= 4
    assert ulp_error(expected, softmax_ref(x, compute=np.longdouble, log=True), floor=1).max() <= 4


# masked rows, below the parallel size: the general kernels' serial
# form planned for rows too few for the fill, the fill's (softmax from MASKED_FILL_MIN_ROWS,
# log_softmax from MASKED_LOG_FILL_MIN_ROWS, short or packed rows) beyond; rows of the parallel
# size chosen per call; masks of the rows' shape, and broadcast over the leading axes (an action
# mask shared by a batch, a padding mask over heads)
MASKED_ROW_SHAPES = [
    ((10,), (10,)), ((8, 10), (8, 10)), ((3, 2, 121), (3, 2, 121)), ((4, 2000), (4, 2000)),
    ((100, 10), (100, 10)), ((16, 10), (16, 10)), ((2, 40, 10), (2, 40, 10)), ((64, 1000), (64, 1000)),
    ((8, 10), (10,)), ((3, 2, 121), (3, 1, 121)), ((100, 10), (10,)), ((2, 40, 10), (40, 10)), ((64, 1000), (1000,)),
]


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, mask_shape", MASKED_ROW_SHAPES, ids=str)
@pytest.mark.parametrize("mode", ["fresh", "out", "in place"])
def test_a_masked_row_plan_gives_the_general_paths_bits(rng, name, dtype, shape, mask_shape, mode):
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    mask = rng.random(mask_shape) < 0.7
    x.reshape(-1)[::7] = np.inf  # infinite maxes, masked or not
    x.reshape(-1)[5] = np.nan
    mask.reshape(-1, shape[-1])[:, 0] = True
    mask.reshape(-1, shape[-1])[-1] = False  # a row with nothing unmasked
    backend._row_plans.clear()
    options = {"temperature": 0.7, "where": mask}
    with np.errstate(invalid="ignore"):
        first = called_in_mode(FUNCTIONS[name], x, mode, **options)
        assert list(backend._row_plans) == [(shape, x.itemsize, MODES[name], mask_shape)]
        second = called_in_mode(FUNCTIONS[name], x, mode, **options)  # the plan's
        expected = called_in_mode(FUNCTIONS[name], x, mode, **(options | {"where": mask.tolist()}))  # general path
    np.testing.assert_array_equal(first, expected)
    np.testing.assert_array_equal(second, expected)


def test_what_a_masked_row_plan_holds():
    k = backend.kernels()

    def plan(shape, name="softmax"):
        backend._row_plans.clear()
        FUNCTIONS[name](np.zeros(shape, np.float32), where=np.ones(shape, bool))
        ((key, masked_plan),) = backend._row_plans.items()
        assert key == (shape, 4, MODES[name], shape)
        return masked_plan

    def filled(shape, name="softmax"):
        x2 = np.zeros(shape, np.float32).reshape(-1, shape[-1])
        serial, _, width, _ = backend._masked_short_kernels(k, x2, name == "log_softmax")
        return serial, (width, backend._fill_chunk(x2))

    assert plan((8, 10)) == (k.softmax_rows_serial, None)
    assert plan((10,), "log_softmax") == plan((9, 10), "log_softmax") == (k.log_softmax_rows_serial, None)
    assert plan((4, 2000)) == (k.softmax_rows_serial, None)  # (not short: never filled)
    assert plan((63, 10)) == (k.softmax_rows_serial, None)
    assert plan((64, 100)) == filled((64, 100)) and plan((64, 100))[1][0] is None  # short rows
    assert plan((10, 10), "log_softmax") == filled((10, 10), "log_softmax")
    assert plan((1000, 10)) == filled((1000, 10)) and plan((1000, 10))[1][0] == (0,) * 10  # packed
    assert plan((1000, 10))[0] is k.masked_packed_softmax_rows_serial
    assert plan((64, 1000)) == plan((5000, 10)) == (None, None)  # the parallel size


@pytest.mark.parametrize(
    "shape, mask_shape", [((8, 10), (8, 10)), ((100, 10), (100, 10)), ((8, 10), (10,)), ((100, 10), (10,))],
    ids=["general kernels", "filled", "general kernels, broadcast", "filled, broadcast"],
)
def test_the_remembered_masked_row_plan_is_what_runs(monkeypatch, rng, shape, mask_shape):
    x = rng.standard_normal(shape).astype(np.float32)
    mask = rng.random(mask_shape) < 0.7
    backend._row_plans.clear()
    expected = sk.log_softmax(x, where=mask)
    ((key, (kernel, filled)),) = backend._row_plans.items()
    assert (filled is None) == (shape == (8, 10))
    calls = []

    def spy(*args):
        calls.append(args)
        kernel(*args)

    def no_run_rows(*args, **kwargs):
        raise AssertionError("chosen again")

    monkeypatch.setattr(backend, "_run_rows", no_run_rows)  # (forgets the plans)
    backend._row_plans[key] = (spy, filled)
    np.testing.assert_array_equal(sk.log_softmax(x, where=mask), expected)
    assert len(calls) == 1
    args = calls[0]
    mask2, mask_rows = args[2:4] if filled is None else args[1:3]
    assert args[0] is x and np.shares_memory(mask2, mask)  # read where they lie
    assert (mask_rows is None) == (mask_shape == shape)


def test_setting_a_limit_forgets_the_masked_row_plans(monkeypatch, kernel_calls, rng):
    x = rng.standard_normal((8, 10)).astype(np.float32)
    mask = rng.random((8, 10)) < 0.7
    expected = sk.softmax(x, where=mask)
    assert backend._row_plans[((8, 10), 4, backend.MODE_SOFTMAX, (8, 10))] == (backend.kernels().softmax_rows_serial, None)
    monkeypatch.setattr(backend, "MASKED_FILL_MIN_ROWS", 8)  # now filled
    assert not backend._row_plans
    calls = kernel_calls("masked_softmax_short_rows_serial")
    np.testing.assert_array_equal(sk.softmax(x, where=mask), expected)  # (the fill: the same bits)
    assert len(calls) == 1
    assert backend._row_plans[((8, 10), 4, backend.MODE_SOFTMAX, (8, 10))][1] == (None, backend._fill_chunk(x))
