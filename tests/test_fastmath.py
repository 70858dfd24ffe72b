"""Every numba kernel uses one of the two flag sets in ``softmaxkit._kernels._fastmath``.

numba's ``fastmath=True`` is LLVM's ``fast``, which includes ``nnan`` and ``ninf``: LLVM may then
assume that no NaN or infinity ever occurs.  The kernels rely on both (``-inf`` marks masked and
underflowed entries, NaN must propagate to the whole slice), so a kernel compiled with those
flags can silently return wrong results for exactly the inputs this library promises to handle.
"""

from __future__ import annotations

import importlib
import pkgutil

import numpy as np
import pytest
from numba.core.registry import CPUDispatcher

import softmaxkit
from softmaxkit._kernels import _fastmath

FORBIDDEN = {"nnan", "ninf", "fast"}


def _kernel_modules():
    names = ["softmaxkit._kernels." + m.name for m in pkgutil.iter_modules(softmaxkit._kernels.__path__)]
    names += ["softmaxkit.foreach." + m.name for m in pkgutil.iter_modules(softmaxkit.foreach.__path__)]
    return [importlib.import_module(name) for name in names]


def _dispatchers():
    found = {}
    for module in _kernel_modules():
        for name, value in vars(module).items():
            if isinstance(value, CPUDispatcher) and value.py_func.__module__ == module.__name__:
                found[f"{module.__name__}.{name}"] = value
    return found


def test_there_are_kernels_to_check():
    assert len(_dispatchers()) > 30


@pytest.mark.parametrize("name", sorted(_dispatchers()))
def test_kernel_flags_allow_nan_and_inf(name):
    flags = _dispatchers()[name].targetoptions.get("fastmath", False)
    assert flags is not True, f"{name} uses fastmath=True (implies nnan/ninf)"
    if flags:
        assert not set(flags) & FORBIDDEN, f"{name} uses {set(flags) & FORBIDDEN}"


def test_flag_sets_are_the_documented_ones():
    assert "reassoc" in _fastmath.REDUCTION and "reassoc" not in _fastmath.ORDERED
    assert not (_fastmath.REDUCTION | _fastmath.ORDERED) & FORBIDDEN


def test_nan_and_inf_survive_every_softmax_kernel_path():
    # rows (serial and split), columns, masked: a NaN poisons only its slice, -inf gives 0
    for shape, axis in [((3, 8), -1), ((2, 1 << 17), -1), ((3, 40, 20), 1)]:
        x = np.zeros(shape, np.float32)
        x[(0,) * x.ndim] = np.nan
        x[(1,) + (slice(None),) * (x.ndim - 1)] = -np.inf
        y = softmaxkit.softmax(x, axis=axis)
        first = np.moveaxis(y, axis, -1)
        assert np.isnan(first[(0,) * (x.ndim - 1)]).all()
        assert (np.moveaxis(y, axis, -1)[1] == 0).all()
