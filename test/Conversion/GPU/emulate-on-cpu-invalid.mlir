// RUN: qslaw-opt %s -qslaw-gpu-emulate-on-cpu -verify-diagnostics

func.func @barrier(%y: memref<32xf32>) {
  %c1 = arith.constant 1 : index
  %c32 = arith.constant 32 : index
  // expected-error@below {{'gpu.launch' op whose threads communicate cannot be emulated thread by thread}}
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %c1, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c32, %sy = %c1, %sz = %c1) {
    gpu.barrier
    gpu.terminator
  }
  return
}
