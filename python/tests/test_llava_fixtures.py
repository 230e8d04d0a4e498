"""The tiny LLaVA fixtures (test/fixtures, made by
python/qslaw_tools/make_fixtures.py from transformers configs and exported
by torch.onnx): compiled by qslaw-compile, run by qslaw-exec, compared with
onnxruntime on the same inputs.

Tolerances: float models 1e-4 of the logit scale (fp32 end to end; both
sides reassociate sums differently); quantized 1e-3 (the same codes and
scales on both sides, so only fp32 reassociation differs, through one more
layer of rounding)."""
import os
import re
import subprocess
import tempfile

import numpy as np
import onnxruntime as ort
import pytest

from qslaw_tools.runner import ROOT, run_mlir, tool

FIX = os.path.join(ROOT, "test", "fixtures")


def inputs(stem):
    return [np.load(os.path.join(FIX, f"{stem}.{n}.npy"))
            for n in ("input_ids", "pixel_values", "attention_mask")]


def ort_logits(model, ins, optimize=True):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    if not optimize:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    s = ort.InferenceSession(os.path.join(FIX, model), so, providers=["CPUExecutionProvider"])
    return s.run(None, dict(zip(("input_ids", "pixel_values", "attention_mask"), ins)))[0]


def compile_model(model, *extra):
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "m.mlir")
        subprocess.run([tool("qslaw-compile"), os.path.join(FIX, model), "-o", out, "--emit=mlir", *extra],
                       check=True, capture_output=True)
        return open(out).read()


def f32_constant_elements(mlir):
    total = 0
    for m in re.finditer(r"arith.constant[^\n]*: tensor<([0-9x]*)xf32>", mlir):
        total += int(np.prod([int(d) for d in m.group(1).split("x") if d] or [1]))
    return total


def rel_err(got, want):
    return np.abs(got - want).max() / np.abs(want).max()


@pytest.mark.parametrize("stem", ["tiny_llava", "tiny_llava_gqa"])
@pytest.mark.parametrize("cpu_options", ["", "ukernels=false tile-size=0 vectorize=false"])
def test_float_model_matches_onnxruntime(stem, cpu_options):
    ins = inputs(stem)
    mlir = compile_model(f"{stem}.onnx")
    (got,) = run_mlir(mlir, ins, entry="forward", cpu_options=cpu_options)
    assert rel_err(got, ort_logits(f"{stem}.onnx", ins)) < 1e-4


def test_matmulnbits_model_matches_onnxruntime():
    ins = inputs("tiny_llava")
    mlir = compile_model("tiny_llava_w4g32_ort.onnx")
    assert mlir.count("qslaw.qmatmul") == 14  # 2 layers x q,k,v,o,gate,up,down
    # No float copy of the quantized weights: the module's f32 constants
    # shrink by exactly the language model's linear weights
    # (2 layers x (4 x 64x64 + 3 x 64x128)) less their group scales
    # (2 layers x (4 x 64x2 + 2 x 128x2 + 64x4)).
    weights = 2 * (4 * 64 * 64 + 3 * 64 * 128)
    scales = 2 * (4 * 64 * 2 + 2 * 128 * 2 + 64 * 4)
    assert f32_constant_elements(compile_model("tiny_llava.onnx")) - \
        f32_constant_elements(mlir) == weights - scales
    (got,) = run_mlir(mlir, ins, entry="forward")
    assert rel_err(got, ort_logits("tiny_llava_w4g32_ort.onnx", ins)) < 1e-3


def test_quantize_option_matches_onnxruntime_quantizer():
    """--quantize=w4g32 on the float model gives the same codes and scales as
    onnxruntime's MatMulNBitsQuantizer: the outputs agree with onnxruntime
    running its quantized model."""
    ins = inputs("tiny_llava")
    mlir = compile_model("tiny_llava.onnx", "--quantize=w4g32",
                         "--quantize-layers=.*language_model.*")
    assert mlir.count("qslaw.qmatmul") == 14
    (got,) = run_mlir(mlir, ins, entry="forward")
    want_q = ort_logits("tiny_llava_w4g32_ort.onnx", ins)
    want_f = ort_logits("tiny_llava.onnx", ins)
    assert rel_err(got, want_q) < 1e-3
    assert rel_err(got, want_f) > 1e-3  # it really is quantized


def test_qdq_model_matches_onnx_semantics():
    """Block-wise DequantizeLinear (uint4, block 32) feeding MatMul lands as
    qslaw.qmatmul. The reference is onnxruntime with graph optimisations off
    (plain ONNX semantics): onnxruntime 1.32's own DQ+MatMul fusion changes
    these logits by ~6e-3 relative, which the numbers below document."""
    ins = inputs("tiny_llava")
    mlir = compile_model("tiny_llava_w4g32_qdq.onnx")
    assert mlir.count("qslaw.qmatmul") == 14
    assert "qslaw.dequantize" not in mlir
    (got,) = run_mlir(mlir, ins, entry="forward")
    want = ort_logits("tiny_llava_w4g32_qdq.onnx", ins, optimize=False)
    assert rel_err(got, want) < 1e-3
    fused = ort_logits("tiny_llava_w4g32_qdq.onnx", ins, optimize=True)
    assert rel_err(fused, want) > 1e-3, "onnxruntime's fusion became exact: drop the note"
