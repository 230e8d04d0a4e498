"""Compile time of each tiny LLaVA fixture and forward latency of the
compiled library (through the C runtime, via ctypes) against onnxruntime on
the same inputs, alternating in rounds; medians and ratios.

    .venv/bin/python bench/llava_cpu.py [--rounds 5] [--reps 20]
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnxruntime as ort

# onnxruntime runs on one intra-op thread below; so does qslaw (its
# default is all cores), unless the caller says otherwise.
os.environ.setdefault("QSLAW_NUM_THREADS", "1")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "python"))
from qslaw_tools.runner import ROOT, tool  # noqa: E402
from qslaw_tools.runtime import Model  # noqa: E402

FIX = os.path.join(ROOT, "test", "fixtures")
NAMES = ("input_ids", "pixel_values", "attention_mask")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--reps", type=int, default=20)
    a = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for model, extra in [("tiny_llava.onnx", []), ("tiny_llava_gqa.onnx", []),
                             ("tiny_llava_w4g32_ort.onnx", []), ("tiny_llava_w4g32_qdq.onnx", []),
                             ("tiny_llava.onnx", ["--quantize=w4g32",
                                                  "--quantize-layers=.*language_model.*"])]:
            stem = "tiny_llava_gqa" if "gqa" in model else "tiny_llava"
            feeds = {n: np.load(os.path.join(FIX, f"{stem}.{n}.npy")) for n in NAMES}
            lib = os.path.join(d, "m.so")
            compile_s = []
            for _ in range(3):
                t0 = time.perf_counter()
                subprocess.run([tool("qslaw-compile"), os.path.join(FIX, model), "-o", lib, *extra],
                               check=True, capture_output=True)
                compile_s.append(time.perf_counter() - t0)
            m = Model(lib)
            so = ort.SessionOptions()
            so.intra_op_num_threads = 1
            sess = ort.InferenceSession(os.path.join(FIX, model), so,
                                        providers=["CPUExecutionProvider"])
            m.run(**feeds)
            sess.run(None, feeds)
            tq, to = [], []
            for _ in range(a.rounds):
                for _ in range(a.reps):
                    t0 = time.perf_counter()
                    m.run(**feeds)
                    tq.append((time.perf_counter() - t0) * 1e3)
                for _ in range(a.reps):
                    t0 = time.perf_counter()
                    sess.run(None, feeds)
                    to.append((time.perf_counter() - t0) * 1e3)
            label = model + (" " + " ".join(extra) if extra else "")
            rows.append((label, statistics.median(compile_s), statistics.median(tq),
                         statistics.median(to)))
            del m
    print("| model | compile s | qslaw ms/forward | onnxruntime ms/forward | ratio (ort/qslaw) |")
    print("|---|---|---|---|---|")
    for label, c, q, o in rows:
        print(f"| {label} | {c:.2f} | {q:.3f} | {o:.3f} | {o / q:.2f}x |")


if __name__ == "__main__":
    main()
