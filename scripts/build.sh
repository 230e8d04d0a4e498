#!/usr/bin/env bash
# Configures and builds qslaw in build/ (QSLAW_BUILD_TYPE, default Release).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_TYPE=${QSLAW_BUILD_TYPE:-Release}
if [ ! -f build/build.ninja ]; then
  cmake -G Ninja -S . -B build \
    -DCMAKE_BUILD_TYPE="$BUILD_TYPE" \
    -DCMAKE_C_COMPILER=clang-22 -DCMAKE_CXX_COMPILER=clang++-22 \
    -DMLIR_DIR=/usr/lib/llvm-22/lib/cmake/mlir \
    -DLLVM_EXTERNAL_LIT=/usr/lib/llvm-22/bin/lit \
    -DQSLAW_PYTHON="$PWD/.venv/bin/python"
fi
cmake --build build
