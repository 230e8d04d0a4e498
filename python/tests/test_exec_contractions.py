"""Execution tests of f32 contractions through the GEMM library
(qslaw-lower-contractions-to-library), JIT-run, against NumPy in float64,
and against codegen (the same MLIR with the library off).

Tolerance: each output is a K-term f32 dot product; the library and
codegen both accumulate in f32 (in different orders), so the error is
bounded by ~K*u*sum|a*b| and in practice ~sqrt(K)*u*sum|a*b| (u = 2^-24);
we allow 4e-6*sqrt(K)*sum|a*b| per element.
"""
import numpy as np
import pytest

from qslaw_tools.runner import run_mlir

LIB = "gemm-min-flops=0"
CODEGEN = "library-gemm=false"


def tt(shape):
    return "tensor<" + "".join(f"{d}x" for d in shape) + "f32>"


def check(y, a, b, einsum):
    exact = np.einsum(einsum, a.astype(np.float64), b.astype(np.float64))
    bound = np.einsum(einsum, np.abs(a).astype(np.float64), np.abs(b).astype(np.float64))
    k = a.size * b.size / exact.size  # terms per output, up to batch sharing
    tol = 4e-6 * np.sqrt(max(k, 1.0)) * bound + 1e-30
    assert y.shape == exact.shape
    assert np.all(np.abs(y - exact) <= tol), np.max(np.abs(y - exact) / tol)


def fill_init(shape, init):
    """MLIR of the init operand: a zero fill, or the function argument %c."""
    if init is None:
        return (f"  %z = arith.constant 0.0 : f32\n  %e = tensor.empty() : {tt(shape)}\n"
                f"  %c0 = linalg.fill ins(%z : f32) outs(%e : {tt(shape)}) -> {tt(shape)}\n"), "%c0"
    return "", "%c"


@pytest.mark.parametrize("trans_a,trans_b", [(0, 0), (0, 1), (1, 0), (1, 1)])
@pytest.mark.parametrize("accumulate", [False, True])
def test_matmul_2d(trans_a, trans_b, accumulate):
    rng = np.random.default_rng(trans_a * 2 + trans_b)
    m, n, k = 37, 53, 129  # odd sizes: no tile divides them
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(np.float32)
    c = rng.standard_normal((m, n)).astype(np.float32)
    am = "(m, n, k) -> (k, m)" if trans_a else "(m, n, k) -> (m, k)"
    bm = "(m, n, k) -> (n, k)" if trans_b else "(m, n, k) -> (k, n)"
    pre, init = fill_init((m, n), c if accumulate else None)
    mlir = f"""
func.func @main(%a: {tt(a.shape)}, %b: {tt(b.shape)}, %c: {tt(c.shape)}) -> {tt((m, n))} {{
{pre}  %y = linalg.generic {{indexing_maps = [affine_map<{am}>, affine_map<{bm}>, affine_map<(m, n, k) -> (m, n)>],
                       iterator_types = ["parallel", "parallel", "reduction"]}}
      ins(%a, %b : {tt(a.shape)}, {tt(b.shape)}) outs({init} : {tt((m, n))}) {{
  ^bb0(%p: f32, %q: f32, %r: f32):
    %t = arith.mulf %p, %q : f32
    %s = arith.addf %r, %t : f32
    linalg.yield %s : f32
  }} -> {tt((m, n))}
  return %y : {tt((m, n))}
}}"""
    outs = {}
    for opts in (LIB, CODEGEN):
        (outs[opts],) = run_mlir(mlir, [a, b, c], cpu_options=opts)
    ea = "km" if trans_a else "mk"
    eb = "nk" if trans_b else "kn"
    base = c if accumulate else 0
    for y in outs.values():
        check(y - base, a, b, f"{ea},{eb}->mn")


def test_batch_matmul_transposed_and_shared():
    """Attention's scores (K read through a transpose) and a weight shared
    by every batch (stride 0)."""
    rng = np.random.default_rng(7)
    q = rng.standard_normal((2, 4, 33, 16)).astype(np.float32)
    kk = rng.standard_normal((8, 33, 16)).astype(np.float32)
    w = rng.standard_normal((16, 24)).astype(np.float32)
    mlir = f"""
#x = affine_map<(b, c, m, n, k) -> (b, c, m, k)>
#w = affine_map<(b, c, m, n, k) -> (k, n)>
#y = affine_map<(b, c, m, n, k) -> (b, c, m, n)>
func.func @main(%q: {tt(q.shape)}, %k: {tt(kk.shape)}, %w: {tt(w.shape)}) -> ({tt((8, 33, 33))}, {tt((2, 4, 33, 24))}) {{
  %z = arith.constant 0.0 : f32
  %q3 = tensor.collapse_shape %q [[0, 1], [2], [3]] : {tt(q.shape)} into {tt((8, 33, 16))}
  %e = tensor.empty() : {tt((8, 16, 33))}
  %kt = linalg.transpose ins(%k : {tt(kk.shape)}) outs(%e : {tt((8, 16, 33))}) permutation = [0, 2, 1]
  %e2 = tensor.empty() : {tt((8, 33, 33))}
  %c = linalg.fill ins(%z : f32) outs(%e2 : {tt((8, 33, 33))}) -> {tt((8, 33, 33))}
  %s = linalg.batch_matmul ins(%q3, %kt : {tt((8, 33, 16))}, {tt((8, 16, 33))}) outs(%c : {tt((8, 33, 33))}) -> {tt((8, 33, 33))}
  %e3 = tensor.empty() : {tt((2, 4, 33, 24))}
  %c3 = linalg.fill ins(%z : f32) outs(%e3 : {tt((2, 4, 33, 24))}) -> {tt((2, 4, 33, 24))}
  %p = linalg.generic {{indexing_maps = [#x, #w, #y],
                       iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}}
      ins(%q, %w : {tt(q.shape)}, {tt(w.shape)}) outs(%c3 : {tt((2, 4, 33, 24))}) {{
  ^bb0(%a: f32, %b: f32, %o: f32):
    %t = arith.mulf %a, %b : f32
    %u = arith.addf %o, %t : f32
    linalg.yield %u : f32
  }} -> {tt((2, 4, 33, 24))}
  return %s, %p : {tt((8, 33, 33))}, {tt((2, 4, 33, 24))}
}}"""
    for opts in (LIB, CODEGEN):
        s, p = run_mlir(mlir, [q, kk, w], num_outputs=2, cpu_options=opts)
        check(s, q.reshape(8, 33, 16), kk, "bmk,bnk->bmn")
        check(p, q, w, "bcmk,kn->bcmn")


def test_library_called_only_when_asked():
    """The threshold decides: the lowered IR holds the call with the
    library on, and none with a threshold above the op's flops."""
    import subprocess
    from qslaw_tools.runner import tool
    src = """
func.func @main(%a: tensor<64x32xf32>, %b: tensor<32x48xf32>, %c: tensor<64x48xf32>) -> tensor<64x48xf32> {
  %y = linalg.matmul ins(%a, %b : tensor<64x32xf32>, tensor<32x48xf32>) outs(%c : tensor<64x48xf32>) -> tensor<64x48xf32>
  return %y : tensor<64x48xf32>
}"""
    flops = 2 * 64 * 48 * 32
    for threshold, expect in ((flops, True), (flops + 1, False)):
        out = subprocess.run([tool("qslaw-opt"), "-",
                              f"--qslaw-cpu-bufferize=gemm-min-flops={threshold}"],
                             input=src, capture_output=True, text=True, check=True).stdout
        assert ("call @qslaw_ukernel_sgemm_f32" in out) == expect
