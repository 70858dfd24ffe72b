"""Vector-Jacobian products of softmax and log_softmax over ``(R, n)`` rows.

softmax:      ``dx = y * (g - sum(g * y))``
log_softmax:  ``dx = g - exp(y) * sum(g)``

Sums are accumulated in float64 and each output is formed in float64 and rounded once.
"""

from __future__ import annotations

import numpy as np

from ._exp import exp_hilo
from ._fastmath import REDUCTION, callee, kernel
from ._intrinsics import borrowed
from ._parallel import RangeKernel
from ._scalar import cast_like


@callee(fastmath=REDUCTION)
def _softmax_backward_row(g, y, out):
    dot = 0.0
    for i in range(g.size):
        dot += np.float64(g[i]) * np.float64(y[i])
    for i in range(g.size):
        out[i] = np.float64(y[i]) * (np.float64(g[i]) - dot)


@callee(fastmath=REDUCTION)
def _log_softmax_backward_row(g, y, out):
    total = 0.0
    for i in range(g.size):
        total += np.float64(g[i])
    zero = cast_like(0.0, y)
    for i in range(g.size):
        out[i] = np.float64(g[i]) - np.float64(exp_hilo(y[i], zero)) * total


@kernel()
def softmax_backward_serial(g2, y2, out2):
    g2, y2, out2 = borrowed(g2), borrowed(y2), borrowed(out2)
    for r in range(g2.shape[0]):
        _softmax_backward_row(g2[r], y2[r], out2[r])


def _softmax_backward_range(t, first, stop, g2, y2, out2):
    g2, y2, out2 = borrowed(g2), borrowed(y2), borrowed(out2)
    for r in range(first, stop):
        _softmax_backward_row(g2[r], y2[r], out2[r])


#: the parallel kernel (``_parallel``): ``(n_rows, workers, g2, y2, out2)``
softmax_backward_rows = RangeKernel(_softmax_backward_range)


@kernel()
def log_softmax_backward_serial(g2, y2, out2):
    g2, y2, out2 = borrowed(g2), borrowed(y2), borrowed(out2)
    for r in range(g2.shape[0]):
        _log_softmax_backward_row(g2[r], y2[r], out2[r])


def _log_softmax_backward_range(t, first, stop, g2, y2, out2):
    g2, y2, out2 = borrowed(g2), borrowed(y2), borrowed(out2)
    for r in range(first, stop):
        _log_softmax_backward_row(g2[r], y2[r], out2[r])


#: ``(n_rows, workers, g2, y2, out2)``
log_softmax_backward_rows = RangeKernel(_log_softmax_backward_range)
