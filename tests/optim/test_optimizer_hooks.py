"""Optimizer hooks (step, state_dict, load_state_dict; per optimizer and global) and custom optimizers
written the PyTorch way (subclass Optimizer, override ``step(closure)``), against PyTorch."""

import importlib

import numpy as np
import pytest

import chainrule as cr
from chainrule import nn as cnn
from chainrule import optim
from chainrule.optim import optimizer as cr_optimizer

torch = pytest.importorskip("torch")


def define_optimizers(torch):
    """Two custom optimizers as PyTorch users write them; only the module they get as ``torch`` differs."""

    class SGDMomentum(torch.optim.Optimizer):
        def __init__(self, params, lr=1e-3, momentum=0.9, weight_decay=0.0):
            if lr < 0.0:
                raise ValueError(f"Invalid learning rate: {lr}")
            defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay)
            super().__init__(params, defaults)

        @torch.no_grad()
        def step(self, closure=None):
            loss = None
            if closure is not None:
                with torch.enable_grad():
                    loss = closure()
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    d_p = p.grad
                    if group["weight_decay"] != 0:
                        d_p = d_p.add(p, alpha=group["weight_decay"])
                    state = self.state[p]
                    if "momentum_buffer" not in state:
                        buf = state["momentum_buffer"] = torch.clone(d_p).detach()
                    else:
                        buf = state["momentum_buffer"]
                        buf.mul_(group["momentum"]).add_(d_p)
                    p.add_(buf, alpha=-group["lr"])
            return loss

    class SimpleAdam(torch.optim.Optimizer):
        def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
            super().__init__(params, dict(lr=lr, betas=betas, eps=eps))

        @torch.no_grad()
        def step(self, closure=None):
            loss = None
            if closure is not None:
                with torch.enable_grad():
                    loss = closure()
            for group in self.param_groups:
                beta1, beta2 = group["betas"]
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    grad = p.grad
                    state = self.state[p]
                    if len(state) == 0:
                        state["step"] = 0
                        state["exp_avg"] = torch.zeros_like(p)
                        state["exp_avg_sq"] = torch.zeros_like(p)
                    state["step"] += 1
                    exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                    exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
                    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                    bias1 = 1 - beta1 ** state["step"]
                    bias2 = 1 - beta2 ** state["step"]
                    denom = (exp_avg_sq / bias2).sqrt().add_(group["eps"])
                    p.data.addcdiv_(exp_avg, denom, value=-group["lr"] / bias1)
            return loss

    return {"SGDMomentum": SGDMomentum, "SimpleAdam": SimpleAdam}


CUSTOM = {"torch": define_optimizers(torch), "chainrule": define_optimizers(cr)}


def _models():
    torch.manual_seed(0)
    theirs = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2)).double()
    ours = cnn.Sequential(cnn.Linear(5, 8), cnn.Tanh(), cnn.Linear(8, 2)).to("float64")
    ours.load_state_dict({k: cr.tensor(v.detach().cpu().numpy()) for k, v in theirs.state_dict().items()})
    return theirs, ours


@pytest.mark.parametrize("name, options", [("SGDMomentum", dict(lr=0.05, momentum=0.9, weight_decay=1e-2)),
                                           ("SimpleAdam", dict(lr=1e-2))])
@pytest.mark.parametrize("use_closure", [False, True])
def test_custom_optimizer_written_the_pytorch_way_matches_pytorch(name, options, use_closure):
    theirs, ours = _models()
    t_opt = CUSTOM["torch"][name](theirs.parameters(), **options)
    c_opt = CUSTOM["chainrule"][name](ours.parameters(), **options)
    rng = np.random.default_rng(0)
    for _ in range(5):
        x, y = rng.standard_normal((6, 5)), rng.standard_normal((6, 2))
        losses = []
        for fw, model, opt, nn in ((torch, theirs, t_opt, torch.nn), (cr, ours, c_opt, cnn)):
            def closure(fw=fw, model=model, opt=opt, nn=nn, x=x, y=y):
                opt.zero_grad()
                loss = nn.functional.mse_loss(model(fw.tensor(x)), fw.tensor(y))
                loss.backward()
                return loss

            if use_closure:
                losses.append(opt.step(closure).item())
            else:
                closure()
                assert opt.step() is None
        if use_closure:
            np.testing.assert_allclose(losses[1], losses[0], rtol=1e-12)
    expected = dict(theirs.named_parameters())
    for key, p in ours.named_parameters():
        np.testing.assert_allclose(p.detach().cpu().numpy(), expected[key].detach().cpu().numpy(), rtol=1e-10, atol=1e-12)
    assert c_opt._opt_called


def _params(fw):
    p = fw.tensor([1.0, -2.0], requires_grad=True)
    p.grad = fw.tensor([0.5, 0.25])
    return p


def _record_hooks(fw_optim, opt, log, global_too=True):
    """Register one hook of each kind; each appends its name to ``log``. Returns the handles."""
    handles = [
        opt.register_step_pre_hook(lambda o, a, k: log.append("pre")),
        opt.register_step_post_hook(lambda o, a, k: log.append("post")),
    ]
    if global_too:
        handles += [
            _optimizer_module(fw_optim).register_optimizer_step_pre_hook(lambda o, a, k: log.append("global pre")),
            _optimizer_module(fw_optim).register_optimizer_step_post_hook(lambda o, a, k: log.append("global post")),
        ]
    return handles


def _optimizer_module(fw_optim):
    """``torch.optim.optimizer`` / ``chainrule.optim.optimizer`` (torch.optim does not keep the attribute)."""
    return importlib.import_module(f"{fw_optim.__name__}.optimizer")


def _frameworks():
    return ((torch, torch.optim, "torch"), (cr, optim, "chainrule"))


@pytest.mark.parametrize("kind", ["SGD", "Adam", "SGDMomentum"])
def test_step_hooks_run_in_pytorch_order_for_builtin_and_custom_optimizers(kind):
    logs = []
    for fw, fw_optim, label in _frameworks():
        cls = CUSTOM[label][kind] if kind in CUSTOM[label] else getattr(fw_optim, kind)
        opt = cls([_params(fw)], lr=0.1)
        log = []
        handles = _record_hooks(fw_optim, opt, log)
        # the step itself, seen from between the hooks: pre hooks before it, post hooks after it
        opt.register_step_pre_hook(lambda o, a, k, log=log: log.append("pre 2"))
        try:
            opt.step()
            opt.step(lambda: None)
        finally:
            for h in handles:
                h.remove()
        opt.step()  # removed: only the hook not removed runs
        logs.append(log)
    assert logs[1] == logs[0] == ["global pre", "pre", "pre 2", "post", "global post"] * 2 + ["pre 2"]


@pytest.mark.parametrize("kind", ["SGD", "SGDMomentum"])
def test_step_hooks_see_the_optimizer_and_the_call_arguments(kind):
    seen = []
    for fw, fw_optim, label in _frameworks():
        cls = CUSTOM[label][kind] if kind in CUSTOM[label] else getattr(fw_optim, kind)
        opt = cls([_params(fw)], lr=0.1)
        calls = []

        def closure():
            return 1.5

        def pre(o, args, kwargs, opt=opt, calls=calls, closure=closure):
            calls.append(("pre", o is opt, args[0] is opt, len(args), [a is closure for a in args[1:]],
                          {k: v is closure for k, v in kwargs.items()}))

        def post(o, args, kwargs, opt=opt, calls=calls):
            calls.append(("post", o is opt, args[0] is opt, len(args), sorted(kwargs)))

        opt.register_step_pre_hook(pre)
        opt.register_step_post_hook(post)
        opt.step()
        assert opt.step(closure) == 1.5
        if kind != "SGD":  # the built-in optimizers' step sees a keyword closure as positional (see optimizer.py)
            assert opt.step(closure=closure) == 1.5
        seen.append(calls)
    assert seen[1] == seen[0]


@pytest.mark.parametrize("kind", ["SGD", "SGDMomentum"])
def test_step_pre_hook_can_replace_the_arguments(kind):
    results = []
    for fw, fw_optim, label in _frameworks():
        cls = CUSTOM[label][kind] if kind in CUSTOM[label] else getattr(fw_optim, kind)
        p = _params(fw)
        opt = cls([p], lr=0.1)
        opt.register_step_pre_hook(lambda o, args, kwargs: ((args[0], lambda: 7.0), kwargs))
        posted = []
        opt.register_step_post_hook(lambda o, args, kwargs, posted=posted: posted.append(len(args)))
        results.append((opt.step(), posted, p.detach().cpu().numpy().tolist()))
        opt.register_step_pre_hook(lambda o, args, kwargs: "not a tuple")
        with pytest.raises(RuntimeError, match="must return None or a tuple"):
            opt.step()
    assert results[1] == results[0]
    assert results[0][0] == 7.0


def test_global_hooks_run_for_every_optimizer_and_are_removable():
    log = []
    pre = cr_optimizer.register_optimizer_step_pre_hook(lambda o, a, k: log.append(("pre", type(o).__name__)))
    post = optim.optimizer.register_optimizer_step_post_hook(lambda o, a, k: log.append(("post", type(o).__name__)))
    try:
        kinds = [optim.SGD, optim.Adam, CUSTOM["chainrule"]["SimpleAdam"]]
        lbfgs = getattr(optim, "LBFGS", None)  # another engineer's optimizer that overrides step(closure)
        for cls in kinds:
            cls([_params(cr)], lr=0.1).step()
        if lbfgs is not None:
            p = cr.tensor([1.0, -2.0], requires_grad=True)
            opt = lbfgs([p], lr=0.1)

            def closure():
                opt.zero_grad()
                loss = (p * p).sum()
                loss.backward()
                return loss

            opt.step(closure)
            kinds.append(lbfgs)
        assert log == [(edge, cls.__name__) for cls in kinds for edge in ("pre", "post")]
    finally:
        pre.remove()
        post.remove()
    log.clear()
    optim.SGD([_params(cr)], lr=0.1).step()
    assert log == []


def test_hook_handle_is_a_context_manager_and_remove_is_idempotent():
    opt = optim.SGD([_params(cr)], lr=0.1)
    log = []
    with opt.register_step_post_hook(lambda o, a, k: log.append(1)) as handle:
        opt.step()
    opt.step()
    handle.remove()
    assert log == [1]


def test_super_step_inside_an_overridden_step_runs_the_hooks_once():
    class Logged(optim.SGD):
        def step(self, closure=None):
            self.calls = getattr(self, "calls", 0) + 1
            return super().step(closure)

    p = _params(cr)
    opt = Logged([p], lr=0.1)
    log = []
    _record_hooks(optim, opt, log, global_too=False)
    opt.step()
    assert log == ["pre", "post"] and opt.calls == 1
    np.testing.assert_allclose(p.detach().cpu().numpy(), [0.95, -2.025])


def test_a_step_that_raises_runs_the_pre_hooks_only():
    for fw, fw_optim, label in _frameworks():
        opt = fw_optim.SGD([_params(fw)], lr=0.1)
        log = []
        _record_hooks(fw_optim, opt, log, global_too=False)

        def closure():
            raise KeyError("boom")

        with pytest.raises(KeyError):
            opt.step(closure)
        assert log == ["pre"], label
        log.clear()
        opt.step()  # the optimizer is still usable, hooks included
        assert log == ["pre", "post"], label


def _state_dict_hook_log(fw, fw_optim):
    opt = fw_optim.SGD([_params(fw)], lr=0.1, momentum=0.9)
    opt.step()
    log = []
    opt.register_state_dict_pre_hook(lambda o: log.append("sd pre A"))
    opt.register_state_dict_pre_hook(lambda o: log.append("sd pre B"), prepend=True)

    def add_note(o, sd):
        log.append("sd post A")
        sd["note"] = "from a hook"

    def replace(o, sd):
        log.append("sd post B")
        return {**sd, "replaced": True}

    opt.register_state_dict_post_hook(add_note)
    handle = opt.register_state_dict_post_hook(replace, prepend=True)
    sd = opt.state_dict()
    keys = sorted(sd)
    handle.remove()
    keys_after_remove = sorted(opt.state_dict())

    def change_lr(o, sd):
        log.append("load pre A")
        sd = {"state": sd["state"], "param_groups": [dict(g, lr=0.5) for g in sd["param_groups"]]}
        return sd

    opt.register_load_state_dict_pre_hook(change_lr)
    opt.register_load_state_dict_pre_hook(lambda o, sd: log.append("load pre B"), prepend=True)
    opt.register_load_state_dict_post_hook(lambda o: log.append(("load post A", o.param_groups[0]["lr"])))
    opt.register_load_state_dict_post_hook(lambda o: log.append("load post B"), prepend=True)
    given = {"state": sd["state"], "param_groups": sd["param_groups"]}
    opt.load_state_dict(given)
    return log, keys, keys_after_remove, opt.param_groups[0]["lr"], sorted(given)


def test_state_dict_and_load_state_dict_hooks_match_pytorch():
    theirs = _state_dict_hook_log(torch, torch.optim)
    ours = _state_dict_hook_log(cr, optim)
    assert ours == theirs
    assert ours[0][:4] == ["sd pre B", "sd pre A", "sd post B", "sd post A"]
    assert ours[3] == 0.5


def test_load_state_dict_pre_hook_gets_a_shallow_copy():
    opt = optim.SGD([_params(cr)], lr=0.1)
    sd = opt.state_dict()
    opt.register_load_state_dict_pre_hook(lambda o, d: d.update(extra=1))
    opt.load_state_dict(sd)
    assert "extra" not in sd


def test_no_hooks_means_no_hook_state_is_touched():
    # a fresh optimizer carries empty, per-instance hook registries (no sharing between optimizers)
    a, b = optim.SGD([_params(cr)], lr=0.1), optim.SGD([_params(cr)], lr=0.1)
    a.register_step_pre_hook(lambda o, args, kwargs: None)
    assert len(a._optimizer_step_pre_hooks) == 1 and not b._optimizer_step_pre_hooks


# ----- the state dict hooks see the whole state of optimizers whose state is not shaped like their parameters
FULL_STATE = {
    "Adafactor": {0: {"step", "row_var", "col_var"}, 1: {"step", "variance"}},  # a 3 x 4 matrix is factored
    "LBFGS": {0: {"func_evals", "n_iter", "d", "t", "old_dirs", "old_stps", "ro", "H_diag", "prev_flat_grad",
                  "prev_loss", "al"}},
}


def _stepped(name, steps=2):
    """An Adafactor or an L-BFGS over a 3 x 4 matrix and a 4-vector, after ``steps`` steps."""
    a = cnn.Parameter(cr.tensor(np.linspace(-1, 1, 12).reshape(3, 4)))
    b = cnn.Parameter(cr.tensor(np.linspace(0.5, 1, 4)))
    opt = optim.Adafactor([a, b], lr=0.05) if name == "Adafactor" else optim.LBFGS([a, b], max_iter=3, history_size=2)

    def closure():
        opt.zero_grad()
        loss = ((a @ b) ** 2).sum() + (b**4).sum()
        loss.backward()
        return loss

    for _ in range(steps):
        opt.step(closure)
    return opt


def _keys(state):
    return {index: set(entry) for index, entry in state.items()}


def _leaves(value):
    """The values of a state entry, a list's items one by one."""
    return [leaf for item in value for leaf in _leaves(item)] if isinstance(value, list) else [value]


def _assert_same_state(got, want):
    assert _keys(got) == _keys(want)
    for index, entry in want.items():
        for key, value in entry.items():
            for mine, theirs in zip(_leaves(got[index][key]), _leaves(value), strict=True):
                np.testing.assert_array_equal(np.asarray(mine), np.asarray(theirs), err_msg=f"{index}.{key}")


@pytest.mark.parametrize("name", ["Adafactor", "LBFGS"])
def test_state_dict_post_hook_sees_the_whole_state_as_tensors(name):
    opt = _stepped(name)
    seen = []

    def record(o, sd):  # what the hook sees, as it sees it (state_dict may not change the dict afterwards)
        seen.append(_keys(sd["state"]))
        seen.append([type(leaf) for entry in sd["state"].values() for value in entry.values() for leaf in _leaves(value)])

    opt.register_state_dict_post_hook(record)
    opt.state_dict()
    keys, kinds = seen
    assert keys == FULL_STATE[name]
    assert set(kinds) <= {cr.Tensor, int, float, type(None)}  # arrays and numpy scalars as Tensors


@pytest.mark.parametrize("name", ["Adafactor", "LBFGS"])
def test_load_state_dict_hooks_see_the_whole_state_and_post_hooks_run_after_it_is_loaded(name):
    saved = _stepped(name).state_dict()
    target = _stepped(name, steps=1)
    log = []
    target.register_load_state_dict_pre_hook(lambda o, sd: log.append(("pre", _keys(sd["state"]))))
    target.register_load_state_dict_post_hook(lambda o: log.append(("post", o.state_dict()["state"])))
    target.load_state_dict(saved)
    assert [entry[0] for entry in log] == ["pre", "post"]
    assert log[0][1] == FULL_STATE[name]
    _assert_same_state(log[1][1], saved["state"])  # loaded by the time the post-hook runs


@pytest.mark.parametrize("index, key, shape, problem", [
    (0, "row_var", (4, 1), r"state 'row_var' of parameter 0 has shape \(4, 1\) .*needs \(3, 1\)"),
    (0, "col_var", (3, 4), r"state 'col_var' of parameter 0 has shape \(3, 4\) .*needs \(1, 4\)"),
    (1, "row_var", (4, 1), r"state 'row_var' of parameter 1, but the parameter has shape \(4,\)"),
])
def test_adafactor_refuses_a_wrong_shaped_factor_and_changes_nothing(index, key, shape, problem):
    saved = _stepped("Adafactor").state_dict()
    saved["state"][index][key] = cr.zeros(*shape, dtype="float64")
    target = _stepped("Adafactor", steps=1)
    target.param_groups[0]["lr"] = 0.5
    before = target.state_dict()
    log = []
    target.register_load_state_dict_post_hook(lambda o: log.append("post"))
    with pytest.raises(ValueError, match=problem):
        target.load_state_dict(saved)
    assert not log and target.param_groups[0]["lr"] == 0.5
    _assert_same_state(target.state_dict()["state"], before["state"])


def test_lbfgs_refuses_state_under_another_parameter_and_changes_nothing():
    saved = _stepped("LBFGS").state_dict()
    saved["state"] = {1: saved["state"][0]}
    target = _stepped("LBFGS", steps=1)
    before = target.state_dict()
    with pytest.raises(ValueError, match="state under the first parameter only.*parameter 1"):
        target.load_state_dict(saved)
    _assert_same_state(target.state_dict()["state"], before["state"])
