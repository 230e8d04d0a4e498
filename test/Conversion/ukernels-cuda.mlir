// RUN: qslaw-opt %s -qslaw-lower-to-ukernels="target=cuda" | FileCheck %s
// RUN: qslaw-opt %s -qslaw-lower-to-ukernels="target=cuda dtype=f16" | FileCheck %s --check-prefix=F16

// The hand-written CUDA kernels' entries: the CPU microkernels' operands,
// then the activation type (0 bf16, 1 f16).
// CHECK-DAG: func.func private @qslaw_cuda_qmatmul_w4_f32(memref<?x?xf32>, memref<?x?xi4>, memref<?x?xf32>, memref<?x?xi4>, memref<?xf32>, memref<?x?xf32>, i64, i32) attributes {llvm.emit_c_interface}
// CHECK-DAG: func.func private @qslaw_cuda_qmatmul_w4_grad_input_f32(memref<?x?xf32>, memref<?x?xi4>, memref<?x?xf32>, memref<?x?xi4>, memref<?x?xf32>, i64, i32) attributes {llvm.emit_c_interface}
// CHECK-DAG: func.func private @qslaw_cuda_qmatmul_w4_grad_scale_f32(memref<?x?xf32>, memref<?x?xf32>, memref<?x?xi4>, memref<?x?xi4>, memref<?x?xf32>, i64, i32) attributes {llvm.emit_c_interface}
// CHECK-DAG: func.func private @qslaw_cuda_qmatmul_w4_grad_gamma_f32(memref<?x?xf32>, memref<?x?xf32>, memref<?x?xf32>, memref<?x?xf32>, memref<?x?xf32>, memref<?x?xi4>, memref<?x?xf32>, i64, i32) attributes {llvm.emit_c_interface}
// CHECK-NOT: qslaw_ukernel

// Batch dims collapse into M (metadata only: no shape tensor for the host
// to read); the result expands back.
// CHECK-LABEL: func @covered
// CHECK: %[[X2:.*]] = tensor.collapse_shape %arg0 {{\[\[}}0, 1], [2]] : tensor<2x3x256xf32> into tensor<6x256xf32>
// CHECK: bufferization.to_buffer %[[X2]] read_only
// CHECK: %[[OUT:.*]] = memref.alloc() : memref<6x64xf32>
// CHECK: %[[G:.*]] = arith.constant 128 : i64
// CHECK: %[[T:.*]] = arith.constant 0 : i32
// CHECK: call @qslaw_cuda_qmatmul_w4_f32({{.*}}, %[[G]], %[[T]])
// CHECK: %[[Y:.*]] = bufferization.to_tensor %[[OUT]] restrict writable
// CHECK: tensor.expand_shape %[[Y]] {{\[\[}}0, 1], [2]] output_shape [2, 3, 64] : tensor<6x64xf32> into tensor<2x3x64xf32>
// F16-LABEL: func @covered
// F16: %[[T:.*]] = arith.constant 1 : i32
// F16: call @qslaw_cuda_qmatmul_w4_f32({{.*}}, %[[T]])
func.func @covered(%x: tensor<2x3x256xf32>, %q: tensor<64x256xi4>, %s: tensor<64x2xf32>, %z: tensor<64x2xi4>) -> tensor<2x3x64xf32> {
  %y = qslaw.qmatmul %x, %q scales(%s) zeros(%z) <bits = 4, group = 128> : (tensor<2x3x256xf32>, tensor<64x256xi4>, tensor<64x2xf32>, tensor<64x2xi4>) -> tensor<2x3x64xf32>
  return %y : tensor<2x3x64xf32>
}

// Absent zero points and bias are zero-size heap buffers (device memory
// later), not stack buffers; a rank-1 input is one row.
// CHECK-LABEL: func @covered_sym
// CHECK: tensor.expand_shape %arg0 {{\[\[}}0, 1]] output_shape [1, 256] : tensor<256xf32> into tensor<1x256xf32>
// CHECK: memref.alloc() : memref<0x0xi4>
// CHECK: memref.alloc() : memref<0xf32>
// CHECK-NOT: memref.alloca
// CHECK: call @qslaw_cuda_qmatmul_w4_f32
// CHECK: tensor.collapse_shape %{{.*}} {{\[\[}}0, 1]] : tensor<1x64xf32> into tensor<64xf32>
func.func @covered_sym(%x: tensor<256xf32>, %q: tensor<64x256xi4>, %s: tensor<64x8xf32>) -> tensor<64xf32> {
  %y = qslaw.qmatmul %x, %q scales(%s) <bits = 4, group = 32, sym> : (tensor<256xf32>, tensor<64x256xi4>, tensor<64x8xf32>) -> tensor<64xf32>
  return %y : tensor<64xf32>
}

// The CPU microkernels cover these, the CUDA kernels do not: K % 64 != 0,
// G = 16 (not 32/64/128), N % 8 != 0. They stay for the generated kernels.
// CHECK-LABEL: func @not_covered_on_cuda
// CHECK-COUNT-3: qslaw.qmatmul
// CHECK-NOT: call
func.func @not_covered_on_cuda(%x96: tensor<1x96xf32>, %q96: tensor<64x96xi4>, %s96: tensor<64x3xf32>,
                               %x: tensor<1x256xf32>, %q: tensor<64x256xi4>, %s16: tensor<64x16xf32>,
                               %q60: tensor<60x256xi4>, %s60: tensor<60x2xf32>)
    -> (tensor<1x64xf32>, tensor<1x64xf32>, tensor<1x60xf32>) {
  %a = qslaw.qmatmul %x96, %q96 scales(%s96) <bits = 4, group = 32, sym> : (tensor<1x96xf32>, tensor<64x96xi4>, tensor<64x3xf32>) -> tensor<1x64xf32>
  %b = qslaw.qmatmul %x, %q scales(%s16) <bits = 4, group = 16, sym> : (tensor<1x256xf32>, tensor<64x256xi4>, tensor<64x16xf32>) -> tensor<1x64xf32>
  %c = qslaw.qmatmul %x, %q60 scales(%s60) <bits = 4, group = 128, sym> : (tensor<1x256xf32>, tensor<60x256xi4>, tensor<60x2xf32>) -> tensor<1x60xf32>
  return %a, %b, %c : tensor<1x64xf32>, tensor<1x64xf32>, tensor<1x60xf32>
}

// Scale-mode gradients: dX and the fused ds, each writing a fresh buffer.
// CHECK-LABEL: func @grads
// CHECK: %[[DI:.*]] = memref.alloc() : memref<6x256xf32>
// CHECK: call @qslaw_cuda_qmatmul_w4_grad_input_f32({{.*}}) : (memref<?x?xf32>, memref<?x?xi4>, memref<?x?xf32>, memref<?x?xi4>, memref<?x?xf32>, i64, i32) -> ()
// CHECK: bufferization.to_tensor %[[DI]] restrict writable
// CHECK: %[[DS:.*]] = memref.alloc() : memref<64x2xf32>
// CHECK: call @qslaw_cuda_qmatmul_w4_grad_scale_f32({{.*}}) : (memref<?x?xf32>, memref<?x?xf32>, memref<?x?xi4>, memref<?x?xi4>, memref<?x?xf32>, i64, i32) -> ()
// CHECK: bufferization.to_tensor %[[DS]] restrict writable
// CHECK-NOT: qslaw.qmatmul_grad
func.func @grads(%x: tensor<2x3x256xf32>, %dy: tensor<2x3x64xf32>, %q: tensor<64x256xi4>, %s: tensor<64x2xf32>, %z: tensor<64x2xi4>) -> (tensor<2x3x256xf32>, tensor<64x2xf32>) {
  %dx = qslaw.qmatmul_grad_input %dy, %q scales(%s) zeros(%z) <bits = 4, group = 128> : (tensor<2x3x64xf32>, tensor<64x256xi4>, tensor<64x2xf32>, tensor<64x2xi4>) -> tensor<2x3x256xf32>
  %ds = qslaw.qmatmul_grad_scale %x, %dy, %q zeros(%z) <bits = 4, group = 128> : (tensor<2x3x256xf32>, tensor<2x3x64xf32>, tensor<64x256xi4>, tensor<64x2xi4>) -> tensor<64x2xf32>
  return %dx, %ds : tensor<2x3x256xf32>, tensor<64x2xf32>
}

// Gamma mode's dgamma, symmetric (no zero points: a zero-size heap buffer).
// CHECK-LABEL: func @grad_gamma
// CHECK: memref.alloc() : memref<0x0xi4>
// CHECK: %[[T:.*]] = arith.constant 0 : i32
// CHECK: call @qslaw_cuda_qmatmul_w4_grad_gamma_f32({{.*}}, %[[T]])
// CHECK-NOT: qslaw.qmatmul_grad_gamma
func.func @grad_gamma(%x: tensor<6x256xf32>, %dy: tensor<6x64xf32>, %w: tensor<64x256xf32>, %s: tensor<64x4xf32>, %g: tensor<64x4xf32>) -> tensor<64x4xf32> {
  %dg = qslaw.qmatmul_grad_gamma %x, %dy, %w scales(%s) gamma(%g) <bits = 4, group = 64, sym, mode = gamma> : (tensor<6x256xf32>, tensor<6x64xf32>, tensor<64x256xf32>, tensor<64x4xf32>, tensor<64x4xf32>) -> tensor<64x4xf32>
  return %dg : tensor<64x4xf32>
}

// No CUDA quantize kernel: quantize stays for the generated kernels.
// CHECK-LABEL: func @quantize
// CHECK: qslaw.quantize
// CHECK-NOT: call
func.func @quantize(%w: tensor<64x256xf32>, %s: tensor<64x2xf32>, %z: tensor<64x2xi4>) -> tensor<64x256xi4> {
  %q = qslaw.quantize %w scales(%s) zeros(%z) <bits = 4, group = 128> : (tensor<64x256xf32>, tensor<64x2xf32>, tensor<64x2xi4>) -> tensor<64x256xi4>
  return %q : tensor<64x256xi4>
}


// The CUDA kernels take an f32 [N, K] weight: a bf16 one stays for the
// generated kernels.
// CHECK-LABEL: func @grad_gamma_bf16_weight
// CHECK: qslaw.qmatmul_grad_gamma
// CHECK-NOT: call
func.func @grad_gamma_bf16_weight(%x: tensor<6x256xf32>, %dy: tensor<6x64xf32>, %w: tensor<64x256xbf16>, %s: tensor<64x4xf32>, %g: tensor<64x4xf32>) -> tensor<64x4xf32> {
  %dg = qslaw.qmatmul_grad_gamma %x, %dy, %w scales(%s) gamma(%g) <bits = 4, group = 64, sym, mode = gamma> : (tensor<6x256xf32>, tensor<6x64xf32>, tensor<64x256xbf16>, tensor<64x4xf32>, tensor<64x4xf32>) -> tensor<64x4xf32>
  return %dg : tensor<64x4xf32>
}
