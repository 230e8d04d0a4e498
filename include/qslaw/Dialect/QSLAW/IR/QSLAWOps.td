#ifndef QSLAW_OPS_TD
#define QSLAW_OPS_TD

include "qslaw/Dialect/QSLAW/IR/QSLAWDialect.td"
include "qslaw/Dialect/QSLAW/IR/QSLAWAttrs.td"
include "mlir/IR/OpBase.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

class QSLAW_Op<string mnemonic, list<Trait> traits = []>
    : Op<QSLAW_Dialect, mnemonic, !listconcat(traits, [Pure])>;

// Element types qslaw computes in.
def QSLAW_Float : AnyTypeOf<[F32, F16, BF16]>;
def QSLAW_FloatTensor : RankedTensorOf<[F32, F16, BF16]>;
def QSLAW_FloatMatrix : 2DTensorOf<[F32, F16, BF16]>;
def QSLAW_CodeMatrix : 2DTensorOf<[I<2>, I<3>, I<4>, I8]>;

def QSLAW_QuantizeOp : QSLAW_Op<"quantize"> {
  let summary = "float weight -> integer codes";
  let description = [{
    `q[n,k] = clamp(round(w[n,k] / s[n,j]) + z[n,j], 0, qmax)` with
    `j = k / group`, round half to even. Without `zeros` the spec must be
    symmetric and `z = 2^(bits-1)`. In `gamma` mode the caller passes
    `s * gamma` as the scales (see QSLAW.md).

    ```mlir
    %q = qslaw.quantize %w scales(%s) zeros(%z) <bits = 4, group = 128>
        : (tensor<64x256xf32>, tensor<64x2xf32>, tensor<64x2xi4>) -> tensor<64x256xi4>
    ```
  }];
  let arguments = (ins QSLAW_FloatMatrix:$weight, QSLAW_FloatMatrix:$scales,
                       Optional<QSLAW_CodeMatrix>:$zeros,
                       QSLAW_QuantSpecAttr:$spec);
  let results = (outs QSLAW_CodeMatrix:$result);
  let assemblyFormat = [{
    $weight `scales` `(` $scales `)` (`zeros` `(` $zeros^ `)`)? $spec attr-dict
    `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
  let hasFolder = 1;
}

def QSLAW_DequantizeOp : QSLAW_Op<"dequantize"> {
  let summary = "integer codes -> float weight";
  let description = [{
    `w[n,k] = s[n,j] * (q[n,k] - z[n,j])`. This materialises the `[N, K]`
    float weight; `qslaw-fuse-dequant` folds it into `qmatmul` when it feeds
    a matmul.
  }];
  let arguments = (ins QSLAW_CodeMatrix:$codes, QSLAW_FloatMatrix:$scales,
                       Optional<QSLAW_CodeMatrix>:$zeros,
                       QSLAW_QuantSpecAttr:$spec);
  let results = (outs QSLAW_FloatMatrix:$result);
  let assemblyFormat = [{
    $codes `scales` `(` $scales `)` (`zeros` `(` $zeros^ `)`)? $spec attr-dict
    `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
  let hasFolder = 1;
  let hasCanonicalizer = 1;
}

def QSLAW_QMatmulOp : QSLAW_Op<"qmatmul", [AttrSizedOperandSegments]> {
  let summary = "activations x dequantized(codes)^T, dequantisation fused";
  let description = [{
    `y[..., n] = sum_k x[..., k] * s[n, k/G] * (q[n,k] - z[n, k/G]) (+ b[n])`
    for activations `x : [..., K]` with any leading batch dims, codes
    `[N, K]`, scales and zero points `[N, J]`, optional bias `[N]`.
    Accumulation is in f32 whatever the activation type. The `[N, K]`
    float weight is never materialised.
  }];
  let arguments = (ins QSLAW_FloatTensor:$input, QSLAW_CodeMatrix:$codes,
                       QSLAW_FloatMatrix:$scales,
                       Optional<QSLAW_CodeMatrix>:$zeros,
                       Optional<1DTensorOf<[F32, F16, BF16]>>:$bias,
                       QSLAW_QuantSpecAttr:$spec);
  let results = (outs QSLAW_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $codes `scales` `(` $scales `)` (`zeros` `(` $zeros^ `)`)?
    (`bias` `(` $bias^ `)`)? $spec attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
  let hasCanonicalizer = 1;
}

def QSLAW_QMatmulGradInputOp : QSLAW_Op<"qmatmul_grad_input"> {
  let summary = "dX = dY * dequantized(codes)";
  let description = [{
    Gradient of `qmatmul` with respect to its input:
    `dx[..., k] = sum_n dy[..., n] * s[n, k/G] * (q[n,k] - z[n, k/G])`,
    dequantisation fused into the reduction over N.
  }];
  let arguments = (ins QSLAW_FloatTensor:$grad_output, QSLAW_CodeMatrix:$codes,
                       QSLAW_FloatMatrix:$scales,
                       Optional<QSLAW_CodeMatrix>:$zeros,
                       QSLAW_QuantSpecAttr:$spec);
  let results = (outs QSLAW_FloatTensor:$result);
  let assemblyFormat = [{
    $grad_output `,` $codes `scales` `(` $scales `)` (`zeros` `(` $zeros^ `)`)?
    $spec attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def QSLAW_QMatmulGradScaleOp : QSLAW_Op<"qmatmul_grad_scale"> {
  let summary = "dL/ds per group, scale mode, without the [N, K] weight gradient";
  let description = [{
    `ds[n,j] = sum_t dy[t,n] * sum_{k in group j} x[t,k] * (q[n,k] - z[n,j])`
    over all leading (token) dims t of `x : [..., K]` and `dy : [..., N]`.
    A GEMM over tokens with a multiply-and-group-reduce epilogue: neither
    `dY^T X` nor the dequantized weight exist as `[N, K]` tensors. The spec
    must be in `scale` mode.
  }];
  let arguments = (ins QSLAW_FloatTensor:$input, QSLAW_FloatTensor:$grad_output,
                       QSLAW_CodeMatrix:$codes,
                       Optional<QSLAW_CodeMatrix>:$zeros,
                       QSLAW_QuantSpecAttr:$spec);
  let results = (outs QSLAW_FloatMatrix:$result);
  let assemblyFormat = [{
    $input `,` $grad_output `,` $codes (`zeros` `(` $zeros^ `)`)?
    $spec attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def QSLAW_QMatmulGradGammaOp : QSLAW_Op<"qmatmul_grad_gamma"> {
  let summary = "dL/dgamma per group, gamma mode (straight-through, clamp mask)";
  let description = [{
    With `u = w / (s * gamma)` and mask `m[n,k] = 0 <= round(u) + z <= qmax`:
    `dgamma[n,j] = -(1 / gamma[n,j]^2) * sum_{k in j} m[n,k] * w[n,k] *
    sum_t dy[t,n] * x[t,k]`. The token reduction and the group reduction are
    fused; no `[N, K]` gradient is materialised. The spec must be in `gamma`
    mode.
  }];
  let arguments = (ins QSLAW_FloatTensor:$input, QSLAW_FloatTensor:$grad_output,
                       QSLAW_FloatMatrix:$weight, QSLAW_FloatMatrix:$scales,
                       QSLAW_FloatMatrix:$gamma,
                       Optional<QSLAW_CodeMatrix>:$zeros,
                       QSLAW_QuantSpecAttr:$spec);
  let results = (outs QSLAW_FloatMatrix:$result);
  let assemblyFormat = [{
    $input `,` $grad_output `,` $weight `scales` `(` $scales `)` `gamma` `(` $gamma `)`
    (`zeros` `(` $zeros^ `)`)? $spec attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Training: loss and optimizer
//===----------------------------------------------------------------------===//

def QSLAW_CrossEntropyOp : QSLAW_Op<"cross_entropy"> {
  let summary = "next-token cross-entropy, mean over unmasked tokens";
  let description = [{
    `loss = sum_t [label_t != ignore] (logsumexp(x_t) - x_t[label_t]) / count`
    for logits `[..., V]` and integer labels `[...]`; `count` is the number
    of unmasked tokens (the loss is 0 when every token is masked). Labels
    outside `[0, V)` other than `ignore_index` are treated as masked.
  }];
  let arguments = (ins RankedTensorOf<[F32]>:$logits,
                       RankedTensorOf<[I64, I32]>:$labels,
                       DefaultValuedAttr<I64Attr, "-100">:$ignore_index);
  let results = (outs 0DTensorOf<[F32]>:$loss);
  let assemblyFormat = [{
    $logits `,` $labels attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def QSLAW_CrossEntropyGradOp : QSLAW_Op<"cross_entropy_grad"> {
  let summary = "dL/dlogits of qslaw.cross_entropy";
  let description = [{
    `(softmax(x_t) - onehot(label_t)) * dloss / count` for unmasked tokens,
    0 for masked ones.
  }];
  let arguments = (ins RankedTensorOf<[F32]>:$logits,
                       RankedTensorOf<[I64, I32]>:$labels,
                       0DTensorOf<[F32]>:$grad_loss,
                       DefaultValuedAttr<I64Attr, "-100">:$ignore_index);
  let results = (outs RankedTensorOf<[F32]>:$result);
  let assemblyFormat = [{
    $logits `,` $labels `,` $grad_loss attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

def QSLAW_AdamWOp : QSLAW_Op<"adamw"> {
  let summary = "one AdamW step (decoupled weight decay, bias correction)";
  let description = [{
    With step `t` (1-based) and learning rate `lr` (0-d tensors):
    `m' = b1 m + (1-b1) g`, `v' = b2 v + (1-b2) g^2`,
    `p' = p (1 - lr wd) - lr (m'/(1-b1^t)) / (sqrt(v'/(1-b2^t)) + eps)`,
    as torch.optim.AdamW.
  }];
  let arguments = (ins RankedTensorOf<[F32]>:$param, RankedTensorOf<[F32]>:$grad,
                       RankedTensorOf<[F32]>:$exp_avg,
                       RankedTensorOf<[F32]>:$exp_avg_sq,
                       0DTensorOf<[F32]>:$lr, 0DTensorOf<[F32]>:$step,
                       DefaultValuedAttr<F32Attr, "0.9">:$beta1,
                       DefaultValuedAttr<F32Attr, "0.999">:$beta2,
                       DefaultValuedAttr<F32Attr, "1e-8">:$eps,
                       DefaultValuedAttr<F32Attr, "0.0">:$weight_decay);
  let results = (outs RankedTensorOf<[F32]>:$new_param,
                      RankedTensorOf<[F32]>:$new_exp_avg,
                      RankedTensorOf<[F32]>:$new_exp_avg_sq);
  let assemblyFormat = [{
    $param `,` $grad `,` $exp_avg `,` $exp_avg_sq `lr` `(` $lr `)` `step` `(` $step `)`
    attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

#endif // QSLAW_OPS_TD
