// RUN: qslaw-opt %s -split-input-file -qslaw-gpu-resident-constants | FileCheck %s
// RUN: qslaw-opt %s -split-input-file -qslaw-gpu-resident-constants -finalize-memref-to-llvm -convert-arith-to-llvm -convert-func-to-llvm -reconcile-unrealized-casts | FileCheck %s --check-prefix=LLVM

// Each constant global read by host code gets one slot (shared by every
// function that reads it); each read asks the runtime for the device copy,
// made once, and uses it in place of the host buffer. The library's
// destructor releases the slots.
// CHECK-LABEL: func.func @forward
// CHECK: %[[G:.*]] = memref.get_global @w : memref<4x8xf32>
// CHECK: %[[P:.*]] = memref.extract_aligned_pointer_as_index %[[G]]
// CHECK: %[[H:.*]] = llvm.inttoptr
// CHECK: %[[S:.*]] = llvm.mlir.addressof @__qslaw_resident.w
// CHECK: %[[N:.*]] = llvm.mlir.constant(128 : i64)
// CHECK: %[[D:.*]] = llvm.call @qslaw_cuda_resident_constant(%[[S]], %[[H]], %[[N]])
// CHECK: %[[M:.*]] = builtin.unrealized_conversion_cast %{{.*}} : !llvm.struct<(ptr, ptr, i64, array<2 x i64>, array<2 x i64>)> to memref<4x8xf32>
// CHECK: call @consume(%[[M]])
// CHECK: memref.get_global @codes : memref<16xi8>
// CHECK: llvm.mlir.constant(16 : i64)
// CHECK-LABEL: func.func @backward
// CHECK: llvm.mlir.addressof @__qslaw_resident.w
// CHECK-DAG: llvm.mlir.global internal @__qslaw_resident.w() {{.*}}: !llvm.ptr
// CHECK-DAG: llvm.mlir.global internal @__qslaw_resident.codes() {{.*}}: !llvm.ptr
// CHECK-LABEL: llvm.func internal @__qslaw_release_resident_constants()
// CHECK-DAG: llvm.call @qslaw_cuda_release_resident_constant
// CHECK: llvm.mlir.global_dtors dtors = [@__qslaw_release_resident_constants]

// After the host lowering the descriptor is the device pointer's.
// LLVM-LABEL: llvm.func @forward
// LLVM: %[[D:.*]] = llvm.call @qslaw_cuda_resident_constant
// LLVM: llvm.insertvalue %[[D]], %{{.*}}[0]
// LLVM: llvm.insertvalue %[[D]], %{{.*}}[1]
memref.global "private" constant @w : memref<4x8xf32> = dense<1.0>
memref.global "private" constant @codes : memref<16xi8> = dense<7>
func.func private @consume(memref<4x8xf32>)
func.func private @consume_codes(memref<16xi8>)
func.func @forward() {
  %w = memref.get_global @w : memref<4x8xf32>
  func.call @consume(%w) : (memref<4x8xf32>) -> ()
  %c = memref.get_global @codes : memref<16xi8>
  func.call @consume_codes(%c) : (memref<16xi8>) -> ()
  return
}
func.func @backward() {
  %w = memref.get_global @w : memref<4x8xf32>
  func.call @consume(%w) : (memref<4x8xf32>) -> ()
  return
}

// -----

// Nothing to keep: the module is unchanged (no destructor).
// CHECK-LABEL: func.func @no_globals
// CHECK-NOT: llvm.mlir.global_dtors
func.func @no_globals() {
  return
}
