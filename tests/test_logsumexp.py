"""logsumexp: a superset of scipy.special.logsumexp, in the style of SciPy's test_logsumexp.py.

Reference values are computed with mpmath; the generating code is in the comment beside each.
SciPy itself is compared in test_parity.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import softmaxkit as sk
from naive import logsumexp_mpmath, logsumexp_ref, mp_to_longdouble, ulp_error

INF = np.inf
NAN = np.nan
EPS = float(np.finfo(np.float64).eps)


def _lse_ulps(r, exact, dtype=np.float64):
    return float(np.max(ulp_error(np.asarray(r), np.asarray(exact, dtype=np.longdouble),
                                  dtype, floor=1)))


def test_logsumexp_basic():
    a = np.arange(200.0)
    desired = np.log(np.sum(np.exp(a)))
    assert sk.logsumexp(a) == pytest.approx(desired, rel=1e-15)
    # large values: np.exp(a) would overflow
    b = [1000.0, 1000.0]
    assert sk.logsumexp(b) == pytest.approx(1000.0 + np.log(2.0), rel=1e-15)
    n = 1000
    b = np.full(n, 10000.0)
    assert sk.logsumexp(b) == pytest.approx(10000.0 + np.log(n), rel=1e-15)
    x = np.array([1e-40] * 1000000)
    logx = np.log(x)
    X = np.vstack([x, x])
    logX = np.vstack([logx, logx])
    np.testing.assert_allclose(np.exp(sk.logsumexp(logX)), X.sum(), rtol=1e-12)
    np.testing.assert_allclose(np.exp(sk.logsumexp(logX, axis=0)), X.sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(np.exp(sk.logsumexp(logX, axis=1)), X.sum(axis=1), rtol=1e-12)


def test_logsumexp_mpmath_values():
    # mpmath.mp.dps = 40; mpmath.log(mpmath.fsum(mpmath.exp(v) for v in row))
    rows = [
        np.array([0.0, -40.0]),
        np.array([-1e3, -1e3 - 1e-12]),
        np.array([700.0, 700.0, 709.0, -800.0]),
        np.array([1e-300, -1e-300]),
        np.array([-np.log(2), -np.log(2)]),  # exactly 0 in exact arithmetic; ~1e-17 here
        np.linspace(-50, 3, 101),
    ]
    for row in rows:
        exact = mp_to_longdouble([logsumexp_mpmath(row)]).reshape(())
        r = sk.logsumexp(row)
        assert _lse_ulps(r, exact) <= 4, (row, r, exact)


def test_logsumexp_keepdims_and_shapes():
    a = np.random.default_rng(0).standard_normal((3, 4, 5))
    for axis, kshape, shape in [(None, (1, 1, 1), ()), (0, (1, 4, 5), (4, 5)),
                                ((0, 2), (1, 4, 1), (4,)), (-1, (3, 4, 1), (3, 4)),
                                ((), (3, 4, 5), (3, 4, 5))]:
        assert np.shape(sk.logsumexp(a, axis=axis, keepdims=True)) == kshape
        assert np.shape(sk.logsumexp(a, axis=axis)) == shape
        res, sign = sk.logsumexp(a, axis=axis, keepdims=True, return_sign=True)
        assert res.shape == sign.shape == kshape


def test_logsumexp_b_zero():
    # SciPy: "even if an element of a is infinite or NaN, it adds nothing if its weight is 0";
    # we check the finite part of that promise: a huge a with weight 0 changes nothing.
    a = [1.0, 10000.0]
    b = [1.0, 0.0]
    assert sk.logsumexp(a, b=b) == pytest.approx(1.0, rel=1e-15)


def test_logsumexp_b_shape_broadcasts_to_a():
    a = np.zeros((4, 1, 2, 1))
    b = np.ones((1, 2, 1))
    r = sk.logsumexp(a, b=b, axis=(1, 2))
    assert r.shape == (4, 1)
    np.testing.assert_allclose(r, np.log(2.0), rtol=1e-15)


def test_logsumexp_sign():
    a = [1.0, 1.0, 1.0]
    b = [1.0, -1.0, -1.0]
    r, s = sk.logsumexp(a, b=b, return_sign=True)
    assert r == pytest.approx(1.0, rel=1e-15)
    assert s == -1.0


def test_logsumexp_sign_zero():
    a = [1.0, 1.0]
    b = [1.0, -1.0]
    r, s = sk.logsumexp(a, b=b, return_sign=True)
    assert not np.isfinite(r) and r < 0
    assert s == 0.0
    assert sk.logsumexp(a, b=b) == -INF


def test_logsumexp_sign_shape():
    a = np.ones((1, 2, 3, 4))
    b = np.ones_like(a)
    r, s = sk.logsumexp(a, axis=2, b=b, return_sign=True)
    assert r.shape == s.shape == (1, 2, 4)
    r, s = sk.logsumexp(a, axis=(1, 3), b=b, return_sign=True)
    assert r.shape == s.shape == (1, 3)


def test_logsumexp_complex_sign():
    # mirrors SciPy: sign is a unit complex phase, the result the real log-magnitude
    a = np.array([1 + 1j, 2 - 1j, -2 + 3j])
    r, s = sk.logsumexp(a, return_sign=True)
    expected_sum = np.sum(np.exp(a))
    assert np.isrealobj(r)
    np.testing.assert_allclose(r, np.log(np.abs(expected_sum)), rtol=1e-14)
    np.testing.assert_allclose(s, expected_sum / np.abs(expected_sum), rtol=1e-14)
    assert abs(abs(s) - 1) < 4 * EPS


def test_logsumexp_shape_of_empty():
    a = np.ones((1, 2, 3, 4))
    b = np.zeros_like(a)
    r = sk.logsumexp(a, axis=2, b=b)
    assert r.shape == (1, 2, 4)
    assert np.all(r == -INF)


def test_logsumexp_b_weights_against_mpmath():
    # mpmath.log(abs(mpmath.fsum(w * mpmath.exp(v) for w, v in zip(b, a))))
    rng = np.random.default_rng(3)
    for _ in range(20):
        a = rng.standard_normal(9) * 5
        b = rng.uniform(-1, 1, 9)
        res, sign = sk.logsumexp(a, b=b, return_sign=True)
        exact_sum = np.sum(b * np.exp(a.astype(np.longdouble)))
        assert sign == np.sign(float(exact_sum))
        exact = mp_to_longdouble([logsumexp_mpmath(a, b)]).reshape(())
        # cancellation in b * exp(a) can cost |terms| / |sum| ulps; allow for it explicitly
        cond = float(np.sum(np.abs(b) * np.exp(a.astype(np.longdouble))) / abs(exact_sum))
        assert _lse_ulps(res, exact) <= 4 * cond, (a, b, res, exact, cond)


def test_logsumexp_negative_sum_without_sign_is_nan_like_scipy():
    r = sk.logsumexp([0.0, 1.0], b=[1.0, -1.0])
    assert np.isnan(r)
    r = sk.logsumexp(np.array([[0.0, 1.0], [1.0, 0.0]]), axis=1, b=[1.0, -1.0])
    assert np.isnan(r[0]) and np.isfinite(r[1])


def test_logsumexp_sign_is_in_result_dtype_and_values():
    a = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    b = np.array([1.0, -1.0])
    for dtype in (np.float32, np.float64):
        res, sign = sk.logsumexp(a.astype(dtype), axis=1, b=b.astype(dtype), return_sign=True)
        assert sign.dtype == dtype and res.dtype == dtype
        np.testing.assert_array_equal(sign, [-1.0, 1.0, 0.0])
        assert set(np.unique(sign)) <= {-1.0, 0.0, 1.0}


def test_logsumexp_infinities():
    assert sk.logsumexp([INF, 1.0]) == INF
    assert sk.logsumexp([INF, -INF]) == INF
    assert sk.logsumexp([-INF, -INF]) == -INF
    assert np.isnan(sk.logsumexp([INF, NAN]))
    assert np.isnan(sk.logsumexp([-INF, NAN]))
    res, sign = sk.logsumexp([-INF, -INF], return_sign=True)
    assert res == -INF and sign == 0.0
    res, sign = sk.logsumexp([INF, 0.0], return_sign=True)
    assert res == INF and sign == 1.0


def test_logsumexp_where_is_like_zero_weights_for_finite_inputs(rng):
    a = rng.standard_normal((5, 7)) * 3
    mask = rng.random((5, 7)) < 0.6
    mask[:, 0] = True
    np.testing.assert_allclose(sk.logsumexp(a, axis=1, where=mask),
                               sk.logsumexp(a, axis=1, b=mask.astype(np.float64)), rtol=1e-14)


def test_logsumexp_where_and_b_combine(rng):
    a = rng.standard_normal((4, 6))
    b = rng.uniform(0.1, 2, (4, 6))
    mask = rng.random((4, 6)) < 0.5
    mask[:, 0] = True
    r = sk.logsumexp(a, axis=1, b=b, where=mask)
    np.testing.assert_allclose(r, logsumexp_ref(a, 1, b=b * mask).astype(np.float64), rtol=1e-14)


def test_logsumexp_integer_and_bool_weights():
    a = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(sk.logsumexp(a, b=np.array([1, 2, 0])),
                               np.log(np.e + 2 * np.e**2), rtol=1e-15)
    np.testing.assert_allclose(sk.logsumexp(a, b=np.array([True, False, True])),
                               np.log(np.e + np.e**3), rtol=1e-15)


def test_logsumexp_float64_weights_on_float32_data():
    a = np.zeros(4, np.float32)
    r = np.asarray(sk.logsumexp(a, b=np.ones(4)))
    # b is a weight, not data: SciPy promotes, softmaxkit keeps a's dtype -- but either way the
    # value is log(4)
    assert r == pytest.approx(math.log(4), rel=1e-6)


def test_logsumexp_float32_extremes():
    a = np.array([3e38, 3e38], np.float32)
    r = np.asarray(sk.logsumexp(a))
    assert r.dtype == np.float32 and np.isfinite(r)
    assert r == np.float32(3e38)  # + log 2 is far below half an ulp of 3e38
    big = np.array([1e308, 1e308])
    assert sk.logsumexp(big) == 1e308
    tiny = np.array([-1e308, -1e308])
    assert sk.logsumexp(tiny) == -1e308


def test_logsumexp_complex_principal_branch_and_dtypes():
    for dtype in (np.complex64, np.complex128):
        a = np.array([[1 + 3j, 2 + 3.1j, 0.5 - 3j]], dtype=dtype)
        r = np.asarray(sk.logsumexp(a, axis=1))
        assert r.dtype == dtype
        expected = np.log(np.sum(np.exp(a.astype(np.complex128)), axis=1))
        np.testing.assert_allclose(r, expected, rtol=2e-6 if dtype == np.complex64 else 1e-14)
        assert np.all((r.imag > -np.pi) & (r.imag <= np.pi))


def test_logsumexp_complex_large_real_parts():
    # exp(a) overflows: the shift by the largest real part must handle it
    a = np.array([1000 + 1j, 1000 - 1j])
    r = np.asarray(sk.logsumexp(a))
    expected = 1000 + np.log(2 * np.cos(1.0))
    assert r.imag == pytest.approx(0.0, abs=1e-13)
    assert r.real == pytest.approx(expected, rel=1e-15)


def test_logsumexp_complex_with_weights_and_where():
    a = np.array([1 + 1j, 2 - 1j, 3j])
    b = np.array([2.0, -1.0, 0.5])
    mask = np.array([True, True, False])
    r = np.asarray(sk.logsumexp(a, b=b, where=mask))
    expected = np.log(2 * np.exp(1 + 1j) - np.exp(2 - 1j))
    np.testing.assert_allclose(r, expected, rtol=1e-14)


def test_logsumexp_does_not_write_back():
    # SciPy's test_no_writeback
    a = np.array([1.0, 2.0, 3.0])
    b = np.array([1.0, 2.0, 3.0])
    sk.logsumexp(a)
    sk.logsumexp(a, b=b, return_sign=True)
    np.testing.assert_array_equal(a, [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(b, [1.0, 2.0, 3.0])
