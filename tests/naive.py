"""Naive reference implementations of the softmax family, written for clarity, not speed.

In the spirit of stumpy's ``tests/naive.py``: every function here follows the written policy of
softmaxkit (docs/semantics.md; issue 2) directly, slice by slice, in a chosen *compute* precision:

* ``np.float64`` -- the reference for float16/float32 inputs (a float32 ``x - max`` is exact in
  float64, and float64's exp/log are far more accurate than a float32 ulp);
* ``np.longdouble`` -- the reference for float64 inputs (80-bit x87 extended on x86-64: 11 more
  mantissa bits than float64, and ``expl``/``logl``);
* :func:`softmax_mpmath` / :func:`logsumexp_mpmath` -- arbitrary precision, for single rows.

Nothing here imports softmaxkit, so a bug cannot be shared between the reference and the code
under test.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.array_utils import normalize_axis_tuple

__all__ = [
    "normalize_axes",
    "softmax_ref",
    "log_softmax_ref",
    "softmin_ref",
    "logsumexp_ref",
    "softmax_backward_ref",
    "log_softmax_backward_ref",
    "softmax_mpmath",
    "log_softmax_mpmath",
    "logsumexp_mpmath",
    "ulp_error",
    "bits_distance_16",
    "softmax_f64_exact",
    "mp_to_longdouble",
    "result_dtype",
    "compute_dtype_for",
    "assert_matches",
]


def normalize_axes(axis, ndim):
    """The policy's axis forms as a sorted tuple: int, tuple, None (all), () (no axis).

    A 0-d array accepts -1, 0, None and (), all meaning its single element.
    """
    if ndim == 0:
        if axis is None or axis == () or axis in (0, -1):
            return ()
        raise ValueError(f"axis {axis!r} is not valid for a 0-d array")
    if axis is None:
        return tuple(range(ndim))
    return tuple(sorted(normalize_axis_tuple(axis, ndim)))


def result_dtype(x_dtype, *, allow_complex=False):
    """The dtype the policy says a result has (float16/bfloat16 stay, ints/bools -> float64)."""
    dt = np.dtype(x_dtype)
    if dt.kind in "biu":
        return np.dtype(np.float64)
    if dt.kind == "c" and allow_complex:
        return np.dtype(dt.type)
    return np.dtype(dt.type)  # native byte order


def compute_dtype_for(dt):
    """Precision in which a reference for outputs of dtype ``dt`` should be computed."""
    dt = np.dtype(dt)
    if dt.kind == "c":
        return np.clongdouble if dt.itemsize == 16 else np.complex128
    if dt == np.float64:
        return np.longdouble
    return np.float64


def _fold(x, axes):
    """Move ``axes`` to the end and fold them: returns (x2d, unfold) with x2d of shape (n, L)."""
    other = [i for i in range(x.ndim) if i not in axes]
    perm = other + list(axes)
    xt = np.transpose(x, perm)
    n = math.prod(xt.shape[: len(other)])
    length = math.prod(xt.shape[len(other) :])
    # Contiguous, so that NumPy reduces each row with pairwise summation: a sum over a strided
    # (here: transposed) axis is a plain running sum, 5 float64 ulp off over 300,000 terms,
    # which showed up as false "6.8 ulp" failures against exact results.
    x2 = np.ascontiguousarray(np.reshape(xt, (n, length)))
    inverse = np.argsort(perm)

    def unfold(r2):
        return np.transpose(np.reshape(r2, xt.shape), inverse)

    def reduced_shape(keepdims):
        if keepdims:
            return tuple(1 if i in axes else s for i, s in enumerate(x.shape))
        return tuple(s for i, s in enumerate(x.shape) if i not in axes)

    return x2, unfold, reduced_shape


def _prepare(x, axis, temperature, where, compute, negate=False):
    x = np.asarray(x)
    axes = normalize_axes(axis, x.ndim)
    z = x.astype(compute)
    if negate:
        z = -z
    if temperature != 1.0:
        z = z / compute(temperature)
    if where is not None:
        mask = np.broadcast_to(np.asarray(where, dtype=bool), x.shape)
        z = np.where(mask, z, compute(-np.inf))
    return z, axes


def _softmax_rows(z, log):
    """Policy softmax / log_softmax of every row of the 2-d array ``z`` (masked entries = -inf)."""
    with np.errstate(all="ignore"):
        nan_row = np.isnan(z).any(axis=1)
        pinf = z == np.inf
        k = pinf.sum(axis=1)
        inf_row = (k > 0) & ~nan_row
        m = np.max(z, axis=1, keepdims=True, initial=-np.inf) if z.shape[1] else np.zeros(
            (z.shape[0], 1), z.dtype
        )
        m = np.where(np.isfinite(m), m, 0).astype(z.dtype)
        d = z - m
        e = np.exp(d)
        s = np.sum(e, axis=1, keepdims=True)
        if log:
            # log(s) = log1p(sum of the terms other than one maximal term, whose exp is 1), so
            # that tails far below 1 (row [0, -40]) are not lost to rounding of 1 + tail.
            rest = e.copy()
            if z.shape[1]:
                rest[np.arange(z.shape[0]), np.argmax(d, axis=1)] = 0
            r = d - np.log1p(np.sum(rest, axis=1, keepdims=True))
        else:
            r = e / s
        empty_row = (s[:, 0] == 0) & ~nan_row & ~inf_row  # every entry -inf or masked
        one = z.dtype.type(1)
        kk = np.maximum(k, 1).astype(z.dtype)[:, None]
        if log:
            inf_vals = np.where(pinf, -np.log(kk), z.dtype.type(-np.inf))
            r = np.where(empty_row[:, None], z.dtype.type(-np.inf), r)
        else:
            inf_vals = np.where(pinf, one / kk, z.dtype.type(0))
            r = np.where(empty_row[:, None], z.dtype.type(0), r)
        r = np.where(inf_row[:, None], inf_vals, r)
        r = np.where(nan_row[:, None], z.dtype.type(np.nan), r)
    return r


def softmax_ref(x, axis=-1, *, temperature=1.0, where=None, compute=np.float64, log=False,
                negate=False):
    """Policy softmax of ``x`` computed in ``compute`` precision (result stays in it).

    Masked-out entries are exactly 0 (-inf for log) even in a slice that a NaN makes NaN: the
    mask says they are not part of the slice at all.
    """
    z, axes = _prepare(x, axis, temperature, where, compute, negate=negate)
    z2, unfold, _ = _fold(z, axes)
    r = unfold(_softmax_rows(z2, log))
    if where is not None:
        mask = np.broadcast_to(np.asarray(where, dtype=bool), np.shape(x))
        r = np.where(mask, r, compute(-np.inf) if log else compute(0))
    return r


def log_softmax_ref(x, axis=-1, *, temperature=1.0, where=None, compute=np.float64):
    return softmax_ref(x, axis, temperature=temperature, where=where, compute=compute, log=True)


def softmin_ref(x, axis=-1, *, temperature=1.0, where=None, compute=np.float64):
    return softmax_ref(x, axis, temperature=temperature, where=where, compute=compute, negate=True)


def logsumexp_ref(a, axis=None, *, b=None, keepdims=False, return_sign=False, where=None,
                  compute=None):
    """Policy logsumexp in ``compute`` precision (default: see :func:`compute_dtype_for`).

    Real input: result = m + log|sum(b * exp(a - m))|, m the largest ``a`` with nonzero weight;
    an empty / all -inf / fully masked / zero sum gives -inf with sign 0; NaN gives NaN; +inf
    entries (with weights of one sign) give +inf. A negative sum gives NaN unless return_sign.
    Complex input: the principal log, imaginary part in (-pi, pi]; with return_sign the real
    log-magnitude and a complex phase, like SciPy.
    """
    a = np.asarray(a)
    if compute is None:
        compute = compute_dtype_for(result_dtype(a.dtype, allow_complex=True))
    axes = normalize_axes(axis, a.ndim)
    z = a.astype(compute)
    is_complex = np.dtype(compute).kind == "c"
    real_t = np.longdouble if np.dtype(compute) == np.clongdouble else np.float64
    if not is_complex:
        real_t = compute
    w = np.ones(a.shape, real_t) if b is None else np.broadcast_to(np.asarray(b), a.shape).astype(
        real_t
    )
    keep = w != 0
    if where is not None:
        keep &= np.broadcast_to(np.asarray(where, dtype=bool), a.shape)
    z2, _, reduced_shape = _fold(z, axes)
    w2, _, _ = _fold(w, axes)
    k2, _, _ = _fold(keep, axes)
    with np.errstate(all="ignore"):
        re = z2.real if is_complex else z2
        re = np.where(k2, re, real_t(-np.inf))
        nan_row = (np.isnan(z2) & k2).any(axis=1)
        m = np.max(re, axis=1, keepdims=True, initial=-np.inf) if re.shape[1] else np.full(
            (re.shape[0], 1), -np.inf, real_t
        )
        m_fin = np.where(np.isfinite(m), m, 0).astype(real_t)
        if is_complex:
            shifted = np.where(k2, z2 - m_fin, compute(-np.inf))
        else:
            shifted = np.where(k2, z2 - m_fin, compute(-np.inf))
        terms = np.where(k2, w2 * np.exp(shifted), 0)
        s = np.sum(terms, axis=1)
        mag = np.log(np.abs(s)) + m_fin[:, 0]
        if b is None and not is_complex and terms.shape[1]:
            # Unit weights: log(s) = log1p(s - 1) with the maximal term (exactly 1) pulled out of
            # the sum, as SciPy does, so logsumexp([0, -40]) keeps its 4.25e-18.
            rest = terms.copy()
            rest[np.arange(rest.shape[0]), np.argmax(re, axis=1)] = 0
            mag = np.log1p(np.sum(rest, axis=1)) + m_fin[:, 0]
        if is_complex:
            phase = np.where(s == 0, 0, s / np.abs(s))
            if return_sign:
                res = mag.astype(real_t)
                sign = phase.astype(compute)
            else:
                ang = np.angle(s)
                res = (mag + 1j * ang).astype(compute)
                sign = None
        else:
            sign = np.sign(s)
            res = mag
            pinf = (re == np.inf) & k2
            inf_row = pinf.any(axis=1)
            inf_pos = (pinf & (w2 > 0)).any(axis=1)
            inf_neg = (pinf & (w2 < 0)).any(axis=1)
            inf_sign = np.where(inf_pos & inf_neg, np.nan, np.where(inf_neg, -1.0, 1.0))
            res = np.where(inf_row, np.where(np.isnan(inf_sign), np.nan, np.inf), res)
            sign = np.where(inf_row, inf_sign, sign)
            zero = (s == 0) & ~inf_row
            res = np.where(zero, -np.inf, res)
            sign = np.where(zero, 0.0, sign)
            if not return_sign:
                res = np.where(sign < 0, np.nan, res)
            res = np.where(nan_row, np.nan, res)
            sign = np.where(nan_row, np.nan, sign).astype(real_t)
            res = res.astype(real_t)
        if is_complex:
            res = np.where(nan_row, np.nan, res)
    res = np.reshape(res, reduced_shape(keepdims))
    if return_sign:
        return res, np.reshape(sign, reduced_shape(keepdims))
    return res


def softmax_backward_ref(grad, y, axis=-1, compute=np.float64):
    g = np.asarray(grad).astype(compute)
    y = np.asarray(y).astype(compute)
    axes = normalize_axes(axis, y.ndim)
    return y * (g - np.sum(g * y, axis=axes, keepdims=True))


def log_softmax_backward_ref(grad, y, axis=-1, compute=np.float64):
    g = np.asarray(grad).astype(compute)
    y = np.asarray(y).astype(compute)
    axes = normalize_axes(axis, y.ndim)
    with np.errstate(all="ignore"):
        return g - np.exp(y) * np.sum(g, axis=axes, keepdims=True)


# --- arbitrary precision, one row at a time ------------------------------------------------------

def _mp():
    import mpmath

    return mpmath


def softmax_mpmath(row, dps=40):
    """Exact-enough softmax of a 1-d row of finite values, as a list of mpmath numbers."""
    mp = _mp()
    with mp.workdps(dps):
        vals = [mp.mpf(float(v)) for v in np.asarray(row, dtype=np.float64).ravel()]
        m = max(vals)
        e = [mp.exp(v - m) for v in vals]
        s = mp.fsum(e)
        return [t / s for t in e]


def log_softmax_mpmath(row, dps=40):
    mp = _mp()
    with mp.workdps(dps):
        vals = [mp.mpf(float(v)) for v in np.asarray(row, dtype=np.float64).ravel()]
        m = max(vals)
        lse = m + mp.log(mp.fsum(mp.exp(v - m) for v in vals))
        return [v - lse for v in vals]


def logsumexp_mpmath(row, b=None, dps=40):
    mp = _mp()
    with mp.workdps(dps):
        vals = [mp.mpf(float(v)) for v in np.asarray(row, dtype=np.float64).ravel()]
        ws = [mp.mpf(1)] * len(vals) if b is None else [mp.mpf(float(t)) for t in np.ravel(b)]
        return mp.log(abs(mp.fsum(w * mp.exp(v) for w, v in zip(ws, vals))))


def mp_to_longdouble(values):
    """mpmath numbers -> np.longdouble array, rounded once (via their decimal strings)."""
    mp = _mp()
    return np.array([np.longdouble(mp.nstr(v, 30, strip_zeros=False)) if v != 0 else 0
                     for v in values], dtype=np.longdouble)


# --- ulp distances -------------------------------------------------------------------------------

def ulp_error(actual, reference, dtype=None, *, floor=None):
    """Distance from ``actual`` to the exact ``reference`` in ulps of ``dtype``.

    The ulp is ``np.spacing`` of the reference rounded to ``dtype`` (for subnormal results that is
    the subnormal spacing). ``floor`` -- if given, a value whose ulp is the smallest ulp used, so
    ``floor=1`` measures results near 0 in ulps of 1 (absolute error / eps).
    Entries where both are equal (including equal infinities) or both NaN count as 0 ulp; a NaN or
    infinity on one side only counts as infinitely far.
    """
    actual = np.asarray(actual)
    dtype = np.dtype(actual.dtype.type if dtype is None else dtype)
    # float64 has 29 bits to spare over float32, so it measures float32/16 ulps exactly enough
    # and keeps 2**24-element checks light; float64 results are measured in long double.
    work = np.longdouble if dtype == np.float64 else np.float64
    ref_hi = np.asarray(reference).astype(work)
    act = actual.astype(work)
    with np.errstate(all="ignore"):  # a reference beyond the dtype's range rounds to +-inf
        ref_rounded = ref_hi.astype(dtype)
        ulp = np.spacing(np.abs(ref_rounded)).astype(work)
        if floor is not None:
            ulp = np.maximum(ulp, work(np.spacing(dtype.type(floor))))
        err = np.abs(act - ref_hi) / ulp
    same = (act == ref_hi) | (np.isnan(act) & np.isnan(ref_hi))
    err = np.where(same, 0, err)
    err = np.where(np.isnan(err), np.inf, err)
    return err.astype(np.float64)


# --- comparison helper ---------------------------------------------------------------------------

# Loose relative tolerances for *semantic* comparisons (right shape, right special values, roughly
# right numbers); tests/test_accuracy.py holds the ulp-level checks.
SEMANTIC_RTOL = {"float64": 1e-12, "float32": 2e-5, "float16": 2e-3, "bfloat16": 1.6e-2}


def assert_matches(actual, expected, *, dtype=None, log=False, rtol=None):
    """``actual`` is an ndarray of ``dtype`` (byte order aside) equal to ``expected`` rounded to it.

    NaN must be NaN, infinities must match exactly, finite values within ``rtol`` (relative; for log
    outputs also absolute, since log-probabilities near 0 are judged in ulps of 1).
    """
    assert isinstance(actual, np.ndarray), f"expected an ndarray, got {type(actual).__name__}"
    expected = np.asarray(expected)
    if dtype is not None:
        assert np.dtype(actual.dtype.type) == np.dtype(dtype), (actual.dtype, np.dtype(dtype))
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    out_t = np.dtype(actual.dtype.type)
    name = out_t.name if out_t.kind != "c" else {8: "float32", 16: "float64"}[out_t.itemsize]
    tol = SEMANTIC_RTOL.get(name, 1e-12) if rtol is None else rtol
    with np.errstate(over="ignore"):  # a reference beyond the dtype's range rounds to +-inf
        if out_t.kind == "c":
            exp_rounded = expected.astype(out_t)
        else:
            exp_rounded = expected.astype(np.float64) if expected.dtype.kind == "f" else expected
            exp_rounded = exp_rounded.astype(out_t).astype(np.float64)
    act = actual.astype(out_t).astype(np.complex128 if out_t.kind == "c" else np.float64)
    if out_t.kind != "c":
        tiny = float(np.finfo(out_t).tiny) if name != "bfloat16" else 1.2e-38
    else:
        tiny = float(np.finfo(out_t).tiny)
    np.testing.assert_allclose(
        act, exp_rounded, rtol=tol, atol=tol if log else tiny, equal_nan=True,
        err_msg=f"dtype {actual.dtype}",
    )


def bits_distance_16(actual, reference, dtype):
    """Ulps between ``actual`` and ``reference`` rounded to the 16-bit float ``dtype``.

    Counts representable values between them (works for float16 and ml_dtypes.bfloat16, which has
    no np.spacing): the bit patterns of same-signed floats are ordered like their values.
    NaN vs NaN counts 0, NaN vs number is infinite.
    """
    dtype = np.dtype(dtype)
    a = np.asarray(actual).astype(dtype)
    with np.errstate(over="ignore"):
        r = np.asarray(reference).astype(np.float64).astype(np.float32).astype(dtype) if (
            dtype.name == "bfloat16") else np.asarray(reference).astype(np.float64).astype(dtype)

    def key(v):
        i = v.view(np.uint16).astype(np.int64)
        return np.where(i & 0x8000, -(i & 0x7FFF), i)

    d = np.abs(key(a) - key(r)).astype(np.float64)
    an, rn = np.isnan(a.astype(np.float32)), np.isnan(r.astype(np.float32))
    d = np.where(an & rn, 0.0, np.where(an | rn, np.inf, d))
    return d


def softmax_f64_exact(x, axis=-1):
    """Softmax of finite float64 ``x`` in long double with ``x - max`` carried exactly.

    ``x - m`` is split by TwoSum into its float64 rounding ``s`` and the residual ``r`` (exact:
    s + r == x - m). ``exp(s)`` is taken in long double on an exact argument and corrected by
    ``(1 + r)`` (|r| < ulp(s), so the dropped r**2/2 is below 1e-25 relative). A plain long double
    ``x - m`` would round at 2**-64 relative, which at |x - m| ~ 700 is ~0.3 float64 ulp of the
    result; this keeps the reference's own error far below 0.01 ulp.
    """
    x = np.asarray(x, dtype=np.float64)
    axes = normalize_axes(axis, x.ndim)
    x2, unfold, _ = _fold(x, axes)
    m = np.max(x2, axis=1, keepdims=True)
    s = x2 - m
    bb = s - x2
    r = (x2 - (s - bb)) + (-m - bb)  # TwoSum residual of x2 + (-m)
    e = np.exp(s.astype(np.longdouble)) * (1 + r.astype(np.longdouble))
    return unfold(e / np.sum(e, axis=1, keepdims=True))


def special_rows():
    """Rows of 4 float32 with NaN, infinities and extremes, for the kernels' special paths."""
    inf, nan = np.inf, np.nan
    rows = [
        [1.0, nan, 2.0, 3.0],
        [nan, nan, nan, nan],
        [inf, 1.0, inf, -inf],
        [inf, 0.0, 0.0, 0.0],
        [-inf, -inf, -inf, -inf],
        [-inf, 2.0, -inf, 1.0],
        [3e38, -3e38, 0.0, 1.0],
        [-3e38, -3e38, -3e38, -3e38],
        [0.0, -200.0, -200.0, -200.0],
        [5.0, 5.0, 5.0, 5.0],
        [1e-45, 0.0, -1e-45, 0.0],
    ]
    return np.array(rows, np.float32)


def mixed_rows(rng, n_rows, n):
    """Ordinary rows, peaked ones (one entry 30 above the rest: their uncounted sums fall short),
    and rows with infinities or NaN, shuffled: pairs of every kind, in either order."""
    x = (rng.standard_normal((n_rows, n)) * 3).astype(np.float32)
    kind = rng.integers(0, 4, n_rows)
    peaked = rng.uniform(-31, -30, (n_rows, n)).astype(np.float32)
    peaked[np.arange(n_rows), rng.integers(0, n, n_rows)] = 0
    x[kind == 1] = peaked[kind == 1]
    special = np.flatnonzero(kind == 2)
    x[special, rng.integers(0, n, special.size)] = rng.choice([np.nan, np.inf, -np.inf], special.size)
    return x


def called_in_mode(function, x0, mode, **options):
    """``function(x, **options)`` of a copy ``x`` of ``x0``, ``mode`` "fresh", "out" (into an
    array of 7s, which it must return, leaving the input alone) or "in place" (``out=x``)."""
    x = x0.copy()
    if mode == "fresh":
        return function(x, **options)
    out = x if mode == "in place" else np.full_like(x, 7.0)
    result = function(x, out=out, **options)
    assert result is out
    if mode == "out":
        np.testing.assert_array_equal(x, x0)  # the input is left alone
    return result
