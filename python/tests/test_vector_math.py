"""Accuracy of the vectorised row ops (qslaw-vector-math's polynomial
exp/erf/tanh, reassociated reductions) through the CPU pipeline, against
float64 references: exp within 2 ulp, erf and tanh within 8 ulp (MLIR's
approximations measured at <= 1 and <= 4 ulp over [-87, 88] and N(0, 16)),
softmax within 4e-6 relative: the f32 rounding of d = x - max (|d| up to
~20 here) alone gives exp(d) a relative error of |d| * 2^-24 ~ 1.2e-6, and
the (at most) 256-term sum and the division add a few ulp."""
import math

import numpy as np
import pytest

from qslaw_tools.runner import run_mlir

N = 4096


def ulps(got, ref):
    spacing = np.spacing(np.abs(ref).astype(np.float32)).astype(np.float64)
    return np.abs(got.astype(np.float64) - ref) / np.maximum(spacing, np.finfo(np.float32).tiny)


@pytest.mark.parametrize("fn,ref,max_ulp", [
    ("exp", np.exp, 2.0),
    ("erf", np.vectorize(math.erf), 8.0),
    ("tanh", np.tanh, 8.0),
])
def test_transcendental(fn, ref, max_ulp):
    rng = np.random.default_rng(0)
    x = np.concatenate([np.linspace(-87, 88, N // 2), rng.standard_normal(N // 2) * 4]).astype(np.float32)
    x = x.reshape(64, N // 64)
    t = f"tensor<64x{N // 64}xf32>"
    mlir = f"""
func.func @main(%x: {t}) -> {t} {{
  %e = tensor.empty() : {t}
  %y = linalg.generic {{indexing_maps = [affine_map<(i, j) -> (i, j)>, affine_map<(i, j) -> (i, j)>],
                       iterator_types = ["parallel", "parallel"]}} ins(%x : {t}) outs(%e : {t}) {{
  ^bb0(%a: f32, %o: f32):
    %r = math.{fn} %a : f32
    linalg.yield %r : f32
  }} -> {t}
  return %y : {t}
}}"""
    (y,) = run_mlir(mlir, [x])
    assert ulps(y, ref(x.astype(np.float64))).max() <= max_ulp


# 256: whole 64-wide tiles; 197 (a ViT's tokens): not a multiple of 16,
# split into a 16-multiple main part and a short rest (each reduction then
# runs over two pieces); 50 and 13: short odd rows, kept whole.
@pytest.mark.parametrize("width", [256, 197, 50, 13])
def test_softmax_rows(width):
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((8, width)) * 3).astype(np.float32)
    t, r = f"tensor<8x{width}xf32>", "tensor<8xf32>"
    mlir = f"""
#id = affine_map<(i, j) -> (i, j)>
#row = affine_map<(i, j) -> (i)>
func.func @main(%x: {t}) -> {t} {{
  %ninf = arith.constant 0xFF800000 : f32
  %zero = arith.constant 0.0 : f32
  %er = tensor.empty() : {r}
  %m0 = linalg.fill ins(%ninf : f32) outs(%er : {r}) -> {r}
  %m = linalg.generic {{indexing_maps = [#id, #row], iterator_types = ["parallel", "reduction"]}}
       ins(%x : {t}) outs(%m0 : {r}) {{
  ^bb0(%a: f32, %o: f32):
    %v = arith.maximumf %o, %a : f32
    linalg.yield %v : f32
  }} -> {r}
  %e = tensor.empty() : {t}
  %ex = linalg.generic {{indexing_maps = [#id, #row, #id], iterator_types = ["parallel", "parallel"]}}
       ins(%x, %m : {t}, {r}) outs(%e : {t}) {{
  ^bb0(%a: f32, %b: f32, %o: f32):
    %d = arith.subf %a, %b : f32
    %v = math.exp %d : f32
    linalg.yield %v : f32
  }} -> {t}
  %s0 = linalg.fill ins(%zero : f32) outs(%er : {r}) -> {r}
  %s = linalg.generic {{indexing_maps = [#id, #row], iterator_types = ["parallel", "reduction"]}}
       ins(%ex : {t}) outs(%s0 : {r}) {{
  ^bb0(%a: f32, %o: f32):
    %v = arith.addf %o, %a : f32
    linalg.yield %v : f32
  }} -> {r}
  %y = linalg.generic {{indexing_maps = [#id, #row, #id], iterator_types = ["parallel", "parallel"]}}
       ins(%ex, %s : {t}, {r}) outs(%e : {t}) {{
  ^bb0(%a: f32, %b: f32, %o: f32):
    %v = arith.divf %a, %b : f32
    linalg.yield %v : f32
  }} -> {t}
  return %y : {t}
}}"""
    (y,) = run_mlir(mlir, [x])
    xd = x.astype(np.float64)
    ref = np.exp(xd - xd.max(1, keepdims=True))
    ref /= ref.sum(1, keepdims=True)
    assert np.max(np.abs(y - ref) / ref) < 4e-6
