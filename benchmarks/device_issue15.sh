#!/usr/bin/env bash
# The GPU checks of issue 15, item 4, as one prepared run for a lent device (docs/performance.md).
#
#   bash benchmarks/device_issue15.sh          # from the repository root, on a machine with CUDA
#
# Writes into $OUT (the device tool's folder) or, without it, benchmarks/results/:
#   gpu_env.txt          GPU, driver, torch / jax / triton versions
#   gpu_bitcheck.json    benchmarks/gpu_check.py: torch and JAX executors' bits against the reference
#   gpu_bench.json       weightinit bench --device cuda: torch executor against torch's own RNG
#   gpu_tests.log        the CUDA tests of the torch executor
# plus a .log beside each JSON.  Each step has its own time limit (90 + 200 + 170 + 60 s: under the
# device tool's 10 minutes per command); a step cut off still leaves the logs of the others.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
PY=${PYTHON:-python3}

# The package with its compiled core (the device image has setuptools, numpy and a C compiler; it
# cannot download, so no build isolation and no dependencies).  Without the core the GPU checks
# still run: they compare against the NumPy reference.
timeout 90 "$PY" -m pip install -q --no-deps --no-build-isolation --no-index -e . >"$OUT/install.log" 2>&1 \
  || export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
"$PY" -c 'import weightinit.executors._core_ext' 2>/dev/null || export WEIGHTINIT_NO_EXTENSION=1  # the tests then allow it

{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  "$PY" -c 'import torch, jax, triton; print("torch", torch.__version__, "| jax", jax.__version__, jax.devices(), "| triton", triton.__version__)'
} >"$OUT/gpu_env.txt" 2>&1
cat "$OUT/gpu_env.txt"

echo "== bits: benchmarks/gpu_check.py"
timeout 200 "$PY" benchmarks/gpu_check.py --json "$OUT/gpu_bitcheck.json" 2>&1 | tee "$OUT/gpu_bitcheck.log"

echo "== speed: weightinit bench --device cuda"
timeout 170 "$PY" -m weightinit.cli.main bench --device cuda --sizes 1e4,1e6,1e8 --json "$OUT/gpu_bench.json" 2>&1 \
  | tee "$OUT/gpu_bench.log"

echo "== CUDA tests of the torch executor"
timeout 60 "$PY" -m pytest -q -p no:xdist -p no:cacheprovider tests/executors/test_torch_executor.py -k cuda 2>&1 \
  | tee "$OUT/gpu_tests.log"
