"""A pytest plugin that runs the suite's cuda device through the CUDA kernels, emulated on the CPU.

With ``CHAINRULE_TEST_DEVICE=cuda`` on a machine without a GPU the suite runs on the stand-in device, whose
arrays take the numpy formulas. With this plugin the stand-in's arrays count as GPU arrays instead, so every
backend function with a CUDA kernel (chainrule.backend.gpu_kernels) runs that kernel, compiled for the CPU
by cuda_emulator.py, and the op tests check the kernels against PyTorch through the ops that use them:

    CHAINRULE_TEST_DEVICE=cuda python -m pytest -p tests.backend.emulated_gpu tests/ops/test_conv_pool.py

The scatter-add of rows (cupyx.scatter_add on a GPU) is not emulated: numpy's ``add.at`` stands in for it.
At the end the plugin prints how many times each kernel was launched. Needs g++ (C++20); slow (each block of
a launch is OS threads), so meant for targeted runs rather than the whole suite.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cuda_emulator  # noqa: E402

from chainrule.backend import gpu, gpu_kernels, standin  # noqa: E402

LAUNCHES: dict[str, int] = {}


def _kernel(name: str, dtype):
    LAUNCHES[name] = LAUNCHES.get(name, 0) + 1
    return cuda_emulator.kernel(name, dtype)


def _add_rows_at(values, index, rows: int):
    out = standin.namespace.zeros((rows, values.shape[1]), values.dtype)
    standin.namespace.add.at(out, index, values)
    return out


def pytest_configure(config):
    reason = cuda_emulator.available()
    if reason:
        raise pytest.UsageError(f"emulated_gpu: {reason}")
    if gpu.install() is not None:
        raise pytest.UsageError("emulated_gpu: a real GPU is here; run the suite on it instead")
    gpu._ARRAY_TYPE[0] = standin.StandInArray
    gpu_kernels.cupy_module = lambda: standin.namespace
    gpu_kernels._kernel = _kernel
    gpu_kernels.add_rows_at = _add_rows_at


def pytest_terminal_summary(terminalreporter):
    launches = ", ".join(f"{name} {count}" for name, count in sorted(LAUNCHES.items())) or "none"
    terminalreporter.write_line(f"emulated CUDA kernel launches: {launches}")
