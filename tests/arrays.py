"""A fixed adversarial array generator, after numbagg's ``numbagg/test/util.py``.

:func:`adversarial_cases` returns the same list on every call (seeded): arrays that stress the
layers between the public API and the kernels rather than the arithmetic -- NaN/inf placements,
non-native byte order, float16, 0-d, empty, Fortran order, transposed, negative strides,
non-contiguous slices, unaligned data, size-1 dimensions, ints and bools, large inputs -- each with
the axis forms that make sense for its ndim (int, negative int, tuple, None, ()).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Case", "adversarial_cases", "axis_forms"]


@dataclass(frozen=True)
class Case:
    id: str
    array: np.ndarray
    where: np.ndarray | None = None
    axes: tuple = field(default=())
    large: bool = False

    def __repr__(self) -> str:  # short ids in pytest output
        return self.id


def axis_forms(ndim: int) -> list:
    """int, negative int, tuple and None forms for an array of ``ndim`` dimensions."""
    if ndim == 0:
        return [-1, 0, None, ()]
    forms: list = [0, -1, None, (0,), ()]
    if ndim >= 2:
        forms += [1, -ndim, (0, ndim - 1), (ndim - 1, 0), tuple(range(ndim))]
    if ndim >= 3:
        forms += [(1, 2), (-1, -3)]
    out: list = []
    for f in forms:  # drop duplicates while keeping order (e.g. 0 and -ndim for ndim=1)
        if f not in out:
            out.append(f)
    return out


def _with_specials(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Put NaN, +inf and -inf where each policy row is exercised along the last axis."""
    x = np.array(x)
    flat = x.reshape(-1, x.shape[-1])
    n = flat.shape[0]
    if n >= 6 and flat.shape[1] >= 3:
        flat[0, 1] = np.nan  # NaN slice
        flat[1, :2] = np.inf  # two +inf entries share the probability
        flat[2, :] = -np.inf  # all -inf slice
        flat[3, ::2] = -np.inf  # some -inf entries
        flat[4, 0] = np.inf  # one +inf with a NaN: NaN wins
        flat[4, -1] = np.nan
        flat[5, -1] = np.inf  # a single +inf
    # a few random specials elsewhere
    idx = rng.integers(0, flat.size, size=max(1, flat.size // 40))
    vals = rng.choice(np.array([np.nan, np.inf, -np.inf]), size=idx.size)
    flat.reshape(-1)[idx] = vals
    return x


def _unaligned(shape, dtype, rng):
    """An array whose data pointer is one byte past an aligned address."""
    dt = np.dtype(dtype)
    buf = np.zeros(int(np.prod(shape)) * dt.itemsize + 1, np.uint8)
    view = np.ndarray(shape, dtype=dt, buffer=buf, offset=1)
    view[...] = rng.standard_normal(shape) * 3
    assert not view.flags.aligned
    return view


def adversarial_cases(*, include_large: bool = True) -> list[Case]:
    rng = np.random.default_rng(12345)
    normal = rng.standard_normal
    cases: list[Case] = []

    def add(id_, arr, where=None, large=False):
        cases.append(Case(id_, arr, where, tuple(axis_forms(np.ndim(arr))), large))

    # plain dtypes and ranks
    add("f64_1d", normal(17) * 5)
    add("f32_2d", (normal((7, 13)) * 5).astype(np.float32))
    add("f64_3d", normal((3, 4, 5)) * 5)
    add("f16_2d", (normal((6, 11)) * 3).astype(np.float16))
    add("f16_wide", np.array([[60000, -60000, 0, 1, 2, 3.5]], np.float16))
    add("int64_2d", rng.integers(-20, 20, (4, 6)))
    add("int8_2d", rng.integers(-100, 100, (3, 5)).astype(np.int8))
    add("bool_2d", rng.random((4, 5)) < 0.5)
    add("f64_wide_range", np.concatenate([normal((4, 3)), -rng.random((4, 6)) * 1e4], axis=1))
    # special values
    add("f64_specials", _with_specials(normal((8, 9)) * 4, rng))
    add("f32_specials", _with_specials((normal((8, 9)) * 4).astype(np.float32), rng))
    add("f16_specials", _with_specials((normal((8, 9)) * 2).astype(np.float16), rng))
    # byte order
    add("f64_byteswapped", (normal((4, 6)) * 3).astype(np.dtype(np.float64).newbyteorder()))
    add("f32_byteswapped", _with_specials(normal((6, 5)) * 3, rng).astype(
        np.dtype(np.float32).newbyteorder()))
    # 0-d and empty
    add("f64_0d", np.array(1.5))
    add("f32_0d", np.array(-2.0, np.float32))
    add("f64_0d_inf", np.array(np.inf))
    add("f64_empty", np.zeros(0))
    add("f32_empty_3x0", np.zeros((3, 0), np.float32))
    add("f64_empty_0x4", np.zeros((0, 4)))
    add("f64_empty_2x0x3", np.zeros((2, 0, 3)))
    # layouts
    add("f64_fortran", np.asfortranarray(normal((5, 7)) * 3))
    add("f32_transposed_3d", (normal((6, 4, 3)) * 3).astype(np.float32).T)
    add("f64_negative_strides", (normal((6, 8)) * 3)[::-1, ::-1])
    add("f32_strided_slice", (normal((12, 20)) * 3).astype(np.float32)[1::2, ::-3])
    add("f64_unaligned", _unaligned((5, 6), np.float64, rng))
    add("f64_size1_dims", normal((1, 5, 1)) * 3)
    add("f32_all_size1", np.full((1, 1, 1), 3.0, np.float32))
    add("f64_broadcast_view", np.broadcast_to(normal(7) * 3, (4, 7)))
    ro = _with_specials((normal((6, 7)) * 3).astype(np.float32), rng)
    ro.flags.writeable = False  # kernels must never need to write into their input
    add("f32_readonly_specials", ro)
    # masks
    x = normal((6, 10)) * 3
    mask = rng.random((6, 10)) < 0.6
    mask[0] = False  # a fully masked row
    mask[1, 3] = True
    add("f64_masked", _with_specials(x, rng), where=mask)
    add("f32_masked_broadcast", (normal((5, 8)) * 3).astype(np.float32),
        where=rng.random((1, 8)) < 0.7)
    if include_large:
        add("f32_large_1e6", (normal((1000, 1000)) * 4).astype(np.float32), large=True)
        add("f64_large_row_1e6", normal(1_000_000) * 4, large=True)
        big = (normal((1000, 1000)) * 4).astype(np.float32)[:, ::-1].T  # strided, transposed
        add("f32_large_strided_1e6", big, large=True)
    return cases
