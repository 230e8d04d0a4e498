// RUN: qslaw-opt %s --split-input-file --verify-diagnostics --qslaw-make-train-step="params=p scales= loss=sum-squares"

// A gather from a trainable tensor has no derivative rule.
#map = affine_map<(d0) -> (d0)>
func.func @forward(%i: tensor<3xindex>) -> tensor<3xf32> {
  %p = arith.constant {qslaw.name = "p"} dense<[1.0, 2.0, 3.0, 4.0]> : tensor<4xf32>
  %e = tensor.empty() : tensor<3xf32>
  // expected-error @+1 {{no derivative rule for a linalg.generic whose body reads a trainable-dependent tensor (gather)}}
  %y = linalg.generic {indexing_maps = [#map, #map], iterator_types = ["parallel"]}
      ins(%i : tensor<3xindex>) outs(%e : tensor<3xf32>) {
  ^bb0(%k: index, %o: f32):
    %v = tensor.extract %p[%k] : tensor<4xf32>
    linalg.yield %v : f32
  } -> tensor<3xf32>
  return %y : tensor<3xf32>
}

// -----

// An op with no rule on the gradient path is named.
func.func @forward(%x: tensor<4xf32>) -> tensor<4xf32> {
  %p = arith.constant {qslaw.name = "p"} dense<[1.0, 2.0, 3.0, 4.0]> : tensor<4xf32>
  %c = arith.constant 0.0 : f32
  // expected-error @+1 {{no derivative rule for 'tensor.pad'}}
  %y = tensor.pad %p low[0] high[0] { ^bb0(%i: index): tensor.yield %c : f32 } : tensor<4xf32> to tensor<4xf32>
  return %y : tensor<4xf32>
}

// -----

// expected-error @+1 {{no function 'forward'}}
module {
  func.func @main() { return }
}

// -----

// Nothing selected is an error, not an empty train step.
// expected-error @below {{no trainable tensor: scales regex '' and params regex 'p' select nothing}}
func.func @forward(%x: tensor<4xf32>) -> tensor<4xf32> {
  return %x : tensor<4xf32>
}

// -----

// Two constants with one name would be one tensor in the state and in
// checkpoints: refused.
// expected-error @+1 {{two trainable tensors are named 'p'}}
func.func @forward(%x: tensor<4xf32>) -> tensor<4xf32> {
  %p = arith.constant {qslaw.name = "p"} dense<[1.0, 2.0, 3.0, 4.0]> : tensor<4xf32>
  %q = arith.constant {qslaw.name = "p"} dense<[5.0, 2.0, 3.0, 4.0]> : tensor<4xf32>
  %a = arith.mulf %x, %p : tensor<4xf32>
  %b = arith.mulf %a, %q : tensor<4xf32>
  return %b : tensor<4xf32>
}
