"""``import softmaxkit`` stays light: no numba, no array framework, nothing compiled, well under
0.3 s. Each check runs in a fresh interpreter so that this test session's imports do not count.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parent.parent / "src")
HEAVY = ("numba", "llvmlite", "torch", "jax", "jaxlib", "dask", "scipy", "ml_dtypes", "tensorflow")


def _child(code: str, **env_vars: str) -> subprocess.CompletedProcess:
    """``code`` run by a fresh interpreter importing softmaxkit from SRC, with ``env_vars`` set."""
    env = dict(os.environ, **env_vars)
    env["PYTHONPATH"] = SRC + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=120, check=False)


def _run(code: str) -> dict:
    proc = _child(code)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


_PROBE = """
import json, sys, time
t0 = time.perf_counter()
import softmaxkit
dt = time.perf_counter() - t0
{extra}
print(json.dumps({{
    "seconds": dt,
    "modules": sorted({{m.split(".")[0] for m in sys.modules}}),
    "file": softmaxkit.__file__,
    {fields}
}}))
"""


def test_import_is_light():
    info = _run(_PROBE.format(extra="", fields=""))
    assert Path(info["file"]).resolve().is_relative_to(Path(SRC).resolve())
    loaded = set(info["modules"]) & set(HEAVY)
    assert not loaded, f"import softmaxkit imported {sorted(loaded)}"


def test_import_time_sanity_bound():
    # The target is well under 0.3 s; 1.0 s is only a sanity bound so a loaded CI machine does
    # not make this flaky. numpy's own import is included; take the best of three fresh runs.
    best = min(_run(_PROBE.format(extra="", fields=""))["seconds"] for _ in range(3))
    assert best < 1.0, best


def test_public_names_resolve_lazily():
    info = _run(_PROBE.format(
        extra="names = sorted(n for n in dir(softmaxkit) if not n.startswith('_'))\n"
              "before = {m.split('.')[0] for m in sys.modules}",
        fields='"names": names, "numba_before": "numba" in before,',
    ))
    for name in ("softmax", "log_softmax", "softmin", "logsumexp", "softmax_backward",
                 "log_softmax_backward", "set_num_threads", "get_num_threads"):
        assert name in info["names"]
    assert not info["numba_before"]  # dir() must not trigger the heavy imports either


def test_using_numpy_functions_does_not_import_frameworks():
    # The numpy path needs numba, but must not pull in torch/jax/dask. (scipy is not checked
    # here: numba's own __init__ imports scipy when it is installed, in _ensure_critical_deps.)
    info = _run(_PROBE.format(
        extra="import numpy as np\n"
              "r = softmaxkit.softmax(np.arange(6.0).reshape(2, 3))\n"
              "l = float(softmaxkit.logsumexp(np.arange(3.0)))",
        fields='"sum": float(r.sum()), "lse": l,',
    ))
    assert info["sum"] == pytest.approx(2.0)
    assert info["lse"] == pytest.approx(2.40760596444438, rel=1e-14)
    loaded = set(info["modules"]) & {"torch", "jax", "jaxlib", "dask", "tensorflow"}
    assert not loaded, f"softmaxkit.softmax on a numpy array imported {sorted(loaded)}"


def test_version():
    import softmaxkit

    assert isinstance(softmaxkit.__version__, str) and softmaxkit.__version__.count(".") >= 1


def test_numba_disable_jit_gets_a_clear_error():
    # numba.njit then returns plain Python functions; the kernels' intrinsics cannot run that way
    proc = _child("import numpy as np, softmaxkit as sk; sk.softmax(np.ones((4, 8), np.float32))",
                  NUMBA_DISABLE_JIT="1")
    assert proc.returncode != 0
    assert "RuntimeError: softmaxkit's kernels need numba's compiler, and NUMBA_DISABLE_JIT is set" in proc.stderr


def test_a_renamed_copy_loads_its_own_modules(tmp_path):
    # A vendored or renamed copy of the package (and a benchmark's side-by-side copies of two
    # revisions) resolves its lazy names to its own modules, never to an installed softmaxkit.
    shutil.copytree(Path(SRC) / "softmaxkit", tmp_path / "sk_copy",
                    ignore=shutil.ignore_patterns("__pycache__", "*.nb?"))
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); import sk_copy\n"
        "names = [sk_copy.softmax.__module__, sk_copy.set_num_threads.__module__, sk_copy.foreach.__name__]\n"
        "print(json.dumps([names, sorted(m for m in sys.modules if m.startswith('softmaxkit'))]))"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [["sk_copy._api", "sk_copy._threads", "sk_copy.foreach"], []]
