"""cr.compile(fuse="exact" | "fast"): elementwise runs fused into generated numba loops. fuse="exact" must stay
bit for bit eager's; fuse="fast" within 1e-5 of it over 50 steps; runs must break where another
instruction reads an intermediate or memory overlaps; kernels are reused by signature."""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pytest

import chainrule as cr
from chainrule.backend import kernels
from chainrule.compiler import compile, fusion
from chainrule.compiler.tracer import Instr, root
from tests.compile.helpers import assert_same_history, run, standard_step
from tests.compile.test_equality import STEPS, _workload_case
from tests.compile.test_op_catalogue import _params as _catalogue
from tests.compile.test_op_catalogue import check_op_every_call

pytestmark = pytest.mark.skipif(not fusion.available(), reason="fusion needs numba (the 'fast' extra)")

FAST_RTOL = 1e-5  # the tolerance for fuse="fast", against each array's largest magnitude


def _program(f):
    (variant,) = [v for v in f.variants.values() if v.program is not None]
    return variant.program


def _fused(f) -> list:
    return [i for i in _program(f).instrs if i.kind == "fused"]


def _fused_ops(f) -> list[str]:
    return [part.split(" = ")[1].split("(")[0] for i in _fused(f) for part in i.fn.parts[:-1]]


@pytest.mark.parametrize("name", ["overhead", "mlp", "cnn", "gpt"])
def test_workload_fuse_exact_bitwise_equal_to_eager(name, buffer_plans):
    build, batches = _workload_case(name)
    eager, _ = run(build, batches, standard_step, compiled=False)
    compiled, f = run(build, batches, standard_step, compiled=True, fuse="exact")
    assert_same_history(eager, compiled)
    assert sum(v.replays for v in f.variants.values()) >= STEPS - 5, f.explain()
    if name != "cnn":  # the cnn's elementwise work is in backend kernels: no run of two ufunc calls
        assert _fused(f), f.explain()


def _close(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if a.dtype.kind != "f":
        return a.tobytes() == b.tobytes()
    scale = float(np.max(np.abs(a), initial=0.0))
    return a.shape == b.shape and bool(np.allclose(b, a, rtol=FAST_RTOL, atol=FAST_RTOL * scale))


def _key_bias_slices(build) -> tuple[dict, int]:
    """In the gpt: state index -> the slice of each attention's qkv bias that is the key bias. Its gradient
    is zero in exact arithmetic (softmax ignores a constant added to every key's score), so what the
    backward computes there is rounding noise (1e-10 against 1e-3 for the query bias), and AdamW turns
    noise into steps of about lr whatever its size: any change of rounding anywhere moves them. Also
    returns where the gradients start in helpers.state_of's list."""
    model, _opt, _extra = build()
    slices = {i: slice(p.shape[0] // 3, 2 * p.shape[0] // 3) for i, (name, p) in enumerate(model.named_parameters())
              if name.endswith("qkv.bias")}
    return slices, len(list(model.parameters())) + len(list(model.buffers()))


@pytest.mark.parametrize("name", ["overhead", "mlp", "cnn", "gpt"])
def test_workload_fuse_fast_within_tolerance_for_50_steps(name, buffer_plans):
    build, batches = _workload_case(name)
    eager, _ = run(build, batches, standard_step, compiled=False)
    compiled, f = run(build, batches, standard_step, compiled=True, fuse="fast")
    noise, grads_at = _key_bias_slices(build) if name == "gpt" else ({}, 0)
    for step, ((le, se), (lc, sc)) in enumerate(zip(eager, compiled)):
        assert _close(le, lc), f"loss at step {step}: {le} vs {lc}"
        for i, (a, b) in enumerate(zip(se, sc)):
            if i in noise:
                a, b = a.copy(), b.copy()
                a[noise[i]] = b[noise[i]] = 0.0
            assert _close(a, b), f"state array {i} at step {step}"
    assert sum(v.replays for v in f.variants.values()) >= STEPS - 5, f.explain()
    if name == "overhead":  # tanh joins the run: forward and backward are one kernel each
        assert len(_fused(f)) == 2 and "tanh" in _fused_ops(f), f.explain()
    for i, key in noise.items():  # the slices left out carry gradients of pure rounding noise
        grad = eager[-1][1][grads_at + i]
        assert np.abs(grad[key]).max() < 1e-5 * np.abs(grad).max()


def _elementwise_step(x, b, c):
    y = cr.maximum(x * 0.1 + b, c)  # a trailing (bias) and a leading (column) broadcast
    z = cr.minimum(y, x) / c
    w = cr.where(z > 0, z.sqrt(), -z)
    return (w - 1.5).abs() * x


def _special_inputs(seed: int, dtype=np.float32):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((5, 7)).astype(dtype)
    x.flat[:8] = [np.nan, -0.0, 0.0, np.inf, -np.inf, 1e-40, -1e-40, 3.0]  # NaNs, signed zeros, subnormals
    b = rng.standard_normal(7).astype(dtype)
    b[:3] = [-0.0, np.nan, 0.0]
    c = rng.standard_normal((5, 1)).astype(dtype)
    c[:2] = [[0.0], [-0.0]]  # division by zero
    return cr.tensor(x), cr.tensor(b), cr.tensor(c)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exact_run_with_broadcasts_nans_and_signed_zeros_is_bitwise_eager(dtype):
    f = compile(_elementwise_step, fuse="exact")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy's invalid-value warnings in eager
        for seed in range(6):
            args = _special_inputs(seed, dtype)
            got, want = f(*args), _elementwise_step(*args)
            assert got._data.dtype == want._data.dtype
            assert got._data.tobytes() == want._data.tobytes(), seed
    assert sum(v.replays for v in f.variants.values()) >= 3
    (fused,) = _program(f).instrs  # all 12 calls in one kernel
    assert fused.kind == "fused" and fused.name == "12 ops"


def test_maximum_and_minimum_follow_numpys_nan_and_signed_zero_rule():
    """numpy: a NaN first argument wins, then a NaN second one; of equal values (+0, -0) the second."""
    values = np.array([np.nan, -0.0, 0.0, 1.0, -1.0, np.inf], np.float32)
    a, b = (cr.tensor(v.copy()) for v in np.meshgrid(values, values))

    def both(a, b):
        return cr.maximum(a * 1.0, b * 1.0) + 0.0, cr.minimum(a * 1.0, b * 1.0) + 0.0

    f = compile(both, fuse="exact")
    for _ in range(4):
        got = f(a, b)
    for g, w in zip(got, both(a, b)):
        assert g._data.tobytes() == w._data.tobytes()
    assert {"maximum", "minimum"} <= set(_fused_ops(f))


def test_an_intermediate_read_outside_the_run_is_stored_and_others_are_not():
    w = cr.tensor(np.linspace(0.5, 1.5, 16, dtype=np.float32))

    def step(x):
        h = x * w
        kept = h + 1.0  # read again after the reduction: must be stored by the first run
        dropped = kept * kept  # only the run reads it: no store
        total = (dropped - 2.0).sum()
        return total, kept * 3.0 + total

    x = cr.tensor(np.linspace(-1, 1, 16, dtype=np.float32))
    f = compile(step, fuse="exact")
    for _ in range(4):
        got = f(x)
    for g, e in zip(got, step(x)):
        assert g._data.tobytes() == e._data.tobytes()
    first, second = _fused(f)
    assert first.fn.parts[-1].count("=") == 2, first.fn.parts  # two stores: `kept` and the summed array
    kinds = [i.kind for i in _program(f).instrs]
    assert kinds.index("fused") < kinds.index("call")  # the sum splits the two runs
    text = f.explain()
    assert "fused_exact[4 ops]" in text and "test_fusion.py" in text and "| v" in text


def test_fused_operands_made_per_replay_get_their_addresses_at_each_call():
    """At PER_REPLAY_BYTES or more, what a fused kernel reads and writes is made each replay, as in an
    unfused program (the kernel's block gets this replay's addresses before each call): every step stays
    bitwise eager's, and the program keeps no buffer that large between replays."""
    from chainrule.compiler import program as program_module

    nn = cr.nn

    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(32, 64)

        def forward(self, x):
            h = self.linear(x)
            return (h * 0.5 + 0.25).maximum(h - 1.0)  # a fusable run over (batch, 64) results

    def build():
        model = Scaled()
        return model, cr.optim.SGD(model.parameters(), lr=0.05), {"loss": lambda out, y: ((out - y) * (out - y)).mean()}

    rng = np.random.default_rng(3)
    batches = [(cr.tensor(rng.standard_normal((128, 32)).astype(np.float32)),
                cr.tensor(rng.standard_normal((128, 64)).astype(np.float32))) for _ in range(8)]
    eager, _ = run(build, batches, standard_step, compiled=False)
    compiled, f = run(build, batches, standard_step, compiled=True, fuse="exact")
    assert_same_history(eager, compiled)
    program = _program(f)
    assert sum(v.replays for v in f.variants.values()) >= len(batches) - 3, f.explain()
    late = [fn for fn, _ in program.steps if type(fn) is program_module._SlottedFused]
    assert late and all(fn.late for fn in late), f.explain()
    assert 128 * 64 * 4 >= program_module.PER_REPLAY_BYTES
    assert all(b.nbytes < program_module.PER_REPLAY_BYTES for b in program.internal), f.explain()


def _ufunc(fn, *args, out):
    arrays = [a for a in args if isinstance(a, np.ndarray)]
    return Instr("ufunc", fn, args, {"out": (out,)}, None, tuple(root(a) for a in arrays), (root(out),), fn.__name__)


def _replay(instrs):
    for instr in instrs:
        if instr.kind == "fused":
            fn, args = instr.fn.step(instr.args)
        else:
            fn, args = functools.partial(instr.fn, **instr.kwargs), instr.args
        fn(*args)


@pytest.mark.parametrize("shift", [0, 1])
def test_a_write_over_memory_another_view_of_the_run_reads_breaks_the_run(shift):
    """``b = a + 1`` with b one element past a (shift 1): element i of b is element i+1 of a, which the
    next iteration of a fused loop would read after the write, so that call stays numpy's and the run
    breaks before and after it. With b a separate buffer (shift 0) all four calls fuse."""
    def program():
        base = np.linspace(-1, 1, 13, dtype=np.float32)
        a = base[:12]
        b = base[1:13] if shift else np.empty(12, np.float32)
        instrs = [_ufunc(np.multiply, a, 2.0, out=a), _ufunc(np.add, a, 1.0, out=b),
                  _ufunc(np.multiply, b, b, out=b), _ufunc(np.add, b, 0.5, out=b)]
        return base, b, instrs

    base, b, instrs = program()
    _replay(instrs)
    want = (base.copy(), b.copy())
    base, b, instrs = program()
    created = {id(root(x)) for x in (base, b)}
    fused = fusion.fuse(instrs, created, {id(root(base)), id(root(b))}, "exact")
    assert [i.kind for i in fused] == (["ufunc", "ufunc", "fused"] if shift else ["fused"])
    _replay(fused)
    assert base.tobytes() == want[0].tobytes() and b.tobytes() == want[1].tobytes()


def test_python_numbers_stay_weak_and_numpy_float64_numbers_promote_as_in_numpy():
    """float32 ``x * 0.1`` runs in float32 (a Python float is weak); ``x * np.float64(0.1)`` into a float32
    out runs in float64 and rounds once, as numpy does; a float64 array operand promotes the same way."""
    x = np.random.default_rng(0).standard_normal(37).astype(np.float32)
    y = np.random.default_rng(1).standard_normal(37)  # float64

    def program():
        out, out2 = np.empty(37, np.float32), np.empty(37, np.float32)
        return out, out2, [_ufunc(np.multiply, x, 0.1, out=out), _ufunc(np.add, out, 1e-3, out=out),
                           _ufunc(np.multiply, out, np.float64(0.1), out=out2), _ufunc(np.add, out2, y, out=out2),
                           _ufunc(np.divide, out2, 3, out=out2)]

    out, out2, instrs = program()
    _replay(instrs)
    want = out.copy(), out2.copy()
    out, out2, instrs = program()
    (fused,) = fusion.fuse(instrs, {id(out), id(out2)}, {id(out), id(out2)}, "exact")
    _replay([fused])
    assert out.tobytes() == want[0].tobytes() and out2.tobytes() == want[1].tobytes()
    assert "np.float32(0.1)" in fused.fn.source and "np.float64(0.1)" in fused.fn.source


@pytest.mark.parametrize("shape, fused", [((4,), True), ((3, 4), True), ((3, 1), True), ((1, 4), True),
                                          ((1, 1), True), ((2, 1, 1), True), ((1, 3, 1), False), ((2, 1, 4), False)])
def test_broadcast_operands_join_only_where_one_flat_index_reads_them(shape, fused):
    """Against a (2, 3, 4) run: a trailing block (i % period), a leading block (i // divisor) or a scalar
    joins; an operand broadcast on both sides of its own axes would need a strided index and breaks the run."""
    full = (2, 3, 4) if len(shape) == 3 else (3, 4)
    x = np.random.default_rng(0).standard_normal(full).astype(np.float32)
    b = np.random.default_rng(1).standard_normal(shape).astype(np.float32)

    def program():
        out = np.empty(full, np.float32)
        return out, [_ufunc(np.multiply, x, b, out=out), _ufunc(np.add, out, b, out=out)]

    out, instrs = program()
    _replay(instrs)
    want = out.copy()
    out, instrs = program()
    result = fusion.fuse(instrs, {id(out)}, {id(out)}, "exact")
    assert [i.kind for i in result] == (["fused"] if fused else ["ufunc", "ufunc"])
    _replay(result)
    assert out.tobytes() == want.tobytes()


def test_a_run_over_no_elements_fuses_and_touches_nothing():
    x, b = np.ones((0, 4), np.float32), np.ones(4, np.float32)
    out = np.empty((0, 4), np.float32)
    instrs = [_ufunc(np.multiply, x, b, out=out), _ufunc(np.add, out, 1.0, out=out)]
    (fused,) = fusion.fuse(instrs, {id(out)}, {id(out)}, "exact")
    _replay([fused])
    assert out.shape == (0, 4)


def test_exact_does_not_fuse_transcendentals_and_fast_does():
    def step(x):
        return cr.tanh(x * 0.5 + 0.25).exp() * 2.0 - 1.0

    x = cr.tensor(np.linspace(-2, 2, 40, dtype=np.float32))
    exact, fast = compile(step, fuse="exact"), compile(step, fuse="fast")
    for _ in range(4):
        e, a = exact(x), fast(x)
    want = step(x)._data
    assert e._data.tobytes() == want.tobytes()
    np.testing.assert_allclose(a._data, want, rtol=1e-6, atol=4 * np.finfo(np.float32).eps)  # a few ulps of ~1
    assert not {"tanh", "exp"} & set(_fused_ops(exact))
    assert {"tanh", "exp"} <= set(_fused_ops(fast)) and len(_fused(fast)) == 1


def _heavy_step(x, b, c, d):
    y = cr.tanh(x * b + c)  # a trailing (bias) and a leading (column) broadcast
    w = d * 3.0 - d  # float64 in the same run, returned: stored in float64
    mask = y > 0.1  # bool, returned: stored
    z = cr.where(mask, y.exp(), y * 0.5) * 2.0 - 1.0
    return z, mask, w


def test_a_heavy_run_is_generated_in_blocks_and_equals_the_plain_loop_bit_for_bit(monkeypatch):
    """A fast run with chainrule's float32 tanh and exp is generated as a blocked loop through scratch blocks
    on the stack (vectorised); it must compute exactly what the plain loop does, over sizes that are not a
    multiple of the block, with broadcast operands and float32, bool and float64 stores."""
    rng = np.random.default_rng(0)
    inputs = {}
    for rows in (1, 23, 40):  # 7, 161 and 280 elements: one partial block, several blocks and a remainder
        inputs[rows] = (rng.standard_normal((rows, 7)).astype(np.float32), rng.standard_normal(7).astype(np.float32),
                        rng.standard_normal((rows, 1)).astype(np.float32), rng.standard_normal((rows, 7)))
    results = {}
    for blocked in (True, False):
        if not blocked:
            monkeypatch.setattr(fusion, "_VECTORISABLE_HEAVY", ())
        f = compile(_heavy_step, fuse="fast")
        for rows, arrays in inputs.items():
            args = tuple(cr.tensor(a) for a in arrays)
            for _ in range(4):
                got = f(*args)
            want = _heavy_step(*args)
            for g, w in zip(got, want):
                assert g._data.dtype == w._data.dtype
                np.testing.assert_allclose(g._data, w._data, rtol=1e-6, atol=1e-6)
            results.setdefault(rows, []).append([g._data.tobytes() for g in got])
        sources = [v.program.instrs for v in f.variants.values() if v.program is not None]
        kernels = [i.fn.source for instrs in sources for i in instrs if i.kind == "fused"]
        assert len(kernels) == 3 and all(("scratch_f32()" in k and "scratch_bool()" in k and "scratch_f64()" in k)
                                         == blocked for k in kernels)
    for rows, (blocked, plain) in results.items():
        assert blocked == plain, rows


def test_no_fusion_when_the_compiled_kernels_are_switched_off():
    """``CHAINRULE_KERNELS=numpy`` (set_enabled(False)): fuse= warns once and the program replays unfused."""
    kernels.set_enabled(False)
    try:
        f = compile(_elementwise_step, fuse="exact")
        args = _special_inputs(0)
        with pytest.warns(RuntimeWarning, match="fuse='exact' needs numba"):
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", ".*encountered in", RuntimeWarning)  # numpy on the special values
                for _ in range(4):
                    got = f(*args)
        assert not _fused(f) and _program(f).fused == 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            assert got._data.tobytes() == _elementwise_step(*args)._data.tobytes()
    finally:
        kernels.set_enabled(True)


def test_kernels_are_reused_by_signature_whatever_the_size():
    def step(x, b):
        return (x * b + 0.5) * x

    made = []
    for n in (8, 40, 40):
        x = cr.tensor(np.linspace(-1, 1, n, dtype=np.float32))
        b = cr.tensor(np.linspace(0, 1, n, dtype=np.float32))
        f = compile(step, fuse="exact")
        for _ in range(4):
            got = f(x, b)
        assert got._data.tobytes() == step(x, b)._data.tobytes()
        (fused,) = _fused(f)
        made.append(fused.fn)
    assert made[0].kernel is made[1].kernel is made[2].kernel  # one compiled loop for the three programs
    assert made[0].source == made[2].source and made[0] is not made[2]
    assert fusion._KERNELS[made[0].source] is made[0].kernel


def test_fuse_option_is_checked():
    with pytest.raises(ValueError, match="fuse"):
        compile(lambda x: x, fuse=True)


@pytest.mark.parametrize("case, shapes, params", _catalogue())
def test_op_catalogue_under_fuse_exact_equals_eager_every_call(case, shapes, params, buffer_plans):
    """Every differentiable op's forward and backward, fused where runs form, bit for bit eager's (this is
    what found the zero-size runs failing)."""
    check_op_every_call(case, shapes, params, fuse="exact")
