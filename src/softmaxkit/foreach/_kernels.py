"""numba kernels behind ``softmaxkit.foreach``: one generic unary kernel per layout, chosen by op code.

Private; semantics live in ``softmaxkit.foreach``.  Every kernel is a plain loop over a contiguous
1-D block (callers flatten), so it never sees shapes or strides.

Compile-time budget: a kernel takes the op as an integer code and holds one vectorised loop per
op, so there are two functions (in place, out of place) compiled for two signatures each
(float32, float64), instead of one compile per op.  Large arrays are split into blocks that run on
several threads (the kernels release the GIL), see :func:`run_chunked`.  Signatures are compiled
explicitly on first use and further compilation is disabled, so an argument of any other type
(a 2-D, strided, read-only or integer array) raises ``TypeError`` at the call instead of
silently compiling a new specialisation; the front end treats that as "take the general path".
"""

from __future__ import annotations

import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from numba import njit, types
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


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        with _ready_lock:
            if _POOL is None:
                _POOL = ThreadPoolExecutor(max_workers=max(1, (os.cpu_count() or 2) - 1), thread_name_prefix="softmaxkit-foreach")
    return _POOL


def run_chunked(kernel, code: int, *flats: np.ndarray) -> None:
    """Run a serial ``nogil`` kernel over ``PARALLEL_CHUNK`` blocks on the caller plus worker threads.

    Blocks are claimed from a shared counter, so the caller never waits for a worker that has
    not started: it takes that worker's blocks itself and cancels the worker's task.  An OpenMP
    ``prange`` kernel was measured here to run up to 8x slower than the serial kernel when other
    processes kept the cores busy (its static schedule and spinning barrier wait for a descheduled
    thread); this scheme degrades to the serial speed instead.  Threads: numba's
    ``get_num_threads()`` (``softmaxkit.set_num_threads`` / ``numba.set_num_threads``).
    """
    n = flats[0].size
    nchunks = (n + PARALLEL_CHUNK - 1) // PARALLEL_CHUNK
    nthreads = min(numba.get_num_threads(), nchunks)
    if nthreads <= 1:
        kernel(code, *flats)
        return
    counter = itertools.count()

    def work() -> None:
        while True:
            c = next(counter)  # atomic under the GIL
            if c >= nchunks:
                return
            lo = c * PARALLEL_CHUNK
            hi = lo + PARALLEL_CHUNK
            kernel(code, *[f[lo:hi] for f in flats])

    pool = _pool()
    futures = [pool.submit(work) for _ in range(nthreads - 1)]
    work()
    for fut in futures:
        if not fut.cancel():
            fut.result()


def unary_inplace_parallel(code: int, x: np.ndarray) -> None:
    """:func:`unary_inplace` split into blocks run on several threads (see :func:`run_chunked`)."""
    run_chunked(unary_inplace, code, x)


def unary_out_parallel(code: int, x: np.ndarray, out: np.ndarray) -> None:
    """:func:`unary_out` split into blocks run on several threads (see :func:`run_chunked`)."""
    run_chunked(unary_out, code, x, out)


_INPLACE_SIGS = [types.void(types.int64, types.Array(t, 1, "C")) for t in (types.float32, types.float64)]
# A read-only input is copied and computed in place rather than doubling these signatures.
_OUT_SIGS = [
    types.void(types.int64, types.Array(t, 1, "C"), types.Array(t, 1, "C"))
    for t in (types.float32, types.float64)
]

_ready = False
_ready_lock = threading.Lock()
_POOL: ThreadPoolExecutor | None = None


def ensure_compiled() -> None:
    """Compile (or load from numba's disk cache) the fixed signatures, then freeze the dispatchers."""
    global _ready
    if _ready:
        return
    with _ready_lock:
        if _ready:
            return
        for sig in _INPLACE_SIGS:
            unary_inplace.compile(sig)
        unary_inplace.disable_compile()
        for sig in _OUT_SIGS:
            unary_out.compile(sig)
        unary_out.disable_compile()
        _ready = True


#: dtypes the kernels take directly.
KERNEL_DTYPES = frozenset({np.dtype(np.float32), np.dtype(np.float64)})
