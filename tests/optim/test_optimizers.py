"""Oracle tests: chainrule's optimizers give the parameters PyTorch's give.

Two kinds of runs, both from identical initial weights and data:
- models (an MLP and a small attention block) trained end to end, each framework with its own autograd;
- injected gradients (a fixed quadratic's gradient computed in numpy from the current weights), which
  isolates the optimizer's arithmetic, including a parameter large enough to be updated in blocks.
"""

import math

import numpy as np
import pytest

import chainrule as cr
from chainrule import optim
from chainrule.nn import Parameter

torch = pytest.importorskip("torch")
torch.set_num_threads(1)  # tiny problems: extra threads only contend for the cores

STEPS = 20
TOL = {"float64": dict(rtol=1e-10, atol=1e-12), "float32": dict(rtol=1e-5, atol=1e-6)}

CASES = [
    ("SGD", dict(lr=0.05)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.01, maximize=True)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, amsgrad=True, maximize=True)),
    ("Adam", dict(lr=0.01, betas=(0.3, 0.9), amsgrad=True, weight_decay=0.05)),  # beta1 < 0.5: lerp's other branch
    ("Adam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.01, weight_decay=0.1, amsgrad=True)),
    ("AdamW", dict(lr=0.01, betas=(0.5, 0.95), maximize=True)),
    ("RMSprop", dict(lr=1e-3)),
    ("RMSprop", dict(lr=1e-3, alpha=0.9, momentum=0.9)),
    ("RMSprop", dict(lr=1e-3, centered=True, weight_decay=0.1)),
    ("RMSprop", dict(lr=1e-3, momentum=0.5, centered=True, maximize=True, eps=1e-6)),
    ("Adagrad", dict(lr=0.05)),
    ("Adagrad", dict(lr=0.05, lr_decay=0.01, weight_decay=0.1, initial_accumulator_value=0.1)),
    ("Adagrad", dict(lr=0.05, eps=1e-6, maximize=True)),
    ("Adadelta", dict(lr=1.0)),
    ("Adadelta", dict(lr=0.5, rho=0.5, eps=1e-4, weight_decay=0.1, maximize=True)),
    ("Adamax", dict(lr=0.01)),
    ("Adamax", dict(lr=0.01, betas=(0.3, 0.9), eps=1e-4, weight_decay=0.1, maximize=True)),  # lerp's other branch
    ("ASGD", dict(lr=0.05, lambd=0.01, t0=3, weight_decay=0.1)),  # averaging (mu != 1) from step 6
    ("ASGD", dict(lr=0.05, alpha=0.5, maximize=True)),  # t0 = 1e6: ax copies p
    ("Rprop", dict(lr=0.01)),
    ("Rprop", dict(lr=0.05, etas=(0.3, 1.5), step_sizes=(1e-3, 0.1), maximize=True)),  # the max bites
    ("Rprop", dict(lr=0.02, step_sizes=(0.01, 1.0))),  # the min holds a step size from its second shrink on
    ("NAdam", dict(lr=0.01)),
    ("NAdam", dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1, momentum_decay=0.01)),
    ("NAdam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True, maximize=True)),
    ("RAdam", dict(lr=0.01)),  # rho_t passes 5 at step 6: both branches within the tests' steps
    ("RAdam", dict(lr=0.01, betas=(0.3, 0.9), weight_decay=0.1, maximize=True)),
    ("RAdam", dict(lr=0.01, eps=1e-6, weight_decay=0.1, decoupled_weight_decay=True)),
    ("Adafactor", dict(lr=0.01)),  # the mlp's and the injected (7, 9) weights are factored, the biases are not
    ("Adafactor", dict(lr=0.02, weight_decay=0.1, maximize=True, beta2_decay=-0.5)),
    ("Adafactor", dict(lr=0.05, eps=(0.05, 0.5), d=2.0)),  # both floors bite: eps1 on v, eps2 on rms(p)
]


def case_id(name, kwargs):
    return f"{name}-{'-'.join(f'{k}={v}' for k, v in kwargs.items())}"


CASE_IDS = [case_id(name, kw) for name, kw in CASES]


def case(name, **settings):
    """The row of CASES for optimizer ``name`` with exactly these settings, for the tests that run a few
    rows only (chosen by what they are, so rows added to the table do not move them)."""
    assert (name, settings) in CASES, f"CASES has no row ({name!r}, {settings}); update the selection"
    return pytest.param(name, settings, id=case_id(name, settings))


SGD_NESTEROV = case("SGD", lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1)
SGD_DAMPENED = case("SGD", lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.01, maximize=True)
ADAM_L2 = case("Adam", lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)
ADAM_AMSGRAD_LOW_BETA1 = case("Adam", lr=0.01, betas=(0.3, 0.9), amsgrad=True, weight_decay=0.05)
ADAMW_AMSGRAD = case("AdamW", lr=0.01, weight_decay=0.1, amsgrad=True)
ADAMW_MAXIMIZE = case("AdamW", lr=0.01, betas=(0.5, 0.95), maximize=True)
RMSPROP_ALL = case("RMSprop", lr=1e-3, momentum=0.5, centered=True, maximize=True, eps=1e-6)
ADAGRAD_DECAYS = case("Adagrad", lr=0.05, lr_decay=0.01, weight_decay=0.1, initial_accumulator_value=0.1)


# ----- the two frameworks behind one small interface -------------------------------------------
class CR:
    optim = optim

    @staticmethod
    def param(a):
        return Parameter(cr.tensor(a))

    @staticmethod
    def const(a):
        return cr.tensor(a)

    @staticmethod
    def numpy(t):
        return t.detach().cpu().numpy().copy()

    relu, exp, tanh = staticmethod(cr.relu), staticmethod(cr.exp), staticmethod(cr.tanh)

    @staticmethod
    def softmax(s):
        e = cr.exp(s - cr.amax(s, dim=-1, keepdim=True))
        return e / e.sum(dim=-1, keepdim=True)


class TO:
    optim = torch.optim

    @staticmethod
    def param(a):
        return torch.nn.Parameter(torch.tensor(a))

    @staticmethod
    def const(a):
        return torch.tensor(a)

    @staticmethod
    def numpy(t):
        return t.detach().cpu().numpy().copy()

    relu, exp, tanh = staticmethod(torch.relu), staticmethod(torch.exp), staticmethod(torch.tanh)

    @staticmethod
    def softmax(s):
        e = torch.exp(s - torch.amax(s, dim=-1, keepdim=True))
        return e / e.sum(dim=-1, keepdim=True)


def mlp_problem(dtype, seed=0):
    rng = np.random.default_rng(seed)
    weights = [rng.standard_normal((5, 16)) * 0.4, rng.standard_normal(16) * 0.1,
               rng.standard_normal((16, 3)) * 0.3, rng.standard_normal(3) * 0.1]
    data = [rng.standard_normal((32, 5)), rng.standard_normal((32, 3))]
    return [w.astype(dtype) for w in weights], [d.astype(dtype) for d in data]


def mlp_loss(F, params, data):
    w1, b1, w2, b2 = params
    x, y = (F.const(d) for d in data)
    out = F.relu(x @ w1 + b1) @ w2 + b2
    return ((out - y) ** 2).mean()


def attention_problem(dtype, seed=1):
    rng = np.random.default_rng(seed)
    d = 8
    weights = [rng.standard_normal((d, d)) * 0.3 for _ in range(4)] + [rng.standard_normal(d) * 0.1]
    data = [rng.standard_normal((6, d)), rng.standard_normal((6, d))]
    return [w.astype(dtype) for w in weights], [a.astype(dtype) for a in data]


def attention_loss(F, params, data):
    wq, wk, wv, wo, bo = params
    x, y = (F.const(d) for d in data)
    q, k, v = x @ wq, x @ wk, x @ wv
    att = F.softmax((q @ k.T) * (1.0 / math.sqrt(x.shape[1])))
    out = F.tanh((att @ v + x) @ wo + bo)
    return ((out - y) ** 2).mean()


def train(F, name, kwargs, weights, data, loss_fn, steps=STEPS, groups=None):
    params = [F.param(w) for w in weights]
    spec = params if groups is None else [dict(g, params=[params[i] for i in g["params"]]) for g in groups]
    opt = getattr(F.optim, name)(spec, **kwargs)
    sign = -1.0 if kwargs.get("maximize") else 1.0  # maximize the negated loss, so training still converges
    for _ in range(steps):
        opt.zero_grad()
        (loss_fn(F, params, data) * sign).backward()
        opt.step()
    return [F.numpy(p) for p in params]


def assert_same_params(ours, theirs, dtype):
    for a, b in zip(ours, theirs):
        assert a.dtype == b.dtype == np.dtype(dtype)
        np.testing.assert_allclose(a, b, **TOL[dtype])


# ----- end-to-end models -------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name,kwargs", CASES, ids=CASE_IDS)
def test_mlp_training_matches_torch(name, kwargs, dtype):
    weights, data = mlp_problem(dtype)
    ours = train(CR, name, kwargs, weights, data, mlp_loss)
    theirs = train(TO, name, kwargs, weights, data, mlp_loss)
    assert_same_params(ours, theirs, dtype)
    assert not np.allclose(ours[0], weights[0])  # the optimizer did move the weights


@pytest.mark.parametrize("name,kwargs", [SGD_NESTEROV, ADAM_L2, ADAMW_AMSGRAD, RMSPROP_ALL, ADAGRAD_DECAYS])
def test_attention_block_training_matches_torch(name, kwargs):
    weights, data = attention_problem("float64")
    ours = train(CR, name, kwargs, weights, data, attention_loss)
    theirs = train(TO, name, kwargs, weights, data, attention_loss)
    assert_same_params(ours, theirs, "float64")


@pytest.mark.parametrize("name,kwargs,group_options", [
    ("SGD", dict(lr=0.05, momentum=0.9), [dict(lr=0.2), dict(momentum=0.5, nesterov=True)]),
    ("Adam", dict(lr=0.01), [dict(lr=0.03, amsgrad=True), dict(weight_decay=0.1)]),
    ("AdamW", dict(lr=0.01), [dict(lr=0.001, betas=(0.5, 0.9)), dict(weight_decay=0.5)]),
    ("RMSprop", dict(lr=1e-3), [dict(lr=3e-3, centered=True), dict(momentum=0.9)]),
    # (PyTorch's Adagrad ignores a per-group initial_accumulator_value; see test_optimizer_state.py)
    ("Adagrad", dict(lr=0.05), [dict(lr=0.1, lr_decay=0.1), dict(weight_decay=0.2, eps=1e-3)]),
])
def test_param_groups_with_own_options_match_torch(name, kwargs, group_options):
    weights, data = mlp_problem("float64")
    groups = [dict(group_options[0], params=[0, 1]), dict(group_options[1], params=[2, 3])]
    ours = train(CR, name, kwargs, weights, data, mlp_loss, groups=groups)
    theirs = train(TO, name, kwargs, weights, data, mlp_loss, groups=groups)
    assert_same_params(ours, theirs, "float64")


def test_closure_step_matches_torch_and_returns_loss():
    weights, data = mlp_problem("float64")
    results = {}
    for F in (CR, TO):
        params = [F.param(w) for w in weights]
        opt = F.optim.SGD(params, lr=0.1, momentum=0.9)

        def closure(F=F, params=params, opt=opt):
            opt.zero_grad()
            loss = mlp_loss(F, params, data)
            loss.backward()
            return loss

        losses = [opt.step(closure).item() for _ in range(5)]
        results[F] = (losses, [F.numpy(p) for p in params])
    np.testing.assert_allclose(results[CR][0], results[TO][0], rtol=1e-12)
    assert results[CR][0][-1] < results[CR][0][0]
    assert_same_params(results[CR][1], results[TO][1], "float64")


@pytest.mark.parametrize("set_to_none", [True, False])
def test_zero_grad_modes_match_torch_when_a_parameter_gets_no_gradient(set_to_none):
    """With zeros, an unused parameter is still moved by momentum and weight decay; with None it is
    skipped. Both as in PyTorch."""
    weights, data = mlp_problem("float64")
    spare = np.random.default_rng(3).standard_normal((4, 4))
    results = {}
    for F in (CR, TO):
        params = [F.param(w) for w in weights]
        extra = F.param(spare)
        opt = F.optim.SGD(params + [extra], lr=0.05, momentum=0.9, weight_decay=0.1)
        (extra * extra).sum().backward()  # the spare parameter gets a gradient once
        for _ in range(6):
            opt.zero_grad(set_to_none=set_to_none)
            mlp_loss(F, params, data).backward()
            opt.step()
        results[F] = [F.numpy(p) for p in params + [extra]]
    assert_same_params(results[CR], results[TO], "float64")
    moved = not np.array_equal(results[CR][-1], spare)
    assert moved is (not set_to_none)


# ----- injected gradients: the optimizer's arithmetic alone -----------------------------------
def quadratic_grad(values, curvature, target):
    """The gradient of 0.5 * sum(curvature * (w - target)**2) + 0.1 * sum(sin(w)), in float64."""
    return curvature * (values - target) + 0.1 * np.cos(values)


def run_injected(F, name, kwargs, init, dtype, steps=STEPS):
    rng = np.random.default_rng(7)
    curvature = rng.uniform(0.5, 2.0, init.shape)
    target = rng.standard_normal(init.shape)
    p = F.param(init.astype(dtype))
    opt = getattr(F.optim, name)([p], **kwargs)
    sign = -1.0 if kwargs.get("maximize") else 1.0
    for _ in range(steps):
        g = (sign * quadratic_grad(F.numpy(p).astype(np.float64), curvature, target)).astype(dtype)
        p.grad = F.const(g)
        opt.step()
    return F.numpy(p)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name,kwargs", CASES, ids=CASE_IDS)
def test_injected_gradient_updates_match_torch(name, kwargs, dtype):
    init = np.random.default_rng(5).standard_normal((7, 9))
    ours = run_injected(CR, name, kwargs, init, dtype)
    theirs = run_injected(TO, name, kwargs, init, dtype)
    assert_same_params([ours], [theirs], dtype)


@pytest.mark.parametrize("name,kwargs", [SGD_DAMPENED, ADAM_AMSGRAD_LOW_BETA1, ADAMW_MAXIMIZE, RMSPROP_ALL,
                                         ADAGRAD_DECAYS])
def test_large_parameter_updated_in_blocks_matches_torch(name, kwargs):
    """300 x 700 float32 is cut into cache-sized blocks; the result must not show the seams."""
    init = np.random.default_rng(6).standard_normal((300, 700))
    ours = run_injected(CR, name, kwargs, init, "float32", steps=4)
    theirs = run_injected(TO, name, kwargs, init, "float32", steps=4)
    assert_same_params([ours], [theirs], "float32")


@pytest.mark.parametrize("name,kwargs", [SGD_DAMPENED, ADAM_AMSGRAD_LOW_BETA1, RMSPROP_ALL])
def test_block_updates_do_not_depend_on_the_thread_count(name, kwargs):
    """The blocks of a parameter of over a million elements are shared among worker threads: one thread
    or three give the same bits."""
    from chainrule.backend.parallel import get_workers, set_workers
    from chainrule.optim.optimizer import _THREADED_UPDATE_ELEMENTS

    init = np.random.default_rng(7).standard_normal((1100, 1000))
    assert init.size >= _THREADED_UPDATE_ELEMENTS
    before = get_workers()
    try:
        results = []
        for workers in (1, 3):
            set_workers(workers)
            results.append(run_injected(CR, name, kwargs, init, "float32", steps=3))
    finally:
        set_workers(before)
    np.testing.assert_array_equal(results[0], results[1])


def test_non_contiguous_parameter_matches_torch():
    """A transposed (non-contiguous) parameter takes the whole-array path."""
    init = np.random.default_rng(8).standard_normal((400, 500))
    results = {}
    for F in (CR, TO):
        base = F.const(init.T.copy())
        p = F.param(init)
        if F is CR:
            p._data = base._data.T  # same values, Fortran order
        opt = F.optim.Adam([p], lr=0.01, weight_decay=0.1)
        for _ in range(3):
            p.grad = F.const(np.cos(F.numpy(p)))
            opt.step()
        results[F] = F.numpy(p)
    np.testing.assert_allclose(results[CR], results[TO], rtol=1e-10, atol=1e-12)


# ----- state dicts cross the framework boundary ---------------------------------------------------
def convert_state_dict(sd, to_tensor):
    state = {i: {k: to_tensor(v.detach().cpu().numpy().copy()) if hasattr(v, "shape") else v for k, v in s.items()}
             for i, s in sd["state"].items()}
    return {"state": state, "param_groups": [dict(g) for g in sd["param_groups"]]}


# one row per optimizer, with the most state (amsgrad, momentum, centering, averaging, factors) where there is a choice
STATE_DICT_CASES = [
    case("SGD", lr=0.05, momentum=0.9),
    ADAM_AMSGRAD_LOW_BETA1,
    ADAMW_AMSGRAD,
    RMSPROP_ALL,
    ADAGRAD_DECAYS,
    case("Adadelta", lr=0.5, rho=0.5, eps=1e-4, weight_decay=0.1, maximize=True),
    case("Adamax", lr=0.01, betas=(0.3, 0.9), eps=1e-4, weight_decay=0.1, maximize=True),
    case("ASGD", lr=0.05, lambd=0.01, t0=3, weight_decay=0.1),
    case("Rprop", lr=0.05, etas=(0.3, 1.5), step_sizes=(1e-3, 0.1), maximize=True),
    case("NAdam", lr=0.01, betas=(0.8, 0.99), weight_decay=0.1, momentum_decay=0.01),
    case("RAdam", lr=0.01, betas=(0.3, 0.9), weight_decay=0.1, maximize=True),
    case("Adafactor", lr=0.02, weight_decay=0.1, maximize=True, beta2_decay=-0.5),
]


def test_state_dict_interchange_covers_every_optimizer_in_the_table():
    assert sorted({param.values[0] for param in STATE_DICT_CASES}) == sorted({name for name, _ in CASES})


@pytest.mark.parametrize("name,kwargs", STATE_DICT_CASES)
@pytest.mark.parametrize("direction", ["torch-to-chainrule", "chainrule-to-torch"])
def test_state_dict_format_is_interchangeable_with_torch(name, kwargs, direction):
    """A state dict saved by one framework, loaded by the other, continues the same training."""
    weights, data = mlp_problem("float64")
    src, dst = (TO, CR) if direction == "torch-to-chainrule" else (CR, TO)
    params = [src.param(w) for w in weights]
    opt = getattr(src.optim, name)(params, **kwargs)

    def run(F, opt, params, steps):
        for _ in range(steps):
            opt.zero_grad()
            mlp_loss(F, params, data).backward()
            opt.step()

    run(src, opt, params, 5)
    saved = convert_state_dict(opt.state_dict(), dst.const)
    moved = [dst.param(src.numpy(p)) for p in params]
    opt2 = getattr(dst.optim, name)(moved, **kwargs)
    opt2.load_state_dict(saved)
    run(src, opt, params, 5)
    run(dst, opt2, moved, 5)
    assert_same_params([dst.numpy(p) for p in moved], [src.numpy(p) for p in params], "float64")
