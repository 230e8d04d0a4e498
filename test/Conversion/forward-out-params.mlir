// RUN: qslaw-opt %s --pass-pipeline='builtin.module(func.func(qslaw-forward-out-params))' -split-input-file | FileCheck %s

// A value returned by a call: after buffer-results-to-out-params the call
// writes a fresh buffer that the caller copies into its own out
// parameter. The call now writes the out parameter; allocation, copy and
// deallocation are gone.
// CHECK-LABEL: func.func @returns_call_result(
// CHECK-SAME: %[[X:.*]]: memref<8xf32>, %[[OUT:.*]]: memref<8xf32>)
// CHECK-NOT: memref.alloc
// CHECK: call @callee(%[[X]], %[[OUT]])
// CHECK-NOT: memref.copy
// CHECK-NOT: memref.dealloc
// CHECK: return
func.func private @callee(memref<8xf32>, memref<8xf32>)
func.func @returns_call_result(%x: memref<8xf32>, %out: memref<8xf32>) {
  %buf = memref.alloc() : memref<8xf32>
  call @callee(%x, %buf) : (memref<8xf32>, memref<8xf32>) -> ()
  memref.copy %buf, %out : memref<8xf32> to memref<8xf32>
  memref.dealloc %buf : memref<8xf32>
  return
}

// -----

// Reads of the buffer before the copy are fine: they now read the out
// parameter, which holds the same values.
// CHECK-LABEL: func.func @read_before_copy(
// CHECK-SAME: %[[X:.*]]: memref<8xf32>, %[[OUT:.*]]: memref<8xf32>, %[[SIDE:.*]]: memref<8xf32>)
// CHECK: call @callee(%[[X]], %[[OUT]])
// CHECK: linalg.copy ins(%[[OUT]] {{.*}} outs(%[[SIDE]]
// CHECK-NOT: memref.copy
func.func private @callee(memref<8xf32>, memref<8xf32>)
func.func @read_before_copy(%x: memref<8xf32>, %out: memref<8xf32>, %side: memref<8xf32>) {
  %buf = memref.alloc() : memref<8xf32>
  call @callee(%x, %buf) : (memref<8xf32>, memref<8xf32>) -> ()
  linalg.copy ins(%buf : memref<8xf32>) outs(%side : memref<8xf32>)
  memref.copy %buf, %out : memref<8xf32> to memref<8xf32>
  return
}

// -----

// Left alone: a use after the copy (it could write the buffer, which must
// not reach the out parameter), an out parameter with another use, a
// buffer of another type, a buffer reached through a view, a source that is
// not an allocation, and a copy inside a loop.
// CHECK-LABEL: func.func @left_alone(
// CHECK-COUNT-6: memref.copy
func.func private @callee(memref<8xf32>, memref<8xf32>)
func.func @left_alone(%x: memref<8xf32>, %o1: memref<8xf32>, %o2: memref<8xf32>,
                      %o3: memref<8xf32, strided<[1], offset: 0>>, %o4: memref<8xf32>,
                      %o5: memref<8xf32>, %o6: memref<8xf32>) {
  %b1 = memref.alloc() : memref<8xf32>
  memref.copy %b1, %o1 : memref<8xf32> to memref<8xf32>
  call @callee(%x, %b1) : (memref<8xf32>, memref<8xf32>) -> ()
  %b2 = memref.alloc() : memref<8xf32>
  call @callee(%x, %b2) : (memref<8xf32>, memref<8xf32>) -> ()
  memref.copy %b2, %o2 : memref<8xf32> to memref<8xf32>
  call @callee(%o2, %x) : (memref<8xf32>, memref<8xf32>) -> ()
  %b3 = memref.alloc() : memref<8xf32>
  memref.copy %b3, %o3 : memref<8xf32> to memref<8xf32, strided<[1], offset: 0>>
  %b4 = memref.alloc() : memref<8xf32>
  %v = memref.subview %b4[0] [4] [1] : memref<8xf32> to memref<4xf32, strided<[1]>>
  %zero = arith.constant 0.0 : f32
  linalg.fill ins(%zero : f32) outs(%v : memref<4xf32, strided<[1]>>)
  memref.copy %b4, %o4 : memref<8xf32> to memref<8xf32>
  memref.copy %x, %o5 : memref<8xf32> to memref<8xf32>
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  scf.for %i = %c0 to %c1 step %c1 {
    %b6 = memref.alloc() : memref<8xf32>
    memref.copy %b6, %o6 : memref<8xf32> to memref<8xf32>
  }
  return
}
