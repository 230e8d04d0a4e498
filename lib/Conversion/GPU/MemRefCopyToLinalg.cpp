//===- MemRefCopyToLinalg.cpp - memref.copy as linalg.copy or row vectors -===//
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

/// The longest innermost run copied as one vector.
constexpr int64_t kMaxRowVector = 1024;

/// Whether `ty` is a static memref of rank >= 1 whose innermost dimension
/// is a contiguous run (unit stride) of at most kMaxRowVector elements of
/// a type a vector load reads as bytes (not i1: LLVM packs vectors of i1).
bool rowVectorizable(MemRefType ty) {
  return ty.hasStaticShape() && ty.getRank() >= 1 &&
         ty.getShape().back() <= kMaxRowVector &&
         ty.getElementType().isIntOrFloat() &&
         ty.getElementTypeBitWidth() >= 8 && ty.isLastDimUnitStride();
}

struct CopyToLinalg : OpRewritePattern<memref::CopyOp> {
  CopyToLinalg(MLIRContext *ctx, bool stridedOnly, bool rowVectors,
               int64_t parallelMinElems)
      : OpRewritePattern(ctx), stridedOnly(stridedOnly),
        rowVectors(rowVectors), parallelMinElems(parallelMinElems) {}

  LogicalResult matchAndRewrite(memref::CopyOp op,
                                PatternRewriter &rewriter) const override {
    if (stridedOnly && contiguous(op.getSource()) && contiguous(op.getTarget()))
      return rewriter.notifyMatchFailure(op, "a memcpy already");
    auto src = cast<MemRefType>(op.getSource().getType());
    auto dst = cast<MemRefType>(op.getTarget().getType());
    if (rowVectors && rowVectorizable(src) && rowVectorizable(dst)) {
      rewriteAsRowVectors(op, src, rewriter);
      return success();
    }
    rewriter.replaceOpWithNewOp<linalg::CopyOp>(op, op.getSource(),
                                                op.getTarget());
    return success();
  }

  /// for (outer indices) { v = vector.load src[i.., 0]; store v dst[i.., 0] }
  void rewriteAsRowVectors(memref::CopyOp op, MemRefType ty,
                           PatternRewriter &rewriter) const {
    Location loc = op.getLoc();
    ArrayRef<int64_t> shape = ty.getShape();
    auto vecTy = VectorType::get({shape.back()}, ty.getElementType());
    Value src = op.getSource(), dst = op.getTarget();
    Value zero = arith::ConstantIndexOp::create(rewriter, loc, 0);
    auto copyRow = [&](OpBuilder &b, Location l, ValueRange outer) {
      SmallVector<Value> idx(outer.begin(), outer.end());
      idx.push_back(zero);
      Value row = vector::LoadOp::create(b, l, vecTy, src, idx);
      vector::StoreOp::create(b, l, row, dst, idx);
    };
    const int64_t rank = ty.getRank();
    if (rank == 1) {
      copyRow(rewriter, loc, {});
      rewriter.eraseOp(op);
      return;
    }
    Value one = arith::ConstantIndexOp::create(rewriter, loc, 1);
    SmallVector<Value> lbs(rank - 1, zero), steps(rank - 1, one), ubs;
    for (int64_t d = 0; d + 1 < rank; ++d)
      ubs.push_back(arith::ConstantIndexOp::create(rewriter, loc, shape[d]));
    if (parallelMinElems > 0 && ty.getNumElements() >= parallelMinElems) {
      scf::ParallelOp::create(rewriter, loc, lbs, ubs, steps,
                              [&](OpBuilder &b, Location l, ValueRange iv) {
                                copyRow(b, l, iv);
                              });
    } else {
      scf::buildLoopNest(rewriter, loc, lbs, ubs, steps,
                         [&](OpBuilder &b, Location l, ValueRange iv) {
                           copyRow(b, l, iv);
                         });
    }
    rewriter.eraseOp(op);
  }

  bool stridedOnly, rowVectors;
  int64_t parallelMinElems;
};

struct MemRefCopyToLinalgPass
    : qslaw::impl::MemRefCopyToLinalgBase<MemRefCopyToLinalgPass> {
  using Base::Base;
  void runOnOperation() override {
    if (parallelMinElems < 0) {
      getOperation().emitError()
          << "qslaw-memref-copy-to-linalg: parallel-min-elems must be >= 0 "
             "(0: never parallel), got "
          << static_cast<int64_t>(parallelMinElems);
      return signalPassFailure();
    }
    RewritePatternSet patterns(&getContext());
    patterns.add<CopyToLinalg>(&getContext(), stridedOnly, rowVectors,
                               parallelMinElems);
    walkAndApplyPatterns(getOperation(), std::move(patterns));
  }
};
} // namespace
