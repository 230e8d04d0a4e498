#!/usr/bin/env bash
# Compiles the --target=cuda libraries that the GPU tests and benchmarks
# load (python/tests/test_cuda_target.py, bench/train_step_cuda.py) into DIR,
# with the two runtime libraries they need, so that a GPU machine without
# LLVM can run them:  bash bench/cuda_artifacts.sh DIR
#   then there:  QSLAW_BUILD_DIR=DIR QSLAW_CUDA_ARTIFACTS=DIR/models \
#                LD_LIBRARY_PATH=DIR/lib pytest python/tests/test_cuda_target.py
set -euo pipefail
out=${1:?usage: cuda_artifacts.sh DIR}
root=$(cd "$(dirname "$0")/.." && pwd)
build=${QSLAW_BUILD_DIR:-$root/build}
mkdir -p "$out/lib" "$out/models"
cp "$build/lib/libqslaw_runtime.so" "$build/lib/libqslaw_cuda_runtime.so" "$out/lib/"
out=$(cd "$out" && pwd)
cd "$root"
PYTHONPATH="$root/python:$root/python/tests" QSLAW_BUILD_DIR="$build" "$root/.venv/bin/python" - "$out/models" <<'PY'
import sys, time
import test_cuda_target as t
for name in t.ARTIFACTS:
    start = time.time()
    t.compile_cuda(name, sys.argv[1])
    print(f"{name}: {time.time() - start:.1f} s", flush=True)
PY
