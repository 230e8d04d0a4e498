// RUN: qslaw-opt %s -qslaw-tile-and-vectorize="tile-size=4" | FileCheck %s
// RUN: qslaw-opt %s -qslaw-tile-and-vectorize="tile-size=0 vectorize=true" | FileCheck %s --check-prefix=VEC
// RUN: qslaw-opt %s -qslaw-tile-and-vectorize="tile-size=4 vectorize=false" | FileCheck %s --check-prefix=NOVEC

#id = affine_map<(d0, d1) -> (d0, d1)>
#g = affine_map<(d0, d1) -> (d0, d1 floordiv 4)>

// Elementwise: both loops tiled by 4, tiles vectorized.
// CHECK-LABEL: func @elementwise
// CHECK: scf.for
// CHECK: scf.for
// CHECK: vector.transfer_read {{.*}} : tensor<4x4xf32>, vector<4x4xf32>
// CHECK: arith.truncf {{.*}} : vector<4x4xf32> to vector<4x4xbf16>
// VEC-LABEL: func @elementwise
// VEC-NOT: scf.for
// VEC: arith.truncf {{.*}} : vector<8x8xf32> to vector<8x8xbf16>
// NOVEC-LABEL: func @elementwise
// NOVEC: scf.for
// NOVEC: linalg.generic
// NOVEC-NOT: vector.
func.func @elementwise(%a: tensor<8x8xf32>) -> tensor<8x8xbf16> {
  %e = tensor.empty() : tensor<8x8xbf16>
  %r = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]}
       ins(%a : tensor<8x8xf32>) outs(%e : tensor<8x8xbf16>) {
  ^bb0(%x: f32, %o: bf16):
    %t = arith.truncf %x : f32 to bf16
    linalg.yield %t : bf16
  } -> tensor<8x8xbf16>
  return %r : tensor<8x8xbf16>
}

// A group-indexed operand: the loop under `floordiv` is not tiled (the
// tiled op would see tile-local k), only d0 is; no vectorisation.
// CHECK-LABEL: func @group_indexed
// CHECK: scf.for %{{.*}} = %c0 to %c8 step %c4
// CHECK-NOT: scf.for
// CHECK: linalg.generic {{.*}} ins(%{{.*}}, %{{.*}} : tensor<4x16xi4>, tensor<4x4xf32>)
func.func @group_indexed(%q: tensor<8x16xi4>, %s: tensor<8x4xf32>) -> tensor<8x16xf32> {
  %e = tensor.empty() : tensor<8x16xf32>
  %r = linalg.generic {indexing_maps = [#id, #g, #id], iterator_types = ["parallel", "parallel"]}
       ins(%q, %s : tensor<8x16xi4>, tensor<8x4xf32>) outs(%e : tensor<8x16xf32>) {
  ^bb0(%qi: i4, %si: f32, %o: f32):
    %f = arith.uitofp %qi : i4 to f32
    %m = arith.mulf %f, %si : f32
    linalg.yield %m : f32
  } -> tensor<8x16xf32>
  return %r : tensor<8x16xf32>
}

// Contractions get register tiles: 8 (M) x 32 (N) x 1 (K), vectorized as
// one outer-product step per K iteration.
// CHECK-LABEL: func @matmul
// CHECK: scf.for %{{.*}} = %c0{{.*}} to %c16 step %c8
// CHECK: scf.for %{{.*}} = %c0{{.*}} to %c64 step %c32
// CHECK: scf.for %{{.*}} = %c0{{.*}} to %c128 step %c1
// CHECK: arith.mulf {{.*}} : vector<8x32x1xf32>
// CHECK: vector.multi_reduction <add>, {{.*}} : vector<8x32x1xf32> to vector<8x32xf32>
// NOVEC-LABEL: func @matmul
// NOVEC: linalg.matmul ins({{.*}} : tensor<8x1xf32>, tensor<1x32xf32>)
func.func @matmul(%a: tensor<16x128xf32>, %b: tensor<128x64xf32>, %c: tensor<16x64xf32>) -> tensor<16x64xf32> {
  %r = linalg.matmul ins(%a, %b : tensor<16x128xf32>, tensor<128x64xf32>) outs(%c : tensor<16x64xf32>) -> tensor<16x64xf32>
  return %r : tensor<16x64xf32>
}
