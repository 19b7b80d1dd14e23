"""Every op of the table with its inputs on the cuda device (the NumPy stand-in on a machine without a GPU)
while the default device stays the CPU: the forward and the backward run on the inputs' device, and every
constant an op or its rule makes on the way is made there (the stand-in refuses host arrays next to device
ones). Outputs and gradients equal the same call's on the CPU. The suite under CHAINRULE_TEST_DEVICE=cuda
cannot see a constant made on the default device, as the default is then the cuda device itself."""

import numpy as np
import pytest
from op_cases import CASES, as_tuple

import chainrule as cr

# Cases whose table function builds tensors of its own (index, mask and target tensors with lib.tensor, the
# identity with lib.eye in _well_conditioned/_spd) on the default device, as torch.tensor does: mixing devices
# there is the table's doing, not the op's. (Each was checked to fail only there.)
_BUILDS_ITS_OWN_TENSORS = {
    "gather", "scatter_add", "scatter_add-larger-src", "index_select", "index_add", "masked_fill-broadcast-mask",
    "masked_fill-tensor-value", "take_along_dim", "poisson_nll_loss-full", "multi_margin_loss-p1",
    "multi_margin_loss-p2-weight", "multilabel_margin_loss", "allclose", "equal", "scatter_reduce-sum",
    "scatter_reduce-prod", "scatter_reduce-mean", "scatter_reduce-amax", "scatter_reduce-amin",
    "scatter_reduce-prod-zeros", "scatter_reduce-larger-src", "scatter-reduce-add", "scatter-reduce-multiply-value",
    "index_reduce-prod", "index_reduce-mean", "index_reduce-amax", "index_reduce-amin", "fractional_max_pool2d",
    "fractional_max_pool3d", "igamma", "igammac", "special.gammainc", "special.gammaincc", "qr-some-false",
    "triangular_solve", "triangular_solve-lower-transposed", "cholesky-upper", "cholesky_solve",
    "cholesky_solve-upper", "cholesky_inverse", "matrix_power-method", "linalg.cond", "linalg.cond-fro",
    "linalg.tensorinv", "linalg.tensorsolve", "linalg.solve_ex", "linalg.cholesky_ex", "linalg.lu_solve",
    "linalg.lu_solve-adjoint-right", "lu-unpack-solve", "special.zeta",
}


def _params():
    out = []
    for c in CASES:
        if c.name in _BUILDS_ITS_OWN_TENSORS or not c.configs:
            continue
        shapes, params = c.configs[0]
        out.append(pytest.param(c, shapes, params, id=f"{c.kind}-{c.name}"))
    return out


def _run(case, shapes, params, device):
    xs = [cr.tensor(a, requires_grad=case.differentiable, device=device) for a in case.inputs(shapes)]
    outs = [o for o in as_tuple(case.call(cr, *xs, **params)) if isinstance(o, cr.Tensor)]
    grads = []
    if case.differentiable:
        loss = sum((o * 1.0).sum() for o in outs if o.requires_grad)
        grads = [g for g in cr.autograd.grad(loss, xs, allow_unused=True) if g is not None]
    return outs, grads


@pytest.mark.parametrize("case, shapes, params", _params())
def test_forward_and_backward_stay_on_the_inputs_device(case, shapes, params, cuda_device):
    with cr.device("cpu"):
        outs, grads = _run(case, shapes, params, cuda_device)
        expected_outs, expected_grads = _run(case, shapes, params, "cpu")
    for name, got, expected in (("output", outs, expected_outs), ("gradient", grads, expected_grads)):
        assert len(got) == len(expected)
        for i, (ours, cpu) in enumerate(zip(got, expected)):
            assert ours.device == cuda_device, f"{case.name}: {name} {i} is on {ours.device}"
            np.testing.assert_allclose(ours.detach().cpu().numpy(), cpu.detach().numpy(), rtol=1e-12, atol=1e-12,
                                       err_msg=f"{case.name}: {name} {i}")
