"""Shared timing and reporting helpers for the scripts in ``benchmarks/``.

Nothing here asserts a timing: benchmarks measure and print. Every peer runs in the same process
as softmaxkit, so they share the machine state (caches, frequency, allocator) at the time of the run.

Kept dependency-free beyond NumPy so ``bench_foreach.py`` can use it too.
"""

from __future__ import annotations

import fnmatch
import gc
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

# ---------------------------------------------------------------------------------------------
# timing


@dataclass(frozen=True)
class TimingPlan:
    """How long to spend on one callable.

    ``budget_s`` is the time the measured samples should take in total; the repeat count is
    derived from it so a 1 us call gets thousands of calls and a 100 ms call a handful, and it is
    then clamped to ``[min_repeats, max_repeats]``. Calls faster than ``min_sample_s`` are
    looped inside one sample so timer resolution and loop overhead stay negligible.
    """

    budget_s: float = 1.0
    min_repeats: int = 10  # = rounds, so that every callable has a sample in every round
    max_repeats: int = 200
    min_sample_s: float = 2e-3
    warmup_calls: int = 2
    # Interleaved timing (time_interleaved): the samples are taken in this many rounds, and
    # before each callable's turn the process sleeps settle_s.  torch's OpenMP threads and
    # XLA's thread pool keep spinning for milliseconds after a parallel call; without the pause
    # whichever callable runs next competes with them for the cores.  Measured here (2 cores):
    # softmax 4096x4096 float32 took 20.7 ms right after jax, 12.2 ms after a 10 ms pause and
    # 11.1 ms alone; float64 2048x2048 after torch 10.5 ms with a 20 ms pause, 8.5 ms with 50 ms
    # (8.4 ms with no torch in the process).
    rounds: int = 10
    settle_s: float = 0.05
    # After each pause every callable runs unmeasured for this long (at least one call) before
    # its samples: on the Zen 5 VM the first ~20 calls after any pause run slow for every
    # callable (the copy of 32x128256: 781 against 465 us per call), so without it each burst
    # measured the VM waking up more than the callable.  Samples thus see each callable's steady
    # state, as in a loop of calls; the first call of all is reported separately.
    rewarm_s: float = 0.01


FULL_PLAN = TimingPlan()
QUICK_PLAN = TimingPlan(
    budget_s=0.15, min_repeats=5, max_repeats=50, min_sample_s=1e-3, warmup_calls=1, rounds=5,
    rewarm_s=0.005,
)


@dataclass
class Timing:
    """Per-call seconds of one callable: the median is the figure we report."""

    median_s: float
    min_s: float
    max_s: float
    repeats: int
    calls_per_sample: int
    first_call_s: float  # includes compilation / tracing for JIT-compiled peers
    samples_s: list[float] = field(repr=False)
    # time_interleaved: the median of each round's samples, by round number (a round in which
    # the callable took no sample is absent); paired_ratio compares callables round by round.
    round_medians_s: dict[int, float] = field(default_factory=dict, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Calibrated:
    fn: Callable[[], object]
    calls: int  # calls per sample
    repeats: int
    first_call_s: float
    samples: list[float] = field(default_factory=list)
    round_starts: dict[int, int] = field(default_factory=dict)  # round -> index of its first sample

    def rewarm(self, seconds: float) -> None:
        """Call ``fn`` unmeasured for ``seconds`` (at least once)."""
        start = time.perf_counter()
        self.fn()
        while time.perf_counter() - start < seconds:
            self.fn()

    def sample(self) -> None:
        t0 = time.perf_counter()
        for _ in range(self.calls):
            self.fn()
        self.samples.append((time.perf_counter() - t0) / self.calls)

    def timing(self) -> Timing:
        bounds = [*self.round_starts.items(), (None, len(self.samples))]
        round_medians = {
            r: statistics.median(self.samples[start:end])
            for (r, start), (_, end) in zip(bounds, bounds[1:])
            if end > start
        }
        return Timing(
            median_s=statistics.median(self.samples),
            min_s=min(self.samples),
            max_s=max(self.samples),
            repeats=len(self.samples),
            calls_per_sample=self.calls,
            first_call_s=self.first_call_s,
            samples_s=self.samples,
            round_medians_s=round_medians,
        )


def _calibrate(
    fn: Callable[[], object], plan: TimingPlan, inspect_first_result: Callable[[Any], None] | None
) -> _Calibrated:
    """Warm ``fn`` up and choose its calls per sample and its number of samples."""
    t0 = time.perf_counter()
    first = fn()
    first_call_s = time.perf_counter() - t0
    if inspect_first_result is not None:
        inspect_first_result(first)
    del first
    estimate = first_call_s
    for _ in range(max(plan.warmup_calls - 1, 1)):
        t0 = time.perf_counter()
        fn()
        estimate = time.perf_counter() - t0

    calls = 1
    if estimate < plan.min_sample_s:
        # Re-estimate with a loop: one call of a 1 us function is dominated by timer noise.
        probe = max(int(plan.min_sample_s / max(estimate, 1e-8) / 4), 1)
        t0 = time.perf_counter()
        for _ in range(probe):
            fn()
        estimate = (time.perf_counter() - t0) / probe
        calls = max(math.ceil(plan.min_sample_s / max(estimate, 1e-9)), 1)
    repeats = int(plan.budget_s / max(estimate * calls, 1e-9))
    repeats = min(max(repeats, plan.min_repeats), plan.max_repeats)
    return _Calibrated(fn, calls, repeats, first_call_s)


class _GcDisabled:
    def __enter__(self) -> None:
        self._was_enabled = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc: object) -> None:
        if self._was_enabled:
            gc.enable()


def time_callable(
    fn: Callable[[], object],
    plan: TimingPlan = FULL_PLAN,
    inspect_first_result: Callable[[Any], None] | None = None,
) -> Timing:
    """Warm ``fn`` up, then time it ``repeats`` times and return per-call statistics.

    ``inspect_first_result`` receives the result of the first (warm-up) call, for checking it
    without paying for an extra call. The garbage collector is disabled while sampling (as
    ``timeit`` does); results of ``fn`` are dropped immediately so a large output is freed before
    the next call, as in real use.
    """
    calibrated = _calibrate(fn, plan, inspect_first_result)
    with _GcDisabled():
        for _ in range(calibrated.repeats):
            calibrated.sample()
    return calibrated.timing()


def time_interleaved(
    fns: dict[str, Callable[[], object]],
    plan: TimingPlan = FULL_PLAN,
    inspect_first_result: Callable[[str, Any], None] | None = None,
) -> dict[str, Timing | Exception]:
    """Time several callables that do the same work, taking their samples in turns.

    The samples are taken in ``plan.rounds`` rounds; in each round every callable takes its
    share of samples in one burst, after a pause of ``plan.settle_s`` that lets the worker
    threads of the callable before it go idle and ``plan.rewarm_s`` of unmeasured calls.  A
    burst of load from another process thus lands on all of them alike instead of on whichever
    ran at the time; on a shared machine this keeps the *ratios* far steadier than timing one
    callable after another.  Odd rounds take the callables in reverse order (A B, B A, A B, ...),
    so that a machine drifting faster or slower during a round favours no one; each round's
    median is kept for ``paired_ratio``.  A callable that raises (while warming up or sampling) gets its
    exception back instead of a Timing, and the others go on.
    """
    results: dict[str, Timing | Exception] = {}
    calibrated: dict[str, _Calibrated] = {}
    for name, fn in fns.items():
        inspect = None if inspect_first_result is None else (lambda y, name=name: inspect_first_result(name, y))
        try:
            calibrated[name] = _calibrate(fn, plan, inspect)
        except Exception as exc:  # a peer failing must not stop the others
            results[name] = exc
    rounds = max(1, plan.rounds)
    with _GcDisabled():
        for i in range(rounds):
            order = list(calibrated.items())
            for name, c in order if i % 2 == 0 else reversed(order):
                if name not in calibrated:  # raised earlier in this round
                    continue
                # this round's share of c.repeats samples (the shares add up to c.repeats)
                share = c.repeats * (i + 1) // rounds - c.repeats * i // rounds
                if share == 0:
                    continue
                time.sleep(plan.settle_s)
                try:
                    c.rewarm(plan.rewarm_s)
                    c.round_starts[i] = len(c.samples)
                    for _ in range(share):
                        c.sample()
                except Exception as exc:
                    results[name] = exc
                    del calibrated[name]
    for name, c in calibrated.items():
        results[name] = c.timing()
    return {name: results[name] for name in fns}


@dataclass(frozen=True)
class PairedRatio:
    """A ratio of two callables timed by ``time_interleaved``, taken round by round.

    ``median`` is the median over rounds of (numerator's round median / denominator's round
    median); ``low`` and ``high`` are the quartiles of those per-round ratios (both equal the
    median when there is only one round).
    """

    median: float
    low: float
    high: float
    rounds: int


def paired_ratio(numerator: Mapping[int, float], denominator: Mapping[int, float]) -> PairedRatio | None:
    """The per-round ratio ``numerator / denominator`` of two ``Timing.round_medians_s``, over
    the rounds both took samples in.

    A round of the full plan lasts about a second, so each per-round ratio compares the two
    callables in nearly the same state of the machine.  On the Zen 5 VM whole runs vary by up to 2x as its memory goes
    through slow phases (a fresh 64 MiB copy at 4 to 30 GB/s); a ratio of the two overall medians
    then depends on which callable happened to take more samples in the slow rounds, while the
    median of per-round ratios does not.  None when the two share no round.
    """
    shared = sorted(numerator.keys() & denominator.keys())
    ratios = [numerator[r] / denominator[r] for r in shared if denominator[r] > 0]
    if not ratios:
        return None
    if len(ratios) == 1:
        return PairedRatio(ratios[0], ratios[0], ratios[0], 1)
    low, _, high = statistics.quantiles(ratios, n=4, method="inclusive")
    return PairedRatio(statistics.median(ratios), low, high, len(ratios))


# ---------------------------------------------------------------------------------------------
# machine description


def usable_cores() -> int:
    """Cores this process may run on (respects taskset / cgroup affinity where the OS exposes it)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS, Windows
        return os.cpu_count() or 1


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def cpu_simd_flags() -> str:
    """The widest x86 vector extensions present, which decide how fast the numba kernels can be."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    wanted = ["avx512f", "avx512bw", "avx512vl", "avx2", "fma", "neon", "asimd"]
                    return " ".join(flag for flag in wanted if flag in flags) or "none listed"
    except OSError:
        pass
    return "unknown"


THREAD_ENV_PREFIXES = ("OPENBLAS_", "OMP_", "NUMBA_", "MKL_", "GOTO_", "KMP_", "XLA_FLAGS")


def thread_env_vars() -> dict[str, str]:
    return {k: v for k, v in sorted(os.environ.items()) if k.startswith(THREAD_ENV_PREFIXES)}


def _host_cpu_name() -> str:
    try:
        import llvmlite.binding as llvm

        return llvm.get_host_cpu_name()
    except Exception:  # llvmlite missing or broken: the name is informative only
        return "unknown"


def numba_thread_info() -> dict[str, Any]:
    """numba's thread count and threading layer.

    ``numba.threading_layer()`` only answers once a ``parallel=True`` function has run, so call
    this after the benchmarks, not before.
    """
    try:
        import numba
    except ImportError:
        return {"numba": "not installed"}
    info: dict[str, Any] = {
        "numba": numba.__version__,
        "numba_num_threads": numba.get_num_threads(),
        "numba_threading_layer_config": numba.config.THREADING_LAYER,
        # The CPU LLVM compiles for: its tuning decides, for example, the vector width of loops
        # that do not set one (see softmaxkit._kernels._fastmath).
        "llvm_cpu": numba.config.CPU_NAME or _host_cpu_name(),
    }
    try:
        info["numba_threading_layer"] = numba.threading_layer()
    except ValueError:
        info["numba_threading_layer"] = "not initialised (no parallel kernel ran)"
    return info


def copy_bandwidth(nbytes: int = 64 * 2**20, plan: TimingPlan = FULL_PLAN) -> dict[str, float]:
    """Memory bandwidth in GB/s (1e9 bytes/s), counting every byte read and every byte written.

    Three figures, because they differ by up to 2x on the machines we target:
    ``copy_alloc``: ``x.copy()`` (includes page-faulting a fresh output, what an out-of-place
    function pays); ``copy_into``: ``np.copyto(y, x)`` into a reused buffer; ``inplace``:
    ``np.multiply(x, 1, out=x)`` (read-modify-write of one buffer).
    """
    x = np.ones(nbytes // 4, dtype=np.float32)
    y = np.empty_like(x)
    moved = 2 * x.nbytes
    return {
        "bytes": float(x.nbytes),
        "copy_alloc_GBps": moved / time_callable(x.copy, plan).median_s / 1e9,
        "copy_into_GBps": moved / time_callable(lambda: np.copyto(y, x), plan).median_s / 1e9,
        "inplace_GBps": moved / time_callable(lambda: np.multiply(x, 1, out=x), plan).median_s / 1e9,
    }


def back_memory(nbytes: int = 2**30) -> float:
    """Touch ``nbytes`` of fresh memory once and free it; returns the rate in GB/s.

    On a freshly booted VM the hypervisor backs guest memory on first touch: measured at
    0.35 GB/s on the 2-core Zen 5 VM (18 GiB in 51 s), against ~20 GB/s for a page fault on
    memory it already backs.  Without this, whichever case runs first pays for it in its
    64 MiB outputs (softmax 4096x4096 took 11-33 ms instead of 6).  The kernel reuses the
    freed pages for the outputs that follow.
    """
    start = time.perf_counter()
    block = np.ones(nbytes // 8)
    seconds = time.perf_counter() - start
    del block
    return nbytes / seconds / 1e9


class CpuContention:
    """How much of the machine's CPU *other* processes (and the hypervisor) took during a run.

    Timings of multi-threaded peers are meaningless on a busy machine: an OpenMP barrier waiting
    for a descheduled thread turns a 7 us call into milliseconds. Linux only (``/proc/stat``);
    elsewhere ``measure()`` returns None.
    """

    def __init__(self) -> None:
        self._start = self._snapshot()

    @staticmethod
    def _snapshot() -> tuple[float, float, float, float] | None:
        try:
            with open("/proc/stat", encoding="utf-8") as f:
                fields = [int(v) for v in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
        tick = os.sysconf("SC_CLK_TCK")
        busy = (user + nice + system + irq + softirq) / tick
        mine = sum(os.times()[:2])
        return time.perf_counter(), busy, steal / tick, mine

    def measure(self) -> dict[str, float] | None:
        """Fractions of (elapsed time x cores) used by other processes and stolen by the hypervisor."""
        end = self._snapshot()
        if self._start is None or end is None:
            return None
        wall = (end[0] - self._start[0]) * (os.cpu_count() or 1)
        others = (end[1] - self._start[1]) - (end[3] - self._start[3])
        return {"others": max(others, 0.0) / wall, "steal": (end[2] - self._start[2]) / wall}


def basic_machine_info() -> dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_model": cpu_model(),
        "cpu_simd": cpu_simd_flags(),
        "cores": usable_cores(),
        "os_cpu_count": os.cpu_count(),
        "numpy": np.__version__,
        "thread_env": thread_env_vars(),
    }


def select_by_name(items: Sequence[Any], patterns: str | None, script: str) -> list[Any]:
    """The ``items`` whose ``name`` matches one of the comma-separated ``patterns`` (all of them
    for none).  A pattern is a glob (``softmax_*``) or a name prefix (``softmax_4096`` picks one
    case, not log_softmax_4096x4096).  No match exits with the list of names."""
    if not patterns:
        return list(items)
    wanted = [p.strip() for p in patterns.split(",") if p.strip()]
    chosen = [c for c in items if any(fnmatch.fnmatch(c.name, p) or c.name.startswith(p) for p in wanted)]
    if not chosen:
        names = ", ".join(c.name for c in items)
        raise SystemExit(f"{script}: --cases {patterns!r} matches no case; cases are: {names}")
    return chosen


# ---------------------------------------------------------------------------------------------
# formatting


def format_seconds(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "-"
    if seconds >= 1.0:
        return f"{seconds:.3g} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    if seconds >= 1e-6:
        return f"{seconds * 1e6:.3g} us"
    return f"{seconds * 1e9:.3g} ns"


def format_ratio(ratio: float | None) -> str:
    if ratio is None or not math.isfinite(ratio):
        return "-"
    return f"{ratio:.2f}x"


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]], align_left: int = 1) -> str:
    """A plain-text table; the first ``align_left`` columns are left-aligned, the rest right."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row)]

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.ljust(w) if i < align_left else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(cells, widths))
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(row) for row in rows)])
