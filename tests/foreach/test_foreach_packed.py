"""PackedArrays: list behaviour, and every op on a packed list equals the op on the plain list."""

from __future__ import annotations

import numpy as np
import pytest

from softmaxkit import foreach
from softmaxkit.foreach import PackedArrays


def arrays_for_packing(rng):
    return [
        rng.random(5).astype(np.float32) + 0.1,
        rng.random((2, 3)).astype(np.float32) + 0.1,
        np.zeros(0, np.float32),
        rng.random(4) + 0.1,  # a second dtype: a second buffer
        np.array(0.5, np.float32),
    ]


def test_pack_is_a_list_of_views_into_one_buffer_per_dtype(rng):
    src = arrays_for_packing(rng)
    p = foreach.pack(src)
    assert isinstance(p, PackedArrays) and len(p) == len(src)
    assert set(p.buffers) == {np.dtype(np.float32), np.dtype(np.float64)}
    assert p.buffers[np.dtype(np.float32)].size == 5 + 6 + 0 + 1
    for a, v in zip(src, p):
        assert v.shape == a.shape and v.dtype == a.dtype and not np.shares_memory(a, v)
        np.testing.assert_array_equal(v, a)
        assert np.shares_memory(v, p.buffers[v.dtype]) or v.size == 0
    assert p[1:3][0] is p[1]
    assert "PackedArrays(5 arrays" in repr(p)
    out = p.unpack()
    assert all(not np.shares_memory(o, p.buffers[o.dtype]) for o in out)
    p[0][0] = 42.0
    assert p.buffers[np.dtype(np.float32)][0] == 42.0  # views write through
    assert out[0][0] != 42.0


def test_pack_dtype_converts_all():
    p = foreach.pack([np.ones(2), np.ones(3, np.float32)], dtype=np.float32)
    assert list(p.buffers) == [np.dtype(np.float32)]
    with pytest.raises(TypeError):
        foreach.pack([np.ones(2)], dtype=np.int32)


@pytest.mark.parametrize("name", foreach.UNARY_OPS)
def test_unary_packed_equals_list(name, rng):
    src = arrays_for_packing(rng)
    p = foreach.pack(src)
    want = getattr(foreach, name)(src)
    got = getattr(foreach, name)(p)
    assert isinstance(got, PackedArrays)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_array_equal(g, w)
    np.testing.assert_array_equal(p[0], src[0])  # out of place did not write the input
    assert getattr(foreach, name + "_")(p) is p
    for g, w in zip(p, want):
        np.testing.assert_array_equal(g, w.astype(g.dtype))


@pytest.mark.parametrize("form", ["scalar", "scalars", "packed", "arrays", "array"])
@pytest.mark.parametrize("name", foreach.BINARY_OPS)
def test_binary_packed_equals_list(name, form, rng):
    src = arrays_for_packing(rng)
    p = foreach.pack(src)
    other = {
        "scalar": 1.5,
        "scalars": [0.5 + i for i in range(len(src))],
        "packed": foreach.pack([np.asarray(rng.random(a.shape) + 0.5, a.dtype) for a in src]),
        "arrays": [np.asarray(rng.random(a.shape) + 0.5, a.dtype) for a in src],
        "array": np.array(2.0, np.float32),
    }[form]
    other_list = list(other) if isinstance(other, PackedArrays) else other
    want = getattr(foreach, name)(src, other_list)
    got = getattr(foreach, name)(p, other)
    assert isinstance(got, PackedArrays)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype
        np.testing.assert_array_equal(g, w)
    assert getattr(foreach, name + "_")(p, other) is p
    for g, w in zip(p, want):
        np.testing.assert_array_equal(g, w.astype(g.dtype))


def test_alpha_on_packed(rng):
    src = arrays_for_packing(rng)
    p = foreach.pack(src)
    foreach.add_(p, [2.0] * len(src), alpha=-0.5)
    for g, a in zip(p, src):
        np.testing.assert_array_equal(g, a - 1.0)


def test_packed_in_place_cast_error_and_read_only():
    p = foreach.pack([np.ones(2), np.arange(3)])
    with pytest.raises(TypeError, match=r"arrays\[1\].*int64"):
        foreach.log1p_(p)
    with pytest.raises(TypeError, match=r"arrays\[1\].*int64"):
        foreach.div_(p, 2.0)


@pytest.mark.parametrize("ord", [0, 1, 2, np.inf, -np.inf, 3])
def test_norm_and_max_packed(ord, rng):
    src = [a for a in arrays_for_packing(rng) if a.size] + [np.zeros(0)]
    p = foreach.pack(src)
    want = foreach.norm(src, ord=ord)
    got = foreach.norm(p, ord=ord)
    for g, w in zip(got, want):
        assert np.asarray(g).dtype == np.asarray(w).dtype
        np.testing.assert_allclose(g, w, rtol=1e-6)
    src = [a for a in src if a.size]
    p = foreach.pack(src)
    assert [float(x) for x in foreach.max(p)] == [float(x) for x in foreach.max(src)]
    with pytest.raises(ValueError, match=r"arrays\[1\] is empty"):
        foreach.max(foreach.pack([np.ones(1), np.zeros(0)]))


def test_pointwise_and_utilities_on_packed(rng):
    src = arrays_for_packing(rng)
    p = foreach.pack(src)
    t = [np.full(a.shape, 2.0, a.dtype) for a in src]
    got = foreach.addcmul(p, t, t, value=0.5)
    assert isinstance(got, PackedArrays)
    for g, a in zip(got, src):
        np.testing.assert_allclose(g, a + 2.0)
    got = foreach.lerp(p, t, 1.0)
    for g, x in zip(got, t):
        np.testing.assert_array_equal(g, x)
    c = foreach.clone(p)
    assert isinstance(c, PackedArrays) and c.same_layout(p)
    assert not np.shares_memory(c.buffers[np.dtype(np.float32)], p.buffers[np.dtype(np.float32)])
    assert foreach.zero_(p) is p
    assert all((v == 0).all() for v in p)
    assert foreach.copy_(p, c) is p
    for v, a in zip(p, src):
        np.testing.assert_array_equal(v, a)
    foreach.copy_(p, t)  # a plain list as the source
    for v, x in zip(p, t):
        np.testing.assert_array_equal(v, x)


def test_large_packed_list_takes_parallel_kernel_and_matches(rng):
    src = [rng.random(100).astype(np.float32) for _ in range(2000)]
    p = foreach.pack(src)
    foreach.log1p_(p)
    want = foreach.log1p(src)
    for g, w in zip(p, want):
        np.testing.assert_array_equal(g, w)
