"""LLVM intrinsics numba does not expose, each written so that loops using it vectorise.

``max``/``np.fmax``/a select do not vectorise as reductions in numba; ``llvm.maximum``
(IEEE 754-2019 ``maximum``: NaN-propagating, -0 < +0) does.  ``pow2_of_integral`` builds 2**n
with integer arithmetic of the float's own width, and ``trunc`` rounds without leaving floats.
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
