"""Elementwise operations over lists of arrays: every ``torch._foreach_*`` op, for NumPy and torch.

Each operation comes in two forms: ``name_(arrays, ...)`` works in place and returns the same list
object; ``name(arrays, ...)`` returns a new list and never writes into its inputs.

Operations
----------
unary
    abs, acos, asin, atan, ceil, cos, cosh, erf, erfc, exp, expm1, floor, frac, lgamma, log,
    log10, log1p, log2, neg, reciprocal, round, rsqrt, sigmoid, sign, sin, sinh, sqrt, tan, tanh,
    trunc.
binary (``other``: a scalar, a list of scalars, a list of arrays, or one array)
    add and sub (with ``alpha``), mul, div, clamp_min, clamp_max, maximum, minimum, pow (also a
    scalar base over a list: ``pow(2.0, arrays)``).
pointwise
    addcmul, addcdiv (``value=`` a scalar or a list of scalars), lerp (weight: a scalar, a list of
    scalars or a list of arrays).
reductions
    norm (``ord`` 0, 1, 2, inf, -inf or any p; ``dtype=``), max: one NumPy scalar per array.
utilities
    zero_, copy_, clone.
packed lists
    :func:`pack` returns a :class:`PackedArrays` whose arrays are views into one buffer per dtype;
    every op on it runs once per buffer instead of once per array.

Semantics
---------
- Lists may mix shapes and dtypes.  Out of place, broadcasting and type promotion are NumPy's for
  the same single-array operation (``log1p(int array)`` is float64, ``add(float32 array, 2.5)`` is
  float32).  In place, an op may neither change an array's shape nor need a cast that NumPy's
  ``same_kind`` rule forbids: ``log1p_`` on an integer array is a ``TypeError`` naming the list
  index and both dtypes.  Every check an in-place op makes (types, dtypes, shapes, read-only
  arrays) is made for every array before any array is written: a call that raises changes nothing.
- An empty list gives an empty result (torch raises instead).  Lists of different lengths raise
  ``ValueError`` with both lengths; a non-array element raises ``TypeError`` with its index.
- The same array listed twice in an in-place op is updated twice, as in torch:
  ``log1p_([a, a])`` leaves ``log1p(log1p(a))`` in ``a``.  Lists whose arrays share memory are
  processed in list order on one thread.
- torch tensors go to torch's own ``torch._foreach_*`` op (same results as calling it); a list
  mixing NumPy arrays and tensors is a ``TypeError``.  torch is never imported by this module, and
  numba only by the first op that runs a kernel.
- ``frac`` is ``x - trunc(x)`` (torch's definition; NumPy has none), ``reciprocal`` is true
  division ``1 / x`` (NumPy's ``np.reciprocal`` truncates integers), ``round`` rounds half to even.
- No floating-point ``RuntimeWarning`` is raised: NaN and inf results are values, as in torch
  (NumPy itself would warn for ``log(-1)``).
- Accuracy: log1p, log, log2, log10, exp, expm1, sigmoid and tanh run on vectorised float32/float64
  kernels within 4 ulp of a float64 (for float32) or long double (for float64) reference, with
  NumPy's NaN/inf results; erf, erfc and lgamma use the C library; the other ops are NumPy's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import numpy as np

from . import _ops, _packed, _torch
from ._packed import PackedArrays

__all__ = [
    "PackedArrays",
    "pack",
    "UNARY_OPS",
    "BINARY_OPS",
    "addcmul",
    "addcmul_",
    "addcdiv",
    "addcdiv_",
    "lerp",
    "lerp_",
    "norm",
    "max",
    "zero_",
    "copy_",
    "clone",
]

L = TypeVar("L")

#: Names of the unary ops (each has ``name`` and ``name_``).
UNARY_OPS: tuple[str, ...] = tuple(_ops.UNARY)
#: Names of the binary ops (each has ``name`` and ``name_``).
BINARY_OPS: tuple[str, ...] = tuple(_ops.BINARY)


def pack(arrays: Sequence[np.ndarray], /, dtype: Any = None) -> PackedArrays:
    """Copy a list of arrays into one contiguous buffer per dtype and return views into it.

    Parameters
    ----------
    arrays : list of numpy.ndarray
        The arrays to pack (any shapes, any dtypes; they are copied).
    dtype : data-type, optional
        Convert every array to this dtype (under ``same_kind`` casting) so that all of them share
        one buffer.

    Returns
    -------
    PackedArrays
        A sequence of views, one per input array, in the same order and with the same shapes.

    See Also
    --------
    PackedArrays.unpack : independent copies of the arrays.

    Notes
    -----
    A foreach op on a plain list costs Python about a microsecond per array; on a packed list it
    is one kernel call per buffer (a parallel one when the buffer is large), which is how
    optimizers keep their parameters.  Arrays are laid out back to back with no padding, so an
    elementwise op over the buffer is exactly the op over every array.

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxkit import foreach
    >>> params = foreach.pack([np.full(3, 1.0, np.float32), np.full((2, 2), 2.0, np.float32)])
    >>> foreach.log1p_(params) is params
    True
    >>> params[0]
    array([0.6931472, 0.6931472, 0.6931472], dtype=float32)
    >>> params.buffers[np.dtype(np.float32)].shape
    (7,)
    """
    return _packed.pack(arrays, dtype=dtype)


# ------------------------------------------------------------------------------------------------
# dispatch helpers


def _empty_like_result(arrays: Any) -> list[Any]:
    return []


def _is_torch_list(seq: Sequence[Any]) -> bool:
    return bool(seq) and _torch.is_tensor(seq[0])


def _unary_impl(name: str, arrays: Any, inplace: bool) -> Any:
    spec = _ops.UNARY[name]
    if isinstance(arrays, PackedArrays):
        if inplace and _packed.unary_inplace_kernel(spec, arrays):
            return arrays
        with np.errstate(all="ignore"):
            if inplace:
                _packed.unary_inplace(spec, arrays)
                return arrays
            return _packed.unary(spec, arrays)
    seq = _ops.check_list(arrays)
    if not seq:
        return arrays if inplace else []
    if _is_torch_list(seq):
        _torch.check_tensors(seq, "arrays")
        res = _torch.unary(name, list(seq), inplace)
        return arrays if inplace else res
    if inplace and _ops.unary_inplace_listed(spec, seq):
        return arrays
    seq = _ops.check_numpy_arrays(seq)
    with np.errstate(all="ignore"):
        if inplace:
            _ops.unary_inplace(spec, seq)
            return arrays
        return _ops.unary(spec, seq)


def _binary_impl(name: str, arrays: Any, other: Any, alpha: Any, inplace: bool) -> Any:
    ufunc = _ops.BINARY[name]
    if isinstance(arrays, PackedArrays):
        if isinstance(other, PackedArrays):
            _ops.check_same_length(arrays, other, "other")
            op = _ops.Operand("arrays", other, True)
        else:
            op = _ops.normalise_operand(arrays, other, "other")
        forms = _packed.buffer_form(arrays, op)
        if forms is not None:
            with np.errstate(all="ignore"):
                if inplace:
                    _packed.binary_inplace(name, arrays, forms, alpha)
                    return arrays
                out = {dt: np.asarray(ufunc(arrays.buffers[dt], _ops._scaled(b, alpha))) for dt, (b,) in forms.items()}
                return PackedArrays._from_buffers(arrays, out)
        # No buffer form (e.g. a plain list of arrays as ``other``): per array, on the views.
        res = _binary_impl(name, list(arrays), list(other) if isinstance(other, PackedArrays) else other, alpha, inplace)
        return arrays if inplace else pack(res)
    seq = _ops.check_list(arrays)
    if isinstance(other, PackedArrays):
        other = list(other)
    if not seq:
        if isinstance(other, (list, tuple)):
            _ops.check_same_length(seq, other, "other")
        return arrays if inplace else []
    if _is_torch_list(seq):
        _torch.check_tensors(seq, "arrays")
        if isinstance(other, (list, tuple)):
            _ops.check_same_length(seq, other, "other")
        res = _torch.binary(name, list(seq), _torch.operand(seq, other, "other"), alpha, inplace)
        return arrays if inplace else res
    seq = _ops.check_numpy_arrays(seq)
    op = _ops.normalise_operand(seq, other, "other")
    with np.errstate(all="ignore"):
        res = _ops.binary(name, seq, op, alpha=alpha, inplace=inplace)
    return arrays if inplace else res


_UNARY_DOC = """{summary}, for every array in a list{where}.

Parameters
----------
arrays : list of numpy.ndarray, PackedArrays, or list of torch.Tensor
    The arrays{inplace_note}.

Returns
-------
{returns}

See Also
--------
{see_also}

Notes
-----
{notes}NumPy's dtype rules for the same single-array op decide the result dtype; see the
``softmaxkit.foreach`` module docstring for the list semantics (empty lists, errors, torch).
"""

_UNARY_SUMMARY = {
    "abs": "Absolute value",
    "acos": "Inverse cosine",
    "asin": "Inverse sine",
    "atan": "Inverse tangent",
    "ceil": "Ceiling",
    "cos": "Cosine",
    "cosh": "Hyperbolic cosine",
    "erf": "Error function",
    "erfc": "Complementary error function",
    "exp": "Exponential",
    "expm1": "``exp(x) - 1``, accurate near 0",
    "floor": "Floor",
    "frac": "Fractional part ``x - trunc(x)``",
    "lgamma": "Log of the absolute value of the gamma function",
    "log": "Natural logarithm",
    "log10": "Base-10 logarithm",
    "log1p": "``log(1 + x)``, accurate near 0",
    "log2": "Base-2 logarithm",
    "neg": "Negation",
    "reciprocal": "Reciprocal ``1 / x`` (true division)",
    "round": "Round to the nearest integer, half to even",
    "rsqrt": "Reciprocal square root ``1 / sqrt(x)``",
    "sigmoid": "Logistic sigmoid ``1 / (1 + exp(-x))``",
    "sign": "Sign (-1, 0, +1; NaN for NaN)",
    "sin": "Sine",
    "sinh": "Hyperbolic sine",
    "sqrt": "Square root",
    "tan": "Tangent",
    "tanh": "Hyperbolic tangent",
    "trunc": "Round toward zero",
}


def _unary_notes(name: str) -> str:
    spec = _ops.UNARY[name]
    if spec.kernel and spec.ufunc is not None:
        return (
            "float32 and float64 arrays run on softmaxkit's vectorised kernel (within 4 ulp); other\n"
            f"dtypes use ``numpy.{spec.ufunc.__name__}``. "
        )
    if spec.kernel:
        return "float32 and float64 arrays run on softmaxkit's kernel (float16 computes in float32).\n"
    if spec.ufunc is not None:
        return f"Each array goes to ``numpy.{spec.ufunc.__name__}`` (already SIMD in NumPy). "
    return ""


def _make_unary(name: str, inplace: bool) -> Any:
    if inplace:

        def fn(arrays: L, /) -> L:
            return _unary_impl(name, arrays, True)

    else:

        def fn(arrays: Any, /) -> Any:  # type: ignore[misc]
            return _unary_impl(name, arrays, False)

    fn.__name__ = fn.__qualname__ = name + ("_" if inplace else "")
    fn.__module__ = __name__
    other = name if inplace else name + "_"
    fn.__doc__ = _UNARY_DOC.format(
        summary=_UNARY_SUMMARY[name],
        where=", in place" if inplace else "",
        inplace_note=" (overwritten)" if inplace else " (not modified)",
        returns=(
            "list\n    ``arrays`` itself (the same object), after every array was updated."
            if inplace
            else "list of numpy.ndarray (or PackedArrays, or list of torch.Tensor)\n    One new array per input."
        ),
        see_also=f"{other} : the {'out-of-place' if inplace else 'in-place'} form.",
        notes=_unary_notes(name),
    )
    return fn


_BINARY_SUMMARY = {
    "add": "``a + alpha * other``",
    "sub": "``a - alpha * other``",
    "mul": "``a * other``",
    "div": "``a / other`` (true division)",
    "clamp_min": "``maximum(a, other)``: clamp from below (NaN propagates)",
    "clamp_max": "``minimum(a, other)``: clamp from above (NaN propagates)",
    "maximum": "Elementwise maximum (NaN propagates)",
    "minimum": "Elementwise minimum (NaN propagates)",
    "pow": "``a ** other``",
}

_BINARY_DOC = """{summary}, for every array ``a`` in a list{where}.

Parameters
----------
arrays : list of numpy.ndarray, PackedArrays, or list of torch.Tensor
    The arrays{inplace_note}.{pow_note}
other : scalar, list of scalars, list of arrays, or numpy.ndarray
    A scalar is used for every array; a list gives one scalar or array per array (same length
    as ``arrays``); one array is broadcast against every array.{alpha_doc}

Returns
-------
{returns}

See Also
--------
{see_also}

Notes
-----
Each array goes to ``numpy.{ufunc}``: broadcasting and type promotion are NumPy's (Python
scalars are weak, NEP 50: ``float32 + 2.5`` stays float32).  In place, the result may not change an
array's shape or need a cast that ``same_kind`` forbids.
"""


def _make_binary(name: str, inplace: bool) -> Any:
    has_alpha = name in ("add", "sub")
    if has_alpha:
        if inplace:

            def fn(arrays: L, other: Any, /, *, alpha: Any = None) -> L:
                return _binary_impl(name, arrays, other, alpha, True)

        else:

            def fn(arrays: Any, other: Any, /, *, alpha: Any = None) -> Any:  # type: ignore[misc]
                return _binary_impl(name, arrays, other, alpha, False)

    elif name == "pow" and not inplace:

        def fn(arrays: Any, other: Any, /) -> Any:  # type: ignore[misc]
            if _ops.is_scalar(arrays):  # scalar base over a list of exponents
                base, exps = arrays, other
                if isinstance(exps, PackedArrays):
                    return PackedArrays._from_buffers(
                        exps, {dt: np.asarray(np.power(base, b)) for dt, b in exps.buffers.items()}
                    )
                seq = _ops.check_list(exps, "other")
                if not seq:
                    return []
                if _is_torch_list(seq):
                    _torch.check_tensors(seq, "other")
                    return list(_torch.foreach("pow")(base, list(seq)))
                with np.errstate(all="ignore"):
                    return _ops.pow_scalar_base(base, _ops.check_numpy_arrays(seq, "other"))
            return _binary_impl(name, arrays, other, None, False)

    else:
        if inplace:

            def fn(arrays: L, other: Any, /) -> L:
                return _binary_impl(name, arrays, other, None, True)

        else:

            def fn(arrays: Any, other: Any, /) -> Any:  # type: ignore[misc]
                return _binary_impl(name, arrays, other, None, False)

    fn.__name__ = fn.__qualname__ = name + ("_" if inplace else "")
    fn.__module__ = __name__
    counterpart = name if inplace else name + "_"
    fn.__doc__ = _BINARY_DOC.format(
        summary=_BINARY_SUMMARY[name],
        where=", in place" if inplace else "",
        inplace_note=" (overwritten)" if inplace else " (not modified)",
        pow_note=(
            "\n    ``pow(base, arrays)`` with a scalar ``base`` computes ``base ** a`` for every array."
            if name == "pow" and not inplace
            else ""
        ),
        alpha_doc=(
            "\nalpha : scalar, optional\n    Multiplies ``other`` first (torch's ``alpha``); default 1." if has_alpha else ""
        ),
        returns=(
            "list\n    ``arrays`` itself (the same object), after every array was updated."
            if inplace
            else "list of numpy.ndarray (or PackedArrays, or list of torch.Tensor)\n    One new array per input."
        ),
        see_also=f"{counterpart} : the {'out-of-place' if inplace else 'in-place'} form.",
        ufunc=_ops.BINARY[name].__name__,
    )
    return fn


for _name in _ops.UNARY:
    globals()[_name] = _make_unary(_name, False)
    globals()[_name + "_"] = _make_unary(_name, True)
    __all__ += [_name, _name + "_"]
for _name in _ops.BINARY:
    globals()[_name] = _make_binary(_name, False)
    globals()[_name + "_"] = _make_binary(_name, True)
    __all__ += [_name, _name + "_"]
del _name


# ------------------------------------------------------------------------------------------------
# pointwise


def _tensor_lists(arrays: Sequence[Any], *others: tuple[str, Any]) -> list[Sequence[np.ndarray]]:
    out = []
    for argname, other in others:
        if isinstance(other, PackedArrays):
            other = list(other)
        seq = _ops.check_list(other, argname)
        _ops.check_same_length(arrays, seq, argname)
        out.append(_ops.check_numpy_arrays(seq, argname))
    return out


def _addc_impl(name: str, arrays: Any, tensor1: Any, tensor2: Any, value: Any, inplace: bool) -> Any:
    target = list(arrays) if isinstance(arrays, PackedArrays) else _ops.check_list(arrays)
    if target and _torch.is_tensor(target[0]):
        _torch.check_tensors(target, "arrays")
        t1 = _torch.operand(target, tensor1, "tensor1")
        t2 = _torch.operand(target, tensor2, "tensor2")
        fn = _torch.foreach(name + "_" if inplace else name)
        val = list(value) if isinstance(value, (list, tuple)) else value
        res = fn(list(target), t1, t2, val) if isinstance(val, list) else fn(list(target), t1, t2, value=val)
        return arrays if inplace else list(res)
    target = _ops.check_numpy_arrays(target)
    t1s, t2s = _tensor_lists(target, ("tensor1", tensor1), ("tensor2", tensor2))
    val = _ops.normalise_operand(target, value, "value", allow_arrays=False)
    if not target:
        return arrays if inplace else []
    with np.errstate(all="ignore"):
        res = _ops.addc(name, target, t1s, t2s, val, inplace=inplace)
    if inplace:
        return arrays
    return pack(res) if isinstance(arrays, PackedArrays) else res


def addcmul_(arrays: L, tensor1: Any, tensor2: Any, /, *, value: Any = 1) -> L:
    """``a += value * t1 * t2`` for every array ``a`` in a list, in place.

    Parameters
    ----------
    arrays : list of numpy.ndarray, PackedArrays, or list of torch.Tensor
        The arrays (overwritten).
    tensor1, tensor2 : list of numpy.ndarray
        One array each per array in ``arrays`` (broadcast against it).
    value : scalar or list of scalars, optional
        The multiplier (default 1); a list gives one per array.

    Returns
    -------
    list
        ``arrays`` itself (the same object).

    See Also
    --------
    addcmul : the out-of-place form.
    """
    return _addc_impl("addcmul", arrays, tensor1, tensor2, value, True)


def addcmul(arrays: Any, tensor1: Any, tensor2: Any, /, *, value: Any = 1) -> Any:
    """``a + value * t1 * t2`` for every array ``a`` in a list.

    Parameters
    ----------
    arrays : list of numpy.ndarray, PackedArrays, or list of torch.Tensor
        The arrays (not modified).
    tensor1, tensor2 : list of numpy.ndarray
        One array each per array in ``arrays`` (broadcast against it).
    value : scalar or list of scalars, optional
        The multiplier (default 1); a list gives one per array.

    Returns
    -------
    list of numpy.ndarray
        One new array per input.

    See Also
    --------
    addcmul_ : the in-place form.

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxkit import foreach
    >>> foreach.addcmul([np.zeros(2)], [np.array([1.0, 2.0])], [np.array([3.0, 4.0])], value=0.5)
    [array([1.5, 4. ])]
    """
    return _addc_impl("addcmul", arrays, tensor1, tensor2, value, False)


def addcdiv_(arrays: L, tensor1: Any, tensor2: Any, /, *, value: Any = 1) -> L:
    """``a += value * t1 / t2`` for every array ``a`` in a list, in place.

    Parameters
    ----------
    arrays : list of numpy.ndarray, PackedArrays, or list of torch.Tensor
        The arrays (overwritten).
    tensor1, tensor2 : list of numpy.ndarray
        One array each per array in ``arrays`` (broadcast against it).
    value : scalar or list of scalars, optional
        The multiplier (default 1); a list gives one per array.

    Returns
    -------
    list
        ``arrays`` itself (the same object).

    See Also
    --------
    addcdiv : the out-of-place form.
    """
    return _addc_impl("addcdiv", arrays, tensor1, tensor2, value, True)


def addcdiv(arrays: Any, tensor1: Any, tensor2: Any, /, *, value: Any = 1) -> Any:
    """``a + value * t1 / t2`` for every array ``a`` in a list.

    Parameters
    ----------
    arrays : list of numpy.ndarray, PackedArrays, or list of torch.Tensor
        The arrays (not modified).
    tensor1, tensor2 : list of numpy.ndarray
        One array each per array in ``arrays`` (broadcast against it).
    value : scalar or list of scalars, optional
        The multiplier (default 1); a list gives one per array.

    Returns
    -------
    list of numpy.ndarray
        One new array per input.

    See Also
    --------
    addcdiv_ : the in-place form.
    """
    return _addc_impl("addcdiv", arrays, tensor1, tensor2, value, False)


def _lerp_impl(arrays: Any, ends: Any, weight: Any, inplace: bool) -> Any:
    target = list(arrays) if isinstance(arrays, PackedArrays) else _ops.check_list(arrays)
    if target and _torch.is_tensor(target[0]):
        _torch.check_tensors(target, "arrays")
        e = _torch.operand(target, ends, "ends")
        w = _torch.operand(target, weight, "weight")
        res = _torch.foreach("lerp_" if inplace else "lerp")(list(target), e, w)
        return arrays if inplace else list(res)
    target = _ops.check_numpy_arrays(target)
    (end_list,) = _tensor_lists(target, ("ends", ends))
    if isinstance(weight, PackedArrays):
        weight = list(weight)
    w = _ops.normalise_operand(target, weight, "weight")
    if not target:
        return arrays if inplace else []
    with np.errstate(all="ignore"):
        res = _ops.lerp(target, end_list, w, inplace=inplace)
    if inplace:
        return arrays
    return pack(res) if isinstance(arrays, PackedArrays) else res


def lerp_(arrays: L, ends: Any, weight: Any, /) -> L:
    """``a += weight * (end - a)`` for every array ``a`` in a list, in place.

    Parameters
    ----------
    arrays : list of numpy.ndarray, PackedArrays, or list of torch.Tensor
        The start points (overwritten).
    ends : list of numpy.ndarray
        One end point per array.
    weight : scalar, list of scalars, or list of arrays
        The interpolation weight.

    Returns
    -------
    list
        ``arrays`` itself (the same object).

    See Also
    --------
    lerp : the out-of-place form.

    Notes
    -----
    torch's formula: ``a + w * (end - a)`` when ``|w| < 0.5``, otherwise
    ``end - (end - a) * (1 - w)``, so the result is exactly ``a`` at ``w = 0`` and exactly ``end``
    at ``w = 1``.
    """
    return _lerp_impl(arrays, ends, weight, True)


def lerp(arrays: Any, ends: Any, weight: Any, /) -> Any:
    """``a + weight * (end - a)`` for every array ``a`` in a list.

    Parameters
    ----------
    arrays : list of numpy.ndarray, PackedArrays, or list of torch.Tensor
        The start points (not modified).
    ends : list of numpy.ndarray
        One end point per array.
    weight : scalar, list of scalars, or list of arrays
        The interpolation weight.

    Returns
    -------
    list of numpy.ndarray
        One new array per input.

    See Also
    --------
    lerp_ : the in-place form.

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxkit import foreach
    >>> foreach.lerp([np.zeros(2), np.ones(2)], [np.ones(2), np.full(2, 3.0)], [0.25, 1.0])
    [array([0.25, 0.25]), array([3., 3.])]
    """
    return _lerp_impl(arrays, ends, weight, False)


# ------------------------------------------------------------------------------------------------
# reductions


def norm(arrays: Any, /, ord: float = 2, *, dtype: Any = None) -> list[Any]:
    """The vector norm of every array (all its elements, flattened).

    Parameters
    ----------
    arrays : list of numpy.ndarray, PackedArrays, or list of torch.Tensor
        The arrays.
    ord : float, optional
        0 (number of nonzero elements), 1, 2 (default), ``inf`` (max of ``|x|``), ``-inf`` (min of
        ``|x|``) or any other ``p`` (``sum(|x|**p) ** (1/p)``).
    dtype : data-type, optional
        Compute (and return) in this dtype, e.g. float64 for float32 arrays.

    Returns
    -------
    list of numpy scalars
        One norm per array (torch returns 0-d tensors for tensors).

    See Also
    --------
    numpy.linalg.vector_norm : the single-array operation.

    Notes
    -----
    The norm of an empty array is 0 for every ``ord`` (NumPy raises for ``ord=inf`` on an empty
    array; torch returns 0).

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxkit import foreach
    >>> foreach.norm([np.array([3.0, 4.0]), np.array([-1.0, 2.0])], ord=np.inf)
    [np.float64(4.0), np.float64(2.0)]
    """
    ordf = _ops.check_ord(ord)
    if isinstance(arrays, PackedArrays):
        return _packed_norm(arrays, ordf, dtype)
    seq = _ops.check_list(arrays)
    if not seq:
        return []
    if _is_torch_list(seq):
        _torch.check_tensors(seq, "arrays")
        return list(_torch.foreach("norm")(list(seq), ord, dtype=dtype))
    seq = _ops.check_numpy_arrays(seq)
    with np.errstate(all="ignore"):
        return _ops.norm(seq, ordf, None if dtype is None else np.dtype(dtype))


def _packed_norm(p: PackedArrays, ord: float, dtype: Any) -> list[Any]:
    """One ``reduceat`` per buffer; falls back to per-array NumPy for the rarely used orders."""
    if ord not in (1.0, 2.0) or any(dt.kind not in "f" for dt in p.buffers):
        return _ops.norm(list(p), ord, None if dtype is None else np.dtype(dtype))
    out: list[Any] = [None] * len(p)
    with np.errstate(all="ignore"):
        for dt, g in p._groups.items():
            res_dt = np.dtype(dtype) if dtype is not None else dt
            acc_dt = np.promote_types(res_dt, np.float64) if res_dt.kind == "f" else res_dt
            x = np.abs(g.buffer) if ord == 1.0 else np.square(g.buffer.astype(acc_dt))
            nonempty = g.sizes > 0
            sums = np.zeros(len(g.sizes), acc_dt)
            if nonempty.any():
                sums[nonempty] = np.add.reduceat(x, g.starts[nonempty], dtype=acc_dt)
            vals = (np.sqrt(sums) if ord == 2.0 else sums).astype(res_dt)
            for idx, v in zip(g.indices.tolist(), vals):
                out[idx] = v
    return out


def max(arrays: Any, /) -> list[Any]:
    """The maximum of every array (NaN if it holds a NaN).

    Parameters
    ----------
    arrays : list of numpy.ndarray, PackedArrays, or list of torch.Tensor
        The arrays; none may be empty.

    Returns
    -------
    list of numpy scalars
        One maximum per array, in the array's dtype.

    Raises
    ------
    ValueError
        If an array is empty (naming its index).

    See Also
    --------
    numpy.max : the single-array operation.
    """
    if isinstance(arrays, PackedArrays):
        out: list[Any] = [None] * len(arrays)
        for dt, g in arrays._groups.items():
            if (g.sizes == 0).any():
                i = int(g.indices[np.argmax(g.sizes == 0)])
                raise ValueError(f"arrays[{i}] is empty; the max of an empty array is undefined")
            if g.sizes.size:
                vals = np.maximum.reduceat(g.buffer, g.starts)
                for idx, v in zip(g.indices.tolist(), vals):
                    out[idx] = v
        return out
    seq = _ops.check_list(arrays)
    if not seq:
        return []
    if _is_torch_list(seq):
        _torch.check_tensors(seq, "arrays")
        return list(_torch.foreach("max")(list(seq)))
    return _ops.max_(_ops.check_numpy_arrays(seq))


# ------------------------------------------------------------------------------------------------
# utilities


def zero_(arrays: L, /) -> L:
    """Set every element of every array to zero, in place.

    Parameters
    ----------
    arrays : list of numpy.ndarray, PackedArrays, or list of torch.Tensor
        The arrays (overwritten).

    Returns
    -------
    list
        ``arrays`` itself (the same object).
    """
    if isinstance(arrays, PackedArrays):
        _packed.check_writeable(arrays)
        for buf in arrays.buffers.values():
            buf.fill(0)
        return arrays
    seq = _ops.check_list(arrays)
    if not seq:
        return arrays
    if _is_torch_list(seq):
        _torch.check_tensors(seq, "arrays")
        _torch.foreach("zero_")(list(seq))
        return arrays
    seq = _ops.check_numpy_arrays(seq)
    _ops.check_writeable(seq)
    for a in seq:
        a.fill(0)
    return arrays


def copy_(arrays: L, src: Any, /) -> L:
    """Copy ``src[i]`` into ``arrays[i]`` for every ``i``, in place.

    Parameters
    ----------
    arrays : list of numpy.ndarray, PackedArrays, or list of torch.Tensor
        The destinations (overwritten).
    src : list of numpy.ndarray or PackedArrays
        One source per destination, broadcast to its shape; the cast must be ``same_kind``.

    Returns
    -------
    list
        ``arrays`` itself (the same object).
    """
    if isinstance(arrays, PackedArrays) and isinstance(src, PackedArrays) and arrays.same_layout(src):
        _packed.check_writeable(arrays)
        for dt, buf in arrays.buffers.items():
            np.copyto(buf, src.buffers[dt])
        return arrays
    target = list(arrays) if isinstance(arrays, PackedArrays) else _ops.check_list(arrays)
    if target and _torch.is_tensor(target[0]):
        _torch.check_tensors(target, "arrays")
        s = _torch.operand(target, src, "src")
        _ops.check_same_length(target, s, "src")
        _torch.foreach("copy_")(list(target), s)
        return arrays
    target = _ops.check_numpy_arrays(target)
    (srcs,) = _tensor_lists(target, ("src", src))
    _ops.copy_(target, srcs)
    return arrays


def clone(arrays: Any, /) -> Any:
    """Independent copies of every array.

    Parameters
    ----------
    arrays : list of numpy.ndarray, PackedArrays, or list of torch.Tensor
        The arrays (not modified).

    Returns
    -------
    list of numpy.ndarray, or PackedArrays
        New arrays with the same shapes, dtypes and values (a ``PackedArrays`` for a packed
        input: one copy per buffer).
    """
    if isinstance(arrays, PackedArrays):
        return PackedArrays._from_buffers(arrays, {dt: b.copy() for dt, b in arrays.buffers.items()})
    seq = _ops.check_list(arrays)
    if not seq:
        return []
    if _is_torch_list(seq):
        _torch.check_tensors(seq, "arrays")
        return list(_torch.foreach("clone")(list(seq)))
    return [a.copy(order="K") for a in _ops.check_numpy_arrays(seq)]


def __dir__() -> list[str]:
    return sorted(__all__)
