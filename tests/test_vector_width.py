"""Every kernel is compiled to prefer 512-bit vectors (``_fastmath.WideVectorCompiler``).

LLVM vectorises with 256-bit registers on Intel CPUs with AVX-512 unless a function says
otherwise; our kernels then ran at 3/4 of the arithmetic the CPU can do (see ``_fastmath``).
A kernel added with plain ``numba.njit`` would silently lose that, so these tests check the
decorators of every kernel module and the LLVM IR of freshly compiled kernels.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
import textwrap

import numba
import pytest

from softmaxkit._kernels._fastmath import PREFERRED_VECTOR_WIDTH, WideVectorCompiler

KERNEL_MODULES = [
    "softmaxkit._kernels._exp",
    "softmaxkit._kernels._log",
    "softmaxkit._kernels._scalar",
    "softmaxkit._kernels._parallel",
    "softmaxkit._kernels.backward",
    "softmaxkit._kernels.softmax",
    "softmaxkit._kernels.weighted",
    "softmaxkit.foreach._kernels",
    "softmaxkit.foreach._vecmath",
]
# The parallel driver and its serial twin hold no loop to vectorise: they call a range function
# (compiled with WideVectorCompiler) through its address, or have the threading layer call it.
DRIVERS = {"softmaxkit._kernels._parallel._run_ranges", "softmaxkit._kernels._parallel._run_range"}


def _dispatchers():
    for module_name in KERNEL_MODULES:
        module = importlib.import_module(module_name)
        for name, value in vars(module).items():
            if isinstance(value, numba.core.registry.CPUDispatcher) and value.py_func.__module__ == module_name:
                yield f"{module_name}.{name}", value


def test_every_kernel_module_compiles_with_the_wide_vector_pipeline():
    found = dict(_dispatchers())
    assert len(found) > 60  # the modules were really searched
    assert DRIVERS <= set(found)
    wrong = sorted(
        name
        for name, d in found.items()
        if name not in DRIVERS and d._compiler.pipeline_class is not WideVectorCompiler
    )
    assert wrong == []


_CHILD = textwrap.dedent(
    """
    import json, gc, re, sys
    import numpy as np
    import softmaxkit as sk
    import softmaxkit.foreach as fe
    from softmaxkit._kernels._parallel import RangeKernel

    sk.set_num_threads(2)
    x = np.random.default_rng(0).standard_normal((64, 1000)).astype(np.float32)
    sk.softmax(x)                                # rows
    sk.log_softmax(np.ones((2, 32, 1024), np.float32), 1)  # columns 4 KiB apart (the block kernels)
    sk.log_softmax(x.reshape(16, 4, 1000), 1)    # columns over few rows (the tiles)
    sk.logsumexp(np.ones(2**18, np.float64))     # one row split between workers
    fe.exp_([np.ones(100, np.float32)])          # foreach
    def defines(ir):
        # each function definition with its attribute groups (``#0``) spelled out
        groups = dict(re.findall(r"^attributes (#\\d+) = \\{(.*)\\}$", ir, re.M))
        return [
            line + " ".join(groups.get(g, "") for g in re.findall(r"#\\d+", line.rsplit(")", 1)[-1]))
            for line in ir.splitlines()
            if line.startswith("define")
        ]

    report = {}
    for k in (o for o in gc.get_objects() if isinstance(o, RangeKernel)):
        for callback in k._callbacks.values():
            ir = callback.inspect_llvm()
            asm = callback._library.get_asm_str()  # CFunc has inspect_llvm but no inspect_asm
            report[k._py_func.__name__] = {
                "defines": defines(ir),
                "zmm": asm.count("%zmm"),
            }
    from softmaxkit.foreach import _kernels as fk
    for name in ("unary_inplace_list", "unary_inplace", "unary_out"):
        d = getattr(fk, name)
        for signature in d.signatures:
            ir = d.inspect_llvm(signature)
            report[f"foreach {name}"] = {
                "defines": defines(ir),
                "zmm": d.inspect_asm(signature).count("%zmm"),
            }
    json.dump(report, sys.stdout)
    """
)


@pytest.fixture(scope="module")
def fresh_compile(tmp_path_factory):
    """The LLVM IR and the zmm count of the kernels a child process compiled into an empty cache
    (code loaded from numba's cache cannot be inspected)."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path_factory.mktemp("numba-cache")))
    run = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def test_every_compiled_function_prefers_512_bit_vectors(fresh_compile):
    assert {
        "_softmax_row_range", "_log_softmax_column_range", "_log_softmax_small_k_range", "_chunk_log_range"
    } <= set(fresh_compile)
    assert any(name.startswith("foreach") for name in fresh_compile)
    for name, entry in fresh_compile.items():
        # the range function itself and every kernel it links in (exp, sums, scaling, ...); not
        # numba's wrappers (``cfunc.``, ``cpython.``) and reference counting (``NRT_``), which
        # hold no loops and are not lowered from our code
        ours = [line for line in entry["defines"] if re.search(r"@_ZN10softmaxkit", line)]
        assert ours, name
        missing = [line[:150] for line in ours if PREFERRED_VECTOR_WIDTH not in line]
        assert missing == [], name


def _host_has_avx512() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return any(line.startswith("flags") and " avx512f" in line for line in f)
    except OSError:
        return False


def test_kernels_use_512_bit_registers_where_the_cpu_has_them(fresh_compile):
    zmm = {name: entry["zmm"] for name, entry in fresh_compile.items()}
    if _host_has_avx512():
        # on Intel this fails without the attribute: LLVM picks ymm registers
        assert all(count > 0 for count in zmm.values()), zmm
    else:
        assert all(count == 0 for count in zmm.values()), zmm
