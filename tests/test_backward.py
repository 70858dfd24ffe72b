"""softmax_backward and log_softmax_backward: the vector-Jacobian products from the forward output.

    softmax_backward(g, y, axis)     = y * (g - sum(g * y, axis, keepdims=True))
    log_softmax_backward(g, y, axis) = g - exp(y) * sum(g, axis, keepdims=True)

Checked against the formulas in long double, against finite differences of softmaxkit's own
forward functions, and against torch.autograd.
"""

from __future__ import annotations

import numpy as np
import pytest

import softmaxkit as sk
from arrays import axis_forms
from naive import log_softmax_backward_ref, normalize_axes, softmax_backward_ref

EPS64 = float(np.finfo(np.float64).eps)
EPS32 = float(np.finfo(np.float32).eps)


def _data(rng, shape=(3, 4, 5), dtype=np.float64):
    x = (rng.standard_normal(shape) * 2).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    return x, g


@pytest.mark.parametrize("axis", axis_forms(3), ids=repr)
def test_softmax_backward_matches_formula(axis, rng):
    x, g = _data(rng)
    y = sk.softmax(x, axis=axis)
    r = sk.softmax_backward(g, y, axis=axis)
    assert r.dtype == np.float64 and r.shape == x.shape
    expected = softmax_backward_ref(g, y, axis, compute=np.longdouble).astype(np.float64)
    np.testing.assert_allclose(r, expected, rtol=8 * EPS64, atol=8 * EPS64)


@pytest.mark.parametrize("axis", axis_forms(3), ids=repr)
def test_log_softmax_backward_matches_formula(axis, rng):
    x, g = _data(rng)
    y = sk.log_softmax(x, axis=axis)
    r = sk.log_softmax_backward(g, y, axis=axis)
    assert r.dtype == np.float64 and r.shape == x.shape
    expected = log_softmax_backward_ref(g, y, axis, compute=np.longdouble).astype(np.float64)
    n = int(np.prod([x.shape[a] for a in normalize_axes(axis, x.ndim)]))
    np.testing.assert_allclose(r, expected, rtol=8 * EPS64, atol=8 * EPS64 * max(n, 1))


@pytest.mark.parametrize("axis", [-1, 0, (0, 2), None], ids=repr)
def test_backward_agrees_with_finite_differences(axis, rng):
    # <vjp(g), v> == <g, J v>, with J v from a central difference of the forward function
    x, g = _data(rng)
    v = rng.standard_normal(x.shape)
    h = 1e-6
    for fwd, bwd in [(sk.softmax, sk.softmax_backward), (sk.log_softmax, sk.log_softmax_backward)]:
        jv = (fwd(x + h * v, axis=axis) - fwd(x - h * v, axis=axis)) / (2 * h)
        lhs = np.sum(bwd(g, fwd(x, axis=axis), axis=axis) * v)
        rhs = np.sum(g * jv)
        assert lhs == pytest.approx(rhs, rel=1e-6, abs=1e-8), fwd.__name__


def test_softmax_backward_is_orthogonal_to_constant_shifts(rng):
    # softmax(x + c) == softmax(x), so the gradient sums to 0 along the axis
    x, g = _data(rng, (6, 50))
    y = sk.softmax(x)
    r = sk.softmax_backward(g, y)
    np.testing.assert_allclose(r.sum(axis=-1), 0.0, atol=16 * EPS64 * np.abs(g).max())
    ly = sk.log_softmax(x)
    lr = sk.log_softmax_backward(g, ly)
    np.testing.assert_allclose(lr.sum(axis=-1), 0.0, atol=16 * EPS64 * 50 * np.abs(g).max())


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_backward_dtypes(dtype, rng):
    x, g = _data(rng, (4, 9), dtype)
    y = sk.softmax(x)
    r = sk.softmax_backward(g, y)
    assert r.dtype == dtype
    tol = {np.float16: 4e-3, np.float32: 8 * EPS32, np.float64: 8 * EPS64}[dtype]
    expected = softmax_backward_ref(g, y, -1)
    np.testing.assert_allclose(r.astype(np.float64), expected, rtol=tol, atol=tol)
    ly = sk.log_softmax(x)
    lr = sk.log_softmax_backward(g, ly)
    assert lr.dtype == dtype
    np.testing.assert_allclose(lr.astype(np.float64), log_softmax_backward_ref(g, ly, -1),
                               rtol=tol, atol=tol * 9)


def test_backward_ints_promote_to_float64():
    y = sk.softmax(np.array([[1, 2, 3]]))
    r = sk.softmax_backward(np.array([[1, 0, 0]]), y)
    assert r.dtype == np.float64
    np.testing.assert_allclose(r, softmax_backward_ref([[1.0, 0, 0]], y, -1), rtol=1e-15,
                               atol=1e-16)


def test_backward_masked_and_empty_slices():
    x = np.array([[1.0, 2.0, 3.0], [-np.inf, -np.inf, -np.inf], [0.0, 5.0, 1.0]])
    mask = np.array([True, False, True])
    g = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [-1.0, 0.5, 2.0]])
    y = sk.softmax(x, where=mask)
    r = sk.softmax_backward(g, y)
    assert np.all(r[:, 1] == 0)  # masked entries have y == 0, so no gradient
    assert np.all(r[1] == 0)  # an all -inf slice has y == 0 everywhere
    assert not np.isnan(r).any()
    ly = sk.log_softmax(x, where=mask)
    lr = sk.log_softmax_backward(g, ly)
    assert not np.isnan(lr).any()
    np.testing.assert_allclose(lr, log_softmax_backward_ref(g, ly, -1), rtol=1e-15, atol=1e-15)
    np.testing.assert_array_equal(lr[1], g[1])  # exp(-inf) == 0: the formula leaves g


def test_backward_zero_d_and_empty():
    r = sk.softmax_backward(np.array(2.0), np.array(1.0))
    assert isinstance(r, np.ndarray) and r.shape == () and r == 0.0
    r = sk.log_softmax_backward(np.array(2.0), np.array(0.0))
    assert r.shape == () and r == 0.0
    for shape, axis in [((0,), -1), ((3, 0), 1), ((0, 4), 0), ((2, 0), None)]:
        e = np.zeros(shape)
        assert sk.softmax_backward(e, e, axis=axis).shape == shape
        assert sk.log_softmax_backward(e, e, axis=axis).shape == shape


@pytest.mark.parametrize("layout", ["fortran", "negative", "strided", "byteswapped"])
def test_backward_layouts(layout, rng):
    x, g = _data(rng, (5, 12))
    y = sk.softmax(x)
    prep = {
        "fortran": np.asfortranarray,
        "negative": lambda a: a[::-1, ::-1][::-1, ::-1],
        "strided": lambda a: np.repeat(a, 2, axis=1)[:, ::2],
        "byteswapped": lambda a: a.astype(a.dtype.newbyteorder()),
    }[layout]
    for axis in (-1, 0):
        yy = sk.softmax(x, axis=axis)
        expected = softmax_backward_ref(g, yy, axis).astype(np.float64)
        r = sk.softmax_backward(prep(g), prep(yy), axis=axis)
        np.testing.assert_allclose(r, expected, rtol=8 * EPS64, atol=8 * EPS64)
    assert y.shape == x.shape


@pytest.mark.parametrize("axis", [-1, 0, 1])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backward_matches_torch_autograd(axis, dtype, rng):
    torch = pytest.importorskip("torch")
    x, g = _data(rng, (4, 6, 7), dtype)
    xt = torch.from_numpy(x).requires_grad_(True)
    gt = torch.from_numpy(g)
    tol = 8 * (EPS32 if dtype == np.float32 else EPS64)
    for torch_fwd, sk_fwd, sk_bwd in [
        (torch.softmax, sk.softmax, sk.softmax_backward),
        (torch.log_softmax, sk.log_softmax, sk.log_softmax_backward),
    ]:
        (expected,) = torch.autograd.grad(torch_fwd(xt, axis), xt, gt)
        r = sk_bwd(g, sk_fwd(x, axis=axis), axis=axis)
        np.testing.assert_allclose(r, expected.numpy(), rtol=tol * 4, atol=tol * 8)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
def test_parallel_backward_matches_formula(log, dtype, rng):
    # large enough for the parallel kernel (and an odd row count, so workers split unevenly)
    from softmaxkit import _numpy_backend as backend

    x, g = _data(rng, (301, 211), dtype)
    assert backend.use_parallel(x.size) or sk.get_num_threads() == 1
    fwd, bwd, ref = (
        (sk.log_softmax, sk.log_softmax_backward, log_softmax_backward_ref)
        if log
        else (sk.softmax, sk.softmax_backward, softmax_backward_ref)
    )
    y = fwd(x, axis=-1)
    r = bwd(g, y, axis=-1)
    expected = ref(g.astype(np.float64), y.astype(np.float64), -1, compute=np.longdouble)
    eps = float(np.finfo(dtype).eps)
    # each output is formed in float64 and rounded once; the float64 sums of 211 terms add
    # up to 211 eps64 of the largest term, below one float32 ulp and ~211 float64 ulps
    atol = (2 * eps if dtype == np.float32 else 8 * 211 * eps) * np.abs(g).max()
    np.testing.assert_allclose(r, expected.astype(dtype), rtol=2 * eps, atol=atol)
