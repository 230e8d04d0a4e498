"""Execution tests: qslaw ops lowered through the CPU pipeline and JIT-run,
compared with the NumPy reference (qslaw_tools.reference).

Tolerances. Every output is a sum of K (or N, or T*G) products. With f32
accumulation the rounding error is bounded by ~n*u*sum|terms| (u = 2^-24)
and in practice grows like sqrt(n)*u; we allow 2e-6*sqrt(n)*sum|terms|
... plus, for f16/bf16 activations, the rounding of the result itself
(u = 2^-11 and 2^-8), since inputs are rounded identically on both sides.
"""
import itertools

import numpy as np
import pytest

from qslaw_tools import reference as ref
from qslaw_tools.runner import run_mlir

ELEM = {"f32": "f32", "f16": "f16", "bf16": "bf16"}
OUT_U = {"f32": 0.0, "f16": 2.0 ** -11, "bf16": 2.0 ** -8}


def ttype(shape, elem):
    return "tensor<" + "".join(f"{d}x" for d in shape) + elem + ">"


def spec_str(bits, group, sym, mode="scale"):
    g = "per_channel" if group == 0 else f"group = {group}"
    return f"<bits = {bits}, {g}, {'sym' if sym else 'asym'}, mode = {mode}>"


def optional_zeros(zeros, inputs, n, j, bits):
    """MLIR pieces (signature, operand, type) for optional zero points;
    appends them to `inputs` when present."""
    if zeros is None:
        return "", "", ""
    inputs.append(zeros)
    zt = ttype((n, j), f"i{bits}")
    return f", %z: {zt}", " zeros(%z)", f", {zt}"


def make_quant(rng, n, k, bits, group, sym):
    j, _ = ref.num_groups(k, group)
    codes = rng.integers(0, 2 ** bits, (n, k)).astype(np.uint8)
    scales = (rng.random((n, j)) * 0.05 + 0.01).astype(np.float32)
    zeros = None if sym else rng.integers(0, 2 ** bits, (n, j)).astype(np.uint8)
    return codes, scales, zeros


def check(got, want, terms_abs, n_terms, dtype):
    tol = 2e-6 * np.sqrt(n_terms) * terms_abs + OUT_U[dtype] * np.abs(want) + 1e-30
    err = np.abs(got.astype(np.float64) - want)
    worst = np.unravel_index(np.argmax(err - tol), err.shape)
    assert np.all(err <= tol), (
        f"max violation at {worst}: got {got[worst]}, want {want[worst]}, "
        f"tol {tol[worst]}")


# (bits, group, K): groups dividing K, a short last group, per-channel.
QUANT_CASES = [(4, 32, 96), (4, 48, 80), (2, 16, 40), (3, 32, 72),
               (8, 64, 128), (4, 0, 50), (4, 128, 256)]
BATCHES = [(5,), (2, 3), ()]


@pytest.mark.parametrize("bits,group,k", QUANT_CASES)
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("sym", [False, True])
@pytest.mark.parametrize("ukernels", [True, False])
def test_qmatmul_f32(bits, group, k, batch, sym, ukernels):
    if ukernels and bits != 4:
        pytest.skip("microkernel covers 4-bit codes only")
    rng = np.random.default_rng(hash((bits, group, k, batch, sym)) % 2**32)
    n = 24
    codes, scales, zeros = make_quant(rng, n, k, bits, group, sym)
    x = rng.standard_normal(batch + (k,)).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    j = scales.shape[1]
    args = [("x", ttype(batch + (k,), "f32")), ("q", ttype((n, k), f"i{bits}")),
            ("s", ttype((n, j), "f32"))]
    inputs = [x, codes, scales]
    zeros_txt = ""
    if zeros is not None:
        args.append(("z", ttype((n, j), f"i{bits}")))
        inputs.append(zeros)
        zeros_txt = " zeros(%z)"
    args.append(("b", ttype((n,), "f32")))
    inputs.append(bias)
    out_t = ttype(batch + (n,), "f32")
    sig = ", ".join(f"%{a}: {t}" for a, t in args)
    types = ", ".join(t for _, t in args)
    mlir = f"""
func.func @main({sig}) -> {out_t} {{
  %y = qslaw.qmatmul %x, %q scales(%s){zeros_txt} bias(%b) {spec_str(bits, group, sym)}
      : ({types}) -> {out_t}
  return %y : {out_t}
}}"""
    (got,) = run_mlir(mlir, inputs,
                      cpu_options="" if ukernels else "ukernels=false")
    want = ref.qmatmul(x, codes, scales, zeros, bits, group, bias)
    w = ref.dequantize(codes, scales, zeros, bits, group)
    terms = np.abs(x.astype(np.float64)) @ np.abs(w).T + np.abs(bias)
    check(got, want, terms, k, "f32")


@pytest.mark.parametrize("dtype", ["f16", "bf16"])
@pytest.mark.parametrize("bits,group,k", [(4, 32, 80), (3, 0, 40)])
def test_qmatmul_half(dtype, bits, group, k):
    rng = np.random.default_rng(3)
    n, batch = 16, (3, 2)
    codes, scales, zeros = make_quant(rng, n, k, bits, group, False)
    x = ref.round_to(rng.standard_normal(batch + (k,)), dtype)
    scales = ref.round_to(scales, dtype)
    j = scales.shape[1]
    e = ELEM[dtype]
    xt, qt, st, zt = (ttype(batch + (k,), e), ttype((n, k), f"i{bits}"),
                      ttype((n, j), e), ttype((n, j), f"i{bits}"))
    out_t = ttype(batch + (n,), e)
    mlir = f"""
func.func @main(%x: {xt}, %q: {qt}, %s: {st}, %z: {zt}) -> {out_t} {{
  %y = qslaw.qmatmul %x, %q scales(%s) zeros(%z) {spec_str(bits, group, False)}
      : ({xt}, {qt}, {st}, {zt}) -> {out_t}
  return %y : {out_t}
}}"""
    (got,) = run_mlir(mlir, [x, codes, scales, zeros])
    want = ref.qmatmul(x, codes, scales, zeros, bits, group)
    w = ref.dequantize(codes, scales, zeros, bits, group)
    check(got, want, np.abs(x.astype(np.float64)) @ np.abs(w).T, k, dtype)


@pytest.mark.parametrize("bits,group,k", QUANT_CASES)
@pytest.mark.parametrize("batch", [(6,), (2, 3)])
@pytest.mark.parametrize("sym", [False, True])
def test_grad_input(bits, group, k, batch, sym):
    rng = np.random.default_rng(hash((bits, group, k, batch, sym, 1)) % 2**32)
    n = 20
    codes, scales, zeros = make_quant(rng, n, k, bits, group, sym)
    dy = rng.standard_normal(batch + (n,)).astype(np.float32)
    j = scales.shape[1]
    dyt, qt, st = ttype(batch + (n,), "f32"), ttype((n, k), f"i{bits}"), ttype((n, j), "f32")
    out_t = ttype(batch + (k,), "f32")
    inputs = [dy, codes, scales]
    zsig, ztxt, ztype = optional_zeros(zeros, inputs, n, j, bits)
    mlir = f"""
func.func @main(%dy: {dyt}, %q: {qt}, %s: {st}{zsig}) -> {out_t} {{
  %dx = qslaw.qmatmul_grad_input %dy, %q scales(%s){ztxt} {spec_str(bits, group, sym)}
      : ({dyt}, {qt}, {st}{ztype}) -> {out_t}
  return %dx : {out_t}
}}"""
    (got,) = run_mlir(mlir, inputs)
    want = ref.qmatmul_grad_input(dy, codes, scales, zeros, bits, group)
    w = ref.dequantize(codes, scales, zeros, bits, group)
    check(got, want, np.abs(dy.astype(np.float64)) @ np.abs(w), n, "f32")


@pytest.mark.parametrize("bits,group,k", QUANT_CASES)
@pytest.mark.parametrize("batch", [(7,), (2, 3)])
@pytest.mark.parametrize("sym", [False, True])
def test_grad_scale(bits, group, k, batch, sym):
    rng = np.random.default_rng(hash((bits, group, k, batch, sym, 2)) % 2**32)
    n = 12
    codes, scales, zeros = make_quant(rng, n, k, bits, group, sym)
    x = rng.standard_normal(batch + (k,)).astype(np.float32)
    dy = rng.standard_normal(batch + (n,)).astype(np.float32)
    j = scales.shape[1]
    xt, dyt, qt = ttype(batch + (k,), "f32"), ttype(batch + (n,), "f32"), ttype((n, k), f"i{bits}")
    out_t = ttype((n, j), "f32")
    inputs = [x, dy, codes]
    zsig, ztxt, ztype = optional_zeros(zeros, inputs, n, j, bits)
    mlir = f"""
func.func @main(%x: {xt}, %dy: {dyt}, %q: {qt}{zsig}) -> {out_t} {{
  %ds = qslaw.qmatmul_grad_scale %x, %dy, %q{ztxt} {spec_str(bits, group, sym)}
      : ({xt}, {dyt}, {qt}{ztype}) -> {out_t}
  return %ds : {out_t}
}}"""
    (got,) = run_mlir(mlir, inputs)
    want = ref.qmatmul_grad_scale(x, dy, codes, zeros, bits, group)
    # Bound: same sums over |terms|.
    ones = np.ones_like(scales)
    terms = ref.qmatmul_grad_scale(np.abs(x), np.abs(dy),
                                   codes, zeros, bits, group)
    zfull = ref.expand_groups(ref.zero_points(zeros, n, j, bits), k, group)
    absq = np.abs(codes.astype(np.float64) - zfull)
    gw = np.abs(x.reshape(-1, k)).T.astype(np.float64)
    terms = (np.abs(dy.reshape(-1, n)).T @ np.abs(x.reshape(-1, k))) * absq
    tsum = np.stack([terms[:, jj * (k if group == 0 else group):(jj + 1) * (k if group == 0 else group)].sum(1)
                     for jj in range(j)], axis=1)
    check(got, want, tsum, int(np.prod(batch)) * k, "f32")
    del ones, gw


@pytest.mark.parametrize("bits,group,k", [(4, 32, 96), (4, 48, 80), (3, 0, 40), (2, 16, 40)])
@pytest.mark.parametrize("sym", [False, True])
def test_grad_gamma(bits, group, k, sym):
    rng = np.random.default_rng(hash((bits, group, k, sym, 3)) % 2**32)
    n, batch = 10, (2, 5)
    j, g = ref.num_groups(k, group)
    w = rng.standard_normal((n, k)).astype(np.float32)
    # Scales a bit small so that some codes clamp (mask has zeros).
    wmax = np.abs(w).max(axis=1, keepdims=True)
    scales = np.repeat(wmax / (2 ** bits - 1), j, axis=1).astype(np.float32) * 1.5
    gamma = (0.6 + 0.8 * rng.random((n, j))).astype(np.float32)
    zeros = None if sym else rng.integers(0, 2 ** bits, (n, j)).astype(np.uint8)
    x = rng.standard_normal(batch + (k,)).astype(np.float32)
    dy = rng.standard_normal(batch + (n,)).astype(np.float32)
    m = ref.clamp_mask(w, scales, gamma, zeros, bits, group)
    assert 0 < m.mean() < 1, "test data should exercise the clamp mask"
    xt, dyt = ttype(batch + (k,), "f32"), ttype(batch + (n,), "f32")
    wt, st = ttype((n, k), "f32"), ttype((n, j), "f32")
    inputs = [x, dy, w, scales, gamma]
    zsig, ztxt, ztype = optional_zeros(zeros, inputs, n, j, bits)
    mlir = f"""
func.func @main(%x: {xt}, %dy: {dyt}, %w: {wt}, %s: {st}, %g: {st}{zsig}) -> {st} {{
  %dg = qslaw.qmatmul_grad_gamma %x, %dy, %w scales(%s) gamma(%g){ztxt} {spec_str(bits, group, sym, "gamma")}
      : ({xt}, {dyt}, {wt}, {st}, {st}{ztype}) -> {st}
  return %dg : {st}
}}"""
    (got,) = run_mlir(mlir, inputs)
    want = ref.qmatmul_grad_gamma(x, dy, w, scales, gamma, zeros, bits, group)
    terms = (np.abs(dy.reshape(-1, n)).T @ np.abs(x.reshape(-1, k))) * np.abs(w)
    tsum = np.stack([terms[:, jj * g:(jj + 1) * g].sum(1) for jj in range(j)], axis=1)
    check(got, want, tsum / gamma.astype(np.float64) ** 2, int(np.prod(batch)) * k, "f32")


@pytest.mark.parametrize("bits,group,k", QUANT_CASES)
@pytest.mark.parametrize("sym", [False, True])
def test_quantize_dequantize(bits, group, k, sym):
    rng = np.random.default_rng(hash((bits, group, k, sym, 4)) % 2**32)
    n = 9
    j, _ = ref.num_groups(k, group)
    w = rng.standard_normal((n, k)).astype(np.float32)
    w[0, 0] = np.nan  # NaN maps to the zero point
    scales = (np.abs(rng.standard_normal((n, j))) * 0.3 + 0.05).astype(np.float32)
    zeros = None if sym else rng.integers(0, 2 ** bits, (n, j)).astype(np.uint8)
    wt, st, qt = ttype((n, k), "f32"), ttype((n, j), "f32"), ttype((n, k), f"i{bits}")
    inputs = [w, scales]
    zsig, ztxt, ztype = optional_zeros(zeros, inputs, n, j, bits)
    sp = spec_str(bits, group, sym)
    mlir = f"""
func.func @main(%w: {wt}, %s: {st}{zsig}) -> ({qt}, {wt}) {{
  %q = qslaw.quantize %w scales(%s){ztxt} {sp} : ({wt}, {st}{ztype}) -> {qt}
  %d = qslaw.dequantize %q scales(%s){ztxt} {sp} : ({qt}, {st}{ztype}) -> {wt}
  return %q, %d : {qt}, {wt}
}}"""
    q, d = run_mlir(mlir, inputs, num_outputs=2)
    want_q = ref.quantize(w, scales, zeros, bits, group)
    np.testing.assert_array_equal(q, want_q)
    want_d = ref.dequantize(want_q, scales, zeros, bits, group)
    np.testing.assert_allclose(d, want_d, rtol=1e-6, atol=0)
