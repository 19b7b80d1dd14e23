"""CyclicLR and chainrule.optim.swa_utils (AveragedModel, the SWA/EMA averages, SWALR, update_bn) against
PyTorch."""

import copy

import numpy as np
import pytest

import chainrule as cr
from chainrule import nn as cnn
from chainrule import optim
from chainrule.optim import swa_utils

torch = pytest.importorskip("torch")
from torch.optim import swa_utils as t_swa  # noqa: E402


def _opt_pair(kind, groups=1, **options):
    """The same optimizer over the same (dummy) parameters in both frameworks."""
    mine = [{"params": [cr.zeros(2, requires_grad=True)]} for _ in range(groups)]
    theirs = [{"params": [torch.zeros(2, requires_grad=True)]} for _ in range(groups)]
    return getattr(torch.optim, kind)(theirs, **options), getattr(optim, kind)(mine, **options)


def _momentum(group):
    return group["betas"][0] if "betas" in group else group.get("momentum")


def _sequences(t_opt, c_opt, t_sched, c_sched, steps):
    seqs = ([], [])
    for _ in range(steps):
        for opt, sched, seq in ((t_opt, t_sched, seqs[0]), (c_opt, c_sched, seqs[1])):
            seq.append(([g["lr"] for g in opt.param_groups], [_momentum(g) for g in opt.param_groups],
                        sched.get_last_lr()))
            opt.step()
            sched.step()
    return seqs


class Halve:
    """A callable scale_fn whose attributes a state dict keeps."""

    def __init__(self):
        self.base = 0.5

    def __call__(self, x):
        return self.base ** (x - 1)


CYCLIC = {
    "triangular": dict(base_lr=0.01, max_lr=0.1, step_size_up=4),
    "triangular_asym": dict(base_lr=0.01, max_lr=0.1, step_size_up=3, step_size_down=5),
    "triangular2": dict(base_lr=0.01, max_lr=0.1, step_size_up=3, mode="triangular2"),
    "exp_range": dict(base_lr=0.01, max_lr=0.1, step_size_up=3, mode="exp_range", gamma=0.9),
    "scale_fn_cycle": dict(base_lr=0.01, max_lr=0.1, step_size_up=3, scale_fn=lambda x: 1 / x),
    "scale_fn_iterations": dict(base_lr=[0.01, 0.02], max_lr=[0.1, 0.3], step_size_up=2, step_size_down=3,
                                scale_fn=lambda x: 0.95**x, scale_mode="iterations", base_momentum=[0.7, 0.75],
                                max_momentum=[0.9, 0.95]),
    "no_momentum": dict(base_lr=0.01, max_lr=0.1, step_size_up=3, cycle_momentum=False),
}


@pytest.mark.parametrize("kind, options", [("SGD", dict(lr=0.5, momentum=0.5)), ("Adam", dict(lr=0.5))])
@pytest.mark.parametrize("case", sorted(CYCLIC))
def test_cyclic_lr_and_momentum_sequences_match_pytorch(case, kind, options):
    settings = CYCLIC[case]
    groups = 2 if isinstance(settings["base_lr"], list) else 1
    t_opt, c_opt = _opt_pair(kind, groups, **options)
    t_sched = torch.optim.lr_scheduler.CyclicLR(t_opt, **settings)
    c_sched = optim.lr_scheduler.CyclicLR(c_opt, **settings)
    theirs, mine = _sequences(t_opt, c_opt, t_sched, c_sched, 30)  # several cycles
    assert len({tuple(lrs) for lrs, _, _ in theirs}) > 3
    np.testing.assert_allclose(np.array([m[0] for m in mine]), np.array([t[0] for t in theirs]), rtol=1e-13)
    np.testing.assert_allclose(np.array([m[2] for m in mine]), np.array([t[2] for t in theirs]), rtol=1e-13)
    moms = [(m[1], t[1]) for m, t in zip(mine, theirs)]
    np.testing.assert_allclose(np.array([m for m, _ in moms], float), np.array([t for _, t in moms], float), rtol=1e-13)
    if kind == "Adam" and settings.get("cycle_momentum", True):
        assert c_opt.param_groups[0]["betas"][1] == 0.999  # beta2 kept
        assert len({b for betas, _ in moms[:8] for b in betas}) > 2  # beta1 cycled


def test_cyclic_lr_needs_a_momentum_when_cycling_it():
    for fw_optim, params in ((torch.optim, [torch.zeros(2, requires_grad=True)]),
                             (optim, [cr.zeros(2, requires_grad=True)])):
        opt = fw_optim.Adagrad(params, lr=0.1)
        with pytest.raises(ValueError, match="optimizer must support momentum or beta1 with `cycle_momentum`"):
            fw_optim.lr_scheduler.CyclicLR(opt, 0.01, 0.1)
        fw_optim.lr_scheduler.CyclicLR(opt, 0.01, 0.1, cycle_momentum=False)
    with pytest.raises(ValueError, match="mode 'sine' is invalid and scale_fn is None"):
        optim.lr_scheduler.CyclicLR(optim.SGD([cr.zeros(2, requires_grad=True)], lr=0.1, momentum=0.9), 0.01, 0.1,
                                    mode="sine")


def test_cyclic_lr_defaults_match_pytorch():
    t_opt, c_opt = _opt_pair("SGD", lr=0.5, momentum=0.5)
    t_sched = torch.optim.lr_scheduler.CyclicLR(t_opt, 0.001, 0.006)
    c_sched = optim.lr_scheduler.CyclicLR(c_opt, 0.001, 0.006)
    assert (c_sched.total_size, c_sched.step_ratio, c_sched.mode, c_sched.scale_mode) == \
        (t_sched.total_size, t_sched.step_ratio, t_sched.mode, t_sched.scale_mode)
    assert c_opt.param_groups[0]["momentum"] == t_opt.param_groups[0]["momentum"] == 0.9
    assert {k: v for k, v in c_opt.param_groups[0].items() if k in ("base_momentum", "max_momentum", "initial_lr")} == \
        {k: v for k, v in t_opt.param_groups[0].items() if k in ("base_momentum", "max_momentum", "initial_lr")}


@pytest.mark.parametrize("case", ["triangular2", "exp_range", "callable_scale_fn"])
def test_cyclic_lr_state_dict_round_trip(case):
    settings = dict(CYCLIC.get(case, dict(base_lr=0.01, max_lr=0.1, step_size_up=3, scale_fn=Halve())))
    t_opt, c_opt = _opt_pair("SGD", lr=0.5, momentum=0.5)
    t_sched = torch.optim.lr_scheduler.CyclicLR(t_opt, **settings)
    c_sched = optim.lr_scheduler.CyclicLR(c_opt, **settings)
    for _ in range(7):
        c_opt.step()
        c_sched.step()
        t_opt.step()
        t_sched.step()
    if case == "callable_scale_fn":
        c_sched._scale_fn_custom.base = t_sched._scale_fn_custom.base = 0.25
    mine, theirs = c_sched.state_dict(), t_sched.state_dict()
    assert sorted(mine) == sorted(theirs)  # _scale_fn_ref dropped, _scale_fn_custom as data
    assert "_scale_fn_ref" not in mine
    assert mine["_scale_fn_custom"] == theirs["_scale_fn_custom"]
    # a fresh scheduler resumes where the saved one was
    settings2 = dict(settings, scale_fn=Halve()) if case == "callable_scale_fn" else settings
    t_opt2, c_opt2 = _opt_pair("SGD", lr=0.5, momentum=0.5)
    c_opt2.load_state_dict(c_opt.state_dict())
    t_opt2.load_state_dict(t_opt.state_dict())
    c_resumed = optim.lr_scheduler.CyclicLR(c_opt2, **settings2)
    t_resumed = torch.optim.lr_scheduler.CyclicLR(t_opt2, **settings2)
    c_resumed.load_state_dict(mine)
    t_resumed.load_state_dict(copy.copy(theirs))
    assert c_resumed.last_epoch == 7
    for _ in range(8):
        c_resumed.step()
        c_sched.step()
        t_resumed.step()
        assert c_resumed.get_last_lr() == c_sched.get_last_lr()
        np.testing.assert_allclose(c_resumed.get_last_lr(), t_resumed.get_last_lr(), rtol=1e-13)
        assert c_opt2.param_groups[0]["momentum"] == pytest.approx(t_opt2.param_groups[0]["momentum"], rel=1e-13)


def test_cyclic_lr_state_dict_with_scale_fn_refused_by_a_scheduler_without_one():
    _, c_opt = _opt_pair("SGD", lr=0.5, momentum=0.5)
    saved = optim.lr_scheduler.CyclicLR(c_opt, 0.01, 0.1, scale_fn=Halve()).state_dict()
    _, c_opt2 = _opt_pair("SGD", lr=0.5, momentum=0.5)
    other = optim.lr_scheduler.CyclicLR(c_opt2, 0.01, 0.1)
    before = other.state_dict()
    with pytest.raises(ValueError, match="custom scale_fn"):
        other.load_state_dict(saved)
    assert other.state_dict() == before


# ----- swa_utils ------------------------------------------------------------------------------------


def _net(nn):
    return nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3))


def _model_pair(dtype="float64"):
    torch.manual_seed(0)
    theirs = _net(torch.nn).to(getattr(torch, dtype))
    ours = _net(cnn).to(dtype)
    ours.load_state_dict({k: cr.tensor(v.detach().cpu().numpy()) for k, v in theirs.state_dict().items()})
    return theirs, ours


def _train_step(fw, nn, model, opt, x, y, dtype):
    opt.zero_grad()
    nn.functional.mse_loss(model(fw.tensor(x, dtype=getattr(fw, dtype))), fw.tensor(y, dtype=getattr(fw, dtype))).backward()
    opt.step()


def _assert_state_close(ours, theirs, rtol):
    expected = theirs.state_dict()
    mine = ours.state_dict()
    assert list(mine) == list(expected)
    for key, value in mine.items():
        np.testing.assert_allclose(value.cpu().numpy(), expected[key].cpu().numpy(), rtol=rtol, atol=rtol * 0.1, err_msg=key)


AVERAGES = {
    "swa_default": lambda m: m.AveragedModel,
    "swa_avg_fn": lambda m: lambda model, **kw: m.AveragedModel(model, avg_fn=m.get_swa_avg_fn(), **kw),
    "swa_multi": lambda m: lambda model, **kw: m.AveragedModel(model, multi_avg_fn=m.get_swa_multi_avg_fn(), **kw),
    "ema_avg_fn": lambda m: lambda model, **kw: m.AveragedModel(model, avg_fn=m.get_ema_avg_fn(0.9), **kw),
    "ema_multi": lambda m: lambda model, **kw: m.AveragedModel(model, multi_avg_fn=m.get_ema_multi_avg_fn(0.7),
                                                               **kw),
}


def _torch_default_on_a_gpu():
    """What PyTorch's default average does on a device with foreach kernels (CUDA), as a multi_avg_fn for its
    CPU oracle: its own multi-tensor lerp for floating tensors (the weight 1 / (n + 1) a float32 tensor), and
    integer buffers, which its foreach addcdiv refuses there, by its per-tensor running-mean formula."""
    lerp, running_mean = t_swa.get_swa_multi_avg_fn(), t_swa.get_swa_avg_fn()

    def update(averaged, current, n_averaged):
        if averaged[0].is_floating_point():
            return lerp(averaged, current, n_averaged)
        for a, c in zip(averaged, current):
            a.copy_(running_mean(a, c, n_averaged))

    return update


@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-12), ("float32", 1e-5)])
@pytest.mark.parametrize("use_buffers", [False, True])
@pytest.mark.parametrize("average", sorted(AVERAGES))
def test_averaged_model_matches_pytorch(average, use_buffers, dtype, rtol):
    if average == "swa_multi" and use_buffers:
        pytest.skip("PyTorch's swa multi_avg_fn refuses integer buffers (addcdiv); chainrule averages them")
    theirs, ours = _model_pair(dtype)
    if average == "swa_default" and cr.get_default_device().type != "cpu":
        t_avg = t_swa.AveragedModel(theirs, multi_avg_fn=_torch_default_on_a_gpu(), use_buffers=use_buffers)
    else:
        t_avg = AVERAGES[average](t_swa)(theirs, use_buffers=use_buffers)
    c_avg = AVERAGES[average](swa_utils)(ours, use_buffers=use_buffers)
    t_opt = torch.optim.SGD(theirs.parameters(), lr=0.1, momentum=0.9)
    c_opt = optim.SGD(ours.parameters(), lr=0.1, momentum=0.9)
    rng = np.random.default_rng(0)
    for _ in range(5):
        x, y = rng.standard_normal((8, 4)), rng.standard_normal((8, 3))
        _train_step(torch, torch.nn, theirs, t_opt, x, y, dtype)
        _train_step(cr, cnn, ours, c_opt, x, y, dtype)
        t_avg.update_parameters(theirs)
        c_avg.update_parameters(ours)
    assert int(c_avg.n_averaged.item()) == int(t_avg.n_averaged.item()) == 5
    assert c_avg.n_averaged.dtype == cr.int64
    _assert_state_close(c_avg, t_avg, rtol)
    # the average differs from the model, and the copy is independent of it
    assert not np.allclose(c_avg.module[0].weight.detach().cpu().numpy(), ours[0].weight.detach().cpu().numpy())
    x = rng.standard_normal((3, 4))
    c_avg.eval()
    t_avg.eval()
    np.testing.assert_allclose(c_avg(cr.tensor(x, dtype=getattr(cr, dtype))).detach().cpu().numpy(),
                               t_avg(torch.tensor(x, dtype=getattr(torch, dtype))).detach().cpu().numpy(), rtol=rtol * 10,
                               atol=rtol)


def test_averaged_model_rejects_both_average_functions_and_bad_decays():
    _, ours = _model_pair()
    with pytest.raises(AssertionError, match="Only one of avg_fn and multi_avg_fn"):
        swa_utils.AveragedModel(ours, avg_fn=swa_utils.get_swa_avg_fn(), multi_avg_fn=swa_utils.get_swa_multi_avg_fn())
    for fn in (swa_utils.get_ema_avg_fn, swa_utils.get_ema_multi_avg_fn):
        with pytest.raises(ValueError, match=r"Invalid decay value 1.5 provided. Please provide a value in \[0,1\]"):
            fn(1.5)


def test_averaged_model_with_a_custom_avg_fn_and_its_state_dict():
    _, ours = _model_pair()
    avg = swa_utils.AveragedModel(ours, avg_fn=lambda a, c, n: a * 0.5 + c * 0.5)
    start = ours[0].weight.detach().cpu().numpy().copy()
    avg.update_parameters(ours)
    with cr.no_grad():
        ours[0].weight.add_(2.0)
    avg.update_parameters(ours)
    np.testing.assert_allclose(avg.module[0].weight.detach().cpu().numpy(), start + 1.0)
    assert list(avg.state_dict())[0] == "n_averaged" and "module.0.weight" in avg.state_dict()
    assert avg.module[0].weight.requires_grad and avg.module[0].weight.grad is None


def test_swalr_sequences_match_pytorch():
    for strategy, anneal_epochs, swa_lr in (("cos", 5, 0.05), ("linear", 3, [0.05, 0.01]), ("cos", 0, 0.02),
                                            ("linear", 1, 0.3)):
        t_opt, c_opt = _opt_pair("SGD", 2, lr=0.5)
        t_opt.param_groups[1]["lr"] = c_opt.param_groups[1]["lr"] = 0.2
        t_sched = t_swa.SWALR(t_opt, swa_lr=swa_lr, anneal_epochs=anneal_epochs, anneal_strategy=strategy)
        c_sched = swa_utils.SWALR(c_opt, swa_lr=swa_lr, anneal_epochs=anneal_epochs, anneal_strategy=strategy)
        theirs, mine = _sequences(t_opt, c_opt, t_sched, c_sched, 9)
        np.testing.assert_allclose(np.array([m[0] for m in mine]), np.array([t[0] for t in theirs]), rtol=1e-13)
        np.testing.assert_allclose(np.array([m[2] for m in mine]), np.array([t[2] for t in theirs]), rtol=1e-13)
        assert [g["swa_lr"] for g in c_opt.param_groups] == [g["swa_lr"] for g in t_opt.param_groups]


def test_swalr_state_dict_and_errors():
    t_opt, c_opt = _opt_pair("SGD", lr=0.5)
    t_sched = t_swa.SWALR(t_opt, swa_lr=0.05, anneal_epochs=4, anneal_strategy="linear")
    c_sched = swa_utils.SWALR(c_opt, swa_lr=0.05, anneal_epochs=4, anneal_strategy="linear")
    c_opt.step()
    c_sched.step()
    assert sorted(c_sched.state_dict()) == sorted(t_sched.state_dict())
    saved = c_sched.state_dict()
    _, c_opt2 = _opt_pair("SGD", lr=0.5)
    resumed = swa_utils.SWALR(c_opt2, swa_lr=0.05, anneal_strategy="cos")
    c_opt2.load_state_dict(c_opt.state_dict())  # the schedule goes on from the optimizer's lr
    resumed.load_state_dict(saved)
    assert resumed.anneal_func(0.5) == 0.5  # linear again
    for _ in range(4):
        resumed.step()
        c_sched.step()
        assert resumed.get_last_lr() == c_sched.get_last_lr()
    with pytest.raises(ValueError, match="anneal_strategy must be one of 'cos' or 'linear'"):
        swa_utils.SWALR(c_opt, swa_lr=0.05, anneal_strategy="exp")
    with pytest.raises(ValueError, match="anneal_epochs must be equal or greater than 0"):
        swa_utils.SWALR(c_opt, swa_lr=0.05, anneal_epochs=-1)


class _BNNet:
    """Conv and BatchNorm2d, then BatchNorm1d with a momentum of its own (built for either framework)."""

    def __new__(cls, nn):
        return nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3, momentum=0.3), nn.ReLU(),
                             nn.Flatten(), nn.Linear(3 * 4 * 4, 5), nn.BatchNorm1d(5))


@pytest.mark.parametrize("pairs", [False, True])
def test_update_bn_matches_pytorch(pairs):
    torch.manual_seed(1)
    theirs = _BNNet(torch.nn).double()
    ours = _BNNet(cnn).to("float64")
    ours.load_state_dict({k: cr.tensor(v.detach().cpu().numpy()) for k, v in theirs.state_dict().items()})
    rng = np.random.default_rng(2)
    batches = [rng.standard_normal((n, 2, 4, 4)) * 3 + 1 for n in (4, 6, 5)]
    for model, fw in ((theirs, torch), (ours, cr)):
        model(fw.tensor(batches[0] * 5))  # stale statistics that update_bn must reset
        model.eval()
    t_loader = [(torch.tensor(b), 0) if pairs else torch.tensor(b) for b in batches]
    c_loader = [[cr.tensor(b), 0] if pairs else cr.tensor(b) for b in batches]
    t_swa.update_bn(t_loader, theirs)
    swa_utils.update_bn(c_loader, ours)
    _assert_state_close(ours, theirs, 1e-12)
    assert int(ours[1].num_batches_tracked.item()) == 3
    assert (ours[1].momentum, ours[5].momentum) == (0.3, 0.1)  # restored
    assert not ours.training  # mode restored
    # averaged weights with update_bn: the usual SWA finish
    avg = swa_utils.AveragedModel(ours)
    avg.update_parameters(ours)
    swa_utils.update_bn(c_loader, avg)
    np.testing.assert_allclose(avg.module[1].running_mean.cpu().numpy(), ours[1].running_mean.cpu().numpy(), rtol=1e-12)


def test_update_bn_without_batchnorm_does_nothing():
    model = cnn.Sequential(cnn.Linear(2, 2))
    model.eval()
    swa_utils.update_bn([cr.ones(1, 2)], model)
    assert not model.training
