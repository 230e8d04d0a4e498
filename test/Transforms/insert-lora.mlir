// RUN: qslaw-opt %s --qslaw-insert-lora="layers=q rank=2 alpha=8 seed=3" | FileCheck %s
// RUN: qslaw-opt %s --qslaw-insert-lora="layers=q rank=2 alpha=8 seed=3" --qslaw-make-train-step="scales= params= loss=sum-squares" | FileCheck %s --check-prefix=TRAIN

// The adapted layer: A [r, K] (Kaiming-uniform, |a| < 1/sqrt(K) = 0.25),
// B [N, r] zero, x A^T over the leading dims, (x A^T) B^T, y + (8/2) * it.
// The layer that does not match keeps its output.
// CHECK-LABEL: func.func @forward
// CHECK: %[[Y:.*]] = qslaw.qmatmul %[[X:[^,]*]], {{.*}}qslaw.layer = "q"
// CHECK: %[[A:.*]] = arith.constant {qslaw.lora = "A", qslaw.lora_source = "node_q", qslaw.name = "q.lora_A"} dense<{{.*}}> : tensor<2x16xf32>
// CHECK: %[[B:.*]] = arith.constant {qslaw.lora = "B", qslaw.lora_source = "node_q", qslaw.name = "q.lora_B"} dense<0.000000e+00> : tensor<8x2xf32>
// CHECK: %[[D:.*]] = linalg.generic {{.*}}iterator_types = ["parallel", "parallel", "parallel", "reduction"]{{.*}} ins(%[[X]], %[[A]] : tensor<2x3x16xf32>, tensor<2x16xf32>)
// CHECK: %[[U:.*]] = linalg.generic {{.*}} ins(%[[D]], %[[B]] : tensor<2x3x2xf32>, tensor<8x2xf32>)
// CHECK: %[[S:.*]] = linalg.generic {{.*}} ins(%[[Y]], %[[U]] : tensor<2x3x8xf32>, tensor<2x3x8xf32>){{.*}}qslaw.lora_sum = "q"
// CHECK: %[[C:.*]] = arith.constant 4.000000e+00 : f32
// CHECK: arith.mulf %[[C]]
// CHECK: %[[V:.*]] = qslaw.qmatmul %[[S]], {{.*}}qslaw.layer = "v"
// CHECK-NOT: qslaw.lora
// CHECK: return %[[V]]

// Only the adapters train (scales frozen): kinds lora_A/lora_B, the source
// is the adapted node.
// TRAIN-LABEL: func.func @init_params() -> (tensor<2x16xf32>, tensor<8x2xf32>)
// TRAIN-SAME: qslaw.param_kinds = ["lora_A", "lora_B"]
// TRAIN-SAME: qslaw.param_sources = ["node_q", "node_q"]
// TRAIN-SAME: qslaw.params = ["q.lora_A", "q.lora_B"]
// TRAIN-LABEL: func.func @train_step
// TRAIN-COUNT-2: qslaw.adamw
func.func @forward(%x: tensor<2x3x16xf32>) -> tensor<2x3x8xf32> {
  %q = arith.constant dense<3> : tensor<8x16xi4>
  %s = arith.constant dense<0.5> : tensor<8x2xf32>
  %z = arith.constant dense<8> : tensor<8x2xi4>
  %y = qslaw.qmatmul %x, %q scales(%s) zeros(%z) <bits = 4, group = 8> {qslaw.layer = "q", qslaw.node = "node_q"} : (tensor<2x3x16xf32>, tensor<8x16xi4>, tensor<8x2xf32>, tensor<8x2xi4>) -> tensor<2x3x8xf32>
  %q2 = arith.constant dense<5> : tensor<8x8xi4>
  %s2 = arith.constant dense<0.25> : tensor<8x1xf32>
  %z2 = arith.constant dense<8> : tensor<8x1xi4>
  %v = qslaw.qmatmul %y, %q2 scales(%s2) zeros(%z2) <bits = 4, group = 8> {qslaw.layer = "v"} : (tensor<2x3x8xf32>, tensor<8x8xi4>, tensor<8x1xf32>, tensor<8x1xi4>) -> tensor<2x3x8xf32>
  return %v : tensor<2x3x8xf32>
}

