// RUN: qslaw-opt %s -split-input-file -qslaw-widen-on-extract | FileCheck %s

// A bf16 table widened only for element reads (a Gather of an embedding):
// each read takes the bf16 element and widens it; the widened table goes.
// CHECK-LABEL: func @gather
// CHECK-NOT: outs(%{{.*}} : tensor<32x8xf32>)
// CHECK: linalg.generic
// CHECK: %[[E:.*]] = tensor.extract %arg0[%{{.*}}, %{{.*}}] : tensor<32x8xbf16>
// CHECK: %[[W:.*]] = arith.extf %[[E]] : bf16 to f32
// CHECK: linalg.yield %[[W]] : f32
#id2 = affine_map<(d0, d1) -> (d0, d1)>
#ids = affine_map<(d0, d1) -> (d0)>
func.func @gather(%table: tensor<32x8xbf16>, %ids: tensor<4xi64>) -> tensor<4x8xf32> {
  %et = tensor.empty() : tensor<32x8xf32>
  %wide = linalg.generic {indexing_maps = [#id2, #id2], iterator_types = ["parallel", "parallel"]}
      ins(%table : tensor<32x8xbf16>) outs(%et : tensor<32x8xf32>) {
  ^bb0(%in: bf16, %out: f32):
    %x = arith.extf %in : bf16 to f32
    linalg.yield %x : f32
  } -> tensor<32x8xf32>
  %e = tensor.empty() : tensor<4x8xf32>
  %g = linalg.generic {indexing_maps = [#ids, #id2], iterator_types = ["parallel", "parallel"]}
      ins(%ids : tensor<4xi64>) outs(%e : tensor<4x8xf32>) {
  ^bb0(%id: i64, %out: f32):
    %r = arith.index_cast %id : i64 to index
    %c = linalg.index 1 : index
    %v = tensor.extract %wide[%r, %c] : tensor<32x8xf32>
    linalg.yield %v : f32
  } -> tensor<4x8xf32>
  return %g : tensor<4x8xf32>
}

// -----

// f16 the same.
// CHECK-LABEL: func @gather_f16
// CHECK: tensor.extract %arg0[{{.*}}] : tensor<32x8xf16>
// CHECK: arith.extf {{.*}} : f16 to f32
#id2 = affine_map<(d0, d1) -> (d0, d1)>
func.func @gather_f16(%table: tensor<32x8xf16>, %i: index, %j: index) -> f32 {
  %et = tensor.empty() : tensor<32x8xf32>
  %wide = linalg.generic {indexing_maps = [#id2, #id2], iterator_types = ["parallel", "parallel"]}
      ins(%table : tensor<32x8xf16>) outs(%et : tensor<32x8xf32>) {
  ^bb0(%in: f16, %out: f32):
    %x = arith.extf %in : f16 to f32
    linalg.yield %x : f32
  } -> tensor<32x8xf32>
  %v = tensor.extract %wide[%i, %j] : tensor<32x8xf32>
  return %v : f32
}

// -----

// A widened table also read whole (here returned) stays widened, and its
// element reads read it.
// CHECK-LABEL: func @read_whole
// CHECK: %[[W:.*]] = linalg.generic
// CHECK: arith.extf
// CHECK: tensor.extract %[[W]]
#id2 = affine_map<(d0, d1) -> (d0, d1)>
func.func @read_whole(%table: tensor<32x8xbf16>, %i: index, %j: index) -> (f32, tensor<32x8xf32>) {
  %et = tensor.empty() : tensor<32x8xf32>
  %wide = linalg.generic {indexing_maps = [#id2, #id2], iterator_types = ["parallel", "parallel"]}
      ins(%table : tensor<32x8xbf16>) outs(%et : tensor<32x8xf32>) {
  ^bb0(%in: bf16, %out: f32):
    %x = arith.extf %in : bf16 to f32
    linalg.yield %x : f32
  } -> tensor<32x8xf32>
  %v = tensor.extract %wide[%i, %j] : tensor<32x8xf32>
  return %v, %wide : f32, tensor<32x8xf32>
}

// -----

// Not a plain widening (the body scales as it widens): left alone.
// CHECK-LABEL: func @not_a_widening
// CHECK: arith.mulf
// CHECK: tensor.extract %{{.*}} : tensor<32x8xf32>
#id2 = affine_map<(d0, d1) -> (d0, d1)>
func.func @not_a_widening(%table: tensor<32x8xbf16>, %i: index, %j: index) -> f32 {
  %et = tensor.empty() : tensor<32x8xf32>
  %two = arith.constant 2.0 : f32
  %wide = linalg.generic {indexing_maps = [#id2, #id2], iterator_types = ["parallel", "parallel"]}
      ins(%table : tensor<32x8xbf16>) outs(%et : tensor<32x8xf32>) {
  ^bb0(%in: bf16, %out: f32):
    %x = arith.extf %in : bf16 to f32
    %y = arith.mulf %x, %two : f32
    linalg.yield %y : f32
  } -> tensor<32x8xf32>
  %v = tensor.extract %wide[%i, %j] : tensor<32x8xf32>
  return %v : f32
}
