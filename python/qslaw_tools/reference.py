"""NumPy reference of qslaw's quantisation math (see shared/QSLAW.md).

Independent of the compiler: plain float64 NumPy except where the method
itself fixes float32 arithmetic (the rounding of W / (s * gamma), whose
ties must be decided exactly as the compiled code decides them).
"""
import numpy as np


def num_groups(k, group):
    g = k if group == 0 else group
    return -(-k // g), g


def expand_groups(t, k, group):
    """[N, J] per-group values -> [N, K] per-element values."""
    _, g = num_groups(k, group)
    return np.repeat(t, g, axis=1)[:, :k]


def zero_points(zeros, n, j, bits):
    if zeros is None:
        return np.full((n, j), 2 ** (bits - 1), dtype=np.int64)
    return zeros.astype(np.int64)


def dequantize(codes, scales, zeros, bits, group):
    n, k = codes.shape
    j, _ = num_groups(k, group)
    z = zero_points(zeros, n, j, bits)
    s = expand_groups(scales.astype(np.float64), k, group)
    return s * (codes.astype(np.float64) - expand_groups(z, k, group))


def quantize(w, scales, zeros, bits, group):
    n, k = w.shape
    j, _ = num_groups(k, group)
    z = expand_groups(zero_points(zeros, n, j, bits), k, group)
    u = w.astype(np.float32) / expand_groups(scales.astype(np.float32), k, group)
    r = np.round(u)  # half to even
    c = np.where(np.isnan(r), z, r + z)
    return np.clip(c, 0, 2 ** bits - 1).astype(np.uint8)


def qmatmul(x, codes, scales, zeros, bits, group, bias=None):
    w = dequantize(codes, scales, zeros, bits, group)
    y = x.astype(np.float64) @ w.T
    if bias is not None:
        y = y + bias.astype(np.float64)
    return y


def qmatmul_grad_input(dy, codes, scales, zeros, bits, group):
    return dy.astype(np.float64) @ dequantize(codes, scales, zeros, bits, group)


def _tokens(a):
    return a.reshape(-1, a.shape[-1]).astype(np.float64)


def qmatmul_grad_scale(x, dy, codes, zeros, bits, group):
    """dL/ds[n,j] = sum_{k in j} Gw[n,k] (q[n,k] - z[n,j]), Gw = dY^T X."""
    n, k = codes.shape
    j, g = num_groups(k, group)
    gw = _tokens(dy).T @ _tokens(x)
    z = expand_groups(zero_points(zeros, n, j, bits), k, group)
    contrib = gw * (codes.astype(np.float64) - z)
    out = np.zeros((n, j))
    for jj in range(j):
        out[:, jj] = contrib[:, jj * g:(jj + 1) * g].sum(axis=1)
    return out


def clamp_mask(w, scales, gamma, zeros, bits, group):
    n, k = w.shape
    j, _ = num_groups(k, group)
    sg = (scales.astype(np.float32) * gamma.astype(np.float32))
    u = w.astype(np.float32) / expand_groups(sg, k, group)
    c = np.round(u) + expand_groups(zero_points(zeros, n, j, bits), k, group)
    return (c >= 0) & (c <= 2 ** bits - 1)


def qmatmul_grad_gamma(x, dy, w, scales, gamma, zeros, bits, group):
    """dL/dgamma = -(1/gamma^2) sum_{k in j} m W Gw (straight-through)."""
    n, k = w.shape
    j, g = num_groups(k, group)
    gw = _tokens(dy).T @ _tokens(x)
    m = clamp_mask(w, scales, gamma, zeros, bits, group)
    contrib = m * w.astype(np.float64) * gw
    out = np.zeros((n, j))
    for jj in range(j):
        out[:, jj] = contrib[:, jj * g:(jj + 1) * g].sum(axis=1)
    return -out / gamma.astype(np.float64) ** 2


def to_bf16(a):
    """Round float32 to bfloat16 (nearest even), returned as float32."""
    b = np.asarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    b = (b + 0x7FFF + ((b >> 16) & 1)) >> 16 << 16
    return b.astype(np.uint32).view(np.float32)


def round_to(a, dtype):
    if dtype == "f32":
        return np.asarray(a, dtype=np.float32)
    if dtype == "f16":
        return np.asarray(a, dtype=np.float16).astype(np.float32)
    return to_bf16(a)
