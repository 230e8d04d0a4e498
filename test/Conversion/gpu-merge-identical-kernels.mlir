// RUN: qslaw-opt %s -split-input-file -qslaw-gpu-merge-identical-kernels | FileCheck %s

// Outlining gave each launch its own module. @m0 and @m2 hold the same
// kernel under other names: @m2 goes and its launch uses @m0's kernel. @m1
// (another constant) and @m3 (another kernel attribute: its block size)
// are different and stay; @m4 is referenced other than by a launch and
// stays too, though identical to @m0.
// CHECK: gpu.module @m0
// CHECK: gpu.module @m1
// CHECK-NOT: gpu.module @m2
// CHECK: gpu.module @m3
// CHECK: gpu.module @m4
// CHECK-LABEL: func.func @host
// CHECK: gpu.launch_func  @m0::@k0
// CHECK: gpu.launch_func  @m1::@k1
// CHECK: gpu.launch_func  @m0::@k0
// CHECK: gpu.launch_func  @m3::@k3
// CHECK: gpu.launch_func  @m4::@k4
module attributes {gpu.container_module, test.keep = @m4} {
  gpu.module @m0 {
    gpu.func @k0(%a: memref<4xf32>) kernel {
      %i = gpu.thread_id x
      %c = arith.constant 2.0 : f32
      memref.store %c, %a[%i] : memref<4xf32>
      gpu.return
    }
  }
  gpu.module @m1 {
    gpu.func @k1(%a: memref<4xf32>) kernel {
      %i = gpu.thread_id x
      %c = arith.constant 3.0 : f32
      memref.store %c, %a[%i] : memref<4xf32>
      gpu.return
    }
  }
  gpu.module @m2 {
    gpu.func @k2(%a: memref<4xf32>) kernel {
      %i = gpu.thread_id x
      %c = arith.constant 2.0 : f32
      memref.store %c, %a[%i] : memref<4xf32>
      gpu.return
    }
  }
  gpu.module @m3 {
    gpu.func @k3(%a: memref<4xf32>) kernel attributes {known_block_size = array<i32: 4, 1, 1>} {
      %i = gpu.thread_id x
      %c = arith.constant 2.0 : f32
      memref.store %c, %a[%i] : memref<4xf32>
      gpu.return
    }
  }
  gpu.module @m4 {
    gpu.func @k4(%a: memref<4xf32>) kernel {
      %i = gpu.thread_id x
      %c = arith.constant 2.0 : f32
      memref.store %c, %a[%i] : memref<4xf32>
      gpu.return
    }
  }
  func.func @host(%a: memref<4xf32>) {
    %c1 = arith.constant 1 : index
    %c4 = arith.constant 4 : index
    gpu.launch_func @m0::@k0 blocks in (%c1, %c1, %c1) threads in (%c4, %c1, %c1) args(%a : memref<4xf32>)
    gpu.launch_func @m1::@k1 blocks in (%c1, %c1, %c1) threads in (%c4, %c1, %c1) args(%a : memref<4xf32>)
    gpu.launch_func @m2::@k2 blocks in (%c1, %c1, %c1) threads in (%c4, %c1, %c1) args(%a : memref<4xf32>)
    gpu.launch_func @m3::@k3 blocks in (%c1, %c1, %c1) threads in (%c4, %c1, %c1) args(%a : memref<4xf32>)
    gpu.launch_func @m4::@k4 blocks in (%c1, %c1, %c1) threads in (%c4, %c1, %c1) args(%a : memref<4xf32>)
    return
  }
}

// -----

// A module with two kernels is not what outlining makes: left alone, as
// is its twin.
// CHECK-LABEL: func.func @two_kernels
// CHECK: gpu.launch_func  @t0::@a
// CHECK: gpu.launch_func  @t1::@a
module attributes {gpu.container_module} {
  gpu.module @t0 {
    gpu.func @a() kernel { gpu.return }
    gpu.func @b() kernel { gpu.return }
  }
  gpu.module @t1 {
    gpu.func @a() kernel { gpu.return }
    gpu.func @b() kernel { gpu.return }
  }
  func.func @two_kernels() {
    %c1 = arith.constant 1 : index
    gpu.launch_func @t0::@a blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1)
    gpu.launch_func @t1::@a blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1)
    return
  }
}
