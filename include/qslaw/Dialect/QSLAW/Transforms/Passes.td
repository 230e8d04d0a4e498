#ifndef QSLAW_TRANSFORMS_PASSES_TD
#define QSLAW_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def QuantizeWeights : Pass<"qslaw-quantize-weights", "ModuleOp"> {
  let summary = "Quantize constant matmul weights into codes, scales and zero points";
  let description = [{
    Every `linalg.matmul` whose right-hand side is a constant float weight
    `[K, N]` (ONNX layout) or, with transposed-B indexing maps, `[N, K]`, and
    whose weight name matches `layers`, becomes `qslaw.qmatmul` over
    constant codes, scales (and zero points). Initialisation is min-max
    (RTN) per group, optionally refined by a reconstruction-error clipping
    search (`clip-steps`). `layers` is matched (whole string) against the
    weight's name — its defining op's `qslaw.name` attribute, else its
    `NameLoc` — or the matmul's own `NameLoc` (the ONNX node name), since
    exporters often give weights generated names.

    In `gamma` mode the float weight is kept and the codes are recomputed
    by `qslaw.quantize(W, s * gamma)` with `gamma` initialised to ones. W is
    an `[N, K]` f32 constant, a copy when the model stores `[K, N]` (an
    ONNX MatMul initializer) or f16/bf16. With `gamma-weight-as-stored` the
    weight stays the model's own constant, never copied (an f16/bf16 one
    not widened: the quantize reads it in its own type), and a `[K, N]`
    one reaches the quantize through a `linalg.transpose`: for a training
    step on the CPU, whose kernels read that transpose as strides and widen
    as they read (`qslaw-lower-to-ukernels`). (Without training the codes
    fold to constants, which needs W constant; the CUDA kernels take
    `[N, K]` f32.)
  }];
  let options = [
    Option<"bits", "bits", "unsigned", "4", "Code bit width (2, 3, 4 or 8)">,
    Option<"groupSize", "group-size", "int64_t", "128",
           "Group size along K; 0 means one group per row (per-channel)">,
    Option<"symmetric", "symmetric", "bool", "false",
           "Symmetric quantisation (zero point fixed at 2^(bits-1))">,
    Option<"mode", "mode", "std::string", "\"scale\"",
           "Trainable formulation: 'scale' or 'gamma'">,
    Option<"layers", "layers", "std::string", "\".*\"",
           "Regex over weight names selecting the layers to quantize">,
    Option<"clipSteps", "clip-steps", "int", "0",
           "Clipping-search candidates per group (0: plain min-max)">,
    Option<"gammaWeightAsStored", "gamma-weight-as-stored", "bool", "false",
           "Gamma mode: keep the weight as the model stores it (its type, "
           "a [K, N] one behind a linalg.transpose) instead of copying it "
           "into [N, K] f32">,
  ];
  let dependentDialects = ["::mlir::qslaw::QSLAWDialect",
                           "::mlir::arith::ArithDialect",
                           "::mlir::linalg::LinalgDialect"];
}

def FuseDequant : Pass<"qslaw-fuse-dequant", "ModuleOp"> {
  let summary = "Fold dequantisation feeding a matmul into qslaw.qmatmul";
  let description = [{
    Rewrites `linalg.matmul(x, W)` into `qslaw.qmatmul` when `W` (`[K, N]`,
    or `[N, K]` with transposed-B maps, possibly through `linalg.transpose`)
    is produced by

    * `qslaw.dequantize(codes, scales, zeros)`, or
    * an equivalent dequantisation `linalg.generic` over integer codes
      `[N, K]` and per-group scales / zero points `[N, J]` (indexing maps
      `(n, k) -> (n, k floordiv G)`), whose body is
      `(uitofp(q) - uitofp(z)) * s` or `s * (uitofp(q) - uitofp(z))`
      (asymmetric), or `(uitofp(q) - 2^(bits-1)) * s` (symmetric); an
      `arith.extui` may precede each `uitofp`.

    The accumulator of the matmul is added when it is not a zero fill.
  }];
  let dependentDialects = ["::mlir::qslaw::QSLAWDialect",
                           "::mlir::arith::ArithDialect"];
}

def InsertLora : Pass<"qslaw-insert-lora", "ModuleOp"> {
  let summary = "Add a trainable low-rank adapter beside linear layers";
  let description = [{
    For every `qslaw.qmatmul` whose layer (`qslaw.layer`) matches `layers`,
    and every float `linalg.matmul` by a constant weight whose weight name
    (`qslaw.name`, else its NameLoc) or node name matches (full-precision
    LoRA, named as `qslaw-quantize-weights` names layers), adds the LoRA
    branch of PEFT: `y' = y + (alpha / rank) * (x A^T) B^T`
    with `A : [rank, K]` drawn from Kaiming-uniform (PEFT's
    `kaiming_uniform_(a = sqrt(5))`, i.e. `U(-1/sqrt(K), 1/sqrt(K))`, from
    a splitmix64 stream of `seed` and the layer name) and `B : [N, rank]`
    zero, so the model's output is unchanged until `B` trains. `A` and `B`
    are `f32` constants named `<layer>.lora_A` / `<layer>.lora_B` and marked
    `qslaw.lora`; `qslaw-make-train-step` makes them trainable (kinds
    `lora_A`, `lora_B`). The codes and scales are untouched and keep their
    fused kernels. The branch is two contractions and one elementwise add,
    as `linalg.generic` ops over the activations' leading dimensions.

    Errors: a regex that is invalid or selects no linear layer, `rank`
    outside [1, min(N, K)] (naming the layer), `alpha` not finite.
  }];
  let options = [
    Option<"layers", "layers", "std::string", "\".*\"",
           "Regex over qslaw.layer names that get an adapter">,
    Option<"rank", "rank", "int64_t", "8", "Adapter rank r">,
    Option<"alpha", "alpha", "double", "16.0",
           "Adapter scale numerator: the branch is multiplied by alpha/r">,
    Option<"seed", "seed", "uint64_t", "0", "Seed of A's initialisation">,
  ];
  let dependentDialects = ["::mlir::qslaw::QSLAWDialect",
                           "::mlir::arith::ArithDialect",
                           "::mlir::linalg::LinalgDialect",
                           "::mlir::tensor::TensorDialect"];
}

def MakeTrainStep : Pass<"qslaw-make-train-step", "ModuleOp"> {
  let summary = "Reverse-mode AD of the forward function: QSLAW train step";
  let description = [{
    From the forward function `entry` (inputs -> logits first), builds

    * `@init_params() -> (params...)`: the initial values of the trainable
      tensors (the constants they replace);
    * `@forward_params(params..., inputs...) -> results`: the forward with
      the trainable tensors as arguments;
    * `@grad_step(params..., inputs..., labels) -> (loss, grads...)`;
    * `@train_step(params..., exp_avg..., exp_avg_sq..., lrs, step,
      inputs..., labels) -> (loss, grad_sq_norm, params'..., exp_avg'...,
      exp_avg_sq'...)`: loss, gradients and one `qslaw.adamw` per trainable
      tensor (those of `@apply_step`, which it calls); `lrs : tensor<P x
      f32>` holds one learning rate per trainable tensor (schedules stay on
      the host), `step` is the 1-based step.

    The model is cloned twice, into `@forward_params` and `@grad_step`:
    `@train_step` calls `@grad_step` and then `@apply_step` with the
    gradients, and `entry` itself becomes a call of `@forward_params` with
    the initial values, so that the library holds one forward, one backward
    and one optimizer step however many entries use them.

    Trainable: the scales of every `qslaw.qmatmul` whose layer (its
    `qslaw.layer` attribute) matches `scales` — `s` itself in `scale` mode,
    `gamma` in `gamma` mode (through `qslaw.quantize(W, s * gamma)`, whose
    gradient is the fused `qslaw.qmatmul_grad_gamma`) — and every float
    constant whose `qslaw.name` matches `params`. Everything else is frozen;
    only values that depend on a trainable tensor get a gradient (activity
    analysis), so a frozen vision tower costs no backward work.

    Derivative rules: `linalg.generic` (named linalg ops are generalised
    first) — any body of arith/math ops over projected-permutation maps,
    elementwise or reducing with `addf`/`maximumf`/`minimumf`; tensor
    reshapes, slices, inserts and concats; `qslaw.qmatmul` through the fused
    gradient ops; the importer's masked-scatter scan. Any other op on the
    gradient path is an error naming it.

    Loss `next-token-ce`: logits `[B, T, V]` and a new `labels : [B, T]`
    argument (i64, -100 ignored), `cross_entropy(logits[:, :-1],
    labels[:, 1:])`. Loss `sum-squares` (`sum(y^2)` of the first
    result) serves derivative tests on small graphs.
  }];
  let options = [
    Option<"entry", "entry", "std::string", "\"forward\"",
           "Forward function">,
    Option<"scales", "scales", "std::string", "\".*\"",
           "Regex over qslaw.layer names whose scales (or gamma) train; "
           "empty: none">,
    Option<"scaleStartLayer", "scale-start-layer", "int64_t", "-1",
           "Only decoder layers i > N (the index after 'layers.' in the "
           "layer name) train their scales, as the reference's "
           "--start_layer N (which uses 5); -1: every selected layer">,
    Option<"params", "params", "std::string",
           "\".*multi_modal_projector.*\"",
           "Regex over qslaw.name of float constants that train; empty: none">,
    Option<"loss", "loss", "std::string", "\"next-token-ce\"",
           "'next-token-ce' or 'sum-squares'">,
    Option<"optimizer", "optimizer", "std::string", "\"adamw\"",
           "'adamw' (emit @train_step) or 'none' (gradients only)">,
    Option<"beta1", "beta1", "float", "0.9f", "AdamW beta1">,
    Option<"beta2", "beta2", "float", "0.999f", "AdamW beta2">,
    Option<"eps", "eps", "float", "1e-8f", "AdamW epsilon">,
    Option<"weightDecay", "weight-decay", "float", "0.0f",
           "AdamW decoupled weight decay">,
  ];
  let dependentDialects = ["::mlir::qslaw::QSLAWDialect",
                           "::mlir::arith::ArithDialect",
                           "::mlir::math::MathDialect",
                           "::mlir::linalg::LinalgDialect",
                           "::mlir::scf::SCFDialect",
                           "::mlir::tensor::TensorDialect",
                           "::mlir::func::FuncDialect"];
}

#endif // QSLAW_TRANSFORMS_PASSES_TD
