// RUN: qslaw-opt %s --qslaw-make-train-step="params= loss=sum-squares scale-start-layer=1" | FileCheck %s
// RUN: qslaw-opt %s --qslaw-make-train-step="params= loss=sum-squares" | FileCheck %s --check-prefix=ALL
// RUN: not qslaw-opt %s --qslaw-make-train-step="params= loss=sum-squares scale-start-layer=20" 2>&1 | FileCheck %s --check-prefix=NONE

// scale-start-layer=N (the reference's --start_layer): only decoder layers
// i > N train their scales; a layer name without an index is not a decoder
// layer and does not train.
// CHECK-LABEL: func.func @init_params
// CHECK-SAME: qslaw.params = ["/model/layers.2/q_proj/MatMul.scales", "model.layers.10.mlp.down_proj.weight.scales"]
// ALL-LABEL: func.func @init_params
// ALL-SAME: qslaw.params = ["/model/layers.0/q_proj/MatMul.scales", "/model/layers.1/q_proj/MatMul.scales", "/model/layers.2/q_proj/MatMul.scales", "model.layers.10.mlp.down_proj.weight.scales", "lm_head.scales"]
// NONE: no trainable tensor
func.func @forward(%x: tensor<3x8xf32>) -> tensor<3x8xf32> {
  %q = arith.constant dense<3> : tensor<8x8xi4>
  %s0 = arith.constant dense<0.5> : tensor<8x1xf32>
  %s1 = arith.constant dense<0.25> : tensor<8x1xf32>
  %s2 = arith.constant dense<0.125> : tensor<8x1xf32>
  %s3 = arith.constant dense<0.0625> : tensor<8x1xf32>
  %s4 = arith.constant dense<0.03125> : tensor<8x1xf32>
  %z = arith.constant dense<8> : tensor<8x1xi4>
  %a = qslaw.qmatmul %x, %q scales(%s0) zeros(%z) <bits = 4, group = 8> {qslaw.layer = "/model/layers.0/q_proj/MatMul"} : (tensor<3x8xf32>, tensor<8x8xi4>, tensor<8x1xf32>, tensor<8x1xi4>) -> tensor<3x8xf32>
  %b = qslaw.qmatmul %a, %q scales(%s1) zeros(%z) <bits = 4, group = 8> {qslaw.layer = "/model/layers.1/q_proj/MatMul"} : (tensor<3x8xf32>, tensor<8x8xi4>, tensor<8x1xf32>, tensor<8x1xi4>) -> tensor<3x8xf32>
  %c = qslaw.qmatmul %b, %q scales(%s2) zeros(%z) <bits = 4, group = 8> {qslaw.layer = "/model/layers.2/q_proj/MatMul"} : (tensor<3x8xf32>, tensor<8x8xi4>, tensor<8x1xf32>, tensor<8x1xi4>) -> tensor<3x8xf32>
  %d = qslaw.qmatmul %c, %q scales(%s3) zeros(%z) <bits = 4, group = 8> {qslaw.layer = "model.layers.10.mlp.down_proj.weight"} : (tensor<3x8xf32>, tensor<8x8xi4>, tensor<8x1xf32>, tensor<8x1xi4>) -> tensor<3x8xf32>
  %e = qslaw.qmatmul %d, %q scales(%s4) zeros(%z) <bits = 4, group = 8> {qslaw.layer = "lm_head"} : (tensor<3x8xf32>, tensor<8x8xi4>, tensor<8x1xf32>, tensor<8x1xi4>) -> tensor<3x8xf32>
  return %e : tensor<3x8xf32>
}
