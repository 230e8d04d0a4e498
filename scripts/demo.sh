#!/usr/bin/env bash
# The main job: set up, build, then quantize/compile/run the bundled demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
bash scripts/build.sh
.venv/bin/python python/qslaw_tools/demo.py
# Training: compile the tiny LLaVA into a trainer executable (w4 g32 scales
# + projector trainable) and learn its scales on the bundled records with the
# progressive warmup; the trainer writes metrics.jsonl and a checkpoint.
mkdir -p build/demo
build/bin/qslaw-compile test/fixtures/tiny_llava.onnx --quantize=w4g32 \
  '--quantize-layers=.*language_model.*layers.*' --emit=trainer \
  -o build/demo/tiny_llava_trainer
rm -rf build/demo/run
build/demo/tiny_llava_trainer --data=test/fixtures/train/records.jsonl \
  --steps=60 --preset=progressive --out=build/demo/run --checkpoint-every=20
.venv/bin/python - <<'PY'
import json
m = [json.loads(l) for l in open("build/demo/run/metrics.jsonl")]
def mean(rs): return sum(r["loss"] for r in rs) / len(rs)
print(f"trained {len(m)} steps: mean loss steps 1-10 {mean(m[:10]):.3f}, "
      f"steps {len(m)-9}-{len(m)} {mean(m[-10:]):.3f}; metrics in build/demo/run/metrics.jsonl")
PY
