"""Parity with scipy.special and torch where they agree with the policy, and the documented places
where softmaxkit deliberately differs (all -inf / fully masked slices, +inf entries).

scipy and torch are test dependencies: the tests use ``pytest.importorskip`` so that a missing peer
shows up as a skip with a reason, never as a silent pass.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import softmaxkit as sk

INF = np.inf
NAN = np.nan


@pytest.fixture(scope="module")
def special():
    return pytest.importorskip("scipy.special")


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def _x(rng, shape=(3, 4, 5), dtype=np.float64, scale=3.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


RTOL = {np.float32: 2e-6, np.float64: 1e-13}

# --------------------------------------------------------------------------------------------
# scipy.special
# --------------------------------------------------------------------------------------------

SCIPY_AXES = [0, 1, 2, -1, (0, 2), (0, 1, 2), None]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("axis", SCIPY_AXES, ids=repr)
def test_scipy_softmax_and_log_softmax(special, dtype, axis, rng):
    x = _x(rng, dtype=dtype)
    # scipy's default axis is None, softmaxkit's -1: always pass it
    r = sk.softmax(x, axis=axis)
    np.testing.assert_allclose(r, special.softmax(x, axis=axis), rtol=RTOL[dtype])
    lr = sk.log_softmax(x, axis=axis)
    np.testing.assert_allclose(lr, special.log_softmax(x, axis=axis), rtol=RTOL[dtype],
                               atol=RTOL[dtype])
    assert r.dtype == special.softmax(x, axis=axis).dtype


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("axis", SCIPY_AXES, ids=repr)
@pytest.mark.parametrize("keepdims", [False, True])
def test_scipy_logsumexp(special, dtype, axis, keepdims, rng):
    a = _x(rng, dtype=dtype)
    r = sk.logsumexp(a, axis=axis, keepdims=keepdims)
    expected = special.logsumexp(a, axis=axis, keepdims=keepdims)
    assert np.shape(r) == np.shape(expected)
    np.testing.assert_allclose(r, expected, rtol=RTOL[dtype], atol=RTOL[dtype])


@pytest.mark.parametrize("axis", [None, 0, -1, (0, 2)], ids=repr)
def test_scipy_logsumexp_weights_and_sign(special, axis, rng):
    a = _x(rng)
    b = rng.uniform(-1, 1, a.shape)
    res, sign = sk.logsumexp(a, axis=axis, b=b, return_sign=True)
    eres, esign = special.logsumexp(a, axis=axis, b=b, return_sign=True)
    np.testing.assert_array_equal(sign, esign)
    np.testing.assert_allclose(res, eres, rtol=1e-12)
    bp = np.abs(b) + 0.1
    np.testing.assert_allclose(sk.logsumexp(a, axis=axis, b=bp),
                               special.logsumexp(a, axis=axis, b=bp), rtol=1e-13)
    # b broadcast from a trailing shape
    br = rng.uniform(0.5, 1.5, a.shape[-1])
    np.testing.assert_allclose(sk.logsumexp(a, axis=axis, b=br),
                               special.logsumexp(a, axis=axis, b=br), rtol=1e-13)
    # negative sums without return_sign: NaN in both
    with np.errstate(invalid="ignore"):
        expected = special.logsumexp(a, axis=axis, b=b)
    r = sk.logsumexp(a, axis=axis, b=b)
    np.testing.assert_array_equal(np.isnan(r), np.isnan(expected))
    np.testing.assert_allclose(np.asarray(r)[~np.isnan(r)],
                               np.asarray(expected)[~np.isnan(expected)], rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("axis", [None, 0, -1], ids=repr)
def test_scipy_logsumexp_complex(special, dtype, axis, rng):
    a = (rng.standard_normal((4, 5)) + 1j * rng.standard_normal((4, 5)) * 4).astype(dtype)
    r = sk.logsumexp(a, axis=axis)
    expected = special.logsumexp(a, axis=axis)
    assert np.asarray(r).dtype == np.asarray(expected).dtype == dtype
    rtol = 1e-5 if dtype == np.complex64 else 1e-13
    np.testing.assert_allclose(r, expected, rtol=rtol)
    res, sign = sk.logsumexp(a, axis=axis, return_sign=True)
    eres, esign = special.logsumexp(a, axis=axis, return_sign=True)
    np.testing.assert_allclose(res, eres, rtol=rtol)
    np.testing.assert_allclose(sign, esign, rtol=rtol, atol=rtol)


def test_scipy_logsumexp_agreeing_special_values(special):
    # where SciPy's result is finite-and-correct or an exact infinity, softmaxkit agrees
    cases = [[-INF, -INF], [INF, 1.0], [0.0, -40.0], [1000.0, 1000.0], [-INF, 0.0]]
    for a in cases:
        assert sk.logsumexp(a) == special.logsumexp(a), a
    res, sign = sk.logsumexp([1.0, 1.0], b=[1.0, -1.0], return_sign=True)
    eres, esign = special.logsumexp([1.0, 1.0], b=[1.0, -1.0], return_sign=True)
    assert res == eres == -INF and sign == esign == 0.0


def test_scipy_logsumexp_empty(special):
    a = np.zeros((3, 0))
    np.testing.assert_array_equal(sk.logsumexp(a, axis=1), special.logsumexp(a, axis=1))
    assert sk.logsumexp(np.zeros(0)) == special.logsumexp(np.zeros(0)) == -INF


# --------------------------------------------------------------------------------------------
# torch
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("dim", [0, 1, 2, -1, -2])
def test_torch_softmax_log_softmax_softmin(torch, dtype, dim, rng):
    x = _x(rng, dtype=dtype)
    t = torch.from_numpy(x)
    np.testing.assert_allclose(sk.softmax(x, axis=dim), torch.softmax(t, dim).numpy(),
                               rtol=RTOL[dtype])
    np.testing.assert_allclose(sk.log_softmax(x, axis=dim), torch.log_softmax(t, dim).numpy(),
                               rtol=RTOL[dtype], atol=RTOL[dtype])
    np.testing.assert_allclose(sk.softmin(x, axis=dim),
                               torch.nn.functional.softmin(t, dim).numpy(), rtol=RTOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("dim", [0, -1, (0, 2), (0, 1, 2)], ids=repr)
@pytest.mark.parametrize("keepdim", [False, True])
def test_torch_logsumexp(torch, dtype, dim, keepdim, rng):
    a = _x(rng, dtype=dtype)
    expected = torch.logsumexp(torch.from_numpy(a), dim, keepdim=keepdim).numpy()
    r = np.asarray(sk.logsumexp(a, axis=dim, keepdims=keepdim))
    assert r.shape == expected.shape and r.dtype == expected.dtype
    np.testing.assert_allclose(r, expected, rtol=RTOL[dtype], atol=RTOL[dtype])


@pytest.mark.parametrize("target", ["float64", "float32", "float16"])
def test_torch_dtype_argument_casts_first(torch, target, rng):
    # torch.softmax(t, dim, dtype=...) casts the input, then computes
    x = _x(rng, (4, 9), np.float64 if target != "float64" else np.float32)
    tt = getattr(torch, target)
    expected = torch.softmax(torch.from_numpy(x), -1, dtype=tt).numpy()
    r = sk.softmax(x, dtype=np.dtype(target))
    assert r.dtype == expected.dtype
    rtol = {"float64": 1e-13, "float32": 2e-6, "float16": 1e-3}[target]
    np.testing.assert_allclose(r.astype(np.float64), expected.astype(np.float64), rtol=rtol,
                               atol=rtol * 1e-3)
    lexpected = torch.log_softmax(torch.from_numpy(x), -1, dtype=tt).numpy()
    lr = sk.log_softmax(x, dtype=np.dtype(target))
    np.testing.assert_allclose(lr.astype(np.float64), lexpected.astype(np.float64), rtol=rtol,
                               atol=rtol)


def test_torch_float16_and_bfloat16(torch, rng):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    x = _x(rng, (6, 33), np.float32)
    x16 = x.astype(np.float16)
    t16 = torch.from_numpy(x16)
    np.testing.assert_allclose(sk.softmax(x16).astype(np.float32),
                               torch.softmax(t16, -1).float().numpy(), rtol=2e-3, atol=1e-6)
    xb = x.astype(ml_dtypes.bfloat16)
    tb = torch.from_numpy(xb.astype(np.float32)).to(torch.bfloat16)
    np.testing.assert_allclose(sk.softmax(xb).astype(np.float32),
                               torch.softmax(tb, -1).float().numpy(), rtol=1.6e-2, atol=1e-5)


def test_torch_masked_softmax_via_minus_inf(torch, rng):
    # torch users mask by filling -inf; softmaxkit's where= gives the same where a row keeps some
    x = _x(rng, (5, 8))
    mask = rng.random((5, 8)) < 0.6
    mask[:, 0] = True
    filled = torch.from_numpy(np.where(mask, x, -INF))
    np.testing.assert_allclose(sk.softmax(x, where=mask), torch.softmax(filled, -1).numpy(),
                               rtol=1e-13)


# --------------------------------------------------------------------------------------------
# deliberate differences
# --------------------------------------------------------------------------------------------

def _quiet(f, *args, **kwargs):
    """Run a peer that warns on the inputs we give it; the warning is not what we test."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return f(*args, **kwargs)


def test_differs_all_minus_inf_row_peers_give_nan(special, torch):
    x = np.array([[-INF, -INF, -INF], [1.0, 2.0, 3.0]])
    assert np.isnan(_quiet(special.softmax, x, axis=1)[0]).all()
    assert np.isnan(torch.softmax(torch.from_numpy(x), 1)[0].numpy()).all()
    assert np.isnan(torch.log_softmax(torch.from_numpy(x), 1)[0].numpy()).all()
    # softmaxkit: zeros / -inf, no warning (filterwarnings=error)
    np.testing.assert_array_equal(sk.softmax(x, axis=1)[0], [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(sk.log_softmax(x, axis=1)[0], [-INF, -INF, -INF])
    # the other row agrees with both peers
    np.testing.assert_allclose(sk.softmax(x, axis=1)[1], special.softmax(x[1]), rtol=1e-15)
    # logsumexp of the row is -inf everywhere: no difference there
    assert sk.logsumexp(x[0]) == special.logsumexp(x[0]) == -INF
    assert torch.logsumexp(torch.from_numpy(x[0]), 0).item() == -INF


def test_differs_fully_masked_row_torch_gives_nan(torch):
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    mask = np.array([[False, False], [True, True]])
    filled = torch.from_numpy(np.where(mask, x, -INF))
    assert np.isnan(torch.softmax(filled, -1)[0].numpy()).all()
    np.testing.assert_array_equal(sk.softmax(x, where=mask)[0], [0.0, 0.0])


def test_differs_plus_inf_entries_peers_give_nan(special, torch):
    x = np.array([1.0, INF, 2.0, INF])
    assert np.isnan(_quiet(special.softmax, x)).all()
    assert np.isnan(torch.softmax(torch.from_numpy(x), 0).numpy()).all()
    assert np.isnan(_quiet(special.log_softmax, x)[[1, 3]]).all()  # (and -inf elsewhere)
    # softmaxkit: the limit
    np.testing.assert_array_equal(sk.softmax(x), [0.0, 0.5, 0.0, 0.5])
    np.testing.assert_array_equal(sk.log_softmax(x), [-INF, -np.log(2), -INF, -np.log(2)])
    # logsumexp: +inf everywhere, no difference
    assert sk.logsumexp(x) == _quiet(special.logsumexp, x) == INF


def test_differs_float16_sum_past_65504(special, torch):
    x = np.zeros(100_000, np.float16)
    assert np.all(_quiet(special.softmax, x) == 0)  # scipy sums in float16: inf
    assert torch.logsumexp(torch.from_numpy(x), 0).item() == INF  # torch: float16 overflow
    np.testing.assert_array_equal(sk.softmax(x), np.float16(1e-5))
    assert np.asarray(sk.logsumexp(x)) == np.float16(np.log(1e5))


@pytest.mark.slow
def test_differs_long_float32_row_sums_to_one(torch, big_row_f32):
    # torch sums a 2**24-element float32 row in one float32 accumulator; softmaxkit within 1e-6
    t = torch.softmax(torch.from_numpy(big_row_f32), 0).numpy()
    torch_err = abs(float(np.sum(t, dtype=np.float64)) - 1.0)
    ours = abs(float(np.sum(sk.softmax(big_row_f32), dtype=np.float64)) - 1.0)
    assert ours <= 1e-6
    assert ours < torch_err  # pinned torch 2.13: its error is ~1e-3 on this row


def test_differs_scipy_default_axis(special):
    # scipy.special.softmax defaults to axis=None (whole array); softmaxkit to axis=-1
    x = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    np.testing.assert_allclose(sk.softmax(x, axis=None), special.softmax(x), rtol=1e-15)
    assert not np.allclose(sk.softmax(x), special.softmax(x))
    np.testing.assert_allclose(sk.softmax(x), special.softmax(x, axis=-1), rtol=1e-15)
