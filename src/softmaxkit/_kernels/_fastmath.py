"""The compile options of softmaxkit's kernels, defined once: two fastmath flag sets, the
decorator for functions that only other kernels call, and the parallel options of the driver
that uses ``prange`` (``_parallel``).

numba's ``fastmath=True`` means LLVM's ``fast``, which includes ``nnan`` and ``ninf``:
LLVM may then assume no NaN or infinity ever occurs and, for example, fold the
``-inf`` that marks a masked element or drop the NaN a caller must see.  Our kernels rely
on both, so neither flag set contains them (``tests/test_fastmath.py`` shows what goes
wrong when they do).

``REDUCTION`` adds ``reassoc``: without it LLVM will not vectorise a sum.  ``ORDERED`` has
no ``reassoc``: it is for code whose accuracy depends on evaluation order (the exp range
reduction's hi/lo split, TwoSum residuals, compensated sums), where reassociation would
merge the terms that carry the low-order bits.
"""

from __future__ import annotations

from numba import njit
from numba.extending import overload

#: For loops whose result does not depend on summation order beyond rounding.
REDUCTION: set[str] = {"reassoc", "contract", "arcp", "nsz", "afn"}

#: For order-sensitive arithmetic (range reductions, error-free transformations).
#: ``contract`` (FMA formation) only removes roundings, so it is kept.
ORDERED: set[str] = {"contract", "nsz"}

#: Flags that must never appear: they let LLVM assume away NaN and inf.
FORBIDDEN: frozenset[str] = frozenset({"nnan", "ninf", "fast"})

# numba accepts only a set (not a frozenset); treat both as constants.
assert not (REDUCTION | ORDERED) & FORBIDDEN


def prange_only() -> dict[str, bool]:
    """``parallel=`` options converting only ``prange`` loops, for the parallel driver of
    ``_parallel`` (the one ``prange`` loop left in the kernels).

    With ``parallel=True`` numba also turns array expressions into parallel loops: a driver's
    ``np.zeros(n, np.bool_)`` became a second parfor, compiled as its own gufunc on the first call
    and launched as its own parallel region on every call.  A new dict each time: numba pops the
    keys out of the one it is given."""
    return {
        "comprehension": False, "reduction": False, "inplace_binop": False, "setitem": False,
        "numpy": False, "stencil": False, "fusion": False, "prange": True,
    }


def callee(**options):
    """``numba.njit`` (cached) for a function that only other compiled functions call.

    It gets neither the CPython wrapper nor the C callback wrapper that numba otherwise builds
    for every function it compiles, which only a call from Python (or from C) needs: about 20 ms
    of each function's compile, of which a cold first call compiles 40-60.  Calling such a
    function from Python raises; wrap it in an ``njit`` function (as the tests do)."""
    return njit(cache=True, no_cpython_wrapper=True, no_cfunc_wrapper=True, **options)


def callee_overload(function, **options):
    """``numba.extending.overload`` for a typing-time choice between implementations: numba
    compiles those without the CPython wrapper already; this drops the C callback wrapper too."""
    return overload(function, jit_options={"no_cfunc_wrapper": True}, **options)
