// RUN: qslaw-opt %s -split-input-file -qslaw-gpu-map-parallel-loops | FileCheck %s
// RUN: qslaw-opt %s -split-input-file -qslaw-gpu-map-parallel-loops="block-size=64" | FileCheck %s --check-prefix=B64
// RUN: qslaw-opt %s -split-input-file -qslaw-gpu-map-parallel-loops -convert-parallel-loops-to-gpu | FileCheck %s --check-prefix=LAUNCH

// A 2-D loop: the innermost dimension is tiled by the block size (256) and
// goes to threadIdx.x / blockIdx.x, the outer one to blockIdx.y.
// CHECK-LABEL: func.func @two_d
// CHECK: %[[T:.*]] = arith.muli %c1, %c256
// CHECK: scf.parallel (%{{.*}}, %{{.*}}) = (%c0, %c0) to (%c3, %c1000) step (%{{.*}}, %[[T]])
// CHECK: scf.parallel (%{{.*}}, %{{.*}}) = (%{{.*}}, %{{.*}}) to (%{{.*}}, %[[T]])
// CHECK: scf.if
// CHECK: memref.store
// CHECK: } {mapping = [#gpu.loop_dim_map<processor = sequential, map = (d0) -> (d0), bound = (d0) -> (d0)>, #gpu.loop_dim_map<processor = thread_x
// CHECK: } {mapping = [#gpu.loop_dim_map<processor = block_y, map = (d0) -> (d0), bound = (d0) -> (d0)>, #gpu.loop_dim_map<processor = block_x
// B64-LABEL: func.func @two_d
// B64: arith.muli %c1, %c64
// LAUNCH-LABEL: func.func @two_d
// LAUNCH: gpu.launch blocks(%{{.*}}, %{{.*}}, %{{.*}}) in (%{{.*}} = %{{.*}}, %{{.*}} = %{{.*}}, %{{.*}} = %{{.*}}) threads(%{{.*}}, %{{.*}}, %{{.*}}) in (%{{.*}} = %[[TX:[a-z0-9_]+]],
// LAUNCH: gpu.terminator
func.func @two_d(%m: memref<3x1000xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c3 = arith.constant 3 : index
  %c1000 = arith.constant 1000 : index
  %f = arith.constant 1.0 : f32
  scf.parallel (%i, %j) = (%c0, %c0) to (%c3, %c1000) step (%c1, %c1) {
    memref.store %f, %m[%i, %j] : memref<3x1000xf32>
  }
  return
}

// -----

// A short innermost dimension gets fewer threads (a power of two, >= 32).
// CHECK-LABEL: func.func @short
// CHECK: %[[T:.*]] = arith.muli %c1, %c32
// CHECK: scf.parallel (%{{.*}}) = (%c0) to (%c20) step (%[[T]])
func.func @short(%m: memref<20xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c20 = arith.constant 20 : index
  %f = arith.constant 1.0 : f32
  scf.parallel (%i) = (%c0) to (%c20) step (%c1) {
    memref.store %f, %m[%i] : memref<20xf32>
  }
  return
}
