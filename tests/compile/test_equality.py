"""The heart of cr.compile: a compiled training step gives the same losses, parameters, gradients and
optimizer state as eager, bit for bit, at every step (the bench workloads at their small sizes)."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
from bench import workloads as bench_workloads
from tests.compile.helpers import assert_same_history, run, standard_step

STEPS = 12


def _workload_case(name: str, steps: int = STEPS):
    w = bench_workloads.workloads(small=True)[name]

    def build():
        model = w.build_model(cr, 0)
        opt = w.make_optimizer(cr, model.parameters()) if w.make_optimizer else cr.optim.SGD(model.parameters(), lr=0.01)
        return model, opt, {"loss": w.make_loss(cr)}

    batches = []
    for i in range(steps):
        x, y = w.make_data(np.random.default_rng(100 + i))
        batches.append((cr.tensor(x), cr.tensor(y)))
    return build, batches


@pytest.mark.parametrize("name", ["overhead", "mlp", "cnn", "gpt"])
def test_workload_bitwise_equal_to_eager(name):
    build, batches = _workload_case(name)
    eager, _ = run(build, batches, standard_step, compiled=False)
    compiled, f = run(build, batches, standard_step, compiled=True)
    assert_same_history(eager, compiled)
    replays = sum(v.replays for v in f.variants.values())
    assert replays >= STEPS - 5, f.explain()
