//===- VectorMath.cpp - fast vector reductions and math functions ---------===//
//
// Two things stand between vectorised row ops (softmax, norms, GELU, SiLU)
// and the machine's vector units after qslaw-tile-and-vectorize:
//  - a float vector.reduction without `reassoc` must add its lanes in
//    order, which LLVM emits as a scalar chain (one vaddss per element);
//    with it, a tree of vector adds and one horizontal step;
//  - math.exp/erf/tanh on vectors become one libm call per lane; MLIR's
//    polynomial approximations keep them in vector registers.
// Both change rounding only (docs/Pipeline.md gives the measured error).
//
//===----------------------------------------------------------------------===//
#include "qslaw/Conversion/Passes.h"

#include "mlir/Dialect/Math/Transforms/Passes.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::qslaw {
#define GEN_PASS_DEF_VECTORMATH
#include "qslaw/Conversion/Passes.h.inc"
} // namespace mlir::qslaw

using namespace mlir;

namespace {
struct VectorMathPass : qslaw::impl::VectorMathBase<VectorMathPass> {
  using Base::Base;
  void runOnOperation() override {
    getOperation().walk([](vector::ReductionOp op) {
      if (!isa<FloatType>(op.getDest().getType()))
        return;
      op.setFastmath(op.getFastmath() | arith::FastMathFlags::reassoc);
    });
    if (!approximate)
      return;
    RewritePatternSet patterns(&getContext());
    populateMathPolynomialApproximationPatterns(
        patterns, [](StringRef name) {
          return name == "math.exp" || name == "math.erf" ||
                 name == "math.tanh";
        });
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      return signalPassFailure();
  }
};
} // namespace
