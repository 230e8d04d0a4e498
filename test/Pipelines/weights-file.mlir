// RUN: rm -f %t.cpu.weights %t.emu.weights
// RUN: qslaw-opt %s -qslaw-cpu-pipeline="weights-file=%t.cpu.weights weights-min-bytes=64" | FileCheck %s
// RUN: head -c 8 %t.cpu.weights | FileCheck %s --check-prefix=MAGIC
// RUN: qslaw-opt %s -qslaw-cuda-pipeline="emulate-on-cpu=true weights-file=%t.emu.weights weights-min-bytes=64" | FileCheck %s
// RUN: cmp %t.cpu.weights %t.emu.weights
// RUN: qslaw-opt %s -qslaw-cpu-pipeline="weights-file=%t.none.weights weights-min-bytes=100000" | FileCheck %s --check-prefix=NONE
// RUN: not ls %t.none.weights

// The pipelines' weights-file option: the 64-float table moves to the file
// (the same bytes from both pipelines), the code reads it through the base
// pointer; above the threshold nothing moves.
// CHECK: qslaw.external_weights = {data_bytes = 256 : i64
// CHECK: llvm.mlir.addressof @qslaw_weights_base
// CHECK: llvm.mlir.global external @qslaw_weights_base()
// MAGIC: QSLAWWTS
// NONE-NOT: qslaw_weights_base
// NONE: llvm.mlir.global private constant @__constant_64xf32
func.func @scale(%x: tensor<64xf32>) -> tensor<64xf32> {
  %w = arith.constant dense<[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0, 17.0, 18.0, 19.0, 20.0, 21.0, 22.0, 23.0, 24.0, 25.0, 26.0, 27.0, 28.0, 29.0, 30.0, 31.0, 32.0, 33.0, 34.0, 35.0, 36.0, 37.0, 38.0, 39.0, 40.0, 41.0, 42.0, 43.0, 44.0, 45.0, 46.0, 47.0, 48.0, 49.0, 50.0, 51.0, 52.0, 53.0, 54.0, 55.0, 56.0, 57.0, 58.0, 59.0, 60.0, 61.0, 62.0, 63.0]> : tensor<64xf32>
  %e = tensor.empty() : tensor<64xf32>
  %r = linalg.mul ins(%x, %w : tensor<64xf32>, tensor<64xf32>) outs(%e : tensor<64xf32>) -> tensor<64xf32>
  return %r : tensor<64xf32>
}
