"""The written policy of softmaxkit (issue 2), one test (or parametrised family) per row.

Values are compared with the naive references in ``tests/naive.py`` at loose tolerances; ulp-level
accuracy lives in ``test_accuracy.py`` and error handling in ``test_errors.py``.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import math

import numpy as np
import pytest

import softmaxkit as sk
from softmaxkit import _numpy_backend as backend
from naive import (
    assert_matches,
    log_softmax_ref,
    logsumexp_ref,
    softmax_ref,
    softmin_ref,
    ulp_error,
)

INF = np.inf
NAN = np.nan

SOFTMAX_LIKE = {
    "softmax": (lambda *a, **k: sk.softmax(*a, **k), softmax_ref, False),
    "log_softmax": (lambda *a, **k: sk.log_softmax(*a, **k), log_softmax_ref, True),
    "softmin": (lambda *a, **k: sk.softmin(*a, **k), softmin_ref, False),
}


@pytest.fixture(params=sorted(SOFTMAX_LIKE))
def fn(request):
    """(softmaxkit function, naive reference, is_log) for softmax, log_softmax and softmin."""
    return SOFTMAX_LIKE[request.param]


def _x3(rng, dtype=np.float64):
    return (rng.standard_normal((2, 3, 4)) * 3).astype(dtype)


# --------------------------------------------------------------------------------------------
# axis
# --------------------------------------------------------------------------------------------

AXES_3D = [0, 1, 2, -1, -2, -3, (0,), (0, 2), (2, 0), (-1, 0), (0, 1, 2), (1, 2), None, ()]


@pytest.mark.parametrize("axis", AXES_3D, ids=repr)
def test_softmax_family_axis_forms_match_reference(fn, axis, rng):
    f, ref, is_log = fn
    x = _x3(rng)
    assert_matches(f(x, axis=axis), ref(x, axis, compute=np.longdouble), dtype=np.float64,
                   log=is_log)


@pytest.mark.parametrize("axis", AXES_3D, ids=repr)
@pytest.mark.parametrize("keepdims", [False, True])
def test_logsumexp_axis_forms_match_reference(axis, keepdims, rng):
    x = _x3(rng)
    r = sk.logsumexp(x, axis=axis, keepdims=keepdims)
    assert_matches(np.asarray(r), logsumexp_ref(x, axis, keepdims=keepdims), dtype=np.float64,
                   log=True)


def test_default_axes(rng):
    x = _x3(rng)
    assert_matches(sk.softmax(x), softmax_ref(x, -1), dtype=np.float64)
    assert_matches(sk.log_softmax(x), log_softmax_ref(x, -1), dtype=np.float64, log=True)
    assert_matches(sk.softmin(x), softmin_ref(x, -1), dtype=np.float64)
    # logsumexp reduces over every element by default, like SciPy.
    r = sk.logsumexp(x)
    assert np.shape(r) == ()
    assert_matches(np.asarray(r), logsumexp_ref(x, None), log=True)


def test_axis_positional_is_allowed(rng):
    x = _x3(rng)
    np.testing.assert_array_equal(sk.softmax(x, 1), sk.softmax(x, axis=1))
    np.testing.assert_array_equal(sk.logsumexp(x, 1), sk.logsumexp(x, axis=1))


@pytest.mark.parametrize("axis", [np.int64(1), np.int32(-1), np.intp(0)], ids=repr)
def test_numpy_integer_axis(fn, axis, rng):
    f, ref, is_log = fn
    x = _x3(rng)
    assert_matches(f(x, axis=axis), ref(x, int(axis)), log=is_log)


def test_axis_tuple_normalises_over_all_axes_together(rng):
    x = _x3(rng)
    r = sk.softmax(x, axis=(0, 2))
    np.testing.assert_allclose(r.sum(axis=(0, 2)), 1.0, rtol=1e-13)
    # same as moving the axes to the end and folding them
    folded = np.moveaxis(x, (0, 2), (1, 2)).reshape(3, 8)
    np.testing.assert_allclose(
        np.moveaxis(r, (0, 2), (1, 2)).reshape(3, 8), sk.softmax(folded, axis=-1), rtol=1e-13
    )
    # order of the tuple does not matter
    np.testing.assert_array_equal(sk.softmax(x, axis=(2, 0)), r)
    np.testing.assert_array_equal(sk.softmax(x, axis=(-1, 0)), r)


def test_axis_none_is_every_element(fn, rng):
    f, ref, is_log = fn
    x = _x3(rng)
    assert_matches(f(x, axis=None), ref(x, None), log=is_log)
    if not is_log:
        assert math.isclose(float(f(x, axis=None).sum()), 1.0, rel_tol=1e-13)


def test_empty_axis_tuple_makes_every_element_its_own_slice():
    x = np.array([[1.5, -INF, INF], [NAN, 0.0, -3.0]])
    s = sk.softmax(x, axis=())
    np.testing.assert_array_equal(s, [[1.0, 0.0, 1.0], [NAN, 1.0, 1.0]])
    ls = sk.log_softmax(x, axis=())
    np.testing.assert_array_equal(ls, [[0.0, -INF, 0.0], [NAN, 0.0, 0.0]])
    np.testing.assert_array_equal(sk.softmin(x, axis=()), [[1.0, 1.0, 0.0], [NAN, 1.0, 1.0]])
    lse = sk.logsumexp(x, axis=())
    assert lse.shape == x.shape
    np.testing.assert_array_equal(lse, x)


@pytest.mark.parametrize("axis", [-1, 0, None, ()], ids=repr)
def test_zero_d_in_gives_zero_d_out(axis):
    x = np.array(2.5)
    for f, expected in [(sk.softmax, 1.0), (sk.log_softmax, 0.0), (sk.softmin, 1.0),
                        (sk.logsumexp, 2.5)]:
        r = f(x, axis=axis)
        assert isinstance(r, np.ndarray), (f.__name__, type(r))
        assert r.shape == ()
        assert r.dtype == np.float64
        assert r == expected, (f.__name__, r)


@pytest.mark.parametrize("value, soft, log", [(-INF, 0.0, -INF), (INF, 1.0, 0.0), (NAN, NAN, NAN)],
                         ids=["-inf", "+inf", "nan"])
def test_zero_d_special_values(value, soft, log):
    x = np.array(value)
    np.testing.assert_array_equal(sk.softmax(x), soft)
    np.testing.assert_array_equal(sk.log_softmax(x), log)
    np.testing.assert_array_equal(sk.logsumexp(x), value)


@pytest.mark.parametrize("scalar", [3, 2.5, True, np.float32(1.5), np.float64(-7.0)],
                         ids=["int", "float", "bool", "np.float32", "np.float64"])
def test_python_and_numpy_scalars_are_accepted(scalar):
    r = sk.softmax(scalar)
    assert isinstance(r, np.ndarray) and r.shape == ()
    expected_dtype = np.float32 if isinstance(scalar, np.float32) else np.float64
    assert r.dtype == expected_dtype
    assert r == 1.0
    assert sk.log_softmax(scalar) == 0.0
    assert np.asarray(sk.logsumexp(scalar)) == np.float64(scalar).astype(expected_dtype)


def test_array_likes_are_accepted():
    expected = softmax_ref([[1.0, 2.0, 3.0], [4.0, 5.0, 7.0]], -1)
    assert_matches(sk.softmax([[1.0, 2.0, 3.0], [4.0, 5.0, 7.0]]), expected, dtype=np.float64)
    assert_matches(sk.softmax(((1, 2, 3), (4, 5, 7))), expected, dtype=np.float64)
    assert_matches(np.asarray(sk.logsumexp([1, 2, 3])), logsumexp_ref([1.0, 2.0, 3.0]), log=True)


# --------------------------------------------------------------------------------------------
# dtypes
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint64,
                                   np.bool_], ids=lambda d: np.dtype(d).name)
def test_ints_and_bools_promote_to_float64(fn, dtype):
    f, ref, is_log = fn
    x = np.array([[0, 1, 1, 0], [1, 0, 1, 1]], dtype=dtype)
    r = f(x)
    assert r.dtype == np.float64
    assert_matches(r, ref(x.astype(np.float64), -1), dtype=np.float64, log=is_log)
    lse = np.asarray(sk.logsumexp(x, axis=1))
    assert lse.dtype == np.float64
    assert_matches(lse, logsumexp_ref(x.astype(np.float64), 1), log=True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float32_and_float64_stay(fn, dtype, rng):
    f, ref, is_log = fn
    x = _x3(rng, dtype)
    r = f(x, axis=1)
    assert r.dtype == dtype
    assert_matches(r, ref(x, 1), dtype=dtype, log=is_log)
    assert np.asarray(sk.logsumexp(x, axis=1)).dtype == dtype


def test_float16_computes_in_float32_and_returns_float16(fn, rng):
    f, ref, is_log = fn
    x = _x3(rng, np.float16)
    r = f(x, axis=-1)
    assert r.dtype == np.float16
    assert_matches(r, ref(x, -1), dtype=np.float16, log=is_log)
    lse = np.asarray(sk.logsumexp(x, axis=-1))
    assert lse.dtype == np.float16
    assert_matches(lse, logsumexp_ref(x, -1), dtype=np.float16, log=True)


def test_float16_sums_past_65504_do_not_overflow():
    x = np.zeros(100_000, np.float16)
    r = sk.softmax(x)
    assert r.dtype == np.float16
    # 1e-5 rounded to float16 (a subnormal: 168 * 2**-24)
    np.testing.assert_array_equal(r, np.full(100_000, np.float16(1e-5)))
    lse = np.asarray(sk.logsumexp(x))
    assert lse.dtype == np.float16
    # log(1e5) = 11.5129...; the nearest float16 is 11.515625
    assert lse == np.float16(np.log(1e5)) == np.float16(11.516)
    ls = sk.log_softmax(x)
    np.testing.assert_array_equal(ls, np.full(100_000, np.float16(-np.log(1e5))))


def test_float16_extremes():
    x = np.array([65504, 65504, -65504, 0], np.float16)
    np.testing.assert_array_equal(sk.softmax(x), np.array([0.5, 0.5, 0, 0], np.float16))
    np.testing.assert_array_equal(sk.log_softmax(x)[:2], np.float16(-np.log(2)))
    assert np.asarray(sk.logsumexp(x)) == np.float16(65504)


def test_bfloat16_computes_in_float32_and_returns_bfloat16(fn, rng):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    f, ref, is_log = fn
    bf16 = np.dtype(ml_dtypes.bfloat16)
    x = _x3(rng).astype(bf16)
    r = f(x, axis=-1)
    assert r.dtype == bf16
    assert_matches(r, ref(x.astype(np.float64), -1), dtype=bf16, log=is_log)
    big = np.zeros(100_000, bf16)
    s = sk.softmax(big)
    assert s.dtype == bf16
    np.testing.assert_array_equal(s.astype(np.float32), np.float32(np.array(1e-5).astype(bf16)))
    lse = np.asarray(sk.logsumexp(big))
    assert lse.dtype == bf16
    assert lse.astype(np.float32) == np.float32(np.array(np.log(1e5)).astype(bf16))


@pytest.mark.parametrize("dtype", [">f8", ">f4", "<f8", "<f4"])
def test_non_native_byte_order(fn, dtype, rng):
    # one of each pair is non-native on any machine
    f, ref, is_log = fn
    x = _x3(rng).astype(dtype)
    r = f(x, axis=1)
    assert np.dtype(r.dtype.type) == np.dtype(x.dtype.type)
    assert_matches(r, ref(x, 1), dtype=x.dtype.type, log=is_log)
    lse = np.asarray(sk.logsumexp(x, axis=(0, 2)))
    assert_matches(lse, logsumexp_ref(x, (0, 2)), dtype=x.dtype.type, log=True)


@pytest.mark.parametrize(
    "in_dtype, dtype_arg, out_dtype",
    [
        (np.float32, np.float64, np.float64),
        (np.float64, np.float32, np.float32),
        (np.int64, np.float32, np.float32),
        (np.float64, np.float16, np.float16),
        (np.float32, "float64", np.float64),
        (np.float64, np.dtype("float32"), np.float32),
    ],
    ids=str,
)
def test_dtype_argument_casts_before_computing(fn, in_dtype, dtype_arg, out_dtype, rng):
    f, ref, is_log = fn
    x = (rng.standard_normal((3, 5)) * 4).astype(in_dtype)
    r = f(x, dtype=dtype_arg)
    assert r.dtype == out_dtype
    # "casts before computing": the same as calling on x.astype(dtype)
    cast = x.astype(out_dtype)
    assert_matches(r, ref(cast, -1), dtype=out_dtype, log=is_log)
    np.testing.assert_array_equal(r, f(cast))


def test_dtype_float64_recovers_precision_of_float32_input():
    # x - max rounds in float32 only if computed there; with dtype=float64 it is exact.
    x = np.array([0.0, -100.0], np.float32)
    r = sk.softmax(x, dtype=np.float64)
    assert r.dtype == np.float64
    assert r[1] == pytest.approx(math.exp(-100) / (1 + math.exp(-100)), rel=1e-14)


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
def test_logsumexp_complex_stays_complex(dtype):
    a = np.array([[1 + 2j, 3 - 1j, -0.5 + 0.25j], [0.5j, 2 + 3j, 1 - 3j]], dtype=dtype)
    r = np.asarray(sk.logsumexp(a, axis=1))
    assert r.dtype == dtype
    expected = np.log(np.sum(np.exp(a.astype(np.complex128)), axis=1))
    np.testing.assert_allclose(r, expected, rtol=1e-5 if dtype == np.complex64 else 1e-13)
    assert np.all(r.imag > -np.pi) and np.all(r.imag <= np.pi)


def test_logsumexp_complex_imaginary_part_is_principal():
    # exp(a) sums to a negative real number: its log has imaginary part exactly pi, never -pi.
    a = np.array([np.log(2) + 1j * np.pi, 0.0 + 0j])  # -2 + 1 = -1
    r = np.asarray(sk.logsumexp(a))
    assert abs(r.real) < 1e-15
    assert r.imag == pytest.approx(np.pi, rel=1e-15)
    # imaginary parts far outside (-pi, pi] are wrapped back
    b = np.array([1 + 7j, 1 + 7j])
    rb = np.asarray(sk.logsumexp(b))
    assert -np.pi < rb.imag <= np.pi
    np.testing.assert_allclose(rb, np.log(2 * np.exp(1 + 7j)), rtol=1e-14)


def test_logsumexp_complex_return_sign_gives_a_phase():
    a = np.array([1 + 2j, 3 - 1j])
    res, sign = sk.logsumexp(a, return_sign=True)
    s = np.sum(np.exp(a))
    assert np.isrealobj(res)
    np.testing.assert_allclose(res, np.log(abs(s)), rtol=1e-14)
    assert np.iscomplexobj(sign)
    np.testing.assert_allclose(sign, s / abs(s), rtol=1e-14)


def test_logsumexp_dtype_argument_complex():
    r = np.asarray(sk.logsumexp(np.array([0.0, 0.0]), dtype=np.complex128))
    assert r.dtype == np.complex128
    np.testing.assert_allclose(r, np.log(2), rtol=1e-15)


# --------------------------------------------------------------------------------------------
# temperature
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("temperature", [0.5, 2.0, 3.0, 1e-3, 7, np.float32(0.25),
                                         np.array(2.0), np.array([2.0])], ids=repr)
def test_temperature_divides_the_input(fn, temperature, rng):
    f, ref, is_log = fn
    x = rng.standard_normal((4, 6))
    t = float(np.asarray(temperature).reshape(()))
    r = f(x, temperature=temperature)
    assert r.dtype == np.float64
    assert_matches(r, ref(x, -1, temperature=t, compute=np.longdouble), log=is_log, rtol=1e-11)


def test_temperature_keeps_float32(fn, rng):
    f, ref, is_log = fn
    x = rng.standard_normal((4, 6)).astype(np.float32)
    r = f(x, temperature=2.0)
    assert r.dtype == np.float32
    assert_matches(r, ref(x, -1, temperature=2.0), log=is_log)


def test_softmin_uses_minus_x_over_temperature():
    x = np.array([1.0, 2.0, 4.0])
    np.testing.assert_allclose(sk.softmin(x, temperature=2.0), sk.softmax(-x / 2.0), rtol=1e-15)
    np.testing.assert_allclose(sk.softmin(x, temperature=2.0),
                               softmax_ref(-x / 2, compute=np.longdouble), rtol=1e-14)


def test_tiny_temperature_tends_to_argmax():
    x = np.array([1.0, 2.0, 0.5])
    np.testing.assert_array_equal(sk.softmax(x, temperature=1e-300), [0.0, 1.0, 0.0])
    np.testing.assert_array_equal(sk.softmin(x, temperature=1e-300), [0.0, 0.0, 1.0])


def test_huge_temperature_tends_to_uniform():
    x = np.array([1.0, 2.0, 0.5, -4.0])
    np.testing.assert_allclose(sk.softmax(x, temperature=1e300), 0.25, rtol=1e-15)


def test_temperature_with_logsumexp_like_identity(rng):
    # log_softmax(x, T) == x/T - logsumexp(x/T)
    x = rng.standard_normal((3, 7))
    t = 0.75
    expected = x / t - sk.logsumexp(x / t, axis=-1, keepdims=True)
    np.testing.assert_allclose(sk.log_softmax(x, temperature=t), expected, rtol=1e-13, atol=1e-15)


# --------------------------------------------------------------------------------------------
# where
# --------------------------------------------------------------------------------------------

def test_where_masked_entries_are_exactly_zero_and_excluded(rng):
    x = rng.standard_normal((5, 8))
    mask = rng.random((5, 8)) < 0.6
    mask[:, 0] = True  # every row keeps at least one entry
    s = sk.softmax(x, where=mask)
    assert np.all(s[~mask] == 0.0)
    ls = sk.log_softmax(x, where=mask)
    assert np.all(ls[~mask] == -INF)
    for i in range(5):
        kept = x[i, mask[i]]
        np.testing.assert_allclose(s[i, mask[i]], softmax_ref(kept), rtol=1e-13)
        np.testing.assert_allclose(ls[i, mask[i]], log_softmax_ref(kept), rtol=1e-13, atol=1e-15)
    lse = sk.logsumexp(x, axis=1, where=mask)
    np.testing.assert_allclose(
        lse, [float(logsumexp_ref(x[i, mask[i]])) for i in range(5)], rtol=1e-13)
    sm = sk.softmin(x, where=mask)
    assert np.all(sm[~mask] == 0.0)
    np.testing.assert_allclose(sm, softmin_ref(x, -1, where=mask), rtol=1e-12)


def test_where_hides_nan_and_inf_at_masked_positions():
    x = np.array([[1.0, NAN, 2.0], [INF, 0.0, 1.0], [-INF, 3.0, NAN]])
    mask = np.array([[True, False, True], [False, True, True], [True, True, False]])
    s = sk.softmax(x, where=mask)
    expected = softmax_ref(x, -1, where=mask)
    assert not np.isnan(s).any()
    assert_matches(s, expected)
    assert np.all(s[~mask] == 0)
    ls = sk.log_softmax(x, where=mask)
    assert not np.isnan(ls).any()
    assert_matches(ls, log_softmax_ref(x, -1, where=mask), log=True)
    lse = sk.logsumexp(x, axis=1, where=mask)
    assert np.all(np.isfinite(lse))
    assert_matches(lse, logsumexp_ref(x, 1, where=mask), log=True)


@pytest.mark.parametrize("mask_shape", [(1, 6), (4, 1), (6,), (4, 6), ()], ids=str)
def test_where_broadcasts(fn, mask_shape, rng):
    f, ref, is_log = fn
    x = rng.standard_normal((4, 6))
    mask = rng.random(mask_shape) < 0.7
    if mask_shape == ():
        mask = np.True_
    elif mask_shape in [(1, 6), (6,)]:
        mask[..., 0] = True
    r = f(x, where=mask)
    assert_matches(r, ref(x, -1, where=mask), log=is_log)
    lse = sk.logsumexp(x, axis=1, where=mask)
    assert_matches(np.asarray(lse), logsumexp_ref(x, 1, where=mask), log=True)


def test_where_as_list_of_bools():
    r = sk.softmax([1.0, 2.0, 3.0], where=[True, False, True])
    np.testing.assert_allclose(r, [softmax_ref([1.0, 3.0])[0], 0.0, softmax_ref([1.0, 3.0])[1]],
                               rtol=1e-15)


@pytest.mark.parametrize("axis", [None, (0, 1), 0], ids=repr)
def test_where_with_other_axis_forms(fn, axis, rng):
    f, ref, is_log = fn
    x = rng.standard_normal((3, 4))
    mask = rng.random((3, 4)) < 0.5
    mask[0, :] = True
    r = f(x, axis=axis, where=mask)
    assert_matches(r, ref(x, axis, where=mask), log=is_log)


def test_where_all_true_changes_nothing(fn, rng):
    f, _, _ = fn
    x = rng.standard_normal((3, 4))
    np.testing.assert_array_equal(f(x, where=np.ones((3, 4), bool)), f(x))


def test_where_and_temperature_together(rng):
    x = rng.standard_normal((3, 5))
    mask = np.array([True, False, True, True, False])
    assert_matches(sk.softmax(x, temperature=0.5, where=mask),
                   softmax_ref(x, -1, temperature=0.5, where=mask), rtol=1e-12)


# --------------------------------------------------------------------------------------------
# all -inf / fully masked slices: zeros and -inf, never NaN (and no warnings: filterwarnings=error)
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_all_minus_inf_slice_gives_zeros_not_nan(dtype):
    x = np.array([[-INF, -INF, -INF], [0.0, 1.0, 2.0]], dtype=dtype)
    s = sk.softmax(x)
    np.testing.assert_array_equal(s[0], [0.0, 0.0, 0.0])
    assert_matches(s[1], softmax_ref(x[1]))
    np.testing.assert_array_equal(sk.log_softmax(x)[0], [-INF, -INF, -INF])
    lse = sk.logsumexp(x, axis=1)
    assert lse[0] == -INF
    # softmin of an all +inf slice is an all -inf slice after negation
    np.testing.assert_array_equal(sk.softmin(-x)[0], [0.0, 0.0, 0.0])


def test_fully_masked_slice_gives_zeros_not_nan():
    x = np.array([[1.0, 2.0, NAN], [4.0, 5.0, 6.0]])
    mask = np.array([[False, False, False], [True, False, True]])
    s = sk.softmax(x, where=mask)
    np.testing.assert_array_equal(s[0], [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(sk.log_softmax(x, where=mask)[0], [-INF, -INF, -INF])
    lse = sk.logsumexp(x, axis=1, where=mask)
    assert lse[0] == -INF
    assert lse[1] == pytest.approx(np.logaddexp(4.0, 6.0), rel=1e-15)
    np.testing.assert_array_equal(sk.softmax(x, where=False), np.zeros_like(x))
    assert sk.logsumexp(x, where=False) == -INF


def test_partly_minus_inf_entries_are_exactly_zero():
    x = np.array([-INF, 0.0, -INF, 0.0])
    np.testing.assert_array_equal(sk.softmax(x), [0.0, 0.5, 0.0, 0.5])
    np.testing.assert_array_equal(sk.log_softmax(x), [-INF, -np.log(2), -INF, -np.log(2)])
    assert sk.logsumexp(x) == pytest.approx(np.log(2), rel=1e-15)


# --------------------------------------------------------------------------------------------
# +inf entries: the mathematical limit
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_plus_inf_entries_share_probability_equally(dtype, k):
    x = np.array([1.0, -INF, 1e30 if dtype != np.float16 else 6e4, -2.0] + [INF] * k,
                 dtype=dtype)
    s = sk.softmax(x)
    assert s.dtype == dtype
    expected = np.array([0, 0, 0, 0] + [1 / k] * k).astype(dtype)
    np.testing.assert_array_equal(s, expected)
    ls = sk.log_softmax(x)
    np.testing.assert_array_equal(ls[:4], -INF)
    np.testing.assert_allclose(ls[4:].astype(np.float64), -np.log(k),
                               rtol=float(np.finfo(dtype).eps))
    assert sk.logsumexp(x) == INF


def test_plus_inf_along_other_axes():
    x = np.array([[INF, 1.0], [INF, INF], [2.0, 3.0]])
    s0 = sk.softmax(x, axis=0)
    np.testing.assert_array_equal(s0[:, 0], [0.5, 0.5, 0.0])
    np.testing.assert_array_equal(s0[:, 1], [0.0, 1.0, 0.0])
    s_all = sk.softmax(x, axis=None)
    np.testing.assert_array_equal(s_all, [[1 / 3, 0.0], [1 / 3, 1 / 3], [0.0, 0.0]])
    np.testing.assert_array_equal(sk.logsumexp(x, axis=0), [INF, INF])


def test_softmin_minus_inf_entries_take_all_probability():
    x = np.array([3.0, -INF, 0.0, -INF])
    np.testing.assert_array_equal(sk.softmin(x), [0.0, 0.5, 0.0, 0.5])


def test_nan_beats_plus_inf():
    x = np.array([[INF, NAN, 1.0], [INF, 0.0, 1.0]])
    s = sk.softmax(x)
    assert np.isnan(s[0]).all()
    np.testing.assert_array_equal(s[1], [1.0, 0.0, 0.0])
    assert np.isnan(sk.log_softmax(x)[0]).all()
    lse = sk.logsumexp(x, axis=1)
    assert np.isnan(lse[0]) and lse[1] == INF


def test_plus_inf_with_minus_inf_and_mask():
    x = np.array([INF, -INF, INF, 5.0])
    mask = np.array([True, True, False, True])
    np.testing.assert_array_equal(sk.softmax(x, where=mask), [1.0, 0.0, 0.0, 0.0])
    np.testing.assert_array_equal(sk.log_softmax(x, where=mask), [0.0, -INF, -INF, -INF])


# --------------------------------------------------------------------------------------------
# NaN
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_nan_poisons_only_its_own_slice(dtype):
    x = np.array([[1.0, NAN, 2.0], [1.0, 2.0, 3.0], [-INF, NAN, -INF]], dtype=dtype)
    for f in (sk.softmax, sk.log_softmax, sk.softmin):
        r = f(x)
        assert np.isnan(r[0]).all() and np.isnan(r[2]).all(), f.__name__
        assert not np.isnan(r[1]).any(), f.__name__
    lse = sk.logsumexp(x, axis=1)
    assert np.isnan(lse[0]) and np.isnan(lse[2]) and np.isfinite(lse[1])
    # along axis 0 every column meets a NaN or not
    r0 = sk.softmax(x, axis=0)
    assert np.isnan(r0[:, 1]).all()
    assert not np.isnan(r0[:, [0, 2]]).any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("inplace", [False, True], ids=["out", "inplace"])
def test_nan_anywhere_in_a_long_row(dtype, inplace):
    # The row max skips NaN in its vector loop (16 or 8 lanes, four accumulators, a scalar
    # tail); the NaN must then show through the sum.  Put it at a position in every part of that
    # loop, next to +inf or -inf or neither: a -inf entry's exp is 0, so for log_softmax only an
    # explicit check makes it NaN.  Row length 200 + 37: serial rows; 3000 rows: parallel.
    n = 237
    positions = [0, 1, 15, 16, 63, 64, 65, 127, 199, 200, 236]
    for rows in (len(positions), 3000):
        base = np.random.default_rng(5).standard_normal((rows, n)).astype(dtype)
        for company in (None, INF, -INF):
            x = base.copy()
            bad = np.arange(rows) % 2 == 0  # every other row gets a NaN
            for r in np.flatnonzero(bad):
                p = positions[r % len(positions)]
                x[r, p] = NAN
                if company is not None:
                    x[r, (p + 7) % n] = company
                    x[r, (p + 100) % n] = company
            lse = sk.logsumexp(x, axis=-1)
            assert np.isnan(lse[bad]).all() and np.isfinite(lse[~bad]).all()
            for f, temperature in itertools.product((sk.softmax, sk.log_softmax), (1.0, 2.0)):
                if inplace:
                    r = x.copy()
                    f(r, temperature=temperature, out=r)
                else:
                    r = f(x, temperature=temperature)
                assert np.isnan(r[bad]).all(), (f.__name__, temperature, company, rows)
                assert not np.isnan(r[~bad]).any(), (f.__name__, temperature, company, rows)


def test_nan_with_axis_none_poisons_everything():
    x = np.array([[1.0, 2.0], [NAN, 3.0]])
    assert np.isnan(sk.softmax(x, axis=None)).all()
    assert np.isnan(sk.logsumexp(x))


# --------------------------------------------------------------------------------------------
# empty arrays
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape, axis", [((0,), -1), ((0,), None), ((0, 3), 0), ((0, 3), 1),
                                         ((3, 0), 1), ((3, 0), 0), ((2, 0, 4), (0, 2)),
                                         ((3, 0), None), ((3, 0), ())], ids=str)
def test_empty_arrays_keep_their_shape(fn, shape, axis):
    f, _, _ = fn
    for dtype in (np.float32, np.float64, np.int64):
        x = np.zeros(shape, dtype)
        r = f(x, axis=axis)
        assert isinstance(r, np.ndarray)
        assert r.shape == shape
        assert r.dtype == (np.float64 if dtype == np.int64 else dtype)


@pytest.mark.parametrize("shape, axis, expected_shape", [
    ((0,), None, ()), ((0,), 0, ()), ((3, 0), 1, (3,)), ((0, 3), 0, (3,)), ((0, 3), 1, (0,)),
    ((2, 0, 4), (0, 2), (0,)), ((2, 0, 4), 1, (2, 4)), ((3, 0), None, ()),
], ids=str)
def test_logsumexp_over_zero_length_axis_is_minus_inf(shape, axis, expected_shape):
    x = np.zeros(shape)
    r = np.asarray(sk.logsumexp(x, axis=axis))
    assert r.shape == expected_shape
    assert np.all(r == -INF)
    rk = np.asarray(sk.logsumexp(x, axis=axis, keepdims=True))
    assert rk.shape == np.sum(x, axis=axis, keepdims=True).shape


def test_logsumexp_empty_return_sign():
    res, sign = sk.logsumexp(np.zeros((2, 0)), axis=1, return_sign=True)
    np.testing.assert_array_equal(res, [-INF, -INF])
    np.testing.assert_array_equal(sign, [0.0, 0.0])


# --------------------------------------------------------------------------------------------
# out=
# --------------------------------------------------------------------------------------------

def test_out_is_filled_and_returned(fn, rng):
    f, ref, is_log = fn
    x = rng.standard_normal((3, 5))
    out = np.full_like(x, 123.0)
    r = f(x, out=out)
    assert r is out
    assert_matches(out, ref(x, -1), log=is_log)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_out_may_be_x_itself(fn, dtype, rng):
    f, _, is_log = fn
    x = (rng.standard_normal((4, 33)) * 5).astype(dtype)
    expected = f(x.copy(), axis=0)
    r = f(x, axis=0, out=x)
    assert r is x
    np.testing.assert_array_equal(x, expected)


@pytest.mark.parametrize("axis", [-1, 0, None, (0, 1)], ids=repr)
def test_out_may_be_a_strided_x_itself(fn, axis, rng):
    f, _, _ = fn
    base = rng.standard_normal((6, 20))
    x = base[::2, ::-3]  # non-contiguous, negative stride
    expected = f(x.copy(), axis=axis)
    untouched = base[1::2].copy()
    assert f(x, axis=axis, out=x) is x
    np.testing.assert_array_equal(x, expected)
    np.testing.assert_array_equal(base[1::2], untouched)


def test_out_may_be_x_itself_with_mask_and_inf():
    x = np.array([[1.0, INF, 2.0, INF], [-INF, -INF, -INF, -INF], [NAN, 1.0, 2.0, 3.0]])
    mask = np.array([True, True, True, False])
    expected = sk.softmax(x.copy(), where=mask)
    sk.softmax(x, where=mask, out=x)
    np.testing.assert_array_equal(x, expected)


@pytest.mark.parametrize("n", [1000, 65536, 70000])  # rows up to 256 KiB stage their exps in `out`
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_log_softmax_out_rows_match_in_place_whatever_out_held(n, dtype, rng):
    # log_softmax stages a row's exps in its output row when it has one (not in place) and the
    # row is short enough; the last pass then overwrites every element, special rows included.
    x = (rng.standard_normal((7, n)) * 20).astype(dtype)
    x[1, 5] = NAN
    x[2, [3, 9]] = INF
    x[3, :] = -INF
    x[4, ::7] = -INF
    x[5, :] = x[5, 0]  # every entry at the max
    mask = np.ones(n, bool)
    mask[::3] = False
    for kwargs in ({}, {"where": mask}, {"temperature": 0.7}):
        in_place = x.copy()
        sk.log_softmax(in_place, out=in_place, **kwargs)
        out = np.full_like(x, 7.0)
        assert sk.log_softmax(x, out=out, **kwargs) is out
        np.testing.assert_array_equal(out, in_place)
        np.testing.assert_array_equal(sk.log_softmax(x, **kwargs), in_place)
    assert np.isnan(out[1]).all() and np.isfinite(out[0]).all()


def _at_line_offset(values, offset):
    """A copy of ``values`` whose data starts ``offset`` bytes past a 64-byte boundary."""
    buffer = np.empty(values.nbytes + 128, np.uint8)
    start = -buffer.ctypes.data % 64 + offset
    array = buffer[start : start + values.nbytes].view(values.dtype).reshape(values.shape)
    array[...] = values
    return array


@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
@pytest.mark.parametrize(
    "dtype, shape, axis",
    [
        (np.float32, (6, 3000), -1),  # rows past 8 KiB: stored from their first cache-line boundary
        (np.float64, (6, 1500), -1),
        (np.float64, (40, 700), -1),  # rows of 5600 bytes: left as they are
        (np.float64, (1, 70000), -1),  # one long row: split into chunks
        (np.float32, (1, 70000), -1),
        (np.float32, (2, 21, 1000), 1),  # columns
        (np.float64, (2, 21, 1000), 1),
    ],
)
def test_results_do_not_depend_on_where_the_arrays_lie(fn, dtype, shape, axis, rng):
    # Long rows store their results by blocks that start at the output's first cache-line
    # boundary, but sum them by blocks that start at the row's first element: a result must not
    # change with the address of the input or output (a float64 sum by other blocks rounds
    # differently in the last bit).
    f = functools.partial(getattr(sk, fn), axis=axis)
    x = (rng.standard_normal(shape) * 20).astype(dtype)
    mask = rng.random(shape) < 0.9
    for kwargs in ({}, {"where": mask}, {"temperature": 0.7}):
        expected = f(_at_line_offset(x, 0), out=_at_line_offset(x, 0), **kwargs)
        np.testing.assert_array_equal(f(x, **kwargs), expected)  # a fresh result: wherever numpy puts it
        for offset in range(np.dtype(dtype).itemsize, 64, np.dtype(dtype).itemsize):
            out = _at_line_offset(np.zeros_like(x), offset)
            np.testing.assert_array_equal(f(_at_line_offset(x, 64 - offset), out=out, **kwargs), expected)
            in_place = _at_line_offset(x, offset)
            np.testing.assert_array_equal(f(in_place, out=in_place, **kwargs), expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_log_softmax_out_columns_match_in_place_whatever_out_held(dtype, rng):
    # The column kernel stages each row's terms in the output block too (not in place).
    x = (rng.standard_normal((3, 21, 200)) * 20).astype(dtype)
    x[0, 4, 7] = NAN
    x[1, :, 3] = INF
    x[1, :, 5] = -INF
    x[2, ::2, 9] = -INF
    x[2, :, 11] = x[2, 0, 11]
    mask = np.ones((21, 1), bool)
    mask[::4] = False
    for kwargs in ({}, {"where": mask}, {"temperature": 1.3}):
        in_place = x.copy()
        sk.log_softmax(in_place, axis=1, out=in_place, **kwargs)
        out = np.full_like(x, 7.0)
        assert sk.log_softmax(x, axis=1, out=out, **kwargs) is out
        np.testing.assert_array_equal(out, in_place)
        np.testing.assert_array_equal(sk.log_softmax(x, axis=1, **kwargs), in_place)
    assert np.isnan(out[0, :, 7]).all() and np.isfinite(out[0, :, 8]).all()


@pytest.mark.parametrize("out_dtype", [np.float32, np.float16, np.complex128],
                         ids=lambda d: np.dtype(d).name)
def test_out_same_kind_cast(out_dtype, rng):
    x = rng.standard_normal((3, 5))
    out = np.zeros((3, 5), out_dtype)
    r = sk.softmax(x, out=out)
    assert r is out
    np.testing.assert_array_equal(out, sk.softmax(x).astype(out_dtype))


def test_out_non_contiguous_and_fortran(fn, rng):
    f, ref, is_log = fn
    x = rng.standard_normal((4, 6))
    out_f = np.zeros((4, 6), order="F")
    assert f(x, out=out_f) is out_f
    assert_matches(out_f, ref(x, -1), log=is_log)
    buf = np.zeros((8, 12))
    out_v = buf[::2, ::-2]
    assert f(x, out=out_v) is out_v
    assert_matches(out_v, ref(x, -1), log=is_log)
    assert np.all(buf[1::2] == 0) and np.all(buf[:, ::-1][:, 1::2][::2] == 0)


@pytest.mark.parametrize("shift", [1, 2, -1, -3])
def test_out_partially_overlapping_x(fn, shift, rng):
    f, _, _ = fn
    base = rng.standard_normal(40)
    n = 40 - abs(shift)
    x = base[:n] if shift > 0 else base[-shift:]
    out = base[shift:] if shift > 0 else base[:n]
    expected = f(x.copy())
    r = f(x, out=out)
    assert r is out
    np.testing.assert_array_equal(r, expected)


def test_out_partially_overlapping_x_2d(rng):
    base = rng.standard_normal((6, 7))
    x = base[:5]
    out = base[1:]
    expected = sk.softmax(x.copy(), axis=0)
    sk.softmax(x, axis=0, out=out)
    np.testing.assert_array_equal(out, expected)
    base = rng.standard_normal((6, 7))
    x = base[:, :6]
    out = base[:, 1:]  # overlaps x in 5 of its 6 columns
    expected = sk.log_softmax(x.copy(), axis=None)
    sk.log_softmax(x, axis=None, out=out)
    np.testing.assert_array_equal(out, expected)


def test_logsumexp_out(rng):
    x = rng.standard_normal((3, 5))
    out = np.zeros(3)
    r = sk.logsumexp(x, axis=1, out=out)
    assert r is out
    assert_matches(out, logsumexp_ref(x, 1), log=True)
    outk = np.zeros((3, 1), np.float32)
    r = sk.logsumexp(x, axis=1, keepdims=True, out=outk)
    assert r is outk
    np.testing.assert_array_equal(outk, sk.logsumexp(x, axis=1, keepdims=True).astype(np.float32))
    out0 = np.zeros(())
    r = sk.logsumexp(x, out=out0)
    assert r is out0
    assert out0 == pytest.approx(float(logsumexp_ref(x)), rel=1e-14)


# --------------------------------------------------------------------------------------------
# the per-call-overhead path gives exactly the general path's results
# --------------------------------------------------------------------------------------------
# C-contiguous float32/float64 input over the last axis (with out=None, out=x or a separate
# C-contiguous out, and any temperature) skips the layout machinery.  A one-element axis tuple
# always takes the general path, so comparing the two forms bit for bit checks the shortcut.


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(8, 10), (3, 4, 5), (64, 1000), (1, 70000), (7,)], ids=str)
@pytest.mark.parametrize("temperature", [1.0, 2.5, 1])
def test_fast_path_matches_general_path(fn, dtype, shape, temperature, rng):
    f, _, _ = fn
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    general = f(x, axis=(x.ndim - 1,), temperature=temperature)
    np.testing.assert_array_equal(f(x, temperature=temperature), general)
    np.testing.assert_array_equal(f(x, axis=x.ndim - 1, temperature=temperature), general)
    out = np.full_like(x, np.nan)
    assert f(x, temperature=temperature, out=out) is out
    np.testing.assert_array_equal(out, general)
    y = x.copy()
    assert f(y, temperature=temperature, out=y) is y
    np.testing.assert_array_equal(y, general)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "shape, axis",
    [((64, 1000), 0), ((3, 4, 5), 0), ((3, 4, 5), -3), ((3, 4, 5), 1), ((2, 3, 4, 5000), 2), ((4, 16), 0),
     ((8, 1, 32), 1), ((1, 70, 16), 1)],
    ids=str,
)
@pytest.mark.parametrize("temperature", [1.0, 2.5])
def test_fast_path_over_another_axis_matches_general_path(fn, monkeypatch, dtype, shape, axis, temperature, rng):
    # C-contiguous input over another axis is its own column layout (outer, K, inner): the
    # shortcut takes it as such (and the general path where fewer than 16 columns would move the
    # axis to the end: (3, 4, 5) over axis 1)
    f, _, _ = fn
    taken = []
    original = backend.softmax_other_axis
    monkeypatch.setattr(backend, "softmax_other_axis", lambda *a, **k: taken.append(a[1]) or original(*a, **k))
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    general = f(x, axis=(axis,), temperature=temperature)
    assert taken == []
    fast = f(x, axis=axis, temperature=temperature)
    assert taken == [axis % x.ndim]
    if math.prod(shape[axis % x.ndim + 1 :]) >= 16:  # computed by the shortcut: in x's own layout
        assert fast.flags.c_contiguous
    np.testing.assert_array_equal(fast, general)
    out = np.full_like(x, np.nan)
    assert f(x, axis=axis, temperature=temperature, out=out) is out
    np.testing.assert_array_equal(out, general)
    y = x.copy()
    assert f(y, axis=axis, temperature=temperature, out=y) is y
    np.testing.assert_array_equal(y, general)
    assert len(taken) == 3


def test_fast_path_validates_temperature_and_out(rng):
    x = rng.standard_normal((4, 5)).astype(np.float32)
    with pytest.raises(ValueError, match="temperature"):
        sk.softmax(x, temperature=0.0)
    with pytest.raises(TypeError, match="temperature"):
        sk.softmax(x, temperature="2")
    x.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        sk.softmax(x, out=x)
    out = np.zeros((4, 5), np.float32)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        sk.softmax(x, out=out)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(8, 10), (3, 4, 5), (1, 70000), (7,)], ids=str)
@pytest.mark.parametrize("keepdims", [False, True])
def test_logsumexp_fast_path_matches_general_path(dtype, shape, keepdims, rng):
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    last = x.ndim - 1
    for fast_axis, general_axis in ((-1, (last,)), (last, (last,)), (None, tuple(range(x.ndim)))):
        fast = sk.logsumexp(x, axis=fast_axis, keepdims=keepdims)
        general = sk.logsumexp(x, axis=general_axis, keepdims=keepdims)
        assert type(fast) is np.ndarray and fast.dtype == dtype
        assert fast.shape == general.shape
        np.testing.assert_array_equal(fast, general)
        out = np.full(general.shape, np.nan, dtype)  # written directly by the shortcut
        assert sk.logsumexp(x, axis=fast_axis, keepdims=keepdims, out=out) is out
        np.testing.assert_array_equal(out, general)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "shape, axis",
    # columns as they lie (16 or more; a tiny layout of fewer; one: rows), and a layout of fewer
    # than 16 columns too large for that, which the general path moves to the end: (2, 3000, 4)
    [((64, 1000), 0), ((10, 8), 0), ((10, 8), -2), ((3, 4, 5), 1), ((2, 3, 4, 50), 2), ((8, 1, 32), 1),
     ((5, 7, 1), 1), ((2, 3000, 4), 1)],
    ids=str,
)
@pytest.mark.parametrize("keepdims", [False, True])
def test_logsumexp_fast_path_over_another_axis_matches_general_path(monkeypatch, dtype, shape, axis, keepdims, rng):
    taken = []
    original = backend.logsumexp_other_axis
    monkeypatch.setattr(backend, "logsumexp_other_axis", lambda *a, **k: taken.append(a[1]) or original(*a, **k))
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    x0 = x.copy()
    general = sk.logsumexp(x, axis=(axis,), keepdims=keepdims)
    assert taken == []
    fast = sk.logsumexp(x, axis=axis, keepdims=keepdims)
    assert taken == [axis % x.ndim]
    assert type(fast) is np.ndarray and fast.dtype == dtype and fast.shape == general.shape
    np.testing.assert_array_equal(fast, general)
    out = np.full(general.shape, np.nan, dtype)  # written directly by the shortcut
    assert sk.logsumexp(x, axis=axis, keepdims=keepdims, out=out) is out
    np.testing.assert_array_equal(out, general)
    assert len(taken) == 2
    strided = np.full(general.shape + (2,), np.nan, dtype)[..., 0]  # not plain: the general path
    assert sk.logsumexp(x, axis=axis, keepdims=keepdims, out=strided) is strided
    np.testing.assert_array_equal(strided, general)
    assert len(taken) == 2
    np.testing.assert_array_equal(x, x0)
    reference = logsumexp_ref(x, axis, compute=np.longdouble)
    assert ulp_error(fast.reshape(reference.shape), reference, floor=1).max() <= 4


@pytest.mark.parametrize("shape", [(8, 10), (1, 70000)], ids=str)
def test_logsumexp_out_that_overlaps_the_input(shape, rng):
    # out= inside the input's own memory: the result must be as if computed first, then copied
    base = np.empty((shape[0] + 1,) + shape[1:], np.float32)
    x = base[1:]  # C-contiguous
    for out in (base[-1, : shape[0]], base[:, 0][1:]):  # C-contiguous in x's last row; strided
        x[...] = rng.standard_normal(shape) * 4
        expected = sk.logsumexp(x.copy(), axis=-1)
        assert sk.logsumexp(x, axis=-1, out=out) is out
        np.testing.assert_array_equal(out, expected)


# --------------------------------------------------------------------------------------------
# the caller's arrays are never modified
# --------------------------------------------------------------------------------------------

def _digest(*arrays):
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _frozen(a):
    a = np.array(a)
    a.flags.writeable = False
    return a


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_inputs_are_never_modified(dtype, rng):
    x = _frozen((rng.standard_normal((5, 7)) * 3).astype(dtype))
    x_special = np.array(x)
    x_special[0, :2] = [INF, -INF]
    x_special[1, :] = -INF
    x_special[2, 3] = NAN
    x_special = _frozen(x_special)
    mask = _frozen(rng.random((5, 7)) < 0.7)
    b = _frozen(rng.standard_normal((5, 7)))
    g = _frozen(rng.standard_normal((5, 7)).astype(dtype))
    before = _digest(x, x_special, mask, b, g)
    for arr in (x, x_special):
        for axis in (-1, 0, None, (0, 1)):
            for f in (sk.softmax, sk.log_softmax, sk.softmin):
                f(arr, axis=axis)
                f(arr, axis=axis, where=mask, temperature=0.5)
                f(arr, axis=axis, dtype=np.float64)
            sk.logsumexp(arr, axis=axis)
            sk.logsumexp(arr, axis=axis, b=b, where=mask, return_sign=True)
            y = sk.softmax(arr, axis=axis)
            sk.softmax_backward(g, _frozen(y), axis=axis)
            sk.log_softmax_backward(g, _frozen(sk.log_softmax(arr, axis=axis)), axis=axis)
    assert _digest(x, x_special, mask, b, g) == before


def test_out_is_the_only_array_written(rng):
    x = rng.standard_normal((4, 5))
    mask = rng.random((4, 5)) < 0.8
    before = _digest(x, mask)
    out = np.empty_like(x)
    sk.softmax(x, where=mask, out=out)
    assert _digest(x, mask) == before


# --------------------------------------------------------------------------------------------
# logsumexp: b weights and return_sign
# --------------------------------------------------------------------------------------------

def test_logsumexp_b_weights(rng):
    a = rng.standard_normal((4, 6))
    b = rng.random((4, 6)) + 0.1
    assert_matches(np.asarray(sk.logsumexp(a, axis=1, b=b)), logsumexp_ref(a, 1, b=b), log=True)
    assert_matches(np.asarray(sk.logsumexp(a, b=b)), logsumexp_ref(a, None, b=b), log=True)
    # b broadcasts against a
    b_row = rng.random(6) + 0.1
    assert_matches(np.asarray(sk.logsumexp(a, axis=1, b=b_row)), logsumexp_ref(a, 1, b=b_row),
                   log=True)
    np.testing.assert_allclose(sk.logsumexp(a, axis=1, b=2.0), sk.logsumexp(a, axis=1) + np.log(2),
                               rtol=1e-14)


def test_logsumexp_negative_b_gives_nan_without_return_sign():
    r = sk.logsumexp([1.0, 2.0], b=[1.0, -1.0])
    assert np.isnan(r)
    # a positive sum with some negative weights is fine
    r = sk.logsumexp([1.0, 2.0], b=[-1.0, 1.0])
    assert r == pytest.approx(np.log(np.exp(2) - np.exp(1)), rel=1e-14)


def test_logsumexp_return_sign():
    res, sign = sk.logsumexp([1.0, 2.0], b=[1.0, -1.0], return_sign=True)
    assert res == pytest.approx(np.log(np.exp(2) - np.exp(1)), rel=1e-14)
    assert sign == -1.0
    a = np.array([[1.0, 2.0], [1.0, 1.0], [3.0, 0.0], [-INF, -INF]])
    b = np.array([1.0, -1.0])
    res, sign = sk.logsumexp(a, axis=1, b=b, return_sign=True)
    exp_res, exp_sign = logsumexp_ref(a, 1, b=b, return_sign=True)
    np.testing.assert_array_equal(sign, [-1.0, 0.0, 1.0, 0.0])
    assert sign.dtype == np.float64
    assert res[1] == -INF and res[3] == -INF
    np.testing.assert_allclose(res, exp_res.astype(np.float64), rtol=1e-14)


def test_logsumexp_return_sign_dtype_follows_result(rng):
    a = rng.standard_normal((3, 4)).astype(np.float32)
    res, sign = sk.logsumexp(a, axis=1, return_sign=True)
    assert res.dtype == np.float32 and sign.dtype == np.float32
    np.testing.assert_array_equal(sign, 1.0)
    res16, sign16 = sk.logsumexp(a.astype(np.float16), axis=1, return_sign=True)
    assert res16.dtype == np.float16 and sign16.dtype == np.float16


def test_logsumexp_return_sign_keepdims_and_where(rng):
    a = rng.standard_normal((3, 4))
    b = rng.standard_normal((3, 4))
    mask = rng.random((3, 4)) < 0.7
    mask[:, 0] = True
    res, sign = sk.logsumexp(a, axis=1, b=b, where=mask, keepdims=True, return_sign=True)
    exp_res, exp_sign = logsumexp_ref(a, 1, b=b, where=mask, keepdims=True, return_sign=True)
    assert res.shape == sign.shape == (3, 1)
    np.testing.assert_array_equal(sign, exp_sign.astype(np.float64))
    np.testing.assert_allclose(res, exp_res.astype(np.float64), rtol=1e-12)


def test_logsumexp_zero_weights_and_zero_sum():
    assert sk.logsumexp([1.0, 2.0], b=[0.0, 0.0]) == -INF
    res, sign = sk.logsumexp([1.0, 2.0], b=[0.0, 0.0], return_sign=True)
    assert res == -INF and sign == 0.0
    res, sign = sk.logsumexp([5.0, 5.0], b=[2.0, -2.0], return_sign=True)
    assert res == -INF and sign == 0.0


def test_logsumexp_keeps_tiny_tail():
    # log(1 + exp(-40)) = 4.248354255291589e-18: 1 + exp(-40) rounds to 1; pulling the maximal
    # term out of the sum (log1p) keeps it.
    r = sk.logsumexp(np.array([0.0, -40.0]))
    assert r > 0
    assert r == pytest.approx(4.248354255291589e-18, rel=4 * 2.0**-52)


def test_logsumexp_large_values_do_not_overflow():
    assert sk.logsumexp([1000.0, 1000.0]) == pytest.approx(1000 + np.log(2), rel=1e-15)
    assert sk.logsumexp(np.array([88.0, 88.0], np.float32)) == pytest.approx(88 + np.log(2),
                                                                             rel=1e-6)
    assert sk.logsumexp([-1000.0, -1000.0]) == pytest.approx(-1000 + np.log(2), rel=1e-15)


def test_logsumexp_with_plus_inf_and_weights():
    assert sk.logsumexp([INF, 1.0], b=[2.0, -1.0]) == INF
    res, sign = sk.logsumexp([INF, 1.0], b=[-2.0, 1.0], return_sign=True)
    assert res == INF and sign == -1.0


# --------------------------------------------------------------------------------------------
# threads
# --------------------------------------------------------------------------------------------

def test_set_and_get_num_threads(rng):
    original = sk.get_num_threads()
    assert isinstance(original, int) and original >= 1
    x = rng.standard_normal((512, 2048)).astype(np.float32)
    try:
        sk.set_num_threads(1)
        assert sk.get_num_threads() == 1
        one = sk.softmax(x)
        one_row = sk.softmax(x.ravel())
        sk.set_num_threads(original)
        assert sk.get_num_threads() == original
        many = sk.softmax(x)
        many_row = sk.softmax(x.ravel())
    finally:
        sk.set_num_threads(original)
    # threads split rows (or one long row) differently; results agree to rounding
    np.testing.assert_allclose(one, many, rtol=4 * 2.0**-23, atol=0)
    np.testing.assert_allclose(one_row, many_row, rtol=8 * 2.0**-23, atol=1e-44)


# --------------------------------------------------------------------------------------------
# column kernel: slabs split into many column blocks
# --------------------------------------------------------------------------------------------


def _small_column_blocks(monkeypatch, workers, n_k=40, itemsize=4):
    """Column blocks of 16 columns for ``n_k`` rows; with ``workers``, the parallel drivers on that
    many workers whatever the input size."""
    from softmaxkit import _numpy_backend

    monkeypatch.setattr(_numpy_backend, "COLUMN_BLOCK_BYTES", n_k * 16 * 2 * itemsize)
    monkeypatch.setattr(_numpy_backend, "COLUMN_MIN_BLOCK_WIDTH", 16)
    monkeypatch.setattr(_numpy_backend, "COLUMN_MIN_BLOCK_ROW_BYTES", 16 * itemsize)
    if workers is not None:
        monkeypatch.setattr(_numpy_backend, "PARALLEL_MIN_ELEMENTS", 0)
        monkeypatch.setattr(_numpy_backend, "num_threads", lambda: workers)


@pytest.mark.parametrize("workers", [None, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_column_kernel_with_many_blocks(fn, dtype, workers, rng, monkeypatch):
    # Shrink the block so that (3, 40, 100) over axis 1 runs as 7 blocks per outer index, the
    # last one partial, and check the stitched result (and logsumexp's) against the reference.
    # Each worker reuses one set of scratch arrays for all its blocks (serially: one worker for
    # all 21 blocks; in parallel, 3 workers of 7 blocks each, a partial block among them).
    from softmaxkit import _numpy_backend

    _small_column_blocks(monkeypatch, workers, itemsize=np.dtype(dtype).itemsize)
    assert _numpy_backend.column_block_width(40, 100, np.dtype(dtype).itemsize) == 16
    f, ref, is_log = fn
    x = (rng.standard_normal((3, 40, 100)) * 4).astype(dtype)
    x[1, :, 37] = -np.inf  # a special column inside a block
    assert_matches(f(x, axis=1), ref(x.astype(np.float64), 1), log=is_log)
    assert_matches(sk.logsumexp(x, axis=1), logsumexp_ref(x.astype(np.float64), 1), log=True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_k", [3, 8, 21])
def test_column_max_sees_special_values_in_every_row(fn, dtype, n_k, rng):
    # The unmasked column max takes rows eight at a time, the last K % 8 padded to eight by
    # repeating the last row: K = 3 is one padded group, 8 one full group, 21 is 8 + 8 + (5 + 3
    # repeats).  Column k holds a NaN in row k, column K + k a +inf, column 2K + k a -inf (and,
    # for softmin, whose max is over -x, the signs swapped), so every row position of every
    # group must reach the max.
    f, ref, is_log = fn
    x = (rng.standard_normal((2, n_k, 80)) * 3).astype(dtype)
    for k in range(n_k):
        x[:, k, k] = NAN
        x[:, k, n_k + k] = INF
        x[:, k, 2 * n_k + k] = -INF
    x[1, :, 63:] = -INF  # whole columns at -inf in one block only
    assert_matches(f(x, axis=1), ref(x.astype(np.float64), 1), log=is_log)
    assert_matches(sk.logsumexp(x, axis=1), logsumexp_ref(x.astype(np.float64), 1), log=True)


@pytest.mark.parametrize("workers", [None, 3])
def test_column_blocks_with_limits_in_place(fn, workers, rng, monkeypatch):
    # Blocks holding a column whose max is NaN, +inf or -inf are left untouched by the column
    # drivers and redone after their limits are taken; in place, those must see the original input.
    # 7 blocks of 16 columns per outer index; specials in some blocks only.
    _small_column_blocks(monkeypatch, workers)
    f, ref, is_log = fn
    x = (rng.standard_normal((3, 40, 100)) * 4).astype(np.float32)
    x[0, 5, 3] = NAN
    x[1, :, 40] = -INF
    x[1, 7, 41] = INF
    x[1, 9, 41] = INF
    x[2, 0, 99] = INF
    expected = ref(x.astype(np.float64), 1)
    y = x.copy()
    r = f(y, axis=1, out=y)
    assert r is y
    assert_matches(y, expected, log=is_log)
    assert_matches(f(x, axis=1), expected, log=is_log)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    ("shape", "threads", "blocks", "log_slabs"),
    [
        ((5000, 64), 2, 2, (False, True)), ((5000, 64), 4, 4, (False, True)), ((2048, 100), 2, 2, (True, True)),
        ((2, 5000, 40), 8, 6, (False, True)), ((2, 5000, 40), 2, 2, (False, False)),
    ],
)
def test_logsumexp_narrows_column_blocks_for_threads(
    kernel_calls, monkeypatch, rng, shape, threads, blocks, log_slabs, dtype
):
    # Few long columns are one or two blocks of column_block_width: logsumexp narrows them (down
    # to 16 columns) so that every thread has one; log_softmax keeps its where rows are at most
    # SLAB_MIN_ROW_BYTES (slower narrowed; _column_work), and splits longer ones along K, as
    # softmax does (test_columns_split_along_k).
    # (2, 5000, 40): three blocks of 16 columns per outer index at most; log_softmax's slabs
    # (``log_slabs``, float32 and float64) where its rows are over 256 bytes, except on 2 threads,
    # where each outer index is one block of whole rows.
    # (SMALL_K = 0: the block kernels, where the small-K tiles would take these layouts.)
    from softmaxkit import _numpy_backend

    monkeypatch.setattr(_numpy_backend, "num_threads", lambda: threads)
    monkeypatch.setattr(_numpy_backend, "SMALL_K", 0)
    calls = kernel_calls("logsumexp_columns", "log_softmax_columns")
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    x.reshape(-1)[::97] = -INF
    assert_matches(sk.logsumexp(x, axis=-2), logsumexp_ref(x.astype(np.float64), -2), log=True)
    n_blocks, workers = calls[-1][:2]
    assert (n_blocks, workers) == (blocks, min(blocks, threads))
    calls.clear()
    slab_calls = kernel_calls("log_softmax_slab_sums")
    sk.log_softmax(x, axis=-2)
    if log_slabs[dtype == np.float64]:
        assert calls == [] and len(slab_calls) == 1
    else:
        assert [c[0] for c in calls] == [shape[0] if len(shape) == 3 else 1]  # one block per outer index
        assert slab_calls == []


def _columns_with_specials(shape, dtype, rng):
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    x.reshape(-1)[::97] = -INF
    return x


# the slab kernels of softmax and of log_softmax, and the column kernel they leave non-finite
# columns to
SLAB_KERNELS = {
    "softmax": ("slab_max", "softmax_slab_exps", "scale_slabs", "softmax_columns"),
    "log_softmax": ("slab_max", "log_softmax_slab_sums", "log_softmax_slab_writes", "log_softmax_columns"),
}


@pytest.mark.parametrize("function", ["softmax", "log_softmax"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    ("shape", "threads", "n_items"),
    [
        ((5000, 80), 2, 2), ((2048, 256), 2, 2), ((1100, 400), 2, 2), ((2, 3000, 100), 4, 4),
        ((3, 700, 100), 4, 12), ((3, 1100, 1100), 2, 6),
    ],
)
def test_columns_split_along_k(kernel_calls, monkeypatch, rng, shape, threads, n_items, dtype, function):
    # Column layouts whose blocks would leave a thread idle or cut rows into pieces under 4 KiB
    # are split along K (slabs of whole rows, per-column max and sum merged between the passes;
    # threads / gcd(outer, threads) slabs per outer index, so that every thread gets as many:
    # 3 outer indices take 2 slabs each on 2 threads, 4 on 4); softmin, temperature, a mask and
    # in place go the same way.
    # (float64 softmax takes them when forced: SLABS; float32, and float64 log_softmax, by the
    # rule.  SMALL_K = 0: not the small-K tiles, which take these layouts.)
    from softmaxkit import _numpy_backend

    monkeypatch.setattr(_numpy_backend, "num_threads", lambda: threads)
    monkeypatch.setattr(_numpy_backend, "SMALL_K", 0)
    monkeypatch.setattr(_numpy_backend, "PARALLEL_MIN_ELEMENTS", 0)
    monkeypatch.setattr(_numpy_backend, "SLAB_MIN_ELEMENTS", 0)
    if dtype == np.float64 and function == "softmax":
        monkeypatch.setattr(_numpy_backend, "SLABS", True)
    calls = kernel_calls(*SLAB_KERNELS[function])
    log = function == "log_softmax"
    fn, fn_min = (sk.log_softmax, None) if log else (sk.softmax, sk.softmin)
    x = _columns_with_specials(shape, dtype, rng)
    xr = x.astype(np.float64)
    where = rng.random(shape) < 0.9
    cases = [
        (lambda: fn(x, axis=-2), lambda: softmax_ref(xr, -2, log=log)),
        (lambda: fn(x, axis=-2, temperature=0.7), lambda: softmax_ref(xr / 0.7, -2, log=log)),
        (lambda: fn(x, axis=-2, where=where), lambda: softmax_ref(np.where(where, xr, -np.inf), -2, log=log)),
    ]
    if fn_min is not None:
        cases.append((lambda: fn_min(-x, axis=-2), lambda: softmin_ref(-xr, -2)))  # (-inf entries stay -inf)
    for got, want in cases:
        calls.clear()
        assert_matches(got(), want(), log=log)
        assert [c[0] for c in calls] == [n_items] * 3  # three slab passes, no column blocks
    y = x.copy()
    assert fn(y, axis=-2, out=y) is y
    assert_matches(y, softmax_ref(xr, -2, log=log), log=log)


@pytest.mark.parametrize("function", ["softmax", "log_softmax"])
@pytest.mark.parametrize("special", [NAN, INF, -INF])
def test_slabs_leave_non_finite_columns_to_the_blocks(kernel_calls, monkeypatch, rng, special, function):
    # A column whose max is NaN or +inf is found by the slab max pass, before anything is
    # written: the call goes to the column blocks, in place too.  One whose max is -inf (all of
    # it) stays on the slabs, with the block kernels' stand-in max (before 2026-12-06 it went to
    # the blocks too).
    from softmaxkit import _numpy_backend

    monkeypatch.setattr(_numpy_backend, "num_threads", lambda: 2)
    monkeypatch.setattr(_numpy_backend, "SMALL_K", 0)
    slab_max, slab_pass, _, columns = SLAB_KERNELS[function]
    calls = kernel_calls(slab_max, slab_pass, columns)
    log = function == "log_softmax"
    x = (rng.standard_normal((5000, 80)) * 4).astype(np.float32)
    if special == -INF:
        x[:, 9] = -INF
    else:
        x[3500, 9] = special
    expected = softmax_ref(x.astype(np.float64), 0, log=log)
    y = x.copy()
    getattr(sk, function)(y, axis=0, out=y)
    assert_matches(y, expected, log=log)
    if special == -INF:  # the slab max pass, then the slab pass (2 slabs each), no block
        assert [c[0] for c in calls] == [2, 2]
    else:  # the slab max pass (2 slabs), then the column kernel's passes (one block of 80 columns)
        assert calls[0][0] == 2 and len(calls) >= 2 and all(c[0] == 1 for c in calls[1:])


@pytest.mark.parametrize(
    ("shape", "dtype", "width", "n_blocks"),
    [
        ((1, 3000, 2048), np.float32, 1024, 2),  # rows of 4 KiB at least (not 128 columns)
        ((2, 600, 8192), np.float32, 1024, 16),
        ((1, 3000, 2048), np.float64, 512, 4),
        ((1, 1024, 1024), np.float32, 512, 2),  # one block of 1024, narrowed so both threads work
        ((1, 3000, 256), np.float32, 128, 2),  # narrowed to 128 columns, no further
        ((1, 3000, 200), np.float32, 200, 1),  # two blocks would be under 128 columns: one
        # few rows: the slab's bytes decide, as before (log_softmax's slabs are half as large:
        # 1024 columns, the 4 KiB minimum)
        ((2, 40, 8192), np.float32, (1632, 1024), (12, 16)),
    ],
)
def test_column_blocks_have_rows_of_at_least_4_kib(kernel_calls, monkeypatch, rng, shape, dtype, width, n_blocks):
    # Block rows of 512 bytes left the prefetchers idle: the minimum is 4 KiB of a row
    # (COLUMN_MIN_BLOCK_ROW_BYTES) rather than 128 columns, and a call with fewer blocks than
    # threads narrows them to no less than 128 columns (2 threads here).  (SMALL_K = 0: not the
    # small-K tiles, which take some of these layouts; SLABS = False: not split along K, which
    # others take.  The -inf column is done in the blocks with a stand-in max.)
    from softmaxkit import _numpy_backend

    monkeypatch.setattr(_numpy_backend, "num_threads", lambda: 2)
    monkeypatch.setattr(_numpy_backend, "SMALL_K", 0)
    monkeypatch.setattr(_numpy_backend, "SLABS", False)
    monkeypatch.setattr(_numpy_backend, "PARALLEL_MIN_ELEMENTS", 0)
    calls = kernel_calls("softmax_columns", "log_softmax_columns")
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    x[0, :, 5] = -INF
    widths = width if isinstance(width, tuple) else (width, width)
    blocks = n_blocks if isinstance(n_blocks, tuple) else (n_blocks, n_blocks)
    for f, ref, is_log in ((sk.softmax, softmax_ref, False), (sk.log_softmax, log_softmax_ref, True)):
        y = f(x, axis=1)
        n_items, workers, *args = calls[-1]
        assert (args[6], n_items, workers) == (widths[is_log], blocks[is_log], min(blocks[is_log], 2))
        assert_matches(y, ref(x.astype(np.float64), 1), log=is_log)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, axis", [((40, 3000), 0), ((3, 21, 700), 1), ((2, 9, 33, 70), 2)], ids=str)
@pytest.mark.parametrize("mode", ["fresh", "out", "in place", "masked"])
def test_log_softmax_column_blocks_stage_their_exps_only_in_large_layouts(
    monkeypatch, kernel_calls, rng, dtype, shape, axis, mode
):
    """log_softmax's column blocks stage their exps in the output (a store an element that the
    write pass overwrites) only above COLUMN_LOG_STAGE_ABOVE_BYTES; staged or not, the same bits,
    in every output form, special columns (stand-ins, -inf, NaN) included."""
    from softmaxkit import _numpy_backend

    monkeypatch.setattr(_numpy_backend, "SMALL_K", 0)  # the block kernels, not the tiles
    calls = kernel_calls("log_softmax_columns")
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    x3 = np.moveaxis(x, axis, -2)
    x3[..., 0, 3] = INF
    x3[..., :, 5] = -INF
    x3[..., 2, 7] = NAN
    where = rng.random(shape) < 0.8 if mode == "masked" else None
    results = []
    for above in (x.nbytes - 1, x.nbytes):  # staged, then not
        monkeypatch.setattr(_numpy_backend, "COLUMN_LOG_STAGE_ABOVE_BYTES", above)
        del calls[:]
        with np.errstate(invalid="ignore"):
            if mode == "fresh" or mode == "masked":
                y = sk.log_softmax(x, axis=axis, where=where)
            elif mode == "out":
                y = sk.log_softmax(x, axis=axis, out=np.full_like(x, 7.0))
            else:
                y = x.copy()
                assert sk.log_softmax(y, axis=axis, out=y) is y
        assert calls and all(args[-1] is (True if above < x.nbytes else None) for args in calls)
        results.append(y)
    np.testing.assert_array_equal(results[0], results[1])
    with np.errstate(invalid="ignore"):
        expected = log_softmax_ref(x.astype(np.float64), axis, where=where)
    assert_matches(results[0], expected, log=True)


# --------------------------------------------------------------------------------------------
# split rows: one row in many chunks (softmax stores chunk-local exps, then rescales them)
# --------------------------------------------------------------------------------------------


@pytest.fixture
def split_rows(monkeypatch):
    """Send rows of 64 or more elements through the split kernel in chunks of 16, whatever the
    machine's thread count (the parallel driver also runs them on one thread)."""
    from softmaxkit import _numpy_backend

    monkeypatch.setattr(_numpy_backend, "PARALLEL_MIN_ELEMENTS", 0)
    monkeypatch.setattr(_numpy_backend, "SPLIT_MIN_LENGTH", 64)
    monkeypatch.setattr(_numpy_backend, "SPLIT_CHUNK", 16)
    monkeypatch.setattr(_numpy_backend, "num_threads", lambda: 8)


def _rows_with_special_chunks(dtype, rng):
    # 203 = 12 full chunks of 16 and a partial one
    x = (rng.standard_normal((6, 203)) * 6).astype(dtype)
    x[1, [150, 190]] = INF  # +inf only in late chunks: earlier chunks are finite
    x[2, 200] = NAN  # NaN in the last chunk
    x[3, 32:48] = -INF  # one whole chunk of -inf in a finite row
    x[4, :] = -INF
    x[5, 17] = 1e30  # one chunk's max far above the others (their rescale factors underflow)
    return x


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_split_rows_match_reference_in_place_and_out(split_rows, fn, dtype, rng):
    # In place, a chunk's exps overwrite its input before the row max is known; rows whose max
    # turns out +inf or NaN must still get their limits.
    f, ref, is_log = fn
    x = _rows_with_special_chunks(dtype, rng)
    expected = ref(x.astype(np.float64), -1)
    y = f(x)
    assert_matches(y, expected, log=is_log)
    out = np.empty_like(x)
    assert f(x, out=out) is out
    np.testing.assert_array_equal(out, y)
    inplace = x.copy()
    assert f(inplace, out=inplace) is inplace
    np.testing.assert_array_equal(inplace, y)
    if f is SOFTMAX_LIKE["softmax"][0]:
        np.testing.assert_array_equal(y[1, [150, 190]], [0.5, 0.5])
        assert np.count_nonzero(y[1]) == 2
        assert np.all(np.isnan(y[2]))
        assert np.all(y[3, 32:48] == 0) and np.all(y[4] == 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_split_rows_with_a_fully_masked_chunk(split_rows, fn, dtype, rng):
    f, ref, is_log = fn
    x = (rng.standard_normal((3, 203)) * 4).astype(dtype)
    where = rng.random(x.shape) < 0.7
    where[:, 64:80] = False  # chunk 4 has no unmasked entry
    where[2, :] = False  # nor has row 2
    y = f(x, where=where)
    assert_matches(y, ref(x.astype(np.float64), -1, where=where), log=is_log)
    assert np.all(y[:, 64:80] == (-INF if is_log else 0))
    inplace = x.copy()
    f(inplace, where=where, out=inplace)
    np.testing.assert_array_equal(inplace, y)


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("workers", [None, 2])
def test_column_limits_match_the_row_kernels(fn, masked, workers, rng, monkeypatch):
    # Columns whose max is not finite get their limits from NumPy in the backend, rows from the
    # kernels' slice_special: the same input along axis 1 and moved to the last axis must agree
    # exactly, for NaN, +inf (alone, several, beside NaN), all -inf and fully masked columns.
    _small_column_blocks(monkeypatch, workers, n_k=9)
    f, _, _ = fn
    x = (rng.standard_normal((2, 9, 70)) * 3).astype(np.float32)
    x[0, 2, 1] = NAN
    x[0, 4, 3] = INF
    x[0, [1, 5, 8], 5] = INF
    x[0, 3, 7] = INF
    x[0, 6, 7] = NAN
    x[0, :, 9] = -INF
    x[1, 0, 40] = -INF
    x[1, 7, 41] = INF
    where = rng.random(x.shape) < 0.7 if masked else None
    if masked:
        where[1, :, 50] = False  # no unmasked entry
        where[0, 4, 3] = False  # the +inf masked out: that column's max is finite
        where[1, 7, 41] = True
    kwargs = {} if where is None else {"where": where}
    columns = f(x, axis=1, **kwargs)
    moved = {} if where is None else {"where": np.ascontiguousarray(np.moveaxis(where, 1, -1))}
    rows = np.moveaxis(f(np.ascontiguousarray(np.moveaxis(x, 1, -1)), axis=-1, **moved), -1, 1)
    np.testing.assert_array_equal(np.signbit(columns), np.signbit(rows))
    np.testing.assert_allclose(columns, rows, rtol=4 * 2.0**-23, atol=0)


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("workers", [None, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_column_kernels_write_columns_without_a_max_themselves(
    fn, dtype, masked, workers, rng, monkeypatch, kernel_calls
):
    # A column whose max is -inf (every entry -inf, or none unmasked) is 0 (log -inf) throughout:
    # the column kernels write it themselves, with a stand-in max, and no block goes to NumPy's
    # _column_limits (a mask dropping 1% of NCHW's pixels made every block do so: 4x slower).
    # Only NaN and +inf columns do, and then only their blocks.  (Blocks of 16 columns: columns
    # 9 and 60 of outer index 0 and 33, 50 of 1 lie in four blocks of the ten.)
    from softmaxkit import _numpy_backend

    _small_column_blocks(monkeypatch, workers, n_k=9, itemsize=np.dtype(dtype).itemsize)
    monkeypatch.setattr(_numpy_backend, "SMALL_K", 0)
    f, ref, log = fn
    limits_of = []
    original = _numpy_backend._column_limits
    monkeypatch.setattr(
        _numpy_backend, "_column_limits", lambda *a: limits_of.append(a[-1].tolist()) or original(*a)
    )
    calls = kernel_calls("log_softmax_columns" if log else "softmax_columns")
    none = INF if ref is softmin_ref else -INF  # the entry that no column's max would be, were it the max
    x = (rng.standard_normal((2, 9, 70)) * 3).astype(dtype)
    x[0, :, 9] = none
    x[1, :, 33] = none
    x[1, ::2, 50] = none
    where = None
    if masked:
        where = rng.random(x.shape) < 0.8
        where[0, :, 60] = False
        where[1, 1::2, 50] = False
    kwargs = {} if where is None else {"where": where}
    excluded = -INF if log else 0.0
    empty = [(0, 9), (1, 33)] + ([(0, 60), (1, 50)] if masked else [])

    y = f(x, axis=1, **kwargs)
    assert calls and limits_of == []
    for o, j in empty:
        assert np.all(y[o, :, j] == excluded)
        np.testing.assert_array_equal(np.signbit(y[o, :, j]), log)  # +0, not -0
    moved = {} if where is None else {"where": np.ascontiguousarray(np.moveaxis(where, 1, -1))}
    rows = np.moveaxis(f(np.ascontiguousarray(np.moveaxis(x, 1, -1)), axis=-1, **moved), -1, 1)
    np.testing.assert_array_equal(np.signbit(y), np.signbit(rows))
    np.testing.assert_allclose(y, rows, rtol=4 * np.finfo(dtype).eps, atol=0)
    inplace = x.copy()
    f(inplace, axis=1, out=inplace, **kwargs)
    np.testing.assert_array_equal(inplace, y)
    assert limits_of == []

    # a NaN column (block 2 of outer index 1) and a +inf one (block 0 of 0) take NumPy's limits,
    # their blocks only
    x[1, 4, 40] = NAN
    x[0, 3, 2] = -none
    if masked:
        where[1, 4, 40] = where[0, 3, 2] = True
    y = f(x, axis=1, **kwargs)
    assert limits_of == [[0, 7]]
    assert np.isnan(y[1, 4, 40]) and y[0, 3, 2] == (0.0 if log else 1.0)
    for o, j in empty:
        assert np.all(y[o, :, j] == excluded)


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("function", ["softmax", "log_softmax"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_slabs_take_columns_without_a_max(kernel_calls, monkeypatch, rng, dtype, function, masked):
    # Split along K, a column whose max is -inf (all -inf, or all masked) stays on the slab
    # kernels, with the block kernels' stand-in max; a NaN or +inf column leaves the layout to
    # the block kernels before anything is written.  (2 threads, 2 slabs of 1024 rows.)
    from softmaxkit import _numpy_backend

    monkeypatch.setattr(_numpy_backend, "num_threads", lambda: 2)
    monkeypatch.setattr(_numpy_backend, "SMALL_K", 0)
    monkeypatch.setattr(_numpy_backend, "SLAB_MIN_ELEMENTS", 0)
    monkeypatch.setattr(_numpy_backend, "SLABS", True)
    slab_calls = kernel_calls(*SLAB_KERNELS[function][:-1])
    block_calls = kernel_calls(SLAB_KERNELS[function][-1])
    log = function == "log_softmax"
    f = getattr(sk, function)
    x = (rng.standard_normal((2048, 256)) * 4).astype(dtype)
    x[:, [3, 200]] = -INF
    x[::3, 17] = -INF
    where = None
    if masked:
        where = rng.random(x.shape) < 0.9
        where[:, 40] = False
        where[1::3, 17] = where[2::3, 17] = False  # the rest of it -inf
        where[:, 90] = np.arange(2048) == 1500  # one entry, in the second slab
    kwargs = {} if where is None else {"where": where}
    y = f(x, axis=0, **kwargs)
    assert len(slab_calls) == 3 and block_calls == []
    excluded = -INF if log else 0.0
    for j in [3, 200] + ([40, 17] if masked else []):
        assert np.all(y[:, j] == excluded) and np.all(np.signbit(y[:, j]) == log)
    if masked:
        assert y[1500, 90] == (0.0 if log else 1.0) and np.all(y[:1500, 90] == excluded)
    ref = softmax_ref(x.astype(np.float64), 0, log=log, **kwargs)
    assert_matches(y, ref, log=log)
    inplace = x.copy()
    f(inplace, axis=0, out=inplace, **kwargs)
    np.testing.assert_array_equal(inplace, y)

    assert len(slab_calls) == 6 and block_calls == [], (len(slab_calls), len(block_calls))
    slab_calls.clear()
    x[7, 5] = NAN
    y = f(x, axis=0, **({} if where is None else {"where": where | (np.arange(256) == 5)}))
    # slab_max, then the block kernel, and again on the NaN column's pending block
    assert len(slab_calls) == 1 and len(block_calls) == 2
    assert np.all(np.isnan(y[:, 5])) and np.all(y[:, 3] == excluded)


@pytest.mark.parametrize(
    ("function", "shape", "dtype"),
    [
        ("softmax", (20000, 64), np.float32), ("softmax", (2048, 256), np.float64),
        ("softmax", (600, 4096), np.float32), ("softmax", (4, 2000, 300), np.float32),
        ("log_softmax", (600, 4096), np.float32), ("log_softmax", (600, 4096), np.float64),
        ("log_softmax", (4, 2000, 300), np.float32),
    ],
)
def test_keeps_column_blocks_where_slabs_lost(kernel_calls, monkeypatch, rng, function, shape, dtype):
    # Rows of 64 float32 columns and float64 softmax lost split along K; rows cut into pieces of
    # 4 KiB already, or as many blocks as threads of whole rows, keep the blocks.  (2 threads.)
    from softmaxkit import _numpy_backend

    monkeypatch.setattr(_numpy_backend, "num_threads", lambda: 2)
    log = function == "log_softmax"
    calls = kernel_calls("slab_max", SLAB_KERNELS[function][-1])
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    assert_matches(getattr(sk, function)(x, axis=-2), softmax_ref(x.astype(np.float64), -2, log=log), log=log)
    block_bytes = _numpy_backend.COLUMN_BLOCK_BYTES // (_numpy_backend.COLUMN_LOG_BLOCK_DIVISOR if log else 1)
    n_blocks = _numpy_backend._column_work(x.reshape((-1,) + shape[-2:]), block_bytes=block_bytes)[1]
    assert len(calls) == 1 and calls[0][0] == n_blocks


@pytest.mark.parametrize("function", ["softmax", "log_softmax"])
@pytest.mark.parametrize(
    ("shape", "whole"),
    [
        ((1200, 2100), (True, True)), ((2, 700, 3000), (True, False)), ((500, 2100), (False, False)),
        ((4, 1000, 2100), (True, True)),
    ],
)
def test_tall_slabs_pass_over_whole_rows(kernel_calls, monkeypatch, rng, shape, whole, function):
    # Slabs of at least SLAB_WHOLE_ROWS_FROM (512) rows are taken wherever the blocks would cut
    # the rows, and their passes take whole rows; shorter slabs keep the blocks (2 threads).
    # log_softmax's slabs that are whole outer indices (as many as threads or more) only from
    # SLAB_LOG_WHOLE_INDEX_ROWS_FROM (1000) rows: 2x700x3000 keeps its blocks.  (``whole``:
    # softmax's, log_softmax's.)
    from softmaxkit import _numpy_backend

    monkeypatch.setattr(_numpy_backend, "num_threads", lambda: 2)
    calls = kernel_calls(*SLAB_KERNELS[function])
    log = function == "log_softmax"
    x = _columns_with_specials(shape, np.float32, rng)
    assert_matches(getattr(sk, function)(x, axis=-2), softmax_ref(x.astype(np.float64), -2, log=log), log=log)
    if whole[log]:
        assert len(calls) == 3 and calls[0][6] == shape[-1]  # three slab passes, blocks of whole rows
    else:
        assert len(calls) == 1  # the column kernel
