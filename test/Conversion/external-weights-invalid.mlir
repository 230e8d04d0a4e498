// RUN: qslaw-opt %s -verify-diagnostics -qslaw-external-weights="min-bytes=1"
// RUN: not qslaw-opt %s -qslaw-external-weights="file=%t.w min-bytes=-3" 2>&1 | FileCheck %s --check-prefix=NEG
// RUN: not ls %t.w
// RUN: not qslaw-opt %s -qslaw-external-weights="file=%t-no-such-dir/w.weights min-bytes=1" 2>&1 | FileCheck %s --check-prefix=IO
// RUN: qslaw-opt %s -qslaw-external-weights="file=%t.once min-bytes=1" | not qslaw-opt -qslaw-external-weights="file=%t.twice min-bytes=1" 2>&1 | FileCheck %s --check-prefix=TWICE

// expected-error @below {{qslaw-external-weights: the 'file' option is required (the weights file to write)}}
module {
  memref.global "private" constant @w : memref<4xf32> = dense<1.0>
  func.func @f() -> memref<4xf32> {
    %0 = memref.get_global @w : memref<4xf32>
    return %0 : memref<4xf32>
  }
}

// NEG: min-bytes must be >= 0, not -3

// IO: qslaw-external-weights: {{.*}}-no-such-dir/w.weights: cannot write: No such file or directory

// TWICE: the module already defines 'qslaw_weights_base' (run the pass once)
