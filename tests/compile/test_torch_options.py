"""cr.compile takes torch.compile's keywords as a ported program passes them: fullgraph, recompile_limit,
mode, backend, dynamic, options, name, disable (chainrule.compiler._from_torch)."""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import pytest

import chainrule as cr
import chainrule.nn as nn
from chainrule.compiler import TORCH_BACKENDS, TORCH_MODES, CompileError, compile


def _reading_step():
    """A training step that reads a value inside (refused unless it falls back to eager) and its data."""
    model = nn.Linear(4, 2)
    opt = cr.optim.SGD(model.parameters(), lr=0.1)
    seen = []

    def step(x):
        opt.zero_grad()
        loss = (model(x) ** 2).mean()
        loss.backward()
        opt.step()
        seen.append(loss.item())
        return loss

    x = cr.tensor(np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4))
    return step, x, seen


def test_disable_returns_the_function_or_module_itself():
    def f(x):
        return x * 2

    model = nn.Linear(3, 3)
    assert compile(f, disable=True) is f
    assert compile(model, disable=True) is model
    assert compile(disable=True)(f) is f


def test_fullgraph_true_refuses_and_false_falls_back_to_eager_once():
    step, x, _ = _reading_step()
    strict = compile(step, fullgraph=True)
    with pytest.raises(CompileError, match="item"):
        for _ in range(4):
            strict(x)
    step, x, seen = _reading_step()
    loose = compile(step, fullgraph=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(5):
            loose(x)
    assert len([w for w in caught if "cannot be compiled" in str(w.message)]) == 1
    assert len(seen) == 5 and seen[-1] < seen[0]  # every call ran the eager step (it trains)


def test_fullgraph_that_contradicts_fallback_is_an_error():
    with pytest.raises(ValueError, match="fullgraph=True means fallback='error'"):
        compile(lambda x: x, fullgraph=True, fallback="eager")
    assert compile(lambda x: x, fullgraph=False, fallback="eager").fallback == "eager"


def test_recompile_limit_is_max_variants():
    f = compile(lambda x: x * 2, recompile_limit=1)
    assert f.max_variants == 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for n in (3, 3, 3, 3, 5):  # the second shape is over the limit: eager, with a warning
            out = f(cr.ones(n))
    assert np.array_equal(out.numpy(), np.full(5, 2.0, np.float32))
    assert len(f.variants) == 1 and any("max_variants=1" in str(w.message) for w in caught)
    with pytest.raises(ValueError, match="max_variants"):
        compile(lambda x: x, recompile_limit=0)


def test_modes_and_backends_are_checked_and_change_nothing():
    x = cr.tensor(np.arange(6, dtype=np.float32))
    for mode in TORCH_MODES:
        f = compile(lambda t: t * 3 + 1, mode=mode)
        for _ in range(4):
            out = f(x)
        assert np.array_equal(out.numpy(), np.arange(6, dtype=np.float32) * 3 + 1)
        assert any(v.replays for v in f.variants.values()), f.explain()
    for backend in TORCH_BACKENDS:
        compile(lambda t: t, backend=backend)
    with pytest.raises(ValueError, match="mode"):
        compile(lambda t: t, mode="fastest")
    with pytest.raises(ValueError, match="backend 'tvm'"):
        compile(lambda t: t, backend="tvm")
    with pytest.raises(ValueError, match="backend"):
        compile(lambda t: t, backend=lambda graph, inputs: graph)


def test_dynamic_and_inductor_options_warn_that_they_have_no_effect():
    with pytest.warns(UserWarning, match="dynamic=True has no effect"):
        compile(lambda t: t, dynamic=True)
    with pytest.warns(UserWarning, match="inductor"):
        compile(lambda t: t, options={"trace.enabled": True})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compile(lambda t: t, dynamic=False, options={})


def test_name_names_the_function_in_explain():
    f = compile(lambda t: t + 1, name="my_region")
    f(cr.ones(2))
    assert f.explain().startswith("compiled my_region:")


def test_the_keywords_are_torch_compiles_and_its_modes_and_backends():
    """Against the installed PyTorch: every keyword translated is one of torch.compile's, the modes are
    exactly its modes, and the backends accepted are among its registered ones."""
    torch = pytest.importorskip("torch")
    from torch import _dynamo, _inductor

    keywords = set(inspect.signature(torch.compile).parameters)
    assert {"fullgraph", "recompile_limit", "mode", "backend", "dynamic", "options", "name", "disable"} <= keywords
    assert set(TORCH_MODES) - {None} == set(_inductor.list_mode_options())
    assert set(TORCH_BACKENDS) - {None} <= set(_dynamo.list_backends(None))


def test_module_compile_in_place_replays_inference_and_training():
    """``model.compile()`` (PyTorch's Module.compile): the module stays itself (its parameters, state dict
    and type), and inference and training calls replay programs whose results are eager's."""
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    twin = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    twin.load_state_dict(model.state_dict())
    x = cr.tensor(np.linspace(-2, 2, 12, dtype=np.float32).reshape(3, 4))
    model.compile(disable=True)
    assert "forward" not in vars(model)
    model.compile(mode="reduce-overhead")
    assert isinstance(model, nn.Sequential) and list(model.state_dict()) == list(twin.state_dict())
    with cr.no_grad():
        for _ in range(4):
            out = model(x)
        want = twin(x)
    assert out.numpy().tobytes() == want.numpy().tobytes()
    assert any(v.replays for v in model.forward.variants.values()), model.forward.explain()
    for _ in range(5):
        for net in (model, twin):
            net.zero_grad()
            net(x).sum().backward()
        for p, q in zip(model.parameters(), twin.parameters()):
            assert p.grad.numpy().tobytes() == q.grad.numpy().tobytes()
    assert any(v.replays for v in model.forward.training_calls.joint.variants.values()), model.forward.explain()
