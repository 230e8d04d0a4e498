#!/usr/bin/env bash
# Compiles the --target=cuda libraries and the trainer executable that the
# GPU tests and benchmarks load (python/tests/test_cuda_target.py,
# bench/train_step_cuda.py) into DIR, with the libraries they need (the qslaw
# runtimes and trainer; the trainer's ONNX protobuf, PNG and JPEG libraries)
# and the CPU trainer's reference metrics, so that a GPU machine without LLVM
# can run them:  bash bench/cuda_artifacts.sh DIR [CHIPS [FORMAT]]
# CHIPS (default sm_90a, the H100) and FORMAT (default bin: cubin only) keep
# DIR small; DIR.tar.xz (about 8 MiB) is what travels to the GPU machine.
#   then there:  QSLAW_BUILD_DIR=DIR QSLAW_CUDA_ARTIFACTS=DIR/models \
#                LD_LIBRARY_PATH=DIR/lib pytest python/tests/test_cuda_target.py
#   and:         QSLAW_BUILD_DIR=DIR LD_LIBRARY_PATH=DIR/lib \
#                python3 bench/llama_block.py bench --artifacts DIR/block
set -euo pipefail
out=${1:?usage: cuda_artifacts.sh DIR [CHIPS [FORMAT]]}
chips=${2:-sm_90a}
format=${3:-bin}
root=$(cd "$(dirname "$0")/.." && pwd)
build=${QSLAW_BUILD_DIR:-$root/build}
mkdir -p "$out/lib" "$out/models"
cp "$build/lib/libqslaw_runtime.so" "$build/lib/libqslaw_cuda_runtime.so" \
   "$build/lib/libqslaw_trainer.so" "$out/lib/"
# The hand-written kernels (nvcc-built) for the --cuda-hand-kernels libraries.
kernels="$build/lib/libqslaw_cuda_kernels.so"
[ -f "$kernels" ] || { echo "cuda_artifacts.sh: $kernels not built (nvcc?)" >&2; exit 1; }
cp "$kernels" "$out/lib/"
# Debug builds carry debug info: strip the copies (dynamic symbols stay) to
# keep DIR within one device call.
strip --strip-unneeded "$out"/lib/libqslaw_*.so
for dep in libonnx_proto.so.1 libprotobuf.so.32 libpng16.so.16 libjpeg.so.62; do
  cp -L "$(ldd "$build/lib/libqslaw_trainer.so" | awk -v d="$dep" '$1 == d {print $3}')" "$out/lib/$dep"
done
out=$(cd "$out" && pwd)
cd "$root"
PYTHONPATH="$root/python:$root/python/tests" QSLAW_BUILD_DIR="$build" "$root/.venv/bin/python" - "$out/models" "$chips" "$format" <<'PY'
import sys, time
import test_cuda_target as t
import json, os, tempfile
for name in t.ARTIFACTS:
    start = time.time()
    t.compile_cuda(name, sys.argv[1],
                   gpu_args=(f"--gpu-chips={sys.argv[2]}", f"--gpu-format={sys.argv[3]}"))
    print(f"{name}: {time.time() - start:.1f} s", flush=True)
with tempfile.TemporaryDirectory() as d:
    metrics = t.reference_trainer_metrics(d)
with open(os.path.join(sys.argv[1], "tiny_llava_trainer.cpu_metrics.json"), "w") as f:
    json.dump(metrics, f)
print("tiny_llava_trainer.cpu_metrics.json: the CPU trainer's reference", flush=True)
PY
# Every ONNX backend node test the importer passes, as a --target=cuda library
# with its data (python/tests/test_onnx_backend.py::test_backend_node_on_gpu).
rm -rf "$out/backend" && mkdir -p "$out/backend"
"$root/.venv/bin/python" "$root/python/qslaw_tools/backend_tests.py" \
  --prebuild "$out/backend" --only "$(paste -sd, "$root/test/backend/expected_pass.txt")" | grep -v '^built' || true
tar -C "$out/backend" -cJf "$out/models/backend.tar.xz" . && rm -rf "$out/backend"
# The LLaMA-7B-shaped block's training library, with generated kernels and
# with the hand-written ones; each weights file travels compressed (periodic
# weights, bench/llama_block.py): about 6 MiB in all.
PYTHONPATH="$root/python" QSLAW_BUILD_DIR="$build" "$root/.venv/bin/python" \
  "$root/bench/llama_block.py" prepare --shape 7b --out "$out/block" --chips "$chips"
# One archive to carry (the debug-built libraries and the embedded objects
# compress about 15x): DIR.tar.xz, unpacked on the GPU machine with
#   mkdir -p DIR && tar -xJf DIR.tar.xz -C DIR
tar -C "$out" -cf - . | xz -T0 -6 > "$out.tar.xz"
echo "$out: $(du -sh "$out" | cut -f1); $out.tar.xz: $(du -h "$out.tar.xz" | cut -f1)"
