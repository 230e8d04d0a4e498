// RUN: qslaw-opt %s -qslaw-lower-contractions-to-library="min-flops=0" | FileCheck %s
// RUN: qslaw-opt %s -qslaw-lower-contractions-to-library="min-flops=0 label-rows=false" | FileCheck %s --check-prefix=OFF
// RUN: qslaw-opt %s -qslaw-lower-contractions-to-library="min-flops=0" -canonicalize | FileCheck %s --check-prefix=UNPADDED

// label-rows=false: every GEMM multiplies every row.
// OFF-NOT: sgemm_rows
// OFF-NOT: tensor<2x2xi8>

// A training step's head: logits [B*T, V] read only by the cross-entropy
// and its gradient (through the expand to [B, T, V] and the slice of the
// positions that have a next token); the input gradient's left operand is
// that gradient placed into zeros. Both GEMMs multiply only the rows whose
// label counts, selected by an i8 mask built from the labels.

// CHECK-LABEL: func.func @head
// The labels' slice moves up to the forward GEMM, the mask is built there.
// CHECK: %[[L:.*]] = tensor.extract_slice %arg2[0, 1] [2, 2] [1, 1]
// CHECK: %[[V:.*]] = linalg.generic {{.*}} ins(%[[L]] : tensor<2x2xi64>) outs(%{{.*}} : tensor<2x2xi8>)
// CHECK: arith.cmpi ne, %{{.*}}, %c-100_i64
// CHECK: arith.cmpi sge
// CHECK: arith.cmpi slt, %{{.*}}, %c10_i64
// CHECK: arith.extui {{.*}} : i1 to i8
// CHECK: %[[F:.*]] = tensor.insert_slice %[[V]] into %{{.*}}[0, 0] [2, 2] [1, 1] : tensor<2x2xi8> into tensor<2x3xi8>
// CHECK: tensor.collapse_shape %[[F]] {{\[}}[0, 1]] : tensor<2x3xi8> into tensor<6xi8>
// The forward reads every row of its left operand: groups of 6, offset 0;
// its unselected rows are left unwritten (flag 0: only the loss ops read
// them, and they skip ignored rows).
// CHECK: call @qslaw_ukernel_sgemm_rows_f32({{.*}}, %c6_i32, %c0_i32, %c0_i32{{.*}}) : (memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?xi8>, i32, i32, i32, i32, i32, i32, i32) -> ()
// CHECK: qslaw.cross_entropy
// The gradient's only reader is the GEMM below: its ignored rows need not
// be written.
// CHECK: %[[G:.*]] = qslaw.cross_entropy_grad {{.*}} {qslaw.ignored_rows_unread}
// The input gradient: the unpadded gradient, groups of 3 at offset 0,
// unselected rows zero (flag 1: they are the gradient's zeros), W read
// transposed (flag 1), rows by the same labels.
// CHECK: %[[GC:.*]] = tensor.collapse_shape %[[G]] {{\[}}[0, 1], [2]] : tensor<2x2x10xf32> into tensor<4x10xf32>
// CHECK: %[[GE:.*]] = tensor.expand_shape %[[GC]] {{.*}} into tensor<1x4x10xf32>
// CHECK: %[[GB:.*]] = bufferization.to_buffer %[[GE]]
// CHECK: %[[GD:.*]] = memref.cast %[[GB]]
// CHECK: call @qslaw_ukernel_sgemm_rows_f32(%[[GD]], {{.*}}, %c3_i32{{.*}}, %c0_i32{{.*}}, %c1_i32{{.*}}, %c0_i32{{.*}}, %c1_i32{{.*}}, %c0_i32{{.*}}, %c0_i32{{.*}})
// CHECK-NOT: call @qslaw_ukernel_sgemm_f32
// CHECK: return
// UNPADDED-LABEL: func.func @head
// UNPADDED-NOT: linalg.fill {{.*}}tensor<2x3x10xf32>
// UNPADDED-NOT: tensor.insert_slice {{.*}}into tensor<2x3x10xf32>
// UNPADDED: return
func.func @head(%h: tensor<6x8xf32>, %w: tensor<8x10xf32>, %labels: tensor<2x3xi64>)
    -> (tensor<f32>, tensor<6x8xf32>) {
  %z = arith.constant 0.0 : f32
  %e0 = tensor.empty() : tensor<6x10xf32>
  %f0 = linalg.fill ins(%z : f32) outs(%e0 : tensor<6x10xf32>) -> tensor<6x10xf32>
  %logits = linalg.matmul ins(%h, %w : tensor<6x8xf32>, tensor<8x10xf32>)
                          outs(%f0 : tensor<6x10xf32>) -> tensor<6x10xf32>
  %x = tensor.expand_shape %logits [[0, 1], [2]] output_shape [2, 3, 10]
      : tensor<6x10xf32> into tensor<2x3x10xf32>
  %s = tensor.extract_slice %x[0, 0, 0] [2, 2, 10] [1, 1, 1]
      : tensor<2x3x10xf32> to tensor<2x2x10xf32>
  %l = tensor.extract_slice %labels[0, 1] [2, 2] [1, 1] : tensor<2x3xi64> to tensor<2x2xi64>
  %loss = qslaw.cross_entropy %s, %l : (tensor<2x2x10xf32>, tensor<2x2xi64>) -> tensor<f32>
  %one = arith.constant dense<1.0> : tensor<f32>
  %g = qslaw.cross_entropy_grad %s, %l, %one
      : (tensor<2x2x10xf32>, tensor<2x2xi64>, tensor<f32>) -> tensor<2x2x10xf32>
  %e1 = tensor.empty() : tensor<2x3x10xf32>
  %f1 = linalg.fill ins(%z : f32) outs(%e1 : tensor<2x3x10xf32>) -> tensor<2x3x10xf32>
  %ins = tensor.insert_slice %g into %f1[0, 0, 0] [2, 2, 10] [1, 1, 1]
      : tensor<2x2x10xf32> into tensor<2x3x10xf32>
  %c = tensor.collapse_shape %ins [[0, 1], [2]] : tensor<2x3x10xf32> into tensor<6x10xf32>
  %e2 = tensor.empty() : tensor<10x8xf32>
  %wt = linalg.transpose ins(%w : tensor<8x10xf32>) outs(%e2 : tensor<10x8xf32>)
      permutation = [1, 0]
  %e3 = tensor.empty() : tensor<6x8xf32>
  %f3 = linalg.fill ins(%z : f32) outs(%e3 : tensor<6x8xf32>) -> tensor<6x8xf32>
  %dh = linalg.matmul ins(%c, %wt : tensor<6x10xf32>, tensor<10x8xf32>)
                      outs(%f3 : tensor<6x8xf32>) -> tensor<6x8xf32>
  return %loss, %dh : tensor<f32>, tensor<6x8xf32>
}

// Logits that are also returned need every row: the plain GEMM.
// CHECK-LABEL: func.func @logits_returned
// CHECK: call @qslaw_ukernel_sgemm_f32(
// CHECK-NOT: sgemm_rows
// CHECK: return
func.func @logits_returned(%h: tensor<6x8xf32>, %w: tensor<8x10xf32>,
                           %labels: tensor<2x3xi64>) -> (tensor<f32>, tensor<6x10xf32>) {
  %z = arith.constant 0.0 : f32
  %e0 = tensor.empty() : tensor<6x10xf32>
  %f0 = linalg.fill ins(%z : f32) outs(%e0 : tensor<6x10xf32>) -> tensor<6x10xf32>
  %logits = linalg.matmul ins(%h, %w : tensor<6x8xf32>, tensor<8x10xf32>)
                          outs(%f0 : tensor<6x10xf32>) -> tensor<6x10xf32>
  %x = tensor.expand_shape %logits [[0, 1], [2]] output_shape [2, 3, 10]
      : tensor<6x10xf32> into tensor<2x3x10xf32>
  %loss = qslaw.cross_entropy %x, %labels : (tensor<2x3x10xf32>, tensor<2x3xi64>) -> tensor<f32>
  return %loss, %logits : tensor<f32>, tensor<6x10xf32>
}

// A left operand that is not a cross-entropy gradient: every row.
// CHECK-LABEL: func.func @other_gradient
// CHECK: call @qslaw_ukernel_sgemm_f32(
// CHECK-NOT: sgemm_rows
// CHECK: return
func.func @other_gradient(%d: tensor<2x3x10xf32>, %w: tensor<10x8xf32>) -> tensor<6x8xf32> {
  %z = arith.constant 0.0 : f32
  %c = tensor.collapse_shape %d [[0, 1], [2]] : tensor<2x3x10xf32> into tensor<6x10xf32>
  %e3 = tensor.empty() : tensor<6x8xf32>
  %f3 = linalg.fill ins(%z : f32) outs(%e3 : tensor<6x8xf32>) -> tensor<6x8xf32>
  %dh = linalg.matmul ins(%c, %w : tensor<6x10xf32>, tensor<10x8xf32>)
                      outs(%f3 : tensor<6x8xf32>) -> tensor<6x8xf32>
  return %dh : tensor<6x8xf32>
}

// A gradient placed at token offset 1 (the loss of positions 1..2): C's rows
// in groups of 3, A's two rows of each group are C's rows 1 and 2.
// CHECK-LABEL: func.func @gradient_at_offset
// CHECK: call @qslaw_ukernel_sgemm_rows_f32({{.*}}, %c3_i32{{.*}}, %c1_i32{{.*}}, %c1_i32{{.*}}, %c0_i32{{.*}}, %c0_i32{{.*}}, %c0_i32{{.*}}, %c0_i32{{.*}}) : (memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?xi8>, i32, i32, i32, i32, i32, i32, i32) -> ()
// CHECK: return
// UNPADDED-LABEL: func.func @gradient_at_offset
// UNPADDED-NOT: linalg.fill {{.*}}tensor<2x3x10xf32>
// UNPADDED-NOT: tensor.insert_slice {{.*}}into tensor<2x3x10xf32>
// UNPADDED: return
func.func @gradient_at_offset(%x: tensor<2x3x10xf32>, %w: tensor<10x8xf32>,
                              %labels: tensor<2x2xi64>) -> tensor<6x8xf32> {
  %z = arith.constant 0.0 : f32
  %s = tensor.extract_slice %x[0, 1, 0] [2, 2, 10] [1, 1, 1]
      : tensor<2x3x10xf32> to tensor<2x2x10xf32>
  %one = arith.constant dense<1.0> : tensor<f32>
  %g = qslaw.cross_entropy_grad %s, %labels, %one
      : (tensor<2x2x10xf32>, tensor<2x2xi64>, tensor<f32>) -> tensor<2x2x10xf32>
  %e1 = tensor.empty() : tensor<2x3x10xf32>
  %f1 = linalg.fill ins(%z : f32) outs(%e1 : tensor<2x3x10xf32>) -> tensor<2x3x10xf32>
  %ins = tensor.insert_slice %g into %f1[0, 1, 0] [2, 2, 10] [1, 1, 1]
      : tensor<2x2x10xf32> into tensor<2x3x10xf32>
  %c = tensor.collapse_shape %ins [[0, 1], [2]] : tensor<2x3x10xf32> into tensor<6x10xf32>
  %e3 = tensor.empty() : tensor<6x8xf32>
  %f3 = linalg.fill ins(%z : f32) outs(%e3 : tensor<6x8xf32>) -> tensor<6x8xf32>
  %dh = linalg.matmul ins(%c, %w : tensor<6x10xf32>, tensor<10x8xf32>)
                      outs(%f3 : tensor<6x8xf32>) -> tensor<6x8xf32>
  return %dh : tensor<6x8xf32>
}

// A gradient that another op reads too (its sum, say) keeps its zeros: no
// attribute.
// CHECK-LABEL: func.func @gradient_read_twice
// CHECK: qslaw.cross_entropy_grad
// CHECK-NOT: qslaw.ignored_rows_unread
// CHECK: return
func.func @gradient_read_twice(%x: tensor<2x3x10xf32>, %w: tensor<10x8xf32>,
                               %labels: tensor<2x3xi64>) -> (tensor<6x8xf32>, tensor<2x3x10xf32>) {
  %z = arith.constant 0.0 : f32
  %one = arith.constant dense<1.0> : tensor<f32>
  %g = qslaw.cross_entropy_grad %x, %labels, %one
      : (tensor<2x3x10xf32>, tensor<2x3xi64>, tensor<f32>) -> tensor<2x3x10xf32>
  %c = tensor.collapse_shape %g [[0, 1], [2]] : tensor<2x3x10xf32> into tensor<6x10xf32>
  %e3 = tensor.empty() : tensor<6x8xf32>
  %f3 = linalg.fill ins(%z : f32) outs(%e3 : tensor<6x8xf32>) -> tensor<6x8xf32>
  %dh = linalg.matmul ins(%c, %w : tensor<6x10xf32>, tensor<10x8xf32>)
                      outs(%f3 : tensor<6x8xf32>) -> tensor<6x8xf32>
  return %dh, %g : tensor<6x8xf32>, tensor<2x3x10xf32>
}

// The head's weight stored as bf16 (read through Cast): both row-selecting
// GEMMs read it as stored (..._sgemm_rows_f32_wbf16), the input gradient's
// through the transpose (flag 1); no widened copy is used.
// CHECK-LABEL: func.func @head_bf16
// CHECK: call @qslaw_ukernel_sgemm_rows_f32_wbf16({{.*}}) : (memref<?x?x?xf32>, memref<?x?x?xbf16>, memref<?x?x?xf32>, memref<?xi8>, i32, i32, i32, i32, i32, i32, i32) -> ()
// CHECK: call @qslaw_ukernel_sgemm_rows_f32_wbf16({{.*}}, %c0_i32{{.*}}, %c1_i32{{.*}}, %c0_i32{{.*}}, %c0_i32{{.*}}) : (memref<?x?x?xf32>, memref<?x?x?xbf16>,
// CHECK-NOT: call @qslaw_ukernel_sgemm_f32
// OFF-LABEL: func.func @head_bf16
// OFF-COUNT-2: call @qslaw_ukernel_sgemm_f32_wbf16(
func.func @head_bf16(%h: tensor<6x8xf32>, %w16: tensor<8x10xbf16>, %labels: tensor<2x3xi64>)
    -> (tensor<f32>, tensor<6x8xf32>) {
  %z = arith.constant 0.0 : f32
  %ew = tensor.empty() : tensor<8x10xf32>
  %w = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]}
      ins(%w16 : tensor<8x10xbf16>) outs(%ew : tensor<8x10xf32>) {
  ^bb0(%in: bf16, %out: f32):
    %x = arith.extf %in : bf16 to f32
    linalg.yield %x : f32
  } -> tensor<8x10xf32>
  %e0 = tensor.empty() : tensor<6x10xf32>
  %f0 = linalg.fill ins(%z : f32) outs(%e0 : tensor<6x10xf32>) -> tensor<6x10xf32>
  %logits = linalg.matmul ins(%h, %w : tensor<6x8xf32>, tensor<8x10xf32>)
                          outs(%f0 : tensor<6x10xf32>) -> tensor<6x10xf32>
  %x = tensor.expand_shape %logits [[0, 1], [2]] output_shape [2, 3, 10]
      : tensor<6x10xf32> into tensor<2x3x10xf32>
  %s = tensor.extract_slice %x[0, 0, 0] [2, 2, 10] [1, 1, 1]
      : tensor<2x3x10xf32> to tensor<2x2x10xf32>
  %l = tensor.extract_slice %labels[0, 1] [2, 2] [1, 1] : tensor<2x3xi64> to tensor<2x2xi64>
  %loss = qslaw.cross_entropy %s, %l : (tensor<2x2x10xf32>, tensor<2x2xi64>) -> tensor<f32>
  %one = arith.constant dense<1.0> : tensor<f32>
  %g = qslaw.cross_entropy_grad %s, %l, %one
      : (tensor<2x2x10xf32>, tensor<2x2xi64>, tensor<f32>) -> tensor<2x2x10xf32>
  %e1 = tensor.empty() : tensor<2x3x10xf32>
  %f1 = linalg.fill ins(%z : f32) outs(%e1 : tensor<2x3x10xf32>) -> tensor<2x3x10xf32>
  %ins = tensor.insert_slice %g into %f1[0, 0, 0] [2, 2, 10] [1, 1, 1]
      : tensor<2x2x10xf32> into tensor<2x3x10xf32>
  %c = tensor.collapse_shape %ins [[0, 1], [2]] : tensor<2x3x10xf32> into tensor<6x10xf32>
  %e2 = tensor.empty() : tensor<10x8xf32>
  %wt = linalg.transpose ins(%w : tensor<8x10xf32>) outs(%e2 : tensor<10x8xf32>)
      permutation = [1, 0]
  %e3 = tensor.empty() : tensor<6x8xf32>
  %f3 = linalg.fill ins(%z : f32) outs(%e3 : tensor<6x8xf32>) -> tensor<6x8xf32>
  %dh = linalg.matmul ins(%c, %wt : tensor<6x10xf32>, tensor<10x8xf32>)
                      outs(%f3 : tensor<6x8xf32>) -> tensor<6x8xf32>
  return %loss, %dh : tensor<f32>, tensor<6x8xf32>
}
