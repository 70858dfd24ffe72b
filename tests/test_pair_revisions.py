"""benchmarks/pair_revisions.py: side-by-side copies of the package are each their own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import pair_revisions  # noqa: E402


def _load_in_child(directory: Path) -> subprocess.CompletedProcess:
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import pair_revisions as p, pathlib\n"
            "m = p.load_copy(pathlib.Path(sys.argv[2]))\n"
            "print(m.softmax.__module__, sorted(n for n in sys.modules if n.startswith('softmaxkit')))")
    return subprocess.run([sys.executable, "-c", code, str(BENCHMARKS), str(directory)],
                          capture_output=True, text=True, timeout=120, check=False)


def test_a_working_tree_copy_is_its_own(tmp_path):
    directory = pair_revisions.copy_revision("WT", "sk_b", tmp_path)
    proc = _load_in_child(directory)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["sk_b._api", "[]"]


def test_a_copy_that_loads_another_package_is_refused(tmp_path):
    # what every copy of a revision before e944601 did: its lazy names were "softmaxkit._api"
    directory = pair_revisions.copy_revision("WT", "sk_a", tmp_path)
    init = directory / "__init__.py"
    init.write_text(init.read_text().replace('"._api"', '"softmaxkit._api"'))
    proc = _load_in_child(directory)
    assert proc.returncode != 0
    assert "copy sk_a: softmax comes from softmaxkit._api, not from the copy" in proc.stderr


def test_old_absolute_lazy_names_are_made_the_copys_own():
    old = '_LAZY_ATTRIBUTES = {\n    "softmax": "softmaxkit._api",\n    "get_num_threads": "softmaxkit._threads",\n}'
    assert pair_revisions.own_names(old, "sk_a") == (
        '_LAZY_ATTRIBUTES = {\n    "softmax": "sk_a._api",\n    "get_num_threads": "sk_a._threads",\n}')


@pytest.mark.parametrize("spec", ["4x5", "4x5:0", "4x5:0:softmax:sideways", "4x5:0:exp", "4x5:0:logsumexp:inplace"])
def test_bad_case_specs_are_refused(spec):
    with pytest.raises(SystemExit, match="--case"):
        pair_revisions.parse_case(spec)


def test_a_pairing_runs_and_reports(tmp_path):
    # two copies of the working tree, one tiny case, one round: the report line and bit-identical
    # results (the same code on the same input)
    env = dict(os.environ, NUMBA_NUM_THREADS="2")
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / "pair_revisions.py"), "WT", "WT", "--rounds", "1", "--sample-ms", "1",
         "--case", "8x10:-1:softmax", "--case", "40x16x4:1:log_softmax:out:float64", "--keep", str(tmp_path)],
        capture_output=True, text=True, timeout=600, check=False, env=env)
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if "B/A" in line]
    assert len(lines) == 2
    assert lines[0].startswith("8x10:-1:softmax: B/A ") and lines[0].endswith("results identical")
    assert lines[1].startswith("40x16x4:1:log_softmax:out:float64: B/A ") and lines[1].endswith("results identical")


@pytest.mark.parametrize("shape, axis", [((5, 7), 0), ((5, 7), 1), ((3, 4, 6), 1)])
def test_a_peaked_input_has_one_entry_per_slice_30_above_the_rest(shape, axis):
    import numpy as np

    x = pair_revisions.make_input("peaked", shape, axis, np.random.default_rng(0))
    assert x.shape == shape
    assert ((x == 0.0).sum(axis=axis) == 1).all()
    others = np.where(x == 0.0, -30.5, x)
    assert ((others <= -30.0) & (others >= -31.0)).all()
