"""Explicit SIMD vectors for numba kernels: a ``Vector`` type of ``lanes`` floats that the
scalar arithmetic of our kernels (``+ - * /``, unary ``-``, comparisons, and the intrinsics
``fma``, ``nan_max``, ``pow2_of_rounded``) accepts as it accepts a float.

Why: LLVM's loop vectoriser only vectorises innermost loops, and not a loop with a prefetch in
it, so a pass whose state stays in registers across an outer loop (a column block's per-column
sums over a group of rows) or that prefetches as it goes cannot be written as scalar loops.
With ``Vector`` the same algorithm code runs on a register of 16 float32 (or 8 float64)
elements: ``two_sum(v, -m)``, ``_reduced_exp_f32`` and their kin are compiled once more for
``Vector`` arguments, operation for operation the scalar code, so the results are bit for bit
those of the scalar loops.

Every operation is emitted as plain LLVM IR into the calling function (``lower_builtin``,
``intrinsic``), so the caller's fastmath flags (``ORDERED`` or ``REDUCTION``) apply to it as to
its scalar operations.  A scalar operand must have the vector's own float type (no implicit
float32/float64 promotion), and is broadcast.  Vectors are 512 bits wide; LLVM splits them into
two registers on AVX2.
"""

from __future__ import annotations

import operator

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, lower_builtin, models, register_model, type_callable


#: lanes per vector, by element type: one 512-bit register
LANES = {types.float32: 16, types.float64: 8}


class Vector(types.Type):
    """``lanes`` floats of type ``dtype`` held in one SIMD value."""

    def __init__(self, dtype, lanes):
        self.dtype = dtype
        self.lanes = lanes
        super().__init__(name=f"Vector({dtype}, {lanes})")


class VectorMask(types.Type):
    """``lanes`` booleans: a comparison of vectors, for ``select``."""

    def __init__(self, lanes):
        self.lanes = lanes
        super().__init__(name=f"VectorMask({lanes})")


@register_model(Vector)
class _VectorModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        element = dmm.lookup(fe_type.dtype).get_value_type()
        super().__init__(dmm, fe_type, ir.VectorType(element, fe_type.lanes))


@register_model(VectorMask)
class _VectorMaskModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, ir.VectorType(ir.IntType(1), fe_type.lanes))


def vector_of(dtype) -> Vector:
    """The ``Vector`` type of ``dtype`` elements (a numba float type)."""
    return Vector(dtype, LANES[dtype])


def splat_value(builder, value, vector_type: ir.VectorType):
    """``value`` (a scalar of the element type) in every lane."""
    undef = ir.Constant(vector_type, ir.Undefined)
    lane0 = builder.insert_element(undef, value, ir.Constant(ir.IntType(32), 0))
    zeros = ir.Constant(ir.VectorType(ir.IntType(32), vector_type.count), [0] * vector_type.count)
    return builder.shuffle_vector(lane0, undef, zeros)


def vector_operands(*operands):
    """The ``Vector`` type that ``operands`` (numba types) combine to: at least one ``Vector``,
    the others the same ``Vector`` or its element type; else None."""
    vectors = {t for t in operands if isinstance(t, Vector)}
    if len(vectors) != 1:
        return None
    (vector,) = vectors
    if all(t == vector or t == vector.dtype for t in operands):
        return vector
    return None


def as_vectors(context, builder, operand_types, values, vector: Vector):
    """``values`` with the scalars among them broadcast to ``vector``'s lanes."""
    vector_type = context.get_value_type(vector)
    return [
        value if isinstance(t, Vector) else splat_value(builder, value, vector_type)
        for t, value in zip(operand_types, values)
    ]


# ---- arithmetic and comparisons -------------------------------------------------------------

_BINARY = {operator.add: "fadd", operator.sub: "fsub", operator.mul: "fmul", operator.truediv: "fdiv"}
_COMPARE = {operator.lt: "<", operator.le: "<=", operator.gt: ">", operator.ge: ">=", operator.eq: "=="}


def _register_binary(op, instruction):
    @type_callable(op)
    def _typer(context):
        def typer(a, b):
            return vector_operands(a, b)

        return typer

    def lower(context, builder, signature, args):
        a, b = as_vectors(context, builder, signature.args, args, signature.return_type)
        return getattr(builder, instruction)(a, b)

    for operands in ((Vector, Vector), (Vector, types.Float), (types.Float, Vector)):
        lower_builtin(op, *operands)(lower)


def _register_compare(op, predicate):
    @type_callable(op)
    def _typer(context):
        def typer(a, b):
            vector = vector_operands(a, b)
            return None if vector is None else VectorMask(vector.lanes)

        return typer

    def lower(context, builder, signature, args):
        vector = vector_operands(*signature.args)
        a, b = as_vectors(context, builder, signature.args, args, vector)
        return builder.fcmp_ordered(predicate, a, b)

    for operands in ((Vector, Vector), (Vector, types.Float), (types.Float, Vector)):
        lower_builtin(op, *operands)(lower)


for _op, _instruction in _BINARY.items():
    _register_binary(_op, _instruction)
for _op, _predicate in _COMPARE.items():
    _register_compare(_op, _predicate)


@type_callable(operator.neg)
def _neg_typer(context):
    def typer(a):
        return a if isinstance(a, Vector) else None

    return typer


@lower_builtin(operator.neg, Vector)
def _neg_lower(context, builder, signature, args):
    return builder.fneg(args[0])


# ---- construction, conversion, selection ----------------------------------------------------


@intrinsic
def splat(typingctx, value):
    """A ``Vector`` with ``value`` (float32 or float64) in every lane."""
    if value not in LANES:
        return None
    vector = vector_of(value)

    def codegen(context, builder, signature, args):
        return splat_value(builder, args[0], context.get_value_type(vector))

    return vector(value), codegen


@intrinsic
def select(typingctx, mask, a, b):
    """Per lane ``a if mask else b`` (``a``, ``b`` vectors, or scalars of one float type, which
    are broadcast); for a scalar ``mask`` (a bool) and scalars ``a``, ``b`` of one float type,
    ``a if mask else b`` without a branch, so that one function serves scalars and vectors."""
    if isinstance(mask, types.Boolean) and a == b and a in LANES:
        return a(mask, a, b), lambda context, builder, signature, args: builder.select(*args)
    if not isinstance(mask, VectorMask):
        return None
    vector = vector_operands(a, b)
    if vector is None and a == b and a in LANES:
        vector = Vector(a, mask.lanes)
    if vector is None or vector.lanes != mask.lanes:
        return None

    def codegen(context, builder, signature, args):
        x, y = as_vectors(context, builder, signature.args[1:], args[1:], vector)
        return builder.select(args[0], x, y)

    return vector(mask, a, b), codegen


def _half(builder, value, first, count):
    indices = ir.Constant(ir.VectorType(ir.IntType(32), count), list(range(first, first + count)))
    return builder.shuffle_vector(value, value, indices)


def _widen_half(v, second: bool):
    """Typing and codegen of ``widen_low``/``widen_high``: float64 lanes of one half of ``v``."""
    if not (isinstance(v, Vector) and v.dtype == types.float32):
        return None
    wide = Vector(types.float64, v.lanes // 2)

    def codegen(context, builder, signature, args):
        half = _half(builder, args[0], wide.lanes if second else 0, wide.lanes)
        return builder.fpext(half, context.get_value_type(wide))

    return wide(v), codegen


@intrinsic
def widen_low(typingctx, v):
    """float64 ``Vector`` of the first half of the float32 ``Vector`` ``v`` (exact)."""
    return _widen_half(v, second=False)


@intrinsic
def widen_high(typingctx, v):
    """float64 ``Vector`` of the second half of the float32 ``Vector`` ``v`` (exact)."""
    return _widen_half(v, second=True)


# ---- memory ---------------------------------------------------------------------------------


def _contiguous_rows(array) -> bool:
    return isinstance(array, types.Array) and array.layout == "C" and array.dtype in LANES


def item_pointer(context, builder, signature, args):
    """Pointer to ``array[index]`` for an intrinsic's ``(array, index, ...)`` arguments, ``index``
    an integer or a tuple of one per dimension (see ``valid_index``); unchecked."""
    array_type, index_type = signature.args[0], signature.args[1]
    if isinstance(index_type, types.BaseTuple):
        indices = [builder.extract_value(args[1], i) for i in range(len(index_type))]
    else:
        indices = [args[1]]
    view = context.make_array(array_type)(context, builder, args[0])
    return cgutils.get_item_pointer(context, builder, array_type, view, indices, wraparound=False)


def _vector_pointer(context, builder, signature, args, vector_type):
    """``item_pointer``, typed as a pointer to ``vector_type``."""
    return builder.bitcast(item_pointer(context, builder, signature, args), vector_type.as_pointer())


def valid_index(array, index) -> bool:
    """Whether ``index`` addresses one element of the numba array type ``array``: an integer for
    a 1-d array, or a tuple of one integer per dimension."""
    if not isinstance(array, types.Array):
        return False
    if isinstance(index, types.Integer):
        return array.ndim == 1
    return isinstance(index, types.UniTuple) and isinstance(index.dtype, types.Integer) and len(index) == array.ndim


def _load_codegen(vector: Vector, masked: bool):
    """Codegen of a load of ``vector`` at ``(array, index[, count])``: plain, or of the first
    ``count`` lanes (``llvm.masked.load``, the other lanes 0)."""

    def codegen(context, builder, signature, args):
        vector_type = context.get_value_type(vector)
        pointer = _vector_pointer(context, builder, signature, args, vector_type)
        align = vector.dtype.bitwidth // 8
        if not masked:
            return builder.load(pointer, align=align)
        mask = _first_lanes(builder, args[2], vector.lanes)
        function = _masked_memory_function(builder, "load", vector_type, store_form=False)
        zeros = ir.Constant(vector_type, [0.0] * vector.lanes)
        return builder.call(function, [pointer, ir.Constant(ir.IntType(32), align), mask, zeros])

    return codegen


def _store_codegen(vector: Vector, masked: bool):
    """Codegen of a store of ``(array, index, value[, count])``, as ``_load_codegen``."""

    def codegen(context, builder, signature, args):
        vector_type = context.get_value_type(vector)
        pointer = _vector_pointer(context, builder, signature, args, vector_type)
        align = vector.dtype.bitwidth // 8
        if masked:
            mask = _first_lanes(builder, args[3], vector.lanes)
            function = _masked_memory_function(builder, "store", vector_type, store_form=True)
            builder.call(function, [args[2], pointer, ir.Constant(ir.IntType(32), align), mask])
        else:
            builder.store(args[2], pointer, align=align)
        return context.get_dummy_value()

    return codegen


def _addressed(array, index, part):
    """The ``Vector`` that ``(array, index, part)`` address (``part`` None: a whole vector, an
    integer: its first ``part`` lanes), or None if they address none."""
    if not (_contiguous_rows(array) and valid_index(array, index)):
        return None
    if not isinstance(part, (types.NoneType, types.Integer)):
        return None
    return vector_of(array.dtype)


@intrinsic
def load(typingctx, array, index):
    """The ``Vector`` of ``array[index]`` and the ``lanes - 1`` entries after it (C-contiguous
    ``array``; ``index`` an integer, or a tuple of one per dimension).  Unchecked: the caller
    keeps all lanes inside the array's last dimension."""
    vector = _addressed(array, index, types.none)
    if vector is None:
        return None
    return vector(array, index), _load_codegen(vector, masked=False)


@intrinsic
def store(typingctx, array, index, value):
    """``array[index:index + lanes] = value`` (see ``load``)."""
    vector = _addressed(array, index, types.none)
    if vector is None or value != vector:
        return None
    return types.none(array, index, value), _store_codegen(vector, masked=False)


def _first_lanes(builder, count, lanes):
    """``<lanes x i1>``: lane ``i`` is ``i < count``."""
    ity = count.type
    lane_numbers = ir.Constant(ir.VectorType(ity, lanes), list(range(lanes)))
    counts = splat_value(builder, count, ir.VectorType(ity, lanes))
    return builder.icmp_signed("<", lane_numbers, counts)


def _masked_memory_function(builder, name, vector_type, store_form):
    """``llvm.masked.load`` / ``llvm.masked.store`` for ``vector_type``."""
    element = "f32" if vector_type.element == ir.FloatType() else "f64"
    suffix = f"v{vector_type.count}{element}.p0"
    mask_type = ir.VectorType(ir.IntType(1), vector_type.count)
    i32 = ir.IntType(32)
    pointer_type = vector_type.as_pointer()
    if store_form:
        signature = ir.FunctionType(ir.VoidType(), [vector_type, pointer_type, i32, mask_type])
    else:
        signature = ir.FunctionType(vector_type, [pointer_type, i32, mask_type, vector_type])
    return cgutils.get_or_insert_function(builder.module, signature, f"llvm.masked.{name}.{suffix}")


# Whole or partial vectors, chosen at typing time.  (Intrinsics rather than overloads choosing
# between a plain and a masked form: an overload is a function numba compiles once per signature
# on a cold first call, and these are called with many.)


@intrinsic
def load_part(typingctx, array, index, part):
    """``load(array, index)`` for ``part=None``; for an integer ``part`` only the first ``part``
    lanes are read (``llvm.masked.load``; the others are 0, and the entries past them are not
    touched): one kernel body serves whole vectors and the one at a row's end."""
    vector = _addressed(array, index, part)
    if vector is None:
        return None
    return vector(array, index, part), _load_codegen(vector, masked=not isinstance(part, types.NoneType))


@intrinsic
def store_part(typingctx, array, index, value, part):
    """``store(array, index, value)`` for ``part=None``; for an integer ``part`` only the first
    ``part`` lanes are written (see ``load_part``)."""
    vector = _addressed(array, index, part)
    if vector is None or value != vector:
        return None
    return types.none(array, index, value, part), _store_codegen(vector, masked=not isinstance(part, types.NoneType))


@intrinsic
def load_mask(typingctx, mask, index, like, part):
    """The ``VectorMask`` of the entries of the boolean array ``mask`` from ``index`` on, one per
    lane of a ``Vector`` of ``like``'s elements (``like`` an array): ``mask[index + i] != 0``;
    with an integer ``part`` only the first ``part`` are read, the others False (as
    ``load_part``).  The lanes' bytes are loaded at once (16 for float32, 8 for float64): an
    entry-by-entry select on a random mask left a masked row's max unvectorised and its branches
    mispredicted."""
    if not (
        isinstance(mask, types.Array) and mask.dtype == types.boolean and mask.layout == "C"
        and valid_index(mask, index) and isinstance(like, types.Array) and like.dtype in LANES
        and isinstance(part, (types.NoneType, types.Integer))
    ):
        return None
    lanes = LANES[like.dtype]
    masked = not isinstance(part, types.NoneType)

    def codegen(context, builder, signature, args):
        bytes_type = ir.VectorType(ir.IntType(8), lanes)
        pointer = builder.bitcast(item_pointer(context, builder, signature, args), bytes_type.as_pointer())
        if masked:
            i32 = ir.IntType(32)
            function = cgutils.get_or_insert_function(
                builder.module,
                ir.FunctionType(bytes_type, [bytes_type.as_pointer(), i32, ir.VectorType(ir.IntType(1), lanes), bytes_type]),
                f"llvm.masked.load.v{lanes}i8.p0",
            )
            zeros = ir.Constant(bytes_type, [0] * lanes)
            loaded = builder.call(function, [pointer, ir.Constant(i32, 1), _first_lanes(builder, args[3], lanes), zeros])
        else:
            loaded = builder.load(pointer, align=1)
        return builder.icmp_unsigned("!=", loaded, ir.Constant(bytes_type, [0] * lanes))

    return VectorMask(lanes)(mask, index, like, part), codegen


@intrinsic
def lanes_of(typingctx, array):
    """How many lanes a ``Vector`` of ``array``'s elements has (a compile-time constant)."""
    if not (isinstance(array, types.Array) and array.dtype in LANES):
        return None
    lanes = LANES[array.dtype]

    def codegen(context, builder, signature, args):
        return context.get_constant(types.intp, lanes)

    return types.intp(array), codegen


@intrinsic
def sum_lanes(typingctx, v):
    """The sum of the lanes of ``v`` (pairwise: halves added until one lane is left)."""
    if not isinstance(v, Vector):
        return None

    def codegen(context, builder, signature, args):
        return _reduce_halves(builder, args[0], v.lanes, builder.fadd)

    return v.dtype(v), codegen


@intrinsic
def all_lanes(typingctx, mask):
    """Whether every lane of ``mask`` (a comparison of vectors) is true: one mask test
    (``kortest``), where a reduction of the lanes takes a shuffle and an operation per halving."""
    if not isinstance(mask, VectorMask):
        return None

    def codegen(context, builder, signature, args):
        bits = builder.bitcast(args[0], ir.IntType(mask.lanes))
        return builder.icmp_unsigned("==", bits, ir.Constant(ir.IntType(mask.lanes), (1 << mask.lanes) - 1))

    return types.boolean(mask), codegen


def _reduce_halves(builder, value, lanes, combine):
    """The lanes of ``value`` reduced pairwise, ``combine(low half, high half)`` until one lane is
    left; that lane."""
    width = lanes
    while width > 1:
        width //= 2
        value = combine(_half(builder, value, 0, width), _half(builder, value, width, width))
    return builder.extract_element(value, ir.Constant(ir.IntType(32), 0))


@intrinsic
def only_first(typingctx, v, part):
    """``v`` with the lanes from ``part`` on set to 0 (``part=None``: ``v`` itself), so that a
    partial vector's lanes past the row's end add nothing to a sum kept in registers."""
    if not (isinstance(v, Vector) and (isinstance(part, types.NoneType) or isinstance(part, types.Integer))):
        return None

    def codegen(context, builder, signature, args):
        if isinstance(signature.args[1], types.NoneType):
            return args[0]
        zeros = ir.Constant(context.get_value_type(v), [0.0] * v.lanes)
        return builder.select(_first_lanes(builder, args[1], v.lanes), args[0], zeros)

    return v(v, part), codegen


@intrinsic
def max_lanes(typingctx, v):
    """The largest lane of ``v``, a vector without NaN lanes (a NaN lane may or may not win):
    halves compared pairwise, ``a if a > b else b`` (x86 ``maxps``), as ``max_ignoring_nan``."""
    if not isinstance(v, Vector):
        return None

    def codegen(context, builder, signature, args):
        return _reduce_halves(
            builder, args[0], v.lanes, lambda a, b: builder.select(builder.fcmp_ordered(">", a, b), a, b)
        )

    return v.dtype(v), codegen


@intrinsic
def first_or(typingctx, v, part, fill):
    """``v`` with the lanes from ``part`` on set to the scalar ``fill`` (``part=None``: ``v``
    itself): ``only_first`` for a reduction other than a sum (a max fills with -inf)."""
    if not (
        isinstance(v, Vector)
        and (isinstance(part, types.NoneType) or isinstance(part, types.Integer))
        and fill == v.dtype
    ):
        return None

    def codegen(context, builder, signature, args):
        if isinstance(signature.args[1], types.NoneType):
            return args[0]
        fills = splat_value(builder, args[2], context.get_value_type(v))
        return builder.select(_first_lanes(builder, args[1], v.lanes), args[0], fills)

    return v(v, part, fill), codegen


@intrinsic
def narrow_halves(typingctx, a, b):
    """The float32 ``Vector`` of ``a``'s lanes rounded to float32, then ``b``'s (the inverse of
    ``widen_low``/``widen_high``)."""
    if not (isinstance(a, Vector) and a == b and a.dtype == types.float64):
        return None
    narrow = Vector(types.float32, 2 * a.lanes)

    def codegen(context, builder, signature, args):
        half = ir.VectorType(ir.FloatType(), a.lanes)
        low, high = builder.fptrunc(args[0], half), builder.fptrunc(args[1], half)
        lanes = ir.Constant(ir.VectorType(ir.IntType(32), narrow.lanes), list(range(narrow.lanes)))
        return builder.shuffle_vector(low, high, lanes)

    return narrow(a, b), codegen


@intrinsic
def lane(typingctx, v, i):
    """Lane ``i`` of ``v`` (unchecked)."""
    if not (isinstance(v, Vector) and isinstance(i, types.Integer)):
        return None
    return v.dtype(v, i), lambda context, builder, signature, args: builder.extract_element(*args)


def _converted(v, dtype, convert: str):
    if not (isinstance(v, Vector) and v.dtype != dtype):
        return None
    result = Vector(dtype, v.lanes)

    def codegen(context, builder, signature, args):
        return getattr(builder, convert)(args[0], context.get_value_type(result))

    return result(v), codegen


@intrinsic
def widened(typingctx, v):
    """The float64 ``Vector`` of the lanes of the float32 ``Vector`` ``v`` (exact); a float64
    ``Vector`` itself."""
    if isinstance(v, Vector) and v.dtype == types.float64:
        return v(v), lambda context, builder, signature, args: args[0]
    return _converted(v, types.float64, "fpext") if getattr(v, "dtype", None) == types.float32 else None


@intrinsic
def lanes_like(typingctx, v, like):
    """The lanes of the ``Vector`` ``v`` in the float type of ``like`` (a ``Vector``): rounded
    once to float32, widened exactly to float64, or ``v`` itself."""
    if not (isinstance(v, Vector) and isinstance(like, Vector) and like.dtype in LANES):
        return None
    if v.dtype == like.dtype:
        return v(v, like), lambda context, builder, signature, args: args[0]
    signature, codegen = _converted(v, like.dtype, "fptrunc" if like.dtype == types.float32 else "fpext")
    return signature.return_type(v, like), codegen


@intrinsic
def narrowed(typingctx, v):
    """The float32 ``Vector`` of the lanes of the float64 ``Vector`` ``v``, each rounded once."""
    return _converted(v, types.float32, "fptrunc") if getattr(v, "dtype", None) == types.float64 else None


# ---- a group of short rows, one row per lane --------------------------------------------------
#
# A group is ``rows`` consecutive rows of ``n`` elements (a row per lane of a ``Vector``), held
# as one wide ``Vector`` for the elementwise work (LLVM splits it into registers).  Rows of at
# most half a register are packed: ``lanes`` rows (a register's lanes) in memory order, row after
# row, ``n`` registers in all.  Longer rows are padded: each row in whole registers of its own
# (``ceil(n / lanes)``, the lanes past its end undefined), ``lanes`` rows, or half as many for
# rows of more than two registers (at most GROUP_REGISTERS registers a group).  ``row_max``,
# ``row_sums`` and ``row_counts`` reduce each row to a lane of a ``rows``-lane ``Vector``, and
# ``spread`` sends a lane back to its row's elements.  ``n`` is known when the kernel is
# compiled: these take it from the length of a tuple (``width``), ``spread`` the layout from the
# two vectors' lanes.

#: the most registers a padded group's wide vector takes (LLVM spills beyond it: rows of 64 in
#: groups of 16, 64 registers, gained nothing on rows one at a time)
GROUP_REGISTERS = 32


class _Group:
    """The layout of a group of rows of ``n`` elements of ``dtype`` (a numba float type)."""

    def __init__(self, dtype, n, lanes=None):
        self.lanes = lanes = LANES[dtype] if lanes is None else lanes  # a register's
        self.n = n
        self.packed = n <= lanes // 2
        # a padded row's registers: a power of two (the wide vector's lanes too: LLVM splits
        # other widths down to odd ones, rows of 33-48 in groups of 8 then took 1.1-1.7 times as
        # long as a row at a time); a row's registers past its end are neither loaded nor stored
        self.blocks = 1 if self.packed else 1 << (-(-n // lanes) - 1).bit_length()
        rows = lanes
        while not self.packed and rows * self.blocks > GROUP_REGISTERS:
            rows //= 2
        self.rows = rows
        self.row_lanes = n if self.packed else self.blocks * lanes  # a row's lanes in the group
        self.vector_lanes = rows * self.row_lanes

    def registers(self):
        """For each register of the group: ``(offset, in_row, numbers)``: its first element's
        offset from the group's (elements), how many of its lanes are in a row (the rest, a
        padded row's lanes past its end, none of it), and the number (in the group's rows,
        row-major) of an element of the row each lane is in, for a count of rows (``count * n``
        is past every element of the ``count`` rows, and of none after)."""
        lanes, n = self.lanes, self.n
        if self.packed:
            return [(k * lanes, lanes, [k * lanes + j for j in range(lanes)]) for k in range(n)]
        return [
            (r * n + b * lanes, max(0, min(lanes, n - b * lanes)), [r * n] * lanes)
            for r in range(self.rows) for b in range(self.blocks)
        ]


def _group_of(width, dtype):
    """The ``_Group`` for rows of ``len(width)`` (``width`` a tuple) of ``dtype``, or None."""
    if not (isinstance(width, types.UniTuple) and width.count > 0 and dtype in LANES):
        return None
    return _Group(dtype, width.count)


def _group_for(width, v):
    """``_group_of(width, ...)`` if ``v`` is the wide ``Vector`` of such a group, else None."""
    if not isinstance(v, Vector):
        return None
    group = _group_of(width, v.dtype)
    return group if group is not None and group.vector_lanes == v.lanes else None


def _registers(builder, value, lanes, count):
    """The ``count`` consecutive ``lanes``-lane parts of the vector ``value``."""
    return [_half(builder, value, k * lanes, lanes) for k in range(count)]


def _concatenated(builder, parts):
    """The vector of the ``parts`` (vectors of one type) one after another."""
    lanes = parts[0].type.count
    index = ir.IntType(32)
    whole = parts[0]
    for part in parts[1:]:
        width = whole.type.count
        if width > lanes:  # widen ``part`` to ``whole``'s width (its other lanes repeat its first)
            widening = [i if i < lanes else 0 for i in range(width)]
            part = builder.shuffle_vector(part, part, ir.Constant(ir.VectorType(index, width), widening))
        whole = builder.shuffle_vector(whole, part, ir.Constant(ir.VectorType(index, width + lanes),
                                                                list(range(width)) + list(range(width, width + lanes))))
    return whole


def _columns(builder, value, rows, n):
    """The ``n`` ``rows``-lane vectors of a packed group's columns: column ``j`` holds element
    ``j`` of every row.  (One shuffle of the whole group each: a tree of two-register shuffles
    instead, LLVM folded into these again.)"""
    index = ir.VectorType(ir.IntType(32), rows)
    return [builder.shuffle_vector(value, value, ir.Constant(index, [j + r * n for r in range(rows)])) for j in range(n)]


def _padded_rows(builder, value, group, fill):
    """A padded group's registers, row by row (a list of each row's ``blocks``), the lanes past a
    row's end set to the scalar constant ``fill``."""
    lanes, blocks = group.lanes, group.blocks
    registers = _registers(builder, value, lanes, group.rows * blocks)
    for k, (_, in_row, _) in enumerate(group.registers()):
        if in_row < lanes:
            fills = ir.Constant(registers[k].type, [fill] * lanes)
            within = ir.Constant(ir.VectorType(ir.IntType(1), lanes), [j < in_row for j in range(lanes)])
            registers[k] = builder.select(within, registers[k], fills)
    return [registers[r * blocks:(r + 1) * blocks] for r in range(group.rows)]


def _reduced_rows(builder, vectors, combine, halves=True):
    """One lane a row: ``vectors`` (one a row, at most as many as each has lanes, a row's terms
    each) reduced in ``sum_lanes``' pairwise order within each half of a row, the two halves
    combined last (as a float32 row's float64 sums, ``widen_low``'s and ``widen_high``'s); with
    ``halves`` False in ``sum_lanes``' order over the whole row (a float64 row's).  Pairs of
    vectors are combined a halving at a time (``combine(shuffle(a, b, firsts), shuffle(a, b,
    seconds))``, the rows of ``a`` then of ``b``), so that each step takes half as many vectors:
    2 shuffles and one ``combine`` for two vectors, where a transposition takes a shuffle for
    each register at each of its steps; a lone vector is halved."""
    index = ir.IntType(32)
    lanes = vectors[0].type.count
    w = lanes  # each row's values in a vector
    while w > 1:
        h = w // 2
        if w > 2 and halves:  # [low half, high half] -> [low's halves combined, high's halves combined]
            firsts = list(range(h // 2)) + list(range(h, h + h // 2))
            seconds = list(range(h // 2, h)) + list(range(h + h // 2, w))
        else:
            firsts, seconds = list(range(h)), list(range(h, w))
        per = lanes // w  # rows a vector
        if len(vectors) > 1:
            sources = list(zip(vectors[0::2], vectors[1::2]))
            sides = (0, 1)
        else:  # a vector of all the rows: halve it
            sources = [(vectors[0], vectors[0])]
            sides = (0,)

        def picked(lanes_of_row):
            numbers = [side * lanes + r * w + i for side in sides for r in range(per) for i in lanes_of_row]
            return ir.Constant(ir.VectorType(index, len(numbers)), numbers)

        vectors = [combine(builder.shuffle_vector(a, b, picked(firsts)), builder.shuffle_vector(a, b, picked(seconds)))
                   for a, b in sources]
        lanes = vectors[0].type.count
        w = h
    return vectors[0]


def _register_masks(builder, group, count, good):
    """For each register of a group (``group.registers()``), which of its lanes to load or store
    (a ``<lanes x i1>``): the lanes of the group's first ``count`` rows (None: all) that are in
    a row and that ``good`` (a mask of the group's lanes; None: all) has set; None for a register
    of all of them, and in place of the list when that is every register."""
    lanes = group.lanes
    index = ir.IntType(32)
    registers = group.registers()
    goods = _registers(builder, good, lanes, len(registers)) if good is not None else [None] * len(registers)
    if count is not None:
        limit = splat_value(builder, builder.trunc(builder.mul(count, ir.Constant(count.type, group.n)), index),
                            ir.VectorType(index, lanes))
    masks = []
    for (_, in_row, numbers), mask in zip(registers, goods):
        if in_row < lanes:
            within = ir.Constant(ir.VectorType(ir.IntType(1), lanes), [j < in_row for j in range(lanes)])
            mask = within if mask is None else builder.and_(mask, within)
        if count is not None:
            counted = builder.icmp_signed("<", ir.Constant(ir.VectorType(index, lanes), numbers), limit)
            mask = counted if mask is None else builder.and_(mask, counted)
        masks.append(mask)
    return None if all(mask is None for mask in masks) else masks


def _row_pointer(context, builder, array_type, array, row, element_type):
    """Pointer to ``array[row]`` (a 1-d array) or ``array[row, 0]`` (2-d), typed as a pointer to
    ``element_type``; unchecked."""
    view = context.make_array(array_type)(context, builder, array)
    indices = [row] + [ir.Constant(row.type, 0)] * (array_type.ndim - 1)
    pointer = cgutils.get_item_pointer(context, builder, array_type, view, indices, wraparound=False)
    return builder.bitcast(pointer, element_type.as_pointer())


def _register_pointers(builder, pointer, group, register_type):
    """Pointers to each register of the group at ``pointer`` (an element pointer)."""
    i64 = ir.IntType(64)
    return [builder.bitcast(builder.gep(pointer, [ir.Constant(i64, offset)]), register_type.as_pointer())
            for offset, _, _ in group.registers()]


def _group_array(array, row, count):
    return (
        isinstance(array, types.Array) and array.layout == "C" and array.ndim in (1, 2) and array.dtype in LANES
        and isinstance(row, types.Integer) and isinstance(count, (types.NoneType, types.Integer))
    )


@intrinsic
def group_rows(typingctx, array, width):
    """How many rows a group of rows of ``len(width)`` elements of ``array``'s dtype takes (a
    compile-time constant)."""
    group = _group_of(width, getattr(array, "dtype", None))
    if not isinstance(array, types.Array) or group is None:
        return None

    def codegen(context, builder, signature, args):
        return context.get_constant(types.intp, group.rows)

    return types.intp(array, width), codegen


@intrinsic
def load_rows(typingctx, array, row, width, count):
    """The group of rows ``row:row + rows`` (``group_rows``) of the C-contiguous 2-d ``array``,
    whose rows have ``n = len(width)`` elements (``width``: a tuple, for its length): one wide
    ``Vector``.  ``count`` None: all the group's rows; an integer: only the first ``count`` rows
    are read, the other lanes are 0 (and so are a padded row's lanes past its end).  Unchecked."""
    if not (_group_array(array, row, count) and array.ndim == 2):
        return None
    group = _group_of(width, array.dtype)
    if group is None:
        return None
    wide = Vector(array.dtype, group.vector_lanes)

    def codegen(context, builder, signature, args):
        element = context.get_value_type(array.dtype)
        pointer = _row_pointer(context, builder, array, args[0], args[1], element)
        align = array.dtype.bitwidth // 8
        if group.packed and isinstance(count, types.NoneType):
            return builder.load(builder.bitcast(pointer, context.get_value_type(wide).as_pointer()), align=align)
        register_type = ir.VectorType(element, group.lanes)
        masks = _register_masks(builder, group, None if isinstance(count, types.NoneType) else args[3], None)
        function = _masked_memory_function(builder, "load", register_type, store_form=False)
        zeros = ir.Constant(register_type, [0.0] * group.lanes)
        parts = [
            builder.load(address, align=align) if masks is None or masks[k] is None
            else builder.call(function, [address, ir.Constant(ir.IntType(32), align), masks[k], zeros])
            for k, address in enumerate(_register_pointers(builder, pointer, group, register_type))
        ]
        return _concatenated(builder, parts)

    return wide(array, row, width, count), codegen


@intrinsic
def store_rows(typingctx, array, row, width, value, count, good):
    """Store the group ``value`` (as ``load_rows`` gives it for rows of ``len(width)``) at rows
    ``row:row + rows`` of the C-contiguous 2-d ``array``, or a ``Vector`` of one value a row
    (``width`` None) at ``array[row:row + lanes]`` of a 1-d one: only the first ``count`` rows
    (None: all), and only the lanes that the mask ``good`` (of ``value``'s lanes; None: all) has
    set.  Unchecked."""
    if not (_group_array(array, row, count) and isinstance(value, Vector) and value.dtype == array.dtype):
        return None
    if array.ndim == 1 and isinstance(width, types.NoneType):  # a row per lane: rows of one
        group = _Group(array.dtype, 1, lanes=value.lanes)
    elif array.ndim == 2:
        group = _group_for(width, value)
    else:
        group = None
    if group is None:
        return None
    if not (isinstance(good, types.NoneType) or (isinstance(good, VectorMask) and good.lanes == value.lanes)):
        return None

    def codegen(context, builder, signature, args):
        element = context.get_value_type(array.dtype)
        pointer = _row_pointer(context, builder, array, args[0], args[1], element)
        align = array.dtype.bitwidth // 8
        masks = _register_masks(
            builder, group,
            None if isinstance(count, types.NoneType) else args[4],
            None if isinstance(good, types.NoneType) else args[5],
        )
        if masks is None and group.packed:
            builder.store(args[3], builder.bitcast(pointer, context.get_value_type(value).as_pointer()), align=align)
            return context.get_dummy_value()
        register_type = ir.VectorType(element, group.lanes)
        function = _masked_memory_function(builder, "store", register_type, store_form=True)
        parts = _registers(builder, args[3], group.lanes, value.lanes // group.lanes)
        for k, address in enumerate(_register_pointers(builder, pointer, group, register_type)):
            if masks is None or masks[k] is None:
                builder.store(parts[k], address, align=align)
            else:
                builder.call(function, [parts[k], address, ir.Constant(ir.IntType(32), align), masks[k]])
        return context.get_dummy_value()

    return types.none(array, row, width, value, count, good), codegen


@intrinsic
def row_max(typingctx, v, width):
    """The largest element of each row (of ``len(width)``) of the group ``v``, NaN skipped (-inf
    for a row without any other), one row per lane: ``select(v > best, v, best)`` from -inf, as
    ``_max_step`` (a padded row's registers first, lane by lane, as a row's own vectors).  (The
    order of the comparisons cannot change the result but for the sign of a zero max.)"""
    group = _group_for(width, v)
    if group is None:
        return None
    result = Vector(v.dtype, group.rows)

    def codegen(context, builder, signature, args):
        ninf = ir.Constant(ir.VectorType(context.get_value_type(v.dtype), group.lanes), [float("-inf")] * group.lanes)

        def larger(a, b):
            return builder.select(builder.fcmp_ordered(">", a, b), a, b)

        if not group.packed:  # each row's registers first, then the rows' lanes
            maxes = []
            for registers in _padded_rows(builder, args[0], group, float("-inf")):
                best = ninf
                for register in registers:
                    best = larger(register, best)
                maxes.append(best)
            return _reduced_rows(builder, maxes, larger)
        best = ninf
        for column in _columns(builder, args[0], group.rows, group.n):
            best = larger(column, best)
        return best

    return result(v, width), codegen


def _halving_sum(builder, terms):
    """``sum_lanes``' pairwise order over ``terms`` taken as the lanes of a vector (a power of two
    of them; None for a lane known to be 0, which adds nothing: ``t + 0 == t`` for the sums of
    non-negative terms here)."""

    def add(a, b):
        return b if a is None else a if b is None else builder.fadd(a, b)

    while len(terms) > 1:
        half = len(terms) // 2
        terms = [add(terms[i], terms[i + half]) for i in range(half)]
    return terms[0]


def _row_lane_sums(builder, value, group, halves, wide_type=None):
    """``value`` (a group) reduced one row a lane: each lane's terms in turn, then in
    ``sum_lanes``' order (see ``_reduced_rows``), each term first converted to ``wide_type``
    (float64 sums of float32 terms; None: as they are); a lane known to be 0 adds nothing."""

    def term(register):
        return register if wide_type is None else builder.fpext(register, wide_type)

    if group.packed:
        terms = [term(column) for column in _columns(builder, value, group.rows, group.n)]
        terms += [None] * (group.lanes - group.n)
        if not halves:
            return _halving_sum(builder, terms)
        half = group.lanes // 2
        low, high = _halving_sum(builder, terms[:half]), _halving_sum(builder, terms[half:])
        return low if high is None else builder.fadd(low, high)
    sums = []
    for registers in _padded_rows(builder, value, group, 0.0):
        total = term(registers[0])
        for register in registers[1:]:
            total = builder.fadd(total, term(register))
        sums.append(total)
    return _reduced_rows(builder, sums, builder.fadd, halves)


def _split_row_sums(group):
    """Codegen of ``row_sums`` of a float64 group: each term split against _SPLIT (``hi = (S + t)
    - S``, ``lo = t - hi``; ``softmax._add_row_lanes``), the high parts summed exactly in any
    order, the low ones in a short row's order, the two added: bit for bit a short row's sum."""

    def codegen(context, builder, signature, args):
        from .softmax import _SPLIT  # (a float constant: no import cycle at module load)

        vector_type = args[0].type
        split = ir.Constant(vector_type, [_SPLIT] * vector_type.count)
        hi = builder.fsub(builder.fadd(split, args[0]), split)
        lo = builder.fsub(args[0], hi)
        return builder.fadd(_row_lane_sums(builder, hi, group, False), _row_lane_sums(builder, lo, group, False))

    return codegen


@intrinsic
def row_sums(typingctx, v, width):
    """The sum of each row (of ``len(width)``) of the group ``v`` in float64, one row per lane,
    added in the order a row's own vectors would be: a float32 row's as ``_add_lanes`` (each
    lane's terms in turn, then the float64 halves, each ``sum_lanes``, the two added), a float64
    row's as ``softmax._add_row_lanes`` (see ``_split_row_sums``): bit for bit a short row's
    sum."""
    group = _group_for(width, v)
    if group is None:
        return None
    result = Vector(types.float64, group.rows)
    if v.dtype == types.float64:
        return result(v, width), _split_row_sums(group)

    def codegen(context, builder, signature, args):
        return _row_lane_sums(builder, args[0], group, True, ir.VectorType(ir.DoubleType(), group.lanes))

    return result(v, width), codegen


@intrinsic
def row_counts(typingctx, v, width):
    """The sum of each row (of ``len(width)``) of the group ``v`` of zeros and ones (a count,
    exact in float32 for rows of fewer than 2**24 elements, in any order), as float64, one row
    per lane: ``row_sums``' result at a float32 reduction's cost (float64 groups: in float64)."""
    group = _group_for(width, v)
    if group is None:
        return None
    result = Vector(types.float64, group.rows)

    def codegen(context, builder, signature, args):
        total = _row_lane_sums(builder, args[0], group, False)
        return total if v.dtype == types.float64 else builder.fpext(total, context.get_value_type(result))

    return result(v, width), codegen


@intrinsic
def spread(typingctx, v, like):
    """The group (of ``like``'s layout) whose row ``i`` holds lane ``i`` of ``v`` (one lane a row
    of the group) in every element."""
    if not (isinstance(v, Vector) and isinstance(like, Vector) and like.dtype in LANES
            and LANES[like.dtype] % v.lanes == 0 and like.lanes % v.lanes == 0):
        return None
    n = like.lanes // v.lanes  # a row's lanes
    result = Vector(v.dtype, like.lanes)

    def codegen(context, builder, signature, args):
        indices = ir.Constant(ir.VectorType(ir.IntType(32), result.lanes), [i // n for i in range(result.lanes)])
        return builder.shuffle_vector(args[0], args[0], indices)

    return result(v, like), codegen


@intrinsic
def filled(typingctx, value, like):
    """A ``Vector`` of ``like``'s lanes with the float ``value`` (of any float type) in each."""
    if not (isinstance(like, Vector) and isinstance(value, types.Float)):
        return None
    result = Vector(value, like.lanes)

    def codegen(context, builder, signature, args):
        return splat_value(builder, args[0], context.get_value_type(result))

    return result(value, like), codegen
