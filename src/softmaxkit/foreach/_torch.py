"""torch backend for ``softmaxkit.foreach``: lists of tensors go to torch's own ``_foreach_*`` ops.

torch is never imported here: a tensor can only exist once torch is in ``sys.modules``, so the
module is looked up there (the einops pattern).  Semantics are documented in
``softmaxkit.foreach``; this module only adapts arguments to torch's overloads.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any


def torch_module() -> Any | None:
    return sys.modules.get("torch")


def is_tensor(x: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def check_tensors(xs: Sequence[Any], argname: str) -> None:
    torch = sys.modules["torch"]
    for i, x in enumerate(xs):
        if not isinstance(x, torch.Tensor):
            kind = "a NumPy array" if type(x).__module__ == "numpy" else type(x).__name__
            raise TypeError(
                f"{argname}[{i}] is {kind} but {argname}[0] is a torch.Tensor; "
                "a list must hold only NumPy arrays or only torch tensors"
            )


def foreach(name: str) -> Any:
    return getattr(sys.modules["torch"], f"_foreach_{name}")


def unary(name: str, tensors: list[Any], inplace: bool) -> Any:
    if inplace:
        foreach(name + "_")(tensors)
        return tensors
    return list(foreach(name)(tensors))


def operand(tensors: Sequence[Any], other: Any, argname: str) -> Any:
    """Adapt a NumPy-style operand: a list of tensors is checked, a single tensor is kept."""
    if isinstance(other, (list, tuple)):
        if other and is_tensor(other[0]) or any(is_tensor(o) for o in other):
            check_tensors(other, argname)
        return list(other)
    return other


def binary(name: str, tensors: list[Any], other: Any, alpha: Any, inplace: bool) -> Any:
    torch = sys.modules["torch"]
    fn = foreach(name + "_" if inplace else name)
    if isinstance(other, torch.Tensor) and name in ("add", "sub"):
        res = fn(tensors, other, alpha=1 if alpha is None else alpha)
    else:
        if alpha is not None:
            if isinstance(other, list) and other and isinstance(other[0], torch.Tensor):
                res = fn(tensors, other, alpha=alpha)
                return tensors if inplace else list(res)
            other = [o * alpha for o in other] if isinstance(other, list) else other * alpha
        if isinstance(other, torch.Tensor) and name not in ("mul", "div"):
            other = [other] * len(tensors)  # torch has a one-tensor overload only for some ops
        res = fn(tensors, other)
    return tensors if inplace else list(res)
