// RUN: qslaw-opt %s -split-input-file -qslaw-outline-layers="min-ops=2" -qslaw-merge-identical-functions | FileCheck %s

// The pass runs after microkernel and library calls exist (and after
// elementwise fusion). A call's alloc, read-only operand buffers, call and
// result tensor move into the layer function together; the operand tags
// are numbered per function, so identical layers still merge. A result
// that is a static reshape of the layer's value is redone by the caller:
// the callee returns the tensor of its own buffer.

// CHECK-LABEL: func.func @forward(
// CHECK:      %[[L0:.*]] = call @forward__layer0(%arg0, %{{.*}})
// CHECK:      %[[R0:.*]] = tensor.expand_shape %[[L0]]
// CHECK:      %[[C0:.*]] = tensor.collapse_shape %[[R0]]
// CHECK:      %[[L1:.*]] = call @forward__layer0(%[[C0]], %{{.*}})
// CHECK:      %[[R1:.*]] = tensor.expand_shape %[[L1]]
// CHECK:      return %[[R1]]
// CHECK:      func.func private @forward__layer0(%{{.*}}: tensor<4x8xf32>, %{{.*}}: tensor<8x8xf32>) -> tensor<4x8xf32>
// CHECK:      %[[ALLOC:.*]] = memref.alloc() : memref<4x8xf32>
// CHECK:      bufferization.to_buffer %{{.*}} read_only {qslaw.ukernel_operand = 0 : i64}
// CHECK:      bufferization.to_buffer %{{.*}} read_only {qslaw.ukernel_operand = 1 : i64}
// CHECK:      call @qslaw_ukernel_sgemm_f32(
// CHECK:      %[[T:.*]] = bufferization.to_tensor %[[ALLOC]] restrict writable
// CHECK:      %[[Y:.*]] = linalg.exp ins(%[[T]]
// CHECK-NOT:  tensor.expand_shape
// CHECK:      return %[[Y]] : tensor<4x8xf32>
// CHECK-NOT:  func.func private @forward__layer1

func.func private @qslaw_ukernel_sgemm_f32(memref<?x?xf32>, memref<?x?xf32>, memref<?x?xf32>)

func.func @forward(%x: tensor<4x8xf32>) -> tensor<1x4x8xf32> {
  %w0 = arith.constant {qslaw.name = "w0"} dense<1.5> : tensor<8x8xf32>
  %w1 = arith.constant {qslaw.name = "w1"} dense<2.5> : tensor<8x8xf32>
  %o0 = memref.alloc() : memref<4x8xf32> loc("/m/layers.0/mm")
  %c0 = memref.cast %o0 : memref<4x8xf32> to memref<?x?xf32> loc("/m/layers.0/mm")
  %a0 = bufferization.to_buffer %x read_only {qslaw.ukernel_operand = 7 : i64} : tensor<4x8xf32> to memref<4x8xf32> loc("/m/layers.0/mm")
  %ac0 = memref.cast %a0 : memref<4x8xf32> to memref<?x?xf32> loc("/m/layers.0/mm")
  %b0 = bufferization.to_buffer %w0 read_only {qslaw.ukernel_operand = 8 : i64} : tensor<8x8xf32> to memref<8x8xf32> loc("/m/layers.0/mm")
  %bc0 = memref.cast %b0 : memref<8x8xf32> to memref<?x?xf32> loc("/m/layers.0/mm")
  call @qslaw_ukernel_sgemm_f32(%ac0, %bc0, %c0) : (memref<?x?xf32>, memref<?x?xf32>, memref<?x?xf32>) -> () loc("/m/layers.0/mm")
  %t0 = bufferization.to_tensor %o0 restrict writable : memref<4x8xf32> to tensor<4x8xf32> loc("/m/layers.0/mm")
  %e0 = tensor.empty() : tensor<4x8xf32>
  %y0 = linalg.exp ins(%t0 : tensor<4x8xf32>) outs(%e0 : tensor<4x8xf32>) -> tensor<4x8xf32> loc("/m/layers.0/exp")
  %r0 = tensor.expand_shape %y0 [[0, 1], [2]] output_shape [1, 4, 8] : tensor<4x8xf32> into tensor<1x4x8xf32> loc("/m/layers.0/reshape")
  %x1 = tensor.collapse_shape %r0 [[0, 1], [2]] : tensor<1x4x8xf32> into tensor<4x8xf32> loc("/m/between")
  %o1 = memref.alloc() : memref<4x8xf32> loc("/m/layers.1/mm")
  %c1 = memref.cast %o1 : memref<4x8xf32> to memref<?x?xf32> loc("/m/layers.1/mm")
  %a1 = bufferization.to_buffer %x1 read_only {qslaw.ukernel_operand = 9 : i64} : tensor<4x8xf32> to memref<4x8xf32> loc("/m/layers.1/mm")
  %ac1 = memref.cast %a1 : memref<4x8xf32> to memref<?x?xf32> loc("/m/layers.1/mm")
  %b1 = bufferization.to_buffer %w1 read_only {qslaw.ukernel_operand = 10 : i64} : tensor<8x8xf32> to memref<8x8xf32> loc("/m/layers.1/mm")
  %bc1 = memref.cast %b1 : memref<8x8xf32> to memref<?x?xf32> loc("/m/layers.1/mm")
  call @qslaw_ukernel_sgemm_f32(%ac1, %bc1, %c1) : (memref<?x?xf32>, memref<?x?xf32>, memref<?x?xf32>) -> () loc("/m/layers.1/mm")
  %t1 = bufferization.to_tensor %o1 restrict writable : memref<4x8xf32> to tensor<4x8xf32> loc("/m/layers.1/mm")
  %e1 = tensor.empty() : tensor<4x8xf32>
  %y1 = linalg.exp ins(%t1 : tensor<4x8xf32>) outs(%e1 : tensor<4x8xf32>) -> tensor<4x8xf32> loc("/m/layers.1/exp")
  %r1 = tensor.expand_shape %y1 [[0, 1], [2]] output_shape [1, 4, 8] : tensor<4x8xf32> into tensor<1x4x8xf32> loc("/m/layers.1/reshape")
  return %r1 : tensor<1x4x8xf32>
}

// -----

// A run whose call writes a buffer from outside the run (here the caller's
// own allocation) stays inline: moving the call past the caller's reads of
// that buffer would change what they see.

// CHECK-LABEL: func.func @outside_buffer(
// CHECK-NOT:  call @outside_buffer__layer
// CHECK:      call @qslaw_ukernel_sgemm_f32(
// CHECK-NOT:  func.func private @outside_buffer__layer

func.func private @qslaw_ukernel_sgemm_f32(memref<?x?xf32>, memref<?x?xf32>, memref<?x?xf32>)

func.func @outside_buffer(%x: tensor<4x8xf32>, %w: tensor<8x8xf32>) -> tensor<4x8xf32> {
  %o = memref.alloc() : memref<4x8xf32>
  %c = memref.cast %o : memref<4x8xf32> to memref<?x?xf32>
  %a = bufferization.to_buffer %x read_only : tensor<4x8xf32> to memref<4x8xf32> loc("/m/layers.0/mm")
  %ac = memref.cast %a : memref<4x8xf32> to memref<?x?xf32> loc("/m/layers.0/mm")
  %b = bufferization.to_buffer %w read_only : tensor<8x8xf32> to memref<8x8xf32> loc("/m/layers.0/mm")
  %bc = memref.cast %b : memref<8x8xf32> to memref<?x?xf32> loc("/m/layers.0/mm")
  call @qslaw_ukernel_sgemm_f32(%ac, %bc, %c) : (memref<?x?xf32>, memref<?x?xf32>, memref<?x?xf32>) -> () loc("/m/layers.0/mm")
  %t = bufferization.to_tensor %o restrict writable : memref<4x8xf32> to tensor<4x8xf32>
  return %t : tensor<4x8xf32>
}

// -----

// A tensor's buffer taken writable (not read_only) could be written
// through: the run stays inline.

// CHECK-LABEL: func.func @writable_operand(
// CHECK-NOT:  func.func private @writable_operand__layer

func.func private @qslaw_ukernel_sgemm_f32(memref<?x?xf32>, memref<?x?xf32>, memref<?x?xf32>)

func.func @writable_operand(%x: tensor<4x8xf32>, %w: tensor<8x8xf32>) -> tensor<4x8xf32> {
  %o = memref.alloc() : memref<4x8xf32> loc("/m/layers.0/mm")
  %c = memref.cast %o : memref<4x8xf32> to memref<?x?xf32> loc("/m/layers.0/mm")
  %a = bufferization.to_buffer %x : tensor<4x8xf32> to memref<4x8xf32> loc("/m/layers.0/mm")
  %ac = memref.cast %a : memref<4x8xf32> to memref<?x?xf32> loc("/m/layers.0/mm")
  %b = bufferization.to_buffer %w read_only : tensor<8x8xf32> to memref<8x8xf32> loc("/m/layers.0/mm")
  %bc = memref.cast %b : memref<8x8xf32> to memref<?x?xf32> loc("/m/layers.0/mm")
  call @qslaw_ukernel_sgemm_f32(%ac, %bc, %c) : (memref<?x?xf32>, memref<?x?xf32>, memref<?x?xf32>) -> () loc("/m/layers.0/mm")
  %t = bufferization.to_tensor %o restrict writable : memref<4x8xf32> to tensor<4x8xf32> loc("/m/layers.0/mm")
  return %t : tensor<4x8xf32>
}

// -----

// Gamma mode: a layer's forward quantizes its weight into a buffer that
// its backward reads again; canonicalization has folded the tensor between
// them away. (Between them, one op of another layer: a run too short to
// outline, standing for the head and loss.) The buffer becomes a tensor
// again between the runs (the writer's run ends in to_tensor, the reader
// takes it through a read_only to_buffer), and both runs are outlined.

// CHECK-LABEL: func.func @shared_codes(
// CHECK:      %[[F:.*]]:2 = call @shared_codes__layer0(
// CHECK:      %[[H:.*]] = linalg.exp ins(%[[F]]#1
// CHECK:      %[[B:.*]] = call @shared_codes__layer1(%[[H]], %[[F]]#0)
// CHECK:      return %[[B]]
// CHECK:      func.func private @shared_codes__layer0(
// CHECK-SAME:   -> (tensor<8x8xi4>, tensor<4x8xf32>)
// CHECK:      %[[Q:.*]] = memref.alloc() : memref<8x8xi4>
// CHECK:      call @qslaw_ukernel_quantize_w4_f32(
// CHECK:      call @qslaw_ukernel_qmatmul_w4_f32(
// CHECK:      %[[QT:.*]] = bufferization.to_tensor %[[Q]] restrict writable
// CHECK:      return %[[QT]],
// CHECK:      func.func private @shared_codes__layer1(%{{.*}}: tensor<4x8xf32>, %[[CODES:.*]]: tensor<8x8xi4>)
// CHECK:      %[[QB:.*]] = bufferization.to_buffer %[[CODES]] read_only : tensor<8x8xi4> to memref<8x8xi4>
// CHECK:      %[[QC:.*]] = memref.cast %[[QB]]
// CHECK:      call @qslaw_ukernel_qmatmul_w4_grad_input_f32(%{{.*}}, %[[QC]],

func.func private @qslaw_ukernel_quantize_w4_f32(memref<?x?xf32>, memref<?x?xi4>)
func.func private @qslaw_ukernel_qmatmul_w4_f32(memref<?x?xf32>, memref<?x?xi4>, memref<?x?xf32>)
func.func private @qslaw_ukernel_qmatmul_w4_grad_input_f32(memref<?x?xf32>, memref<?x?xi4>, memref<?x?xf32>)

func.func @shared_codes(%x: tensor<4x8xf32>, %w: tensor<8x8xf32>) -> tensor<4x8xf32> {
  %q = memref.alloc() : memref<8x8xi4> loc("/m/layers.0/mm")
  %qc = memref.cast %q : memref<8x8xi4> to memref<?x?xi4> loc("/m/layers.0/mm")
  %wb = bufferization.to_buffer %w read_only : tensor<8x8xf32> to memref<8x8xf32> loc("/m/layers.0/mm")
  %wc = memref.cast %wb : memref<8x8xf32> to memref<?x?xf32> loc("/m/layers.0/mm")
  call @qslaw_ukernel_quantize_w4_f32(%wc, %qc) : (memref<?x?xf32>, memref<?x?xi4>) -> () loc("/m/layers.0/mm")
  %xb = bufferization.to_buffer %x read_only : tensor<4x8xf32> to memref<4x8xf32> loc("/m/layers.0/mm")
  %xc = memref.cast %xb : memref<4x8xf32> to memref<?x?xf32> loc("/m/layers.0/mm")
  %y = memref.alloc() : memref<4x8xf32> loc("/m/layers.0/mm")
  %yc = memref.cast %y : memref<4x8xf32> to memref<?x?xf32> loc("/m/layers.0/mm")
  call @qslaw_ukernel_qmatmul_w4_f32(%xc, %qc, %yc) : (memref<?x?xf32>, memref<?x?xi4>, memref<?x?xf32>) -> () loc("/m/layers.0/mm")
  %yt = bufferization.to_tensor %y restrict writable : memref<4x8xf32> to tensor<4x8xf32> loc("/m/layers.0/mm")
  %e = tensor.empty() : tensor<4x8xf32>
  %h = linalg.exp ins(%yt : tensor<4x8xf32>) outs(%e : tensor<4x8xf32>) -> tensor<4x8xf32> loc("/m/layers.1/exp")
  %hb = bufferization.to_buffer %h read_only : tensor<4x8xf32> to memref<4x8xf32> loc("/m/layers.0/mm_grad")
  %hc = memref.cast %hb : memref<4x8xf32> to memref<?x?xf32> loc("/m/layers.0/mm_grad")
  %dx = memref.alloc() : memref<4x8xf32> loc("/m/layers.0/mm_grad")
  %dxc = memref.cast %dx : memref<4x8xf32> to memref<?x?xf32> loc("/m/layers.0/mm_grad")
  call @qslaw_ukernel_qmatmul_w4_grad_input_f32(%hc, %qc, %dxc) : (memref<?x?xf32>, memref<?x?xi4>, memref<?x?xf32>) -> () loc("/m/layers.0/mm_grad")
  %dxt = bufferization.to_tensor %dx restrict writable : memref<4x8xf32> to tensor<4x8xf32> loc("/m/layers.0/mm_grad")
  return %dxt : tensor<4x8xf32>
}

// -----

// A buffer another run reads other than through a call (here a copy out
// of it) is left as it is, and the run that writes it stays inline.

// CHECK-LABEL: func.func @shared_buffer_copied(
// CHECK-NOT:  bufferization.to_tensor %{{.*}} restrict writable : memref<8x8xi4>
// CHECK:      call @qslaw_ukernel_quantize_w4_f32(
// CHECK:      memref.copy
// CHECK-NOT:  func.func private @shared_buffer_copied__layer

func.func private @qslaw_ukernel_quantize_w4_f32(memref<?x?xf32>, memref<?x?xi4>)

func.func @shared_buffer_copied(%w: tensor<8x8xf32>) -> tensor<8x8xi4> {
  %q = memref.alloc() : memref<8x8xi4> loc("/m/layers.0/mm")
  %qc = memref.cast %q : memref<8x8xi4> to memref<?x?xi4> loc("/m/layers.0/mm")
  %wb = bufferization.to_buffer %w read_only : tensor<8x8xf32> to memref<8x8xf32> loc("/m/layers.0/mm")
  %wc = memref.cast %wb : memref<8x8xf32> to memref<?x?xf32> loc("/m/layers.0/mm")
  call @qslaw_ukernel_quantize_w4_f32(%wc, %qc) : (memref<?x?xf32>, memref<?x?xi4>) -> () loc("/m/layers.0/mm")
  %o = memref.alloc() : memref<8x8xi4> loc("/m/layers.1/copy")
  memref.copy %q, %o : memref<8x8xi4> to memref<8x8xi4> loc("/m/layers.1/copy")
  %ot = bufferization.to_tensor %o restrict writable : memref<8x8xi4> to tensor<8x8xi4> loc("/m/layers.1/copy")
  return %ot : tensor<8x8xi4>
}
