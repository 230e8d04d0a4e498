// RUN: not qslaw-opt %s -qslaw-quantize-weights="bits=5" 2>&1 | FileCheck %s --check-prefix=BITS
// RUN: not qslaw-opt %s -qslaw-quantize-weights="mode=delta" 2>&1 | FileCheck %s --check-prefix=MODE
// RUN: not qslaw-opt %s -qslaw-quantize-weights="layers=(unclosed" 2>&1 | FileCheck %s --check-prefix=REGEX
// RUN: not qslaw-opt %s -qslaw-quantize-weights="group-size=-3" 2>&1 | FileCheck %s --check-prefix=GROUP
// RUN: not qslaw-opt %s -qslaw-quantize-weights="gamma-weight-as-stored=perhaps" 2>&1 | FileCheck %s --check-prefix=STORED
// RUN: qslaw-opt %s -qslaw-quantize-weights="bits=4" -verify-diagnostics -split-input-file -o /dev/null
// Gamma mode reading the weight as stored refuses the same weights.
// RUN: qslaw-opt %s -qslaw-quantize-weights="bits=4 mode=gamma gamma-weight-as-stored=true" -verify-diagnostics -split-input-file -o /dev/null

// BITS: error: qslaw-quantize-weights: bits must be 2, 3, 4 or 8, got 5
// MODE: error: qslaw-quantize-weights: mode must be 'scale' or 'gamma', got 'delta'
// REGEX: error: qslaw-quantize-weights: invalid layers regex '(unclosed'
// GROUP: error: qslaw-quantize-weights: group-size must be >= 0 (0 = per-channel), got -3
// STORED: for the --gamma-weight-as-stored option: 'perhaps' is invalid value for boolean argument

func.func @f(%x: tensor<3x4xf32>) -> tensor<3x4xf32> {
  return %x : tensor<3x4xf32>
}

// -----

// A non-finite weight would make its group's scale NaN or infinite.
func.func @nan_weight(%x: tensor<3x4xf32>) -> tensor<3x2xf32> {
  %w = arith.constant {qslaw.name = "model.layers.0.q_proj.weight"} dense<[[0.0, -1.0], [1.0, 0x7FC00000], [2.0, 4.0], [3.0, -2.0]]> : tensor<4x2xf32>
  %cst = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<3x2xf32>
  %init = linalg.fill ins(%cst : f32) outs(%e : tensor<3x2xf32>) -> tensor<3x2xf32>
  // expected-error @+1 {{qslaw-quantize-weights: weight 'model.layers.0.q_proj.weight' holds a non-finite value (nan) at [1, 1]: it cannot be quantized}}
  %y = linalg.matmul ins(%x, %w : tensor<3x4xf32>, tensor<4x2xf32>) outs(%init : tensor<3x2xf32>) -> tensor<3x2xf32>
  return %y : tensor<3x2xf32>
}

// -----

func.func @inf_weight(%x: tensor<3x4xf32>) -> tensor<3x2xf32> {
  %w = arith.constant {qslaw.name = "w"} dense<[[0.0, -1.0], [1.0, 1.0], [2.0, 4.0], [0xFF800000, -2.0]]> : tensor<4x2xf32>
  %cst = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<3x2xf32>
  %init = linalg.fill ins(%cst : f32) outs(%e : tensor<3x2xf32>) -> tensor<3x2xf32>
  // expected-error @+1 {{qslaw-quantize-weights: weight 'w' holds a non-finite value (-inf) at [3, 0]: it cannot be quantized}}
  %y = linalg.matmul ins(%x, %w : tensor<3x4xf32>, tensor<4x2xf32>) outs(%init : tensor<3x2xf32>) -> tensor<3x2xf32>
  return %y : tensor<3x2xf32>
}
