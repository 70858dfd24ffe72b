"""numba kernels behind ``softmaxkit.foreach``: one generic unary kernel per layout, chosen by op code.

Private; semantics live in ``softmaxkit.foreach``.  This module imports numba, so the front end
(``_ops``) imports it on the first op that needs a kernel, never at ``import softmaxkit.foreach``.

Compile-time budget: a kernel takes the op as an integer code and holds one vectorised loop per
op, so each layout is one function compiled for float32 and float64 instead of one compile per op.
Signatures are compiled explicitly on first use and further compilation is disabled, so an argument
of any other type raises ``TypeError`` at the call instead of silently compiling a new
specialisation.

Threads.  Large work is cut into blocks of ``BLOCK`` elements that the calling thread and pool
workers claim from a shared counter with an atomic increment inside the kernels, which release the
GIL; so no Python runs between blocks.  An OpenMP ``prange`` kernel was measured here to run up to
8x slower than the serial kernel when other processes kept the cores busy (its static schedule and
spinning barrier wait for a descheduled thread); with claimed blocks the caller takes the blocks of
a worker that has not started (and cancels it), so a busy machine degrades to single-thread speed.
Threads: numba's ``get_num_threads()`` (``softmaxkit.set_num_threads``).

Lists.  An in-place op on a list of arrays runs as one kernel over a table of data addresses: the
arrays' elements are numbered consecutively and blocks of those numbers are claimed as above, so
1,000 arrays of 1,000 elements share the threads like one array of 10**6.  Reading a data pointer
from Python costs about 1.4 us per array (``ctypes.data``); :func:`survey_list` instead reads each
object's fields from its memory in one call, about 5-20 ns per array: the tuple's items, each
item's ``ob_type``, and ``PyArrayObject``'s data, nd, dimensions, descr and flags, and the
descr's ``type_num`` and ``byteorder``.  These layouts are fixed by CPython's and NumPy's C ABIs
(NumPy's public macros read the fields directly, so extensions compiled against it depend on
them); they are still checked on probe arrays before first use (:func:`_layout_ok`), and if they
do not match, lists take the per-array path.
"""

from __future__ import annotations

import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from .._kernels._fastmath import REDUCTION, callee_overload, kernel
from .._kernels._intrinsics import prefetch_address
from . import _vecmath as vm

# Op codes.  Kernels read them as compile-time globals, so they live in this file: editing them
# invalidates numba's cache of these kernels (edits in another module would not).
LOG1P, LOG, LOG2, LOG10, EXP, EXPM1, SIGMOID, TANH, ERF, ERFC, LGAMMA = range(11)
#: op name -> code, for the front end.
CODES = {
    "log1p": LOG1P, "log": LOG, "log2": LOG2, "log10": LOG10, "exp": EXP, "expm1": EXPM1,
    "sigmoid": SIGMOID, "tanh": TANH, "erf": ERF, "erfc": ERFC, "lgamma": LGAMMA,
}

#: Elements per block a thread claims: big enough to amortise the claim, small enough to balance
#: (and 128 KiB of float32, which stays in L2).
BLOCK = 32768
#: Work of this many elements or more is shared between threads.
PARALLEL_MIN_SIZE = 2 * BLOCK

_LOOP = {"fastmath": REDUCTION, "error_model": "numpy", "nogil": True}


def _generic(name: str, f32: Any, f64: Any) -> Any:
    """A numba-only generic scalar function dispatching on float32/float64 by type."""

    def stub(x):  # pragma: no cover - replaced by the overload inside numba
        raise NotImplementedError(f"{name} is callable from numba-compiled code only")

    stub.__name__ = name

    @callee_overload(stub, inline="never")
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


# ------------------------------------------------------------------------------------------------
# intrinsics: claiming blocks, and arrays at raw addresses


@intrinsic
def claim_block(typingctx, counter):
    """Atomically ``c = counter[0]; counter[0] += 1``; returns ``c`` (the next unclaimed block).

    Monotonic ordering is enough: threads write disjoint elements, and the caller learns that a
    worker is done through the future's lock, which orders the worker's writes before its reads.
    """
    if not (isinstance(counter, types.Array) and counter.dtype == types.int64 and counter.ndim == 1):
        return None

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        return builder.atomic_rmw("add", ary.data, ir.Constant(ir.IntType(64), 1), "monotonic")

    return types.int64(counter), codegen


@intrinsic
def address_as_pointer(typingctx, address, dtype):
    """The integer ``address`` as a pointer to ``dtype`` (for ``numba.carray``)."""
    if not (isinstance(address, types.Integer) and isinstance(dtype, types.NumberClass)):
        return None
    ptr_type = types.CPointer(dtype.instance_type)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(ptr_type))

    return ptr_type(address, dtype), codegen


# ------------------------------------------------------------------------------------------------
# loops over one contiguous 1-D block


@kernel(**_LOOP)
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


@kernel(**_LOOP)
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


# ------------------------------------------------------------------------------------------------
# blocks claimed by several threads

#: Rows of the table :func:`survey` fills (data address, running total of sizes, float64 or not,
#: and the byte ranges of the non-empty arrays).
_ADDRESS, _END, _WIDE, _START, _STOP = range(5)


@kernel(**_LOOP)
def unary_inplace_blocks(op, x, counter, block):
    """:func:`unary_inplace` on blocks of ``x`` claimed from ``counter`` until none is left."""
    n = x.size
    nblocks = (n + block - 1) // block
    while True:
        c = claim_block(counter)
        if c >= nblocks:
            return
        lo = c * block
        unary_inplace(op, x[lo : min(lo + block, n)])


@kernel(**_LOOP)
def unary_out_blocks(op, x, out, counter, block):
    """:func:`unary_out` on blocks claimed from ``counter`` until none is left."""
    n = x.size
    nblocks = (n + block - 1) // block
    while True:
        c = claim_block(counter)
        if c >= nblocks:
            return
        lo = c * block
        hi = min(lo + block, n)
        unary_out(op, x[lo:hi], out[lo:hi])


@kernel(**_LOOP)
def unary_inplace_list(op, table, counter, block):
    """:func:`unary_inplace` over a list of arrays given by data address, in claimed blocks.

    ``table`` is :func:`survey`'s: array ``j`` is at ``table[_ADDRESS, j]``, float64 where
    ``table[_WIDE, j]`` is 1 and float32 otherwise, and holds elements ``ends[j-1] .. ends[j]`` of
    the list's consecutive numbering (``ends = table[_END]``, the running total of the sizes).
    Blocks of ``block`` numbers are claimed from ``counter``; one thread claims them in order, so it
    updates the arrays in list order (an array listed twice is updated twice, one pass after the
    other).
    """
    addresses = table[_ADDRESS]
    ends = table[_END]
    wide = table[_WIDE]
    total = ends[ends.size - 1]
    nblocks = (total + block - 1) // block
    while True:
        c = claim_block(counter)
        if c >= nblocks:
            return
        lo = c * block
        hi = min(lo + block, total)
        j = np.searchsorted(ends, lo, side="right")
        while lo < hi:
            start = ends[j - 1] if j > 0 else 0
            stop = min(ends[j], hi)
            if stop > lo:
                if wide[j]:
                    ptr64 = address_as_pointer(addresses[j] + (lo - start) * 8, np.float64)
                    unary_inplace(op, numba.carray(ptr64, stop - lo))
                else:
                    ptr32 = address_as_pointer(addresses[j] + (lo - start) * 4, np.float32)
                    unary_inplace(op, numba.carray(ptr32, stop - lo))
                lo = stop
            j += 1


# ------------------------------------------------------------------------------------------------
# reading a list of ndarrays without Python: object layouts

# NumPy's flag bits (numpy/ndarraytypes.h).
_C_CONTIGUOUS = 0x0001
_ALIGNED = 0x0100
_WRITEABLE = 0x0400

_HEAD = object.__basicsize__ // 8  # pointer-sized words of PyObject_HEAD; ob_type is the last
#: Offsets the survey reads, passed as an argument (not compiled in, so numba's cache never
#: holds a stale copy): see :func:`survey_list` for the fields.
_LAYOUT = np.array(
    [
        _HEAD - 1,  # word of ob_type in any object
        _HEAD,  # word where PyArrayObject_fields begin: data, nd, dimensions, strides, base, descr, flags
        tuple.__basicsize__ // 8,  # word of a tuple's first item
        id(np.ndarray),
        8 * _HEAD + 10,  # byte of PyArray_Descr.byteorder (after PyObject_HEAD, typeobj, kind, type)
        (8 * _HEAD + 12) // 4,  # int32 index of PyArray_Descr.type_num
        np.dtype(np.float32).num,
        np.dtype(np.float64).num,
        ord("="),
    ],
    np.int64,
)

#: :func:`survey_list`'s overlap answers.
NO_OVERLAP, OVERLAP, UNSORTED = 0, 1, 2
#: Up to this many non-empty arrays out of address order, the survey compares every pair.
PAIRWISE_MAX = 64


@kernel()
def survey_list(items, n, layout, table):
    """Read the ndarrays of the tuple at address ``items`` (``n`` items) from their headers.

    For every item ``j``: if it is an exact ``np.ndarray`` of native float32 or float64, fills
    ``table[_ADDRESS, j]`` (data pointer), ``table[_END, j]`` (running total of the sizes) and
    ``table[_WIDE, j]`` (1 for float64); the byte ranges of the non-empty arrays go to the
    ``_START``/``_STOP`` rows.  Returns ``(first other item, first read-only array, first array that
    is not C-contiguous and aligned, number of non-empty arrays, overlap)``, -1 meaning "none";
    ``overlap`` is NO_OVERLAP or OVERLAP, or UNSORTED when the ranges are not in address order and
    the caller must sort them to tell.  Holds the GIL: the headers must not change while read.
    """
    type_word, head, tuple_items, ndarray_type, byteorder_at, type_num_at, f32_num, f64_num, native = layout
    objects = numba.carray(address_as_pointer(items, np.int64), tuple_items + n)
    first_read_only = -1
    first_unsuitable = -1
    total = 0
    nonempty = 0
    in_order = True
    overlap = False
    reach = 0
    for j in range(n):
        if j + 8 < n:  # headers are scattered in memory: ask for them ahead (a prefetch never faults)
            prefetch_address(objects[tuple_items + j + 8])
        obj = objects[tuple_items + j]
        words = numba.carray(address_as_pointer(obj, np.int64), head + 7)
        if words[type_word] != ndarray_type:  # read nothing else of an object of another type
            return j, -1, -1, 0, NO_OVERLAP
        descr = words[head + 5]
        type_num = numba.carray(address_as_pointer(descr, np.int32), type_num_at + 1)[type_num_at]
        byteorder = numba.carray(address_as_pointer(descr, np.uint8), byteorder_at + 1)[byteorder_at]
        if byteorder != native or (type_num != f32_num and type_num != f64_num):
            return j, -1, -1, 0, NO_OVERLAP
        ints = numba.carray(address_as_pointer(obj, np.int32), 2 * (head + 7))
        nd = ints[2 * (head + 1)]
        flags = ints[2 * (head + 6)]
        size = 1
        if nd > 0:
            dims = numba.carray(address_as_pointer(words[head + 2], np.int64), nd)
            for d in range(nd):
                size *= dims[d]
        wide = type_num == f64_num
        address = words[head]
        total += size
        table[_ADDRESS, j] = address
        table[_END, j] = total
        table[_WIDE, j] = wide
        if first_read_only < 0 and flags & _WRITEABLE == 0:
            first_read_only = j
        if first_unsuitable < 0 and flags & (_C_CONTIGUOUS | _ALIGNED) != (_C_CONTIGUOUS | _ALIGNED):
            first_unsuitable = j
        if size > 0:
            stop = address + size * (8 if wide else 4)
            if in_order and nonempty > 0:
                if address < table[_START, nonempty - 1]:
                    in_order = False  # from here on only a sort can tell
                elif address < reach:
                    overlap = True  # it starts inside an earlier range
            reach = max(reach, stop)
            table[_START, nonempty] = address
            table[_STOP, nonempty] = stop
            nonempty += 1
    # In address order, a range overlaps an earlier one exactly when it starts before the
    # furthest stop so far; an overlap found before the order broke is real (the earlier range
    # started at or below this one).  Out of order, a short list is checked pair by pair and a
    # long one is left to the caller's NumPy sort (ranges_overlap): numba's np.sort is no faster
    # and added 3 s to this function's first compile.
    if not overlap and not in_order and nonempty <= PAIRWISE_MAX:
        starts = table[_START]
        stops = table[_STOP]
        for a in range(nonempty):
            for b in range(a + 1, nonempty):
                if starts[a] < stops[b] and starts[b] < stops[a]:
                    overlap = True
        in_order = True  # settled
    state = OVERLAP if overlap else (NO_OVERLAP if in_order else UNSORTED)
    return -1, first_read_only, first_unsuitable, nonempty, state


def ranges_overlap(starts: np.ndarray, stops: np.ndarray) -> bool:
    """Whether any two of the non-empty half-open ranges ``[starts[k], stops[k])`` overlap.

    Disjoint ranges sorted by start are also sorted by stop, so sorting both independently pairs
    them up; conversely if ``s[k] >= e[k-1]`` for every ``k``, then below any point at most ``k``
    ranges start and at least ``k - 1`` have stopped, so no point lies in two ranges.
    """
    s = np.sort(starts)
    e = np.sort(stops)
    return bool((s[1:] < e[:-1]).any())


class ListTable(NamedTuple):
    """A surveyed list of float32/float64 ndarrays: see :func:`survey`."""

    arrays: tuple[np.ndarray, ...]  # kept alive while kernels run without the GIL
    table: np.ndarray  # rows _ADDRESS, _END, _WIDE, _START, _STOP
    first_read_only: int  # -1: none
    first_unsuitable: int  # not C-contiguous and aligned; -1: none
    overlap: bool  # two arrays share memory (decided only when both indices above are -1)


def survey(arrays: Any) -> ListTable | None:
    """Read the data address, size, dtype and flags of every array of a list, in one kernel call.

    ``None`` when an element is not an exact ``np.ndarray`` of native float32/float64 (or the
    object layouts here are not the ones :func:`survey_list` reads): then use the per-array path.
    """
    if not _ready["survey"]:
        _compile("survey")
    if not _layout_ok():
        return None
    keep = arrays if type(arrays) is tuple else tuple(arrays)
    n = len(keep)
    table = np.empty((5, n), np.int64)
    other, read_only, unsuitable, nonempty, state = survey_list(id(keep), n, _LAYOUT, table)
    if other >= 0:
        return None
    usable = read_only < 0 and unsuitable < 0  # otherwise nothing runs on the table
    overlap = state == OVERLAP or (
        usable and state == UNSORTED and ranges_overlap(table[_START, :nonempty], table[_STOP, :nonempty])
    )
    return ListTable(keep, table, int(read_only), int(unsuitable), overlap)


def _probe_arrays() -> list[np.ndarray]:
    read_only = np.arange(5.0)
    read_only.flags.writeable = False
    unaligned = np.frombuffer(bytearray(8 * 4 + 1), np.float64, 4, offset=1)
    return [
        np.arange(12.0).reshape(3, 4),
        np.arange(12.0, dtype=np.float32).reshape(2, 3, 2)[:, ::2],
        read_only,
        np.array(3.0, np.float32),
        np.zeros((2, 0)),
        unaligned,
        np.asfortranarray(np.ones((3, 2), np.float32)),
    ]


_layout_checked: bool | None = None


def _layout_ok() -> bool:
    """Whether :func:`survey_list` reads the right fields here (checked once, on probe arrays)."""
    global _layout_checked
    if _layout_checked is None:
        _compile("survey")
        # A free-threaded build (no GIL) could change headers while they are read: not surveyed.
        gil = getattr(sys, "_is_gil_enabled", lambda: True)()
        ok = gil and sys.maxsize > 2**32 and object.__basicsize__ % 8 == 0 and tuple.__itemsize__ == 8
        if ok:
            probes = tuple(_probe_arrays())
            table = np.empty((5, len(probes)), np.int64)
            other, read_only, unsuitable, _, _ = survey_list(id(probes), len(probes), _LAYOUT, table)
            sizes = np.diff(table[_END], prepend=0)
            ok = (
                other == -1
                and table[_ADDRESS].tolist() == [p.ctypes.data for p in probes]
                and sizes.tolist() == [p.size for p in probes]
                and table[_WIDE].tolist() == [int(p.dtype == np.float64) for p in probes]
                and read_only == 2
                and unsuitable == 1
            )
            for other in (1.0, np.arange(3, dtype=np.int32), probes[0].astype(">f8"), probes[0].view(np.recarray)):
                pair = (probes[0], other)
                ok = ok and survey_list(id(pair), 2, _LAYOUT, np.empty((5, 2), np.int64))[0] == 1
        _layout_checked = ok
    return _layout_checked


# ------------------------------------------------------------------------------------------------
# running on threads

_POOL: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        with _pool_lock:
            if _POOL is None:
                _POOL = ThreadPoolExecutor(
                    max_workers=max(1, (os.cpu_count() or 2) - 1), thread_name_prefix="softmaxkit-foreach"
                )
    return _POOL


def _forget_pool_in_child() -> None:
    """After ``fork()``: the parent's worker threads do not exist here, so build a new pool."""
    global _POOL, _pool_lock, _ready_lock
    _POOL = None
    _pool_lock = threading.Lock()  # it may have been held by another thread at the fork
    _ready_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_in_child)


def run_blocks(block_kernel: Any, nblocks: int, *args: Any, threads: int | None = None) -> None:
    """Run ``block_kernel(*args, counter, BLOCK)`` on the caller and up to ``threads - 1`` pool workers.

    Each call claims blocks from the shared ``counter`` until none is left.  The caller never
    waits for a worker that has not started: it claims that worker's blocks itself and then
    cancels the task.  ``threads`` defaults to numba's ``get_num_threads()``.
    """
    counter = np.zeros(1, np.int64)
    nthreads = min(numba.get_num_threads() if threads is None else threads, nblocks)
    if nthreads <= 1:
        block_kernel(*args, counter, BLOCK)
        return
    pool = _pool()
    futures = [pool.submit(block_kernel, *args, counter, BLOCK) for _ in range(nthreads - 1)]
    block_kernel(*args, counter, BLOCK)
    for fut in futures:
        if not fut.cancel():
            fut.result()


def _nblocks(n: int) -> int:
    return (n + BLOCK - 1) // BLOCK


def inplace(code: int, x: np.ndarray) -> None:
    """``x[:] = f(x)`` for a 1-D, C-contiguous, aligned, writeable float32/float64 array."""
    if not _ready["inplace"]:
        _compile("inplace")
    if x.size < PARALLEL_MIN_SIZE:
        unary_inplace(code, x)
    else:
        run_blocks(unary_inplace_blocks, _nblocks(x.size), code, x)


def out_of_place(code: int, x: np.ndarray, out: np.ndarray) -> None:
    """``out[:] = f(x)`` for 1-D, C-contiguous, aligned arrays of one dtype, not overlapping."""
    if not _ready["out"]:
        _compile("out")
    if x.size < PARALLEL_MIN_SIZE:
        unary_out(code, x, out)
    else:
        run_blocks(unary_out_blocks, _nblocks(x.size), code, x, out)


def inplace_list(code: int, surveyed: ListTable) -> None:
    """Apply the op in place to every array of a surveyed list (all C-contiguous and writeable).

    Parallel when the list is large and no two arrays share memory; otherwise on the calling
    thread in list order, so an array listed twice is updated twice.
    """
    if not _ready["inplace"]:
        _compile("inplace")
    table = surveyed.table
    total = int(table[_END, -1]) if table.shape[1] else 0
    if total == 0:
        return
    if surveyed.overlap or total < PARALLEL_MIN_SIZE:
        unary_inplace_list(code, table, np.zeros(1, np.int64), BLOCK)
    else:
        run_blocks(unary_inplace_list, _nblocks(total), code, table)


# ------------------------------------------------------------------------------------------------
# signatures, compiled per path on first use


def _arr(dtype: Any, ndim: int = 1) -> Any:
    return types.Array(dtype, ndim, "C")


_I64 = types.int64
_FLOATS = (types.float32, types.float64)
#: path -> the kernels it calls, each with its signatures (callees first).
_SIGNATURES = {
    "inplace": {
        unary_inplace: [types.void(_I64, _arr(t)) for t in _FLOATS],
        unary_inplace_blocks: [types.void(_I64, _arr(t), _arr(_I64), _I64) for t in _FLOATS],
        unary_inplace_list: [types.void(_I64, _arr(_I64, 2), _arr(_I64), _I64)],
    },
    "out": {
        unary_out: [types.void(_I64, _arr(t), _arr(t)) for t in _FLOATS],
        unary_out_blocks: [types.void(_I64, _arr(t), _arr(t), _arr(_I64), _I64) for t in _FLOATS],
    },
    "survey": {
        survey_list: [types.UniTuple(_I64, 5)(_I64, _I64, _arr(_I64), _arr(_I64, 2))],
    },
}

_ready = {path: False for path in _SIGNATURES}
_ready_lock = threading.Lock()


def _compile(path: str) -> None:
    """Compile (or load from numba's disk cache) one path's signatures, then freeze its kernels."""
    with _ready_lock:
        if _ready[path]:
            return
        for dispatcher, signatures in _SIGNATURES[path].items():
            for sig in signatures:
                dispatcher.compile(sig)
            dispatcher.disable_compile()
        _ready[path] = True
