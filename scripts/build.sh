#!/usr/bin/env bash
# Configures and builds qslaw in build/ (QSLAW_BUILD_TYPE, default Release).
# QSLAW_SANITIZE=address,undefined builds an instrumented tree instead, in
# build-asan/ with the libFuzzer harnesses (scripts/sanitize.sh runs it);
# QSLAW_BUILD_DIR names another directory.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_TYPE=${QSLAW_BUILD_TYPE:-Release}
SANITIZE=${QSLAW_SANITIZE:-}
extra=()
if [ -n "$SANITIZE" ]; then
  B=${QSLAW_BUILD_DIR:-build-asan}
  # -O1: instrumented code compiles much faster, and runs fast enough.
  extra=(-DQSLAW_SANITIZE="$SANITIZE" -DQSLAW_FUZZ=ON -DQSLAW_BUILD_BENCH=OFF
         -DCMAKE_CXX_FLAGS_RELEASE="-O1 -DNDEBUG" -DCMAKE_C_FLAGS_RELEASE="-O1 -DNDEBUG")
else
  B=${QSLAW_BUILD_DIR:-build}
fi
if [ ! -f "$B/build.ninja" ]; then
  cmake -G Ninja -S . -B "$B" \
    -DCMAKE_BUILD_TYPE="$BUILD_TYPE" \
    -DCMAKE_C_COMPILER=clang-22 -DCMAKE_CXX_COMPILER=clang++-22 \
    -DMLIR_DIR=/usr/lib/llvm-22/lib/cmake/mlir \
    -DLLVM_EXTERNAL_LIT=/usr/lib/llvm-22/bin/lit \
    -DQSLAW_PYTHON="$PWD/.venv/bin/python" "${extra[@]}"
fi
cmake --build "$B"
