// RUN: not qslaw-opt %s -qslaw-outline-loop-nests="min-ops=0" 2>&1 | FileCheck %s
// CHECK: error: qslaw-outline-loop-nests: min-ops must be >= 1, got 0
func.func @f() {
  return
}
