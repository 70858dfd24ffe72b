"""Slices that a mask drops whole, written after the unmasked kernels ran.

A mask of length 1 along every reduction axis (a query-padding mask ``(B, 1, T, 1)`` for scores
``(B, H, T, T)``, a pixel mask ``(N, 1, H, W)`` over the channels of ``(N, C, H, W)``: see
``_numpy_backend.slices_kept``) keeps or drops whole slices.  The unmasked kernels compute every
slice; ``write_dropped`` then writes each dropped slice as an entirely masked slice is written
(``value``: softmax 0, log_softmax -inf), whatever its input was (NaN and infinities included).

The result is the C-contiguous column layout ``y3 = (outer, K, inner)`` (``K`` the slice's
length) and ``kept2 = (outer, inner)`` says which of its slices are kept.
"""

from __future__ import annotations

from ._intrinsics import borrowed
from ._parallel import RangeKernel


def _write_dropped_range(t, first, stop, y3, kept2, value):
    """Items ``first:stop``: rows ``o`` of ``y3`` when ``inner == 1`` (a dropped row is written
    whole), else lines ``(o, k)`` (each written where ``kept2[o]`` is False)."""
    y3, kept2 = borrowed(y3), borrowed(kept2)
    n_k, inner = y3.shape[1], y3.shape[2]
    if inner == 1:
        for o in range(first, stop):
            if not kept2[o, 0]:
                row = y3[o].reshape(n_k)  # (C-contiguous, so that the loop is vectorised)
                for i in range(n_k):
                    row[i] = value
    else:
        for j in range(first, stop):
            o = j // n_k
            line, keep = y3[o, j - o * n_k], kept2[o]
            for i in range(inner):
                if not keep[i]:
                    line[i] = value


#: ``(n_items, workers, y3, kept2, value)``, ``value`` of y3's dtype; ``n_items``: ``outer``
#: when ``inner == 1``, else ``outer * K``
write_dropped = RangeKernel(_write_dropped_range)
