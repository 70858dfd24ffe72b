"""numba's on-disk cache serves softmaxkit's kernels: a second process compiles nothing.

Runs ``benchmarks/bench_first_call.py``'s two child processes (an empty cache directory, then the
same one again) for a parallel row kernel and a parallel column kernel.  A kernel that numba cannot
cache (a dynamic global, say ``numba.get_num_threads()`` called inside a driver) would be compiled
again in every process, seconds of every user's first call; this catches it without timing.
"""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))

from bench_first_call import Case, run_case  # noqa: E402

CASES = [
    Case("softmax rows, parallel", "sk.softmax(x)", (256, 256)),
    Case("log_softmax columns, parallel, a NaN", "sk.log_softmax(x, axis=1)", (4, 21, 32, 32), setup="x[0, 3, 5, 5] = np.nan"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_a_warm_cache_compiles_nothing(case):
    record = run_case(case)
    assert record["cold"]["compiled"] > 10, record  # the cold child really compiled the kernels
    assert record["warm"]["compiled"] == 0, record
