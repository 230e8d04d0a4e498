// RUN: qslaw-opt %s --pass-pipeline='builtin.module(func.func(qslaw-fill-per-writer))' -split-input-file | FileCheck %s

// One zero fill (CSE merged) is the accumulator of two matmuls and, through
// an expand_shape, of a generic, and is read by an add. Every writer but
// one gets a fill (and tensor.empty, and reshape) of its own, just before
// it; the read keeps the original.
// CHECK-LABEL: func.func @shared_accumulator(
// CHECK: %[[E:.*]] = tensor.empty() : tensor<8x4xf32>
// CHECK: %[[Z:.*]] = linalg.fill ins(%{{.*}}) outs(%[[E]] :
// CHECK: %[[E1:.*]] = tensor.empty() : tensor<8x4xf32>
// CHECK-NEXT: %[[Z1:.*]] = linalg.fill ins(%{{.*}}) outs(%[[E1]] :
// CHECK-NEXT: linalg.matmul {{.*}} outs(%[[Z1]] :
// CHECK: %[[E2:.*]] = tensor.empty() : tensor<8x4xf32>
// CHECK-NEXT: %[[Z2:.*]] = linalg.fill ins(%{{.*}}) outs(%[[E2]] :
// CHECK-NEXT: linalg.matmul {{.*}} outs(%[[Z2]] :
// CHECK: tensor.expand_shape %[[Z]]
// CHECK: linalg.add ins(%[[Z]],
func.func @shared_accumulator(%a: tensor<8x16xf32>, %b: tensor<16x4xf32>, %c: tensor<16x4xf32>)
    -> (tensor<8x4xf32>, tensor<1x8x4xf32>, tensor<8x4xf32>) {
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<8x4xf32>
  %z = linalg.fill ins(%zero : f32) outs(%e : tensor<8x4xf32>) -> tensor<8x4xf32>
  %m1 = linalg.matmul ins(%a, %b : tensor<8x16xf32>, tensor<16x4xf32>) outs(%z : tensor<8x4xf32>) -> tensor<8x4xf32>
  %m2 = linalg.matmul ins(%a, %c : tensor<8x16xf32>, tensor<16x4xf32>) outs(%z : tensor<8x4xf32>) -> tensor<8x4xf32>
  %x = tensor.expand_shape %z [[0, 1], [2]] output_shape [1, 8, 4] : tensor<8x4xf32> into tensor<1x8x4xf32>
  %g = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>],
                       iterator_types = ["parallel", "parallel", "parallel"]}
      outs(%x : tensor<1x8x4xf32>) {
  ^bb0(%o: f32):
    %s = arith.addf %o, %zero : f32
    linalg.yield %s : f32
  } -> tensor<1x8x4xf32>
  %r = linalg.add ins(%z, %m1 : tensor<8x4xf32>, tensor<8x4xf32>) outs(%e : tensor<8x4xf32>) -> tensor<8x4xf32>
  return %m2, %g, %r : tensor<8x4xf32>, tensor<1x8x4xf32>, tensor<8x4xf32>
}

// -----

// The writer reached through a reshape gets the reshape cloned too; the
// original reshape, left without users, is erased.
// CHECK-LABEL: func.func @through_reshape(
// CHECK: %[[Z:.*]] = linalg.fill
// CHECK-NEXT: linalg.add {{.*}} outs(%[[Z]] :
// CHECK: %[[F:.*]] = linalg.fill
// CHECK-NEXT: %[[X:.*]] = tensor.expand_shape %[[F]]
// CHECK-NEXT: linalg.generic {{.*}} outs(%[[X]] :
// CHECK-NOT: tensor.expand_shape
func.func @through_reshape(%a: tensor<8x4xf32>) -> (tensor<8x4xf32>, tensor<1x8x4xf32>) {
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<8x4xf32>
  %z = linalg.fill ins(%zero : f32) outs(%e : tensor<8x4xf32>) -> tensor<8x4xf32>
  %x = tensor.expand_shape %z [[0, 1], [2]] output_shape [1, 8, 4] : tensor<8x4xf32> into tensor<1x8x4xf32>
  %m = linalg.add ins(%a, %a : tensor<8x4xf32>, tensor<8x4xf32>) outs(%z : tensor<8x4xf32>) -> tensor<8x4xf32>
  %g = linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>],
                       iterator_types = ["parallel", "parallel", "parallel"]}
      outs(%x : tensor<1x8x4xf32>) {
  ^bb0(%o: f32):
    linalg.yield %o : f32
  } -> tensor<1x8x4xf32>
  return %m, %g : tensor<8x4xf32>, tensor<1x8x4xf32>
}

// -----

// Left alone: a fill with one writer, and a fill that is only read.
// CHECK-LABEL: func.func @left_alone(
// CHECK-COUNT-2: linalg.fill
// CHECK-NOT: linalg.fill
func.func @left_alone(%a: tensor<8x4xf32>) -> (tensor<8x4xf32>, tensor<8x4xf32>, tensor<8x4xf32>) {
  %zero = arith.constant 0.0 : f32
  %one = arith.constant 1.0 : f32
  %e = tensor.empty() : tensor<8x4xf32>
  %z = linalg.fill ins(%zero : f32) outs(%e : tensor<8x4xf32>) -> tensor<8x4xf32>
  %m = linalg.add ins(%a, %a : tensor<8x4xf32>, tensor<8x4xf32>) outs(%z : tensor<8x4xf32>) -> tensor<8x4xf32>
  %o = linalg.fill ins(%one : f32) outs(%e : tensor<8x4xf32>) -> tensor<8x4xf32>
  %r1 = linalg.add ins(%o, %a : tensor<8x4xf32>, tensor<8x4xf32>) outs(%e : tensor<8x4xf32>) -> tensor<8x4xf32>
  %r2 = linalg.mul ins(%o, %a : tensor<8x4xf32>, tensor<8x4xf32>) outs(%e : tensor<8x4xf32>) -> tensor<8x4xf32>
  return %m, %r1, %r2 : tensor<8x4xf32>, tensor<8x4xf32>, tensor<8x4xf32>
}
