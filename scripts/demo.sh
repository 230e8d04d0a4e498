#!/usr/bin/env bash
# The main job: set up, build, then quantize/compile/run the bundled demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
bash scripts/build.sh
.venv/bin/python python/qslaw_tools/demo.py
# The main job, QSLAW on real data: the bundled full-precision tiny LLaVA
# (trained on scikit-learn's handwritten digits as visual questions plus a
# text corpus, data/repro) is compiled into trainer executables at 4, 3 and
# 2 bits; each learns its scales + projector with no warmup, the
# progressive warmup and the mix schedule, exports ONNX, and onnxruntime
# scores held-out VQA accuracy and text perplexity. Prints the table;
# results.json/results.png in build/repro.
# Then the recipe's third stage (LoRA with the learned scales frozen)
# against LoRA on the RTN base and full-precision LoRA at 3 and 2 bits, one
# seed (--full: three seeds, mean +- std); build/repro_lora.
full=()
args=()
for a in "$@"; do
  if [ "$a" = "--full" ]; then full=(--full); else args+=("$a"); fi
done
cd python
../.venv/bin/python -m qslaw_tools.repro.reproduce --out ../build/repro ${args[@]+"${args[@]}"}
../.venv/bin/python -m qslaw_tools.repro.lora_stage --out ../build/repro_lora ${full[@]+"${full[@]}"}
