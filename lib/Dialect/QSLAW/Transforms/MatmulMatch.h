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

/// The name of a NameLoc (possibly inside a FusedLoc): after import, the
/// ONNX node an op came from. Empty when there is none.
std::string locationName(Location loc);

} // namespace mlir::qslaw

#endif
