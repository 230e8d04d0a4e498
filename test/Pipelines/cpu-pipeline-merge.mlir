// RUN: qslaw-opt %s -qslaw-cpu-bufferize | FileCheck %s
// RUN: qslaw-opt %s -qslaw-cpu-bufferize="merge-functions=false" | FileCheck %s --check-prefix=KEEP
// RUN: qslaw-opt %s -qslaw-cpu-bufferize="outline-min-ops=0" | FileCheck %s --check-prefix=INLINE

// Two identical ops on different buffers (the same layer twice) outline to
// identical loop nests: one function serves both calls by default; with
// merge-functions=false both copies stay; without outlining nothing merges.
// CHECK-LABEL: func.func @two_layers(
// CHECK: call @two_layers__nest0(
// CHECK: call @two_layers__nest0(
// CHECK: func.func private @two_layers__nest0(
// CHECK-NOT: func.func private @two_layers__nest1(
// KEEP-LABEL: func.func @two_layers(
// KEEP: call @two_layers__nest0(
// KEEP: call @two_layers__nest1(
// KEEP: func.func private @two_layers__nest1(
// INLINE-LABEL: func.func @two_layers(
// INLINE-NOT: call @two_layers__nest
func.func @two_layers(%x: tensor<64x128xf32>, %y: tensor<64x128xf32>) -> (tensor<64x128xf32>, tensor<64x128xf32>) {
  %e = tensor.empty() : tensor<64x128xf32>
  %a = linalg.generic {indexing_maps = [affine_map<(i, j) -> (i, j)>, affine_map<(i, j) -> (i, j)>],
                       iterator_types = ["parallel", "parallel"]}
       ins(%x : tensor<64x128xf32>) outs(%e : tensor<64x128xf32>) {
  ^bb0(%v: f32, %o: f32):
    %t = math.tanh %v : f32
    linalg.yield %t : f32
  } -> tensor<64x128xf32>
  %b = linalg.generic {indexing_maps = [affine_map<(i, j) -> (i, j)>, affine_map<(i, j) -> (i, j)>],
                       iterator_types = ["parallel", "parallel"]}
       ins(%y : tensor<64x128xf32>) outs(%e : tensor<64x128xf32>) {
  ^bb0(%v: f32, %o: f32):
    %t = math.tanh %v : f32
    linalg.yield %t : f32
  } -> tensor<64x128xf32>
  return %a, %b : tensor<64x128xf32>, tensor<64x128xf32>
}
