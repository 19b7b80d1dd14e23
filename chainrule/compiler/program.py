"""A captured step as a flat program: the tracer's instructions after constant folding and dead-code
elimination, each turned into one ``(function, arguments)`` pair that writes into a fixed buffer."""

from __future__ import annotations

import functools

import numpy as np

from chainrule.compiler import fusion
from chainrule.compiler.tracer import GuardMiss, Instr, _arrays_in, _copy_into, root
from chainrule.tensor import STATE_EPOCH, wrap


class Program:
    """``steps``: the replayed calls in order. ``internal``: the buffers it keeps between replays (poisoned by
    verification; buffers made per replay are poisoned as they are made). State arrays are read live."""

    def __init__(self, instrs: list[Instr], created: set, outputs: list, inputs: list, names: dict,
                 fuse: str | None = None, entry_grads: dict | None = None, handed_out: list = ()):
        """``outputs``: the roots of the result's arrays; ``inputs``: the buffers the arguments were copied
        into for the capture; ``entry_grads``: id -> (tensor, array), for the gradient arrays the state
        tensors held when the step was captured (a step that adds to them). Such gradients are read from
        ``.grad`` and arguments the program only reads are used in place, each replay
        (``bound_inputs``: id of the buffer -> its slot, which the replay fills). ``handed_out``: the output
        roots the result holds whole; large ones are made per replay too and kept in their slots to the end
        (``output_slots``: id -> slot), for the result to take as they are instead of copying them."""
        self.source_count = len(instrs)
        live_roots = outputs + inputs
        self.names = names
        folded, constants = _fold_constants(instrs, created, PER_REPLAY_BYTES)
        kept = _sink_gradient_sets(_hoist_guards(_eliminate_dead(folded, created, live_roots)))
        held = _held_outside(kept)
        pinned = _ids(constants) | (_ids(live_roots) - _ids(handed_out)) | held
        kept = _merge_gradient_sets(kept, set(_per_replay_roots(kept, created, pinned)))
        if fuse:  # before planning: a buffer only a fused run uses then gets no memory at all
            kept = fusion.fuse(kept, created, _ids(live_roots), fuse)
        # Every buffer of PER_REPLAY_BYTES or more is made when first written and dropped after its last
        # use, each replay, as eager does (gradients handed to .grad); smaller ones share one arena.
        fresh = _per_replay_roots(kept, created, pinned)
        adopted = _adoptable(kept, created, pinned)
        kept = _fresh_ufuncs(kept, adopted)
        allocated = {k: r for k, r in fresh.items() if k not in adopted}
        self.bound_grads, self.bound_inputs = _read_in_place(kept, entry_grads or {}, inputs, _ids(outputs) | held)
        self.fused = sum(instr.kind == "fused" for instr in kept)
        self.guard_safety = _guard_safety(kept, created, self.bound_grads)
        per_replay = set(adopted) | set(allocated)
        self.per_replay = len(per_replay)
        self.unplanned_bytes = sum(b.nbytes for b in _internal_buffers(kept, created, constants))
        kept, planned = _plan_buffers(kept, created, _ids(constants), _ids(live_roots) | per_replay)
        self.constants = constants
        self.internal = planned + [b for b in _internal_buffers(kept, created, constants) if id(b) not in per_replay]
        self._poisoning = [False]  # whether buffers made at replay are poisoned too (verification)
        kept_to_end = _ids(handed_out) & per_replay
        self.instrs, self.steps, self.starts, slots = _steps_with_slots(
            kept, adopted, allocated, self.bound_grads, self.bound_inputs, self._poisoning, kept_to_end)
        self.slots = list(slots.values())
        self.output_slots = {k: slots[k] for k in kept_to_end if k in slots}
        self._splits: dict = {}
        self.input_ids = _ids(inputs)
        for k, slot in self.bound_inputs.items():  # explain() names an argument read in place as its buffer was
            if k in names:
                names[id(slot)] = names[k]

    def run(self) -> None:
        # A loop over (fn, args) pairs: generated straight-line code with everything bound as default
        # arguments measured 11% slower here (the frame copies ~1,600 defaults on every call).
        for fn, args in self.steps:
            fn(*args)

    def split(self, name: str) -> tuple | None:
        """Where a replay can stop and resume later: at the mark ``name`` (:func:`tracer.mark`; a compiled
        module's forward ends there). Returns the index into ``steps``, what the two halves share (slots,
        buffers), whether a guard comes after that point and whether the generator draws before it; None
        when there is no such mark, or when a host call or a write of state comes after it (the second
        half must be free to redo)."""
        if name not in self._splits:
            self._splits[name] = _split(self, name)
        return self._splits[name]

    def run_steps(self, start: int, stop: int | None = None) -> None:
        for fn, args in self.steps[start:stop]:
            fn(*args)

    def poison(self, on: bool = True) -> None:
        """Fill every buffer the program computes with values no correct program leaves in place (NaN,
        or the bitwise complement), so a buffer that is read before the program writes it shows; buffers
        made at replay are poisoned as they are made, until ``poison(False)``."""
        self._poisoning[0] = on
        if on:
            for buf in self.internal:
                _poison(buf)

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


def _split(program: Program, name: str) -> tuple | None:
    instrs = program.instrs
    touched = [_touched(instr) for instr in instrs]
    first = next((i for i, instr in enumerate(instrs) if instr.kind == "mark" and instr.name == name), None)
    owned = {id(root(b)) for b in program.internal} | program.input_ids  # (state is read live, never saved)
    if first is None or any(instr.kind == "host" or any(id(root(w)) not in owned for w in instr.writes)
                            for instr in instrs[first:]):
        return None
    before = set().union(*touched[:first]) if first else set()
    after = set().union(*touched[first:])
    shared = before & after
    slots = [slot for slot in program.slots if id(slot) in shared]
    buffers = [a for instr in instrs for a in _arrays_in((instr.args, instr.kwargs, instr.outs), [])]
    shared_buffers = list({id(root(a)): root(a) for a in buffers if id(root(a)) in shared & owned}.values())
    checked_after = any(instr.kind == "guard" for instr in instrs[first:])
    draws_before = any(instr.kind == "rng" for instr in instrs[:first])
    return program.starts[first], slots, shared_buffers, checked_after, draws_before


def _touched(instr: Instr) -> set:
    """The ids of the roots and slots an instruction's call touches."""
    found: set = set()

    def walk(x):
        if isinstance(x, np.ndarray):
            found.add(id(root(x)))
        elif type(x) is _SlotView:
            found.add(id(x.slot))
        elif type(x) in (list, tuple):
            for v in x:
                walk(v)
        elif type(x) is dict:
            for v in x.values():
                walk(v)

    walk((instr.args, instr.kwargs, instr.outs))
    if instr.kind == "grad":
        found.update(id(r) for r in instr.reads)
    return found


def _ids(arrays) -> set:
    return {id(a) for a in arrays}


def _poison(buf) -> None:
    if buf.dtype.kind in "fc":
        buf.fill(np.nan)
    elif buf.dtype.kind in "iub":
        np.invert(buf, out=buf)


def _held_outside(instrs: list[Instr]) -> set:
    """Roots something besides the replayed calls holds: what guards re-read and host calls touch, and
    gradients handed to a closure (an argument's ``.grad``) rather than set from the program."""
    held: set = set()
    for instr in instrs:
        if instr.kind in ("guard", "host"):
            held.update(_ids(instr.reads) | _ids(instr.writes))
        elif instr.kind == "grad" and any(type(s) is not GradSetter for _, _, s in _pairs(instr)):
            held.update(_ids(instr.reads))
    return held


def _read_in_place(instrs: list[Instr], entry_grads: dict, inputs: list, held: set) -> tuple[dict, dict]:
    """What a replay reads where it finds it instead of from the capture's arrays: the gradients a
    step adds to, from ``.grad`` (id -> (tensor, array)), and the arguments of PER_REPLAY_BYTES or more it
    only reads (id of the buffer -> its slot, filled by the replay; a smaller one is cheaper to copy than
    to pass through a slot). Each must be dense, touched by a replayed call, and not ``held`` by anything
    else (a guard's re-read, an output)."""
    touched = {id(root(a)) for instr in instrs for a in _arrays_in((instr.args, instr.kwargs, instr.outs), [])}
    written = {id(w) for instr in instrs for w in instr.writes}
    grads = {k: (t, a) for k, (t, a) in entry_grads.items() if k in touched and k not in held and _dense(a)}
    arguments = {id(b): _Slot(b) for b in inputs if b.nbytes >= PER_REPLAY_BYTES and id(b) in touched
                 and id(b) not in written and id(b) not in held and _dense(b)}
    return grads, arguments


PER_REPLAY_BYTES = 4096  # buffers this large are made each replay (smaller ones share one arena)


def _per_replay_roots(instrs: list[Instr], created: set, pinned: set) -> dict:
    """The buffers a replay makes as it goes (id -> the capture's array): those the program
    makes, of PER_REPLAY_BYTES or more, dense (their views are rebuilt on the new memory), and held by
    nothing but the replayed calls and gradient sets."""
    found: dict = {}
    for instr in instrs:
        if instr.kind in ("guard", "grad", "host"):
            continue
        for a in _arrays_in((instr.args, instr.kwargs, instr.outs), []):
            r = root(a)
            k = id(r)
            if k in created and k not in pinned and k not in found and r.nbytes >= PER_REPLAY_BYTES and _dense(r):
                found[k] = r
    return found


def _fold_constants(instrs: list[Instr], created: set, largest: int | None = None) -> tuple[list, list]:
    """Drop creations nothing else writes and calls computed only from such constants: their buffers
    keep the capture's values. Arrays the program did not make are never folded (they are read live).
    With ``largest``, a constant of that many bytes or more is folded only when it is a copy of data the
    capture holds anyway (an array creation from an array): a call computing it, or a fill with a number,
    is replayed each time instead, as eager makes it (held for good, a mean's 4 MiB gradient made wide's
    program 3.7% larger than eager's step)."""
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
        cheap = largest is None or sum(w.nbytes for w in writes) < largest
        if instr.kind == "fill" and only_writer and (cheap or instr.fn is np.copyto):
            const.update(_ids(writes))
            constants.extend(writes)
            continue
        if instr.kind in ("ufunc", "call") and instr.reads and only_writer and cheap \
                and all(id(r) in const for r in instr.reads):
            const.update(_ids(writes))
            constants.extend(writes)
            continue
        kept.append(instr)
    return kept, constants


_EFFECTS = ("guard", "rng", "host", "grad", "mark")


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


def _hoist_guards(instrs: list[Instr]) -> list[Instr]:
    """Each guard moved up to just after the last instruction that writes what it re-reads (or the last
    host call, whose writes are not known), so that a miss is found before the replay changes anything it
    would have to undo (e.g. the label checks of a loss: up to the start, before zero_grad). Guards that
    end up at one place keep their order."""
    after: dict = {}  # index of the instruction a guard follows (-1: the start) -> those guards
    rest = []
    last_write: dict = {}
    barrier = -1
    for instr in instrs:
        if instr.kind == "guard":
            anchor = max([barrier] + [last_write.get(id(r), -1) for r in instr.reads])
            after.setdefault(anchor, []).append(instr)
            continue
        index = len(rest)
        rest.append(instr)
        if instr.kind == "host":
            barrier = index
        for w in instr.writes:
            last_write[id(w)] = index
    hoisted = list(after.get(-1, ()))
    for index, instr in enumerate(rest):
        hoisted.append(instr)
        hoisted.extend(after.get(index, ()))
    return hoisted


def _sink_gradient_sets(instrs: list[Instr]) -> list[Instr]:
    """Gradient sets that come before the last guard moved to just after it (in their order), when no host
    call comes before it: a replay then never has to undo them, and need not hold the gradients they
    replace (zero_grad's) until its guards have passed. Only host calls read ``.grad`` during a replay."""
    last = max((i for i, instr in enumerate(instrs) if instr.kind == "guard"), default=-1)
    if last < 0 or any(instr.kind == "host" for instr in instrs[:last]):
        return instrs
    early = [instr for instr in instrs[:last] if instr.kind == "grad"]
    if not early:
        return instrs
    return [instr for instr in instrs[:last + 1] if instr.kind != "grad"] + early + instrs[last + 1:]


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
    """``x`` with every array whose root moved rebuilt as the same view of its new memory (one view object
    for each place and layout: the capture made a view per use; lists and tuples rebuilt once each, so
    that one list shared by two instructions stays shared)."""
    if isinstance(x, np.ndarray):
        r = root(x)
        place = home.get(id(r))
        if place is None:
            return x
        buf, base = place
        offset = base + x.__array_interface__["data"][0] - r.__array_interface__["data"][0]
        key = (offset, x.shape, x.strides, x.dtype)
        if key not in memo:
            memo[key] = (np.ndarray(x.shape, x.dtype, buffer=buf, offset=offset, strides=x.strides), x)
        return memo[key][0]
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


def _guard_safety(instrs: list[Instr], created: set, bound_grads: dict) -> tuple:
    """What a replay must save to undo itself when a guard turns out false: the state arrays written
    before the last guard, whether the generator moved before it, the tensors whose gradients it set
    before it, the tensors whose gradients (read from ``.grad`` at replay: ``bound_grads``) it wrote
    before it, and whether a host call (which cannot be undone) ran before it (then the program is not
    safe to abandon: None)."""
    last = max((i for i, instr in enumerate(instrs) if instr.kind == "guard"), default=0)
    written: dict = {}
    rng = False
    grads: dict = {}
    grads_written: dict = {}
    for instr in instrs[:last]:
        if instr.kind == "host":
            return None
        rng = rng or instr.kind == "rng"
        if instr.kind == "grad":
            grads.update((id(t), t) for t, _, _ in _pairs(instr))
        for w in instr.writes:
            if id(w) in bound_grads:
                tensor = bound_grads[id(w)][0]
                grads_written[id(tensor)] = tensor
            elif id(w) not in created:
                written[id(w)] = w
    return list(written.values()), rng, list(grads.values()), list(grads_written.values())


def _pairs(instr: Instr) -> list:
    """The (tensor, value, setter) triples of a gradient-set instruction (one, or a merged run)."""
    return instr.expected if type(instr.expected) is list else [instr.expected]


def _merge_gradient_sets(instrs: list[Instr], fresh: set) -> list[Instr]:
    """Drop ``t.grad = ...`` when a later one replaces it before any host call could read it (zero_grad's
    ``None`` before backward's buffer), and make each run of consecutive ones a single instruction. A
    ``None`` before a gradient made per replay (``fresh``: ids of such roots) is kept: it lets the old
    gradient go at that point, as eager's ``zero_grad`` does."""
    replaced: dict = {}  # id(tensor) -> whether what replaces its gradient later is made per replay
    kept = []
    for instr in reversed(instrs):
        if instr.kind == "host":
            replaced.clear()
        elif instr.kind == "grad":
            t, value, _ = instr.expected
            if id(t) in replaced and not (value is None and replaced[id(t)]):
                continue
            replaced[id(t)] = any(id(r) in fresh for r in instr.reads)
        kept.append(instr)
    kept.reverse()
    merged: list[Instr] = []
    for instr in kept:
        if instr.kind != "grad":
            merged.append(instr)
            continue
        last = merged[-1] if merged and merged[-1].kind == "grad" else None
        if last is not None and all(t is not instr.expected[0] for t, _, _ in last.expected):
            merged.pop()
            last.reads = last.reads + instr.reads
            pairs = list(last.expected) + [instr.expected]
            instr = last
        else:  # each tensor appears once in a run: the run's order is free
            instr = _copy_instr(instr)
            pairs = [instr.expected]
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


class FreshGradSetter:
    """``t.grad = value`` for a gradient the replay makes anew each time (``view``: where it is then); set,
    with the others of its run, by :func:`_set_gradients`."""

    __slots__ = ("tensor", "view")

    def __init__(self, t, view):
        self.tensor, self.view = t, view


def _set_gradients(pairs: tuple):
    """One function setting a run of gradients: state tensors' through prebuilt (tensor, value) and
    (tensor, slot view) lists in one loop each (134 setter calls cost the overhead chain 7 us a step),
    arguments' through their setters (they look up the tensor passed at this replay). Each tensor
    appears once in a run: order is free."""
    held = tuple((s.tensor, s.value) for _, _, s in pairs if type(s) is GradSetter)
    fresh = tuple((s.tensor, s.view) for _, _, s in pairs if type(s) is FreshGradSetter)
    others = tuple(s for _, _, s in pairs if type(s) not in (GradSetter, FreshGradSetter))

    def run():
        for t, value in held:
            t._grad = value
        for t, view in fresh:
            t._grad = wrap(view.get())
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
        return _copying(call, tuple(args), instr.outs, instr), ()
    if kind == "guard":
        return _guard(fn, instr.expected, f"{instr.name} in {instr.op} at {instr.site}"), ()
    if kind == "fused":  # the buffers are final now: the kernel gets their addresses
        return fn.step(tuple(args))
    return fn, tuple(args)  # fill, rng, host, grad: closures made by the capture


def _adoptable(instrs: list[Instr], created: set, pinned: set) -> dict:
    """The fresh results of PER_REPLAY_BYTES or more of ``call`` instructions (backend kernels:
    convolution, pooling, ...) that only instruction arguments refer to (not ``pinned``): the replay takes
    the array the call returns, as eager does, instead of copying it into a fixed buffer (which costs a
    pass over it and keeps the memory between steps); and what plain ufunc calls write into a buffer first
    made by them (the replay calls them without ``out=``). Returns id(root) -> the array a slot holds."""
    seen: set = set()
    adopted: dict = {}
    for instr in instrs:
        fresh = _arrays_in(instr.outs, []) if instr.kind == "call" and instr.outs is not None else \
            [_ufunc_out(instr)] if _ufunc_out(instr) is not None else []
        if fresh:
            by_root: dict = {}
            for a in fresh:
                by_root.setdefault(id(root(a)), []).append(a)
            for key, views in by_root.items():
                r = root(views[0])
                # (0-d results are not: a call that made one returns a numpy scalar at replay)
                if key in created and key not in pinned and key not in seen and r.nbytes >= PER_REPLAY_BYTES \
                        and r.ndim:
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


_LAYOUTS: dict = {}  # one tuple object for each shape and strides the slots meet (a program has 1000s of views)


def _layout(array) -> tuple:
    return _LAYOUTS.setdefault(array.shape, array.shape), array.dtype, _LAYOUTS.setdefault(array.strides, array.strides)


class _Slot:
    """Where a buffer made per replay lives during a replay (None between its last use and the next
    replay): a result taken as a call returns it, an array made before its first write (``allocate``),
    or a gradient read from ``.grad`` (``bind``)."""

    __slots__ = ("value", "flat", "shape", "dtype", "strides", "array", "c_order", "nbytes", "poisoning", "adopts")

    def __init__(self, array, poisoning=(False,), adopts: bool = False):
        self.value = self.flat = None
        self.adopts = adopts  # it takes a call's result as it comes (else results are copied into it)
        self.array = array  # the capture's: views are placed relative to it
        self.shape, self.dtype, self.strides = _layout(array)
        self.c_order, self.nbytes, self.poisoning = array.flags.c_contiguous, array.nbytes, poisoning

    def take(self, array) -> None:
        self.value = array
        self.flat = None  # its memory as one run, made when a part of it is first asked for

    def run_of_memory(self):
        if self.flat is None:
            self.flat = self.value.ravel(order="K")  # a view: these arrays are dense
        return self.flat

    def allocate(self) -> None:
        """A new buffer laid out as the capture's (what eager's call would have made at this point)."""
        if self.c_order:
            array = np.empty(self.shape, self.dtype)
        else:
            array = np.ndarray(self.shape, self.dtype, np.empty(self.nbytes, np.uint8), strides=self.strides)
        if self.poisoning[0]:
            _poison(array)
        self.take(array)

    def fits(self, array) -> bool:
        """Whether ``array`` is laid out as the capture's (its views can be placed on it)."""
        return isinstance(array, np.ndarray) and array.shape == self.shape and array.dtype == self.dtype \
            and array.strides == self.strides

    def take_input(self, array) -> None:
        """An argument's array: itself when laid out as at the capture (the program only reads it), else a
        copy laid out so."""
        if type(array) is np.ndarray and self.fits(array):
            self.take(array)
        else:
            self.allocate()
            np.copyto(self.value, array)

    def bind(self, tensor) -> None:
        """The gradient ``tensor`` holds now, which the program adds to in place."""
        grad = tensor._grad
        array = None if grad is None else grad._data
        if type(array) is not np.ndarray or not self.fits(array):
            raise GuardMiss(f"the gradient of a state tensor of shape {tuple(tensor.shape)} is not laid out as at "
                            "the capture")
        self.take(array)


class _SlotView:
    """A view (offset, shape, strides, dtype) of the array in a slot, rebuilt at each use."""

    __slots__ = ("slot", "offset", "shape", "dtype", "strides", "whole")

    def __init__(self, slot: _Slot, view, base):
        self.slot = slot
        self.offset = view.__array_interface__["data"][0] - base.__array_interface__["data"][0]
        self.shape, self.dtype, self.strides = _layout(view)
        self.whole = self.offset == 0 and (view.shape, view.dtype, view.strides) == (base.shape, base.dtype, base.strides)

    def get(self):
        if self.whole:
            return self.slot.value
        return np.ndarray(self.shape, self.dtype, buffer=self.slot.run_of_memory(), offset=self.offset,
                          strides=self.strides)

    def __repr__(self) -> str:
        return f"<result{list(self.shape)}>"


def _templated(x, slots: dict, memo: dict):
    """``x`` with every view of a slot's array replaced by a :class:`_SlotView` (one for each place and
    layout: the capture made a view per use)."""
    if isinstance(x, np.ndarray):
        r = root(x)
        slot = slots.get(id(r))
        if slot is None:
            return x
        offset = x.__array_interface__["data"][0] - slot.array.__array_interface__["data"][0]
        key = (id(slot), offset, x.shape, x.strides, x.dtype)
        if key not in memo:
            memo[key] = _SlotView(slot, x, slot.array)
        return memo[key]
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


def _steps_with_slots(instrs: list[Instr], adopted: dict, allocated: dict, bound: dict, inputs: dict,
                      poisoning: list, kept_to_end: set = frozenset()) -> tuple:
    """The steps, with buffers that change between replays passed through slots: results taken as calls
    return them (``adopted``), buffers made just before their first use (``allocated``), gradients read
    from ``.grad`` at the start (``bound``: id -> (tensor, the capture's array)), and arguments (``inputs``:
    id -> slot, filled by the replay); each slot is emptied after its last use (so the memory goes when
    eager's would), except those ``kept_to_end`` (outputs the result takes). Instructions keep slot views
    for ``explain()``, and no longer refer to the capture's arrays of these buffers (which would hold that
    memory for good). Returns the instructions, the steps, where each instruction's steps start, and the
    slots by id of the buffer."""
    if not (adopted or allocated or bound or inputs):
        return instrs, [_step(i) for i in instrs], list(range(len(instrs))), {}
    slots = dict(inputs)
    slots.update((k, _Slot(a, adopts=True)) for k, a in adopted.items())
    slots.update((k, _Slot(r, poisoning)) for k, r in allocated.items())
    slots.update((k, _Slot(a)) for k, (_t, a) in bound.items())
    memo: dict = {}
    first_use: dict = {}
    last_use: dict = {}
    templated = []
    for i, instr in enumerate(instrs):
        if instr.kind in ("ufunc", "call", "fill", "rng", "fused"):
            used = [k for k in (id(root(a)) for a in _arrays_in((instr.args, instr.kwargs, instr.outs), [])) if k in slots]
            if used:
                instr = _copy_instr(instr)
                instr.args, instr.kwargs, instr.outs = (_templated(x, slots, memo)
                                                        for x in (instr.args, instr.kwargs, instr.outs))
        elif instr.kind == "grad":
            used = [id(r) for r in instr.reads if id(r) in slots]
            if used:
                instr = _fresh_gradients(instr, slots, memo)
        else:
            used = []
        for k in used:
            first_use.setdefault(k, i)
            last_use[k] = i
        if used:
            instr.reads, instr.writes = _unslotted(instr.reads, slots), _unslotted(instr.writes, slots)
        templated.append(instr)
    steps = [(functools.partial(slots[k].bind, t), ()) for k, (t, _a) in bound.items() if k in last_use]
    allocations: dict = {}
    for k in allocated:
        if k in first_use:
            allocations.setdefault(first_use[k], []).append(slots[k])
    releases: dict = {}
    for k, i in last_use.items():
        if k not in kept_to_end:
            releases.setdefault(i, []).append(slots[k])
    starts = []  # the index of each instruction's first step (its allocations come before it)
    for i, instr in enumerate(templated):
        starts.append(len(steps))
        steps.extend((slot.allocate, ()) for slot in allocations.get(i, ()))
        if instr.kind == "fused" and _has_slots(instr.args):
            steps.append((_SlottedFused(instr), ()))
        elif instr.kind != "grad" and _has_slots((instr.args, instr.kwargs, instr.outs)):
            steps.append((_Slotted(instr), ()))
        else:
            steps.append(_step(instr))
        if i in releases:
            steps.append((_release, tuple(releases[i])))
    for slot in slots.values():
        slot.array = None  # the capture's array: only needed to place the views
    return templated, steps, starts, slots


def _unslotted(roots: tuple, slots: dict) -> tuple:
    return tuple(r for r in roots if id(r) not in slots)


def _fresh_gradients(instr: Instr, slots: dict, memo: dict) -> Instr:
    """A gradient-set instruction whose values made per replay are set from their slots: each replay hands
    ``.grad`` a new tensor around that replay's array, as eager's backward does."""
    pairs = []
    for t, value, setter in _pairs(instr):
        if value is not None and type(setter) is GradSetter and id(root(value._data)) in slots:
            view = _templated(value._data, slots, memo)
            setter = FreshGradSetter(t, view)
            value = view
        pairs.append((t, value, setter))
    instr = _copy_instr(instr)
    instr.expected = pairs
    instr.fn = _set_gradients(tuple(pairs))
    return instr


class _Slotted:
    """A replayed call whose arguments or results go through slots (resolved at each call). The common
    shapes (slot views among the positional arguments and in ``out=``, a result taken whole) take a direct
    path; others are resolved by walking the arguments (bench/ANALYSIS.md has what each costs)."""

    __slots__ = ("fn", "args", "kwargs", "outs", "instr", "arg_views", "out_views", "taken")

    def __init__(self, instr: Instr):
        self.fn, self.args, self.kwargs, self.outs, self.instr = instr.fn, instr.args, instr.kwargs, instr.outs, instr
        self.arg_views = self.out_views = self.taken = None
        nested = any(type(a) is not _SlotView and _has_slots(a) for a in instr.args)
        out = instr.kwargs.get("out")
        kwargs_plain = set(instr.kwargs) <= {"out"} and (out is None or type(out) is tuple and not any(
            type(o) is not _SlotView and _has_slots(o) for o in out))
        if nested or not kwargs_plain:
            return  # the general path
        self.arg_views = tuple((i, a) for i, a in enumerate(instr.args) if type(a) is _SlotView)
        if out is not None and _has_slots(out):
            self.out_views = out
        outs = instr.outs
        if type(outs) is _SlotView and outs.whole and outs.slot.adopts:
            self.taken = outs

    def __call__(self) -> None:
        if self.arg_views is None:
            result = self.fn(*_resolved(self.args), **_resolved(self.kwargs))
            if self.outs is not None:
                _adopt_into(result, self.outs, self.instr)  # (the instruction says where, in a miss's message)
            return
        args = list(self.args)  # a new list each call: the arrays are not held past the call
        for i, view in self.arg_views:
            args[i] = view.get()
        if self.out_views is not None:
            result = self.fn(*args, out=tuple([o.get() if type(o) is _SlotView else o for o in self.out_views]))
        else:
            result = self.fn(*args, **self.kwargs)
        if self.taken is not None:
            _take(self.taken.slot, result, self.instr)
        elif self.outs is not None:
            _adopt_into(result, self.outs, self.instr)


class _SlottedFused:
    """A fused kernel's call whose operands include buffers made per replay: their addresses (of this
    replay's arrays) are written into the kernel's block before each call."""

    __slots__ = ("entry", "address", "block", "late")

    def __init__(self, instr: Instr):
        late = [k for k, a in enumerate(instr.args) if type(a) is _SlotView]
        self.entry, self.block, positions = instr.fn.bind(instr.args, late)
        self.address = self.block.__array_interface__["data"][0]
        self.late = tuple(zip(positions, [instr.args[k] for k in late]))

    def __call__(self) -> None:
        block = self.block
        for position, view in self.late:  # (the slots hold the arrays until after the call)
            block[position] = view.get().__array_interface__["data"][0]
        self.entry(self.address)


def _release(*slots) -> None:
    for slot in slots:
        slot.value = slot.flat = None


def _adopt_into(result, outs, where) -> None:
    """As :func:`_copy_into`, except that an adopted result is taken into its slot as it is."""
    if type(outs) is _SlotView:
        if not outs.slot.adopts:
            _copy_into(result, outs.get(), where)
        elif outs.whole:
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


def _take(slot: _Slot, array, where) -> None:
    if not slot.fits(array):
        raise GuardMiss(f"a result changed shape or layout at {where}")
    slot.take(array)


def _take_part(view: _SlotView, result, where) -> None:
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
        if type(x) is _SlotView:  # a buffer made per replay (or an argument, or a gradient, read in place)
            label = names.get(id(x.slot))
            if label is None:
                label = names[id(x.slot)] = f"t{len(names)}"
            return label if x.whole else f"{label}<view {x.shape}>"
        if type(x) in (tuple, list):
            return "(" + ", ".join(name(v) for v in x) + ")"
        text = repr(x)
        return text if len(text) < 40 else text[:37] + "..."

    fn = getattr(instr.fn, "__name__", None) or type(instr.fn).__name__
    args = ", ".join([name(a) for a in instr.args] + [f"{k}={name(v)}" for k, v in instr.kwargs.items()])
    if instr.kind == "guard":
        return f"guard {instr.name} == {instr.expected!r}"
    if instr.kind in ("host", "grad", "rng", "fill", "mark"):
        return f"{instr.kind} {instr.name}"
    if instr.kind == "fused":
        operands = ", ".join(f"a{k}={name(a)}" for k, a in enumerate(instr.args))
        return f"{instr.fn.__name__}[{instr.name}]({operands})"
    result = f"{name(instr.outs)} = " if instr.outs is not None else ""
    return f"{result}np.{fn}({args})" if isinstance(instr.fn, np.ufunc) else f"{result}{fn}({args})"
