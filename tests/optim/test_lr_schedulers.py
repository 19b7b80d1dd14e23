"""Oracle tests: every scheduler sets the learning rates (and cycled momenta) PyTorch's sets, step
for step; plus state-dict round trips, failed loads and the warnings."""

import copy
import warnings

import numpy as np
import pytest

import chainrule as cr
from chainrule import optim
from chainrule.nn import Parameter
from chainrule.optim import lr_scheduler as ours_lib

torch = pytest.importorskip("torch")
torch.set_num_threads(1)
theirs_lib = torch.optim.lr_scheduler

STEPS = 30


def decay(epoch):
    return 0.95**epoch


def slower_decay(epoch):
    return 1.0 / (1.0 + 0.1 * epoch)


class Halver:
    """A callable object: its attributes are saved by LambdaLR.state_dict."""

    def __init__(self):
        self.every = 4

    def __call__(self, epoch):
        return 0.5 ** (epoch // self.every)


SCHEDULES = {
    "StepLR": lambda lib, opt: lib.StepLR(opt, step_size=7, gamma=0.5),
    "MultiStepLR": lambda lib, opt: lib.MultiStepLR(opt, milestones=[3, 10, 10, 20], gamma=0.3),
    "ExponentialLR": lambda lib, opt: lib.ExponentialLR(opt, gamma=0.9),
    "CosineAnnealingLR-past-T_max": lambda lib, opt: lib.CosineAnnealingLR(opt, T_max=10, eta_min=0.001),
    "CosineAnnealingLR": lambda lib, opt: lib.CosineAnnealingLR(opt, T_max=STEPS),
    "CosineAnnealingWarmRestarts": lambda lib, opt: lib.CosineAnnealingWarmRestarts(opt, T_0=7),
    "CosineAnnealingWarmRestarts-T_mult": lambda lib, opt: lib.CosineAnnealingWarmRestarts(opt, T_0=3, T_mult=2,
                                                                                           eta_min=0.01),
    "LinearLR-warmup": lambda lib, opt: lib.LinearLR(opt, start_factor=0.25, total_iters=8),
    "LinearLR-decay": lambda lib, opt: lib.LinearLR(opt, start_factor=1.0, end_factor=0.1, total_iters=10),
    "ConstantLR": lambda lib, opt: lib.ConstantLR(opt, factor=0.5, total_iters=4),
    "PolynomialLR": lambda lib, opt: lib.PolynomialLR(opt, total_iters=20, power=2.0),
    "LambdaLR": lambda lib, opt: lib.LambdaLR(opt, decay),
    "LambdaLR-per-group": lambda lib, opt: lib.LambdaLR(opt, [decay, slower_decay]),
    "MultiplicativeLR": lambda lib, opt: lib.MultiplicativeLR(opt, lambda epoch: 0.97),
    "OneCycleLR": lambda lib, opt: lib.OneCycleLR(opt, max_lr=[1.0, 0.5], total_steps=STEPS + 1),
    "OneCycleLR-linear": lambda lib, opt: lib.OneCycleLR(opt, max_lr=0.8, epochs=4, steps_per_epoch=8,
                                                         anneal_strategy="linear", pct_start=0.25),
    "OneCycleLR-three-phase": lambda lib, opt: lib.OneCycleLR(opt, max_lr=0.8, total_steps=STEPS + 2,
                                                              three_phase=True, base_momentum=0.8),
    "SequentialLR-warmup-cosine": lambda lib, opt: lib.SequentialLR(
        opt, [lib.LinearLR(opt, start_factor=0.1, total_iters=5), lib.CosineAnnealingLR(opt, T_max=25)],
        milestones=[5]),
    "SequentialLR-three": lambda lib, opt: lib.SequentialLR(
        opt, [lib.ConstantLR(opt, factor=0.2, total_iters=3), lib.ExponentialLR(opt, gamma=0.8),
              lib.StepLR(opt, step_size=4)], milestones=[3, 12]),
    "ChainedScheduler": lambda lib, opt: lib.ChainedScheduler(
        [lib.ExponentialLR(opt, gamma=0.9), lib.StepLR(opt, step_size=5, gamma=0.5)]),
}


def make_optimizers(kind="SGD"):
    """The same two-group optimizer in both frameworks (momentum 0.9 / Adam betas, for OneCycleLR)."""
    ours_params = [Parameter(cr.ones(2)), Parameter(cr.ones(3))]
    theirs_params = [torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(3))]
    groups = lambda ps: [{"params": [ps[0]]}, {"params": [ps[1]], "lr": 0.05}]  # noqa: E731
    if kind == "SGD":
        return optim.SGD(groups(ours_params), lr=0.1, momentum=0.9), torch.optim.SGD(groups(theirs_params), lr=0.1,
                                                                                       momentum=0.9)
    return optim.Adam(groups(ours_params), lr=0.1), torch.optim.Adam(groups(theirs_params), lr=0.1)


def lr_trace(opt, sched, steps=STEPS, metrics=None):
    """Learning rates (and momenta / beta1) after construction and after each step."""
    def snapshot():
        momenta = [g.get("momentum", g.get("betas", (None,))[0]) for g in opt.param_groups]
        return (list(sched.get_last_lr()), [g["lr"] for g in opt.param_groups], momenta)

    trace = [snapshot()]
    for i in range(steps):
        opt.step()
        if metrics is None:
            sched.step()
        else:
            sched.step(metrics[i])
        trace.append(snapshot())
    return trace


# Adam too where it matters: OneCycleLR cycles its beta1, and combined schedulers
SEQUENCE_CASES = [(name, "SGD") for name in SCHEDULES] + [
    (name, "Adam") for name in SCHEDULES if name.startswith(("OneCycle", "Sequential"))]


@pytest.mark.parametrize("name,kind", SEQUENCE_CASES, ids=[f"{n}-{k}" for n, k in SEQUENCE_CASES])
def test_lr_sequence_matches_torch(name, kind):
    ours_opt, theirs_opt = make_optimizers(kind)
    ours = lr_trace(ours_opt, SCHEDULES[name](ours_lib, ours_opt))
    theirs = lr_trace(theirs_opt, SCHEDULES[name](theirs_lib, theirs_opt))
    assert ours == theirs  # the same float arithmetic, so exactly the same numbers
    assert len({tuple(t[0]) for t in ours}) > 1  # the schedule does change the lr


PLATEAU_METRICS = [1.0, 0.9, 0.85, 0.86, 0.86, 0.87, 0.85, 0.84, 0.849, 0.85, 0.85, 0.85, 0.7, 0.71, 0.72, 0.73,
                   0.74, 0.75, 0.76, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.59, 0.61, 0.62, 0.63, 0.64]


@pytest.mark.parametrize("kwargs,metrics", [
    (dict(patience=2, factor=0.5), PLATEAU_METRICS),
    (dict(patience=1, factor=0.3, cooldown=2, threshold=0.01, min_lr=[0.01, 0.004]), PLATEAU_METRICS),
    (dict(mode="max", patience=1, threshold_mode="abs", threshold=0.02, factor=0.5, min_lr=1e-3),
     [1.0 - m for m in PLATEAU_METRICS]),
    (dict(patience=0, factor=0.9, eps=0.006), PLATEAU_METRICS),  # reductions smaller than eps are skipped
])
def test_reduce_lr_on_plateau_matches_torch(kwargs, metrics):
    ours_opt, theirs_opt = make_optimizers()
    ours = lr_trace(ours_opt, ours_lib.ReduceLROnPlateau(ours_opt, **kwargs), metrics=metrics)
    theirs = lr_trace(theirs_opt, theirs_lib.ReduceLROnPlateau(theirs_opt, **kwargs), metrics=metrics)
    assert ours == theirs
    assert ours[-1][1] != ours[0][1]


def test_reduce_lr_on_plateau_accepts_a_tensor_metric():
    opt, _ = make_optimizers()
    sched = ours_lib.ReduceLROnPlateau(opt, patience=0)
    sched.step(cr.tensor(1.0))
    sched.step(cr.tensor(2.0))
    assert sched.get_last_lr() == pytest.approx([0.01, 0.005])


@pytest.mark.parametrize("name", ["StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR", "LinearLR-decay",
                                  "ConstantLR", "PolynomialLR"])
def test_step_with_epoch_uses_the_closed_form_like_torch(name):
    ours_opt, theirs_opt = make_optimizers()
    ours_sched, theirs_sched = SCHEDULES[name](ours_lib, ours_opt), SCHEDULES[name](theirs_lib, theirs_opt)
    epochs = [3, 7, 7, 12, 2, 25]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for epoch in epochs:
            ours_opt.step()
            theirs_opt.step()
            ours_sched.step(epoch)
            theirs_sched.step(epoch)
            assert ours_sched.get_last_lr() == theirs_sched.get_last_lr()
    with pytest.warns(UserWarning, match="deprecated"):
        ours_sched.step(3)


def test_cosine_closed_form_agrees_with_the_recursion():
    opt, _ = make_optimizers()
    sched = ours_lib.CosineAnnealingLR(opt, T_max=12, eta_min=0.01)
    for epoch in range(1, 12):
        opt.step()
        sched.step()
        expected = [0.01 + (b - 0.01) * (1 + np.cos(np.pi * epoch / 12)) / 2 for b in (0.1, 0.05)]
        np.testing.assert_allclose(sched.get_last_lr(), expected, rtol=1e-12)


# ----- state dicts ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["StepLR", "CosineAnnealingLR-past-T_max", "LambdaLR-per-group", "OneCycleLR",
                                  "SequentialLR-warmup-cosine", "ChainedScheduler"])
def test_scheduler_state_dict_round_trip(name):
    opt, _ = make_optimizers()
    straight = lr_trace(opt, SCHEDULES[name](ours_lib, opt), steps=20)

    opt1, _ = make_optimizers()
    sched1 = SCHEDULES[name](ours_lib, opt1)
    first = lr_trace(opt1, sched1, steps=10)
    saved_sched, saved_opt = sched1.state_dict(), opt1.state_dict()
    assert "optimizer" not in saved_sched

    opt2, _ = make_optimizers()
    sched2 = SCHEDULES[name](ours_lib, opt2)
    sched2.load_state_dict(saved_sched)
    opt2.load_state_dict(saved_opt)
    rest = lr_trace(opt2, sched2, steps=10)
    assert first + rest[1:] == straight


def test_plateau_state_dict_round_trip():
    opt1, _ = make_optimizers()
    sched1 = ours_lib.ReduceLROnPlateau(opt1, patience=1, factor=0.5, cooldown=1)
    lr_trace(opt1, sched1, steps=12, metrics=PLATEAU_METRICS)
    opt2, _ = make_optimizers()
    sched2 = ours_lib.ReduceLROnPlateau(opt2, mode="max")
    sched2.load_state_dict(sched1.state_dict())
    opt2.load_state_dict(opt1.state_dict())
    assert sched2.mode == "min" and sched2.mode_worse == float("inf")
    a = lr_trace(opt1, sched1, steps=18, metrics=PLATEAU_METRICS[12:])
    b = lr_trace(opt2, sched2, steps=18, metrics=PLATEAU_METRICS[12:])
    assert a == b


def test_lambda_state_dict_saves_callable_objects_only():
    opt, _ = make_optimizers()
    halver = Halver()
    sched = ours_lib.LambdaLR(opt, [decay, halver])
    halver.every = 3
    sd = sched.state_dict()
    assert sd["lr_lambdas"] == [None, {"every": 3}]
    other_halver = Halver()
    other = ours_lib.LambdaLR(make_optimizers()[0], [decay, other_halver])
    other.load_state_dict(sd)
    assert other_halver.every == 3


def test_loading_another_schedulers_state_is_refused_and_changes_nothing():
    opt, _ = make_optimizers()
    cosine = ours_lib.CosineAnnealingLR(opt, T_max=10)
    step_lr = ours_lib.StepLR(make_optimizers()[0], step_size=3)
    before = cosine.state_dict()
    with pytest.raises(ValueError, match="does not have"):
        cosine.load_state_dict(step_lr.state_dict())
    bad = cosine.state_dict()
    bad["base_lrs"] = [0.1]
    with pytest.raises(ValueError, match="2 param groups"):
        cosine.load_state_dict(bad)
    seq = ours_lib.SequentialLR(opt, [ours_lib.ConstantLR(opt), ours_lib.StepLR(opt, 2)], milestones=[3])
    seq_before = seq.state_dict()
    broken = copy.deepcopy(seq_before)
    broken["_schedulers"][1]["T_max"] = 4
    broken["last_epoch"] = 99
    with pytest.raises(ValueError, match="does not have"):
        seq.load_state_dict(broken)
    assert cosine.state_dict() == before and seq.state_dict() == seq_before


# ----- warnings and errors ----------------------------------------------------------------------
def test_warns_when_scheduler_steps_before_the_optimizer():
    opt, _ = make_optimizers()
    sched = ours_lib.StepLR(opt, step_size=2)
    with pytest.warns(UserWarning, match=r"before `optimizer.step\(\)`"):
        sched.step()
    opt2, _ = make_optimizers()
    sched2 = ours_lib.StepLR(opt2, step_size=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opt2.step()
        sched2.step()
    with pytest.warns(UserWarning, match="get_last_lr"):
        sched2.get_lr()


@pytest.mark.parametrize("make,error,match", [
    (lambda opt: ours_lib.StepLR("not an optimizer", 3), TypeError, "is not an Optimizer"),
    (lambda opt: ours_lib.StepLR(opt, step_size=0), ValueError, "step_size"),
    (lambda opt: ours_lib.CosineAnnealingLR(opt, T_max=0), ValueError, "T_max"),
    (lambda opt: ours_lib.LinearLR(opt, start_factor=0), ValueError, "Starting multiplicative factor"),
    (lambda opt: ours_lib.LambdaLR(opt, [decay]), ValueError, "Expected 2 lr_lambdas"),
    (lambda opt: ours_lib.OneCycleLR(opt, max_lr=1.0), ValueError, "total_steps OR"),
    (lambda opt: ours_lib.OneCycleLR(opt, max_lr=[1.0], total_steps=10), ValueError, "same length"),
    (lambda opt: ours_lib.OneCycleLR(opt, max_lr=1.0, total_steps=10, pct_start=2), ValueError, "pct_start"),
    (lambda opt: ours_lib.SequentialLR(opt, [ours_lib.StepLR(opt, 2)], milestones=[3]), ValueError,
     "one more than the number of milestone"),
    (lambda opt: ours_lib.SequentialLR(opt, [ours_lib.ReduceLROnPlateau(opt), ours_lib.StepLR(opt, 2)], [3]),
     ValueError, "does not support `ReduceLROnPlateau`"),
    (lambda opt: ours_lib.ReduceLROnPlateau(opt, factor=1.5), ValueError, "Factor should be < 1.0"),
    (lambda opt: ours_lib.ReduceLROnPlateau(opt, mode="up"), ValueError, "unknown"),
    (lambda opt: ours_lib.StepLR(opt, 3, last_epoch=4), KeyError, "initial_lr"),
])
def test_bad_scheduler_arguments_raise(make, error, match):
    opt, _ = make_optimizers()
    with pytest.raises(error, match=match):
        make(opt)


def test_one_cycle_refuses_to_step_past_total_steps_and_needs_momentum():
    opt, _ = make_optimizers()
    sched = ours_lib.OneCycleLR(opt, max_lr=1.0, total_steps=3)
    for _ in range(3):
        opt.step()
        sched.step()
    with pytest.raises(ValueError, match="Tried to step 4 times"):
        sched.step()
    plain = optim.Adagrad([Parameter(cr.ones(1))])
    with pytest.raises(ValueError, match="momentum or beta1"):
        ours_lib.OneCycleLR(plain, max_lr=1.0, total_steps=5)
    ours_lib.OneCycleLR(plain, max_lr=1.0, total_steps=5, cycle_momentum=False)  # fine without cycling


def test_scheduler_lr_drives_the_optimizer_update():
    p = Parameter(cr.tensor([0.0], dtype=cr.float64))
    opt = optim.SGD([p], lr=1.0)
    sched = ours_lib.StepLR(opt, step_size=1, gamma=0.5)
    for _ in range(3):
        p.grad = cr.tensor([1.0], dtype=cr.float64)
        opt.step()
        sched.step()
    assert p.tolist() == [-(1.0 + 0.5 + 0.25)]


@pytest.mark.parametrize("t_mult", [1, 2])
def test_warm_restarts_with_fractional_epochs_match_torch(t_mult):
    """The per-batch use: step(epoch + i / iters) anneals within each epoch."""
    ours, theirs = make_optimizers()
    ours_sched = ours_lib.CosineAnnealingWarmRestarts(ours, T_0=2, T_mult=t_mult, eta_min=0.001)
    theirs_sched = theirs_lib.CosineAnnealingWarmRestarts(theirs, T_0=2, T_mult=t_mult, eta_min=0.001)
    iters = 4
    for epoch in range(7):
        for i in range(iters):
            ours.step()
            theirs.step()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ours_sched.step(epoch + i / iters)
                theirs_sched.step(epoch + i / iters)
            np.testing.assert_allclose(ours_sched.get_last_lr(), theirs_sched.get_last_lr(), rtol=1e-12)
    assert ours_sched.last_epoch == theirs_sched.last_epoch


def test_warm_restarts_argument_errors():
    ours, _ = make_optimizers()
    with pytest.raises(ValueError, match="positive integer T_0"):
        ours_lib.CosineAnnealingWarmRestarts(ours, T_0=0)
    with pytest.raises(ValueError, match="integer T_mult >= 1"):
        ours_lib.CosineAnnealingWarmRestarts(ours, T_0=3, T_mult=0.5)
    sched = ours_lib.CosineAnnealingWarmRestarts(ours, T_0=3)
    before = sched.state_dict()
    with pytest.raises(ValueError, match="non-negative epoch"):
        sched.step(-1)
    assert sched.state_dict() == before  # nothing changed
