"""numba's on-disk cache serves softmaxkit's kernels: a second process compiles nothing.

Runs ``benchmarks/bench_first_call.py``'s two child processes (an empty cache directory, then the
same one again) for a parallel row kernel and a parallel column kernel.  A kernel that numba cannot
cache (a dynamic global, say ``numba.get_num_threads()`` called inside a driver) would be compiled
again in every process, seconds of every user's first call; this catches it without timing.

The warm process must also load the kernels without numba's compiler registries
(``_fastmath.cached``: 0.2-0.45 s of a warm first call) and without compiling numba runtime's LLVM
module (``_fastmath._initialize_runtime``: 56-99 ms), and a process that loaded some kernels that
way must still compile others, and numba functions of its own, correctly.
"""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))

from bench_first_call import Case, run_case, run_child  # noqa: E402

CASES = [
    Case("softmax rows, parallel", "sk.softmax(x)", (256, 256)),
    Case("log_softmax columns, parallel, a NaN", "sk.log_softmax(x, axis=1)", (4, 21, 32, 32), setup="x[0, 3, 5, 5] = np.nan"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_a_warm_cache_compiles_nothing(case):
    record = run_case(case)
    assert record["cold"]["compiled"] > 10, record  # the cold child really compiled the kernels
    assert record["warm"]["compiled"] == 0, record
    assert record["cold"]["registries"], record  # the child's probe for the registries works
    assert not record["warm"]["registries"], record


# In the warm child: float32 loads registry-free, without compiling numba runtime's LLVM module
# (both asserted), then float64 and a numba function needing numba's linear algebra registry are
# compiled (which needs that module), and all three results checked in float64.
_AFTER_A_REGISTRY_FREE_LOAD = (
    "y = sk.softmax(x, axis=1); import sys; assert 'numba.np.arraymath' not in sys.modules; "
    "from numba.core.runtime import nrt; assert nrt.rtsys._library is None; "
    "x64 = x.astype(np.float64); y64 = sk.log_softmax(x64, axis=1); import numba; "
    "norm = numba.njit(lambda a: np.linalg.norm(a))(x64[0, 0]); "
    "e = np.exp(x64 - x64.max(axis=1, keepdims=True)); ref = e / e.sum(axis=1, keepdims=True); "
    "assert np.abs(y - ref).max() < 1e-6, np.abs(y - ref).max(); "
    "assert np.abs(y64 - np.log(ref)).max() < 1e-12, np.abs(y64 - np.log(ref)).max(); "
    "assert abs(norm - np.sqrt((x64[0, 0] ** 2).sum())) < 1e-9 * norm"
)


def test_compiling_after_a_registry_free_load(tmp_path):
    first = Case("float32 only", "sk.softmax(x, axis=1)", (2, 7, 64, 64))
    then = Case("float32, then float64 and a numba function", _AFTER_A_REGISTRY_FREE_LOAD, (2, 7, 64, 64))
    assert run_child(first, str(tmp_path))["compiled"] > 10
    record = run_child(then, str(tmp_path))  # fails (a non-zero exit) on any assertion above
    assert record["compiled"] > 10 and record["registries"], record  # float64 was compiled, not loaded
