"""PyTorch's other spellings, checked against PyTorch: in-place forms of tensor methods, torch.* function
forms, nn.functional at torch.* (with aten's argument orders), the view forms (``*_copy``, ``*_scatter``,
``unfold``), creation and window functions, layout queries, dtype helpers and global switches."""

import numpy as np
import pytest
import torch

import chainrule as cr
from chainrule.autograd import gradcheck, gradgradcheck
from chainrule.ops import _methods

RNG = np.random.default_rng(0)


def _both(array, **kw):
    return cr.tensor(array, **kw), torch.tensor(array, **kw)


def _close(ours, theirs, atol=1e-12):
    if isinstance(theirs, (tuple, list)):
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            _close(a, b, atol)
        return
    if isinstance(theirs, torch.Tensor):
        assert tuple(ours.shape) == tuple(theirs.shape)
        assert str(ours.dtype).split(".")[-1] == str(theirs.dtype).split(".")[-1]
        np.testing.assert_allclose(ours.detach().cpu().numpy(), theirs.detach().cpu().numpy(), atol=atol, rtol=max(atol, 1e-10))
    else:
        assert ours == theirs


# ----- in-place forms of methods ---------------------------------------------------------------------

def _t(value):
    return torch.tensor(value, dtype=torch.float64)


# method -> (input sampler, extra arguments); unlisted methods take a float64 input in (0.2, 0.8) and no argument
_INPLACE_INPUTS = {
    "acosh": (lambda: RNG.uniform(1.2, 2.0, (3, 4)), ()), "arccosh": (lambda: RNG.uniform(1.2, 2.0, (3, 4)), ()),
    "clamp_max": (None, (0.5,)), "clamp_min": (None, (0.5,)), "cumsum": (None, (1,)), "cumprod": (None, (0,)),
    "float_power": (None, (2.0,)), "fmod": (None, (0.3,)), "remainder": (None, (0.3,)), "polygamma": (None, (1,)),
    "mvlgamma": (lambda: RNG.uniform(2.0, 3.0, (3, 4)), (2,)), "tril": (None, (1,)), "triu": (None, (-1,)),
    "renorm": (None, (2, 0, 0.5)), "ldexp": (None, (torch.tensor(2),)), "hypot": (None, (_t(0.5),)),
    "copysign": (None, (_t(-1.0),)), "atan2": (None, (_t(0.5),)), "arctan2": (None, (_t(0.5),)), "xlogy": (None, (_t(0.5),)),
    "nextafter": (None, (_t(1.0),)), "heaviside": (None, (_t(0.5),)), "divide": (None, (0.5,)), "multiply": (None, (3.0,)),
    "subtract": (None, (0.5,)), "true_divide": (None, (0.5,)), "floor_divide": (None, (0.3,)),
    "eq": (None, (0.5,)), "ne": (None, (0.5,)), "lt": (None, (0.5,)), "le": (None, (0.5,)), "gt": (None, (0.5,)),
    "ge": (None, (0.5,)), "greater": (None, (0.5,)), "greater_equal": (None, (0.5,)), "less": (None, (0.5,)),
    "less_equal": (None, (0.5,)), "not_equal": (None, (0.5,)), "logical_and": (None, (_t(0.0),)),
    "logical_or": (None, (_t(0.0),)), "logical_xor": (None, (_t(1.0),)),
    "igamma": (None, (_t(0.5),)), "igammac": (None, (_t(0.5),)),
}
_INTEGER_INPUTS = {"bitwise_and": (3,), "bitwise_or": (3,), "bitwise_xor": (3,), "bitwise_left_shift": (1,),
                   "bitwise_right_shift": (1,), "bitwise_not": (), "gcd": (torch.tensor(6),), "lcm": (torch.tensor(4),)}
_BOUND_INPLACE = sorted(name for name in _methods._INPLACE_FROM_METHODS if hasattr(cr.Tensor, f"{name}_")
                        and hasattr(torch.Tensor, f"{name}_"))
# need index/mask/matrix arguments or complex input: tested in their own files or below
_TESTED_ELSEWHERE = {"masked_scatter", "index_fill", "index_copy", "put", "scatter_reduce", "index_reduce",
                     "conj_physical", "sgn", "addmm", "addmv", "addr", "addbmm", "baddbmm"}


@pytest.mark.parametrize("name", [n for n in _BOUND_INPLACE if n not in _TESTED_ELSEWHERE])
def test_inplace_form_equals_torch_and_writes_into_the_tensor(name):
    if name in _INTEGER_INPUTS:
        array, args = RNG.integers(0, 20, (3, 4)), _INTEGER_INPUTS[name]
    else:
        sampler, args = _INPLACE_INPUTS.get(name, (None, ()))
        array = (sampler or (lambda: RNG.uniform(0.2, 0.8, (3, 4))))()
    ours, theirs = _both(array)
    ours_args = [cr.tensor(a.cpu().numpy()) if isinstance(a, torch.Tensor) else a for a in args]
    view_before = ours[0]
    result = getattr(ours, f"{name}_")(*ours_args)
    getattr(theirs, f"{name}_")(*args)
    assert result is ours
    _close(ours, theirs, atol=1e-9)  # polygamma's series agrees with torch's to ~1e-9
    _close(view_before, theirs[0], atol=1e-9)  # the memory itself changed: views see it


def test_inplace_form_is_refused_on_a_leaf_that_requires_grad_and_recorded_on_a_non_leaf():
    leaf = cr.tensor([0.3, 0.6], dtype=cr.float64, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
        leaf.sin_()
    y = leaf * 1.0
    y.sin_()
    y.sum().backward()
    np.testing.assert_allclose(leaf.grad.cpu().numpy(), np.cos([0.3, 0.6]))


@pytest.mark.parametrize("name", ["abs_", "sin_", "exp_", "clamp_", "zero_", "fill_", "relu_", "sigmoid_", "log1p_",
                                  "trunc_", "xlogy_", "ceil_", "rsqrt_"])
def test_torch_level_inplace_functions(name):
    array = RNG.uniform(0.2, 0.8, (2, 3))
    args = {"clamp_": (0.3, 0.6), "fill_": (2.5,), "xlogy_": (0.5,)}.get(name, ())
    ours, theirs = _both(array)
    assert getattr(cr, name)(ours, *[cr.tensor(a.cpu().numpy()) if isinstance(a, torch.Tensor) else a for a in args]) is ours
    getattr(torch, name)(theirs, *args)
    _close(ours, theirs)


# ----- nn.functional at torch.* ------------------------------------------------------------------------

def _x(*shape):
    return RNG.standard_normal(shape)


_FUNCTIONAL_CASES = {
    "conv2d": lambda lib, T: lib.conv2d(T(_x(2, 3, 5, 5)), T(_x(4, 3, 3, 3)), T(_x(4)), 1, 1),
    "conv_transpose1d": lambda lib, T: lib.conv_transpose1d(T(_x(2, 3, 5)), T(_x(3, 2, 3)), None, 2, 1, 1),
    "max_pool2d": lambda lib, T: lib.max_pool2d(T(_x(1, 2, 6, 6)), 2, 2, 0, 1, True),
    "avg_pool1d": lambda lib, T: lib.avg_pool1d(T(_x(1, 2, 7)), 3, 2),
    "adaptive_max_pool1d": lambda lib, T: lib.adaptive_max_pool1d(T(_x(2, 3, 7)), 3),
    "pixel_shuffle": lambda lib, T: lib.pixel_shuffle(T(_x(1, 8, 2, 3)), 2),
    "channel_shuffle": lambda lib, T: lib.channel_shuffle(T(_x(2, 6, 3, 3)), 3),
    "pdist": lambda lib, T: lib.pdist(T(_x(5, 3)), 1.5),
    "cosine_similarity": lambda lib, T: lib.cosine_similarity(T(_x(4, 3)), T(_x(4, 3))),
    "pairwise_distance": lambda lib, T: lib.pairwise_distance(T(_x(4, 3)), T(_x(4, 3))),
    "bilinear": lambda lib, T: lib.bilinear(T(_x(4, 3)), T(_x(4, 2)), T(_x(5, 3, 2)), T(_x(5))),
    "layer_norm": lambda lib, T: lib.layer_norm(T(_x(3, 4)), (4,), T(_x(4)), T(_x(4)), 1e-5),
    "group_norm": lambda lib, T: lib.group_norm(T(_x(2, 4, 3)), 2, T(_x(4)), T(_x(4)), 1e-5),
    "rms_norm": lambda lib, T: lib.rms_norm(T(_x(3, 4)), (4,), T(_x(4)), 1e-6),
    "celu": lambda lib, T: lib.celu(T(_x(3, 4)), 0.7),
    "selu": lambda lib, T: lib.selu(T(_x(3, 4))),
    "prelu": lambda lib, T: lib.prelu(T(_x(2, 3, 4)), T(_x(3))),
    "threshold": lambda lib, T: lib.threshold(T(_x(3, 4)), 0.1, 20.0),
    "hardshrink": lambda lib, T: lib.hardshrink(T(_x(3, 4)), 0.5),
    "embedding": lambda lib, T: lib.embedding(T(_x(6, 3)), T(np.array([[1, 5], [0, 2]]))),
    "batch_norm": lambda lib, T: lib.batch_norm(T(_x(4, 3)), T(_x(3)), T(_x(3)), T(np.zeros(3)), T(np.ones(3)),
                                                True, 0.1, 1e-5, False),
    "instance_norm": lambda lib, T: lib.instance_norm(T(_x(2, 3, 5)), T(_x(3)), T(_x(3)), None, None, True, 0.1,
                                                      1e-5, False),
    "kl_div": lambda lib, T: lib.kl_div(T(np.log(RNG.uniform(0.1, 1, (3, 4)))), T(RNG.uniform(0.1, 1, (3, 4))), 2),
    "margin_ranking_loss": lambda lib, T: lib.margin_ranking_loss(T(_x(5)), T(_x(5)), T(np.sign(_x(5))), 0.1, 0),
    "hinge_embedding_loss": lambda lib, T: lib.hinge_embedding_loss(T(_x(5)), T(np.sign(_x(5))), 1.0, 1),
    "cosine_embedding_loss": lambda lib, T: lib.cosine_embedding_loss(T(_x(4, 3)), T(_x(4, 3)), T(np.sign(_x(4))),
                                                                      0.0, 2),
    "triplet_margin_loss": lambda lib, T: lib.triplet_margin_loss(T(_x(4, 3)), T(_x(4, 3)), T(_x(4, 3)), 1.0, 2.0,
                                                                  1e-6, True, 1),
    "poisson_nll_loss": lambda lib, T: lib.poisson_nll_loss(T(_x(5)), T(RNG.uniform(0, 3, 5)), True, True, 1e-8, 1),
    "binary_cross_entropy_with_logits": lambda lib, T: lib.binary_cross_entropy_with_logits(
        T(_x(4, 3)), T(RNG.uniform(0, 1, (4, 3))), None, T(RNG.uniform(0.5, 2, 3)), 1),
    "convolution": lambda lib, T: lib.convolution(T(_x(1, 2, 5, 5)), T(_x(2, 3, 3, 3)), None, (2, 2), (1, 1), (1, 1),
                                                  True, (1, 1), 1),
    "constant_pad_nd": lambda lib, T: lib.constant_pad_nd(T(_x(2, 3)), (1, 2), 0.5),
    "dropout (eval)": lambda lib, T: lib.dropout(T(_x(3, 4)), 0.5, False),
}


@pytest.mark.parametrize("name", sorted(_FUNCTIONAL_CASES))
def test_torch_level_functional_forms_equal_torch(name):
    state = RNG.bit_generator.state
    ours = _FUNCTIONAL_CASES[name](cr, lambda a: cr.tensor(a))
    RNG.bit_generator.state = state  # the same inputs for torch
    theirs = _FUNCTIONAL_CASES[name](torch, lambda a: torch.tensor(a))
    _close(ours, theirs, atol=1e-10)


def test_torch_level_reduction_codes_are_checked():
    with pytest.raises(ValueError, match="reduction must be 0 .none., 1 .mean. or 2 .sum., got 5"):
        cr.kl_div(cr.zeros(2), cr.ones(2), 5)


# ----- view forms ---------------------------------------------------------------------------------------

_VIEW_FORMS = {
    "unfold": lambda lib, x: x.unfold(1, 3, 2), "unfold 0-size": lambda lib, x: x.unfold(0, 0, 1),
    "diagonal_copy": lambda lib, x: lib.diagonal_copy(x, 1), "permute_copy": lambda lib, x: lib.permute_copy(x, (1, 0)),
    "select_copy": lambda lib, x: lib.select_copy(x, 1, 2), "slice_copy": lambda lib, x: lib.slice_copy(x, 1, 1, 4, 2),
    "split_copy": lambda lib, x: lib.split_copy(x, 2, 1), "t_copy": lambda lib, x: lib.t_copy(x),
    "transpose_copy": lambda lib, x: lib.transpose_copy(x, 0, 1), "unbind_copy": lambda lib, x: lib.unbind_copy(x, 1),
    "unsqueeze_copy": lambda lib, x: lib.unsqueeze_copy(x, 1), "view_copy": lambda lib, x: lib.view_copy(x, (5, 3)),
    "expand_copy": lambda lib, x: lib.expand_copy(x[:1], (2, 5)), "alias_copy": lambda lib, x: lib.alias_copy(x),
    "squeeze_copy": lambda lib, x: lib.squeeze_copy(x[:1], 0), "narrow_copy": lambda lib, x: x.narrow_copy(1, 1, 3),
    "split_with_sizes": lambda lib, x: x.split_with_sizes([2, 3], 1),
    "split_with_sizes_copy": lambda lib, x: lib.split_with_sizes_copy(x, [1, 4], 1),
    "unsafe_chunk": lambda lib, x: x.unsafe_chunk(2, 1), "moveaxis": lambda lib, x: lib.moveaxis(x, 0, 1),
    "ravel": lambda lib, x: lib.ravel(x.t()), "row_stack": lambda lib, x: lib.row_stack((x, x)),
    "select_scatter": lambda lib, x: lib.select_scatter(x, x[:, 0] * 2, 1, 3),
    "slice_scatter": lambda lib, x: lib.slice_scatter(x, x[:, ::2] * 3, 1, 0, None, 2),
    "diagonal_scatter": lambda lib, x: lib.diagonal_scatter(x, x[1, :3] * 2, 2),
    "diagonal_scatter below": lambda lib, x: lib.diagonal_scatter(x, x[0, :2], -1),
    "combinations": lambda lib, x: lib.combinations(x[0], 2),
    "combinations with replacement": lambda lib, x: lib.combinations(x[1, :3], 3, with_replacement=True),
    "broadcast_tensors": lambda lib, x: lib.broadcast_tensors(x[:, :1], x[0]),
    "sum_to_size": lambda lib, x: x.sum_to_size(1, 5),
}


@pytest.mark.parametrize("name", sorted(_VIEW_FORMS))
def test_view_forms_equal_torch_with_gradients(name):
    array = RNG.standard_normal((3, 5))
    ours, theirs = _both(array, requires_grad=True)
    out_ours, out_theirs = _VIEW_FORMS[name](cr, ours), _VIEW_FORMS[name](torch, theirs)
    _close(out_ours, out_theirs)
    parts = out_ours if isinstance(out_ours, tuple) else (out_ours,)
    torch_parts = out_theirs if isinstance(out_theirs, tuple) else (out_theirs,)
    weights = [RNG.standard_normal(tuple(p.shape)) for p in parts]
    sum(((p * cr.tensor(w)).sum() for p, w in zip(parts, weights)), cr.tensor(0.0)).backward()
    sum(((p * torch.tensor(w)).sum() for p, w in zip(torch_parts, weights)), torch.tensor(0.0)).backward()
    np.testing.assert_allclose(ours.grad.cpu().numpy(), theirs.grad.cpu().numpy(), atol=1e-12)


@pytest.mark.parametrize("name", ["unfold", "select_scatter", "slice_scatter", "diagonal_scatter", "combinations",
                                  "pdist"])
def test_view_forms_pass_gradcheck_and_gradgradcheck(name):
    fn = {"pdist": lambda x: cr.pdist(x, 3.0)}.get(name) or (lambda x: _VIEW_FORMS[name](cr, x))
    x = cr.tensor(RNG.uniform(0.5, 1.5, (3, 5)), requires_grad=True)
    assert gradcheck(fn, (x,))
    assert gradgradcheck(fn, (x,))


def test_view_form_errors_name_the_operation_and_shapes():
    x = cr.zeros(3, 5)
    with pytest.raises(RuntimeError, match=r"select_scatter: src of shape \(2,\) must have the shape .*\(3,\)"):
        cr.select_scatter(x, cr.zeros(2), 1, 0)
    with pytest.raises(RuntimeError, match=r"unfold: size 6 must be in \[0, 5\]"):
        x.unfold(1, 6, 1)
    with pytest.raises(RuntimeError, match="split_with_sizes: split sizes"):
        x.split_with_sizes([2, 2], 1)
    with pytest.raises(RuntimeError, match="broadcast_shapes: shapes"):
        cr.broadcast_shapes((2, 3), (4,))


def test_unravel_index_equals_torch():
    indices = np.array([0, 5, 11, -1])
    ours = cr.unravel_index(cr.tensor(indices), (3, 4))
    theirs = torch.unravel_index(torch.tensor(indices), (3, 4))
    _close(ours, theirs)


# ----- creation, windows, queries, dtypes, switches -----------------------------------------------------------

@pytest.mark.parametrize("name", ["hann_window", "hamming_window", "blackman_window", "bartlett_window",
                                  "kaiser_window"])
@pytest.mark.parametrize("length", [0, 1, 2, 7])
@pytest.mark.parametrize("periodic", [True, False])
def test_windows_equal_torch(name, length, periodic):
    _close(getattr(cr, name)(length, periodic, dtype=cr.float64),
           getattr(torch, name)(length, periodic, dtype=torch.float64))
    assert getattr(cr, name)(length).dtype == cr.float32


def test_creation_functions_equal_torch():
    _close(cr.logspace(-1, 2, 5, base=3.0, dtype=cr.float64), torch.logspace(-1, 2, 5, base=3.0, dtype=torch.float64))
    _close(cr.tril_indices(4, 3, -1), torch.tril_indices(4, 3, -1))
    _close(cr.triu_indices(3, 5, 2), torch.triu_indices(3, 5, 2))
    _close(cr.scalar_tensor(2), torch.scalar_tensor(2))
    with pytest.warns(UserWarning):
        expected = torch.range(0, 1, 0.25)
    _close(cr.range(0, 1, 0.25), expected)
    array = np.arange(3.0)
    shared = cr.asarray(array, device="cpu")  # the host's memory, shared as torch.asarray shares it
    array[0] = 7.0
    assert shared[0].item() == 7.0
    with pytest.raises(ValueError, match="asarray: copy=False"):
        cr.asarray([1.0, 2.0], copy=False)


def test_layout_and_kind_queries_equal_torch(cuda_device):
    ours, theirs = _both(np.zeros((3, 4), dtype=np.float32))
    for a, b in ((ours, theirs), (ours.t(), theirs.t()), (ours[:, ::2], theirs[:, ::2])):
        assert a.stride() == b.stride() and a.is_contiguous() == b.is_contiguous()
        assert a.nbytes == b.nbytes and a.itemsize == b.itemsize and a.nelement() == b.nelement()
    assert ours.stride(-1) == theirs.stride(-1) and ours.ndimension() == 2
    on_cpu, on_cuda = ours.to("cpu"), ours.to(cuda_device)
    assert on_cpu.is_cpu and on_cpu.type() == "chainrule.FloatTensor" and ours.type(cr.float64).dtype == cr.float64
    assert ours.is_signed() and not cr.tensor([1], dtype=cr.uint8).is_signed()
    assert on_cpu.get_device() == theirs.get_device() == -1 and cr.get_device(on_cpu) == -1
    # PyTorch on a GPU: not is_cpu, the legacy name 'torch.cuda.FloatTensor', get_device() the index (0)
    assert not on_cuda.is_cpu and on_cuda.is_cuda and on_cuda.type() == "chainrule.cuda.FloatTensor"
    assert on_cuda.get_device() == cr.get_device(on_cuda) == 0
    assert ours.is_same_size(cr.ones(3, 4)) and not cr.is_same_size(ours, cr.ones(4, 3))
    assert cr.tensor([2.0]).is_nonzero() and not cr.is_nonzero(cr.tensor(0.0))
    with pytest.raises(RuntimeError, match="is_nonzero: a tensor with 2 values"):
        cr.tensor([1.0, 2.0]).is_nonzero()
    for method in ("byte", "char", "short"):
        assert str(getattr(ours, method)().dtype).split(".")[-1] == str(getattr(theirs, method)().dtype).split(".")[-1]


def test_legacy_new_and_python_element_functions():
    x = cr.tensor([1.0, 2.0, 3.0])
    assert x.new(2, 3).shape == (2, 3) and x.new([4, 5]).dtype == cr.float32
    x.apply_(lambda v: v * 10)
    x.map_(cr.tensor([1.0, 1.0, 2.0]), lambda a, b: a + b)
    np.testing.assert_array_equal(x.cpu().numpy(), [11.0, 21.0, 32.0])
    with pytest.raises(RuntimeError, match="apply_: can't call a Python function"):
        cr.ones(2, requires_grad=True).apply_(abs)


@pytest.mark.parametrize("shape,wrap", [((4, 4), False), ((7, 3), True), ((7, 3), False), ((3, 3, 3), False)])
def test_fill_diagonal_equals_torch(shape, wrap):
    ours, theirs = _both(np.zeros(shape))
    ours.fill_diagonal_(2.0, wrap)
    theirs.fill_diagonal_(2.0, wrap)
    _close(ours, theirs)


def test_dtype_helpers_equal_torch():
    pairs = [(cr.int32, torch.int32), (cr.float16, torch.float16), (cr.uint8, torch.uint8), (cr.bool, torch.bool),
             (cr.float64, torch.float64), (cr.int8, torch.int8)]
    for a, ta in pairs:
        for b, tb in pairs:
            assert str(cr.promote_types(a, b)).split(".")[-1] == str(torch.promote_types(ta, tb)).split(".")[-1]
            assert cr.can_cast(a, b) == torch.can_cast(ta, tb)
    for value in (1, 1.5, True):
        for dtype in (cr.int32, cr.float16, cr.bool):
            tdtype = getattr(torch, str(dtype).split(".")[-1])
            ours = cr.result_type(cr.zeros(2, dtype=dtype), value)
            assert str(ours).split(".")[-1] == str(torch.result_type(torch.zeros(2, dtype=tdtype), value)).split(".")[-1]
    _close(cr.isin(cr.tensor([1, 2, 3, 4]), cr.tensor([2, 4]), invert=True),
           torch.isin(torch.tensor([1, 2, 3, 4]), torch.tensor([2, 4]), invert=True))


def test_global_switches_are_accepted_and_read_back():
    cr.use_deterministic_algorithms(True, warn_only=True)
    assert cr.are_deterministic_algorithms_enabled() and cr.is_deterministic_algorithms_warn_only_enabled()
    assert cr.get_deterministic_debug_mode() == 1
    cr.set_deterministic_debug_mode("default")
    assert not cr.are_deterministic_algorithms_enabled()
    cr.set_num_interop_threads(2)
    assert cr.get_num_interop_threads() == 2
    cr.set_anomaly_enabled(True, check_nan=False)
    try:
        assert cr.is_anomaly_enabled() and not cr.is_anomaly_check_nan_enabled()
    finally:
        cr.set_anomaly_enabled(False)
    assert not cr.is_anomaly_enabled()


@pytest.mark.parametrize("name,args", [("squeeze_", (0,)), ("unsqueeze_", (1,)), ("t_", ()), ("transpose_", (0, 2)),
                                       ("swapaxes_", (1, 2)), ("swapdims_", (0, 1))])
def test_inplace_view_forms_reshape_the_tensor_itself_and_carry_gradients(name, args):
    array = RNG.standard_normal((1, 3, 2)) if name != "t_" else RNG.standard_normal((3, 2))
    leaf_ours, leaf_theirs = _both(array, requires_grad=True)
    ours, theirs = leaf_ours * 2.0, leaf_theirs * 2.0
    assert getattr(ours, name)(*args) is ours
    getattr(theirs, name)(*args)
    _close(ours, theirs)
    weights = RNG.standard_normal(tuple(theirs.shape))
    (ours * cr.tensor(weights)).sum().backward()
    (theirs * torch.tensor(weights)).sum().backward()
    _close(leaf_ours.grad, leaf_theirs.grad)
    with pytest.raises(RuntimeError, match=f"{name}: a leaf tensor that requires grad"):
        getattr(leaf_ours, name)(*args)


def test_finfo_iinfo_size_and_dtype_class_match_torch():
    for name in ("float16", "float32", "float64"):
        ours, theirs = cr.finfo(getattr(cr, name)), torch.finfo(getattr(torch, name))
        for key in ("bits", "eps", "max", "min", "tiny", "smallest_normal", "resolution"):
            assert getattr(ours, key) == getattr(theirs, key), (name, key)
    for name in ("uint8", "int8", "int16", "int32", "int64"):
        ours, theirs = cr.iinfo(getattr(cr, name)), torch.iinfo(getattr(torch, name))
        assert (ours.bits, ours.min, ours.max) == (theirs.bits, theirs.min, theirs.max)
    with pytest.raises(TypeError, match="finfo: chainrule.int32 is not a floating point dtype"):
        cr.finfo(cr.int32)
    with pytest.raises(TypeError, match="iinfo: chainrule.bool is not supported"):
        cr.iinfo(cr.bool)
    assert cr.finfo().dtype == cr.get_default_dtype()
    assert cr.Size([2, 3, 4]).numel() == 24 and cr.Size([2, 3]) == (2, 3) and isinstance(cr.float64, cr.dtype)


def test_deprecated_and_shuffle_layers_equal_torch():
    import torch.nn.functional as TF

    array = RNG.standard_normal((1, 4, 3, 5))
    ours, theirs = _both(array)
    for name in ("upsample_nearest", "upsample_bilinear"):
        with pytest.warns(UserWarning):
            expected = getattr(TF, name)(theirs, scale_factor=2)
        _close(getattr(cr.nn.functional, name)(ours, scale_factor=2), expected)
    _close(cr.nn.ChannelShuffle(2)(ours), torch.nn.ChannelShuffle(2)(theirs))
    logits, target = RNG.standard_normal((2, 3, 2, 2)), RNG.integers(0, 3, (2, 2, 2))
    _close(cr.nn.NLLLoss2d()(cr.tensor(logits), cr.tensor(target)),
           torch.nn.NLLLoss()(torch.tensor(logits), torch.tensor(target)))
    with pytest.raises(RuntimeError, match="channel_shuffle: expects"):
        cr.nn.functional.channel_shuffle(ours, 3)


_NUMPY_SPELLINGS = ["max(axis=0)", "min(axis=1, keepdims=True)", "argmax(axis=0)", "cumsum(axis=0)",
                    "cumprod(axis=1)", "logsumexp(axis=0, keepdims=True)", "all(axis=0)", "any(axis=1, keepdims=True)",
                    "median(axis=0)", "count_nonzero(axis=0)", "softmax(axis=0)", "log_softmax(axis=1)",
                    "unsqueeze(axis=0)", "cummax(axis=0)", "sort(axis=0)", "argsort(axis=1)", "topk(2, axis=0)",
                    "quantile(0.5, axis=0)", "mode(axis=0)", "kthvalue(1, axis=1)", "diff(axis=0)",
                    "sum(axis=0, keepdims=True)", "std(axis=1)"]


@pytest.mark.parametrize("call", _NUMPY_SPELLINGS)
def test_numpy_spellings_are_accepted_as_torch_accepts_them(call):
    array = RNG.standard_normal((3, 4))
    ours, theirs = _both(array)
    result, expected = eval(f"ours.{call}"), eval(f"theirs.{call}")
    if isinstance(expected, tuple):  # named tuples of values and indices
        result, expected = tuple(result), tuple(expected)
    _close(result, expected)


def test_numpy_spellings_in_functions_and_both_spellings_refused():
    array = RNG.standard_normal((3, 4))
    ours, theirs = _both(array)
    _close(cr.cat([ours, ours], axis=1), torch.cat([theirs, theirs], axis=1))
    _close(cr.stack([ours, ours], axis=1), torch.stack([theirs, theirs], axis=1))
    _close(cr.cumsum(ours, axis=0), torch.cumsum(theirs, axis=0))
    _close(cr.std_mean(ours, axis=0), torch.std_mean(theirs, axis=0))
    _close(cr.var_mean(ours, axis=1, keepdims=True), torch.var_mean(theirs, axis=1, keepdims=True))
    with pytest.raises(TypeError, match="max\\(\\): got both 'dim' and its numpy spelling 'axis'"):
        ours.max(dim=0, axis=0)


# ----- nanmedian, histogram, gradient ---------------------------------------------------------------------

_NAN = float("nan")


@pytest.mark.parametrize("dim", [None, 0, 1, -1])
def test_nanmedian_equals_torch_with_gradients(dim):
    array = np.array([[_NAN, _NAN, _NAN], [1.0, _NAN, 3.0], [2.0, 1.0, 2.0], [5.0, 4.0, _NAN]])
    ours, theirs = _both(array, requires_grad=True)
    result = ours.nanmedian() if dim is None else ours.nanmedian(dim)
    expected = theirs.nanmedian() if dim is None else theirs.nanmedian(dim)
    if dim is not None:
        _close(result.indices, expected.indices)
        result, expected = result.values, expected.values
    np.testing.assert_array_equal(result.detach().cpu().numpy(), expected.detach().cpu().numpy())
    weights = RNG.standard_normal(tuple(expected.shape))
    (result * cr.tensor(weights)).sum().backward()
    (expected * torch.tensor(weights)).sum().backward()
    _close(ours.grad, theirs.grad)


def test_nanmedian_of_only_nans_and_keepdim():
    _close(cr.nanmedian(cr.tensor([_NAN, _NAN])).isnan(), torch.nanmedian(torch.tensor([_NAN, _NAN])).isnan())
    array = RNG.standard_normal((3, 4))
    _close(tuple(cr.tensor(array).nanmedian(0, keepdim=True)), tuple(torch.tensor(array).nanmedian(0, keepdim=True)))
    assert gradcheck(lambda v: v.nanmedian(1).values, (cr.tensor(array, requires_grad=True),))


@pytest.mark.parametrize("kwargs", [{"bins": 7}, {"bins": 5, "range": (0.2, 0.9), "density": True},
                                    {"bins": np.array([0.0, 0.3, 0.5, 1.0]), "weight": True}])
def test_histogram_equals_torch(kwargs):
    values = RNG.uniform(0, 1, 60)
    ours, theirs = dict(kwargs), dict(kwargs)
    if isinstance(kwargs["bins"], np.ndarray):
        ours["bins"], theirs["bins"] = cr.tensor(kwargs["bins"]), torch.tensor(kwargs["bins"])
    if kwargs.get("weight"):
        ours["weight"], theirs["weight"] = cr.tensor(values), torch.tensor(values)
    _close(tuple(cr.histogram(cr.tensor(values), **ours)), tuple(torch.histogram(torch.tensor(values), **theirs)))
    assert cr.tensor(values, dtype=cr.float32).histogram(3).hist.dtype == cr.float32
    with pytest.raises(RuntimeError, match="histogram: input must be a floating-point tensor"):
        cr.histogram(cr.tensor([1, 2]), 2)


@pytest.mark.parametrize("edge_order", [1, 2])
@pytest.mark.parametrize("spacing,dim", [(1, None), (2.5, None), ([0.5, 3.0], None), (0.5, 1), ([2.0], [0])])
def test_gradient_equals_torch_and_is_differentiable(edge_order, spacing, dim):
    array = RNG.standard_normal((4, 5))
    ours = cr.gradient(cr.tensor(array), spacing=spacing, dim=dim, edge_order=edge_order)
    _close(ours, torch.gradient(torch.tensor(array), spacing=spacing, dim=dim, edge_order=edge_order))
    x = cr.tensor(array, requires_grad=True)
    assert gradcheck(lambda v: cr.gradient(v, spacing=spacing, dim=dim, edge_order=edge_order)[0], (x,))


def test_gradient_errors_name_the_problem():
    with pytest.raises(RuntimeError, match="gradient: each dimension needs at least edge_order"):
        cr.gradient(cr.zeros(2, 5), edge_order=2)
    with pytest.raises(RuntimeError, match="coordinate tensors are not supported"):
        cr.gradient(cr.zeros(4), spacing=[cr.arange(4.0)])


# ----- recurrent cells, pooling with indices, and other torch.* functions -------------------------------------

@pytest.mark.parametrize("mode,gates", [("lstm_cell", 4), ("gru_cell", 3), ("rnn_tanh_cell", 1), ("rnn_relu_cell", 1)])
def test_torch_level_recurrent_cells_equal_torch_with_gradients(mode, gates):
    B, I, H = 3, 4, 5
    arrays = [RNG.standard_normal((B, I)), RNG.standard_normal((B, H)), RNG.standard_normal((B, H)),
              RNG.standard_normal((gates * H, I)) * 0.5, RNG.standard_normal((gates * H, H)) * 0.5,
              RNG.standard_normal(gates * H), RNG.standard_normal(gates * H)]
    ours = [cr.tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]

    def call(lib, t):
        hx = (t[1], t[2]) if mode == "lstm_cell" else t[1]
        out = getattr(lib, mode)(t[0], hx, *t[3:])
        return out if isinstance(out, tuple) else (out,)

    out_ours, out_theirs = call(cr, ours), call(torch, theirs)
    _close(out_ours, out_theirs)
    sum((o * (k + 1)).sum() for k, o in enumerate(out_ours)).backward()
    sum((o * (k + 1)).sum() for k, o in enumerate(out_theirs)).backward()
    for a, b in zip(ours, theirs):
        if b.grad is not None:
            _close(a.grad, b.grad)


@pytest.mark.parametrize("name,args", [("max_pool1d_with_indices", ((1, 2, 9), 3)),
                                       ("max_pool2d_with_indices", ((1, 2, 6, 6), 2)),
                                       ("max_pool3d_with_indices", ((1, 1, 4, 4, 4), 2)),
                                       ("adaptive_max_pool1d_with_indices", ((2, 3, 7), 3)),
                                       ("adaptive_max_pool2d_with_indices", ((1, 2, 7, 5), (3, 2))),
                                       ("adaptive_max_pool3d_with_indices", ((1, 1, 4, 5, 3), 2))])
def test_pooling_with_indices_equal_torch(name, args):
    import torch.nn.functional as TF

    shape, size = args
    array = RNG.standard_normal(shape)
    _close(getattr(cr.nn.functional, name)(cr.tensor(array), size), getattr(TF, name)(torch.tensor(array), size))
    if name == "max_pool1d_with_indices":
        _close(cr.max_pool1d_with_indices(cr.tensor(array), size), torch.max_pool1d_with_indices(torch.tensor(array), size))


def test_feature_dropout_binomial_empty_permuted_and_to_dlpack():
    x = cr.ones(4, 6, 3)
    dropped = cr.feature_dropout(x, 0.5, True)
    per_channel = dropped.cpu().numpy().reshape(4, 6, 3)
    assert set(np.unique(per_channel)) <= {0.0, 2.0} and (per_channel == per_channel[:, :, :1]).all()
    assert cr.feature_dropout(x, 0.5, False) is x
    cr.manual_seed(0)
    draws = cr.binomial(cr.full((20000,), 10.0), cr.full((20000,), 0.3))
    assert draws.dtype == cr.float32 and abs(draws.mean().item() - 3.0) < 0.05  # sd of the mean: 0.01
    ours = cr.empty_permuted((2, 3, 4), (0, 2, 1))
    theirs = torch.empty_permuted((2, 3, 4), (0, 2, 1))
    assert tuple(ours.shape) == (2, 3, 4) and ours.stride() == theirs.stride()
    t = cr.arange(4.0, device="cpu")  # host memory, which torch's CPU tensors take (test_dlpack.py: the device's)
    np.testing.assert_array_equal(torch.from_dlpack(cr.to_dlpack(t)).numpy(), [0.0, 1.0, 2.0, 3.0])


def test_inplace_matrix_products_equal_torch():
    for name, args in (("addmm_", ((3, 4), (4, 5))), ("addmv_", ((3, 4), (4,))), ("addr_", ((3,), (5,))),
                       ("baddbmm_", ((2, 3, 4), (2, 4, 5))), ("addbmm_", ((2, 3, 4), (2, 4, 5)))):
        base = RNG.standard_normal((2, 3, 5) if name == "baddbmm_" else ((3,) if name == "addmv_" else (3, 5)))
        operands = [RNG.standard_normal(s) for s in args]
        ours, theirs = _both(base)
        getattr(ours, name)(*[cr.tensor(o) for o in operands], beta=0.5, alpha=2.0)
        getattr(theirs, name)(*[torch.tensor(o) for o in operands], beta=0.5, alpha=2.0)
        _close(ours, theirs)


@pytest.mark.parametrize("options", [{"precision": 2, "sci_mode": False}, {"threshold": 10, "edgeitems": 2},
                                     {"profile": "short"}, {"profile": "full"}, {"sci_mode": True},
                                     {"linewidth": 40}])
def test_set_printoptions_prints_as_torch(options):
    arrays = [np.array([1.23456789, 2e-5, 300.0]), np.arange(40.0), np.linspace(-1, 1, 12).reshape(3, 4)]
    try:
        cr.set_printoptions(**options)
        torch.set_printoptions(**options)
        for array in arrays:  # on the CPU, as torch's tensors here are (test_tensor.py checks the device suffix)
            assert repr(cr.tensor(array, dtype=cr.float32, device="cpu")).replace("chainrule", "torch") == repr(
                torch.tensor(array, dtype=torch.float32))
    finally:
        cr.set_printoptions(profile="default")
        torch.set_printoptions(profile="default")
    with pytest.raises(ValueError, match="set_printoptions: profile must be one of"):
        cr.set_printoptions(profile="long")
