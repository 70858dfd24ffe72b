"""LLVM intrinsics numba does not expose: bit casts and a vectorisable NaN-propagating max.

``max``/``np.fmax``/a select do not vectorise as reductions in numba; ``llvm.maximum``
(IEEE 754-2019 ``maximum``: NaN-propagating, -0 < +0) does.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def nan_max(typingctx, a, b):
    """``llvm.maximum`` on two floats of the same type: NaN if either is NaN."""
    if not (isinstance(a, types.Float) and a == b):
        return None

    def codegen(context, builder, signature, args):
        llty = context.get_value_type(signature.args[0])
        fn = cgutils.get_or_insert_function(
            builder.module,
            ir.FunctionType(llty, [llty, llty]),
            f"llvm.maximum.{'f32' if llty == ir.FloatType() else 'f64'}",
        )
        return builder.call(fn, args)

    return a(a, b), codegen


@intrinsic
def nan_min(typingctx, a, b):
    """``llvm.minimum`` on two floats of the same type: NaN if either is NaN."""
    if not (isinstance(a, types.Float) and a == b):
        return None

    def codegen(context, builder, signature, args):
        llty = context.get_value_type(signature.args[0])
        fn = cgutils.get_or_insert_function(
            builder.module,
            ir.FunctionType(llty, [llty, llty]),
            f"llvm.minimum.{'f32' if llty == ir.FloatType() else 'f64'}",
        )
        return builder.call(fn, args)

    return a(a, b), codegen


@intrinsic
def fma(typingctx, a, b, c):
    """``llvm.fma``: ``a * b + c`` with one rounding (the hardware instruction on x86-64-v3+)."""
    if not (isinstance(a, types.Float) and a == b == c):
        return None

    def codegen(context, builder, signature, args):
        llty = context.get_value_type(signature.args[0])
        fn = cgutils.get_or_insert_function(
            builder.module,
            ir.FunctionType(llty, [llty, llty, llty]),
            f"llvm.fma.{'f32' if llty == ir.FloatType() else 'f64'}",
        )
        return builder.call(fn, args)

    return a(a, b, c), codegen


@intrinsic
def int32_bits_to_float32(typingctx, i):
    """Reinterpret the low 32 bits of an integer as a float32 (no conversion).

    Accepts any integer type because numba widens int32 arithmetic to int64.
    """
    if not isinstance(i, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        value = args[0]
        if value.type.width != 32:
            value = builder.trunc(value, ir.IntType(32))
        return builder.bitcast(value, ir.FloatType())

    return types.float32(i), codegen


@intrinsic
def int64_bits_to_float64(typingctx, i):
    """Reinterpret a 64-bit integer's bits as a float64 (no conversion)."""
    if not (isinstance(i, types.Integer) and i.bitwidth == 64):
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(i), codegen


@intrinsic
def float32_to_int32_bits(typingctx, f):
    """Reinterpret a float32's bits as an int32 (no conversion)."""
    if f != types.float32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return types.int32(types.float32), codegen


@intrinsic
def float64_to_int64_bits(typingctx, f):
    """Reinterpret a float64's bits as an int64 (no conversion)."""
    if f != types.float64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return types.int64(types.float64), codegen


@intrinsic
def pow2_of_integral(typingctx, nf):
    """``2.0**nf`` for a float ``nf`` holding an integer in the normal exponent range.

    Built as ``(int(nf) + bias) << mantissa_bits`` reinterpreted as a float, all in an integer of
    the float's own width (numba would widen int32 arithmetic to int64 and halve the vector width).
    """
    if not isinstance(nf, types.Float):
        return None

    def codegen(context, builder, signature, args):
        llty = context.get_value_type(signature.args[0])
        if llty == ir.FloatType():
            ity, bias, shift = ir.IntType(32), 127, 23
        else:
            ity, bias, shift = ir.IntType(64), 1023, 52
        n = builder.fptosi(args[0], ity)
        n = builder.add(n, ir.Constant(ity, bias))
        n = builder.shl(n, ir.Constant(ity, shift))
        return builder.bitcast(n, llty)

    return nf(nf), codegen


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
