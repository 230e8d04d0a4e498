// RUN: qslaw-opt %s -split-input-file -qslaw-fuse-dequant | FileCheck %s

// qslaw.dequantize feeding a transposed-B matmul.
// CHECK-LABEL: func @dequantize_op
// CHECK-SAME: (%[[X:.*]]: tensor<3x256xf32>, %[[Q:.*]]: tensor<8x256xi4>, %[[S:.*]]: tensor<8x2xf32>, %[[Z:.*]]: tensor<8x2xi4>)
// CHECK-NOT: linalg.matmul
// CHECK: %[[Y:.*]] = qslaw.qmatmul %[[X]], %[[Q]] scales(%[[S]]) zeros(%[[Z]]) <bits = 4, group = 128, asym, mode = scale>
// CHECK: return %[[Y]]
func.func @dequantize_op(%x: tensor<3x256xf32>, %q: tensor<8x256xi4>, %s: tensor<8x2xf32>, %z: tensor<8x2xi4>) -> tensor<3x8xf32> {
  %w = qslaw.dequantize %q scales(%s) zeros(%z) <bits = 4, group = 128> : (tensor<8x256xi4>, tensor<8x2xf32>, tensor<8x2xi4>) -> tensor<8x256xf32>
  %cst = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<3x8xf32>
  %init = linalg.fill ins(%cst : f32) outs(%e : tensor<3x8xf32>) -> tensor<3x8xf32>
  %y = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>, affine_map<(m, n, k) -> (n, k)>, affine_map<(m, n, k) -> (m, n)>]
       ins(%x, %w : tensor<3x256xf32>, tensor<8x256xf32>) outs(%init : tensor<3x8xf32>) -> tensor<3x8xf32>
  return %y : tensor<3x8xf32>
}

// -----

// Through a transpose to [K, N], as ONNX MatMul sees weights.
// CHECK-LABEL: func @through_transpose
// CHECK: qslaw.qmatmul %arg0, %arg1 scales(%arg2) <bits = 2, group = 48, sym, mode = scale> : (tensor<3x80xf32>, tensor<8x80xi2>, tensor<8x2xf32>) -> tensor<3x8xf32>
func.func @through_transpose(%x: tensor<3x80xf32>, %q: tensor<8x80xi2>, %s: tensor<8x2xf32>) -> tensor<3x8xf32> {
  %w = qslaw.dequantize %q scales(%s) <bits = 2, group = 48, sym> : (tensor<8x80xi2>, tensor<8x2xf32>) -> tensor<8x80xf32>
  %te = tensor.empty() : tensor<80x8xf32>
  %wt = linalg.transpose ins(%w : tensor<8x80xf32>) outs(%te : tensor<80x8xf32>) permutation = [1, 0]
  %cst = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<3x8xf32>
  %init = linalg.fill ins(%cst : f32) outs(%e : tensor<3x8xf32>) -> tensor<3x8xf32>
  %y = linalg.matmul ins(%x, %wt : tensor<3x80xf32>, tensor<80x8xf32>) outs(%init : tensor<3x8xf32>) -> tensor<3x8xf32>
  return %y : tensor<3x8xf32>
}

// -----

// A dequantisation linalg.generic (as IREE/torch-mlir spell it), asymmetric.
#nk = affine_map<(n, k) -> (n, k)>
#nj = affine_map<(n, k) -> (n, k floordiv 32)>
// CHECK-LABEL: func @dequant_generic
// CHECK: %[[Y:.*]] = qslaw.qmatmul %arg0, %arg1 scales(%arg2) zeros(%arg3) <bits = 4, group = 32, asym, mode = scale>
// CHECK: %[[R:.*]] = arith.addf %[[Y]], %arg4
// CHECK: return %[[R]]
func.func @dequant_generic(%x: tensor<3x64xf32>, %q: tensor<8x64xi4>, %s: tensor<8x2xf32>, %z: tensor<8x2xi4>, %acc: tensor<3x8xf32>) -> tensor<3x8xf32> {
  %e = tensor.empty() : tensor<8x64xf32>
  %w = linalg.generic {indexing_maps = [#nk, #nj, #nj, #nk], iterator_types = ["parallel", "parallel"]}
       ins(%q, %s, %z : tensor<8x64xi4>, tensor<8x2xf32>, tensor<8x2xi4>) outs(%e : tensor<8x64xf32>) {
  ^bb0(%qi: i4, %si: f32, %zi: i4, %o: f32):
    %qe = arith.extui %qi : i4 to i32
    %qf = arith.uitofp %qe : i32 to f32
    %zf = arith.uitofp %zi : i4 to f32
    %d = arith.subf %qf, %zf : f32
    %r = arith.mulf %si, %d : f32
    linalg.yield %r : f32
  } -> tensor<8x64xf32>
  %te = tensor.empty() : tensor<64x8xf32>
  %wt = linalg.transpose ins(%w : tensor<8x64xf32>) outs(%te : tensor<64x8xf32>) permutation = [1, 0]
  %y = linalg.matmul ins(%x, %wt : tensor<3x64xf32>, tensor<64x8xf32>) outs(%acc : tensor<3x8xf32>) -> tensor<3x8xf32>
  return %y : tensor<3x8xf32>
}

// -----

// Symmetric generic: the zero point is the constant 2^(bits-1); per-channel map.
#nk = affine_map<(n, k) -> (n, k)>
#n0 = affine_map<(n, k) -> (n, 0)>
// CHECK-LABEL: func @dequant_generic_sym
// CHECK: qslaw.qmatmul %arg0, %arg1 scales(%arg2) <bits = 8, per_channel, sym, mode = scale>
func.func @dequant_generic_sym(%x: tensor<3x64xf32>, %q: tensor<8x64xi8>, %s: tensor<8x1xf32>) -> tensor<3x8xf32> {
  %e = tensor.empty() : tensor<8x64xf32>
  %w = linalg.generic {indexing_maps = [#nk, #n0, #nk], iterator_types = ["parallel", "parallel"]}
       ins(%q, %s : tensor<8x64xi8>, tensor<8x1xf32>) outs(%e : tensor<8x64xf32>) {
  ^bb0(%qi: i8, %si: f32, %o: f32):
    %qf = arith.uitofp %qi : i8 to f32
    %c = arith.constant 128.0 : f32
    %d = arith.subf %qf, %c : f32
    %r = arith.mulf %d, %si : f32
    linalg.yield %r : f32
  } -> tensor<8x64xf32>
  %cst = arith.constant 0.0 : f32
  %e2 = tensor.empty() : tensor<3x8xf32>
  %init = linalg.fill ins(%cst : f32) outs(%e2 : tensor<3x8xf32>) -> tensor<3x8xf32>
  %y = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>, affine_map<(m, n, k) -> (n, k)>, affine_map<(m, n, k) -> (m, n)>]
       ins(%x, %w : tensor<3x64xf32>, tensor<8x64xf32>) outs(%init : tensor<3x8xf32>) -> tensor<3x8xf32>
  return %y : tensor<3x8xf32>
}

// -----

// Not a dequantisation: signed conversion and a wrong zero constant.
#nk = affine_map<(n, k) -> (n, k)>
#n0 = affine_map<(n, k) -> (n, 0)>
// CHECK-LABEL: func @not_dequant
// CHECK-NOT: qslaw.qmatmul
// CHECK: linalg.matmul
func.func @not_dequant(%x: tensor<3x64xf32>, %q: tensor<8x64xi8>, %s: tensor<8x1xf32>) -> tensor<3x8xf32> {
  %e = tensor.empty() : tensor<8x64xf32>
  %w = linalg.generic {indexing_maps = [#nk, #n0, #nk], iterator_types = ["parallel", "parallel"]}
       ins(%q, %s : tensor<8x64xi8>, tensor<8x1xf32>) outs(%e : tensor<8x64xf32>) {
  ^bb0(%qi: i8, %si: f32, %o: f32):
    %qf = arith.sitofp %qi : i8 to f32
    %c = arith.constant 3.0 : f32
    %d = arith.subf %qf, %c : f32
    %r = arith.mulf %d, %si : f32
    linalg.yield %r : f32
  } -> tensor<8x64xf32>
  %cst = arith.constant 0.0 : f32
  %e2 = tensor.empty() : tensor<3x8xf32>
  %init = linalg.fill ins(%cst : f32) outs(%e2 : tensor<3x8xf32>) -> tensor<3x8xf32>
  %y = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>, affine_map<(m, n, k) -> (n, k)>, affine_map<(m, n, k) -> (m, n)>]
       ins(%x, %w : tensor<3x64xf32>, tensor<8x64xf32>) outs(%init : tensor<3x8xf32>) -> tensor<3x8xf32>
  return %y : tensor<3x8xf32>
}

// -----

// A dequantized weight used as [K, N] without a transpose is a different
// product: left alone.
// CHECK-LABEL: func @wrong_orientation
// CHECK: linalg.matmul
func.func @wrong_orientation(%x: tensor<3x64xf32>, %q: tensor<64x64xi4>, %s: tensor<64x2xf32>) -> tensor<3x64xf32> {
  %w = qslaw.dequantize %q scales(%s) <bits = 4, group = 32, sym> : (tensor<64x64xi4>, tensor<64x2xf32>) -> tensor<64x64xf32>
  %cst = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<3x64xf32>
  %init = linalg.fill ins(%cst : f32) outs(%e : tensor<3x64xf32>) -> tensor<3x64xf32>
  %y = linalg.matmul ins(%x, %w : tensor<3x64xf32>, tensor<64x64xf32>) outs(%init : tensor<3x64xf32>) -> tensor<3x64xf32>
  return %y : tensor<3x64xf32>
}
