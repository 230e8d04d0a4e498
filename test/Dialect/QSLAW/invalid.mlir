// RUN: qslaw-opt %s -split-input-file -verify-diagnostics

func.func @bad_bits(%w: tensor<8x256xf32>, %s: tensor<8x2xf32>) -> tensor<8x256xi4> {
  // expected-error @+1 {{unsupported bit width 5; expected 2, 3, 4 or 8}}
  %q = qslaw.quantize %w scales(%s) <bits = 5, group = 128, sym> : (tensor<8x256xf32>, tensor<8x2xf32>) -> tensor<8x256xi4>
  return %q : tensor<8x256xi4>
}

// -----

func.func @zero_group(%w: tensor<8x256xf32>, %s: tensor<8x2xf32>) -> tensor<8x256xi4> {
  // expected-error @+1 {{group size must be positive; use 'per_channel' for one group per row}}
  %q = qslaw.quantize %w scales(%s) <bits = 4, group = 0, sym> : (tensor<8x256xf32>, tensor<8x2xf32>) -> tensor<8x256xi4>
  return %q : tensor<8x256xi4>
}

// -----

func.func @negative_group(%w: tensor<8x256xf32>, %s: tensor<8x2xf32>) -> tensor<8x256xi4> {
  // expected-error @+1 {{group size must be positive, got -4}}
  %q = qslaw.quantize %w scales(%s) <bits = 4, group = -4, sym> : (tensor<8x256xf32>, tensor<8x2xf32>) -> tensor<8x256xi4>
  return %q : tensor<8x256xi4>
}

// -----

func.func @missing_bits(%w: tensor<8x256xf32>, %s: tensor<8x2xf32>) -> tensor<8x256xi4> {
  // expected-error @+1 {{quant spec needs 'bits = N'}}
  %q = qslaw.quantize %w scales(%s) <group = 128, sym> : (tensor<8x256xf32>, tensor<8x2xf32>) -> tensor<8x256xi4>
  return %q : tensor<8x256xi4>
}

// -----

func.func @missing_group(%w: tensor<8x256xf32>, %s: tensor<8x2xf32>) -> tensor<8x256xi4> {
  // expected-error @+1 {{quant spec needs 'group = G' or 'per_channel'}}
  %q = qslaw.quantize %w scales(%s) <bits = 4, sym> : (tensor<8x256xf32>, tensor<8x2xf32>) -> tensor<8x256xi4>
  return %q : tensor<8x256xi4>
}

// -----

func.func @unknown_field(%w: tensor<8x256xf32>, %s: tensor<8x2xf32>) -> tensor<8x256xi4> {
  // expected-error @+1 {{unknown quant spec field 'rounding'}}
  %q = qslaw.quantize %w scales(%s) <bits = 4, group = 128, rounding = 1> : (tensor<8x256xf32>, tensor<8x2xf32>) -> tensor<8x256xi4>
  return %q : tensor<8x256xi4>
}

// -----

func.func @unknown_mode(%w: tensor<8x256xf32>, %s: tensor<8x2xf32>) -> tensor<8x256xi4> {
  // expected-error @+1 {{unknown scale mode 'alpha'; expected 'scale' or 'gamma'}}
  %q = qslaw.quantize %w scales(%s) <bits = 4, group = 128, mode = alpha> : (tensor<8x256xf32>, tensor<8x2xf32>) -> tensor<8x256xi4>
  return %q : tensor<8x256xi4>
}

// -----

func.func @symmetry_twice(%w: tensor<8x256xf32>, %s: tensor<8x2xf32>) -> tensor<8x256xi4> {
  // expected-error @+1 {{symmetry given twice}}
  %q = qslaw.quantize %w scales(%s) <bits = 4, group = 128, sym, asym> : (tensor<8x256xf32>, tensor<8x2xf32>) -> tensor<8x256xi4>
  return %q : tensor<8x256xi4>
}

// -----

func.func @codes_width_vs_bits(%x: tensor<3x256xf32>, %q: tensor<8x256xi8>, %s: tensor<8x2xf32>) -> tensor<3x8xf32> {
  // expected-error @+1 {{codes element type 'i8' does not match the spec's 4 bits (expected i4)}}
  %y = qslaw.qmatmul %x, %q scales(%s) <bits = 4, group = 128, sym> : (tensor<3x256xf32>, tensor<8x256xi8>, tensor<8x2xf32>) -> tensor<3x8xf32>
  return %y : tensor<3x8xf32>
}

// -----

func.func @scales_shape(%x: tensor<3x256xf32>, %q: tensor<8x256xi4>, %s: tensor<8x3xf32>) -> tensor<3x8xf32> {
  // expected-error @+1 {{scales shape [8, 3] does not match [N, J] = [8, 2] for codes [8, 256] and group size 128}}
  %y = qslaw.qmatmul %x, %q scales(%s) <bits = 4, group = 128, sym> : (tensor<3x256xf32>, tensor<8x256xi4>, tensor<8x3xf32>) -> tensor<3x8xf32>
  return %y : tensor<3x8xf32>
}

// -----

func.func @short_group_needs_ceil(%x: tensor<3x200xf32>, %q: tensor<8x200xi4>, %s: tensor<8x1xf32>) -> tensor<3x8xf32> {
  // expected-error @+1 {{scales shape [8, 1] does not match [N, J] = [8, 2] for codes [8, 200] and group size 128}}
  %y = qslaw.qmatmul %x, %q scales(%s) <bits = 4, group = 128, sym> : (tensor<3x200xf32>, tensor<8x200xi4>, tensor<8x1xf32>) -> tensor<3x8xf32>
  return %y : tensor<3x8xf32>
}

// -----

func.func @group_larger_than_k(%x: tensor<3x64xf32>, %q: tensor<8x64xi4>, %s: tensor<8x1xf32>) -> tensor<3x8xf32> {
  // expected-error @+1 {{group size 128 is larger than K = 64; use per_channel for one group per row}}
  %y = qslaw.qmatmul %x, %q scales(%s) <bits = 4, group = 128, sym> : (tensor<3x64xf32>, tensor<8x64xi4>, tensor<8x1xf32>) -> tensor<3x8xf32>
  return %y : tensor<3x8xf32>
}

// -----

func.func @asym_needs_zeros(%x: tensor<3x256xf32>, %q: tensor<8x256xi4>, %s: tensor<8x2xf32>) -> tensor<3x8xf32> {
  // expected-error @+1 {{asymmetric spec requires zero points}}
  %y = qslaw.qmatmul %x, %q scales(%s) <bits = 4, group = 128, asym> : (tensor<3x256xf32>, tensor<8x256xi4>, tensor<8x2xf32>) -> tensor<3x8xf32>
  return %y : tensor<3x8xf32>
}

// -----

func.func @sym_takes_no_zeros(%x: tensor<3x256xf32>, %q: tensor<8x256xi4>, %s: tensor<8x2xf32>, %z: tensor<8x2xi4>) -> tensor<3x8xf32> {
  // expected-error @+1 {{symmetric spec takes no zero points (they are fixed at 2^(bits-1))}}
  %y = qslaw.qmatmul %x, %q scales(%s) zeros(%z) <bits = 4, group = 128, sym> : (tensor<3x256xf32>, tensor<8x256xi4>, tensor<8x2xf32>, tensor<8x2xi4>) -> tensor<3x8xf32>
  return %y : tensor<3x8xf32>
}

// -----

func.func @zeros_width(%x: tensor<3x256xf32>, %q: tensor<8x256xi4>, %s: tensor<8x2xf32>, %z: tensor<8x2xi8>) -> tensor<3x8xf32> {
  // expected-error @+1 {{zero point element type 'i8' does not match the spec's 4 bits}}
  %y = qslaw.qmatmul %x, %q scales(%s) zeros(%z) <bits = 4, group = 128> : (tensor<3x256xf32>, tensor<8x256xi4>, tensor<8x2xf32>, tensor<8x2xi8>) -> tensor<3x8xf32>
  return %y : tensor<3x8xf32>
}

// -----

func.func @zeros_shape(%x: tensor<3x256xf32>, %q: tensor<8x256xi4>, %s: tensor<8x2xf32>, %z: tensor<4x2xi4>) -> tensor<3x8xf32> {
  // expected-error @+1 {{zero points shape [4, 2] does not match [N, J] = [8, 2]}}
  %y = qslaw.qmatmul %x, %q scales(%s) zeros(%z) <bits = 4, group = 128> : (tensor<3x256xf32>, tensor<8x256xi4>, tensor<8x2xf32>, tensor<4x2xi4>) -> tensor<3x8xf32>
  return %y : tensor<3x8xf32>
}

// -----

func.func @input_k(%x: tensor<3x128xf32>, %q: tensor<8x256xi4>, %s: tensor<8x2xf32>) -> tensor<3x8xf32> {
  // expected-error @+1 {{input inner dimension 128 does not match 256}}
  %y = qslaw.qmatmul %x, %q scales(%s) <bits = 4, group = 128, sym> : (tensor<3x128xf32>, tensor<8x256xi4>, tensor<8x2xf32>) -> tensor<3x8xf32>
  return %y : tensor<3x8xf32>
}

// -----

func.func @result_n(%x: tensor<3x256xf32>, %q: tensor<8x256xi4>, %s: tensor<8x2xf32>) -> tensor<3x9xf32> {
  // expected-error @+1 {{result inner dimension 9 does not match 8}}
  %y = qslaw.qmatmul %x, %q scales(%s) <bits = 4, group = 128, sym> : (tensor<3x256xf32>, tensor<8x256xi4>, tensor<8x2xf32>) -> tensor<3x9xf32>
  return %y : tensor<3x9xf32>
}

// -----

func.func @result_batch(%x: tensor<2x3x256xf32>, %q: tensor<8x256xi4>, %s: tensor<8x2xf32>) -> tensor<2x4x8xf32> {
  // expected-error @+1 {{result batch dimension 1 is 4, expected 3}}
  %y = qslaw.qmatmul %x, %q scales(%s) <bits = 4, group = 128, sym> : (tensor<2x3x256xf32>, tensor<8x256xi4>, tensor<8x2xf32>) -> tensor<2x4x8xf32>
  return %y : tensor<2x4x8xf32>
}

// -----

func.func @result_elem(%x: tensor<3x256xf16>, %q: tensor<8x256xi4>, %s: tensor<8x2xf32>) -> tensor<3x8xf32> {
  // expected-error @+1 {{result element type 'f32' differs from the input's 'f16'}}
  %y = qslaw.qmatmul %x, %q scales(%s) <bits = 4, group = 128, sym> : (tensor<3x256xf16>, tensor<8x256xi4>, tensor<8x2xf32>) -> tensor<3x8xf32>
  return %y : tensor<3x8xf32>
}

// -----

func.func @bias_len(%x: tensor<3x256xf32>, %q: tensor<8x256xi4>, %s: tensor<8x2xf32>, %b: tensor<7xf32>) -> tensor<3x8xf32> {
  // expected-error @+1 {{bias length 7 does not match N = 8}}
  %y = qslaw.qmatmul %x, %q scales(%s) bias(%b) <bits = 4, group = 128, sym> : (tensor<3x256xf32>, tensor<8x256xi4>, tensor<8x2xf32>, tensor<7xf32>) -> tensor<3x8xf32>
  return %y : tensor<3x8xf32>
}

// -----

func.func @unsupported_activation(%x: tensor<3x256xf64>, %q: tensor<8x256xi4>, %s: tensor<8x2xf32>) -> tensor<3x8xf64> {
  // expected-error @+1 {{operand #0 must be ranked tensor of 32-bit float or 16-bit float or bfloat16 type values}}
  %y = qslaw.qmatmul %x, %q scales(%s) <bits = 4, group = 128, sym> : (tensor<3x256xf64>, tensor<8x256xi4>, tensor<8x2xf32>) -> tensor<3x8xf64>
  return %y : tensor<3x8xf64>
}

// -----

func.func @unsupported_codes(%x: tensor<3x256xf32>, %q: tensor<8x256xi5>, %s: tensor<8x2xf32>) -> tensor<3x8xf32> {
  // expected-error @+1 {{operand #1 must be 2D tensor of 2-bit signless integer or 3-bit signless integer or 4-bit signless integer or 8-bit signless integer values}}
  %y = qslaw.qmatmul %x, %q scales(%s) <bits = 4, group = 128, sym> : (tensor<3x256xf32>, tensor<8x256xi5>, tensor<8x2xf32>) -> tensor<3x8xf32>
  return %y : tensor<3x8xf32>
}

// -----

func.func @quantize_shapes(%w: tensor<8x128xf32>, %s: tensor<8x2xf32>) -> tensor<8x256xi4> {
  // expected-error @+1 {{weight shape [8, 128] does not match codes shape [8, 256]}}
  %q = qslaw.quantize %w scales(%s) <bits = 4, group = 128, sym> : (tensor<8x128xf32>, tensor<8x2xf32>) -> tensor<8x256xi4>
  return %q : tensor<8x256xi4>
}

// -----

func.func @dequantize_elem(%q: tensor<8x256xi4>, %s: tensor<8x2xf32>) -> tensor<8x256xf16> {
  // expected-error @+1 {{result element type 'f16' differs from the scales' 'f32'}}
  %w = qslaw.dequantize %q scales(%s) <bits = 4, group = 128, sym> : (tensor<8x256xi4>, tensor<8x2xf32>) -> tensor<8x256xf16>
  return %w : tensor<8x256xf16>
}

// -----

func.func @grad_input_shape(%dy: tensor<5x8xf32>, %q: tensor<8x256xi4>, %s: tensor<8x2xf32>) -> tensor<5x128xf32> {
  // expected-error @+1 {{result inner dimension 128 does not match 256}}
  %dx = qslaw.qmatmul_grad_input %dy, %q scales(%s) <bits = 4, group = 128, sym> : (tensor<5x8xf32>, tensor<8x256xi4>, tensor<8x2xf32>) -> tensor<5x128xf32>
  return %dx : tensor<5x128xf32>
}

// -----

func.func @grad_scale_mode(%x: tensor<5x256xf32>, %dy: tensor<5x8xf32>, %q: tensor<8x256xi4>) -> tensor<8x2xf32> {
  // expected-error @+1 {{requires a spec in 'scale' mode; use qslaw.qmatmul_grad_gamma for 'gamma' mode}}
  %ds = qslaw.qmatmul_grad_scale %x, %dy, %q <bits = 4, group = 128, sym, mode = gamma> : (tensor<5x256xf32>, tensor<5x8xf32>, tensor<8x256xi4>) -> tensor<8x2xf32>
  return %ds : tensor<8x2xf32>
}

// -----

func.func @grad_scale_tokens(%x: tensor<5x256xf32>, %dy: tensor<6x8xf32>, %q: tensor<8x256xi4>) -> tensor<8x2xf32> {
  // expected-error @+1 {{token dimension 0 differs: input 5, grad_output 6}}
  %ds = qslaw.qmatmul_grad_scale %x, %dy, %q <bits = 4, group = 128, sym> : (tensor<5x256xf32>, tensor<6x8xf32>, tensor<8x256xi4>) -> tensor<8x2xf32>
  return %ds : tensor<8x2xf32>
}

// -----

func.func @grad_scale_result(%x: tensor<5x256xf32>, %dy: tensor<5x8xf32>, %q: tensor<8x256xi4>) -> tensor<8x3xf32> {
  // expected-error @+1 {{result shape [8, 3] does not match [N, J] = [8, 2]}}
  %ds = qslaw.qmatmul_grad_scale %x, %dy, %q <bits = 4, group = 128, sym> : (tensor<5x256xf32>, tensor<5x8xf32>, tensor<8x256xi4>) -> tensor<8x3xf32>
  return %ds : tensor<8x3xf32>
}

// -----

func.func @grad_gamma_mode(%x: tensor<5x256xf32>, %dy: tensor<5x8xf32>, %w: tensor<8x256xf32>, %s: tensor<8x2xf32>, %g: tensor<8x2xf32>) -> tensor<8x2xf32> {
  // expected-error @+1 {{requires a spec in 'gamma' mode; use qslaw.qmatmul_grad_scale for 'scale' mode}}
  %dg = qslaw.qmatmul_grad_gamma %x, %dy, %w scales(%s) gamma(%g) <bits = 4, group = 128, sym> : (tensor<5x256xf32>, tensor<5x8xf32>, tensor<8x256xf32>, tensor<8x2xf32>, tensor<8x2xf32>) -> tensor<8x2xf32>
  return %dg : tensor<8x2xf32>
}

// -----

func.func @grad_gamma_shape(%x: tensor<5x256xf32>, %dy: tensor<5x8xf32>, %w: tensor<8x256xf32>, %s: tensor<8x2xf32>, %g: tensor<8x1xf32>) -> tensor<8x2xf32> {
  // expected-error @+1 {{gamma shape [8, 1] differs from scales shape [8, 2]}}
  %dg = qslaw.qmatmul_grad_gamma %x, %dy, %w scales(%s) gamma(%g) <bits = 4, group = 128, sym, mode = gamma> : (tensor<5x256xf32>, tensor<5x8xf32>, tensor<8x256xf32>, tensor<8x2xf32>, tensor<8x1xf32>) -> tensor<8x2xf32>
  return %dg : tensor<8x2xf32>
}

// -----

func.func @grad_gamma_k(%x: tensor<5x128xf32>, %dy: tensor<5x8xf32>, %w: tensor<8x256xf32>, %s: tensor<8x2xf32>, %g: tensor<8x2xf32>) -> tensor<8x2xf32> {
  // expected-error @+1 {{input inner dimension 128 does not match K = 256}}
  %dg = qslaw.qmatmul_grad_gamma %x, %dy, %w scales(%s) gamma(%g) <bits = 4, group = 128, sym, mode = gamma> : (tensor<5x128xf32>, tensor<5x8xf32>, tensor<8x256xf32>, tensor<8x2xf32>, tensor<8x2xf32>) -> tensor<8x2xf32>
  return %dg : tensor<8x2xf32>
}

// -----

func.func @malformed(%x: tensor<3x256xf32>) {
  // expected-error @+1 {{expected SSA operand}}
  %y = qslaw.qmatmul %x, scales() <bits = 4> : () -> ()
  return
}

// -----

func.func @ce_labels(%x: tensor<2x5x11xf32>, %y: tensor<2x4xi64>) -> tensor<f32> {
  // expected-error @+1 {{labels shape [2, 4] must equal the logits shape without its last (vocabulary) dimension, [2, 5]}}
  %l = qslaw.cross_entropy %x, %y : (tensor<2x5x11xf32>, tensor<2x4xi64>) -> tensor<f32>
  return %l : tensor<f32>
}

// -----

func.func @ce_grad_type(%x: tensor<5x11xf32>, %y: tensor<5xi64>, %d: tensor<f32>) -> tensor<5x10xf32> {
  // expected-error @+1 {{result type 'tensor<5x10xf32>' must equal the logits type 'tensor<5x11xf32>'}}
  %g = qslaw.cross_entropy_grad %x, %y, %d : (tensor<5x11xf32>, tensor<5xi64>, tensor<f32>) -> tensor<5x10xf32>
  return %g : tensor<5x10xf32>
}

// -----

func.func @ce_label_type(%x: tensor<5x11xf32>, %y: tensor<5xf32>) -> tensor<f32> {
  // expected-error @+1 {{operand #1 must be ranked tensor of 64-bit signless integer or 32-bit signless integer values}}
  %l = qslaw.cross_entropy %x, %y : (tensor<5x11xf32>, tensor<5xf32>) -> tensor<f32>
  return %l : tensor<f32>
}

// -----

func.func @adamw_types(%p: tensor<4xf32>, %g: tensor<5xf32>, %lr: tensor<f32>, %s: tensor<f32>) -> tensor<4xf32> {
  // expected-error @+1 {{parameter, gradient, moments and results must share one type}}
  %p2, %m2, %v2 = qslaw.adamw %p, %g, %p, %p lr(%lr) step(%s) : (tensor<4xf32>, tensor<5xf32>, tensor<4xf32>, tensor<4xf32>, tensor<f32>, tensor<f32>) -> (tensor<4xf32>, tensor<4xf32>, tensor<4xf32>)
  return %p2 : tensor<4xf32>
}

// -----

func.func @adamw_beta(%p: tensor<4xf32>, %lr: tensor<f32>, %s: tensor<f32>) -> tensor<4xf32> {
  // expected-error @+1 {{betas must lie in [0, 1), got 1.000000e+00, 9.990000e-01}}
  %p2, %m2, %v2 = qslaw.adamw %p, %p, %p, %p lr(%lr) step(%s) {beta1 = 1.0 : f32} : (tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<f32>, tensor<f32>) -> (tensor<4xf32>, tensor<4xf32>, tensor<4xf32>)
  return %p2 : tensor<4xf32>
}
