"""A user's first program: a two-layer network trained by hand-written gradient descent."""

import math

import pytest

import chainrule as cr


def rings(n: int):
    """Points on an inner disc (class 0) and an outer ring (class 1): separable, but not by a line."""
    radius = cr.cat([cr.rand(n) * 0.8, 1.6 + cr.rand(n) * 0.8])
    angle = cr.rand(2 * n) * (2 * math.pi)
    x = cr.stack([radius * angle.cos(), radius * angle.sin()], 1)
    y = cr.cat([cr.zeros(n, dtype=cr.int64), cr.ones(n, dtype=cr.int64)])
    return x, y


def test_two_layer_network_trained_by_hand_reaches_full_training_accuracy():
    cr.manual_seed(0)
    x, y = rings(100)
    w1 = (cr.randn(2, 16) * 0.8).requires_grad_()
    b1 = cr.zeros(16, requires_grad=True)
    w2 = (cr.randn(16, 2) * 0.3).requires_grad_()
    b2 = cr.zeros(2, requires_grad=True)
    params = [w1, b1, w2, b2]

    losses = []
    for _ in range(400):
        logits = (x @ w1 + b1).tanh() @ w2 + b2
        loss = (logits.logsumexp(1) - logits.gather(1, y[:, None]).squeeze(1)).mean()  # cross-entropy
        for p in params:
            p.grad = None
        loss.backward()
        with cr.no_grad():
            for p in params:
                p -= 0.5 * p.grad
        losses.append(loss.item())

    with cr.no_grad():
        predictions = ((x @ w1 + b1).tanh() @ w2 + b2).argmax(1)
    accuracy = (predictions == y).float().mean().item()
    assert accuracy == 1.0
    assert losses[-1] < 0.1 * losses[0]
    assert all(p.is_leaf and p.requires_grad and p.dtype is cr.float32 for p in params)
    assert loss.dtype is cr.float32  # no silent float64 up-casts along the way


def test_thread_count_can_be_limited_and_restored():
    before = cr.get_num_threads()
    try:
        cr.set_num_threads(1)
        assert cr.get_num_threads() == 1
        assert (cr.ones(64, 64) @ cr.ones(64, 64)).sum().item() == 64**3
    finally:
        cr.set_num_threads(before)
    assert cr.get_num_threads() == before
    for bad in (0, 1.5):
        with pytest.raises(ValueError, match="n must be a positive int"):
            cr.set_num_threads(bad)


def test_elementwise_threads_take_only_the_cores_the_blas_leaves_free():
    from chainrule.backend.parallel import get_workers, usable_cores

    before = cr.get_num_threads()
    cores = usable_cores()
    try:
        cr.set_num_threads(cores)  # the BLAS on every core: kernels run in the calling thread only
        assert get_workers() == 1
        cr.set_num_threads(cores + 2)
        assert get_workers() == 1
        cr.set_num_threads(1)  # the calling thread plus every other core
        assert get_workers() == min(cores, 8)
    finally:
        cr.set_num_threads(before)


def test_the_layers_above_the_core_are_reachable_from_the_top_level_module():
    import chainrule.nn
    import chainrule.optim

    assert cr.nn is chainrule.nn and cr.optim is chainrule.optim
    with pytest.raises(AttributeError, match="has no attribute 'not_a_module'"):
        cr.not_a_module  # noqa: B018
