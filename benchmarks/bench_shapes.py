"""Sweep shapes and axes beyond bench_softmax.py's table: softmaxkit against torch.

Issue 3 asks softmaxkit to be ahead of torch on every shape; bench_softmax.py times ten. This
script times softmax and log_softmax over 35 float32 layouts (short and long rows, attention rows,
a non-last axis with few or many rows K, a first axis, tall columns) and 5 float64 ones, and
softmax, log_softmax and logsumexp over 9 masked layouts (6 of rows, 3 of columns) (``where=`` against torch's
``masked_fill`` with -inf, then the function), and softmax and log_softmax of attention scores with a
padding and a causal mask broadcast over them, softmaxkit and torch in the same process with the harness's interleaved rounds (a pause before each turn, so torch's spinning
OpenMP threads do not slow softmaxkit, or the reverse). It prints torch time / softmaxkit time
per case (above 1: softmaxkit is faster) and lists the cases where torch is ahead. Nothing is
asserted; no targets beyond "ahead of torch".

Usage::

    python benchmarks/bench_shapes.py [--quick] [--json PATH] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (  # noqa: E402
    TimingPlan,
    basic_machine_info,
    paired_ratio,
    render_table,
    time_interleaved,
    usable_cores,
)

#: (shape, axis): rows short and long, attention rows, a non-last axis, a first axis
SHAPES: tuple[tuple[tuple[int, ...], int], ...] = (
    ((1000, 10), -1), ((10000, 10), -1), ((100000, 10), -1), ((1000, 100), -1), ((4096, 64), -1),
    ((256, 32000), -1), ((2, 1 << 22), -1), ((3, 1 << 20), -1), ((1, 100000), -1),
    ((16, 12, 128, 128), -1),
    ((1024, 1024), 0), ((4096, 64), 0), ((64, 4096), 0), ((1000, 10), 0), ((10, 100000), 0),
    ((4, 8, 4096), 1), ((32, 3, 224, 224), 1), ((8, 1000, 128), 1), ((128, 16, 256), 1),
    ((2, 3, 4, 5000), 2), ((4096, 4096), 0),
    # tall columns (many rows K, a few hundred columns), in cache and beyond
    ((600, 100), 0), ((100, 1000), 0), ((4000, 500), 0),
    # rows of a few elements (an RL policy's actions for a batch), and fewer columns than a vector
    ((4096, 4), -1), ((100, 10, 10), 1), ((2000, 4, 4), 1),
    # rows of 17-64 (packed in groups of 16 or 8 since the eleventh session)
    ((4096, 20), -1), ((4096, 48), -1),
    # columns whose rows are a multiple of 1 KiB apart (a tile's lines in 2 or 4 L1 sets; twelfth
    # session)
    ((128, 512), 0), ((100, 256), 0),
    # small calls over another axis, where the Python front end is most of the time (column plans,
    # thirteenth session): a few channels of a small map, a short first axis
    ((2, 3, 4, 16), 2), ((16, 64), 0), ((2, 64, 16, 16), 1), ((16, 1024), 0),
)
#: float64 layouts (NumPy's default dtype): short rows, and a column layout
FLOAT64_SHAPES: tuple[tuple[tuple[int, ...], int], ...] = (
    ((1000, 10), -1), ((4096, 4), -1), ((4096, 64), -1), ((1000, 100), -1), ((64, 4096), 0),
)
FUNCTIONS = ("softmax", "log_softmax")
#: float32 layouts with a random mask (70% kept), ``where=`` against torch's idiom, ``masked_fill``
#: of the left-out entries with -inf and then the function, for softmax, log_softmax and logsumexp:
#: rows, and a few column layouts
MASKED_SHAPES: tuple[tuple[tuple[int, ...], int], ...] = (
    ((8, 10), -1), ((256, 32), -1), ((1000, 100), -1), ((4096, 64), -1), ((10000, 10), -1), ((64, 1000), -1),
    ((16, 64), 0), ((1000, 100), 0), ((2, 64, 16, 16), 1),
)
MASKED_FUNCTIONS = ("softmax", "log_softmax", "logsumexp")
#: attention scores ``(B, H, T, T)`` with a mask broadcast over them, as ``where=`` (and to torch's
#: ``masked_fill``): a padding mask ``(B, 1, 1, T)`` (80% kept) and a causal one ``(T, T)``
ATTENTION_MASKS: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...] = (
    ((8, 12, 128, 128), (8, 1, 1, 128)), ((8, 12, 128, 128), (128, 128)),
)
# About 0.25 s per callable and case (a 4096x4096 call takes a few repeats): 3-4 minutes in all;
# --quick takes about a third of that.
PLAN = TimingPlan(budget_s=0.12, min_repeats=6, max_repeats=40, min_sample_s=1e-3, rounds=6, settle_s=0.03,
                  rewarm_s=0.005)
QUICK = TimingPlan(budget_s=0.04, min_repeats=4, max_repeats=16, min_sample_s=1e-3, rounds=4, settle_s=0.03,
                   rewarm_s=0.005)


def run(plan: TimingPlan, threads: int) -> list[dict]:
    import torch

    import softmaxkit as sk

    sk.set_num_threads(threads)
    torch.set_num_threads(threads)
    records = []
    cases = [(shape, axis, np.float32) for shape, axis in SHAPES]
    cases += [(shape, axis, np.float64) for shape, axis in FLOAT64_SHAPES]
    for shape, axis, dtype in cases:
        x = (np.random.default_rng(20261203).standard_normal(shape) * 3).astype(dtype)
        t = torch.from_numpy(x)
        for name in FUNCTIONS:
            ours, theirs = getattr(sk, name), getattr(torch, name)
            timings = time_interleaved(
                {"softmaxkit": lambda: ours(x, axis), "torch": lambda: theirs(t, axis)}, plan
            )
            ratio = paired_ratio(timings["torch"].round_medians_s, timings["softmaxkit"].round_medians_s)
            records.append({
                "function": name, "shape": list(shape), "axis": axis, "dtype": np.dtype(dtype).name,
                "softmaxkit_s": timings["softmaxkit"].median_s, "torch_s": timings["torch"].median_s,
                "torch_over_softmaxkit": ratio.median, "quartiles": [ratio.low, ratio.high],
            })
            print(f"  {name} {shape} axis {axis} {np.dtype(dtype).name}: {ratio.median:.2f}", flush=True)
    for shape, axis in MASKED_SHAPES:
        rng = np.random.default_rng(20261205)
        x = (rng.standard_normal(shape) * 3).astype(np.float32)
        mask = rng.random(shape) < 0.7
        t, left_out = torch.from_numpy(x), torch.from_numpy(~mask)
        for name in MASKED_FUNCTIONS:
            ours, theirs = getattr(sk, name), getattr(torch, name)
            timings = time_interleaved(
                {"softmaxkit": lambda: ours(x, axis, where=mask),
                 "torch": lambda: theirs(t.masked_fill(left_out, -np.inf), axis)},
                plan,
            )
            ratio = paired_ratio(timings["torch"].round_medians_s, timings["softmaxkit"].round_medians_s)
            records.append({
                "function": name, "shape": list(shape), "axis": axis, "dtype": "float32", "where": True,
                "softmaxkit_s": timings["softmaxkit"].median_s, "torch_s": timings["torch"].median_s,
                "torch_over_softmaxkit": ratio.median, "quartiles": [ratio.low, ratio.high],
            })
            print(f"  {name} {shape} axis {axis} masked: {ratio.median:.2f}", flush=True)
    for shape, mask_shape in ATTENTION_MASKS:
        rng = np.random.default_rng(20261205)
        x = (rng.standard_normal(shape) * 3).astype(np.float32)
        if len(mask_shape) == 2:
            mask = np.tril(np.ones(mask_shape, bool))
        else:
            mask = rng.random(mask_shape) < 0.8
            mask[..., 0] = True
        t, left_out = torch.from_numpy(x), torch.from_numpy(~mask)
        for name in FUNCTIONS:
            ours, theirs = getattr(sk, name), getattr(torch, name)
            timings = time_interleaved(
                {"softmaxkit": lambda: ours(x, -1, where=mask),
                 "torch": lambda: theirs(t.masked_fill(left_out, -np.inf), -1)},
                plan,
            )
            ratio = paired_ratio(timings["torch"].round_medians_s, timings["softmaxkit"].round_medians_s)
            records.append({
                "function": name, "shape": list(shape), "axis": -1, "dtype": "float32", "where": list(mask_shape),
                "softmaxkit_s": timings["softmaxkit"].median_s, "torch_s": timings["torch"].median_s,
                "torch_over_softmaxkit": ratio.median, "quartiles": [ratio.low, ratio.high],
            })
            print(f"  {name} {shape} where {mask_shape}: {ratio.median:.2f}", flush=True)
    return records


def _where_label(where) -> str:
    """The table's note on a case's mask: none, one of x's shape, or a broadcast one's shape."""
    if not where:
        return ""
    return " where" if where is True else " where " + "x".join(map(str, where))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats: about a third of the time")
    parser.add_argument("--json", metavar="PATH", help="write the records as JSON")
    parser.add_argument("--threads", type=int, metavar="N", help="threads for both (default: the usable cores)")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else PLAN
    threads = args.threads or usable_cores()
    n_cases = (len(SHAPES) + len(FLOAT64_SHAPES) + len(ATTENTION_MASKS)) * len(FUNCTIONS)
    n_cases += len(MASKED_SHAPES) * len(MASKED_FUNCTIONS)
    print(f"bench_shapes: {n_cases} cases, softmaxkit and torch on {threads} threads")
    records = run(plan, threads)
    rows = [
        [r["function"], "x".join(map(str, r["shape"])), str(r["axis"]) + _where_label(r.get("where")),
         r["dtype"], f"{r['softmaxkit_s'] * 1e6:.1f} us",
         f"{r['torch_s'] * 1e6:.1f} us", f"{r['torch_over_softmaxkit']:.2f}x"
         + ("  torch ahead" if r["torch_over_softmaxkit"] < 1 else "")]
        for r in records
    ]
    print(render_table(["function", "shape", "axis", "dtype", "softmaxkit", "torch", "torch/softmaxkit"], rows))
    behind = sum(r["torch_over_softmaxkit"] < 1 for r in records)
    print(f"softmaxkit ahead of torch on {len(records) - behind} of {len(records)} cases")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": basic_machine_info(), "records": records}, indent=1))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
