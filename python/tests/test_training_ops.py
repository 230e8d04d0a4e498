"""Loss and optimizer ops against PyTorch: qslaw.cross_entropy (mean over
labels != ignore_index) and its gradient vs torch.nn.functional.cross_entropy
+ autograd (float64 reference; fp32 on our side: 1e-5 relative), and
qslaw.adamw vs torch.optim.AdamW over several steps (1e-6 relative)."""
import numpy as np
import pytest
import torch

from qslaw_tools.runner import run_mlir


def tt(shape, elem):
    return "tensor<" + "".join(f"{d}x" for d in shape) + elem + ">"


@pytest.mark.parametrize("lead", [(7,), (2, 5)])
@pytest.mark.parametrize("masked", [0, 3])
def test_cross_entropy_and_grad(lead, masked):
    rng = np.random.default_rng(len(lead) * 10 + masked)
    v = 11
    logits = (rng.standard_normal(lead + (v,)) * 3).astype(np.float32)
    labels = rng.integers(0, v, lead).astype(np.int64)
    flat = labels.reshape(-1)
    flat[:masked] = -100
    dloss = np.array(0.7, np.float32)
    lt, lb, s = tt(lead + (v,), "f32"), tt(lead, "i64"), "tensor<f32>"
    mlir = f"""
func.func @main(%x: {lt}, %y: {lb}, %d: {s}) -> ({s}, {lt}) {{
  %l = qslaw.cross_entropy %x, %y : ({lt}, {lb}) -> {s}
  %g = qslaw.cross_entropy_grad %x, %y, %d : ({lt}, {lb}, {s}) -> {lt}
  return %l, %g : {s}, {lt}
}}"""
    loss, grad = run_mlir(mlir, [logits, labels, dloss], num_outputs=2)
    X = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    ref = torch.nn.functional.cross_entropy(X.reshape(-1, v), torch.tensor(flat),
                                            ignore_index=-100)
    (ref * float(dloss)).backward()
    assert abs(float(loss) - ref.item()) <= 1e-5 * abs(ref.item())
    g = X.grad.numpy()
    assert np.abs(grad - g).max() <= 1e-5 * np.abs(g).max()


def test_cross_entropy_all_masked_is_zero():
    logits = np.zeros((3, 4), np.float32)
    labels = np.full(3, -100, np.int64)
    mlir = """
func.func @main(%x: tensor<3x4xf32>, %y: tensor<3xi64>) -> tensor<f32> {
  %l = qslaw.cross_entropy %x, %y : (tensor<3x4xf32>, tensor<3xi64>) -> tensor<f32>
  return %l : tensor<f32>
}"""
    (loss,) = run_mlir(mlir, [logits, labels])
    assert float(loss) == 0.0


def test_adamw_matches_torch():
    rng = np.random.default_rng(0)
    shape = (6, 5)
    p0 = rng.standard_normal(shape).astype(np.float32)
    lr, wd, b1, b2, eps = 2e-3, 0.1, 0.85, 0.99, 1e-6
    P = torch.tensor(p0.copy(), requires_grad=True)
    opt = torch.optim.AdamW([P], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)
    t = tt(shape, "f32")
    mlir = f"""
func.func @main(%p: {t}, %g: {t}, %m: {t}, %v: {t}, %lr: tensor<f32>, %s: tensor<f32>) -> ({t}, {t}, {t}) {{
  %p2, %m2, %v2 = qslaw.adamw %p, %g, %m, %v lr(%lr) step(%s) {{beta1 = {b1} : f32, beta2 = {b2} : f32, eps = {eps:.6e} : f32, weight_decay = {wd} : f32}}
      : ({t}, {t}, {t}, {t}, tensor<f32>, tensor<f32>) -> ({t}, {t}, {t})
  return %p2, %m2, %v2 : {t}, {t}, {t}
}}"""
    p, m, v = p0.copy(), np.zeros(shape, np.float32), np.zeros(shape, np.float32)
    for step in range(1, 6):
        g = rng.standard_normal(shape).astype(np.float32)
        P.grad = torch.tensor(g)
        opt.step()
        p, m, v = run_mlir(mlir, [p, g, m, v, np.array(lr, np.float32),
                                  np.array(float(step), np.float32)], num_outputs=3)
        want = P.detach().numpy()
        assert np.abs(p - want).max() <= 1e-6 * np.abs(want).max(), step
