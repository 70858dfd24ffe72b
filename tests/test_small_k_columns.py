"""The small-K column kernel: unmasked softmax over at most ``SMALL_K`` rows of a column layout.

It computes each column as the block kernels do (the same operations, the same order of the
sum), so its results must equal theirs bit for bit, on ordinary and special values, with every
option and output form, serial and parallel; and it must be what such layouts take.
"""

from __future__ import annotations

import numpy as np
import pytest

import softmaxkit as sk
from softmaxkit import _numpy_backend as backend
from naive import assert_matches, softmax_ref, ulp_error

SMALL_K = 12  # the kernels' SMALL_K, checked below


def test_limit_is_the_kernels():
    assert backend.kernels().SMALL_K == SMALL_K


def _both_kernels(monkeypatch, call):
    """``call()`` through the small-K kernel, then through the block kernels."""
    small = call()
    with monkeypatch.context() as m:
        m.setattr(backend, "SMALL_K", 0)
        blocks = call()
    return small, blocks


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [1, 2, 3, 5, 8, 12])
@pytest.mark.parametrize("inner", [16, 37, 300])  # whole tiles; a partial last tile; several chunks' worth
@pytest.mark.parametrize("parallel", [False, True])
def test_small_k_matches_the_block_kernels(monkeypatch, rng, dtype, k, inner, parallel):
    if parallel:
        monkeypatch.setattr(backend, "PARALLEL_MIN_ELEMENTS", 0)
        monkeypatch.setattr(backend, "num_threads", lambda: 2)
        monkeypatch.setattr(backend.kernels(), "SMALL_K_CHUNK", 32)  # several items per worker
    x = (rng.standard_normal((3, k, inner)) * 5).astype(dtype)
    small, blocks = _both_kernels(monkeypatch, lambda: sk.softmax(x, axis=1))
    np.testing.assert_array_equal(small, blocks)
    assert ulp_error(small, softmax_ref(x, axis=1, compute=np.longdouble)).max() <= 4


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", ["fresh", "out", "in place"])
@pytest.mark.parametrize("options", [{}, {"temperature": 0.3}, {"temperature": 9.0}, {"softmin": True}])
def test_options_and_outputs(monkeypatch, rng, dtype, mode, options):
    x0 = (rng.standard_normal((2, 3, 4, 21)) * 6).astype(dtype)
    options = dict(options)
    f = sk.softmin if options.pop("softmin", False) else sk.softmax

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
    partial tile) a NaN, two +inf, one +inf, every entry -inf, and a NaN beside -inf."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 4, inner)).astype(dtype)
    inf, nan = np.inf, np.nan
    specials = {
        3: [1.0, nan, 2.0, 0.5],
        5: [inf, 1.0, inf, -inf],
        8: [0.0, inf, -3.0, 2.0],
        11: [-inf, -inf, -inf, -inf],
        inner - 2: [nan, -inf, -inf, -inf],
    }
    for c, column in specials.items():
        x[0, :, c] = column
    return x


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("inplace", [False, True])
def test_special_values(monkeypatch, dtype, inplace):
    x0 = _with_special_columns(dtype, 40)

    def call():
        x = x0.copy()
        return sk.softmax(x, axis=1, out=x if inplace else None)

    with np.errstate(all="ignore"):
        small, blocks = _both_kernels(monkeypatch, call)
        np.testing.assert_array_equal(small, blocks)
        assert_matches(small, softmax_ref(x0, axis=1))
    np.testing.assert_array_equal(small[0, :, 5], [0.5, 0.0, 0.5, 0.0])
    np.testing.assert_array_equal(small[0, :, 11], 0.0)
    assert np.isnan(small[0, :, 3]).all() and np.isnan(small[0, :, 38]).all()
    ordinary = [c for c in range(40) if c not in (3, 5, 8, 11, 38)]
    reference = softmax_ref(x0[..., ordinary], axis=1, compute=np.longdouble)
    assert ulp_error(small[..., ordinary], reference).max() <= 4


def _spy(monkeypatch):
    kernels = backend.kernels()
    calls = []
    original = kernels.softmax_small_k

    def spy(*args):
        calls.append(args)
        return original(*args)

    monkeypatch.setattr(kernels, "softmax_small_k", spy)
    return calls


@pytest.mark.parametrize(
    "shape, axis, kwargs, taken",
    [
        ((2, 3, 50), 1, {}, True),
        ((2, SMALL_K, 50), 1, {}, True),
        ((2, SMALL_K + 1, 50), 1, {}, False),  # the block kernels from here on
        ((SMALL_K, 64), 0, {}, True),
        ((2, 3, 50), 1, {"where": True}, False),  # a mask: the block kernels
        ((2, 3, 50), -1, {}, False),  # rows
    ],
)
def test_which_layouts_take_the_small_k_kernel(monkeypatch, rng, shape, axis, kwargs, taken):
    calls = _spy(monkeypatch)
    x = rng.standard_normal(shape).astype(np.float32)
    if "where" in kwargs:
        kwargs = {"where": rng.random(shape) < 0.8}
    sk.softmax(x, axis=axis, **kwargs)
    assert bool(calls) == taken


def test_log_softmax_keeps_the_block_kernels(monkeypatch, rng):
    calls = _spy(monkeypatch)
    sk.log_softmax(rng.standard_normal((2, 3, 50)).astype(np.float32), axis=1)
    assert not calls
