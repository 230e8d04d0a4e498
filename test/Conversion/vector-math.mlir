// RUN: qslaw-opt %s -qslaw-vector-math | FileCheck %s
// RUN: qslaw-opt %s -qslaw-vector-math="approximate=false" | FileCheck %s --check-prefix=EXACT
// RUN: not qslaw-opt %s -qslaw-vector-math="approximate=maybe" 2>&1 | FileCheck %s --check-prefix=BAD

// Float reductions become reassociable (a tree, not one add per lane);
// integer ones are left alone.
// CHECK-LABEL: func @reductions
// CHECK: vector.reduction <add>, %{{.*}} fastmath<reassoc> : vector<64xf32> into f32
// CHECK: vector.reduction <maximumf>, %{{.*}} fastmath<reassoc> : vector<64xf32> into f32
// CHECK: vector.reduction <add>, %{{.*}} : vector<64xi32> into i32
// EXACT-LABEL: func @reductions
// EXACT: vector.reduction <add>, %{{.*}} fastmath<reassoc> : vector<64xf32> into f32
func.func @reductions(%v: vector<64xf32>, %acc: f32, %i: vector<64xi32>) -> (f32, f32, i32) {
  %s = vector.reduction <add>, %v, %acc : vector<64xf32> into f32
  %m = vector.reduction <maximumf>, %v : vector<64xf32> into f32
  %k = vector.reduction <add>, %i : vector<64xi32> into i32
  return %s, %m, %k : f32, f32, i32
}

// f32 exp, erf and tanh become polynomials (no libm call per lane); f64
// and other functions stay.
// CHECK-LABEL: func @math
// CHECK-NOT: math.exp {{.*}} : vector<64xf32>
// CHECK-NOT: math.erf {{.*}} : vector<64xf32>
// CHECK-NOT: math.tanh {{.*}} : vector<64xf32>
// CHECK-DAG: math.exp {{.*}} : vector<4xf64>
// CHECK-DAG: math.log {{.*}} : vector<64xf32>
// EXACT-LABEL: func @math
// EXACT: math.exp {{.*}} : vector<64xf32>
// EXACT: math.erf {{.*}} : vector<64xf32>
// EXACT: math.tanh {{.*}} : vector<64xf32>
// BAD: for the --approximate option: 'maybe' is invalid value for boolean argument
func.func @math(%v: vector<64xf32>, %d: vector<4xf64>) -> (vector<64xf32>, vector<64xf32>, vector<64xf32>, vector<4xf64>, vector<64xf32>) {
  %e = math.exp %v : vector<64xf32>
  %r = math.erf %v : vector<64xf32>
  %t = math.tanh %v : vector<64xf32>
  %x = math.exp %d : vector<4xf64>
  %l = math.log %v : vector<64xf32>
  return %e, %r, %t, %x, %l : vector<64xf32>, vector<64xf32>, vector<64xf32>, vector<4xf64>, vector<64xf32>
}
