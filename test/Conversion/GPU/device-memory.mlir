// RUN: qslaw-opt %s -split-input-file -qslaw-gpu-device-memory | FileCheck %s

// Host allocations become device allocations; a host-level rank-0 read and
// write (no parallel loop to map) runs in a one-thread kernel.
// CHECK-LABEL: func.func @host_scalar
// CHECK: %[[B:.*]] = gpu.alloc () : memref<f32>
// CHECK: gpu.launch blocks(%{{.*}}, %{{.*}}, %{{.*}}) in (%{{.*}} = %[[ONE:.*]], %{{.*}} = %[[ONE]], %{{.*}} = %[[ONE]]) threads(%{{.*}}, %{{.*}}, %{{.*}}) in (%{{.*}} = %[[ONE]], %{{.*}} = %[[ONE]], %{{.*}} = %[[ONE]])
// CHECK-NEXT: memref.load %arg0[]
// CHECK-NEXT: arith.mulf
// CHECK-NEXT: memref.store %{{.*}}, %[[B]][]
// CHECK-NEXT: memref.load %[[B]][]
// CHECK-NEXT: memref.store %{{.*}}, %arg1[]
// CHECK-NEXT: gpu.terminator
// CHECK: gpu.dealloc %[[B]] : memref<f32>
// CHECK-NOT: memref.alloc
func.func @host_scalar(%x: memref<f32>, %y: memref<f32>) {
  %b = memref.alloc() : memref<f32>
  %v = memref.load %x[] : memref<f32>
  %w = arith.mulf %v, %v : f32
  memref.store %w, %b[] : memref<f32>
  %u = memref.load %b[] : memref<f32>
  memref.store %u, %y[] : memref<f32>
  memref.dealloc %b : memref<f32>
  return
}

// -----

// A constant global stays a get_global (device memory from here on, made
// resident by qslaw-gpu-resident-constants): no per-call copy; reading it
// runs in a kernel.
// CHECK-LABEL: func.func @global
// CHECK: %[[G:.*]] = memref.get_global @table
// CHECK-NOT: gpu.alloc
// CHECK-NOT: gpu.memcpy
// CHECK: gpu.launch
// CHECK: memref.load %[[G]]
// CHECK-NOT: gpu.dealloc
// CHECK: return
memref.global "private" constant @table : memref<4xf32> = dense<[1.0, 2.0, 3.0, 4.0]>
func.func @global(%y: memref<f32>) {
  %g = memref.get_global @table : memref<4xf32>
  %c2 = arith.constant 2 : index
  %v = memref.load %g[%c2] : memref<4xf32>
  memref.store %v, %y[] : memref<f32>
  return
}

// -----

// A scalar read on the host from a read-only input and passed to a kernel
// (AdamW's bias correction from `step`) is recomputed inside the kernel.
// CHECK-LABEL: func.func @sunk
// CHECK-NOT: memref.load
// CHECK: gpu.launch
// CHECK-NEXT: %[[S:.*]] = memref.load %arg0[]
// CHECK-NEXT: %[[P:.*]] = math.powf %{{.*}}, %[[S]]
// CHECK: arith.mulf %{{.*}}, %[[P]]
func.func @sunk(%step: memref<f32>, %x: memref<256xf32>) {
  %s = memref.load %step[] : memref<f32>
  %beta = arith.constant 0.9 : f32
  %p = math.powf %beta, %s : f32
  %c1 = arith.constant 1 : index
  %c256 = arith.constant 256 : index
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %c1, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c256, %sy = %c1, %sz = %c1) {
    %v = memref.load %x[%tx] : memref<256xf32>
    %w = arith.mulf %v, %p : f32
    memref.store %w, %x[%tx] : memref<256xf32>
    gpu.terminator
  }
  return
}

// -----

// A scalar read from a constant global is recomputed inside the kernel too.
// CHECK-LABEL: func.func @sunk_global
// CHECK: %[[G:.*]] = memref.get_global @scale
// CHECK-NOT: memref.load
// CHECK: gpu.launch
// CHECK-NEXT: %[[S:.*]] = memref.load %[[G]][]
// CHECK: arith.mulf %{{.*}}, %[[S]]
memref.global "private" constant @scale : memref<f32> = dense<0.5>
func.func @sunk_global(%x: memref<256xf32>) {
  %g = memref.get_global @scale : memref<f32>
  %s = memref.load %g[] : memref<f32>
  %c1 = arith.constant 1 : index
  %c256 = arith.constant 256 : index
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %c1, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c256, %sy = %c1, %sz = %c1) {
    %v = memref.load %x[%tx] : memref<256xf32>
    %w = arith.mulf %v, %s : f32
    memref.store %w, %x[%tx] : memref<256xf32>
    gpu.terminator
  }
  return
}
