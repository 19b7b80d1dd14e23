"""bench/compile.py runs (small shapes, one round) and reports every column it promises."""

from bench import compile as bench_compile


def test_bench_compile_quick(capsys):
    bench_compile.main(["overhead", "mlp", "--quick", "--no-torch", "--rounds", "1", "--steps", "1"])
    out = capsys.readouterr().out
    for text in ("## overhead", "## mlp", "compiled / chainrule eager", "us/op", "its 8 GEMMs alone",
                 "compile cost, calls 1-3", "memory: eager step peak", "variant replay", "compiled fuse=exact",
                 "compiled fuse=fast", "fuse=fast: "):
        assert text in out, text
