"""softmaxkit: the softmax family and foreach elementwise operations, correct on every input.

Public functions (array first, options keyword-only)::

    softmax, log_softmax, softmin, logsumexp, softmax_backward, log_softmax_backward

and the ``softmaxkit.foreach`` subpackage.  Semantics are written down in ``docs/semantics.md``.

``import softmaxkit`` imports neither numba nor any array framework and compiles nothing: the
public functions live in ``softmaxkit._api``, which is loaded on first attribute access, and
kernels compile on first call (then come from numba's on-disk cache).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> module that defines it (relative: a renamed or vendored copy loads its own); loaded
# on first access (PEP 562).
_LAZY_ATTRIBUTES = {
    "softmax": "._api",
    "log_softmax": "._api",
    "softmin": "._api",
    "logsumexp": "._api",
    "softmax_backward": "._api",
    "log_softmax_backward": "._api",
    "set_num_threads": "._threads",
    "get_num_threads": "._threads",
    "set_result_cache": "._results",
    "result_cache_info": "._results",
}
_LAZY_SUBMODULES = ("foreach",)

__all__ = [*_LAZY_ATTRIBUTES, *_LAZY_SUBMODULES, "__version__"]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from . import foreach
    from ._api import (
        log_softmax,
        log_softmax_backward,
        logsumexp,
        softmax,
        softmax_backward,
        softmin,
    )
    from ._results import result_cache_info, set_result_cache
    from ._threads import get_num_threads, set_num_threads


def __getattr__(name: str) -> Any:
    if name in _LAZY_ATTRIBUTES:
        value = getattr(importlib.import_module(_LAZY_ATTRIBUTES[name], __name__), name)
    elif name in _LAZY_SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module 'softmaxkit' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
