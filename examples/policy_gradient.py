"""REINFORCE on CartPole: a small policy network's logits make a ``torch.distributions.Categorical`` over the
two pushes; the update raises the log-probability of each action in proportion to the (normalised)
discounted return that followed it, as in PyTorch's examples/reinforcement_learning; only the import differs.

    python examples/policy_gradient.py                  # ~10 s: mean episode length every 5 batches
    python examples/policy_gradient.py --steps 120 --plot pg.png

CartPole is written here in numpy and run as a batch of independent episodes: a pole hinged on a cart that
is pushed left or right with a force of 10 N, Euler steps of 0.02 s, an episode ends when the pole leans past
12 degrees, the cart leaves [-2.4, 2.4] or 200 steps have passed; the reward is 1 per step survived.
``build_policy`` and ``train_step`` take the library (``chainrule`` or ``torch``) as an argument, so
tests/test_examples_probabilistic.py runs the same code in both and compares the numbers.
"""

import argparse

import numpy as np

import chainrule as torch
from chainrule.train import plot_history


class CartPole:
    """A batch of CartPole episodes, stepped together; finished episodes stay finished (``alive`` False)."""

    GRAVITY, CART_MASS, POLE_MASS, HALF_LENGTH, FORCE, DT = 9.8, 1.0, 0.1, 0.5, 10.0, 0.02
    X_LIMIT, ANGLE_LIMIT, MAX_STEPS = 2.4, 12 * np.pi / 180, 200

    def __init__(self, n, rng):
        self.state = rng.uniform(-0.05, 0.05, (n, 4))  # cart position, cart velocity, pole angle, angular velocity
        self.alive = np.ones(n, dtype=bool)
        self.steps = 0

    def step(self, push_right):
        """Advance every live episode by one time step; returns the rewards (1 for each episode alive before)."""
        x, x_dot, theta, theta_dot = self.state.T
        force = np.where(push_right, self.FORCE, -self.FORCE)
        total_mass = self.CART_MASS + self.POLE_MASS
        cos, sin = np.cos(theta), np.sin(theta)
        # the cart-pole equations of motion (a rigid pole, no friction)
        common = (force + self.POLE_MASS * self.HALF_LENGTH * theta_dot ** 2 * sin) / total_mass
        theta_acc = (self.GRAVITY * sin - cos * common) / (
            self.HALF_LENGTH * (4 / 3 - self.POLE_MASS * cos ** 2 / total_mass))
        x_acc = common - self.POLE_MASS * self.HALF_LENGTH * theta_acc * cos / total_mass
        new = np.stack([x + self.DT * x_dot, x_dot + self.DT * x_acc, theta + self.DT * theta_dot,
                        theta_dot + self.DT * theta_acc], 1)
        self.state = np.where(self.alive[:, None], new, self.state)
        rewards = self.alive.astype(np.float64)
        self.steps += 1
        fallen = (np.abs(self.state[:, 0]) > self.X_LIMIT) | (np.abs(self.state[:, 2]) > self.ANGLE_LIMIT)
        self.alive &= ~fallen & (self.steps < self.MAX_STEPS)
        return rewards


def build_policy(torch, hidden=32):
    nn = torch.nn
    return nn.Sequential(nn.Linear(4, hidden), nn.Tanh(), nn.Linear(hidden, 2))


def rollout(torch, policy, env):
    """Play the batch of episodes to the end, drawing each action from the policy's Categorical; returns
    the observations (T, N, 4), actions (T, N), rewards (T, N) and which episodes were alive (T, N)."""
    observations, actions, rewards, alive = [], [], [], []
    with torch.no_grad():
        while env.alive.any():
            obs = env.state.copy()
            logits = policy(torch.tensor(obs, dtype=torch.float32))
            action = torch.distributions.Categorical(logits=logits).sample().cpu().numpy()
            alive.append(env.alive.copy())
            observations.append(obs)
            actions.append(action)
            rewards.append(env.step(action == 1))
    return np.array(observations), np.array(actions), np.array(rewards), np.array(alive)


def advantages(rewards, alive, gamma=0.99):
    """The discounted return from each step on, normalised over the steps actually played."""
    returns = np.zeros_like(rewards)
    running = np.zeros(rewards.shape[1])
    for t in range(len(rewards) - 1, -1, -1):
        running = rewards[t] + gamma * running
        returns[t] = running
    played = returns[alive]
    return np.where(alive, (returns - played.mean()) / (played.std() + 1e-8), 0.0)


def train_step(torch, policy, optimizer, observations, actions, advantage, mask, entropy_bonus=0.01):
    """One REINFORCE step: minimise -mean(log pi(a|s) * advantage) - entropy_bonus * mean(entropy) over the
    played steps (``mask``); returns that loss."""
    optimizer.zero_grad()
    dist = torch.distributions.Categorical(logits=policy(observations))
    weight = mask / mask.sum()
    loss = -(dist.log_prob(actions) * advantage * weight).sum() - entropy_bonus * (dist.entropy() * weight).sum()
    loss.backward()
    optimizer.step()
    return loss.item()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="policy updates, each on a new batch of episodes")
    parser.add_argument("--episodes", type=int, default=16, help="episodes played per batch")
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--log-every", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", help="save the learning curve to this image (needs matplotlib)")
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    policy = build_policy(torch)
    optimizer = torch.optim.Adam(policy.parameters(), lr=args.lr)

    lengths = []
    for batch in range(1, args.steps + 1):
        obs, acts, rewards, alive = rollout(torch, policy, CartPole(args.episodes, rng))
        lengths.append(float(rewards.sum(0).mean()))
        adv = advantages(rewards, alive)
        loss = train_step(torch, policy, optimizer, torch.tensor(obs, dtype=torch.float32), torch.tensor(acts),
                   torch.tensor(adv, dtype=torch.float32), torch.tensor(alive, dtype=torch.float32))
        if batch % args.log_every == 0 or batch == args.steps:
            print(f"batch {batch:4d}  mean episode length {np.mean(lengths[-args.log_every:]):6.1f} of "
                  f"{CartPole.MAX_STEPS}  (policy loss {loss:+.4f})")
    if args.plot:
        plot_history({"steps": [{"step": i + 1, "loss": -v} for i, v in enumerate(lengths)]}, args.plot,
                     title="REINFORCE on CartPole: minus the mean episode length")
    return lengths[-1]


if __name__ == "__main__":
    main()
