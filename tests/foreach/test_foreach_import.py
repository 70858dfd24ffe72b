"""``import softmaxkit.foreach`` stays light: no numba, no torch, nothing compiled.

numba (about 0.5 s to import) is loaded on the first op that runs a kernel; ops that NumPy runs
never load it.  Each check runs in a fresh interpreter so this session's imports do not count.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

SRC = str(Path(__file__).resolve().parents[2] / "src")
HEAVY = ("numba", "llvmlite", "torch", "jax", "jaxlib", "dask", "scipy", "tensorflow")


def _run(code: str) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


_PROBE = """
import json, sys
import softmaxkit.foreach as foreach
after_import = sorted({{m.split(".")[0] for m in sys.modules}})
kernels_after_import = "softmaxkit.foreach._kernels" in sys.modules
import numpy as np
{extra}
print(json.dumps({{
    "after_import": after_import,
    "kernels_after_import": kernels_after_import,
    "file": foreach.__file__,
    "after_use": sorted({{m.split(".")[0] for m in sys.modules}}),
    {fields}
}}))
"""


def test_import_foreach_does_not_import_numba_or_frameworks():
    info = _run(_PROBE.format(extra="", fields=""))
    assert Path(info["file"]).resolve().is_relative_to(Path(SRC).resolve())
    loaded = set(info["after_import"]) & set(HEAVY)
    assert not loaded, f"import softmaxkit.foreach imported {sorted(loaded)}"
    assert "numba" not in info["after_import"]
    assert not info["kernels_after_import"]


def test_ops_that_numpy_runs_do_not_import_numba():
    info = _run(_PROBE.format(
        extra="xs = [np.ones(3, np.float32), np.arange(4.0)]\n"
              "foreach.add_(xs, 1.0); foreach.sqrt(xs); foreach.norm(xs); foreach.zero_(xs)\n"
              "p = foreach.pack(xs); foreach.mul_(p, 2.0); foreach.clone(p)",
        fields="",
    ))
    assert "numba" not in info["after_use"]


def test_kernel_op_loads_numba_on_first_use():
    info = _run(_PROBE.format(
        extra="xs = [np.ones(3, np.float32)]\nforeach.log1p_(xs)",
        fields='"value": float(xs[0][0]),',
    ))
    assert "numba" not in info["after_import"]
    assert "numba" in info["after_use"]
    assert info["value"] == float(np.float32(np.log(2.0)))
    assert "torch" not in info["after_use"]
