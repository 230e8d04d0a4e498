"""Weights stored as bf16/f16 and read through Cast(to=FLOAT) (a half-
precision checkpoint computing in f32, qslaw_tools.narrow_weights) are used
without an f32 copy: a quantised layer's codes come from the narrow data,
a frozen weight stays narrow in the library (widened where it is read), and
a trainable one becomes the f32 parameter AdamW needs. Every result equals,
bit for bit, that of the same model with the weights stored as the f32
values the narrow ones widen to (widening is exact), and onnxruntime's."""
import os
import subprocess

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from qslaw_tools.narrow_weights import bf16_to_f32, narrow_model, to_bf16_bits
from qslaw_tools.runner import tool
from qslaw_tools.runtime import Model


def model(w1, w2):
    # Weights of 131072 elements: above the import's constant-folding limit,
    # so the Cast stays an op and the weights stay narrow constants.
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w1"], ["h"], name="/m/layers.0/up/MatMul"),
         helper.make_node("Relu", ["h"], ["r"], name="/m/layers.0/act"),
         helper.make_node("MatMul", ["r", "w2"], ["logits"], name="/m/head/MatMul")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 256])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 8, 256])],
        initializer=[numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("narrow")
    rng = np.random.default_rng(0)
    w1 = (0.05 * rng.standard_normal((256, 512))).astype(np.float32)
    w2 = (0.05 * rng.standard_normal((512, 256))).astype(np.float32)
    paths = {}
    for dtype in ("bf16", "f16"):
        paths[dtype] = str(d / f"{dtype}.onnx")
        onnx.save(narrow_model(model(w1, w2), dtype), paths[dtype])
    # What the narrow weights widen to, stored as f32.
    paths["f32"] = str(d / "f32.onnx")
    onnx.save(model(bf16_to_f32(to_bf16_bits(w1)), bf16_to_f32(to_bf16_bits(w2))),
              paths["f32"])
    paths["f32_of_f16"] = str(d / "f32_of_f16.onnx")
    onnx.save(model(w1.astype(np.float16).astype(np.float32),
                    w2.astype(np.float16).astype(np.float32)), paths["f32_of_f16"])
    x = rng.standard_normal((1, 8, 256)).astype(np.float32)
    return d, paths, x


def compile_(src, out, *args):
    subprocess.run([tool("qslaw-compile"), src, "-o", out, *args], check=True,
                   capture_output=True, text=True)
    return out


def test_float_library_reads_the_narrow_weights(models):
    d, paths, x = models
    for dtype in ("bf16", "f16"):
        (y,) = Model(compile_(paths[dtype], str(d / f"{dtype}_f.so"))).run(x=x)
        (r,) = ort.InferenceSession(paths[dtype], providers=["CPUExecutionProvider"]).run(
            None, {"x": x})
        # Same widened weights, f32 sums of 256 and 512 terms on both sides.
        np.testing.assert_allclose(y, r, rtol=1e-5, atol=1e-5 * np.abs(r).max())
    (a,) = Model(str(d / "bf16_f.so")).run(x=x)
    (b,) = Model(compile_(paths["f32"], str(d / "f32_f.so"))).run(x=x)
    assert np.array_equal(a, b)


def test_quantised_from_the_narrow_data_without_an_f32_copy(models):
    d, paths, x = models
    q = ["--quantize=w4g32", "--quantize-layers=.*layers.*"]
    ir = open(compile_(paths["bf16"], str(d / "q.mlir"), "--emit=mlir", *q)).read()
    assert ir.count("qslaw.qmatmul") == 1
    # w1 became codes: neither its bf16 data nor an f32 copy is left; the
    # frozen head weight stays bf16, widened where it is read.
    assert "dense_resource<w1>" not in ir and "tensor<256x512xf32>" not in ir
    assert "dense_resource<w2> : tensor<512x256xbf16>" in ir and "arith.extf" in ir
    assert "tensor<512x256xf32> = arith.constant" not in ir
    (a,) = Model(compile_(paths["bf16"], str(d / "bf16_q.so"), *q)).run(x=x)
    (b,) = Model(compile_(paths["f32"], str(d / "f32_q.so"), *q)).run(x=x)
    assert np.array_equal(a, b)


def test_trainable_narrow_weight_becomes_an_f32_parameter(models):
    d, paths, x = models
    args = ["--train", "--quantize=w4g32", "--quantize-layers=.*layers.*",
            "--train-params=w2"]
    grads = []
    for src in ("bf16", "f32"):
        m = Model(compile_(paths[src], str(d / f"{src}_t.so"), *args))
        params = m.signature.training.params
        assert [(p.name, p.kind) for p in params] == [("w1.scales", "scale"),
                                                            ("w2", "float")]
        init = m.run_function("init_params", {})
        assert init[1].dtype == np.float32 and init[1].shape == (512, 256)
        feeds = {p.name: v for p, v in zip(params, init)}
        feeds.update(x=x, labels=np.arange(8, dtype=np.int64).reshape(1, 8))
        grads.append(m.run_function("grad_step", feeds))
    for a, b in zip(*grads):
        assert np.array_equal(a, b)


def test_lora_on_a_float_linear_with_a_narrow_weight(models):
    """Full-precision LoRA selects a float linear whose weight is stored
    bf16 (the weight stays a frozen bf16 constant, widened where it is
    read); its adapters and gradients equal those of the f32-stored model."""
    d, paths, x = models
    args = ["--train", "--train-scales=", "--train-params=", "--train-lora=.*head.*",
            "--lora-rank=4", "--lora-alpha=8"]
    grads = []
    for src in ("bf16", "f32"):
        out = compile_(paths[src], str(d / f"{src}_lora.so"), *args)
        if src == "bf16":
            ir = open(compile_(paths[src], str(d / "lora.mlir"), "--emit=mlir", *args)).read()
            assert "dense_resource<w2> : tensor<512x256xbf16>" in ir
        m = Model(out)
        params = m.signature.training.params
        assert [(p.kind, p.source) for p in params] == [("lora_A", "/m/head/MatMul"),
                                                       ("lora_B", "/m/head/MatMul")]
        init = m.run_function("init_params", {})
        feeds = {p.name: v for p, v in zip(params, init)}
        # B starts at zero (the adapter adds nothing yet); move it so that
        # both adapter gradients are non-zero.
        feeds[params[1].name] = np.full(init[1].shape, 0.01, np.float32)
        feeds.update(x=x, labels=np.arange(8, dtype=np.int64).reshape(1, 8))
        grads.append(m.run_function("grad_step", feeds))
    assert all(np.abs(g).max() > 0 for g in grads[0][1:])
    for a, b in zip(*grads):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("dtype", ["bf16", "f16"])
def test_gamma_trainer_reads_the_narrow_weight(models, dtype):
    """Gamma mode re-quantises the weight every step: the CPU trainer reads
    the bf16/f16 constant as the model stores it ([K, N], unwidened; the
    kernels widen as they read), with no f32 copy in the IR, and its step
    (loss, gamma gradients) equals, bit for bit, that of the model storing
    the widened f32 values."""
    d, paths, x = models
    args = ["--train", "--quantize=w4g32,mode=gamma", "--quantize-layers=.*layers.*"]
    ir = open(compile_(paths[dtype], str(d / f"g_{dtype}.mlir"), "--emit=mlir",
                       *args)).read()
    assert f"dense_resource<w1> : tensor<256x512x{dtype}>" in ir
    assert "tensor<256x512xf32> = arith.constant" not in ir
    assert "tensor<512x256xf32> = arith.constant" not in ir
    steps = []
    for src in (dtype, "f32" if dtype == "bf16" else "f32_of_f16"):
        m = Model(compile_(paths[src], str(d / f"g_{src}.so"), *args))
        params = m.signature.training.params
        assert [(p.name, p.kind) for p in params] == [("w1.gamma", "gamma")]
        init = m.run_function("init_params", {})
        # gamma away from 1, so that the clamp masks differ per group.
        rng = np.random.default_rng(3)
        feeds = {params[0].name: (init[0] * rng.uniform(0.7, 1.3, init[0].shape))
                 .astype(np.float32)}
        feeds.update(x=x, labels=np.arange(8, dtype=np.int64).reshape(1, 8))
        steps.append(m.run_function("grad_step", feeds))
    assert np.abs(steps[0][1]).max() > 0
    for a, b in zip(*steps):
        assert np.array_equal(a, b)


def gather_model(table, w1, w2):
    """An embedding read by Gather, a layer, and a 4000-wide head: the
    head's GEMMs take two blocks of the narrow-B GEMM (forward: column
    blocks; the input gradient: depth blocks, accumulating)."""
    g = helper.make_graph(
        [helper.make_node("Gather", ["table", "ids"], ["e"], name="/m/embed/Gather"),
         helper.make_node("MatMul", ["e", "w1"], ["h"], name="/m/layers.0/up/MatMul"),
         helper.make_node("Relu", ["h"], ["r"], name="/m/layers.0/act"),
         helper.make_node("MatMul", ["r", "w2"], ["logits"], name="/m/head/MatMul")], "g",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 16, 4000])],
        initializer=[numpy_helper.from_array(table, "table"),
                     numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])


@pytest.mark.parametrize("dtype", ["bf16", "f16"])
def test_frozen_narrow_weights_are_read_narrow(tmp_path, dtype):
    """Frozen half-precision weights are never widened whole at run time:
    the library GEMMs read them narrow (..._f32_w<type> entries, B widened a
    block at a time) and the Gather reads its table narrow. Forward within
    f32 rounding of onnxruntime and of the model storing the widened f32
    values; a training step's loss and gradient (its head's input gradient
    runs through the narrow row-selecting GEMM) within f32 rounding of that
    model's."""
    rng = np.random.default_rng(1)
    table = rng.standard_normal((5000, 96)).astype(np.float32)
    w1 = (0.1 * rng.standard_normal((96, 96))).astype(np.float32)
    w2 = (0.1 * rng.standard_normal((96, 4000))).astype(np.float32)
    narrow = str(tmp_path / "n.onnx")
    onnx.save(narrow_model(gather_model(table, w1, w2), dtype), narrow)
    widen = (lambda a: bf16_to_f32(to_bf16_bits(a))) if dtype == "bf16" else (
        lambda a: a.astype(np.float16).astype(np.float32))
    wide = str(tmp_path / "w.onnx")
    onnx.save(gather_model(widen(table), widen(w1), widen(w2)), wide)
    ids = rng.integers(0, 5000, (1, 16)).astype(np.int64)

    lib = compile_(narrow, str(tmp_path / "n.so"))
    syms = subprocess.run(["nm", "-D", lib], capture_output=True, text=True).stdout
    assert f"_mlir_ciface_qslaw_ukernel_sgemm_f32_w{dtype}" in syms
    (y,) = Model(lib).run(ids=ids)
    (r,) = ort.InferenceSession(narrow, providers=["CPUExecutionProvider"]).run(None, {"ids": ids})
    (w,) = Model(compile_(wide, str(tmp_path / "w.so"))).run(ids=ids)
    # f32 sums of 96 terms, in different orders.
    for ref in (r, w):
        np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())

    args = ["--train", "--train-scales=", "--train-params=w1"]
    tlib = compile_(narrow, str(tmp_path / "nt.so"), *args)
    syms = subprocess.run(["nm", "-D", tlib], capture_output=True, text=True).stdout
    assert f"_mlir_ciface_qslaw_ukernel_sgemm_rows_f32_w{dtype}" in syms
    steps = []
    for path in (tlib, compile_(wide, str(tmp_path / "wt.so"), *args)):
        m = Model(path)
        init = m.run_function("init_params", {})
        feeds = {p.name: v for p, v in zip(m.signature.training.params, init)}
        feeds.update(ids=ids, labels=rng.integers(0, 4000, (1, 16)).astype(np.int64)
                     if not steps else steps[0][1])
        out = m.run_function("grad_step", feeds)
        steps.append((out, feeds["labels"]))
    (a, _), (b, _) = steps
    # The loss, and w1's gradient: 4000-term sums over the head's depth.
    np.testing.assert_allclose(a[0], b[0], rtol=1e-5)
    np.testing.assert_allclose(a[1], b[1], rtol=1e-4, atol=1e-5 * np.abs(b[1]).max())
    assert np.abs(b[1]).max() > 0
