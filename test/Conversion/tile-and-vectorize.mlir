// RUN: qslaw-opt %s -qslaw-tile-and-vectorize="tile-size=4" | FileCheck %s
// RUN: qslaw-opt %s -qslaw-tile-and-vectorize="tile-size=0 vectorize=true" | FileCheck %s --check-prefix=VEC
// RUN: qslaw-opt %s -qslaw-tile-and-vectorize="tile-size=4 vectorize=false" | FileCheck %s --check-prefix=NOVEC
// RUN: qslaw-opt %s -qslaw-tile-and-vectorize="tile-size=64" | FileCheck %s --check-prefix=ROW
// RUN: qslaw-opt %s -qslaw-tile-and-vectorize="tile-size=64 parallel=true parallel-min-work=1000" | FileCheck %s --check-prefix=PAR

#id = affine_map<(d0, d1) -> (d0, d1)>
#g = affine_map<(d0, d1) -> (d0, d1 floordiv 4)>

// Elementwise: rows of the innermost loop - the outer loop by 1, the inner
// by 4 (tile-size) - vectorized.
// CHECK-LABEL: func @elementwise
// CHECK: scf.for %{{.*}} = %c0{{.*}} to %c8 step %c1
// CHECK: scf.for %{{.*}} = %c0{{.*}} to %c8{{.*}} step %c4
// CHECK: vector.transfer_read {{.*}} : tensor<1x4xf32>, vector<1x4xf32>
// CHECK: arith.truncf {{.*}} : vector<1x4xf32> to vector<1x4xbf16>
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
// tiled op would see tile-local k), only d0 is (by 1); no vectorisation.
// CHECK-LABEL: func @group_indexed
// CHECK: scf.for %{{.*}} = %c0 to %c8 step %c1
// CHECK-NOT: scf.for
// CHECK: linalg.generic {{.*}} ins(%{{.*}}, %{{.*}} : tensor<1x16xi4>, tensor<1x4xf32>)
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

// Row reductions: an innermost extent that is not a multiple of 16 (200)
// is split at one (192): the main part is tiled by its largest divisor up
// to tile-size (64), the 8-wide rest stays whole and accumulates into the
// main part's result; the row loop is tiled by 1; each tile is a vector
// reduction (no partial tile, no odd vector length).
// ROW-LABEL: func @row_sum
// ROW: tensor.extract_slice %arg0[0, 0] [8, 192] [1, 1]
// ROW: scf.for %{{.*}} = %c0{{.*}} to %c8 step %c1
// ROW: scf.for %{{.*}} = %c0{{.*}} to %c192{{.*}} step %c64
// ROW: vector.multi_reduction <add>, {{.*}} [1] : vector<1x64xf32> to vector<1xf32>
// ROW: %[[MAIN:.*]] = tensor.insert_slice %{{.*}} into %arg1[0] [8] [1]
// ROW: tensor.extract_slice %arg0[0, 192] [8, 8] [1, 1]
// ROW: tensor.extract_slice %[[MAIN]][0] [8] [1]
// ROW: vector.multi_reduction <add>, {{.*}} [1] : vector<1x8xf32> to vector<1xf32>
func.func @row_sum(%a: tensor<8x200xf32>, %init: tensor<8xf32>) -> tensor<8xf32> {
  %r = linalg.generic {indexing_maps = [#id, affine_map<(d0, d1) -> (d0)>], iterator_types = ["parallel", "reduction"]}
       ins(%a : tensor<8x200xf32>) outs(%init : tensor<8xf32>) {
  ^bb0(%x: f32, %o: f32):
    %s = arith.addf %o, %x : f32
    linalg.yield %s : f32
  } -> tensor<8xf32>
  return %r : tensor<8xf32>
}

// A prime innermost extent (197, a ViT's tokens): 192 in 64-wide tiles,
// then the 5-wide rest (a 197-lane vector was legalised element by element
// through the stack).
// ROW-LABEL: func @prime_row
// ROW: scf.for %{{.*}} = %c0{{.*}} to %c6{{.*}} step %c1
// ROW: scf.for %{{.*}} = %c0{{.*}} to %c192{{.*}} step %c64
// ROW: math.exp {{.*}} : vector<1x64xf32>
// ROW: math.exp {{.*}} : vector<1x5xf32>
// ROW-NOT: vector<1x197xf32>
func.func @prime_row(%a: tensor<6x197xf32>) -> tensor<6x197xf32> {
  %e = tensor.empty() : tensor<6x197xf32>
  %r = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]}
       ins(%a : tensor<6x197xf32>) outs(%e : tensor<6x197xf32>) {
  ^bb0(%x: f32, %o: f32):
    %y = math.exp %x : f32
    linalg.yield %y : f32
  } -> tensor<6x197xf32>
  return %r : tensor<6x197xf32>
}

// i1 tensors are stored one element per byte; LLVM stores vector<N x i1>
// as packed bits, so such ops are tiled but stay scalar.
// ROW-LABEL: func @bool_result
// ROW: scf.for
// ROW-NOT: vector.
// ROW: linalg.generic
func.func @bool_result(%a: tensor<8x64xf32>, %b: tensor<8x64xf32>) -> tensor<8x64xi1> {
  %e = tensor.empty() : tensor<8x64xi1>
  %r = linalg.generic {indexing_maps = [#id, #id, #id], iterator_types = ["parallel", "parallel"]}
       ins(%a, %b : tensor<8x64xf32>, tensor<8x64xf32>) outs(%e : tensor<8x64xi1>) {
  ^bb0(%x: f32, %y: f32, %o: i1):
    %c = arith.cmpf olt, %x, %y : f32
    linalg.yield %c : i1
  } -> tensor<8x64xi1>
  return %r : tensor<8x64xi1>
}

// parallel: the tiled parallel loops of ops with at least
// parallel-min-work iterations form one scf.forall (threads after
// lowering); reduction tiles stay scf.for inside it; smaller ops stay
// sequential.
// PAR-LABEL: func @row_sum
// PAR: scf.forall (%{{.*}}) in (8)
// PAR: scf.for %{{.*}} = %c0{{.*}} to %c192{{.*}} step %c64
// PAR: vector.multi_reduction <add>
// PAR-LABEL: func @prime_row
// PAR: scf.forall (%{{.*}}, %{{.*}}) = (0, 0) to (6, 192) step (1, 64)
// PAR-LABEL: func @bool_result
// PAR-NOT: scf.forall
// PAR: scf.for
