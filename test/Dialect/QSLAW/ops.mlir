// RUN: qslaw-opt %s | FileCheck %s
// RUN: qslaw-opt %s | qslaw-opt | FileCheck %s
// RUN: qslaw-opt -mlir-print-op-generic %s | qslaw-opt | FileCheck %s

// CHECK-LABEL: func @quantize_asym
// CHECK: qslaw.quantize %{{.*}} scales(%{{.*}}) zeros(%{{.*}}) <bits = 4, group = 128, asym, mode = scale> : (tensor<8x256xf32>, tensor<8x2xf32>, tensor<8x2xi4>) -> tensor<8x256xi4>
func.func @quantize_asym(%w: tensor<8x256xf32>, %s: tensor<8x2xf32>, %z: tensor<8x2xi4>) -> tensor<8x256xi4> {
  %q = qslaw.quantize %w scales(%s) zeros(%z) <bits = 4, group = 128> : (tensor<8x256xf32>, tensor<8x2xf32>, tensor<8x2xi4>) -> tensor<8x256xi4>
  return %q : tensor<8x256xi4>
}

// CHECK-LABEL: func @quantize_sym_per_channel
// CHECK: qslaw.quantize %{{.*}} scales(%{{.*}}) <bits = 3, per_channel, sym, mode = gamma>
func.func @quantize_sym_per_channel(%w: tensor<8x100xf32>, %s: tensor<8x1xf32>) -> tensor<8x100xi3> {
  %q = qslaw.quantize %w scales(%s) <mode = gamma, sym, per_channel, bits = 3> : (tensor<8x100xf32>, tensor<8x1xf32>) -> tensor<8x100xi3>
  return %q : tensor<8x100xi3>
}

// CHECK-LABEL: func @dequantize_short_group
// CHECK: qslaw.dequantize %{{.*}} scales(%{{.*}}) zeros(%{{.*}}) <bits = 2, group = 48, asym, mode = scale> : (tensor<4x80xi2>, tensor<4x2xbf16>, tensor<4x2xi2>) -> tensor<4x80xbf16>
func.func @dequantize_short_group(%q: tensor<4x80xi2>, %s: tensor<4x2xbf16>, %z: tensor<4x2xi2>) -> tensor<4x80xbf16> {
  %w = qslaw.dequantize %q scales(%s) zeros(%z) <bits = 2, group = 48, asym> : (tensor<4x80xi2>, tensor<4x2xbf16>, tensor<4x2xi2>) -> tensor<4x80xbf16>
  return %w : tensor<4x80xbf16>
}

// CHECK-LABEL: func @qmatmul_batched_bias
// CHECK: qslaw.qmatmul %{{.*}}, %{{.*}} scales(%{{.*}}) zeros(%{{.*}}) bias(%{{.*}}) <bits = 8, group = 64, asym, mode = scale> : (tensor<2x3x128xf16>, tensor<16x128xi8>, tensor<16x2xf16>, tensor<16x2xi8>, tensor<16xf16>) -> tensor<2x3x16xf16>
func.func @qmatmul_batched_bias(%x: tensor<2x3x128xf16>, %q: tensor<16x128xi8>, %s: tensor<16x2xf16>, %z: tensor<16x2xi8>, %b: tensor<16xf16>) -> tensor<2x3x16xf16> {
  %y = qslaw.qmatmul %x, %q scales(%s) zeros(%z) bias(%b) <bits = 8, group = 64> : (tensor<2x3x128xf16>, tensor<16x128xi8>, tensor<16x2xf16>, tensor<16x2xi8>, tensor<16xf16>) -> tensor<2x3x16xf16>
  return %y : tensor<2x3x16xf16>
}

// CHECK-LABEL: func @qmatmul_dynamic_tokens
// CHECK: qslaw.qmatmul {{.*}} -> tensor<?x16xf32>
func.func @qmatmul_dynamic_tokens(%x: tensor<?x128xf32>, %q: tensor<16x128xi4>, %s: tensor<16x1xf32>) -> tensor<?x16xf32> {
  %y = qslaw.qmatmul %x, %q scales(%s) <bits = 4, per_channel, sym> : (tensor<?x128xf32>, tensor<16x128xi4>, tensor<16x1xf32>) -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}

// CHECK-LABEL: func @gradients
// CHECK: qslaw.qmatmul_grad_input %{{.*}}, %{{.*}} scales(%{{.*}}) zeros(%{{.*}}) <bits = 4, group = 32, asym, mode = scale> : {{.*}} -> tensor<5x64xf32>
// CHECK: qslaw.qmatmul_grad_scale %{{.*}}, %{{.*}}, %{{.*}} zeros(%{{.*}}) <bits = 4, group = 32, asym, mode = scale> : {{.*}} -> tensor<16x2xf32>
// CHECK: qslaw.qmatmul_grad_gamma %{{.*}}, %{{.*}}, %{{.*}} scales(%{{.*}}) gamma(%{{.*}}) zeros(%{{.*}}) <bits = 4, group = 32, asym, mode = gamma> : {{.*}} -> tensor<16x2xf32>
func.func @gradients(%x: tensor<5x64xf32>, %dy: tensor<5x16xf32>, %q: tensor<16x64xi4>, %w: tensor<16x64xf32>,
                     %s: tensor<16x2xf32>, %g: tensor<16x2xf32>, %z: tensor<16x2xi4>) -> (tensor<5x64xf32>, tensor<16x2xf32>, tensor<16x2xf32>) {
  %dx = qslaw.qmatmul_grad_input %dy, %q scales(%s) zeros(%z) <bits = 4, group = 32> : (tensor<5x16xf32>, tensor<16x64xi4>, tensor<16x2xf32>, tensor<16x2xi4>) -> tensor<5x64xf32>
  %ds = qslaw.qmatmul_grad_scale %x, %dy, %q zeros(%z) <bits = 4, group = 32> : (tensor<5x64xf32>, tensor<5x16xf32>, tensor<16x64xi4>, tensor<16x2xi4>) -> tensor<16x2xf32>
  %dg = qslaw.qmatmul_grad_gamma %x, %dy, %w scales(%s) gamma(%g) zeros(%z) <bits = 4, group = 32, mode = gamma> : (tensor<5x64xf32>, tensor<5x16xf32>, tensor<16x64xf32>, tensor<16x2xf32>, tensor<16x2xf32>, tensor<16x2xi4>) -> tensor<16x2xf32>
  return %dx, %ds, %dg : tensor<5x64xf32>, tensor<16x2xf32>, tensor<16x2xf32>
}

// The attribute also stands alone.
// CHECK-LABEL: func @spec_attr
// CHECK-SAME: qslaw.spec = #qslaw.quant<bits = 2, group = 16, sym, mode = scale>
func.func @spec_attr() attributes {qslaw.spec = #qslaw.quant<bits = 2, group = 16, sym>} {
  return
}
