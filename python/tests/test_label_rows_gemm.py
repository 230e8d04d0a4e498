"""The training step's language-model head multiplies only the rows whose
next-token label counts (qslaw-lower-contractions-to-library: logits read
only by qslaw.cross_entropy and its gradient; the input gradient's left
operand is that gradient, zero on ignored positions). Checked: the kernel
(qslaw_sgemm_rows_f32) against the full GEMM it replaces, and a compiled
training step whose every GEMM is a library call against PyTorch autograd,
with the GEMM trace showing the head's two GEMMs over the counted rows."""
import ctypes
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from qslaw_tools.runner import build_dir, tool
from qslaw_tools.runtime import Model
from test_train_step_torch import FIX, LAYERS, batch, check_gradients_match_torch

HERE = os.path.dirname(__file__)


def _kernels():
    lib = ctypes.CDLL(os.path.join(build_dir(), "lib", "libqslaw_ukernels.so"))
    P, I, C, F = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int, ctypes.c_float
    lib.qslaw_sgemm_rows_f32.argtypes = [I, I, I, P, I, I, I, C, P, I, P, I, C, F, P, I, C]
    lib.qslaw_sgemm_f32_batched.argtypes = [I, I, I, I, P, I, I, C, P, I, I, C, F,
                                            P, I, I, C]
    return lib


@pytest.mark.parametrize("trans_b", [0, 1])
@pytest.mark.parametrize("mask", ["run", "runs", "scattered", "all", "none"])
@pytest.mark.parametrize("beta", [0.0, 1.0])
@pytest.mark.parametrize("layout", ["full", "grouped"])
@pytest.mark.parametrize("zero_unselected", [1, 0])
def test_selected_rows_are_the_full_gemms(trans_b, mask, beta, layout, zero_unselected):
    """Selected rows equal the full GEMM's bit for bit (each element is the
    same library sum over K; one run is multiplied in place, scattered rows
    gathered); the others are zero (beta 0) or kept (beta 1). "grouped": A
    holds only 70 rows of each group of 75 of C's, from row 3 (a gradient
    placed into zeros at a token offset, which the kernel reads unpadded),
    against the full GEMM of that zero-padded A. zero_unselected 0 (logits
    that only the loss kernels read): unselected rows are left as they
    are."""
    lib = _kernels()
    rng = np.random.default_rng(1)
    M, K, N = 300, 256, 520
    tokens, a_tokens, a_offset = (M, M, 0) if layout == "full" else (75, 70, 3)
    groups = M // tokens
    a = rng.standard_normal((groups * a_tokens, K)).astype(np.float32)
    a_full = np.zeros((M, K), np.float32)
    window = np.zeros(M, bool)
    for g in range(groups):
        a_full[g * tokens + a_offset:g * tokens + a_offset + a_tokens] = \
            a[g * a_tokens:(g + 1) * a_tokens]
        window[g * tokens + a_offset:g * tokens + a_offset + a_tokens] = True
    b = rng.standard_normal((N, K) if trans_b else (K, N)).astype(np.float32)
    c0 = rng.standard_normal((M, N)).astype(np.float32)
    rows = np.zeros(M, np.uint8)
    if mask == "run":
        rows[196:260] = 1
    elif mask == "runs":  # one run per sample of a batch of 4
        for s in range(4):
            rows[s * 75 + 50:s * 75 + 70] = 1
    elif mask == "scattered":
        rows[rng.random(M) < 0.3] = 1
    elif mask == "all":
        rows[:] = 1
    rows[~window] = 0
    got, full = c0.copy(), c0.copy()
    lib.qslaw_sgemm_rows_f32(M, N, K, rows.ctypes.data, tokens, a_tokens, a_offset,
                             zero_unselected, a.ctypes.data, K, b.ctypes.data, b.shape[1], trans_b, beta,
                             got.ctypes.data, N, 2)
    lib.qslaw_sgemm_f32_batched(1, M, N, K, a_full.ctypes.data, K, 0, 0, b.ctypes.data,
                                b.shape[1], 0, trans_b, beta, full.ctypes.data, N, 0, 2)
    sel = rows.astype(bool)
    np.testing.assert_allclose(full[sel], a_full[sel] @ (b.T if trans_b else b) + beta * c0[sel],
                               rtol=1e-4, atol=1e-3)  # the library vs NumPy: f32 sums of 256
    assert np.array_equal(got[sel], full[sel])
    kept = beta or not zero_unselected
    assert np.array_equal(got[~sel], c0[~sel] if kept else np.zeros_like(c0[~sel]))


@pytest.fixture(scope="module")
def head_lib(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("rows") / "t.so")
    # Every contraction through the library, the tiny head included.
    subprocess.run([tool("qslaw-compile"), os.path.join(FIX, "tiny_llava.onnx"),
                    "--quantize=w4g32", f"--quantize-layers={LAYERS}", "--train",
                    "--gemm-min-flops=0", "-o", out], check=True, capture_output=True)
    return out


def test_head_skips_ignored_rows_and_gradients_match_torch(head_lib, tmp_path):
    ir = subprocess.run([tool("qslaw-compile"), os.path.join(FIX, "tiny_llava.onnx"),
                         "--quantize=w4g32", f"--quantize-layers={LAYERS}", "--train",
                         "--gemm-min-flops=0", "--emit=llvm", "-o", str(tmp_path / "t.mlir")],
                        check=True, capture_output=True)
    assert ir.returncode == 0
    text = open(tmp_path / "t.mlir").read()
    # grad_step: the forward and the input gradient of the head.
    assert text.count("llvm.call @qslaw_ukernel_sgemm_rows_f32") == 2
    subprocess.run([tool("qslaw-compile"), os.path.join(FIX, "tiny_llava.onnx"),
                    "--quantize=w4g32", f"--quantize-layers={LAYERS}", "--train",
                    "--gemm-min-flops=0", "--gemm-label-rows=false", "--emit=llvm",
                    "-o", str(tmp_path / "off.mlir")], check=True, capture_output=True)
    assert "sgemm_rows" not in open(tmp_path / "off.mlir").read()
    check_gradients_match_torch(Model(head_lib), "tiny_llava", "scale")

    # The trace (read once per process: a child) shows the head's two
    # GEMMs over the counted rows only.
    ids, pix, mask, labels = batch("tiny_llava")
    counted = int((labels[:, 1:] != -100).sum())
    V = 48
    for name, arr in [("ids", ids), ("pix", pix), ("mask", mask), ("labels", labels)]:
        np.save(tmp_path / f"{name}.npy", arr)
    trace = str(tmp_path / "trace.jsonl")
    code = f"""
import numpy as np
from qslaw_tools.runtime import Model
m = Model({head_lib!r})
params = m.signature.training.params
feeds = dict(zip([p.name for p in params], m.run_function("init_params", {{}})))
d = {str(tmp_path)!r}
feeds.update(input_ids=np.load(d + "/ids.npy"), pixel_values=np.load(d + "/pix.npy"),
             attention_mask=np.load(d + "/mask.npy"), labels=np.load(d + "/labels.npy"))
m.run_function("grad_step", feeds)
"""
    env = dict(os.environ, QSLAW_GEMM_TRACE=trace,
               PYTHONPATH=os.path.join(HERE, "..") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    with open(trace) as f:
        head = [r for r in map(json.loads, f) if V in (r["n"], r["k"]) and r["kind"] == "sgemm"]
    assert counted < labels.shape[0] * labels.shape[1] - 1
    assert sorted((r["m"], r["n"], r["k"]) for r in head) == sorted([(counted, V, 64),
                                                                      (counted, 64, V)])
