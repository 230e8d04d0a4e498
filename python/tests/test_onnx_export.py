"""The trainer's ONNX export (--export-onnx): after training the tiny LLaVA,
onnxruntime runs the exported model (MatMulNBits or block-wise QDQ) and its
logits match our compiled forward_params with the learned tensors.

Tolerance: both sides dequantise the same integer codes with the same f32
scales and accumulate in f32; only summation order differs, which for K <=
128 and |logits| < 1 is ~1e-6. The acceptance bound is 1e-3. onnxruntime
fuses DequantizeLinear+MatMul into MatMulNBits with accuracy level 4
(int8-quantised activations, ~5e-3 off) unless the session says level 0,
which the QDQ comparison sets (see docs/Training.md)."""
import json
import os
import subprocess

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from qslaw_tools.runner import ROOT, tool
from qslaw_tools.runtime import Model

FIX = os.path.join(ROOT, "test", "fixtures")
SRC = os.path.join(FIX, "tiny_llava.onnx")
DATA = os.path.join(FIX, "train", "records.jsonl")
LAYERS = r"--quantize-layers=.*language_model.*layers.*"
N_LAYERS = 14  # 2 decoder layers x (q, k, v, o, gate, up, down)


@pytest.fixture(scope="module")
def libs(tmp_path_factory):
    d = tmp_path_factory.mktemp("export")
    out = {}
    for name, q in [("w4", "w4g32"), ("w3gamma", "w3g32,mode=gamma"),
                    ("w8sym", "w8g16,sym")]:
        path = str(d / f"{name}.so")
        subprocess.run([tool("qslaw-compile"), SRC, f"--quantize={q}", LAYERS,
                        "--train", "-o", path], check=True, capture_output=True)
        out[name] = path
    return out


def inputs():
    return {k: np.load(os.path.join(FIX, f"tiny_llava.{k}.npy"))
            for k in ["input_ids", "pixel_values", "attention_mask"]}


def train_and_export(lib, out, steps, *extra):
    p = subprocess.run([tool("qslaw-train"), f"--model={lib}", f"--data={DATA}",
                        f"--steps={steps}", f"--out={out}", "--quiet",
                        # gamma starts at 1, scales at ~1e-2: a gamma rate
                        # large enough to move codes in 8 steps.
                        "--lr=0.05" if "gamma" in lib else "--lr=2e-3",
                        f"--export-params={out}/params", f"--export-onnx={out}/model.onnx",
                        *extra], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return os.path.join(out, "model.onnx")


def ours(lib, params_dir):
    man = json.load(open(os.path.join(params_dir, "params.json")))
    params = {p["name"]: np.load(os.path.join(params_dir, p["file"]))
              for p in man["params"]}
    res = Model(lib).run_function("forward_params", {**params, **inputs()})
    return next(iter(res.values())) if isinstance(res, dict) else res[0]


def ort_logits(path):
    so = ort.SessionOptions()
    so.add_session_config_entry("session.qdq_matmulnbits_accuracy_level", "0")
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    return sess.run(None, inputs())[0]


def op_count(path, op):
    return sum(n.op_type == op for n in onnx.load(path).graph.node)


@pytest.mark.parametrize("lib,fmt,op", [
    ("w4", "matmulnbits", "MatMulNBits"),
    ("w4", "qdq", "DequantizeLinear"),
    ("w3gamma", "matmulnbits", "DequantizeLinear"),  # 3 bits: QDQ fallback
    ("w8sym", "matmulnbits", "MatMulNBits"),
])
def test_export_matches_our_forward(libs, tmp_path, lib, fmt, op):
    out = str(tmp_path / "run")
    path = train_and_export(libs[lib], out, 8, f"--export-format={fmt}")
    onnx.checker.check_model(path)
    assert op_count(path, op) == N_LAYERS
    ref, got = ort_logits(path), ours(libs[lib], os.path.join(out, "params"))
    assert np.abs(ref - got).max() < 1e-3, np.abs(ref - got).max()
    # The quantized layers' float weights are gone from the export.
    src_inits = {i.name for i in onnx.load(SRC).graph.initializer}
    m = onnx.load(path)
    kept = {i.name for i in m.graph.initializer} & src_inits
    q_weights = {e["weight"] for e in json.load(open(os.path.join(out, "params", "params.json")))
                 ["training"]["layers"]}
    assert not (kept & q_weights)


@pytest.mark.parametrize("lib", ["w4", "w3gamma"])
def test_export_carries_what_was_learned(libs, tmp_path, lib):
    """An RTN export (--steps=0) and a trained export differ in onnxruntime,
    and each matches our forward with its own tensors: the learned scales
    (scale mode) and the codes recomputed from the learned gamma (gamma
    mode) made it into the file."""
    rtn = train_and_export(libs[lib], str(tmp_path / "rtn"), 0)
    trained = train_and_export(libs[lib], str(tmp_path / "trained"), 8)
    a, b = ort_logits(rtn), ort_logits(trained)
    assert np.abs(a - b).max() > 1e-4
    assert np.abs(a - ours(libs[lib], str(tmp_path / "rtn" / "params"))).max() < 1e-3
    if lib == "w3gamma":
        # gamma mode: scales are frozen, so a changed output means changed codes.
        def codes(p):
            m = onnx.load(p)
            return {i.name: onnx.numpy_helper.to_array(i) for i in m.graph.initializer
                    if i.name.endswith("_quantized")}
        ca, cb = codes(rtn), codes(trained)
        assert ca.keys() == cb.keys() and len(ca) == N_LAYERS
        assert any((ca[k] != cb[k]).any() for k in ca)


def test_export_errors(libs, tmp_path):
    lib = libs["w4"]
    base = [tool("qslaw-train"), f"--model={lib}", f"--data={DATA}", "--steps=0",
            f"--out={tmp_path}/o", "--quiet"]
    p = subprocess.run(base + [f"--export-onnx={tmp_path}/m.onnx", "--export-format=int4"],
                       capture_output=True, text=True)
    assert p.returncode != 0 and "--export-format=int4" in p.stderr
    p = subprocess.run(base + [f"--export-onnx={tmp_path}/m.onnx",
                               f"--source-model={tmp_path}/missing.onnx"],
                       capture_output=True, text=True)
    assert p.returncode != 0 and "missing.onnx" in p.stderr and "not found" in p.stderr
    # A source model whose quantized node was renamed: the node is named.
    m = onnx.load(SRC)
    node = next(n for n in m.graph.node
                if n.op_type == "MatMul" and "language_model/layers.0/self_attn/q_proj" in n.name)
    old = node.name
    node.name = "renamed"
    onnx.save(m, str(tmp_path / "edited.onnx"))
    p = subprocess.run(base + [f"--export-onnx={tmp_path}/m.onnx",
                               f"--source-model={tmp_path}/edited.onnx"],
                       capture_output=True, text=True)
    assert p.returncode != 0 and old in p.stderr and "not in the source model" in p.stderr
    assert not os.path.exists(tmp_path / "m.onnx")
    # Missing directories are made; an impossible one (under a file) is an
    # error, with no partial file left behind.
    p = subprocess.run(base + [f"--export-onnx={tmp_path}/new/dir/m.onnx"],
                       capture_output=True, text=True)
    assert p.returncode == 0 and os.path.exists(tmp_path / "new" / "dir" / "m.onnx")
    (tmp_path / "afile").write_text("")
    p = subprocess.run(base + [f"--export-onnx={tmp_path}/afile/m.onnx"],
                       capture_output=True, text=True)
    assert p.returncode != 0 and "Not a directory" in p.stderr
    assert not os.path.exists(tmp_path / "afile.tmp")


@pytest.mark.parametrize("quantize", ["w4g32", "w4g32,mode=gamma"])
def test_export_of_half_precision_weights(tmp_path, quantize):
    """A model whose weights are stored as bf16 and read through
    Cast(to=FLOAT) (qslaw_tools.narrow_weights): the quantised layers'
    bf16 weights and their Casts give way to MatMulNBits, the learned
    projector (a bf16 weight trained as an f32 parameter) is written as
    FLOAT with the learned values, and onnxruntime matches our forward.
    In gamma mode the trainer re-quantises the bf16 weights as stored every
    step; the export's codes come from the learned gamma."""
    from qslaw_tools.narrow_weights import narrow_model
    src = str(tmp_path / "bf16.onnx")
    onnx.save(narrow_model(onnx.load(SRC), "bf16"), src)
    lib = str(tmp_path / "bf16.so")
    subprocess.run([tool("qslaw-compile"), src, f"--quantize={quantize}", LAYERS, "--train",
                    "--train-params=.*multi_modal_projector.*", "-o", lib],
                   check=True, capture_output=True)
    path = train_and_export(lib, str(tmp_path / "run"), 8)
    onnx.checker.check_model(path)
    assert op_count(path, "MatMulNBits") == N_LAYERS
    params = os.path.join(tmp_path, "run", "params")
    ref, got = ort_logits(path), ours(lib, params)
    assert np.abs(ref - got).max() < 1e-3, np.abs(ref - got).max()

    man = json.load(open(os.path.join(params, "params.json")))
    q_weights = {e["weight"] for e in man["training"]["layers"]}
    source = onnx.load(src)
    narrow = {i.name for i in source.graph.initializer if i.data_type == onnx.TensorProto.BFLOAT16}
    assert len(q_weights) == N_LAYERS and q_weights <= narrow
    m = onnx.load(path)
    inits = {i.name: i for i in m.graph.initializer}
    assert not (q_weights & set(inits))
    casts = [n.input[0] for n in m.graph.node if n.op_type == "Cast"]
    assert not (q_weights & set(casts))
    # The other narrow weights (vision tower, embeddings) keep their Casts.
    assert len(casts) == sum(n.op_type == "Cast" for n in source.graph.node) - N_LAYERS
    floats = [p for p in man["params"] if p["kind"] == "float"]
    assert len(floats) == 2
    for p in floats:
        init = inits[p["source"]]
        assert init.data_type == onnx.TensorProto.FLOAT
        np.testing.assert_array_equal(onnx.numpy_helper.to_array(init),
                                      np.load(os.path.join(params, p["file"])))
