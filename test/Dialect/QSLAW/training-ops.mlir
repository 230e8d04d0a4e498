// RUN: qslaw-opt %s -split-input-file | qslaw-opt -split-input-file | FileCheck %s
// RUN: qslaw-opt %s -split-input-file -qslaw-lower-to-linalg | FileCheck %s --check-prefix=LOWER

// CHECK-LABEL: func @loss
// CHECK: qslaw.cross_entropy %{{.*}}, %{{.*}} : (tensor<2x5x11xf32>, tensor<2x5xi64>) -> tensor<f32>
// CHECK: qslaw.cross_entropy_grad %{{.*}}, %{{.*}}, %{{.*}} {ignore_index = -1 : i64} : (tensor<2x5x11xf32>, tensor<2x5xi64>, tensor<f32>) -> tensor<2x5x11xf32>
// LOWER-LABEL: func @loss
// LOWER-NOT: qslaw.
// LOWER: math.exp
// LOWER: tensor.extract
// LOWER: math.log
func.func @loss(%x: tensor<2x5x11xf32>, %y: tensor<2x5xi64>, %d: tensor<f32>) -> (tensor<f32>, tensor<2x5x11xf32>) {
  %l = qslaw.cross_entropy %x, %y : (tensor<2x5x11xf32>, tensor<2x5xi64>) -> tensor<f32>
  %g = qslaw.cross_entropy_grad %x, %y, %d {ignore_index = -1} : (tensor<2x5x11xf32>, tensor<2x5xi64>, tensor<f32>) -> tensor<2x5x11xf32>
  return %l, %g : tensor<f32>, tensor<2x5x11xf32>
}

// -----

// CHECK-LABEL: func @opt
// CHECK: qslaw.adamw %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} lr(%{{.*}}) step(%{{.*}}) {weight_decay = 1.000000e-01 : f32}
// Bias corrections 1 - beta^t once per step, outside the elementwise update.
// LOWER-LABEL: func @opt
// LOWER: %[[T:.*]] = tensor.extract %{{.*}}[] : tensor<f32>
// LOWER: math.powf %{{.*}}, %[[T]] : f32
// LOWER: math.powf %{{.*}}, %[[T]] : f32
// LOWER: linalg.generic {{.*}} outs(%{{.*}}, %{{.*}}, %{{.*}} : tensor<4x3xf32>, tensor<4x3xf32>, tensor<4x3xf32>)
// LOWER-NOT: math.powf
// LOWER: math.sqrt
// LOWER: linalg.yield %{{.*}}, %{{.*}}, %{{.*}} : f32, f32, f32
func.func @opt(%p: tensor<4x3xf32>, %g: tensor<4x3xf32>, %m: tensor<4x3xf32>, %v: tensor<4x3xf32>, %lr: tensor<f32>, %s: tensor<f32>) -> (tensor<4x3xf32>, tensor<4x3xf32>, tensor<4x3xf32>) {
  %p2, %m2, %v2 = qslaw.adamw %p, %g, %m, %v lr(%lr) step(%s) {weight_decay = 0.1 : f32} : (tensor<4x3xf32>, tensor<4x3xf32>, tensor<4x3xf32>, tensor<4x3xf32>, tensor<f32>, tensor<f32>) -> (tensor<4x3xf32>, tensor<4x3xf32>, tensor<4x3xf32>)
  return %p2, %m2, %v2 : tensor<4x3xf32>, tensor<4x3xf32>, tensor<4x3xf32>
}
