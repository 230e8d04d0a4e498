// The graph stage qslaw-compile runs between import and lowering, as a
// registered pipeline: cleanup, then (quantize=true) weight quantisation,
// then (train=true) the training entries. test/E2E/driver-graph-stage.test
// checks it is the same stage the driver runs.
// RUN: qslaw-opt %s -qslaw-graph-pipeline | FileCheck %s --check-prefix=FLOAT
// RUN: qslaw-opt %s -qslaw-graph-pipeline="quantize=true bits=4 group-size=2" | FileCheck %s --check-prefix=QUANT
// RUN: qslaw-opt %s -qslaw-graph-pipeline="quantize=true bits=3 group-size=2 layers=.*k_proj.*" | FileCheck %s --check-prefix=NOMATCH
// RUN: qslaw-opt %s -qslaw-graph-pipeline="quantize=true bits=4 group-size=2 mode=gamma train=true train-params= loss=sum-squares" | FileCheck %s --check-prefix=TRAIN
// RUN: qslaw-opt %s -qslaw-graph-pipeline="quantize=true bits=4 group-size=2 mode=gamma train=true train-params=.* loss=sum-squares" | FileCheck %s --check-prefix=GAMMAPARAMS
// RUN: not qslaw-opt %s -qslaw-graph-pipeline="quantize=true bits=5" 2>&1 | FileCheck %s --check-prefix=BITS
// RUN: not qslaw-opt %s -qslaw-graph-pipeline="train=true loss=hinge" 2>&1 | FileCheck %s --check-prefix=LOSS
// RUN: not qslaw-opt %s -qslaw-graph-pipeline="group-size=x" 2>&1 | FileCheck %s --check-prefix=OPTION

// FLOAT-LABEL: func @forward
// FLOAT: linalg.matmul
// FLOAT-NOT: qslaw.qmatmul

// QUANT-LABEL: func @forward
// QUANT: qslaw.qmatmul %arg0, %{{.*}} scales(%{{.*}}) zeros(%{{.*}}) <bits = 4, group = 2, asym, mode = scale>
// QUANT-NOT: linalg.matmul

// NOMATCH-LABEL: func @forward
// NOMATCH: linalg.matmul
// NOMATCH-NOT: qslaw.qmatmul

// TRAIN-DAG: func.func @init_params
// TRAIN-DAG: func.func @grad_step
// TRAIN-DAG: func.func @train_step
// TRAIN-DAG: qslaw.qmatmul_grad_gamma

// A params regex that matches a gamma-mode layer's constants (W, its
// scales, gamma) trains gamma once, as gamma: W and s stay frozen (gamma
// was a second, same-named trainable, and W and s errors).
// GAMMAPARAMS-LABEL: func.func @init_params
// GAMMAPARAMS-SAME: qslaw.param_kinds = ["gamma"]
// GAMMAPARAMS-SAME: qslaw.params = ["model.layers.0.q_proj.weight.gamma"]

// BITS: error: qslaw-quantize-weights: bits must be 2, 3, 4 or 8, got 5
// LOSS: error: qslaw-make-train-step: unknown loss 'hinge' (expected next-token-ce or sum-squares)
// OPTION: {{.*}}group-size{{.*}}
func.func @forward(%x: tensor<3x4xf32>) -> tensor<3x2xf32> {
  %w = arith.constant {qslaw.name = "model.layers.0.q_proj.weight"} dense<[[0.0, -1.0], [1.0, -1.0], [2.0, 4.0], [3.0, -2.0]]> : tensor<4x2xf32>
  %cst = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<3x2xf32>
  %init = linalg.fill ins(%cst : f32) outs(%e : tensor<3x2xf32>) -> tensor<3x2xf32>
  %y = linalg.matmul ins(%x, %w : tensor<3x4xf32>, tensor<4x2xf32>) outs(%init : tensor<3x2xf32>) -> tensor<3x2xf32>
  return %y : tensor<3x2xf32>
}
