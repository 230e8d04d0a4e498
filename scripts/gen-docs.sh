#!/usr/bin/env bash
# Regenerates docs/generated/ from the TableGen definitions (dialect, ops,
# attributes, passes). Run after changing any .td file and commit the result.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --build build --target mlir-doc
mkdir -p docs/generated
cp build/docs/Dialects/QSLAWDialect.md docs/generated/QSLAWDialect.md
cp build/docs/Passes/QSLAWTransformPasses.md docs/generated/TransformPasses.md
cp build/docs/Passes/QSLAWConversionPasses.md docs/generated/ConversionPasses.md
echo "docs/generated updated"
