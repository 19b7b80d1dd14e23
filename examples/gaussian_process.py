"""Gaussian-process regression with its hyperparameters (lengthscale, signal and noise variance) learned by
maximising the log marginal likelihood, through a Cholesky factor and triangular solves, as a PyTorch user
writes it with torch.linalg; only the import differs.

    python examples/gaussian_process.py                  # ~2 s: negative log marginal likelihood every 25 steps
    python examples/gaussian_process.py --steps 400 --plot gp.png

The data are generated: y = sin(3x) + 0.3 x^2 plus noise of standard deviation 0.2 at 60 random points of
[-2, 2], a held-out grid for the test error. ``build_model`` and ``train_step`` take the library
(``chainrule`` or ``torch``) as an argument, so tests/test_examples_probabilistic.py runs the same code in
both and compares the numbers.
"""

import argparse
import math

import numpy as np

import chainrule as torch
from chainrule.train import plot_history

NOISE_STD = 0.2


def make_data(rng, n_train=60, n_test=200):
    """Training points at random inputs, test points on a grid; both of the same smooth function."""
    def f(x):
        return np.sin(3 * x) + 0.3 * x ** 2

    x_train = rng.uniform(-2, 2, (n_train, 1))
    y_train = f(x_train[:, 0]) + NOISE_STD * rng.standard_normal(n_train)
    x_test = np.linspace(-2, 2, n_test)[:, None]
    return x_train, y_train, x_test, f(x_test[:, 0])


def build_model(torch, lengthscale=1.0, signal_var=1.0, noise_var=0.5):
    nn = torch.nn

    class ExactGP(nn.Module):
        """Zero-mean GP with the squared-exponential kernel; hyperparameters are kept as logs (positive)."""

        def __init__(self):
            super().__init__()
            self.log_lengthscale = nn.Parameter(torch.tensor(math.log(lengthscale)))
            self.log_signal_var = nn.Parameter(torch.tensor(math.log(signal_var)))
            self.log_noise_var = nn.Parameter(torch.tensor(math.log(noise_var)))

        def kernel(self, a, b):
            sq_dist = ((a.unsqueeze(1) - b.unsqueeze(0)) ** 2).sum(-1)
            return self.log_signal_var.exp() * (-0.5 * sq_dist / self.log_lengthscale.exp() ** 2).exp()

        def cholesky(self, x):
            """L with L L^T = K(x, x) + noise_var I."""
            eye = torch.eye(x.shape[0], dtype=x.dtype)
            return torch.linalg.cholesky(self.kernel(x, x) + self.log_noise_var.exp() * eye)

        def neg_log_marginal_likelihood(self, x, y):
            """0.5 y^T K^-1 y + 0.5 log det K + n/2 log(2 pi), per training point."""
            L = self.cholesky(x)
            z = torch.linalg.solve_triangular(L, y.unsqueeze(-1), upper=False)  # L^-1 y
            nll = 0.5 * (z ** 2).sum() + L.diagonal().log().sum() + 0.5 * x.shape[0] * math.log(2 * math.pi)
            return nll / x.shape[0]

        def predict(self, x, y, x_new):
            """Posterior mean and variance of f at x_new given the data (x, y)."""
            L = self.cholesky(x)
            alpha = torch.linalg.solve_triangular(L.mT, torch.linalg.solve_triangular(
                L, y.unsqueeze(-1), upper=False), upper=True)  # K^-1 y
            k_star = self.kernel(x, x_new)
            mean = (k_star * alpha).sum(0)
            v = torch.linalg.solve_triangular(L, k_star, upper=False)
            var = self.log_signal_var.exp() - (v ** 2).sum(0)
            return mean, var

    return ExactGP()


def train_step(torch, model, optimizer, x, y):
    """One gradient step on the negative log marginal likelihood; returns it (per point) before the step."""
    optimizer.zero_grad()
    loss = model.neg_log_marginal_likelihood(x, y)
    loss.backward()
    optimizer.step()
    return loss.item()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--log-every", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", help="save the learning curve to this image (needs matplotlib)")
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    x_train, y_train, x_test, f_test = make_data(np.random.default_rng(args.seed))
    x, y = torch.tensor(x_train, dtype=torch.float64), torch.tensor(y_train, dtype=torch.float64)
    model = build_model(torch).to(torch.float64)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)

    losses = []
    for step in range(1, args.steps + 1):
        losses.append(train_step(torch, model, optimizer, x, y))
        if step % args.log_every == 0 or step == args.steps:
            print(f"step {step:4d}  loss (negative log marginal likelihood per point) {losses[-1]:.4f}")

    with torch.no_grad():
        mean, var = model.predict(x, y, torch.tensor(x_test, dtype=torch.float64))
        rmse = float(np.sqrt(((mean.cpu().numpy() - f_test) ** 2).mean()))
        inside = float((np.abs(mean.cpu().numpy() - f_test) < 2 * np.sqrt(np.maximum(var.cpu().numpy(), 0))).mean())
        ell, sf2, sn2 = (p.exp().item() for p in (model.log_lengthscale, model.log_signal_var, model.log_noise_var))
    print(f"learned lengthscale {ell:.3f}, signal variance {sf2:.3f}, noise std {math.sqrt(sn2):.3f} "
          f"(true noise std {NOISE_STD})")
    print(f"test RMSE of the posterior mean {rmse:.4f}; {inside:.0%} of the test function within 2 posterior std")
    if args.plot:
        plot_history({"steps": [{"step": i + 1, "loss": v} for i, v in enumerate(losses)]}, args.plot,
                     title="GP marginal likelihood")
    return rmse


if __name__ == "__main__":
    main()
