"""cr.compile(module) in training: a call that records gradients replays the forward half of a joint
program (forward, then the gradients of its output), and backward reaching the output replays the other
half. Every step must equal an eager twin's bit for bit: losses, parameters, gradients, generator."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import chainrule as cr
import chainrule.nn as nn
import chainrule.nn.functional as F
from chainrule.compiler import compile
from tests.compile.helpers import assert_same_history, run, standard_step
from tests.compile.test_equality import STEPS, _workload_case

pytestmark = pytest.mark.usefixtures("buffer_plans")


def _twins(build):
    cr.manual_seed(0)
    model = build()
    cr.manual_seed(0)
    return model, build()


def _mlp():
    return nn.Sequential(nn.Linear(6, 32), nn.Tanh(), nn.Dropout(0.25), nn.Linear(32, 4))


def _cnn():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(8 * 8 * 8, 5))


def _data(n, shape, classes, seed=0):
    rng = np.random.default_rng(seed)
    return [(cr.tensor(rng.standard_normal(shape).astype(np.float32)), cr.tensor(rng.integers(0, classes, shape[0])))
            for _ in range(n)]


def _same(a, b) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def _assert_twins_equal(model, twin):
    for (name, p), q in zip(model.named_parameters(), twin.parameters()):
        assert _same(p._data, q._data), name
        assert (p.grad is None) == (q.grad is None), name
        if p.grad is not None:
            assert _same(p.grad._data, q.grad._data), f"{name}.grad"
    for b, c in zip(model.buffers(), twin.buffers()):
        assert _same(b._data, c._data)


def _joint_replays(compiled) -> int:
    return sum(v.replays for v in compiled.training_calls.joint.variants.values())


@pytest.mark.parametrize("build, shape, classes", [(_mlp, (8, 6), 4), (_cnn, (4, 3, 16, 16), 5)])
def test_training_through_a_compiled_module_equals_eager_every_step(build, shape, classes):
    """Dropout draws the same masks (the forward half draws when the module is called) and BatchNorm's
    running statistics move once per call, as in eager."""
    model, twin = _twins(build)
    compiled = compile(model)
    opts = [cr.optim.SGD(m.parameters(), lr=0.05, momentum=0.9) for m in (model, twin)]
    for step, (x, y) in enumerate(_data(12, shape, classes)):
        losses = []
        for net, opt in ((compiled, opts[0]), (twin, opts[1])):
            cr.manual_seed(step)
            opt.zero_grad()
            loss = F.cross_entropy(net(x), y)
            loss.backward()
            opt.step()
            losses.append(loss._data)
        assert _same(*losses), f"loss at step {step}"
        _assert_twins_equal(model, twin)
    assert _joint_replays(compiled) >= 8, compiled.explain()


@pytest.mark.parametrize("name", ["overhead", "mlp", "cnn", "gpt"])
def test_the_workloads_trained_through_their_compiled_models_equal_eager(name):
    """bench's workloads (small shapes) for 50 steps, the model compiled alone: losses, parameters,
    gradients, optimizer state and the generator equal eager's at every step."""
    build, batches = _workload_case(name)

    def module_step(model, opt, extra, x, y):
        net = extra.setdefault("compiled", compile(model))
        return standard_step(net, opt, extra, x, y)

    eager, _ = run(build, batches, standard_step, compiled=False)
    trained = {}

    def keep(i, model, opt, extra):
        trained.update(extra)

    through_module, _ = run(build, batches, module_step, compiled=False, after_step=keep)
    assert_same_history(eager, through_module)
    compiled = trained["compiled"]
    assert _joint_replays(compiled) >= STEPS - 5, compiled.explain()


def test_two_forwards_before_one_backward_and_a_retained_graph():
    """Each call keeps what its backward half needs, so two calls before one backward (micro-batches
    summed) and a second backward through a retained graph give eager's gradients."""
    model, twin = _twins(_mlp)
    compiled = compile(model)
    batches = _data(10, (8, 6), 4, seed=1)
    for step in range(0, len(batches), 2):
        for net in (compiled, twin):
            cr.manual_seed(step)
            (x1, y1), (x2, y2) = batches[step], batches[step + 1]
            loss = F.cross_entropy(net(x1), y1) + F.cross_entropy(net(x2), y2) * 0.5
            loss.backward(retain_graph=True)
            loss.backward()
        _assert_twins_equal(model, twin)
    assert _joint_replays(compiled) >= 4, compiled.explain()


def test_gradients_flow_to_the_input_and_to_layers_before_it():
    """An argument that requires grad (the output of an embedding outside the compiled block) gets its
    gradient from the node, and the layers before it train as in eager."""
    def build():
        return nn.ModuleDict({"embed": nn.Embedding(20, 8), "block": nn.Sequential(nn.Linear(8, 16), nn.GELU(),
                                                                                      nn.Linear(16, 20))})

    model, twin = _twins(build)
    block = compile(model["block"])
    rng = np.random.default_rng(2)
    for _ in range(7):
        tokens = cr.tensor(rng.integers(0, 20, (4, 5)))
        for embed, body in ((model["embed"], block), (twin["embed"], twin["block"])):
            logits = body(embed(tokens))
            F.cross_entropy(logits.reshape(-1, 20), tokens.reshape(-1)).backward()
        _assert_twins_equal(model, twin)
    assert _joint_replays(block) >= 3, block.explain()


def test_double_backward_through_the_compiled_module_is_refused():
    model, _ = _twins(_mlp)
    compiled = compile(model)
    x = cr.tensor(np.ones((8, 6), np.float32), requires_grad=True)
    model.eval()
    for _ in range(4):
        compiled(x).sum().backward()
    out = compiled(x).sum()
    assert _joint_replays(compiled) >= 1, compiled.explain()
    with pytest.raises(RuntimeError, match="create_graph=True through the compiled module Sequential"):
        cr.autograd.grad(out, x, create_graph=True)


def test_a_forward_returning_a_tuple_trains_eagerly_with_one_warning():
    class Pair(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(6, 4)

        def forward(self, x):
            h = self.linear(x)
            return h, h.tanh()

    cr.manual_seed(0)
    model = Pair()
    compiled = compile(model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for x, _ in _data(4, (8, 6), 4):
            a, b = compiled(x)
            (a.sum() + b.sum()).backward()
    assert len([w for w in caught if "runs eagerly where it records gradients" in str(w.message)]) == 1
    assert not compiled.training_calls.joint.variants


@pytest.mark.filterwarnings("ignore:invalid value encountered")
def test_a_check_that_misses_in_the_backward_half_redoes_that_call_eagerly():
    """ReLU's backward checks that its gradient is finite (its fast path); an infinite output gradient
    makes that check miss in the backward half, and the call's gradients are then redone eagerly, from the
    generator's state before its forward (the same dropout mask): eager's results, NaNs included."""
    def build():
        return nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 4))

    model, twin = _twins(build)
    compiled = compile(model)
    for step, (x, _y) in enumerate(_data(9, (8, 6), 4, seed=3)):
        scale = np.float32(np.inf if step == 6 else 1.0)
        generators = []
        for net, params in ((compiled, model.parameters()), (twin, twin.parameters())):
            cr.manual_seed(step)
            for p in params:
                p.grad = None
            (net(x) * scale).sum().backward()
            generators.append(str(cr.get_rng_state()))
        _assert_twins_equal(model, twin)
        assert generators[0] == generators[1]
        if step == 6:  # the infinite step's gradients, as eager's
            assert np.isnan(model[0].weight.grad._data).any()
    assert any("in a backward half" in m for m in compiled.training_calls.joint.misses), compiled.explain()


def test_a_compiled_module_inside_a_compiled_step_is_part_of_its_program():
    """While the step is captured, the module runs as plain code, recorded into the step's program."""
    model, twin = _twins(_mlp)
    inner = compile(model)
    opts = [cr.optim.SGD(m.parameters(), lr=0.05) for m in (model, twin)]

    def step(net, opt, x, y):
        opt.zero_grad()
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        return loss

    outer = compile(lambda x, y: step(inner, opts[0], x, y))
    for i, (x, y) in enumerate(_data(8, (8, 6), 4, seed=4)):
        cr.manual_seed(i)
        a = outer(x, y)
        cr.manual_seed(i)
        b = step(twin, opts[1], x, y)
        assert _same(a._data, b._data)
        _assert_twins_equal(model, twin)
    assert sum(v.replays for v in outer.variants.values()) >= 3, outer.explain()


def test_a_parameter_replaced_between_training_calls_is_trained_as_in_eager():
    """Replacing a parameter changes the module tree: the compiled module finds its parameters again (the
    node's inputs) and captures again, so the new parameter gets eager's gradients."""
    model, twin = _twins(_mlp)
    compiled = compile(model, fallback="eager")
    batches = _data(12, (8, 6), 4, seed=5)
    for step, (x, y) in enumerate(batches):
        if step == 6:
            replays_before = _joint_replays(compiled)
            fresh = np.linspace(-0.3, 0.3, 32 * 6, dtype=np.float32).reshape(32, 6)
            model[0].weight = nn.Parameter(cr.tensor(fresh.copy()))
            twin[0].weight = nn.Parameter(cr.tensor(fresh.copy()))
        for net, params in ((compiled, model.parameters()), (twin, twin.parameters())):
            cr.manual_seed(step)
            for p in params:
                p.grad = None
            F.cross_entropy(net(x), y).backward()
        _assert_twins_equal(model, twin)
    assert _joint_replays(compiled) > replays_before >= 2, compiled.explain()
