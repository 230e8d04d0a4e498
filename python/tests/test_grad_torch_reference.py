"""qslaw's fused gradient ops against PyTorch autograd of the fake-quant
reference (python/qslaw_tools/torch_reference.py), in float64 on the
PyTorch side: qmatmul_grad_input (dL/dX), qmatmul_grad_scale (scale mode)
and qmatmul_grad_gamma (gamma mode, STE + clamp mask), with
L = sum(Y * dY) so that dL/dY = dY. fp32 accumulation on our side: relative
tolerance 1e-4 of the gradient scale."""
import numpy as np
import pytest
import torch

from qslaw_tools import torch_reference as tr
from qslaw_tools.runner import run_mlir


def ttype(shape, elem):
    return "tensor<" + "".join(f"{d}x" for d in shape) + elem + ">"


def spec(bits, group, mode):
    g = "per_channel" if group == 0 else f"group = {group}"
    return f"<bits = {bits}, {g}, asym, mode = {mode}>"


def close(got, want):
    want = want.detach().numpy()
    assert np.abs(got - want).max() <= 1e-4 * max(np.abs(want).max(), 1e-12)


@pytest.mark.parametrize("bits,group,k", [(4, 32, 96), (4, 48, 80), (3, 0, 40), (2, 16, 64)])
def test_scale_mode_gradients(bits, group, k):
    rng = np.random.default_rng(bits * 100 + k)
    n, t = 12, 7
    j = -(-k // (k if group == 0 else group))
    codes = rng.integers(0, 2 ** bits, (n, k)).astype(np.uint8)
    zeros = rng.integers(0, 2 ** bits, (n, j)).astype(np.uint8)
    scales = (rng.random((n, j)) * 0.1 + 0.01).astype(np.float32)
    x = rng.standard_normal((t, k)).astype(np.float32)
    dy = rng.standard_normal((t, n)).astype(np.float32)

    X = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    S = torch.tensor(scales, dtype=torch.float64, requires_grad=True)
    W = tr.dequant_scale_mode(torch.tensor(codes, dtype=torch.float64), S,
                              torch.tensor(zeros, dtype=torch.float64), group)
    (tr.linear(X, W) * torch.tensor(dy, dtype=torch.float64)).sum().backward()

    qt, st, zt = ttype((n, k), f"i{bits}"), ttype((n, j), "f32"), ttype((n, j), f"i{bits}")
    xt, dyt = ttype((t, k), "f32"), ttype((t, n), "f32")
    sp = spec(bits, group, "scale")
    mlir = f"""
func.func @main(%x: {xt}, %dy: {dyt}, %q: {qt}, %s: {st}, %z: {zt}) -> ({xt}, {st}) {{
  %dx = qslaw.qmatmul_grad_input %dy, %q scales(%s) zeros(%z) {sp} : ({dyt}, {qt}, {st}, {zt}) -> {xt}
  %ds = qslaw.qmatmul_grad_scale %x, %dy, %q zeros(%z) {sp} : ({xt}, {dyt}, {qt}, {zt}) -> {st}
  return %dx, %ds : {xt}, {st}
}}"""
    dx, ds = run_mlir(mlir, [x, dy, codes, scales, zeros], num_outputs=2)
    close(dx, X.grad)
    close(ds, S.grad)


@pytest.mark.parametrize("bits,group,k", [(4, 32, 96), (4, 48, 80), (3, 0, 40)])
def test_gamma_mode_gradient(bits, group, k):
    rng = np.random.default_rng(bits * 1000 + k)
    n, t = 10, 6
    j = -(-k // (k if group == 0 else group))
    w = rng.standard_normal((n, k)).astype(np.float32)
    scales = np.repeat(np.abs(w).max(1, keepdims=True) / (2 ** bits - 1), j, 1).astype(np.float32) * 1.4
    gamma = (0.7 + 0.6 * rng.random((n, j))).astype(np.float32)
    zeros = rng.integers(0, 2 ** bits, (n, j)).astype(np.uint8)
    x = rng.standard_normal((t, k)).astype(np.float32)
    dy = rng.standard_normal((t, n)).astype(np.float32)

    # float32 on the quantisation decision (it decides rounding ties and the
    # mask exactly as the compiled code does), float64 for the rest.
    G = torch.tensor(gamma, dtype=torch.float32, requires_grad=True)
    W_hat = tr.dequant_gamma_mode(torch.tensor(w), torch.tensor(scales), G,
                                  torch.tensor(zeros, dtype=torch.float32), bits, group)
    y = torch.tensor(x, dtype=torch.float64) @ W_hat.double().T
    (y * torch.tensor(dy, dtype=torch.float64)).sum().backward()

    wt, st, zt = ttype((n, k), "f32"), ttype((n, j), "f32"), ttype((n, j), f"i{bits}")
    xt, dyt = ttype((t, k), "f32"), ttype((t, n), "f32")
    mlir = f"""
func.func @main(%x: {xt}, %dy: {dyt}, %w: {wt}, %s: {st}, %g: {st}, %z: {zt}) -> {st} {{
  %dg = qslaw.qmatmul_grad_gamma %x, %dy, %w scales(%s) gamma(%g) zeros(%z) {spec(bits, group, "gamma")}
      : ({xt}, {dyt}, {wt}, {st}, {st}, {zt}) -> {st}
  return %dg : {st}
}}"""
    (dg,) = run_mlir(mlir, [x, dy, w, scales, gamma, zeros])
    close(dg, G.grad.double())
