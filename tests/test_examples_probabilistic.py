"""The probabilistic examples: Gaussian-process regression (examples/gaussian_process.py, marginal likelihood
through linalg.cholesky / solve_triangular) and REINFORCE on CartPole (examples/policy_gradient.py, with
distributions.Categorical). Each model and training step, built in torch and in chainrule from the same
weights, gives the same losses and parameters after a few steps; each main runs and learns."""

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

import chainrule as cr

torch = pytest.importorskip("torch")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

TOLERANCE = {"float64": 1e-8, "float32": 2e-4}
STEPS = 4


def twin(build, dtype, **kwargs):
    """The same model in both libraries, chainrule's carrying torch's initial weights."""
    torch.manual_seed(0)
    theirs = build(torch, **kwargs).to(getattr(torch, dtype))
    ours = build(cr, **kwargs).to(getattr(cr, dtype))
    ours.load_state_dict({k: cr.tensor(v.detach().cpu().numpy()) for k, v in theirs.state_dict().items()})
    return theirs, ours


def assert_same(theirs, ours, t_losses, c_losses, rtol, label):
    np.testing.assert_allclose(c_losses, t_losses, rtol=rtol, atol=rtol * 1e-2, err_msg=f"{label}: losses")
    for name, value in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[name].cpu().numpy(), value.cpu().numpy(), rtol=rtol, atol=rtol * 1e-2,
                                   err_msg=f"{label}: {name}")


@pytest.mark.parametrize("dtype", sorted(TOLERANCE))
def test_gaussian_process_matches_pytorch(dtype):
    m = importlib.import_module("gaussian_process")
    theirs, ours = twin(m.build_model, dtype, lengthscale=0.7, signal_var=1.3, noise_var=0.3)
    x, y, x_new, _ = m.make_data(np.random.default_rng(0), n_train=20, n_test=7)
    t_args = [torch.tensor(a, dtype=getattr(torch, dtype)) for a in (x, y, x_new)]
    c_args = [cr.tensor(a, dtype=getattr(cr, dtype)) for a in (x, y, x_new)]
    t_opt, c_opt = torch.optim.Adam(theirs.parameters(), lr=0.05), cr.optim.Adam(ours.parameters(), lr=0.05)
    t_losses = [m.train_step(torch, theirs, t_opt, *t_args[:2]) for _ in range(STEPS)]
    c_losses = [m.train_step(cr, ours, c_opt, *c_args[:2]) for _ in range(STEPS)]
    assert_same(theirs, ours, t_losses, c_losses, TOLERANCE[dtype], "gaussian process")
    with torch.no_grad(), cr.no_grad():
        for t_out, c_out in zip(theirs.predict(*t_args), ours.predict(*c_args)):
            np.testing.assert_allclose(c_out.cpu().numpy(), t_out.cpu().numpy(), rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype])


@pytest.mark.parametrize("dtype", sorted(TOLERANCE))
def test_policy_gradient_matches_pytorch(dtype):
    m = importlib.import_module("policy_gradient")
    theirs, ours = twin(m.build_policy, dtype, hidden=8)
    rng = np.random.default_rng(0)
    obs = rng.standard_normal((6, 3, 4)) * 0.1
    actions = rng.integers(0, 2, (6, 3))
    mask = np.ones((6, 3))
    mask[4:, 1] = 0  # one episode ended early
    adv = np.where(mask > 0, rng.standard_normal((6, 3)), 0.0)
    t_args = [torch.tensor(obs, dtype=getattr(torch, dtype)), torch.tensor(actions),
              torch.tensor(adv, dtype=getattr(torch, dtype)), torch.tensor(mask, dtype=getattr(torch, dtype))]
    c_args = [cr.tensor(obs, dtype=getattr(cr, dtype)), cr.tensor(actions),
              cr.tensor(adv, dtype=getattr(cr, dtype)), cr.tensor(mask, dtype=getattr(cr, dtype))]
    t_opt, c_opt = torch.optim.Adam(theirs.parameters(), lr=0.01), cr.optim.Adam(ours.parameters(), lr=0.01)
    t_losses = [m.train_step(torch, theirs, t_opt, *t_args) for _ in range(STEPS)]
    c_losses = [m.train_step(cr, ours, c_opt, *c_args) for _ in range(STEPS)]
    assert_same(theirs, ours, t_losses, c_losses, TOLERANCE[dtype], "policy gradient")


def test_cartpole_and_returns():
    m = importlib.import_module("policy_gradient")
    env = m.CartPole(3, np.random.default_rng(0))
    env.alive[2] = False  # a finished episode neither moves nor earns
    frozen = env.state[2].copy()
    total = sum(env.step(np.array([True, False, True])) for _ in range(5))
    np.testing.assert_array_equal(total, [5, 5, 0])
    np.testing.assert_array_equal(env.state[2], frozen)
    assert env.state[0, 1] > 0 > env.state[1, 1]  # pushed right / left: the cart's velocity follows the push
    # always pushing one way topples the pole well before the time limit
    while env.alive.any():
        env.step(np.array([True, True, True]))
    assert env.steps < 60
    rewards = np.array([[1.0, 1.0], [1.0, 0.0], [1.0, 0.0]])
    alive = rewards > 0
    adv = m.advantages(rewards, alive, gamma=0.5)
    returns = np.array([1.75, 1.5, 1.0, 1.0])  # the played steps: 1 + .5 + .25, 1 + .5, 1; and 1
    expected = (returns - returns.mean()) / returns.std()
    np.testing.assert_allclose(adv[alive], expected[[0, 3, 1, 2]], rtol=1e-6)
    assert (adv[~alive] == 0).all()


def test_gaussian_process_main_learns(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    rmse = importlib.import_module("gaussian_process").main(["--plot", str(tmp_path / "curve.png")])
    out = capsys.readouterr().out
    assert "loss" in out and (tmp_path / "curve.png").stat().st_size > 0
    noise_std = float(out.split("noise std ")[1].split()[0])
    # 60 points with noise 0.2: the learned noise is near it and the posterior mean well below it in error
    assert 0.14 < noise_std < 0.26 and rmse < 0.15


def test_policy_gradient_main_learns(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    final = importlib.import_module("policy_gradient").main(["--steps", "30", "--log-every", "10",
                                                             "--plot", str(tmp_path / "curve.png")])
    out = capsys.readouterr().out
    assert "mean episode length" in out and (tmp_path / "curve.png").stat().st_size > 0
    first = float(out.splitlines()[0].split("length")[1].split()[0])
    # a random policy keeps the pole up for about 20 steps; 30 batches of REINFORCE triple that at least
    assert first < 60 and final > 3 * first
