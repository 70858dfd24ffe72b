"""Accuracy in ulps against high-precision references (issue 2, "Accuracy").

Tolerances and why:

* float32 / float64 softmax: **4 ulp** of the exact softmax of the given inputs. An exp accurate to
  ~1-2 ulp, one division (0.5 ulp) and a sum accurate to a few eps relative leave room under 4 --
  but only if ``x - max`` is computed exactly: rounding it costs |x - max| * eps/2 relative, about
  60 ulp in float32 at |x - max| ~ 70 (see ../shared/KERNELS.md), which the "trap" rows below catch.
* log_softmax / logsumexp: **4 ulp, or 4 ulp of 1 where |result| < 1** (absolute 4 eps): the
  result is a sum of terms of size up to |result|, so an error of a few eps of the largest term
  is what a careful implementation can promise near 0.
* float16 / bfloat16: **1 ulp of the correctly rounded value**: the float32 computation is within a
  few float32 ulps, and one final rounding to 16 bits lands on the correctly rounded value or its
  neighbour.
* The ulp is ``np.spacing`` of the reference rounded to the output dtype (subnormal results use the
  subnormal spacing), see ``naive.ulp_error``.

References: float64 for float32 inputs (an exact ``x - max``, exp/log with ~1e-16 error, 2**29 times
finer than a float32 ulp), long double with an exactly carried ``x - max`` for float64 inputs
(``naive.softmax_f64_exact``), mpmath for single rows.
"""

from __future__ import annotations

import numpy as np
import pytest

import softmaxkit as sk
from naive import (
    bits_distance_16,
    log_softmax_mpmath,
    log_softmax_ref,
    logsumexp_mpmath,
    logsumexp_ref,
    mp_to_longdouble,
    softmax_f64_exact,
    softmax_mpmath,
    softmax_ref,
    ulp_error,
)

SOFTMAX_ULP = 4
LOG_ULP = 4
HALF_ULP = 1  # float16 / bfloat16, against the correctly rounded value


def softmax_reference(x, axis=-1, where=None, temperature=1.0):
    """Exact-enough softmax for float32 (float64 math) or float64 (long double) inputs."""
    x = np.asarray(x)
    if x.dtype == np.float64 and where is None and temperature == 1.0:
        return softmax_f64_exact(x, axis)
    compute = np.longdouble if x.dtype == np.float64 else np.float64
    return softmax_ref(x, axis, where=where, temperature=temperature, compute=compute)


def _compute_for(x):
    return np.longdouble if np.asarray(x).dtype == np.float64 else np.float64


def assert_ulps(actual, reference, limit, *, floor=None, what=""):
    err = ulp_error(actual, reference, floor=floor)
    worst = float(np.max(err, initial=0.0))
    if worst > limit:
        i = np.unravel_index(np.argmax(err), err.shape)
        raise AssertionError(
            f"{what}: {worst:.2f} ulp > {limit} at {i}: got {np.asarray(actual)[i]!r}, "
            f"exact {np.asarray(reference)[i]!r}"
        )


# --------------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------------

def _rows(kind, dtype, rng, shape=(48, 257)):
    """Logit arrays that stress different parts of the computation."""
    n_rows, n = shape
    if kind.startswith("normal"):
        scale = float(kind[len("normal"):])
        return (rng.standard_normal(shape) * scale).astype(dtype)
    if kind == "trap":
        # one large maximum and small values with finer ulps: x - max rounds unless done exactly
        x = rng.uniform(-8, 8, shape)
        x[:, 0] = 64.0 if dtype == np.float32 else 512.0
        x[:, 1] = x[:, 0] - rng.uniform(0, 30, n_rows)
        return x.astype(dtype)
    if kind == "range1e4":
        # |x - max| up to 1e4: most outputs underflow; near-max ones must still be accurate
        x = -rng.uniform(0, 1e4, shape)
        x[:, :8] = -rng.uniform(0, 20, (n_rows, 8))
        x[:, 8] = 0.0
        return (x + 3.0).astype(dtype)
    if kind == "subnormal":
        # outputs in the subnormal range: exp(-88 .. -103) in float32, exp(-709 .. -744) in float64
        lo, hi = (87.0, 103.0) if dtype == np.float32 else (708.0, 744.0)
        x = -rng.uniform(lo, hi, shape)
        x[:, 0] = 0.0
        return x.astype(dtype)
    if kind == "ties":
        x = rng.integers(-3, 3, shape).astype(dtype)
        return x
    if kind == "large_offset":
        return (rng.standard_normal(shape) * 3 + 1000.0).astype(dtype)
    raise ValueError(kind)


KINDS = ["normal1", "normal10", "normal100", "trap", "range1e4", "subnormal", "ties",
         "large_offset"]
DTYPES = [np.float32, np.float64]


# --------------------------------------------------------------------------------------------
# softmax, log_softmax, softmin: float32 and float64
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("axis", [-1, 0, None], ids=lambda a: f"axis={a}")
def test_softmax_within_4_ulp(dtype, kind, axis, rng):
    x = _rows(kind, dtype, rng)
    if axis == 0:
        x = np.ascontiguousarray(x.T)  # keep each slice one of the designed rows
    r = sk.softmax(x, axis=axis)
    assert r.dtype == dtype
    assert_ulps(r, softmax_reference(x, axis), SOFTMAX_ULP, what=f"softmax {kind}")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("axis", [-1, 0, None], ids=lambda a: f"axis={a}")
def test_log_softmax_within_4_ulp(dtype, kind, axis, rng):
    x = _rows(kind, dtype, rng)
    if axis == 0:
        x = np.ascontiguousarray(x.T)
    r = sk.log_softmax(x, axis=axis)
    assert r.dtype == dtype
    ref = log_softmax_ref(x, axis, compute=_compute_for(x))
    assert_ulps(r, ref, LOG_ULP, floor=1, what=f"log_softmax {kind}")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("kind", ["normal10", "trap", "subnormal"])
def test_softmin_within_4_ulp(dtype, kind, rng):
    x = -_rows(kind, dtype, rng)
    assert_ulps(sk.softmin(x), softmax_reference(-x), SOFTMAX_ULP, what=f"softmin {kind}")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("layout", ["fortran", "transposed_view", "negative_strides", "strided"])
def test_softmax_within_4_ulp_for_every_layout(dtype, layout, rng):
    base = _rows("trap", dtype, rng, shape=(40, 131))
    x = {
        "fortran": np.asfortranarray(base),
        "transposed_view": np.ascontiguousarray(base.T).T,
        "negative_strides": base[::-1, ::-1],
        "strided": np.repeat(base, 2, axis=1)[:, ::2],
    }[layout]
    np.testing.assert_array_equal(x, base[::-1, ::-1] if layout == "negative_strides" else base)
    assert_ulps(sk.softmax(x), softmax_reference(x), SOFTMAX_ULP, what=layout)
    assert_ulps(sk.log_softmax(x), log_softmax_ref(x, -1, compute=_compute_for(x)), LOG_ULP,
                floor=1, what=layout)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape, axis", [((4, 300_000), -1), ((300_000, 4), 0),
                                         ((2, 3, 100_000), (0, 2)), ((1200, 1000), -1),
                                         ((1000, 1200), 0)], ids=str)
def test_long_slices_and_many_rows_within_4_ulp(dtype, shape, axis, rng):
    # long rows may be split across threads; many rows run in parallel; columns use another kernel
    x = (rng.standard_normal(shape) * 8).astype(dtype)
    r = sk.softmax(x, axis=axis)
    assert_ulps(r, softmax_reference(x, axis), SOFTMAX_ULP, what="softmax")
    lr = sk.log_softmax(x, axis=axis)
    assert_ulps(lr, log_softmax_ref(x, axis, compute=_compute_for(x)), LOG_ULP, floor=1,
                what="log_softmax")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("temperature", [0.5, 2.0, 0.25, 8.0])
def test_temperature_powers_of_two_within_4_ulp(dtype, temperature, rng):
    # dividing by a power of two is exact, so the exact answer is the softmax of x / T
    x = _rows("trap", dtype, rng, shape=(16, 101))
    r = sk.softmax(x, temperature=temperature)
    xt = (x / dtype(temperature)).astype(dtype)
    assert np.array_equal(xt * dtype(temperature), x)
    assert_ulps(r, softmax_reference(xt), SOFTMAX_ULP, what=f"T={temperature}")
    assert_ulps(sk.softmin(x, temperature=temperature), softmax_reference(-xt), SOFTMAX_ULP,
                what=f"softmin T={temperature}")
    assert_ulps(sk.log_softmax(x, temperature=temperature),
                log_softmax_ref(xt, -1, compute=_compute_for(x)), LOG_ULP, floor=1)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_masked_softmax_within_4_ulp(dtype, rng):
    x = _rows("trap", dtype, rng, shape=(32, 77))
    mask = rng.random(x.shape) < 0.5
    mask[:, 0] = True
    mask[:, 1] = False  # the second largest is masked out
    r = sk.softmax(x, where=mask)
    ref = softmax_ref(x, -1, where=mask, compute=_compute_for(x))
    assert_ulps(r, ref, SOFTMAX_ULP, what="masked softmax")
    assert_ulps(sk.log_softmax(x, where=mask), log_softmax_ref(x, -1, where=mask,
                                                               compute=_compute_for(x)),
                LOG_ULP, floor=1, what="masked log_softmax")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("n", [1024, 1025, 2048 + 7, 4096])
def test_rows_with_a_blocked_final_pass_within_4_ulp(dtype, n, rng):
    # Rows longer than two blocks (1024) scale, or write their log-probabilities, block by block
    # (the next row is prefetched alongside): every block must get the whole treatment, in
    # place, into out= and into a fresh result, with and without a mask or temperature.
    x = _rows("trap", dtype, rng, shape=(6, n))
    mask = rng.random(x.shape) < 0.7
    mask[:, :2] = True
    for kwargs, xt in (({}, x), ({"where": mask}, x), ({"temperature": 0.5}, x * dtype(2))):
        where = kwargs.get("where")
        ref = softmax_ref(xt, -1, where=where, compute=_compute_for(x))
        log_ref = log_softmax_ref(xt, -1, where=where, compute=_compute_for(x))
        for fn, reference, floor in ((sk.softmax, ref, None), (sk.log_softmax, log_ref, 1)):
            fresh = fn(x, **kwargs)
            out = fn(x, out=np.full_like(x, np.nan), **kwargs)
            in_place = x.copy()
            fn(in_place, out=in_place, **kwargs)
            for got in (fresh, out, in_place):
                assert_ulps(got, reference, LOG_ULP if floor else SOFTMAX_ULP, floor=floor,
                            what=f"{fn.__name__} n={n} {sorted(kwargs)}")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("fuse_above", [-1, 1 << 60], ids=["softmax fused", "softmax by two loops"])
def test_column_blocks_with_partial_vectors_within_4_ulp(dtype, threads, fuse_above, rng, monkeypatch):
    # A non-last axis: unmasked blocks compute their exps, sums and (log_softmax, logsumexp)
    # counts at the max by explicit vectors of 16 / 8 columns, four rows at a time, prefetching
    # the worker's next block.  Widths with a partial last vector (1, 17, 40, 2100, ...), K not
    # a multiple of four, ties at the max, several blocks per worker (across outer indices), in
    # place, into out= and fresh, softmin and a temperature: every column must get the whole
    # treatment.  softmax sums in the vector pass or by two loops depending on the block's width
    # and the CPU (``COLUMN_FUSE_ABOVE_BYTES``): both forms, on every block width, whatever the CPU.
    from softmaxkit import _numpy_backend
    from softmaxkit._threads import max_threads

    monkeypatch.setattr(_numpy_backend, "PARALLEL_MIN_ELEMENTS", 0)
    monkeypatch.setattr(_numpy_backend, "COLUMN_FUSE_ABOVE_BYTES", fuse_above)
    compute = _compute_for(np.zeros(1, dtype))
    before = sk.get_num_threads()
    sk.set_num_threads(min(threads, max_threads()))
    # Blocks of 16 columns (block bytes 1, minimum width 16 and row 1 byte) for the narrow shapes; the library's
    # own blocks for the wide ones (four output rows over 32 KiB), and 4100 columns of K = 21 make
    # a 3120-column block and a narrow one.
    narrow = ((1, 17), (3, 1), (4, 16), (5, 40), (9, 33), (21, 100))
    wide = ((3, 2100), (5, 2100), (21, 4100))
    library_blocks = tuple(
        getattr(_numpy_backend, name)
        for name in ("COLUMN_BLOCK_BYTES", "COLUMN_MIN_BLOCK_WIDTH", "COLUMN_MIN_BLOCK_ROW_BYTES"))
    blocks = {narrow[0]: (1, 16, 1), wide[0]: library_blocks}
    # log_softmax and logsumexp do not depend on fuse_above: checked with the first setting only
    functions = [(sk.softmax, False, False), (sk.softmin, True, False)]
    if fuse_above < 0:
        functions.append((sk.log_softmax, False, True))
    try:
        for k, inner in narrow + wide:
            if (k, inner) in blocks:
                block_bytes, min_width, min_row_bytes = blocks[k, inner]
                monkeypatch.setattr(_numpy_backend, "COLUMN_BLOCK_BYTES", block_bytes)
                monkeypatch.setattr(_numpy_backend, "COLUMN_MIN_BLOCK_WIDTH", min_width)
                monkeypatch.setattr(_numpy_backend, "COLUMN_MIN_BLOCK_ROW_BYTES", min_row_bytes)
            for kind in ("trap" if k > 1 else "normal10", "ties"):
                rows = _rows(kind, dtype, rng, shape=(3 * inner, k))
                x = np.ascontiguousarray(np.moveaxis(rows.reshape(3, inner, k), 2, 1))  # (3, K, inner)
                what = f"K={k} inner={inner} {kind}"
                for fn, negate, log in functions:
                    for kwargs, scale in (({}, 1), ({"temperature": 0.5}, 2)):
                        xt = (-x if negate else x) * dtype(scale)
                        ref = softmax_ref(xt, 1, log=log, compute=compute)
                        fresh = fn(x, axis=1, **kwargs)
                        out = fn(x, axis=1, out=np.full_like(x, np.nan), **kwargs)
                        in_place = x.copy()
                        fn(in_place, axis=1, out=in_place, **kwargs)
                        for got in (fresh, out, in_place):
                            assert_ulps(got, ref, LOG_ULP if log else SOFTMAX_ULP, floor=1 if log else None,
                                        what=f"{fn.__name__} {what} {kwargs}")
                if fuse_above < 0:
                    assert_ulps(sk.logsumexp(x, axis=1), logsumexp_ref(x, 1, compute=compute), LOG_ULP, floor=1,
                                what=f"logsumexp {what}")
    finally:
        sk.set_num_threads(before)


def test_float32_x_minus_max_rounding_is_not_amplified():
    # The classic float32 kernel computes (x - max) in float32: here that rounding alone is
    # ~30 ulp of the result. softmaxkit must stay within 4.
    x = np.array([64.0, 0.1234567, -3.3333333, 5.4321], np.float32)
    naive = np.exp(x - x.max()) / np.sum(np.exp(x - x.max()))
    ref = softmax_reference(x)
    assert np.max(ulp_error(naive.astype(np.float32), ref)) > 4  # the trap is real
    assert_ulps(sk.softmax(x), ref, SOFTMAX_ULP)


def test_float64_against_mpmath_rows(rng):
    # mpmath with 40 digits is the judge here; also validates the long double reference.
    rows = [
        np.concatenate([[512.0], rng.uniform(-8, 8, 40), 512.0 - rng.uniform(0, 740, 20)]),
        np.array([0.0, -40.0, -1e-10, 1e-10, -745.0, -700.0]),
        rng.standard_normal(50) * 30,
    ]
    for row in rows:
        exact = mp_to_longdouble(softmax_mpmath(row))
        assert np.max(ulp_error(softmax_f64_exact(row).astype(np.float64), exact)) <= 0.5 + 1e-3
        assert_ulps(sk.softmax(row), exact, SOFTMAX_ULP, what="softmax vs mpmath")
        lexact = mp_to_longdouble(log_softmax_mpmath(row))
        assert_ulps(sk.log_softmax(row), lexact, LOG_ULP, floor=1, what="log_softmax vs mpmath")
        assert_ulps(np.asarray(sk.logsumexp(row)),
                    mp_to_longdouble([logsumexp_mpmath(row)]).reshape(()), LOG_ULP, floor=1,
                    what="logsumexp vs mpmath")


# --------------------------------------------------------------------------------------------
# logsumexp
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("axis", [-1, 0, None], ids=lambda a: f"axis={a}")
def test_logsumexp_within_4_ulp(dtype, kind, axis, rng):
    x = _rows(kind, dtype, rng)
    r = np.asarray(sk.logsumexp(x, axis=axis))
    assert r.dtype == dtype
    assert_ulps(r, logsumexp_ref(x, axis, compute=_compute_for(x)), LOG_ULP, floor=1,
                what=f"logsumexp {kind}")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_logsumexp_near_zero_within_4_ulp_of_one(dtype, rng):
    # results near 0: m + log(sum) with m ~ -log(n)
    n = 64
    x = (rng.standard_normal((200, n)) * 1e-3 - np.log(n)).astype(dtype)
    r = np.asarray(sk.logsumexp(x, axis=1))
    assert np.max(np.abs(r)) < 0.01
    assert_ulps(r, logsumexp_ref(x, 1, compute=_compute_for(x)), LOG_ULP, floor=1)


# Rows whose logsumexp cancels to almost nothing: the max m = -a and a second entry
# log1p(-exp(-a)) have exps adding up to 1 and the rest lie 30-60 below, so the exact result is
# below 1e-6 (the tail adds up to 3e-9 at most) while m and log(sum) are up to 8. The result's
# relative condition number, sum(p_i |x_i|) / |result|, is then 1e6 or more: an exp rounded to its
# dtype puts about eps * exp(x_1 - m) into log(sum), so no kernel that rounds its exps keeps
# relative digits there, and the policy's "4 ulp of 1 near 0" is what is asked (scipy and torch
# meet it too, at 0.2-0.6). It must hold on every route: packed rows (3, 17), short rows (100),
# general rows (3000), rows split across threads (2**20), the same over columns, and
# log_softmax's entries.
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("n, n_rows", [(3, 64), (17, 64), (100, 64), (3000, 16), (2**20, 2)],
                         ids=lambda v: str(v))
def test_cancelling_logsumexp_within_4_ulp_of_one(dtype, n, n_rows, rng):
    a = rng.uniform(0.5, 8, n_rows)
    x = rng.uniform(-60, -30, (n_rows, n))
    x[:, 0] = -a
    x[:, 1] = np.log1p(-np.exp(-a))
    x = rng.permuted(x, axis=1).astype(dtype)
    ref = logsumexp_ref(x, 1, compute=_compute_for(x))
    assert np.max(np.abs(ref)) < 1e-6  # it does cancel
    assert_ulps(sk.logsumexp(x, axis=1), ref, LOG_ULP, floor=1, what="rows")
    assert_ulps(sk.logsumexp(np.ascontiguousarray(x.T), axis=0), ref, LOG_ULP, floor=1,
                what="columns")
    assert_ulps(sk.log_softmax(x), log_softmax_ref(x, -1, compute=_compute_for(x)), LOG_ULP,
                floor=1, what="log_softmax")


def test_logsumexp_keeps_the_4e_18_tail():
    # mpmath: log(1 + exp(-40)) = 4.2483542552915889e-18
    r = np.asarray(sk.logsumexp(np.array([0.0, -40.0])))
    assert r > 0
    exact = mp_to_longdouble([logsumexp_mpmath([0.0, -40.0])]).reshape(())
    assert_ulps(r, exact, 4, what="logsumexp([0, -40])")  # plain ulps: no floor here
    r32 = np.asarray(sk.logsumexp(np.array([0.0, -20.0], np.float32)))
    assert r32 > 0
    assert_ulps(r32, np.float64(np.log1p(np.exp(-20.0))), 4, what="float32 tail")


def _peaked_rows(n, ties, temperature, rng, count=1024):
    """``count`` float32 rows of ``n``: ``ties`` entries at the max 0, the others spread over one
    unit below ``-d`` (times ``temperature``), ``d`` such that they add up to about ``rest``, from
    1e-14 to 1e-2 of the max's exp across the rows (log-spaced)."""
    rest = 10.0 ** np.linspace(-14, -2, count)[:, None]
    below = n - ties
    spread = rng.uniform(0, 1, (count, below))
    d = np.log(np.exp(-spread).sum(axis=1, keepdims=True) / rest)  # sum of exp(-d - spread) = rest
    x = np.zeros((count, n))
    x[:, ties:] = -(d + spread) * temperature
    return rng.permuted(x, axis=1).astype(np.float32)


# float32 log_softmax sums a row's (or column's) exps uncounted, the max's included (exactly 1
# each), and counts the entries at the max only where that sum's rounding would show: where the
# others add up to less than about d 2**-26 of it (d the additions a term goes through;
# ``_kernels.softmax.uncounted_total_suffices``).  Rows and columns from far above that limit to
# far below it, in plain ulps (no floor: the max's result is -log(k + rest), about -rest for
# k = 1, and keeps its relative precision only if rest does).  A limit set too low fails here by
# thousands of ulps (1e-14 of the max against a rounding of d 2**-53).
@pytest.mark.parametrize(
    "n, axis", [(10, -1), (64, -1), (100, -1), (1000, -1), (3000, -1), (20, 0), (64, 0), (3000, 0)]
)
@pytest.mark.parametrize("ties", [1, 2])
@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_float32_log_softmax_of_peaked_slices_within_4_ulp(n, axis, ties, temperature, rng, monkeypatch):
    from softmaxkit import _numpy_backend

    monkeypatch.setattr(_numpy_backend, "SMALL_K", 0)  # columns: the block kernels
    x = _peaked_rows(n, ties, temperature, rng)
    if axis == 0:
        x = np.ascontiguousarray(x.T)
    r = sk.log_softmax(x, axis=axis, temperature=temperature)
    ref = log_softmax_ref(x, axis, temperature=temperature)
    assert_ulps(r, ref, LOG_ULP, what=f"peaked log_softmax n={n} axis={axis} ties={ties}")


# A worker whose row's uncounted sum fell short counts the next rows outright, and a column block
# tries the uncounted sums only after one whose sums would have sufficed: peaked and ordinary
# slices mixed, in any order, with 1 and 2 threads, in place too.
@pytest.mark.parametrize("n, axis", [(64, -1), (3000, -1), (64, 0), (300, 0)])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("in_place", [False, True], ids=["fresh", "in place"])
def test_float32_log_softmax_of_mixed_peaked_slices_within_4_ulp(n, axis, threads, in_place, rng, monkeypatch):
    from softmaxkit import _numpy_backend
    from softmaxkit._threads import max_threads

    monkeypatch.setattr(_numpy_backend, "SMALL_K", 0)
    monkeypatch.setattr(_numpy_backend, "PARALLEL_MIN_ELEMENTS", 1)
    x = _peaked_rows(n, 1, 1.0, rng, count=2048)
    x[1::3] = (rng.standard_normal((len(x[1::3]), n)) * 3).astype(np.float32)  # ordinary rows
    x = x[rng.permutation(len(x))]
    if axis == 0:
        x = np.ascontiguousarray(x.T)
    ref = log_softmax_ref(x, axis)
    before = sk.get_num_threads()
    sk.set_num_threads(min(threads, max_threads()))
    try:
        r = sk.log_softmax(x, axis=axis, out=x if in_place else None)
    finally:
        sk.set_num_threads(before)
    assert_ulps(r, ref, LOG_ULP, what=f"mixed peaked log_softmax n={n} axis={axis}")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_column_kernels_keep_tiny_tails(dtype):
    # The same tails over axis 0 of 40 columns (the column kernels, which take one vectorised
    # log1p per column): logsumexp log(1 + exp(-d)) and log_softmax -log(1 + exp(-d)) at the max,
    # -d - log(1 + exp(-d)) below it.  d = 40 in float64, 20 in float32 (exp(-40) is below a
    # float32 ulp of 1 but representable; the tail must survive either way).
    d = 40.0 if dtype == np.float64 else 20.0
    x = np.zeros((3, 40), dtype)
    x[1] = -d
    x[2] = -np.inf
    tail = mp_to_longdouble([logsumexp_mpmath([0.0, -d])]).reshape(())
    lse = np.asarray(sk.logsumexp(x, axis=0))
    assert (lse > 0).all()
    assert_ulps(lse, np.full(40, tail), 4, what="column logsumexp tail")  # plain ulps: no floor
    lsm = sk.log_softmax(x, axis=0)
    assert_ulps(lsm[0], np.full(40, -tail), 4, what="column log_softmax at the max")
    assert_ulps(lsm[1], np.full(40, -d - tail), 4, what="column log_softmax below the max")
    assert (lsm[2] == -np.inf).all()


def _split_columns(dtype, rng, n_k, inner=40):
    """``(n_k, inner)`` columns for the slab kernels: trap, ties, range1e4 and subnormal columns,
    peaked ones (one or two entries at the max, anywhere, the others adding up to 1e-14 to 1e-2
    of its exp), and tiny tails (0 and -d in the two halves of K, the rest -inf)."""
    parts = [_rows(kind, dtype, rng, shape=(6, n_k)) for kind in ("trap", "ties", "range1e4", "subnormal")]
    parts += [_peaked_rows(n_k, ties, 1.0, rng, count=6).astype(dtype) for ties in (1, 2)]
    tails = np.full((inner - 36, n_k), -np.inf, dtype)
    d = 40.0 if dtype == np.float64 else 20.0
    tails[:, n_k // 4] = 0.0
    tails[:, 3 * n_k // 4] = -d
    tails[1::2] = tails[1::2, ::-1]  # the max in the second half
    return np.ascontiguousarray(np.concatenate(parts + [tails]).T)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize(("n_k", "threads"), [(700, 2), (701, 3)])
@pytest.mark.parametrize("whole_rows", [True, False], ids=["whole rows", "column blocks"])
def test_columns_split_along_k_within_4_ulp(dtype, n_k, threads, whole_rows, rng, monkeypatch):
    # Column layouts split along K (slabs, ``_numpy_backend._takes_slabs``; forced here): the
    # slab maxes merged, then softmax's slab sums, or log_softmax's slab sums below the max and
    # counts at it, merged before the one log per column.  Peaked columns and tiny tails in plain
    # ulps (no floor: the max's log-probability is about -rest, and keeps its precision only if
    # the merged sums do), whatever slab holds the max or its ties; passes over whole rows and by
    # column blocks of 16 (a partial vector each); unmasked (by vectors) and masked (row by row);
    # fresh, out= and in place; softmin and a temperature.
    from softmaxkit import _numpy_backend

    for name, value in (("SLABS", True), ("SMALL_K", 0), ("PARALLEL_MIN_ELEMENTS", 0), ("SLAB_MIN_ELEMENTS", 0),
                        ("SLAB_WHOLE_ROWS_FROM", 1 if whole_rows else 1 << 30), ("COLUMN_BLOCK_BYTES", 1),
                        ("COLUMN_MIN_BLOCK_WIDTH", 16), ("COLUMN_MIN_BLOCK_ROW_BYTES", 1)):
        monkeypatch.setattr(_numpy_backend, name, value)
    monkeypatch.setattr(_numpy_backend, "num_threads", lambda: threads)
    x = _split_columns(dtype, rng, n_k)
    compute = _compute_for(x)
    where = rng.random(x.shape) < 0.8
    where[n_k // 4] = where[3 * n_k // 4] = True  # the tails' entries
    for fn, log in ((sk.softmax, False), (sk.softmin, False), (sk.log_softmax, True)):
        negate = fn is sk.softmin
        for kwargs in ({}, {"temperature": 0.5}, {"where": where}):
            ref = softmax_ref(x, 0, log=log, negate=negate, compute=compute, **kwargs)
            in_place = x.copy()
            fn(in_place, axis=0, out=in_place, **kwargs)
            for got in (fn(x, axis=0, **kwargs), fn(x, axis=0, out=np.full_like(x, np.nan), **kwargs), in_place):
                what = f"{fn.__name__} {sorted(kwargs)}"
                assert_ulps(got[:, :24], ref[:, :24], LOG_ULP if log else SOFTMAX_ULP, floor=1 if log else None,
                            what=what)
                assert_ulps(got[:, 24:], ref[:, 24:], LOG_ULP if log else SOFTMAX_ULP, what=f"{what} peaked")
    tails = sk.log_softmax(x, axis=0)[[n_k // 4, 3 * n_k // 4], 36:]
    assert (tails[0, ::2] < 0).all() and (tails[1, 1::2] < 0).all()  # the max's -tail survived


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_logsumexp_with_positive_weights_within_4_ulp(dtype, rng):
    x = _rows("normal10", dtype, rng, shape=(30, 50))
    b = rng.uniform(0.5, 2.0, x.shape).astype(dtype)
    r = np.asarray(sk.logsumexp(x, axis=1, b=b))
    ref = logsumexp_ref(x, 1, b=b, compute=_compute_for(x))
    assert_ulps(r, ref, LOG_ULP, floor=1, what="logsumexp b>0")


def test_logsumexp_weights_against_mpmath():
    # mpmath.log(abs(sum(b*exp(a)))) with 40 digits
    a = np.array([1.0, 2.0, 3.0, -5.0, 0.5])
    b = np.array([1.0, -0.5, 0.25, 3.0, -2.0])
    res, sign = sk.logsumexp(a, b=b, return_sign=True)
    exact = mp_to_longdouble([logsumexp_mpmath(a, b)]).reshape(())
    assert sign == 1.0
    assert_ulps(np.asarray(res), exact, LOG_ULP, floor=1, what="weighted")


# --------------------------------------------------------------------------------------------
# float16 and bfloat16: within 1 ulp of the correctly rounded value
# --------------------------------------------------------------------------------------------

def _half_inputs(rng, dtype):
    rows = [
        rng.standard_normal((64, 37)) * 3,
        rng.standard_normal((64, 37)) * 20,
        np.concatenate([np.zeros((64, 1)), -rng.uniform(5, 17, (64, 36))], axis=1),  # subnormals
        rng.integers(-4, 4, (64, 37)).astype(np.float64),
    ]
    x = np.concatenate(rows)
    return x.astype(dtype)


def _half_dtypes():
    yield pytest.param(np.dtype(np.float16), id="float16")
    try:
        import ml_dtypes
    except ImportError:  # pragma: no cover - ml_dtypes is in the test extra
        yield pytest.param(None, id="bfloat16", marks=pytest.mark.skip(reason="needs ml_dtypes"))
    else:
        yield pytest.param(np.dtype(ml_dtypes.bfloat16), id="bfloat16")


@pytest.mark.parametrize("dtype", list(_half_dtypes()))
@pytest.mark.parametrize("axis", [-1, 0, None], ids=lambda a: f"axis={a}")
def test_half_precision_within_1_ulp_of_correctly_rounded(dtype, axis, rng):
    x = _half_inputs(rng, dtype)
    x64 = x.astype(np.float64)
    for name, f, ref in [
        ("softmax", sk.softmax, softmax_ref(x64, axis)),
        ("log_softmax", sk.log_softmax, log_softmax_ref(x64, axis)),
        ("softmin", sk.softmin, softmax_ref(-x64, axis)),
    ]:
        r = f(x, axis=axis)
        assert r.dtype == dtype
        d = bits_distance_16(r, ref, dtype)
        assert np.max(d) <= HALF_ULP, (name, float(np.max(d)), np.argmax(d))
    r = np.asarray(sk.logsumexp(x, axis=axis))
    assert r.dtype == dtype
    d = bits_distance_16(r, logsumexp_ref(x64, axis), dtype)
    assert np.max(d) <= HALF_ULP, ("logsumexp", float(np.max(d)))


def test_float16_exhaustive_pairs():
    # softmax([0, v]) for every finite float16 v: the second entry is 1 / (1 + exp(-v))
    v = np.arange(0, 2**16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    v = v[np.isfinite(v)]
    x = np.stack([np.zeros_like(v), v], axis=1)
    r = sk.softmax(x)
    ref = softmax_ref(x.astype(np.float64), -1)
    assert np.max(bits_distance_16(r, ref, np.float16)) <= HALF_ULP
    lr = sk.log_softmax(x)
    assert np.max(bits_distance_16(lr, log_softmax_ref(x.astype(np.float64), -1),
                                   np.float16)) <= HALF_ULP


# --------------------------------------------------------------------------------------------
# one row of 2**24 float32 values
# --------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_row_of_2_pow_24_float32_within_4_ulp(big_row_f32, big_row_f32_reference):
    r = sk.softmax(big_row_f32)
    assert r.dtype == np.float32 and r.shape == (2**24,)
    assert_ulps(r, big_row_f32_reference, SOFTMAX_ULP, what="2**24 row")
    # torch sums such a row in one float32 accumulator and is off by ~1e-3; softmaxkit by ~1e-7
    total = float(np.sum(r, dtype=np.float64))
    assert abs(total - 1.0) <= 1e-6, total


@pytest.mark.slow
def test_row_of_2_pow_24_float32_log_softmax_and_logsumexp(big_row_f32):
    x64 = big_row_f32.astype(np.float64)
    lse_ref = logsumexp_ref(x64, compute=np.float64)
    lse = np.asarray(sk.logsumexp(big_row_f32))
    assert lse.dtype == np.float32
    assert_ulps(lse, lse_ref, LOG_ULP, floor=1, what="logsumexp 2**24")
    lr = sk.log_softmax(big_row_f32)
    assert_ulps(lr, x64 - lse_ref, LOG_ULP, floor=1, what="log_softmax 2**24")


@pytest.mark.slow
def test_2_pow_24_row_in_a_2d_array_along_axis_0(big_row_f32, big_row_f32_reference):
    # the same long slice reached through a column layout
    x = big_row_f32.reshape(-1, 1)
    r = sk.softmax(x, axis=0)
    assert_ulps(r[:, 0], big_row_f32_reference, SOFTMAX_ULP, what="2**24 column")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_rows_split_into_hundreds_of_chunks_within_4_ulp(dtype, rng, monkeypatch):
    # The per-chunk sums are merged with a compensated sum and each chunk's rescale factor
    # exp(m_c - M)/s is applied as a double-word: a plain merge of 313 chunk sums put float64
    # outputs 4+ ulp off (measured 3.7 ulp with 19 chunks).
    from softmaxkit import _numpy_backend

    monkeypatch.setattr(_numpy_backend, "PARALLEL_MIN_ELEMENTS", 0)
    monkeypatch.setattr(_numpy_backend, "SPLIT_MIN_LENGTH", 64)
    monkeypatch.setattr(_numpy_backend, "SPLIT_CHUNK", 16)
    monkeypatch.setattr(_numpy_backend, "num_threads", lambda: 8)
    x = (rng.standard_normal((2, 5000)) * np.array([[1.0], [8.0]])).astype(dtype)
    assert_ulps(sk.softmax(x), softmax_reference(x), SOFTMAX_ULP, what="softmax")
    assert_ulps(sk.log_softmax(x), log_softmax_ref(x, -1, compute=_compute_for(x)), LOG_ULP, floor=1,
                what="log_softmax")
    assert_ulps(sk.logsumexp(x, axis=-1), logsumexp_ref(x, -1, compute=_compute_for(x)), LOG_ULP,
                what="logsumexp")


@pytest.mark.parametrize("n", [1, 7, 8, 1000])
def test_float32_scale_is_correctly_rounded(n, rng):
    # float32 outputs are scaled by a float32 pair (hi, lo) with the error of y * hi recovered
    # by an fma: the product must be the float32 rounding of the exact y * factor.
    from numba import njit

    from softmaxkit._kernels import softmax as kernels

    scale = njit(lambda y, factor: kernels.slice_scale(y, factor, 0.0))
    for _ in range(20):
        y = rng.random(n).astype(np.float32)
        factor = 1.0 / (1.0 + rng.random() * 1000.0)
        exact = y.astype(np.longdouble) * np.longdouble(factor)
        scaled = y.copy()
        scale(scaled, factor)
        assert_ulps(scaled, exact, 0.5 + 2.0**-20, what=f"scale by {factor!r}")
