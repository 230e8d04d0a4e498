//===- Passes.h - qslaw conversion passes -----------------------*- C++ -*-===//
#ifndef QSLAW_CONVERSION_PASSES_H
#define QSLAW_CONVERSION_PASSES_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/UB/IR/UBOps.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"

namespace mlir::qslaw {
#define GEN_PASS_DECL
#include "qslaw/Conversion/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "qslaw/Conversion/Passes.h.inc"

/// The private `llvm.emit_c_interface` declaration of microkernel entry
/// `name` taking `args` (no results), created at the top of `module` unless
/// it exists. Shared by qslaw-lower-to-ukernels and the emulation's
/// redirection of CUDA kernel calls.
func::FuncOp declareUkernel(ModuleOp module, OpBuilder &b, StringRef name,
                            TypeRange args);

/// The CPU microkernel entries called by qslaw-lower-to-ukernels; each takes
/// a trailing i32 thread count. Every width in {2, 3, 4, 8} has
/// qslaw_ukernel_qmatmul_w<B>_f32, ..._w<B>_grad_input_f32,
/// ..._w<B>_grad_scale_f32, ..._w<B>_grad_gamma_f32 and
/// qslaw_ukernel_quantize_w<B>_f32 (cpuUkernelName); the 4-bit names are
/// spelled out for the CUDA emulation's redirection.
std::string cpuUkernelName(StringRef kind, unsigned bits);
inline constexpr const char *kQMatmulW4F32Ukernel =
    "qslaw_ukernel_qmatmul_w4_f32";
inline constexpr const char *kQMatmulW4GradInputUkernel =
    "qslaw_ukernel_qmatmul_w4_grad_input_f32";
inline constexpr const char *kQMatmulW4GradScaleUkernel =
    "qslaw_ukernel_qmatmul_w4_grad_scale_f32";
inline constexpr const char *kQMatmulW4GradGammaUkernel =
    "qslaw_ukernel_qmatmul_w4_grad_gamma_f32";
/// Batched f32 GEMM over the build's GEMM library
/// (qslaw-lower-contractions-to-library).
inline constexpr const char *kSgemmF32Ukernel = "qslaw_ukernel_sgemm_f32";
/// The same over the rows an i8 mask selects (the others are zero, or kept
/// when accumulating): a training step's language-model head, rows whose
/// label counts.
inline constexpr const char *kSgemmRowsF32Ukernel =
    "qslaw_ukernel_sgemm_rows_f32";
/// A training step's next-token loss and its gradient over the rows whose
/// label counts (qslaw-lower-cross-entropy-to-ukernels).
inline constexpr const char *kCrossEntropyF32Ukernel =
    "qslaw_ukernel_cross_entropy_f32";
inline constexpr const char *kCrossEntropyGradF32Ukernel =
    "qslaw_ukernel_cross_entropy_grad_f32";
/// Set on a `qslaw.cross_entropy_grad` whose only reader is the head's
/// input-gradient GEMM over the counted rows (qslaw-lower-contractions-to-
/// library): the kernel then leaves the ignored rows unwritten.
inline constexpr const char *kIgnoredRowsUnreadAttr =
    "qslaw.ignored_rows_unread";
/// The hand-written CUDA kernels' entries (qslaw-lower-to-ukernels
/// target=cuda): the CPU signatures plus a trailing i32 activation type
/// (0 bf16, 1 f16; the forward's last i32 is that type, not a thread count).
inline constexpr const char *kCudaQMatmulW4F32Kernel =
    "qslaw_cuda_qmatmul_w4_f32";
inline constexpr const char *kCudaQMatmulW4GradInputKernel =
    "qslaw_cuda_qmatmul_w4_grad_input_f32";
inline constexpr const char *kCudaQMatmulW4GradScaleKernel =
    "qslaw_cuda_qmatmul_w4_grad_scale_f32";
inline constexpr const char *kCudaQMatmulW4GradGammaKernel =
    "qslaw_cuda_qmatmul_w4_grad_gamma_f32";
} // namespace mlir::qslaw

#endif // QSLAW_CONVERSION_PASSES_H
