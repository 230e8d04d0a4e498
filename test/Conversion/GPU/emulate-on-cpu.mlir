// RUN: qslaw-opt %s -qslaw-gpu-emulate-on-cpu | FileCheck %s

// Each launch becomes loops over grid (z, y, x) and block (z, y, x); the
// ids and sizes are the loop variables and bounds; device memory ops are
// memref ops.
// CHECK-LABEL: func.func @scale
// CHECK: %[[B:.*]] = memref.alloc() : memref<512xf32>
// CHECK: memref.copy %arg0, %[[B]]
// CHECK: scf.for %{{.*}} = %{{.*}} to %c1
// CHECK: scf.for %{{.*}} = %{{.*}} to %c1
// CHECK: scf.for %[[BX:.*]] = %{{.*}} to %c2
// CHECK: scf.for %{{.*}} = %{{.*}} to %c1
// CHECK: scf.for %{{.*}} = %{{.*}} to %c1
// CHECK: scf.for %[[TX:.*]] = %{{.*}} to %c256
// CHECK: arith.muli %[[BX]], %c256
// CHECK: memref.load %[[B]]
// CHECK-NOT: gpu.
// CHECK: memref.dealloc %[[B]]
func.func @scale(%x: memref<512xf32>, %y: memref<512xf32>) {
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %c256 = arith.constant 256 : index
  %b = gpu.alloc () : memref<512xf32>
  gpu.memcpy %b, %x : memref<512xf32>, memref<512xf32>
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %c2, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c256, %sy = %c1, %sz = %c1) {
    %base = arith.muli %bx, %sx : index
    %i = arith.addi %base, %tx : index
    %v = memref.load %b[%i] : memref<512xf32>
    %w = arith.addf %v, %v : f32
    memref.store %w, %y[%i] : memref<512xf32>
    gpu.terminator
  }
  gpu.dealloc %b : memref<512xf32>
  return
}
