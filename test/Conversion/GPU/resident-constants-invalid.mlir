// RUN: qslaw-opt %s -split-input-file -qslaw-gpu-resident-constants -verify-diagnostics

// A mutable global: host writes would have to be mirrored on the device.
memref.global "private" @counter : memref<4xf32> = dense<0.0>
func.func @mutable() {
  // expected-error@below {{'memref.get_global' op reads global 'counter', which is not an initialised constant with a static shape and the identity layout; a GPU function can keep only those on the device}}
  %g = memref.get_global @counter : memref<4xf32>
  return
}

// -----

// An external constant (no data to upload).
memref.global "private" constant @ext : memref<4xf32>
func.func @external() {
  // expected-error@below {{reads global 'ext', which is not an initialised constant}}
  %g = memref.get_global @ext : memref<4xf32>
  return
}
