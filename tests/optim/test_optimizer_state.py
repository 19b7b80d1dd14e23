"""The Optimizer base: param groups, zero_grad, state dicts (format, round trips, failed loads that
change nothing) and the checks on hyperparameters and parameters. No PyTorch needed."""

import json
import math
import warnings

import numpy as np
import pytest

import chainrule as cr
from chainrule import optim
from chainrule.nn import Parameter

OPTIMIZER_CASES = [
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.2)),
    ("Adam", dict(lr=0.01, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("AdamW", dict(lr=0.01, amsgrad=True)),
    ("RMSprop", dict(lr=1e-3, momentum=0.9, centered=True)),
    ("Adagrad", dict(lr=0.05, lr_decay=0.01, initial_accumulator_value=0.1)),
]
IDS = [f"{n}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for n, kw in OPTIMIZER_CASES]


def initial_weights(dtype="float64"):
    rng = np.random.default_rng(0)
    return [(rng.standard_normal((4, 8)) * 0.5).astype(dtype), (rng.standard_normal(8) * 0.1).astype(dtype),
            (rng.standard_normal((8, 2)) * 0.5).astype(dtype), (rng.standard_normal(2) * 0.1).astype(dtype)]


DATA = [np.random.default_rng(1).standard_normal((16, 4)), np.random.default_rng(2).standard_normal((16, 2))]


def make_params(weights):
    return [Parameter(cr.tensor(w)) for w in weights]


def loss_of(params):
    w1, b1, w2, b2 = params
    dtype = params[0].detach().cpu().numpy().dtype
    x, y = (cr.tensor(d.astype(dtype)) for d in DATA)
    return ((cr.tanh(x @ w1 + b1) @ w2 + b2 - y) ** 2).mean()


def train_steps(opt, params, steps):
    for _ in range(steps):
        opt.zero_grad()
        loss_of(params).backward()
        opt.step()


def groups_of(params, name, kwargs):
    """Two param groups with different learning rates."""
    return [{"params": params[:2], "lr": kwargs["lr"] * 2}, {"params": params[2:]}]


def values(params):
    return [p.detach().cpu().numpy().copy() for p in params]


def comparable(state_dict):
    """A state dict with arrays in place of tensors, for == comparisons."""
    def conv(v):
        if isinstance(v, cr.Tensor):
            return ("tensor", v.cpu().numpy().tobytes(), v.cpu().numpy().dtype.str, tuple(v.shape))
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [conv(x) for x in v]
        return v
    return conv(state_dict)


# ----- round trips ------------------------------------------------------------------------------
@pytest.mark.parametrize("name,kwargs", OPTIMIZER_CASES, ids=IDS)
def test_state_dict_round_trip_continues_bit_identically(name, kwargs):
    """5 steps, save, load into a fresh optimizer on fresh parameters, 5 more steps == 10 steps."""
    cls = getattr(optim, name)
    straight = make_params(initial_weights())
    opt = cls(groups_of(straight, name, kwargs), **kwargs)
    train_steps(opt, straight, 10)

    first = make_params(initial_weights())
    opt1 = cls(groups_of(first, name, kwargs), **kwargs)
    train_steps(opt1, first, 5)
    saved = opt1.state_dict()

    resumed = make_params(values(first))
    opt2 = cls(groups_of(resumed, name, kwargs), **dict(kwargs, lr=123.0))  # lr comes back from the dict
    opt2.load_state_dict(saved)
    assert opt2.param_groups[1]["lr"] == kwargs["lr"]
    train_steps(opt2, resumed, 5)
    for a, b in zip(values(straight), values(resumed)):
        assert np.array_equal(a, b)


def test_round_trip_through_json_like_form():
    """Checkpoint metadata goes through JSON: indices become strings and betas a list."""
    params = make_params(initial_weights())
    opt = optim.Adam(params, lr=0.01, betas=(0.8, 0.9))
    train_steps(opt, params, 3)
    saved = opt.state_dict()
    meta = json.loads(json.dumps({"param_groups": saved["param_groups"]}))
    state = {str(i): s for i, s in saved["state"].items()}
    resumed = make_params(values(params))
    opt2 = optim.Adam(resumed, lr=0.01)
    opt2.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    assert opt2.param_groups[0]["betas"] == (0.8, 0.9)
    train_steps(opt, params, 2)
    train_steps(opt2, resumed, 2)
    for a, b in zip(values(params), values(resumed)):
        assert np.array_equal(a, b)


def test_loaded_zero_dim_step_tensor_becomes_a_number():
    params = make_params(initial_weights())
    opt = optim.Adam(params)
    train_steps(opt, params, 2)
    saved = opt.state_dict()
    for s in saved["state"].values():
        s["step"] = cr.tensor(2.0)  # PyTorch keeps step as a 0-d tensor
    opt2 = optim.Adam(make_params(values(params)))
    opt2.load_state_dict(saved)
    steps = [s["step"] for s in opt2.state.values()]
    assert steps == [2.0] * 4 and all(type(s) is float for s in steps)


# ----- format -------------------------------------------------------------------------------------
def test_state_dict_format_is_pytorchs():
    params = make_params(initial_weights("float32"))
    opt = optim.Adam([{"params": params[:2]}, {"params": params[2:], "lr": 0.1}], lr=0.01, amsgrad=True)
    train_steps(opt, params, 3)
    sd = opt.state_dict()
    assert set(sd) == {"state", "param_groups"}
    assert list(sd["state"]) == [0, 1, 2, 3]
    assert [g["params"] for g in sd["param_groups"]] == [[0, 1], [2, 3]]
    assert sd["param_groups"][1]["lr"] == 0.1
    expected = {"lr", "betas", "eps", "weight_decay", "amsgrad", "maximize", "decoupled_weight_decay", "params"}
    assert set(sd["param_groups"][0]) == expected
    for index, p in enumerate(params):
        entry = sd["state"][index]
        assert set(entry) == {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"}
        assert entry["step"] == 3.0
        for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
            assert entry[key].shape == p.shape and entry[key].dtype == cr.float32  # float32 stays float32


def test_state_dict_is_a_snapshot_and_load_copies():
    params = make_params(initial_weights())
    opt = optim.SGD(params, lr=0.05, momentum=0.9)
    train_steps(opt, params, 2)
    sd = opt.state_dict()
    frozen = comparable(sd)
    train_steps(opt, params, 2)
    assert comparable(sd) == frozen  # later steps did not write into the saved dict
    other = optim.SGD(make_params(values(params)), lr=0.05, momentum=0.9)
    other.load_state_dict(sd)
    train_steps(other, other.param_groups[0]["params"], 1)
    assert comparable(sd) == frozen  # neither did the optimizer that loaded it


def test_sgd_without_momentum_keeps_no_state_and_adagrad_state_exists_from_the_start():
    params = make_params(initial_weights())
    sgd = optim.SGD(params, lr=0.1)
    train_steps(sgd, params, 2)
    assert sgd.state_dict()["state"] == {}
    ada = optim.Adagrad([{"params": params[:2]}, {"params": params[2:], "initial_accumulator_value": 0.5}],
                        initial_accumulator_value=0.25)
    state = ada.state_dict()["state"]
    assert list(state) == [0, 1, 2, 3] and state[0]["step"] == 0.0
    assert np.all(state[0]["sum"].cpu().numpy() == 0.25) and np.all(state[3]["sum"].cpu().numpy() == 0.5)


def test_named_parameters_are_kept_in_groups_and_state_dict():
    params = make_params(initial_weights())
    names = ["w1", "b1", "w2", "b2"]
    opt = optim.SGD(list(zip(names, params)), lr=0.1)
    assert opt.param_groups[0]["param_names"] == names
    assert opt.state_dict()["param_groups"][0]["param_names"] == names
    with pytest.raises(ValueError, match="with/without names"):
        optim.SGD([("w1", params[0]), params[1]], lr=0.1)


# ----- failed loads change nothing --------------------------------------------------------------
def _bad_group_count(sd):
    sd["param_groups"] = sd["param_groups"] + [dict(sd["param_groups"][0], params=[])]


def _bad_param_count(sd):
    sd["param_groups"][0]["params"] = sd["param_groups"][0]["params"][:-1]


def _bad_shape(sd):
    sd["state"][0]["exp_avg"] = cr.zeros(3, 3, dtype=cr.float64)


def _unknown_index(sd):
    sd["state"][17] = dict(sd["state"][0])


def _bad_lr(sd):
    sd["param_groups"][0]["lr"] = -1.0


def _missing_entries(sd):
    del sd["state"]


@pytest.mark.parametrize("corrupt,match", [
    (_bad_group_count, "different number of parameter groups"),
    (_bad_param_count, "doesn't match the size"),
    (_bad_shape, r"has shape \(3, 3\) but the parameter has shape \(4, 8\)"),
    (_unknown_index, "in no param group"),
    (_bad_lr, "Invalid learning rate"),
    (_missing_entries, "'state' and 'param_groups'"),
])
def test_bad_state_dict_is_refused_and_changes_nothing(corrupt, match):
    params = make_params(initial_weights())
    opt = optim.Adam(params, lr=0.01)
    train_steps(opt, params, 2)
    good = optim.Adam(make_params(initial_weights()), lr=0.02)
    train_steps(good, good.param_groups[0]["params"], 3)
    bad = good.state_dict()
    corrupt(bad)
    before = comparable(opt.state_dict())
    with pytest.raises(ValueError, match=match):
        opt.load_state_dict(bad)
    assert comparable(opt.state_dict()) == before


# ----- hyperparameter and parameter checks -----------------------------------------------------
@pytest.mark.parametrize("name,kwargs,match", [
    ("SGD", dict(lr=-0.1), "Invalid learning rate: -0.1"),
    ("SGD", dict(lr=float("nan")), "Invalid learning rate"),
    ("SGD", dict(lr="0.1"), "Invalid learning rate"),
    ("SGD", dict(lr=0.1, momentum=-0.5), "Invalid momentum value"),
    ("SGD", dict(lr=0.1, weight_decay=-1), "Invalid weight_decay value"),
    ("SGD", dict(lr=0.1, nesterov=True), "Nesterov momentum requires a momentum and zero dampening"),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), "Nesterov"),
    ("Adam", dict(lr=-1e-3), "Invalid learning rate"),
    ("Adam", dict(eps=-1e-8), "Invalid epsilon value"),
    ("Adam", dict(betas=(1.0, 0.999)), "Invalid beta parameter at index 0"),
    ("Adam", dict(betas=(0.9, -0.1)), "Invalid beta parameter at index 1"),
    ("Adam", dict(betas=0.9), "betas must be a pair"),
    ("AdamW", dict(weight_decay=-0.01), "Invalid weight_decay value"),
    ("RMSprop", dict(alpha=-0.5), "Invalid alpha value"),
    ("RMSprop", dict(momentum=-0.5), "Invalid momentum value"),
    ("Adagrad", dict(lr_decay=-1), "Invalid lr_decay value"),
    ("Adagrad", dict(initial_accumulator_value=-1), "Invalid initial_accumulator_value"),
])
def test_bad_hyperparameters_raise(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        getattr(optim, name)(make_params(initial_weights()), **kwargs)


def test_bad_per_group_hyperparameter_raises_and_add_param_group_changes_nothing():
    params = make_params(initial_weights())
    with pytest.raises(ValueError, match="Invalid learning rate"):
        optim.SGD([{"params": params[:2], "lr": -1.0}], lr=0.1)
    opt = optim.SGD(params[:2], lr=0.1)
    with pytest.raises(ValueError, match="Invalid learning rate"):
        opt.add_param_group({"params": params[2:], "lr": -0.5})
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [params[1], params[2]]})
    assert len(opt.param_groups) == 1 and len(opt.param_groups[0]["params"]) == 2


def test_bad_params_raise():
    params = make_params(initial_weights())
    with pytest.raises(TypeError, match="single Tensor"):
        optim.SGD(params[0], lr=0.1)
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(TypeError, match="can only optimize Tensors"):
        optim.SGD([params[0], 3.0], lr=0.1)
    with pytest.raises(ValueError, match="non-leaf"):
        optim.SGD([params[0] * 2], lr=0.1)
    with pytest.raises(TypeError, match="ordered collections"):
        optim.SGD({params[0], params[1]}, lr=0.1)
    with pytest.raises(ValueError, match="more than one parameter group"):
        optim.SGD([{"params": params[:2]}, {"params": params[1:]}], lr=0.1)
    with pytest.warns(UserWarning, match="duplicate parameters"):
        optim.SGD([params[0], params[0]], lr=0.1)


# ----- stepping semantics -----------------------------------------------------------------------
@pytest.mark.parametrize("name,kwargs", OPTIMIZER_CASES, ids=IDS)
def test_parameters_without_grad_are_skipped_and_stepped_ones_bump_their_version(name, kwargs):
    params = make_params(initial_weights("float32"))
    frozen = Parameter(cr.ones(3))
    opt = getattr(optim, name)(params + [frozen], **kwargs)
    versions = [p._version for p in params]
    train_steps(opt, params, 1)
    assert np.array_equal(frozen.detach().cpu().numpy(), np.ones(3, np.float32)) and frozen._version == 0
    assert all(p._version > v for p, v in zip(params, versions))
    assert all(p.dtype == cr.float32 for p in params)
    for p in params:
        for value in opt.state[p].values():
            if isinstance(value, cr.Tensor):
                assert value.dtype == cr.float32 and value.shape == p.shape
    if name != "Adagrad":  # Adagrad, as PyTorch's, makes its state up front
        assert frozen not in opt.state or not opt.state[frozen]


def test_zero_grad_set_to_none_and_to_zeros():
    params = make_params(initial_weights())
    opt = optim.SGD(params, lr=0.1)
    loss_of(params).backward()
    opt.zero_grad()
    assert all(p.grad is None for p in params)
    loss_of(params).backward()
    grads = [p.grad for p in params]
    versions = [g._version for g in grads]
    opt.zero_grad(set_to_none=False)
    for p, g, v in zip(params, grads, versions):
        assert p.grad is g  # the same buffer, filled with zeros in place
        assert np.array_equal(g.cpu().numpy(), np.zeros(p.shape)) and g._version > v
    loss_of(params).backward()  # accumulates into the zeroed buffers
    assert all(p.grad is g for p, g in zip(params, grads))


def test_zero_grad_detaches_a_gradient_with_history():
    p = Parameter(cr.tensor([1.0, 2.0]))
    (p**3).sum().backward(create_graph=True)
    assert p.grad.requires_grad
    optim.SGD([p], lr=0.1).zero_grad(set_to_none=False)
    assert not p.grad.requires_grad and p.grad.grad_fn is None and p.grad.tolist() == [0.0, 0.0]


def test_add_param_group_gets_defaults_and_is_stepped():
    params = make_params(initial_weights())
    opt = optim.Adam(params[:2], lr=0.01, betas=(0.8, 0.9))
    opt.add_param_group({"params": params[2:], "lr": 0.05})
    assert opt.param_groups[1]["betas"] == (0.8, 0.9) and opt.param_groups[1]["lr"] == 0.05
    before = values(params)
    train_steps(opt, params, 1)
    assert all(not np.array_equal(a, b) for a, b in zip(before, values(params)))
    assert opt.state_dict()["param_groups"][1]["params"] == [2, 3]


def test_step_without_closure_returns_none_and_lr_changes_take_effect():
    p = Parameter(cr.tensor([1.0]))
    p.grad = cr.tensor([1.0])
    opt = optim.SGD([p], lr=0.5)
    assert opt.step() is None
    opt.param_groups[0]["lr"] = 0.25  # what schedulers do
    opt.step()
    assert p.tolist() == [0.25]


def test_scheduler_sees_optimizer_steps_and_repr_lists_groups():
    params = make_params(initial_weights())
    opt = optim.RMSprop(params, lr=0.01)
    assert opt._opt_called is False
    opt.step()
    assert opt._opt_called is True
    text = repr(opt)
    assert text.startswith("RMSprop (") and "Parameter Group 0" in text and "lr: 0.01" in text


def test_float64_update_matches_the_formula_by_hand():
    """SGD with momentum and Adam for two steps of a constant gradient, written out."""
    p = Parameter(cr.tensor([1.0, -2.0], dtype=cr.float64))
    opt = optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=0.5)
    g = np.array([0.3, -0.4])
    w = np.array([1.0, -2.0])
    buf = None
    for _ in range(2):
        p.grad = cr.tensor(g)
        opt.step()
        d = g + 0.5 * w
        buf = d if buf is None else 0.9 * buf + d
        w = w - 0.1 * buf
    np.testing.assert_allclose(p.detach().cpu().numpy(), w, rtol=1e-15)

    q = Parameter(cr.tensor([1.0, -2.0], dtype=cr.float64))
    adam = optim.Adam([q], lr=0.1)
    m = v = np.zeros(2)
    w = np.array([1.0, -2.0])
    for t in (1, 2):
        q.grad = cr.tensor(g)
        adam.step()
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        w = w - 0.1 * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
    np.testing.assert_allclose(q.detach().cpu().numpy(), w, rtol=1e-12)
    assert math.isclose(adam.state[q]["step"], 2.0)


W0 = np.array([1.0, -2.0, 0.5])
GRADS = np.random.default_rng(3).standard_normal((7, 3))  # a different gradient at every step


def _trained(make, steps: int) -> np.ndarray:
    """The float64 weights after ``steps`` steps of ``make([param])`` with the gradients GRADS."""
    p = Parameter(cr.tensor(W0, dtype=cr.float64))
    opt = make([p])
    for g in GRADS[:steps]:
        p.grad = cr.tensor(g)
        opt.step()
    return p.detach().cpu().numpy()


# The hand-written updates below follow the algorithms as PyTorch's documentation states them
# (torch.optim.NAdam, RAdam, RMSprop, Adagrad), in float64 numpy: no oracle needed.

def test_nadam_two_steps_by_hand():
    lr, b1, b2, eps, wd, psi = 0.1, 0.9, 0.999, 1e-8, 0.1, 4e-3
    w, m, v, product = W0.copy(), 0.0, 0.0, 1.0
    for t, g in enumerate(GRADS[:2], start=1):
        g = g + wd * w
        mu, mu_next = (b1 * (1 - 0.5 * 0.96 ** (k * psi)) for k in (t, t + 1))
        product *= mu
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat = mu_next * m / (1 - product * mu_next) + (1 - mu) * g / (1 - product)
        w = w - lr * m_hat / (np.sqrt(v / (1 - b2**t)) + eps)
    got = _trained(lambda ps: optim.NAdam(ps, lr=lr, weight_decay=wd), 2)
    # PyTorch (and so chainrule) keeps the product of the mu_t in float32: agreement to float32's precision
    np.testing.assert_allclose(got, w, rtol=1e-7)


def test_radam_seven_steps_by_hand_through_both_branches():
    lr, b1, b2, eps = 0.1, 0.9, 0.999, 1e-8
    rho_inf = 2 / (1 - b2) - 1
    w, m, v, rectified = W0.copy(), 0.0, 0.0, []
    for t, g in enumerate(GRADS[:7], start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat = m / (1 - b1**t)
        rho = rho_inf - 2 * t * b2**t / (1 - b2**t)
        rectified.append(rho > 5)
        if rho > 5:
            r = np.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))
            w = w - lr * m_hat * r * np.sqrt(1 - b2**t) / (np.sqrt(v) + eps)
        else:
            w = w - lr * m_hat
    assert rectified == [False] * 5 + [True] * 2  # the first five steps plain, the last two rectified
    np.testing.assert_allclose(_trained(lambda ps: optim.RAdam(ps, lr=lr), 7), w, rtol=1e-12)


@pytest.mark.parametrize("centered, momentum", [(False, 0.0), (True, 0.9)])
def test_rmsprop_two_steps_by_hand(centered, momentum):
    lr, alpha, eps, wd = 0.01, 0.99, 1e-8, 0.1
    w, v, g_avg, b = W0.copy(), 0.0, 0.0, 0.0
    for g in GRADS[:2]:
        g = g + wd * w
        v = alpha * v + (1 - alpha) * g * g
        if centered:
            g_avg = alpha * g_avg + (1 - alpha) * g
        step = g / (np.sqrt(v - g_avg * g_avg) + eps)
        b = momentum * b + step
        w = w - lr * (b if momentum else step)
    got = _trained(lambda ps: optim.RMSprop(ps, lr=lr, alpha=alpha, weight_decay=wd, momentum=momentum,
                                            centered=centered), 2)
    np.testing.assert_allclose(got, w, rtol=1e-12)


def test_adagrad_two_steps_by_hand():
    lr, lr_decay, wd, s0, eps = 0.1, 0.5, 0.1, 0.2, 1e-10
    w, state_sum = W0.copy(), s0
    for t, g in enumerate(GRADS[:2], start=1):
        g = g + wd * w
        clr = lr / (1 + (t - 1) * lr_decay)
        state_sum = state_sum + g * g
        w = w - clr * g / (np.sqrt(state_sum) + eps)
    got = _trained(lambda ps: optim.Adagrad(ps, lr=lr, lr_decay=lr_decay, weight_decay=wd,
                                            initial_accumulator_value=s0), 2)
    np.testing.assert_allclose(got, w, rtol=1e-12)


def test_optimizers_ignore_foreach_and_fused_flags_without_warning():
    params = make_params(initial_weights())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        optim.SGD(params, lr=0.1, foreach=True)
        optim.AdamW(params, fused=False, foreach=None)


def test_gradient_of_the_wrong_shape_is_refused_before_anything_changes():
    p = Parameter(cr.zeros(3))
    q = Parameter(cr.zeros(2))
    q.grad = cr.ones(2)
    p.grad = cr.ones(1)  # would silently broadcast without the check
    opt = optim.Adam([q, p], lr=0.1)
    with pytest.raises(RuntimeError, match=r"shape \(3,\) has a gradient of shape \(1,\)"):
        opt.step()
    assert p.tolist() == [0.0, 0.0, 0.0] and q.tolist() == [0.0, 0.0]  # neither was touched
