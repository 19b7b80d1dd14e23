"""bench/compile.py runs (small shapes, one round) and reports every column it promises."""

import re

import pytest

from bench import compile as bench_compile


def test_bench_compile_quick(capsys):
    bench_compile.main(["overhead", "mlp", "--quick", "--no-torch", "--no-jax", "--rounds", "1", "--steps", "1"])
    out = capsys.readouterr().out
    for text in ("## overhead", "## mlp", "compiled / chainrule eager", "us/op", "its 8 GEMMs alone",
                 "compile cost, calls 1-3", "memory (model, data, optimizer state included): eager held",
                 "x eager's peak)", "variant replay", "compiled fuse=exact", "compiled fuse=fast", "fuse=fast: "):
        assert text in out, text
    assert "jax jit" not in out


def test_bench_compile_jax_twins_do_the_same_work(capsys):
    """Where JAX is installed, each twin is timed beside the compiled step and starts from the same loss."""
    pytest.importorskip("jax")
    bench_compile.main(["overhead", "mlp", "cnn", "--quick", "--no-torch", "--no-memory", "--fuse", "--rounds", "1",
                        "--steps", "1"])
    out = capsys.readouterr().out
    differences = re.findall(r"jax jit: compiled / jax jit [\d.]+x; its jit took \d+ ms; step-1 loss \S+ vs "
                             r"chainrule's \S+ \(rel diff (\S+)\)", out)
    assert len(differences) == 3, out
    assert all(float(d) < 1e-5 for d in differences), differences  # the same weights, data and arithmetic
