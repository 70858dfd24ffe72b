"""``PackedArrays``: a list of arrays stored as views into one contiguous buffer per dtype.

A foreach op on a plain list pays Python's per-array cost (about 1 us) for every array; on a
packed list the op runs once over each buffer, so 10,000 small arrays cost one kernel call.
The public docstrings are in ``softmaxkit.foreach``; this module holds the container and the
buffer-level implementations.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, overload

import numpy as np

from . import _ops


class _Group:
    """One dtype's buffer, and where each of its arrays lives in it."""

    __slots__ = ("buffer", "indices", "starts", "sizes")

    def __init__(self, buffer: np.ndarray, indices: np.ndarray, starts: np.ndarray, sizes: np.ndarray):
        self.buffer = buffer  # 1-D, C-contiguous
        self.indices = indices  # positions in the packed list
        self.starts = starts  # element offsets into buffer
        self.sizes = sizes


class PackedArrays(Sequence[np.ndarray]):
    """A list of arrays that are views into one contiguous buffer per dtype.

    Create one with :func:`softmaxkit.foreach.pack`.  It behaves as a read-only sequence of
    ``np.ndarray`` views (``len``, indexing, slicing, iteration): writing into a view writes into
    the buffer, and every ``softmaxkit.foreach`` op given a ``PackedArrays`` runs once per buffer
    instead of once per array.  Out-of-place ops return a new ``PackedArrays`` with the same
    layout.  Use :meth:`unpack` for independent copies.

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxkit import foreach
    >>> p = foreach.pack([np.zeros(2, np.float32), np.ones((2, 2), np.float32)])
    >>> len(p), p[1].shape, p.nbytes
    (2, (2, 2), 24)
    >>> foreach.add_(p, 1.0) is p
    True
    >>> p[0]
    array([1., 1.], dtype=float32)
    """

    __slots__ = ("_views", "_groups", "__weakref__")

    def __init__(self, views: list[np.ndarray], groups: dict[np.dtype, _Group]):
        self._views = views
        self._groups = groups

    # -- sequence protocol ------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._views)

    @overload
    def __getitem__(self, index: int) -> np.ndarray: ...

    @overload
    def __getitem__(self, index: slice) -> list[np.ndarray]: ...

    def __getitem__(self, index: int | slice) -> np.ndarray | list[np.ndarray]:
        return self._views[index]

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter(self._views)

    def __repr__(self) -> str:
        groups = ", ".join(f"{dt}: {g.buffer.size} elements" for dt, g in self._groups.items())
        return f"PackedArrays({len(self)} arrays; {groups})"

    # -- buffers ------------------------------------------------------------------------------
    @property
    def buffers(self) -> dict[np.dtype, np.ndarray]:
        """The 1-D buffer of each dtype (views share memory with them)."""
        return {dt: g.buffer for dt, g in self._groups.items()}

    @property
    def nbytes(self) -> int:
        return sum(g.buffer.nbytes for g in self._groups.values())

    def unpack(self) -> list[np.ndarray]:
        """Independent copies of the arrays (each with its own memory)."""
        return [v.copy() for v in self._views]

    def same_layout(self, other: PackedArrays) -> bool:
        """Whether ``other`` has the same shapes and dtypes at every position."""
        if len(self._views) != len(other._views) or self._groups.keys() != other._groups.keys():
            return False
        return all(a.shape == b.shape and a.dtype == b.dtype for a, b in zip(self._views, other._views))

    # -- construction helpers -----------------------------------------------------------------
    @classmethod
    def _from_buffers(cls, template: PackedArrays, buffers: dict[np.dtype, np.ndarray]) -> PackedArrays:
        """A new PackedArrays with ``template``'s layout over new buffers (one per template dtype)."""
        views: list[np.ndarray | None] = [None] * len(template._views)
        groups = {}
        for dt, g in template._groups.items():
            buf = buffers[dt]
            for idx, start, size in zip(g.indices.tolist(), g.starts.tolist(), g.sizes.tolist()):
                views[idx] = buf[start : start + size].reshape(template._views[idx].shape)
            groups[buf.dtype] = _Group(buf, g.indices, g.starts, g.sizes)
        if len(groups) != len(template._groups):  # two dtypes mapped to one result dtype
            return pack([v for v in views if v is not None])
        return cls(views, groups)  # type: ignore[arg-type]


def pack(arrays: Sequence[Any], dtype: Any = None) -> PackedArrays:
    """See :func:`softmaxkit.foreach.pack`."""
    if isinstance(arrays, PackedArrays):
        arrays = list(arrays)
    arrays = _ops.check_numpy_arrays(_ops.check_list(arrays))
    if dtype is not None:
        dtype = np.dtype(dtype)
    dts = [dtype or a.dtype for a in arrays]
    order: dict[np.dtype, list[int]] = {}
    for i, dt in enumerate(dts):
        order.setdefault(dt, []).append(i)
    views: list[np.ndarray | None] = [None] * len(arrays)
    groups = {}
    for dt, idx in order.items():
        sizes = np.array([arrays[i].size for i in idx], dtype=np.int64)
        starts = np.zeros(len(idx), dtype=np.int64)
        np.cumsum(sizes[:-1], out=starts[1:])
        buf = np.empty(int(sizes.sum()), dtype=dt)
        for i, start, size in zip(idx, starts.tolist(), sizes.tolist()):
            view = buf[start : start + size].reshape(arrays[i].shape)
            np.copyto(view, arrays[i], casting="same_kind" if dtype is not None else "no")
            views[i] = view
        groups[dt] = _Group(buf, np.array(idx, dtype=np.int64), starts, sizes)
    return PackedArrays(views, groups)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------
# ops over buffers


def first_index(p: PackedArrays, dt: np.dtype) -> int:
    """The list index of the first array stored in the ``dt`` buffer (for error messages)."""
    return int(p._groups[dt].indices[0])


def check_writeable(p: PackedArrays) -> None:
    """Every buffer must be writeable (checked before any is written)."""
    for dt, g in p._groups.items():
        if not g.buffer.flags.writeable:
            raise _ops.read_only_error(first_index(p, dt))


def unary_inplace_kernel(spec: _ops.UnarySpec, p: PackedArrays) -> bool:
    """The fast path of an in-place kernel op: float32/float64 buffers, one kernel call each.

    Returns False (having checked and written nothing) for any other op or dtype.
    """
    if not (spec.kernel and p._groups.keys() <= _ops.KERNEL_DTYPES):
        return False
    check_writeable(p)
    K = _ops.kernels()
    code = K.CODES[spec.name]
    for g in p._groups.values():
        K.inplace(code, g.buffer)
    return True


def unary_inplace(spec: _ops.UnarySpec, p: PackedArrays) -> None:
    bufs = list(p.buffers.values())
    _ops.check_unary_inplace(spec, bufs, [first_index(p, dt) for dt in p.buffers])
    check_writeable(p)
    for buf in bufs:
        if buf.dtype.kind == "O":
            _ops._unary_compute(spec, buf)  # see _ops.unary_inplace
    for buf in bufs:
        _ops._unary_inplace_one(spec, buf)  # one call over the whole buffer


def binary_inplace(name: str, p: PackedArrays, forms: dict[np.dtype, list[Any]], alpha: Any) -> None:
    """``name_`` on every buffer, with operands in buffer form (see :func:`buffer_form`)."""
    operands = {
        dt: _ops.check_binary_inplace(name, first_index(p, dt), p.buffers[dt], b, alpha)
        for dt, (b,) in forms.items()
    }
    ufunc = _ops.BINARY[name]
    for dt, b in operands.items():
        buf = p._groups[dt].buffer
        ufunc(buf, b, out=buf)


def unary(spec: _ops.UnarySpec, p: PackedArrays) -> PackedArrays:
    out = {}
    for dt, buf in p.buffers.items():
        try:
            out[dt] = _ops._unary_compute(spec, buf)
        except TypeError as exc:
            i = int(p._groups[dt].indices[0])
            raise TypeError(f"arrays[{i}]: {exc}") from None
    return PackedArrays._from_buffers(p, out)


def segment_values(p: PackedArrays, dt: np.dtype, values: Sequence[Any]) -> np.ndarray:
    """Per-element values for a per-array scalar list: ``values[i]`` repeated over array i."""
    g = p._groups[dt]
    per_array = np.asarray([values[i] for i in g.indices.tolist()])
    if per_array.dtype == object:
        raise TypeError("a list of scalars must hold numbers")
    return np.repeat(per_array, g.sizes)


def as_buffer_operand(p: PackedArrays, dt: np.dtype, op: _ops.Operand) -> Any | None:
    """The operand aligned with the ``dt`` buffer, or ``None`` when it has no buffer form."""
    if op.kind == "scalar":
        return op.value
    if op.kind == "scalars":
        vals = list(op.value)
        # Python scalars stay weak (NEP 50) only when they all have the same Python type.
        kinds = {type(v) for v in vals}
        arr = segment_values(p, dt, vals)
        if (kinds <= {int, float} and dt.kind in "fc") or (kinds <= {int} and dt.kind in "iu"):
            arr = arr.astype(dt)
        return arr
    if op.kind == "arrays" and isinstance(op.value, PackedArrays) and p.same_layout(op.value):
        return op.value.buffers[dt]
    return None


def buffer_form(p: PackedArrays, *ops: _ops.Operand) -> dict[np.dtype, list[Any]] | None:
    forms = {}
    for dt in p.buffers:
        row = [as_buffer_operand(p, dt, op) for op in ops]
        if any(r is None for r in row):
            return None
        forms[dt] = row
    return forms
