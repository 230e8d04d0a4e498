// RUN: qslaw-opt %s -split-input-file -qslaw-merge-identical-functions | FileCheck %s

// The loop nests of two identical layers: the second copy goes, its call
// names the first (locations do not count).
// CHECK-LABEL: func.func @layers(
// CHECK: call @layer__nest0(%arg0, %arg1)
// CHECK: call @layer__nest0(%arg1, %arg2)
// CHECK: call @layer__nest2(%arg2)
// CHECK: func.func private @layer__nest0(
// CHECK-NOT: func.func private @layer__nest1(
// CHECK: func.func private @layer__nest2(
func.func @layers(%a: memref<16xf32>, %b: memref<16xf32>, %c: memref<16xf32>) {
  call @layer__nest0(%a, %b) : (memref<16xf32>, memref<16xf32>) -> ()
  call @layer__nest1(%b, %c) : (memref<16xf32>, memref<16xf32>) -> ()
  call @layer__nest2(%c) : (memref<16xf32>) -> ()
  return
}
func.func private @layer__nest0(%x: memref<16xf32>, %y: memref<16xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c16 = arith.constant 16 : index
  scf.for %i = %c0 to %c16 step %c1 {
    %v = memref.load %x[%i] : memref<16xf32>
    %w = arith.mulf %v, %v : f32
    memref.store %w, %y[%i] : memref<16xf32>
  }
  return
} loc("layers.0")
func.func private @layer__nest1(%x: memref<16xf32>, %y: memref<16xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c16 = arith.constant 16 : index
  scf.for %i = %c0 to %c16 step %c1 {
    %v = memref.load %x[%i] : memref<16xf32>
    %w = arith.mulf %v, %v : f32
    memref.store %w, %y[%i] : memref<16xf32>
  }
  return
} loc("layers.1")
// Same ops, another constant: kept.
func.func private @layer__nest2(%x: memref<16xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  %two = arith.constant 2.0 : f32
  scf.for %i = %c0 to %c8 step %c1 {
    memref.store %two, %x[%i] : memref<16xf32>
  }
  return
}

// -----

// Not merged: public functions (entry points), declarations, functions
// whose attributes differ, bodies that differ in an operand's order.
// CHECK-LABEL: func.func @entry_a(
// CHECK-LABEL: func.func @entry_b(
// CHECK-LABEL: func.func private @decl_a(
// CHECK-LABEL: func.func private @decl_b(
// CHECK-LABEL: func.func private @inl(
// CHECK-LABEL: func.func private @noinl(
// CHECK-SAME: passthrough = ["noinline"]
// CHECK-LABEL: func.func private @sub_xy(
// CHECK-LABEL: func.func private @sub_yx(
// CHECK: call @sub_xy(
// CHECK: call @sub_yx(
func.func @entry_a(%x: f32) -> f32 {
  %y = arith.addf %x, %x : f32
  return %y : f32
}
func.func @entry_b(%x: f32) -> f32 {
  %y = arith.addf %x, %x : f32
  return %y : f32
}
func.func private @decl_a(f32) -> f32
func.func private @decl_b(f32) -> f32
func.func private @inl(%x: f32) -> f32 {
  %y = arith.addf %x, %x : f32
  return %y : f32
}
func.func private @noinl(%x: f32) -> f32 attributes {passthrough = ["noinline"]} {
  %y = arith.addf %x, %x : f32
  return %y : f32
}
func.func private @sub_xy(%x: f32, %y: f32) -> f32 {
  %z = arith.subf %x, %y : f32
  return %z : f32
}
func.func private @sub_yx(%x: f32, %y: f32) -> f32 {
  %z = arith.subf %y, %x : f32
  return %z : f32
}
func.func @uses(%x: f32) -> f32 {
  %a = call @sub_xy(%x, %x) : (f32, f32) -> f32
  %b = call @sub_yx(%a, %x) : (f32, f32) -> f32
  %c = call @inl(%b) : (f32) -> f32
  %d = call @noinl(%c) : (f32) -> f32
  %e = call @decl_a(%d) : (f32) -> f32
  %f = call @decl_b(%e) : (f32) -> f32
  return %f : f32
}
