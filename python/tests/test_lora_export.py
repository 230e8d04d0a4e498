"""Exports of a LoRA-stage run (the recipe's stage 3, chained from a
scale-learning run with --init-params):

- ONNX with each adapter as a low-rank branch beside its MatMulNBits (or
  QDQ) layer: onnxruntime on the export against our @forward_params with
  the learned tensors, max |logit difference| <= 1e-3 (the bound the scale
  exports use; measured 5.2e-7);
- PEFT's adapter format: `peft` loads it onto the float transformers model
  (the fixture's weights), and every adapted module's delta, module(x) -
  base_layer(x), equals (alpha/r) (x A^T) B^T from our learned tensors
  within 1e-5 relative (f32 products of the same numbers);
- bad requests are named errors."""
import json
import os
import subprocess

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")
peft = pytest.importorskip("peft")

from qslaw_tools import torch_llava as tl  # noqa: E402
from qslaw_tools.runner import tool  # noqa: E402
from qslaw_tools.runtime import Model  # noqa: E402
from test_train_step_torch import FIX, LAYERS, batch  # noqa: E402

DATA = os.path.join(FIX, "train", "records.jsonl")
MODEL = os.path.join(FIX, "tiny_llava.onnx")
ADAPTED = r".*language_model.*layers.*(q_proj|v_proj|down_proj).*"
RANK, ALPHA = 4, 8.0


def compile_(out, *args):
    r = subprocess.run([tool("qslaw-compile"), MODEL, "--quantize=w4g32",
                        f"--quantize-layers={LAYERS}", *args, "-o", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return str(out)


def run(trainer, *args):
    return subprocess.run([trainer, f"--data={DATA}", "--quiet", *args],
                          capture_output=True, text=True)


@pytest.fixture(scope="module")
def stage3(tmp_path_factory):
    d = tmp_path_factory.mktemp("lora_export")
    s2 = compile_(d / "s2", "--emit=trainer")
    r = run(s2, "--steps=6", f"--out={d}/s2run", "--lr=2e-2", f"--export-params={d}/s2_params")
    assert r.returncode == 0, r.stderr
    flags = [f"--init-params={d}/s2_params", "--train-scales=", "--train-params=",
             f"--train-lora={ADAPTED}", f"--lora-rank={RANK}", f"--lora-alpha={ALPHA}"]
    trainer = compile_(d / "s3", "--emit=trainer", *flags)
    lib = compile_(d / "s3.so", "--train", *flags)
    r = run(trainer, "--steps=15", f"--out={d}/s3run", "--lr-lora=2e-2", "--preset=none",
            f"--export-params={d}/s3_params", f"--export-onnx={d}/s3.onnx",
            f"--export-peft={d}/peft", "--peft-strip-prefix=m.")
    assert r.returncode == 0, r.stderr
    r2 = run(trainer, "--steps=15", f"--out={d}/s3run_qdq", "--lr-lora=2e-2",
             "--preset=none", f"--export-onnx={d}/s3_qdq.onnx", "--export-format=qdq")
    assert r2.returncode == 0, r2.stderr
    return d, trainer, lib


def learned(export):
    manifest = json.load(open(os.path.join(export, "params.json")))
    return {p["name"]: (p, np.load(os.path.join(export, p["file"])))
            for p in manifest["params"]}


@pytest.mark.parametrize("onnx_name", ["s3.onnx", "s3_qdq.onnx"])
def test_onnx_branch_export_runs_in_onnxruntime(stage3, onnx_name):
    d, _, lib_path = stage3
    lib = Model(lib_path)
    values = learned(d / "s3_params")
    ids, pix, mask, _ = batch("tiny_llava")
    feeds = {p.name: values[p.name][1] for p in lib.signature.training.params}
    feeds.update(input_ids=ids, pixel_values=pix, attention_mask=mask)
    ours = lib.run_function("forward_params", feeds)[0]
    so = ort.SessionOptions()
    so.add_session_config_entry("session.qdq_matmulnbits_accuracy_level", "0")
    sess = ort.InferenceSession(str(d / onnx_name), so, providers=["CPUExecutionProvider"])
    theirs = sess.run(None, {"input_ids": ids, "pixel_values": pix, "attention_mask": mask})[0]
    print("max-logit-diff", onnx_name, np.abs(theirs - ours).max())
    assert np.abs(theirs - ours).max() <= 1e-3
    import onnx
    m = onnx.load(str(d / onnx_name))
    ops = [n.op_type for n in m.graph.node]
    assert sum(n.name.endswith("/lora_add") for n in m.graph.node) == 6
    assert ("MatMulNBits" in ops) == (onnx_name == "s3.onnx")
    # The adapters moved the logits: without the branch they differ.
    base = lib.run_function("forward_params", {**feeds, **{
        p.name: np.zeros_like(values[p.name][1])
        for p in lib.signature.training.params if p.kind == "lora_B"}})[0]
    assert np.abs(base - ours).max() > 1e-3


def test_peft_adapter_loads_onto_the_float_model(stage3):
    d, _, _ = stage3
    cfg = json.load(open(d / "peft" / "adapter_config.json"))
    assert cfg["peft_type"] == "LORA" and cfg["r"] == RANK and cfg["lora_alpha"] == ALPHA
    assert len(cfg["target_modules"]) == 6
    model, _ = tl.load_model(MODEL, kv_heads=4)
    pm = peft.PeftModel.from_pretrained(model, str(d / "peft"))
    values = learned(d / "s3_params")
    rng = np.random.default_rng(0)
    checked = 0
    for name, (p, a) in values.items():
        if p["kind"] != "lora_A":
            continue
        b = values[name[:-len("lora_A")] + "lora_B"][1]
        path = ".".join(p["source"].strip("/").split("/")[:-1])[2:]  # less "m."
        module = pm.base_model.model.get_submodule(path)
        np.testing.assert_array_equal(module.lora_A["default"].weight.detach().numpy(), a)
        np.testing.assert_array_equal(module.lora_B["default"].weight.detach().numpy(), b)
        x = torch.from_numpy(rng.standard_normal((5, a.shape[1])).astype(np.float32))
        with torch.no_grad():
            delta = (module(x) - module.base_layer(x)).numpy()
        want = (ALPHA / RANK) * (x.numpy() @ a.T) @ b.T
        assert np.linalg.norm(delta - want) <= 1e-5 * np.linalg.norm(want)
        checked += 1
    assert checked == 6


def test_export_peft_without_adapters_is_an_error(stage3, tmp_path):
    d, _, _ = stage3
    s2 = str(d / "s2")
    r = run(s2, "--steps=1", f"--out={tmp_path}/o", f"--export-peft={tmp_path}/peft")
    assert r.returncode == 1 and "the model has no LoRA adapters" in r.stderr, r.stderr
    assert not (tmp_path / "peft").exists()
