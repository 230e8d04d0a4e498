// RUN: qslaw-opt %s -split-input-file -qslaw-quantize-weights="bits=4 group-size=2" | FileCheck %s
// RUN: qslaw-opt %s -split-input-file -qslaw-quantize-weights="bits=4 group-size=2 symmetric=true" | FileCheck %s --check-prefix=SYM
// RUN: qslaw-opt %s -split-input-file -qslaw-quantize-weights="bits=2 group-size=0 layers=.*q_proj.*" | FileCheck %s --check-prefix=REGEX
// RUN: qslaw-opt %s -split-input-file -qslaw-quantize-weights="bits=4 group-size=2 mode=gamma gamma-weight-as-stored=true" | FileCheck %s --check-prefix=GAMMA
// RUN: qslaw-opt %s -split-input-file -qslaw-quantize-weights="bits=4 group-size=2 mode=gamma" | FileCheck %s --check-prefix=GCOPY
// RUN: qslaw-opt %s -split-input-file -qslaw-quantize-weights="bits=3 group-size=2 clip-steps=8" | FileCheck %s --check-prefix=CLIP

// ONNX layout W[K=4, N=2]: column n is row n of the [N, K] codes.
// Row 0 = [0, 1, 2, 3]: groups [0, 1] -> s = 1/15, z = 0, codes [0, 15];
//                       [2, 3] -> min clamps to 0: s = 3/15 = 0.2, z = 0, codes [10, 15].
// Row 1 = [-1, -1, 4, -2]: group [-1, -1] -> max clamps to 0: s = 1/15, z = 15, codes [0, 0];
//                          [4, -2] -> s = 6/15 = 0.4, z = round(5) = 5, codes [15, 0].
// CHECK-LABEL: func @layer
// CHECK-DAG: %[[S:.*]] = arith.constant {qslaw.name = "model.layers.0.q_proj.weight.scales"} dense<{{\[\[}}0.0666666701, 2.000000e-01], [0.0666666701, 4.000000e-01]]> : tensor<2x2xf32>
// CHECK-DAG: %[[Z:.*]] = arith.constant {qslaw.name = "model.layers.0.q_proj.weight.zeros"} dense<{{\[\[}}0, 0], [-1, 5]]> : tensor<2x2xi4>
// CHECK-DAG: %[[Q:.*]] = arith.constant {qslaw.name = "model.layers.0.q_proj.weight.codes"} dense<{{\[\[}}0, -1, -6, -1], [0, 0, -1, 0]]> : tensor<2x4xi4>
// CHECK: %[[Y:.*]] = qslaw.qmatmul %arg0, %[[Q]] scales(%[[S]]) zeros(%[[Z]]) <bits = 4, group = 2, asym, mode = scale> {{.*}}: (tensor<3x4xf32>, tensor<2x4xi4>, tensor<2x2xf32>, tensor<2x2xi4>) -> tensor<3x2xf32>
// CHECK-NOT: linalg.matmul
// CHECK: return %[[Y]]

// SYM-LABEL: func @layer
// SYM: qslaw.qmatmul %arg0, %{{.*}} scales(%{{.*}}) <bits = 4, group = 2, sym, mode = scale>

// REGEX-LABEL: func @layer
// REGEX: qslaw.qmatmul {{.*}} <bits = 2, per_channel, asym, mode = scale> {{.*}}: (tensor<3x4xf32>, tensor<2x4xi2>, tensor<2x1xf32>, tensor<2x1xi2>) -> tensor<3x2xf32>

// Gamma mode with gamma-weight-as-stored keeps the model's own [K, N]
// weight (no copy) and quantizes its transpose; without it, W is an [N, K]
// copy (what folds to constant codes, what the CUDA kernels take).
// GCOPY-LABEL: func @layer
// GCOPY: %[[W:.*]] = arith.constant {qslaw.name = "model.layers.0.q_proj.weight"} dense<{{\[\[}}0.000000e+00, 1.000000e+00, 2.000000e+00, 3.000000e+00], [-1.000000e+00, -1.000000e+00, 4.000000e+00, -2.000000e+00]]> : tensor<2x4xf32>
// GCOPY-NOT: linalg.transpose
// GCOPY: qslaw.quantize %[[W]] scales(
// GAMMA-LABEL: func @layer
// GAMMA-DAG: %[[W:.*]] = arith.constant {qslaw.name = "model.layers.0.q_proj.weight"} dense<{{\[\[}}0.000000e+00, -1.000000e+00], [1.000000e+00, -1.000000e+00], [2.000000e+00, 4.000000e+00], [3.000000e+00, -2.000000e+00]]> : tensor<4x2xf32>
// GAMMA-DAG: %[[G:.*]] = arith.constant {qslaw.name = "model.layers.0.q_proj.weight.gamma"} dense<1.000000e+00> : tensor<2x2xf32>
// GAMMA-DAG: %[[WT:.*]] = linalg.transpose ins(%[[W]] : tensor<4x2xf32>) outs(%{{.*}} : tensor<2x4xf32>) permutation = [1, 0]
// GAMMA: %[[SG:.*]] = arith.mulf %[[S:.*]], %[[G]] : tensor<2x2xf32>
// GAMMA: %[[Q:.*]] = qslaw.quantize %[[WT]] scales(%[[SG]]) zeros(%{{.*}}) <bits = 4, group = 2, asym, mode = gamma>
// GAMMA: qslaw.qmatmul %arg0, %[[Q]] scales(%[[S]]) zeros(%{{.*}}) <bits = 4, group = 2, asym, mode = gamma>

// CLIP-LABEL: func @layer
// CLIP: qslaw.qmatmul {{.*}} <bits = 3, group = 2, asym, mode = scale>
func.func @layer(%x: tensor<3x4xf32>) -> tensor<3x2xf32> {
  %w = arith.constant {qslaw.name = "model.layers.0.q_proj.weight"} dense<[[0.0, -1.0], [1.0, -1.0], [2.0, 4.0], [3.0, -2.0]]> : tensor<4x2xf32>
  %cst = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<3x2xf32>
  %init = linalg.fill ins(%cst : f32) outs(%e : tensor<3x2xf32>) -> tensor<3x2xf32>
  %y = linalg.matmul ins(%x, %w : tensor<3x4xf32>, tensor<4x2xf32>) outs(%init : tensor<3x2xf32>) -> tensor<3x2xf32>
  return %y : tensor<3x2xf32>
}

// -----

// Transposed-B weight [N, K], named by location; a non-zero accumulator is
// added after the quantized product.
// CHECK-LABEL: func @transposed_b_with_acc
// CHECK: %[[Y:.*]] = qslaw.qmatmul %arg0, {{.*}} -> tensor<3x2xf32>
// CHECK: %[[R:.*]] = arith.addf %[[Y]], %arg1 : tensor<3x2xf32>
// CHECK: return %[[R]]
// REGEX-LABEL: func @transposed_b_with_acc
// REGEX: linalg.matmul
// A weight already stored as [N, K] is quantized as it is, in gamma mode.
// GAMMA-LABEL: func @transposed_b_with_acc
// GAMMA: %[[W:.*]] = arith.constant dense<{{.*}}> : tensor<2x4xf32>
// GAMMA-NOT: linalg.transpose
// GAMMA: qslaw.quantize %[[W]] scales(
func.func @transposed_b_with_acc(%x: tensor<3x4xf32>, %acc: tensor<3x2xf32>) -> tensor<3x2xf32> {
  %w = arith.constant dense<[[0.0, 1.0, 2.0, 3.0], [-1.0, -1.0, 4.0, -2.0]]> : tensor<2x4xf32> loc("model.layers.0.k_proj.weight")
  %y = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>, affine_map<(m, n, k) -> (n, k)>, affine_map<(m, n, k) -> (m, n)>]
       ins(%x, %w : tensor<3x4xf32>, tensor<2x4xf32>) outs(%acc : tensor<3x2xf32>) -> tensor<3x2xf32>
  return %y : tensor<3x2xf32>
}

// -----

// A bf16 weight widened by a Cast: quantized from its own values (scale
// mode: the codes of @layer's weight, no float weight left). In gamma mode
// with gamma-weight-as-stored the bf16 constant itself reaches the
// quantize, unwidened, through a transpose; without it, an f32 [N, K] copy.
// CHECK-LABEL: func @bf16_weight
// CHECK-DAG: arith.constant {qslaw.name = "model.layers.0.v_proj.weight.codes"} dense<{{\[\[}}0, -1, -6, -1], [0, 0, -1, 0]]> : tensor<2x4xi4>
// CHECK-NOT: bf16
// CHECK: qslaw.qmatmul
// CHECK-NOT: linalg.generic
// GAMMA-LABEL: func @bf16_weight
// GAMMA-DAG: %[[W:.*]] = arith.constant {qslaw.name = "model.layers.0.v_proj.weight"} dense<{{.*}}> : tensor<4x2xbf16>
// GAMMA-DAG: %[[WT:.*]] = linalg.transpose ins(%[[W]] : tensor<4x2xbf16>) outs(%{{.*}} : tensor<2x4xbf16>) permutation = [1, 0]
// GAMMA-NOT: extf
// GAMMA: qslaw.quantize %[[WT]] scales({{.*}} : (tensor<2x4xbf16>, tensor<2x2xf32>, tensor<2x2xi4>) -> tensor<2x4xi4>
// GCOPY-LABEL: func @bf16_weight
// GCOPY: %[[W:.*]] = arith.constant {qslaw.name = "model.layers.0.v_proj.weight"} dense<{{\[\[}}0.000000e+00, 1.000000e+00, 2.000000e+00, 3.000000e+00], [-1.000000e+00, -1.000000e+00, 4.000000e+00, -2.000000e+00]]> : tensor<2x4xf32>
// GCOPY-NOT: bf16
// GCOPY: qslaw.quantize %[[W]] scales(
func.func @bf16_weight(%x: tensor<3x4xf32>) -> tensor<3x2xf32> {
  %w = arith.constant {qslaw.name = "model.layers.0.v_proj.weight"} dense<[[0.0, -1.0], [1.0, -1.0], [2.0, 4.0], [3.0, -2.0]]> : tensor<4x2xbf16>
  %e0 = tensor.empty() : tensor<4x2xf32>
  %wf = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]}
      ins(%w : tensor<4x2xbf16>) outs(%e0 : tensor<4x2xf32>) {
  ^bb0(%in: bf16, %out: f32):
    %v = arith.extf %in : bf16 to f32
    linalg.yield %v : f32
  } -> tensor<4x2xf32>
  %cst = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<3x2xf32>
  %init = linalg.fill ins(%cst : f32) outs(%e : tensor<3x2xf32>) -> tensor<3x2xf32>
  %y = linalg.matmul ins(%x, %wf : tensor<3x4xf32>, tensor<4x2xf32>) outs(%init : tensor<3x2xf32>) -> tensor<3x2xf32>
  return %y : tensor<3x2xf32>
}

// -----

// An f16 weight stored as [N, K] (transposed B): gamma mode with
// gamma-weight-as-stored quantizes the f16 constant as it is.
// GAMMA-LABEL: func @f16_transposed_b
// GAMMA: %[[W:.*]] = arith.constant dense<{{.*}}> : tensor<2x4xf16>
// GAMMA-NOT: linalg.transpose
// GAMMA-NOT: extf
// GAMMA: qslaw.quantize %[[W]] scales({{.*}} : (tensor<2x4xf16>,
func.func @f16_transposed_b(%x: tensor<3x4xf32>, %acc: tensor<3x2xf32>) -> tensor<3x2xf32> {
  %w = arith.constant dense<[[0.0, 1.0, 2.0, 3.0], [-1.0, -1.0, 4.0, -2.0]]> : tensor<2x4xf16> loc("model.layers.0.o_proj.weight")
  %e0 = tensor.empty() : tensor<2x4xf32>
  %wf = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]}
      ins(%w : tensor<2x4xf16>) outs(%e0 : tensor<2x4xf32>) {
  ^bb0(%in: f16, %out: f32):
    %v = arith.extf %in : f16 to f32
    linalg.yield %v : f32
  } -> tensor<2x4xf32>
  %y = linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (m, k)>, affine_map<(m, n, k) -> (n, k)>, affine_map<(m, n, k) -> (m, n)>]
       ins(%x, %wf : tensor<3x4xf32>, tensor<2x4xf32>) outs(%acc : tensor<3x2xf32>) -> tensor<3x2xf32>
  return %y : tensor<3x2xf32>
}

// -----

// Runtime weights and mixed-precision accumulators are left alone.
// CHECK-LABEL: func @not_constant
// CHECK: linalg.matmul
// CHECK-NOT: qslaw.qmatmul
func.func @not_constant(%x: tensor<3x4xf32>, %w: tensor<4x2xf32>, %acc: tensor<3x2xf32>) -> tensor<3x2xf32> {
  %y = linalg.matmul ins(%x, %w : tensor<3x4xf32>, tensor<4x2xf32>) outs(%acc : tensor<3x2xf32>) -> tensor<3x2xf32>
  return %y : tensor<3x2xf32>
}

// -----

// CHECK-LABEL: func @mixed_precision
// CHECK: linalg.matmul
func.func @mixed_precision(%x: tensor<3x4xf16>, %acc: tensor<3x2xf32>) -> tensor<3x2xf32> {
  %w = arith.constant dense<1.0> : tensor<4x2xf16>
  %y = linalg.matmul ins(%x, %w : tensor<3x4xf16>, tensor<4x2xf16>) outs(%acc : tensor<3x2xf32>) -> tensor<3x2xf32>
  return %y : tensor<3x2xf32>
}
