// REQUIRES: ptxas
// RUN: qslaw-opt %s -qslaw-cuda-to-gpu | FileCheck %s --check-prefix=GPU
// RUN: qslaw-opt %s -qslaw-cuda-pipeline | FileCheck %s --check-prefix=BIN
// RUN: qslaw-opt %s -qslaw-cuda-pipeline="format=isa" | FileCheck %s --check-prefix=PTX
// RUN: qslaw-opt %s -qslaw-cuda-pipeline="chips=sm_90a format=bin" | FileCheck %s --check-prefix=ONE
// RUN: qslaw-opt %s -qslaw-cuda-pipeline="emulate-on-cpu=true" | FileCheck %s --check-prefix=EMU
// The PTX of both architectures is accepted by ptxas:
// RUN: qslaw-opt %s -qslaw-cuda-to-gpu="chips=sm_80" -gpu-module-to-binary="format=isa" -o %t.isa.mlir
// RUN: %venv_python %S/Inputs/extract_ptx.py %t.isa.mlir %t.sm_80.ptx
// RUN: ptxas -arch=sm_80 %t.sm_80.ptx -o %t.sm_80.cubin
// RUN: qslaw-opt %s -qslaw-cuda-to-gpu="chips=sm_90a" -gpu-module-to-binary="format=isa" -o %t.isa90.mlir
// RUN: %venv_python %S/Inputs/extract_ptx.py %t.isa90.mlir %t.sm_90a.ptx
// RUN: ptxas -arch=sm_90a %t.sm_90a.ptx -o %t.sm_90a.cubin

// Host code only launches kernels: the quantized matmul (dequantisation in
// the k loop, packed 4-bit codes), the exp, the zero fill and the
// whole-tensor sum (a one-thread kernel) are kernels for both chips.
// GPU-LABEL: func.func @linear
// GPU-NOT: memref.load
// GPU: gpu.launch_func @linear_kernel::@linear_kernel blocks in
// GPU: gpu.launch_func @linear_kernel_0::@linear_kernel
// GPU-SAME: memref<8192xi8>
// GPU: gpu.launch_func @linear_kernel_1::@linear_kernel
// GPU: gpu.launch_func @linear_kernel_2::@linear_kernel blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1)
// GPU: return
// GPU: gpu.module @linear_kernel_0 [#nvvm.target<O = 3, chip = "sm_80">, #nvvm.target<O = 3, chip = "sm_90a">]
// GPU: nvvm.read.ptx.sreg.tid.x
// GPU: llvm.ashr
// GPU: llvm.trunc %{{.*}} : i8 to i4
// GPU: llvm.uitofp %{{.*}} : i4 to f32
// GPU: gpu.module @linear_kernel_1
// GPU: llvm.call @__nv_expf

// One packed multi-architecture object per kernel module; host code in
// the LLVM dialect.
// BIN: llvm.func @linear
// BIN: gpu.launch_func <%{{.*}} : !llvm.ptr> @linear_kernel::@linear_kernel
// BIN-NOT: func.func
// BIN: gpu.binary @linear_kernel  [#gpu.object<#nvvm.target<O = 3, chip = "sm_80">, bin = "QSLAWGPU\01\00\00\00\02\00\00\00\05\00\00\00sm_80
// BIN-SAME: sm_90a
// PTX: gpu.binary @linear_kernel_0  [#gpu.object<#nvvm.target<O = 3, chip = "sm_80">, bin = "QSLAWGPU
// PTX-SAME: .target sm_80
// PTX-SAME: .target sm_90a
// ONE: bin = "QSLAWGPU\01\00\00\00\01\00\00\00\06\00\00\00sm_90a
// EMU-LABEL: llvm.func @linear
// EMU-NOT: gpu.
// EMU-NOT: mgpu
func.func @linear(%x: tensor<2x256xf32>, %q: tensor<64x256xi4>, %s: tensor<64x2xf32>, %z: tensor<64x2xi4>) -> (tensor<2x64xf32>, tensor<f32>) {
  %y = qslaw.qmatmul %x, %q scales(%s) zeros(%z) <bits = 4, group = 128> : (tensor<2x256xf32>, tensor<64x256xi4>, tensor<64x2xf32>, tensor<64x2xi4>) -> tensor<2x64xf32>
  %e = math.exp %y : tensor<2x64xf32>
  %init = tensor.empty() : tensor<f32>
  %c0 = arith.constant 0.0 : f32
  %f = linalg.fill ins(%c0 : f32) outs(%init : tensor<f32>) -> tensor<f32>
  %r = linalg.reduce ins(%e : tensor<2x64xf32>) outs(%f : tensor<f32>) dimensions = [0, 1]
    (%a: f32, %b: f32) {
      %t = arith.addf %a, %b : f32
      linalg.yield %t : f32
    }
  return %e, %r : tensor<2x64xf32>, tensor<f32>
}
