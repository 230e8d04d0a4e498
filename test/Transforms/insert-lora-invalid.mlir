// RUN: qslaw-opt %s --split-input-file --verify-diagnostics --qslaw-insert-lora="layers=q rank=9"
// RUN: not qslaw-opt %s --split-input-file --qslaw-insert-lora="layers=q rank=0" 2>&1 | FileCheck %s --check-prefix=ZERO
// RUN: not qslaw-opt %s --split-input-file --qslaw-insert-lora="layers=nothing" 2>&1 | FileCheck %s --check-prefix=NONE
// RUN: not qslaw-opt %s --split-input-file --qslaw-insert-lora="layers=(" 2>&1 | FileCheck %s --check-prefix=REGEX

// A rank above min(N, K) = 8 is refused, naming the layer.
// ZERO: rank 0 is outside [1, 8] for layer 'q'
// NONE: qslaw-insert-lora: layers regex 'nothing' selects no linear layer
// REGEX: qslaw-insert-lora: invalid layers regex '('
func.func @forward(%x: tensor<3x16xf32>) -> tensor<3x8xf32> {
  %q = arith.constant dense<3> : tensor<8x16xi4>
  %s = arith.constant dense<0.5> : tensor<8x2xf32>
  %z = arith.constant dense<8> : tensor<8x2xi4>
  // expected-error @+1 {{rank 9 is outside [1, 8] for layer 'q' ([N, K] = [8, 16])}}
  %y = qslaw.qmatmul %x, %q scales(%s) zeros(%z) <bits = 4, group = 8> {qslaw.layer = "q"} : (tensor<3x16xf32>, tensor<8x16xi4>, tensor<8x2xf32>, tensor<8x2xi4>) -> tensor<3x8xf32>
  return %y : tensor<3x8xf32>
}

// -----

// Adapters need f32 activations.
func.func @forward(%x: tensor<3x16xf16>) -> tensor<3x8xf16> {
  %q = arith.constant dense<3> : tensor<8x16xi4>
  %s = arith.constant dense<0.5> : tensor<8x2xf16>
  %z = arith.constant dense<8> : tensor<8x2xi4>
  // expected-error @+1 {{layer 'q' has 'f16' activations; adapters need f32}}
  %y = qslaw.qmatmul %x, %q scales(%s) zeros(%z) <bits = 4, group = 8> {qslaw.layer = "q"} : (tensor<3x16xf16>, tensor<8x16xi4>, tensor<8x2xf16>, tensor<8x2xi4>) -> tensor<3x8xf16>
  return %y : tensor<3x8xf16>
}
