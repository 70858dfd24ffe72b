"""LLVM intrinsics numba does not expose, each written so that loops using it vectorise.

``max``/``np.fmax``/a select do not vectorise as reductions in numba; ``llvm.maximum``
(IEEE 754-2019 ``maximum``: NaN-propagating, -0 < +0) does.  ``pow2_of_integral`` and
``pow2_of_rounded`` build 2**n with integer arithmetic of the float's own width, and ``trunc``
rounds without leaving floats.  ``borrowed`` drops an array's reference count from the kernels'
hot paths.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ._fastmath import callee_overload
from ._vector import Vector, as_vectors, item_pointer, splat_value, valid_index, vector_operands


def _float_operands(operands):
    """The type that float operands combine to: one float type, or one ``_vector.Vector`` with
    scalars of its element type (broadcast); else None."""
    if all(isinstance(t, types.Float) for t in operands) and len(set(operands)) == 1:
        return operands[0]
    return vector_operands(*operands)


def _overloaded_name(name, llty):
    """``llvm.<name>.f32``, ``.f64``, ``.v16f32``, ``.v8f64``: an overloaded intrinsic's name."""
    if isinstance(llty, ir.VectorType):
        return f"{name}.v{llty.count}{'f32' if llty.element == ir.FloatType() else 'f64'}"
    return f"{name}.{'f32' if llty == ir.FloatType() else 'f64'}"


def _call_overloaded(context, builder, name, signature, args):
    result = signature.return_type
    llty = context.get_value_type(result)
    if isinstance(result, Vector):
        args = as_vectors(context, builder, signature.args, args, result)
    signature_type = ir.FunctionType(llty, [llty] * len(args))
    fn = cgutils.get_or_insert_function(builder.module, signature_type, _overloaded_name(name, llty))
    return builder.call(fn, args)


@intrinsic
def nan_max(typingctx, a, b):
    """``llvm.maximum`` on two floats of the same type (or vectors, lane by lane): NaN if either
    is NaN."""
    result = _float_operands((a, b))
    if result is None:
        return None

    def codegen(context, builder, signature, args):
        return _call_overloaded(context, builder, "llvm.maximum", signature, args)

    return result(a, b), codegen


@intrinsic
def fma(typingctx, a, b, c):
    """``llvm.fma``: ``a * b + c`` with one rounding (the hardware instruction on x86-64-v3+);
    lane by lane for vectors, scalars broadcast."""
    result = _float_operands((a, b, c))
    if result is None:
        return None

    def codegen(context, builder, signature, args):
        return _call_overloaded(context, builder, "llvm.fma", signature, args)

    return result(a, b, c), codegen


# Float layouts: (integer type, exponent bias, mantissa bits, 1.5 * 2**mantissa_bits).
_LAYOUT = {
    "float": (ir.IntType(32), 127, 23, 12582912.0),
    "double": (ir.IntType(64), 1023, 52, 6755399441055744.0),
}


def _layout(llty):
    return _LAYOUT["float" if llty == ir.FloatType() else "double"]


def _constant_like(llty, value):
    """The integer constant ``value``, in every lane if ``llty`` is a vector type."""
    if isinstance(llty, ir.VectorType):
        return ir.Constant(llty, [value] * llty.count)
    return ir.Constant(llty, value)


@intrinsic
def pow2_of_integral(typingctx, nf):
    """``2.0**nf`` for a float ``nf`` holding an integer in the normal exponent range.

    Built as ``(int(nf) + bias) << mantissa_bits`` reinterpreted as a float, all in an integer of
    the float's own width (numba would widen int32 arithmetic to int64 and halve the vector width).
    For float64 ``int(nf)`` is read from the low bits of ``nf + 1.5 * 2**52`` instead of converted:
    AVX2 has no vector float64-to-int64 conversion, and LLVM would fall back to scalar code.
    """
    if not isinstance(nf, types.Float):
        return None

    def codegen(context, builder, signature, args):
        llty = context.get_value_type(signature.args[0])
        ity, bias, shift, magic = _layout(llty)
        if llty == ir.FloatType():
            n = builder.fptosi(args[0], ity)
        else:
            n = builder.bitcast(builder.fadd(args[0], ir.Constant(llty, magic)), ity)
        n = builder.add(n, ir.Constant(ity, bias))
        n = builder.shl(n, ir.Constant(ity, shift))
        return builder.bitcast(n, llty)

    return nf(nf), codegen


@intrinsic
def pow2_of_rounded(typingctx, kf, offset):
    """``2.0**(n + offset)`` where ``kf = n + 1.5 * 2**mantissa_bits`` (so ``n`` sits in the low
    mantissa bits of ``kf``, as left by the add-the-magic-number rounding) and ``offset`` is a
    float holding a small integer (a constant, folded at compile time).

    ``n + offset + bias`` must lie in the normal exponent range: the low bits of ``kf``'s integer
    image plus the biased offset are shifted into the exponent field, and the high bits of the
    image shift out.  Two integer instructions, no conversion.
    """
    element = kf.dtype if isinstance(kf, Vector) else kf
    if not (isinstance(element, types.Float) and element == offset):
        return None

    def codegen(context, builder, signature, args):
        llty = context.get_value_type(signature.args[0])
        scalar_type = llty.element if isinstance(llty, ir.VectorType) else llty
        ity, bias, shift, _ = _layout(scalar_type)
        exponent = builder.add(builder.fptosi(args[1], ity), ir.Constant(ity, bias))
        if isinstance(llty, ir.VectorType):  # a vector kf: every lane gets the same offset
            ity = ir.VectorType(ity, llty.count)
            exponent = splat_value(builder, exponent, ity)
        n = builder.add(builder.bitcast(args[0], ity), exponent)
        n = builder.shl(n, _constant_like(ity, shift))
        return builder.bitcast(n, llty)

    return kf(kf, offset), codegen


@intrinsic
def trunc(typingctx, x):
    """``llvm.trunc``: round toward zero, staying a float (vectorises, unlike ``int()``)."""
    if not isinstance(x, types.Float):
        return None

    def codegen(context, builder, signature, args):
        llty = context.get_value_type(signature.args[0])
        fn = cgutils.get_or_insert_function(
            builder.module,
            ir.FunctionType(llty, [llty]),
            f"llvm.trunc.{'f32' if llty == ir.FloatType() else 'f64'}",
        )
        return builder.call(fn, args)

    return x(x), codegen


def _emit_prefetch(builder, pointer, write: bool = False) -> None:
    """Emit ``llvm.prefetch`` of the cache line at ``pointer`` (any pointer type), for reading or
    (``write``) for writing."""
    i8p = ir.IntType(8).as_pointer()
    i32 = ir.IntType(32)
    fn = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]), "llvm.prefetch.p0"
    )
    # (address, 0 = read / 1 = write, locality 3 = keep in every cache level, 1 = data cache)
    access = ir.Constant(i32, 1 if write else 0)
    builder.call(fn, [builder.bitcast(pointer, i8p), access, ir.Constant(i32, 3), ir.Constant(i32, 1)])


@intrinsic
def prefetch_read(typingctx, array, index):
    """``llvm.prefetch`` of ``array[index]`` (``index`` an integer, or a tuple of one per
    dimension) for reading: a hint that never faults, so an index past the end is harmless (the
    column kernels' prefetch of a narrower next block runs past its row's end)."""
    if not valid_index(array, index):
        return None

    def codegen(context, builder, signature, args):
        _emit_prefetch(builder, item_pointer(context, builder, signature, args))
        return context.get_dummy_value()

    return types.none(array, index), codegen


@intrinsic
def prefetch_write(typingctx, array, index):
    """``llvm.prefetch`` of ``array[index]`` for writing (x86: ``prefetchw``, which fetches the
    line ready to be modified); like ``prefetch_read``, a hint that never faults."""
    if not valid_index(array, index):
        return None

    def codegen(context, builder, signature, args):
        _emit_prefetch(builder, item_pointer(context, builder, signature, args), write=True)
        return context.get_dummy_value()

    return types.none(array, index), codegen


@intrinsic
def prefetch_address(typingctx, address):
    """``llvm.prefetch`` of the cache line at the integer ``address`` (for reading; never faults)."""
    if not isinstance(address, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        _emit_prefetch(builder, builder.inttoptr(args[0], ir.IntType(8).as_pointer()))
        return context.get_dummy_value()

    return types.none(address), codegen


@intrinsic
def line_offset(typingctx, array):
    """The byte offset of ``array``'s data within its 64-byte cache line (an int64)."""
    if not isinstance(array, types.Array):
        return None

    def codegen(context, builder, signature, args):
        view = context.make_array(signature.args[0])(context, builder, args[0])
        address = builder.ptrtoint(view.data, ir.IntType(64))
        return builder.and_(address, ir.Constant(ir.IntType(64), 63))

    return types.int64(array), codegen


# Reference counts.  Every slice a kernel takes (``x2[r]``, ``x[start:stop]``) and passes to
# another compiled function is an NRT incref/decref pair, an atomic read-modify-write each, that
# numba's refcount pruning cannot remove across a call.  Measured on Zen 5 (one thread, float32
# softmax): 8x10 1.70 -> 0.55 us per call; rows of 4096 in cache 0.329 -> 0.273 ns per element.
# A view with a null meminfo skips them: NRT_incref/decref return at once on null.


def uncounted_view(context, builder, array_type, value):
    """(In an intrinsic's codegen.)  The array ``value`` of numba type ``array_type`` as a view
    without meminfo or parent: no reference count to update."""
    view = context.make_array(array_type)(context, builder, value=value)
    view.meminfo = cgutils.get_null_value(view.meminfo.type)
    view.parent = cgutils.get_null_value(view.parent.type)
    return view._getvalue()


@intrinsic
def _without_meminfo(typingctx, array):
    if not isinstance(array, types.Array):
        return None

    def codegen(context, builder, signature, args):
        return uncounted_view(context, builder, signature.args[0], args[0])

    return array(array), codegen


def borrowed(array):
    """``array`` itself, as a view that carries no reference count (numba only; ``None`` passes).

    Safe only for a kernel's *arguments*, which the caller keeps alive for the whole call, and
    only if the view never outlives the call (it is not returned or stored).  Never use it on
    an array the kernel allocates: numba frees that at its variable's last use.
    """
    raise NotImplementedError("borrowed is callable from numba-compiled code only")


@callee_overload(borrowed)
def _borrowed_overload(array):
    if isinstance(array, types.NoneType):
        return lambda array: array
    if isinstance(array, types.Array):
        return lambda array: _without_meminfo(array)
    return None


# A max reduction that ignores NaN, written as explicit vector IR.  LLVM's loop vectoriser takes
# a float max reduction only as ``llvm.maximum`` (``nan_max``), which x86 lowers to a max, an
# unordered compare and a masked move per vector: 0.034 ns per float32 element (Zen 5, one
# thread, in L1).  ``select(v > m, v, m)`` is x86's own ``maxps`` (NaN in ``v`` keeps ``m``), one
# instruction, but the vectoriser does not take it as a reduction with any flags short of
# ``nnan``; so this intrinsic writes the vector loop itself, in generic IR (LLVM splits the
# vectors into whatever the target has), with four independent accumulators.
_MAX_LANES = {"float": 16, "double": 8}
_MAX_ACCUMULATORS = 4


def _select_greater(builder, a, b):
    """``a if a > b else b``: ``b`` when either is NaN (x86 ``maxps b, a``)."""
    return builder.select(builder.fcmp_ordered(">", a, b), a, b)


@intrinsic
def max_ignoring_nan(typingctx, array):
    """``max`` of a C-contiguous 1-d float array over its non-NaN entries (-inf if there are
    none); explicit vector code, see above."""
    if not (
        isinstance(array, types.Array)
        and array.ndim == 1
        and array.layout == "C"
        and array.dtype in (types.float32, types.float64)
    ):
        return None

    def codegen(context, builder, signature, args):
        array_type = signature.args[0]
        view = context.make_array(array_type)(context, builder, args[0])
        fty = context.get_value_type(array_type.dtype)
        lanes = _MAX_LANES["float" if fty == ir.FloatType() else "double"]
        vty = ir.VectorType(fty, lanes)
        size = builder.extract_value(view.shape, 0)
        ity = size.type
        data = view.data
        align = array_type.dtype.bitwidth // 8
        step = lanes * _MAX_ACCUMULATORS

        lowest = ir.Constant(vty, [float("-inf")] * lanes)
        accumulators = [cgutils.alloca_once_value(builder, lowest) for _ in range(_MAX_ACCUMULATORS)]
        blocks = builder.udiv(size, ir.Constant(ity, step))
        with cgutils.for_range(builder, blocks) as loop:
            base = builder.mul(loop.index, ir.Constant(ity, step))
            for u, acc in enumerate(accumulators):
                pointer = builder.gep(data, [builder.add(base, ir.Constant(ity, u * lanes))], inbounds=True)
                value = builder.load(builder.bitcast(pointer, vty.as_pointer()), align=align)
                builder.store(_select_greater(builder, value, builder.load(acc)), acc)
        # then single vectors into the first accumulator: at most lanes - 1 entries are left
        vectors_done = builder.mul(blocks, ir.Constant(ity, _MAX_ACCUMULATORS))
        vectors = builder.udiv(size, ir.Constant(ity, lanes))
        with cgutils.for_range_slice(builder, vectors_done, vectors, ir.Constant(ity, 1), inc=True) as (v, _):
            pointer = builder.gep(data, [builder.mul(v, ir.Constant(ity, lanes))], inbounds=True)
            value = builder.load(builder.bitcast(pointer, vty.as_pointer()), align=align)
            builder.store(_select_greater(builder, value, builder.load(accumulators[0])), accumulators[0])
        vector = builder.load(accumulators[0])
        for acc in accumulators[1:]:
            vector = _select_greater(builder, builder.load(acc), vector)
        width = lanes
        while width > 1:
            width //= 2
            half = ir.VectorType(ir.IntType(32), width)
            low = builder.shuffle_vector(vector, vector, ir.Constant(half, list(range(width))))
            high = builder.shuffle_vector(vector, vector, ir.Constant(half, list(range(width, 2 * width))))
            vector = _select_greater(builder, high, low)
        first_lane = builder.extract_element(vector, ir.Constant(ir.IntType(32), 0))
        result = cgutils.alloca_once_value(builder, first_lane)
        start = builder.mul(vectors, ir.Constant(ity, lanes))
        with cgutils.for_range_slice(builder, start, size, ir.Constant(ity, 1), inc=True) as (index, _):
            value = builder.load(builder.gep(data, [index], inbounds=True))
            builder.store(_select_greater(builder, value, builder.load(result)), result)
        return builder.load(result)

    return array.dtype(array), codegen
