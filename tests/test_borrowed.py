"""``_intrinsics.borrowed``: the refcount-free views the kernel drivers take of their arguments.

The views must alias the caller's memory (results land in the caller's arrays), must not change
any reference count (an extra decref would free an array the caller still holds; a missing one
would leak it), and ``None`` must pass through so optional ``out``/``mask`` arguments still work.
"""

from __future__ import annotations

import gc
import sys

import numpy as np
import pytest

numba = pytest.importorskip("numba")

from softmaxkit._kernels._intrinsics import borrowed  # noqa: E402

import softmaxkit as sk  # noqa: E402


@numba.njit(cache=False)
def _fill_through_view(a, value):
    view = borrowed(a)
    for i in range(view.size):
        view[i] = value
    return view.size


@numba.njit(cache=False)
def _is_none_through_view(a):
    return borrowed(a) is None


def test_borrowed_view_writes_into_the_callers_array():
    a = np.zeros(37)
    assert _fill_through_view(a, 2.5) == 37
    np.testing.assert_array_equal(a, np.full(37, 2.5))


def test_borrowed_passes_none():
    assert _is_none_through_view(None)


@pytest.mark.parametrize("shape", [(8, 10), (64, 1000), (3, 70000), (4, 21, 64)])
def test_kernel_calls_leave_reference_counts_alone(shape):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    out = np.empty_like(x)
    axis = 1 if len(shape) == 3 else -1
    sk.softmax(x, axis=axis, out=out)  # compile outside the count
    sk.log_softmax(x, axis=axis)
    gc.collect()
    before = sys.getrefcount(x), sys.getrefcount(out)
    for _ in range(200):
        sk.softmax(x, axis=axis, out=out)
        sk.log_softmax(x, axis=axis)
        sk.logsumexp(x, axis=axis)
        sk.softmax(out, axis=axis, out=out)
    gc.collect()
    assert (sys.getrefcount(x), sys.getrefcount(out)) == before


def test_parallel_logsumexp_rows_results_are_written():
    # Regression: borrowing the result array of the parallel logsumexp row driver (written by
    # ``res[r] = ...`` inside prange, when that driver was a parfor) gave garbage for every row.
    from softmaxkit import _numpy_backend as backend

    x = (np.random.default_rng(0).standard_normal((1000, 1000)) * 4).astype(np.float32)
    assert backend.use_parallel(x.size) or sk.get_num_threads() == 1
    reference = np.log(np.sum(np.exp(x.astype(np.float64)), axis=-1))
    np.testing.assert_allclose(sk.logsumexp(x, axis=-1), reference, rtol=2e-7)
