"""Shared fixtures and hypothesis profiles for the softmaxkit test suite.

Hypothesis profiles: "ci" (selected by default; modest example counts so the suite stays fast, no
deadline because the first call of a kernel compiles or loads it from numba's cache) and "thorough"
(for local bug hunting: ``HYPOTHESIS_PROFILE=thorough``). The choice of profile only changes how
many examples run, never which tests run.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

_ROOT = Path(__file__).resolve().parent.parent
# Test the working tree's package (src layout) even when it has not been pip-installed.
if str(_ROOT / "src") not in sys.path:
    sys.path.insert(0, str(_ROOT / "src"))
# tests/naive.py and tests/arrays.py are imported as top-level helper modules.
if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))

settings.register_profile(
    "ci",
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.register_profile(
    "thorough",
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "slow: a large-input test (seconds, not minutes); it always runs, the marker only labels it",
    )


@pytest.fixture
def rng():
    """A fresh, seeded generator per test, so each test is reproducible on its own."""
    return np.random.default_rng(20240601)


@pytest.fixture
def kernel_calls(monkeypatch):
    """``kernel_calls(*names)``: a list recording the arguments of every later call of those
    kernels of ``softmaxkit._numpy_backend.kernels()`` (the calls still run them), to check which
    kernel a layout takes."""
    from softmaxkit import _numpy_backend as backend

    def spy_on(*names):
        kernels = backend.kernels()
        calls = []
        for name in names:
            original = getattr(kernels, name)

            def spy(*args, original=original):
                calls.append(args)
                return original(*args)

            monkeypatch.setattr(kernels, name, spy)
        return calls

    return spy_on


@pytest.fixture(scope="session")
def big_row_f32():
    """One row of 2**24 float32 logits (64 MiB), shared by the large-row tests."""
    gen = np.random.default_rng(7)
    return (gen.standard_normal(2**24, dtype=np.float32) * np.float32(4)).astype(np.float32)


@pytest.fixture(scope="session")
def big_row_f32_reference(big_row_f32):
    """Softmax of :func:`big_row_f32` computed in float64 (exact differences, accurate exp)."""
    x = big_row_f32.astype(np.float64)
    e = np.exp(x - x.max())
    return e / np.sum(e)
