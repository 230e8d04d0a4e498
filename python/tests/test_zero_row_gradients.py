"""The quantized gradient kernels (qslaw_qmatmul_grad_{input,scale,gamma}_f32,
lib/Runtime/Ukernels/QMatmulBlocked.cpp) skip the rows of dy that are all
zero: a last layer's gradient is zero on every token the loss does not
count. Checked against the NumPy reference (qslaw_tools.reference, float64)
for every pattern of zero rows the kernels tell apart: none, one run (in
place), scattered (gathered), nearly dense (the full GEMM), all zero; a row
that is zero but for a NaN is not skipped. dX must be exactly zero on the
skipped rows. Tolerances as test_exec_qmatmul.py: f32 sums of n terms."""
import ctypes
import os

import numpy as np
import pytest

from qslaw_tools import reference as ref
from qslaw_tools.runner import build_dir


def _kernels():
    lib = ctypes.CDLL(os.path.join(build_dir(), "lib", "libqslaw_ukernels.so"))
    P, I, C = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
    lib.qslaw_qmatmul_grad_input_f32.argtypes = [C, P, I, I, I, P, P, P, P, I, I, I, C]
    lib.qslaw_qmatmul_grad_scale_f32.argtypes = [C, P, I, I, I, P, I, I, P, P, P, I, C]
    lib.qslaw_qmatmul_grad_gamma_f32.argtypes = [C, P, I, I, I, P, I, I, P, I, I, P, P, P, P, I,
                                                 C]
    return lib


def _pack(v, bits):
    """The kernels' code layout (Ukernels.h): 2 and 4 bits packed 8/bits to
    a byte over the linear index, low bits first; 3 and 8 one per byte."""
    flat = v.reshape(-1).astype(np.uint8)
    per = {2: 4, 4: 2}.get(bits, 1)
    if per == 1:
        return np.ascontiguousarray(flat)
    flat = np.concatenate([flat, np.zeros((-len(flat)) % per, np.uint8)])
    out = np.zeros(len(flat) // per, np.uint8)
    for u in range(per):
        out |= flat[u::per] << (u * bits)
    return out


def _rows(kind, M, rng):
    """Which of M rows of dy are nonzero."""
    live = np.ones(M, bool)
    if kind == "run":
        live[:] = False
        live[M // 2: M // 2 + M // 4] = True
    elif kind == "scattered":
        live = rng.random(M) < 0.3
    elif kind == "nearly_dense":
        live[[1, M - 2]] = False
    elif kind == "all_zero":
        live[:] = False
    return live


KINDS = ["dense", "run", "scattered", "nearly_dense", "all_zero", "nan_row"]


def _dy(kind, M, N, rng, lddy):
    buf = rng.standard_normal((M, lddy)).astype(np.float32)
    live = _rows("scattered" if kind == "nan_row" else kind, M, rng)
    buf[~live, :N] = 0.0
    if kind == "nan_row":
        dead = np.flatnonzero(~live)
        buf[dead[0], N - 1] = np.nan  # zero but for its last element
    return buf, live


def _setup(kind, bits, test, N, K, group):
    """A deterministic generator (str hashes vary per process) and random
    codes and zero points of an [N, K] weight."""
    rng = np.random.default_rng(1000 * test + 10 * KINDS.index(kind) + bits)
    j = K // group
    codes = rng.integers(0, 2 ** bits, (N, K)).astype(np.uint8)
    zeros = rng.integers(0, 2 ** bits, (N, j)).astype(np.uint8)
    return _kernels(), rng, j, codes, zeros


def _check(got, want, terms, n):
    tol = 2e-6 * np.sqrt(n) * terms + 1e-30
    ok = np.abs(got.astype(np.float64) - want) <= tol
    ok |= np.isnan(got) & np.isnan(want)
    assert ok.all(), f"{(~ok).sum()} elements out of tolerance"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("bits,group", [(4, 32), (3, 16), (2, 32), (8, 32)])
@pytest.mark.parametrize("threads", [1, 2])
def test_grad_input_skips_zero_rows(kind, bits, group, threads):
    M, N, K, lddy, lddx = 64, 48, 96, 53, 101
    lib, rng, j, codes, zeros = _setup(kind, bits, 1, N, K, group)
    scales = (rng.random((N, j)) * 0.05 + 0.01).astype(np.float32)
    dyb, live = _dy(kind, M, N, rng, lddy)
    dxb = np.full((M, lddx), 7.0, np.float32)  # stale values must go
    pc, pz = _pack(codes, bits), _pack(zeros, bits)
    lib.qslaw_qmatmul_grad_input_f32(bits, dyb.ctypes.data, M, N, lddy, pc.ctypes.data,
                                     scales.ctypes.data, pz.ctypes.data, dxb.ctypes.data,
                                     lddx, K, group, threads)
    dy = dyb[:, :N].astype(np.float64)
    want = ref.qmatmul_grad_input(dy, codes, scales, zeros, bits, group)
    w = ref.dequantize(codes, scales, zeros, bits, group)
    got = dxb[:, :K]
    _check(got, want, np.abs(np.nan_to_num(dy)) @ np.abs(w), N)
    skipped = ~live if kind != "nan_row" else ~live & ~np.isnan(dyb[:, :N]).any(1)
    assert (got[skipped] == 0).all()
    assert (dxb[:, K:] == 7.0).all(), "wrote past K in dx's rows"


def _token_terms(x, dy, absw, k, group):
    terms = (np.abs(np.nan_to_num(dy)).T @ np.abs(x)) * absw
    j = k // group
    return np.stack([terms[:, i * group:(i + 1) * group].sum(1) for i in range(j)], 1)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("bits,group", [(4, 32), (3, 16), (2, 32), (8, 32)])
@pytest.mark.parametrize("threads", [1, 2])
def test_grad_scale_skips_zero_rows(kind, bits, group, threads):
    M, N, K, lddy, ldx = 64, 40, 128, 45, 131
    lib, rng, j, codes, zeros = _setup(kind, bits, 2, N, K, group)
    xb = rng.standard_normal((M, ldx)).astype(np.float32)
    dyb, _ = _dy(kind, M, N, rng, lddy)
    ds = np.full((N, j), 7.0, np.float32)
    pc, pz = _pack(codes, bits), _pack(zeros, bits)
    lib.qslaw_qmatmul_grad_scale_f32(bits, xb.ctypes.data, M, K, ldx, dyb.ctypes.data, N,
                                     lddy, pc.ctypes.data, pz.ctypes.data, ds.ctypes.data,
                                     group, threads)
    x, dy = xb[:, :K].astype(np.float64), dyb[:, :N].astype(np.float64)
    want = ref.qmatmul_grad_scale(x, dy, codes, zeros, bits, group)
    qz = np.abs(codes - ref.expand_groups(ref.zero_points(zeros, N, j, bits), K, group))
    _check(ds, want, _token_terms(x, dy, qz, K, group), M * group)
    if kind == "all_zero":
        assert (ds == 0).all()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("threads", [1, 2])
def test_grad_gamma_skips_zero_rows(kind, threads):
    bits, group, M, N, K, lddy, ldx = 4, 32, 64, 24, 96, 29, 99
    lib, rng, j, _, zeros = _setup(kind, bits, 3, N, K, group)
    w = rng.standard_normal((N, K)).astype(np.float32)
    scales = np.repeat(np.abs(w).max(1, keepdims=True) / 15, j, 1).astype(np.float32) * 1.5
    gamma = (0.6 + 0.8 * rng.random((N, j))).astype(np.float32)
    xb = rng.standard_normal((M, ldx)).astype(np.float32)
    dyb, _ = _dy(kind, M, N, rng, lddy)
    dg = np.full((N, j), 7.0, np.float32)
    pz = _pack(zeros, bits)
    lib.qslaw_qmatmul_grad_gamma_f32(bits, xb.ctypes.data, M, K, ldx, dyb.ctypes.data, N,
                                     lddy, w.ctypes.data, K, 1, scales.ctypes.data,
                                     gamma.ctypes.data, pz.ctypes.data, dg.ctypes.data,
                                     group, threads)
    x, dy = xb[:, :K].astype(np.float64), dyb[:, :N].astype(np.float64)
    want = ref.qmatmul_grad_gamma(x, dy, w, scales, gamma, zeros, bits, group)
    terms = _token_terms(x, dy, np.abs(w), K, group) / gamma.astype(np.float64) ** 2
    _check(dg, want, terms, M * group)
