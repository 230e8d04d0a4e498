// RUN: qslaw-opt %s -split-input-file -qslaw-gpu-device-memory -verify-diagnostics

func.func @stack(%y: memref<f32>) {
  // expected-error@below {{'memref.alloca' op on the host of a GPU function: stack buffers cannot hold device data}}
  %b = memref.alloca() : memref<f32>
  return
}

// -----

// A value read from device memory that host code needs (a loop bound).
func.func @bound(%n: memref<index>, %y: memref<16xf32>) {
  // expected-error@below {{'memref.load' op computes a value from device memory that host code needs (used by 'scf.for'); it cannot run on the host of a GPU function}}
  %ub = memref.load %n[] : memref<index>
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  scf.for %i = %c0 to %ub step %c1 {
    func.call @host_only() : () -> ()
  }
  return
}
func.func private @host_only()
