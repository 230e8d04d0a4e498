//===- TileAndVectorize.cpp - CPU tiling and vectorisation ----------------===//
#include "qslaw/Conversion/Passes.h"

#include "mlir/Dialect/Linalg/IR/LinalgInterfaces.h"
#include "mlir/Dialect/Linalg/Transforms/Transforms.h"
#include "mlir/Dialect/SCF/Transforms/TileUsingInterface.h"
#include "mlir/IR/PatternMatch.h"
#include "llvm/ADT/SmallBitVector.h"

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

/// Loops that some indexing map uses inside a compound expression (e.g. the
/// group index `k floordiv G`). Tiling them would be unsound: the tiled op
/// keeps the map but sees tile-local indices.
llvm::SmallBitVector loopsInCompoundExprs(linalg::LinalgOp op) {
  llvm::SmallBitVector used(op.getNumLoops());
  for (AffineMap m : op.getIndexingMapsArray())
    for (AffineExpr e : m.getResults())
      if (!isa<AffineDimExpr, AffineConstantExpr>(e))
        e.walk([&](AffineExpr sub) {
          if (auto d = dyn_cast<AffineDimExpr>(sub))
            used.set(d.getPosition());
        });
  return used;
}

struct TileAndVectorizePass
    : qslaw::impl::TileAndVectorizeBase<TileAndVectorizePass> {
  using Base::Base;
  void runOnOperation() override {
    if (tileSize < 0) {
      getOperation().emitError("qslaw-tile-and-vectorize: tile-size must be "
                               ">= 0 (0 disables tiling), got ")
          << static_cast<int64_t>(tileSize);
      return signalPassFailure();
    }
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
        llvm::SmallBitVector compound = loopsInCompoundExprs(op);
        SmallVector<OpFoldResult> sizes;
        FailureOr<linalg::ContractionDimensions> cdims = failure();
        if (allProjectedPermutations(op))
          cdims = linalg::inferContractionDims(op);
        if (succeeded(cdims) && cdims->m.size() == 1 && cdims->n.size() == 1 &&
            cdims->k.size() == 1) {
          // Register tiles for contractions: 8 (M) x 32 (N) accumulators,
          // one K step per vectorized outer product, batch dims one by one.
          SmallVector<int64_t> t(op.getNumLoops(), 1);
          t[cdims->m[0]] = 8;
          t[cdims->n[0]] = 32;
          for (int64_t v : t)
            sizes.push_back(rewriter.getIndexAttr(v));
        } else {
          for (auto [i, it] : llvm::enumerate(op.getIteratorTypesArray()))
            sizes.push_back(rewriter.getIndexAttr(
                it == utils::IteratorType::parallel && !compound.test(i)
                    ? tileSize
                    : 0));
        }
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
