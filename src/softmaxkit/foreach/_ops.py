"""Validation and NumPy dispatch for ``softmaxkit.foreach``; the public docstrings are in ``__init__``.

Layers: the public function normalises its arguments and picks a backend (``_torch`` for tensors,
``_packed`` for :class:`PackedArrays`, this module for lists of NumPy arrays); here each list is
validated before any array is written, then every array goes either to a numba kernel
(transcendental ops on float32/float64, see ``_kernels``) or to NumPy's own ufunc (ops where NumPy
is already SIMD, or dtypes the kernels do not take).  ``_kernels`` (and with it numba) is imported
by :func:`kernels` on the first op that needs it, so ``import softmaxkit.foreach`` stays light.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from operator import attrgetter
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np

_F16 = np.dtype(np.float16)
_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)

#: dtypes the kernels take directly.
KERNEL_DTYPES = frozenset({_F32, _F64})

_get_dtype = attrgetter("dtype")

_K: ModuleType | None = None


def kernels() -> ModuleType:
    """The ``_kernels`` module, imported (numba with it) on first use; it compiles lazily too."""
    global _K
    if _K is None:
        from . import _kernels

        _K = _kernels
    return _K


# ------------------------------------------------------------------------------------------------
# op table


class UnarySpec(NamedTuple):
    name: str
    ufunc: np.ufunc | None  # NumPy's op: dtype rules, and the fallback for other dtypes
    kernel: bool  # float32/float64 run on the kernel with op code ``_kernels.CODES[name]``
    custom: Callable[[np.ndarray, np.ndarray | None], np.ndarray] | None = None
    rule: np.ufunc | None = None  # dtype rule when there is no ufunc


def _frac(a: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    # torch's definition, x - trunc(x): frac(+-inf) is NaN (NumPy has no frac).
    return np.subtract(a, np.trunc(a), out=out)


def _rsqrt(a: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    r = np.asarray(np.sqrt(a, out=out))  # 0-d input: NumPy returns a scalar
    return np.divide(1, r, out=r)


def _reciprocal(a: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    # True division (torch's reciprocal): NumPy's np.reciprocal truncates integers to 0.
    return np.divide(1.0, a, out=out)


UNARY: dict[str, UnarySpec] = {
    s.name: s
    for s in [
        UnarySpec("abs", np.absolute, False),
        UnarySpec("acos", np.arccos, False),
        UnarySpec("asin", np.arcsin, False),
        UnarySpec("atan", np.arctan, False),
        UnarySpec("ceil", np.ceil, False),
        UnarySpec("cos", np.cos, False),
        UnarySpec("cosh", np.cosh, False),
        UnarySpec("erf", None, True, rule=np.exp),
        UnarySpec("erfc", None, True, rule=np.exp),
        UnarySpec("exp", np.exp, True),
        UnarySpec("expm1", np.expm1, True),
        UnarySpec("floor", np.floor, False),
        UnarySpec("frac", None, False, custom=_frac, rule=np.trunc),
        UnarySpec("lgamma", None, True, rule=np.exp),
        UnarySpec("log", np.log, True),
        UnarySpec("log10", np.log10, True),
        UnarySpec("log1p", np.log1p, True),
        UnarySpec("log2", np.log2, True),
        UnarySpec("neg", np.negative, False),
        UnarySpec("reciprocal", None, False, custom=_reciprocal, rule=np.true_divide),
        UnarySpec("round", np.rint, False),
        UnarySpec("rsqrt", None, False, custom=_rsqrt, rule=np.sqrt),
        UnarySpec("sigmoid", None, True, rule=np.exp),
        UnarySpec("sign", np.sign, False),
        UnarySpec("sin", np.sin, False),
        UnarySpec("sinh", np.sinh, False),
        UnarySpec("sqrt", np.sqrt, False),
        UnarySpec("tan", np.tan, False),
        UnarySpec("tanh", np.tanh, True),
        UnarySpec("trunc", np.trunc, False),
    ]
}

BINARY: dict[str, np.ufunc] = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "div": np.true_divide,
    "clamp_min": np.maximum,
    "clamp_max": np.minimum,
    "maximum": np.maximum,
    "minimum": np.minimum,
    "pow": np.power,
}


# ------------------------------------------------------------------------------------------------
# validation


def check_list(arrays: Any, argname: str = "arrays") -> Sequence[Any]:
    """``arrays`` must be a list or tuple (a bare array is a common mistake: say so)."""
    if isinstance(arrays, (list, tuple)):
        return arrays
    if isinstance(arrays, np.ndarray):
        raise TypeError(f"{argname} must be a list or tuple of arrays, got a single ndarray; wrap it: [x]")
    raise TypeError(f"{argname} must be a list or tuple of arrays, got {type(arrays).__name__}")


def check_same_length(arrays: Sequence[Any], other: Sequence[Any], argname: str) -> None:
    if len(other) != len(arrays):
        raise ValueError(
            f"{argname} has {len(other)} elements but arrays has {len(arrays)}; they must have the same length"
        )


def check_numpy_arrays(arrays: Sequence[Any], argname: str = "arrays") -> list[np.ndarray] | Sequence[Any]:
    """Every element must be an ``np.ndarray`` (subclasses are viewed as ndarray)."""
    if set(map(type, arrays)) <= {np.ndarray}:
        return arrays
    viewed = list(arrays)
    for i, a in enumerate(arrays):
        if type(a) is np.ndarray:
            continue
        if isinstance(a, np.ndarray):
            viewed[i] = a.view(np.ndarray)
            continue
        if type(a).__module__.startswith("torch"):
            raise TypeError(
                f"{argname}[{i}] is a torch.Tensor but {argname}[0] is a NumPy array; "
                "a list must hold only NumPy arrays or only torch tensors"
            )
        raise TypeError(f"{argname}[{i}] must be a numpy.ndarray, got {type(a).__name__}")
    return viewed


def first_index_with_dtype(arrays: Sequence[np.ndarray], dtype: np.dtype) -> int:
    return next(i for i, a in enumerate(arrays) if a.dtype == dtype)


_unary_dtype_cache: dict[tuple[str, np.dtype], np.dtype | Exception] = {}


def unary_result_dtype(spec: UnarySpec, dtype: np.dtype) -> np.dtype:
    """The dtype NumPy gives for the same single-array op (``TypeError`` if it has none).

    Ops NumPy runs are tried on an empty array of ``dtype`` (a dry run raises exactly what the
    real call would for that dtype, including errors a later step of a composite op raises);
    ops only the kernels run follow their ``rule`` ufunc, for real floating dtypes.
    """
    key = (spec.name, dtype)
    res = _unary_dtype_cache.get(key)
    if res is None:
        try:
            if spec.ufunc is not None:
                res = np.asarray(spec.ufunc(np.empty(0, dtype))).dtype
            elif spec.custom is not None:
                res = np.asarray(spec.custom(np.empty(0, dtype), None)).dtype
            else:
                assert spec.rule is not None
                res = spec.rule.resolve_dtypes((dtype, None))[-1]
                if res not in (_F16, _F32, _F64):
                    raise TypeError(f"{spec.name} is defined for real floating dtypes only")
        except (TypeError, ValueError) as exc:  # numpy's _UFuncNoLoopError is a TypeError
            res = exc
        _unary_dtype_cache[key] = res
    if isinstance(res, Exception):
        raise TypeError(f"foreach.{spec.name} does not support dtype {dtype}: {res}") from None
    return res


def check_unary_inplace(
    spec: UnarySpec, arrays: Sequence[np.ndarray], positions: Sequence[int] | None = None
) -> set[np.dtype]:
    """Check that every result can be written back under NumPy's ``same_kind`` rule.

    Errors name the first failing array's list index (``positions[k]`` for ``arrays[k]`` when
    given: a packed list checks its buffers).
    """
    dtypes = dict.fromkeys(map(_get_dtype, arrays))  # in order of first appearance
    for dt in dtypes:
        try:
            res = unary_result_dtype(spec, dt)
        except TypeError as exc:
            i = first_index_with_dtype(arrays, dt)
            raise TypeError(f"arrays[{i if positions is None else positions[i]}]: {exc}") from None
        if res != dt and not np.can_cast(res, dt, "same_kind"):
            i = first_index_with_dtype(arrays, dt)
            i = i if positions is None else positions[i]
            raise TypeError(
                f"foreach.{spec.name}_ cannot write the {res} result into arrays[{i}], which has dtype {dt} "
                f"(NumPy's same_kind casting rule forbids {res} -> {dt}); use foreach.{spec.name} instead"
            )
    return set(dtypes)


def read_only_error(i: int) -> ValueError:
    return ValueError(f"arrays[{i}] is read-only; an in-place foreach op must be able to write it")


def check_writeable(arrays: Sequence[np.ndarray]) -> None:
    for i, a in enumerate(arrays):
        if not a.flags.writeable:
            raise read_only_error(i)


# ------------------------------------------------------------------------------------------------
# unary


def _unary_compute(spec: UnarySpec, a: np.ndarray) -> np.ndarray:
    """The out-of-place result for one array (NumPy dtype rules)."""
    res = unary_result_dtype(spec, a.dtype)
    if spec.kernel and res in (_F16, _F32, _F64) and a.dtype.kind in "biuf":
        K = kernels()
        code = K.CODES[spec.name]
        work_dt = _F32 if res == _F16 else res
        if a.dtype == work_dt and a.flags.c_contiguous and a.flags.aligned and a.flags.writeable:
            out = np.empty(a.shape, work_dt)
            K.out_of_place(code, a.reshape(-1), out.reshape(-1))
        else:
            out = np.array(a, dtype=work_dt, order="C")  # a copy: the input is never written
            K.inplace(code, out.reshape(-1))
        return out if work_dt == res else out.astype(res)
    if spec.ufunc is not None:
        return np.asarray(spec.ufunc(a))
    assert spec.custom is not None
    return np.asarray(spec.custom(a, None))


def _unary_inplace_one(spec: UnarySpec, a: np.ndarray) -> None:
    """Apply the op to one (validated) array in place, whatever its layout and dtype."""
    if spec.kernel and a.dtype in KERNEL_DTYPES:
        K = kernels()
        if a.flags.c_contiguous and a.flags.aligned:
            K.inplace(K.CODES[spec.name], a.reshape(-1))
        else:
            tmp = a.copy(order="C")  # aligned and contiguous
            K.inplace(K.CODES[spec.name], tmp.reshape(-1))
            a[...] = tmp
    elif spec.kernel and a.dtype == _F16:
        tmp = a.astype(_F32)
        K = kernels()
        K.inplace(K.CODES[spec.name], tmp.reshape(-1))
        a[...] = tmp
    elif spec.ufunc is not None:
        spec.ufunc(a, out=a)
    else:
        assert spec.custom is not None
        spec.custom(a, a)


def unary_inplace_listed(spec: UnarySpec, arrays: Sequence[Any]) -> bool:
    """The fast in-place path: one kernel over the whole list, when it can take it.

    The list must hold only exact ``np.ndarray`` of native float32/float64, C-contiguous and
    aligned; ``_kernels.survey`` checks that (and writeability, and shared memory) for every array
    in one call before anything is written.  Returns False, having written nothing, when the
    list needs :func:`unary_inplace`; raises for a read-only array.
    """
    if not spec.kernel:
        return False
    K = kernels()
    surveyed = K.survey(arrays)
    if surveyed is None:
        return False
    if surveyed.first_read_only >= 0:
        raise read_only_error(surveyed.first_read_only)
    if surveyed.first_unsuitable >= 0:
        return False
    K.inplace_list(K.CODES[spec.name], surveyed)
    return True


def unary_inplace(spec: UnarySpec, arrays: Sequence[np.ndarray]) -> None:
    """In-place op over a list of plain ndarrays, one array at a time, all checks first."""
    check_unary_inplace(spec, arrays)
    check_writeable(arrays)
    # An object array fails (or not) element by element, which no dtype check foresees: run the
    # op out of place on each one first, so that a failure leaves every array as it was.
    for a in arrays:
        if a.dtype.kind == "O":
            _unary_compute(spec, a)
    for a in arrays:
        _unary_inplace_one(spec, a)


def unary(spec: UnarySpec, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    out = []
    for i, a in enumerate(arrays):
        try:
            out.append(_unary_compute(spec, a))
        except TypeError as exc:
            raise TypeError(f"arrays[{i}]: {exc}") from None
    return out


# ------------------------------------------------------------------------------------------------
# "other" operands: scalar, list of scalars, list of arrays, one array


def is_scalar(x: Any) -> bool:
    return isinstance(x, (numbers.Number, np.generic)) and not isinstance(x, np.ndarray)


class Operand(NamedTuple):
    """A normalised second operand: ``per_index`` says whether ``value`` is a sequence."""

    kind: str  # "scalar", "scalars", "arrays", "array"
    value: Any
    per_index: bool

    def at(self, i: int) -> Any:
        return self.value[i] if self.per_index else self.value


def normalise_operand(arrays: Sequence[Any], other: Any, argname: str, *, allow_arrays: bool = True) -> Operand:
    """Classify ``other`` and check its length and element types against ``arrays``."""
    if is_scalar(other):
        return Operand("scalar", other, False)
    if isinstance(other, np.ndarray):
        if not allow_arrays:
            raise TypeError(f"{argname} must be a scalar or a list of scalars, got an array")
        return Operand("array", other, False)
    if isinstance(other, (list, tuple)):
        check_same_length(arrays, other, argname)
        if not other:
            return Operand("scalars", other, True)
        if all(map(is_scalar, other)):
            return Operand("scalars", other, True)
        if not allow_arrays:
            bad = next(i for i, v in enumerate(other) if not is_scalar(v))
            raise TypeError(f"{argname}[{bad}] must be a scalar, got {type(other[bad]).__name__}")
        checked = check_numpy_arrays(other, argname)
        return Operand("arrays", checked, True)
    raise TypeError(
        f"{argname} must be a scalar, a list of scalars, a list of arrays or one array; "
        f"got {type(other).__name__}"
    )


def check_inplace_result(
    name: str, i: int, a: np.ndarray, result_dtype: np.dtype, other_shapes: Sequence[tuple[int, ...]]
) -> None:
    """An in-place op may neither change ``a``'s shape nor need a cast ``same_kind`` forbids."""
    if not a.flags.writeable:
        raise read_only_error(i)
    if result_dtype != a.dtype and not np.can_cast(result_dtype, a.dtype, "same_kind"):
        raise TypeError(
            f"foreach.{name}_ cannot write the {result_dtype} result into arrays[{i}], which has dtype "
            f"{a.dtype} (NumPy's same_kind casting rule forbids {result_dtype} -> {a.dtype}); "
            f"use foreach.{name} instead"
        )
    try:
        shape = np.broadcast_shapes(a.shape, *other_shapes)
    except ValueError:
        shape = None
    if shape != a.shape:
        shapes = ", ".join(str(s) for s in other_shapes)
        raise ValueError(
            f"foreach.{name}_: the operands for arrays[{i}] have shapes {shapes}, which do not broadcast "
            f"to arrays[{i}]'s shape {a.shape}; an in-place op cannot change an array's shape"
        )


def _wrap(i: int, exc: Exception) -> Exception:
    """``exc`` with the list index in front (TypeError and OverflowError keep their type)."""
    cls = TypeError if isinstance(exc, TypeError) else OverflowError if isinstance(exc, OverflowError) else ValueError
    return cls(f"arrays[{i}]: {exc}")


def _dry_run_dtype(ufunc: np.ufunc, dtype: np.dtype, b: Any) -> np.dtype:
    """The result dtype of ``ufunc(a, b)`` for an array ``a`` of ``dtype``, from a call on no elements.

    The dry run raises what the real call would for the operand types: no loop for the dtypes,
    or a Python integer out of bounds for an integer array (``uint64 array + -1``, NEP 50).
    Python scalars are passed as they are (they are weak, and their value matters).
    """
    probe = b if type(b) in (bool, int, float, complex) else np.empty(0, np.asarray(b).dtype)
    return np.asarray(ufunc(np.empty(0, dtype), probe)).dtype


def _check_int_power(result: np.dtype, exponent: Any) -> None:
    """NumPy raises for negative integer powers of integers only when it meets one: check first."""
    if result.kind in "iu" and np.any(np.less(exponent, 0)):
        raise ValueError("Integers to negative integer powers are not allowed.")


def _scaled(value: Any, alpha: Any) -> Any:
    if alpha is None or (is_scalar(alpha) and alpha == 1 and not isinstance(alpha, np.generic)):
        return value
    if is_scalar(value):
        return value * alpha
    return np.multiply(value, alpha)


def check_binary_inplace(name: str, i: int, a: np.ndarray, b: Any, alpha: Any) -> Any:
    """Every check of ``name_`` on ``arrays[i] = a`` with operand ``b``; returns ``alpha * b``.

    Run for every array before any is written, so that a failing call changes nothing.
    """
    ufunc = BINARY[name]
    try:
        b = _scaled(b, alpha)
        res = _dry_run_dtype(ufunc, a.dtype, b)
        if name == "pow":
            _check_int_power(res, b)
        if a.dtype.kind == "O" or np.asarray(b).dtype.kind == "O":
            ufunc(a, b)  # object arrays fail element by element: try it before writing
    except (TypeError, ValueError, OverflowError) as exc:
        raise _wrap(i, exc) from None
    check_inplace_result(name, i, a, res, [np.shape(b)])
    return b


def binary(name: str, arrays: Sequence[np.ndarray], op: Operand, *, alpha: Any, inplace: bool) -> list[np.ndarray]:
    ufunc = BINARY[name]
    if inplace:
        operands = [check_binary_inplace(name, i, a, op.at(i), alpha) for i, a in enumerate(arrays)]
        for a, b in zip(arrays, operands):
            ufunc(a, b, out=a)
        return list(arrays)
    out = []
    for i, a in enumerate(arrays):
        try:
            out.append(np.asarray(ufunc(a, _scaled(op.at(i), alpha))))
        except (TypeError, ValueError, OverflowError) as exc:
            raise _wrap(i, exc) from None
    return out


def pow_scalar_base(base: Any, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    out = []
    for i, a in enumerate(arrays):
        try:
            out.append(np.asarray(np.power(base, a)))
        except (TypeError, ValueError) as exc:
            raise _wrap(i, exc) from None
    return out


# ------------------------------------------------------------------------------------------------
# pointwise: addcmul, addcdiv, lerp


def _addc(name: str, a: np.ndarray, t1: np.ndarray, t2: np.ndarray, value: Any) -> np.ndarray:
    prod = np.multiply(t1, t2) if name == "addcmul" else np.true_divide(t1, t2)
    if not (is_scalar(value) and value == 1 and not isinstance(value, np.generic)):
        prod = np.multiply(prod, value)
    return prod


def addc(
    name: str, arrays: Sequence[np.ndarray], t1s: Sequence[np.ndarray], t2s: Sequence[np.ndarray], value: Operand, *, inplace: bool
) -> list[np.ndarray]:
    terms = []
    for i, a in enumerate(arrays):
        try:
            terms.append(_addc(name, a, t1s[i], t2s[i], value.at(i)))
        except (TypeError, ValueError) as exc:
            raise _wrap(i, exc) from None
    if inplace:
        for i, a in enumerate(arrays):
            try:
                res = np.add.resolve_dtypes((a.dtype, terms[i].dtype, None))[-1]
            except TypeError as exc:
                raise _wrap(i, exc) from None
            check_inplace_result(name, i, a, res, [terms[i].shape])
        for a, term in zip(arrays, terms):
            np.add(a, term, out=a)
        return list(arrays)
    return [np.asarray(np.add(a, term)) for a, term in zip(arrays, terms)]


def _lerp_one(a: np.ndarray, end: np.ndarray, w: Any) -> np.ndarray:
    # torch's formula: exact at w == 0 and at w == 1 (a + w*(end - a) is not exact at w == 1).
    diff = np.subtract(end, a)
    if is_scalar(w):
        if abs(w) < 0.5:
            return np.asarray(np.add(a, np.multiply(w, diff)))
        return np.asarray(np.subtract(end, np.multiply(diff, 1 - w)))
    w = np.asarray(w)
    return np.asarray(
        np.where(np.abs(w) < 0.5, np.add(a, np.multiply(w, diff)), np.subtract(end, np.multiply(diff, np.subtract(1, w))))
    )


def lerp(
    arrays: Sequence[np.ndarray], ends: Sequence[np.ndarray], weight: Operand, *, inplace: bool
) -> list[np.ndarray]:
    results = []
    for i, a in enumerate(arrays):
        try:
            results.append(_lerp_one(a, ends[i], weight.at(i)))
        except (TypeError, ValueError) as exc:
            raise _wrap(i, exc) from None
    if not inplace:
        return results
    for i, (a, r) in enumerate(zip(arrays, results)):
        check_inplace_result("lerp", i, a, r.dtype, [r.shape])
    for a, r in zip(arrays, results):
        np.copyto(a, r, casting="same_kind")
    return list(arrays)


# ------------------------------------------------------------------------------------------------
# reductions and utilities


def check_ord(ord: Any) -> float:
    if isinstance(ord, bool) or not is_scalar(ord) or isinstance(ord, complex):
        raise TypeError(f"ord must be a real number (0, 1, 2, inf, -inf or any p), got {ord!r}")
    ordf = float(ord)
    if np.isnan(ordf):
        raise ValueError("ord must not be NaN")
    return ordf


def norm(arrays: Sequence[np.ndarray], ord: float, dtype: np.dtype | None) -> list[np.generic]:
    out = []
    for i, a in enumerate(arrays):
        try:
            x = a if dtype is None else a.astype(dtype, copy=False)
            if x.size == 0 and np.isinf(ord):
                # NumPy's max/min of nothing raise; the norm of an empty vector is 0 (torch too).
                r = np.linalg.vector_norm(np.zeros(1, x.dtype), ord=ord)
            else:
                r = np.linalg.vector_norm(x, ord=ord)
            out.append(r)
        except (TypeError, ValueError) as exc:
            raise _wrap(i, exc) from None
    return out


def max_(arrays: Sequence[np.ndarray]) -> list[np.generic]:
    out = []
    for i, a in enumerate(arrays):
        if a.size == 0:
            raise ValueError(f"arrays[{i}] is empty; the max of an empty array is undefined")
        out.append(np.max(a))
    return out


def copy_(arrays: Sequence[np.ndarray], src: Sequence[np.ndarray]) -> None:
    for i, (a, s) in enumerate(zip(arrays, src)):
        res = np.result_type(s)
        check_inplace_result("copy", i, a, res, [np.shape(s)])
    for a, s in zip(arrays, src):
        np.copyto(a, s, casting="same_kind")
