"""Benchmark softmaxkit.foreach.log1p_ against its peers, all in this process.

Peers (float32, in place unless noted):

- ``torch._foreach_log1p_`` on a list of tensors (torch's own threads);
- a NumPy loop ``for a in arrays: np.log1p(a, out=a)`` (1 thread);
- ``list(map(np.log1p, arrays))`` (the seed document's ``map`` alternative; out of place);
- a torch loop ``for t in ts: torch.log1p_(t)`` (the seed's loop alternative);
- ``softmaxkit.foreach.log1p_`` on the plain list, and on a packed list (``foreach.pack``).

Each figure is the median over repeats of one call on the whole list; the peers' samples are
taken in turns (one round = one call of every peer) so that load from other processes on a shared
machine affects all of them alike.  The ratios printed are
peer time / softmaxkit time (above 1: softmaxkit is faster).  The issue's targets are printed next
to the measured ratios; nothing here asserts them.

Usage::

    python benchmarks/bench_foreach.py [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

CASES = [  # (name, number of arrays, elements per array)
    ("10,000 x 100", 10_000, 100),
    ("1,000 x 1,000", 1_000, 1_000),
    ("4 x 4,000,000", 4, 4_000_000),
]
# case -> (target vs torch, target vs numpy loop) for the plain list; packed 10,000 x 100: >= 10 vs torch
TARGETS = {"10,000 x 100": (1.2, 1.0), "1,000 x 1,000": (1.5, 1.2), "4 x 4,000,000": (1.2, 1.5)}
PACKED_TARGET_VS_TORCH = 10.0


def median_times_interleaved(fns: dict[str, Callable[[], object]], repeats: int, min_total_s: float) -> dict[str, float]:
    """Median seconds per call of each peer, taking one sample of every peer per round.

    Interleaving means load from other processes (this machine is shared) hits every peer alike
    instead of whichever peer happened to be running at the time.  Rotating who goes first keeps
    the cyclic order of ``fns``, so each peer always runs right after the same one: the caller
    lists the peers so that no multi-threaded peer follows a torch peer (see ``run``).
    """
    for fn in fns.values():
        fn()  # warm-up (compiles or loads the numba kernels on first use)
    samples: dict[str, list[float]] = {name: [] for name in fns}
    start = time.perf_counter()
    rounds = 0
    while rounds < repeats or (time.perf_counter() - start < min_total_s and rounds < 20 * repeats):
        order = list(fns.items())
        order = order[rounds % len(order):] + order[: rounds % len(order)]  # rotate who goes first
        for name, fn in order:
            t0 = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - t0)
        rounds += 1
    return {name: statistics.median(v) for name, v in samples.items()}


def other_cpu_load() -> float:
    """1-minute load average (other processes slow every peer alike, but add noise)."""
    try:
        return os.getloadavg()[0]
    except OSError:  # pragma: no cover
        return float("nan")


def run(quick: bool) -> dict:
    from softmaxkit import foreach

    try:
        import numba

        numba_threads = numba.get_num_threads()
    except ImportError:  # pragma: no cover
        numba_threads = 1
    try:
        import torch
    except ImportError:
        torch = None

    repeats, min_total = (3, 0.05) if quick else (15, 0.5)
    rng = np.random.default_rng(0)
    results = {
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "numpy": np.__version__,
        "torch": None if torch is None else torch.__version__,
        "quick": quick,
        "load_before": other_cpu_load(),
        "cases": [],
    }
    print(f"numpy {np.__version__}, torch {results['torch']}, cpus {os.cpu_count()}, "
          f"load {results['load_before']:.2f}{' (quick)' if quick else ''}")
    for name, count, size in CASES:
        base = [rng.random(size, dtype=np.float32) for _ in range(count)]
        arrays = [a.copy() for a in base]
        packed = foreach.pack(base)
        peers: dict[str, tuple[Callable[[], object], int]] = {}
        peers["softmaxkit list"] = (
            lambda: foreach.log1p_(arrays),
            numba_threads if count * size >= 65536 else 1,
        )
        peers["softmaxkit packed"] = (
            lambda: foreach.log1p_(packed),
            numba_threads if count * size >= 65536 else 1,
        )

        def numpy_loop(arrays=arrays):
            for a in arrays:
                np.log1p(a, out=a)

        # Order matters (see median_times_interleaved): after a parallel op, torch's OpenMP threads
        # keep spinning for a few milliseconds, which takes one of this machine's two cores from
        # whatever runs next.  Measured: the peer right after a torch peer ran 3 ms slower on the
        # 4 x 4,000,000 case (11.4 ms instead of 7.9 ms), whichever peer it was, and not at all
        # with OMP_WAIT_POLICY=passive (torch itself no slower).  So the torch peers run together
        # and are followed by the single-threaded NumPy peers.
        if torch is not None:
            tensors = [torch.from_numpy(a.copy()) for a in base]

            def torch_loop(tensors=tensors):
                for t in tensors:
                    torch.log1p_(t)

            peers["torch._foreach_log1p_"] = (lambda: torch._foreach_log1p_(tensors), torch.get_num_threads())
            peers["torch loop"] = (torch_loop, torch.get_num_threads())
            peers["torch map"] = (lambda: list(map(torch.log1p, tensors)), torch.get_num_threads())
        peers["numpy loop"] = (numpy_loop, 1)
        peers["numpy map"] = (lambda: list(map(np.log1p, arrays)), 1)
        times = median_times_interleaved({p: v[0] for p, v in peers.items()}, repeats, min_total)
        sk = times["softmaxkit list"]
        skp = times["softmaxkit packed"]
        print(f"\n{name} float32 log1p_ ({count * size:,} elements)")
        print(f"  {'peer':<24}{'median':>12}{'threads':>9}{'peer/sk list':>14}{'peer/sk packed':>16}")
        for peer, t in times.items():
            print(f"  {peer:<24}{t * 1e3:>10.3f}ms{peers[peer][1]:>9}{t / sk:>14.2f}{t / skp:>16.2f}")
        case = {
            "case": name,
            "arrays": count,
            "size": size,
            "median_s": times,
            "threads": {p: v[1] for p, v in peers.items()},
        }
        if "torch._foreach_log1p_" in times:
            vs_torch = times["torch._foreach_log1p_"] / sk
            vs_numpy = times["numpy loop"] / sk
            t_torch, t_numpy = TARGETS[name]
            print(f"  targets: list vs torch {vs_torch:.2f} (>= {t_torch}), list vs numpy loop {vs_numpy:.2f} (>= {t_numpy})"
                  + (f", packed vs torch {times['torch._foreach_log1p_'] / skp:.2f} (>= {PACKED_TARGET_VS_TORCH})"
                     if count == 10_000 else ""))
            case["ratios"] = {
                "list_vs_torch": vs_torch,
                "list_vs_numpy_loop": vs_numpy,
                "packed_vs_torch": times["torch._foreach_log1p_"] / skp,
            }
        results["cases"].append(case)
    results["load_after"] = other_cpu_load()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    results = run(args.quick)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
