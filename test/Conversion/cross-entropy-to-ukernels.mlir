// RUN: qslaw-opt %s -qslaw-lower-cross-entropy-to-ukernels="num-threads=2" -split-input-file | FileCheck %s
// RUN: not qslaw-opt %s -qslaw-lower-cross-entropy-to-ukernels="num-threads=-1" -split-input-file 2>&1 | FileCheck %s --check-prefix=ERR
// ERR: error: qslaw-lower-cross-entropy-to-ukernels: num-threads must be >= 0 (0: QSLAW_NUM_THREADS or all cores at run time), got -1

// The loss and its gradient of a token slice of [B, T, V] logits: calls of
// the runtime's kernels, logits and labels as strided views (the slice is
// not copied), the loss back through a one-element buffer, grad_loss in as
// one, the gradient [B*T', V] expanded to the op's shape.
// CHECK-LABEL: func.func @loss_and_gradient
// CHECK: %[[S:.*]] = tensor.extract_slice %arg0[0, 0, 0] [2, 2, 10] [1, 1, 1]
// CHECK: %[[L:.*]] = tensor.extract_slice %arg1[0, 1] [2, 2] [1, 1]
// CHECK: %[[SC:.*]] = tensor.collapse_shape %[[S]] {{\[}}[0, 1], [2]] : tensor<2x2x10xf32> into tensor<4x10xf32>
// CHECK: bufferization.to_buffer %[[SC]] read_only {qslaw.ukernel_operand = {{[0-9]+}} : i64} : tensor<4x10xf32> to memref<4x10xf32, strided<[?, ?], offset: ?>>
// CHECK: %[[LC:.*]] = tensor.collapse_shape %[[L]] {{\[}}[0, 1]] : tensor<2x2xi64> into tensor<4xi64>
// CHECK: bufferization.to_buffer %[[LC]] read_only {{.*}} to memref<4xi64, strided<[?], offset: ?>>
// CHECK: %[[LOSS:.*]] = memref.alloc() : memref<1xf32>
// CHECK: call @qslaw_ukernel_cross_entropy_f32({{.*}}, %c-100_i64, %c2_i32) : (memref<?x?xf32, strided<[?, ?], offset: ?>>, memref<?xi64, strided<[?], offset: ?>>, memref<?xf32>, i64, i32) -> ()
// CHECK: %[[LT:.*]] = bufferization.to_tensor %[[LOSS]]
// CHECK: tensor.collapse_shape %[[LT]] [] : tensor<1xf32> into tensor<f32>
// CHECK: tensor.expand_shape %{{.*}} [] output_shape [1] : tensor<f32> into tensor<1xf32>
// CHECK: %[[G:.*]] = memref.alloc() : memref<4x10xf32>
// Ignored rows written as zeros (flag 1).
// CHECK: call @qslaw_ukernel_cross_entropy_grad_f32({{.*}}, %c-100_i64{{.*}}, %c1_i32, %c2_i32{{.*}}) : (memref<?x?xf32, strided<[?, ?], offset: ?>>, memref<?xi64, strided<[?], offset: ?>>, memref<?xf32>, memref<?x?xf32>, i64, i32, i32) -> ()
// CHECK: %[[GT:.*]] = bufferization.to_tensor %[[G]]
// CHECK: tensor.expand_shape %[[GT]] {{\[}}[0, 1], [2]] output_shape [2, 2, 10] : tensor<4x10xf32> into tensor<2x2x10xf32>
// CHECK-NOT: qslaw.cross_entropy
// CHECK: return
func.func @loss_and_gradient(%x: tensor<2x3x10xf32>, %labels: tensor<2x3xi64>, %gl: tensor<f32>)
    -> (tensor<f32>, tensor<2x2x10xf32>) {
  %s = tensor.extract_slice %x[0, 0, 0] [2, 2, 10] [1, 1, 1]
      : tensor<2x3x10xf32> to tensor<2x2x10xf32>
  %l = tensor.extract_slice %labels[0, 1] [2, 2] [1, 1] : tensor<2x3xi64> to tensor<2x2xi64>
  %loss = qslaw.cross_entropy %s, %l : (tensor<2x2x10xf32>, tensor<2x2xi64>) -> tensor<f32>
  %g = qslaw.cross_entropy_grad %s, %l, %gl
      : (tensor<2x2x10xf32>, tensor<2x2xi64>, tensor<f32>) -> tensor<2x2x10xf32>
  return %loss, %g : tensor<f32>, tensor<2x2x10xf32>
}

// -----

// Another ignore index reaches the call; [T, V] logits need no reshape.
// CHECK-LABEL: func.func @ignore_index
// CHECK: call @qslaw_ukernel_cross_entropy_f32({{.*}}, %c7_i64, %c2_i32)
func.func @ignore_index(%x: tensor<5x10xf32>, %labels: tensor<5xi64>) -> tensor<f32> {
  %loss = qslaw.cross_entropy %x, %labels {ignore_index = 7 : i64}
      : (tensor<5x10xf32>, tensor<5xi64>) -> tensor<f32>
  return %loss : tensor<f32>
}

// -----

// A gradient whose only reader skips its ignored rows (the attribute that
// qslaw-lower-contractions-to-library sets): they are left unwritten (0).
// CHECK-LABEL: func.func @rows_unread
// CHECK: call @qslaw_ukernel_cross_entropy_grad_f32({{.*}}, %c-100_i64, %c0_i32, %c2_i32)
func.func @rows_unread(%x: tensor<5x10xf32>, %labels: tensor<5xi64>, %gl: tensor<f32>)
    -> tensor<5x10xf32> {
  %g = qslaw.cross_entropy_grad %x, %labels, %gl {qslaw.ignored_rows_unread}
      : (tensor<5x10xf32>, tensor<5xi64>, tensor<f32>) -> tensor<5x10xf32>
  return %g : tensor<5x10xf32>
}

// -----

// i32 labels and dynamic shapes stay for qslaw-lower-to-linalg.
// CHECK-LABEL: func.func @left_alone
// CHECK-NOT: call
// CHECK: qslaw.cross_entropy %arg0, %arg1
// CHECK: qslaw.cross_entropy_grad %arg2, %arg3
// CHECK-NOT: call
// CHECK: return
func.func @left_alone(%x: tensor<2x3x10xf32>, %labels: tensor<2x3xi32>,
                      %d: tensor<?x10xf32>, %dl: tensor<?xi64>, %gl: tensor<f32>)
    -> (tensor<f32>, tensor<?x10xf32>) {
  %loss = qslaw.cross_entropy %x, %labels : (tensor<2x3x10xf32>, tensor<2x3xi32>) -> tensor<f32>
  %g = qslaw.cross_entropy_grad %d, %dl, %gl
      : (tensor<?x10xf32>, tensor<?xi64>, tensor<f32>) -> tensor<?x10xf32>
  return %loss, %g : tensor<f32>, tensor<?x10xf32>
}
