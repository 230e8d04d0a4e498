//===- TileAndVectorize.cpp - CPU tiling and vectorisation ----------------===//
#include "qslaw/Conversion/Passes.h"

#include "mlir/Dialect/Linalg/IR/LinalgInterfaces.h"
#include "mlir/Dialect/Linalg/Transforms/Transforms.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/Transforms/TileUsingInterface.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/IR/PatternMatch.h"
#include <limits>
#include <optional>
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

/// i1 (and other sub-byte) tensors are stored one element per byte, but
/// LLVM stores and loads a vector<N x i1> as packed bits: such ops stay
/// scalar.
bool hasSubByteOperand(linalg::LinalgOp op) {
  return llvm::any_of(op->getOperandTypes(), [](Type t) {
    auto st = dyn_cast<ShapedType>(t);
    return st && st.getElementType().isIntOrFloat() &&
           st.getElementType().getIntOrFloatBitWidth() < 8;
  });
}

/// Math functions that stay in vector registers: LLVM intrinsics with
/// vector forms, and f32 exp/erf/tanh (polynomials, qslaw-vector-math).
/// Others (integer powers, f64 or f16 transcendental functions, ...) would
/// be one library call per lane - or have no vector lowering at all - so
/// ops using them stay scalar.
bool hasScalarOnlyMath(linalg::LinalgOp op) {
  return op->walk([](Operation *o) {
             if (o->getDialect() != o->getContext()->getLoadedDialect<
                                        math::MathDialect>())
               return WalkResult::advance();
             if (isa<math::SqrtOp, math::RsqrtOp, math::AbsFOp, math::FmaOp,
                     math::FloorOp, math::CeilOp, math::RoundEvenOp,
                     math::RoundOp, math::CopySignOp, math::TruncOp>(o))
               return WalkResult::advance();
             if (isa<math::ExpOp, math::ErfOp, math::TanhOp>(o) &&
                 o->getResult(0).getType().isF32())
               return WalkResult::advance();
             return WalkResult::interrupt();
           })
      .wasInterrupted();
}

/// The largest divisor of `n` that is at most `limit` (>= 1).
int64_t largestDivisorAtMost(int64_t n, int64_t limit) {
  for (int64_t d = std::min(n, limit); d > 1; --d)
    if (n % d == 0)
      return d;
  return 1;
}

/// Tiles for every op that is not a register-tiled contraction: each tile
/// is one row of the innermost loop, so that its shape is static (no
/// partial tiles, which the vectorizer would skip) and the vector runs
/// along the innermost loop - the contiguous dim for identity maps, and
/// the reduced dim of row reductions (softmax, norms). The innermost loop
/// keeps its full extent up to `inner` elements, else takes the largest
/// divisor of it up to `inner` (a prime extent above `inner` keeps its
/// full length up to 4 * `inner` rather than going scalar). Every other
/// loop, parallel or reduction (reductions accumulate in place), is tiled
/// by 1. Loops under compound index expressions stay whole (0).
SmallVector<int64_t> rowTiles(linalg::LinalgOp op,
                              const llvm::SmallBitVector &compound,
                              int64_t inner) {
  SmallVector<int64_t> ranges = op.getStaticLoopRanges();
  int64_t n = ranges.size();
  SmallVector<int64_t> t(n, 1);
  for (int64_t i = 0; i < n; ++i)
    if (compound.test(i) || ShapedType::isDynamic(ranges[i]))
      t[i] = 0;
  if (n == 0 || t[n - 1] == 0)
    return t;
  int64_t e = ranges[n - 1];
  int64_t d = largestDivisorAtMost(e, inner);
  if (e <= inner || (d * 8 < inner && e <= 4 * inner))
    t[n - 1] = 0; // whole
  else
    t[n - 1] = d;
  return t;
}

/// The M, N, K loops of a contraction that gets register tiles (one loop
/// each), or failure.
FailureOr<linalg::ContractionDimensions>
registerTiledContraction(linalg::LinalgOp op) {
  if (!allProjectedPermutations(op))
    return failure();
  FailureOr<linalg::ContractionDimensions> cdims =
      linalg::inferContractionDims(op);
  if (failed(cdims) || cdims->m.size() != 1 || cdims->n.size() != 1 ||
      cdims->k.size() != 1)
    return failure();
  return cdims;
}

bool isContraction(linalg::LinalgOp op) {
  return succeeded(registerTiledContraction(op));
}

/// Vector lanes the innermost tiles are made multiples of: 16 f32 is one
/// AVX-512 register (two AVX2 ones).
constexpr int64_t kLanes = 16;
constexpr int64_t kMinSplitRow = 4 * kLanes;

/// Where to split `op`'s innermost loop so that its rows are multiples of
/// kLanes: an extent of more than 4 kLanes that is not a multiple of it, and
/// whose row tile (rowTiles) would not be either - e.g. the 197 tokens of a
/// ViT (the [heads, 197, 197] softmax). A row of odd length becomes a vector
/// LLVM legalises element by element through the stack (a [6, 197, 197]
/// softmax took 9.4 ms, not ~0.1); split at 192, the main part gets
/// 64-wide tiles and the 5-wide rest is short. None for ops rowTiles keeps
/// whole for other reasons (compound or dynamic innermost loop).
std::optional<int64_t> innermostSplit(linalg::LinalgOp op,
                                      ArrayRef<int64_t> tiles) {
  SmallVector<int64_t> ranges = op.getStaticLoopRanges();
  if (ranges.empty() || !allProjectedPermutations(op))
    return std::nullopt;
  int64_t e = ranges.back(), t = tiles.back();
  // Short rows (up to 4 vectors) stay whole: there the extra op and loop
  // of a split cost more than the odd vector (the tiny fixtures' 17 and 40
  // token rows got 5-10 % slower).
  if (ShapedType::isDynamic(e) || e <= kMinSplitRow || e % kLanes == 0)
    return std::nullopt;
  if (t != 0 && t % kLanes == 0) // tiled by a multiple of kLanes already
    return std::nullopt;
  if (t == 0 && loopsInCompoundExprs(op).test(ranges.size() - 1))
    return std::nullopt;
  return e - e % kLanes;
}

struct TileAndVectorizePass
    : qslaw::impl::TileAndVectorizeBase<TileAndVectorizePass> {
  using Base::Base;

  /// Tiles `op` by `sizes`. With `parallel`, an op of at least
  /// `parallelMinWork` iterations gets its tiled parallel loops as one
  /// `scf.forall` (threads, after bufferization: scf-forall-to-parallel,
  /// convert-scf-to-openmp) and its tiled reduction loops as `scf.for`
  /// inside it; otherwise every tiled loop is an `scf.for`.
  FailureOr<Operation *> tile(RewriterBase &rewriter, linalg::LinalgOp op,
                              ArrayRef<OpFoldResult> sizes) {
    SmallVector<int64_t> ranges = op.getStaticLoopRanges();
    int64_t work = 1;
    for (int64_t r : ranges)
      work = ShapedType::isDynamic(r) ? std::numeric_limits<int64_t>::max()
                                      : work * r;
    auto its = op.getIteratorTypesArray();
    SmallVector<OpFoldResult> par(sizes), red(sizes);
    bool anyParallel = false;
    for (auto [i, it] : llvm::enumerate(its)) {
      bool isPar = it == utils::IteratorType::parallel;
      (isPar ? red : par)[i] = rewriter.getIndexAttr(0);
      if (isPar && getConstantIntValue(sizes[i]) != 0 &&
          ranges[i] != 1)
        anyParallel = true;
    }
    bool threads = parallel && anyParallel && work >= parallelMinWork;
    rewriter.setInsertionPoint(op);
    scf::SCFTilingOptions opts;
    opts.setTileSizes(threads ? par : SmallVector<OpFoldResult>(sizes));
    if (threads)
      opts.setLoopType(scf::SCFTilingOptions::LoopType::ForallOp);
    FailureOr<scf::SCFTilingResult> res = scf::tileUsingSCF(
        rewriter, cast<TilingInterface>(op.getOperation()), opts);
    if (failed(res))
      return failure();
    rewriter.replaceOp(op, res->replacements);
    Operation *tiled = res->tiledOps.front();
    if (!threads || llvm::all_of(red, [](OpFoldResult f) {
          return getConstantIntValue(f) == 0;
        }))
      return tiled;
    scf::SCFTilingOptions inner;
    inner.setTileSizes(red);
    rewriter.setInsertionPoint(tiled);
    FailureOr<scf::SCFTilingResult> res2 = scf::tileUsingSCF(
        rewriter, cast<TilingInterface>(tiled), inner);
    if (failed(res2))
      return tiled;
    rewriter.replaceOp(tiled, res2->replacements);
    return res2->tiledOps.front();
  }
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
    if (tileSize > 0) { // split odd innermost loops first (innermostSplit)
      SmallVector<linalg::LinalgOp> parts;
      for (linalg::LinalgOp op : ops) {
        std::optional<int64_t> at;
        if (!isContraction(op))
          at = innermostSplit(op, rowTiles(op, loopsInCompoundExprs(op),
                                           tileSize));
        if (!at) {
          parts.push_back(op);
          continue;
        }
        rewriter.setInsertionPoint(op);
        auto [head, rest] = linalg::splitOp(
            rewriter, cast<TilingInterface>(op.getOperation()),
            op.getNumLoops() - 1, rewriter.getIndexAttr(*at));
        if (!head || !rest) {
          parts.push_back(op);
          continue;
        }
        parts.push_back(cast<linalg::LinalgOp>(head.getOperation()));
        parts.push_back(cast<linalg::LinalgOp>(rest.getOperation()));
      }
      ops = std::move(parts);
    }
    for (linalg::LinalgOp op : ops) {
      Operation *tiled = op;
      if (tileSize > 0) {
        llvm::SmallBitVector compound = loopsInCompoundExprs(op);
        SmallVector<OpFoldResult> sizes;
        if (FailureOr<linalg::ContractionDimensions> cdims =
                registerTiledContraction(op);
            succeeded(cdims)) {
          // Register tiles for contractions: 8 (M) x 32 (N) accumulators,
          // one K step per vectorized outer product, batch dims one by one.
          SmallVector<int64_t> t(op.getNumLoops(), 1);
          t[cdims->m[0]] = 8;
          t[cdims->n[0]] = 32;
          for (int64_t v : t)
            sizes.push_back(rewriter.getIndexAttr(v));
        } else {
          SmallVector<int64_t> t = rowTiles(op, compound, tileSize);
          for (int64_t v : t)
            sizes.push_back(rewriter.getIndexAttr(v));
        }
        FailureOr<Operation *> t = tile(rewriter, op, sizes);
        if (failed(t))
          op.emitWarning("qslaw-tile-and-vectorize: tiling failed; left as is");
        else
          tiled = *t;
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
      if (hasSubByteOperand(linalgOp) || hasScalarOnlyMath(linalgOp) ||
          failed(linalg::vectorizeOpPrecondition(op)))
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
