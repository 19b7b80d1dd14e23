"""Train a two-layer network with plain gradient descent written by hand, and watch the loss fall.

    python examples/quickstart.py
"""

import chainrule as cr

cr.manual_seed(0)
# two interleaved spirals: a problem a linear model cannot solve
n = 200
t = cr.linspace(0.0, 3.0, n)
angle = t * 2.5
x = cr.cat([cr.stack([t * angle.cos(), t * angle.sin()], 1),
            cr.stack([-t * angle.cos(), -t * angle.sin()], 1)]) + 0.05 * cr.randn(2 * n, 2)
y = cr.cat([cr.zeros(n, dtype=cr.int64), cr.ones(n, dtype=cr.int64)])

w1 = (cr.randn(2, 64) * 0.7).requires_grad_()
b1 = cr.zeros(64, requires_grad=True)
w2 = (cr.randn(64, 2) * 0.15).requires_grad_()
b2 = cr.zeros(2, requires_grad=True)
params = [w1, b1, w2, b2]

for step in range(1501):
    logits = (x @ w1 + b1).tanh() @ w2 + b2
    loss = (logits.logsumexp(1) - logits.gather(1, y[:, None]).squeeze(1)).mean()  # cross-entropy
    for p in params:
        p.grad = None
    loss.backward()
    with cr.no_grad():
        for p in params:
            p -= 0.5 * p.grad
    if step % 150 == 0:
        accuracy = (logits.argmax(1) == y).float().mean().item()
        print(f"step {step:5d}  loss {loss.item():.4f}  accuracy {accuracy:.3f}")
