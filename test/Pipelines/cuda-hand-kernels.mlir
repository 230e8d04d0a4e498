// REQUIRES: ptxas
// RUN: qslaw-opt %s -qslaw-cuda-to-gpu="hand-kernels=bf16 chips=sm_90a" | FileCheck %s --check-prefix=GPU
// RUN: qslaw-opt %s -qslaw-cuda-pipeline="hand-kernels=bf16 chips=sm_90a" | FileCheck %s --check-prefix=LLVM
// RUN: qslaw-opt %s -qslaw-cuda-pipeline="hand-kernels=f16 emulate-on-cpu=true" | FileCheck %s --check-prefix=EMU
// RUN: qslaw-opt %s -qslaw-cuda-to-gpu | FileCheck %s --check-prefix=OFF

// With hand-kernels, the covered quantized matmul is a host call that
// takes device buffers (gpu.alloc'd output and zero-size bias); the exp
// after it is still a generated kernel. Nothing is read on the host.
// GPU-LABEL: func.func @linear
// GPU-NOT: memref.load
// GPU-DAG: %[[OUT:.*]] = gpu.alloc () : memref<2x64xf32>
// GPU-DAG: %[[NOBIAS:.*]] = gpu.alloc () : memref<0xf32>
// GPU: call @qslaw_cuda_qmatmul_w4_f32({{.*}}) : (memref<?x?xf32>, memref<?xi8>, memref<?x?xf32>, memref<?xi8>, memref<?xf32>, memref<?x?xf32>, i64, i32) -> ()
// GPU: gpu.launch_func @linear_kernel::@linear_kernel
// GPU-NOT: qslaw.qmatmul
// GPU: gpu.module @linear_kernel
// GPU: llvm.call @__nv_expf

// Host code calls the runtime's C-interface entry (libqslaw_cuda_runtime)
// through the descriptor-packing wrapper, after the stream's earlier work
// in order.
// LLVM: llvm.func private @qslaw_cuda_qmatmul_w4_f32(
// LLVM: llvm.call @_mlir_ciface_qslaw_cuda_qmatmul_w4_f32({{.*}}) : (!llvm.ptr, !llvm.ptr, !llvm.ptr, !llvm.ptr, !llvm.ptr, !llvm.ptr, i64, i32) -> ()
// LLVM: llvm.func @_mlir_ciface_qslaw_cuda_qmatmul_w4_f32(!llvm.ptr, !llvm.ptr, !llvm.ptr, !llvm.ptr, !llvm.ptr, !llvm.ptr, i64, i32)
// LLVM: llvm.func @linear
// LLVM: llvm.call @qslaw_cuda_qmatmul_w4_f32(
// LLVM: gpu.launch_func

// Emulated, the call goes to the CPU microkernel (one thread), not to a
// CUDA entry.
// EMU-NOT: qslaw_cuda_qmatmul
// EMU: llvm.func @linear
// EMU: %[[ONE:.*]] = llvm.mlir.constant(1 : i32) : i32
// EMU: llvm.call @qslaw_ukernel_qmatmul_w4_f32({{.*}}, %[[ONE]])
// EMU-NOT: qslaw_cuda_qmatmul

// Off by default: generated kernels only.
// OFF-NOT: qslaw_cuda_qmatmul
func.func @linear(%x: tensor<2x256xf32>, %q: tensor<64x256xi4>, %s: tensor<64x2xf32>, %z: tensor<64x2xi4>) -> tensor<2x64xf32> {
  %y = qslaw.qmatmul %x, %q scales(%s) zeros(%z) <bits = 4, group = 128> : (tensor<2x256xf32>, tensor<64x256xi4>, tensor<64x2xf32>, tensor<64x2xi4>) -> tensor<2x64xf32>
  %e = math.exp %y : tensor<2x64xf32>
  return %e : tensor<2x64xf32>
}
