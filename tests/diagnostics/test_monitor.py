"""The gradient-flow monitor and its health report: constructed cases with known answers, and the deep
sigmoid network against the residual + LayerNorm one."""

import json
import math

import numpy as np
import pytest

import chainrule as cr
from chainrule import diagnostics, nn, optim
from chainrule.diagnostics import HealthConfig
from chainrule.diagnostics.experiment import build_deep_mlp
from chainrule.nn import functional as F


def _set(linear, weight, bias):
    with cr.no_grad():
        linear.weight.copy_(cr.tensor(weight, dtype=cr.float32))
        linear.bias.copy_(cr.tensor(bias, dtype=cr.float32))


def _train_step(model, opt, monitor, x, y=None):
    opt.zero_grad()
    out = model(x)
    loss = F.cross_entropy(out, y) if y is not None else (out ** 2).mean()
    loss.backward()
    opt.step()
    return monitor.step()


def _inject_grads(model, scale_of):
    """Set every parameter's .grad to a constant tensor whose norm we control (no backward needed)."""
    for name, p in model.named_parameters():
        p.grad = cr.full(p.shape, scale_of(name) / math.sqrt(p.numel()), dtype=p.dtype)


def _chain(n=6, width=4):
    return nn.Sequential(*[nn.Linear(width, width) for _ in range(n)])


# ----- activation statistics on constructed cases ------------------------------------------------------

def test_dead_units_and_zero_fraction_are_counted_exactly():
    model = nn.Sequential(nn.Linear(1, 4), nn.ReLU())
    # units 0, 1: pre-activation -1 for every input (dead); units 2, 3: relu(x), zero for negative x
    _set(model[0], [[0.0], [0.0], [1.0], [1.0]], [-1.0, -1.0, 0.0, 0.0])
    x = cr.tensor([[1.0], [-1.0], [2.0], [-2.0]])
    monitor = diagnostics.watch(model, track_updates=False)
    _train_step(model, optim.SGD(model.parameters(), lr=0.0), monitor, x)
    stats = monitor.activations["1"]
    assert stats["zero_fraction"] == [pytest.approx(12 / 16)]
    assert stats["dead_fraction"] == [pytest.approx(0.5)]
    assert monitor.never_active_fraction("1") == pytest.approx(0.5)
    assert not monitor.report().has("dead_units")  # 50% is not above the default threshold (0.5)
    flagged = monitor.report(HealthConfig(dead_fraction=0.4))
    issue = next(i for i in flagged.issues if i.kind == "dead_units")
    assert issue.where == "1" and issue.evidence["dead_fraction"] == pytest.approx(0.5)
    assert "LeakyReLU" in issue.advice


@pytest.mark.parametrize("act, expected", [(nn.Tanh(), 0.5), (nn.Sigmoid(), 0.5), (nn.Hardtanh(), 0.5), (nn.GELU(), None)])
def test_saturation_counts(act, expected):
    model = nn.Sequential(nn.Linear(1, 4), act)
    # units 0, 1 get +-10 (saturated for tanh/sigmoid, clipped by hardtanh), units 2, 3 get +-0.1
    _set(model[0], [[10.0], [10.0], [0.1], [0.1]], [0.0] * 4)
    monitor = diagnostics.watch(model, track_updates=False)
    _train_step(model, optim.SGD(model.parameters(), lr=0.0), monitor, cr.tensor([[1.0], [-1.0]]))
    saturated = monitor.activations["1"]["saturated_fraction"][0]
    if expected is None:
        assert math.isnan(saturated)  # GELU does not saturate: nothing to count
        assert not monitor.report(HealthConfig(saturation_fraction=0.01)).has("saturated_activations")
    else:
        assert saturated == pytest.approx(expected)
        report = monitor.report(HealthConfig(saturation_fraction=0.4))
        assert [i.where for i in report.issues if i.kind == "saturated_activations"] == ["1"]
        assert not monitor.report(HealthConfig(saturation_fraction=0.6)).has("saturated_activations")


def test_saturation_default_threshold_flags_half_saturated():
    model = nn.Sequential(nn.Linear(1, 4), nn.Tanh())
    _set(model[0], [[10.0], [10.0], [0.1], [0.1]], [0.0] * 4)
    monitor = diagnostics.watch(model, track_updates=False)
    _train_step(model, optim.SGD(model.parameters(), lr=0.0), monitor, cr.tensor([[1.0], [-1.0]]))
    assert monitor.report().has("saturated_activations")  # 0.5 > default 0.3


class _Scaled(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(cr.ones(1))
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(x * self.scale)


def test_units_are_channels_for_4d_and_last_axis_for_3d():
    model = _Scaled()
    monitor = diagnostics.watch(model, track_updates=False)
    opt = optim.SGD(model.parameters(), lr=0.0)
    x4 = np.ones((2, 3, 4, 5), dtype=np.float32)
    x4[:, 0] = -1.0  # channel 0 dead everywhere
    _train_step(model, opt, monitor, cr.tensor(x4))
    x3 = np.ones((2, 6, 4), dtype=np.float32)
    x3[..., 1:] = -1.0  # features 1..3 dead at every position
    _train_step(model, opt, monitor, cr.tensor(x3))
    assert monitor.activations["act"]["dead_fraction"] == [pytest.approx(1 / 3), pytest.approx(3 / 4)]


def test_only_training_forwards_before_a_recorded_step_are_measured():
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU())
    _set(model[0], np.eye(3, 2).tolist(), [0.0] * 3)
    monitor = diagnostics.watch(model, every=2, track_updates=False)
    opt = optim.SGD(model.parameters(), lr=0.0)
    positive, negative = cr.ones(4, 2), -cr.ones(4, 2)
    _train_step(model, opt, monitor, positive)                 # step 1: recorded
    _train_step(model, opt, monitor, negative)                 # step 2: not recorded, not measured
    model.eval()
    with cr.no_grad():
        model(negative)                                        # evaluation: never measured
    model.train()
    _train_step(model, opt, monitor, positive)                 # step 3: recorded
    assert monitor.steps == [1, 3]
    # the third unit (zero weights) is always zero: 1/3 of the outputs, never the 100% of the negative batches
    assert monitor.activations["1"]["zero_fraction"] == [pytest.approx(1 / 3)] * 2


# ----- parameters: norms, update ratios --------------------------------------------------------------

def test_grad_weight_norms_and_update_ratio_match_a_manual_sgd_step():
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    monitor = diagnostics.watch(model)
    before = {n: p.detach().cpu().numpy().copy() for n, p in model.named_parameters()}
    opt = optim.SGD(model.parameters(), lr=0.1)
    _train_step(model, opt, monitor, cr.randn(5, 3), cr.tensor([0, 1, 1, 0, 1]))
    for name, p in model.named_parameters():
        grad = p.grad.cpu().numpy()
        assert monitor.grad_norms[name][0] == pytest.approx(np.linalg.norm(grad), rel=1e-5)
        assert monitor.weight_norms[name][0] == pytest.approx(np.linalg.norm(p.detach().cpu().numpy()), rel=1e-5)
        expected = 0.1 * np.linalg.norm(grad) / np.linalg.norm(before[name])
        assert monitor.update_ratios[name][0] == pytest.approx(expected, rel=1e-4)


def test_update_ratio_of_later_recorded_steps_uses_the_weights_before_that_step():
    model = nn.Sequential(nn.Linear(3, 3))
    monitor = diagnostics.watch(model, every=3)
    opt = optim.SGD(model.parameters(), lr=0.05)
    snapshots = []
    for _ in range(4):
        snapshots.append(model[0].weight.detach().cpu().numpy().copy())
        _train_step(model, opt, monitor, cr.randn(4, 3))
    assert monitor.steps == [1, 4]
    w_before, w_after = snapshots[3], model[0].weight.detach().cpu().numpy()
    expected = np.linalg.norm(w_after - w_before) / np.linalg.norm(w_before)
    assert monitor.update_ratios["0.weight"][1] == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("lr, kind", [(1e-8, "update_ratio_too_small"), (50.0, "update_ratio_too_large")])
def test_update_ratio_far_from_1e_3_is_flagged(lr, kind):
    model = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 2))
    monitor = diagnostics.watch(model)
    opt = optim.SGD(model.parameters(), lr=lr)
    for _ in range(3):
        _train_step(model, opt, monitor, cr.randn(16, 8), cr.randint(0, 2, (16,)))
    (issue,) = [i for i in monitor.report().issues if i.kind == kind]
    assert issue.where == "2 parameters (0.weight .. 1.weight)"
    assert set(issue.evidence["parameters"]) == {"0.weight", "1.weight"}  # biases are not checked (min ndim 2)


def test_healthy_small_network_has_no_issue():
    cr.manual_seed(1)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    monitor = diagnostics.watch(model)
    opt = optim.SGD(model.parameters(), lr=0.05)
    x, y = cr.randn(32, 8), cr.randint(0, 3, (32,))
    for _ in range(4):
        _train_step(model, opt, monitor, x, y)
    report = monitor.report()
    assert report.ok and report.verdict == "healthy", str(report)


# ----- gradient profile: vanishing, exploding, NaN, unused ------------------------------------------------

def test_injected_vanishing_profile_is_flagged_with_evidence():
    model = _chain(6)
    monitor = diagnostics.watch(model, track_updates=False)
    _inject_grads(model, lambda name: 10.0 ** (-2 * (5 - int(name.split(".")[0]))))  # layer 0: 1e-10, layer 5: 1
    monitor.step()
    issue = next(i for i in monitor.report().issues if i.kind == "vanishing_gradients")
    assert issue.where == "0 .. 1" and issue.severity == "error"
    assert issue.evidence["early_layers"] == ["0", "1"] and issue.evidence["late_layers"] == ["4", "5"]
    assert issue.evidence["ratio_early_to_late"] < 1e-6
    assert "orders of magnitude" in issue.message


def test_absolute_floor_flags_vanishing_even_without_a_slope():
    model = _chain(3)
    monitor = diagnostics.watch(model, track_updates=False)
    _inject_grads(model, lambda name: 1e-12)
    monitor.step()
    report = monitor.report()
    assert report.has("vanishing_gradients")
    assert monitor.report(HealthConfig(grad_floor=1e-13)).ok


def test_gradients_growing_towards_the_input_are_exploding():
    model = _chain(6)
    monitor = diagnostics.watch(model, track_updates=False)
    _inject_grads(model, lambda name: 10.0 ** (2 * (5 - int(name.split(".")[0]))))
    monitor.step()
    assert monitor.report().kinds() == ["exploding_gradients"]


def test_gradient_norm_growth_over_steps_is_exploding():
    model = _chain(2)
    monitor = diagnostics.watch(model, track_updates=False)
    for step in range(8):
        _inject_grads(model, lambda name, power=step: 10.0 ** power)
        monitor.step()
    report = monitor.report(HealthConfig(window=2))
    issue = next(i for i in report.issues if i.kind == "exploding_gradients")
    assert issue.evidence["growth"] == pytest.approx(1e6, rel=1e-3)
    assert monitor.report(HealthConfig(window=2, growth_ratio=1e7)).ok


def test_nan_gradient_and_unused_parameter_are_reported():
    model = _chain(3)
    monitor = diagnostics.watch(model, track_updates=False)
    _inject_grads(model, lambda name: 1.0)
    model[1].weight.grad._data[0, 0] = np.nan
    model[2].bias.grad = None
    monitor.step()
    report = monitor.report()
    nan_issue = next(i for i in report.issues if i.kind == "non_finite_gradients")
    assert nan_issue.where == "1.weight" and nan_issue.evidence["step"] == 1
    assert [i.where for i in report.issues if i.kind == "no_gradient"] == ["2.bias"]
    assert json.loads(report.to_json())["issues"][0]["evidence"]["step"] == 1  # NaN norms become null, still valid JSON


def test_deep_sigmoid_network_vanishes_and_residual_layernorm_does_not():
    data = (cr.rand(64, 64), cr.randint(0, 10, (64,)))
    verdicts = {}
    for kind in ("sigmoid", "residual_ln"):
        cr.manual_seed(0)
        model = build_deep_mlp(kind, depth=20, width=32)
        monitor = diagnostics.watch(model)
        opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        for _ in range(3):
            _train_step(model, opt, monitor, *data)
        verdicts[kind] = monitor.report()
        norms = list(monitor.layer_grad_norms(0).values())
        if kind == "sigmoid":
            assert norms[0] / norms[-1] < 1e-8  # many orders of magnitude at initialisation
        else:
            assert 1e-2 < norms[0] / norms[-1] < 1e2
    assert verdicts["sigmoid"].has("vanishing_gradients")
    assert not verdicts["residual_ln"].has("vanishing_gradients")
    assert not verdicts["residual_ln"].has("exploding_gradients")


# ----- life cycle, optimizer hook, callback ------------------------------------------------------------------

def _hook_count(model):
    return sum(len(m._forward_hooks) for m in model.modules())


def test_context_manager_removes_hooks_and_keeps_records():
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1))
    opt = optim.SGD(model.parameters(), lr=0.1)
    with diagnostics.watch(model) as monitor:
        assert _hook_count(model) > 0
        _train_step(model, opt, monitor, cr.randn(3, 2))
    assert _hook_count(model) == 0 and monitor.removed
    assert monitor.steps == [1] and monitor.report().steps == [1]
    with pytest.raises(RuntimeError, match="removed"):
        monitor.step()
    assert len(monitor.learning_rates) == 1 and math.isnan(monitor.learning_rates[0])  # no optimizer given


def test_following_the_optimizer_records_without_step_calls_and_unhooks():
    model = nn.Sequential(nn.Linear(2, 2))
    opt = optim.SGD(model.parameters(), lr=0.1)
    monitor = diagnostics.watch(model, optimizer=opt, every=2)
    for _ in range(5):
        opt.zero_grad()
        model(cr.randn(3, 2)).sum().backward()
        opt.step()
    assert monitor.steps == [1, 3, 5] and monitor.hooks_optimizer
    assert monitor.learning_rates == [0.1] * 3
    monitor.remove()
    assert "step" not in vars(opt)  # the class's step again
    opt.step()
    assert monitor.steps == [1, 3, 5]


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(TypeError, match="Module"):
        diagnostics.watch("model")
    with pytest.raises(ValueError, match="every"):
        diagnostics.watch(nn.Linear(2, 2), every=0)
    with pytest.raises(TypeError, match="step="):
        diagnostics.watch(nn.Linear(2, 2)).step(3)
    with pytest.raises(ValueError, match="requires grad"):
        diagnostics.watch(nn.Linear(2, 2).requires_grad_(False))
    with pytest.raises(ValueError, match="dead_fraction"):
        HealthConfig(dead_fraction=1.5)
    with pytest.raises(ValueError, match="update_ratio_low"):
        HealthConfig(update_ratio_low=1.0, update_ratio_high=0.5)
    with pytest.raises(TypeError, match="unknown thresholds"):
        HealthConfig().replace(dead=0.1)
    assert HealthConfig().replace(window=3).window == 3


def test_fit_callback_records_every_step_and_saves_the_report(tmp_path):
    from chainrule.diagnostics import GradientMonitorCallback
    from chainrule.train import fit

    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    x, y = cr.randn(40, 4), cr.randint(0, 3, (40,))
    callback = GradientMonitorCallback(every=2, out_dir=tmp_path / "diag")
    fit(model, (x, y), loss=F.cross_entropy, optimizer=optim.SGD(model.parameters(), lr=0.1), epochs=2,
        batch_size=10, verbose=0, callbacks=[callback])
    assert callback.monitor.steps == [1, 3, 5, 7] and callback.monitor.removed
    assert callback.monitor.learning_rates == [0.1] * 4
    saved = json.loads((tmp_path / "diag" / "report.json").read_text())
    assert saved["steps_recorded"] == 4 and [p["name"] for p in saved["parameters"]][0] == "0.weight"
    for name in ("gradient_flow.png", "gradient_history.png", "activation_histograms.png"):
        assert (tmp_path / "diag" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "0.weight" in (tmp_path / "diag" / "report.txt").read_text()


def test_monitor_callback_adapter_steps_an_existing_monitor():
    from chainrule.train import fit

    model = nn.Sequential(nn.Linear(4, 3))
    monitor = diagnostics.watch(model)
    fit(model, (cr.randn(20, 4), cr.randint(0, 3, (20,))), loss=F.cross_entropy,
        optimizer=optim.SGD(model.parameters(), lr=0.1), epochs=1, batch_size=5, verbose=0, callbacks=[monitor.callback()])
    assert monitor.steps == [1, 2, 3, 4] and not monitor.removed  # not owned by the callback: still active
    monitor.remove()


def test_report_text_table_and_json():
    model = nn.Sequential(nn.Linear(3, 3), nn.Sigmoid(), nn.Linear(3, 2))
    monitor = diagnostics.watch(model)
    _train_step(model, optim.SGD(model.parameters(), lr=0.1), monitor, cr.randn(4, 3), cr.tensor([0, 1, 0, 1]))
    report = monitor.report()
    text = str(report)
    assert text.startswith("gradient-flow report: 1 recorded steps")
    for column in ("parameter", "grad norm", "update/weight", "activation", "saturated", "dead units"):
        assert column in report.table()
    data = json.loads(report.to_json())
    assert data["parameters"][0]["name"] == "0.weight" and data["activations"][0]["type"] == "Sigmoid"
    assert data["config"]["dead_fraction"] == 0.5


def test_the_gpt_models_activations_are_watched():
    """chainrule.models.GPT applies GELU as a module, so the monitor reports each block's activations."""
    from chainrule.models import GPT

    cr.manual_seed(0)
    model = GPT(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8)
    opt = optim.AdamW(model.parameters(), lr=1e-3)
    idx = cr.randint(0, 11, (4, 8))
    with diagnostics.watch(model, opt) as monitor:
        for _ in range(2):
            opt.zero_grad()
            F.cross_entropy(model(idx).reshape(-1, 11), idx.reshape(-1)).backward()
            opt.step()
    assert {"blocks.0.act", "blocks.1.act"} <= set(monitor.activations)
    assert all(len(monitor.activations[name]["std"]) == 2 and monitor.activations[name]["std"][-1] > 0
               for name in ("blocks.0.act", "blocks.1.act"))
