"""Public functions: argument validation, the policy, the docstrings; then dispatch.

Each function validates its options once (``softmaxkit._policy``), picks the backend for the
array's kind (``softmaxkit._dispatch``) and hands it a canonical request.  The semantics are
documented in ``docs/semantics.md``; docstrings below state them per function.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Literal, overload

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from . import _numpy_backend as backend
# constants by value: an attribute of the backend module costs 15 ns more than a global here (its
# class, ``_numpy_backend._Settings``, keeps CPython from specialising the lookup)
from ._numpy_backend import FAST_DTYPES, MODE_LOG_SOFTMAX, MODE_SOFTMAX
from ._dispatch import as_numpy_input
from ._policy import check_temperature, normalize_axes, resolve_dtypes

__all__ = [
    "log_softmax",
    "log_softmax_backward",
    "logsumexp",
    "softmax",
    "softmax_backward",
    "softmin",
]

AxisLike = int | tuple[int, ...] | None
# numpy's bool dtype, compared by identity on the per-call-overhead paths (``!= np.bool_`` converts
# the scalar type to a dtype on every call, about 0.1 us; any other bool dtype takes the general path)
_BOOL = np.dtype(np.bool_)


def _cast_first(array: np.ndarray, dtype: DTypeLike) -> np.ndarray:
    """``dtype=`` casts the input before anything is computed (torch's semantics): a float64
    input with ``dtype=float16`` is rounded to float16 first, then computed in float32."""
    with np.errstate(over="ignore"):  # values beyond the dtype's range become inf, as in torch
        return array.astype(dtype, copy=False)


def _check_where(where: Any, shape: tuple[int, ...], function: str) -> NDArray[np.bool_] | None:
    if where is None:
        return None
    mask = np.asarray(where)
    if mask.dtype != np.bool_:
        raise TypeError(f"{function}: where must be a boolean array, got dtype {mask.dtype}")
    _check_broadcasts_to("where", mask.shape, shape, function)
    return mask


def _check_broadcasts_to(argument: str, own: tuple[int, ...], shape: tuple[int, ...], function: str) -> None:
    """``argument`` (of shape ``own``) must broadcast to ``shape`` without enlarging it."""
    try:
        broadcast = np.broadcast_shapes(own, shape)
    except ValueError:
        broadcast = None
    if broadcast != shape:
        raise ValueError(f"{function}: {argument} has shape {own}, which does not broadcast to {shape}")


def _check_out(out: Any, shape: tuple[int, ...], result_dtype: np.dtype, function: str) -> np.ndarray | None:
    if out is None:
        return None
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{function}: out must be a numpy.ndarray, got {type(out).__name__}")
    if out.shape != shape:
        raise ValueError(f"{function}: out has shape {out.shape}, expected the result's shape {shape}")
    if not out.flags.writeable:
        raise ValueError(f"{function}: out is read-only")
    if not np.can_cast(result_dtype, out.dtype, casting="same_kind"):
        raise TypeError(
            f"{function}: cannot write a {result_dtype} result into out of dtype {out.dtype} "
            "(same_kind casting)"
        )
    return out


def _is_plain_out(out: Any, x: np.ndarray, shape: tuple[int, ...] | None = None) -> bool:
    """``out`` is ``x`` itself, or a writable C-contiguous ndarray of ``x``'s dtype and of
    ``shape`` (default: ``x``'s) that does not overlap ``x``: the fast path writes into it
    directly (``x`` itself only for the default shape: in place)."""
    if type(out) is not np.ndarray or not out.flags.writeable:
        return False
    if out is x and shape is None:
        return True
    return (
        out.dtype == x.dtype
        and out.shape == (x.shape if shape is None else shape)
        and out.flags.c_contiguous
        and not np.may_share_memory(out, x)
    )


def _is_plain_mask(where: Any, x: np.ndarray, out: np.ndarray | None, rows: bool = False) -> bool:
    """``where`` is a C-contiguous boolean ndarray of ``x``'s shape that does not overlap ``out``:
    the fast path's kernels read it as it is (the general path checks and broadcasts the rest).
    With ``rows`` (the last axis), also of a shape that broadcasts to ``x``'s over the leading
    axes only: an attention layout's padding or causal mask, whose rows the kernels read where
    they lie (``_numpy_backend.row_mask_of``)."""
    if type(where) is not np.ndarray or where.dtype is not _BOOL or not where.flags.c_contiguous:
        return False
    if where.shape != x.shape and not (rows and _broadcasts_over_leading_axes(where.shape, x.shape)):
        return False
    return out is None or not np.may_share_memory(where, out)


@lru_cache(maxsize=64)
def _broadcasts_over_leading_axes(mask_shape: tuple[int, ...], shape: tuple[int, ...]) -> bool:
    """A mask of ``mask_shape`` broadcasts to ``shape`` over its leading axes only (as many
    entries in a row; no more axes; each of the others 1 or ``shape``'s).  Remembered: checking
    took 0.9 us of a 5.5 us masked 8 x 10 softmax, the cache's lookup 0.15."""
    return (
        0 < len(mask_shape) <= len(shape)
        and mask_shape[-1] == shape[-1]
        and all(m == 1 or m == s for m, s in zip(mask_shape[-2::-1], shape[-2::-1]))
    )


def _softmax_family(
    function: str,
    x: ArrayLike,
    axis: AxisLike,
    *,
    mode: int,
    negate: bool,
    temperature: float,
    where: ArrayLike | None,
    dtype: DTypeLike | None,
    out: np.ndarray | None,
) -> np.ndarray:
    if (
        type(x) is np.ndarray
        and type(axis) is int
        and dtype is None
        and x.dtype in FAST_DTYPES
        and -x.ndim <= axis < x.ndim
        and x.size > 0
        and x.flags.c_contiguous
        and (out is None or _is_plain_out(out, x))
        and (where is None or _is_plain_mask(where, x, out, rows=axis == -1 or axis == x.ndim - 1))
    ):
        # Small calls (an RL policy's 8 x 10 logits, millions of times, masked or not) must not
        # pay for the general layout machinery; this is the same kernel, reached with fewer checks.
        t = 1.0 if type(temperature) in (float, int) and temperature == 1 else check_temperature(temperature)
        if axis == -1 or axis == x.ndim - 1:
            return backend.softmax_last_axis(x, mode=mode, negate=negate, temperature=t, out=out, where=where)
        return backend.softmax_other_axis(x, axis % x.ndim, mode=mode, negate=negate, temperature=t, out=out,
                                          where=where)
    array = as_numpy_input(x, function)
    axes = normalize_axes(axis, array.ndim)
    policy = resolve_dtypes(array.dtype, dtype, allow_complex=False, function=function)
    if dtype is not None:
        array = _cast_first(array, dtype)
    t = check_temperature(temperature)
    mask = _check_where(where, array.shape, function)
    out = _check_out(out, array.shape, policy.result, function)
    return backend.softmax_family(
        array,
        axes,
        mode=mode,
        negate=negate,
        temperature=t,
        where=mask,
        kernel_dtype=policy.kernel,
        result_dtype=policy.result,
        out=out,
    )


def softmax(
    x: ArrayLike,
    /,
    axis: AxisLike = -1,
    *,
    temperature: float = 1.0,
    where: ArrayLike | None = None,
    dtype: DTypeLike | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    r"""Softmax along ``axis``: ``exp(x / T) / sum(exp(x / T))``, correct on every input.

    Parameters
    ----------
    x : array_like
        Input values (logits).  Integers and booleans are promoted to float64; float16 and
        bfloat16 are computed in float32 and returned in their own dtype.
    axis : int, tuple of ints or None, optional
        Axis or axes normalised together; ``None`` normalises over every element.  The
        default, ``-1``, normalises each row of a batch.
    temperature : float, optional
        Positive finite divisor of ``x``.  Large values flatten the distribution.
    where : array_like of bool, optional
        Entries where this is False are left out: their probability is exactly 0 and they do
        not enter the normalising sum.  Must broadcast to ``x``.  A mask of length 1 along
        ``axis`` (a query-padding mask ``(B, 1, T, 1)``, a pixel mask ``(N, 1, H, W)`` over the
        channels) keeps or drops whole slices and costs little more than no mask.
    dtype : dtype, optional
        Cast ``x`` to this floating dtype before computing (like ``torch.softmax``).
    out : ndarray, optional
        Where to write the result; may be ``x`` itself (in place).  Must have the result's
        shape and a dtype the result can be cast to (``same_kind``).

    Returns
    -------
    ndarray
        Probabilities with the shape of ``x``; ``out`` if given.

    Raises
    ------
    numpy.exceptions.AxisError
        If an axis is out of range or repeated.
    TypeError
        If the dtype is not supported (complex, object, ...) or an option has the wrong type.
    ValueError
        If ``temperature`` is not positive and finite, ``where`` does not broadcast, or ``out``
        has the wrong shape or is read-only.

    See Also
    --------
    log_softmax : Its logarithm, computed without forming ``log(softmax)``.
    softmin : Softmax of ``-x``.
    logsumexp : The normalising constant.

    Notes
    -----
    With :math:`m = \max_j x_j` over the slice,

    .. math:: \operatorname{softmax}(x)_i = \frac{e^{(x_i - m)/T}}{\sum_j e^{(x_j - m)/T}}

    where :math:`x_i - m` is computed exactly (the rounding of that difference is what makes a
    naive float32 softmax tens of ulp wrong when :math:`|x_i - m|` is large).  Results are
    within 4 ulp of the exact softmax for float32 and float64, and within 1 ulp of the
    correctly rounded value for float16.  The limits are taken where peers return NaN: a slice
    that is entirely ``-inf`` or entirely masked gives 0 everywhere, and ``k`` entries equal
    to ``+inf`` share the probability (``1/k`` each).  A NaN makes its slice NaN.

    Examples
    --------
    >>> import numpy as np
    >>> import softmaxkit as sk
    >>> sk.softmax(np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]))
    array([[0.09003057, 0.24472847, 0.66524096],
           [0.09003057, 0.24472847, 0.66524096]])

    Large inputs do not overflow, and a fully masked row gives zeros rather than NaN:

    >>> sk.softmax([1000.0, 5.0])
    array([1., 0.])
    >>> sk.softmax([[1.0, 2.0], [3.0, 4.0]], where=[[True, True], [False, False]])
    array([[0.26894142, 0.73105858],
           [0.        , 0.        ]])
    """
    return _softmax_family(
        "softmax", x, axis, mode=MODE_SOFTMAX, negate=False, temperature=temperature,
        where=where, dtype=dtype, out=out,
    )


def log_softmax(
    x: ArrayLike,
    /,
    axis: AxisLike = -1,
    *,
    temperature: float = 1.0,
    where: ArrayLike | None = None,
    dtype: DTypeLike | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    r"""Logarithm of :func:`softmax`: ``x / T - logsumexp(x / T)`` along ``axis``.

    Parameters
    ----------
    x : array_like
        Input values.  Same dtype policy as :func:`softmax`.
    axis : int, tuple of ints or None, optional
        Axis or axes normalised together; ``None`` for every element.  Default ``-1``.
    temperature : float, optional
        Positive finite divisor of ``x``.
    where : array_like of bool, optional
        Entries where this is False are left out and get ``-inf``.
    dtype : dtype, optional
        Cast ``x`` to this floating dtype before computing.
    out : ndarray, optional
        Where to write the result; may be ``x`` itself.

    Returns
    -------
    ndarray
        Log-probabilities with the shape of ``x``; ``out`` if given.

    Raises
    ------
    numpy.exceptions.AxisError
        If an axis is out of range or repeated.
    TypeError
        If the dtype is not supported or an option has the wrong type.
    ValueError
        If ``temperature``, ``where`` or ``out`` is invalid.

    See Also
    --------
    softmax, logsumexp

    Notes
    -----
    Computed as :math:`(x_i - m)/T - \log \sum_j e^{(x_j - m)/T}` with :math:`x_i - m`
    exact and the sum split into the terms equal to the maximum and the rest, so that
    :math:`\log(k + r) = \log k + \operatorname{log1p}(r/k)` keeps tiny tails.  Within 4 ulp
    (4 ulp of 1 near 0).  A fully ``-inf`` or fully masked slice gives ``-inf``; with ``k``
    entries at ``+inf`` those get ``-log(k)`` and the rest ``-inf``.

    Examples
    --------
    >>> import softmaxkit as sk
    >>> sk.log_softmax([1.0, 2.0, 3.0])
    array([-2.40760596, -1.40760596, -0.40760596])
    >>> sk.log_softmax([0.0, -40.0])
    array([-4.24835426e-18, -4.00000000e+01])
    """
    return _softmax_family(
        "log_softmax", x, axis, mode=MODE_LOG_SOFTMAX, negate=False, temperature=temperature,
        where=where, dtype=dtype, out=out,
    )


def softmin(
    x: ArrayLike,
    /,
    axis: AxisLike = -1,
    *,
    temperature: float = 1.0,
    where: ArrayLike | None = None,
    dtype: DTypeLike | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Softmin along ``axis``: the softmax of ``-x / T``; small values get the most weight.

    Parameters
    ----------
    x : array_like
        Input values.  Same dtype policy as :func:`softmax`.
    axis : int, tuple of ints or None, optional
        Axis or axes normalised together; ``None`` for every element.  Default ``-1``.
    temperature : float, optional
        Positive finite divisor of ``-x``.
    where : array_like of bool, optional
        Entries where this is False are left out and get probability 0.
    dtype : dtype, optional
        Cast ``x`` to this floating dtype before computing.
    out : ndarray, optional
        Where to write the result; may be ``x`` itself.

    Returns
    -------
    ndarray
        Probabilities with the shape of ``x``; ``out`` if given.

    Raises
    ------
    numpy.exceptions.AxisError
        If an axis is out of range or repeated.
    TypeError
        If the dtype is not supported or an option has the wrong type.
    ValueError
        If ``temperature``, ``where`` or ``out`` is invalid.

    See Also
    --------
    softmax

    Notes
    -----
    Same accuracy and limits as :func:`softmax` applied to ``-x`` (negation is exact): a
    slice of ``+inf`` entries only gives 0, ``k`` entries at ``-inf`` share the probability.

    Examples
    --------
    >>> import softmaxkit as sk
    >>> sk.softmin([1.0, 2.0, 3.0])
    array([0.66524096, 0.24472847, 0.09003057])
    """
    return _softmax_family(
        "softmin", x, axis, mode=MODE_SOFTMAX, negate=True, temperature=temperature,
        where=where, dtype=dtype, out=out,
    )


@overload
def logsumexp(
    a: ArrayLike,
    /,
    axis: AxisLike = ...,
    *,
    b: ArrayLike | None = ...,
    keepdims: bool = ...,
    return_sign: Literal[False] = ...,
    where: ArrayLike | None = ...,
    dtype: DTypeLike | None = ...,
    out: np.ndarray | None = ...,
) -> np.ndarray: ...


@overload
def logsumexp(
    a: ArrayLike,
    /,
    axis: AxisLike = ...,
    *,
    b: ArrayLike | None = ...,
    keepdims: bool = ...,
    return_sign: Literal[True],
    where: ArrayLike | None = ...,
    dtype: DTypeLike | None = ...,
    out: np.ndarray | None = ...,
) -> tuple[np.ndarray, np.ndarray]: ...


def logsumexp(
    a: ArrayLike,
    /,
    axis: AxisLike = None,
    *,
    b: ArrayLike | None = None,
    keepdims: bool = False,
    return_sign: bool = False,
    where: ArrayLike | None = None,
    dtype: DTypeLike | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    r"""``log(sum(b * exp(a)))`` over ``axis``, computed without overflow or lost tails.

    A superset of :func:`scipy.special.logsumexp`: same arguments and results (wherever
    SciPy's are finite and correct), plus ``where``, ``dtype`` and ``out``.

    Parameters
    ----------
    a : array_like
        Input values; real (promoted like :func:`softmax`) or complex.
    axis : int, tuple of ints or None, optional
        Axis or axes to reduce; ``None`` (the default) reduces every element.
    b : array_like, optional
        Weights broadcastable to ``a``; may be negative (then use ``return_sign``).  Entries
        with ``b == 0`` are left out, so an infinite or NaN ``a`` there has no effect.
    keepdims : bool, optional
        Keep the reduced axes as length-1 dimensions.
    return_sign : bool, optional
        Return ``(log|s|, sign(s))`` instead of ``log(s)``; otherwise a negative sum gives NaN.
    where : array_like of bool, optional
        Entries where this is False are left out of the sum.  Must broadcast to ``a``.
    dtype : dtype, optional
        Cast ``a`` to this floating or complex dtype before computing.
    out : ndarray, optional
        Where to write the result (the first element of the pair with ``return_sign``).

    Returns
    -------
    res : ndarray
        The reduced result (0-d for a full reduction).
    sgn : ndarray
        Only with ``return_sign=True``: +1, 0 or -1 (real input) or the complex phase of the sum.

    Raises
    ------
    numpy.exceptions.AxisError
        If an axis is out of range or repeated.
    TypeError
        If the dtype is not supported or an option has the wrong type.
    ValueError
        If ``where``, ``b`` or ``out`` has the wrong shape, or ``out`` is read-only.

    See Also
    --------
    scipy.special.logsumexp, softmax, log_softmax

    Notes
    -----
    With :math:`m = \max_i a_i`, :math:`k` the number of entries equal to :math:`m` and
    :math:`r = \sum_{a_i < m} e^{a_i - m}`,

    .. math:: \operatorname{logsumexp}(a) = m + \log k + \operatorname{log1p}(r / k)

    (with weights, :math:`k` becomes the sum of the weights at the maximum).  The sum is
    accumulated in float64; results are within 4 ulp (4 ulp of 1 near 0).  An empty reduction
    or a fully ``-inf``/masked slice gives ``-inf``; any ``+inf`` gives ``+inf``; NaN wins.

    References
    ----------
    .. [1] P. Blanchard, D. J. Higham, N. J. Higham, "Accurately computing the log-sum-exp and
       softmax functions", IMA Journal of Numerical Analysis 41(4), 2021.

    Examples
    --------
    >>> import numpy as np
    >>> import softmaxkit as sk
    >>> sk.logsumexp(np.arange(10.0))
    array(9.45862974)
    >>> sk.logsumexp([0.0, -40.0])
    array(4.24835426e-18)
    >>> sk.logsumexp([1.0, 2.0], b=[1.0, -1.0], return_sign=True)
    (array(1.54132485), array(-1.))
    >>> sk.logsumexp([[0.0, 0.0], [1.0, 1.0]], axis=1)
    array([0.69314718, 1.69314718])
    """
    # over the rows of a C-contiguous array: all of it, or its last axis
    over_rows = axis is None or (
        type(axis) is int and type(a) is np.ndarray and a.ndim >= 1 and axis in (-1, a.ndim - 1)
    )
    if (
        type(a) is np.ndarray
        and b is None
        and dtype is None
        and return_sign is False
        and (axis is None or type(axis) is int)
        and type(keepdims) is bool
        and a.dtype in FAST_DTYPES
        and a.size > 0
        and a.flags.c_contiguous
        and (where is None or _is_plain_mask(where, a, out, rows=over_rows and axis is not None))
    ):
        # The per-call-overhead path (as for softmax): one kernel call over C-contiguous rows,
        # or over the (outer, K, inner) columns of another axis, writing into ``out`` directly
        # when it is a plain result array (the general path's layout handling and copy took 20 us
        # of a 27 us call on 8x10, Xeon).
        if over_rows:
            rows = a.reshape(1, -1) if axis is None else a.reshape(-1, a.shape[-1])
            if axis is None:
                shape = (1,) * a.ndim if keepdims else ()
            else:
                shape = a.shape[:-1] + (1,) if keepdims else a.shape[:-1]
            mask = mask_rows = None
            if where is not None:
                if where.shape == a.shape:
                    mask = where.reshape(rows.shape)
                else:  # broadcast over the leading axes: its rows, read where they lie
                    mask, mask_rows = where.reshape(-1, a.shape[-1]), backend.row_mask_of(where.shape, a.shape)
            if out is None:
                return backend.logsumexp_rows(rows, mask=mask, mask_rows=mask_rows).reshape(shape)
            if _is_plain_out(out, a, shape):
                backend.logsumexp_rows(rows, out.reshape(-1), mask=mask, mask_rows=mask_rows)
                return out
        elif -a.ndim <= axis < a.ndim:
            axis %= a.ndim
            shape = a.shape[:axis] + ((1,) if keepdims else ()) + a.shape[axis + 1 :]
            if out is None:
                return backend.logsumexp_other_axis(a, axis, mask=where).reshape(shape)
            if _is_plain_out(out, a, shape):
                backend.logsumexp_other_axis(a, axis, out.reshape(-1), mask=where)
                return out
    array = as_numpy_input(a, "logsumexp")
    weights = None
    source_dtype = array.dtype
    if b is not None:
        weights = as_numpy_input(b, "logsumexp", argument="b")
        if weights.dtype.kind not in "biufc":
            raise TypeError(f"logsumexp: b must be numeric, got dtype {weights.dtype}")
        _check_broadcasts_to("b", weights.shape, array.shape, "logsumexp")
        if array.dtype.kind in "biufc":
            source_dtype = np.result_type(array.dtype, weights.dtype)
    axes = normalize_axes(axis, array.ndim)
    policy = resolve_dtypes(source_dtype, dtype, allow_complex=True, function="logsumexp")
    if dtype is not None:
        array = _cast_first(array, dtype)
    mask = _check_where(where, array.shape, "logsumexp")
    reduced_shape = tuple(1 if d in axes else s for d, s in enumerate(array.shape)) if keepdims else tuple(
        s for d, s in enumerate(array.shape) if d not in axes
    )
    res_dtype = policy.result
    out = _check_out(out, reduced_shape, res_dtype, "logsumexp")
    res, sign = backend.logsumexp(
        array,
        axes,
        b=weights,
        where=mask,
        return_sign=return_sign,
        kernel_dtype=policy.kernel,
        result_dtype=policy.result,
    )
    if return_sign and np.dtype(policy.result).kind == "c":
        # SciPy returns a real log-magnitude and a complex phase for complex input.
        res = res.real.copy()
    if keepdims:
        res = res.reshape(reduced_shape)
        sign = None if sign is None else sign.reshape(reduced_shape)
    if out is not None:
        np.copyto(out, res, casting="same_kind")
        res = out
    return (res, sign) if return_sign else res


def _backward(function: str, grad: ArrayLike, y: ArrayLike, axis: AxisLike, *, log: bool) -> np.ndarray:
    g = as_numpy_input(grad, function, argument="grad")
    yy = as_numpy_input(y, function, argument="y")
    if g.shape != yy.shape:
        raise ValueError(f"{function}: grad has shape {g.shape} but y has shape {yy.shape}; they must match")
    axes = normalize_axes(axis, g.ndim)
    for name, arr in (("grad", g), ("y", yy)):
        if arr.dtype.kind not in "biuf" and arr.dtype.name != "bfloat16":
            raise TypeError(f"{function}: {name} has unsupported dtype {arr.dtype}; expected a real numeric dtype")
    policy = resolve_dtypes(np.result_type(g.dtype, yy.dtype), None, allow_complex=False, function=function)
    return backend.backward(g, yy, axes, log=log, kernel_dtype=policy.kernel, result_dtype=policy.result)


def softmax_backward(grad: ArrayLike, y: ArrayLike, /, axis: AxisLike = -1) -> np.ndarray:
    r"""Vector-Jacobian product of :func:`softmax` from its output: ``y * (g - sum(g * y))``.

    Parameters
    ----------
    grad : array_like
        Gradient of the loss with respect to the softmax output ``y``.
    y : array_like
        The softmax output, same shape as ``grad``.
    axis : int, tuple of ints or None, optional
        The axis or axes the forward softmax normalised over.  Default ``-1``.

    Returns
    -------
    ndarray
        Gradient with respect to the softmax input.

    Raises
    ------
    ValueError
        If ``grad`` and ``y`` have different shapes.
    numpy.exceptions.AxisError
        If an axis is out of range or repeated.

    See Also
    --------
    log_softmax_backward

    Notes
    -----
    The Jacobian of softmax is :math:`\operatorname{diag}(y) - y y^T`, so
    :math:`g^T J = y \odot (g - \langle g, y \rangle)`.  The sum is accumulated in float64.

    Examples
    --------
    >>> import softmaxkit as sk
    >>> y = sk.softmax([1.0, 2.0, 3.0])
    >>> sk.softmax_backward([1.0, 0.0, 0.0], y)
    array([ 0.08192507, -0.02203304, -0.05989202])
    """
    return _backward("softmax_backward", grad, y, axis, log=False)


def log_softmax_backward(grad: ArrayLike, y: ArrayLike, /, axis: AxisLike = -1) -> np.ndarray:
    r"""Vector-Jacobian product of :func:`log_softmax` from its output: ``g - exp(y) * sum(g)``.

    Parameters
    ----------
    grad : array_like
        Gradient of the loss with respect to the log_softmax output ``y``.
    y : array_like
        The log_softmax output, same shape as ``grad``.
    axis : int, tuple of ints or None, optional
        The axis or axes the forward log_softmax normalised over.  Default ``-1``.

    Returns
    -------
    ndarray
        Gradient with respect to the log_softmax input.

    Raises
    ------
    ValueError
        If ``grad`` and ``y`` have different shapes.
    numpy.exceptions.AxisError
        If an axis is out of range or repeated.

    See Also
    --------
    softmax_backward

    Notes
    -----
    The Jacobian of log_softmax is :math:`I - \mathbf{1} \operatorname{softmax}(x)^T`, so
    :math:`g^T J = g - e^{y} \sum_j g_j`.

    Examples
    --------
    >>> import softmaxkit as sk
    >>> y = sk.log_softmax([1.0, 2.0, 3.0])
    >>> sk.log_softmax_backward([1.0, 0.0, 0.0], y)
    array([ 0.90996943, -0.24472847, -0.66524096])
    """
    return _backward("log_softmax_backward", grad, y, axis, log=True)
