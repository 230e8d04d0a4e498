// RUN: qslaw-opt %s --pass-pipeline='builtin.module(func.func(qslaw-early-dealloc))' | FileCheck %s

// Each buffer is freed right after its last use, not at the block's end.
// CHECK-LABEL: func @chain
// CHECK: %[[A:.*]] = memref.alloc()
// CHECK: %[[B:.*]] = memref.alloc()
// CHECK: linalg.copy ins(%[[A]] {{.*}} outs(%[[B]]
// CHECK-NEXT: memref.dealloc %[[A]]
// CHECK: %[[C:.*]] = memref.alloc()
// CHECK: linalg.copy ins(%[[B]] {{.*}} outs(%[[C]]
// CHECK-NEXT: memref.dealloc %[[B]]
// CHECK: linalg.copy ins(%[[C]]
// CHECK-NEXT: memref.dealloc %[[C]]
// CHECK-NEXT: return
func.func @chain(%a: memref<64xf32>, %out: memref<64xf32>) {
  %t1 = memref.alloc() : memref<64xf32>
  linalg.copy ins(%a : memref<64xf32>) outs(%t1 : memref<64xf32>)
  %t2 = memref.alloc() : memref<64xf32>
  linalg.copy ins(%t1 : memref<64xf32>) outs(%t2 : memref<64xf32>)
  %t3 = memref.alloc() : memref<64xf32>
  linalg.copy ins(%t2 : memref<64xf32>) outs(%t3 : memref<64xf32>)
  linalg.copy ins(%t3 : memref<64xf32>) outs(%out : memref<64xf32>)
  memref.dealloc %t1 : memref<64xf32>
  memref.dealloc %t2 : memref<64xf32>
  memref.dealloc %t3 : memref<64xf32>
  return
}

// A view keeps its buffer alive: the last use of the subview (inside a
// loop, which counts as a use by the loop) decides; a cast passed to a call
// (a microkernel) is a use too.
// CHECK-LABEL: func @views
// CHECK: %[[A:.*]] = memref.alloc()
// CHECK: scf.for
// CHECK: memref.load %{{.*}}[%{{.*}}] : memref<32xf32, strided<[1], offset: 16>>
// CHECK: }
// CHECK-NEXT: memref.dealloc %[[A]]
// CHECK: %[[B:.*]] = memref.alloc()
// CHECK: call @kernel
// CHECK-NEXT: memref.dealloc %[[B]]
// CHECK-NEXT: return
func.func private @kernel(memref<?xf32>)
func.func @views(%a: memref<64xf32>, %out: memref<32xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c32 = arith.constant 32 : index
  %t = memref.alloc() : memref<64xf32>
  linalg.copy ins(%a : memref<64xf32>) outs(%t : memref<64xf32>)
  %v = memref.subview %t[16] [32] [1] : memref<64xf32> to memref<32xf32, strided<[1], offset: 16>>
  scf.for %i = %c0 to %c32 step %c1 {
    %x = memref.load %v[%i] : memref<32xf32, strided<[1], offset: 16>>
    memref.store %x, %out[%i] : memref<32xf32>
  }
  %u = memref.alloc() : memref<64xf32>
  %d = memref.cast %u : memref<64xf32> to memref<?xf32>
  call @kernel(%d) : (memref<?xf32>) -> ()
  memref.dealloc %t : memref<64xf32>
  memref.dealloc %u : memref<64xf32>
  return
}

// Left alone: the dealloc of an argument, and a dealloc already right
// after its buffer's last use.
// CHECK-LABEL: func @untouched
// CHECK: %[[T:.*]] = memref.alloc()
// CHECK-NEXT: linalg.copy ins(%arg0 {{.*}} outs(%[[T]]
// CHECK-NEXT: memref.dealloc %[[T]]
// CHECK-NEXT: linalg.copy ins(%arg0 {{.*}} outs(%arg2
// CHECK-NEXT: memref.dealloc %arg1
func.func @untouched(%a: memref<64xf32>, %b: memref<64xf32>, %out: memref<64xf32>) {
  %t = memref.alloc() : memref<64xf32>
  linalg.copy ins(%a : memref<64xf32>) outs(%t : memref<64xf32>)
  memref.dealloc %t : memref<64xf32>
  linalg.copy ins(%a : memref<64xf32>) outs(%out : memref<64xf32>)
  memref.dealloc %b : memref<64xf32>
  return
}
