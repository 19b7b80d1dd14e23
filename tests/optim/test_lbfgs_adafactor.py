"""LBFGS and Adafactor: PyTorch as the oracle (same problems, same closures, both frameworks' own autograd),
plus checks by hand that need no PyTorch.

LBFGS compounds rounding: quasi-Newton steps on a non-convex loss amplify the last-bit differences of two
frameworks' dot products and sums, so the oracle runs are kept to a few dozen iterations; float64 then
agrees to 1e-10, float32 to about 1e-2 (it drifts by 1e-1 after ~80 iterations on the MLP, and the
flat minimum of the least-squares problem pins its float32 parameters down to ~1e-3 only).
"""

import json

import numpy as np
import pytest

import chainrule as cr
from chainrule import nn as cnn
from chainrule import optim
from chainrule.nn import Parameter

TOL = {"float64": dict(rtol=1e-10, atol=1e-12), "float32": dict(rtol=1e-2, atol=1e-3)}


# ----- no PyTorch needed -------------------------------------------------------------------------
def quadratic_problem(n=5, seed=0):
    rng = np.random.default_rng(seed)
    m = rng.standard_normal((n, n))
    return m @ m.T + n * np.eye(n), rng.standard_normal(n)


@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
def test_lbfgs_solves_a_convex_quadratic_to_its_known_minimum(line_search_fn):
    """f(x) = x.Qx / 2 - b.x has its minimum at Q^-1 b; L-BFGS gets there within a couple of steps, to
    about sqrt(machine epsilon): closer, the line search cannot tell the losses apart."""
    q, b = quadratic_problem()
    x = Parameter(cr.zeros(5, dtype="float64"))
    opt = optim.LBFGS([x], line_search_fn=line_search_fn, tolerance_grad=1e-10, tolerance_change=0)
    qt, bt = cr.tensor(q), cr.tensor(b)

    def closure():
        opt.zero_grad()
        loss = 0.5 * (x @ (qt @ x)) - bt @ x
        loss.backward()
        return loss

    first = opt.step(closure)
    assert first.item() == 0.0  # the returned loss is the closure's first one, at x = 0
    opt.step(closure)
    np.testing.assert_allclose(x.detach().cpu().numpy(), np.linalg.solve(q, b), rtol=1e-7, atol=1e-8)
    state = opt.state[x]
    assert state["n_iter"] >= 1 and state["func_evals"] >= state["n_iter"]


def test_lbfgs_stops_at_once_when_the_gradient_is_already_small():
    x = Parameter(cr.tensor([1.0, 2.0], dtype="float64"))
    opt = optim.LBFGS([x])

    def closure():
        opt.zero_grad()
        loss = ((x - cr.tensor([1.0, 2.0], dtype="float64")) ** 2).sum()
        loss.backward()
        return loss

    assert opt.step(closure).item() == 0.0
    assert opt.state[x] == {"func_evals": 1, "n_iter": 0}
    np.testing.assert_array_equal(x.detach().cpu().numpy(), [1.0, 2.0])


def test_lbfgs_accepts_one_param_group_only():
    a, b = Parameter(cr.ones(2)), Parameter(cr.ones(3))
    with pytest.raises(ValueError, match="LBFGS doesn't support per-parameter options"):
        optim.LBFGS([{"params": [a]}, {"params": [b], "lr": 0.1}])
    opt = optim.LBFGS([a])
    with pytest.raises(ValueError, match="LBFGS doesn't support per-parameter options"):
        opt.add_param_group({"params": [b]})
    assert len(opt.param_groups) == 1 and opt.param_groups[0]["params"] == [a]


@pytest.mark.parametrize("kwargs,match", [
    (dict(lr=-1.0), "learning rate"),
    (dict(max_iter=0), "max_iter"),
    (dict(max_eval=2.5), "max_eval"),
    (dict(history_size=0), "history_size"),
    (dict(tolerance_grad=-1e-7), "tolerance_grad"),
    (dict(tolerance_change=float("nan")), "tolerance_change"),
    (dict(line_search_fn="armijo"), "only 'strong_wolfe'"),
])
def test_lbfgs_bad_hyperparameters_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        optim.LBFGS([Parameter(cr.ones(2))], **kwargs)


def test_lbfgs_step_needs_a_closure():
    opt = optim.LBFGS([Parameter(cr.ones(2))])
    with pytest.raises(TypeError, match="needs a closure"):
        opt.step()


def test_lbfgs_state_dict_round_trip_continues_bit_identically():
    q, b = quadratic_problem(seed=1)
    runs = []
    for reload in (False, True):
        x = Parameter(cr.tensor(np.full(5, 3.0)))
        opt = optim.LBFGS([x], max_iter=3, history_size=2, line_search_fn="strong_wolfe")

        def closure(x=x, opt=opt):
            opt.zero_grad()
            loss = 0.5 * (x @ (cr.tensor(q) @ x)) - cr.tensor(b) @ x + (x**4).sum() * 0.01
            loss.backward()
            return loss

        opt.step(closure)
        if reload:
            saved = opt.state_dict()
            x2 = Parameter(cr.tensor(x.detach().cpu().numpy()))
            opt = optim.LBFGS([x2], max_iter=3, history_size=2, line_search_fn="strong_wolfe")
            opt.load_state_dict(saved)
            x = x2
        for _ in range(2):
            opt.step(lambda x=x, opt=opt: closure(x, opt))
        runs.append(x.detach().cpu().numpy())
    np.testing.assert_array_equal(runs[0], runs[1])


def test_lbfgs_state_dict_of_another_model_is_refused_and_changes_nothing():
    a = Parameter(cr.ones(3, dtype="float64"))
    opt = optim.LBFGS([a])

    def closure():
        opt.zero_grad()
        loss = (a**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    bigger = optim.LBFGS([Parameter(cr.ones(4, dtype="float64"))])
    bigger.step(lambda: _sum_of_squares(bigger))
    before = opt.state_dict()
    with pytest.raises(ValueError, match="state 'd' has shape"):
        opt.load_state_dict(bigger.state_dict())
    after = opt.state_dict()
    np.testing.assert_array_equal(after["state"][0]["d"].cpu().numpy(), before["state"][0]["d"].cpu().numpy())
    assert after["state"][0]["n_iter"] == before["state"][0]["n_iter"]


def _sum_of_squares(opt):
    opt.zero_grad()
    (p,) = opt.param_groups[0]["params"]
    loss = (p**2).sum()
    loss.backward()
    return loss


def test_line_search_keeps_trial_steps_off_the_ends_of_the_bracket():
    from chainrule.optim.lbfgs import _off_the_ends

    assert _off_the_ends(0.5, 0.0, 1.0, False) == (0.5, False)  # well inside
    assert _off_the_ends(0.95, 1.0, 0.0, False) == (0.95, True)  # close to an end: noted, kept once
    assert _off_the_ends(0.95, 0.0, 1.0, True) == (0.9, False)  # close again: moved a tenth inside
    assert _off_the_ends(0.0, 0.0, 1.0, False) == (0.1, False)  # at an end: moved at once


def test_adafactor_one_step_by_hand_on_a_2x3_parameter():
    p0 = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]])
    g = np.array([[0.1, -0.2, 0.3], [-0.4, 0.5, 0.05]])
    p = Parameter(cr.tensor(p0))
    opt = optim.Adafactor([p], lr=0.1, weight_decay=0.2, eps=(1e-4, 1e-3))
    p.grad = cr.tensor(g)
    opt.step()
    # step 1: 1 - beta2 = 1 ** -0.8 = 1, so the factors are the row and column means of g * g
    row = (g * g).mean(axis=1, keepdims=True)
    col = (g * g).mean(axis=0, keepdims=True)
    v = row * col / max(row.mean(), 1e-4)
    u = g / np.sqrt(np.maximum(v, 1e-8))
    alpha = max(1e-3, np.sqrt((p0 * p0).mean())) * min(0.1, 1.0)
    expected = p0 * (1 - 0.1 * 0.2) - alpha / max(1.0, np.sqrt((u * u).mean())) * u
    np.testing.assert_allclose(p.detach().cpu().numpy(), expected, rtol=1e-13)
    state = opt.state[p]
    assert state["step"] == 1.0 and set(state) == {"step", "row_var", "col_var"}
    np.testing.assert_allclose(state["row_var"].cpu().numpy(), row, rtol=1e-13)
    np.testing.assert_allclose(state["col_var"].cpu().numpy(), col, rtol=1e-13)


def test_adafactor_keeps_a_variance_for_vectors_and_factors_for_the_last_two_dims():
    params = [Parameter(cr.ones(4)), Parameter(cr.ones(2, 3, 5)), Parameter(cr.tensor(1.0))]
    opt = optim.Adafactor(params)
    for p in params:
        p.grad = cr.ones(*p.shape) * 0.5
    opt.step()
    assert opt.state[params[0]]["variance"].shape == (4,)
    assert opt.state[params[1]]["row_var"].shape == (2, 3, 1)
    assert opt.state[params[1]]["col_var"].shape == (2, 1, 5)
    assert opt.state[params[2]]["variance"].shape == ()


@pytest.mark.parametrize("kwargs,match", [
    (dict(lr=-0.1), "learning rate"),
    (dict(beta2_decay=0.5), "beta2_decay"),
    (dict(eps=(-1e-3, 1e-3)), "epsilon1"),
    (dict(eps=(None, -1.0)), "epsilon2"),
    (dict(eps=1e-3), "eps must be a pair"),
    (dict(d=0.5), "clipping threshold"),
    (dict(weight_decay=-0.1), "weight_decay"),
])
def test_adafactor_bad_hyperparameters_are_refused_before_anything_changes(kwargs, match):
    with pytest.raises(ValueError, match=match):
        optim.Adafactor([Parameter(cr.ones(2, 2))], **kwargs)
    a, b = Parameter(cr.ones(2, 2)), Parameter(cr.ones(3))
    opt = optim.Adafactor([a])
    with pytest.raises(ValueError, match=match):
        opt.add_param_group({"params": [b], **kwargs})
    assert len(opt.param_groups) == 1


def test_adafactor_refuses_a_factor_of_the_wrong_shape_and_changes_nothing():
    a = Parameter(cr.ones(3, 4, dtype="float64"))
    opt = optim.Adafactor([a])
    a.grad = cr.ones(3, 4, dtype="float64")
    opt.step()
    saved = opt.state_dict()
    bad = {"state": {0: dict(saved["state"][0], row_var=cr.ones(4, 1, dtype="float64"))},
           "param_groups": saved["param_groups"]}
    fresh = optim.Adafactor([a], lr=0.5)
    with pytest.raises(ValueError, match="row_var"):
        fresh.load_state_dict(bad)
    assert not fresh.state and fresh.param_groups[0]["lr"] == 0.5
    fresh.load_state_dict(saved)
    np.testing.assert_array_equal(fresh.state[a]["col_var"].cpu().numpy(), saved["state"][0]["col_var"].cpu().numpy())
    assert fresh.state[a]["step"] == 1.0 and fresh.param_groups[0]["lr"] == 1e-2


def test_adafactor_state_dict_survives_json_like_form():
    a = Parameter(cr.ones(3, 4, dtype="float64"))
    opt = optim.Adafactor([a], eps=(1e-5, 1e-3))
    a.grad = cr.ones(3, 4, dtype="float64") * 0.3
    opt.step()
    saved = opt.state_dict()
    groups = json.loads(json.dumps(saved["param_groups"]))  # tuples become lists, indices stay ints here
    state = {str(i): s for i, s in saved["state"].items()}
    fresh = optim.Adafactor([a])
    fresh.load_state_dict({"state": state, "param_groups": groups})
    assert fresh.param_groups[0]["eps"] == (1e-5, 1e-3)
    assert fresh.state[a]["row_var"].shape == (3, 1)


# ----- PyTorch as the oracle ---------------------------------------------------------------------
try:
    import torch
except ImportError:  # the checks above still run
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is the oracle")


class CR:
    nn, optim, tensor = cnn, optim, staticmethod(cr.tensor)

    @staticmethod
    def dtype(name):
        return name

    @staticmethod
    def param(a):
        return Parameter(cr.tensor(a))


class TO:
    nn, optim, tensor = (torch.nn, torch.optim, staticmethod(torch.tensor)) if torch else (None, None, None)

    @staticmethod
    def param(a):
        return torch.nn.Parameter(torch.tensor(a))

    @staticmethod
    def dtype(name):
        return getattr(torch, name)


def numpy(t):
    return t.detach().cpu().numpy().copy()


def least_squares(dtype):
    """0.5 |A W + c - B|^2 over a (5, 2) matrix and a bias: convex, well conditioned."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((20, 5)).astype(dtype), rng.standard_normal((20, 2)).astype(dtype)

    def setup(F, init=(np.zeros((5, 2), dtype), np.zeros(2, dtype))):
        params = [F.param(w) for w in init]
        at, bt = F.tensor(a), F.tensor(b)

        def loss():
            r = at @ params[0] + params[1] - bt
            return 0.5 * (r * r).sum()
        return params, loss
    return setup


def rosenbrock(dtype):
    def setup(F):
        params = [F.param(np.array([-1.2, 1.0, -1.2, 1.0], dtype))]

        def loss():
            x = params[0]
            return ((1 - x[:-1]) ** 2).sum() + 100 * ((x[1:] - x[:-1] ** 2) ** 2).sum()
        return params, loss
    return setup


def mlp(dtype):
    """A torch.nn / chainrule.nn MLP with PyTorch's initial weights, and an MSE loss written as users do."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((16, 4)).astype(dtype), rng.standard_normal((16, 2)).astype(dtype)
    torch.manual_seed(0)
    reference = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    weights = {k: numpy(v).astype(dtype) for k, v in reference.state_dict().items()}

    def setup(F):
        model = F.nn.Sequential(F.nn.Linear(4, 8), F.nn.Tanh(), F.nn.Linear(8, 2)).to(F.dtype(dtype))
        model.load_state_dict({k: F.tensor(w) for k, w in weights.items()})
        xt, yt = F.tensor(x), F.tensor(y)
        return list(model.parameters()), lambda: F.nn.functional.mse_loss(model(xt), yt)
    return setup


PROBLEMS = {"least_squares": least_squares, "rosenbrock": rosenbrock, "mlp": mlp}
SETTINGS = [  # (options, steps): L-BFGS amplifies rounding, so long runs take few steps
    (dict(), 1),
    (dict(line_search_fn="strong_wolfe"), 1),
    (dict(max_iter=5), 3),
    (dict(max_iter=5, line_search_fn="strong_wolfe"), 3),
    (dict(lr=0.25, max_iter=6, history_size=2), 3),  # the history drops its oldest pairs
    (dict(line_search_fn="strong_wolfe", max_iter=8, max_eval=9, history_size=3), 3),  # evaluations run out
]


def run_lbfgs(F, problem, kwargs, dtype, steps):
    """The losses ``step`` returned, the loss after the last step and the parameters."""
    params, loss_fn = PROBLEMS[problem](dtype)(F)
    opt = F.optim.LBFGS(params, **kwargs)

    def closure():
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        return loss

    losses = [opt.step(closure).item() for _ in range(steps)]
    return losses + [loss_fn().item()], [numpy(p) for p in params], opt


@needs_torch
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("kwargs,steps", SETTINGS,
                         ids=["-".join(f"{k}={v}" for k, v in kw.items()) or "defaults" for kw, _ in SETTINGS])
@pytest.mark.parametrize("problem", sorted(PROBLEMS))
def test_lbfgs_matches_torch(problem, kwargs, steps, dtype):
    steps = steps if dtype == "float64" else min(steps, 2)
    ours_losses, ours, opt = run_lbfgs(CR, problem, kwargs, dtype, steps)
    their_losses, theirs, t_opt = run_lbfgs(TO, problem, kwargs, dtype, steps)
    np.testing.assert_allclose(ours_losses, their_losses, **TOL[dtype])
    for a, b in zip(ours, theirs):
        assert a.dtype == b.dtype == np.dtype(dtype)
        np.testing.assert_allclose(a, b, **TOL[dtype])
    assert ours_losses[-1] < ours_losses[0]
    mine, reference = opt.state_dict()["state"][0], t_opt.state_dict()["state"][0]
    assert set(mine) == set(reference)
    if dtype == "float64":
        assert (mine["func_evals"], mine["n_iter"]) == (reference["func_evals"], reference["n_iter"])
        assert len(mine["old_dirs"]) == len(reference["old_dirs"])


def to_framework(value, F):
    """A state value of one framework as the other's: tensors (also inside lists) become F's tensors."""
    if isinstance(value, list):
        return [to_framework(v, F) for v in value]
    if hasattr(value, "detach"):
        return F.tensor(numpy(value))
    return value


def convert_state_dict(sd, F):
    state = {i: {k: to_framework(v, F) for k, v in s.items()} for i, s in sd["state"].items()}
    return {"state": state, "param_groups": [dict(g) for g in sd["param_groups"]]}


@needs_torch
@pytest.mark.parametrize("kwargs", [dict(max_iter=4, history_size=3),
                                    dict(max_iter=4, history_size=3, line_search_fn="strong_wolfe")],
                         ids=["fixed-step", "strong_wolfe"])
@pytest.mark.parametrize("direction", ["torch-to-chainrule", "chainrule-to-torch"])
def test_lbfgs_state_dict_is_interchangeable_with_torch(direction, kwargs):
    """A state dict saved by one framework, loaded by the other, continues the same optimization."""
    src, dst = (TO, CR) if direction == "torch-to-chainrule" else (CR, TO)
    params, loss_fn = least_squares("float64")(src)
    opt = src.optim.LBFGS(params, **kwargs)

    def closure(opt, loss_fn):
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        return loss

    opt.step(lambda: closure(opt, loss_fn))
    saved = convert_state_dict(opt.state_dict(), dst)
    moved, moved_loss = least_squares("float64")(dst, [numpy(p) for p in params])
    opt2 = dst.optim.LBFGS(moved, **kwargs)
    opt2.load_state_dict(saved)
    opt.step(lambda: closure(opt, loss_fn))
    opt2.step(lambda: closure(opt2, moved_loss))
    for a, b in zip(moved, params):
        np.testing.assert_allclose(numpy(a), numpy(b), **TOL["float64"])
    assert opt2.state_dict()["state"][0]["n_iter"] == opt.state_dict()["state"][0]["n_iter"] > 4


@needs_torch
def test_lbfgs_refuses_param_groups_as_torch_does():
    with pytest.raises(ValueError, match="LBFGS doesn't support per-parameter options") as theirs:
        torch.optim.LBFGS([{"params": [TO.param(np.ones(2))]}, {"params": [TO.param(np.ones(3))]}])
    with pytest.raises(ValueError) as ours:
        optim.LBFGS([{"params": [CR.param(np.ones(2))]}, {"params": [CR.param(np.ones(3))]}])
    assert str(ours.value) == str(theirs.value)


LINES = {  # 1-d slices of non-convex losses: (loss and gradient at x, start, first step)
    "quartic": (lambda x: (float(np.sum((x**2 - 1) ** 2 + 0.1 * x)), 4 * x * (x**2 - 1) + 0.1), [0.3, -1.2, 0.8], 10.0),
    "wiggle": (lambda x: (float(np.sum(0.5 * x**2 + 0.5 * np.cos(7 * x))), x - 3.5 * np.sin(7 * x)), [1.1, -0.4], 20.0),
    "logcosh": (lambda x: (float(np.sum(np.log(np.cosh(x - 0.5)) + 0.05 * np.sin(5 * x))),
                           np.tanh(x - 0.5) + 0.25 * np.cos(5 * x)), [0.88, 0.69, 0.95], 20.0),
}


@needs_torch
@pytest.mark.parametrize("line", sorted(LINES))
def test_strong_wolfe_line_search_matches_torchs(line):
    from torch.optim.lbfgs import _strong_wolfe as torch_strong_wolfe

    from chainrule.optim.lbfgs import _strong_wolfe

    fn, x0, t0 = LINES[line]
    x0 = np.array(x0)
    f0, g0 = fn(x0)
    d = -g0
    f, g, t, evals = _strong_wolfe(lambda t: fn(x0 + t * d), t0, d, f0, g0, g0.dot(d))

    def along(x, t, d):
        f, g = fn(x0 + float(t) * d.cpu().numpy())
        return f, torch.tensor(g)

    tg0, td = torch.tensor(g0), torch.tensor(d)
    f_ref, g_ref, t_ref, evals_ref = torch_strong_wolfe(along, None, t0, td, f0, tg0, tg0.dot(td))
    assert evals == evals_ref and evals > 2
    np.testing.assert_allclose([f, float(t)], [f_ref, float(t_ref)], rtol=1e-12)
    np.testing.assert_allclose(g, g_ref.cpu().numpy(), rtol=1e-12, atol=1e-14)


@needs_torch
@pytest.mark.parametrize("args", [(0.0, 1.0, -2.0, 1.0, 0.5, 1.0, None), (1.0, 0.5, 1.0, 0.0, 1.0, -2.0, None),
                                  (0.0, 1.0, -1.0, 2.0, 3.0, 0.5, (2.02, 20.0)),  # clamped to the bounds
                                  (0.0, 0.0, -1.0, 1.0, 0.0, -1.0, None)])  # no minimum: the middle
def test_cubic_interpolation_matches_torchs(args):
    from torch.optim.lbfgs import _cubic_interpolate as torch_cubic

    from chainrule.optim.lbfgs import _cubic_interpolate

    x1, f1, g1, x2, f2, g2, bounds = args
    ours = _cubic_interpolate(x1, f1, np.float64(g1), x2, f2, np.float64(g2), bounds)
    theirs = torch_cubic(x1, f1, torch.tensor(g1, dtype=torch.float64), x2, f2, torch.tensor(g2, dtype=torch.float64), bounds)
    assert float(ours) == pytest.approx(float(theirs), rel=1e-14)


ADAFACTOR_SHAPES = [(4, 6), (2, 3, 5), (7,), ()]


def run_adafactor(F, kwargs, dtype, steps=12):
    rng = np.random.default_rng(3)
    params = [F.param(rng.standard_normal(s).astype(dtype)) for s in ADAFACTOR_SHAPES]
    opt = F.optim.Adafactor(params, **kwargs)
    for i in range(steps):
        for p in params:
            p.grad = F.tensor(np.cos(numpy(p) * (i + 1)).astype(dtype))
        opt.step()
    return params, opt


@needs_torch
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("kwargs", [dict(), dict(lr=0.05, maximize=True, weight_decay=0.1, d=1.5),
                                    dict(eps=(1e-2, 1e-1), beta2_decay=-0.3)], ids=["defaults", "decay", "eps"])
def test_adafactor_on_3d_vector_and_scalar_parameters_matches_torch(kwargs, dtype):
    ours, _ = run_adafactor(CR, kwargs, dtype)
    theirs, _ = run_adafactor(TO, kwargs, dtype)
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == "float64" else dict(rtol=1e-5, atol=1e-6)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(numpy(a), numpy(b), **tol)


@needs_torch
@pytest.mark.parametrize("direction", ["torch-to-chainrule", "chainrule-to-torch"])
def test_adafactor_state_dict_is_interchangeable_with_torch(direction):
    src, dst = (TO, CR) if direction == "torch-to-chainrule" else (CR, TO)
    kwargs = dict(lr=0.05, weight_decay=0.1)
    params, opt = run_adafactor(src, kwargs, "float64", steps=4)
    saved = convert_state_dict(opt.state_dict(), dst)
    moved = [dst.param(numpy(p)) for p in params]
    opt2 = dst.optim.Adafactor(moved, **kwargs)
    opt2.load_state_dict(saved)
    for i in range(4):
        for p, q in zip(params, moved):
            p.grad = src.tensor(np.sin(numpy(p) * (i + 2)))
            q.grad = dst.tensor(np.sin(numpy(q) * (i + 2)))
        opt.step()
        opt2.step()
    for a, b in zip(moved, params):
        np.testing.assert_allclose(numpy(a), numpy(b), rtol=1e-10, atol=1e-12)
