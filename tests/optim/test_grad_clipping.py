"""Oracle tests for chainrule.nn.utils: gradient clipping and parameter vectors against torch.nn.utils."""

import math
import warnings

import numpy as np
import pytest

import chainrule as cr
from chainrule.nn import Parameter
from chainrule.nn import utils as cr_utils

torch = pytest.importorskip("torch")
torch.set_num_threads(1)


def grads_setup(dtype="float64", scale=1.0, seed=0):
    """Three parameters with gradients (one without), in both frameworks."""
    rng = np.random.default_rng(seed)
    shapes = [(4, 5), (5,), (3, 2, 2)]
    values = [rng.standard_normal(s).astype(dtype) for s in shapes]
    grads = [(rng.standard_normal(s) * scale).astype(dtype) for s in shapes]
    ours = [Parameter(cr.tensor(v)) for v in values] + [Parameter(cr.ones(2, dtype=getattr(cr, dtype)))]
    theirs = [torch.nn.Parameter(torch.tensor(v)) for v in values] + [torch.nn.Parameter(torch.ones(2))]
    for p, q, g in zip(ours, theirs, grads):
        p.grad = cr.tensor(g)
        q.grad = torch.tensor(g)
    return ours, theirs


def grad_arrays(params):
    return [None if p.grad is None else np.array(p.grad.detach().cpu().numpy()) for p in params]


@pytest.mark.parametrize("dtype,rtol", [("float64", 1e-12), ("float32", 1e-5)])
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, 0.5, float("inf"), "inf", 0.0])
@pytest.mark.parametrize("max_norm", [0.5, 1e6])  # clipping, and a bound above the norm (no change)
def test_clip_grad_norm_matches_torch(norm_type, max_norm, dtype, rtol):
    ours, theirs = grads_setup(dtype)
    total = cr_utils.clip_grad_norm_(ours, max_norm, norm_type=norm_type)
    expected = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type=norm_type)
    assert isinstance(total, cr.Tensor) and total.shape == () and total.dtype == getattr(cr, dtype)
    np.testing.assert_allclose(total.item(), expected.item(), rtol=rtol)
    for a, b in zip(grad_arrays(ours), grad_arrays(theirs)):
        if a is None:
            assert b is None
        else:
            assert a.dtype == b.dtype
            np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-7 if dtype == "float32" else 0)
    if max_norm == 0.5 and norm_type not in (0.0,):
        clipped = [torch.tensor(a) for a in grad_arrays(ours) if a is not None]
        new_norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g, float(norm_type))
                                                         for g in clipped]), float(norm_type))
        assert new_norm.item() <= 0.5 * (1 + 1e-5)


def test_clip_grad_norm_of_a_single_tensor_and_of_a_generator():
    p = Parameter(cr.tensor([3.0, 4.0], dtype=cr.float64))
    p.grad = cr.tensor([3.0, 4.0], dtype=cr.float64)
    total = cr_utils.clip_grad_norm_(p, 1.0)
    assert total.item() == 5.0
    np.testing.assert_allclose(p.grad.cpu().numpy(), np.array([3.0, 4.0]) / (5.0 + 1e-6), rtol=1e-15)
    q = Parameter(cr.tensor([1.0]))
    q.grad = cr.tensor([2.0])
    assert cr_utils.clip_grad_norm_((x for x in [q]), 10.0).item() == 2.0
    assert q.grad.tolist() == [2.0]  # below the bound: unchanged
    with pytest.warns(UserWarning, match="empty generator"):
        assert cr_utils.clip_grad_norm_((x for x in []), 1.0).item() == 0.0


def test_clip_grad_norm_without_any_gradient_returns_zero():
    params = [Parameter(cr.ones(3)), Parameter(cr.ones(2))]
    total = cr_utils.clip_grad_norm_(params, 1.0)
    assert total.item() == 0.0 and total.dtype == cr.float32 and all(p.grad is None for p in params)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_norm_raises_when_asked_and_leaves_grads_alone(bad):
    ours, theirs = grads_setup()
    ours[1].grad._data[2] = bad
    theirs[1].grad[2] = bad
    before = grad_arrays(ours)
    with pytest.raises(RuntimeError, match="non-finite"):
        cr_utils.clip_grad_norm_(ours, 1.0, error_if_nonfinite=True)
    with pytest.raises(RuntimeError, match="non-finite"):
        torch.nn.utils.clip_grad_norm_(theirs, 1.0, error_if_nonfinite=True)
    for a, b in zip(before, grad_arrays(ours)):
        assert (a is None and b is None) or np.array_equal(a, b, equal_nan=True)
    # without the check, the gradients are scaled by the non-finite norm, as in PyTorch
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        total = cr_utils.clip_grad_norm_(ours, 1.0)
    expected = torch.nn.utils.clip_grad_norm_(theirs, 1.0)
    assert math.isnan(total.item()) == math.isnan(expected.item())
    for a, b in zip(grad_arrays(ours), grad_arrays(theirs)):
        if a is not None:
            np.testing.assert_array_equal(np.isnan(a), np.isnan(b.astype(a.dtype)))


def test_clip_grads_with_norm_and_get_total_norm_compose_to_clip_grad_norm():
    ours, theirs = grads_setup(scale=3.0)
    grads = [p.grad for p in ours if p.grad is not None]
    total = cr_utils.get_total_norm(grads, norm_type=2.0)
    expected = torch.nn.utils.get_total_norm([p.grad for p in theirs if p.grad is not None], norm_type=2.0)
    np.testing.assert_allclose(total.item(), expected.item(), rtol=1e-12)
    cr_utils.clip_grads_with_norm_(ours, 2.0, total)
    torch.nn.utils.clip_grads_with_norm_(theirs, 2.0, expected)
    for a, b in zip(grad_arrays(ours), grad_arrays(theirs)):
        if a is not None:
            np.testing.assert_allclose(a, b, rtol=1e-12)


def test_clipping_bumps_the_gradient_version():
    ours, _ = grads_setup()
    versions = [p.grad._version for p in ours[:3]]
    cr_utils.clip_grad_norm_(ours, 0.1)
    assert all(p.grad._version > v for p, v in zip(ours[:3], versions))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_clip_grad_value_matches_torch(dtype):
    ours, theirs = grads_setup(dtype, scale=2.0)
    assert cr_utils.clip_grad_value_(ours, 0.7) is None
    torch.nn.utils.clip_grad_value_(theirs, 0.7)
    for a, b in zip(grad_arrays(ours), grad_arrays(theirs)):
        if a is not None:
            np.testing.assert_array_equal(a, b)
            assert np.abs(a).max() <= a.dtype.type(0.7)
    assert ours[3].grad is None


def test_parameters_to_vector_and_back_match_torch():
    ours, theirs = grads_setup()
    vec = cr_utils.parameters_to_vector(ours[:3])
    expected = torch.nn.utils.parameters_to_vector(theirs[:3])
    np.testing.assert_array_equal(vec.detach().cpu().numpy(), expected.detach().cpu().numpy())
    assert vec.requires_grad  # differentiable, as in PyTorch
    (vec * cr.arange(vec.shape[0], dtype=cr.float64)).sum().backward()
    flat_grads = np.concatenate([g.ravel() for g in grad_arrays(ours[:3])])
    assert not np.array_equal(flat_grads, np.zeros_like(flat_grads))

    new = np.linspace(-1.0, 1.0, vec.shape[0])
    cr_utils.vector_to_parameters(cr.tensor(new), ours[:3])
    torch.nn.utils.vector_to_parameters(torch.tensor(new), theirs[:3])
    for p, q in zip(ours[:3], theirs[:3]):
        np.testing.assert_array_equal(p.detach().cpu().numpy(), q.detach().cpu().numpy())
        assert p._version > 0


def test_vector_to_parameters_checks_its_input_and_keeps_dtypes():
    params = [Parameter(cr.zeros(2, 2)), Parameter(cr.zeros(3))]
    cr_utils.vector_to_parameters(cr.arange(7, dtype=cr.float64), params)
    assert params[0].dtype == cr.float32 and params[1].tolist() == [4.0, 5.0, 6.0]
    with pytest.raises(ValueError, match="7 elements"):
        cr_utils.vector_to_parameters(cr.zeros(6), params)
    with pytest.raises(ValueError, match="1-D"):
        cr_utils.vector_to_parameters(cr.zeros(7, 1), params)
    with pytest.raises(TypeError, match="expected vec to be a Tensor"):
        cr_utils.vector_to_parameters(np.zeros(7), params)
    assert params[1].tolist() == [4.0, 5.0, 6.0]  # failed calls changed nothing


def test_bad_inputs_raise():
    p = Parameter(cr.ones(2))
    p.grad = cr.ones(2)
    with pytest.raises(ValueError, match="norm_type"):
        cr_utils.clip_grad_norm_([p], 1.0, norm_type="two")
    with pytest.raises(TypeError, match="element 1"):
        cr_utils.clip_grad_norm_([p, "w"], 1.0)
