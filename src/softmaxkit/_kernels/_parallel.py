"""Parallel loops whose body numba compiles once: a serial range function called through a pointer.

A ``prange`` driver costs numba's compiler its whole call tree four times over: the loop body is
outlined into a gufunc, which a gufunc wrapper and a parallel wrapper each link, and the driver
links those; every one of these libraries optimises and code-generates everything it links.  For a
column kernel each copy took about 0.5 s (NCHW log_softmax, cold: 2 of its 5-6 s).

Here the work of a parallel kernel is a serial *range function*, ``f(t, first, stop, *args)``
doing items ``first:stop`` as worker ``t``.  ``RangeKernel`` compiles it as a C callback
(``numba.cfunc``, cached on disk) for each combination of argument types it meets, and a small
driver, ``_run_ranges``, hands its address to numba's threading layer (``_parallel_for``, below:
no ``prange``, so no parfor machinery either): the call tree is compiled once, in the callback.
A serial call runs the same callback through ``_run_range``.

Each worker gets one contiguous range of items (what numba's static schedule would give it), on
at most numba's thread count for the calling thread (``set_num_threads``).  The range function
must not raise: a C callback cannot propagate an exception.
"""

from __future__ import annotations

from llvmlite import binding as llvm
from llvmlite import ir
from numba import njit, types, typeof
from numba.core import cgutils
from numba.core.compiler_lock import global_compiler_lock
from numba.core.funcdesc import default_mangler
from numba.core.ccallback import CFunc
from numba.extending import intrinsic

from ._fastmath import LABELS_FROM_ZERO, WideVectorCompiler, cached
from ._intrinsics import uncounted_view

try:  # numba's own C fingerprint of argument types, which its dispatcher keys on (0.1 us)
    from numba._dispatcher import compute_fingerprint as _fingerprint
except ImportError:  # pragma: no cover - numba moved it; the types themselves are a slower key

    def _fingerprint(args: tuple) -> tuple:
        return tuple(typeof(a) for a in args)


_I8P = cgutils.voidptr_t


def _range_signature(arg_types) -> types.Signature:
    return types.void(types.int64, types.int64, types.int64, *arg_types)


@intrinsic
def _range_function_at(typingctx, address, args):
    """The range function for ``args`` (a tuple) at the integer ``address``, as a numba
    first-class function value (its C callback address set, the other two left null)."""
    if not (isinstance(address, types.Integer) and isinstance(args, types.BaseTuple)):
        return None
    function_type = types.FunctionType(_range_signature(args.types))

    def codegen(context, builder, signature, llargs):
        function = cgutils.create_struct_proxy(function_type)(context, builder)
        function.c_addr = builder.inttoptr(llargs[0], cgutils.voidptr_t)
        return function._getvalue()

    return function_type(address, args), codegen


# The drivers hand the range function its array arguments without their reference counts (the
# caller keeps them alive for the call): the views a range function takes of them (a worker's
# rows of scratch, a block) would otherwise each add to and take from one shared count, an atomic
# operation on a line that two workers then pass back and forth.  NCHW-like column kernels ran
# 1.14-1.42x slower with the counts than with a parfor driver, whose gufunc got the arrays
# without them.


@intrinsic
def _borrowed_arguments(typingctx, args):
    """``args`` (a tuple) with every array in it as a view without reference count (see
    ``_intrinsics.borrowed``)."""
    if not isinstance(args, types.BaseTuple):
        return None

    def codegen(context, builder, signature, llargs):
        members = []
        for i, ty in enumerate(args.types):
            value = builder.extract_value(llargs[0], i)
            members.append(uncounted_view(context, builder, ty, value) if isinstance(ty, types.Array) else value)
        return context.make_tuple(builder, args, members)

    return args(args), codegen


# ---------------------------------------------------------------------------------------------
# The parallel driver: numba's threading layer called directly
#
# numba's threading layer (OpenMP, TBB or its workqueue, whichever it chose) runs a parallel loop
# through one C function, ``parallel_for(body, arrays, dims, steps, data, inner_ndim, n_arrays,
# n_threads)``: item r of ``dims[0]`` calls ``body(arrays + r * steps, dims, steps, data)`` on
# one of ``n_threads`` threads (for an OpenMP layer, a static schedule).  A ``prange`` loop
# compiles to a call of it, through numba's parfor lowering, which outlined the loop body into a
# gufunc and wrapped it twice: 0.8-1.0 s of every cold first parallel call on the 2-core Xeon
# (0.4 s on the Zen 5), for a loop of one line.  ``_parallel_for`` makes that call itself: the
# driver is an ordinary numba function, and its body, ``_trampoline``, is a few LLVM
# instructions that find the worker's index and call the range function.  The layer's own
# checks (GNU OpenMP after a fork, the workqueue's nested launches) stay where they are.

_I64 = ir.IntType(64)
_I32 = ir.IntType(32)


def _record_type(context, args_type):
    """What the driver passes to every worker: the range function's address, the item count,
    the worker count and the range function's arguments (a numba tuple)."""
    return ir.LiteralStructType([_I64, _I64, _I64, context.get_value_type(args_type)])


def _trampoline(context, module, args_type):
    """The loop body ``parallel_for`` calls, for arguments of numba type ``args_type``: worker
    ``t`` (from the offset of its array pointer from ``data``, where the driver pointed the
    single "array" with a step of 1 byte) calls the range function on its share of the items."""
    name = "softmaxkit.range_trampoline." + default_mangler("", [args_type])
    function = module.globals.get(name)
    if function is not None:
        return function
    body_type = ir.FunctionType(ir.VoidType(), [_I8P.as_pointer(), _I64.as_pointer(), _I64.as_pointer(), _I8P])
    function = ir.Function(module, body_type, name)
    function.linkage = "internal"
    builder = ir.IRBuilder(function.append_basic_block())
    arrays, _dims, _steps, data = function.args
    t = builder.sub(builder.ptrtoint(builder.load(arrays), _I64), builder.ptrtoint(data, _I64))
    record = builder.load(builder.bitcast(data, _record_type(context, args_type).as_pointer()))
    address, n_items, workers, args = (builder.extract_value(record, i) for i in range(4))
    first = builder.sdiv(builder.mul(t, n_items), workers)
    stop = builder.sdiv(builder.mul(builder.add(t, _I64(1)), n_items), workers)
    members = [builder.extract_value(args, i) for i in range(len(args_type))]
    # the range function's C callback: numba's C signature for it (value types in, none's out)
    range_type = ir.FunctionType(context.get_value_type(types.none),
                                 [_I64] * 3 + [context.get_value_type(ty) for ty in args_type.types])
    builder.call(builder.inttoptr(address, range_type.as_pointer()), [t, first, stop, *members])
    builder.ret_void()
    return function


@intrinsic
def _parallel_for(typingctx, parallel_for, address, n_items, workers, args):
    """Run the range function at ``address`` on ``args`` over ``n_items`` items, ``workers``
    ways, through the threading layer's ``parallel_for`` (at the address ``parallel_for``), on
    at most numba's thread count for the calling thread."""
    integers = (parallel_for, address, n_items, workers)
    if not (all(isinstance(a, types.Integer) for a in integers) and isinstance(args, types.BaseTuple)):
        return None

    def codegen(context, builder, signature, llargs):
        pfor, address, n_items, workers = (
            context.cast(builder, value, ty, types.int64) for value, ty in zip(llargs[:4], signature.args[:4]))
        args = llargs[4]
        record = cgutils.alloca_once(builder, _record_type(context, signature.args[4]))
        for i, value in enumerate((address, n_items, workers, args)):
            builder.store(value, cgutils.gep_inbounds(builder, record, 0, i))
        data = builder.bitcast(record, _I8P)
        arrays = cgutils.alloca_once_value(builder, data)  # worker t gets data + t
        dims = cgutils.alloca_once_value(builder, workers)
        steps = cgutils.alloca_once_value(builder, _I64(1))
        # as many threads as workers, up to numba's count for this thread (set_num_threads)
        get_num_threads = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_I32, []), "get_num_threads")
        threads = builder.sext(builder.call(get_num_threads, []), _I64)
        threads = builder.select(builder.icmp_signed("<", workers, threads), workers, threads)
        body = _trampoline(context, builder.module, signature.args[4])
        pfor_type = ir.FunctionType(ir.VoidType(), [_I8P, _I8P.as_pointer(), _I64.as_pointer(), _I64.as_pointer(),
                                                    _I8P, _I64, _I64, _I32])
        builder.call(builder.inttoptr(pfor, pfor_type.as_pointer()),
                     [builder.bitcast(body, _I8P), arrays, dims, steps, data, _I64(0), _I64(1),
                      builder.trunc(threads, _I32)])
        return context.get_dummy_value()

    return types.void(*integers, args), codegen


@cached
@njit
def _run_ranges(parallel_for, address, n_items, workers, args):
    _parallel_for(parallel_for, address, n_items, workers, _borrowed_arguments(args))


@cached
@njit
def _run_range(address, n_items, args):
    args = _borrowed_arguments(args)
    run = _range_function_at(address, args)
    run(0, 0, n_items, *args)


_layer = [0]  # the threading layer's parallel_for, once numba has started the layer


def _parallel_for_address() -> int:
    """The address of the threading layer's ``parallel_for``, starting the layer (and
    declaring ``get_num_threads`` to LLVM) on first use, as a ``prange`` function would."""
    if not _layer[0]:
        from numba.np.ufunc.parallel import _launch_threads

        _launch_threads()
        _layer[0] = llvm.address_of_symbol("numba_parallel_for")
    return _layer[0]


_compiled = [0]  # callbacks compiled (not loaded from numba's cache) in this process


def callbacks_compiled() -> int:
    """How many range-function callbacks this process compiled rather than loaded from numba's
    on-disk cache (numba's compile events do not cover C callbacks; see bench_first_call.py)."""
    return _compiled[0]


class RangeKernel:
    """A range function run over ``n_items`` items by ``workers`` workers:
    ``RangeKernel(f)(n_items, workers, *args)`` with ``f(t, first, stop, *args)`` a plain Python
    function written for numba.  One worker runs it in the calling thread, without a parallel
    region.  (``f`` is compiled only as a callback: as an ordinary numba function too, both would
    share, and overwrite, one entry of numba's on-disk cache.)"""

    def __init__(self, range_function) -> None:
        self._py_func = range_function
        self._callbacks: dict = {}  # argument-type fingerprint -> compiled callback
        self._addresses: dict = {}  # ... -> its address (a CFunc's property: 50 ns a read)
        self.__doc__ = range_function.__doc__

    def __call__(self, n_items: int, workers: int, *args) -> None:
        address = self._addresses.get(_fingerprint(args)) or self._compile(args)
        if workers > 1:
            _run_ranges(_layer[0] or _parallel_for_address(), address, n_items, workers, args)
        else:
            _run_range(address, n_items, args)

    def _compile(self, args: tuple) -> int:
        """The address of the callback for ``args``' types, compiled (or loaded from numba's cache)."""
        # The callback object is kept: its address is valid only while it lives.
        # what ``numba.cfunc(signature, cache=True, ...)`` does, with our cache (``cached``)
        signature = _range_signature([typeof(a) for a in args])
        callback = CFunc(self._py_func, (signature.args, signature.return_type), locals={}, options={},
                         pipeline_class=WideVectorCompiler)
        with global_compiler_lock:  # (numba broadcasts no "numba:compile" for a callback)
            LABELS_FROM_ZERO.restart_if_outermost()
            cached(callback).compile()
        _compiled[0] += callback.cache_hits == 0
        fingerprint = _fingerprint(args)
        self._callbacks[fingerprint] = callback
        self._addresses[fingerprint] = callback.address
        return callback.address
