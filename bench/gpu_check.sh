#!/usr/bin/env bash
# The GPU checks of issue 21 in one run, for a lent GPU machine (no network; about 8 minutes): CuPy present
# (or installed from a carried wheel), the CUDA kernels against their numpy references, the suite's GPU
# selection on the cuda device (op oracles against PyTorch, gradcheck in float64, training equivalence,
# checkpoints, autocast and GradScaler), then bench/gpu.py. Everything it prints is saved under $OUT
# (at most 8 files come back): env.txt, kernels.log, ops.log, training.log, bench.log, gpu_bench.json,
# gpu_section.md. Run from the repository root:  OUT=/some/folder bash bench/gpu_check.sh
set -u
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PYTEST=("$PY" -m pytest -p no:cacheprovider -q -rfE --tb=short)
# pytest-xdist (workers) and pytest-timeout (a hung test) when the machine has them (the GPU image does)
"$PY" -c "import pytest_timeout" 2>/dev/null && PYTEST+=(--timeout 60)
workers() { "$PY" -c "import xdist" 2>/dev/null && echo "-n $1"; }
started=$(date +%s)

stage() {  # stage NAME SECONDS COMMAND...: run with a time limit, output to $OUT/NAME.log and the console
  local name=$1 limit=$2
  shift 2
  echo "=== $name (limit ${limit}s, at $(( $(date +%s) - started ))s) ==="
  timeout "$limit" "$@" 2>&1 | tee "$OUT/$name.log"
  local status=${PIPESTATUS[0]}
  echo "=== $name: exit $status$([ "$status" = 124 ] && echo ' (time limit)') ===" | tee -a "$OUT/$name.log"
}

# --- CuPy: the image's, else pip (a mirror, if any), else a wheel carried in shared/wheels or .whl ---------
if ! "$PY" -c "import cupy" 2>/dev/null; then
  timeout 90 "$PY" -m pip install -q --retries 0 --timeout 10 cupy-cuda12x \
    || "$PY" -m pip install -q --no-index --no-deps shared/wheels/cupy*.whl .whl/cupy*.whl 2>/dev/null \
    || echo "CuPy could not be installed: the checks below will skip or fail"
fi
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1
  "$PY" - <<'EOF'
import numpy, sys
print("python", sys.version.split()[0], "numpy", numpy.__version__)
try:
    import cupy
    print("cupy", cupy.__version__, "CUDA runtime", cupy.cuda.runtime.runtimeGetVersion())
except Exception as error:
    print("cupy: not usable:", error)
try:
    import torch
    print("torch", torch.__version__, "cuda", torch.cuda.is_available())
except Exception as error:
    print("torch: not usable:", error)
import chainrule as cr
print("chainrule cuda available:", cr.cuda.is_available())
EOF
} 2>&1 | tee "$OUT/env.txt"

# --- the CUDA kernels against numpy (CPU default device; the kernels' tests make their own GPU arrays) -------
stage kernels 90 "${PYTEST[@]}" tests/backend/test_gpu_kernels.py

# --- the suite on the cuda device: the op catalogue's oracles (float32 and float64) and gradcheck ------------
export CHAINRULE_TEST_DEVICE=cuda
stage ops 140 "${PYTEST[@]}" $(workers 12) tests/ops/test_oracle.py tests/autograd/test_autograd_gradcheck.py \
  tests/ops/test_conv_pool.py tests/ops/test_conv_transpose.py

# --- training equivalence with PyTorch, checkpoints across devices, autocast and GradScaler -----------------
stage training 90 "${PYTEST[@]}" $(workers 8) tests/optim/test_optim_models_oracle.py tests/test_device_training.py \
  tests/io/test_io_checkpoint.py tests/test_amp.py tests/backend/test_to_host.py
unset CHAINRULE_TEST_DEVICE

# --- the benchmark beside PyTorch eager on this GPU ---------------------------------------------------------
stage bench 140 "$PY" bench/gpu.py --json "$OUT/gpu_bench.json"
sed -n '/^## GPU/,$p' "$OUT/bench.log" | sed '/^=== bench/d' > "$OUT/gpu_section.md"
echo "gpu_check done in $(( $(date +%s) - started ))s; output in $OUT"
