"""A captured step as a flat program: the tracer's instructions after constant folding and dead-code
elimination, each turned into one ``(function, arguments)`` pair that writes into a fixed buffer."""

from __future__ import annotations

import functools

import numpy as np

from chainrule.compiler import fusion
from chainrule.compiler.tracer import GuardMiss, Instr, _arrays_in, _copy_into, root
from chainrule.tensor import STATE_EPOCH


class Program:
    """``steps``: the replayed calls in order. ``externals``: the roots of state and input arrays,
    which the program reads live. ``internal``: the buffers it computes (poisoned by verification)."""

    def __init__(self, instrs: list[Instr], created: set, live_roots: list, names: dict, fuse: str | None = None):
        self.source_count = len(instrs)
        self.names = names
        folded, constants = _fold_constants(instrs, created)
        kept = _merge_gradient_sets(_eliminate_dead(folded, created, live_roots))
        # Fused, the elementwise runs are fusion's, which gives their intermediates no memory.
        pinned = _ids(constants) | _ids(live_roots)
        adopted = _adoptable(kept, created, pinned)
        if not fuse:
            kept, adopted = _cheaper_adoption(kept, created, pinned, adopted)
        if fuse:  # before planning: a buffer only a fused run uses then gets no memory at all
            kept = fusion.fuse(kept, created, _ids(live_roots), set(adopted), fuse)
        self.fused = sum(instr.kind == "fused" for instr in kept)
        self.guard_safety = _guard_safety(kept, created)
        self.unplanned_bytes = sum(b.nbytes for b in _internal_buffers(kept, created, constants))
        kept, planned = _plan_buffers(kept, created, _ids(constants), _ids(live_roots) | set(adopted))
        self.constants = constants
        self.internal = planned + [b for b in _internal_buffers(kept, created, constants) if id(b) not in adopted]
        self.instrs, self.steps = _steps_with_slots(kept, adopted)

    def run(self) -> None:
        # A loop over (fn, args) pairs: generated straight-line code with everything bound as default
        # arguments measured 11% slower here (the frame copies ~1,600 defaults on every call).
        for fn, args in self.steps:
            fn(*args)

    def poison(self) -> None:
        """Fill every buffer the program computes with values no correct program leaves in place (NaN,
        or the bitwise complement), so a buffer that is read before the program writes it shows."""
        for buf in self.internal:
            if buf.dtype.kind in "fc":
                buf.fill(np.nan)
            elif buf.dtype.kind in "iub":
                np.invert(buf, out=buf)

    @property
    def nbytes(self) -> int:
        return sum(b.nbytes for b in self.internal) + sum(b.nbytes for b in self.constants)

    def source(self) -> str:
        """The program as readable Python, one line per instruction, attributed to its op and user line."""
        lines = []
        for instr in self.instrs:
            lines.append(f"{_describe(instr, self.names):<72}  # {instr.op} @ {instr.site}")
            if instr.kind == "fused":
                lines.extend(f"    | {part}" for part in instr.fn.parts)
        return "\n".join(lines)


def _ids(arrays) -> set:
    return {id(a) for a in arrays}


def _fold_constants(instrs: list[Instr], created: set) -> tuple[list, list]:
    """Drop creations nothing else writes and calls computed only from such constants: their buffers
    keep the capture's values. Arrays the program did not make are never folded (they are read live)."""
    writers: dict = {}
    for instr in instrs:
        for w in instr.writes:
            writers[id(w)] = writers.get(id(w), 0) + 1
    const: set = set()
    constants: list = []
    kept = []
    for instr in instrs:
        writes = instr.writes
        only_writer = writes and all(id(w) in created and writers[id(w)] == 1 for w in writes)
        if instr.kind == "fill" and only_writer:
            const.update(_ids(writes))
            constants.extend(writes)
            continue
        if instr.kind in ("ufunc", "call") and instr.reads and only_writer \
                and all(id(r) in const for r in instr.reads):
            const.update(_ids(writes))
            constants.extend(writes)
            continue
        kept.append(instr)
    return kept, constants


_EFFECTS = ("guard", "rng", "host", "grad")


def _eliminate_dead(instrs: list[Instr], created: set, live_roots: list) -> list:
    """Keep the instructions whose writes someone reads later, or that touch state, or have effects."""
    live = _ids(live_roots)
    for instr in instrs:  # everything the program did not make is state (or live foreign memory)
        live.update(id(a) for a in instr.reads + instr.writes if id(a) not in created)
        if instr.kind == "grad":  # a buffer handed out as .grad is seen after the program, whatever the order
            live.update(_ids(instr.reads))
    kept = []
    for instr in reversed(instrs):
        if instr.kind in _EFFECTS or any(id(w) in live for w in instr.writes):
            kept.append(instr)
            live.update(_ids(instr.reads))
    kept.reverse()
    return kept


def _plan_buffers(instrs: list[Instr], created: set, constant_ids: set, pinned_ids: set) -> tuple[list, list]:
    """Liveness planning: each buffer the program computes lives from the instruction that first touches
    it to the last; buffers whose lives do not overlap share memory, at offsets of one arena
    (:func:`_pack`; a best-fit reuse of whole buffers left gpt's program 20% larger). Every view of a
    moved buffer is rebuilt on its new memory. Buffers something outside the instruction arguments holds
    (outputs, gradients handed to ``.grad``, guards' re-reads, constants) keep their own memory.
    Returns the rewritten instructions and the new shared buffers (one arena)."""
    first, last, roots, movable = _lives(instrs, created, constant_ids | pinned_ids)
    if not movable:
        return instrs, []
    offsets = _pack(movable, first, last, {k: roots[k].nbytes for k in movable})
    arena = _aligned_bytes(max(offsets[k] + roots[k].nbytes for k in movable) or 1)
    home = {k: (arena, offsets[k]) for k in movable}
    memo: dict = {}
    rewritten = []
    for instr in instrs:
        if instr.kind not in ("guard", "grad", "host"):
            instr = _copy_instr(instr)
            instr.args = _moved(instr.args, home, memo)
            instr.kwargs = _moved(instr.kwargs, home, memo)
            instr.outs = _moved(instr.outs, home, memo)
            instr.reads = _moved_roots(instr.reads, home)
            instr.writes = _moved_roots(instr.writes, home)
        rewritten.append(instr)
    return rewritten, [arena]


def _lives(instrs: list[Instr], created: set, pinned_ids: set) -> tuple:
    """first and last instruction index touching each root (id -> index), the roots (id -> array), and
    the ids of the roots the arena may hold (made by the program, held by nothing outside it)."""
    first, last, roots = {}, {}, {}
    pinned = set(pinned_ids)
    for i, instr in enumerate(instrs):
        if instr.kind in ("guard", "grad", "host"):
            pinned.update(_ids(instr.reads) | _ids(instr.writes))
            continue
        for arr in _arrays_in((instr.args, instr.kwargs, instr.outs), []):
            r = root(arr)
            roots[id(r)] = r
            first.setdefault(id(r), i)
            last[id(r)] = i
    return first, last, roots, [k for k in roots if k in created and k not in pinned]


def _footprint(instrs: list[Instr], created: set, pinned_ids: set, adopted: dict) -> int:
    """Bytes a plan needs at its peak: the arena (packed by liveness) plus the most adopted results alive
    at once (each from the instruction that makes it to its last use). The arena is held all the time,
    adopted results only while alive, so the two peaks add up."""
    first, last, roots, movable = _lives(instrs, created, pinned_ids | set(adopted))
    sizes = {k: roots[k].nbytes for k in movable}
    offsets = _pack(movable, first, last, sizes)
    arena = max((offsets[k] + -(-max(sizes[k], 1) // ALIGN) * ALIGN for k in movable), default=0)
    alive = [0] * (len(instrs) + 1)
    for k in adopted:
        if k in first:
            alive[first[k]] += roots[k].nbytes
            alive[last[k] + 1] -= roots[k].nbytes
    most = running = 0
    for change in alive:
        running += change
        most = max(most, running)
    return arena + most


ALIGN = 64  # bytes: each planned buffer starts on a cache line


def _aligned_bytes(n: int, alignment: int = 4096):
    """``n`` bytes starting on a page (numpy's own allocations are only 16-byte aligned)."""
    raw = np.empty(n + alignment, dtype=np.uint8)
    start = -raw.__array_interface__["data"][0] % alignment
    return raw[start:start + n]


def _pack(keys: list, first: dict, last: dict, sizes: dict) -> dict:
    """Offsets in one arena for buffers with lives [first, last] (instruction indices): the largest are
    placed first, each at the lowest offset where it overlaps no buffer alive at the same time (the
    arena then needs about what the most memory alive at once needs, as eager's peak)."""
    placed: list = []  # (offset, end, first, last)
    offsets = {}
    for k in sorted(keys, key=lambda k: (-sizes[k], first[k])):
        size = -(-max(sizes[k], 1) // ALIGN) * ALIGN
        f, l = first[k], last[k]
        offset = 0
        for o, e in sorted((o, e) for o, e, f2, l2 in placed if f2 <= l and f <= l2):
            if offset + size <= o:
                break
            offset = max(offset, e)
        placed.append((offset, offset + size, f, l))
        offsets[k] = offset
    return offsets


def _moved_roots(roots: tuple, home: dict) -> tuple:
    moved = (home[id(r)][0] if id(r) in home else r for r in roots)
    return tuple(dict((id(r), r) for r in moved).values())


def _moved(x, home: dict, memo: dict):
    """``x`` with every array whose root moved rebuilt as the same view of its new memory (lists and
    tuples rebuilt once each, so that one list shared by two instructions stays shared)."""
    if isinstance(x, np.ndarray):
        r = root(x)
        place = home.get(id(r))
        if place is None:
            return x
        if id(x) not in memo:
            buf, base = place
            offset = base + x.__array_interface__["data"][0] - r.__array_interface__["data"][0]
            memo[id(x)] = (np.ndarray(x.shape, x.dtype, buffer=buf, offset=offset, strides=x.strides), x)
        return memo[id(x)][0]
    if type(x) in (list, tuple):
        if id(x) not in memo:
            memo[id(x)] = (type(x)(_moved(v, home, memo) for v in x), x)
        return memo[id(x)][0]
    if type(x) is dict:
        return {k: _moved(v, home, memo) for k, v in x.items()}
    return x


def _internal_buffers(instrs: list[Instr], created: set, constants: list) -> list:
    constant_ids = _ids(constants)
    seen: dict = {}
    for instr in instrs:
        for w in instr.writes:
            if id(w) in created and id(w) not in constant_ids:
                seen[id(w)] = w
    return list(seen.values())


def _guard_safety(instrs: list[Instr], created: set) -> tuple:
    """What a replay must save to undo itself when a guard turns out false: the state arrays written
    before the last guard, whether the generator moved before it, and whether a host call (which
    cannot be undone) ran before it (then the program is not safe to abandon: None)."""
    last = max((i for i, instr in enumerate(instrs) if instr.kind == "guard"), default=0)
    written: dict = {}
    rng = False
    grads: dict = {}
    for instr in instrs[:last]:
        if instr.kind == "host":
            return None
        rng = rng or instr.kind == "rng"
        if instr.kind == "grad":
            grads.update((id(t), t) for t, _, _ in instr.expected)
        for w in instr.writes:
            if id(w) not in created:
                written[id(w)] = w
    return list(written.values()), rng, list(grads.values())


def _merge_gradient_sets(instrs: list[Instr]) -> list[Instr]:
    """Drop ``t.grad = ...`` when a later one replaces it before any host call could read it (zero_grad's
    ``None`` before backward's buffer), and make each run of consecutive ones a single instruction."""
    replaced: set = set()
    kept = []
    for instr in reversed(instrs):
        if instr.kind == "host":
            replaced.clear()
        elif instr.kind == "grad":
            t = instr.expected[0]
            if id(t) in replaced:
                continue
            replaced.add(id(t))
        kept.append(instr)
    kept.reverse()
    merged: list[Instr] = []
    for instr in kept:
        if instr.kind != "grad":
            merged.append(instr)
            continue
        pairs = [instr.expected]
        if merged and merged[-1].kind == "grad":
            last = merged.pop()
            pairs = list(last.expected) + pairs
            last.reads = last.reads + instr.reads
            instr = last
        else:
            instr = _copy_instr(instr)
        instr.expected = pairs
        instr.fn = _set_gradients(tuple(pairs))
        instr.name = f"{len(pairs)} gradient(s) set"
        merged.append(instr)
    return merged


def _copy_instr(instr: Instr) -> Instr:
    new = Instr.__new__(Instr)
    for name in Instr.__slots__:
        setattr(new, name, getattr(instr, name))
    return new


class GradSetter:
    """``t.grad = value`` at replay, for a state tensor (the capture makes one per gradient it sees set).
    A run of them is set in one loop over (tensor, value) pairs, not one call each."""

    __slots__ = ("tensor", "value")

    def __init__(self, t, value):
        self.tensor, self.value = t, value

    def __call__(self) -> None:
        self.tensor.grad = self.value


def _set_gradients(pairs: tuple):
    """One function setting a run of gradients: state tensors' through a prebuilt (tensor, value) list
    in one loop (134 setter calls cost the overhead chain 7 us a step), arguments' through their setters
    (they look up the tensor passed at this replay). Each tensor appears once in a run: order is free."""
    plain = tuple((s.tensor, s.value) for _, _, s in pairs if type(s) is GradSetter)
    others = tuple(s for _, _, s in pairs if type(s) is not GradSetter)

    def run():
        for t, value in plain:
            t._grad = value
        STATE_EPOCH[0] += 1  # once for the run, as each ``.grad =`` would
        for setter in others:
            setter()
    return run


_OUT_BY_KEYWORD = {np.maximum, np.minimum}  # numpy deprecates their positional out


def _step(instr: Instr):
    kind, fn, args, kwargs = instr.kind, instr.fn, instr.args, instr.kwargs
    if kind == "ufunc":
        out = kwargs.get("out")
        if isinstance(fn, np.ufunc) and set(kwargs) == {"out"} and len(out) == 1 and fn not in _OUT_BY_KEYWORD:
            return fn, tuple(args) + (out[0],)  # positional out: the cheapest call numpy has
        return (functools.partial(fn, **kwargs) if kwargs else fn), tuple(args)
    if kind == "call":
        call = functools.partial(fn, **kwargs) if kwargs else fn
        if instr.outs is None:
            return call, tuple(args)
        return _copying(call, tuple(args), instr.outs, f"{instr.name} at {instr.site}"), ()
    if kind == "guard":
        return _guard(fn, instr.expected, f"{instr.name} in {instr.op} at {instr.site}"), ()
    if kind == "fused":  # the buffers are final now: the kernel gets their addresses
        return fn.step(tuple(args))
    return fn, tuple(args)  # fill, rng, host, grad: closures made by the capture


ADOPT_BYTES = 64 * 1024  # fresh results of calls this large are taken as they come, not copied


def _adoptable(instrs: list[Instr], created: set, pinned: set, ufuncs: bool = False) -> dict:
    """The large fresh results of ``call`` instructions (backend kernels: convolution, pooling, ...) that
    only instruction arguments refer to: the replay takes the array the call returns, as eager does,
    instead of copying it into a fixed buffer (which costs a pass over it and keeps the memory between
    steps). With ``ufuncs``, also what plain ufunc calls write into a buffer first made by them (the
    replay calls them without ``out=``). Returns id(root) -> the array a slot holds."""
    pinned = set(pinned)
    for instr in instrs:
        if instr.kind in ("guard", "grad", "host"):
            pinned.update(_ids(instr.reads) | _ids(instr.writes))
    seen: set = set()
    adopted: dict = {}
    for instr in instrs:
        fresh = _arrays_in(instr.outs, []) if instr.kind == "call" and instr.outs is not None else \
            [_ufunc_out(instr)] if ufuncs and _ufunc_out(instr) is not None else []
        if fresh:
            by_root: dict = {}
            for a in fresh:
                by_root.setdefault(id(root(a)), []).append(a)
            for key, views in by_root.items():
                r = root(views[0])
                if key in created and key not in pinned and key not in seen and r.nbytes >= ADOPT_BYTES:
                    held = _held_array(views, r)
                    if held is not None:
                        adopted[key] = held
        for a in _arrays_in((instr.args, instr.kwargs, instr.outs), []):
            seen.add(id(root(a)))
    return adopted


def _ufunc_out(instr: Instr):
    """The one output array of a plain ufunc call ``fn(*args, out=(buffer,))`` whose arguments do not
    share its memory, else None."""
    if instr.kind != "ufunc" or not isinstance(instr.fn, np.ufunc) or set(instr.kwargs) != {"out"}:
        return None
    out = instr.kwargs["out"]
    if len(out) != 1 or type(out[0]) is not np.ndarray:
        return None
    block = root(out[0])
    if any(isinstance(a, np.ndarray) and root(a) is block for a in instr.args):
        return None
    return out[0]


def _cheaper_adoption(instrs: list[Instr], created: set, pinned: set, adopted: dict) -> tuple[list, dict]:
    """Large ufunc results adopted too (the replay calls the ufunc without ``out=`` and drops the result
    after its last use, as eager does) where that plan's :func:`_footprint` is the smaller: it empties
    the arena (mlp, cnn), but where the arena's peak and the adopted results' peak fall together it
    adds them up (gpt: 82 MiB against 78)."""
    wider = _adoptable(instrs, created, pinned, ufuncs=True)
    if len(wider) == len(adopted):
        return instrs, adopted
    fresh = _fresh_ufuncs(instrs, wider)
    if _footprint(fresh, created, pinned, wider) <= FRESH_TOLERANCE * _footprint(instrs, created, pinned, adopted):
        return fresh, wider
    return instrs, adopted


# The footprint leaves out what host calls (optimizer steps) allocate, when the arena is still held and
# adopted results are gone: a plan with a smaller arena is taken even when its footprint is up to 2%
# larger (mlp: 1.012 against 1.005 MiB, and its step's peak is in SGD's update).
FRESH_TOLERANCE = 1.02


def _fresh_ufuncs(instrs: list[Instr], adopted: dict) -> list[Instr]:
    """Each ufunc call that makes an adopted buffer (the first instruction touching it) rewritten to be
    called without ``out=``, its result taken as it comes (``outs``)."""
    seen: set = set()
    rewritten = []
    for instr in instrs:
        out = _ufunc_out(instr)
        if out is not None and id(root(out)) in adopted and id(root(out)) not in seen:
            instr = _copy_instr(instr)
            instr.outs, instr.kwargs = out, {}
        rewritten.append(instr)
        seen.update(id(root(a)) for a in _arrays_in((instr.args, instr.kwargs, instr.outs), []))
    return rewritten


def _held_array(views: list, block):
    """What the slot of an adopted result holds, given the call's results that are views of ``block``:
    the one result that covers it all (``block`` itself, or a transposed view of it: channel-major
    results), or ``block`` when the results are parts of it (the chunks of convolution's im2col
    columns); None when neither."""
    if len(views) == 1 and views[0].nbytes == block.nbytes and _dense(views[0]):
        return views[0]
    if all(v is not block and v.nbytes < block.nbytes for v in views) and _dense(block):
        return block
    return None


def _dense(a) -> bool:
    """Whether ``a`` fills one block of memory from its first element on (some axis order, positive
    strides): its views can then be rebuilt from its flat run."""
    flat = a.ravel(order="K")
    return all(st > 0 for st in a.strides) and np.shares_memory(flat, a) \
        and flat.__array_interface__["data"][0] == a.__array_interface__["data"][0]


class _Slot:
    """Where an adopted result lives during a replay (None between its last use and the next replay)."""

    __slots__ = ("value", "flat", "shape", "dtype", "strides", "array")

    def __init__(self, array):
        self.value = self.flat = None
        self.array = array  # the capture's result: views are placed relative to it
        self.shape, self.dtype, self.strides = array.shape, array.dtype, array.strides

    def take(self, array) -> None:
        self.value = array
        self.flat = array.ravel(order="K")  # its memory as one run (a view: adopted arrays are dense)

    def clear(self) -> None:
        self.value = self.flat = None


class _SlotView:
    """A view (offset, shape, strides, dtype) of the array in a slot, rebuilt at each use."""

    __slots__ = ("slot", "offset", "shape", "dtype", "strides", "whole")

    def __init__(self, slot: _Slot, view, base):
        self.slot = slot
        self.offset = view.__array_interface__["data"][0] - base.__array_interface__["data"][0]
        self.shape, self.dtype, self.strides = view.shape, view.dtype, view.strides
        self.whole = view is base

    def get(self):
        if self.whole:
            return self.slot.value
        return np.ndarray(self.shape, self.dtype, buffer=self.slot.flat, offset=self.offset, strides=self.strides)

    def __repr__(self) -> str:
        return f"<result{list(self.shape)}>"


def _templated(x, slots: dict, memo: dict):
    """``x`` with every view of an adopted array replaced by a :class:`_SlotView`."""
    if isinstance(x, np.ndarray):
        r = root(x)
        slot = slots.get(id(r))
        if slot is None:
            return x
        if id(x) not in memo:
            memo[id(x)] = (_SlotView(slot, x, slot.array), x)
        return memo[id(x)][0]
    if type(x) in (list, tuple):
        return type(x)(_templated(v, slots, memo) for v in x)
    if type(x) is dict:
        return {k: _templated(v, slots, memo) for k, v in x.items()}
    return x


def _has_slots(x) -> bool:
    if type(x) is _SlotView:
        return True
    if type(x) in (list, tuple):
        return any(_has_slots(v) for v in x)
    if type(x) is dict:
        return any(_has_slots(v) for v in x.values())
    return False


def _resolved(x):
    if type(x) is _SlotView:
        return x.get()
    if type(x) in (list, tuple):
        return type(x)(_resolved(v) for v in x)
    if type(x) is dict:
        return {k: _resolved(v) for k, v in x.items()}
    return x


def _steps_with_slots(instrs: list[Instr], adopted: dict) -> tuple[list, list]:
    """The steps, with adopted results passed through slots, and each slot emptied after its last use
    (so the memory goes when eager's would). Instructions keep slot views for ``explain()``."""
    if not adopted:
        return instrs, [_step(i) for i in instrs]
    slots = {k: _Slot(a) for k, a in adopted.items()}
    memo: dict = {}
    last_use: dict = {}
    templated = []
    for i, instr in enumerate(instrs):
        if instr.kind in ("ufunc", "call", "fill", "rng"):
            t = _copy_instr(instr)
            t.args, t.kwargs, t.outs = (_templated(x, slots, memo) for x in (instr.args, instr.kwargs, instr.outs))
            for a in _arrays_in((instr.args, instr.kwargs, instr.outs), []):
                if id(root(a)) in slots:
                    last_use[id(root(a))] = i
            instr = t
        templated.append(instr)
    steps = []
    releases: dict = {}
    for key, i in last_use.items():
        releases.setdefault(i, []).append(slots[key])
    for i, instr in enumerate(templated):
        if _has_slots((instr.args, instr.kwargs, instr.outs)):
            steps.append((_slotted(instr), ()))
        else:
            steps.append(_step(instr))
        for slot in releases.get(i, ()):
            steps.append((slot.clear, ()))
    for slot in slots.values():
        slot.array = None  # the capture's result: only needed to place the views
    return templated, steps


def _slotted(instr: Instr):
    fn, args, kwargs, outs = instr.fn, instr.args, instr.kwargs, instr.outs
    where = f"{instr.name} at {instr.site}"

    def run():
        result = fn(*_resolved(args), **_resolved(kwargs))
        if outs is not None:
            _adopt_into(result, outs, where)
    return run


def _adopt_into(result, outs, where: str) -> None:
    """As :func:`_copy_into`, except that an adopted result is taken into its slot as it is."""
    if type(outs) is _SlotView:
        if outs.whole:
            _take(outs.slot, result, where)
        else:
            _take_part(outs, result, where)
        return
    if isinstance(outs, (list, tuple)) and _has_slots(outs):
        if not isinstance(result, (tuple, list)) or len(result) != len(outs):
            raise GuardMiss(f"a result changed structure at {where}")
        for r, o in zip(result, outs):
            _adopt_into(r, o, where)
        return
    _copy_into(result, _resolved(outs), where)


def _take(slot: _Slot, array, where: str) -> None:
    if not isinstance(array, np.ndarray) or array.shape != slot.shape or array.dtype != slot.dtype \
            or array.strides != slot.strides:
        raise GuardMiss(f"a result changed shape or layout at {where}")
    slot.take(array)


def _take_part(view: _SlotView, result, where: str) -> None:
    """A result that is a part of a fresh block (one of several the call returns): the slot takes the
    block (once), and the part must lie where the capture's did."""
    block = root(result) if isinstance(result, np.ndarray) else None
    if block is None or result.shape != view.shape or result.dtype != view.dtype or result.strides != view.strides \
            or result.__array_interface__["data"][0] - block.__array_interface__["data"][0] != view.offset:
        raise GuardMiss(f"a result changed shape or layout at {where}")
    if view.slot.value is not block:
        _take(view.slot, block, where)


def _copying(call, args, outs, where):
    def run():
        _copy_into(call(*args), outs, where)
    return run


def _guard(reread, expected, where):
    def check():
        if reread() != expected:
            raise GuardMiss(f"a value the capture read changed ({where}: it was {expected!r})")
    return check


def _describe(instr: Instr, names: dict) -> str:
    def name(x):
        if isinstance(x, np.ndarray):
            r = root(x)
            label = names.get(id(r))
            if label is None:
                label = names[id(r)] = f"t{len(names)}"
            return label if x is r else f"{label}<view {x.shape}>"
        if type(x) in (tuple, list):
            return "(" + ", ".join(name(v) for v in x) + ")"
        text = repr(x)
        return text if len(text) < 40 else text[:37] + "..."

    fn = getattr(instr.fn, "__name__", None) or type(instr.fn).__name__
    args = ", ".join([name(a) for a in instr.args] + [f"{k}={name(v)}" for k, v in instr.kwargs.items()])
    if instr.kind == "guard":
        return f"guard {instr.name} == {instr.expected!r}"
    if instr.kind in ("host", "grad", "rng", "fill"):
        return f"{instr.kind} {instr.name}"
    if instr.kind == "fused":
        operands = ", ".join(f"a{k}={name(a)}" for k, a in enumerate(instr.args))
        return f"{instr.fn.__name__}[{instr.name}]({operands})"
    result = f"{name(instr.outs)} = " if instr.outs is not None else ""
    return f"{result}np.{fn}({args})" if isinstance(instr.fn, np.ufunc) else f"{result}{fn}({args})"
