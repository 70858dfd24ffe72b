"""Invalid arguments raise the documented exception type with a message that names the culprit."""

from __future__ import annotations

import re

import numpy as np
import pytest
from numpy.exceptions import AxisError

import softmaxkit as sk

SOFTMAX_LIKE = ["softmax", "log_softmax", "softmin"]
ALL_FORWARD = [*SOFTMAX_LIKE, "logsumexp"]


def _f(name):
    return getattr(sk, name)


@pytest.fixture
def x():
    return np.arange(6.0).reshape(2, 3)


# --------------------------------------------------------------------------------------------
# axis
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", [*ALL_FORWARD, "softmax_backward", "log_softmax_backward"])
@pytest.mark.parametrize("axis", [2, -3, 5, (0, 2), (0, -3), 2**62, -(2**62), (0, 2**62)],
                         ids=repr)
def test_out_of_range_axis_raises_axis_error(name, axis, x):
    f = _f(name)
    with pytest.raises(AxisError) as info:
        if name.endswith("backward"):
            f(x, x, axis=axis)
        else:
            f(x, axis=axis)
    msg = str(info.value)
    bad = axis if isinstance(axis, int) else [a for a in axis if a not in (0, -1, 1, -2)][0]
    assert str(bad) in msg, msg
    assert "2" in msg and "dimension" in msg, msg  # names the ndim


@pytest.mark.parametrize("name", ALL_FORWARD)
@pytest.mark.parametrize("axis", [(0, 0), (1, -1), (0, 1, 0)], ids=repr)
def test_duplicate_axes_raise_axis_error(name, axis, x):
    with pytest.raises(AxisError, match="repeated|duplicate"):
        _f(name)(x, axis=axis)


@pytest.mark.parametrize("name", ALL_FORWARD)
@pytest.mark.parametrize("axis", [1, -2, 3, 2**62], ids=repr)
def test_zero_d_rejects_other_axes(name, axis):
    with pytest.raises(AxisError):
        _f(name)(np.array(1.0), axis=axis)


@pytest.mark.parametrize("name", [*ALL_FORWARD, "softmax_backward", "log_softmax_backward"])
@pytest.mark.parametrize("axis", [1.0, 0.5, "0", "last", (0.0, 1), np.float64(1)],
                         ids=repr)
def test_non_integer_axis_raises_type_error(name, axis, x):
    f = _f(name)
    with pytest.raises(TypeError):
        if name.endswith("backward"):
            f(x, x, axis=axis)
        else:
            f(x, axis=axis)


def test_axis_error_message_names_axis_and_ndim(x):
    with pytest.raises(AxisError, match=r"axis 3 is out of bounds for array of dimension 2"):
        sk.softmax(x, axis=3)


# --------------------------------------------------------------------------------------------
# dtypes
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", SOFTMAX_LIKE)
@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
def test_complex_is_rejected_outside_logsumexp(name, dtype):
    with pytest.raises(TypeError, match="complex"):
        _f(name)(np.array([1 + 1j, 2], dtype=dtype))


BAD_INPUTS = {
    "object": np.array([1.0, 2.0], dtype=object),
    "str": np.array(["a", "b"]),
    "bytes": np.array([b"a", b"b"]),
    "datetime64": np.array(["2020-01-01", "2021-01-01"], dtype="datetime64[D]"),
    "timedelta64": np.array([1, 2], dtype="timedelta64[s]"),
    "longdouble": np.array([1.0, 2.0], dtype=np.longdouble),
    "void": np.zeros(2, dtype=[("a", "f8")]),
}


def _names_of(dt):
    """Ways an error message may spell a dtype; it must use one of them."""
    dt = np.dtype(dt)
    return {str(dt), dt.name, repr(dt), dt.type.__name__, dt.str}


@pytest.mark.parametrize("name", ALL_FORWARD)
@pytest.mark.parametrize("kind", sorted(BAD_INPUTS))
def test_unsupported_dtype_raises_type_error_naming_it(name, kind):
    a = BAD_INPUTS[kind]
    if kind == "longdouble" and np.dtype(np.longdouble) == np.float64:
        a = np.array([1.0, 2.0], dtype=np.float64)
        np.testing.assert_array_equal(np.asarray(_f(name)(a)), np.asarray(_f(name)(a)))
        return  # longdouble is float64 on this platform, so it is supported
    with pytest.raises(TypeError) as info:
        _f(name)(a)
    msg = str(info.value)
    assert any(n in msg for n in _names_of(a.dtype)), (msg, _names_of(a.dtype))


@pytest.mark.parametrize("name", ALL_FORWARD)
@pytest.mark.parametrize("dtype", [np.int32, np.int64, bool, np.uint8, object, "U3", "M8[s]"],
                         ids=str)
def test_non_float_dtype_argument_raises_type_error(name, dtype, x):
    with pytest.raises(TypeError):
        _f(name)(x, dtype=dtype)


@pytest.mark.parametrize("name", SOFTMAX_LIKE)
def test_complex_dtype_argument_rejected_outside_logsumexp(name, x):
    with pytest.raises(TypeError, match="complex"):
        _f(name)(x, dtype=np.complex128)


def test_string_list_input_raises_type_error():
    with pytest.raises(TypeError):
        sk.softmax(["a", "b"])


# --------------------------------------------------------------------------------------------
# temperature
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", SOFTMAX_LIKE)
@pytest.mark.parametrize("temperature", [0, 0.0, -0.0, -1.0, -1e-300, np.nan, np.inf, -np.inf,
                                         np.float32(0), np.array(-2.0), np.array([np.nan])],
                         ids=repr)
def test_bad_temperature_value_raises_value_error(name, temperature, x):
    with pytest.raises(ValueError, match="temperature"):
        _f(name)(x, temperature=temperature)


@pytest.mark.parametrize("name", SOFTMAX_LIKE)
@pytest.mark.parametrize("temperature", ["1.0", "hot", [1.0], [1.0, 2.0], np.array([1.0, 2.0]),
                                         np.ones((2, 2)), np.array([]), None, object()],
                         ids=["str-number", "str", "list1", "list2", "array2", "array2x2",
                              "array0", "None", "object"])
def test_non_number_temperature_raises_type_error(name, temperature, x):
    with pytest.raises(TypeError, match="temperature"):
        _f(name)(x, temperature=temperature)


@pytest.mark.parametrize("name", SOFTMAX_LIKE)
def test_options_are_keyword_only(name, x):
    with pytest.raises(TypeError):
        _f(name)(x, -1, 2.0)


def test_logsumexp_options_are_keyword_only(x):
    with pytest.raises(TypeError):
        sk.logsumexp(x, None, np.ones_like(x))


# --------------------------------------------------------------------------------------------
# where
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ALL_FORWARD)
@pytest.mark.parametrize("where", [np.ones((2, 3)), np.ones((2, 3), np.int64), [1, 0, 1],
                                   np.array([0.5, 1.0, 0.0])], ids=["float", "int", "intlist",
                                                                   "float1d"])
def test_non_bool_where_raises_type_error(name, where, x):
    with pytest.raises(TypeError, match="where"):
        _f(name)(x, where=where)


@pytest.mark.parametrize("name", ALL_FORWARD)
@pytest.mark.parametrize("shape", [(4,), (3, 2), (2, 3, 2), (1, 4)], ids=str)
def test_non_broadcastable_where_raises_value_error_naming_shapes(name, shape, x):
    with pytest.raises(ValueError) as info:
        _f(name)(x, where=np.ones(shape, bool))
    msg = str(info.value)
    assert "where" in msg, msg
    assert str(shape) in msg and "(2, 3)" in msg, msg


def test_where_may_not_grow_the_result(x):
    # a mask of more dimensions than x would broadcast x, changing the result's shape
    with pytest.raises(ValueError):
        sk.softmax(x, where=np.ones((4, 2, 3), bool))


# --------------------------------------------------------------------------------------------
# out=
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", SOFTMAX_LIKE)
@pytest.mark.parametrize("shape", [(3, 2), (6,), (2, 3, 1), (1, 2, 3), ()], ids=str)
def test_out_of_wrong_shape_raises_value_error(name, shape, x):
    with pytest.raises(ValueError, match="out"):
        _f(name)(x, out=np.zeros(shape))


def test_logsumexp_out_of_wrong_shape_raises_value_error(x):
    with pytest.raises(ValueError, match="out"):
        sk.logsumexp(x, axis=1, out=np.zeros(3))
    with pytest.raises(ValueError, match="out"):
        sk.logsumexp(x, axis=1, out=np.zeros((2, 1)))  # keepdims shape without keepdims
    with pytest.raises(ValueError, match="out"):
        sk.logsumexp(x, axis=1, keepdims=True, out=np.zeros(2))


@pytest.mark.parametrize("name", ALL_FORWARD)
def test_read_only_out_raises_value_error(name, x):
    shape = () if name == "logsumexp" else x.shape
    out = np.zeros(shape)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="out|read-only|writeable"):
        _f(name)(x, out=out)
    assert np.all(out == 0)


def test_read_only_x_as_out_raises_value_error(x):
    x.flags.writeable = False
    with pytest.raises(ValueError):
        sk.softmax(x, out=x)


@pytest.mark.parametrize("name", ALL_FORWARD)
@pytest.mark.parametrize("dtype", [np.int64, np.int8, bool, np.uint16], ids=str)
def test_out_of_uncastable_dtype_raises_type_error(name, dtype, x):
    shape = () if name == "logsumexp" else x.shape
    with pytest.raises(TypeError, match="out|cast"):
        _f(name)(x, out=np.zeros(shape, dtype))


def test_complex_logsumexp_into_real_out_raises_type_error():
    with pytest.raises(TypeError):
        sk.logsumexp(np.array([1j, 2.0]), out=np.zeros(()))


@pytest.mark.parametrize("name", ALL_FORWARD)
@pytest.mark.parametrize("out", [[0.0] * 6, (0.0,), 0.0, "out", memoryview(bytearray(48))],
                         ids=["list", "tuple", "float", "str", "memoryview"])
def test_out_must_be_an_ndarray(name, out, x):
    with pytest.raises(TypeError, match="out"):
        _f(name)(x, out=out)


# --------------------------------------------------------------------------------------------
# logsumexp b
# --------------------------------------------------------------------------------------------

# Shapes that broadcast with a in neither direction. (A b that would *enlarge* a, such as
# (4, 2, 3) for a of shape (2, 3), is left untested: the policy says "broadcastable to a", while
# SciPy broadcasts a and b together.)
@pytest.mark.parametrize("shape", [(2,), (2, 2), (3, 3)], ids=str)
def test_logsumexp_b_not_broadcastable_raises_value_error(shape, x):
    with pytest.raises(ValueError):
        sk.logsumexp(x, b=np.ones(shape))


def test_logsumexp_b_of_unsupported_dtype_raises_type_error(x):
    with pytest.raises(TypeError):
        sk.logsumexp(x, b=np.array(["a", "b", "c"]))


# --------------------------------------------------------------------------------------------
# backward
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["softmax_backward", "log_softmax_backward"])
def test_backward_shape_mismatch_raises_value_error(name, x):
    with pytest.raises(ValueError):
        _f(name)(np.ones((2, 4)), x)


@pytest.mark.parametrize("name", ["softmax_backward", "log_softmax_backward"])
def test_backward_rejects_unsupported_dtypes(name, x):
    with pytest.raises(TypeError):
        _f(name)(np.array([["a", "b", "c"]] * 2), x)
    with pytest.raises(TypeError):
        _f(name)(x.astype(complex), x)


# --------------------------------------------------------------------------------------------
# threads
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [0, -1])
def test_set_num_threads_rejects_non_positive(n):
    before = sk.get_num_threads()
    with pytest.raises(ValueError):
        sk.set_num_threads(n)
    assert sk.get_num_threads() == before


@pytest.mark.parametrize("n", [1.5, "2", None])
def test_set_num_threads_rejects_non_integers(n):
    # the policy does not say which of the two; it must not silently truncate 1.5 to 1
    before = sk.get_num_threads()
    with pytest.raises((TypeError, ValueError)):
        sk.set_num_threads(n)
    assert sk.get_num_threads() == before


def test_unknown_attribute_raises_attribute_error():
    with pytest.raises(AttributeError, match=re.escape("no_such_function")):
        sk.no_such_function  # noqa: B018
