"""CPU benchmark of the fused 4-bit qmatmul (w4, g128, f32 activations)
against onnxruntime's MatMulNBits on the same weights and a plain fp32
matmul (onnxruntime MatMul), side by side in one run.

Measurements alternate between implementations in rounds so that machine
noise hits all of them alike; each figure is the median over all rounds.

    .venv/bin/python bench/qmatmul_cpu.py [--threads 1] [--rounds 5]
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "python"))
from qslaw_tools import reference as ref  # noqa: E402
from qslaw_tools.runner import run_mlir  # noqa: E402

G = 128


def pack_nibbles(v):
    v = v.reshape(-1)
    if v.size % 2:
        v = np.concatenate([v, np.zeros(1, v.dtype)])
    return (v[0::2] | (v[1::2] << 4)).astype(np.uint8)


def nbits_model(n, k, codes, scales, zeros):
    kb = k // G
    b = codes.reshape(n, kb, G)
    b_packed = np.stack([pack_nibbles(b[i, j]) for i in range(n) for j in range(kb)]).reshape(n, kb, G // 2)
    zp = np.stack([pack_nibbles(zeros[i]) for i in range(n)])  # [N, ceil(kb/2)]
    node = helper.make_node("MatMulNBits", ["A", "B", "scales", "zp"], ["Y"],
                            domain="com.microsoft", K=k, N=n, bits=4, block_size=G)
    graph = helper.make_graph(
        [node], "nbits",
        [helper.make_tensor_value_info("A", TensorProto.FLOAT, ["M", k])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["M", n])],
        initializer=[onnx.numpy_helper.from_array(b_packed, "B"),
                     onnx.numpy_helper.from_array(scales.reshape(-1), "scales"),
                     onnx.numpy_helper.from_array(zp, "zp")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21),
                                                   helper.make_opsetid("com.microsoft", 1)])


def fp32_model(n, k, w_kn):
    node = helper.make_node("MatMul", ["A", "W"], ["Y"])
    graph = helper.make_graph(
        [node], "fp32",
        [helper.make_tensor_value_info("A", TensorProto.FLOAT, ["M", k])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["M", n])],
        initializer=[onnx.numpy_helper.from_array(w_kn, "W")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])


def session(model, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def time_ort(sess, x, reps):
    sess.run(None, {"A": x})
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        sess.run(None, {"A": x})
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def qslaw_module(m, n, k):
    j = k // G
    return f"""
func.func @main(%x: tensor<{m}x{k}xf32>, %q: tensor<{n}x{k}xi4>, %s: tensor<{n}x{j}xf32>, %z: tensor<{n}x{j}xi4>) -> tensor<{m}x{n}xf32> {{
  %y = qslaw.qmatmul %x, %q scales(%s) zeros(%z) <bits = 4, group = {G}> : (tensor<{m}x{k}xf32>, tensor<{n}x{k}xi4>, tensor<{n}x{j}xf32>, tensor<{n}x{j}xi4>) -> tensor<{m}x{n}xf32>
  return %y : tensor<{m}x{n}xf32>
}}"""


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--reps", type=int, default=0, help="runs per round (0: by size)")
    p.add_argument("--ms", default="1,16,128")
    p.add_argument("--shapes", default="4096x4096,11008x4096")
    p.add_argument("--json", default="bench/results/qmatmul_cpu.json")
    a = p.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    for shape in a.shapes.split(","):
        n, k = map(int, shape.split("x"))
        j = k // G
        codes = rng.integers(0, 16, (n, k), dtype=np.uint8)
        scales = (rng.random((n, j), dtype=np.float32) * 0.02 + 0.001).astype(np.float32)
        zeros = rng.integers(0, 16, (n, j), dtype=np.uint8)
        w_nk = ref.dequantize(codes, scales, zeros, 4, G).astype(np.float32)
        s_nbits = session(nbits_model(n, k, codes, scales, zeros), a.threads)
        s_fp32 = session(fp32_model(n, k, np.ascontiguousarray(w_nk.T)), a.threads)
        for m in map(int, a.ms.split(",")):
            x = rng.standard_normal((m, k), dtype=np.float32)
            reps = a.reps or max(3, min(50, int(2e10 / (2 * m * n * k + 1e8))))
            mod = qslaw_module(m, n, k)
            opts = f"ukernel-threads={a.threads}"
            # Correctness first: the three agree.
            (yq,), _ = run_mlir(mod, [x, codes, scales, zeros], cpu_options=opts, repeat=1)
            yn = s_nbits.run(None, {"A": x})[0]
            yf = s_fp32.run(None, {"A": x})[0]
            scale = np.abs(yf).max()
            assert np.abs(yq - yf).max() <= 1e-4 * scale, "qslaw disagrees with fp32"
            assert np.abs(yn - yf).max() <= 1e-3 * scale, "MatMulNBits disagrees with fp32"
            t = {"qslaw": [], "ort_nbits": [], "ort_fp32": []}
            for _ in range(a.rounds):
                _, rec = run_mlir(mod, [x, codes, scales, zeros], cpu_options=opts, repeat=reps)
                t["qslaw"] += rec["times_ms"]
                t["ort_nbits"] += time_ort(s_nbits, x, reps)
                t["ort_fp32"] += time_ort(s_fp32, x, reps)
            med = {key: statistics.median(v) for key, v in t.items()}
            qbytes = n * k // 2 + n * j * 4 + n * j // 2 + m * k * 4 + m * n * 4
            fbytes = n * k * 4 + m * k * 4 + m * n * 4
            flops = 2 * m * n * k
            row = dict(N=n, K=k, M=m, reps=reps * a.rounds, isa=rec["ukernel_isa"],
                       **{f"{key}_ms": v for key, v in med.items()},
                       qslaw_GBps=qbytes / med["qslaw"] / 1e6,
                       ort_nbits_GBps=qbytes / med["ort_nbits"] / 1e6,
                       ort_fp32_GBps=fbytes / med["ort_fp32"] / 1e6,
                       qslaw_GFLOPs=flops / med["qslaw"] / 1e6,
                       ort_nbits_GFLOPs=flops / med["ort_nbits"] / 1e6,
                       ort_fp32_GFLOPs=flops / med["ort_fp32"] / 1e6,
                       speedup_vs_nbits=med["ort_nbits"] / med["qslaw"],
                       speedup_vs_fp32=med["ort_fp32"] / med["qslaw"])
            rows.append(row)
            print(f"N={n} K={k} M={m}: qslaw {med['qslaw']:.3f} ms, MatMulNBits "
                  f"{med['ort_nbits']:.3f} ms, fp32 {med['ort_fp32']:.3f} ms -> "
                  f"{row['speedup_vs_nbits']:.2f}x vs NBits, {row['speedup_vs_fp32']:.2f}x vs fp32",
                  flush=True)
    meta = dict(date=datetime.date.today().isoformat(), machine=platform.processor() or platform.machine(),
                cpu=open("/proc/cpuinfo").read().split("model name")[1].split("\n")[0].split(":", 1)[1].strip(),
                cores=os.cpu_count(), threads=a.threads, onnxruntime=ort.__version__, rounds=a.rounds)
    os.makedirs(os.path.dirname(a.json), exist_ok=True)
    with open(a.json, "w") as f:
        json.dump(dict(meta=meta, rows=rows), f, indent=1)
    print("\n| N x K | M | qslaw ms | NBits ms | fp32 ms | qslaw GB/s | qslaw GFLOP/s | vs NBits | vs fp32 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['N']}x{r['K']} | {r['M']} | {r['qslaw_ms']:.3f} | {r['ort_nbits_ms']:.3f} | "
              f"{r['ort_fp32_ms']:.3f} | {r['qslaw_GBps']:.1f} | {r['qslaw_GFLOPs']:.1f} | "
              f"{r['speedup_vs_nbits']:.2f}x | {r['speedup_vs_fp32']:.2f}x |")
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
