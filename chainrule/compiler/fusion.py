"""Elementwise fusion for ``cr.compile(fn, fuse="exact" | "fast")``: runs of consecutive elementwise numpy
calls over one shape become one generated numba loop, called through ctypes with one pointer.

What a run may hold:

- numpy ufunc calls ``ufunc(a, b, out=(c,))`` (and ``np.where``) whose operation is in :data:`EXACT_OPS`
  (``fuse="exact"``: correctly rounded, so the loop's result is numpy's bit for bit) or also in
  :data:`FAST_OPS` (``fuse="fast"``: exp, log, tanh, power, ...: LLVM's libm or chainrule's own float32
  exp and tanh, not numpy's SIMD code, so within a few ulps), on float32, float64 and bool arrays;
- each array operand either of the run's shape and laid out like every other such operand (without gaps,
  positive strides), or broadcast as a scalar (a size-1 array), a trailing block (a bias of shape (n,)
  against (b, n)) or a leading block (a (b, 1) column), the last two on C-ordered runs only;
- no two different views of overlapping memory when one of them is written in the run (element ``i`` of
  one would then depend on another element of the other).

The loop keeps every value in a register and stores only what someone else reads: arrays the program did
not make (state), arrays an instruction outside the run touches, and the program's outputs; a buffer only
the run uses disappears. numpy's promotion is reproduced exactly: each call's loop dtypes come from
``ufunc.resolve_dtypes`` (Python numbers weak, as numpy 2 treats them), operands are cast to them, the
result to the out array's dtype, and constants are written as literals of the loop dtype (no float64
arithmetic sneaks in through a Python float). numba compiles without ``fastmath``, so no multiply-add is
contracted into an FMA. ``maximum``/``minimum`` follow numpy's rule exactly (a NaN in the first argument
wins, then one in the second; of two equal values, the second). What differs from an unfused replay:
numpy's floating-point warnings (division by zero, invalid value) are not raised inside a fused loop.

A loop over a run that reads or writes many arrays (the overhead chain's: 135) is not vectorised: LLVM
cannot tell the arrays apart and checking them at run time costs more than it saves. A run with
chainrule's own exp or tanh is generated in blocks whose results go to scratch blocks on the stack first,
which LLVM can tell apart from everything, so that loop is vectorised (see _source).

Kernels are cached by their generated source, which names everything that shapes the machine code (ops,
dtypes, constants, index kinds; not the sizes, which travel in the pointer block): in this process, and
on disk through numba's own cache (the source is written to ``<cache>/fused/``, beside the prebuilt
kernels' object file). numba is imported in this process the first time a run is fused.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import sys
import warnings

import numpy as np

from chainrule.compiler.tracer import Instr, root

MIN_RUN = 2  # a run of one call gains nothing from a kernel call
BLOCK = 64  # elements per block of a blocked kernel (its scratch blocks live on the stack)

# Operation -> (expression over the operand names {0}, {1}, ... and the loop type {t}). Exact ones are
# correctly rounded (or not rounded at all), so numba's results are numpy's bit for bit.
EXACT_OPS = {
    np.add: "{0} + {1}", np.subtract: "{0} - {1}", np.multiply: "{0} * {1}", np.divide: "{0} / {1}",
    np.negative: "-{0}", np.positive: "{0}", np.absolute: "abs({0})", np.square: "{0} * {0}",
    np.reciprocal: "{t}(1) / {0}", np.sqrt: "np.sqrt({0})",
    np.maximum: "({0} if {0} > {1} or {0} != {0} else {1})",  # numpy's NaN and signed-zero rule
    np.minimum: "({0} if {0} < {1} or {0} != {0} else {1})",
    np.greater: "{0} > {1}", np.greater_equal: "{0} >= {1}", np.less: "{0} < {1}", np.less_equal: "{0} <= {1}",
    np.equal: "{0} == {1}", np.not_equal: "{0} != {1}",
    np.isfinite: "np.isfinite({0})", np.isnan: "np.isnan({0})", np.isinf: "np.isinf({0})",
    np.where: "({1} if {0} else {2})",
}
# Also fused by fuse="fast": numba's (LLVM's libm) versions, within a few ulps of numpy's.
FAST_OPS = {
    np.exp: "np.exp({0})", np.expm1: "np.expm1({0})", np.log: "np.log({0})", np.log1p: "np.log1p({0})",
    np.tanh: "np.tanh({0})", np.sin: "np.sin({0})", np.cos: "np.cos({0})", np.power: "{0} ** {1}",
    np.arctan: "np.arctan({0})",
}
# In float32, fuse="fast" takes exp and tanh from chainrule's own compiled kernels (chainrule.backend._numba:
# within one ulp, and inlined into the loop; libm's expf and tanhf are a call per element, 2x slower here).
FAST_F32_OPS = {np.exp: "_exp({0})", np.tanh: "_tanh({0})"}
_TYPES = {np.dtype(np.float32): "np.float32", np.dtype(np.float64): "np.float64", np.dtype(np.bool_): "bool"}
_POINTERS = {np.dtype(np.float32): "pointer_f32", np.dtype(np.float64): "pointer_f64",
             np.dtype(np.bool_): "pointer_bool"}
_SCRATCH = {np.dtype(np.float32): "scratch_f32", np.dtype(np.float64): "scratch_f64",
            np.dtype(np.bool_): "scratch_bool"}
# Chainrule's own float32 exp and tanh are arithmetic LLVM can vectorise (libm's functions are calls);
# a run using them is generated in blocks (see _source).
_VECTORISABLE_HEAVY = tuple(f"{name}(" for name in ("_exp", "_tanh"))

_KERNELS: dict = {}  # generated source -> its _Kernel (or None when numba failed on it)
_WARNED: set = set()


def available() -> bool:
    """Whether fusion can run: numba installed and the compiled kernels not switched off
    (``CHAINRULE_KERNELS=numpy`` or ``chainrule.backend.kernels.set_enabled(False)``)."""
    from chainrule.backend import kernels

    return kernels._STATE["wanted"] and importlib.util.find_spec("numba") is not None


def fuse(instrs: list[Instr], created: set, live: set, mode: str) -> list[Instr]:
    """``instrs`` with each run of fusable elementwise calls replaced by one fused instruction.
    ``created``: ids of the roots the program makes; ``live``: ids of roots read after the program
    (outputs, input buffers)."""
    ops = EXACT_OPS if mode == "exact" else {**EXACT_OPS, **FAST_OPS}
    parts = [_elementwise(instr, ops) for instr in instrs]
    runs = _runs(instrs, parts)
    if not runs:
        return instrs
    outside = _touched_outside(instrs, runs)
    fused, start = [], 0
    for lo, hi, run in runs:
        fused.extend(instrs[start:lo])
        instr = _fused_instr(run, created, live, outside[lo], mode)
        fused.extend(instrs[lo:hi] if instr is None else [instr])
        start = hi
    fused.extend(instrs[start:])
    return fused


# ----- what one instruction computes ------------------------------------------------------------------

class _Part:
    """One elementwise call: its operation, operands (arrays or Python/numpy numbers), output array, the
    loop dtypes numpy runs it in, and where it came from."""

    __slots__ = ("fn", "operands", "out", "loop_in", "loop_out", "op", "site")

    def __init__(self, fn, operands, out, loop_in, loop_out, op, site):
        self.fn, self.operands, self.out = fn, operands, out
        self.loop_in, self.loop_out, self.op, self.site = loop_in, loop_out, op, site


def _elementwise(instr: Instr, ops: dict) -> _Part | None:
    fn = instr.fn
    if instr.kind == "ufunc" and isinstance(fn, np.ufunc) and fn in ops and set(instr.kwargs) == {"out"}:
        out = instr.kwargs["out"]
        if len(out) != 1 or len(instr.args) != fn.nin:
            return None
        operands, out = list(instr.args), out[0]
        try:
            loop = fn.resolve_dtypes(tuple(_promotion_type(x) for x in operands) + (None,))
        except (TypeError, ValueError):
            return None
        loop_in, loop_out = loop[:fn.nin], loop[-1]
    elif instr.kind == "call" and fn is np.where and not instr.kwargs and len(instr.args) == 3 \
            and isinstance(instr.outs, np.ndarray):
        operands, out = list(instr.args), instr.outs
        loop_out = np.result_type(*operands[1:])  # Python numbers weak, as np.where promotes them
        loop_in = (np.dtype(bool), loop_out, loop_out)
    else:
        return None
    if not isinstance(out, np.ndarray) or any(not _operand_ok(x) for x in operands):
        return None
    if any(np.dtype(d) not in _TYPES for d in (*loop_in, loop_out, out.dtype)):
        return None
    return _Part(fn, operands, out, tuple(np.dtype(d) for d in loop_in), np.dtype(loop_out), instr.op, instr.site)


def _promotion_type(x):
    """What numpy promotes ``x`` as: an array's dtype, a numpy number's, or a Python number's type (weak)."""
    if isinstance(x, (np.ndarray, np.generic)):
        return x.dtype
    return np.dtype(bool) if isinstance(x, bool) else type(x)


def _operand_ok(x) -> bool:
    if isinstance(x, np.ndarray):
        return x.dtype in _TYPES
    if isinstance(x, np.generic):
        return x.dtype in _TYPES
    return type(x) in (bool, int, float)


# ----- runs -------------------------------------------------------------------------------------------

def _key(a: np.ndarray) -> tuple:
    """Two arrays with one key are the same elements of the same memory (one variable of the loop)."""
    return (a.__array_interface__["data"][0], a.shape, a.strides, a.dtype.str)


def _gapless(a: np.ndarray) -> bool:
    """Positive strides that tile one block of memory (some axis order)."""
    if a.size == 0:
        return True
    expected = a.itemsize
    for stride, size in sorted((st, n) for st, n in zip(a.strides, a.shape) if n > 1):
        if stride != expected:
            return False
        expected *= size
    return True


def _c_strides(shape, itemsize: int) -> tuple:
    strides, step = [], itemsize
    for n in reversed(shape):
        strides.append(step)
        step *= max(n, 1)
    return tuple(reversed(strides))


class _Run:
    """A run being collected: its shape and layout, its parts, and its arrays by key (with how each is
    indexed: "full", "scalar", ("suffix", period) or ("prefix", divisor))."""

    def __init__(self, part: _Part):
        out = part.out
        self.shape, self.strides = out.shape, out.strides
        self.c_order = out.strides == _c_strides(out.shape, out.itemsize) or out.size <= 1
        self.parts: list[_Part] = []
        self.arrays: dict = {}  # key -> (array, index kind)
        self.written: set = set()

    def index_of(self, a: np.ndarray):
        """How element ``i`` of the run reads ``a``, or None when no flat index serves."""
        if 0 in self.shape:  # no element: the loop never reads anything
            return "scalar"
        if a.shape == self.shape:
            if a.size <= 1:
                return "scalar"
            if a.strides == self.strides or self.c_order and a.strides == _c_strides(a.shape, a.itemsize):
                return "full"
            return None
        try:
            strides = np.broadcast_to(a, self.shape).strides
        except ValueError:
            return None
        sizes = self.shape
        if all(st == 0 or n == 1 for st, n in zip(strides, sizes)):
            return "scalar"
        if not self.c_order or not _gapless(a):
            return None
        moving = [d for d, (st, n) in enumerate(zip(strides, sizes)) if st != 0 and n > 1]
        first, last = moving[0], moving[-1]
        if any(strides[d] == 0 and sizes[d] > 1 for d in range(first, last + 1)):
            return None
        if all(strides[d] == 0 or sizes[d] == 1 for d in range(first)):  # a trailing block: i % period
            period = int(np.prod(sizes[first:]))
            c = _c_strides(sizes, a.itemsize)
            if all(strides[d] == c[d] for d in moving):
                return ("suffix", period)
        if any(sizes[d] > 1 for d in range(first)):  # broadcast on both sides: (1, n, 1) against (b, n, k)
            return None
        divisor = int(np.prod(sizes[last + 1:]))  # a leading block: i // divisor
        c = _c_strides(sizes[:last + 1], a.itemsize)
        if all(strides[d] == c[d] for d in moving):
            return ("prefix", divisor)
        return None

    def try_add(self, part: _Part) -> bool:
        out = part.out
        if out.shape != self.shape or self.index_of(out) != "full" and out.size > 1 or not _gapless(out):
            return False
        new: dict = {}
        for a in [x for x in part.operands if isinstance(x, np.ndarray)] + [out]:
            key = _key(a)
            if key in self.arrays or key in new:
                continue
            kind = self.index_of(a)
            if kind is None:
                return False
            new[key] = (a, kind)
        out_key = _key(out)
        if self.arrays.get(out_key, new.get(out_key, (None, "full")))[1] != "full" and out.size > 1:
            return False
        if not self._disjoint(new, out_key):
            return False
        self.arrays.update(new)
        self.written.add(out_key)
        self.parts.append(part)
        return True

    def _disjoint(self, new: dict, out_key) -> bool:
        """No two different views of overlapping memory where one of them is written in the run."""
        known = list(self.arrays.items())
        for key, (a, _) in new.items():
            for other_key, (b, _) in known:
                if (key == out_key or other_key in self.written) and np.may_share_memory(a, b):
                    return False
            known.append((key, (a, None)))
        out = self.arrays.get(out_key, new.get(out_key))[0]
        for key, (a, _) in list(self.arrays.items()):
            if key != out_key and np.may_share_memory(a, out):
                return False
        return True


def _runs(instrs: list[Instr], parts: list) -> list:
    """(first index, end index, run) of each run of at least MIN_RUN consecutive fusable calls."""
    runs, run, start = [], None, 0
    for i, part in enumerate(parts):
        if run is not None and part is not None and run.try_add(part):
            continue
        if run is not None and len(run.parts) >= MIN_RUN:
            runs.append((start, i, run))
        run, start = None, i
        if part is not None:
            run = _Run(part)
            if not run.try_add(part):
                run = None
    if run is not None and len(run.parts) >= MIN_RUN:
        runs.append((start, len(parts), run))
    return runs


def _touched_outside(instrs: list[Instr], runs: list) -> dict:
    """For each run (by its first index): the ids of the roots an instruction outside it reads or writes."""
    counts: dict = {}
    for instr in instrs:
        for r in set(map(id, instr.reads + instr.writes)):
            counts[r] = counts.get(r, 0) + 1
    result = {}
    for lo, hi, _run in runs:
        inside: dict = {}
        for instr in instrs[lo:hi]:
            for r in set(map(id, instr.reads + instr.writes)):
                inside[r] = inside.get(r, 0) + 1
        result[lo] = {r for r, n in counts.items() if n > inside.get(r, 0)}
    return result


# ----- code generation --------------------------------------------------------------------------------

def _fused_instr(run: _Run, created: set, live: set, outside: set, mode: str) -> Instr | None:
    def must_store(a):
        r = id(root(a))
        return r not in created or r in live or r in outside

    source, operands, described = _generate(run, must_store, mode)
    kernel = _kernel(source)
    if kernel is None:
        return None
    loads = [a for a, _kind, role in operands if "load" in role]
    stores = [a for a, _kind, role in operands if "store" in role]
    size = int(np.prod(run.shape))
    chain = FusedChain(kernel, source, size, [(kind, a.dtype) for a, kind, _ in operands], described, mode)
    instr = Instr.__new__(Instr)
    instr.kind, instr.fn, instr.args, instr.kwargs, instr.outs = "fused", chain, tuple(a for a, _, _ in operands), {}, None
    instr.reads = _unique_roots(loads)
    instr.writes = _unique_roots(stores)
    instr.op = f"fused ({_summary(run.parts)})"
    first, last = run.parts[0].site, run.parts[-1].site
    instr.site = first if first == last else f"{first} .. {last}"
    instr.expected = None
    instr.name = f"{len(run.parts)} ops"
    return instr


def _unique_roots(arrays) -> tuple:
    return tuple({id(root(a)): root(a) for a in arrays}.values())


def _summary(parts: list) -> str:
    counts: dict = {}
    for p in parts:
        counts[p.fn.__name__] = counts.get(p.fn.__name__, 0) + 1
    return ", ".join(f"{name} x{n}" if n > 1 else name for name, n in counts.items())


def _generate(run: _Run, must_store, mode: str):
    """The kernel's source, its operands (array, index kind, "load"/"store" roles) in slot order, and one
    readable line per fused call (``v3 = multiply(v1, a0)  # op @ site``)."""
    operand_of: dict = {}  # key -> operand number
    operands: list = []  # [array, index kind, roles]
    current: dict = {}  # key -> (value name, dtype, how explain() shows it)
    loads, body, described, values = [], [], [], [0]

    def operand(a):
        key = _key(a)
        if key not in operand_of:
            operand_of[key] = len(operands)
            operands.append([a, run.arrays[key][1], ""])
        return operand_of[key]

    def fresh():
        values[0] += 1
        return f"v{values[0]}"

    def value(x, dtype):
        """Operand ``x`` as a value of ``dtype``: (expression, whether it is a bare name, how it shows)."""
        if isinstance(x, np.ndarray):
            key = _key(x)
            if key not in current:
                k = operand(x)
                operands[k][2] += " load"
                name = fresh()
                loads.append(f"{name} = a{k}[{_index(k, operands[k][1])}]")
                current[key] = (name, x.dtype, f"a{k}")
            name, have, shown = current[key]
            return (name, True, shown) if have == dtype else (f"{_TYPES[dtype]}({name})", False, shown)
        return _literal(x, dtype), False, repr(x)

    for part in run.parts:
        names, shown = [], []
        for x, dtype in zip(part.operands, part.loop_in):
            expr, bare, text = value(x, dtype)
            if not bare:  # bind casts and literals once: an expression may use an operand twice
                name = fresh()
                body.append(f"{name} = {expr}")
                expr = name
            names.append(expr)
            shown.append(text)
        template = FAST_F32_OPS.get(part.fn) if mode == "fast" and part.loop_in[0] == np.float32 else None
        expr = (template or _OPS_OF[part.fn]).format(*names, t=_TYPES[part.loop_in[-1]])
        if part.out.dtype != part.loop_out:
            expr = f"{_TYPES[part.out.dtype]}({expr})"
        result = fresh()
        body.append(f"{result} = {expr}")
        current[_key(part.out)] = (result, part.out.dtype, result)
        described.append(f"{result} = {part.fn.__name__}({', '.join(shown)})  # {part.op} @ {part.site}")
    stores, stored = [], []
    for key, (name, _dtype, _shown) in current.items():
        a = run.arrays[key][0]
        loaded = key in operand_of and "load" in operands[operand_of[key]][2]
        if key in run.written and (must_store(a) or loaded):
            k = operand(a)
            operands[k][2] += " store"
            stores.append((k, name))
            stored.append(f"a{k} = {name}")
    described.append("stores " + ", ".join(stored))
    return _source(operands, loads, body, stores, mode), operands, described


_OPS_OF = {**EXACT_OPS, **FAST_OPS}


def _index(k: int, kind) -> str:
    if kind == "full":
        return "i"
    if kind == "scalar":
        return "0"
    return f"i % m{k}" if kind[0] == "suffix" else f"i // m{k}"


def _literal(x, dtype) -> str:
    value = float(x) if dtype.kind == "f" else bool(x)
    if dtype.kind == "f" and not np.isfinite(value):
        text = "np.nan" if value != value else ("np.inf" if value > 0 else "-np.inf")
    else:
        text = repr(value)
    return f"{_TYPES[dtype]}({text})"


def _source(operands: list, loads: list, body: list, stores: list, mode: str) -> str:
    """The kernel: its operands from the slot block, then one loop over the elements (every load first,
    then the arithmetic, then every store: fusion checked that no array written overlaps another one).

    Such a loop is not vectorised: LLVM cannot tell the run's many arrays apart, and checking them at run
    time costs more than it saves. Where the arithmetic is heavy (chainrule's exp and tanh, a long
    dependency chain per element) the loop is generated in blocks instead (:func:`_blocked_loop`)."""
    lines = ["import numpy as np", "from chainrule.compiler._fused_numba import KERNEL, carray, " +
             ", ".join(sorted(set(_POINTERS.values()) | set(_SCRATCH.values())))]
    used = sorted(name for name in ("_exp", "_tanh") if any(f"{name}(" in line for line in body))
    if used:
        lines.append(f"from chainrule.backend._numba import {', '.join(used)}")
    lines += ["", "", "@KERNEL", "def kernel(slots):", "    n = slots[0]"]
    slot = 1
    for k, (a, kind, _roles) in enumerate(operands):
        if kind == "full":
            size = "n"
        elif kind == "scalar":
            size = "1"
        else:
            lines.append(f"    m{k} = slots[{slot}]")
            slot += 1
            size = f"m{k}" if kind[0] == "suffix" else f"n // m{k}"
        lines.append(f"    a{k} = carray({_POINTERS[a.dtype]}(slots[{slot}]), ({size},))")
        slot += 1
    if any(line.count(call) for line in body for call in _VECTORISABLE_HEAVY):
        lines += _blocked_loop(operands, loads + body, stores)
    else:
        lines.append("    for i in range(n):")
        lines += ["        " + line for line in loads + body]
        lines += [f"        a{k}[{_index(k, operands[k][1])}] = {name}" for k, name in stores]
    return "\n".join(lines) + f"\n# fuse={mode}\n"


def _blocked_loop(operands: list, compute: list, stores: list) -> list:
    """The loop in blocks of BLOCK elements: the arithmetic stores each block into scratch blocks on the
    kernel's stack, which LLVM knows overlap none of the arrays read, so it vectorises that loop (several
    elements' dependency chains at once); then one copy loop per stored array. A run of cheap operations
    with many stores gets slower from the copies (bench/ANALYSIS.md, "Fusion"), hence only heavy runs."""
    lines = [f"    s{k} = carray({_SCRATCH[operands[k][0].dtype]}(), ({BLOCK},))" for k, _ in stores]
    lines += [f"    for start in range(0, n, {BLOCK}):",
              f"        stop = min({BLOCK}, n - start)",
              "        for j in range(stop):",
              "            i = start + j"]
    lines += ["            " + line for line in compute]
    lines += [f"            s{k}[j] = {name}" for k, name in stores]
    for k, _ in stores:
        lines += ["        for j in range(stop):", "            i = start + j",
                  f"            a{k}[{_index(k, operands[k][1])}] = s{k}[j]"]
    return lines


# ----- compiling and calling --------------------------------------------------------------------------

# Runs of at least this many elements release the GIL during the loop (as numpy and the backend kernels
# do for large arrays); shorter ones keep it, which makes the call about 35 ns cheaper.
GIL_FREE_SIZE = 1 << 14


class _Kernel:
    """A compiled loop: its module (which owns the machine code) and two ctypes entries to it, one that
    keeps the GIL and one that releases it."""

    def __init__(self, module):
        self.module = module
        address = module.kernel.address
        self.holding_gil = ctypes.PYFUNCTYPE(None, ctypes.c_void_p)(address)
        self.releasing_gil = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(address)


def _kernel(source: str) -> _Kernel | None:
    """The compiled loop for ``source`` (cached here and by numba on disk), or None when numba fails."""
    if source in _KERNELS:
        return _KERNELS[source]
    try:
        kernel = _Kernel(_import_source(source))
    except Exception as error:  # a numba typing or lowering failure: that run stays unfused
        _warn_once(f"compile: an elementwise run could not be fused ({type(error).__name__}: {error}); it runs "
                   "unfused")
        kernel = None
    _KERNELS[source] = kernel
    return kernel


def _import_source(source: str):
    """Write ``source`` to the cache folder under its hash and import it (numba caches a function's machine
    code by its file, so a later process finds it compiled)."""
    from chainrule.backend._prebuilt import _cache_dir

    digest = hashlib.sha256(source.encode()).hexdigest()[:20]
    folder = _cache_dir() / "fused"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"fused_{digest}.py"
    if not path.exists() or path.read_text() != source:
        from chainrule.backend._prebuilt import _write_atomically

        _write_atomically(path, source.encode())
    name = f"chainrule_fused_{digest}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # numba's cache finds the function's module by name
    spec.loader.exec_module(module)
    return module


def _warn_once(text: str) -> None:
    if text not in _WARNED:
        _WARNED.add(text)
        warnings.warn(text, RuntimeWarning, stacklevel=3)


class FusedChain:
    """The function of a fused instruction: the compiled loop, what it was generated from (``source``,
    ``parts``: one line per fused call) and how it indexes its operands. :meth:`step` makes the replayed
    call once the program's buffers are final: the entry with the address of one block of int64 slots
    (the run's size, then per operand its period or divisor when broadcast, and its address); with
    :meth:`bind`, the addresses of operands made per replay are written into the block at each call."""

    def __init__(self, kernel: _Kernel, source: str, size: int, operands: list, parts: list, mode: str):
        self.kernel, self.source, self.size, self.operands = kernel, source, size, operands
        self.parts, self.mode = parts, mode
        self.block = self.arrays = None

    def step(self, arrays: tuple):
        """The replayed call over ``arrays``, whose addresses are taken now."""
        entry, block, _ = self.bind(arrays)
        return entry, (block.__array_interface__["data"][0],)

    def bind(self, arrays: tuple, late=()):
        """The entry, its block of slots for ``arrays``, and where in the block the addresses of the operands
        numbered in ``late`` go (arrays made anew at each replay: the caller writes them before each call;
        their entries in ``arrays`` are not read here)."""
        slots, positions = [self.size], []
        for k, (a, (kind, dtype)) in enumerate(zip(arrays, self.operands)):
            if kind not in ("full", "scalar"):
                slots.append(kind[1])
            if k in late:
                positions.append(len(slots))
                slots.append(0)
                continue
            if type(a) is not np.ndarray or a.dtype != dtype:  # the addresses below must be of these arrays
                raise TypeError(f"fused kernel: an operand is now {type(a).__name__} {getattr(a, 'dtype', '')}")
            slots.append(a.__array_interface__["data"][0])
        self.block = np.array(slots, dtype=np.int64)
        self.arrays = tuple(a for k, a in enumerate(arrays) if k not in late)  # the memory the addresses point into
        entry = self.kernel.releasing_gil if self.size >= GIL_FREE_SIZE else self.kernel.holding_gil
        return entry, self.block, positions

    @property
    def __name__(self) -> str:
        return f"fused_{self.mode}"
