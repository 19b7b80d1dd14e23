"""Operands on two devices: refused with PyTorch's message, except a 0-d CPU tensor, which PyTorch treats as
a number and which joins the other operand's device (its gradient comes back to the CPU)."""

import numpy as np
import pytest

import chainrule as cr


def test_tensors_on_two_devices_are_refused_naming_both(cuda_device):
    on_device = cr.ones(2, 3, device=cuda_device)
    on_host = cr.ones(2, 3, device="cpu")
    with pytest.raises(RuntimeError, match=r"mul: Expected all tensors to be on the same device, but found at least "
                                           r"two devices, cuda:0 and cpu!.*\(2, 3\).*\.to\(device\)"):
        on_device * on_host
    with pytest.raises(RuntimeError, match="same device"):
        on_host + on_device


def test_a_zero_dim_cpu_tensor_joins_the_device_and_gets_its_gradient(cuda_device):
    x = cr.tensor([1.0, 2.0, 3.0], device=cuda_device, requires_grad=True)
    scale = cr.tensor(2.5, device="cpu", requires_grad=True)
    y = x * scale
    assert y.device == cuda_device
    y.sum().backward()
    assert scale.grad.device == cr.cpu and x.grad.device == cuda_device
    np.testing.assert_allclose(scale.grad.cpu().numpy(), 6.0)
    np.testing.assert_allclose(x.grad.cpu().numpy(), [2.5, 2.5, 2.5])
    assert (cr.tensor(1.0, device="cpu") - x).device == cuda_device


def test_a_one_element_cpu_tensor_that_is_not_zero_dim_is_refused(cuda_device):
    with pytest.raises(RuntimeError, match="same device"):
        cr.ones(3, device=cuda_device) + cr.ones(1, device="cpu")


def test_embedding_refuses_indices_on_another_device_as_pytorch(cuda_device):
    weight = cr.randn(10, 4, device=cuda_device)
    with pytest.raises(RuntimeError, match=r"embedding: Expected all tensors to be on the same device.*cuda:0 and cpu"):
        cr.nn.functional.embedding(cr.tensor([1, 2], device="cpu"), weight)
    rows = cr.nn.functional.embedding(cr.tensor([1, 2], device=cuda_device), weight)
    np.testing.assert_array_equal(rows.cpu().numpy(), weight.cpu().numpy()[[1, 2]])
