// RUN: not qslaw-opt %s -qslaw-quantize-weights="bits=5" 2>&1 | FileCheck %s --check-prefix=BITS
// RUN: not qslaw-opt %s -qslaw-quantize-weights="mode=delta" 2>&1 | FileCheck %s --check-prefix=MODE
// RUN: not qslaw-opt %s -qslaw-quantize-weights="layers=(unclosed" 2>&1 | FileCheck %s --check-prefix=REGEX
// RUN: not qslaw-opt %s -qslaw-quantize-weights="group-size=-3" 2>&1 | FileCheck %s --check-prefix=GROUP
// RUN: qslaw-opt %s -qslaw-quantize-weights="bits=4" -verify-diagnostics -split-input-file -o /dev/null

// BITS: error: qslaw-quantize-weights: bits must be 2, 3, 4 or 8, got 5
// MODE: error: qslaw-quantize-weights: mode must be 'scale' or 'gamma', got 'delta'
// REGEX: error: qslaw-quantize-weights: invalid layers regex '(unclosed'
// GROUP: error: qslaw-quantize-weights: group-size must be >= 0 (0 = per-channel), got -3

func.func @f(%x: tensor<3x4xf32>) -> tensor<3x4xf32> {
  return %x : tensor<3x4xf32>
}
