"""What the generated kernels of :mod:`chainrule.compiler.fusion` import: numba's ``cfunc`` with the settings
every fused loop is compiled with, ``carray``, pointers made from the int64 addresses of the slot block, and
scratch blocks on the kernel's stack. Imported only when a run is fused (it imports numba)."""

from __future__ import annotations

from numba import carray, cfunc, types
from numba.core import cgutils
from numba.extending import intrinsic

from chainrule.compiler.fusion import BLOCK

# No fastmath: a multiply-add contracted into an FMA, or a reassociated sum, would not be numpy's result.
# error_model="numpy": a division by zero gives inf or nan as numpy's does, and no check blocks vectorising.
KERNEL = cfunc(types.void(types.CPointer(types.int64)), error_model="numpy", cache=True)


def _pointer(typingctx, address, item_type):
    """``address`` (an int64) as a pointer to ``item_type`` (a register move)."""
    signature = types.CPointer(item_type)(types.int64)

    def codegen(context, builder, sig, args):
        return builder.inttoptr(args[0], context.get_value_type(sig.return_type))

    return signature, codegen


# Each at module level, by name: numba's on-disk cache pickles them by reference.
@intrinsic
def pointer_f32(typingctx, address):
    return _pointer(typingctx, address, types.float32)


@intrinsic
def pointer_f64(typingctx, address):
    return _pointer(typingctx, address, types.float64)


@intrinsic
def pointer_bool(typingctx, address):
    return _pointer(typingctx, address, types.boolean)


def _scratch(typingctx, item_type):
    """A pointer to BLOCK items on the kernel's stack. LLVM knows that such memory, whose address never
    leaves the kernel, overlaps none of the arrays the slot block points to."""
    signature = types.CPointer(item_type)()

    def codegen(context, builder, sig, args):
        return cgutils.alloca_once(builder, context.get_data_type(item_type), size=BLOCK)  # as in memory (bool: i8)

    return signature, codegen


@intrinsic
def scratch_f32(typingctx):
    return _scratch(typingctx, types.float32)


@intrinsic
def scratch_f64(typingctx):
    return _scratch(typingctx, types.float64)


@intrinsic
def scratch_bool(typingctx):
    return _scratch(typingctx, types.boolean)


__all__ = ["KERNEL", "carray", "pointer_f32", "pointer_f64", "pointer_bool", "scratch_f32", "scratch_f64",
           "scratch_bool"]
