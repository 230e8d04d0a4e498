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
    by `qslaw.quantize(W, s * gamma)` with `gamma` initialised to ones.
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

#endif // QSLAW_TRANSFORMS_PASSES_TD
