"""Compile time and peak RSS of qslaw-compile (issue 17): the forward
library and the trainer (w4g128 on the decoder layers, scale mode, or gamma
mode with --mode=gamma; external weights) of the tiny fixture and of the
generated real-width LLaVAs (small: CLIP 6x384 + LLaMA 4x512; medium:
ViT-B/16 + LLaMA 8x1024; 1b: ViT-B/16 +
LLaMA 16x2048, 4.2 GB of f32 weights as external data), against the
bound peak RSS <= 1.5 x weight bytes + 1 GiB. Each compile in its own
child process (wall clock, ru_maxrss); --timing adds qslaw-compile's
--mlir-timing phase totals (import, graph stage, lowering, LLVM
translation/O3/codegen, link).

    .venv/bin/python bench/compile_cpu.py [--models tiny,small,medium,1b]
        [--what lib,trainer] [--mode scale|gamma] [--timing]
        [--flags=--outline-layers=false]
        [--first-load] [--json FILE]

--first-load times, after each library's compile, its first load by the
runtime in a child process (qslaw_tools.runtime.Model: mapping and hashing
the weights file, which --weights-write=direct leaves out of the page
cache, so that the first load reads it from the disk).

A model SIZE-d2 (e.g. medium-d2) is SIZE's widths at 2 vision and 2 text
layers; with both in --models the depth ratio is printed. SIZE-bf16 (e.g.
1b-bf16) stores the weights as bf16, read through Cast (make_llava
--weights bf16); the memory bound is then on the bf16 bytes.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))
from qslaw_tools.runner import ROOT, tool  # noqa: E402

LAYERS = r".*language_model.*layers.*"
PHASES = ("Import ONNX", "Graph cleanup", "Quantize weights", "Training step", "Signature",
          "Lower",
          "Translate to LLVM IR", "LLVM optimisation (O3)", "LLVM code generation",
          "Wait for the weights file", "Link")


def model_path(name, models):
    """tiny, small, medium, or SIZE-d2: SIZE's widths at 2 vision and 2
    text layers (the depth-scaling reference)."""
    if name == "tiny":
        return os.path.join(ROOT, "test", "fixtures", "tiny_llava.onnx")
    name, bf16, _ = name.partition("-bf16")
    size, _, depth = name.partition("-d")
    stem = f"llava_{size}{'_d' + depth if depth else ''}{'_bf16' if bf16 else ''}"
    path = os.path.join(models, stem + ".onnx")
    if not os.path.exists(path):
        # In a child: a compile's ru_maxrss counts the address space it was
        # forked from, so torch's gigabytes must not be in this process.
        cmd = [sys.executable, "-m", "qslaw_tools.make_llava", models, "--size", size,
               "--name", stem, "--weights", "bf16" if bf16 else "f32"]
        if depth:
            cmd += ["--vision-layers", depth, "--text-layers", depth]
        subprocess.run(cmd, check=True, cwd=os.path.join(ROOT, "python"))
    return path


def weight_bytes(path):
    n = os.path.getsize(path)
    return n + (os.path.getsize(path + ".data") if os.path.exists(path + ".data") else 0)


def compile_once(path, what, out, timing, extra=(), mode="scale"):
    cmd = [tool("qslaw-compile"), path, "-o", out, "--weights=external", *extra]
    if what == "trainer":
        spec = "w4g128" + (",mode=gamma" if mode == "gamma" else "")
        cmd += [f"--quantize={spec}", f"--quantize-layers={LAYERS}", "--emit=trainer"]
    if timing:
        cmd += ["--mlir-timing", "--mlir-timing-display=list"]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        raise RuntimeError(f"{' '.join(cmd)}:\n{err[-2000:]}")
    phases = {}
    for line in err.splitlines():  # "  user (pct)  wall (pct)  name"
        m = re.match(r"\s*[\d.]+ \(\s*[\d.]+%\)\s+([\d.]+) \(\s*[\d.]+%\)\s+(.*\S)\s*$", line)
        if m and m.group(2) in PHASES:
            phases[m.group(2)] = phases.get(m.group(2), 0.0) + float(m.group(1))
    return {"wall_s": wall, "peak_rss_mb": usage.ru_maxrss / 1024, "phases_s": phases}


FIRST_LOAD = """
import sys, time
sys.path.insert(0, sys.argv[2])
from qslaw_tools.runtime import Model
t = time.perf_counter()
Model(sys.argv[1])
print(time.perf_counter() - t)
"""


def first_load(lib):
    """Seconds the runtime takes to load `lib` (and map and check its
    weights file), in a fresh process."""
    out = subprocess.run([sys.executable, "-c", FIRST_LOAD, lib, os.path.join(ROOT, "python")],
                         check=True, capture_output=True, text=True).stdout
    return float(out.split()[-1])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--models", default="tiny,small,medium")
    p.add_argument("--what", default="lib,trainer")
    p.add_argument("--timing", action="store_true")
    p.add_argument("--models-dir", default=os.path.join(tempfile.gettempdir(), "qslaw-models"))
    p.add_argument("--first-load", action="store_true")
    p.add_argument("--mode", choices=("scale", "gamma"), default="scale",
                   help="the trainer's QSLAW mode (learned scales, or gamma "
                        "factors on them)")
    p.add_argument("--json")
    p.add_argument("--flags", default="",
                   help="more qslaw-compile flags, space-separated (use the "
                        "--flags=... form), e.g. --flags=--outline-layers=false")
    a = p.parse_args()
    extra = a.flags.split()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for name in a.models.split(","):
            path = model_path(name, a.models_dir)
            wb = weight_bytes(path)
            for what in a.what.split(","):
                out = os.path.join(d, f"{name}_{what}")
                r = compile_once(path, what, out, a.timing, extra, a.mode)
                if a.first_load and what == "lib":
                    r["first_load_s"] = first_load(out)
                bound_mb = (1.5 * wb + (1 << 30)) / (1 << 20)
                r.update(model=name, what=what, mode=a.mode, weights_mb=wb / (1 << 20), bound_mb=bound_mb)
                rows.append(r)
                print(f"{name:7s} {what:8s} weights {r['weights_mb']:7.0f} MB  compile "
                      f"{r['wall_s']:6.1f} s  peak RSS {r['peak_rss_mb']:6.0f} MB "
                      f"(bound {bound_mb:6.0f} MB{'' if r['peak_rss_mb'] <= bound_mb else ', OVER'})"
                      + (f"  first load {r['first_load_s']:.2f} s" if "first_load_s" in r else "")
                      + ("  " + ", ".join(f"{k} {v:.1f}" for k, v in r["phases_s"].items())
                         if r["phases_s"] else ""), flush=True)
    # Depth scaling (issue 17's goal: L layers within 1.5x of 2 layers).
    by = {(r["model"], r["what"]): r["wall_s"] for r in rows}
    for (name, what), t in by.items():
        if "-d" not in name and (name + "-d2", what) in by:
            print(f"depth: {name} {what} {t:.1f} s = {t / by[(name + '-d2', what)]:.2f}x "
                  f"its 2-layer copy ({by[(name + '-d2', what)]:.1f} s)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
