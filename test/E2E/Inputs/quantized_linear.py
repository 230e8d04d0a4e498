"""End to end: a float linear layer with a constant weight goes through
qslaw-quantize-weights and the CPU pipeline (constant 4-bit codes become
packed globals), runs, and matches NumPy's min-max quantisation of the same
weight followed by a float64 matmul."""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "python"))
from qslaw_tools import reference as ref  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--opt", required=True)
p.add_argument("--exec", dest="exe", required=True)
p.add_argument("--bits", type=int, default=4)
p.add_argument("--group", type=int, default=32)
p.add_argument("--sym", action="store_true")
p.add_argument("--cpu-options", default="")
a = p.parse_args()

rng = np.random.default_rng(5)
m, k, n = 3, 96, 40
x = rng.standard_normal((m, k)).astype(np.float32)
w = rng.standard_normal((k, n)).astype(np.float32)  # ONNX layout [K, N]


def dense(arr):
    return "[" + ", ".join(dense(r) if isinstance(r, list) else repr(float(r))
                           for r in arr) + "]"


mlir = f"""
func.func @main(%x: tensor<{m}x{k}xf32>) -> tensor<{m}x{n}xf32> {{
  %w = arith.constant {{qslaw.name = "lm.layers.0.mlp.up.weight"}} dense<{dense(w.tolist())}> : tensor<{k}x{n}xf32>
  %c0 = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<{m}x{n}xf32>
  %i = linalg.fill ins(%c0 : f32) outs(%e : tensor<{m}x{n}xf32>) -> tensor<{m}x{n}xf32>
  %y = linalg.matmul ins(%x, %w : tensor<{m}x{k}xf32>, tensor<{k}x{n}xf32>) outs(%i : tensor<{m}x{n}xf32>) -> tensor<{m}x{n}xf32>
  return %y : tensor<{m}x{n}xf32>
}}"""

with tempfile.TemporaryDirectory() as d:
    src, q, xin, yout = (os.path.join(d, f) for f in ("m.mlir", "q.mlir", "x.npy", "y.npy"))
    open(src, "w").write(mlir)
    opts = f"bits={a.bits} group-size={a.group} symmetric={'true' if a.sym else 'false'}"
    subprocess.run([a.opt, src, f"--qslaw-quantize-weights={opts}", "-o", q], check=True)
    ir = open(q).read()
    assert f"tensor<{k}x{n}xf32>" not in ir and f"tensor<{n}x{k}xf32>" not in ir, \
        "float weight survived quantisation"
    np.save(xin, x)
    subprocess.run([a.exe, q, "--entry=main", f"--input={xin}", f"--output={yout}",
                    f"--cpu-options={a.cpu_options}"], check=True)
    y = np.load(yout)

# Reference: min-max per group (QSLAW.md), on W^T [N, K].
wt = w.T.astype(np.float32)
j, g = ref.num_groups(k, a.group)
qmax = 2 ** a.bits - 1
scales = np.zeros((n, j), np.float32)
zeros = np.zeros((n, j), np.int64)
for jj in range(j):
    blk = wt[:, jj * g:(jj + 1) * g]
    lo, hi = np.minimum(blk.min(1), 0), np.maximum(blk.max(1), 0)
    if a.sym:
        zeros[:, jj] = 2 ** (a.bits - 1)
        s = np.maximum(np.maximum(-lo, hi) / np.float32(qmax - zeros[:, jj]), np.float32(1e-5))
    else:
        s = np.maximum((hi - lo) / np.float32(qmax), np.float32(1e-5))
        zeros[:, jj] = np.clip(np.round(-lo / s), 0, qmax)
    scales[:, jj] = s
codes = ref.quantize(wt, scales, None if a.sym else zeros.astype(np.uint8), a.bits, a.group)
want = ref.qmatmul(x, codes, scales, None if a.sym else zeros, a.bits, a.group)
err = np.abs(y - want).max()
bound = 2e-6 * np.sqrt(k) * (np.abs(x) @ np.abs(ref.dequantize(codes, scales, None if a.sym else zeros, a.bits, a.group)).T).max()
rtn_err = np.abs(y - x.astype(np.float64) @ w).max()
print(f"max_err={err:.3g} bound={bound:.3g} vs_float={rtn_err:.3g}")
print("OK" if err <= bound else "MISMATCH")
