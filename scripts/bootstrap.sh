#!/usr/bin/env bash
# Installs what qslaw needs on a fresh Debian 12 machine (idempotent):
# LLVM/MLIR 22 (with libomp, which --parallel code links), ONNX/protobuf, GoogleTest/Benchmark, ninja, oneDNN (the
# GEMM library; OpenBLAS as the alternative), and a Python venv
# at .venv with numpy/onnx/onnxruntime/pytest and torch (the autograd reference).
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(llvm-22-dev libmlir-22-dev mlir-22-tools llvm-22-tools clang-22
      ninja-build cmake libonnx-dev libprotobuf-dev protobuf-compiler
      libgtest-dev libbenchmark-dev python3-venv time libpng-dev
      libjpeg62-turbo-dev libdnnl-dev libopenblas-dev libxxhash-dev
      libomp-22-dev)
missing=()
for p in "${PKGS[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "[bootstrap] installing: ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "[bootstrap] creating .venv"
  "$PY" -m venv .venv
fi
if ! .venv/bin/python -c "import numpy, onnx, onnxruntime, pytest, torch, transformers, sklearn, matplotlib, onnx_ir" 2>/dev/null; then
  # torch's PyPI wheel pulls its CUDA libraries: about 6 GiB installed, and
  # pip unpacks each wheel beside it. Say so before pip runs out of space
  # halfway through.
  free_kib=$(df -Pk .venv | awk 'NR == 2 { print $4 }')
  need_kib=$((8 * 1024 * 1024))
  if [ "${free_kib:-0}" -lt "$need_kib" ]; then
    echo "[bootstrap] error: $((free_kib / 1024)) MiB free on the file system of $PWD/.venv;" \
         "the Python packages need about 8192 MiB (torch with its CUDA wheels)." \
         "Free some space and run again." >&2
    exit 1
  fi
  echo "[bootstrap] installing Python packages"
  .venv/bin/pip install -q --no-cache-dir --upgrade pip
  .venv/bin/pip install -q --no-cache-dir -r python/requirements.txt
fi
echo "[bootstrap] ok"
