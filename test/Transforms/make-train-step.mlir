// RUN: qslaw-opt %s --qslaw-make-train-step="params=p scales= loss=sum-squares" | FileCheck %s

// The four entries, the parameter turned into an argument, the generic rule
// (x * p -> dy * x reduced over the broadcast rows) and one AdamW. The
// forward and backward exist once: @forward calls @forward_params with the
// initial value, @train_step calls @grad_step and @apply_step.
// CHECK-LABEL: func.func @forward(
// CHECK-SAME: %[[X:.*]]: tensor<3x4xf32>) -> tensor<3x4xf32>
// CHECK-NEXT: %[[P0:.*]] = arith.constant dense<{{\[\[}}1.000000e+00, 2.000000e+00, 3.000000e+00, 4.000000e+00]]> : tensor<1x4xf32>
// CHECK-NEXT: %[[Y:.*]] = call @forward_params(%[[P0]], %[[X]])
// CHECK-NEXT: return %[[Y]]
// CHECK-LABEL: func.func @init_params() -> tensor<1x4xf32>
// CHECK-SAME: qslaw.params = ["p"]
// CHECK: arith.constant dense<{{.*}}> : tensor<1x4xf32>
// CHECK-LABEL: func.func @forward_params(%{{.*}}: tensor<1x4xf32>, %{{.*}}: tensor<3x4xf32>) -> tensor<3x4xf32>
// CHECK-LABEL: func.func @grad_step
// CHECK: linalg.generic {{.*}}iterator_types = ["reduction", "parallel"]
// CHECK-LABEL: func.func @train_step(%{{.*}}: tensor<1x4xf32>, %{{.*}}: tensor<1x4xf32>, %{{.*}}: tensor<1x4xf32>, %{{.*}}: tensor<1xf32>, %{{.*}}: tensor<f32>, %{{.*}}: tensor<3x4xf32>) -> (tensor<f32>, tensor<f32>, tensor<1x4xf32>, tensor<1x4xf32>, tensor<1x4xf32>)
// CHECK: %[[G:.*]]:2 = call @grad_step(
// CHECK: %[[U:.*]]:4 = call @apply_step(%{{.*}}, %{{.*}}, %{{.*}}, %[[G]]#1, %{{.*}}, %{{.*}})
// CHECK: return %[[G]]#0, %[[U]]#0, %[[U]]#1, %[[U]]#2, %[[U]]#3
// Gradient accumulation: acc + weight * grad, then AdamW from the sum.
// CHECK: func.func @accumulate_grads(%{{.*}}: tensor<1x4xf32>, %{{.*}}: tensor<1x4xf32>, %[[W:.*]]: tensor<f32>) -> tensor<1x4xf32>
// CHECK-SAME: qslaw.inputs = ["acc.p", "grad.p", "weight"], qslaw.outputs = ["new.acc.p"]
// CHECK: linalg.generic {{.*}} ins(%{{.*}}, %{{.*}}, %[[W]] : tensor<1x4xf32>, tensor<1x4xf32>, tensor<f32>)
// CHECK-NEXT: ^bb0(%[[A:.*]]: f32, %[[G:.*]]: f32, %[[S:.*]]: f32,
// CHECK-NEXT: arith.mulf %[[S]], %[[G]]
// CHECK-LABEL: func.func @apply_step
// CHECK-SAME: qslaw.inputs = ["p", "exp_avg.p", "exp_avg_sq.p", "acc.p", "lrs", "step"], qslaw.outputs = ["grad_sq_norm", "new.p", "new.exp_avg.p", "new.exp_avg_sq.p"]
// CHECK: qslaw.adamw
#map = affine_map<(d0, d1) -> (d0, d1)>
#bcast = affine_map<(d0, d1) -> (0, d1)>
func.func @forward(%x: tensor<3x4xf32>) -> tensor<3x4xf32> {
  %p = arith.constant {qslaw.name = "p"} dense<[[1.0, 2.0, 3.0, 4.0]]> : tensor<1x4xf32>
  %e = tensor.empty() : tensor<3x4xf32>
  %y = linalg.generic {indexing_maps = [#map, #bcast, #map], iterator_types = ["parallel", "parallel"]}
      ins(%x, %p : tensor<3x4xf32>, tensor<1x4xf32>) outs(%e : tensor<3x4xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %0 = arith.mulf %a, %b : f32
    linalg.yield %0 : f32
  } -> tensor<3x4xf32>
  return %y : tensor<3x4xf32>
}
