"""The main job (until the trainer lands): compile the bundled tiny LLaVA
model (test/fixtures) from ONNX to a shared library, float and with
--quantize=w4g32 on the language model, run both with qslaw-run and compare
with onnxruntime; then quantize a larger LLaMA-style MLP block and time the
fused kernel against the float model."""
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from qslaw_tools.runner import run_mlir, tool  # noqa: E402

H, F, T = 512, 1376, 8  # hidden, MLP width, tokens


def dense(a):
    return "[" + ",".join("[" + ",".join(f"{v:.8g}" for v in row) + "]" for row in a) + "]"


def mlp_module(wg, wu, wd):
    def mm(name, x, w, out, kdim, ndim):
        return f"""
  %{name}_w = arith.constant {{qslaw.name = "model.layers.0.mlp.{name}_proj.weight"}} dense<{dense(w)}> : tensor<{kdim}x{ndim}xf32>
  %{name}_e = tensor.empty() : tensor<{T}x{ndim}xf32>
  %{name}_i = linalg.fill ins(%zero : f32) outs(%{name}_e : tensor<{T}x{ndim}xf32>) -> tensor<{T}x{ndim}xf32>
  %{out} = linalg.matmul ins(%{x}, %{name}_w : tensor<{T}x{kdim}xf32>, tensor<{kdim}x{ndim}xf32>) outs(%{name}_i : tensor<{T}x{ndim}xf32>) -> tensor<{T}x{ndim}xf32>"""
    return f"""
func.func @main(%x: tensor<{T}x{H}xf32>) -> tensor<{T}x{H}xf32> {{
  %zero = arith.constant 0.0 : f32
  {mm("gate", "x", wg, "g", H, F)}
  {mm("up", "x", wu, "u", H, F)}
  %silu_e = tensor.empty() : tensor<{T}x{F}xf32>
  %h = linalg.generic {{indexing_maps = [affine_map<(i, j) -> (i, j)>, affine_map<(i, j) -> (i, j)>, affine_map<(i, j) -> (i, j)>],
                       iterator_types = ["parallel", "parallel"]}}
      ins(%g, %u : tensor<{T}x{F}xf32>, tensor<{T}x{F}xf32>) outs(%silu_e : tensor<{T}x{F}xf32>) {{
  ^bb0(%gv: f32, %uv: f32, %o: f32):
    %one = arith.constant 1.0 : f32
    %n = arith.negf %gv : f32
    %e = math.exp %n : f32
    %d = arith.addf %one, %e : f32
    %s = arith.divf %gv, %d : f32
    %r = arith.mulf %s, %uv : f32
    linalg.yield %r : f32
  }} -> tensor<{T}x{F}xf32>
  {mm("down", "h", wd, "y", F, H)}
  return %y : tensor<{T}x{H}xf32>
}}"""


def llava():
    fix = os.path.join(os.path.dirname(tool("qslaw-opt")), "..", "..", "test", "fixtures")
    fix = os.path.normpath(fix)
    import onnxruntime as ort
    names = ("input_ids", "pixel_values", "attention_mask")
    feeds = {n: np.load(os.path.join(fix, f"tiny_llava.{n}.npy")) for n in names}
    want = ort.InferenceSession(os.path.join(fix, "tiny_llava.onnx"),
                                providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    with tempfile.TemporaryDirectory() as d:
        for label, extra in [("float", []),
                             ("w4g32 language model",
                              ["--quantize=w4g32", "--quantize-layers=.*language_model.*"])]:
            lib = os.path.join(d, "llava.so")
            print(f"[demo] qslaw-compile tiny_llava.onnx ({label}) -> llava.so", flush=True)
            subprocess.run([tool("qslaw-compile"), os.path.join(fix, "tiny_llava.onnx"),
                            "-o", lib, *extra], check=True)
            subprocess.run([tool("qslaw-run"), lib, "--output-dir", d] +
                           [f"--input={n}={os.path.join(fix, f'tiny_llava.{n}.npy')}"
                            for n in names], check=True)
            got = np.load(os.path.join(d, "logits.npy"))
            rel = np.abs(got - want).max() / np.abs(want).max()
            agree = (got.argmax(-1) == want.argmax(-1)).mean()
            print(f"[demo]   logits {got.shape}: max rel. diff vs onnxruntime float "
                  f"{rel:.2e}, next-token agreement {agree:.0%}")


def main():
    llava()
    rng = np.random.default_rng(0)
    wg = (rng.standard_normal((H, F)) / np.sqrt(H)).astype(np.float32)
    wu = (rng.standard_normal((H, F)) / np.sqrt(H)).astype(np.float32)
    wd = (rng.standard_normal((F, H)) / np.sqrt(F)).astype(np.float32)
    x = rng.standard_normal((T, H)).astype(np.float32)
    g, u = x @ wg, x @ wu
    want = ((g / (1 + np.exp(-g))) * u) @ wd

    src = mlp_module(wg, wu, wd)
    print(f"[demo] LLaMA-style MLP block: hidden {H}, MLP {F}, {T} tokens; "
          f"{(wg.size + wu.size + wd.size) * 4 / 2**20:.1f} MiB of float weights")
    print("[demo] float model through the CPU pipeline ...", flush=True)
    (y_float,) = run_mlir(src, [x])
    print(f"       max |y - numpy| / max|y| = {np.abs(y_float - want).max() / np.abs(want).max():.2e}")
    with tempfile.TemporaryDirectory() as d:
        for label, opts in [("w4 g128 min-max (RTN)", "bits=4 group-size=128"),
                            ("w4 g128 clipped", "bits=4 group-size=128 clip-steps=20"),
                            ("w3 g128 clipped", "bits=3 group-size=128 clip-steps=20")]:
            inp, out = os.path.join(d, "in.mlir"), os.path.join(d, "q.mlir")
            open(inp, "w").write(src)
            subprocess.run([tool("qslaw-opt"), inp, f"--qslaw-quantize-weights={opts}",
                            "-o", out], check=True)
            q = open(out).read()
            (y,), rec = run_mlir(q, [x], repeat=20)
            rel = np.linalg.norm(y - want) / np.linalg.norm(want)
            print(f"[demo] {label:24s} rel. L2 error vs float {rel:.4f}, "
                  f"median {rec['median_ms']:.3f} ms/forward ({rec['ukernel_isa']} ukernels where covered)")
    (yf,), rec = run_mlir(src, [x], repeat=20)
    print(f"[demo] float model               median {rec['median_ms']:.3f} ms/forward (codegen)")


if __name__ == "__main__":
    main()
