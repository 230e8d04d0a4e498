"""PyTorch reference of QSLAW's quantized linear layer (shared/QSLAW.md),
used only as an independent reference: fake quantisation recomputed on
every forward, gradients by autograd.

- scale mode: W_hat = s * (q - z) with stored integer codes q, learnable s.
- gamma mode: q = clamp(round(W / (s*gamma)) + z, 0, qmax) with a
  straight-through estimator for round and the clamp's mask; W_hat uses s
  (not s*gamma); gamma is learnable.
"""
import torch


class RoundSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return torch.round(x)  # half to even

    @staticmethod
    def backward(ctx, g):
        return g


def expand_groups(t, k, group):
    g = k if group == 0 else group
    return t.repeat_interleave(g, dim=1)[:, :k]


def dequant_scale_mode(codes, scales, zeros, group):
    k = codes.shape[1]
    return expand_groups(scales, k, group) * (codes - expand_groups(zeros, k, group))


def dequant_gamma_mode(weight, scales, gamma, zeros, bits, group):
    k = weight.shape[1]
    s = expand_groups(scales, k, group)
    g = expand_groups(gamma, k, group)
    z = expand_groups(zeros, k, group)
    u = weight / (s * g)
    c = RoundSTE.apply(u) + z
    qmax = 2 ** bits - 1
    # Clamp whose gradient is the mask 0 <= c <= qmax (inclusive).
    q = c - (c - c.clamp(0, qmax)).detach()
    mask = ((c >= 0) & (c <= qmax)).to(c.dtype)
    q = q * mask + q.detach() * (1 - mask)
    return s * (q - z)


def linear(x, w_hat, bias=None):
    y = x @ w_hat.T
    return y + bias if bias is not None else y
