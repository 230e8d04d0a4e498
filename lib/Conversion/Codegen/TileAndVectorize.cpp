//===- TileAndVectorize.cpp - CPU tiling and vectorisation ----------------===//
#include "qslaw/Conversion/Passes.h"

#include "mlir/Dialect/Linalg/Transforms/Transforms.h"
#include "mlir/Dialect/SCF/Transforms/TileUsingInterface.h"
#include "mlir/IR/PatternMatch.h"

namespace mlir::qslaw {
#define GEN_PASS_DEF_TILEANDVECTORIZE
#include "qslaw/Conversion/Passes.h.inc"
} // namespace mlir::qslaw

using namespace mlir;

namespace {
bool allProjectedPermutations(linalg::LinalgOp op) {
  return llvm::all_of(op.getIndexingMapsArray(), [](AffineMap m) {
    return m.isProjectedPermutation(/*allowZeroInResults=*/true);
  });
}

struct TileAndVectorizePass
    : qslaw::impl::TileAndVectorizeBase<TileAndVectorizePass> {
  using Base::Base;
  void runOnOperation() override {
    IRRewriter rewriter(&getContext());
    SmallVector<linalg::LinalgOp> ops;
    getOperation().walk([&](linalg::LinalgOp op) {
      if (op.hasPureTensorSemantics() && !isa<linalg::FillOp>(op))
        ops.push_back(op);
    });
    SmallVector<Operation *> toVectorize;
    for (linalg::LinalgOp op : ops) {
      Operation *tiled = op;
      if (tileSize > 0) {
        SmallVector<OpFoldResult> sizes;
        for (utils::IteratorType it : op.getIteratorTypesArray())
          sizes.push_back(rewriter.getIndexAttr(
              it == utils::IteratorType::parallel ? tileSize : 0));
        scf::SCFTilingOptions opts;
        opts.setTileSizes(sizes);
        rewriter.setInsertionPoint(op);
        FailureOr<scf::SCFTilingResult> res = scf::tileUsingSCF(
            rewriter, cast<TilingInterface>(op.getOperation()), opts);
        if (failed(res)) {
          op.emitWarning("qslaw-tile-and-vectorize: tiling failed; left as is");
        } else {
          rewriter.replaceOp(op, res->replacements);
          tiled = res->tiledOps.front();
        }
      }
      toVectorize.push_back(tiled);
    }
    if (!vectorize)
      return;
    for (Operation *op : toVectorize) {
      auto linalgOp = dyn_cast<linalg::LinalgOp>(op);
      if (!linalgOp || !linalgOp.hasPureTensorSemantics() ||
          !allProjectedPermutations(linalgOp) ||
          linalgOp.hasDynamicShape())
        continue;
      if (failed(linalg::vectorizeOpPrecondition(op)))
        continue;
      rewriter.setInsertionPoint(op);
      FailureOr<linalg::VectorizationResult> vr =
          linalg::vectorize(rewriter, op);
      if (succeeded(vr))
        rewriter.replaceOp(op, vr->replacements);
    }
  }
};
} // namespace
