"""Time softmaxkit's first call in a fresh process, with numba's on-disk cache empty and warm.

Issue 3 asks for ``import softmaxkit`` under 0.3 s, a first call under 0.5 s when the kernels are
in numba's on-disk cache, and under 5 s for one function and dtype when they are not (numba then
compiles them).  Each case runs in two child processes that share a new, empty cache directory
(``NUMBA_CACHE_DIR``): the first compiles and fills it (cold), the second loads from it (warm).
Each child also counts the functions numba compiled, so a kernel that cannot be cached shows up as
compiles in the warm column, whatever the timings.  A first call includes importing numba, which
softmaxkit defers to it (0.14-0.35 s of the warm first call on the 2-core VMs we measured).

The children read Python's bytecode from a directory of their own (``PYTHONPYCACHEPREFIX``),
filled by one child before the cases run, as a pip-installed softmaxkit has its ``.pyc`` files:
otherwise a checkout whose sources changed, or an environment that sets
``PYTHONDONTWRITEBYTECODE`` (ours does), has every child compile the source of each module it
imports (about 0.1 s of a warm first call).  ``--source-bytecode`` leaves the children's bytecode
to the environment instead.

Nothing is asserted: the script prints, and with ``--json`` writes the records.  Usage::

    python benchmarks/bench_first_call.py               # every case, about 1.5 minutes
    python benchmarks/bench_first_call.py --cases 'softmax 8x10,*NCHW*' --json out.json
    python benchmarks/bench_first_call.py --list
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _harness import basic_machine_info, render_table, select_by_name  # noqa: E402  (sibling module)

IMPORT_TARGET_S = 0.3
WARM_TARGET_S = 0.5
COLD_TARGET_S = 5.0


@dataclass(frozen=True)
class Case:
    name: str
    call: str  # a call of ``sk`` on ``x``, evaluated in the child
    shape: tuple[int, ...]
    dtype: str = "float32"
    setup: str = ""  # statements run on ``x`` before the timed call


CASES = (
    Case("softmax 8x10", "sk.softmax(x)", (8, 10)),
    Case("softmax 4096x4096", "sk.softmax(x)", (4096, 4096)),
    Case("log_softmax 4096x4096", "sk.log_softmax(x)", (4096, 4096)),
    Case("logsumexp 4096x4096", "sk.logsumexp(x, axis=-1)", (4096, 4096)),
    Case("softmax float64 2048x2048", "sk.softmax(x)", (2048, 2048), "float64"),
    Case("softmax 4096x4096 masked", "sk.softmax(x, where=x > 0.1)", (4096, 4096)),
    Case("softmax one row of 2**24", "sk.softmax(x)", (1 << 24,)),
    Case("log_softmax one row of 2**24", "sk.log_softmax(x)", (1 << 24,)),
    Case("logsumexp one row of 2**24", "sk.logsumexp(x)", (1 << 24,)),
    Case("softmax NCHW axis 1", "sk.softmax(x, axis=1)", (4, 21, 256, 256)),
    Case("log_softmax NCHW axis 1", "sk.log_softmax(x, axis=1)", (4, 21, 256, 256)),
    Case("logsumexp NCHW axis 1", "sk.logsumexp(x, axis=1)", (4, 21, 256, 256)),
    # few rows of columns: the small-K tiles, two at a time
    Case("log_softmax 2x3x4x5000 axis 2", "sk.log_softmax(x, axis=2)", (2, 3, 4, 5000)),
    # a tall column layout: log_softmax's slabs (max, sums and writing passes, a log kernel)
    Case("log_softmax 2048x2048 axis 0", "sk.log_softmax(x, axis=0)", (2048, 2048)),
    # a column whose max is NaN also compiles the scalar path for the limits
    Case("log_softmax NCHW axis 1, a NaN", "sk.log_softmax(x, axis=1)", (4, 21, 256, 256), setup="x[0, 3, 5, 5] = np.nan"),
)

# The child: times the import and the first call, counts numba's compiles, prints one JSON line.
# softmaxkit imports numba on its first call; the child imports it earlier, to count compiles, and
# adds that import's time to the first call's.  "registries": whether numba loaded its compiler's
# registries (numba.np.arraymath is one), which only compiling needs (see _fastmath.cached).
_CHILD = """
import json, sys, time
t0 = time.perf_counter()
import softmaxkit as sk
t1 = time.perf_counter()
import numpy as np
t_numba = time.perf_counter()
from numba.core import event
t_numba = time.perf_counter() - t_numba
compiled = []
class _Count(event.Listener):
    def on_start(self, e):
        compiled.append(1)
    def on_end(self, e):
        pass
event.register("numba:compile", _Count())
x = np.random.default_rng(0).standard_normal({shape!r}).astype({dtype!r})
{setup}
t2 = time.perf_counter()
{call}
t3 = time.perf_counter()
from softmaxkit._kernels._parallel import callbacks_compiled  # (numba's events miss C callbacks)
print(json.dumps({{"import_s": t1 - t0, "first_call_s": t_numba + t3 - t2, "numba_import_s": t_numba,
                  "compiled": len(compiled) + callbacks_compiled(), "registries": "numba.np.arraymath" in sys.modules}}))
"""


def child_environment(cache_dir: str, bytecode_dir: str | None = None) -> dict:
    """A child's environment: numba's cache in ``cache_dir``; Python's bytecode read from and
    written to ``bytecode_dir`` (None: as the environment has it)."""
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    if bytecode_dir is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = bytecode_dir
    return env


def run_child(case: Case, cache_dir: str, bytecode_dir: str | None = None) -> dict:
    code = _CHILD.format(shape=case.shape, dtype=case.dtype, setup=case.setup, call=case.call)
    env = child_environment(cache_dir, bytecode_dir)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{case.name}: the child process failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_case(case: Case, bytecode_dir: str | None = None) -> dict:
    with tempfile.TemporaryDirectory(prefix="softmaxkit-numba-cache-") as cache_dir:
        cold = run_child(case, cache_dir, bytecode_dir)
        warm = run_child(case, cache_dir, bytecode_dir)
    return {"case": case.name, "call": case.call, "shape": case.shape, "dtype": case.dtype, "cold": cold, "warm": warm}


# Fills the bytecode directory: everything a first call imports, compiling included (numba's
# compiler imports modules a warm call does not), on a throwaway numba cache.
_PRIMING_CASE = Case("bytecode", "sk.softmax(x); sk.log_softmax(x, axis=0); sk.logsumexp(x, axis=1)", (64, 64))


def prime_bytecode(bytecode_dir: str) -> None:
    """Compile the bytecode of every module a child imports into ``bytecode_dir``."""
    with tempfile.TemporaryDirectory(prefix="softmaxkit-numba-cache-") as cache_dir:
        run_child(_PRIMING_CASE, cache_dir, bytecode_dir)


def select_cases(patterns: str | None) -> list[Case]:
    return select_by_name(CASES, patterns, "bench_first_call")


def verdict(seconds: float, target: float, digits: int = 2) -> str:
    return f"{seconds:.{digits}f} s [<{target:g} {'met' if seconds < target else 'NOT MET'}]"


def print_report(records: list[dict]) -> None:
    rows = []
    for r in records:
        cold, warm = r["cold"], r["warm"]
        rows.append([
            r["case"], verdict(warm["import_s"], IMPORT_TARGET_S, 3), verdict(cold["first_call_s"], COLD_TARGET_S),
            str(cold["compiled"]), verdict(warm["first_call_s"], WARM_TARGET_S), str(warm["compiled"]),
        ])
    headers = ["case", "import (warm)", "first call, cold cache", "compiled", "first call, warm cache", "compiled"]
    print(render_table(headers, rows))
    print("compiled: functions numba compiled in that process (a warm cache should need none).")
    print("A first call includes importing numba: " + ", ".join(
        f"{r['warm'].get('numba_import_s', float('nan')):.2f}" for r in records) + " s in the warm children.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", metavar="PATTERNS", help="comma-separated names or globs (see --list)")
    parser.add_argument("--json", metavar="PATH", help="write the records as JSON")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--source-bytecode", action="store_true",
                        help="leave the children's Python bytecode to the environment (see the docstring)")
    args = parser.parse_args(argv)
    if args.list:
        for case in CASES:
            print(f"{case.name}: {case.call} on {case.dtype} {case.shape}")
        return 0
    machine = basic_machine_info()
    print(f"{machine.get('cpu_model', '?')}, {machine.get('cores', '?')} usable cores, Python {sys.version.split()[0]}")
    machine["dont_write_bytecode"] = bool(os.environ.get("PYTHONDONTWRITEBYTECODE"))
    machine["bytecode"] = "environment" if args.source_bytecode else "primed directory"
    if args.source_bytecode and machine["dont_write_bytecode"]:
        print("PYTHONDONTWRITEBYTECODE is set: each child compiles the source of every module without a current .pyc\n"
              "(a pip-installed softmaxkit has them; a checkout whose sources changed may not): slower first calls.")
    records = []
    with tempfile.TemporaryDirectory(prefix="softmaxkit-bytecode-") as primed:
        bytecode_dir = None if args.source_bytecode else primed
        if bytecode_dir is not None:
            prime_bytecode(bytecode_dir)
        for case in select_cases(args.cases):
            records.append(run_case(case, bytecode_dir))
            print(f"  {case.name}: cold {records[-1]['cold']['first_call_s']:.2f} s", flush=True)
    print()
    print_report(records)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "records": records}, f, indent=1)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
