// RUN: not qslaw-opt %s -qslaw-outline-layers="min-ops=0" 2>&1 | FileCheck %s
// CHECK: error: qslaw-outline-layers: min-ops must be >= 1, got 0
func.func @f() {
  return
}

// RUN: not qslaw-opt %s -qslaw-outline-layers="max-gap=-1" 2>&1 | FileCheck %s --check-prefix=GAP
// GAP: error: qslaw-outline-layers: max-gap must be >= 0, got -1
