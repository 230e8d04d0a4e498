// RUN: qslaw-opt %s --pass-pipeline='builtin.module(func.func(qslaw-bool-tensors-as-bytes))' -split-input-file -verify-diagnostics | FileCheck %s

// A mask written by a generic, read by two generics (one through an
// expand_shape) and by an extract: written as bytes (extui into an i8
// tensor.empty), each reader truncates them back to i1.
// CHECK-LABEL: func.func @mask_read_by_generics(
// CHECK: %[[E:.*]] = tensor.empty() : tensor<4x8xi8>
// CHECK: %[[M:.*]] = linalg.generic {{.*}} ins(%{{.*}} : tensor<4x8xf32>) outs(%[[E]] : tensor<4x8xi8>)
// CHECK: %[[C:.*]] = arith.cmpf olt
// CHECK-NEXT: %[[W:.*]] = arith.extui %[[C]] : i1 to i8
// CHECK-NEXT: linalg.yield %[[W]] : i8
// CHECK: linalg.generic {{.*}} ins(%[[M]], %{{.*}} : tensor<4x8xi8>, tensor<4x8xf32>)
// CHECK-NEXT: ^bb0(%[[IN:.*]]: i8, %{{.*}}: f32, %{{.*}}: f32):
// CHECK-NEXT: %[[B:.*]] = arith.trunci %[[IN]] : i8 to i1
// CHECK-NEXT: arith.select %[[B]]
// CHECK: %[[X:.*]] = tensor.expand_shape %[[M]] {{.*}} : tensor<4x8xi8> into tensor<1x4x8xi8>
// CHECK: linalg.generic {{.*}} ins(%[[X]] : tensor<1x4x8xi8>)
// CHECK: arith.trunci %{{.*}} : i8 to i1
// CHECK: %[[V:.*]] = tensor.extract %[[M]][%{{.*}}, %{{.*}}] : tensor<4x8xi8>
// CHECK-NEXT: %[[VB:.*]] = arith.trunci %[[V]] : i8 to i1
// CHECK: return {{.*}}, %[[VB]] :
#id2 = affine_map<(d0, d1) -> (d0, d1)>
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
func.func @mask_read_by_generics(%x: tensor<4x8xf32>, %y: tensor<4x8xf32>)
    -> (tensor<4x8xf32>, tensor<1x4x8xf32>, i1) {
  %zero = arith.constant 0.0 : f32
  %c1 = arith.constant 1 : index
  %e = tensor.empty() : tensor<4x8xi1>
  %mask = linalg.generic {indexing_maps = [#id2, #id2], iterator_types = ["parallel", "parallel"]}
      ins(%x : tensor<4x8xf32>) outs(%e : tensor<4x8xi1>) {
  ^bb0(%in: f32, %out: i1):
    %c = arith.cmpf olt, %in, %zero : f32
    linalg.yield %c : i1
  } -> tensor<4x8xi1>
  %ef = tensor.empty() : tensor<4x8xf32>
  %sel = linalg.generic {indexing_maps = [#id2, #id2, #id2], iterator_types = ["parallel", "parallel"]}
      ins(%mask, %y : tensor<4x8xi1>, tensor<4x8xf32>) outs(%ef : tensor<4x8xf32>) {
  ^bb0(%m: i1, %in: f32, %out: f32):
    %s = arith.select %m, %in, %zero : f32
    linalg.yield %s : f32
  } -> tensor<4x8xf32>
  %mx = tensor.expand_shape %mask [[0, 1], [2]] output_shape [1, 4, 8] : tensor<4x8xi1> into tensor<1x4x8xi1>
  %ef3 = tensor.empty() : tensor<1x4x8xf32>
  %f = linalg.generic {indexing_maps = [#id3, #id3], iterator_types = ["parallel", "parallel", "parallel"]}
      ins(%mx : tensor<1x4x8xi1>) outs(%ef3 : tensor<1x4x8xf32>) {
  ^bb0(%m: i1, %out: f32):
    %u = arith.uitofp %m : i1 to f32
    linalg.yield %u : f32
  } -> tensor<1x4x8xf32>
  %v = tensor.extract %mask[%c1, %c1] : tensor<4x8xi1>
  return %sel, %f, %v : tensor<4x8xf32>, tensor<1x4x8xf32>, i1
}

// -----

// A dense boolean constant read by a generic becomes a byte constant.
// CHECK-LABEL: func.func @constant_mask(
// CHECK: %[[C:.*]] = arith.constant dense<{{\[\[}}1, 0], [1, 1]]> : tensor<2x2xi8>
// CHECK: linalg.generic {{.*}} ins(%[[C]], %{{.*}} : tensor<2x2xi8>, tensor<2x2xf32>)
// CHECK: arith.trunci %{{.*}} : i8 to i1
#id2 = affine_map<(d0, d1) -> (d0, d1)>
func.func @constant_mask(%y: tensor<2x2xf32>) -> tensor<2x2xf32> {
  %zero = arith.constant 0.0 : f32
  %mask = arith.constant dense<[[true, false], [true, true]]> : tensor<2x2xi1>
  %ef = tensor.empty() : tensor<2x2xf32>
  %sel = linalg.generic {indexing_maps = [#id2, #id2, #id2], iterator_types = ["parallel", "parallel"]}
      ins(%mask, %y : tensor<2x2xi1>, tensor<2x2xf32>) outs(%ef : tensor<2x2xf32>) {
  ^bb0(%m: i1, %in: f32, %out: f32):
    %s = arith.select %m, %in, %zero : f32
    linalg.yield %s : f32
  } -> tensor<2x2xf32>
  return %sel : tensor<2x2xf32>
}

// -----

// Dynamic shapes: the byte tensor.empty takes the sizes of the original
// destination.
// CHECK-LABEL: func.func @dynamic_mask(
// CHECK: %[[D:.*]] = tensor.dim %{{.*}}, %{{.*}} : tensor<?x8xi1>
// CHECK: %[[E:.*]] = tensor.empty(%[[D]]) : tensor<?x8xi8>
// CHECK: linalg.generic {{.*}} outs(%[[E]] : tensor<?x8xi8>)
#id2 = affine_map<(d0, d1) -> (d0, d1)>
func.func @dynamic_mask(%x: tensor<?x8xf32>, %e: tensor<?x8xi1>, %ef: tensor<?x8xf32>) -> tensor<?x8xf32> {
  %zero = arith.constant 0.0 : f32
  %mask = linalg.generic {indexing_maps = [#id2, #id2], iterator_types = ["parallel", "parallel"]}
      ins(%x : tensor<?x8xf32>) outs(%e : tensor<?x8xi1>) {
  ^bb0(%in: f32, %out: i1):
    %c = arith.cmpf olt, %in, %zero : f32
    linalg.yield %c : i1
  } -> tensor<?x8xi1>
  %sel = linalg.generic {indexing_maps = [#id2, #id2, #id2], iterator_types = ["parallel", "parallel"]}
      ins(%mask, %x : tensor<?x8xi1>, tensor<?x8xf32>) outs(%ef : tensor<?x8xf32>) {
  ^bb0(%m: i1, %in: f32, %out: f32):
    %s = arith.select %m, %in, %zero : f32
    linalg.yield %s : f32
  } -> tensor<?x8xf32>
  return %sel : tensor<?x8xf32>
}

// -----

// Left alone: a mask that is returned, one whose writer reads its output,
// one written into by another op (an init), and a function argument.
// CHECK-LABEL: func.func @left_alone(
// CHECK-NOT: i8
// CHECK: return
#id2 = affine_map<(d0, d1) -> (d0, d1)>
func.func @left_alone(%x: tensor<4x8xf32>, %arg: tensor<4x8xi1>)
    -> (tensor<4x8xi1>, tensor<4x8xi1>, tensor<4x8xi1>, tensor<4x8xf32>) {
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<4x8xi1>
  %returned = linalg.generic {indexing_maps = [#id2, #id2], iterator_types = ["parallel", "parallel"]}
      ins(%x : tensor<4x8xf32>) outs(%e : tensor<4x8xi1>) {
  ^bb0(%in: f32, %out: i1):
    %c = arith.cmpf olt, %in, %zero : f32
    linalg.yield %c : i1
  } -> tensor<4x8xi1>
  %reads_out = linalg.generic {indexing_maps = [#id2, #id2], iterator_types = ["parallel", "parallel"]}
      ins(%x : tensor<4x8xf32>) outs(%arg : tensor<4x8xi1>) {
  ^bb0(%in: f32, %out: i1):
    %c = arith.cmpf olt, %in, %zero : f32
    %o = arith.ori %c, %out : i1
    linalg.yield %o : i1
  } -> tensor<4x8xi1>
  %init = linalg.generic {indexing_maps = [#id2, #id2], iterator_types = ["parallel", "parallel"]}
      ins(%x : tensor<4x8xf32>) outs(%e : tensor<4x8xi1>) {
  ^bb0(%in: f32, %out: i1):
    %c = arith.cmpf ogt, %in, %zero : f32
    linalg.yield %c : i1
  } -> tensor<4x8xi1>
  %written = linalg.generic {indexing_maps = [#id2, #id2], iterator_types = ["parallel", "parallel"]}
      ins(%x : tensor<4x8xf32>) outs(%init : tensor<4x8xi1>) {
  ^bb0(%in: f32, %out: i1):
    %c = arith.cmpf oeq, %in, %zero : f32
    linalg.yield %c : i1
  } -> tensor<4x8xi1>
  %ef = tensor.empty() : tensor<4x8xf32>
  %sel = linalg.generic {indexing_maps = [#id2, #id2, #id2], iterator_types = ["parallel", "parallel"]}
      ins(%arg, %x : tensor<4x8xi1>, tensor<4x8xf32>) outs(%ef : tensor<4x8xf32>) {
  ^bb0(%m: i1, %in: f32, %out: f32):
    %s = arith.select %m, %in, %zero : f32
    linalg.yield %s : f32
  } -> tensor<4x8xf32>
  return %returned, %reads_out, %written, %sel : tensor<4x8xi1>, tensor<4x8xi1>, tensor<4x8xi1>, tensor<4x8xf32>
}
