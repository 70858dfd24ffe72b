"""The short-row kernels: unmasked float32 and float64 rows of at most ``SHORT_ROW`` elements.

They must give what the general row kernels give (the same operations; only the order in which
a float32 row's float64 sum is added up differs, far below a float32 ulp; a float64 row's exps
are split as the general kernels' exact block sums, so its results are theirs bit for bit), on
ordinary and special values, with every option, serial and parallel, and be what such rows
actually take.
"""

from __future__ import annotations

import numpy as np
import pytest

import softmaxkit as sk
from softmaxkit import _numpy_backend as backend
from naive import (
    assert_matches, called_in_mode, log_softmax_ref, logsumexp_ref, softmax_ref, mixed_rows, special_rows, ulp_error,
)

LIMIT = 1024  # the kernels' SHORT_ROW (log_softmax, logsumexp), checked below
SOFTMAX_LIMIT = 512  # their SHORT_SOFTMAX_ROW
PAIRED_LIMIT = 120  # their PAIRED_ROW: log_softmax's rows taken two at a time


@pytest.fixture(autouse=True)
def _rows_one_at_a_time(monkeypatch):
    """The short-row kernels' tests: rows that the packed kernels would take (many rows of at
    most 16) stay here (``tests/test_packed_rows.py`` compares those with these)."""
    monkeypatch.setattr(backend, "PACKED_ROW", 0)


def test_limits_are_the_kernels():
    assert backend.kernels().SHORT_ROW == LIMIT
    assert backend.kernels().SHORT_SOFTMAX_ROW == SOFTMAX_LIMIT


CALLS = {
    "softmax": lambda x, **kw: sk.softmax(x, **kw),
    "log_softmax": lambda x, **kw: sk.log_softmax(x, **kw),
    "softmin": lambda x, **kw: sk.softmin(x, **kw),
    "logsumexp": lambda x, **kw: sk.logsumexp(x, axis=-1),
}


def _both_paths(monkeypatch, call):
    """``call()`` through the short-row kernels, then through the general ones."""
    with monkeypatch.context() as m:
        m.setattr(backend, "SHORT_ROW", LIMIT)  # softmax's short kernel on rows up to LIMIT too
        short = call()
    with monkeypatch.context() as m:
        m.setattr(backend, "SHORT_ROW", 0)
        general = call()
    return short, general


def _assert_close_to_general(short, general):
    """Equal, but for a float64 sum rounded differently: at most 1 ulp apart, rarely."""
    np.testing.assert_array_equal(np.isnan(short), np.isnan(general))
    err = ulp_error(short, general.astype(np.float64), np.float32, floor=1e-30)
    assert err.max() <= 1, err.max()
    assert np.mean(short != general) < 1e-3


@pytest.mark.parametrize("name", list(CALLS))
@pytest.mark.parametrize("n", [1, 2, 15, 16, 17, 64, 100, 1000, 1024])
@pytest.mark.parametrize("parallel", [False, True])
def test_short_rows_match_the_general_kernels(monkeypatch, rng, name, n, parallel):
    if parallel:
        monkeypatch.setattr(backend, "PARALLEL_MIN_ELEMENTS", 0)
        monkeypatch.setattr(backend, "num_threads", lambda: 2)
    x = (rng.standard_normal((37, n)) * 4).astype(np.float32)
    short, general = _both_paths(monkeypatch, lambda: CALLS[name](x))
    _assert_close_to_general(short, general)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("temperature", [0.3, 1.0, 7.5])
@pytest.mark.parametrize("mode", ["fresh", "out", "in place"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_options_and_outputs(monkeypatch, rng, name, temperature, mode, dtype):
    if dtype == np.float32:
        x0 = (rng.standard_normal((50, 21)) * 6).astype(np.float32)
    else:
        x0 = _float64_rows(rng, 50, 21)
    call = CALLS[name]
    short, general = _both_paths(monkeypatch, lambda: called_in_mode(call, x0, mode, temperature=temperature))
    if dtype == np.float32:
        _assert_close_to_general(short, general)
    else:
        _assert_float64_close_to_general(short, general, name == "log_softmax")
    ref = (log_softmax_ref if name == "log_softmax" else softmax_ref)(x0, temperature=temperature, compute=np.longdouble)
    floor = 1 if name == "log_softmax" else None
    assert ulp_error(short, ref, dtype, floor=floor).max() <= 4


@pytest.mark.parametrize("name", list(CALLS))
@pytest.mark.parametrize("width", [4, 20])  # a partial vector alone; whole vectors and a partial one
def test_special_values_match_the_general_kernels(monkeypatch, name, width):
    rows = special_rows()
    x = np.full((rows.shape[0], width), -np.inf, np.float32)
    x[:, :4] = rows
    if width > 4:  # the specials again in the partial last vector
        x[:, -4:] = rows
    with np.errstate(all="ignore"):
        short, general = _both_paths(monkeypatch, lambda: CALLS[name](x))
    np.testing.assert_array_equal(short, general)


@pytest.mark.parametrize("width", [4, 10, 16, 20, 50])
@pytest.mark.parametrize("parallel", [False, True])
def test_softmax_rows_in_place_equal_rows_into_another_array(monkeypatch, rng, width, parallel):
    # softmax stores a row's last, partial vector after the next row's passes (in place it held
    # up their loads; a row of one vector is kept in registers whole): the results must not
    # depend on where they go, also where special rows (written by the scalar path) come between
    # them, and every range of rows a thread takes must store its last row's
    if parallel:
        monkeypatch.setattr(backend, "PARALLEL_MIN_ELEMENTS", 0)
        monkeypatch.setattr(backend, "num_threads", lambda: 2)
    rows = special_rows()
    x0 = (rng.standard_normal((57, width)) * 4).astype(np.float32)
    x0[3::5, :4] = rows  # a special row every fifth (11 of them), its other entries finite
    x0[4::9, -1] = np.nan  # a NaN in the partial last vector
    with np.errstate(all="ignore"):
        fresh = sk.softmax(x0)
        out = np.full_like(x0, 7.0)
        assert sk.softmax(x0, out=out) is out
        y = x0.copy()
        assert sk.softmax(y, out=y) is y
        short, general = _both_paths(monkeypatch, lambda: sk.softmax(x0))
    np.testing.assert_array_equal(out, fresh)
    np.testing.assert_array_equal(y, fresh)
    np.testing.assert_array_equal(short, fresh)
    finite = np.isfinite(x0).all(axis=1)
    _assert_close_to_general(short[finite], general[finite])
    np.testing.assert_array_equal(short[~finite], general[~finite])
    assert np.isnan(fresh[4::9]).all()


def test_special_values_against_references():
    x = special_rows()
    with np.errstate(all="ignore"):  # (the references overflow float32 where the results do)
        assert_matches(sk.softmax(x), softmax_ref(x))
        assert_matches(sk.log_softmax(x), log_softmax_ref(x), log=True)
        assert_matches(sk.logsumexp(x, axis=-1), logsumexp_ref(x, axis=-1))
    # the tiny tail that log1p keeps
    assert sk.logsumexp(np.array([[0.0, -40.0]], np.float32), axis=-1)[0] == np.float32(4.248354e-18)


@pytest.mark.parametrize(
    "name, shape, dtype, where, taken",
    [
        ("softmax", (8, 10), np.float32, None, True),
        ("softmax", (3, SOFTMAX_LIMIT), np.float32, None, True),
        ("softmax", (3, SOFTMAX_LIMIT + 1), np.float32, None, False),  # the general kernel from here on
        ("log_softmax", (3, PAIRED_LIMIT + 1), np.float32, None, True),  # (rows up to PAIRED_LIMIT: in pairs)
        ("log_softmax", (3, LIMIT), np.float32, None, True),
        ("log_softmax", (3, LIMIT + 1), np.float32, None, False),
        ("logsumexp", (3, LIMIT), np.float32, None, True),
        ("logsumexp", (3, LIMIT + 1), np.float32, None, False),
        ("softmax", (8, 10), np.float64, None, True),  # float64 too (its own log_softmax kernel: below)
        ("softmax", (3, SOFTMAX_LIMIT + 1), np.float64, None, False),
        ("logsumexp", (3, LIMIT), np.float64, None, True),
        ("logsumexp", (3, LIMIT + 1), np.float64, None, False),
        ("log_softmax", (8, 10), np.float64, None, False),
        ("softmax", (8, 10), np.float32, "mask", False),
        ("logsumexp", (8, 10), np.float32, "mask", False),
    ],
)
def test_which_rows_take_the_short_kernels(kernel_calls, rng, name, shape, dtype, where, taken):
    calls = kernel_calls(f"{name}_short_rows_serial")
    x = rng.standard_normal(shape).astype(dtype)
    mask = None if where is None else rng.random(shape) < 0.7
    if name == "logsumexp":
        sk.logsumexp(x, axis=-1, where=mask)
    else:
        getattr(sk, name)(x, where=mask)
    assert bool(calls) == taken


def test_log_softmax_rows_up_to_the_paired_limit_go_in_pairs(kernel_calls, rng):
    paired, single = kernel_calls("log_softmax_paired_rows_serial"), kernel_calls("log_softmax_short_rows_serial")
    sk.log_softmax(rng.standard_normal((8, PAIRED_LIMIT)).astype(np.float32))
    assert len(paired) == 1 and not single


@pytest.mark.parametrize("n, kernel", [(30, "log_softmax_paired_rows"), (PAIRED_LIMIT, "log_softmax_paired_rows"),
                                       (PAIRED_LIMIT + 1, "log_softmax_short_rows")])
def test_parallel_short_rows_take_the_range_kernel(monkeypatch, kernel_calls, rng, n, kernel):
    assert backend.kernels().PAIRED_ROW == PAIRED_LIMIT
    monkeypatch.setattr(backend, "PARALLEL_MIN_ELEMENTS", 0)
    monkeypatch.setattr(backend, "num_threads", lambda: 2)
    calls = kernel_calls(kernel)
    x = rng.standard_normal((9, n)).astype(np.float32)
    y = sk.log_softmax(x)
    assert len(calls) == 1 and calls[0][:2] == (9, 2)
    assert ulp_error(y, log_softmax_ref(x), np.float32, floor=1).max() <= 4


# log_softmax's rows of at most PAIRED_ROW go two at a time (``_short_log_pair_run``), with the
# arithmetic of one row at a time (``_short_log_row_run``): the same results, bit for bit, for
# every kind of row and pair (a peaked row falls short first or second in its pair, a special
# row takes its pair a row at a time, an odd last row pairs with itself), serial and parallel,
# fresh, out= and in place, with a temperature.
@pytest.mark.parametrize("n_rows, n", [(1, 7), (2, 16), (9, 30), (301, 64), (300, 100), (257, 10)])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("mode", ["fresh", "in place"])
@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_paired_rows_match_rows_one_at_a_time(monkeypatch, rng, n_rows, n, threads, mode, temperature):
    k = backend.kernels()
    assert n <= k.PAIRED_ROW
    if threads > 1:
        monkeypatch.setattr(backend, "PARALLEL_MIN_ELEMENTS", 0)
        monkeypatch.setattr(backend, "num_threads", lambda: threads)
    x0 = mixed_rows(rng, n_rows, n)

    def call():
        x = x0.copy()
        return sk.log_softmax(x, temperature=temperature, out=x if mode == "in place" else None)

    paired = call()
    with monkeypatch.context() as m:
        m.setattr(k, "PAIRED_ROW", 0)
        alone = call()
    np.testing.assert_array_equal(paired, alone)
    finite = np.isfinite(x0).all(axis=1)
    assert ulp_error(paired[finite], log_softmax_ref(x0[finite], temperature=temperature), np.float32,
                     floor=1).max() <= 4


# ---- float64 rows ---------------------------------------------------------------------------


def _float64_rows(rng, n_rows, n):
    """float64 rows of spread values, with rows whose sum a plain float64 sum of lanes would
    round differently from the exact one: one entry at the max and the rest about 36.7 below it
    (each exp near 2**-53 of the max's), or spread over 2**-60 ... 1 of it."""
    x = rng.standard_normal((n_rows, n)) * 6
    x[1::4] = -36.7 + rng.uniform(-0.5, 0.5, (len(x[1::4]), n))
    x[1::4, 0] = 0.0
    x[2::4] = -rng.uniform(0, 41.6, (len(x[2::4]), n))
    return x


def _assert_float64_close_to_general(short, general, log):
    """Equal, but on ``_float64_rows``' peaked rows (``1::4``): there a row's sum below its max
    (``rest``, which the max's log_softmax ``-log1p(rest)`` and the logsumexp ``m + log1p(rest)``
    keep to its own precision) is tiny against the max's term, all of it low parts, which added
    in another order round it apart by an ulp or two of its own (2 ulp seen for rows of 1000):
    there log results (``log``) are within an ulp of 1, as the core's accuracy policy measures
    results near 0."""
    peaked = np.zeros(len(short), bool)
    peaked[1::4] = True
    np.testing.assert_array_equal(short[~peaked], general[~peaked])
    if not log:
        np.testing.assert_array_equal(short, general)
    assert ulp_error(short[peaked], general[peaked], np.float64, floor=1).max() <= 1


@pytest.mark.parametrize("name", list(CALLS))
@pytest.mark.parametrize("n", [1, 2, 7, 8, 9, 100, 512, 1000, 1024])
@pytest.mark.parametrize("parallel", [False, True])
def test_float64_rows_match_the_general_kernels(monkeypatch, rng, name, n, parallel):
    # the exact sum rounded once either way: the general kernels' results (but for a tiny rest's
    # rounding), and within the core's 4 ulp of a long-double reference
    if parallel:
        monkeypatch.setattr(backend, "PARALLEL_MIN_ELEMENTS", 0)
        monkeypatch.setattr(backend, "num_threads", lambda: 2)
    x = _float64_rows(rng, 37, n)
    short, general = _both_paths(monkeypatch, lambda: CALLS[name](x))
    log = name in ("log_softmax", "logsumexp")
    _assert_float64_close_to_general(short, general, log)
    with np.errstate(all="ignore"):
        if name == "logsumexp":
            ref = logsumexp_ref(x, axis=-1, compute=np.longdouble)
        elif name == "log_softmax":
            ref = log_softmax_ref(x, compute=np.longdouble)
        else:
            ref = softmax_ref(x, compute=np.longdouble, negate=name == "softmin")
    assert ulp_error(short, ref, np.float64, floor=1 if log else None).max() <= 4


@pytest.mark.parametrize("name", list(CALLS))
@pytest.mark.parametrize("width", [4, 20])
def test_float64_special_values_match_the_general_kernels(monkeypatch, name, width):
    rows = special_rows().astype(np.float64)
    rows[np.isfinite(rows) & (np.abs(rows) > 1e38)] *= 1e269  # float32's huge entries as float64's
    x = np.full((rows.shape[0], width), -np.inf)
    x[:, :4] = rows
    if width > 4:
        x[:, -4:] = rows
    with np.errstate(all="ignore"):
        short, general = _both_paths(monkeypatch, lambda: CALLS[name](x))
    np.testing.assert_array_equal(short, general)


@pytest.mark.parametrize("threads", [1, 2])
def test_float64_log_softmax_rows_are_all_counted(monkeypatch, kernel_calls, rng, threads):
    # float64 keeps the count for its 4 ulp bound: its own kernel, not the uncounted runs
    if threads > 1:
        monkeypatch.setattr(backend, "PARALLEL_MIN_ELEMENTS", 0)
        monkeypatch.setattr(backend, "num_threads", lambda: threads)
    name = "log_softmax_counted_short_rows" + ("_serial" if threads == 1 else "")
    counted, paired = kernel_calls(name), kernel_calls("log_softmax_paired_rows" + ("_serial" if threads == 1 else ""))
    sk.log_softmax(rng.standard_normal((40, 30)))
    assert len(counted) == 1 and not paired


def test_float64_rows_never_longer_than_the_exact_sums_allow(monkeypatch, kernel_calls, rng):
    # SHORT_ROW set above the kernels' (to try longer float32 rows) leaves float64 rows past it
    # on the general kernels: a row's split sums are exact for at most SHORT_ROW terms
    monkeypatch.setattr(backend, "SHORT_ROW", 4 * LIMIT)
    short, general = kernel_calls("logsumexp_short_rows_serial"), kernel_calls("logsumexp_rows_serial")
    sk.logsumexp(rng.standard_normal((3, LIMIT + 1)), axis=-1)
    sk.logsumexp(rng.standard_normal((3, LIMIT + 1)).astype(np.float32), axis=-1)
    assert len(general) == 1 and len(short) == 1
