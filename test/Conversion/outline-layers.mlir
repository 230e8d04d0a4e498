// RUN: qslaw-opt %s -qslaw-outline-layers="min-ops=2" | FileCheck %s
// RUN: qslaw-opt %s -qslaw-outline-layers="min-ops=2" -qslaw-merge-identical-functions | FileCheck %s --check-prefix=MERGE
// RUN: qslaw-opt %s -qslaw-outline-layers="min-ops=4" | FileCheck %s --check-prefix=SHORT

// Two identical layers (ONNX node names ".../layers.N/..."): each run of a
// layer's ops becomes a function. Its weights (named constants) are
// arguments; the unnamed constant is cloned in; the mask conversion, which
// reads only the caller's %mask and which CSE shared between the layers,
// stays in the caller and both layers receive it; the head, after the
// last layer, stays in the caller. The layer names on ops are dropped.

// CHECK-LABEL: func.func @forward(
// CHECK-SAME: %[[X:.*]]: tensor<4xf32>, %[[MASK:.*]]: tensor<4xf32>)
// CHECK-DAG:  %[[W0:.*]] = arith.constant {qslaw.name = "w0"}
// CHECK-DAG:  %[[W1:.*]] = arith.constant {qslaw.name = "w1"}
// CHECK:      %[[M:.*]] = linalg.add ins(%[[MASK]]
// CHECK:      %[[L0:.*]] = call @forward__layer0(%[[X]], %[[W0]], %[[M]])
// CHECK:      %[[L1:.*]] = call @forward__layer1(%[[L0]], %[[W1]], %[[M]])
// CHECK:      %[[H:.*]] = linalg.exp ins(%[[L1]]
// CHECK:      return %[[H]]

// CHECK:      func.func private @forward__layer0(%[[A:.*]]: tensor<4xf32>, %[[W:.*]]: tensor<4xf32>, %[[AM:.*]]: tensor<4xf32>) -> tensor<4xf32>
// CHECK-SAME: llvm.linkage = #llvm.linkage<internal>, passthrough = ["noinline"]
// CHECK:      %[[E:.*]] = tensor.empty()
// CHECK-NOT:  qslaw.layer
// CHECK:      %[[P:.*]] = linalg.mul ins(%[[A]], %[[W]] {{.*}} outs(%[[E]]
// CHECK:      %[[Q:.*]] = linalg.add ins(%[[P]], %[[AM]]
// CHECK:      %[[EPS:.*]] = arith.constant dense<5.000000e-01>
// CHECK:      %[[R:.*]] = linalg.add ins(%[[Q]], %[[EPS]]
// CHECK:      return %[[R]]
// CHECK:      func.func private @forward__layer1(

// The two layer functions are identical: one is kept, called twice.
// MERGE:     call @forward__layer0(
// MERGE:     call @forward__layer0(
// MERGE-NOT: func.func private @forward__layer1

// Runs shorter than min-ops stay inline.
// SHORT-NOT: call
// SHORT-NOT: func.func private

func.func @forward(%x: tensor<4xf32>, %mask: tensor<4xf32>) -> tensor<4xf32> {
  %w0 = arith.constant {qslaw.name = "w0"} dense<[1.0, 2.0, 3.0, 4.0]> : tensor<4xf32>
  %w1 = arith.constant {qslaw.name = "w1"} dense<[5.0, 6.0, 7.0, 8.0]> : tensor<4xf32>
  %eps = arith.constant dense<0.5> : tensor<4xf32>
  %e = tensor.empty() : tensor<4xf32>
  %m = linalg.add ins(%mask, %eps : tensor<4xf32>, tensor<4xf32>) outs(%e : tensor<4xf32>) -> tensor<4xf32> loc("/m/layers.0/mask")
  %a0 = linalg.mul {qslaw.layer = "l0"} ins(%x, %w0 : tensor<4xf32>, tensor<4xf32>) outs(%e : tensor<4xf32>) -> tensor<4xf32> loc("/m/layers.0/mul")
  %b0 = linalg.add ins(%a0, %m : tensor<4xf32>, tensor<4xf32>) outs(%e : tensor<4xf32>) -> tensor<4xf32> loc("/m/layers.0/add")
  %c0 = linalg.add ins(%b0, %eps : tensor<4xf32>, tensor<4xf32>) outs(%e : tensor<4xf32>) -> tensor<4xf32> loc("/m/layers.0/add2")
  %a1 = linalg.mul {qslaw.layer = "l1"} ins(%c0, %w1 : tensor<4xf32>, tensor<4xf32>) outs(%e : tensor<4xf32>) -> tensor<4xf32> loc("/m/layers.1/mul")
  %b1 = linalg.add ins(%a1, %m : tensor<4xf32>, tensor<4xf32>) outs(%e : tensor<4xf32>) -> tensor<4xf32> loc("/m/layers.1/add")
  %c1 = linalg.add ins(%b1, %eps : tensor<4xf32>, tensor<4xf32>) outs(%e : tensor<4xf32>) -> tensor<4xf32> loc("/m/layers.1/add2")
  %h = linalg.exp ins(%c1 : tensor<4xf32>) outs(%e : tensor<4xf32>) -> tensor<4xf32> loc("/m/head")
  return %h : tensor<4xf32>
}
