"""Adadelta, Adamax, ASGD and Rprop (and SparseAdam's refusal); the keywords PyTorch programs pass for its
kernels (foreach, fused, capturable, differentiable) across every optimizer.

The first half needs no PyTorch: the updates written out by hand from the algorithms as PyTorch documents
them, bad hyperparameters refused before anything changes, state-dict round trips. The second half compares
with PyTorch (the training/injected-gradient oracle rows live in test_optimizers.py's CASES table)."""

import inspect
import json
import warnings

import numpy as np
import pytest

import chainrule as cr
from chainrule import optim
from chainrule.nn import Parameter

NEW = ["Adadelta", "Adamax", "ASGD", "Rprop"]
W0 = np.array([1.0, -2.0, 0.5, 0.03])
GRADS = np.random.default_rng(11).standard_normal((8, 4))  # a different gradient at every step


def _trained(opt_cls, kwargs, grads, w0=W0):
    """(weights, optimizer) after one float64 step per row of ``grads``."""
    p = Parameter(cr.tensor(w0, dtype=cr.float64))
    opt = opt_cls([p], **kwargs)
    for g in grads:
        p.grad = cr.tensor(g)
        opt.step()
    return p.detach().cpu().numpy(), opt, p


# ----- the updates by hand ------------------------------------------------------------------------
@pytest.mark.parametrize("maximize", [False, True])
def test_adadelta_three_steps_by_hand(maximize):
    lr, rho, eps, wd = 0.5, 0.8, 1e-6, 0.1
    w, v, u = W0.copy(), 0.0, 0.0
    for g in GRADS[:3]:
        g = (-g if maximize else g) + wd * w
        v = rho * v + (1 - rho) * g * g
        delta = np.sqrt(u + eps) / np.sqrt(v + eps) * g
        u = rho * u + (1 - rho) * delta * delta
        w = w - lr * delta
    got, opt, p = _trained(optim.Adadelta, dict(lr=lr, rho=rho, eps=eps, weight_decay=wd, maximize=maximize),
                           GRADS[:3])
    np.testing.assert_allclose(got, w, rtol=1e-12)
    np.testing.assert_allclose(opt.state[p]["acc_delta"].cpu().numpy(), u, rtol=1e-12)
    assert opt.state[p]["step"] == 3.0


@pytest.mark.parametrize("maximize", [False, True])
def test_adamax_three_steps_by_hand(maximize):
    lr, b1, b2, eps, wd = 0.1, 0.9, 0.99, 1e-8, 0.05
    w, m, u = W0.copy(), 0.0, 0.0
    for t, g in enumerate(GRADS[:3], start=1):
        g = (-g if maximize else g) + wd * w
        m = b1 * m + (1 - b1) * g
        u = np.maximum(b2 * u, np.abs(g) + eps)
        w = w - lr / (1 - b1**t) * m / u
    got, opt, p = _trained(optim.Adamax, dict(lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd, maximize=maximize),
                           GRADS[:3])
    np.testing.assert_allclose(got, w, rtol=1e-12)
    np.testing.assert_allclose(opt.state[p]["exp_inf"].cpu().numpy(), u, rtol=1e-12)


def test_asgd_six_steps_by_hand_through_the_averaging():
    lr, lambd, alpha, t0, wd = 0.1, 0.01, 0.75, 2, 0.1
    f32 = lambda x: float(np.float32(x))  # PyTorch keeps eta and mu as float32 scalars
    w, ax, eta, mu, mus = W0.copy(), np.zeros(4), f32(lr), 1.0, []
    for t, g in enumerate(GRADS[:6], start=1):
        g = g + wd * w
        w = w * (1 - lambd * eta) - eta * g
        ax = w.copy() if mu == 1 else ax + mu * (w - ax)
        mus.append(mu)
        eta = f32(lr / (1 + lambd * lr * t) ** alpha)
        mu = f32(1 / max(1, t - t0))
    assert mus == [1.0, 1.0, 1.0, 1.0, 0.5, f32(1 / 3)]  # averaging starts after t0 + 1 steps
    got, opt, p = _trained(optim.ASGD, dict(lr=lr, lambd=lambd, alpha=alpha, t0=t0, weight_decay=wd), GRADS[:6])
    state = opt.state[p]
    np.testing.assert_allclose(got, w, rtol=1e-12)
    np.testing.assert_allclose(state["ax"].cpu().numpy(), ax, rtol=1e-12)
    assert (state["step"], state["eta"], state["mu"]) == (6.0, eta, mu)
    assert all(type(state[k]) is float for k in ("step", "eta", "mu"))


def test_rprop_steps_by_hand_through_growth_sign_changes_and_both_bounds():
    lr, etaminus, etaplus, low, high = 0.1, 0.5, 1.2, 0.04, 0.13
    grads = np.array([[1.0, -1.0, 0.5, 2.0],
                      [2.0, 1.0, 0.5, 0.0],     # same sign: grow; a flip: shrink and skip; a zero gradient
                      [3.0, 1.0, 0.5, -1.0],    # after a skipped step prev is 0: factor 1
                      [-1.0, -1.0, 0.5, -1.0],  # the first element flips after growing to the max
                      [-1.0, -1.0, 0.5, -1.0]])
    w, prev, size = W0.copy(), np.zeros(4), np.full(4, lr)
    for g in grads:
        s = np.sign(g * prev)
        f = np.where(s > 0, etaplus, np.where(s < 0, etaminus, 1.0))
        size = np.clip(size * f, low, high)
        g = np.where(f == etaminus, 0.0, g)
        w = w - np.sign(g) * size
        prev = g
    got, opt, p = _trained(optim.Rprop, dict(lr=lr, etas=(etaminus, etaplus), step_sizes=(low, high)), grads)
    np.testing.assert_allclose(got, w, rtol=1e-13)
    np.testing.assert_allclose(opt.state[p]["step_size"].cpu().numpy(), size, rtol=1e-13)
    np.testing.assert_array_equal(opt.state[p]["prev"].cpu().numpy(), prev)
    assert size[1] == low and size[2] == high  # both bounds bit
    # maximizing g moves as minimizing -g
    flipped, _, _ = _trained(optim.Rprop, dict(lr=lr, etas=(etaminus, etaplus), step_sizes=(low, high),
                                               maximize=True), -grads)
    np.testing.assert_array_equal(flipped, got)


# ----- bad hyperparameters ----------------------------------------------------------------------------
BAD = [  # (name, kwargs, message, whether PyTorch refuses it too)
    ("Adadelta", dict(lr=-1.0), "Invalid learning rate", True),
    ("Adadelta", dict(rho=1.5), "Invalid rho value", True),
    ("Adadelta", dict(rho=-0.1), "Invalid rho value", True),
    ("Adadelta", dict(eps=-1e-6), "Invalid epsilon value", True),
    ("Adadelta", dict(weight_decay=-0.1), "Invalid weight_decay value", True),
    ("Adamax", dict(lr=-1.0), "Invalid learning rate", True),
    ("Adamax", dict(betas=(1.0, 0.99)), "Invalid beta parameter at index 0", True),
    ("Adamax", dict(betas=(0.9, 1.0)), "Invalid beta parameter at index 1", True),
    ("Adamax", dict(eps=-1.0), "Invalid epsilon value", True),
    ("Adamax", dict(weight_decay=-1.0), "Invalid weight_decay value", True),
    ("Adamax", dict(betas=0.9), "betas must be a pair", True),
    ("ASGD", dict(lr=-1.0), "Invalid learning rate", True),
    ("ASGD", dict(weight_decay=-1.0), "Invalid weight_decay value", True),
    ("ASGD", dict(lambd=-1e-4), "Invalid lambd value", False),
    ("ASGD", dict(alpha=float("nan")), "Invalid alpha value", False),
    ("ASGD", dict(t0="1000"), "Invalid t0 value", False),
    ("Rprop", dict(lr=-1.0), "Invalid learning rate", True),
    ("Rprop", dict(etas=(1.0, 1.2)), "Invalid eta values", True),
    ("Rprop", dict(etas=(0.5, 1.0)), "Invalid eta values", True),
    ("Rprop", dict(etas=(0.0, 1.2)), "Invalid eta values", True),
    ("Rprop", dict(etas=0.5), "etas must be a pair", True),
    ("Rprop", dict(step_sizes=(1.0, 0.1)), "Invalid step_sizes", False),
    ("Rprop", dict(step_sizes=(-1.0, 1.0)), "Invalid step_sizes", False),
    ("Rprop", dict(step_sizes=("a", 1.0)), "pair of numbers", False),
]
BAD_IDS = [f"{n}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for n, kw, _, _ in BAD]


@pytest.mark.parametrize("name,kwargs,match,_", BAD, ids=BAD_IDS)
def test_bad_hyperparameters_are_refused(name, kwargs, match, _):
    with pytest.raises(ValueError, match=match):
        getattr(optim, name)([Parameter(cr.ones(3))], **kwargs)


@pytest.mark.parametrize("name,kwargs,match,_", BAD, ids=BAD_IDS)
def test_a_bad_group_or_loaded_dict_changes_nothing(name, kwargs, match, _):
    """A bad per-group value is refused by add_param_group and by load_state_dict, leaving the optimizer
    as it was (its groups, its state, its parameters)."""
    p, q = Parameter(cr.tensor([1.0, -2.0])), Parameter(cr.tensor([0.5]))
    opt = getattr(optim, name)([p])
    p.grad = cr.tensor([0.3, -0.1])
    opt.step()
    before = (repr(opt), json.dumps(_plain(opt.state_dict())), p.tolist())
    with pytest.raises(ValueError, match=match):
        opt.add_param_group(dict(kwargs, params=[q]))
    bad = opt.state_dict()
    bad["param_groups"][0].update(kwargs)
    with pytest.raises(ValueError, match=match):
        opt.load_state_dict(bad)
    assert (repr(opt), json.dumps(_plain(opt.state_dict())), p.tolist()) == before
    assert q not in opt.state


def _plain(sd):
    return {"state": {i: {k: v.tolist() if isinstance(v, cr.Tensor) else v for k, v in s.items()}
                      for i, s in sd["state"].items()},
            "param_groups": [{k: v for k, v in g.items() if k != "lr" or not isinstance(v, cr.Tensor)}
                             for g in sd["param_groups"]]}


# ----- state dicts and stepping ------------------------------------------------------------------------
ROUND_TRIP = [
    ("Adadelta", dict(lr=0.5, weight_decay=0.1)),
    ("Adamax", dict(lr=0.01, maximize=True)),
    ("ASGD", dict(lr=0.05, lambd=0.01, t0=3)),
    ("Rprop", dict(lr=0.01, etas=(0.4, 1.3))),
]


@pytest.mark.parametrize("name,kwargs", ROUND_TRIP, ids=[n for n, _ in ROUND_TRIP])
def test_state_dict_round_trip_through_json_continues_bit_identically(name, kwargs):
    """3 steps, save (group metadata through JSON: tuples become lists, indices strings), load into a
    fresh optimizer, 4 more steps == 7 steps straight."""
    straight, _, _ = _trained(getattr(optim, name), kwargs, GRADS[:7])
    _, opt, p = _trained(getattr(optim, name), kwargs, GRADS[:3])
    saved = opt.state_dict()
    meta = json.loads(json.dumps(saved["param_groups"]))
    state = {str(i): s for i, s in saved["state"].items()}
    resumed = Parameter(cr.tensor(p.detach().cpu().numpy()))
    opt2 = getattr(optim, name)([resumed], lr=123.0)
    opt2.load_state_dict({"state": state, "param_groups": meta})
    assert opt2.param_groups[0]["lr"] == kwargs["lr"]
    for g in GRADS[3:7]:
        resumed.grad = cr.tensor(g)
        opt2.step()
    np.testing.assert_array_equal(resumed.detach().cpu().numpy(), straight)


@pytest.mark.parametrize("name", NEW)
def test_float32_state_and_parameters_without_grad_are_skipped(name):
    p, frozen = Parameter(cr.tensor(W0.astype(np.float32))), Parameter(cr.ones(3))
    opt = getattr(optim, name)([p, frozen])
    p.grad = cr.tensor(GRADS[0].astype(np.float32))
    opt.step()
    assert p.dtype == cr.float32 and not np.array_equal(p.detach().cpu().numpy(), W0.astype(np.float32))
    assert frozen.tolist() == [1.0, 1.0, 1.0] and frozen._version == 0 and not opt.state.get(frozen)
    arrays = [v for v in opt.state[p].values() if isinstance(v, cr.Tensor)]
    assert arrays and all(v.dtype == cr.float32 and v.shape == p.shape for v in arrays)


@pytest.mark.parametrize("name", NEW)
def test_large_parameter_in_blocks_gives_the_whole_array_result(name):
    """300 x 700 float64 is cut into cache-sized blocks; a transposed copy of it (non-contiguous) is
    updated whole: the two must agree bit for bit."""
    init = np.random.default_rng(6).standard_normal((300, 700))
    grads = np.random.default_rng(7).standard_normal((3, 300, 700))
    whole = Parameter(cr.tensor(init.T.copy()))
    whole._data = whole._data.T  # Fortran order: the whole-array path
    blocked = Parameter(cr.tensor(init))
    assert whole._data.shape == blocked._data.shape and not whole._data.flags.c_contiguous
    opts = [getattr(optim, name)([q], lr=0.01, maximize=True) for q in (whole, blocked)]
    for g in grads:
        for q, opt in zip((whole, blocked), opts):
            q.grad = cr.tensor(g)
            opt.step()
    np.testing.assert_array_equal(whole.detach().cpu().numpy(), blocked.detach().cpu().numpy())


def test_sparse_adam_is_refused_with_the_reason():
    assert issubclass(optim.SparseAdam, optim.Optimizer)
    with pytest.raises(NotImplementedError, match="no sparse gradients.*use optim.Adam"):
        optim.SparseAdam([Parameter(cr.ones(3))], lr=0.01)


# ----- PyTorch's kernel switches ---------------------------------------------------------------------
def _optimizer_classes():
    return {n: getattr(optim, n) for n in optim.__all__
            if isinstance(getattr(optim, n), type) and issubclass(getattr(optim, n), optim.Optimizer)
            and n != "Optimizer"}


def _flags_taken(cls):
    return {"foreach", "fused", "capturable", "differentiable"} & set(inspect.signature(cls.__init__).parameters)


@pytest.mark.parametrize("name", sorted(n for n, c in _optimizer_classes().items() if _flags_taken(c) and n != "SparseAdam"))
def test_speed_flags_are_accepted_and_change_nothing(name):
    """(Which flags each optimizer takes is checked against PyTorch's signatures below.)"""
    cls = _optimizer_classes()[name]
    flags = _flags_taken(cls)
    plain, _, _ = _trained(cls, dict(lr=0.01), GRADS[:3])
    options = [dict(foreach=True), dict(foreach=False)]
    options += [dict(capturable=True)] if "capturable" in flags else []
    options += [dict(fused=True), dict(fused=False, foreach=True)] if "fused" in flags else []
    options += [dict(differentiable=False)] if "differentiable" in flags else []
    for extra in options:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            got, _, _ = _trained(cls, dict(lr=0.01, **extra), GRADS[:3])
        np.testing.assert_array_equal(got, plain, err_msg=f"{name} with {extra}")


@pytest.mark.parametrize("name", sorted(set(_optimizer_classes()) - {"SparseAdam"}))
def test_fused_conflicts_and_differentiable_steps_are_refused(name):
    cls = _optimizer_classes()[name]
    flags = _flags_taken(cls)
    params = [Parameter(cr.ones(3))]
    if "fused" in flags:  # PyTorch's own refusals, with its messages
        with pytest.raises(RuntimeError, match="`fused` and `foreach` cannot be `True` together"):
            cls(params, fused=True, foreach=True)
        with pytest.raises(RuntimeError, match="`fused` does not support `differentiable`"):
            cls(params, fused=True, differentiable=True)
    else:
        with pytest.raises(TypeError):  # as PyTorch's: no fused kernel, no fused argument
            cls(params, fused=True)
    if "differentiable" in flags:
        with pytest.raises(NotImplementedError, match="differentiable=True is not supported"):
            cls(params, differentiable=True)


# ----- against PyTorch -------------------------------------------------------------------------------
def test_every_optimizer_takes_pytorchs_arguments_in_pytorchs_order():
    """Names, kinds (positional or keyword-only), order and defaults of every constructor argument are
    PyTorch 2.13's, so any call that PyTorch accepts binds the same way here."""
    torch = pytest.importorskip("torch")
    classes = _optimizer_classes()
    assert set(NEW) | {"SparseAdam"} <= set(classes)
    for name, cls in classes.items():
        ours = inspect.signature(cls.__init__).parameters.values()
        theirs = inspect.signature(getattr(torch.optim, name).__init__).parameters.values()
        assert [(a.name, a.kind, a.default) for a in ours] == [(a.name, a.kind, a.default) for a in theirs], name


@pytest.mark.parametrize("name,kwargs,match,torch_refuses", BAD, ids=BAD_IDS)
def test_pytorch_refuses_the_same_hyperparameters(name, kwargs, match, torch_refuses):
    """Where PyTorch refuses a value too, it does with a ValueError (a TypeError for a pair that is not one);
    the others are ours alone (stricter)."""
    torch = pytest.importorskip("torch")
    make = lambda: getattr(torch.optim, name)([torch.nn.Parameter(torch.ones(3))], **kwargs)
    if torch_refuses:
        with pytest.raises((ValueError, TypeError)):
            make()
    else:
        make()


@pytest.fixture(scope="module")
def oracle():
    """test_optimizers.py, whose two-framework tests run here on more rows (it needs PyTorch)."""
    pytest.importorskip("torch")
    import test_optimizers

    return test_optimizers


# The new optimizers' rows of test_optimizers.CASES that its state-dict test does not pick (it picks rows by
# index, and gets Adadelta's second and ASGD's first), plus the NAdam and RAdam rows it picked before these
# rows went in ahead of them in the table.
INTERCHANGE = [
    ("Adadelta", dict(lr=1.0)),
    ("Adamax", dict(lr=0.01)),
    ("Adamax", dict(lr=0.01, betas=(0.3, 0.9), eps=1e-4, weight_decay=0.1, maximize=True)),
    ("ASGD", dict(lr=0.05, alpha=0.5, maximize=True)),
    ("Rprop", dict(lr=0.01)),
    ("Rprop", dict(lr=0.05, etas=(0.3, 1.5), step_sizes=(1e-3, 0.1), maximize=True)),
    ("Rprop", dict(lr=0.02, step_sizes=(0.01, 1.0))),
    ("NAdam", dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1, momentum_decay=0.01)),
    ("RAdam", dict(lr=0.01)),
]


@pytest.mark.parametrize("direction", ["torch-to-chainrule", "chainrule-to-torch"])
@pytest.mark.parametrize("name,kwargs", INTERCHANGE, ids=[f"{n}-{i}" for i, (n, _) in enumerate(INTERCHANGE)])
def test_state_dict_is_interchangeable_with_torch(oracle, name, kwargs, direction):
    oracle.test_state_dict_format_is_interchangeable_with_torch(name, kwargs, direction)


@pytest.mark.parametrize("name,kwargs", ROUND_TRIP, ids=[n for n, _ in ROUND_TRIP])
def test_large_float32_parameter_in_blocks_matches_torch(oracle, name, kwargs):
    oracle.test_large_parameter_updated_in_blocks_matches_torch(name, kwargs)


@pytest.mark.parametrize("name,kwargs", ROUND_TRIP, ids=[n for n, _ in ROUND_TRIP])
def test_block_updates_do_not_depend_on_the_thread_count(oracle, name, kwargs):
    oracle.test_block_updates_do_not_depend_on_the_thread_count(name, kwargs)
