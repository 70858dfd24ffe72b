"""The benchmark harness (benchmarks/_harness.py): interleaved timing and case selection."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))

from _harness import TimingPlan, select_by_name, time_interleaved  # noqa: E402


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
    # the sampling phase alternates bursts of three calls (rewarm, sample, sample)
    sampling = [name for name, _ in events[4:]]
    assert sampling == ["a"] * 3 + ["b"] * 3 + ["a"] * 3 + ["b"] * 3


def test_cases_are_selected_by_glob_or_name_prefix():
    from collections import namedtuple

    Case = namedtuple("Case", "name")
    cases = [Case("softmax_4096x4096"), Case("log_softmax_4096x4096"), Case("logsumexp_4096x4096")]
    assert select_by_name(cases, None, "bench") == cases
    assert select_by_name(cases, "softmax_4096", "bench") == cases[:1]  # a prefix, not a substring
    assert select_by_name(cases, "log*, softmax_4096x4096", "bench") == cases
    with pytest.raises(SystemExit, match="bench: --cases 'nope' matches no case; cases are: softmax_4096x4096"):
        select_by_name(cases, "nope", "bench")
