"""numba kernels behind ``softmaxkit.foreach``: one generic unary kernel per layout, chosen by op code.

Private; semantics live in ``softmaxkit.foreach``.  Every kernel is a plain loop over a contiguous
1-D block (callers flatten), so it never sees shapes or strides.

Compile-time budget: a kernel takes the op as an integer code and holds one vectorised loop per
op, so there are four functions (in place / out of place, serial / parallel) compiled for two
signatures each (float32, float64), instead of one compile per op.  Signatures are compiled
explicitly on first use and further compilation is disabled, so an argument of any other type
(a 2-D, strided, read-only or integer array) raises ``TypeError`` at the call instead of
silently compiling a new specialisation; the front end treats that as "take the general path".
"""

from __future__ import annotations

import threading

import numpy as np
from numba import njit, prange, types
from numba.extending import overload

from .._kernels._fastmath import REDUCTION
from . import _vecmath as vm

# Op codes.  Order is irrelevant; values must stay stable only within one process.
LOG1P, LOG, LOG2, LOG10, EXP, EXPM1, SIGMOID, TANH, ERF, ERFC, LGAMMA = range(11)

#: Elements per parallel work item: big enough to amortise scheduling, small enough to balance.
PARALLEL_CHUNK = 32768

_LOOP = {"fastmath": REDUCTION, "error_model": "numpy", "cache": True, "nogil": True}


def _generic(name: str, f32, f64):
    """A numba-only generic scalar function dispatching on float32/float64 by type."""

    def stub(x):  # pragma: no cover - replaced by the overload inside numba
        raise NotImplementedError(f"{name} is callable from numba-compiled code only")

    stub.__name__ = name

    @overload(stub, inline="never")
    def _impl(x):
        if x == types.float32:
            return lambda x: f32(x)
        if x == types.float64:
            return lambda x: f64(x)
        return None

    return stub


g_log1p = _generic("g_log1p", vm.log1p_f32, vm.log1p_f64)
g_log = _generic("g_log", vm.log_f32, vm.log_f64)
g_log2 = _generic("g_log2", vm.log2_f32, vm.log2_f64)
g_log10 = _generic("g_log10", vm.log10_f32, vm.log10_f64)
g_exp = _generic("g_exp", vm.exp_f32, vm.exp_f64)
g_expm1 = _generic("g_expm1", vm.expm1_f32, vm.expm1_f64)
g_sigmoid = _generic("g_sigmoid", vm.sigmoid_f32, vm.sigmoid_f64)
g_tanh = _generic("g_tanh", vm.tanh_f32, vm.tanh_f64)
g_erf = _generic("g_erf", vm.erf_f32, vm.erf_f64)
g_erfc = _generic("g_erfc", vm.erfc_f32, vm.erfc_f64)
g_lgamma = _generic("g_lgamma", vm.lgamma_f32, vm.lgamma_f64)


@njit(**_LOOP)
def unary_inplace(op, x):
    """``x[i] = f_op(x[i])`` over a contiguous 1-D array (one loop per op, so each vectorises)."""
    n = x.size
    if op == LOG1P:
        for i in range(n):
            x[i] = g_log1p(x[i])
    elif op == LOG:
        for i in range(n):
            x[i] = g_log(x[i])
    elif op == LOG2:
        for i in range(n):
            x[i] = g_log2(x[i])
    elif op == LOG10:
        for i in range(n):
            x[i] = g_log10(x[i])
    elif op == EXP:
        for i in range(n):
            x[i] = g_exp(x[i])
    elif op == EXPM1:
        for i in range(n):
            x[i] = g_expm1(x[i])
    elif op == SIGMOID:
        for i in range(n):
            x[i] = g_sigmoid(x[i])
    elif op == TANH:
        for i in range(n):
            x[i] = g_tanh(x[i])
    elif op == ERF:
        for i in range(n):
            x[i] = g_erf(x[i])
    elif op == ERFC:
        for i in range(n):
            x[i] = g_erfc(x[i])
    elif op == LGAMMA:
        for i in range(n):
            x[i] = g_lgamma(x[i])


@njit(**_LOOP)
def unary_out(op, x, out):
    """``out[i] = f_op(x[i])`` over contiguous 1-D arrays of one dtype (``out`` is not ``x``)."""
    n = x.size
    if op == LOG1P:
        for i in range(n):
            out[i] = g_log1p(x[i])
    elif op == LOG:
        for i in range(n):
            out[i] = g_log(x[i])
    elif op == LOG2:
        for i in range(n):
            out[i] = g_log2(x[i])
    elif op == LOG10:
        for i in range(n):
            out[i] = g_log10(x[i])
    elif op == EXP:
        for i in range(n):
            out[i] = g_exp(x[i])
    elif op == EXPM1:
        for i in range(n):
            out[i] = g_expm1(x[i])
    elif op == SIGMOID:
        for i in range(n):
            out[i] = g_sigmoid(x[i])
    elif op == TANH:
        for i in range(n):
            out[i] = g_tanh(x[i])
    elif op == ERF:
        for i in range(n):
            out[i] = g_erf(x[i])
    elif op == ERFC:
        for i in range(n):
            out[i] = g_erfc(x[i])
    elif op == LGAMMA:
        for i in range(n):
            out[i] = g_lgamma(x[i])


@njit(parallel=True, **_LOOP)
def unary_inplace_parallel(op, x):
    """:func:`unary_inplace` split into ``PARALLEL_CHUNK`` blocks run across threads."""
    n = x.size
    nchunks = (n + PARALLEL_CHUNK - 1) // PARALLEL_CHUNK
    for c in prange(nchunks):
        lo = c * PARALLEL_CHUNK
        hi = min(lo + PARALLEL_CHUNK, n)
        unary_inplace(op, x[lo:hi])


@njit(parallel=True, **_LOOP)
def unary_out_parallel(op, x, out):
    """:func:`unary_out` split into ``PARALLEL_CHUNK`` blocks run across threads."""
    n = x.size
    nchunks = (n + PARALLEL_CHUNK - 1) // PARALLEL_CHUNK
    for c in prange(nchunks):
        lo = c * PARALLEL_CHUNK
        hi = min(lo + PARALLEL_CHUNK, n)
        unary_out(op, x[lo:hi], out[lo:hi])


_INPLACE_SIGS = [types.void(types.int64, types.Array(t, 1, "C")) for t in (types.float32, types.float64)]
# A read-only input is copied and computed in place rather than doubling these signatures.
_OUT_SIGS = [
    types.void(types.int64, types.Array(t, 1, "C"), types.Array(t, 1, "C"))
    for t in (types.float32, types.float64)
]

_ready = False
_ready_lock = threading.Lock()


def ensure_compiled() -> None:
    """Compile (or load from numba's disk cache) the fixed signatures, then freeze the dispatchers."""
    global _ready
    if _ready:
        return
    with _ready_lock:
        if _ready:
            return
        for kernel in (unary_inplace, unary_inplace_parallel):
            for sig in _INPLACE_SIGS:
                kernel.compile(sig)
            kernel.disable_compile()
        for kernel in (unary_out, unary_out_parallel):
            for sig in _OUT_SIGS:
                kernel.compile(sig)
            kernel.disable_compile()
        _ready = True


#: dtypes the kernels take directly.
KERNEL_DTYPES = frozenset({np.dtype(np.float32), np.dtype(np.float64)})
