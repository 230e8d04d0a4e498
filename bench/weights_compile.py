"""Embedded vs external weights (qslaw-compile --weights=embed|external) for
the LLaMA-7B-shaped decoder block of bench/llama_block.py, forward only,
--target=cpu, w4 g128: compile wall time and peak RSS, library and weights
file sizes, and qslaw_model_load time (median of 5, file in the page
cache), side by side in one run.

    .venv/bin/python bench/weights_compile.py [--shape 7b] [--out DIR]
"""
import argparse
import ctypes
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))
sys.path.insert(0, HERE)


def compile_timed(cmd):
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        raise RuntimeError(f"{cmd}: {proc.stderr.read().decode()[-2000:]}")
    return wall, usage.ru_maxrss * 1024


def load_ms(lib_path):
    from qslaw_tools.runner import build_dir
    rt = ctypes.CDLL(os.path.join(build_dir(), "lib", "libqslaw_runtime.so"))
    times = []
    for _ in range(5):
        m = ctypes.c_void_p()
        start = time.perf_counter()
        assert rt.qslaw_model_load(lib_path.encode(), ctypes.byref(m)) == 0
        times.append((time.perf_counter() - start) * 1e3)
        rt.qslaw_model_free(m)
    return statistics.median(times)


def main():
    import llama_block as lb
    from qslaw_tools.runner import tool
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="7b", choices=lb.SHAPES)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        onnx_path = os.path.join(d, "block.onnx")
        lb.export_onnx(a.shape, onnx_path)
        res = {"date": time.strftime("%Y-%m-%d"), "shape": lb.SHAPES[a.shape],
               "onnx_bytes": os.path.getsize(onnx_path)}
        for mode in ("external", "embed"):
            lib = os.path.join(d, f"{mode}.so")
            wall, rss = compile_timed([tool("qslaw-compile"), onnx_path, "--quantize=w4g128",
                                       "--quantize-layers=.*", f"--weights={mode}", "-o", lib])
            weights = lib + ".weights"
            res[mode] = {"compile_s": round(wall, 1), "peak_rss_bytes": rss,
                         "library_bytes": os.path.getsize(lib),
                         "weights_file_bytes": os.path.getsize(weights)
                         if os.path.exists(weights) else 0,
                         "load_ms_median": round(load_ms(lib), 2)}
            print(mode, json.dumps(res[mode]), flush=True)
    print(json.dumps(res, indent=1))
    if a.out:
        with open(a.out, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
