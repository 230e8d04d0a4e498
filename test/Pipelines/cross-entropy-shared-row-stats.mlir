// RUN: qslaw-opt %s -qslaw-cpu-bufferize="ukernels=0" | FileCheck %s

// A training step's loss and its gradient read the same logits and labels:
// they lower to the same row max and row sum of exp, which CSE merges
// before elementwise fusion rewrites each copy into its own consumer. One
// row-max reduction is left (it was two, computed twice per step).
// CHECK-LABEL: func.func @loss_and_gradient
// CHECK-COUNT-1: vector.reduction <maximumf>
// CHECK-NOT: vector.reduction <maximumf>
// CHECK: return
func.func @loss_and_gradient(%x: tensor<2x3x10xf32>, %labels: tensor<2x3xi64>)
    -> (tensor<f32>, tensor<2x3x10xf32>) {
  %loss = qslaw.cross_entropy %x, %labels
      : (tensor<2x3x10xf32>, tensor<2x3xi64>) -> tensor<f32>
  %one = arith.constant dense<1.0> : tensor<f32>
  %g = qslaw.cross_entropy_grad %x, %labels, %one
      : (tensor<2x3x10xf32>, tensor<2x3xi64>, tensor<f32>) -> tensor<2x3x10xf32>
  return %loss, %g : tensor<f32>, tensor<2x3x10xf32>
}
