"""Time softmaxkit's softmax family against its peers, in one process, and print the ratios.

Peers: torch (threads = usable cores), ``scipy.special``, a plain NumPy implementation, jax (jit,
``block_until_ready``) when installed, and two rooflines: ``x.copy()`` for out-of-place functions
(it reads and writes every element once *and* allocates a fresh output, as they do) and
``np.multiply(x, 1, out=x)`` for in-place ones. The cases and targets are those of issue 3;
targets were set on the 2-core reference machine, so read them against the core count printed.

Out-of-place cases also time ``np.copyto(buffer, x)`` into a reused buffer ("copyto"): the
transfer alone, without page faults.  softmaxkit keeps the memory of its results of 32 MiB or
more for its next result once the caller lets them go (``softmaxkit.set_result_cache``), as a
timing loop does, while ``x.copy()`` maps fresh memory for each call above glibc's 32 MiB mmap
threshold; so for those cases sk/copyto, not sk/roofline, says how close softmaxkit is to the
bandwidth.  ``--result-cache 0`` times softmaxkit without that reuse.

Timings are medians of adaptive repeats (many calls for microsecond cases, a few for 100 ms ones).
Nothing is asserted: the script prints, and with ``--json`` writes everything for comparing runs.

Usage::

    python benchmarks/bench_softmax.py              # full run, about 1.5 minutes on 2 cores
    python benchmarks/bench_softmax.py --quick      # same cases, fewer repeats: about a minute with
                                                    # a cold numba cache, about 30 s with a warm one
    python benchmarks/bench_softmax.py --cases 'softmax_4096*,logsumexp*' --json out.json
    python benchmarks/bench_softmax.py --list
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _harness import (  # noqa: E402  (the path insert above makes the sibling module importable)
    FULL_PLAN,
    QUICK_PLAN,
    CpuContention,
    TimingPlan,
    basic_machine_info,
    back_memory,
    copy_bandwidth,
    format_ratio,
    format_seconds,
    numba_thread_info,
    paired_ratio,
    render_table,
    select_by_name,
    time_interleaved,
    usable_cores,
)

# ---------------------------------------------------------------------------------------------
# softmaxkit itself: the subject of the benchmark, so failing to import it is fatal.


def _import_softmaxkit() -> Any:
    try:
        import softmaxkit as sk

        for name in ("softmax", "log_softmax", "logsumexp", "get_num_threads", "set_num_threads"):
            getattr(sk, name)
    except Exception as exc:  # ImportError, or AttributeError from the lazy loader
        raise SystemExit(
            f"bench_softmax: cannot use softmaxkit ({type(exc).__name__}: {exc}).\n"
            "Install it first, e.g. `pip install -e '.[bench]'` from the repository root."
        ) from exc
    return sk


# ---------------------------------------------------------------------------------------------
# cases


@dataclass(frozen=True)
class Target:
    """One issue-3 target. ``against`` is a peer name (ratio = peer time / softmaxkit time, must be
    >= threshold) or ``"roofline"`` (ratio = softmaxkit time / roofline time, must be <= threshold)."""

    against: str
    threshold: float

    def met(self, ratio: float) -> bool:
        if self.against == "roofline":
            return ratio <= self.threshold
        return ratio >= self.threshold

    def describe(self) -> str:
        return f"<={self.threshold:g}" if self.against == "roofline" else f">={self.threshold:g}"


@dataclass(frozen=True)
class Case:
    name: str
    description: str
    function: str  # "softmax" | "log_softmax" | "logsumexp"
    shape: tuple[int, ...]
    axis: int
    dtype: str = "float32"
    inplace: bool = False
    check_row_sums: bool = False  # print max |row sum - 1| beside the timings
    targets: tuple[Target, ...] = field(default=())


def _targets(torch: float | None, scipy: float | None, roofline: float | None) -> tuple[Target, ...]:
    pairs = (("torch", torch), ("scipy", scipy), ("roofline", roofline))
    return tuple(Target(name, value) for name, value in pairs if value is not None)


# The table of issue 3. --quick keeps these shapes (smaller ones would fit in a 32 MiB L3 and make
# the roofline ratios meaningless) and takes fewer repeats instead.
CASES: tuple[Case, ...] = (
    Case("softmax_4096x4096", "softmax 4096x4096, last axis", "softmax",
         (4096, 4096), -1, check_row_sums=True, targets=_targets(2.0, 5, 1.3)),
    Case("softmax_64x1000", "softmax 64x1000", "softmax",
         (64, 1000), -1, targets=_targets(1.0, 3, None)),
    Case("softmax_32x128256", "softmax 32x128256 (LLM vocabulary)", "softmax",
         (32, 128256), -1, check_row_sums=True, targets=_targets(1.2, 5, 1.5)),
    Case("softmax_nchw_axis1", "softmax 4x21x256x256, axis 1 (NCHW)", "softmax",
         (4, 21, 256, 256), 1, targets=_targets(1.5, 5, 1.6)),
    Case("softmax_row_2p24", "softmax of one row of 2**24", "softmax",
         (2**24,), -1, check_row_sums=True, targets=_targets(3.0, 5, 1.5)),
    Case("softmax_f64_2048x2048", "softmax float64 2048x2048", "softmax",
         (2048, 2048), -1, dtype="float64", targets=_targets(1.2, 4, 1.5)),
    Case("log_softmax_4096x4096", "log_softmax 4096x4096", "log_softmax",
         (4096, 4096), -1, targets=_targets(2.0, 5, 1.3)),
    Case("logsumexp_4096x4096", "logsumexp 4096x4096, last axis", "logsumexp",
         (4096, 4096), -1, targets=_targets(1.5, 5, None)),
    Case("softmax_8x10", "softmax 8x10 (per-call overhead)", "softmax",
         (8, 10), -1, targets=_targets(0.7, 3, None)),
    Case("softmax_inplace_4096x4096", "softmax in place (out=x) 4096x4096", "softmax",
         (4096, 4096), -1, inplace=True, targets=_targets(None, None, 1.3)),
)  # fmt: skip

PEERS = ("torch", "scipy", "numpy", "jax")
ROOFLINES = ("roofline", "copyto")  # x.copy() (or in place), and np.copyto into a reused buffer


def select_cases(patterns: str | None) -> list[Case]:
    return select_by_name(CASES, patterns, "bench_softmax")


# ---------------------------------------------------------------------------------------------
# peers: each is imported lazily and reported as "not installed" rather than crashing.


class Peers:
    def __init__(self, enabled: set[str], threads: int) -> None:
        self.modules: dict[str, Any] = {}
        self.unavailable: dict[str, str] = {}
        self.versions: dict[str, str] = {}
        for name in PEERS:
            if name not in enabled:
                self.unavailable[name] = "disabled (--peers)"
                continue
            try:
                self.modules[name] = getattr(self, f"_load_{name}")(threads)
            except ImportError:
                self.unavailable[name] = "not installed"
            except Exception as exc:  # a broken install must not stop the benchmark
                self.unavailable[name] = f"import failed: {type(exc).__name__}: {exc}"

    def _load_torch(self, threads: int) -> Any:
        import torch

        torch.set_num_threads(threads)
        self.versions["torch"] = f"{torch.__version__} ({torch.get_num_threads()} threads)"
        return torch

    def _load_scipy(self, threads: int) -> Any:
        import scipy
        import scipy.special

        self.versions["scipy"] = scipy.__version__
        return scipy.special

    def _load_numpy(self, threads: int) -> Any:
        self.versions["numpy"] = np.__version__
        return np

    def _load_jax(self, threads: int) -> Any:
        import jax

        # Without x64 jax silently computes the float64 case in float32.
        jax.config.update("jax_enable_x64", True)
        self.versions["jax"] = f"{jax.__version__} on {jax.devices()[0].platform}"
        return jax


def numpy_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - x.max(axis, keepdims=True))
    e /= e.sum(axis, keepdims=True)
    return e


def numpy_softmax_inplace(x: np.ndarray, axis: int) -> np.ndarray:
    np.subtract(x, x.max(axis, keepdims=True), out=x)
    np.exp(x, out=x)
    x /= x.sum(axis, keepdims=True)
    return x


def numpy_log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    shifted = x - x.max(axis, keepdims=True)
    shifted -= np.log(np.exp(shifted).sum(axis, keepdims=True))
    return shifted


def numpy_logsumexp(x: np.ndarray, axis: int) -> np.ndarray:
    m = x.max(axis, keepdims=True)
    return np.log(np.exp(x - m).sum(axis)) + np.squeeze(m, axis)


Callables = dict[str, "Callable[[], Any] | str"]  # a str is the reason the peer does not run


def build_callables(case: Case, x: np.ndarray, sk: Any, peers: Peers) -> Callables:
    """Zero-argument callables for every peer of ``case`` (inputs prepared outside the timing).

    In-place callables get their own copy of ``x`` so peers do not feed each other's output.
    """
    axis, fn = case.axis, case.function
    calls: Callables = {}

    if case.inplace:
        xs = x.copy()
        calls["softmaxkit"] = lambda: sk.softmax(xs, axis, out=xs)
        xr = x.copy()
        calls["roofline"] = lambda: np.multiply(xr, 1, out=xr)
    else:
        calls["softmaxkit"] = partial(getattr(sk, fn), x, axis)
        calls["roofline"] = x.copy
        reused = np.empty_like(x)
        calls["copyto"] = partial(np.copyto, reused, x)

    for name in PEERS:
        if name in peers.unavailable:
            calls[name] = peers.unavailable[name]
            continue
        mod = peers.modules[name]
        try:
            calls[name] = getattr(_PeerBuilders, name)(mod, case, x)
        except Exception as exc:
            calls[name] = f"setup failed: {type(exc).__name__}: {exc}"
    return calls


class _PeerBuilders:
    @staticmethod
    def torch(torch: Any, case: Case, x: np.ndarray) -> Callable[[], Any] | str:
        if case.inplace:
            t = torch.from_numpy(x.copy())
            return lambda: torch.softmax(t, case.axis, out=t)
        t = torch.from_numpy(x)  # shares memory: no conversion inside the timing
        op = {"softmax": torch.softmax, "log_softmax": torch.log_softmax, "logsumexp": torch.logsumexp}
        return partial(op[case.function], t, case.axis)

    @staticmethod
    def scipy(special: Any, case: Case, x: np.ndarray) -> Callable[[], Any] | str:
        if case.inplace:
            return "no out= argument"
        return partial(getattr(special, case.function), x, axis=case.axis)

    @staticmethod
    def numpy(np_: Any, case: Case, x: np.ndarray) -> Callable[[], Any] | str:
        if case.inplace:
            xn = x.copy()
            return lambda: numpy_softmax_inplace(xn, case.axis)
        impl = {"softmax": numpy_softmax, "log_softmax": numpy_log_softmax, "logsumexp": numpy_logsumexp}
        return partial(impl[case.function], x, case.axis)

    @staticmethod
    def jax(jax: Any, case: Case, x: np.ndarray) -> Callable[[], Any] | str:
        if case.inplace:
            return "immutable arrays (no in-place)"
        import jax.nn
        import jax.scipy.special

        op = {
            "softmax": jax.nn.softmax,
            "log_softmax": jax.nn.log_softmax,
            "logsumexp": jax.scipy.special.logsumexp,
        }[case.function]
        jitted = jax.jit(partial(op, axis=case.axis))
        xj = jax.device_put(x)
        return lambda: jitted(xj).block_until_ready()


# ---------------------------------------------------------------------------------------------
# running one case


def make_input(case: Case, shape: tuple[int, ...]) -> np.ndarray:
    rng = np.random.default_rng(20261031)
    dtype = np.dtype(case.dtype)
    # Logits with a spread typical of classifier / LLM outputs.
    return rng.standard_normal(shape, dtype=dtype) * dtype.type(3)


def as_numpy(result: Any) -> np.ndarray:
    if isinstance(result, np.ndarray):
        return result
    if hasattr(result, "numpy"):  # torch
        return result.numpy()
    return np.asarray(result)  # jax, scalars


def row_sum_error(case: Case, y: np.ndarray) -> float:
    """max |sum of probabilities over the slice - 1|, the sum taken in float64."""
    if case.function == "log_softmax":
        y = np.exp(y.astype(np.float64))
    return float(np.max(np.abs(np.sum(y, axis=case.axis, dtype=np.float64) - 1.0)))


def check_against(reference: np.ndarray, y: np.ndarray, case: Case) -> str:
    """A same-function sanity check (catches a wrong axis or shape), not an accuracy measurement.

    Compares an evenly strided sample of about a million elements, which is enough to catch a
    peer normalising over the wrong axis and keeps the check cheap on 64 MiB results.
    """
    if y.shape != reference.shape:
        return f"MISMATCH: shape {y.shape}, expected {reference.shape}"
    if y.dtype != reference.dtype:
        return f"MISMATCH: dtype {y.dtype}, expected {reference.dtype}"
    step = max(reference.size // 2**20, 1)
    got, want = np.ravel(y)[::step], np.ravel(reference)[::step]
    # rtol is loose because a sum that drifts by 1e-3 (torch on 2**24 rows) is still the same function.
    atol = 1e-3 if case.function != "softmax" else 1e-7
    if not np.allclose(got, want, rtol=1e-2, atol=atol, equal_nan=True):
        worst = float(np.nanmax(np.abs(got.astype(np.float64) - want)))
        return f"MISMATCH: max abs difference {worst:.3g}"
    return "ok"


def run_case(case: Case, sk: Any, peers: Peers, plan: TimingPlan) -> dict[str, Any]:
    shape = case.shape
    x = make_input(case, shape)
    reference_impl = {"softmax": numpy_softmax, "log_softmax": numpy_log_softmax, "logsumexp": numpy_logsumexp}
    reference = reference_impl[case.function](x, case.axis)

    calls = build_callables(case, x, sk, peers)
    record: dict[str, Any] = {
        "name": case.name,
        "description": case.description,
        "function": case.function,
        "shape": list(shape),
        "axis": case.axis,
        "dtype": case.dtype,
        "inplace": case.inplace,
        "bytes": x.nbytes,
        "roofline": "np.multiply(x, 1, out=x)" if case.inplace else "x.copy()",
        "timings": {},
        "skipped": {},
        "checks": {},
        "row_sum_error": {},
    }
    runnable = {}
    for name, call in calls.items():
        if isinstance(call, str):
            record["skipped"][name] = call
        else:
            runnable[name] = call

    def inspect(name: str, y: Any) -> None:
        # The first call's result: in-place callables run it on their fresh copy of x, so it is
        # softmax(x) too.
        if name in ROOFLINES:
            return
        y_np = as_numpy(y)
        record["checks"][name] = check_against(reference, y_np, case)
        if case.check_row_sums and case.function != "logsumexp":
            record["row_sum_error"][name] = row_sum_error(case, y_np)

    for name, outcome in time_interleaved(runnable, plan, inspect).items():
        if isinstance(outcome, Exception):
            record["skipped"][name] = f"error: {type(outcome).__name__}: {outcome}"
        else:
            record["timings"][name] = outcome.as_dict()
    del calls, x, reference
    return record


def ratios_and_verdicts(record: dict[str, Any], case: Case) -> None:
    """Add ``ratios`` (peer/softmaxkit, and softmaxkit/roofline) and target verdicts to ``record``.

    Each ratio is the median of the per-round ratios (``paired_ratio``): a slow phase of the
    machine lands on both of its sides, where it could favour one side of a ratio of overall
    medians; ``ratio_quartiles`` gives their spread and ``ratios_of_medians`` the plain ratio of
    the two median times, for comparison.
    """
    timings = record["timings"]
    pairs = [(name, name, "softmaxkit") for name in PEERS] + [(name, "softmaxkit", name) for name in ROOFLINES]
    ratios: dict[str, float] = {}
    quartiles: dict[str, list[float]] = {}
    of_medians: dict[str, float] = {}
    for key, numerator, denominator in pairs:
        if numerator not in timings or denominator not in timings:
            continue
        paired = paired_ratio(timings[numerator]["round_medians_s"], timings[denominator]["round_medians_s"])
        if paired is None:
            continue
        ratios[key] = paired.median
        quartiles[key] = [paired.low, paired.high]
        of_medians[key] = timings[numerator]["median_s"] / timings[denominator]["median_s"]
    record["ratios"] = ratios
    record["ratio_quartiles"] = quartiles
    record["ratios_of_medians"] = of_medians
    verdicts = []
    for target in case.targets:
        value = ratios.get(target.against)
        verdicts.append({
            "against": target.against,
            "target": target.describe(),
            "ratio": value,
            "quartiles": quartiles.get(target.against),
            "met": None if value is None else target.met(value),
        })  # fmt: skip
    record["targets"] = verdicts


# ---------------------------------------------------------------------------------------------
# report


def print_report(records: list[dict[str, Any]]) -> None:
    columns = ["softmaxkit", *ROOFLINES, *PEERS]

    def first_call_cell(record: dict[str, Any]) -> str:
        timing = record["timings"].get("softmaxkit")
        return format_seconds(timing["first_call_s"]) if timing else "-"

    def time_cell(record: dict[str, Any], name: str) -> str:
        if name in record["timings"]:
            return format_seconds(record["timings"][name]["median_s"])
        # The reason itself ("no out= argument", errors) is in the JSON and under "Problems".
        return "not installed" if record["skipped"].get(name) == "not installed" else "n/a"

    print("\nMedian time per call (roofline: x.copy(), or np.multiply(x, 1, out=x) for in-place;")
    print("copyto: np.copyto into a reused buffer, the transfer without page faults).")
    print("sk 1st call: softmaxkit's first call in this process, including compiling its kernels or")
    print("loading them from numba's on-disk cache (cold cache: compiles; rerun to see the warm figure).")
    rows = [[r["description"], *(time_cell(r, c) for c in columns), first_call_cell(r)] for r in records]
    print(render_table(["case", *columns, "sk 1st call"], rows))

    def ratio_cell(record: dict[str, Any], name: str) -> str:
        value = record["ratios"].get(name)
        cell = format_ratio(value)
        for verdict in record["targets"]:
            if verdict["against"] == name and value is not None:
                cell += f" [{verdict['target']} {'met' if verdict['met'] else 'NOT MET'}]"
        return cell

    print("\nRatios: sk/roofline, sk/copyto = softmaxkit time / that time (lower is better);")
    print("peer/sk = peer time / softmaxkit time (higher means softmaxkit is faster). [target] from issue 3.")
    print("Each ratio is the median over the rounds of that round's ratio (the two callables timed")
    print("within a second of each other), so a slow phase of the machine lands on both of its sides.")
    ratio_columns = [*ROOFLINES, *PEERS]
    rows = [[r["description"], *(ratio_cell(r, c) for c in ratio_columns)] for r in records]
    print(render_table(["case", *(f"sk/{p}" for p in ROOFLINES), *(f"{p}/sk" for p in PEERS)], rows))

    verdicts = [v for r in records for v in r["targets"]]
    met = sum(1 for v in verdicts if v["met"])
    unknown = sum(1 for v in verdicts if v["met"] is None)
    print(f"\nissue-3 targets met: {met} of {len(verdicts)}" + (f" ({unknown} not measurable: peer missing)" if unknown else ""))
    for r in records:
        for v in r["targets"]:
            if v["met"] is False:
                label = "softmaxkit/roofline" if v["against"] == "roofline" else f"{v['against']}/softmaxkit"
                low, high = v["quartiles"]
                print(f"  NOT MET  {r['description']}: {label} = {v['ratio']:.2f} "
                      f"(rounds' quartiles {low:.2f}-{high:.2f}), target {v['target']}")

    accuracy = [r for r in records if r["row_sum_error"]]
    if accuracy:
        print("\nAccuracy: max |row sum - 1| of the float32 probabilities (sum taken in float64)")
        names = [n for n in ("softmaxkit", *PEERS) if any(n in r["row_sum_error"] for r in accuracy)]
        rows = [
            [r["description"], *(f"{r['row_sum_error'][n]:.2e}" if n in r["row_sum_error"] else "-" for n in names)]
            for r in accuracy
        ]
        print(render_table(["case", *names], rows))

    problems = [
        (r["description"], name, msg)
        for r in records
        for name, msg in [*r["checks"].items(), *r["skipped"].items()]
        if msg.startswith(("MISMATCH", "error", "setup failed", "import failed"))
    ]
    if problems:
        print("\nProblems (these results are not comparable):")
        for description, name, msg in problems:
            print(f"  {description} / {name}: {msg}")


def _describe_result_cache(cache: dict[str, int] | None) -> str:
    if cache is None:
        return "none (this softmaxkit has no set_result_cache)"
    if not cache["max_bytes"]:
        return "off (--result-cache 0): every result of 32 MiB or more was fresh memory"
    return (f"up to {cache['max_bytes'] / 2**20:.0f} MiB of freed results of 32 MiB or more kept for reuse: "
            f"{cache['reused']} results reused memory, {cache['allocated']} took new memory")


def print_machine(machine: dict[str, Any]) -> None:
    print("Machine")
    bw = machine["bandwidth"]
    lines = [
        ("CPU", f"{machine['cpu_model']} ({machine['cpu_simd']})"),
        ("cores", f"{machine['cores']} usable (os.cpu_count {machine['os_cpu_count']})"),
        ("python / numpy", f"{machine['python']} / {machine['numpy']}"),
        ("softmaxkit", f"{machine['softmaxkit']} ({machine['softmaxkit_threads']} threads) from {machine['softmaxkit_path']}"),
        ("result cache", _describe_result_cache(machine.get("result_cache"))),
        ("numba", f"{machine['numba']}, {machine['numba_num_threads']} threads, threading layer "
                  f"{machine['numba_threading_layer']} (config: {machine['numba_threading_layer_config']}), "
                  f"LLVM CPU {machine.get('llvm_cpu', '?')}"),
        *[(name, version) for name, version in machine["peers"].items()],
        ("thread env vars", ", ".join(f"{k}={v}" for k, v in machine["thread_env"].items()) or "none set (OPENBLAS_*, OMP_*, NUMBA_*, MKL_*)"),
        ("first touch", f"{machine['first_touch_GBps']:.2f} GB/s writing 1 GiB of fresh memory before the cases "
                        "(a new VM backs its memory on first touch)"),
        ("copy bandwidth", f"{bw['copy_alloc_GBps']:.1f} GB/s x.copy() (fresh output), {bw['copy_into_GBps']:.1f} GB/s "
                           f"np.copyto into a reused buffer, {bw['inplace_GBps']:.1f} GB/s in place "
                           f"(read+write, {bw['bytes'] / 2**20:.0f} MiB)"),
    ]  # fmt: skip
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        print(f"  {key.ljust(width)}  {value}")
    busy = machine.get("cpu_contention")
    if busy is not None:
        print(f"  {'other load'.ljust(width)}  other processes used {busy['others']:.0%} of the CPU during the run, "
              f"hypervisor steal {busy['steal']:.0%}")
        if busy["others"] + busy["steal"] > 0.05:
            print("  WARNING: the machine was busy; multi-threaded timings (torch, softmaxkit's parallel paths)"
                  " are unreliable. Rerun on an idle machine.")
    if machine["cores"] != 2:
        print(f"  note: issue-3 targets were set on a 2-core machine; this one has {machine['cores']}.")


# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="same shapes, fewer repeats: about a minute")
    parser.add_argument("--json", metavar="PATH", help="write all results (machine, timings, ratios) as JSON")
    parser.add_argument("--cases", metavar="PATTERNS", help="comma-separated names or globs (see --list)")
    parser.add_argument("--peers", default=",".join(PEERS), help=f"peers to run (default: {','.join(PEERS)})")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="threads for softmaxkit and torch (default: the usable cores)")
    parser.add_argument("--result-cache", type=int, metavar="BYTES",
                        help="softmaxkit.set_result_cache(BYTES) before the cases (0: no reuse of freed results)")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    args = parser.parse_args(argv)

    if args.list:
        for case in CASES:
            print(f"{case.name:28s} {case.description}")
        return 0

    started = time.perf_counter()
    cases = select_cases(args.cases)
    plan = QUICK_PLAN if args.quick else FULL_PLAN
    sk = _import_softmaxkit()
    threads = args.threads or usable_cores()
    if args.threads:
        sk.set_num_threads(args.threads)
    if args.result_cache is not None:
        sk.set_result_cache(args.result_cache)
    peers = Peers({p.strip() for p in args.peers.split(",") if p.strip()}, threads)

    machine = basic_machine_info()
    machine["first_touch_GBps"] = back_memory()
    contention = CpuContention()
    print(f"bench_softmax{' --quick' if args.quick else ''}: {len(cases)} cases, peers run in this process")
    records = []
    for case in cases:
        print(f"  {case.description} ...", end="", flush=True)
        t0 = time.perf_counter()
        record = run_case(case, sk, peers, plan)
        ratios_and_verdicts(record, case)
        records.append(record)
        print(f" {time.perf_counter() - t0:.1f} s")

    # After the cases, so numba's threading layer has been initialised by a parallel kernel.
    machine.update(numba_thread_info())
    machine["softmaxkit"] = getattr(sk, "__version__", "unknown")
    machine["softmaxkit_path"] = os.path.dirname(getattr(sk, "__file__", "") or "?")
    machine["softmaxkit_threads"] = sk.get_num_threads()
    info = getattr(sk, "result_cache_info", None)
    machine["result_cache"] = info()._asdict() if info else None
    machine["peers"] = {name: peers.versions.get(name, peers.unavailable.get(name, "?")) for name in PEERS}
    machine["bandwidth"] = copy_bandwidth(plan=plan)
    machine["cpu_contention"] = contention.measure()

    print()
    print_machine(machine)
    print_report(records)
    elapsed = time.perf_counter() - started
    print(f"\ntotal {elapsed:.1f} s")

    if args.json:
        payload = {
            "schema": 1,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "argv": sys.argv[1:] if argv is None else argv,
            "quick": args.quick,
            "timing_plan": dataclasses.asdict(plan),
            "machine": machine,
            "cases": records,
            "elapsed_s": elapsed,
        }
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(payload, f, indent=1, default=_json_default)
        print(f"wrote {args.json}")

    sk_failed = any("softmaxkit" in r["skipped"] or r["checks"].get("softmaxkit", "ok") != "ok" for r in records)
    return 1 if sk_failed else 0


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


if __name__ == "__main__":
    sys.exit(main())
