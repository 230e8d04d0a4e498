// RUN: qslaw-opt %s -qslaw-lower-to-linalg | FileCheck %s
// The lowered quantized matmul and its gradients hold no [N, K] float tensor
// (here N = 64, K = 256 or 200): dequantisation lives in the reduction body.
// RUN: qslaw-opt %s -qslaw-lower-to-linalg -canonicalize -linalg-fuse-elementwise-ops | FileCheck %s --check-prefix=NOFLOAT

// NOFLOAT-NOT: tensor<64x256xf32>
// NOFLOAT-NOT: tensor<64x200xf32>
// NOFLOAT-NOT: tensor<256x64xf32>
// NOFLOAT-NOT: qslaw.

// CHECK-DAG: #[[BIAS:.*]] = affine_map<(d0, d1, d2) -> (d2)>
// CHECK-DAG: #[[X4:.*]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>
// CHECK-DAG: #[[NK4:.*]] = affine_map<(d0, d1, d2, d3) -> (d2, d3)>
// CHECK-DAG: #[[G4:.*]] = affine_map<(d0, d1, d2, d3) -> (d2, d3 floordiv 128)>
// CHECK-DAG: #[[Y4:.*]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
// CHECK-DAG: #[[G3:.*]] = affine_map<(d0, d1, d2) -> (d1, d2 floordiv 128)>
// CHECK-DAG: #[[MK:.*]] = affine_map<(d0, d1, d2) -> (d0, d2)>
// CHECK-DAG: #[[KN:.*]] = affine_map<(d0, d1, d2) -> (d2, d1)>
// CHECK-DAG: #[[PC:.*]] = affine_map<(d0, d1, d2) -> (d2, 0)>
// CHECK-DAG: #[[MN:.*]] = affine_map<(d0, d1, d2) -> (d0, d1)>
// CHECK-DAG: #[[XS:.*]] = affine_map<(d0, d1, d2, d3) -> (d2, d3, d1)>
// CHECK-DAG: #[[DYS:.*]] = affine_map<(d0, d1, d2, d3) -> (d2, d3, d0)>
// CHECK-DAG: #[[NKS:.*]] = affine_map<(d0, d1, d2, d3) -> (d0, d1)>
// CHECK-DAG: #[[GS:.*]] = affine_map<(d0, d1, d2, d3) -> (d0, d1 floordiv 128)>

// CHECK-LABEL: func @qmatmul
// CHECK: %[[ACC:.*]] = linalg.generic {indexing_maps = [#[[BIAS]], {{.*}}ins(%arg4 : tensor<64xf32>)
// CHECK: linalg.generic {indexing_maps = [#[[X4]], #[[NK4]], #[[G4]], #[[G4]], #[[Y4]]], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
// CHECK-SAME: ins(%arg0, %arg1, %arg2, %arg3 : tensor<2x3x256xf32>, tensor<64x256xi4>, tensor<64x2xf32>, tensor<64x2xi4>) outs(%[[ACC]] : tensor<2x3x64xf32>)
// CHECK: ^bb0(%[[XV:.*]]: f32, %[[QV:.*]]: i4, %[[SV:.*]]: f32, %[[ZV:.*]]: i4, %[[OUT:.*]]: f32):
// CHECK:   %[[QF:.*]] = arith.uitofp %[[QV]] : i4 to f32
// CHECK:   %[[ZF:.*]] = arith.uitofp %[[ZV]] : i4 to f32
// CHECK:   %[[D:.*]] = arith.subf %[[QF]], %[[ZF]]
// CHECK:   %[[W:.*]] = arith.mulf %[[D]], %[[SV]]
// CHECK:   %[[P:.*]] = arith.mulf %[[XV]], %[[W]]
// CHECK:   %[[A:.*]] = arith.addf %[[OUT]], %[[P]]
// CHECK:   linalg.yield %[[A]]
func.func @qmatmul(%x: tensor<2x3x256xf32>, %q: tensor<64x256xi4>, %s: tensor<64x2xf32>, %z: tensor<64x2xi4>, %b: tensor<64xf32>) -> tensor<2x3x64xf32> {
  %y = qslaw.qmatmul %x, %q scales(%s) zeros(%z) bias(%b) <bits = 4, group = 128> : (tensor<2x3x256xf32>, tensor<64x256xi4>, tensor<64x2xf32>, tensor<64x2xi4>, tensor<64xf32>) -> tensor<2x3x64xf32>
  return %y : tensor<2x3x64xf32>
}


// Short last group (K = 200, G = 128): the same floordiv map, no padding.
// bf16 activations accumulate in f32; the result is truncated.
// CHECK-LABEL: func @qmatmul_short_group_bf16
// CHECK: linalg.generic {indexing_maps = [#[[MK]], {{.*}}, #[[G3]], #[[MN]]]
// CHECK: arith.constant 8.000000e+00 : f32
// CHECK: arith.extf %{{.*}} : bf16 to f32
// CHECK: -> tensor<5x64xf32>
// CHECK: arith.truncf %{{.*}} : f32 to bf16
// CHECK: -> tensor<5x64xbf16>
func.func @qmatmul_short_group_bf16(%x: tensor<5x200xbf16>, %q: tensor<64x200xi4>, %s: tensor<64x2xbf16>) -> tensor<5x64xbf16> {
  %y = qslaw.qmatmul %x, %q scales(%s) <bits = 4, group = 128, sym> : (tensor<5x200xbf16>, tensor<64x200xi4>, tensor<64x2xbf16>) -> tensor<5x64xbf16>
  return %y : tensor<5x64xbf16>
}


// CHECK-LABEL: func @grad_input
// CHECK: linalg.generic {indexing_maps = [#[[MK]], #[[KN]], #[[PC]], #[[MN]]], iterator_types = ["parallel", "parallel", "reduction"]}
// CHECK: } -> tensor<7x256xf32>
func.func @grad_input(%dy: tensor<7x64xf32>, %q: tensor<64x256xi3>, %s: tensor<64x1xf32>) -> tensor<7x256xf32> {
  %dx = qslaw.qmatmul_grad_input %dy, %q scales(%s) <bits = 3, per_channel, sym> : (tensor<7x64xf32>, tensor<64x256xi3>, tensor<64x1xf32>) -> tensor<7x256xf32>
  return %dx : tensor<7x256xf32>
}


// The group reduction is the output map (n, k floordiv G): no [N, K] tensor.
// CHECK-LABEL: func @grad_scale
// CHECK: linalg.generic {indexing_maps = [#[[XS]], #[[DYS]], #[[NKS]], #[[GS]], #[[GS]]], iterator_types = ["parallel", "reduction", "reduction", "reduction"]}
// CHECK-SAME: outs(%{{.*}} : tensor<64x2xf32>)
func.func @grad_scale(%x: tensor<2x3x256xf32>, %dy: tensor<2x3x64xf32>, %q: tensor<64x256xi4>, %z: tensor<64x2xi4>) -> tensor<64x2xf32> {
  %ds = qslaw.qmatmul_grad_scale %x, %dy, %q zeros(%z) <bits = 4, group = 128> : (tensor<2x3x256xf32>, tensor<2x3x64xf32>, tensor<64x256xi4>, tensor<64x2xi4>) -> tensor<64x2xf32>
  return %ds : tensor<64x2xf32>
}


// Gamma mode: straight-through estimator with the clamp mask in the body.
// CHECK-LABEL: func @grad_gamma
// CHECK: linalg.generic
// CHECK-SAME: outs(%{{.*}} : tensor<32x2xf32>)
// CHECK: math.roundeven
// CHECK: arith.cmpf oge
// CHECK: arith.cmpf ole
// CHECK: arith.negf
// CHECK: arith.select
// CHECK-SAME: f32
func.func @grad_gamma(%x: tensor<5x200xf32>, %dy: tensor<5x32xf32>, %w: tensor<32x200xf32>, %s: tensor<32x2xf32>, %g: tensor<32x2xf32>, %z: tensor<32x2xi4>) -> tensor<32x2xf32> {
  %dg = qslaw.qmatmul_grad_gamma %x, %dy, %w scales(%s) gamma(%g) zeros(%z) <bits = 4, group = 128, mode = gamma> : (tensor<5x200xf32>, tensor<5x32xf32>, tensor<32x200xf32>, tensor<32x2xf32>, tensor<32x2xf32>, tensor<32x2xi4>) -> tensor<32x2xf32>
  return %dg : tensor<32x2xf32>
}


// CHECK-LABEL: func @quantize
// CHECK: linalg.generic
// CHECK: arith.divf
// CHECK: math.roundeven
// CHECK: arith.cmpf uno
// CHECK: arith.maximumf
// CHECK: arith.minimumf
// CHECK: arith.fptoui %{{.*}} : f32 to i2
func.func @quantize(%w: tensor<8x32xf32>, %s: tensor<8x2xf32>, %z: tensor<8x2xi2>) -> tensor<8x32xi2> {
  %q = qslaw.quantize %w scales(%s) zeros(%z) <bits = 2, group = 16> : (tensor<8x32xf32>, tensor<8x2xf32>, tensor<8x2xi2>) -> tensor<8x32xi2>
  return %q : tensor<8x32xi2>
}


// An explicit dequantize does materialise its result (that is its job).
// CHECK-LABEL: func @dequantize
// CHECK: linalg.generic
// CHECK: } -> tensor<8x32xf16>
func.func @dequantize(%q: tensor<8x32xi8>, %s: tensor<8x2xf16>) -> tensor<8x32xf16> {
  %w = qslaw.dequantize %q scales(%s) <bits = 8, group = 16, sym> : (tensor<8x32xi8>, tensor<8x2xf16>) -> tensor<8x32xf16>
  return %w : tensor<8x32xf16>
}
