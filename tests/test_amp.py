"""chainrule.amp against torch.amp: the autocast policy of every listed op, autocast's rules (device types,
nesting, caching, dtypes), a small model's numbers under autocast, and GradScaler step by step.

Each listed op's result dtype is checked against PyTorch's autocast on the same device type: the ``cpu``
column of ``POLICIES`` on this machine (torch here is CPU-only), the ``cuda`` column on a GPU machine with
PyTorch's CUDA build (CHAINRULE_TEST_DEVICE=cuda). Without one, the ``cuda`` column is checked against
PyTorch's CUDA lists (``PYTORCH_CUDA`` below: the "autocast op reference" of torch.amp's documentation, and
the ops PyTorch's source lists add to it) by running each op on the stand-in's ``cuda`` tensors under
``autocast("cuda")``.
"""

import threading
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import chainrule as cr
import chainrule.nn.functional as F
from chainrule.amp import BANNED, FLOAT32, LOWER, POLICIES, PROMOTE

DEVICE_TYPE = cr.get_default_device().type  # "cuda" under CHAINRULE_TEST_DEVICE=cuda
# PyTorch on the same device type where it can (a GPU machine with PyTorch's CUDA build), else on the CPU
TORCH_DEVICE = "cuda" if DEVICE_TYPE == "cuda" and torch.cuda.is_available() else "cpu"
OTHER_TYPE = "cpu" if DEVICE_TYPE == "cuda" else "cuda"

PYTORCH_CUDA = {  # the documented lists; the last line of each: what PyTorch's source lists add
    LOWER: "__matmul__ addbmm addmm addmv addr baddbmm bmm chain_matmul multi_dot conv1d conv2d conv3d conv_transpose1d "
           "conv_transpose2d conv_transpose3d GRUCell linear LSTMCell matmul mm mv prelu RNNCell "
           "einsum vecdot scaled_dot_product_attention",
    FLOAT32: "__pow__ __rpow__ __rtruediv__ acos asin binary_cross_entropy_with_logits cosh cosine_embedding_loss cdist "
             "cosine_similarity cross_entropy cumprod cumsum dist erfinv exp expm1 group_norm hinge_embedding_loss "
             "kl_div l1_loss layer_norm log log_softmax log10 log1p log2 margin_ranking_loss mse_loss "
             "multilabel_margin_loss multi_margin_loss nll_loss norm normalize pdist poisson_nll_loss pow prod "
             "reciprocal rsqrt sinh smooth_l1_loss soft_margin_loss softmax softmin softplus sum renorm tan "
             "triplet_margin_loss "
             "huber_loss logsumexp vector_norm matrix_norm",
    PROMOTE: "addcdiv addcmul atan2 bilinear cross dot grid_sample index_put scatter_add tensordot cat stack index_copy",
    BANNED: "binary_cross_entropy",
}


def _arrays(seed=0):
    rng = np.random.default_rng(seed)

    def normal(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    def positive(*shape):
        return np.abs(normal(*shape)) + 0.5

    def unit(*shape):
        return rng.uniform(0.2, 0.8, shape).astype(np.float32)

    def sign(*shape):
        return np.sign(normal(*shape)) + (normal(*shape) == 0)

    def long(*values):
        return np.array(values, dtype=np.int64)

    return normal, positive, unit, sign, long


def cases():
    """op name -> (where it is called: torch/F/linalg/method, its arguments as numpy arrays and values)."""
    r, pos, unit, sign, lng = _arrays()
    n = 4
    return {
        "matmul": ("torch", (r(n, n), r(n, n))), "__matmul__": ("method", (r(n, n), r(n, n))),
        "mm": ("torch", (r(n, n), r(n, n))), "bmm": ("torch", (r(2, n, n), r(2, n, n))), "mv": ("torch", (r(n, n), r(n))),
        "addmm": ("torch", (r(n, n), r(n, n), r(n, n))), "addmv": ("torch", (r(n), r(n, n), r(n))),
        "addr": ("torch", (r(n, n), r(n), r(n))), "baddbmm": ("torch", (r(2, n, n), r(2, n, n), r(2, n, n))),
        "addbmm": ("torch", (r(n, n), r(2, n, n), r(2, n, n))), "chain_matmul": ("torch", (r(n, n), r(n, n), r(n, n))),
        "multi_dot": ("linalg", ([r(n, n), r(n, n), r(n, n)],)), "einsum": ("torch", ("ij,jk->ik", r(n, n), r(n, n))),
        "conv1d": ("F", (r(2, 3, 8), r(4, 3, 3))), "conv2d": ("F", (r(2, 3, 6, 6), r(4, 3, 3, 3))),
        "conv3d": ("F", (r(1, 2, 5, 5, 5), r(3, 2, 3, 3, 3))), "conv_transpose1d": ("F", (r(2, 3, 8), r(3, 4, 3))),
        "conv_transpose2d": ("F", (r(2, 3, 6, 6), r(3, 4, 3, 3))),
        "conv_transpose3d": ("F", (r(1, 2, 4, 4, 4), r(2, 3, 3, 3, 3))),
        "linear": ("F", (r(3, n), r(5, n), r(5))), "prelu": ("F", (r(2, 3, n), r(3))),
        "scaled_dot_product_attention": ("F", (r(2, 5, n), r(2, 5, n), r(2, 5, n))),
        "__pow__": ("method", (pos(n), 2.5)), "__rpow__": ("method", (r(n), 2.0)), "__rtruediv__": ("method", (pos(n), 2.0)),
        "pow": ("torch", (pos(n), r(n))), "acos": ("torch", (unit(n),)), "asin": ("torch", (unit(n),)),
        "cosh": ("torch", (r(n),)), "sinh": ("torch", (r(n),)), "tan": ("torch", (unit(n),)), "exp": ("torch", (r(n),)),
        "expm1": ("torch", (r(n),)), "log": ("torch", (pos(n),)), "log10": ("torch", (pos(n),)),
        "log1p": ("torch", (pos(n),)), "log2": ("torch", (pos(n),)), "erfinv": ("torch", (unit(n),)),
        "reciprocal": ("torch", (pos(n),)), "rsqrt": ("torch", (pos(n),)), "cumsum": ("torch", (r(n, n), 1)),
        "cumprod": ("torch", (r(n, n), 1)), "sum": ("torch", (r(n, n),)), "prod": ("torch", (r(n, n),)),
        "norm": ("torch", (r(n, n),)), "vector_norm": ("linalg", (r(n, n),)), "matrix_norm": ("linalg", (r(n, n),)),
        "logsumexp": ("torch", (r(n, n), 1)), "vecdot": ("linalg", (r(3, n), r(3, n))),
        "dist": ("torch", (r(n), r(n))), "renorm": ("torch", (r(n, n), 2, 0, 1.0)),
        "cdist": ("torch", (r(3, n), r(5, n))), "pdist": ("F", (r(5, n),)), "softmax": ("torch", (r(n, n), 1)),
        "log_softmax": ("torch", (r(n, n), 1)), "softmin": ("F", (r(n, n), 1)), "softplus": ("F", (r(n),)),
        "layer_norm": ("F", (r(3, n), (n,), r(n), r(n))), "group_norm": ("F", (r(2, n, 3), 2, r(n), r(n))),
        "normalize": ("F", (r(3, n),)), "cosine_similarity": ("F", (r(3, n), r(3, n))),
        "cross_entropy": ("F", (r(3, n), lng(0, 1, 3))), "nll_loss": ("F", (r(3, n), lng(0, 1, 3))),
        "mse_loss": ("F", (r(3, n), r(3, n))), "l1_loss": ("F", (r(3, n), r(3, n))),
        "smooth_l1_loss": ("F", (r(3, n), r(3, n))), "huber_loss": ("F", (r(3, n), r(3, n))),
        "kl_div": ("F", (r(3, n), r(3, n))), "binary_cross_entropy_with_logits": ("F", (r(3, n), unit(3, n))),
        "binary_cross_entropy": ("F", (unit(3, n), unit(3, n))), "poisson_nll_loss": ("F", (r(3, n), pos(3, n))),
        "soft_margin_loss": ("F", (r(3, n), sign(3, n))), "margin_ranking_loss": ("F", (r(n), r(n), sign(n))),
        "hinge_embedding_loss": ("F", (r(3, n), sign(3, n))),
        "cosine_embedding_loss": ("F", (r(3, n), r(3, n), sign(3))),
        "triplet_margin_loss": ("F", (r(3, n), r(3, n), r(3, n))), "multi_margin_loss": ("F", (r(3, n), lng(0, 1, 3))),
        "multilabel_margin_loss": ("F", (r(2, n), lng(0, 1, -1, 0, 3, 2, -1, 1).reshape(2, n))),
        "addcmul": ("torch", (r(n), r(n), r(n))), "addcdiv": ("torch", (r(n), r(n), pos(n))),
        "atan2": ("torch", (r(n), r(n))), "cross": ("torch", (r(n, 3), r(n, 3), 1)), "dot": ("torch", (r(n), r(n))),
        "tensordot": ("torch", (r(n, n), r(n, n))), "bilinear": ("F", (r(3, n), r(3, 2), r(5, n, 2), r(5))),
        "grid_sample": ("F", (r(1, 2, 4, 4), unit(1, 3, 3, 2) * 2 - 1)),
        "cat": ("torch", ([r(n), r(n)],)), "stack": ("torch", ([r(n), r(n)],)),
        "index_copy": ("torch", (r(n, 3), 0, lng(1, 0), r(2, 3))),
        "scatter_add": ("torch", (r(n, 3), 0, lng(1, 0, 2).reshape(1, 3), r(1, 3))),
        "index_put": ("method", (r(n), (lng(1, 2),), r(2))),
        # chainrule's one recurrent primitive, called here through torch.lstm_cell
        "recurrent_layer": ("torch", (r(2, n), (r(2, 3), r(2, 3)), r(12, n), r(12, 3), r(12), r(12)), "lstm_cell"),
    }


_NAMESPACES = {"torch": (torch, cr), "F": (TF, F), "linalg": (torch.linalg, cr.linalg)}


def _convert(value, to_tensor, float_dtypes):
    """numpy arrays as tensors (the k-th floating one in ``float_dtypes[k]``, the last repeating), lists in."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind != "f":
            return to_tensor(value, None)
        dtype = float_dtypes[min(len(float_dtypes) - 1, _convert.count)]
        _convert.count += 1
        return to_tensor(value, dtype)
    if isinstance(value, (list, tuple)):
        return type(value)(_convert(v, to_tensor, float_dtypes) for v in value)
    return value


def _call(lib: str, name: str, where: str, values: tuple, float_dtypes: tuple, *called):
    """Run op ``name`` (or the function ``called`` names) in torch or chainrule on ``values`` made tensors; the
    dtype name of the (first) result."""
    name = called[0] if called else name
    if lib == "torch":
        def to_tensor(a, dtype):
            return torch.tensor(a, dtype=getattr(torch, dtype) if dtype else None, device=TORCH_DEVICE)
    else:
        def to_tensor(a, dtype):
            return cr.tensor(a, dtype=getattr(cr, dtype) if dtype else None)
    _convert.count = 0
    args = _convert(values, to_tensor, float_dtypes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's deprecations (chain_matmul, kl_div's reduction...)
        if where == "method":
            out = getattr(args[0], name)(*args[1:])
        else:
            namespace = _NAMESPACES[where][0 if lib == "torch" else 1]
            out = getattr(namespace, name)(*args)
    return str((out[0] if isinstance(out, tuple) else out).dtype).split(".")[-1]


# float inputs: all float32, all float16, and float16 first then float32 (where a policy makes them one type)
_INPUTS = {"float32": ("float32",), "float16": ("float16",), "mixed": ("float16", "float32")}


def test_every_listed_op_has_a_case():
    assert set(cases()) == set(POLICIES)


def _dtype_or_refusal(lib: str, name: str, where: str, values: tuple, kind: str, *called) -> str | None:
    """The result's dtype name; "refused" for binary_cross_entropy under CUDA autocast; None where PyTorch has
    no float16 kernel (pdist on the CPU)."""
    try:
        return _call(lib, name, where, values, _INPUTS[kind], *called)
    except RuntimeError as err:
        if "unsafe to autocast" in str(err):
            return "refused"
        if lib == "torch" and "not implemented for 'Half'" in str(err):
            return None
        # PyTorch's autocast leaves the tensors given to chain_matmul and multi_dot as they are, then refuses
        # mixed dtypes; chainrule casts them all, as for every other op
        if lib == "torch" and kind == "mixed" and "same dtype" in str(err) and name in ("chain_matmul", "multi_dot"):
            return "float16"
        raise


@pytest.mark.skipif(DEVICE_TYPE != TORCH_DEVICE, reason="torch (the oracle) runs on the CPU only here")
@pytest.mark.parametrize("name", sorted(POLICIES))
def test_policy_matches_torch(name):
    """Each listed op's result dtype under autocast, on float32, float16 and (where a policy applies) mixed
    inputs, against PyTorch's on the same device type: the cpu column here, the cuda one on a GPU machine."""
    where, values, *called = cases()[name]
    column = POLICIES[name][0 if DEVICE_TYPE == "cuda" else 1]
    for kind in ("float32", "float16") + (("mixed",) if column is not None else ()):
        with torch.autocast(TORCH_DEVICE, dtype=torch.float16):
            expected = _dtype_or_refusal("torch", name, where, values, kind, *called)
        if expected is not None:
            with cr.autocast(DEVICE_TYPE):
                got = _dtype_or_refusal("chainrule", name, where, values, kind, *called)
            assert got == expected, f"{name} on {kind} inputs: chainrule {got}, torch {expected}"


# the documented names chainrule serves with one op of another name
_SERVED_BY = {"GRUCell": "recurrent_layer", "LSTMCell": "recurrent_layer", "RNNCell": "recurrent_layer"}


def test_cuda_column_is_pytorchs_list():
    documented = {_SERVED_BY.get(name, name): policy for policy, names in PYTORCH_CUDA.items()
                  for name in names.split()}
    assert {name: cuda for name, (cuda, _) in POLICIES.items() if cuda is not None} == documented


def _expected_cuda_dtype(name: str, kind: str) -> str:
    """What PyTorch's CUDA policy makes of ``kind`` inputs (the ops without one keep float16 input as
    float16 and float32 as float32)."""
    policy = POLICIES[name][0]
    if policy == LOWER:
        return "float16"
    if policy == FLOAT32:
        return "float32"
    return "float32" if kind in ("float32", "mixed") else "float16"


@pytest.mark.skipif(DEVICE_TYPE != "cuda", reason="the cuda column runs on cuda tensors")
@pytest.mark.parametrize("name", sorted(POLICIES))
def test_cuda_policy_on_cuda_tensors(name):
    where, values, *called = cases()[name]
    for kind in ("float32", "float16", "mixed") if POLICIES[name][0] is not None else ("float32", "float16"):
        if POLICIES[name][0] == BANNED:
            with cr.autocast("cuda"), pytest.raises(RuntimeError, match="binary_cross_entropy_with_logits"):
                _call("chainrule", name, where, values, _INPUTS[kind], *called)
            continue
        with cr.autocast("cuda"):
            got = _call("chainrule", name, where, values, _INPUTS[kind], *called)
        assert got == _expected_cuda_dtype(name, kind), f"{name} on {kind} inputs under autocast('cuda')"


# ----- autocast's rules -------------------------------------------------------------------------------------

def test_other_device_types_tensors_are_left_alone():
    if OTHER_TYPE == "cuda" and not cr.cuda.is_available():
        with pytest.warns(UserWarning, match="no CUDA device"), cr.autocast("cuda"):
            assert not cr.is_autocast_enabled("cuda")
        return
    x, w = cr.randn(3, 4), cr.randn(5, 4)
    with cr.autocast(OTHER_TYPE):
        assert cr.is_autocast_enabled(OTHER_TYPE) and not cr.is_autocast_enabled(DEVICE_TYPE)
        assert F.linear(x, w).dtype == cr.float32


def test_nesting_disabling_and_state_queries():
    x, w = cr.randn(3, 4), cr.randn(5, 4)
    assert not cr.is_autocast_enabled(DEVICE_TYPE) and cr.get_autocast_dtype(DEVICE_TYPE) == cr.float16
    with cr.autocast(DEVICE_TYPE):
        assert cr.is_autocast_enabled(DEVICE_TYPE)
        assert F.linear(x, w).dtype == cr.float16
        with cr.autocast(DEVICE_TYPE, enabled=False):
            assert not cr.is_autocast_enabled(DEVICE_TYPE)
            assert F.linear(x, w).dtype == cr.float32
            with cr.amp.autocast(DEVICE_TYPE, dtype=cr.float16):
                assert (x @ w.t()).dtype == cr.float16
        assert x.matmul(w.t()).dtype == cr.float16
    assert not cr.is_autocast_enabled(DEVICE_TYPE)
    assert F.linear(x, w).dtype == cr.float32


def test_outside_regions_the_ops_are_their_own_functions():
    own = (cr.exp, cr.Tensor.__matmul__, F.linear, cr.linalg.multi_dot)
    with cr.autocast(DEVICE_TYPE):
        inside = (cr.exp, cr.Tensor.__matmul__, F.linear, cr.linalg.multi_dot)
        kept = F.linear
        with cr.autocast(DEVICE_TYPE, enabled=False):
            assert F.linear is kept  # another region is still open
    assert all(a is not b and b.__autocast_wrapped__ is a for a, b in zip(own, inside))
    assert (cr.exp, cr.Tensor.__matmul__, F.linear, cr.linalg.multi_dot) == own
    x, w = cr.randn(3, 4), cr.randn(5, 4)
    assert kept(x, w).dtype == cr.float32  # an entry kept past its region runs the op as it is
    with cr.autocast(DEVICE_TYPE):
        assert kept(x, w).dtype == cr.float16


def test_as_a_decorator():
    @cr.autocast(DEVICE_TYPE)
    def forward(x, w):
        assert cr.is_autocast_enabled(DEVICE_TYPE)
        return x @ w

    assert forward(cr.randn(2, 3), cr.randn(3, 2)).dtype == cr.float16
    assert not cr.is_autocast_enabled(DEVICE_TYPE)


def test_float64_integer_and_explicit_dtype_inputs_are_not_cast():
    x64 = cr.randn(3, 3, dtype=cr.float64)
    with cr.autocast(DEVICE_TYPE):
        assert (x64 @ x64).dtype == cr.float64
        assert F.cross_entropy(x64, cr.tensor([0, 1, 2])).dtype == cr.float64
        assert cr.prod(cr.randn(3, dtype=cr.float16), dtype=cr.float16).dtype == cr.float16
        assert cr.cat([cr.arange(3), cr.arange(2)]).dtype == cr.int64


def test_gradients_come_back_in_each_inputs_dtype():
    x = cr.randn(3, 4, requires_grad=True)
    w = cr.randn(5, 4, requires_grad=True)
    h = cr.randn(3, 5, dtype=cr.float16, requires_grad=True)
    with cr.autocast(DEVICE_TYPE):
        y = F.linear(x, w) + h
        loss = F.mse_loss(y, cr.zeros(3, 5))
    assert y.dtype == cr.float16 and loss.dtype == cr.float32
    loss.backward()
    assert (x.grad.dtype, w.grad.dtype, h.grad.dtype) == (cr.float32, cr.float32, cr.float16)


def _cast_node(out):
    """The node that cast the weight (the second input of linear) for ``out``."""
    return out.grad_fn.next_functions[1][0]


@pytest.mark.parametrize("cache_enabled", [True, False])
def test_a_parameters_cast_is_made_once_per_region_when_cached(cache_enabled):
    w = cr.randn(5, 4, requires_grad=True)
    x = cr.randn(3, 4)
    with cr.autocast(DEVICE_TYPE, cache_enabled=cache_enabled):
        a, b = F.linear(x, w), F.linear(x, w)
        assert (_cast_node(a) is _cast_node(b)) == cache_enabled
        assert _cast_node(a).name() == "ToBackward0"
    with cr.autocast(DEVICE_TYPE):
        c = F.linear(x, w)
    assert _cast_node(c) is not _cast_node(b)  # the cache is emptied when the outermost region ends
    (a.float().sum() + b.float().sum()).backward()
    np.testing.assert_allclose(w.grad.cpu().numpy(), 2 * x.sum(0).expand(5, 4).cpu().numpy(), rtol=2e-3, atol=2e-3)


def test_thread_local():
    seen = []
    with cr.autocast(DEVICE_TYPE):
        worker = threading.Thread(target=lambda: seen.append((cr.is_autocast_enabled(DEVICE_TYPE),
                                                              (cr.randn(2, 2) @ cr.randn(2, 2)).dtype)))
        worker.start()
        worker.join()
    assert seen == [(False, cr.float32)]


def test_a_compiled_step_is_not_replayed_across_autocast_states():
    w = cr.randn(4, 4, requires_grad=True)

    @cr.compile
    def step(x):
        return x @ w

    x = cr.randn(4, 4)
    for _ in range(3):  # captured, then replayed inside the region
        with cr.autocast(DEVICE_TYPE):
            assert step(x).dtype == cr.float16
    assert step(x).dtype == cr.float32
    np.testing.assert_allclose(step(x).detach().cpu().numpy(), (x @ w).detach().cpu().numpy(), rtol=1e-6)


class _Product(cr.autograd.Function):
    """x @ w with a hand-written backward that reports the autocast state it ran in."""

    seen = []

    @staticmethod
    @cr.amp.custom_fwd(device_type=DEVICE_TYPE)
    def forward(ctx, x, w):
        ctx.save_for_backward(x, w)
        return x @ w

    @staticmethod
    @cr.amp.custom_bwd(device_type=DEVICE_TYPE)
    def backward(ctx, g):
        _Product.seen.append(cr.is_autocast_enabled(DEVICE_TYPE))
        x, w = ctx.saved_tensors
        return g @ w.t(), x.t() @ g


class _Float32Product(_Product):
    forward = staticmethod(cr.amp.custom_fwd(_Product.forward.__wrapped__, device_type=DEVICE_TYPE,
                                             cast_inputs=cr.float32))


def test_custom_fwd_and_bwd():
    x, w = cr.randn(3, 4, requires_grad=True), cr.randn(4, 2, requires_grad=True)
    _Product.seen.clear()
    with cr.autocast(DEVICE_TYPE):
        out = _Product.apply(x, w)  # forward in the region: its matmul runs in float16
        out32 = _Float32Product.apply(x.half(), w)  # inputs cast to float32, forward without autocast
    assert out.dtype == cr.float16 and out32.dtype == cr.float32
    out.float().sum().backward()
    out32.sum().backward()
    assert _Product.seen == [True, False]  # each backward in its forward's state, outside the region
    assert not cr.is_autocast_enabled(DEVICE_TYPE)
    with pytest.warns(FutureWarning):
        cr.cuda.amp.custom_fwd(cast_inputs=cr.float32)


def test_dtypes():
    with pytest.raises(TypeError, match="bfloat16.*numpy"):
        cr.autocast(DEVICE_TYPE, dtype="bfloat16")
    with pytest.raises(TypeError, match="bfloat16"):
        cr.autocast(DEVICE_TYPE, dtype=torch.bfloat16)
    with pytest.warns(UserWarning, match="disabled"), cr.autocast(DEVICE_TYPE, dtype=cr.float32):
        assert not cr.is_autocast_enabled(DEVICE_TYPE)
    with pytest.raises(RuntimeError, match="device_type"):
        cr.autocast("tpu")
    with pytest.raises(TypeError, match="str"):
        cr.autocast(cr.float16)


@pytest.mark.skipif(DEVICE_TYPE != "cuda", reason="binary_cross_entropy is banned by the cuda policy only")
def test_binary_cross_entropy_is_refused_under_cuda_autocast():
    p = cr.rand(4).clamp(0.1, 0.9)
    with cr.autocast("cuda"), pytest.raises(RuntimeError, match="unsafe to autocast"):
        F.binary_cross_entropy(p, p)


@pytest.mark.skipif(DEVICE_TYPE != "cuda", reason="the recurrent layers run in float16 under cuda autocast only")
def test_recurrent_layers_under_cuda_autocast():
    for layer, x in ((cr.nn.LSTM(4, 6, num_layers=2, bidirectional=True), cr.randn(3, 2, 4)),
                     (cr.nn.GRUCell(4, 6), cr.randn(2, 4))):
        with cr.autocast("cuda"):
            out = layer(x)
        out = out[0] if isinstance(out, tuple) else out
        assert out.dtype == cr.float16
        out.float().sum().backward()
        assert all(p.grad.dtype == cr.float32 for p in layer.parameters())


def test_cuda_amp_spellings_are_deprecated():
    with pytest.warns(FutureWarning, match="deprecated"):
        region = cr.cuda.amp.autocast(enabled=False)
    with region:
        assert not cr.is_autocast_enabled("cuda")
    from chainrule.cuda.amp import GradScaler  # importable by its torch path too

    with pytest.warns(FutureWarning, match="deprecated"):
        scaler = GradScaler(init_scale=8.0, enabled=False)
    assert not scaler.is_enabled() and scaler.get_scale() == 1.0


# ----- numbers: a small MLP and attention block against torch -----------------------------------------------

def _block_pair(seed=0):
    torch.manual_seed(seed)
    t_layers = torch.nn.ModuleDict({"fc": torch.nn.Linear(8, 16), "qkv": torch.nn.Linear(16, 48),
                                    "proj": torch.nn.Linear(16, 16), "ln": torch.nn.LayerNorm(16),
                                    "head": torch.nn.Linear(16, 5)})
    c_layers = {"fc": cr.nn.Linear(8, 16), "qkv": cr.nn.Linear(16, 48), "proj": cr.nn.Linear(16, 16),
                "ln": cr.nn.LayerNorm(16), "head": cr.nn.Linear(16, 5)}
    for name, layer in c_layers.items():
        layer.load_state_dict({k: cr.tensor(v.detach().numpy()) for k, v in t_layers[name].state_dict().items()})
    return t_layers, c_layers


def _block_forward(layers, fn, x, y):
    """linear - gelu - causal attention (2 heads) - residual - layer norm - linear - cross-entropy."""
    h = fn.gelu(layers["fc"](x))
    b, t, c = h.shape
    q, k, v = layers["qkv"](h).reshape(b, t, 3, 2, c // 2).permute(2, 0, 3, 1, 4).unbind(0)
    a = fn.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, c)
    logits = layers["head"](layers["ln"](h + layers["proj"](a)))
    return fn.cross_entropy(logits.reshape(b * t, -1), y.reshape(-1))


def test_block_under_autocast_matches_torch():
    t_layers, c_layers = _block_pair()
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((2, 6, 8)).astype(np.float32), rng.integers(0, 5, (2, 6))
    t_layers.to(TORCH_DEVICE)
    with torch.autocast(TORCH_DEVICE, dtype=torch.float16):
        t_loss = _block_forward(t_layers, TF, torch.tensor(x, device=TORCH_DEVICE), torch.tensor(y, device=TORCH_DEVICE))
    t_loss.backward()
    with cr.autocast(DEVICE_TYPE):
        c_loss = _block_forward(c_layers, F, cr.tensor(x), cr.tensor(y))
    c_loss.backward()
    assert c_loss.dtype == cr.float32 and str(t_loss.dtype) == "torch.float32"
    # float16 matmuls: about 3 decimal digits; on cuda the softmax, layer norm and exp also run in float32,
    # so the two differ by float16 rounding only
    np.testing.assert_allclose(c_loss.item(), t_loss.item(), rtol=5e-3)
    for name, layer in c_layers.items():
        for key, p in layer.named_parameters():
            expected = dict(t_layers[name].named_parameters())[key].grad.cpu().numpy()
            assert p.grad.dtype == cr.float32
            np.testing.assert_allclose(p.grad.cpu().numpy(), expected, rtol=3e-2, atol=3e-3 * np.abs(expected).max())


def test_gpt_training_with_autocast_and_grad_scaler_matches_torch():
    """A few SGD steps of bench's GPT under autocast with a GradScaler, against PyTorch's (on CUDA when
    PyTorch has it and the suite runs on cuda; else PyTorch's CPU autocast, whose lists differ from the CUDA
    ones on softmax, layer norm and sums: the losses then agree to float16 rounding)."""
    from bench.models import GPTConfig, gpt

    torch_device = "cuda" if DEVICE_TYPE == "cuda" and torch.cuda.is_available() else "cpu"
    cfg = GPTConfig(vocab=11, context=8, d_model=16, heads=2, layers=2)
    torch.manual_seed(0)
    t_model = gpt(torch, cfg).to(torch_device)
    c_model = gpt(cr, cfg)
    c_model.load_state_dict({k: cr.tensor(v.detach().cpu().numpy()) for k, v in t_model.state_dict().items()})
    # SGD: the parameters then move with the gradients, so float16 rounding stays small in them (Adam's
    # normalised step turns a rounding difference in a near-zero gradient into a full learning-rate step)
    t_opt = torch.optim.SGD(t_model.parameters(), lr=0.3, momentum=0.9)
    c_opt = cr.optim.SGD(c_model.parameters(), lr=0.3, momentum=0.9)
    settings = dict(init_scale=2.0 ** 10, growth_interval=2)
    t_scaler, c_scaler = torch.amp.GradScaler(torch_device, **settings), cr.amp.GradScaler(DEVICE_TYPE, **settings)
    rng = np.random.default_rng(0)
    for _ in range(4):
        idx = rng.integers(0, cfg.vocab, (4, cfg.context + 1))
        losses = []
        for lib, model, opt, scaler, device_type in ((torch, t_model, t_opt, t_scaler, torch_device),
                                                     (cr, c_model, c_opt, c_scaler, DEVICE_TYPE)):
            batch = lib.tensor(idx).to(torch_device) if lib is torch else cr.tensor(idx)
            opt.zero_grad()
            with lib.autocast(device_type, dtype=lib.float16):
                logits = model(batch[:, :-1])
                loss = lib.nn.functional.cross_entropy(logits.reshape(-1, cfg.vocab), batch[:, 1:].reshape(-1))
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            losses.append(loss.item())
            assert loss.dtype == lib.float32 and logits.dtype == lib.float16
        np.testing.assert_allclose(losses[1], losses[0], rtol=2e-3)
        assert c_scaler.get_scale() == t_scaler.get_scale()
    for (name, t_p), c_p in zip(t_model.named_parameters(), c_model.parameters()):
        np.testing.assert_allclose(c_p.detach().cpu().numpy(), t_p.detach().cpu().numpy(), atol=2e-3, err_msg=name)


# ----- GradScaler -------------------------------------------------------------------------------------------

def _linear_pair(seed=0):
    torch.manual_seed(seed)
    t_model = torch.nn.Linear(4, 3)
    c_model = cr.nn.Linear(4, 3)
    c_model.load_state_dict({k: cr.tensor(v.detach().numpy()) for k, v in t_model.state_dict().items()})
    return t_model, c_model


_SCALER_SETTINGS = [dict(init_scale=2.0 ** 10, growth_factor=2.0, backoff_factor=0.5, growth_interval=2),
                    dict(init_scale=1000.0, growth_factor=1.7, backoff_factor=0.3, growth_interval=2)]


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # clipping an inf gradient
@pytest.mark.parametrize("settings", _SCALER_SETTINGS)
def test_grad_scaler_matches_torch_step_by_step(settings):
    """Step 2 gets an inf gradient and step 5 a NaN: those steps are skipped and the scale backs off; two clean
    steps in a row grow it; gradients are clipped between unscale_ and step."""
    t_model, c_model = _linear_pair()
    t_opt, c_opt = torch.optim.SGD(t_model.parameters(), lr=0.1), cr.optim.SGD(c_model.parameters(), lr=0.1)
    t_scaler = torch.amp.GradScaler("cpu", **settings)
    c_scaler = cr.amp.GradScaler(DEVICE_TYPE, **settings)
    rng = np.random.default_rng(0)
    scales, skipped = [], []
    for step in range(7):
        x = rng.standard_normal((8, 4)).astype(np.float32)
        before = [p.detach().cpu().numpy().copy() for p in c_model.parameters()]
        for lib, model, opt, scaler in ((torch, t_model, t_opt, t_scaler), (cr, c_model, c_opt, c_scaler)):
            opt.zero_grad()
            scaler.scale((model(lib.tensor(x)) ** 2).mean()).backward()
            if step in (2, 5):
                with lib.no_grad():
                    model.weight.grad[1, 2] = float("inf") if step == 2 else float("nan")
            scaler.unscale_(opt)
            clip = torch.nn.utils.clip_grad_norm_ if lib is torch else cr.nn.utils.clip_grad_norm_
            clip(model.parameters(), 0.5)
            assert scaler.step(opt) is None
            scaler.update()
        assert c_scaler.get_scale() == t_scaler.get_scale()
        scales.append(c_scaler.get_scale())
        unchanged = [np.array_equal(b, p.detach().cpu().numpy()) for b, p in zip(before, c_model.parameters())]
        skipped.append(all(unchanged))
        for c_p, t_p in zip(c_model.parameters(), t_model.parameters()):
            np.testing.assert_allclose(c_p.detach().cpu().numpy(), t_p.detach().numpy(), rtol=1e-5, atol=1e-6)
    s0, grow, back = settings["init_scale"], settings["growth_factor"], settings["backoff_factor"]
    np.testing.assert_allclose(scales, [s0, s0 * grow, s0 * grow * back, s0 * grow * back, s0 * grow ** 2 * back,
                                        s0 * grow ** 2 * back ** 2, s0 * grow ** 2 * back ** 2], rtol=1e-6)
    assert skipped == [step in (2, 5) for step in range(7)]


def test_grad_scaler_with_two_optimizers_matches_torch():
    """An inf in the first model's gradients skips its optimizer only; the scale backs off once for both."""
    pairs = [_linear_pair(seed) for seed in (0, 1)]
    libs = {}
    for lib, index in ((torch, 0), (cr, 1)):
        models = [pair[index] for pair in pairs]
        opts = [lib.optim.SGD(m.parameters(), lr=0.1) for m in models]
        scaler = lib.amp.GradScaler("cpu" if lib is torch else DEVICE_TYPE, init_scale=256.0)
        x = lib.tensor(np.ones((2, 4), dtype=np.float32))
        before = [m.weight.detach().cpu().numpy().copy() for m in models]
        scaler.scale(sum((m(x) ** 2).mean() for m in models)).backward()
        with lib.no_grad():
            models[0].bias.grad[0] = float("inf")
        for opt in opts:
            scaler.step(opt)
        scaler.update()
        moved = [not np.array_equal(b, m.weight.detach().cpu().numpy()) for b, m in zip(before, models)]
        libs[lib.__name__] = (moved, scaler.get_scale(), [m.weight.detach().cpu().numpy() for m in models])
    assert libs["torch"][:2] == libs["chainrule"][:2] == ([False, True], 128.0)
    for ours, theirs in zip(libs["chainrule"][2], libs["torch"][2]):
        np.testing.assert_allclose(ours, theirs, rtol=1e-6)


def _optimizers():
    # LBFGS steps with a closure, which GradScaler refuses (as PyTorch's); SparseAdam refuses dense gradients
    left_out = ("Optimizer", "LBFGS", "SparseAdam")
    return [n for n in cr.optim.__all__ if isinstance(getattr(cr.optim, n), type) and n not in left_out]


@pytest.mark.parametrize("name", _optimizers())
def test_grad_scaler_with_every_optimizer_equals_no_scaling(name):
    """A power-of-two scale is undone exactly, so scaled training equals unscaled training bit for bit."""
    models = [cr.nn.Linear(4, 3), cr.nn.Linear(4, 3)]
    models[1].load_state_dict(models[0].state_dict())
    kwargs = {"lr": 0.01} if name != "Adafactor" else {}
    opts = [getattr(cr.optim, name)(m.parameters(), **kwargs) for m in models]
    scaler = cr.amp.GradScaler(DEVICE_TYPE, init_scale=2.0 ** 12, growth_interval=2)
    x = cr.randn(8, 4)
    for _ in range(4):
        for i, (model, opt) in enumerate(zip(models, opts)):
            opt.zero_grad()
            loss = model(x).square().mean()
            if i == 0:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                opt.step()
    assert scaler.get_scale() == 2.0 ** 14
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        np.testing.assert_array_equal(a.detach().cpu().numpy(), b.detach().cpu().numpy())


def test_grad_scaler_call_order_errors():
    model = cr.nn.Linear(2, 1)
    opt = cr.optim.SGD(model.parameters(), lr=0.1)
    scaler = cr.amp.GradScaler(DEVICE_TYPE)
    with pytest.raises(RuntimeError, match="No inf checks"):
        scaler.update()
    scaler.scale(model(cr.randn(3, 2)).sum()).backward()
    scaler.unscale_(opt)
    with pytest.raises(RuntimeError, match="already been called"):
        scaler.unscale_(opt)
    scaler.step(opt)
    with pytest.raises(RuntimeError, match="after step"):
        scaler.unscale_(opt)
    with pytest.raises(RuntimeError, match="step\\(\\) has already been called"):
        scaler.step(opt)
    with pytest.raises(RuntimeError, match="Closure"):
        scaler.step(cr.optim.SGD(model.parameters(), lr=0.1), closure=lambda: 0.0)
    scaler.update()
    scaler.update(new_scale=4.0)
    assert scaler.get_scale() == 4.0
    half = cr.nn.Linear(2, 1).to(cr.float16)
    half_opt = cr.optim.SGD(half.parameters(), lr=0.1)
    scaler.scale(half(cr.randn(3, 2, dtype=cr.float16)).sum()).backward()
    with pytest.raises(ValueError, match="FP16 gradients"):
        scaler.unscale_(half_opt)
    with pytest.raises(ValueError, match="growth_factor"):
        cr.amp.GradScaler(DEVICE_TYPE, growth_factor=1.0)


def test_grad_scaler_state_dict_round_trip_and_disabled():
    scaler = cr.amp.GradScaler(DEVICE_TYPE, init_scale=64.0, growth_interval=3)
    model = cr.nn.Linear(2, 1)
    opt = cr.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(2):
        scaler.scale(model(cr.randn(3, 2)).sum()).backward()
        scaler.step(opt)
        scaler.update()
    state = scaler.state_dict()
    t_state = torch.amp.GradScaler("cpu", init_scale=64.0, growth_interval=3).state_dict()
    assert set(state) == set(t_state) and state["_growth_tracker"] == 2 and state["scale"] == 64.0
    restored = cr.amp.GradScaler(DEVICE_TYPE)
    restored.load_state_dict(state)
    assert restored.state_dict() == state
    off = cr.amp.GradScaler(DEVICE_TYPE, enabled=False)
    assert off.state_dict() == {} and off.get_scale() == 1.0 and not off.is_enabled()
    loss = model(cr.randn(3, 2)).sum()
    assert off.scale(loss) is loss
    with pytest.raises(RuntimeError, match="empty"):
        restored.load_state_dict({})
