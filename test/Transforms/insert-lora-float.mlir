// RUN: qslaw-opt %s --qslaw-insert-lora="layers=w_up rank=2" | FileCheck %s --check-prefix=FLOAT
// RUN: qslaw-opt %s --qslaw-insert-lora="layers=node_up rank=2" | FileCheck %s --check-prefix=FLOAT

// Full-precision LoRA: a float matmul by a constant weight, selected by the
// weight's name (or the node's).
// FLOAT-LABEL: func.func @float_linear
// FLOAT: %[[M:.*]] = linalg.matmul ins(%[[X:.*]], %{{.*}} : tensor<4x16xf32>, tensor<16x8xf32>)
// FLOAT: arith.constant {qslaw.lora = "A", qslaw.lora_source = "node_up", qslaw.name = "{{w_up|node_up}}.lora_A"} dense<{{.*}}> : tensor<2x16xf32>
// FLOAT: linalg.generic {{.*}} ins(%[[X]], %{{.*}} : tensor<4x16xf32>, tensor<2x16xf32>)
// FLOAT: %[[S:.*]] = linalg.generic {{.*}} ins(%[[M]], %{{.*}} : tensor<4x8xf32>, tensor<4x8xf32>){{.*}}qslaw.lora_sum = "{{w_up|node_up}}"
// FLOAT: return %[[S]]
func.func @float_linear(%x: tensor<4x16xf32>) -> tensor<4x8xf32> {
  %w = arith.constant {qslaw.name = "w_up"} dense<0.5> : tensor<16x8xf32>
  %e = tensor.empty() : tensor<4x8xf32>
  %z = arith.constant 0.0 : f32
  %f = linalg.fill ins(%z : f32) outs(%e : tensor<4x8xf32>) -> tensor<4x8xf32>
  %y = linalg.matmul ins(%x, %w : tensor<4x16xf32>, tensor<16x8xf32>) outs(%f : tensor<4x8xf32>) -> tensor<4x8xf32> loc("node_up")
  return %y : tensor<4x8xf32>
}
