// REQUIRES: ptxas
// RUN: qslaw-opt %s -qslaw-cuda-to-gpu="chips=sm_90a" | FileCheck %s
// RUN: qslaw-opt %s -qslaw-cuda-pipeline="chips=sm_90a format=bin" | FileCheck %s --check-prefix=BIN

// ONNX Pow on integers becomes math.ipowi, which NVVM cannot lower: the
// pipeline expands it into a function that outlining copies into the kernel
// module (found by the ONNX backend tests test_pow_types_int{32,64}_* on
// --target=cuda).
// CHECK: gpu.module @ipow_kernel
// CHECK-DAG: llvm.func linkonce_odr @__mlir_math_ipowi_i64
// CHECK-DAG: llvm.call @__mlir_math_ipowi_i64
// BIN: gpu.binary @ipow_kernel
func.func @ipow(%a: tensor<64xi64>, %b: tensor<64xi64>) -> tensor<64xi64> {
  %e = tensor.empty() : tensor<64xi64>
  %r = linalg.generic {indexing_maps = [affine_map<(i) -> (i)>, affine_map<(i) -> (i)>, affine_map<(i) -> (i)>],
                       iterator_types = ["parallel"]}
      ins(%a, %b : tensor<64xi64>, tensor<64xi64>) outs(%e : tensor<64xi64>) {
  ^bb0(%x: i64, %y: i64, %o: i64):
    %p = math.ipowi %x, %y : i64
    linalg.yield %p : i64
  } -> tensor<64xi64>
  return %r : tensor<64xi64>
}
