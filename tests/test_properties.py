"""Property tests (hypothesis) and the adversarial-array sweep.

* The sweep (numbagg style): every function over every axis form of every array from
  ``tests/arrays.py``, compared with the naive reference of ``tests/naive.py``.
* Properties: translation invariance, sums to 1, masked entries exactly 0, invariance under
  transposition / axis permutation, axis tuple == reshape then softmax, log_softmax == log(softmax),
  logsumexp == log(sum(exp)), softmin(x) == softmax(-x), and arbitrary inputs (NaN/inf, masks)
  against the naive reference.

Tolerances between two softmaxkit results are 8 ulp: each is within 4 ulp of the exact value
(test_accuracy.py), so they are within 8 of each other.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import softmaxkit as sk
from arrays import adversarial_cases, axis_forms
from naive import (
    assert_matches,
    log_softmax_backward_ref,
    log_softmax_ref,
    logsumexp_ref,
    normalize_axes,
    result_dtype,
    softmax_backward_ref,
    softmax_ref,
    softmin_ref,
    ulp_error,
)

def _ref_compute(dtype):
    return np.longdouble if np.dtype(dtype.type) == np.float64 else np.float64


# --------------------------------------------------------------------------------------------
# adversarial sweep
# --------------------------------------------------------------------------------------------

CASES = adversarial_cases()


def _sweep_params():
    for case in CASES:
        forms = case.axes
        if case.large:
            nd = case.array.ndim
            forms = [-1, 0, None] + ([(0, nd - 1)] if nd >= 2 else [])
        for axis in forms:
            yield pytest.param(case, axis, id=f"{case.id}-axis={axis!r}".replace(" ", ""),
                               marks=[pytest.mark.slow] if case.large else [])


SWEEP = list(_sweep_params())


@pytest.mark.parametrize("name", ["softmax", "log_softmax", "softmin"])
@pytest.mark.parametrize("case, axis", SWEEP)
def test_adversarial_softmax_family(name, case, axis):
    f = getattr(sk, name)
    ref = {"softmax": softmax_ref, "log_softmax": log_softmax_ref, "softmin": softmin_ref}[name]
    x = case.array
    out_dtype = result_dtype(x.dtype)
    r = f(x, axis=axis, where=case.where)
    expected = ref(x, axis, where=case.where, compute=_ref_compute(out_dtype))
    assert_matches(r, expected, dtype=out_dtype.type, log=name == "log_softmax")


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("case, axis", SWEEP)
def test_adversarial_logsumexp(case, axis, keepdims):
    x = case.array
    out_dtype = result_dtype(x.dtype)
    r = sk.logsumexp(x, axis=axis, keepdims=keepdims, where=case.where)
    expected = logsumexp_ref(x, axis, keepdims=keepdims, where=case.where,
                             compute=_ref_compute(out_dtype))
    assert_matches(np.asarray(r), expected, dtype=out_dtype.type, log=True)


@pytest.mark.parametrize("case, axis", [p for p in SWEEP if not p.values[0].large])
def test_adversarial_backward(case, axis):
    x = case.array
    out_dtype = result_dtype(x.dtype)
    g = np.cos(np.arange(x.size)).reshape(x.shape).astype(out_dtype)
    eps = float(np.finfo(np.float32 if out_dtype == np.float32 else np.float64).eps)
    if out_dtype == np.float16:
        eps = 2.0**-10
    y = sk.softmax(x, axis=axis)
    r = sk.softmax_backward(g, y, axis=axis)
    assert r.dtype == out_dtype and r.shape == x.shape
    with np.errstate(invalid="ignore"):
        expected = softmax_backward_ref(g, y, axis)
    # |y * (g - s)| <= 2 max|g|: errors are absolute, a few eps of the gradient's scale
    np.testing.assert_allclose(r.astype(np.float64), expected.astype(np.float64), rtol=8 * eps,
                               atol=8 * eps, equal_nan=True)
    ly = sk.log_softmax(x, axis=axis)
    r = sk.log_softmax_backward(g, ly, axis=axis)
    assert r.dtype == out_dtype and r.shape == x.shape
    with np.errstate(invalid="ignore"):
        expected = log_softmax_backward_ref(g, ly, axis)
    n = max(1, int(np.prod([x.shape[a] for a in normalize_axes(axis, x.ndim)])))
    np.testing.assert_allclose(r.astype(np.float64), expected.astype(np.float64), rtol=8 * eps,
                               atol=8 * eps * n, equal_nan=True)


def test_sweep_covers_the_promised_layouts():
    ids = {c.id for c in CASES}
    flags = [(c.array.dtype.isnative, c.array.flags.c_contiguous, c.array.flags.f_contiguous,
              c.array.flags.aligned, c.array.ndim, c.array.size) for c in CASES]
    assert any(not f[0] for f in flags)  # byte-swapped
    assert any(not f[1] and f[2] and f[4] >= 2 for f in flags)  # Fortran / transposed
    assert any(not f[1] and not f[2] for f in flags)  # strided
    assert any(not f[3] for f in flags)  # unaligned
    assert any(f[4] == 0 for f in flags) and any(f[5] == 0 for f in flags)  # 0-d, empty
    assert any(f[5] >= 1_000_000 for f in flags)  # large
    assert any(np.any(np.asarray(c.array.strides) < 0) for c in CASES)  # negative strides
    assert {"f16_2d", "f16_specials", "f64_specials"} <= ids


# --------------------------------------------------------------------------------------------
# hypothesis strategies
# --------------------------------------------------------------------------------------------

float_dtypes = st.sampled_from([np.float32, np.float64])


@st.composite
def integer_valued_arrays(draw, max_dims=3, max_side=7):
    """Float arrays of integers in [-40, 40]: adding an integer constant rounds nothing."""
    dtype = draw(float_dtypes)
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=max_dims, min_side=1, max_side=max_side))
    ints = draw(hnp.arrays(np.int64, shape, elements=st.integers(-40, 40)))
    return ints.astype(dtype)


@st.composite
def finite_arrays(draw, max_dims=3, max_side=7, bound=60.0, dtypes=float_dtypes):
    dtype = draw(dtypes)
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=max_dims, min_side=1, max_side=max_side))
    width = 32 if dtype == np.float32 else 64
    if dtype == np.float16:
        width = 16
    elems = st.floats(-bound, bound, allow_nan=False, allow_infinity=False, width=width)
    return draw(hnp.arrays(dtype, shape, elements=elems))


@st.composite
def any_arrays(draw):
    """Arrays with NaN, +-inf, huge and tiny values, in float16/32/64."""
    dtype = draw(st.sampled_from([np.float16, np.float32, np.float64]))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6))
    width = {np.float16: 16, np.float32: 32, np.float64: 64}[dtype]
    elems = st.one_of(
        st.floats(width=width, allow_nan=True, allow_infinity=True),
        st.floats(-30, 30, width=width),
        st.sampled_from([np.inf, -np.inf, np.nan, 0.0]),
    )
    return draw(hnp.arrays(dtype, shape, elements=elems))


@st.composite
def axis_for(draw, ndim):
    return draw(st.sampled_from(axis_forms(ndim)))


def _ulps(a, b, dtype):
    """Symmetric-ish ulp distance between two results of the same dtype."""
    return ulp_error(a, np.asarray(b).astype(np.longdouble), dtype)


# --------------------------------------------------------------------------------------------
# properties
# --------------------------------------------------------------------------------------------

@given(x=integer_valued_arrays(), c=st.integers(-1000, 1000), data=st.data())
def test_translation_invariance(x, c, data):
    axis = data.draw(axis_for(x.ndim))
    shifted = (x + x.dtype.type(c)).astype(x.dtype)
    assert np.array_equal(shifted - x.dtype.type(c), x)  # the shift rounded nothing
    for f in (sk.softmax, sk.softmin):
        a, b = f(x, axis=axis), f(shifted, axis=axis)
        assert np.max(_ulps(a, b, x.dtype), initial=0) <= 8, f.__name__
    la, lb = sk.log_softmax(x, axis=axis), sk.log_softmax(shifted, axis=axis)
    assert np.max(ulp_error(la, lb.astype(np.longdouble), x.dtype, floor=1), initial=0) <= 8
    # logsumexp shifts by exactly c
    l1 = np.asarray(sk.logsumexp(x, axis=axis)).astype(np.float64) + c
    l2 = np.asarray(sk.logsumexp(shifted, axis=axis)).astype(np.float64)
    eps = float(np.finfo(x.dtype).eps)
    np.testing.assert_allclose(l1, l2, rtol=8 * eps, atol=8 * eps * (abs(c) + 1))


@given(x=finite_arrays(), data=st.data())
def test_sums_to_one(x, data):
    axis = data.draw(axis_for(x.ndim))
    axes = normalize_axes(axis, x.ndim)
    for f in (sk.softmax, sk.softmin):
        r = f(x, axis=axis)
        s = np.sum(r.astype(np.longdouble), axis=axes)
        # every entry within 4 ulp <= 4 eps relative, so the (exact) sum is within 4 eps of 1
        eps = float(np.finfo(x.dtype).eps)
        assert np.all(np.abs(s - 1) <= 4 * eps), (f.__name__, s)
        assert np.all((r >= 0) & (r <= 1))


@given(x=finite_arrays(), data=st.data())
def test_masked_entries_are_exactly_zero(x, data):
    axis = data.draw(axis_for(x.ndim))
    mask = data.draw(hnp.arrays(np.bool_, x.shape))
    s = sk.softmax(x, axis=axis, where=mask)
    assert np.all(s[~mask] == 0)
    ls = sk.log_softmax(x, axis=axis, where=mask)
    assert np.all(ls[~mask] == -np.inf)
    assert not np.isnan(s).any() and not np.isnan(ls).any()
    # slices with at least one kept entry sum to 1; fully masked ones are all 0
    axes = normalize_axes(axis, x.ndim)
    kept = np.any(mask, axis=axes)
    total = np.sum(s.astype(np.float64), axis=axes)
    eps = float(np.finfo(x.dtype).eps)
    np.testing.assert_allclose(total[kept], 1.0, rtol=0, atol=4 * eps)
    assert np.all(total[~kept] == 0)
    lse = np.asarray(sk.logsumexp(x, axis=axis, where=mask))
    assert np.all(lse[~kept] == -np.inf)
    # masked values do not matter at all
    junk = np.where(mask, x, x.dtype.type(np.nan))
    np.testing.assert_array_equal(sk.softmax(junk, axis=axis, where=mask), s)


@given(x=finite_arrays(max_dims=4, max_side=5), data=st.data())
def test_invariant_under_axis_permutation(x, data):
    perm = data.draw(st.permutations(range(x.ndim)))
    axis = data.draw(st.integers(0, x.ndim - 1))
    xt = np.transpose(x, perm)
    new_axis = list(perm).index(axis)
    inv = np.argsort(perm)
    for f in (sk.softmax, sk.softmin):
        a = f(x, axis=axis)
        b = np.transpose(f(xt, axis=new_axis), inv)
        assert np.max(_ulps(a, b, x.dtype), initial=0) <= 8, f.__name__
    a = sk.log_softmax(x, axis=axis)
    b = np.transpose(sk.log_softmax(xt, axis=new_axis), inv)
    assert np.max(ulp_error(a, b.astype(np.longdouble), x.dtype, floor=1), initial=0) <= 8


@given(x=finite_arrays(max_dims=2, max_side=9))
def test_transposition(x):
    if x.ndim == 1:
        x = x[:, None]
    a = sk.softmax(x, axis=0)
    b = sk.softmax(np.ascontiguousarray(x.T), axis=1).T
    assert np.max(_ulps(a, b, x.dtype), initial=0) <= 8
    c = sk.softmax(x.T, axis=1).T  # a transposed view rather than a copy
    assert np.max(_ulps(a, c, x.dtype), initial=0) <= 8


@given(x=finite_arrays(max_dims=4, max_side=4), data=st.data())
def test_axis_tuple_equals_reshape_then_softmax(x, data):
    k = data.draw(st.integers(1, x.ndim))
    axes = tuple(sorted(data.draw(st.permutations(range(x.ndim)))[:k]))
    other = [i for i in range(x.ndim) if i not in axes]
    moved = np.transpose(x, other + list(axes))
    folded = moved.reshape(moved.shape[: len(other)] + (-1,))
    ref = sk.softmax(np.ascontiguousarray(folded), axis=-1).reshape(moved.shape)
    ref = np.transpose(ref, np.argsort(other + list(axes)))
    assert np.max(_ulps(sk.softmax(x, axis=axes), ref, x.dtype), initial=0) <= 8
    lref = np.asarray(sk.logsumexp(np.ascontiguousarray(folded), axis=-1))
    lse = np.asarray(sk.logsumexp(x, axis=axes))
    eps = float(np.finfo(x.dtype).eps)
    np.testing.assert_allclose(lse.astype(np.float64), lref.astype(np.float64), rtol=8 * eps,
                               atol=8 * eps)


@given(x=finite_arrays(bound=30.0), data=st.data())
def test_log_softmax_is_log_of_softmax(x, data):
    axis = data.draw(axis_for(x.ndim))
    s = sk.softmax(x, axis=axis)
    ls = sk.log_softmax(x, axis=axis)
    eps = float(np.finfo(x.dtype).eps)
    ok = s > 1e-30  # where softmax is not tiny, log(softmax) is as good as softmax
    with np.errstate(divide="ignore"):
        logs = np.log(s.astype(np.float64))
    # softmax within 4 ulp -> log within 4 eps (absolute); log_softmax within 4 ulp of max(|.|,1)
    tol = 4 * eps + 4 * eps * np.maximum(np.abs(logs), 1)
    assert np.all(np.abs(ls.astype(np.float64) - logs)[ok] <= tol[ok] + 1e-300)


@given(x=finite_arrays(bound=40.0), data=st.data())
def test_logsumexp_is_log_sum_exp_for_moderate_inputs(x, data):
    axis = data.draw(axis_for(x.ndim))
    axes = normalize_axes(axis, x.ndim)
    direct = np.log(np.sum(np.exp(x.astype(np.longdouble)), axis=axes))
    r = np.asarray(sk.logsumexp(x, axis=axis))
    assert r.dtype == x.dtype
    err = ulp_error(r, direct, x.dtype, floor=1)
    assert np.max(err, initial=0) <= 4 + 1e-9, (r, direct)


@given(x=any_arrays(), data=st.data())
def test_softmin_is_softmax_of_negated_input(x, data):
    axis = data.draw(axis_for(x.ndim))
    t = data.draw(st.sampled_from([1.0, 0.5, 3.0]))
    a = sk.softmin(x, axis=axis, temperature=t)
    b = sk.softmax(-x, axis=axis, temperature=t)
    np.testing.assert_array_equal(a, b)


@given(x=any_arrays(), data=st.data())
def test_any_input_matches_reference(x, data):
    axis = data.draw(axis_for(x.ndim))
    use_mask = data.draw(st.booleans())
    mask = data.draw(hnp.arrays(np.bool_, x.shape)) if use_mask else None
    compute = np.longdouble if x.dtype == np.float64 else np.float64
    assert_matches(sk.softmax(x, axis=axis, where=mask),
                   softmax_ref(x, axis, where=mask, compute=compute), dtype=x.dtype)
    assert_matches(sk.log_softmax(x, axis=axis, where=mask),
                   log_softmax_ref(x, axis, where=mask, compute=compute), dtype=x.dtype, log=True)
    assert_matches(np.asarray(sk.logsumexp(x, axis=axis, where=mask)),
                   logsumexp_ref(x, axis, where=mask, compute=compute), dtype=x.dtype, log=True)


@given(x=finite_arrays(bound=20.0), data=st.data())
def test_temperature_is_division(x, data):
    # powers of two divide exactly, so the results must agree to the ulp tolerance
    t = data.draw(st.sampled_from([0.25, 0.5, 2.0, 8.0]))
    axis = data.draw(axis_for(x.ndim))
    a = sk.softmax(x, axis=axis, temperature=t)
    b = sk.softmax((x / x.dtype.type(t)).astype(x.dtype), axis=axis)
    assert np.max(_ulps(a, b, x.dtype), initial=0) <= 8


@given(x=finite_arrays(max_dims=2), data=st.data())
def test_rows_do_not_depend_on_the_rest_of_the_batch(x, data):
    if x.ndim == 1:
        x = x[None, :]
    i = data.draw(st.integers(0, x.shape[0] - 1))
    full = sk.softmax(x, axis=-1)
    alone = sk.softmax(x[i : i + 1], axis=-1)
    assert np.max(_ulps(full[i : i + 1], alone, x.dtype), initial=0) <= 8


@given(x=finite_arrays(bound=20.0), data=st.data())
def test_backward_matches_formula(x, data):
    axis = data.draw(axis_for(x.ndim))
    g = data.draw(hnp.arrays(x.dtype, x.shape, elements=st.floats(-2, 2, width=32)))
    y = sk.softmax(x, axis=axis)
    axes = normalize_axes(axis, x.ndim)
    y64, g64 = y.astype(np.float64), g.astype(np.float64)
    expected = y64 * (g64 - np.sum(g64 * y64, axis=axes, keepdims=True))
    r = sk.softmax_backward(g, y, axis=axis)
    assert r.dtype == x.dtype
    eps = float(np.finfo(x.dtype).eps)
    np.testing.assert_allclose(r, expected, rtol=16 * eps, atol=16 * eps * 2)
    ly = sk.log_softmax(x, axis=axis)
    ly64 = ly.astype(np.float64)
    expected = g64 - np.exp(ly64) * np.sum(g64, axis=axes, keepdims=True)
    r = sk.log_softmax_backward(g, ly, axis=axis)
    n = max(1, int(np.prod([x.shape[a] for a in axes])))
    np.testing.assert_allclose(r, expected, rtol=16 * eps, atol=16 * eps * 2 * n)


@given(x=finite_arrays(max_dims=2, max_side=6))
def test_result_is_deterministic(x):
    a = sk.softmax(x)
    b = sk.softmax(x.copy())
    np.testing.assert_array_equal(a, b)
