//===- MemRefCopyToLinalg.cpp - memref.copy as linalg.copy ----------------===//
#include "qslaw/Conversion/Passes.h"

#include "mlir/Dialect/MemRef/Utils/MemRefUtils.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/WalkPatternRewriteDriver.h"

namespace mlir::qslaw {
#define GEN_PASS_DEF_MEMREFCOPYTOLINALG
#include "qslaw/Conversion/Passes.h.inc"
} // namespace mlir::qslaw

using namespace mlir;

namespace {
/// Whether the LLVM lowering copies `v` with one memcpy.
bool contiguous(Value v) {
  auto ty = dyn_cast<MemRefType>(v.getType());
  return ty && memref::isStaticShapeAndContiguousRowMajor(ty);
}

struct CopyToLinalg : OpRewritePattern<memref::CopyOp> {
  CopyToLinalg(MLIRContext *ctx, bool stridedOnly)
      : OpRewritePattern(ctx), stridedOnly(stridedOnly) {}
  LogicalResult matchAndRewrite(memref::CopyOp op,
                                PatternRewriter &rewriter) const override {
    if (stridedOnly && contiguous(op.getSource()) && contiguous(op.getTarget()))
      return rewriter.notifyMatchFailure(op, "a memcpy already");
    rewriter.replaceOpWithNewOp<linalg::CopyOp>(op, op.getSource(),
                                                op.getTarget());
    return success();
  }
  bool stridedOnly;
};

struct MemRefCopyToLinalgPass
    : qslaw::impl::MemRefCopyToLinalgBase<MemRefCopyToLinalgPass> {
  using Base::Base;
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<CopyToLinalg>(&getContext(), stridedOnly);
    walkAndApplyPatterns(getOperation(), std::move(patterns));
  }
};
} // namespace
