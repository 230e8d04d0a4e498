"""The compiled QSLAW training step of the tiny LLaVA fixtures against the
PyTorch reference (qslaw_tools/torch_llava.py: the transformers model with
the ONNX weights, fake-quant linears, autograd, torch.optim.AdamW).

- every trainable gradient of @grad_step (scales or gamma of the language
  model's linears, the projector's weights) within 1e-4 relative (fp32, norm
  of the difference over norm of the reference);
- the losses of 20 @train_step steps (AdamW, lr 2e-3) within 1e-4.
"""
import os
import subprocess

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from qslaw_tools import torch_llava as tl  # noqa: E402
from qslaw_tools.runner import ROOT, tool  # noqa: E402
from qslaw_tools.runtime import Model  # noqa: E402

FIX = os.path.join(ROOT, "test", "fixtures")
LAYERS = r".*language_model.*layers.*"
IMAGE_TOKEN = 31


def compile_trainer(tmp_path, name, mode):
    out = str(tmp_path / f"{name}_{mode}.so")
    subprocess.run([tool("qslaw-compile"), os.path.join(FIX, f"{name}.onnx"),
                    f"--quantize=w4g32,mode={mode}", f"--quantize-layers={LAYERS}",
                    "--train", "-o", out], check=True, capture_output=True)
    return Model(out)


def batch(name):
    ids = np.load(os.path.join(FIX, f"{name}.input_ids.npy"))
    pix = np.load(os.path.join(FIX, f"{name}.pixel_values.npy"))
    mask = np.load(os.path.join(FIX, f"{name}.attention_mask.npy"))
    labels = ids.copy()
    labels[ids == IMAGE_TOKEN] = -100
    labels[:, :3] = -100  # a masked prefix, like a system prompt
    return ids, pix, mask, labels


def reference(name, mode):
    return tl.reference_trainer(os.path.join(FIX, f"{name}.onnx"),
                                kv_heads=4 if name == "tiny_llava" else 2,
                                layers=LAYERS, bits=4, group=32, mode=mode)


def ref_param(trainable, qslaw_name):
    """Our parameter name (ONNX node + suffix) -> the reference tensor; the
    projector's MatMul weights are [K, N] in ONNX, [N, K] in torch."""
    path = ".".join(qslaw_name.strip("/").split("/")[:-1])
    path = path[2:] if path.startswith("m.") else path
    if qslaw_name.endswith(".weight"):
        return trainable[path + ".weight"], True
    return trainable[path], False


def check_gradients_match_torch(lib, name, mode, loss_rtol=1e-5, grad_rtol=1e-4):
    """@grad_step of `lib` (any target) against PyTorch autograd. The
    default tolerances are fp32's; bf16 kernels pass theirs."""
    params = lib.signature.training.params
    init = lib.run_function("init_params", {})
    ids, pix, mask, labels = batch(name)
    feeds = {p.name: v for p, v in zip(params, init)}
    feeds.update(input_ids=ids, pixel_values=pix, attention_mask=mask, labels=labels)
    loss, *grads = lib.run_function("grad_step", feeds)

    model, trainable = reference(name, mode)
    t = [torch.from_numpy(a) for a in (ids, pix, mask, labels)]
    ref_loss = tl.next_token_loss(tl.forward_logits(model, *t[:3]), t[3])
    ref_loss.backward()
    assert abs(float(loss) - ref_loss.item()) <= loss_rtol * abs(ref_loss.item())
    kinds = {p.kind for p in params}
    assert kinds == {"float", "scale" if mode == "scale" else "gamma"}
    assert len(params) == len(trainable)
    for p, g, v in zip(params, grads, init):
        ref, transposed = ref_param(trainable, p.name)
        r = ref.grad.numpy().T if transposed else ref.grad.numpy()
        init_ref = ref.detach().numpy().T if transposed else ref.detach().numpy()
        np.testing.assert_array_equal(v, init_ref)  # same RTN init, bit for bit
        rel = np.linalg.norm(g - r) / np.linalg.norm(r)
        assert rel <= grad_rtol, (p.name, rel)


def run_adamw_steps(lib, name="tiny_llava", lr=2e-3, steps=20, resident=False):
    """`steps` @train_step calls of `lib`; returns the losses and the final
    (params, exp_avg, exp_avg_sq). resident: the parameters and moments stay
    in the session state (on the device for CUDA) between steps, the way
    the trainer runs; otherwise they round-trip through NumPy."""
    params = lib.signature.training.params
    names = [p.name for p in params]
    prefixes = ("", "exp_avg.", "exp_avg_sq.")
    if resident:
        lib.start_training()
    else:
        state = lib.run_function("init_params", {})
        m = [np.zeros_like(p) for p in state]
        v = [np.zeros_like(p) for p in state]
    ids, pix, mask, labels = batch(name)
    ours = []
    for step in range(1, steps + 1):
        feeds = dict(lrs=np.full(len(params), lr, np.float32),
                     step=np.array(step, np.float32), input_ids=ids,
                     pixel_values=pix, attention_mask=mask, labels=labels)
        if not resident:
            feeds.update({n: a for n, a in zip(names, state)})
            feeds.update({"exp_avg." + n: a for n, a in zip(names, m)})
            feeds.update({"exp_avg_sq." + n: a for n, a in zip(names, v)})
        out = lib.train_step(feeds) if resident else lib.run_function("train_step", feeds)
        ours.append(float(out[0]))
        if not resident:
            n = len(params)
            state, m, v = out[2:2 + n], out[2 + n:2 + 2 * n], out[2 + 2 * n:]
    if resident:
        state, m, v = ([lib.get_state(pre + n) for n in names] for pre in prefixes)
    return ours, (state, m, v)


def check_adamw_losses_match_torch(lib, name="tiny_llava", mode="scale", lr=2e-3,
                                   steps=20, resident=False, rtol=1e-4):
    """`steps` @train_step calls of `lib` against torch.optim.AdamW."""
    ours, _ = run_adamw_steps(lib, name, lr, steps, resident)
    ids, pix, mask, labels = batch(name)

    model, trainable = reference(name, mode)
    opt = torch.optim.AdamW(list(trainable.values()), lr=lr, weight_decay=0.0)
    t = [torch.from_numpy(a) for a in (ids, pix, mask, labels)]
    ref = []
    for _ in range(steps):
        opt.zero_grad()
        loss = tl.next_token_loss(tl.forward_logits(model, *t[:3]), t[3])
        loss.backward()
        opt.step()
        ref.append(loss.item())
    np.testing.assert_allclose(ours, ref, rtol=rtol)
    assert ours[-1] < ours[0] - 0.1  # it learns


@pytest.mark.parametrize("name,mode", [("tiny_llava", "scale"), ("tiny_llava", "gamma"),
                                       ("tiny_llava_gqa", "scale")])
def test_gradients_match_torch(tmp_path, name, mode):
    check_gradients_match_torch(compile_trainer(tmp_path, name, mode), name, mode)


def test_twenty_step_losses_match_torch_adamw(tmp_path):
    check_adamw_losses_match_torch(compile_trainer(tmp_path, "tiny_llava", "scale"))
