"""The kernels of :mod:`chainrule.backend._numba`, compiled once per machine and loaded without numba.

Importing numba costs a process more resident memory than the activations of the benchmark's
transformer, and seconds of start-up (numba's typing and lowering registries, the parts of LLVM they
run, and scipy, which numba imports when it is installed). So numba compiles the kernels once, in a
child process, into one object file of plain C functions; every process after that loads the file with
llvmlite's JIT linker alone, a fraction of numba's cost, and calls the functions through ctypes, which
releases the GIL around each call as numba's ``nogil`` did. The figures: bench/ANALYSIS.md, "Backend:
figures moved from the code".

Each kernel ``k`` gets an entry ``chainrule_k`` that takes one block of int64 slots: for every array
argument its data pointer, its shape and its strides in bytes, and the other arguments as they are (a
float64 as its bits); it returns 1 when the kernel reported an error (none of them raises, so that
would be a bug here) and 0 otherwise. The
object file sits in a cache folder (``CHAINRULE_CACHE_DIR``, else ``$XDG_CACHE_HOME/chainrule`` or
``~/.cache/chainrule``) under a key of everything that shapes the machine code: the kernels' source,
this file, numba's and llvmlite's versions, the Python version and the CPU with its features.
Anything that goes wrong raises, and :mod:`chainrule.backend.kernels` then imports numba in-process.

The build leans on numba internals (a dispatcher's ``overloads``, its ``call_conv``,
``numba.np.arrayobj.populate_array``), so it is tested with the numba range pinned in pyproject.toml's
``fast`` extra. If a numba upgrade breaks it, the in-process numba fallback of
:mod:`chainrule.backend.kernels` (``_load``: the same kernels, more memory, one RuntimeWarning) is the
documented default path until this file is mended.

Run as ``python -m chainrule.backend._prebuilt OBJECT_PATH`` it builds (that is the child process).
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import struct
import subprocess
import sys
import tempfile
import types
from array import array
from importlib import metadata
from pathlib import Path

import numpy as np

_HERE = Path(__file__).resolve()
_KERNELS_SOURCE = _HERE.with_name("_numba.py")
_ENTRY_PREFIX = "chainrule_"
_DOUBLE, _INT64 = struct.Struct("=d"), struct.Struct("=q")  # to pass a float64 as its bits in an int64 slot


def load() -> types.SimpleNamespace:
    """The kernels, by name, as functions of numpy arrays and numbers (building them first if this
    machine has none cached). Raises ImportError without llvmlite or numba, OSError or RuntimeError
    when the cache cannot be written or the build fails."""
    import llvmlite.binding as llvm

    obj_path = _cache_dir() / f"kernels-{_cache_key(llvm)}.o"
    spec_path = obj_path.with_suffix(".json")
    if not spec_path.exists():  # written after the object file: its presence means both are complete
        _build_in_child(obj_path)
    return _link(llvm, obj_path.read_bytes(), json.loads(spec_path.read_text()))


def _cache_dir() -> Path:
    path = os.environ.get("CHAINRULE_CACHE_DIR")
    if not path:
        path = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "chainrule"
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _cache_key(llvm) -> str:
    digest = hashlib.sha256()
    for part in (_KERNELS_SOURCE.read_bytes(), _HERE.read_bytes(), metadata.version("numba").encode(),
                 metadata.version("llvmlite").encode(), sys.version.encode(), llvm.get_process_triple().encode(),
                 llvm.get_host_cpu_name().encode(), llvm.get_host_cpu_features().flatten().encode()):
        digest.update(part)
        digest.update(b"\0")
    return digest.hexdigest()[:24]


def _build_in_child(obj_path: Path) -> None:
    """Run the build in a child process, so that this one never imports numba. The child compiles
    from scratch (its numba cache is a throwaway folder): numba's cache keeps machine code only, and the
    build needs the LLVM IR."""
    package_root = str(_HERE.parents[2])
    with tempfile.TemporaryDirectory(prefix="chainrule-numba-") as scratch:
        env = {**os.environ, "NUMBA_CACHE_DIR": scratch,
               "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
        done = subprocess.run([sys.executable, "-m", "chainrule.backend._prebuilt", str(obj_path)], env=env,
                              capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"building the compiled kernels into {obj_path} failed: {done.stderr.strip()[-2000:]}")


# ----- loading: llvmlite links the object file, ctypes calls its entries -------------------------------

def _link(llvm, object_code: bytes, spec: dict) -> types.SimpleNamespace:
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    machine = llvm.Target.from_default_triple().create_target_machine(reloc="default", codemodel="jitdefault")
    engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), machine)
    engine.add_object_file(llvm.ObjectFileRef.from_data(object_code))
    engine.finalize_object()
    kernels = types.SimpleNamespace(_engine=engine)  # the engine owns the code: it lives as long as they do
    for name, params in spec.items():
        entry = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p)(engine.get_function_address(_ENTRY_PREFIX + name))
        setattr(kernels, name, _caller(name, entry, params))
    return kernels


def _caller(name: str, entry, params: list):
    """``entry`` as a function of arrays and numbers. It checks each array against the kernel's
    signature, as numba's dispatcher did: a wrong one would have the machine code read the wrong memory.
    The arguments travel as one block of int64 slots (a float64 as its bits): ctypes converting each
    argument separately was slow for a kernel of many slots (convolution's has 30)."""
    wanted = [(np.dtype(p["dtype"]), p["ndim"]) if "ndim" in p else p["scalar"] for p in params]

    def call(*args):
        if len(args) != len(wanted):
            raise TypeError(f"{name}: takes {len(wanted)} arguments, got {len(args)}")
        block = array("q")
        for value, kind in zip(args, wanted):
            if kind == "float64":
                block.append(_INT64.unpack(_DOUBLE.pack(value))[0])
            elif type(kind) is str:  # int64 or bool
                block.append(int(value))
            elif type(value) is not np.ndarray or value.dtype != kind[0] or value.ndim != kind[1] \
                    or not value.flags.c_contiguous:
                raise TypeError(f"{name}: expected a C-contiguous {kind[0]} array of {kind[1]} dims, got "
                                f"{type(value).__name__} {getattr(value, 'dtype', '')} {getattr(value, 'shape', '')}")
            else:
                block.append(_address(value))
                block.extend(value.shape)
                block.extend(value.strides)
        if entry(block.buffer_info()[0]):
            raise RuntimeError(f"compiled kernel {name} reported an error")

    call.__name__ = name
    return call


def _address(values: np.ndarray) -> int:
    """The address of the array's first element; through ctypes' buffer view when the array is writable,
    which is several times quicker than ``values.ctypes.data`` (it runs for every array of every call)."""
    try:
        return ctypes.addressof(ctypes.c_char.from_buffer(values))
    except (TypeError, ValueError, BufferError):  # read-only, or empty
        return values.__array_interface__["data"][0]


# ----- building (in the child process): numba compiles, llvmlite links and emits ------------------------

def build(obj_path: Path) -> None:
    """Compile every kernel of :mod:`chainrule.backend._numba` with a C entry, link them into one module
    that exports only the entries, and write its object code and the entries' parameters."""
    import llvmlite.binding as llvm
    from numba.core.dispatcher import Dispatcher

    from chainrule.backend import _numba

    modules, spec = [], {}
    for name, kernel in sorted(vars(_numba).items()):
        if isinstance(kernel, Dispatcher) and not name.startswith("_"):
            entry_ir, spec[name] = _entry_module(name, kernel)
            modules += [entry_ir, kernel.overloads[kernel.signatures[0]].library.get_llvm_str()]
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    linked = llvm.parse_assembly(modules[0])
    for text in modules[1:]:
        linked.link_in(llvm.parse_assembly(text))
    target = llvm.Target.from_default_triple()
    machine = target.create_target_machine(  # numba's own JIT settings: static relocation on x86 only
        cpu=llvm.get_host_cpu_name(), features=llvm.get_host_cpu_features().flatten(), opt=3,
        reloc="static" if target.name.startswith("x86") else "default", codemodel="jitdefault", jit=True)
    _keep_only_entries(llvm, linked, machine)
    _write_atomically(obj_path, machine.emit_object(linked))
    _write_atomically(obj_path.with_suffix(".json"), json.dumps(spec).encode())


def _entry_module(name: str, kernel):
    """LLVM IR of ``chainrule_<name>(int64 *slots)``: it reads the arguments from the slots (per array its
    data pointer, shape and strides), builds numba's array structures, calls the compiled kernel by
    numba's calling convention and returns its error flag."""
    from llvmlite import ir
    from numba import types as nb
    from numba.np.arrayobj import populate_array

    (signature,) = kernel.signatures
    compiled = kernel.overloads[signature]
    context, described = compiled.target_context, compiled.fndesc
    module = context.create_module(_ENTRY_PREFIX + name)
    callee = ir.Function(module, context.call_conv.get_function_type(described.restype, described.argtypes),
                         described.llvm_func_name)
    i64 = ir.IntType(64)
    entry = ir.Function(module, ir.FunctionType(ir.IntType(32), [i64.as_pointer()]), _ENTRY_PREFIX + name)
    builder = ir.IRBuilder(entry.append_basic_block("entry"))
    slots = iter(range(10_000))

    def next_slot():
        return builder.load(builder.gep(entry.args[0], [ir.Constant(i64, next(slots))], source_etype=i64))

    args, spec = [], []
    for ty in signature:
        if isinstance(ty, nb.Array):
            data = builder.inttoptr(next_slot(), context.get_data_type(nb.CPointer(ty.dtype)))
            shape = [next_slot() for _ in range(ty.ndim)]
            strides = [next_slot() for _ in range(ty.ndim)]
            array_value = context.make_array(ty)(context, builder)
            itemsize = ir.Constant(i64, context.get_abi_sizeof(context.get_data_type(ty.dtype)))
            populate_array(array_value, data=data, shape=shape, strides=strides, itemsize=itemsize, meminfo=None)
            args.append(array_value._getvalue())
            spec.append({"dtype": str(ty.dtype), "ndim": ty.ndim})
        else:
            args.append(context.data_model_manager[ty].from_data(builder, _from_slot(builder, next_slot(),
                                                                                     context.get_data_type(ty))))
            spec.append({"scalar": str(ty)})
    status, _ = context.call_conv.call_function(builder, callee, described.restype, described.argtypes, args)
    builder.ret(builder.zext(status.is_error, ir.IntType(32)))
    return str(module), spec


def _from_slot(builder, slot, data_type):
    """A scalar argument of ``data_type`` from its int64 slot: an integer as it is or narrowed (bool), a
    float64 from its bits."""
    from llvmlite import ir

    if isinstance(data_type, ir.IntType):
        return slot if data_type.width == 64 else builder.trunc(slot, data_type)
    if isinstance(data_type, ir.DoubleType):
        return builder.bitcast(slot, data_type)
    raise TypeError(f"prebuilt kernels: no slot conversion for arguments of LLVM type {data_type}")


def _keep_only_entries(llvm, module, machine) -> None:
    """Make everything but the entries internal and drop what they do not reach: numba's Python
    wrappers and runtime helpers, whose symbols exist only in a process that imported numba."""
    for function in module.functions:
        if not function.is_declaration and not function.name.startswith(_ENTRY_PREFIX):
            function.linkage = "internal"
    for variable in module.global_variables:
        if not variable.is_declaration:
            variable.linkage = "internal"
    passes = llvm.create_new_module_pass_manager()
    passes.add_global_dead_code_eliminate_pass()
    passes.add_strip_dead_prototype_pass()
    passes.run(module, llvm.create_pass_builder(machine, llvm.create_pipeline_tuning_options()))


def _write_atomically(path: Path, data: bytes) -> None:
    """Write to a temporary file beside ``path``, then rename: a reader never sees half a file, and two
    processes building at once leave one complete result."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


if __name__ == "__main__":
    build(Path(sys.argv[1]))
