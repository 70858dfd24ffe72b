"""The written policy every front end applies before any kernel runs: axes, dtypes, options.

One place for each rule, each with a test in ``tests/``.  Framework front ends (torch, jax,
dask) reuse these functions so that every array kind gets the same semantics and the same
error messages.
"""

from __future__ import annotations

import math
import numbers
import operator
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.exceptions import AxisError

__all__ = [
    "AxisError",
    "DtypePolicy",
    "check_temperature",
    "normalize_axes",
    "resolve_dtypes",
]


def normalize_axes(axis: Any, ndim: int, *, argument: str = "axis") -> tuple[int, ...]:
    """Normalise ``axis`` (int, tuple of ints or None) to a sorted tuple of non-negative axes.

    ``None`` means every axis.  For a 0-d array ``-1``, ``0``, ``None`` and ``()`` all mean the
    single element (like torch, which accepts ``dim`` in ``[-1, 0]`` for 0-d tensors) and give
    ``()``.  Out-of-range and repeated axes raise :class:`numpy.exceptions.AxisError`; a
    non-integer raises ``TypeError``.
    """
    if axis is None:
        return tuple(range(ndim))
    items = axis if isinstance(axis, tuple) else (axis,)
    normalized = []
    for item in items:
        if isinstance(item, (bool, np.bool_)):
            raise TypeError(f"{argument} must be an int, a tuple of ints or None, got the bool {item!r}")
        try:
            index = operator.index(item)
        except TypeError:
            raise TypeError(
                f"{argument} must be an int, a tuple of ints or None, got {type(item).__name__} {item!r}"
            ) from None
        if ndim == 0 and index in (0, -1):
            continue
        if not -ndim <= index < ndim:
            raise AxisError(f"{argument} {index} is out of bounds for array of dimension {ndim}")
        index %= ndim
        if index in normalized:
            raise AxisError(f"{argument} {axis!r} has a repeated axis {index} (array of dimension {ndim})")
        normalized.append(index)
    return tuple(sorted(normalized))


class DtypePolicy:
    """The dtypes of one call: what the input is cast to, what the kernel runs in, what is returned.

    ============================  ===============  ===============
    input (after ``dtype=``)      kernel           result
    ============================  ===============  ===============
    bool, int, uint               float64          float64
    float16, bfloat16             float32          input dtype
    float32 / float64             same             same
    complex64 / complex128        same (logsumexp  same
                                  only)
    anything else                 ``TypeError`` naming the dtype
    ============================  ===============  ===============
    """

    __slots__ = ("kernel", "result")

    def __init__(self, kernel: np.dtype, result: np.dtype) -> None:
        self.kernel = kernel
        self.result = result

    def __repr__(self) -> str:
        return f"DtypePolicy(kernel={self.kernel}, result={self.result})"


_FLOAT32 = np.dtype(np.float32)
_FLOAT64 = np.dtype(np.float64)


def _is_bfloat16(dtype: np.dtype) -> bool:
    return dtype.kind == "V" and dtype.name == "bfloat16"


def resolve_dtypes(input_dtype: np.dtype, requested: Any, *, allow_complex: bool, function: str) -> DtypePolicy:
    """Apply the dtype policy (see :class:`DtypePolicy`) to ``input_dtype`` and ``dtype=``."""
    try:
        return _resolve_dtypes_cached(np.dtype(input_dtype), requested, allow_complex, function)
    except TypeError as error:
        if "unhashable" not in str(error):
            raise
    return _resolve_dtypes(input_dtype, requested, allow_complex=allow_complex, function=function)


@lru_cache(maxsize=256)
def _resolve_dtypes_cached(input_dtype: np.dtype, requested: Any, allow_complex: bool, function: str) -> DtypePolicy:
    return _resolve_dtypes(input_dtype, requested, allow_complex=allow_complex, function=function)


def _resolve_dtypes(input_dtype: np.dtype, requested: Any, *, allow_complex: bool, function: str) -> DtypePolicy:
    if requested is not None:
        try:
            requested_dtype = np.dtype(requested)
        except TypeError:
            raise TypeError(f"{function}: dtype={requested!r} is not a NumPy dtype") from None
        if not (requested_dtype.kind == "f" or _is_bfloat16(requested_dtype) or (
            allow_complex and requested_dtype.kind == "c"
        )):
            expected = "a floating or complex dtype" if allow_complex else "a floating dtype"
            raise TypeError(f"{function}: dtype={requested_dtype} is not supported; expected {expected}")
        source = requested_dtype
    else:
        source = np.dtype(input_dtype)
    if source.kind in "biu":
        return DtypePolicy(_FLOAT64, _FLOAT64)
    if source == np.float16 or _is_bfloat16(source):
        return DtypePolicy(_FLOAT32, source.newbyteorder("="))
    if source.kind == "f" and source.itemsize in (4, 8):
        native = source.newbyteorder("=")
        return DtypePolicy(native, native)
    if source.kind == "c" and source.itemsize in (8, 16):
        if allow_complex:
            native = source.newbyteorder("=")
            return DtypePolicy(native, native)
        raise TypeError(
            f"{function} does not support complex input (got {source}); only logsumexp is defined for complex"
        )
    if source.kind == "f":
        raise TypeError(
            f"{function} does not support {source} (extended precision); cast to float64 first"
        )
    raise TypeError(f"{function} does not support arrays of dtype {source}; expected a real numeric dtype")


def check_temperature(temperature: Any) -> float:
    """Return ``temperature`` as a float; it must be a positive finite real number."""
    if isinstance(temperature, np.ndarray):
        if temperature.size != 1:
            raise TypeError(f"temperature must be a positive real number, got an array of shape {temperature.shape}")
        temperature = temperature.reshape(()).item()
    if isinstance(temperature, (bool, np.bool_)) or not isinstance(temperature, numbers.Real):
        raise TypeError(f"temperature must be a positive real number, got {type(temperature).__name__} {temperature!r}")
    value = float(temperature)
    if not (math.isfinite(value) and value > 0.0):
        raise ValueError(f"temperature must be positive and finite, got {value!r}")
    return value
