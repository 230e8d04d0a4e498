"""LoRA on the quantized linears (qslaw-compile --train-lora) against the
PyTorch reference: PEFT's LoRA (dropout 0) around the fake-quant linear of
qslaw_tools/torch_llava.py, autograd, torch.optim.AdamW.

- gradients of A and B (and of the scales when both train) within 1e-4
  relative (fp32: norm of the difference over norm of the reference), at a
  point where B != 0 so that dA is not zero;
- the initial adapters are PEFT's: A in U(-1/sqrt(K), 1/sqrt(K)), B = 0,
  so the model starts as the quantized base;
- the losses of 20 AdamW steps within 1e-4;
- bad options are named errors.
"""
import os
import subprocess

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from qslaw_tools import torch_llava as tl  # noqa: E402
from qslaw_tools.runner import tool  # noqa: E402
from qslaw_tools.runtime import Model  # noqa: E402
from test_train_step_torch import FIX, LAYERS, batch, run_adamw_steps  # noqa: E402

ADAPTED = r".*language_model.*layers.*(q_proj|v_proj|down_proj).*"
RANK, ALPHA = 4, 8.0


def compile_lora(tmp_path, train_scales, extra=(), quantize=True):
    out = str(tmp_path / f"lora_{train_scales}.so")
    q = ["--quantize=w4g32", f"--quantize-layers={LAYERS}"] if quantize else []
    r = subprocess.run([tool("qslaw-compile"), os.path.join(FIX, "tiny_llava.onnx"), *q,
                        f"--train-scales={'.*' if train_scales else ''}",
                        "--train-params=", f"--train-lora={ADAPTED}",
                        f"--lora-rank={RANK}", f"--lora-alpha={ALPHA}",
                        "--train", "-o", out, *extra],
                       capture_output=True, text=True)
    return r, out


def module_path(name):
    """'/language_model/model/layers.0/self_attn/q_proj/MatMul.lora_A' ->
    ('language_model.model.layers.0.self_attn.q_proj', 'lora_A')."""
    node, _, suffix = name.rpartition(".")
    path = ".".join(node.strip("/").split("/")[:-1])
    return (path[2:] if path.startswith("m.") else path), suffix


def reference(lib, values, train_scales, bits=4):
    params = lib.signature.training.params
    adapters = {}
    for p, v in zip(params, values):
        path, suffix = module_path(p.name)
        if p.kind.startswith("lora_"):
            adapters.setdefault(path, [None, None])[suffix == "lora_B"] = v
    return tl.reference_lora_trainer(os.path.join(FIX, "tiny_llava.onnx"), 4, LAYERS,
                                     bits, 32, "scale", adapters, ALPHA, train_scales)


@pytest.mark.parametrize("train_scales,quantize", [(False, True), (True, True), (False, False)],
                         ids=["quantized", "quantized_and_scales", "full_precision"])
def test_lora_gradients_match_torch(tmp_path, train_scales, quantize):
    r, out = compile_lora(tmp_path, train_scales, quantize=quantize)
    assert r.returncode == 0, r.stderr
    lib = Model(out)
    sig = lib.signature.training
    assert (sig.lora.layers, sig.lora.rank, sig.lora.alpha) == (ADAPTED, RANK, ALPHA)
    params = sig.params
    kinds = [p.kind for p in params]
    assert kinds.count("lora_A") == kinds.count("lora_B") == 6  # 3 linears x 2 layers
    assert ("scale" in kinds) == train_scales and "float" not in kinds
    init = lib.run_function("init_params", {})
    rng = np.random.default_rng(0)
    values = []
    for p, v in zip(params, init):
        if p.kind == "lora_A":
            bound = 1 / np.sqrt(v.shape[1])
            assert v.shape[0] == RANK and np.abs(v).max() < bound
            assert np.abs(v).max() > 0.5 * bound  # uniform over the range
        if p.kind == "lora_B":
            assert v.shape[1] == RANK and not v.any()
            v = (0.05 * rng.standard_normal(v.shape)).astype(np.float32)
        values.append(v)
    ids, pix, mask, labels = batch("tiny_llava")
    feeds = {p.name: v for p, v in zip(params, values)}
    feeds.update(input_ids=ids, pixel_values=pix, attention_mask=mask, labels=labels)
    loss, *grads = lib.run_function("grad_step", feeds)

    model, trainable = reference(lib, values, train_scales, 4 if quantize else None)
    t = [torch.from_numpy(a) for a in (ids, pix, mask, labels)]
    ref_loss = tl.next_token_loss(tl.forward_logits(model, *t[:3]), t[3])
    ref_loss.backward()
    assert abs(float(loss) - ref_loss.item()) <= 1e-5 * abs(ref_loss.item())
    assert len(params) == len(trainable)
    for p, g in zip(params, grads):
        path, suffix = module_path(p.name)
        ref = trainable[path + "." + suffix if p.kind.startswith("lora_") else path]
        r_ = ref.grad.numpy()
        assert np.linalg.norm(r_) > 0, p.name
        rel = np.linalg.norm(g - r_) / np.linalg.norm(r_)
        assert rel <= 1e-4, (p.name, rel)


def test_lora_twenty_adamw_steps_match_torch(tmp_path):
    r, out = compile_lora(tmp_path, False)
    assert r.returncode == 0, r.stderr
    lib = Model(out)
    lr = 1e-2
    init = lib.run_function("init_params", {})
    ours, (final, _, _) = run_adamw_steps(lib, "tiny_llava", lr=lr, steps=20)
    model, trainable = reference(lib, init, False)
    opt = torch.optim.AdamW(list(trainable.values()), lr=lr, weight_decay=0.0)
    ids, pix, mask, labels = batch("tiny_llava")
    t = [torch.from_numpy(a) for a in (ids, pix, mask, labels)]
    ref = []
    for _ in range(20):
        opt.zero_grad()
        loss = tl.next_token_loss(tl.forward_logits(model, *t[:3]), t[3])
        loss.backward()
        opt.step()
        ref.append(loss.item())
    np.testing.assert_allclose(ours, ref, rtol=1e-4)
    assert ours[-1] < ours[0] - 0.1  # it learns
    # The step-0 model is the quantized base (B = 0): the loss equals the
    # frozen-scales base's.
    params = lib.signature.training.params
    assert any(p.kind == "lora_B" and v.any() for p, v in zip(params, final))


@pytest.mark.parametrize("args,message", [
    (["--lora-rank=0"], "--lora-rank=0: the rank must be >= 1"),
    (["--lora-rank=1000"], "rank 1000 is outside [1, 64] for layer"),
    (["--train-lora=.*nothing.*"], "selects no linear layer"),
    (["--train-lora=("], "invalid layers regex '('"),
    (["--train-lora=", "--lora-rank=4"], "--lora-rank, --lora-alpha and --lora-seed apply to"),
])
def test_lora_bad_options(tmp_path, args, message):
    r, out = compile_lora(tmp_path, False, args)
    assert r.returncode != 0 and message in r.stderr, r.stderr
    assert not os.path.exists(out)


def test_scale_start_layer(tmp_path):
    """--scale-start-layer=0 (the reference's --start_layer): only decoder
    layer 1 of the two trains its scales; the projector still trains."""
    out = str(tmp_path / "s.so")
    r = subprocess.run([tool("qslaw-compile"), os.path.join(FIX, "tiny_llava.onnx"),
                        "--quantize=w4g32", f"--quantize-layers={LAYERS}",
                        "--scale-start-layer=0", "--train", "-o", out],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    params = Model(out).signature.training.params
    scales = [p.name for p in params if p.kind == "scale"]
    assert len(scales) == 7 and all("/layers.1/" in n for n in scales), scales
    assert any(p.kind == "float" for p in params)
    r = subprocess.run([tool("qslaw-compile"), os.path.join(FIX, "tiny_llava.onnx"),
                        "--quantize=w4g32", "--scale-start-layer=-2", "--train",
                        "-o", str(tmp_path / "bad.so")], capture_output=True, text=True)
    assert r.returncode == 1
    assert "--scale-start-layer=-2: expected a layer index >= 0, or -1" in r.stderr
