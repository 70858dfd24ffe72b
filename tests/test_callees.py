"""Callees (``_fastmath.callee``) are compiled for linking only: linked into their callers, which
optimise them, without machine code of their own unless their code reads numba's environment,
and without being optimised on their own unless marked ``optimised_alone``.

Every kernel test runs on such callees; these check the mechanism itself, each in a child process
with an empty numba cache (a warm cache would load the functions below instead of compiling them):
which libraries get machine code, that callers work either way, that a later process compiling
another caller loads the callees from numba's on-disk cache, as they were compiled (without
machine code, and the module callers link unchanged), and that calling a callee from Python
raises rather than calling numba's null entry point (a crash).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numba
import numpy as np
import pytest

from softmaxkit._kernels._fastmath import callee, kernel, optimised_alone


@callee()
def _plus_one(x):
    return x + 1.0


@callee()
def _pair_sum(x):
    values = [x, 2.0 * x]  # a reflected list: numba's runtime, but not its environment
    return values[0] + values[1]


@callee()
def _checked(x):
    if x < 0:
        raise ValueError("negative", x)  # a run-time value in the exception: the environment
    return x


@callee()
def _through_python(x):
    with numba.objmode(y="float64"):  # Python objects: the environment
        y = float(x) * 4.0
    return y


@kernel()
def _first_caller(x):
    return _plus_one(x) + _pair_sum(x) + _checked(x) + _through_python(x)


@kernel()
def _second_caller(x):
    return _plus_one(x) * _checked(x)


@callee()
def _sum_of_squares(a):
    total = 0.0
    for i in range(a.size):  # a loop: what making machine code rewrites (address modes, induction)
        total += a[i] * a[i]
    return total


@kernel()
def _first_squares_caller(a):
    return _sum_of_squares(a)


@kernel()
def _second_squares_caller(a):
    return _sum_of_squares(a) + 1.0


@callee()
def _twice_plus_one(x):
    return _plus_one(x) * 2.0


@callee()
@optimised_alone
def _twice_plus_one_alone(x):
    return _plus_one(x) * 2.0


@kernel()
def _third_caller(x):
    return _twice_plus_one(x) + _twice_plus_one_alone(x)


CALLEES = {"_plus_one": _plus_one, "_pair_sum": _pair_sum, "_checked": _checked, "_through_python": _through_python}


def _libraries(names) -> dict:
    """Each named callee's library: its kind, and whether it got machine code."""
    return {name: [type(cres.library).__name__, getattr(cres.library, "needs_machine_code", True)]
            for name in names for cres in CALLEES[name].overloads.values()}


def _child(step: str) -> None:
    """Run one step in this (child) process and print what it saw as JSON."""
    squares = np.arange(5.0)
    if step == "first":
        result = {"value": _first_caller(2.0), "squares": _first_squares_caller(squares)}
        try:
            _first_caller(-1.0)
        except ValueError as error:  # raised in a linked copy of _checked
            result["error"] = list(error.args)
        result["third"] = _third_caller(1.0)
        # whether a library's module still calls _plus_one (the inliner, a module pass, removes it)
        result["calls_plus_one"] = {
            function.__name__: [bool(re.search(r"call .*_plus_one", str(cres.library._final_module)))
                                for cres in function.overloads.values()]
            for function in (_twice_plus_one, _twice_plus_one_alone, _third_caller)
        }
        result["libraries"] = _libraries(CALLEES)
    elif step == "second":
        result = {"value": _second_caller(3.0), "squares": _second_squares_caller(squares),
                  "cache_hits": {name: sum(CALLEES[name].stats.cache_hits.values()) for name in ("_plus_one", "_checked")},
                  "libraries": _libraries(("_plus_one", "_checked"))}
    else:  # a callee called from Python, after a caller had it compiled (or loaded)
        _second_caller(3.0)
        try:
            _plus_one(1.0)
        except TypeError as error:
            result = {"python_call": str(error)}
    if step != "python":  # the module callers link of _sum_of_squares, compiled (first) or loaded (second)
        (cres,) = _sum_of_squares.overloads.values()
        linked = str(cres.library._get_module_for_linking()).splitlines()
        result["linked"] = "\n".join(line for line in linked if not line.startswith(("; ModuleID", "source_filename")))
    print(json.dumps(result))


def _run(step: str, cache_dir) -> dict:
    code = f"import sys; sys.path.insert(0, {os.path.dirname(__file__)!r}); import test_callees; test_callees._child({step!r})"
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir))
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    cache_dir = tmp_path_factory.mktemp("numba-cache")
    return _run("first", cache_dir), _run("second", cache_dir)


def test_callees_get_machine_code_only_when_their_code_reads_the_environment(runs):
    first, _ = runs
    assert first["libraries"] == {
        "_plus_one": ["_LinkOnlyLibrary", False],
        "_pair_sum": ["_LinkOnlyLibrary", False],
        "_checked": ["_LinkOnlyLibrary", True],
        "_through_python": ["_LinkOnlyLibrary", True],
    }


def test_callees_are_optimised_by_their_callers_unless_marked_optimised_alone(runs):
    first, _ = runs
    assert first["third"] == 8.0
    # _twice_plus_one's module is left as lowered; the marked one's and the caller's are optimised
    assert first["calls_plus_one"] == {"_twice_plus_one": [True], "_twice_plus_one_alone": [False], "_third_caller": [False]}


def test_callers_run_linked_callees_of_both_kinds(runs):
    first, _ = runs
    assert first["value"] == 3.0 + 6.0 + 2.0 + 8.0
    assert first["error"] == ["negative", -1.0]


def test_another_caller_loads_the_callees_from_the_on_disk_cache(runs):
    _, second = runs
    assert second["value"] == 4.0 * 3.0
    assert second["cache_hits"] == {"_plus_one": 1, "_checked": 1}  # bitcode-only and machine-code entries
    assert second["squares"] == 30.0 + 1.0


def test_a_loaded_callee_gets_machine_code_only_when_its_code_reads_the_environment(runs):
    _, second = runs
    # the machine-code entry loads as numba loads it (its library's own kind)
    assert second["libraries"] == {"_plus_one": ["_LinkOnlyLibrary", False], "_checked": ["JITCodeLibrary", True]}


def test_callers_link_the_same_module_of_a_callee_compiled_or_loaded(runs):
    first, second = runs
    assert first["squares"] == 30.0
    assert "_sum_of_squares" in first["linked"]
    assert second["linked"] == first["linked"]


def test_calling_a_callee_from_python_raises(runs, tmp_path):
    for cache_dir in (tmp_path, tmp_path):  # compiled, then loaded
        message = _run("python", cache_dir)["python_call"]
        assert "_plus_one is compiled only to be called by compiled functions" in message
