"""Reference workloads that time chainrule against PyTorch eager and against the machine's GEMM rate.

Run ``python bench/run.py --help``; the results go to ``BENCHMARKS.md`` at the repository root.
"""
