// RUN: qslaw-opt %s -split-input-file -qslaw-outline-loop-nests="min-ops=4" | FileCheck %s
// RUN: qslaw-opt %s -split-input-file -qslaw-outline-loop-nests="min-ops=1000" | FileCheck %s --check-prefix=NONE
// RUN: qslaw-opt %s -split-input-file -qslaw-outline-loop-nests="min-ops=4" -qslaw-merge-identical-functions | FileCheck %s --check-prefix=RATES
// RUN: qslaw-opt %s -split-input-file -qslaw-outline-loop-nests="min-ops=4" -convert-scf-to-cf -convert-to-llvm -reconcile-unrealized-casts | mlir-translate --split-input-file --mlir-to-llvmir | FileCheck %s --check-prefix=LLVMIR

// A loop nest becomes an internal, never-inlined function: the buffers and
// the dynamic bound it reads are arguments, the constants it reads are
// cloned (bounds stay constant), a small op stays.
// CHECK-LABEL: func.func @f(
// CHECK-SAME: %[[A:.*]]: memref<8x16xf32>, %[[B:.*]]: memref<8x16xf32>, %[[N:.*]]: index)
// CHECK: memref.store
// CHECK: call @f__nest0(%[[N]], %[[A]], %[[B]]) : (index, memref<8x16xf32>, memref<8x16xf32>) -> ()
// CHECK-NEXT: return
// CHECK: func.func private @f__nest0(%[[N2:.*]]: index, %[[A2:.*]]: memref<8x16xf32>, %[[B2:.*]]: memref<8x16xf32>)
// CHECK-SAME: attributes {llvm.bareptr, llvm.linkage = #llvm.linkage<internal>, passthrough = ["noinline"]}
// CHECK-DAG: %[[C0:.*]] = arith.constant 0 : index
// CHECK-DAG: %[[C1:.*]] = arith.constant 1 : index
// CHECK-DAG: %[[C16:.*]] = arith.constant 16 : index
// CHECK: scf.for %{{.*}} = %[[C0]] to %[[N2]] step %[[C1]]
// CHECK: scf.for %{{.*}} = %[[C0]] to %[[C16]] step %[[C1]]
// CHECK: memref.load %[[A2]]
// CHECK: memref.store %{{.*}}, %[[B2]]
// CHECK: return

// NONE-LABEL: func.func @f(
// NONE: scf.for
// NONE-NOT: call

// LLVMIR: define void @f(
// LLVMIR: call void @f__nest0(i64 %{{.*}}, ptr %{{.*}}, ptr %{{.*}})
// LLVMIR: define internal void @f__nest0({{.*}}) #[[ATTR:[0-9]+]]
// LLVMIR: attributes #[[ATTR]] = { noinline }
func.func @f(%a: memref<8x16xf32>, %b: memref<8x16xf32>, %n: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c16 = arith.constant 16 : index
  %two = arith.constant 2.0 : f32
  memref.store %two, %b[%c0, %c0] : memref<8x16xf32>
  scf.for %i = %c0 to %n step %c1 {
    scf.for %j = %c0 to %c16 step %c1 {
      %x = memref.load %a[%i, %j] : memref<8x16xf32>
      %y = arith.mulf %x, %two : f32
      memref.store %y, %b[%i, %j] : memref<8x16xf32>
    }
  }
  return
}

// -----

// A nest with results returns them; two nests of one function get two
// names.
// CHECK-LABEL: func.func @sum(
// CHECK: %[[S:.*]] = call @sum__nest0(%{{.*}}) : (memref<64xf32>) -> f32
// CHECK: %[[T:.*]] = call @sum__nest1(%[[S]], %{{.*}}) : (f32, memref<64xf32>) -> f32
// CHECK: return %[[T]] : f32
// CHECK: func.func private @sum__nest0(%{{.*}}: memref<64xf32>) -> f32
// CHECK: func.func private @sum__nest1(%[[INIT:.*]]: f32, %{{.*}}: memref<64xf32>) -> f32
// CHECK: %[[R:.*]] = scf.for {{.*}} iter_args(%{{.*}} = %[[INIT]]) -> (f32)
// CHECK: return %[[R]] : f32
func.func @sum(%a: memref<64xf32>) -> f32 {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c64 = arith.constant 64 : index
  %zero = arith.constant 0.0 : f32
  %s = scf.for %i = %c0 to %c64 step %c1 iter_args(%acc = %zero) -> (f32) {
    %x = memref.load %a[%i] : memref<64xf32>
    %y = arith.addf %acc, %x : f32
    %z = arith.mulf %y, %y : f32
    scf.yield %y : f32
  }
  %t = scf.for %i = %c0 to %c64 step %c1 iter_args(%acc = %s) -> (f32) {
    %x = memref.load %a[%i] : memref<64xf32>
    %y = arith.subf %acc, %x : f32
    %z = arith.mulf %y, %y : f32
    scf.yield %y : f32
  }
  return %t : f32
}

// -----

// Names that exist already are not reused; declarations are skipped.
// CHECK-LABEL: func.func @g(
// CHECK: call @g__nest0_0(
// CHECK: func.func private @g__nest0_0(
func.func private @ext(memref<4xf32>)
func.func private @g__nest0() {
  return
}
func.func @g(%a: memref<4xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  scf.for %i = %c0 to %c4 step %c1 {
    %x = memref.load %a[%i] : memref<4xf32>
    %y = arith.addf %x, %x : f32
    memref.store %y, %a[%i] : memref<4xf32>
  }
  return
}

// -----

// A parallel region is outlined whatever its size: LLVM's OpenMP
// translation makes it a function anyway, and as one here the identical
// regions of identical layers can be merged.
// CHECK-LABEL: func.func @tiny_parallel(
// CHECK: call @tiny_parallel__nest0(%{{.*}}) : (memref<4xf32>) -> ()
// CHECK: func.func private @tiny_parallel__nest0(
// CHECK: omp.parallel
// NONE-LABEL: func.func @tiny_parallel(
// NONE: call @tiny_parallel__nest0(
func.func @tiny_parallel(%a: memref<4xf32>) {
  omp.parallel {
    %c0 = arith.constant 0 : index
    %one = arith.constant 1.0 : f32
    memref.store %one, %a[%c0] : memref<4xf32>
    omp.terminator
  }
  return
}

// -----

// Buffers of dynamic shape, or freed inside, keep their descriptors.
// CHECK-LABEL: func.func private @dyn__nest0(
// CHECK-NOT: llvm.bareptr
// CHECK-SAME: {llvm.linkage
// CHECK-LABEL: func.func private @freed__nest0(
// CHECK-NOT: llvm.bareptr
// CHECK-SAME: {llvm.linkage
func.func @dyn(%a: memref<?xf32>, %n: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %one = arith.constant 1.0 : f32
  scf.for %i = %c0 to %n step %c1 {
    memref.store %one, %a[%i] : memref<?xf32>
    memref.store %one, %a[%i] : memref<?xf32>
    memref.store %one, %a[%i] : memref<?xf32>
  }
  return
}
func.func @freed(%a: memref<4xf32>, %n: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %one = arith.constant 1.0 : f32
  scf.for %i = %c0 to %n step %c1 {
    memref.store %one, %a[%c0] : memref<4xf32>
    memref.store %one, %a[%c1] : memref<4xf32>
    memref.dealloc %a : memref<4xf32>
  }
  return
}

// -----

// A constant that only says where to read (the index of a load, like the
// learning rate of parameter i at lrs[i]) is passed, not cloned: the nests
// of two equal-shaped parameters are then identical, and one is kept. The
// bounds stay constants.
// RATES-LABEL: func.func @rates(
// RATES: arith.constant 16 : index
// RATES-NEXT: %[[I0:.*]] = arith.constant 0 : index
// RATES-NEXT: call @rates__nest0(%{{.*}}, %[[I0]], %{{.*}})
// RATES: %[[I1:.*]] = arith.constant 1 : index
// RATES-NEXT: call @rates__nest0(%{{.*}}, %[[I1]], %{{.*}})
// RATES: func.func private @rates__nest0(%{{.*}}: memref<2xf32>, %[[AT:.*]]: index, %{{.*}}: memref<16xf32>)
// RATES-DAG: %[[B0:.*]] = arith.constant 0 : index
// RATES-DAG: %[[B1:.*]] = arith.constant 1 : index
// RATES: scf.for %{{.*}} = %[[B0]] to %{{.*}} step %[[B1]]
// RATES: memref.load %{{.*}}[%[[AT]]]
// RATES-NOT: func.func private @rates__nest1
func.func @rates(%lrs: memref<2xf32>, %p0: memref<16xf32>, %p1: memref<16xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c16 = arith.constant 16 : index
  scf.for %i = %c0 to %c16 step %c1 {
    %lr = memref.load %lrs[%c0] : memref<2xf32>
    %x = memref.load %p0[%i] : memref<16xf32>
    %y = arith.mulf %x, %lr : f32
    memref.store %y, %p0[%i] : memref<16xf32>
  }
  scf.for %i = %c0 to %c16 step %c1 {
    %lr = memref.load %lrs[%c1] : memref<2xf32>
    %x = memref.load %p1[%i] : memref<16xf32>
    %y = arith.mulf %x, %lr : f32
    memref.store %y, %p1[%i] : memref<16xf32>
  }
  return
}

// -----

// Private functions (the layers of qslaw-outline-layers) whose buffers all
// have static shapes and identity layouts take bare pointers too, unless
// they free an argument (a bare pointer is not the allocation). A public
// function keeps the descriptor convention (the C interface); when another
// function calls it, its body moves into a private function, which that
// caller calls with bare pointers.
// CHECK-LABEL: func.func @layer_caller(
// CHECK: call @public_layer__body(
// CHECK: func.func private @static_layer(%{{.*}}: memref<4xf32>, %{{.*}}: index) attributes {llvm.bareptr}
// CHECK: func.func private @dynamic_layer(%{{.*}}: memref<?xf32>)
// CHECK-NOT: llvm.bareptr
// CHECK: func.func private @freeing_layer(
// CHECK-NOT: llvm.bareptr
// CHECK: func.func @public_layer(%[[P:.*]]: memref<4xf32>) {
// CHECK-NEXT: call @public_layer__body(%[[P]])
// CHECK-NEXT: return
// CHECK: func.func private @public_layer__body(%{{.*}}: memref<4xf32>) attributes {llvm.bareptr, llvm.linkage = #llvm.linkage<internal>, passthrough = ["noinline"]}
func.func @layer_caller(%a: memref<4xf32>, %d: memref<?xf32>, %n: index) {
  call @static_layer(%a, %n) : (memref<4xf32>, index) -> ()
  call @dynamic_layer(%d) : (memref<?xf32>) -> ()
  call @freeing_layer(%a) : (memref<4xf32>) -> ()
  call @public_layer(%a) : (memref<4xf32>) -> ()
  return
}
func.func private @static_layer(%a: memref<4xf32>, %n: index) {
  %c0 = arith.constant 0 : index
  %x = memref.load %a[%n] : memref<4xf32>
  memref.store %x, %a[%c0] : memref<4xf32>
  return
}
func.func private @dynamic_layer(%a: memref<?xf32>) {
  %c0 = arith.constant 0 : index
  %x = memref.load %a[%c0] : memref<?xf32>
  memref.store %x, %a[%c0] : memref<?xf32>
  return
}
func.func private @freeing_layer(%a: memref<4xf32>) {
  %v = memref.cast %a : memref<4xf32> to memref<?xf32>
  memref.dealloc %v : memref<?xf32>
  return
}
func.func @public_layer(%a: memref<4xf32>) {
  %c0 = arith.constant 0 : index
  %x = memref.load %a[%c0] : memref<4xf32>
  memref.store %x, %a[%c0] : memref<4xf32>
  return
}
