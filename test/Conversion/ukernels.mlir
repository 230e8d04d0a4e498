// RUN: qslaw-opt %s -qslaw-lower-to-ukernels="num-threads=2" | FileCheck %s

// Gamma mode over a bf16 / f16 weight (@bf16_weight, @f16_rows):
// CHECK-DAG: func.func private @qslaw_ukernel_quantize_w4_f32_wbf16(memref<?x?xbf16, strided<[?, ?], offset: ?>>, memref<?x?xf32>, memref<?x?xi4>, memref<?x?xi4>, i64, i32)
// CHECK-DAG: func.func private @qslaw_ukernel_qmatmul_w4_grad_gamma_f32_wbf16(memref<?x?xf32>, memref<?x?xf32>, memref<?x?xbf16, strided<[?, ?], offset: ?>>,
// CHECK-DAG: func.func private @qslaw_ukernel_quantize_w8_f32_wf16(memref<?x?xf16, strided<[?, ?], offset: ?>>,
// CHECK-DAG: func.func private @qslaw_ukernel_qmatmul_w8_grad_gamma_f32_wf16(memref<?x?xf32>, memref<?x?xf32>, memref<?x?xf16, strided<[?, ?], offset: ?>>,
// CHECK: func.func private @qslaw_ukernel_qmatmul_w4_f32(memref<?x?xf32>, memref<?x?xi4>, memref<?x?xf32>, memref<?x?xi4>, memref<?xf32>, memref<?x?xf32>, i64, i32) attributes {llvm.emit_c_interface}

// Batch dims collapse into M; the result comes back as a fresh buffer.
// CHECK-LABEL: func @covered
// CHECK: %[[X2:.*]] = tensor.collapse_shape %arg0 {{\[\[}}0, 1], [2]] : tensor<2x3x256xf32> into tensor<6x256xf32>
// CHECK: %[[XB:.*]] = bufferization.to_buffer %[[X2]] read_only
// CHECK: %[[OUT:.*]] = memref.alloc() : memref<6x64xf32>
// CHECK: %[[G:.*]] = arith.constant 128 : i64
// CHECK: %[[T:.*]] = arith.constant 2 : i32
// CHECK: call @qslaw_ukernel_qmatmul_w4_f32({{.*}}, %[[G]], %[[T]])
// CHECK: %[[Y:.*]] = bufferization.to_tensor %[[OUT]] restrict writable
// CHECK: tensor.expand_shape %[[Y]] {{\[\[}}0, 1], [2]] output_shape [2, 3, 64] : tensor<6x64xf32> into tensor<2x3x64xf32>
// CHECK-NOT: qslaw.qmatmul
func.func @covered(%x: tensor<2x3x256xf32>, %q: tensor<64x256xi4>, %s: tensor<64x2xf32>, %z: tensor<64x2xi4>) -> tensor<2x3x64xf32> {
  %y = qslaw.qmatmul %x, %q scales(%s) zeros(%z) <bits = 4, group = 128> : (tensor<2x3x256xf32>, tensor<64x256xi4>, tensor<64x2xf32>, tensor<64x2xi4>) -> tensor<2x3x64xf32>
  return %y : tensor<2x3x64xf32>
}

// Symmetric without bias: empty memrefs stand for the absent operands.
// CHECK-LABEL: func @covered_sym
// CHECK: memref.alloca() : memref<0x0xi4>
// CHECK: memref.alloca() : memref<0xf32>
// CHECK: call @qslaw_ukernel_qmatmul_w4_f32
func.func @covered_sym(%x: tensor<1x256xf32>, %q: tensor<64x256xi4>, %s: tensor<64x2xf32>) -> tensor<1x64xf32> {
  %y = qslaw.qmatmul %x, %q scales(%s) <bits = 4, group = 128, sym> : (tensor<1x256xf32>, tensor<64x256xi4>, tensor<64x2xf32>) -> tensor<1x64xf32>
  return %y : tensor<1x64xf32>
}

// The other widths call the any-width kernels (dequantise a block, GEMM
// library): 2-bit codes as i2 (packed by the narrow-type emulation later),
// 3- and 8-bit one per byte; a 4-bit odd group stays on the 4-bit kernel.
// CHECK-LABEL: func @other_widths
// CHECK: call @qslaw_ukernel_qmatmul_w2_f32({{.*}}) : (memref<?x?xf32>, memref<?x?xi2>, memref<?x?xf32>, memref<?x?xi2>, memref<?xf32>, memref<?x?xf32>, i64, i32) -> ()
// CHECK: memref.alloca() : memref<0x0xi3>
// CHECK: call @qslaw_ukernel_qmatmul_w3_f32({{.*}}) : (memref<?x?xf32>, memref<?x?xi3>, memref<?x?xf32>, memref<?x?xi3>, memref<?xf32>, memref<?x?xf32>, i64, i32) -> ()
// CHECK: call @qslaw_ukernel_qmatmul_w8_f32({{.*}}) : (memref<?x?xf32>, memref<?x?xi8>, memref<?x?xf32>, memref<?x?xi8>, memref<?xf32>, memref<?x?xf32>, i64, i32) -> ()
// CHECK: %[[G85:.*]] = arith.constant 85 : i64
// CHECK: call @qslaw_ukernel_qmatmul_w4_f32({{.*}}, %[[G85]], %{{.*}})
// CHECK-NOT: qslaw.qmatmul
func.func @other_widths(%x: tensor<1x256xf32>, %q2: tensor<64x256xi2>, %z2: tensor<64x2xi2>,
                        %q3: tensor<64x256xi3>, %q8: tensor<64x256xi8>, %z8: tensor<64x2xi8>,
                        %s: tensor<64x2xf32>, %x5: tensor<1x255xf32>, %q5: tensor<64x255xi4>,
                        %s5: tensor<64x3xf32>)
    -> (tensor<1x64xf32>, tensor<1x64xf32>, tensor<1x64xf32>, tensor<1x64xf32>) {
  %a = qslaw.qmatmul %x, %q2 scales(%s) zeros(%z2) <bits = 2, group = 128> : (tensor<1x256xf32>, tensor<64x256xi2>, tensor<64x2xf32>, tensor<64x2xi2>) -> tensor<1x64xf32>
  %b = qslaw.qmatmul %x, %q3 scales(%s) <bits = 3, group = 128, sym> : (tensor<1x256xf32>, tensor<64x256xi3>, tensor<64x2xf32>) -> tensor<1x64xf32>
  %c = qslaw.qmatmul %x, %q8 scales(%s) zeros(%z8) <bits = 8, group = 128> : (tensor<1x256xf32>, tensor<64x256xi8>, tensor<64x2xf32>, tensor<64x2xi8>) -> tensor<1x64xf32>
  %d = qslaw.qmatmul %x5, %q5 scales(%s5) <bits = 4, group = 85, sym> : (tensor<1x255xf32>, tensor<64x255xi4>, tensor<64x3xf32>) -> tensor<1x64xf32>
  return %a, %b, %c, %d : tensor<1x64xf32>, tensor<1x64xf32>, tensor<1x64xf32>, tensor<1x64xf32>
}

// Not covered: half-precision activations, dynamic shapes.
// CHECK-LABEL: func @not_covered
// CHECK-COUNT-2: qslaw.qmatmul
// CHECK-NOT: call
func.func @not_covered(%xh: tensor<1x256xf16>, %q: tensor<64x256xi4>, %sh: tensor<64x2xf16>,
                       %xd: tensor<?x256xf32>, %s: tensor<64x2xf32>)
    -> (tensor<1x64xf16>, tensor<?x64xf32>) {
  %b = qslaw.qmatmul %xh, %q scales(%sh) <bits = 4, group = 128, sym> : (tensor<1x256xf16>, tensor<64x256xi4>, tensor<64x2xf16>) -> tensor<1x64xf16>
  %c = qslaw.qmatmul %xd, %q scales(%s) <bits = 4, group = 128, sym> : (tensor<?x256xf32>, tensor<64x256xi4>, tensor<64x2xf32>) -> tensor<?x64xf32>
  return %b, %c : tensor<1x64xf16>, tensor<?x64xf32>
}

// The training step's gradients: dX and ds become microkernel calls that
// write fresh buffers (the [N, K] weight gradient never exists).
// CHECK-LABEL: func @grads
// CHECK: %[[DI:.*]] = memref.alloc() : memref<6x256xf32>
// CHECK: call @qslaw_ukernel_qmatmul_w4_grad_input_f32({{.*}}) : (memref<?x?xf32>, memref<?x?xi4>, memref<?x?xf32>, memref<?x?xi4>, memref<?x?xf32>, i64, i32) -> ()
// CHECK: bufferization.to_tensor %[[DI]] restrict writable
// CHECK: %[[DS:.*]] = memref.alloc() : memref<64x2xf32>
// CHECK: call @qslaw_ukernel_qmatmul_w4_grad_scale_f32({{.*}}) : (memref<?x?xf32>, memref<?x?xf32>, memref<?x?xi4>, memref<?x?xi4>, memref<?x?xf32>, i64, i32) -> ()
// CHECK: bufferization.to_tensor %[[DS]] restrict writable
// CHECK-NOT: qslaw.qmatmul_grad
func.func @grads(%x: tensor<2x3x256xf32>, %dy: tensor<2x3x64xf32>, %q: tensor<64x256xi4>, %s: tensor<64x2xf32>, %z: tensor<64x2xi4>) -> (tensor<2x3x256xf32>, tensor<64x2xf32>) {
  %dx = qslaw.qmatmul_grad_input %dy, %q scales(%s) zeros(%z) <bits = 4, group = 128> : (tensor<2x3x64xf32>, tensor<64x256xi4>, tensor<64x2xf32>, tensor<64x2xi4>) -> tensor<2x3x256xf32>
  %ds = qslaw.qmatmul_grad_scale %x, %dy, %q zeros(%z) <bits = 4, group = 128> : (tensor<2x3x256xf32>, tensor<2x3x64xf32>, tensor<64x256xi4>, tensor<64x2xi4>) -> tensor<64x2xf32>
  return %dx, %ds : tensor<2x3x256xf32>, tensor<64x2xf32>
}

// 3-bit gradients go to the any-width kernels, with the thread count.
// CHECK-LABEL: func @grads_3bit
// CHECK: call @qslaw_ukernel_qmatmul_w3_grad_input_f32({{.*}}) : (memref<?x?xf32>, memref<?x?xi3>, memref<?x?xf32>, memref<?x?xi3>, memref<?x?xf32>, i64, i32) -> ()
// CHECK: call @qslaw_ukernel_qmatmul_w3_grad_scale_f32({{.*}}) : (memref<?x?xf32>, memref<?x?xf32>, memref<?x?xi3>, memref<?x?xi3>, memref<?x?xf32>, i64, i32) -> ()
// CHECK-NOT: qslaw.qmatmul_grad
func.func @grads_3bit(%x: tensor<1x256xf32>, %dy: tensor<1x64xf32>, %q3: tensor<64x256xi3>, %s: tensor<64x2xf32>) -> (tensor<1x256xf32>, tensor<64x2xf32>) {
  %dx = qslaw.qmatmul_grad_input %dy, %q3 scales(%s) <bits = 3, group = 128, sym> : (tensor<1x64xf32>, tensor<64x256xi3>, tensor<64x2xf32>) -> tensor<1x256xf32>
  %ds = qslaw.qmatmul_grad_scale %x, %dy, %q3 <bits = 3, group = 128, sym> : (tensor<1x256xf32>, tensor<1x64xf32>, tensor<64x256xi3>) -> tensor<64x2xf32>
  return %dx, %ds : tensor<1x256xf32>, tensor<64x2xf32>
}

// Half-precision gradients stay for the linalg lowering.
// CHECK-LABEL: func @grads_not_covered
// CHECK: qslaw.qmatmul_grad_input
// CHECK-NOT: call
func.func @grads_not_covered(%dy: tensor<1x64xf16>, %q: tensor<64x256xi4>, %s: tensor<64x2xf16>) -> tensor<1x256xf16> {
  %dx = qslaw.qmatmul_grad_input %dy, %q scales(%s) <bits = 4, group = 128, sym> : (tensor<1x64xf16>, tensor<64x256xi4>, tensor<64x2xf16>) -> tensor<1x256xf16>
  return %dx : tensor<1x256xf16>
}

// Gamma mode's dgamma: one microkernel call over the float weight (the clamp
// mask is recomputed in it), writing a fresh [N, J] buffer.
// CHECK-LABEL: func @grad_gamma
// CHECK: %[[DG:.*]] = memref.alloc() : memref<64x2xf32>
// The weight is a strided view (the kernels read it through its strides).
// CHECK: call @qslaw_ukernel_qmatmul_w4_grad_gamma_f32({{.*}}) : (memref<?x?xf32>, memref<?x?xf32>, memref<?x?xf32, strided<[?, ?], offset: ?>>, memref<?x?xf32>, memref<?x?xf32>, memref<?x?xi4>, memref<?x?xf32>, i64, i32) -> ()
// CHECK: bufferization.to_tensor %[[DG]] restrict writable
// CHECK-NOT: qslaw.qmatmul_grad_gamma
func.func @grad_gamma(%x: tensor<2x3x256xf32>, %dy: tensor<2x3x64xf32>, %w: tensor<64x256xf32>, %s: tensor<64x2xf32>, %g: tensor<64x2xf32>, %z: tensor<64x2xi4>) -> tensor<64x2xf32> {
  %dg = qslaw.qmatmul_grad_gamma %x, %dy, %w scales(%s) gamma(%g) zeros(%z) <bits = 4, group = 128, asym, mode = gamma> : (tensor<2x3x256xf32>, tensor<2x3x64xf32>, tensor<64x256xf32>, tensor<64x2xf32>, tensor<64x2xf32>, tensor<64x2xi4>) -> tensor<64x2xf32>
  return %dg : tensor<64x2xf32>
}

// 3-bit gamma mode: the any-width kernel (clamp range [0, 7]); absent zero
// points are an empty i3 buffer.
// CHECK-LABEL: func @grad_gamma_3bit
// CHECK: memref.alloca() : memref<0x0xi3>
// CHECK: call @qslaw_ukernel_qmatmul_w3_grad_gamma_f32
// CHECK-NOT: qslaw.qmatmul_grad_gamma
func.func @grad_gamma_3bit(%x: tensor<1x256xf32>, %dy: tensor<1x64xf32>, %w: tensor<64x256xf32>, %s: tensor<64x2xf32>, %g: tensor<64x2xf32>) -> tensor<64x2xf32> {
  %dg = qslaw.qmatmul_grad_gamma %x, %dy, %w scales(%s) gamma(%g) <bits = 3, group = 128, sym, mode = gamma> : (tensor<1x256xf32>, tensor<1x64xf32>, tensor<64x256xf32>, tensor<64x2xf32>, tensor<64x2xf32>) -> tensor<64x2xf32>
  return %dg : tensor<64x2xf32>
}

// Quantisation to 4-bit codes (gamma mode's per-step codes): the call
// writes a fresh packed i4 buffer.
// CHECK-LABEL: func @quantize
// CHECK: %[[Q:.*]] = memref.alloc() : memref<64x256xi4>
// CHECK: call @qslaw_ukernel_quantize_w4_f32({{.*}}) : (memref<?x?xf32, strided<[?, ?], offset: ?>>, memref<?x?xf32>, memref<?x?xi4>, memref<?x?xi4>, i64, i32) -> ()
// CHECK: bufferization.to_tensor %[[Q]] restrict writable : memref<64x256xi4> to tensor<64x256xi4>
// CHECK-NOT: qslaw.quantize
func.func @quantize(%w: tensor<64x256xf32>, %s: tensor<64x2xf32>, %z: tensor<64x2xi4>) -> tensor<64x256xi4> {
  %q = qslaw.quantize %w scales(%s) zeros(%z) <bits = 4, group = 128> : (tensor<64x256xf32>, tensor<64x2xf32>, tensor<64x2xi4>) -> tensor<64x256xi4>
  return %q : tensor<64x256xi4>
}

// 2-bit quantisation: a packed i2 buffer.
// CHECK-LABEL: func @quantize_2bit
// CHECK: %[[Q2:.*]] = memref.alloc() : memref<64x256xi2>
// CHECK: call @qslaw_ukernel_quantize_w2_f32({{.*}}) : (memref<?x?xf32, strided<[?, ?], offset: ?>>, memref<?x?xf32>, memref<?x?xi2>, memref<?x?xi2>, i64, i32) -> ()
// CHECK-NOT: qslaw.quantize
func.func @quantize_2bit(%w: tensor<64x256xf32>, %s: tensor<64x2xf32>) -> tensor<64x256xi2> {
  %q = qslaw.quantize %w scales(%s) <bits = 2, group = 128, sym> : (tensor<64x256xf32>, tensor<64x2xf32>) -> tensor<64x256xi2>
  return %q : tensor<64x256xi2>
}

// Gamma mode keeps a [K, N] weight as the model stores it and quantizes its
// transpose: both kernels get a transposed view of the weight's own buffer
// (strides [1, N]); the transpose is never computed.
// CHECK-LABEL: func @transposed_weight
// CHECK-NOT: linalg.transpose
// CHECK: %[[WB:.*]] = bufferization.to_buffer %arg0 read_only {{.*}} : tensor<256x64xf32> to memref<256x64xf32, strided<[?, ?], offset: ?>>
// CHECK: %[[WC:.*]] = memref.cast %[[WB]] : {{.*}} to memref<?x?xf32, strided<[?, ?], offset: ?>>
// CHECK: %[[WT:.*]] = memref.transpose %[[WC]] (d0, d1) -> (d1, d0)
// CHECK: call @qslaw_ukernel_quantize_w4_f32(%[[WT]],
// CHECK: memref.transpose
// CHECK: call @qslaw_ukernel_qmatmul_w4_grad_gamma_f32(
// CHECK-NOT: linalg.transpose
func.func @transposed_weight(%wkn: tensor<256x64xf32>, %s: tensor<64x2xf32>, %g: tensor<64x2xf32>, %x: tensor<3x256xf32>, %dy: tensor<3x64xf32>) -> (tensor<64x256xi4>, tensor<64x2xf32>) {
  %e = tensor.empty() : tensor<64x256xf32>
  %w = linalg.transpose ins(%wkn : tensor<256x64xf32>) outs(%e : tensor<64x256xf32>) permutation = [1, 0]
  %q = qslaw.quantize %w scales(%s) <bits = 4, group = 128, sym, mode = gamma> : (tensor<64x256xf32>, tensor<64x2xf32>) -> tensor<64x256xi4>
  %dg = qslaw.qmatmul_grad_gamma %x, %dy, %w scales(%s) gamma(%g) <bits = 4, group = 128, sym, mode = gamma> : (tensor<3x256xf32>, tensor<3x64xf32>, tensor<64x256xf32>, tensor<64x2xf32>, tensor<64x2xf32>) -> tensor<64x2xf32>
  return %q, %dg : tensor<64x256xi4>, tensor<64x2xf32>
}

// A bf16 weight (a model stored in bf16) is read unwidened: the kernels'
// _wbf16 entries take it through a transposed view of its own buffer and
// widen as they read; an f16 one stored as rows goes to the _wf16 entries
// as it is. No extf, no f32 copy. (Declarations: top of the file.)
// CHECK-LABEL: func @bf16_weight
// CHECK-NOT: linalg.transpose
// CHECK: %[[WB:.*]] = bufferization.to_buffer %arg0 read_only {{.*}} : tensor<256x64xbf16> to memref<256x64xbf16, strided<[?, ?], offset: ?>>
// CHECK: %[[WT:.*]] = memref.transpose %{{.*}} (d0, d1) -> (d1, d0) : memref<?x?xbf16, strided<[?, ?], offset: ?>> to memref<?x?xbf16, strided<[?, ?], offset: ?>>
// CHECK: call @qslaw_ukernel_quantize_w4_f32_wbf16(%[[WT]],
// CHECK: call @qslaw_ukernel_qmatmul_w4_grad_gamma_f32_wbf16(
// CHECK-NOT: linalg.transpose
// CHECK-NOT: extf
func.func @bf16_weight(%wkn: tensor<256x64xbf16>, %s: tensor<64x2xf32>, %g: tensor<64x2xf32>, %x: tensor<3x256xf32>, %dy: tensor<3x64xf32>) -> (tensor<64x256xi4>, tensor<64x2xf32>) {
  %e = tensor.empty() : tensor<64x256xbf16>
  %w = linalg.transpose ins(%wkn : tensor<256x64xbf16>) outs(%e : tensor<64x256xbf16>) permutation = [1, 0]
  %q = qslaw.quantize %w scales(%s) <bits = 4, group = 128, sym, mode = gamma> : (tensor<64x256xbf16>, tensor<64x2xf32>) -> tensor<64x256xi4>
  %dg = qslaw.qmatmul_grad_gamma %x, %dy, %w scales(%s) gamma(%g) <bits = 4, group = 128, sym, mode = gamma> : (tensor<3x256xf32>, tensor<3x64xf32>, tensor<64x256xbf16>, tensor<64x2xf32>, tensor<64x2xf32>) -> tensor<64x2xf32>
  return %q, %dg : tensor<64x256xi4>, tensor<64x2xf32>
}

// CHECK-LABEL: func @f16_rows
// CHECK: %[[FB:.*]] = bufferization.to_buffer %arg0 read_only {{.*}} : tensor<64x256xf16> to memref<64x256xf16, strided<[?, ?], offset: ?>>
// CHECK: %[[FC:.*]] = memref.cast %[[FB]]
// CHECK: call @qslaw_ukernel_quantize_w8_f32_wf16(%[[FC]],
// CHECK: call @qslaw_ukernel_qmatmul_w8_grad_gamma_f32_wf16(
func.func @f16_rows(%w: tensor<64x256xf16>, %s: tensor<64x2xf32>, %g: tensor<64x2xf32>, %x: tensor<3x256xf32>, %dy: tensor<3x64xf32>) -> (tensor<64x256xi8>, tensor<64x2xf32>) {
  %q = qslaw.quantize %w scales(%s) <bits = 8, group = 128, sym, mode = gamma> : (tensor<64x256xf16>, tensor<64x2xf32>) -> tensor<64x256xi8>
  %dg = qslaw.qmatmul_grad_gamma %x, %dy, %w scales(%s) gamma(%g) <bits = 8, group = 128, sym, mode = gamma> : (tensor<3x256xf32>, tensor<3x64xf32>, tensor<64x256xf16>, tensor<64x2xf32>, tensor<64x2xf32>) -> tensor<64x2xf32>
  return %q, %dg : tensor<64x256xi8>, tensor<64x2xf32>
}

// The training step's copy of the forward has the transpose as the generic
// qslaw-make-train-step generalised it into: read through the same way.
// CHECK-LABEL: func @transposed_weight_generic
// CHECK-NOT: linalg.generic
// CHECK: %[[GT:.*]] = memref.transpose
// CHECK: call @qslaw_ukernel_quantize_w4_f32(%[[GT]],
func.func @transposed_weight_generic(%wkn: tensor<256x64xf32>, %s: tensor<64x2xf32>) -> tensor<64x256xi4> {
  %e = tensor.empty() : tensor<64x256xf32>
  %w = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d1, d0)>, affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} ins(%wkn : tensor<256x64xf32>) outs(%e : tensor<64x256xf32>) {
  ^bb0(%in: f32, %out: f32):
    linalg.yield %in : f32
  } -> tensor<64x256xf32>
  %q = qslaw.quantize %w scales(%s) <bits = 4, group = 128, sym, mode = gamma> : (tensor<64x256xf32>, tensor<64x2xf32>) -> tensor<64x256xi4>
  return %q : tensor<64x256xi4>
}
