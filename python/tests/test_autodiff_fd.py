"""Finite-difference checks of qslaw-make-train-step's derivative rules.

Each case is a small forward function with one or two named f64 parameters
(f64 so that central differences are accurate to ~1e-8); the pass builds
@grad_step with the `sum-squares` loss (L = sum(y^2)), qslaw-exec runs it, and
the directional derivative <grad, v> must match (L(p + h v) - L(p - h v)) / 2h
computed from @forward_params.
"""
import subprocess
import tempfile
import os

import numpy as np
import pytest

from qslaw_tools.runner import run_mlir, tool

HEADER = "#map = affine_map<(d0, d1) -> (d0, d1)>\n"


def make_train(mlir, params):
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "f.mlir")
        with open(src, "w") as f:
            f.write(mlir)
        proc = subprocess.run(
            [tool("qslaw-opt"), src,
             f"--qslaw-make-train-step=params={params} scales= loss=sum-squares optimizer=none"],
            capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout


def fd_check(mlir, params_regex, inputs, rtol=1e-6):
    train = make_train(mlir, params_regex)
    n_params = train.split("@init_params")[1].split("->")[1].split("{")[0].count("tensor<")
    init = run_mlir(train, [], num_outputs=n_params, entry="init_params")
    loss_grads = run_mlir(train, init + inputs, num_outputs=1 + n_params,
                          entry="grad_step")
    y = run_mlir(train, init + inputs, entry="forward_params")[0]
    assert np.isclose(loss_grads[0], np.sum(y.astype(np.float64) ** 2), rtol=1e-10)
    rng = np.random.default_rng(0)
    dirs = [rng.standard_normal(p.shape) for p in init]
    h = 1e-5
    plus = [p + h * v for p, v in zip(init, dirs)]
    minus = [p - h * v for p, v in zip(init, dirs)]
    lp = np.sum(run_mlir(train, plus + inputs, entry="forward_params")[0] ** 2)
    lm = np.sum(run_mlir(train, minus + inputs, entry="forward_params")[0] ** 2)
    fd = (lp - lm) / (2 * h)
    ad = sum(float(np.sum(g * v)) for g, v in zip(loss_grads[1:], dirs))
    assert abs(fd - ad) <= rtol * max(1.0, abs(fd)), (fd, ad)
    return loss_grads


def const(name, shape, seed):
    v = np.random.default_rng(seed).uniform(0.5, 1.5, shape)
    body = ", ".join(f"{x:.17g}" for x in v.ravel())
    dims = "x".join(map(str, shape))
    nested = body
    for d in reversed(shape[1:]):
        flat = nested.split(", ")
        nested = ", ".join("[" + ", ".join(flat[i:i + d]) + "]"
                           for i in range(0, len(flat), d))
    return (f'%{name} = arith.constant {{qslaw.name = "{name}"}} '
            f'dense<[{nested}]> : tensor<{dims}xf64>')


def x_in(shape, seed=1):
    return np.random.default_rng(seed).uniform(0.5, 1.5, shape)


def test_elementwise_broadcast_and_unary_rules():
    # y = exp(x * p) + p / x - sqrt(x) * tanh(p) + erf(p) * sin(x) * cos(p), p broadcast over rows
    mlir = HEADER + f"""
func.func @forward(%x: tensor<3x4xf64>) -> tensor<3x4xf64> {{
  {const('p', [1, 4], 2)}
  %e = tensor.empty() : tensor<3x4xf64>
  %y = linalg.generic {{indexing_maps = [#map, affine_map<(d0, d1) -> (0, d1)>, #map],
      iterator_types = ["parallel", "parallel"]}}
      ins(%x, %p : tensor<3x4xf64>, tensor<1x4xf64>) outs(%e : tensor<3x4xf64>) {{
  ^bb0(%a: f64, %b: f64, %o: f64):
    %0 = arith.mulf %a, %b : f64
    %1 = math.exp %0 : f64
    %2 = arith.divf %b, %a : f64
    %3 = arith.addf %1, %2 : f64
    %4 = math.sqrt %a : f64
    %5 = math.tanh %b : f64
    %6 = arith.mulf %4, %5 : f64
    %7 = arith.subf %3, %6 : f64
    %8 = math.erf %b : f64
    %9 = math.sin %a : f64
    %10 = math.cos %b : f64
    %11 = arith.mulf %8, %9 : f64
    %12 = arith.mulf %11, %10 : f64
    %13 = arith.addf %7, %12 : f64
    %c = arith.constant 2.5 : f64
    %14 = math.powf %b, %c : f64
    %15 = math.rsqrt %b : f64
    %16 = arith.addf %14, %15 : f64
    %17 = arith.maximumf %13, %16 : f64
    %18 = arith.negf %17 : f64
    linalg.yield %18 : f64
  }} -> tensor<3x4xf64>
  return %y : tensor<3x4xf64>
}}"""
    fd_check(mlir, "p", [x_in((3, 4))])


def test_matmul_transpose_and_sum_reduction():
    # y = sum_k (x @ p)^T[.., k] -- a named matmul, a transpose and a row sum
    mlir = HEADER + f"""
func.func @forward(%x: tensor<3x4xf64>) -> tensor<5xf64> {{
  {const('p', [4, 5], 3)}
  %z = arith.constant 0.0 : f64
  %e = tensor.empty() : tensor<3x5xf64>
  %f = linalg.fill ins(%z : f64) outs(%e : tensor<3x5xf64>) -> tensor<3x5xf64>
  %m = linalg.matmul ins(%x, %p : tensor<3x4xf64>, tensor<4x5xf64>) outs(%f : tensor<3x5xf64>) -> tensor<3x5xf64>
  %et = tensor.empty() : tensor<5x3xf64>
  %t = linalg.transpose ins(%m : tensor<3x5xf64>) outs(%et : tensor<5x3xf64>) permutation = [1, 0]
  %er = tensor.empty() : tensor<5xf64>
  %fr = linalg.fill ins(%z : f64) outs(%er : tensor<5xf64>) -> tensor<5xf64>
  %r = linalg.generic {{indexing_maps = [#map, affine_map<(d0, d1) -> (d0)>],
      iterator_types = ["parallel", "reduction"]}}
      ins(%t : tensor<5x3xf64>) outs(%fr : tensor<5xf64>) {{
  ^bb0(%a: f64, %o: f64):
    %sq = arith.mulf %a, %a : f64
    %s = arith.addf %sq, %o : f64
    linalg.yield %s : f64
  }} -> tensor<5xf64>
  return %r : tensor<5xf64>
}}"""
    fd_check(mlir, "p", [x_in((3, 4))])


def test_softmax_max_reduction_keepdims():
    # y = softmax(x * p) along rows, with a keep-dims max and sum
    mlir = HEADER + f"""
#red = affine_map<(d0, d1) -> (d0, 0)>
func.func @forward(%x: tensor<3x4xf64>) -> tensor<3x4xf64> {{
  {const('p', [3, 4], 4)}
  %e = tensor.empty() : tensor<3x4xf64>
  %s = linalg.generic {{indexing_maps = [#map, #map, #map], iterator_types = ["parallel", "parallel"]}}
      ins(%x, %p : tensor<3x4xf64>, tensor<3x4xf64>) outs(%e : tensor<3x4xf64>) {{
  ^bb0(%a: f64, %b: f64, %o: f64):
    %0 = arith.mulf %a, %b : f64
    linalg.yield %0 : f64
  }} -> tensor<3x4xf64>
  %ninf = arith.constant -1.0e30 : f64
  %e1 = tensor.empty() : tensor<3x1xf64>
  %f1 = linalg.fill ins(%ninf : f64) outs(%e1 : tensor<3x1xf64>) -> tensor<3x1xf64>
  %mx = linalg.generic {{indexing_maps = [#map, #red], iterator_types = ["parallel", "reduction"]}}
      ins(%s : tensor<3x4xf64>) outs(%f1 : tensor<3x1xf64>) {{
  ^bb0(%a: f64, %o: f64):
    %0 = arith.maximumf %a, %o : f64
    linalg.yield %0 : f64
  }} -> tensor<3x1xf64>
  %ex = linalg.generic {{indexing_maps = [#map, #red, #map], iterator_types = ["parallel", "parallel"]}}
      ins(%s, %mx : tensor<3x4xf64>, tensor<3x1xf64>) outs(%e : tensor<3x4xf64>) {{
  ^bb0(%a: f64, %m: f64, %o: f64):
    %0 = arith.subf %a, %m : f64
    %1 = math.exp %0 : f64
    linalg.yield %1 : f64
  }} -> tensor<3x4xf64>
  %z = arith.constant 0.0 : f64
  %f2 = linalg.fill ins(%z : f64) outs(%e1 : tensor<3x1xf64>) -> tensor<3x1xf64>
  %sum = linalg.generic {{indexing_maps = [#map, #red], iterator_types = ["parallel", "reduction"]}}
      ins(%ex : tensor<3x4xf64>) outs(%f2 : tensor<3x1xf64>) {{
  ^bb0(%a: f64, %o: f64):
    %0 = arith.addf %a, %o : f64
    linalg.yield %0 : f64
  }} -> tensor<3x1xf64>
  %y = linalg.generic {{indexing_maps = [#map, #red, #map], iterator_types = ["parallel", "parallel"]}}
      ins(%ex, %sum : tensor<3x4xf64>, tensor<3x1xf64>) outs(%e : tensor<3x4xf64>) {{
  ^bb0(%a: f64, %b: f64, %o: f64):
    %0 = arith.divf %a, %b : f64
    %1 = arith.mulf %0, %a : f64
    linalg.yield %1 : f64
  }} -> tensor<3x4xf64>
  return %y : tensor<3x4xf64>
}}"""
    fd_check(mlir, "p", [x_in((3, 4))])


def test_reshape_slice_concat_insert():
    mlir = HEADER + f"""
func.func @forward(%x: tensor<2x6xf64>) -> tensor<4x3xf64> {{
  {const('p', [2, 6], 5)}
  {const('q', [1, 3], 6)}
  %e = tensor.empty() : tensor<2x6xf64>
  %s = linalg.generic {{indexing_maps = [#map, #map, #map], iterator_types = ["parallel", "parallel"]}}
      ins(%x, %p : tensor<2x6xf64>, tensor<2x6xf64>) outs(%e : tensor<2x6xf64>) {{
  ^bb0(%a: f64, %b: f64, %o: f64):
    %0 = arith.mulf %a, %b : f64
    %1 = arith.mulf %0, %b : f64
    linalg.yield %1 : f64
  }} -> tensor<2x6xf64>
  %c = tensor.collapse_shape %s [[0, 1]] : tensor<2x6xf64> into tensor<12xf64>
  %r = tensor.expand_shape %c [[0, 1]] output_shape [4, 3] : tensor<12xf64> into tensor<4x3xf64>
  %a = tensor.extract_slice %r[0, 0] [2, 3] [1, 1] : tensor<4x3xf64> to tensor<2x3xf64>
  %b = tensor.extract_slice %r[1, 0] [3, 3] [1, 1] : tensor<4x3xf64> to tensor<3x3xf64>
  %cat = tensor.concat dim(0) %a, %b : (tensor<2x3xf64>, tensor<3x3xf64>) -> tensor<5x3xf64>
  %top = tensor.extract_slice %cat[1, 0] [4, 3] [1, 1] : tensor<5x3xf64> to tensor<4x3xf64>
  %y = tensor.insert_slice %q into %top[2, 0] [1, 3] [1, 1] : tensor<1x3xf64> into tensor<4x3xf64>
  return %y : tensor<4x3xf64>
}}"""
    fd_check(mlir, "p|q", [x_in((2, 6))])
