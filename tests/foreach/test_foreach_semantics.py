"""List semantics of softmaxkit.foreach on NumPy arrays: every rule in the module docstring."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from softmaxkit import foreach

UNARY = foreach.UNARY_OPS
BINARY = foreach.BINARY_OPS

# NumPy's single-array counterpart of each op (the reference for values and dtypes).
NUMPY_UNARY = {
    "abs": np.abs, "acos": np.arccos, "asin": np.arcsin, "atan": np.arctan, "ceil": np.ceil,
    "cos": np.cos, "cosh": np.cosh, "exp": np.exp, "expm1": np.expm1, "floor": np.floor,
    "frac": lambda x: x - np.trunc(x), "log": np.log, "log10": np.log10, "log1p": np.log1p,
    "log2": np.log2, "neg": np.negative, "reciprocal": lambda x: np.divide(1.0, x),
    "round": np.rint, "rsqrt": lambda x: 1 / np.sqrt(x), "sign": np.sign, "sin": np.sin,
    "sinh": np.sinh, "sqrt": np.sqrt, "tan": np.tan, "tanh": np.tanh, "trunc": np.trunc,
}
NUMPY_BINARY = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.true_divide,
    "clamp_min": np.maximum, "clamp_max": np.minimum, "maximum": np.maximum,
    "minimum": np.minimum, "pow": np.power,
}


def mixed_list(rng):
    """Different shapes, dtypes and layouts in one list."""
    return [
        rng.random(7).astype(np.float32) + 0.1,
        rng.random((3, 4)) + 0.1,
        (rng.random((4, 6)).astype(np.float32) + 0.1)[:, ::2],  # strided
        np.asfortranarray(rng.random((3, 5)) + 0.1),
        np.array(0.25),  # 0-d
        np.zeros(0, np.float32),
        (rng.random(9) + 0.1).astype(np.float16),
    ]


# ------------------------------------------------------------------------------------------------
# unary


@pytest.mark.parametrize("name", UNARY)
def test_unary_out_of_place_matches_numpy_per_array(name, rng):
    arrays = mixed_list(rng)
    before = [a.copy() for a in arrays]
    got = getattr(foreach, name)(arrays)
    assert isinstance(got, list) and got is not arrays and len(got) == len(arrays)
    for a, b in zip(arrays, before):  # inputs untouched
        np.testing.assert_array_equal(a, b)
    if name not in NUMPY_UNARY:  # erf, erfc, lgamma, sigmoid: values in test_foreach_accuracy
        for a, g in zip(arrays, got):
            assert g.shape == a.shape and g.dtype == np.exp(a).dtype
        return
    with np.errstate(all="ignore"):
        for a, g in zip(arrays, got):
            want = np.asarray(NUMPY_UNARY[name](a))
            assert g.dtype == want.dtype and g.shape == want.shape
            np.testing.assert_allclose(g, want, rtol=4 * np.finfo(want.dtype).eps, atol=0)


@pytest.mark.parametrize("name", UNARY)
def test_unary_in_place_returns_same_list_and_matches_out_of_place(name, rng):
    arrays = mixed_list(rng)
    expected = getattr(foreach, name)(arrays)
    ids = [id(a) for a in arrays]
    res = getattr(foreach, name + "_")(arrays)
    assert res is arrays
    assert [id(a) for a in arrays] == ids
    for a, e in zip(arrays, expected):
        np.testing.assert_array_equal(a, e.astype(a.dtype))


def test_tuple_in_place_returns_the_same_tuple():
    t = (np.ones(2),)
    assert foreach.exp_(t) is t
    np.testing.assert_allclose(t[0], np.e)


@pytest.mark.parametrize("name", ["log1p", "exp", "sqrt", "sigmoid", "erf"])
def test_in_place_on_int_array_is_type_error_naming_index_and_dtypes(name):
    arrays = [np.ones(3), np.arange(3, dtype=np.int64)]
    before = arrays[0].copy()
    with pytest.raises(TypeError, match=r"arrays\[1\].*int64") as info:
        getattr(foreach, name + "_")(arrays)
    assert "float64" in str(info.value)
    np.testing.assert_array_equal(arrays[0], before)  # checked before anything was written


def test_out_of_place_int_promotes_like_numpy():
    for dt in (np.int8, np.int16, np.int32, np.int64, np.uint8, np.bool_):
        a = np.arange(3).astype(dt)
        (got,) = foreach.log1p([a])
        assert got.dtype == np.log1p(a).dtype
        np.testing.assert_allclose(got, np.log1p(a), rtol=1e-3)
        (s,) = foreach.sigmoid([a])
        assert s.dtype == np.exp(a).dtype


def test_float16_computes_in_float32_and_keeps_dtype():
    a = np.linspace(-3, 3, 11).astype(np.float16)
    (got,) = foreach.log1p([np.abs(a)])
    assert got.dtype == np.float16
    np.testing.assert_array_equal(got, np.log1p(np.abs(a).astype(np.float32)).astype(np.float16))
    b = a.copy()
    foreach.tanh_([b])
    np.testing.assert_array_equal(b, np.tanh(a.astype(np.float32)).astype(np.float16))


def test_complex_goes_to_numpy():
    z = np.array([1 + 1j, -2 + 0.5j])
    np.testing.assert_allclose(foreach.exp([z])[0], np.exp(z))
    with pytest.raises(TypeError, match=r"arrays\[0\].*sigmoid"):
        foreach.sigmoid([z])


def test_same_array_twice_is_updated_twice():
    a = np.array([1.0, 2.0], np.float32)
    want = np.log1p(np.log1p(a))
    foreach.log1p_([a, a])
    np.testing.assert_allclose(a, want, rtol=1e-6)
    b = np.ones(2)
    foreach.add_([b, b], 1.0)
    np.testing.assert_array_equal(b, [3.0, 3.0])


def test_views_of_one_array_each_get_updated():
    base = np.zeros(6)
    foreach.add_([base[:3], base[3:]], [1.0, 2.0])
    np.testing.assert_array_equal(base, [1, 1, 1, 2, 2, 2])


def test_empty_list_gives_empty_result():
    assert foreach.log1p([]) == []
    lst: list = []
    assert foreach.log1p_(lst) is lst
    assert foreach.add([], 1.0) == []
    assert foreach.norm([]) == []
    assert foreach.max([]) == []
    assert foreach.clone([]) == []


def test_non_array_element_is_type_error_with_index():
    with pytest.raises(TypeError, match=r"arrays\[1\] must be a numpy.ndarray, got list"):
        foreach.log1p([np.ones(2), [1.0, 2.0]])
    with pytest.raises(TypeError, match=r"arrays\[0\].*float"):
        foreach.exp_([1.0])


def test_bare_array_instead_of_list_is_type_error():
    with pytest.raises(TypeError, match="single ndarray"):
        foreach.log1p(np.ones(3))


def test_read_only_array_in_place_is_value_error_and_nothing_is_written():
    a = np.ones(3)
    a.flags.writeable = False
    with pytest.raises(ValueError, match=r"arrays\[0\] is read-only"):
        foreach.log1p_([a])
    for op in (foreach.sqrt_, foreach.log1p_):
        first = np.ones(1)
        with pytest.raises(ValueError, match=r"arrays\[1\] is read-only"):
            op([first, a])
        assert first[0] == 1.0  # checked for every array before any is written
    # out of place reads it fine, and does not write it
    np.testing.assert_allclose(foreach.log1p([a])[0], np.log(2.0))


def test_ndarray_subclass_is_accepted():
    class Sub(np.ndarray):
        pass

    m = np.array([[1.0, 2.0]]).view(Sub)
    (got,) = foreach.exp([m])
    assert type(got) is np.ndarray
    np.testing.assert_allclose(got, np.exp([[1.0, 2.0]]))


# ------------------------------------------------------------------------------------------------
# binary


def _operand_forms(rng, arrays):
    return {
        "scalar": 1.5,
        "scalars": [0.5 + i for i in range(len(arrays))],
        "arrays": [rng.random(a.shape) + 0.5 for a in arrays],
        "array": np.array(2.0),
    }


@pytest.mark.parametrize("form", ["scalar", "scalars", "arrays", "array"])
@pytest.mark.parametrize("name", BINARY)
def test_binary_all_operand_forms_match_numpy(name, form, rng):
    arrays = [rng.random(4).astype(np.float32) + 0.5, rng.random((2, 3)) + 0.5]
    other = _operand_forms(rng, arrays)[form]
    before = [a.copy() for a in arrays]
    got = getattr(foreach, name)(arrays, other)
    for i, (a, g) in enumerate(zip(arrays, got)):
        np.testing.assert_array_equal(a, before[i])
        b = other[i] if isinstance(other, list) else other
        want = NUMPY_BINARY[name](a, b)
        assert g.dtype == want.dtype
        np.testing.assert_array_equal(g, want)
    res = getattr(foreach, name + "_")(arrays, other)
    assert res is arrays
    for a, g in zip(arrays, got):
        np.testing.assert_array_equal(a, g.astype(a.dtype))


def test_python_scalars_are_weak_numpy_scalars_are_not():
    a = [np.ones(2, np.float32)]
    assert foreach.mul(a, 2.5)[0].dtype == np.float32
    assert foreach.mul(a, np.float64(2.5))[0].dtype == np.float64
    assert foreach.add([np.ones(2, np.int8)], 3)[0].dtype == np.int8


@pytest.mark.parametrize("name", ["add", "sub"])
def test_alpha_scales_other(name):
    a = [np.array([1.0, 2.0]), np.array([3.0])]
    sign = 1 if name == "add" else -1
    got = getattr(foreach, name)(a, [np.array([1.0, 1.0]), np.array([2.0])], alpha=3)
    np.testing.assert_array_equal(got[0], [1 + sign * 3, 2 + sign * 3])
    np.testing.assert_array_equal(got[1], [3 + sign * 6])
    got = getattr(foreach, name)(a, 2.0, alpha=0.5)
    np.testing.assert_array_equal(got[1], [3 + sign * 1.0])


def test_binary_lengths_must_match():
    with pytest.raises(ValueError, match="other has 3 elements but arrays has 2"):
        foreach.add([np.ones(1), np.ones(1)], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="other has 1 elements but arrays has 2"):
        foreach.mul_([np.ones(1), np.ones(1)], [np.ones(1)])


def test_binary_out_of_place_broadcasts_in_place_cannot_change_shape():
    a = [np.ones(3)]
    assert foreach.add(a, [np.ones((2, 3))])[0].shape == (2, 3)
    with pytest.raises(ValueError, match=r"arrays\[0\].*cannot change an array's shape"):
        foreach.add_(a, [np.ones((2, 3))])
    np.testing.assert_array_equal(a[0], 1.0)


def test_binary_in_place_forbidden_cast_names_index_and_dtypes():
    arrays = [np.ones(2), np.ones(2, np.int32)]
    with pytest.raises(TypeError, match=r"arrays\[1\].*int32"):
        foreach.div_(arrays, 2)
    np.testing.assert_array_equal(arrays[0], 1.0)  # nothing written before the error
    foreach.add_([np.ones(2, np.float32)], np.float64(1))  # same_kind float64 -> float32 is fine


def test_pow_scalar_base_and_list_exponent():
    got = foreach.pow(2.0, [np.array([0.0, 1.0, 3.0]), np.array([-1.0])])
    np.testing.assert_array_equal(got[0], [1, 2, 8])
    np.testing.assert_array_equal(got[1], [0.5])
    assert foreach.pow(2, []) == []
    with pytest.raises(ValueError, match=r"arrays\[0\]"):
        foreach.pow([np.arange(3)], -1)


def test_maximum_minimum_clamp_propagate_nan():
    a = [np.array([np.nan, 1.0, 5.0])]
    np.testing.assert_array_equal(foreach.clamp_min(a, 2.0)[0], [np.nan, 2.0, 5.0])
    np.testing.assert_array_equal(foreach.clamp_max(a, 2.0)[0], [np.nan, 1.0, 2.0])
    np.testing.assert_array_equal(foreach.maximum(a, [np.array([0.0, np.nan, 0.0])])[0], [np.nan, np.nan, 5.0])


def test_other_list_mixing_scalars_and_arrays_is_type_error():
    with pytest.raises(TypeError, match=r"other\[1\] must be a numpy.ndarray"):
        foreach.add([np.ones(1), np.ones(1)], [np.ones(1), 2.0])


# ------------------------------------------------------------------------------------------------
# pointwise


@pytest.mark.parametrize("name,op", [("addcmul", np.multiply), ("addcdiv", np.true_divide)])
def test_addcmul_addcdiv(name, op, rng):
    arrays = [rng.random(3), rng.random((2, 2)).astype(np.float32)]
    t1 = [rng.random(3), rng.random((2, 2)).astype(np.float32)]
    t2 = [rng.random(3) + 0.5, rng.random((2, 2)).astype(np.float32) + 0.5]
    for value in (1, 0.5, [2.0, -1.0]):
        got = getattr(foreach, name)(arrays, t1, t2, value=value)
        for i, a in enumerate(arrays):
            v = value[i] if isinstance(value, list) else value
            want = a + v * op(t1[i], t2[i])
            np.testing.assert_allclose(got[i], want, rtol=1e-6)
            assert got[i].dtype == a.dtype
    copies = [a.copy() for a in arrays]
    assert getattr(foreach, name + "_")(copies, t1, t2, value=0.5) is copies
    want = getattr(foreach, name)(arrays, t1, t2, value=0.5)
    for c, w in zip(copies, want):
        np.testing.assert_array_equal(c, w)
    with pytest.raises(ValueError, match="tensor2 has 1 elements but arrays has 2"):
        getattr(foreach, name)(arrays, t1, t2[:1])
    with pytest.raises(TypeError, match=r"value\[0\] must be a scalar"):
        getattr(foreach, name)(arrays, t1, t2, value=[np.ones(1), 1.0])


def test_lerp_weights_scalar_list_arrays():
    a = [np.array([0.0, 10.0]), np.array([1.0])]
    e = [np.array([1.0, 20.0]), np.array([3.0])]
    np.testing.assert_array_equal(foreach.lerp(a, e, 0.5)[0], [0.5, 15.0])
    got = foreach.lerp(a, e, [0.0, 1.0])
    np.testing.assert_array_equal(got[0], a[0])
    np.testing.assert_array_equal(got[1], e[1])  # exact at w == 1
    got = foreach.lerp(a, e, [np.array([0.25, 0.75]), np.array([1.0])])
    np.testing.assert_array_equal(got[0], [0.25, 17.5])
    c = [x.copy() for x in a]
    assert foreach.lerp_(c, e, 0.25) is c
    np.testing.assert_array_equal(c[1], [1.5])


def test_lerp_exact_at_one_where_naive_formula_is_not():
    a, e = np.array([636.9616873214543]), np.array([0.048017423417903715])
    assert a + 1.0 * (e - a) != e  # the naive formula rounds
    np.testing.assert_array_equal(foreach.lerp([a], [e], 1.0)[0], e)


# ------------------------------------------------------------------------------------------------
# reductions


@pytest.mark.parametrize("ord", [0, 1, 2, np.inf, -np.inf, 3, 0.5])
def test_norm_matches_numpy_vector_norm(ord, rng):
    arrays = [rng.standard_normal(5), rng.standard_normal((3, 4)).astype(np.float32), np.array([0.0, 2.0, 0.0])]
    got = foreach.norm(arrays, ord=ord)
    for a, g in zip(arrays, got):
        want = np.linalg.vector_norm(a, ord=ord)
        assert np.asarray(g).dtype == want.dtype
        np.testing.assert_allclose(g, want, rtol=1e-6)


def test_norm_dtype_and_empty():
    a = [np.full(10, 1e20, np.float32)]
    assert not np.isfinite(foreach.norm(a)[0])  # float32 overflows, like NumPy
    g = foreach.norm(a, dtype=np.float64)[0]
    assert g.dtype == np.float64 and np.isclose(g, 1e20 * np.sqrt(10))
    assert foreach.norm([np.zeros(0)], ord=np.inf)[0] == 0
    with pytest.raises(TypeError, match="ord must be a real number"):
        foreach.norm(a, ord="fro")


def test_max_and_nan_and_empty():
    got = foreach.max([np.array([1.0, 3.0]), np.array([[2, 7]]), np.array([np.nan, 1.0])])
    assert got[0] == 3.0 and got[1] == 7 and np.isnan(got[2])
    with pytest.raises(ValueError, match=r"arrays\[1\] is empty"):
        foreach.max([np.ones(1), np.zeros(0)])


# ------------------------------------------------------------------------------------------------
# utilities


def test_zero_copy_clone():
    arrays = [np.ones(3), np.ones((2, 2), np.int32)]
    clones = foreach.clone(arrays)
    assert all(c is not a and not np.shares_memory(c, a) for c, a in zip(clones, arrays))
    assert foreach.zero_(arrays) is arrays
    assert all((a == 0).all() for a in arrays)
    assert foreach.copy_(arrays, clones) is arrays
    np.testing.assert_array_equal(arrays[1], 1)
    with pytest.raises(TypeError, match=r"arrays\[1\].*int32"):
        foreach.copy_(arrays, [np.ones(3), np.full((2, 2), 0.5)])
    with pytest.raises(ValueError, match="src has 1 elements but arrays has 2"):
        foreach.copy_(arrays, [np.ones(3)])


# ------------------------------------------------------------------------------------------------
# properties


@given(
    st.lists(
        hnp.arrays(
            dtype=st.sampled_from([np.float32, np.float64]),
            shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5),
            elements=st.floats(-1e6, 1e6, width=32),
        ),
        max_size=6,
    ),
    st.sampled_from(["log1p", "exp", "expm1", "tanh", "sigmoid", "sqrt", "abs"]),
)
def test_property_foreach_equals_per_array_call(arrays, name):
    """A list op equals the op applied to each array alone (one-element lists)."""
    got = getattr(foreach, name)(arrays)
    for a, g in zip(arrays, got):
        np.testing.assert_array_equal(g, getattr(foreach, name)([a])[0])
    copies = [a.copy() for a in arrays]
    getattr(foreach, name + "_")(copies)
    for c, g in zip(copies, got):
        np.testing.assert_array_equal(c, g)


def test_docs_page_examples_run():
    """The doctest in docs/foreach.md (the seed's example done right) runs and passes."""
    import doctest
    from pathlib import Path

    page = Path(__file__).resolve().parents[2] / "docs" / "foreach.md"
    result = doctest.testfile(str(page), module_relative=False, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 3 and result.failed == 0
