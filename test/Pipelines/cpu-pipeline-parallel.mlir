// RUN: qslaw-opt %s -qslaw-cpu-pipeline="parallel=true" | FileCheck %s
// RUN: qslaw-opt %s -qslaw-cpu-pipeline | FileCheck %s --check-prefix=SEQ

// With `parallel`, the row loop of a large op is an OpenMP work-sharing
// loop (LLVM's libomp at run time); buffers come from the caching heap
// through MLIR's generic allocation functions; the row reduction is a
// reassociable vector reduction and exp a polynomial (no libm call).
// Each parallel region is a function of its own (qslaw-outline-loop-nests).
// CHECK-LABEL: llvm.func @softmax_like
// CHECK: llvm.call @_mlir_memref_to_llvm_alloc
// CHECK: llvm.call @softmax_like__nest0(
// CHECK: llvm.call @softmax_like__nest1(
// CHECK: llvm.call @_mlir_memref_to_llvm_free
// CHECK: llvm.func internal @softmax_like__nest0(
// CHECK: omp.parallel
// CHECK: omp.wsloop
// CHECK: llvm.intr.vector.reduce.fmax
// CHECK-NOT: llvm.call @expf
// SEQ-LABEL: llvm.func @softmax_like
// SEQ-NOT: omp.
// SEQ: llvm.intr.vector.reduce.fmax
func.func @softmax_like(%x: tensor<512x256xf32>) -> tensor<512x256xf32> {
  %ninf = arith.constant 0xFF800000 : f32
  %er = tensor.empty() : tensor<512xf32>
  %m0 = linalg.fill ins(%ninf : f32) outs(%er : tensor<512xf32>) -> tensor<512xf32>
  %m = linalg.generic {indexing_maps = [affine_map<(i, j) -> (i, j)>, affine_map<(i, j) -> (i)>],
                       iterator_types = ["parallel", "reduction"]}
       ins(%x : tensor<512x256xf32>) outs(%m0 : tensor<512xf32>) {
  ^bb0(%a: f32, %o: f32):
    %v = arith.maximumf %o, %a : f32
    linalg.yield %v : f32
  } -> tensor<512xf32>
  %e = tensor.empty() : tensor<512x256xf32>
  %y = linalg.generic {indexing_maps = [affine_map<(i, j) -> (i, j)>, affine_map<(i, j) -> (i)>, affine_map<(i, j) -> (i, j)>],
                       iterator_types = ["parallel", "parallel"]}
       ins(%x, %m : tensor<512x256xf32>, tensor<512xf32>) outs(%e : tensor<512x256xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %d = arith.subf %a, %b : f32
    %v = math.exp %d : f32
    linalg.yield %v : f32
  } -> tensor<512x256xf32>
  return %y : tensor<512x256xf32>
}
