// RUN: qslaw-opt %s -qslaw-lower-contractions-to-library="min-flops=1000 num-threads=2" -cse | FileCheck %s

// CHECK: func.func private @qslaw_ukernel_sgemm_f32(memref<?x?x?xf32>, memref<?x?x?xf32>, memref<?x?x?xf32>, i32, i32, i32, i32) attributes {llvm.emit_c_interface}

// A 2-D matmul with a zero-filled init: no copy, beta = 0, a unit batch.
// CHECK-LABEL: func @matmul
// CHECK-DAG: %[[A3:.*]] = tensor.expand_shape %arg0 {{\[\[}}0, 1], [2]] output_shape [1, 64, 32] : tensor<64x32xf32> into tensor<1x64x32xf32>
// CHECK-DAG: %[[OUT:.*]] = memref.alloc() : memref<1x64x48xf32>
// CHECK-NOT: memref.copy
// CHECK: %[[AB:.*]] = bufferization.to_buffer %[[A3]] read_only {qslaw.ukernel_operand
// CHECK: %[[F:.*]] = arith.constant 0 : i32
// CHECK: %[[T:.*]] = arith.constant 2 : i32
// CHECK: call @qslaw_ukernel_sgemm_f32({{.*}}, %[[F]], %[[F]], %[[F]], %[[T]])
// CHECK: %[[Y:.*]] = bufferization.to_tensor %[[OUT]] restrict writable
// CHECK: tensor.collapse_shape %[[Y]] {{\[\[}}0, 1], [2]] : tensor<1x64x48xf32> into tensor<64x48xf32>
// CHECK-NOT: linalg.matmul
func.func @matmul(%a: tensor<64x32xf32>, %b: tensor<32x48xf32>) -> tensor<64x48xf32> {
  %z = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<64x48xf32>
  %c = linalg.fill ins(%z : f32) outs(%e : tensor<64x48xf32>) -> tensor<64x48xf32>
  %y = linalg.matmul ins(%a, %b : tensor<64x32xf32>, tensor<32x48xf32>) outs(%c : tensor<64x48xf32>) -> tensor<64x48xf32>
  return %y : tensor<64x48xf32>
}

// An init that is not a zero fill is copied into the result and
// accumulated into (accumulate flag 1).
// CHECK-LABEL: func @accumulate
// CHECK: memref.copy
// CHECK: %[[ONE:.*]] = arith.constant 1 : i32
// CHECK: call @qslaw_ukernel_sgemm_f32({{.*}}, %{{.*}}, %{{.*}}, %[[ONE]], %{{.*}})
func.func @accumulate(%a: tensor<64x32xf32>, %b: tensor<32x48xf32>, %c: tensor<64x48xf32>) -> tensor<64x48xf32> {
  %y = linalg.matmul ins(%a, %b : tensor<64x32xf32>, tensor<32x48xf32>) outs(%c : tensor<64x48xf32>) -> tensor<64x48xf32>
  return %y : tensor<64x48xf32>
}

// Batched, with the right operand read through a transpose of its last two
// dims: transB = 1, no transpose left.
// CHECK-LABEL: func @batch_transposed
// CHECK-NOT: linalg.transpose
// CHECK: %[[F:.*]] = arith.constant 0 : i32
// CHECK: %[[ONE:.*]] = arith.constant 1 : i32
// CHECK: call @qslaw_ukernel_sgemm_f32(%{{.*}}, %{{.*}}, %{{.*}}, %[[F]], %[[ONE]], %[[F]], %{{.*}})
// CHECK-NOT: linalg.batch_matmul
func.func @batch_transposed(%q: tensor<8x16x64xf32>, %k: tensor<8x16x64xf32>) -> tensor<8x16x16xf32> {
  %z = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<8x64x16xf32>
  %kt = linalg.transpose ins(%k : tensor<8x16x64xf32>) outs(%e : tensor<8x64x16xf32>) permutation = [0, 2, 1]
  %e2 = tensor.empty() : tensor<8x16x16xf32>
  %c = linalg.fill ins(%z : f32) outs(%e2 : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  %y = linalg.batch_matmul ins(%q, %kt : tensor<8x16x64xf32>, tensor<8x64x16xf32>) outs(%c : tensor<8x16x16xf32>) -> tensor<8x16x16xf32>
  return %y : tensor<8x16x16xf32>
}

// Leading dims of the activations that the weight lacks are M dims: they
// collapse into one M block (one GEMM, no batch loop).
#x = affine_map<(b, c, m, n, k) -> (b, c, m, k)>
#w = affine_map<(b, c, m, n, k) -> (k, n)>
#y = affine_map<(b, c, m, n, k) -> (b, c, m, n)>
// CHECK-LABEL: func @generic_m_block
// CHECK: %[[X2:.*]] = tensor.collapse_shape %arg0 {{\[\[}}0, 1, 2], [3]] : tensor<2x3x16x32xf32> into tensor<96x32xf32>
// CHECK: tensor.expand_shape %[[X2]] {{\[\[}}0, 1], [2]] output_shape [1, 96, 32]
// CHECK: tensor.expand_shape %arg1 {{\[\[}}0, 1], [2]] output_shape [1, 32, 24]
// CHECK: call @qslaw_ukernel_sgemm_f32
// CHECK: %[[Y2:.*]] = tensor.collapse_shape %{{.*}} {{\[\[}}0, 1], [2]] : tensor<1x96x24xf32> into tensor<96x24xf32>
// CHECK: tensor.expand_shape %[[Y2]] {{\[\[}}0, 1, 2], [3]] output_shape [2, 3, 16, 24] : tensor<96x24xf32> into tensor<2x3x16x24xf32>
// CHECK-NOT: linalg.generic
func.func @generic_m_block(%x: tensor<2x3x16x32xf32>, %w: tensor<32x24xf32>) -> tensor<2x3x16x24xf32> {
  %z = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<2x3x16x24xf32>
  %c = linalg.fill ins(%z : f32) outs(%e : tensor<2x3x16x24xf32>) -> tensor<2x3x16x24xf32>
  %y = linalg.generic {indexing_maps = [#x, #w, #y],
                       iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%x, %w : tensor<2x3x16x32xf32>, tensor<32x24xf32>) outs(%c : tensor<2x3x16x24xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %p = arith.mulf %a, %b : f32
    %s = arith.addf %o, %p : f32
    linalg.yield %s : f32
  } -> tensor<2x3x16x24xf32>
  return %y : tensor<2x3x16x24xf32>
}

// The weight gradient of a linear layer over [batch, tokens, K]
// activations: dW[k, n] = sum_{b, m} x[b, m, k] dy[b, m, n]. Both
// reduction dims form one K block; x is stored [K, rows] (transA = 1).
#gx = affine_map<(k, n, b, m) -> (b, m, k)>
#gy = affine_map<(k, n, b, m) -> (b, m, n)>
#gw = affine_map<(k, n, b, m) -> (k, n)>
// CHECK-LABEL: func @weight_grad_batched
// CHECK: tensor.collapse_shape %arg0 {{\[\[}}0, 1], [2]] : tensor<2x16x32xf32> into tensor<32x32xf32>
// CHECK: tensor.collapse_shape %arg1 {{\[\[}}0, 1], [2]] : tensor<2x16x48xf32> into tensor<32x48xf32>
// CHECK: %[[ONE:.*]] = arith.constant 1 : i32
// CHECK: %[[F:.*]] = arith.constant 0 : i32
// CHECK: call @qslaw_ukernel_sgemm_f32(%{{.*}}, %{{.*}}, %{{.*}}, %[[ONE]], %[[F]], %[[F]], %{{.*}})
func.func @weight_grad_batched(%x: tensor<2x16x32xf32>, %dy: tensor<2x16x48xf32>) -> tensor<32x48xf32> {
  %z = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<32x48xf32>
  %c = linalg.fill ins(%z : f32) outs(%e : tensor<32x48xf32>) -> tensor<32x48xf32>
  %y = linalg.generic {indexing_maps = [#gx, #gy, #gw],
                       iterator_types = ["parallel", "parallel", "reduction", "reduction"]}
      ins(%x, %dy : tensor<2x16x32xf32>, tensor<2x16x48xf32>) outs(%c : tensor<32x48xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %p = arith.mulf %a, %b : f32
    %s = arith.addf %o, %p : f32
    linalg.yield %s : f32
  } -> tensor<32x48xf32>
  return %y : tensor<32x48xf32>
}

// The AD pass's weight gradient dW[k, n] = sum_m x[m, k] dy[m, n]: the rows
// of C are x's columns (transA = 1); dy is [depth, cols] (transB = 0).
#xa = affine_map<(k, n, m) -> (m, k)>
#dy = affine_map<(k, n, m) -> (m, n)>
#dw = affine_map<(k, n, m) -> (k, n)>
// CHECK-LABEL: func @weight_grad
// CHECK: %[[ONE:.*]] = arith.constant 1 : i32
// CHECK: %[[F:.*]] = arith.constant 0 : i32
// CHECK: call @qslaw_ukernel_sgemm_f32(%{{.*}}, %{{.*}}, %{{.*}}, %[[ONE]], %[[F]], %[[F]], %{{.*}})
func.func @weight_grad(%x: tensor<64x32xf32>, %dy: tensor<64x48xf32>) -> tensor<32x48xf32> {
  %z = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<32x48xf32>
  %c = linalg.fill ins(%z : f32) outs(%e : tensor<32x48xf32>) -> tensor<32x48xf32>
  %y = linalg.generic {indexing_maps = [#xa, #dy, #dw],
                       iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%x, %dy : tensor<64x32xf32>, tensor<64x48xf32>) outs(%c : tensor<32x48xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %p = arith.mulf %b, %a : f32
    %s = arith.addf %p, %o : f32
    linalg.yield %s : f32
  } -> tensor<32x48xf32>
  return %y : tensor<32x48xf32>
}

// The AD pass's gradient generics carry the forward's operands, some unread
// by the body (here dX = dY . W^T keeps X): the two read ones are the GEMM.
#adx = affine_map<(m, k, n) -> (m, k)>
#ady = affine_map<(m, k, n) -> (m, n)>
#adw = affine_map<(m, k, n) -> (k, n)>
// CHECK-LABEL: func @ad_grad_input
// CHECK: %[[F:.*]] = arith.constant 0 : i32
// CHECK: %[[ONE:.*]] = arith.constant 1 : i32
// CHECK: call @qslaw_ukernel_sgemm_f32(%{{.*}}, %{{.*}}, %{{.*}}, %[[F]], %[[ONE]], %[[F]], %{{.*}})
// CHECK-NOT: linalg.generic
func.func @ad_grad_input(%dy: tensor<64x48xf32>, %x: tensor<64x32xf32>, %w: tensor<32x48xf32>) -> tensor<64x32xf32> {
  %z = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<64x32xf32>
  %c = linalg.fill ins(%z : f32) outs(%e : tensor<64x32xf32>) -> tensor<64x32xf32>
  %y = linalg.generic {indexing_maps = [#ady, #adx, #adw, #adx],
                       iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%dy, %x, %w : tensor<64x48xf32>, tensor<64x32xf32>, tensor<32x48xf32>) outs(%c : tensor<64x32xf32>) {
  ^bb0(%g: f32, %xa: f32, %wb: f32, %o: f32):
    %p = arith.mulf %g, %wb : f32
    %s = arith.addf %o, %p : f32
    linalg.yield %s : f32
  } -> tensor<64x32xf32>
  return %y : tensor<64x32xf32>
}

// Left for codegen: below min-flops, f16, dynamic shapes, a body that is
// not a plain multiply-add, two M dims.
#m2a = affine_map<(i, j, n, k) -> (i, j, k)>
#m2b = affine_map<(i, j, n, k) -> (k, n)>
#m2c = affine_map<(i, j, n, k) -> (i, n, j)>
// CHECK-LABEL: func @not_covered
// CHECK-NOT: call
// CHECK-COUNT-2: linalg.matmul
// CHECK: linalg.generic
// CHECK: math.exp
// CHECK: linalg.generic
// CHECK-NOT: call
func.func @not_covered(%a: tensor<4x8xf32>, %b: tensor<8x4xf32>, %c: tensor<4x4xf32>,
                       %ah: tensor<64x32xf16>, %bh: tensor<32x48xf16>, %ch: tensor<64x48xf16>,
                       %x: tensor<64x32xf32>, %w: tensor<32x48xf32>, %o: tensor<64x48xf32>,
                       %x3: tensor<4x16x32xf32>, %o3: tensor<4x48x16xf32>)
    -> (tensor<4x4xf32>, tensor<64x48xf16>, tensor<64x48xf32>, tensor<4x48x16xf32>) {
  %s = linalg.matmul ins(%a, %b : tensor<4x8xf32>, tensor<8x4xf32>) outs(%c : tensor<4x4xf32>) -> tensor<4x4xf32>
  %h = linalg.matmul ins(%ah, %bh : tensor<64x32xf16>, tensor<32x48xf16>) outs(%ch : tensor<64x48xf16>) -> tensor<64x48xf16>
  %e = linalg.generic {indexing_maps = [affine_map<(m, n, k) -> (m, k)>, affine_map<(m, n, k) -> (k, n)>, affine_map<(m, n, k) -> (m, n)>],
                       iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%x, %w : tensor<64x32xf32>, tensor<32x48xf32>) outs(%o : tensor<64x48xf32>) {
  ^bb0(%p: f32, %q: f32, %r: f32):
    %ex = math.exp %p : f32
    %m = arith.mulf %ex, %q : f32
    %s2 = arith.addf %r, %m : f32
    linalg.yield %s2 : f32
  } -> tensor<64x48xf32>
  // The output's m dims are split around n: not a plain batched GEMM.
  %t = linalg.generic {indexing_maps = [#m2a, #m2b, #m2c],
                       iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%x3, %w : tensor<4x16x32xf32>, tensor<32x48xf32>) outs(%o3 : tensor<4x48x16xf32>) {
  ^bb0(%p: f32, %q: f32, %r: f32):
    %m = arith.mulf %p, %q : f32
    %s2 = arith.addf %r, %m : f32
    linalg.yield %s2 : f32
  } -> tensor<4x48x16xf32>
  return %s, %h, %e, %t : tensor<4x4xf32>, tensor<64x48xf16>, tensor<64x48xf32>, tensor<4x48x16xf32>
}

// Dynamic shapes stay.
// CHECK-LABEL: func @dynamic
// CHECK: linalg.matmul
// CHECK-NOT: call
func.func @dynamic(%a: tensor<?x32xf32>, %b: tensor<32x48xf32>, %c: tensor<?x48xf32>) -> tensor<?x48xf32> {
  %y = linalg.matmul ins(%a, %b : tensor<?x32xf32>, tensor<32x48xf32>) outs(%c : tensor<?x48xf32>) -> tensor<?x48xf32>
  return %y : tensor<?x48xf32>
}

// One GEMM feeding another directly (LoRA's (x A^T) B^T): both become
// calls, the second reading the first's result (its producer was replaced
// after the match; a stale operand crashed the pass).
// CHECK-LABEL: func @chained
// CHECK-COUNT-2: call @qslaw_ukernel_sgemm_f32
// CHECK-NOT: linalg.generic
#lxa = affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>
#la = affine_map<(d0, d1, d2, d3) -> (d2, d3)>
#lo = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
func.func @chained(%x: tensor<2x32x64xf32>, %a: tensor<16x64xf32>, %b: tensor<64x16xf32>) -> tensor<2x32x64xf32> {
  %z = arith.constant 0.0 : f32
  %e1 = tensor.empty() : tensor<2x32x16xf32>
  %f1 = linalg.fill ins(%z : f32) outs(%e1 : tensor<2x32x16xf32>) -> tensor<2x32x16xf32>
  %d = linalg.generic {indexing_maps = [#lxa, #la, #lo], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%x, %a : tensor<2x32x64xf32>, tensor<16x64xf32>) outs(%f1 : tensor<2x32x16xf32>) {
  ^bb0(%p: f32, %q: f32, %acc: f32):
    %m = arith.mulf %p, %q : f32
    %s = arith.addf %acc, %m : f32
    linalg.yield %s : f32
  } -> tensor<2x32x16xf32>
  %e2 = tensor.empty() : tensor<2x32x64xf32>
  %f2 = linalg.fill ins(%z : f32) outs(%e2 : tensor<2x32x64xf32>) -> tensor<2x32x64xf32>
  %u = linalg.generic {indexing_maps = [#lxa, #la, #lo], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}
      ins(%d, %b : tensor<2x32x16xf32>, tensor<64x16xf32>) outs(%f2 : tensor<2x32x64xf32>) {
  ^bb0(%p: f32, %q: f32, %acc: f32):
    %m = arith.mulf %p, %q : f32
    %s = arith.addf %acc, %m : f32
    linalg.yield %s : f32
  } -> tensor<2x32x64xf32>
  return %u : tensor<2x32x64xf32>
}

// A weight stored as bf16 and widened by a Cast is read as it is stored:
// the right operand of ..._sgemm_f32_wbf16 is the bf16 tensor, the widened
// copy goes (no extf left); through a transpose too (transB = 1). An f16
// one goes to ..._wf16. A widened left operand stays widened.
// CHECK-LABEL: func @narrow_weight
// CHECK-NOT: arith.extf
// CHECK: %[[W3:.*]] = tensor.expand_shape %arg1 {{\[\[}}0, 1], [2]] output_shape [1, 32, 48] : tensor<32x48xbf16> into tensor<1x32x48xbf16>
// CHECK: %[[WB:.*]] = bufferization.to_buffer %[[W3]] read_only {{.*}} : tensor<1x32x48xbf16> to memref<1x32x48xbf16>
// CHECK: %[[WC:.*]] = memref.cast %[[WB]] : memref<1x32x48xbf16> to memref<?x?x?xbf16>
// CHECK: call @qslaw_ukernel_sgemm_f32_wbf16(%{{.*}}, %[[WC]], %{{.*}}, %[[F:.*]], %[[F]], %[[F]], %{{.*}}) : (memref<?x?x?xf32>, memref<?x?x?xbf16>, memref<?x?x?xf32>, i32, i32, i32, i32) -> ()
// CHECK: %[[ONE:.*]] = arith.constant 1 : i32
// CHECK: call @qslaw_ukernel_sgemm_f32_wf16(%{{.*}}, %{{.*}}, %{{.*}}, %[[F]], %[[ONE]], %[[F]], %{{.*}}) : (memref<?x?x?xf32>, memref<?x?x?xf16>, memref<?x?x?xf32>, i32, i32, i32, i32) -> ()
// CHECK-NOT: linalg.transpose
// CHECK: return
#id2 = affine_map<(d0, d1) -> (d0, d1)>
func.func @narrow_weight(%a: tensor<64x32xf32>, %w: tensor<32x48xbf16>, %v: tensor<48x32xf16>) -> (tensor<64x48xf32>, tensor<64x48xf32>) {
  %z = arith.constant 0.0 : f32
  %ew = tensor.empty() : tensor<32x48xf32>
  %wf = linalg.generic {indexing_maps = [#id2, #id2], iterator_types = ["parallel", "parallel"]}
      ins(%w : tensor<32x48xbf16>) outs(%ew : tensor<32x48xf32>) {
  ^bb0(%in: bf16, %out: f32):
    %x = arith.extf %in : bf16 to f32
    linalg.yield %x : f32
  } -> tensor<32x48xf32>
  %e = tensor.empty() : tensor<64x48xf32>
  %c = linalg.fill ins(%z : f32) outs(%e : tensor<64x48xf32>) -> tensor<64x48xf32>
  %y = linalg.matmul ins(%a, %wf : tensor<64x32xf32>, tensor<32x48xf32>) outs(%c : tensor<64x48xf32>) -> tensor<64x48xf32>
  %ev = tensor.empty() : tensor<48x32xf32>
  %vf = linalg.generic {indexing_maps = [#id2, #id2], iterator_types = ["parallel", "parallel"]}
      ins(%v : tensor<48x32xf16>) outs(%ev : tensor<48x32xf32>) {
  ^bb0(%in: f16, %out: f32):
    %x = arith.extf %in : f16 to f32
    linalg.yield %x : f32
  } -> tensor<48x32xf32>
  %et = tensor.empty() : tensor<32x48xf32>
  %vt = linalg.transpose ins(%vf : tensor<48x32xf32>) outs(%et : tensor<32x48xf32>) permutation = [1, 0]
  %u = linalg.matmul ins(%a, %vt : tensor<64x32xf32>, tensor<32x48xf32>) outs(%c : tensor<64x48xf32>) -> tensor<64x48xf32>
  return %y, %u : tensor<64x48xf32>, tensor<64x48xf32>
}

// CHECK-LABEL: func @narrow_left_operand
// CHECK: arith.extf
// CHECK: call @qslaw_ukernel_sgemm_f32(
func.func @narrow_left_operand(%a: tensor<64x32xbf16>, %b: tensor<32x48xf32>) -> tensor<64x48xf32> {
  %z = arith.constant 0.0 : f32
  %ea = tensor.empty() : tensor<64x32xf32>
  %af = linalg.generic {indexing_maps = [#id2, #id2], iterator_types = ["parallel", "parallel"]}
      ins(%a : tensor<64x32xbf16>) outs(%ea : tensor<64x32xf32>) {
  ^bb0(%in: bf16, %out: f32):
    %x = arith.extf %in : bf16 to f32
    linalg.yield %x : f32
  } -> tensor<64x32xf32>
  %e = tensor.empty() : tensor<64x48xf32>
  %c = linalg.fill ins(%z : f32) outs(%e : tensor<64x48xf32>) -> tensor<64x48xf32>
  %y = linalg.matmul ins(%af, %b : tensor<64x32xf32>, tensor<32x48xf32>) outs(%c : tensor<64x48xf32>) -> tensor<64x48xf32>
  return %y : tensor<64x48xf32>
}
