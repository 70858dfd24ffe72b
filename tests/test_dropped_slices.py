"""Masks that keep or drop whole slices: of length 1 along every reduction axis.

A query-padding mask ``(B, 1, T, 1)`` over attention scores ``(B, H, T, T)``, or a pixel mask
``(N, 1, H, W)`` over the channels of ``(N, C, H, W)``, keeps or drops each slice whole.  Such a
call takes the unmasked kernels and then writes the dropped slices
(``_numpy_backend.slices_kept``, ``write_dropped``, ``_kernels/dropped.py``) instead of the
masked kernels over a mask of x's size.  Its results must be exactly those of the same mask
broadcast to x's shape (the masked kernels, whose accuracy ``test_accuracy`` and
``test_masked_rows`` check against references), and independently: a kept slice exactly the
unmasked call's, a dropped slice exactly what an entirely masked slice is (softmax and softmin
0, log_softmax and logsumexp -inf), whatever its input (NaN and infinities included).
"""

from __future__ import annotations

import numpy as np
import pytest

import softmaxkit as sk
from softmaxkit import _numpy_backend as backend
from softmaxkit._policy import normalize_axes
from softmaxkit._threads import max_threads

FUNCTIONS = [sk.softmax, sk.log_softmax, sk.softmin, sk.logsumexp]
DROPPED = {"softmax": 0.0, "softmin": 0.0, "log_softmax": -np.inf, "logsumexp": -np.inf}

# (x's shape, the mask's shape, axis): each mask has length 1 along the reduction axes
LAYOUTS = [
    ((2, 3, 8, 8), (2, 1, 8, 1), -1),  # query padding over attention scores
    ((2, 5, 6, 7), (2, 1, 6, 7), 1),  # a pixel mask over the channels (NCHW)
    ((2, 3, 4, 5), (3, 1, 1), (2, 3)),  # two axes next to each other; a mask of fewer dims
    ((2, 3, 4, 5), (1, 3, 1, 5), (0, 2)),  # two axes apart: written by NumPy
    ((3, 4), (1, 1), None),  # every axis: one slice, dropped
    ((3, 4), (), -1),  # a 0-d mask: every slice dropped
    ((3, 4), (3, 4), ()),  # no axis: each entry its own slice
    ((64, 600), (64, 1), -1),  # parallel rows (38400 elements)
    ((2, 4, 64, 80), (2, 1, 64, 80), 1),  # parallel lines
]


def _input(shape, dtype, rng):
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    flat = x.reshape(-1)
    flat[::7] = np.nan
    flat[3::11] = np.inf
    flat[5::13] = -np.inf
    return x


def _mask(shape, rng):
    """Random, with both kinds of slice whatever the draw; a mask of one entry drops."""
    m = rng.random(shape) < 0.6
    m.reshape(-1)[:2] = [False, True][: m.size]
    return m


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
@pytest.mark.parametrize("function", FUNCTIONS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda c: f"{c[0]}-{c[1]}-{c[2]}")
def test_as_the_broadcast_mask_and_the_unmasked_call(layout, function, dtype, rng):
    shape, mask_shape, axis = layout
    x = _input(shape, dtype, rng)
    where = _mask(mask_shape, rng)
    x_before, where_before = x.copy(), where.copy()

    got = function(x, axis=axis, where=where)

    assert np.array_equal(x, x_before, equal_nan=True) and np.array_equal(where, where_before)
    full = np.ascontiguousarray(np.broadcast_to(where, shape))
    np.testing.assert_array_equal(got, function(x, axis=axis, where=full), strict=True)

    axes = normalize_axes(axis, len(shape))
    unmasked = function(x, axis=axis)
    kept = backend.slices_kept(where, shape, axes)  # of the slices, the reduced axes moved last
    dropped = ~kept
    assert dropped.any() and (kept.any() or where.size == 1)
    if function is sk.logsumexp:
        got_slices, unmasked_slices = got, unmasked
    else:
        moved = tuple(range(len(shape) - len(axes), len(shape)))
        got_slices, unmasked_slices = np.moveaxis(got, axes, moved), np.moveaxis(unmasked, axes, moved)
    assert (got_slices[dropped] == DROPPED[function.__name__]).all()
    np.testing.assert_array_equal(got_slices[kept], unmasked_slices[kept], strict=True)


@pytest.mark.parametrize("function", FUNCTIONS[:3], ids=lambda f: f.__name__)
def test_out_forms(function, rng):
    shape, mask_shape, axis = (4, 3, 8, 8), (4, 1, 8, 1), -1
    x = _input(shape, np.float32, rng)
    where = _mask(mask_shape, rng)
    expected = function(x, axis=axis, where=np.ascontiguousarray(np.broadcast_to(where, shape)))

    out = np.full(shape, 7.0, np.float32)  # C-contiguous: the kernel writes the dropped slices
    assert function(x, axis=axis, where=where, out=out) is out
    np.testing.assert_array_equal(out, expected)

    strided = np.full(shape + (2,), 7.0, np.float32)[..., 0]  # not contiguous: NumPy writes them
    assert function(x, axis=axis, where=where, out=strided) is strided
    np.testing.assert_array_equal(strided, expected)

    wide = np.full(shape, 7.0, np.float64)  # a float64 out for float32 input
    function(x, axis=axis, where=where, out=wide)
    np.testing.assert_array_equal(wide, expected.astype(np.float64))

    y = x.copy()  # in place
    assert function(y, axis=axis, where=where, out=y) is y
    np.testing.assert_array_equal(y, expected)


def test_logsumexp_keepdims_out_and_weights(rng):
    shape, mask_shape = (2, 5, 6, 7), (2, 1, 6, 7)
    x = _input(shape, np.float64, rng)
    where = _mask(mask_shape, rng)
    full = np.ascontiguousarray(np.broadcast_to(where, shape))

    out = np.full((2, 1, 6, 7), 7.0)
    assert sk.logsumexp(x, axis=1, where=where, keepdims=True, out=out) is out
    np.testing.assert_array_equal(out, sk.logsumexp(x, axis=1, where=full, keepdims=True))

    # weights and signs take the general kernels with the mask: the same results as ever
    b = rng.standard_normal(shape)
    got = sk.logsumexp(x, axis=1, where=where, b=b, return_sign=True)
    expected = sk.logsumexp(x, axis=1, where=full, b=b, return_sign=True)
    for g, e in zip(got, expected):
        np.testing.assert_array_equal(g, e)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(
    "shape, mask_shape, axis, items",
    [((64, 600), (64, 1), -1, 64), ((2, 4, 64, 80), (2, 1, 64, 80), 1, 8)],
    ids=["rows", "lines"],
)
def test_the_kernel_writes_them(shape, mask_shape, axis, items, threads, kernel_calls, rng):
    x = _input(shape, np.float32, rng)
    where = _mask(mask_shape, rng)
    expected = sk.log_softmax(x, axis=axis, where=np.ascontiguousarray(np.broadcast_to(where, shape)))
    threads = min(threads, max_threads())
    calls = kernel_calls("write_dropped")
    before = sk.get_num_threads()
    sk.set_num_threads(threads)
    try:
        got = sk.log_softmax(x, axis=axis, where=where)
    finally:
        sk.set_num_threads(before)
    [(n_items, workers, y3, kept2, value)] = calls
    assert (n_items, workers) == (items, threads)
    assert np.shares_memory(y3, got)
    assert kept2.shape == (y3.shape[0], y3.shape[2]) and value == -np.inf and value.dtype == np.float32
    np.testing.assert_array_equal(got, expected)


def test_nothing_dropped_writes_nothing(kernel_calls, rng):
    x = _input((4, 3, 8, 8), np.float32, rng)
    calls = kernel_calls("write_dropped")
    np.testing.assert_array_equal(sk.softmax(x, where=np.ones((4, 1, 8, 1), bool)), sk.softmax(x))
    assert calls == []


def test_a_mask_varying_along_a_slice_keeps_no_whole_slices():
    assert backend.slices_kept(np.ones((2, 1, 8, 8), bool), (2, 3, 8, 8), (3,)) is None
    assert backend.slices_kept(np.ones((8,), bool), (2, 3, 8, 8), (3,)) is None
    assert backend.slices_kept(np.ones((8, 1), bool), (2, 3, 8, 8), (3,)).shape == (2, 3, 8)
    assert backend.slices_kept(np.ones((8, 1), bool), (2, 3, 8, 8), (2, 3)) is None
    assert backend.slices_kept(np.ones((8, 1), bool), (2, 3, 8, 8), (0, 1)).shape == (8, 8)
    assert backend.slices_kept(np.ones((8, 1), bool), (2, 3, 8, 8), (0, 3)).shape == (3, 8)


def test_a_mask_in_the_memory_of_out(rng):
    """``out`` overlapping the mask: the mask is read as it was before the results overwrite it."""
    x = _input((4, 3, 8, 8), np.float32, rng)
    buffer = np.zeros(x.nbytes, np.uint8)
    out = buffer.view(np.float32).reshape(x.shape)
    where = buffer[: 4 * 8].view(bool).reshape(4, 1, 8, 1)
    where[...] = _mask((4, 1, 8, 1), rng)
    expected = sk.softmax(x, where=where.copy())
    np.testing.assert_array_equal(sk.softmax(x, where=where, out=out), expected)


@pytest.mark.parametrize("function", FUNCTIONS, ids=lambda f: f.__name__)
@pytest.mark.parametrize(
    "shape, mask_shape, axis",
    [((3, 0), (3, 1), -1), ((3, 0), (3, 1), (1,)), ((0, 4), (1, 4), 0), ((0, 4), (1, 1), 1), ((2, 0, 3), (2, 1, 3), 1)],
    ids=str,
)
def test_empty(shape, mask_shape, axis, function):
    """Empty slices, or none: as the broadcast mask gives them (empty, or logsumexp -inf)."""
    x = np.zeros(shape, np.float32)
    where = np.zeros(mask_shape, bool)
    full = np.ascontiguousarray(np.broadcast_to(where, shape))
    np.testing.assert_array_equal(function(x, axis=axis, where=where), function(x, axis=axis, where=full), strict=True)
