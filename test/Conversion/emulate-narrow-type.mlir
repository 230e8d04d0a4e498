// RUN: qslaw-opt %s -qslaw-emulate-narrow-type -canonicalize | FileCheck %s

// i4 memrefs become linearised byte memrefs; a load is a byte load, a shift
// by 4 * (index % 2) (low nibble first) and a truncation.
// CHECK-DAG: #[[BYTE:.*]] = affine_map<()[s0, s1] -> (s0 * 3 + s1 floordiv 2)>
// CHECK-DAG: #[[SHIFT:.*]] = affine_map<()[s0] -> (s0 * 4 - (s0 floordiv 2) * 8)>
// CHECK-LABEL: func @load
// CHECK-SAME: (%[[M:.*]]: memref<12xi8>, %[[I:.*]]: index, %[[J:.*]]: index) -> i4
// CHECK: %[[B:.*]] = affine.apply #[[BYTE]]()[%[[I]], %[[J]]]
// CHECK: %[[V:.*]] = memref.load %[[M]][%[[B]]] : memref<12xi8>
// CHECK: %[[S:.*]] = affine.apply #[[SHIFT]]()[%[[J]]]
// CHECK: %[[SI:.*]] = arith.index_cast %[[S]] : index to i8
// CHECK: %[[SH:.*]] = arith.shrsi %[[V]], %[[SI]] : i8
// CHECK: %[[R:.*]] = arith.trunci %[[SH]] : i8 to i4
// CHECK: return %[[R]]
func.func @load(%m: memref<4x6xi4>, %i: index, %j: index) -> i4 {
  %v = memref.load %m[%i, %j] : memref<4x6xi4>
  return %v : i4
}

// Constant codes are packed at compile time: [1,2,3,4,5,15] -> bytes
// 0x21, 0x43, 0xF5 (33, 67, -11 as i8).
// CHECK: memref.global "private" constant @codes : memref<3xi8> = dense<[33, 67, -11]>
// CHECK-LABEL: func @global() -> memref<3xi8>
// CHECK: memref.get_global @codes : memref<3xi8>
memref.global "private" constant @codes : memref<2x3xi4> = dense<[[1, 2, 3], [4, 5, 15]]>
func.func @global() -> memref<2x3xi4> {
  %g = memref.get_global @codes : memref<2x3xi4>
  return %g : memref<2x3xi4>
}

// Four 2-bit codes a byte, the first in the low bits, a short last byte:
// [1, -2, -1, 0, 1] -> 1 | 2 << 2 | 3 << 4 | 0 << 6 = 57, then 1.
// CHECK: memref.global "private" constant @codes2 : memref<2xi8> = dense<[57, 1]>
memref.global "private" constant @codes2 : memref<5xi2> = dense<[1, -2, -1, 0, 1]>
func.func @global2() -> memref<5xi2> {
  %g = memref.get_global @codes2 : memref<5xi2>
  return %g : memref<5xi2>
}

// 3 bits do not divide a byte: one code per byte, memref unchanged.
// CHECK-LABEL: func @i3_untouched
// CHECK-SAME: memref<4x6xi3>
// CHECK: memref.load %{{.*}} : memref<4x6xi3>
func.func @i3_untouched(%m: memref<4x6xi3>, %i: index) -> i3 {
  %v = memref.load %m[%i, %i] : memref<4x6xi3>
  return %v : i3
}

// Signatures, casts and calls follow the packed type.
// CHECK: func.func private @ext(memref<?xi8>)
// CHECK-LABEL: func @cast_and_call
// CHECK-SAME: (%[[A:.*]]: memref<16xi8>)
// CHECK: %[[C:.*]] = memref.cast %[[A]] : memref<16xi8> to memref<?xi8>
// CHECK: call @ext(%[[C]]) : (memref<?xi8>) -> ()
func.func private @ext(memref<?x?xi2>)
func.func @cast_and_call(%m: memref<8x8xi2>) {
  %c = memref.cast %m : memref<8x8xi2> to memref<?x?xi2>
  call @ext(%c) : (memref<?x?xi2>) -> ()
  return
}
