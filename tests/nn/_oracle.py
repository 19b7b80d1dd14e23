"""Helpers for comparing chainrule layers with PyTorch's: same weights in, same numbers out."""

import numpy as np

import chainrule as cr


def copy_weights(torch_module, module) -> None:
    """Load the torch module's state dict into ours (names match by design)."""
    state = {k: cr.tensor(v.detach().cpu().numpy()) for k, v in torch_module.state_dict().items()}
    module.load_state_dict(state)


def run_both(torch, torch_module, module, *inputs, dtype="float64"):
    """Forward both modules on the same random inputs, backward a random cotangent, and return
    (ours, theirs) pairs for the output, the input gradients and the parameter gradients."""
    tdtype = getattr(torch, dtype)
    torch_module.to(tdtype)
    module.to(dtype)
    copy_weights(torch_module, module)
    floats = [np.issubdtype(x.dtype, np.floating) for x in inputs]
    t_in = [torch.tensor(x, dtype=tdtype, requires_grad=True) if f else torch.tensor(x) for x, f in zip(inputs, floats)]
    c_in = [cr.tensor(x, dtype=dtype, requires_grad=True) if f else cr.tensor(x) for x, f in zip(inputs, floats)]
    t_out = torch_module(*t_in)
    c_out = module(*c_in)
    if isinstance(t_out, tuple):
        t_out, c_out = t_out[0], c_out[0]
    seed = np.random.default_rng(1).standard_normal(tuple(t_out.shape))
    t_out.backward(torch.tensor(seed, dtype=tdtype))
    c_out.backward(cr.tensor(seed, dtype=dtype))
    pairs = [("output", c_out.detach().cpu().numpy(), t_out.detach().cpu().numpy())]
    for i, (c, t) in enumerate(zip(c_in, t_in)):
        if isinstance(c, cr.Tensor) and c.requires_grad:
            pairs.append((f"input {i} grad", c.grad.cpu().numpy(), t.grad.cpu().numpy()))
    theirs = dict(torch_module.named_parameters())
    for name, p in module.named_parameters():
        pairs.append((f"{name} grad", p.grad.cpu().numpy(), theirs[name].grad.cpu().numpy()))
    return pairs


def assert_pairs_close(pairs, dtype="float64"):
    rtol, atol = (1e-9, 1e-11) if dtype == "float64" else (2e-4, 2e-5)
    for name, ours, theirs in pairs:
        assert ours.shape == theirs.shape, name
        assert ours.dtype == np.dtype(dtype), f"{name}: {ours.dtype}"
        np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=atol, err_msg=name)
