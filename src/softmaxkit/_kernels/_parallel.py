"""Parallel loops whose body numba compiles once: a serial range function called through a pointer.

A ``prange`` driver costs numba's compiler its whole call tree four times over: the loop body is
outlined into a gufunc, which a gufunc wrapper and a parallel wrapper each link, and the driver
links those; every one of these libraries optimises and code-generates everything it links.  For a
column kernel each copy took about 0.5 s (NCHW log_softmax, cold: 2 of its 5-6 s).

Here the work of a parallel kernel is a serial *range function*, ``f(t, first, stop, *args)``
doing items ``first:stop`` as worker ``t``.  ``RangeKernel`` compiles it as a C callback
(``numba.cfunc``, cached on disk) for each combination of argument types it meets, and one
small ``prange`` driver, ``_run_ranges``, calls it through its address: the call tree is
compiled once, in the callback, and the driver's own libraries stay small.  A serial call
runs the same callback through ``_run_range``.

Each worker gets one contiguous range of items (what numba's static schedule would give it).
The range function must not raise: a C callback cannot propagate an exception.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange, types, typeof
from numba.core import cgutils
from numba.core.ccallback import CFunc
from numba.extending import intrinsic

from ._fastmath import WideVectorCompiler, cached, prange_only

try:  # numba's own C fingerprint of argument types, which its dispatcher keys on (0.1 us)
    from numba._dispatcher import compute_fingerprint as _fingerprint
except ImportError:  # pragma: no cover - numba moved it; the types themselves are a slower key

    def _fingerprint(args: tuple) -> tuple:
        return tuple(typeof(a) for a in args)


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


@cached
@njit(parallel=prange_only())
def _run_ranges(address, n_items, workers, args):
    for t in prange(workers):
        w = np.int64(t)  # prange's index is unsigned inside the parallel region
        run = _range_function_at(address, args)
        run(w, w * n_items // workers, (w + 1) * n_items // workers, *args)


@cached
@njit
def _run_range(address, n_items, args):
    run = _range_function_at(address, args)
    run(0, 0, n_items, *args)


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
        self.__doc__ = range_function.__doc__

    def __call__(self, n_items: int, workers: int, *args) -> None:
        callback = self._callbacks.get(_fingerprint(args))
        if callback is None:
            callback = self._compile(args)
        if workers > 1:
            _run_ranges(callback.address, n_items, workers, args)
        else:
            _run_range(callback.address, n_items, args)

    def _compile(self, args: tuple):
        # The callback object is kept: its address is valid only while it lives.
        # what ``numba.cfunc(signature, cache=True, ...)`` does, with our cache (``cached``)
        signature = _range_signature([typeof(a) for a in args])
        callback = CFunc(self._py_func, (signature.args, signature.return_type), locals={}, options={},
                         pipeline_class=WideVectorCompiler)
        cached(callback).compile()
        _compiled[0] += callback.cache_hits == 0
        self._callbacks[_fingerprint(args)] = callback
        return callback
