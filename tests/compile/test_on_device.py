"""A compiled function whose tensors live on a cuda device runs eagerly, with one warning that says why,
and gives eager's results; on the CPU the same function is captured and replayed."""

import warnings

import numpy as np
import pytest

import chainrule as cr


def _train(device, compiled: bool, steps: int = 4):
    cr.manual_seed(0)
    model = cr.nn.Sequential(cr.nn.Linear(3, 5), cr.nn.Tanh(), cr.nn.Linear(5, 1)).to(device)
    opt = cr.optim.SGD(model.parameters(), lr=0.1)
    x, y = cr.randn(8, 3, device=device), cr.randn(8, 1, device=device)

    def step():
        opt.zero_grad()
        loss = cr.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        return loss

    fn = cr.compile(step) if compiled else step
    losses = [fn().detach().cpu().numpy().copy() for _ in range(steps)]
    return losses, [p.detach().cpu().numpy().copy() for p in model.parameters()], fn


def test_a_step_on_the_cuda_device_runs_eagerly_with_one_warning(cuda_device):
    device = cuda_device
    eager_losses, eager_params, _ = _train(device, compiled=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        losses, params, fn = _train(device, compiled=True)
    messages = [str(w.message) for w in caught if "compile" in str(w.message)]
    assert len(messages) == 1 and "runs eagerly" in messages[0] and "cuda" in messages[0]
    assert fn.eager_calls == 4 and fn.captures == 0
    for a, b in zip(losses + params, eager_losses + eager_params):
        np.testing.assert_array_equal(a, b)


@pytest.mark.cpu_only(reason="the replayed program runs on the CPU")
def test_the_same_step_on_the_cpu_is_captured_and_replayed():
    _, _, fn = _train(cr.cpu, compiled=True, steps=5)
    assert fn.captures == 1 and fn.eager_calls >= 1
    assert any(v.replays > 0 for v in fn.variants.values())
