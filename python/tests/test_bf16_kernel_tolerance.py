"""Why the bf16 tolerances of the hand-written kernels' GPU tests
(test_cuda_target.BF16_*) are what they are: the tiny LLaVA's QSLAW step
simulated in PyTorch with the kernels' rounding, against the fp32 reference.

The simulation rounds what the kernels round (lib/CUDA/Kernels, docs/CUDA.md):
the activations and the dequantised weight to bf16 for the tensor cores, the
forward output and dX to bf16 (the kernels write bf16, the runtime widens
them), dY and X to bf16 for the fused ds; products are accumulated in f32.
The GPU sums in another order, and forms each weight with one bf16 FMA
rather than rounding the f32 weight, so the simulation estimates the error's
size; the tolerances keep a factor of 2 over it, which this test asserts.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import test_cuda_target as cuda_tests  # noqa: E402
import test_train_step_torch as ref_tests  # noqa: E402
from qslaw_tools import torch_llava as tl  # noqa: E402
from qslaw_tools import torch_reference as tr  # noqa: E402


def bf16(t):
    return t.to(torch.bfloat16).to(torch.float32)


class Bf16KernelLinear(torch.autograd.Function):
    """Scale mode's quantised linear with the hand-written kernels' rounding."""

    @staticmethod
    def forward(ctx, x, codes, scales, zeros, group):
        wb = bf16(tr.dequant_scale_mode(codes, scales, zeros, group))
        xb = bf16(x)
        ctx.save_for_backward(xb, wb, codes, zeros)
        ctx.group = group
        return bf16(xb @ wb.T)

    @staticmethod
    def backward(ctx, dy):
        xb, wb, codes, zeros = ctx.saved_tensors
        dyb = bf16(dy)
        dx = bf16(dyb @ wb)
        n, k = codes.shape
        gw = dyb.reshape(-1, n).T @ xb.reshape(-1, k)  # [N, K], f32 sums
        qz = codes - tr.expand_groups(zeros, k, ctx.group)
        ds = (gw * qz).reshape(n, -1, ctx.group).sum(-1)
        return dx, None, ds, None, None


def bf16_forward(self, x):
    y = Bf16KernelLinear.apply(x, self.codes, self.scales, self.zeros, self.group)
    return y + self.bias if self.bias is not None else y  # bias added in f32


def grads(trainable_model):
    model, trainable = trainable_model
    ids, pix, mask, labels = (torch.from_numpy(a) for a in ref_tests.batch("tiny_llava"))
    loss = tl.next_token_loss(tl.forward_logits(model, ids, pix, mask), labels)
    loss.backward()
    return loss.item(), {k: v.grad.clone() for k, v in trainable.items()}


def adamw_losses(steps=20, lr=2e-3):
    model, trainable = ref_tests.reference("tiny_llava", "scale")
    opt = torch.optim.AdamW(list(trainable.values()), lr=lr, weight_decay=0.0)
    ids, pix, mask, labels = (torch.from_numpy(a) for a in ref_tests.batch("tiny_llava"))
    out = []
    for _ in range(steps):
        opt.zero_grad()
        loss = tl.next_token_loss(tl.forward_logits(model, ids, pix, mask), labels)
        loss.backward()
        opt.step()
        out.append(loss.item())
    return np.array(out)


def test_bf16_tolerances_cover_simulated_kernel_rounding(monkeypatch):
    ref_loss, ref_grads = grads(ref_tests.reference("tiny_llava", "scale"))
    ref_steps = adamw_losses()
    ids, pix, mask, _ = (torch.from_numpy(a) for a in ref_tests.batch("tiny_llava"))
    model, _ = ref_tests.reference("tiny_llava", "scale")
    with torch.no_grad():
        ref_logits = tl.forward_logits(model, ids, pix, mask)

    monkeypatch.setattr(tl.QSLAWLinear, "forward", bf16_forward)
    loss, sim_grads = grads(ref_tests.reference("tiny_llava", "scale"))
    sim_steps = adamw_losses()
    model, _ = ref_tests.reference("tiny_llava", "scale")
    with torch.no_grad():
        logits = tl.forward_logits(model, ids, pix, mask)

    def rel(a, b):
        return float(torch.linalg.norm(a - b) / torch.linalg.norm(b))
    logits_err = rel(logits, ref_logits)
    loss_err = abs(loss - ref_loss) / abs(ref_loss)
    grad_err = max(rel(sim_grads[k], ref_grads[k]) for k in ref_grads)
    steps_err = float(np.max(np.abs(sim_steps - ref_steps) / np.abs(ref_steps)))
    print(f"simulated bf16 kernels: logits {logits_err:.2e}, loss {loss_err:.2e}, "
          f"worst gradient {grad_err:.2e}, 20 AdamW losses {steps_err:.2e}")
    assert logits_err > 0 and grad_err > 0  # the rounding is simulated at all
    assert logits_err <= cuda_tests.BF16_LOGITS / 2
    assert loss_err <= cuda_tests.BF16_LOSS / 2
    assert steps_err <= cuda_tests.BF16_ADAMW / 2
    assert grad_err <= cuda_tests.BF16_GRAD / 2
