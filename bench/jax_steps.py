"""JAX ``jit`` twins of the reference training steps, timed beside ``cr.compile`` where JAX is installed
(``pip install jax``; nothing in chainrule needs it).

Each twin starts from the chainrule trainer's own weights and data (copied), does the same work as its
step (forward, loss, gradients, the same optimizer update) as one jitted function, and updates its
parameters in place (donated buffers), as chainrule and PyTorch do. Written as a JAX user would write it
for speed: the overhead chain's 134 (16,) parameters are two stacked (67, 16) arrays (the same arithmetic;
as 134 separate arrays, JAX's per-array dispatch made its step 14x slower here). Its step-1 loss is checked against
chainrule's, so the figures compare equal work. JAX dispatches asynchronously: every timed step waits for
its loss (``block_until_ready``). Workloads without a twin here (gpt with dropout, wide, lstm, unet) get no
JAX figure.
"""

from __future__ import annotations

import os

import numpy as np

NAMES = ("overhead", "mlp", "cnn")


def load_jax(threads: int):
    """JAX on the CPU limited to ``threads`` (XLA reads its flags at import), or None when not installed."""
    if threads == 1:
        os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
    try:
        import jax
    except ImportError:
        return None
    jax.config.update("jax_platforms", "cpu")
    return jax


class JaxStep:
    """A jitted step on the trainer's weights: ``step()`` runs one and returns its loss (waited for)."""

    def __init__(self, jax, name: str, trainer):
        jnp = jax.numpy
        loss_of, lr, arrange = _TWINS[name](jax)
        self.params = [jnp.asarray(a) for a in arrange([p._data.copy() for p in trainer.model.parameters()])]
        self.inputs = jnp.asarray(trainer.inputs._data.copy())
        self.targets = jnp.asarray(trainer.targets._data.copy())

        def update(params, x, y):
            loss, grads = jax.value_and_grad(loss_of)(params, x, y)
            if lr is None:  # no optimizer: the gradients are the step's result
                return params, grads, loss
            return [p - lr * g for p, g in zip(params, grads)], None, loss

        self._update = jax.jit(update, donate_argnums=0)
        self.first_loss: float | None = None

    def step(self):
        self.params, _grads, loss = self._update(self.params, self.inputs, self.targets)
        loss.block_until_ready()
        if self.first_loss is None:
            self.first_loss = float(loss)
        return loss


def _as_they_are(arrays):
    return arrays


def _overhead(jax):
    jnp = jax.numpy

    def stacked(arrays):  # the chain's scales, then its shifts (its two ParameterLists, in order)
        n = len(arrays) // 2
        return [np.stack(arrays[:n]), np.stack(arrays[n:])]

    def loss_of(params, x, _y):
        scales, shifts = params
        h = x
        for i in range(3 * len(scales) - 1):  # bench.models.chain: mul, add, tanh, ... (200 ops)
            kind, k = i % 3, i // 3
            h = h * scales[k] if kind == 0 else h + shifts[k] if kind == 1 else jnp.tanh(h)
        return h.sum()

    return loss_of, None, stacked


def _cross_entropy(jax, logits, labels):
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    return -jax.numpy.take_along_axis(log_probs, labels[:, None], axis=-1).mean()


def _mlp(jax):
    def loss_of(params, x, y):
        h = x
        for i in range(0, len(params), 2):  # Linear weights (out, in) and biases, ReLU between
            h = h @ params[i].T + params[i + 1]
            if i + 2 < len(params):
                h = jax.nn.relu(h)
        return _cross_entropy(jax, h, y)

    return loss_of, 0.1, _as_they_are


def _cnn(jax):
    lax = jax.lax

    def conv(x, w, b):
        out = lax.conv_general_dilated(x, w, (1, 1), ((1, 1), (1, 1)), dimension_numbers=("NCHW", "OIHW", "NCHW"))
        return out + b[None, :, None, None]

    def pool(x):
        return lax.reduce_window(x, -np.inf, lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")

    def loss_of(params, x, y):
        w1, b1, w2, b2, w3, b3 = params
        h = pool(jax.nn.relu(conv(x, w1, b1)))
        h = pool(jax.nn.relu(conv(h, w2, b2)))
        return _cross_entropy(jax, h.reshape(h.shape[0], -1) @ w3.T + b3, y)

    return loss_of, 0.05, _as_they_are


_TWINS = {"overhead": _overhead, "mlp": _mlp, "cnn": _cnn}
