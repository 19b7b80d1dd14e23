"""Run a training step eagerly and compiled from the same seed, and compare everything bit for bit."""

from __future__ import annotations

import numpy as np

import chainrule as cr
from chainrule.compiler import compile


def state_of(model, opt) -> list:
    """Every array a step can change: parameters, buffers, gradients, optimizer state, the generator."""
    arrays = [p._data.copy() for p in model.parameters()] + [b._data.copy() for b in model.buffers()]
    arrays += [None if p.grad is None else p.grad._data.copy() for p in model.parameters()]
    if opt is not None:
        for p in model.parameters():
            for _key, value in sorted(opt.state.get(p, {}).items()):
                arrays.append(value._data.copy() if isinstance(value, cr.Tensor) else np.asarray(value))
    arrays.append(np.asarray(str(cr.get_rng_state())))
    return arrays


def bitwise_equal(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def run(build, batches, step_fn, compiled: bool, after_step=None, **options):
    """``build() -> (model, opt, extra)``; ``step_fn(model, opt, extra, x, y) -> loss``. Returns per step
    (loss array, state arrays) and the compiled function."""
    cr.manual_seed(0)
    model, opt, extra = build()

    def step(x, y):
        return step_fn(model, opt, extra, x, y)

    f = compile(step, **options) if compiled else step
    history = []
    for i, (x, y) in enumerate(batches):
        loss = f(x, y)
        if after_step is not None:
            after_step(i, model, opt, extra)
        history.append((loss._data.copy(), state_of(model, opt)))
    return history, f


def assert_same_history(eager, compiled) -> None:
    assert len(eager) == len(compiled)
    for step, ((le, se), (lc, sc)) in enumerate(zip(eager, compiled)):
        assert bitwise_equal(le, lc), f"loss differs at step {step}: {le} vs {lc}"
        assert len(se) == len(sc)
        for i, (a, b) in enumerate(zip(se, sc)):
            assert bitwise_equal(a, b), f"state array {i} differs at step {step}"


def standard_step(model, opt, extra, x, y):
    opt.zero_grad()
    loss = extra["loss"](model(x), y)
    loss.backward()
    opt.step()
    return loss
