"""Which backend handles an array, chosen from its type without importing any framework.

Today only NumPy arrays and array-likes (lists, scalars, anything ``np.asarray`` accepts) are
handled.  Arrays of other frameworks are recognised by the top-level module of their type (a
framework is never imported to find out) and refused with a clear message until their front
ends land, instead of being silently converted to NumPy and returned as the wrong kind.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Top-level modules whose arrays must keep their kind: converting them with np.asarray would
# return a NumPy array (or fail on a GPU / lazy array).
_FOREIGN_ARRAY_MODULES = {
    "torch": "torch.Tensor (convert with .numpy(), or use softmaxkit.torch when it lands)",
    "jax": "jax.Array (convert with numpy.asarray)",
    "jaxlib": "jax.Array (convert with numpy.asarray)",
    "dask": "dask.array.Array (use .compute() or map_blocks)",
    "cupy": "cupy.ndarray",
    "tensorflow": "tf.Tensor",
}


def as_numpy_input(x: Any, function: str, *, argument: str = "x") -> np.ndarray:
    """``x`` as an ndarray (never a copy of an ndarray), refusing other frameworks' arrays."""
    if isinstance(x, np.ndarray):
        return x
    root = type(x).__module__.partition(".")[0]
    if root in _FOREIGN_ARRAY_MODULES:
        raise TypeError(
            f"{function}: {argument} is a {_FOREIGN_ARRAY_MODULES[root]}; this version of softmaxkit "
            "accepts NumPy arrays and array-likes only"
        )
    try:
        array = np.asarray(x)
    except (ValueError, TypeError) as error:
        raise TypeError(f"{function}: {argument} could not be converted to an array: {error}") from None
    return array
