// RUN: rm -f %t.weights
// RUN: qslaw-opt %s -qslaw-external-weights="file=%t.weights min-bytes=16" | FileCheck %s
// RUN: od -An -tx1 -v -j 4096 %t.weights | FileCheck %s --check-prefix=DATA
// RUN: head -c 8 %t.weights | FileCheck %s --check-prefix=MAGIC
// With background=true the file is written on a thread of its own (a tool
// that never waits for it, like qslaw-opt, waits at exit): the same module,
// the same bytes.
// RUN: rm -f %t.bg.weights
// RUN: qslaw-opt %s -qslaw-external-weights="file=%t.bg.weights min-bytes=16 background=true" | sed 's/bg[.]weights/weights/' | FileCheck %s
// RUN: cmp %t.weights %t.bg.weights
// RUN: qslaw-opt %s -qslaw-external-weights="file=%t.none min-bytes=100000" | FileCheck %s --check-prefix=NONE
// RUN: not ls %t.none

// Constants of at least min-bytes move to the file (first-use order, 64-byte
// aligned offsets); their reads become qslaw_weights_base + offset in a
// memref descriptor. Small, mutable and i1 globals stay.

// CHECK: module attributes {qslaw.external_weights = {data_bytes = 148 : i64, file = "{{.*}}.weights", tensors = 3 : i64, xxh3 = "{{[0-9a-f]+}}"}}
// CHECK-NOT: memref.global "private" constant @codes
// CHECK-NOT: memref.global "private" constant @scales
// CHECK-NOT: memref.global "private" constant @ones
// CHECK-DAG: memref.global "private" constant @small : memref<2xf32> = dense<[1.000000e+00, 2.000000e+00]>
// CHECK-DAG: memref.global "private" @state : memref<8xf32>
// CHECK-DAG: memref.global "private" constant @mask : memref<32xi1>

memref.global "private" constant @codes : memref<2x8xi8> = dense<[[1, 2, 3, 4, 5, 6, 7, 8], [9, 10, 11, 12, 13, 14, 15, -1]]>
memref.global "private" constant @scales : memref<4xf32> = dense<[1.0, 2.0, -0.5, 0.25]>
memref.global "private" constant @ones : memref<5xi32> = dense<7>
memref.global "private" constant @small : memref<2xf32> = dense<[1.0, 2.0]>
memref.global "private" @state : memref<8xf32> = dense<0.0>
memref.global "private" constant @mask : memref<32xi1> = dense<true>

// CHECK-LABEL: func.func @reads
// CHECK: %[[A:.*]] = llvm.mlir.addressof @qslaw_weights_base
// CHECK: %[[B:.*]] = llvm.load %[[A]] : !llvm.ptr -> !llvm.ptr
// The offset is an i64 value: a GEP's constant indices are narrower, and
// offsets past 2^28 bytes wrapped to negative ones (a >256 MiB weights
// file read before its mapping).
// CHECK: %[[O0:.*]] = llvm.mlir.constant(0 : i64) : i64
// CHECK: llvm.getelementptr inbounds %[[B]][%[[O0]]] : (!llvm.ptr, i64) -> !llvm.ptr, i8
// CHECK: builtin.unrealized_conversion_cast %{{.*}} : !llvm.struct<(ptr, ptr, i64, array<2 x i64>, array<2 x i64>)> to memref<2x8xi8>
// CHECK: %[[O64:.*]] = llvm.mlir.constant(64 : i64) : i64
// CHECK: llvm.getelementptr inbounds %{{.*}}[%[[O64]]] : (!llvm.ptr, i64) -> !llvm.ptr, i8
// CHECK: to memref<4xf32>
// CHECK: %[[O128:.*]] = llvm.mlir.constant(128 : i64) : i64
// CHECK: llvm.getelementptr inbounds %{{.*}}[%[[O128]]] : (!llvm.ptr, i64) -> !llvm.ptr, i8
// CHECK: to memref<5xi32>
// CHECK: memref.get_global @small
// CHECK: memref.get_global @state
// CHECK: memref.get_global @mask
func.func @reads() -> (i8, f32, i32, f32, f32, i1) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %0 = memref.get_global @codes : memref<2x8xi8>
  %1 = memref.load %0[%c1, %c1] : memref<2x8xi8>
  %2 = memref.get_global @scales : memref<4xf32>
  %3 = memref.load %2[%c1] : memref<4xf32>
  %4 = memref.get_global @ones : memref<5xi32>
  %5 = memref.load %4[%c1] : memref<5xi32>
  %6 = memref.get_global @small : memref<2xf32>
  %7 = memref.load %6[%c1] : memref<2xf32>
  %8 = memref.get_global @state : memref<8xf32>
  %9 = memref.load %8[%c1] : memref<8xf32>
  %10 = memref.get_global @mask : memref<32xi1>
  %11 = memref.load %10[%c1] : memref<32xi1>
  return %1, %3, %5, %7, %9, %11 : i8, f32, i32, f32, f32, i1
}

// A second read of @codes reuses its offset. The base pointer is exported,
// null until the runtime maps the file.
// CHECK-LABEL: func.func @again
// CHECK: llvm.getelementptr inbounds %{{.*}}[%{{.*}}] : (!llvm.ptr, i64) -> !llvm.ptr, i8
// CHECK: llvm.mlir.global external @qslaw_weights_base() {{.*}} : !llvm.ptr {
// CHECK-NEXT: llvm.mlir.zero : !llvm.ptr
func.func @again() -> i8 {
  %c0 = arith.constant 0 : index
  %0 = memref.get_global @codes : memref<2x8xi8>
  %1 = memref.load %0[%c0, %c0] : memref<2x8xi8>
  return %1 : i8
}

// The data: @codes at 0, @scales (1.0, 2.0, -0.5, 0.25) at 64, the splat
// @ones expanded at 128.
// DATA: 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f ff
// DATA-NEXT: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
// DATA-NEXT: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
// DATA-NEXT: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
// DATA-NEXT: 00 00 80 3f 00 00 00 40 00 00 00 bf 00 00 80 3e
// DATA-NEXT: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
// DATA-NEXT: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
// DATA-NEXT: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
// DATA-NEXT: 07 00 00 00 07 00 00 00 07 00 00 00 07 00 00 00
// DATA-NEXT: 07 00 00 00
// DATA-EMPTY:

// MAGIC: QSLAWWTS

// Nothing large enough: no file, no base pointer, the record says 0.
// NONE: qslaw.external_weights = {data_bytes = 0 : i64, file = "{{.*}}", tensors = 0 : i64, xxh3 = ""}
// NONE-NOT: qslaw_weights_base
// NONE: memref.get_global @codes
