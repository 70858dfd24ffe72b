"""The benchmark harness (benchmarks/_harness.py): interleaved timing and case selection."""

from __future__ import annotations

import os
import sys
import types

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))

import _harness  # noqa: E402
from _harness import PairedRatio, TimingPlan, paired_ratio, select_by_name, time_interleaved  # noqa: E402


def test_each_burst_is_rewarmed_before_its_samples():
    # Every callable runs unmeasured after each pause, before the samples of that round; a
    # callable that takes longer than rewarm_s still gets exactly one unmeasured call.
    events: list[tuple[str, int]] = []
    counts = {"a": 0, "b": 0}

    def make(name):
        def fn():
            counts[name] += 1
            events.append((name, counts[name]))

        return fn

    plan = TimingPlan(budget_s=1e-9, min_repeats=4, max_repeats=4, min_sample_s=0.0,
                      warmup_calls=1, rounds=2, settle_s=0.0, rewarm_s=0.0)
    result = time_interleaved({"a": make("a"), "b": make("b")}, plan)
    assert result["a"].repeats == result["b"].repeats == 4
    # per callable: 1 first call + 1 warm-up, then per round 1 rewarm + 2 samples
    assert counts == {"a": 2 + 2 * 3, "b": 2 + 2 * 3}
    # the sampling phase alternates bursts of three calls (rewarm, sample, sample), the second
    # round in reverse order
    sampling = [name for name, _ in events[4:]]
    assert sampling == ["a"] * 3 + ["b"] * 3 + ["b"] * 3 + ["a"] * 3
    assert sorted(result["a"].round_medians_s) == sorted(result["b"].round_medians_s) == [0, 1]


def test_round_medians_are_taken_per_round(monkeypatch):
    # fn takes 1 ms for each call of `other` so far, so it gets slower from one round to the next
    # (other runs between its rounds) and stays the same within a round: each round's median is
    # that of the round's own samples.  The harness reads a fake clock that only fn advances (a
    # busy-wait on the real one measured 6.5 ms for 5 on a stalled CI VM).
    other_calls = []
    clock = [0.0]
    fake_time = types.SimpleNamespace(perf_counter=lambda: clock[0], sleep=lambda seconds: None)
    monkeypatch.setattr(_harness, "time", fake_time)

    def other():
        other_calls.append(None)

    def fn():
        clock[0] += 1e-3 * len(other_calls)

    plan = TimingPlan(budget_s=1e-9, min_repeats=6, max_repeats=6, min_sample_s=0.0,
                      warmup_calls=1, rounds=3, settle_s=0.0, rewarm_s=0.0)
    result = time_interleaved({"other": other, "fn": fn}, plan)
    medians = result["fn"].round_medians_s
    assert sorted(medians) == [0, 1, 2]
    # other's calls before each of fn's rounds: 2 (calibration) + 3 (round 0 runs other first),
    # then 5 again (round 1 runs fn first), then 5 + 3 + 3 = 11 (round 2)
    assert medians[0] == pytest.approx(5e-3, rel=1e-9)
    assert medians[1] == pytest.approx(5e-3, rel=1e-9)
    assert medians[2] == pytest.approx(11e-3, rel=1e-9)


def test_paired_ratio_compares_round_by_round():
    # The machine gets 8x slower over the run; both callables with it.  The ratio of the overall
    # medians depends on how the samples fall, the paired ratio does not.
    slow_a = {0: 1.0, 1: 2.0, 2: 4.0, 3: 8.0}
    slow_b = {0: 2.0, 1: 4.0, 2: 8.0, 3: 16.0}
    assert paired_ratio(slow_b, slow_a) == PairedRatio(2.0, 2.0, 2.0, 4)
    assert paired_ratio(slow_a, slow_b) == PairedRatio(0.5, 0.5, 0.5, 4)
    # only the rounds both took samples in count
    assert paired_ratio({0: 3.0, 2: 6.0}, {0: 1.0, 1: 100.0, 2: 2.0}) == PairedRatio(3.0, 3.0, 3.0, 2)
    # the median and quartiles of the per-round ratios 1, 2, 3, 4, 5
    got = paired_ratio({r: float(r + 1) for r in range(5)}, {r: 1.0 for r in range(5)})
    assert got == PairedRatio(3.0, 2.0, 4.0, 5)
    assert paired_ratio({0: 1.0}, {0: 4.0}) == PairedRatio(0.25, 0.25, 0.25, 1)
    assert paired_ratio({0: 1.0}, {1: 1.0}) is None
    assert paired_ratio({0: 1.0}, {0: 0.0}) is None


def test_cases_are_selected_by_glob_or_name_prefix():
    from collections import namedtuple

    Case = namedtuple("Case", "name")
    cases = [Case("softmax_4096x4096"), Case("log_softmax_4096x4096"), Case("logsumexp_4096x4096")]
    assert select_by_name(cases, None, "bench") == cases
    assert select_by_name(cases, "softmax_4096", "bench") == cases[:1]  # a prefix, not a substring
    assert select_by_name(cases, "log*, softmax_4096x4096", "bench") == cases
    with pytest.raises(SystemExit, match="bench: --cases 'nope' matches no case; cases are: softmax_4096x4096"):
        select_by_name(cases, "nope", "bench")
