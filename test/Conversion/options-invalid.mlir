// RUN: not qslaw-opt %s -qslaw-tile-and-vectorize="tile-size=-1" 2>&1 | FileCheck %s --check-prefix=TILE
// RUN: not qslaw-opt %s -qslaw-lower-to-ukernels="num-threads=-1" 2>&1 | FileCheck %s --check-prefix=THREADS
// RUN: not qslaw-opt %s -qslaw-cpu-pipeline="ukernel-threads=-1" 2>&1 | FileCheck %s --check-prefix=THREADS
// RUN: not qslaw-opt %s -qslaw-lower-contractions-to-library="min-flops=-1" 2>&1 | FileCheck %s --check-prefix=FLOPS
// RUN: not qslaw-opt %s -qslaw-lower-contractions-to-library="num-threads=-2" 2>&1 | FileCheck %s --check-prefix=GEMMTHREADS
// RUN: not qslaw-opt %s -qslaw-cpu-pipeline="no-such-option=1" 2>&1 | FileCheck %s --check-prefix=UNKNOWN
// RUN: not qslaw-opt %s -qslaw-bool-tensors-as-bytes="no-such-option=1" 2>&1 | FileCheck %s --check-prefix=UNKNOWN
// RUN: not qslaw-opt %s -qslaw-lower-to-ukernels="target=tpu" 2>&1 | FileCheck %s --check-prefix=TARGET
// RUN: not qslaw-opt %s -qslaw-lower-to-ukernels="target=cuda dtype=fp8" 2>&1 | FileCheck %s --check-prefix=DTYPE
// RUN: not qslaw-opt %s -qslaw-cuda-to-gpu="hand-kernels=fp8" 2>&1 | FileCheck %s --check-prefix=DTYPE
// RUN: not qslaw-opt %s -qslaw-memref-copy-to-linalg="row-vectors=1 parallel-min-elems=-1" 2>&1 | FileCheck %s --check-prefix=COPYPAR

// TILE: error: qslaw-tile-and-vectorize: tile-size must be >= 0 (0 disables tiling), got -1
// THREADS: error: qslaw-lower-to-ukernels: num-threads must be >= 0 (0: QSLAW_NUM_THREADS or all cores at run time), got -1
// FLOPS: error: qslaw-lower-contractions-to-library: min-flops must be >= 0, got -1
// GEMMTHREADS: error: qslaw-lower-contractions-to-library: num-threads must be >= 0 (0: QSLAW_NUM_THREADS or all cores at run time), got -2
// UNKNOWN: no-such-option
// TARGET: error: qslaw-lower-to-ukernels: target must be cpu or cuda, got 'tpu'
// DTYPE: error: qslaw-lower-to-ukernels: dtype must be bf16 or f16, got 'fp8'
// COPYPAR: error: qslaw-memref-copy-to-linalg: parallel-min-elems must be >= 0 (0: never parallel), got -1

func.func @f(%x: tensor<3x64xf32>, %q: tensor<8x64xi4>, %s: tensor<8x2xf32>) -> tensor<3x8xf32> {
  %y = qslaw.qmatmul %x, %q scales(%s) <bits = 4, group = 32, sym> : (tensor<3x64xf32>, tensor<8x64xi4>, tensor<8x2xf32>) -> tensor<3x8xf32>
  return %y : tensor<3x8xf32>
}
