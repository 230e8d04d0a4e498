// RUN: qslaw-opt %s -split-input-file -canonicalize | FileCheck %s

// Constant weights quantize at compile time (round half to even, clamp).
// w / s = [0.5, 1.5, 2.5, -20] -> round [0, 2, 2, -20] + z(8) -> [8, 10, 10, 0]
// CHECK-LABEL: func @fold_quantize
// i4 constants print as signed values: codes [8, 10, 10, 0] read [-8, -6, -6, 0].
// CHECK: %[[C:.*]] = arith.constant dense<{{\[\[}}-8, -6, -6, 0]]> : tensor<1x4xi4>
// CHECK-NEXT: return %[[C]]
func.func @fold_quantize() -> tensor<1x4xi4> {
  %w = arith.constant dense<[[0.5, 1.5, 2.5, -20.0]]> : tensor<1x4xf32>
  %s = arith.constant dense<[[1.0]]> : tensor<1x1xf32>
  %q = qslaw.quantize %w scales(%s) <bits = 4, per_channel, sym> : (tensor<1x4xf32>, tensor<1x1xf32>) -> tensor<1x4xi4>
  return %q : tensor<1x4xi4>
}

// -----

// Exact round trip: dequantize(quantize(w)) folds to w.
// CHECK-LABEL: func @fold_roundtrip_exact
// CHECK: %[[W:.*]] = arith.constant dense<{{\[\[}}2.500000e-01, -5.000000e-01]]>
// CHECK-NOT: qslaw.
// CHECK: return %[[W]]
func.func @fold_roundtrip_exact() -> tensor<1x2xf32> {
  %w = arith.constant dense<[[0.25, -0.5]]> : tensor<1x2xf32>
  %s = arith.constant dense<[[0.25]]> : tensor<1x1xf32>
  %q = qslaw.quantize %w scales(%s) <bits = 4, per_channel, sym> : (tensor<1x2xf32>, tensor<1x1xf32>) -> tensor<1x2xi4>
  %d = qslaw.dequantize %q scales(%s) <bits = 4, per_channel, sym> : (tensor<1x2xi4>, tensor<1x1xf32>) -> tensor<1x2xf32>
  return %d : tensor<1x2xf32>
}

// -----

// Not exact (0.3 is not a multiple of the scale): the dequantize stays.
// CHECK-LABEL: func @no_fold_roundtrip_inexact
// CHECK: qslaw.dequantize
func.func @no_fold_roundtrip_inexact() -> tensor<1x2xf32> {
  %w = arith.constant dense<[[0.3, -0.5]]> : tensor<1x2xf32>
  %s = arith.constant dense<[[0.25]]> : tensor<1x1xf32>
  %q = qslaw.quantize %w scales(%s) <bits = 4, per_channel, sym> : (tensor<1x2xf32>, tensor<1x1xf32>) -> tensor<1x2xi4>
  %d = qslaw.dequantize %q scales(%s) <bits = 4, per_channel, sym> : (tensor<1x2xi4>, tensor<1x1xf32>) -> tensor<1x2xf32>
  return %d : tensor<1x2xf32>
}

// -----

// quantize(dequantize(q)) -> q with positive constant scales.
// CHECK-LABEL: func @requantize
// CHECK-SAME: (%[[Q:.*]]: tensor<2x64xi4>
// CHECK-NEXT: return %[[Q]]
func.func @requantize(%q: tensor<2x64xi4>, %z: tensor<2x2xi4>) -> tensor<2x64xi4> {
  %s = arith.constant dense<[[0.1, 0.2], [0.3, 7.0]]> : tensor<2x2xf32>
  %d = qslaw.dequantize %q scales(%s) zeros(%z) <bits = 4, group = 32> : (tensor<2x64xi4>, tensor<2x2xf32>, tensor<2x2xi4>) -> tensor<2x64xf32>
  %r = qslaw.quantize %d scales(%s) zeros(%z) <bits = 4, group = 32> : (tensor<2x64xf32>, tensor<2x2xf32>, tensor<2x2xi4>) -> tensor<2x64xi4>
  return %r : tensor<2x64xi4>
}

// -----

// A zero (or unknown-sign) scale makes requantisation lossy: no rewrite.
// CHECK-LABEL: func @no_requantize_zero_scale
// CHECK: qslaw.quantize
func.func @no_requantize_zero_scale(%q: tensor<2x64xi4>, %z: tensor<2x2xi4>) -> tensor<2x64xi4> {
  %s = arith.constant dense<[[0.1, 0.0], [0.3, 7.0]]> : tensor<2x2xf32>
  %d = qslaw.dequantize %q scales(%s) zeros(%z) <bits = 4, group = 32> : (tensor<2x64xi4>, tensor<2x2xf32>, tensor<2x2xi4>) -> tensor<2x64xf32>
  %r = qslaw.quantize %d scales(%s) zeros(%z) <bits = 4, group = 32> : (tensor<2x64xf32>, tensor<2x2xf32>, tensor<2x2xi4>) -> tensor<2x64xi4>
  return %r : tensor<2x64xi4>
}

// -----

// CHECK-LABEL: func @requantize_runtime_scales
// CHECK: qslaw.quantize
func.func @requantize_runtime_scales(%q: tensor<2x64xi4>, %s: tensor<2x2xf32>, %z: tensor<2x2xi4>) -> tensor<2x64xi4> {
  %d = qslaw.dequantize %q scales(%s) zeros(%z) <bits = 4, group = 32> : (tensor<2x64xi4>, tensor<2x2xf32>, tensor<2x2xi4>) -> tensor<2x64xf32>
  %r = qslaw.quantize %d scales(%s) zeros(%z) <bits = 4, group = 32> : (tensor<2x64xf32>, tensor<2x2xf32>, tensor<2x2xi4>) -> tensor<2x64xi4>
  return %r : tensor<2x64xi4>
}

// -----

// CHECK-LABEL: func @drop_zero_bias
// CHECK: qslaw.qmatmul %{{.*}}, %{{.*}} scales(%{{.*}}) <bits
// CHECK-NOT: bias
func.func @drop_zero_bias(%x: tensor<3x64xf32>, %q: tensor<8x64xi4>, %s: tensor<8x2xf32>) -> tensor<3x8xf32> {
  %b = arith.constant dense<0.0> : tensor<8xf32>
  %y = qslaw.qmatmul %x, %q scales(%s) bias(%b) <bits = 4, group = 32, sym> : (tensor<3x64xf32>, tensor<8x64xi4>, tensor<8x2xf32>, tensor<8xf32>) -> tensor<3x8xf32>
  return %y : tensor<3x8xf32>
}

// -----

// CHECK-LABEL: func @keep_nonzero_bias
// CHECK: bias(
func.func @keep_nonzero_bias(%x: tensor<3x64xf32>, %q: tensor<8x64xi4>, %s: tensor<8x2xf32>) -> tensor<3x8xf32> {
  %b = arith.constant dense<1.0> : tensor<8xf32>
  %y = qslaw.qmatmul %x, %q scales(%s) bias(%b) <bits = 4, group = 32, sym> : (tensor<3x64xf32>, tensor<8x64xi4>, tensor<8x2xf32>, tensor<8xf32>) -> tensor<3x8xf32>
  return %y : tensor<3x8xf32>
}
