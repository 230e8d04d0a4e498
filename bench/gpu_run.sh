#!/usr/bin/env bash
# A GPU session's work in a few device calls (each at most 10 minutes):
#
#   bash bench/gpu_run.sh ARCHIVE PART [OUT]
#
# ARCHIVE is DIR.tar.xz from bench/cuda_artifacts.sh, carried to the GPU
# machine (which has no LLVM to compile anything); it is unpacked once into
# /tmp/qslaw-art. PART:
#   tests    every GPU execution test (test_cuda_target.py: the generated
#            and hand-written kernel paths, the trainer; test_onnx_backend.py:
#            the 318 backend node libraries)
#   bench    the whole-step benchmarks: tiny LLaVA (bench/train_step_cuda.py)
#            and the LLaMA-7B block (bench/llama_block.py), each with the
#            generated and the hand-written kernels against PyTorch
#   kernels  the hand-written kernels alone: their tests and
#            bench/qmatmul_cuda.py (builds them with the machine's nvcc)
# OUT (default $OUT, else /tmp/qslaw-gpu) receives the JSON results and logs,
# and device.txt (GPU, driver). $PYTHON (default python3) needs numpy, torch,
# transformers and pytest (the GPU machine's own; nothing can be installed
# there).
set -euo pipefail
archive=${1:?usage: gpu_run.sh ARCHIVE tests|bench|kernels [OUT]}
part=${2:?usage: gpu_run.sh ARCHIVE tests|bench|kernels [OUT]}
out=${3:-${OUT:-/tmp/qslaw-gpu}}
py=${PYTHON:-python3}
root=$(cd "$(dirname "$0")/.." && pwd)
art=/tmp/qslaw-art
if [ ! -d "$art/models" ]; then
  mkdir -p "$art" && tar -xJf "$archive" -C "$art"
fi
mkdir -p "$out"
cd "$root"
export QSLAW_BUILD_DIR=$art
export LD_LIBRARY_PATH=$art/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export PYTHONPATH=$root/python:$root/python/tests${PYTHONPATH:+:$PYTHONPATH}
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
  date -u +%Y-%m-%dT%H:%M:%SZ; } > "$out/device.txt"
case $part in
  tests)
    QSLAW_CUDA_ARTIFACTS=$art/models "$py" -m pytest -q -rs \
      python/tests/test_cuda_target.py python/tests/test_onnx_backend.py \
      --junitxml="$out/gpu_tests.xml" > "$out/gpu_tests.log" 2>&1 || true
    tail -40 "$out/gpu_tests.log" ;;
  bench)
    "$py" bench/train_step_cuda.py --artifacts "$art/models" \
      --out "$out/train_step_cuda.json" > "$out/train_step_cuda.log" 2>&1 || true
    tail -5 "$out/train_step_cuda.log"
    "$py" bench/llama_block.py bench --artifacts "$art/block" \
      --json "$out/llama_block.json" > "$out/llama_block.log" 2>&1 || true
    tail -40 "$out/llama_block.log"
    # the hand-kernel block again, AUTO allowed to pick the wgmma kernels
    QSLAW_W4_AUTO_WGMMA=1 "$py" bench/llama_block.py bench \
      --artifacts "$art/block" --variants hand \
      --json "$out/llama_block_wgmma.json" > "$out/llama_block_wgmma.log" 2>&1 || true
    tail -20 "$out/llama_block_wgmma.log" ;;
  kernels)
    "$py" -m pytest -q python/tests/test_cuda_kernels.py > "$out/kernel_tests.log" 2>&1 || true
    tail -5 "$out/kernel_tests.log"
    "$py" bench/qmatmul_cuda.py --out "$out/qmatmul_cuda.json" > "$out/qmatmul_cuda.log" 2>&1 || true
    tail -30 "$out/qmatmul_cuda.log" ;;
  *) echo "gpu_run.sh: unknown part '$part' (tests, bench, kernels)" >&2; exit 2 ;;
esac
