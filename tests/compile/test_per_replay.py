"""Unfused programs make their buffers per replay, as eager does: what that means for gradients,
arguments, memory held between steps, and the guards that must pass before anything is changed."""

from __future__ import annotations

import gc
import re
import tracemalloc

import numpy as np
import pytest

import chainrule as cr
import chainrule.nn as nn
import chainrule.nn.functional as F
from chainrule.compiler import compile
from chainrule.compiler.program import PER_REPLAY_BYTES
from tests.compile.helpers import assert_same_history, run, standard_step


def _wide_mlp():
    """Layer outputs of 64 x 256 float32 (64 KiB): every buffer of the step is made per replay."""
    def build():
        model = nn.Sequential(nn.Linear(32, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
        return model, cr.optim.SGD(model.parameters(), lr=0.05, momentum=0.9), {"loss": F.cross_entropy}
    return build


def _batches(n, batch=64, width=32, classes=10, seed=0):
    rng = np.random.default_rng(seed)
    return [(cr.tensor(rng.standard_normal((batch, width)).astype(np.float32)),
             cr.tensor(rng.integers(0, classes, batch))) for _ in range(n)]


def test_each_replay_hands_out_new_gradients_and_leaves_old_ones_alone():
    """As in eager (zero_grad sets None, backward makes new arrays), a gradient of PER_REPLAY_BYTES or more
    kept from one step keeps its values after the next: the program does not write into the arrays it
    handed out. Smaller ones live in the program's arena and are rewritten by the next replay (documented:
    copy a gradient you keep)."""
    batches = _batches(8)
    eager, _ = run(_wide_mlp(), batches, standard_step, compiled=False)
    compiled, f = run(_wide_mlp(), batches, standard_step, compiled=True)
    assert_same_history(eager, compiled)

    cr.manual_seed(0)
    model, opt, extra = _wide_mlp()()
    step = compile(lambda x, y: standard_step(model, opt, extra, x, y))
    for x, y in batches[:5]:
        step(x, y)
    kept = [(p.grad, p.grad._data.copy()) for p in model.parameters()]
    step(*batches[5])
    variant = next(v for v in step.variants.values() if v.replays)
    assert variant.replays >= 2, step.explain()
    large = [p.grad.nbytes >= PER_REPLAY_BYTES for p in model.parameters()]
    assert large == [True, False, True, False, True, False]  # the weights, not the biases
    for p, (grad, values), made_anew in zip(model.parameters(), kept, large):
        assert (p.grad._data is not grad._data) == made_anew
        assert (grad._data.tobytes() == values.tobytes()) == made_anew
    program = variant.program  # it holds only the small buffers (biases' gradients, row statistics)
    assert program.nbytes < program.unplanned_bytes / 20, (program.nbytes, program.unplanned_bytes)
    assert f"buffers: {program.per_replay} made per replay" in step.explain() and program.per_replay >= 10
    assert re.search(r"\bt\d+ = np\.matmul\(in0, ", step.explain())  # per-replay buffers and arguments are named


def _conv_case():
    def build():
        model = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 16 * 16, 3))
        return model, cr.optim.SGD(model.parameters(), lr=0.05, momentum=0.9), {"loss": F.cross_entropy}

    rng = np.random.default_rng(0)
    batch = (cr.tensor(rng.standard_normal((64, 4, 16, 16)).astype(np.float32)), cr.tensor(rng.integers(0, 3, 64)))
    return build, batch


def _step_of(model, opt, extra):
    return lambda x, y: standard_step(model, opt, extra, x, y)


def _footprint(compiled: bool) -> tuple[int, int]:
    """Bytes the run holds between steps (what deleting its model, optimizer and step function frees: not
    the interpreter's tables that grew meanwhile) and that plus the rise during one more steady step."""
    build, (x, y) = _conv_case()
    gc.collect()
    tracemalloc.start()
    try:
        model, opt, extra = build()
        step = _step_of(model, opt, extra)
        if compiled:
            step = compile(step)
        for _ in range(6):
            step(x, y)
        if compiled:
            assert any(v.replays for v in step.variants.values()), step.explain()
        gc.collect()
        steady = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        step(x, y)
        rise = tracemalloc.get_traced_memory()[1] - steady
        del model, opt, extra, step
        gc.collect()
        held = steady - tracemalloc.get_traced_memory()[0]
        return held, held + rise
    finally:
        tracemalloc.stop()


def test_compiled_step_holds_what_eager_holds_between_steps():
    """The program keeps none of the step's large arrays between replays (not the capture's either): its
    footprint is eager's plus its own small objects. (Before per-replay buffers, this step held 7 MiB of
    the capture's convolution columns and activations for good.)"""
    _footprint(True)  # the compiler's modules imported, so that neither side counts them
    eager_held, eager_peak = _footprint(False)
    held, peak = _footprint(True)
    assert eager_peak > 3 * 2**20  # the step's arrays are large against the margins below
    assert held <= eager_held + 2**18, (held, eager_held)
    assert peak <= eager_peak + 2**18, (peak, eager_peak)


def test_arguments_are_read_in_place_or_copied_when_laid_out_otherwise():
    """An argument the program only reads is used in place (no copy is kept or made), including views of a
    larger array; one whose strides differ from the capture's is copied into a buffer laid out so. The
    labels, which the loss's check reads, are copied into a buffer of the program."""
    rng = np.random.default_rng(3)
    data = rng.standard_normal((64 * 12, 96)).astype(np.float32)
    labels = rng.integers(0, 10, 64 * 12)

    def batch(i, stride):  # (64, 32) views: every other column, or every third one, of a slice of rows
        rows = data[i * 64:(i + 1) * 64, :32 * stride:stride]
        return cr.from_numpy(rows), cr.tensor(labels[i * 64:(i + 1) * 64])

    batches = [batch(i, 2) for i in range(6)] + [batch(i, 3) for i in range(6, 12)]
    eager, _ = run(_wide_mlp(), batches, standard_step, compiled=False)
    compiled, f = run(_wide_mlp(), batches, standard_step, compiled=True)
    assert_same_history(eager, compiled)
    variant = next(v for v in f.variants.values() if v.replays)
    assert variant.replays >= 8, f.explain()
    (x_path, x_buffer, x_slot), (y_path, y_buffer, y_slot) = variant.inputs
    assert x_buffer is None and x_slot is not None
    assert y_buffer is not None and y_slot is None


def test_guards_run_before_the_replay_changes_anything():
    """An embedding's index check is moved to the start of the program, before zero_grad's gradient sets:
    a miss then has nothing to undo, and the eager call it falls back to raises eager's error."""
    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed, self.head = nn.Embedding(50, 64), nn.Linear(64, 50)

        def forward(self, x):
            return self.head(self.embed(x)).reshape(-1, 50)

    model = Model()
    opt = cr.optim.AdamW(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y.reshape(-1))
        loss.backward()
        opt.step()
        return loss

    f = compile(step)
    for _ in range(5):
        f(cr.tensor(rng.integers(0, 50, (8, 16))), cr.tensor(rng.integers(0, 50, (8, 16))))
    program = next(v for v in f.variants.values() if v.replays).program
    kinds = [i.kind for i in program.instrs]
    assert "guard" in kinds and kinds.index("grad") > max(i for i, k in enumerate(kinds) if k == "guard")
    written, rng_moved, grads_set, grads_written = program.guard_safety
    assert not (written or rng_moved or grads_set or grads_written)
    weights = [p._data.copy() for p in model.parameters()]
    with pytest.raises(IndexError):
        f(cr.tensor(np.full((8, 16), 50)), cr.tensor(rng.integers(0, 50, (8, 16))))
    assert all(p._data.tobytes() == w.tobytes() for p, w in zip(model.parameters(), weights))
    assert all(p.grad is None for p in model.parameters())  # eager's zero_grad ran before its error


def test_a_backend_function_declared_pure_that_writes_an_argument_is_logged_as_writing_it():
    """Backend functions are declared to write only their results and ``out``; the capture checks each
    call's arguments, so a function that does write one is still logged as writing it."""
    from chainrule.compiler.tracer import ACTIVE, TracedArray, Tracer, opaque

    def doubles_its_argument(a):
        a *= 2
        return a + 1

    def pure(a):
        return a + 1

    for fn, writes_argument in ((doubles_its_argument, True), (pure, False)):
        base = np.arange(6.0)
        tracer = Tracer()
        ACTIVE[0] = tracer
        try:
            opaque(fn)(base.view(TracedArray))
        finally:
            ACTIVE[0] = None
        (instr,) = tracer.instrs
        assert any(w is base for w in instr.writes) == writes_argument
        assert any(w is not base for w in instr.writes)  # its result


def test_an_embeddings_scatter_add_writes_the_gradient_rows_not_the_indices():
    """``_add_rows_at`` (embedding's backward) writes its first argument in place, and an indexed
    assignment its target: the indices they read are not logged as written, so they are not copied back
    to the caller's tensor after each replay."""
    import chainrule.nn.functional as F

    model = cr.nn.Sequential(cr.nn.Embedding(30, 8), cr.nn.Flatten(), cr.nn.Linear(8 * 6, 3))
    opt = cr.optim.SGD(model.parameters(), lr=0.1)

    def step(tokens, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(tokens), y)
        loss.backward()
        opt.step()
        return loss

    compiled = cr.compile(step)
    rng = np.random.default_rng(0)
    for _ in range(5):
        compiled(cr.tensor(rng.integers(0, 30, (4, 6))), cr.tensor(rng.integers(0, 3, 4)))
    (variant,) = [v for v in compiled.variants.values() if v.replays]
    scatter = [i for i in variant.program.instrs if i.name == "_add_rows_at"]
    assert scatter and all(len(i.writes) == 1 for i in scatter), compiled.explain()
    assert all(path != (0, 0) for path, _buffer in variant.written_inputs), compiled.explain()
