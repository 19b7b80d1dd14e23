"""Run chainrule's CUDA kernels (chainrule.backend.gpu_kernels.SOURCE) on the CPU, for machines without a GPU.

The CUDA source is compiled as C++ with a small header that gives it what it uses of CUDA: ``threadIdx`` /
``blockIdx`` (per thread), ``blockDim`` / ``gridDim``, ``__syncthreads`` (a barrier of the block's threads),
``__shfl_xor_sync`` (an exchange through memory between a warp's 32 threads, with a barrier per warp),
``__shared__`` memory (one block runs at a time) and ``__longlong_as_double``. Each block of a launch runs as
``blockDim`` OS threads. The grid is clamped to 2 blocks and a block to 64 threads: every kernel loops over
its rows or elements in strides of the grid and the block, so the results are the same and the loops and the
two-warp reductions are exercised. What this cannot check: CUDA's own math functions (the host's libm
computes erf, exp, tanh), the memory model beyond barriers, and launch limits. It is a test harness only.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from chainrule.backend import gpu_kernels

HEADER = r"""
#include <barrier>
#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <thread>
#include <vector>
using std::erf; using std::exp; using std::sqrt; using std::tanh;

struct Index { unsigned x = 0, y = 0, z = 0; };
thread_local Index threadIdx, blockIdx;
Index blockDim, gridDim;

static std::barrier<>* block_barrier;
static std::vector<std::unique_ptr<std::barrier<>>> warp_barriers;
static double exchange[1024];

#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static

inline void __syncthreads() { block_barrier->arrive_and_wait(); }

template <typename V> V __shfl_xor_sync(unsigned, V v, int offset) {
    std::barrier<>& warp = *warp_barriers[threadIdx.x / 32];
    warp.arrive_and_wait();  // the warp's previous exchange is read
    exchange[threadIdx.x] = (double)v;
    warp.arrive_and_wait();
    return (V)exchange[threadIdx.x ^ offset];
}

inline double __longlong_as_double(unsigned long long bits) {
    double d;
    std::memcpy(&d, &bits, sizeof d);
    return d;
}

static void run_grid(unsigned grid, unsigned block, const std::function<void()>& kernel) {
    grid = grid < 2 ? grid : 2;
    block = block < 64 ? block : 64;
    gridDim.x = grid;
    blockDim.x = block;
    for (unsigned b = 0; b < grid; ++b) {
        std::barrier<> barrier(block);
        block_barrier = &barrier;
        warp_barriers.clear();
        for (unsigned w = 0; w < (block + 31) / 32; ++w) warp_barriers.emplace_back(new std::barrier<>(32));
        std::vector<std::thread> threads;
        for (unsigned t = 0; t < block; ++t)
            threads.emplace_back([&, t, b] { threadIdx.x = t; blockIdx.x = b; kernel(); });
        for (auto& thread : threads) thread.join();
    }
}
"""

_C_TYPES = {"long long": ctypes.c_longlong, "int": ctypes.c_int}


def available() -> str | None:
    """None when the emulator can be built here, else why not."""
    return None if shutil.which("g++") else "g++ is not installed (the CUDA kernels are emulated as C++20)"


@functools.cache
def _library(dtype_name: str):
    """The kernels of ``dtype_name`` compiled for the CPU, each with a ``launch_<name>(grid, block, ...)``; the
    shared library is kept in the temporary folder under the source's hash, for the next process."""
    source = HEADER + gpu_kernels.source_for(dtype_name)
    expanded = subprocess.run(["g++", "-std=c++20", "-E", "-P", "-x", "c++", "-"], input=source, text=True,
                              capture_output=True, check=True).stdout
    kernels = re.findall(r'extern "C" void (\w+)\(([^)]*)\)', expanded)
    launchers, signatures = [], {}
    for name, params in kernels:
        parameters = [p.strip() for p in params.split(",")]
        names = [p.split()[-1].lstrip("*") for p in parameters]
        launchers.append(f'extern "C" void launch_{name}(unsigned grid, unsigned block, {", ".join(parameters)}) '
                         f'{{ run_grid(grid, block, [=] {{ {name}({", ".join(names)}); }}); }}')
        signatures[name] = [_ctype(p, dtype_name) for p in parameters]
    program = source + "\n" + "\n".join(launchers) + "\n"
    built = Path(tempfile.gettempdir()) / f"chainrule-cuda-emulator-{hashlib.sha256(program.encode()).hexdigest()[:16]}.so"
    if not built.exists():
        with tempfile.TemporaryDirectory(prefix="chainrule-cuda-emulator-") as folder:
            path = Path(folder) / "kernels.cpp"
            path.write_text(program)
            subprocess.run(["g++", "-std=c++20", "-O1", "-shared", "-fPIC", "-pthread", "-w", str(path), "-o",
                            str(path.with_suffix(".so"))], check=True, capture_output=True, text=True)
            os.replace(path.with_suffix(".so"), built)  # whole, even with another process building it too
    library = ctypes.CDLL(str(built))
    for name, types in signatures.items():
        getattr(library, f"launch_{name}").argtypes = [ctypes.c_uint, ctypes.c_uint, *types]
    return library, signatures


def _ctype(parameter: str, dtype_name: str):
    if "*" in parameter:
        return ctypes.c_void_p
    kind = parameter.rsplit(None, 1)[0]
    if kind == "ACC":
        return ctypes.c_float if dtype_name == "float32" else ctypes.c_double
    return _C_TYPES[kind]


def kernel(name: str, dtype):
    """A stand-in for ``gpu_kernels._kernel``: called as CuPy's RawKernel is, ``(grid, block, args)``, with
    numpy (or stand-in) arrays for the pointers."""
    library, _ = _library(np.dtype(dtype).name)
    launch = getattr(library, f"launch_{name}")

    def call(grid, block, args):
        launch(grid[0], block[0], *(a.ctypes.data if isinstance(a, np.ndarray) else a.item() for a in args))
    return call
