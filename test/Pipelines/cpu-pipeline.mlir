// RUN: qslaw-opt %s -qslaw-cpu-bufferize | FileCheck %s --check-prefix=BUF
// RUN: qslaw-opt %s -qslaw-cpu-bufferize="ukernels=false" | FileCheck %s --check-prefix=CODEGEN
// RUN: qslaw-opt %s -qslaw-cpu-pipeline | FileCheck %s --check-prefix=LLVM
// RUN: qslaw-opt %s -qslaw-cpu-bufferize -qslaw-cpu-to-llvm | FileCheck %s --check-prefix=LLVM
// RUN: qslaw-opt %s -qslaw-cpu-pipeline="ukernels=false tile-size=0 vectorize=false" | FileCheck %s --check-prefix=LLVM-CODEGEN

// After bufferisation: results are out-params, 4-bit codes are packed bytes
// (64x256 codes = 8192 bytes, 64x2 zero points = 64 bytes), the quantized
// matmul is a microkernel call.
// BUF-LABEL: func.func @linear
// BUF-SAME: (%{{.*}}: memref<2x256xf32>, %{{.*}}: memref<8192xi8>, %{{.*}}: memref<64x2xf32>, %{{.*}}: memref<64xi8>, %{{.*}}: memref<2x64xf32>)
// BUF-NOT: -> memref
// BUF: call @qslaw_ukernel_qmatmul_w4_f32
// BUF-NOT: qslaw.
// BUF-NOT: linalg.

// Codegen: scalar loops read the packed bytes and dequantise in the loop.
// CODEGEN-LABEL: func.func @linear
// CODEGEN-NOT: call
// CODEGEN: scf.for
// CODEGEN: memref.load %{{.*}} : memref<8192xi8>
// CODEGEN: arith.shrsi
// CODEGEN: arith.trunci %{{.*}} : i8 to i4
// CODEGEN: arith.uitofp %{{.*}} : i4 to f32
// CODEGEN-NOT: linalg.

// The microkernel is reached through its C interface (memref descriptors).
// LLVM: llvm.func private @qslaw_ukernel_qmatmul_w4_f32
// LLVM: llvm.call @_mlir_ciface_qslaw_ukernel_qmatmul_w4_f32
// LLVM: llvm.func @_mlir_ciface_qslaw_ukernel_qmatmul_w4_f32(!llvm.ptr, !llvm.ptr, !llvm.ptr, !llvm.ptr, !llvm.ptr, !llvm.ptr, i64, i32)
// LLVM: llvm.func @linear
// LLVM: llvm.call @qslaw_ukernel_qmatmul_w4_f32
// LLVM-NOT: memref.
// LLVM-NOT: func.func

// LLVM-CODEGEN: llvm.func @linear
// LLVM-CODEGEN-NOT: qslaw_ukernel
// LLVM-CODEGEN: llvm.load {{.*}} -> i8
// LLVM-CODEGEN: llvm.uitofp {{.*}} : i4 to f32
func.func @linear(%x: tensor<2x256xf32>, %q: tensor<64x256xi4>, %s: tensor<64x2xf32>, %z: tensor<64x2xi4>) -> tensor<2x64xf32> {
  %y = qslaw.qmatmul %x, %q scales(%s) zeros(%z) <bits = 4, group = 128> : (tensor<2x256xf32>, tensor<64x256xi4>, tensor<64x2xf32>, tensor<64x2xi4>) -> tensor<2x64xf32>
  return %y : tensor<2x64xf32>
}
