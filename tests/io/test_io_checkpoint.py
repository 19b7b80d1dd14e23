"""chainrule.io.save / load / Checkpoint.restore, with stand-ins for Module, Optimizer and LR scheduler that
follow PyTorch's state_dict contracts (the real classes get integration tests elsewhere), and with chainrule's
optimizers whose state is not shaped like their parameters (Adafactor, LBFGS)."""

import ast
import copy
import json
import math
import os
import pathlib
import pickle
from collections import Counter, OrderedDict

import numpy as np
import pytest

import chainrule as cr
import chainrule.io as cio
from chainrule.io import Checkpoint, CheckpointError, load, load_state_dict, read_header, save
from chainrule.io import safetensors as sft
from chainrule.nn import Parameter

# ----- stand-ins ---------------------------------------------------------------------------------------------


class TinyModule:
    """A dict of Parameters and buffers with nn.Module's state_dict / load_state_dict contract."""

    def __init__(self, shapes=None, seed=0):
        shapes = shapes or {"fc.weight": (4, 3), "fc.bias": (4,), "out.weight": (2, 4)}
        generator = cr.Generator(seed)
        self.params = {name: Parameter(cr.randn(*shape, generator=generator)) for name, shape in shapes.items()}
        self.buffers = {"num_batches": cr.tensor(seed * 10, dtype=cr.int64), "mask": cr.tensor([True, False, True])}

    def state_dict(self):
        return {**{name: p.detach() for name, p in self.params.items()}, **self.buffers}

    def load_state_dict(self, state_dict, strict=True):
        current = self.state_dict()
        missing = [k for k in current if k not in state_dict] if strict else []
        unexpected = [k for k in state_dict if k not in current] if strict else []
        wrong = [k for k in state_dict if k in current and tuple(state_dict[k].shape) != tuple(current[k].shape)]
        if missing or unexpected or wrong:
            raise RuntimeError(f"Error(s) in loading state_dict for TinyModule: {missing} {unexpected} {wrong}")
        for key, value in state_dict.items():
            if key in current:
                current[key].copy_(value)  # into the parameter's memory, on its own device

    def parameters(self):
        return list(self.params.values())

    def snapshot(self):
        return {k: v.cpu().numpy().copy() for k, v in self.state_dict().items()}


class TinyAdam:
    """Adam's state layout and PyTorch's state_dict packing (params -> ids), without the update rule."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False):
        self.param_groups = [{"params": list(params), "lr": lr, "betas": betas, "eps": eps,
                              "weight_decay": weight_decay, "amsgrad": amsgrad, "maximize": False}]
        self.state = {}

    def fake_steps(self, n, seed=1):
        generator = cr.Generator(seed)
        for _ in range(n):
            for p in self.param_groups[0]["params"]:
                entry = self.state.setdefault(p, {"step": cr.tensor(0.0), "exp_avg": cr.zeros(*p.shape),
                                                  "exp_avg_sq": cr.zeros(*p.shape)})
                entry["step"] = cr.tensor(entry["step"].item() + 1)
                entry["exp_avg"] = entry["exp_avg"] + cr.randn(*p.shape, generator=generator)
                entry["exp_avg_sq"] = entry["exp_avg_sq"] + cr.rand(*p.shape, generator=generator)

    def state_dict(self):
        ids, groups = {}, []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            packed["params"] = [ids.setdefault(id(p), len(ids)) for p in group["params"]]
            groups.append(packed)
        return {"state": {ids[id(p)]: dict(entry) for p, entry in self.state.items()}, "param_groups": groups}

    def load_state_dict(self, state_dict):
        saved = state_dict["param_groups"]
        if len(saved) != len(self.param_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        owner = {pid: p for group, mine in zip(saved, self.param_groups) for pid, p in zip(group["params"], mine["params"])}
        self.state = {owner[pid]: {k: cr.tensor(v) if isinstance(v, cr.Tensor) else v for k, v in entry.items()}
                      for pid, entry in state_dict["state"].items()}
        for group, mine in zip(saved, self.param_groups):
            mine.update({k: v for k, v in group.items() if k != "params"})


class TinySGD(TinyAdam):
    pass


class TinyStepLR:
    def __init__(self, optimizer, step_size, gamma=0.1):
        self.optimizer = optimizer
        self.step_size, self.gamma = step_size, gamma
        self.base_lrs = [g["lr"] for g in optimizer.param_groups]
        self.last_epoch, self._last_lr = 0, list(self.base_lrs)

    def step(self):
        self.last_epoch += 1
        factor = self.gamma ** (self.last_epoch // self.step_size)
        self._last_lr = [lr * factor for lr in self.base_lrs]

    def state_dict(self):
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state_dict):
        self.__dict__.update(state_dict)


def _trained(seed=0, steps=3):
    model = TinyModule(seed=seed)
    optimizer = TinyAdam(model.parameters(), lr=0.01, betas=(0.8, 0.99))
    optimizer.fake_steps(steps, seed=seed + 1)
    scheduler = TinyStepLR(optimizer, step_size=2, gamma=0.5)
    for _ in range(steps):
        scheduler.step()
    return model, optimizer, scheduler


def _assert_state_dicts_equal(got, want):
    assert list(got) == list(want)
    for key in want:
        assert got[key].dtype == want[key].dtype and got[key].shape == want[key].shape
        np.testing.assert_array_equal(np.asarray(got[key]), np.asarray(want[key]))


def _assert_optimizer_states_equal(got, want):
    assert got["param_groups"] == want["param_groups"]
    assert got["state"].keys() == want["state"].keys()
    for pid, entry in want["state"].items():
        assert got["state"][pid].keys() == entry.keys()
        for key, value in entry.items():
            np.testing.assert_array_equal(np.asarray(got["state"][pid][key]), np.asarray(value))


# ----- round trips -----------------------------------------------------------------------------------------


def test_model_round_trip_keeps_order_values_and_dtypes(tmp_path):
    model = TinyModule(seed=3)
    save(model, tmp_path / "m.safetensors")
    ckpt = load(tmp_path / "m.safetensors")
    _assert_state_dicts_equal(ckpt.state_dict, model.state_dict())
    assert all(type(t) is cr.Tensor and not t.requires_grad for t in ckpt.state_dict.values())
    _assert_state_dicts_equal(load_state_dict(tmp_path / "m.safetensors"), model.state_dict())

    fresh = TinyModule(seed=4)
    ckpt.restore(fresh)
    _assert_state_dicts_equal(fresh.state_dict(), model.state_dict())
    assert all(isinstance(p, Parameter) and p.requires_grad for p in fresh.parameters())


def test_dict_of_tensors_with_every_dtype_and_odd_shapes(tmp_path):
    tensors = {
        "f16": cr.tensor([1.5, -2.0], dtype=cr.float16), "f32": cr.randn(2, 3), "f64": cr.randn(3, dtype=cr.float64),
        "i8": cr.tensor([-3, 4], dtype=cr.int8), "i16": cr.tensor([300], dtype=cr.int16),
        "i32": cr.tensor([[1, 2]], dtype=cr.int32), "i64": cr.tensor(2**40), "u8": cr.tensor([255], dtype=cr.uint8),
        "bool": cr.tensor([[True], [False]]), "scalar": cr.tensor(3.25), "empty": cr.zeros(0, 5),
        "empty3": cr.zeros(2, 0, 1, dtype=cr.int64), "array": np.arange(4, dtype=np.int16),
        "grad": cr.randn(2, requires_grad=True),
    }
    save(tensors, tmp_path / "d.safetensors", include_rng=False)
    got = load_state_dict(tmp_path / "d.safetensors")
    assert list(got) == list(tensors)
    for name, value in tensors.items():
        want = np.asarray(value)
        assert got[name].shape == want.shape and got[name].dtype.np == want.dtype
        np.testing.assert_array_equal(got[name].cpu().numpy(), want)


def test_non_contiguous_tensor_is_saved_as_its_values(tmp_path):
    base = cr.arange(12.0).reshape(3, 4)
    save({"t": base.t(), "s": base[:, ::2]}, tmp_path / "n.safetensors")
    got = load_state_dict(tmp_path / "n.safetensors")
    np.testing.assert_array_equal(got["t"].cpu().numpy(), base.cpu().numpy().T)
    np.testing.assert_array_equal(got["s"].cpu().numpy(), base.cpu().numpy()[:, ::2])


def test_metadata_round_trip(tmp_path):
    config = {"width": 256, "act": "gelu", "dropout": 0.1, "layers": [2, 2], "kernel": (3, 3), "bias": True,
              "init": None, "clip": float("inf"), "floor": -math.inf, "unset": float("nan"), "name": "réseau ✓",
              "big": 2**100, "by_stage": {1: "a", (2, 3): "b"}, "nested": {"__tuple__": 1},
              "milestones": Counter([30, 30, 80]), "ordered": OrderedDict(b=1, a=2)}
    extra = {"best_val": 0.25, "ema": cr.tensor([1.0, 2.0]), "hist": np.array([0.5, 0.25]), "tags": ("a", "b")}
    save(TinyModule(), tmp_path / "c.safetensors", config=config, step=1200, epoch=3, extra=extra)
    ckpt = load(tmp_path / "c.safetensors")

    got = ckpt.config
    assert math.isnan(got.pop("unset")) and math.isnan(config.pop("unset"))
    assert got == config and type(got["kernel"]) is tuple and got["by_stage"][(2, 3)] == "b"
    assert type(got["milestones"]) is Counter and got["milestones"][7] == 0  # MultiStepLR relies on Counter
    assert list(got["ordered"]) == ["b", "a"]
    assert (ckpt.step, ckpt.epoch) == (1200, 3)
    assert ckpt.chainrule_version == cr.__version__ and ckpt.format_version == cio.FORMAT_VERSION
    got_extra = ckpt.extra
    assert got_extra["best_val"] == 0.25 and got_extra["tags"] == ("a", "b")
    assert isinstance(got_extra["ema"], cr.Tensor) and got_extra["ema"].tolist() == [1.0, 2.0]
    assert isinstance(got_extra["hist"], np.ndarray) and got_extra["hist"].tolist() == [0.5, 0.25]
    # the stored document is strict JSON (no NaN/Infinity literals) and the model part excludes extra tensors
    json.loads(ckpt.file_metadata["chainrule"], parse_constant=lambda name: pytest.fail(f"non-JSON constant {name}"))
    assert ckpt.metadata["step"] == 1200 and "__extra__.ema" not in ckpt.state_dict


def test_unset_metadata_is_none(tmp_path):
    save(TinyModule(), tmp_path / "c.safetensors", include_rng=False)
    ckpt = load(tmp_path / "c.safetensors")
    assert (ckpt.config, ckpt.step, ckpt.epoch, ckpt.extra) == (None, None, None, None)
    assert ckpt.optimizer_state_dict is None and ckpt.scheduler_state_dict is None and ckpt.rng_state is None


def test_optimizer_and_scheduler_round_trip(tmp_path):
    model, optimizer, scheduler = _trained(seed=0)
    save(model, tmp_path / "o.safetensors", optimizer=optimizer, scheduler=scheduler, step=3)
    names = set(read_header(tmp_path / "o.safetensors")[0])
    assert {"__optim__.state.0.exp_avg", "__optim__.state.2.exp_avg_sq", "__optim__.state.1.step"} <= names

    model2 = TinyModule(seed=9)
    optimizer2 = TinyAdam(model2.parameters())
    scheduler2 = TinyStepLR(optimizer2, step_size=7)
    ckpt = load(tmp_path / "o.safetensors")
    ckpt.restore(model2, optimizer=optimizer2, scheduler=scheduler2)

    _assert_state_dicts_equal(model2.state_dict(), model.state_dict())
    _assert_optimizer_states_equal(optimizer2.state_dict(), optimizer.state_dict())
    assert optimizer2.param_groups[0]["betas"] == (0.8, 0.99) and type(optimizer2.param_groups[0]["betas"]) is tuple
    assert optimizer2.param_groups[0]["params"] == model2.parameters()  # still the live parameters
    assert scheduler2.state_dict() == scheduler.state_dict()
    assert scheduler2.optimizer is optimizer2


def test_restored_optimizer_state_does_not_alias_the_checkpoint(tmp_path):
    model, optimizer, _ = _trained()
    save(model, tmp_path / "o.safetensors", optimizer=optimizer)
    ckpt = load(tmp_path / "o.safetensors")
    first = ckpt.optimizer_state_dict
    first["state"][0]["exp_avg"].cpu().numpy()[...] = 123.0
    np.testing.assert_array_equal(ckpt.optimizer_state_dict["state"][0]["exp_avg"].cpu().numpy(),
                                  optimizer.state_dict()["state"][0]["exp_avg"].cpu().numpy())


def test_rng_state_round_trip(tmp_path):
    cr.manual_seed(5)
    cr.randn(4)
    save(TinyModule(), tmp_path / "r.safetensors")
    expected = cr.randn(6).tolist()
    cr.manual_seed(99)
    load(tmp_path / "r.safetensors").restore(rng=True)
    assert cr.randn(6).tolist() == expected


def test_rng_is_left_alone_when_not_saved_or_not_asked(tmp_path):
    save(TinyModule(), tmp_path / "a.safetensors", include_rng=False)
    save(TinyModule(), tmp_path / "b.safetensors")
    assert "rng" not in load(tmp_path / "a.safetensors").metadata
    for path, rng in [(tmp_path / "a.safetensors", True), (tmp_path / "b.safetensors", False)]:
        cr.manual_seed(7)
        expected = cr.randn(3).tolist()
        cr.manual_seed(7)
        load(path).restore(rng=rng)
        assert cr.randn(3).tolist() == expected


def test_strict_false_ignores_missing_and_unexpected_keys(tmp_path):
    save({"fc.weight": cr.ones(4, 3), "other.weight": cr.ones(2)}, tmp_path / "p.safetensors")
    model = TinyModule()
    load(tmp_path / "p.safetensors").restore(model, strict=False)
    assert model.state_dict()["fc.weight"].tolist() == [[1.0] * 3] * 4
    with pytest.raises(CheckpointError, match="missing key"):
        load(tmp_path / "p.safetensors").restore(model)


# ----- mismatches: an error, and nothing changed ----------------------------------------------------------


@pytest.mark.parametrize("shapes, problem", [
    ({"fc.weight": (4, 3), "fc.bias": (4,)}, r'unexpected key\(s\) in the checkpoint: "out.weight"'),
    ({"fc.weight": (4, 3), "fc.bias": (4,), "out.weight": (2, 4), "head.bias": (1,)}, r'missing key.*"head.bias"'),
    ({"fc.weight": (5, 3), "fc.bias": (4,), "out.weight": (2, 4)}, r"size mismatch for fc.weight: shape \[4, 3\]"),
])
def test_mismatched_model_raises_and_changes_nothing(tmp_path, shapes, problem):
    model, optimizer, scheduler = _trained(seed=0)
    save(model, tmp_path / "m.safetensors", optimizer=optimizer, scheduler=scheduler)
    target = TinyModule(shapes, seed=5)
    target_optimizer = TinyAdam(target.parameters(), lr=0.5)
    target_optimizer.fake_steps(1)
    target_scheduler = TinyStepLR(target_optimizer, 3)
    before = (target.snapshot(), copy.deepcopy(target_optimizer.state_dict()), target_scheduler.state_dict())
    cr.manual_seed(11)
    expected_draw = cr.randn(2).tolist()
    cr.manual_seed(11)
    with pytest.raises(CheckpointError, match=problem) as caught:
        load(tmp_path / "m.safetensors").restore(target, optimizer=target_optimizer, scheduler=target_scheduler)
    assert "m.safetensors" in str(caught.value)
    _assert_unchanged(before, target, target_optimizer, target_scheduler)
    assert cr.randn(2).tolist() == expected_draw  # the RNG was not restored either


def _assert_unchanged(before, model, optimizer, scheduler):
    snapshot, optimizer_state, scheduler_state = before
    for key, value in model.snapshot().items():
        np.testing.assert_array_equal(value, snapshot[key])
    _assert_optimizer_states_equal(optimizer.state_dict(), optimizer_state)
    assert scheduler.state_dict() == scheduler_state


def _optimizer_case(kind):
    """(optimizer to restore into, expected message) for a checkpoint of _trained()'s 3-parameter Adam."""
    model = TinyModule(seed=2)
    if kind == "groups":
        optimizer = TinyAdam(model.parameters())
        optimizer.param_groups.append({**optimizer.param_groups[0], "params": []})
        return model, optimizer, "2"
    if kind == "count":
        return model, TinyAdam(model.parameters()[:2]), "group 0 has 3 parameters in the checkpoint but 2"
    if kind == "shape":
        other = TinyModule({"fc.weight": (4, 3), "fc.bias": (4,), "out.weight": (3, 4)}, seed=2)
        return model, TinyAdam(other.parameters()), r"'exp_avg' of parameter 2 has shape \[2, 4\].*\[3, 4\]"
    return model, TinySGD(model.parameters()), "from a TinyAdam, not a TinySGD"


@pytest.mark.parametrize("kind", ["groups", "count", "shape", "class"])
def test_mismatched_optimizer_raises_and_changes_nothing(tmp_path, kind):
    trained, optimizer, _ = _trained()
    save(trained, tmp_path / "o.safetensors", optimizer=optimizer)
    model, target, problem = _optimizer_case(kind)
    target.fake_steps(1)
    before = (model.snapshot(), copy.deepcopy(target.state_dict()))
    with pytest.raises(CheckpointError, match=problem):
        load(tmp_path / "o.safetensors").restore(model, optimizer=target)
    for key, value in model.snapshot().items():
        np.testing.assert_array_equal(value, before[0][key])
    _assert_optimizer_states_equal(target.state_dict(), before[1])


# ----- chainrule's own optimizers, whose state need not be shaped like the parameters -----------------------

REAL_OPTIMIZERS = {
    "Adafactor": dict(lr=0.05),  # row and column factors (R, 1) and (1, C) for the matrices
    "LBFGS": dict(max_iter=3, history_size=2, line_search_fn="strong_wolfe"),  # one flat history, under parameter 0
    "Rprop": dict(lr=0.02),  # elementwise: every state array has its parameter's shape
}


def _train(model, optimizer, steps):
    """``steps`` closure steps on a small least-squares loss of TinyModule's three parameters."""
    x = cr.tensor(np.linspace(-1.0, 1.0, 3, dtype=np.float32))
    params = model.params

    def closure():
        optimizer.zero_grad()
        hidden = cr.tanh(params["fc.weight"] @ x + params["fc.bias"])
        loss = ((params["out.weight"] @ hidden - 0.5) ** 2).sum()
        loss.backward()
        return loss

    for _ in range(steps):
        optimizer.step(closure)


@pytest.mark.parametrize("name", list(REAL_OPTIMIZERS))
def test_real_optimizer_round_trip_continues_training_bit_identically(tmp_path, name):
    model = TinyModule(seed=0)
    optimizer = getattr(cr.optim, name)(model.parameters(), **REAL_OPTIMIZERS[name])
    _train(model, optimizer, 3)
    save(model, tmp_path / "o.safetensors", optimizer=optimizer)

    model2 = TinyModule(seed=4)
    optimizer2 = getattr(cr.optim, name)(model2.parameters(), **REAL_OPTIMIZERS[name])
    load(tmp_path / "o.safetensors").restore(model2, optimizer=optimizer2)
    _assert_optimizer_states_equal(_flat_lists(optimizer2.state_dict()), _flat_lists(optimizer.state_dict()))
    _train(model, optimizer, 3)
    _train(model2, optimizer2, 3)
    _assert_state_dicts_equal(model2.state_dict(), model.state_dict())


def _flat_lists(state_dict):
    """L-BFGS keeps lists of tensors (its history) in its state: one entry per item, to compare them."""
    state = {pid: {f"{key}.{i}" if isinstance(value, list) else key: item
                   for key, value in entry.items() for i, item in enumerate(value if isinstance(value, list) else [value])}
             for pid, entry in state_dict["state"].items()}
    return {**state_dict, "state": state}


@pytest.mark.parametrize("name, problem", [
    ("Adafactor", r"Adafactor.load_state_dict: state 'row_var' of parameter 2 has shape \(2, 1\) .*needs \(3, 1\)"),
    ("LBFGS", r"LBFGS.load_state_dict: state '\w+' has shape \(24,\), but the parameters have 28 elements"),
    ("Rprop", r"Rprop.load_state_dict: state '\w+' of parameter 2 has shape \(2, 4\) but the parameter has shape \(3, 4\)"),
])
def test_real_optimizer_state_that_does_not_fit_is_refused_and_changes_nothing(tmp_path, name, problem):
    model = TinyModule(seed=0)
    optimizer = getattr(cr.optim, name)(model.parameters(), **REAL_OPTIMIZERS[name])
    _train(model, optimizer, 2)
    save(model, tmp_path / "o.safetensors", optimizer=optimizer)

    other = TinyModule({"fc.weight": (4, 3), "fc.bias": (4,), "out.weight": (3, 4)}, seed=3)
    target = getattr(cr.optim, name)(other.parameters(), **REAL_OPTIMIZERS[name])
    _train(other, target, 1)
    before = _flat_lists(target.state_dict())
    with pytest.raises(CheckpointError, match=f"its optimizer state does not fit the {name}: {problem}"):
        load(tmp_path / "o.safetensors").restore(optimizer=target)
    _assert_optimizer_states_equal(_flat_lists(target.state_dict()), before)


def test_missing_sections_are_reported(tmp_path):
    model = TinyModule()
    save(model, tmp_path / "m.safetensors")
    ckpt = load(tmp_path / "m.safetensors")
    optimizer = TinyAdam(model.parameters())
    with pytest.raises(CheckpointError, match="holds no optimizer state"):
        ckpt.restore(model, optimizer=optimizer)
    with pytest.raises(CheckpointError, match="holds no scheduler state"):
        ckpt.restore(model, scheduler=TinyStepLR(optimizer, 2))


class DtypeStrictModule(TinyModule):
    """Passes the checkpoint's own checks but refuses in its load_state_dict (a late failure)."""

    def load_state_dict(self, state_dict, strict=True):
        raise RuntimeError("refusing float32 weights")


def test_late_model_failure_rolls_back_optimizer_and_scheduler(tmp_path):
    model, optimizer, scheduler = _trained(seed=0)
    save(model, tmp_path / "m.safetensors", optimizer=optimizer, scheduler=scheduler)
    target = DtypeStrictModule(seed=1)
    target_optimizer = TinyAdam(target.parameters(), lr=0.3)
    target_optimizer.fake_steps(2, seed=8)
    target_scheduler = TinyStepLR(target_optimizer, 5)
    before = (target.snapshot(), copy.deepcopy(target_optimizer.state_dict()), target_scheduler.state_dict())
    with pytest.raises(CheckpointError, match="nothing was changed: RuntimeError: refusing float32"):
        load(tmp_path / "m.safetensors").restore(target, optimizer=target_optimizer, scheduler=target_scheduler)
    _assert_unchanged(before, target, target_optimizer, target_scheduler)


# ----- refused input and damaged checkpoints ---------------------------------------------------------------


@pytest.mark.parametrize("obj, kwargs, error, problem", [
    ({"__optim__.x": cr.ones(1)}, {}, ValueError, "checkpoints reserve"),
    ({"w": [1.0, 2.0]}, {}, TypeError, r"state_dict\['w'\] is a list"),
    ({"w": np.zeros(2, np.uint32)}, {}, TypeError, "uint32"),
    ({1: cr.ones(1)}, {}, TypeError, "keys must be strings"),
    ({"w": cr.ones(1)}, {"config": {"act": object()}}, TypeError, r"config\['act'\] of type object"),
    ({"w": cr.ones(1)}, {"extra": {"fn": len}}, TypeError, "extra"),
    ({"w": cr.ones(1)}, {"config": {frozenset(): 1}}, TypeError, "key of type frozenset"),
    ({"w": cr.ones(1)}, {"optimizer": object()}, TypeError, "optimizer= must have a state_dict"),
    (object(), {}, TypeError, "expected a Module"),
])
def test_refused_input_leaves_existing_checkpoint_untouched(tmp_path, obj, kwargs, error, problem):
    path = tmp_path / "c.safetensors"
    save(TinyModule(), path)
    before = path.read_bytes()
    with pytest.raises(error, match=problem):
        save(obj, path, **kwargs)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["c.safetensors"]


def test_crash_during_save_keeps_old_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "c.safetensors"
    model, optimizer, _ = _trained()
    save(model, path, optimizer=optimizer, step=1)

    def crash(*args):
        raise OSError("No space left on device")
    monkeypatch.setattr(sft.os, "fsync", crash)
    with pytest.raises(OSError, match="No space"):
        save(TinyModule(seed=5), path, step=2)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["c.safetensors"]
    ckpt = load(path)
    assert ckpt.step == 1
    _assert_state_dicts_equal(ckpt.state_dict, model.state_dict())


def _rewrite_document(path, change):
    arrays, metadata = cio.read_safetensors(path)
    document = json.loads(metadata["chainrule"])
    change(document)
    cio.write_safetensors(path, arrays, {"chainrule": json.dumps(document)})


@pytest.mark.parametrize("change, problem", [
    (lambda d: d.update(format_version=99), "format 99.*upgrade chainrule"),
    (lambda d: d.pop("format_version"), "no integer 'format_version'"),
    (lambda d: d.update(model_keys=["fc.weight", "ghost"]), "'model_keys' metadata does not match"),
    (lambda d: d.update(extra={"t": {"__tensor__": "__extra__.ghost"}}), r"does not hold: \['__extra__.ghost'\]"),
])
def test_damaged_metadata_is_reported(tmp_path, change, problem):
    path = tmp_path / "c.safetensors"
    save(TinyModule(), path)
    _rewrite_document(path, change)
    with pytest.raises(CheckpointError, match=problem):
        load(path)


def test_malformed_values_are_reported_on_access(tmp_path):
    path = tmp_path / "c.safetensors"
    save(TinyModule(), path)
    _rewrite_document(path, lambda d: d.update(config={"__float__": "huge"}))
    with pytest.raises(CheckpointError, match="metadata is malformed"):
        _ = load(path).config


def test_invalid_json_document(tmp_path):
    path = tmp_path / "c.safetensors"
    cio.write_safetensors(path, {"w": np.ones(2, np.float32)}, {"chainrule": "{not json"})
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load(path)


def test_truncated_checkpoint(tmp_path):
    path = tmp_path / "c.safetensors"
    save(TinyModule(), path)
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(CheckpointError, match=r"c\.safetensors.*truncated"):
        load(path)


# ----- files written by others ------------------------------------------------------------------------------


def test_foreign_file_loads_as_a_state_dict(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    model = TinyModule(seed=6)
    st.save_file(model.snapshot(), tmp_path / "f.safetensors", metadata={"format": "np"})
    ckpt = load(tmp_path / "f.safetensors")
    assert ckpt.metadata == {} and ckpt.file_metadata == {"format": "np"} and ckpt.step is None
    target = TinyModule(seed=1)
    ckpt.restore(target)
    _assert_state_dicts_equal(target.state_dict(), model.state_dict())


def test_foreign_file_with_unsupported_dtype(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    st.save_file({"ok": np.ones(2, np.float32), "ids": np.arange(3, dtype=np.uint32)}, tmp_path / "u.safetensors")
    with pytest.raises(CheckpointError, match="tensor 'ids' has dtype uint32, which chainrule does not support"):
        load_state_dict(tmp_path / "u.safetensors")


def test_our_checkpoint_loads_in_official_numpy_reader(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    model, optimizer, _ = _trained()
    save(model, tmp_path / "c.safetensors", optimizer=optimizer)
    loaded = st.load_file(tmp_path / "c.safetensors")
    for key, value in model.snapshot().items():
        np.testing.assert_array_equal(loaded[key], value)
    np.testing.assert_array_equal(loaded["__optim__.state.1.exp_avg_sq"],
                                  optimizer.state_dict()["state"][1]["exp_avg_sq"].cpu().numpy())


def test_checkpoint_repr(tmp_path):
    model, optimizer, _ = _trained()
    save(model, tmp_path / "c.safetensors", optimizer=optimizer, step=7)
    ckpt = load(tmp_path / "c.safetensors")
    assert isinstance(ckpt, Checkpoint)
    assert repr(ckpt) == f"Checkpoint('{tmp_path / 'c.safetensors'}', tensors=5, step=7, optimizer, rng)"


# ----- never pickle ----------------------------------------------------------------------------------------

IO_SOURCES = sorted(pathlib.Path(cio.__file__).parent.glob("*.py"))
FORBIDDEN_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "marshal", "shelve", "torch"}


@pytest.mark.parametrize("source", IO_SOURCES, ids=lambda p: p.name)
def test_io_package_never_imports_pickle_or_evaluates_code(source):
    tree = ast.parse(source.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            assert not {alias.name.split(".")[0] for alias in node.names} & FORBIDDEN_MODULES
        elif isinstance(node, ast.ImportFrom):
            assert (node.module or "").split(".")[0] not in FORBIDDEN_MODULES
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id not in {"eval", "exec", "compile", "__import__"}, f"{source.name}:{node.lineno}"
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in {"load", "loads"}:
            owner = getattr(node.func.value, "id", "")
            assert owner == "json", f"{source.name}:{node.lineno} calls {owner}.{node.func.attr}"
        elif isinstance(node, ast.keyword):
            assert node.arg != "allow_pickle", f"{source.name}:{node.value.lineno}"


def test_save_load_restore_never_touch_pickle(tmp_path, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("pickle used")
    for name in ("load", "loads", "dump", "dumps", "Unpickler", "Pickler"):
        monkeypatch.setattr(pickle, name, forbidden)
    monkeypatch.setattr(np, "load", forbidden)
    model, optimizer, scheduler = _trained()
    save(model, tmp_path / "c.safetensors", optimizer=optimizer, scheduler=scheduler, config={"a": (1,)}, step=1)
    target = TinyModule(seed=3)
    target_optimizer = TinyAdam(target.parameters())
    load(tmp_path / "c.safetensors").restore(target, target_optimizer, TinyStepLR(target_optimizer, 2))
    _assert_state_dicts_equal(target.state_dict(), model.state_dict())
