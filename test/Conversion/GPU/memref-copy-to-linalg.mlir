// RUN: qslaw-opt %s -qslaw-memref-copy-to-linalg | FileCheck %s

// Copies, strided ones included, become linalg.copy (then a GPU kernel).
// CHECK-LABEL: func.func @copies
// CHECK: linalg.copy ins(%arg0 : memref<4x8xf32>) outs(%arg1 : memref<4x8xf32>)
// CHECK: linalg.copy ins(%arg0 : memref<4x8xf32>) outs(%{{.*}} : memref<4x8xf32, strided<[16, 1]>>)
// CHECK-NOT: memref.copy
func.func @copies(%a: memref<4x8xf32>, %b: memref<4x8xf32>, %c: memref<4x16xf32>) {
  memref.copy %a, %b : memref<4x8xf32> to memref<4x8xf32>
  %v = memref.subview %c[0, 0] [4, 8] [1, 1] : memref<4x16xf32> to memref<4x8xf32, strided<[16, 1]>>
  memref.copy %a, %v : memref<4x8xf32> to memref<4x8xf32, strided<[16, 1]>>
  return
}

// RUN: qslaw-opt %s -qslaw-memref-copy-to-linalg="strided-only=1" | FileCheck %s --check-prefix=STRIDED
// strided-only (the CPU pipeline): copies LLVM makes one memcpy stay (an
// offset slice of whole rows is contiguous); those between strided views
// become linalg.copy (loops, not the element-by-element memrefCopy).
// STRIDED-LABEL: func.func @copies
// STRIDED: memref.copy %arg0, %arg1 : memref<4x8xf32> to memref<4x8xf32>
// STRIDED: linalg.copy ins(%arg0 : memref<4x8xf32>) outs(%{{.*}} : memref<4x8xf32, strided<[16, 1]>>)
// STRIDED-LABEL: func.func @contiguous_slice
// STRIDED: memref.copy
// STRIDED-NOT: linalg.copy
// STRIDED-LABEL: func.func @rotary_half
func.func @contiguous_slice(%a: memref<2x16xf32>, %c: memref<4x16xf32>) {
  %v = memref.subview %c[1, 0] [2, 16] [1, 1] : memref<4x16xf32> to memref<2x16xf32, strided<[16, 1], offset: 16>>
  memref.copy %a, %v : memref<2x16xf32> to memref<2x16xf32, strided<[16, 1], offset: 16>>
  return
}

// RUN: qslaw-opt %s -qslaw-memref-copy-to-linalg="strided-only=1 row-vectors=1 parallel-min-elems=64" | FileCheck %s --check-prefix=ROWS
// row-vectors (the CPU pipeline): a strided copy whose innermost run is
// contiguous on both sides is one vector load and store per run, in a loop
// nest over the outer dimensions: sequential below parallel-min-elems (32
// elements here), an scf.parallel from it on (a rotary half, 2x8x32 = 512).
// ROWS-LABEL: func.func @copies
// ROWS: memref.copy %arg0, %arg1 : memref<4x8xf32> to memref<4x8xf32>
// ROWS: scf.for %[[I:.*]] = %c0 to %c4 step %c1 {
// ROWS-NEXT: %[[R:.*]] = vector.load %arg0[%[[I]], %c0] : memref<4x8xf32>, vector<8xf32>
// ROWS-NEXT: vector.store %[[R]], %{{.*}}[%[[I]], %c0] : memref<4x8xf32, strided<[16, 1]>>, vector<8xf32>
// ROWS-NOT: linalg.copy
// ROWS-LABEL: func.func @rotary_half
// ROWS: scf.parallel (%[[A:.*]], %[[B:.*]]) = (%c0, %c0) to (%c2, %c8) step (%c1, %c1) {
// ROWS-NEXT: %[[R:.*]] = vector.load %{{.*}}[%[[A]], %[[B]], %c0] : memref<2x8x32xf32, strided<[512, 64, 1], offset: 32>>, vector<32xf32>
// ROWS-NEXT: vector.store %[[R]], %arg1[%[[A]], %[[B]], %c0] : memref<2x8x32xf32>, vector<32xf32>
// ROWS-LABEL: func.func @not_row_vectors
// ROWS: linalg.copy ins(%{{.*}} : memref<8x4xf32, strided<[1, 8]>>)
// ROWS: linalg.copy ins(%{{.*}} : memref<4x8xi1>)
// ROWS: linalg.copy ins(%{{.*}} : memref<?x8xf32>)
func.func @rotary_half(%a: memref<2x8x64xf32>, %b: memref<2x8x32xf32>) {
  %v = memref.subview %a[0, 0, 32] [2, 8, 32] [1, 1, 1] : memref<2x8x64xf32> to memref<2x8x32xf32, strided<[512, 64, 1], offset: 32>>
  memref.copy %v, %b : memref<2x8x32xf32, strided<[512, 64, 1], offset: 32>> to memref<2x8x32xf32>
  return
}
// Left to linalg.copy: a transposed view (innermost stride 8), booleans
// (vectors of i1 are packed bits in LLVM), a dynamic shape.
func.func @not_row_vectors(%a: memref<4x8xf32>, %b: memref<8x4xf32>, %m: memref<4x16xi1>, %n: memref<4x8xi1>,
                           %d: memref<?x16xf32>, %e: memref<?x8xf32>) {
  %t = memref.transpose %a (i, j) -> (j, i) : memref<4x8xf32> to memref<8x4xf32, strided<[1, 8]>>
  memref.copy %t, %b : memref<8x4xf32, strided<[1, 8]>> to memref<8x4xf32>
  %mv = memref.subview %m[0, 0] [4, 8] [1, 1] : memref<4x16xi1> to memref<4x8xi1, strided<[16, 1]>>
  memref.copy %n, %mv : memref<4x8xi1> to memref<4x8xi1, strided<[16, 1]>>
  %c0 = arith.constant 0 : index
  %rows = memref.dim %d, %c0 : memref<?x16xf32>
  %dv = memref.subview %d[0, 0] [%rows, 8] [1, 1] : memref<?x16xf32> to memref<?x8xf32, strided<[16, 1]>>
  memref.copy %e, %dv : memref<?x8xf32> to memref<?x8xf32, strided<[16, 1]>>
  return
}
