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
func.func @contiguous_slice(%a: memref<2x16xf32>, %c: memref<4x16xf32>) {
  %v = memref.subview %c[1, 0] [2, 16] [1, 1] : memref<4x16xf32> to memref<2x16xf32, strided<[16, 1], offset: 16>>
  memref.copy %a, %v : memref<2x16xf32> to memref<2x16xf32, strided<[16, 1], offset: 16>>
  return
}
