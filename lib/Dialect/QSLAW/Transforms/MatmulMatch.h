//===- MatmulMatch.h - recognising matmuls with a weight operand -*- C++ -*-===//
#ifndef QSLAW_LIB_DIALECT_QSLAW_TRANSFORMS_MATMULMATCH_H
#define QSLAW_LIB_DIALECT_QSLAW_TRANSFORMS_MATMULMATCH_H

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/IR/PatternMatch.h"

namespace mlir::qslaw {

/// A 2-D `linalg.matmul` `C[M,N] += A[M,K] * B` whose B is `[K, N]`
/// (default maps) or `[N, K]` (transposed-B maps).
struct MatmulView {
  linalg::MatmulOp op;
  Value input, weight, init;
  bool weightIsNK;
};
std::optional<MatmulView> matchMatmul(linalg::MatmulOp op);

/// Replaces the matmul by `product`, adding the accumulator unless it is a
/// zero fill / zero constant.
void replaceMatmul(RewriterBase &rewriter, const MatmulView &mm, Value product);

/// A float constant read widened to f32 (ONNX `Cast(to=FLOAT)` of an f16 or
/// bf16 initializer imports as an elementwise `arith.extf` of the
/// constant): the constant's op, or null. Weights stored narrow are
/// quantised, or made f32 parameters, from their own data this way,
/// without an f32 copy of the constant first.
Operation *widenedConstant(Value v);

/// The name of a NameLoc (possibly inside a FusedLoc): after import, the
/// ONNX node an op came from. Empty when there is none.
std::string locationName(Location loc);

} // namespace mlir::qslaw

#endif
