//===- FuseDequant.cpp - dequantize -> matmul becomes qslaw.qmatmul -------===//
#include "MatmulMatch.h"
#include "qslaw/Dialect/QSLAW/IR/QSLAWOps.h"
#include "qslaw/Dialect/QSLAW/Transforms/Passes.h"

#include "mlir/IR/Matchers.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::qslaw {
#define GEN_PASS_DEF_FUSEDEQUANT
#include "qslaw/Dialect/QSLAW/Transforms/Passes.h.inc"
} // namespace mlir::qslaw

using namespace mlir;
using namespace mlir::qslaw;

namespace {

/// What a dequantisation producing an [N, K] float weight reads.
struct DequantSource {
  Value codes, scales, zeros;
  QuantSpecAttr spec;
};

/// `v` as an unsigned-integer-to-float conversion of a block argument
/// (uitofp, optionally after extui); returns the argument.
BlockArgument convertedArg(Value v) {
  auto cvt = v.getDefiningOp<arith::UIToFPOp>();
  if (!cvt)
    return {};
  Value src = cvt.getIn();
  if (auto ext = src.getDefiningOp<arith::ExtUIOp>())
    src = ext.getIn();
  return dyn_cast<BlockArgument>(src);
}

/// Group size G from a map (d0, d1) -> (d0, d1 floordiv G) or per-channel
/// (d0, 0); nullopt otherwise. 0 means per-channel.
std::optional<int64_t> groupFromMap(AffineMap map) {
  if (map.getNumDims() != 2 || map.getNumResults() != 2 ||
      map.getResult(0) != getAffineDimExpr(0, map.getContext()))
    return std::nullopt;
  AffineExpr e = map.getResult(1);
  if (auto c = dyn_cast<AffineConstantExpr>(e))
    return c.getValue() == 0 ? std::optional<int64_t>(0) : std::nullopt;
  auto bin = dyn_cast<AffineBinaryOpExpr>(e);
  if (!bin || bin.getKind() != AffineExprKind::FloorDiv ||
      bin.getLHS() != getAffineDimExpr(1, map.getContext()))
    return std::nullopt;
  auto g = dyn_cast<AffineConstantExpr>(bin.getRHS());
  if (!g || g.getValue() <= 0)
    return std::nullopt;
  return g.getValue();
}

/// Recognises a dequantisation linalg.generic (see the pass description).
std::optional<DequantSource> matchDequantGeneric(linalg::GenericOp g) {
  if (g.getNumDpsInputs() < 2 || g.getNumDpsInputs() > 3 ||
      g.getNumDpsInits() != 1 || g.getNumLoops() != 2 ||
      g.getNumReductionLoops() != 0 || !g.hasPureTensorSemantics())
    return std::nullopt;
  SmallVector<AffineMap> maps = g.getIndexingMapsArray();
  AffineMap id = AffineMap::getMultiDimIdentityMap(2, g.getContext());
  if (maps[0] != id || maps.back() != id)
    return std::nullopt;
  Value codes = g.getDpsInputs()[0];
  auto codesTy = cast<RankedTensorType>(codes.getType());
  auto intTy = dyn_cast<IntegerType>(codesTy.getElementType());
  if (!intTy || !llvm::is_contained({2u, 3u, 4u, 8u}, intTy.getWidth()))
    return std::nullopt;
  std::optional<int64_t> group = groupFromMap(maps[1]);
  if (!group || (g.getNumDpsInputs() == 3 && maps[2] != maps[1]))
    return std::nullopt;

  Block &body = g.getRegion().front();
  auto yield = cast<linalg::YieldOp>(body.getTerminator());
  auto mul = yield.getValues()[0].getDefiningOp<arith::MulFOp>();
  if (!mul)
    return std::nullopt;
  Value subV = mul.getLhs(), sV = mul.getRhs();
  if (!subV.getDefiningOp<arith::SubFOp>())
    std::swap(subV, sV);
  auto sub = subV.getDefiningOp<arith::SubFOp>();
  auto sArg = dyn_cast<BlockArgument>(sV);
  if (!sub || !sArg || sArg.getArgNumber() != 1)
    return std::nullopt;
  BlockArgument qArg = convertedArg(sub.getLhs());
  if (!qArg || qArg.getArgNumber() != 0)
    return std::nullopt;
  unsigned bits = intTy.getWidth();
  Value zeros;
  bool symmetric;
  if (g.getNumDpsInputs() == 3) {
    BlockArgument zArg = convertedArg(sub.getRhs());
    if (!zArg || zArg.getArgNumber() != 2)
      return std::nullopt;
    zeros = g.getDpsInputs()[2];
    symmetric = false;
  } else {
    FloatAttr c;
    if (!matchPattern(sub.getRhs(), m_Constant(&c)) ||
        c.getValueAsDouble() != double(int64_t(1) << (bits - 1)))
      return std::nullopt;
    symmetric = true;
  }
  if (!codesTy.hasStaticShape())
    return std::nullopt;
  int64_t k = codesTy.getDimSize(1);
  int64_t grp = (*group == 0 || *group >= k) ? 0 : *group;
  auto spec = QuantSpecAttr::get(g.getContext(), bits, grp, symmetric,
                                 ScaleMode::Scale);
  return DequantSource{codes, g.getDpsInputs()[1], zeros, spec};
}

std::optional<DequantSource> matchDequant(Value nkWeight) {
  if (auto d = nkWeight.getDefiningOp<DequantizeOp>())
    return DequantSource{d.getCodes(), d.getScales(), d.getZeros(),
                         d.getSpec()};
  if (auto g = nkWeight.getDefiningOp<linalg::GenericOp>())
    return matchDequantGeneric(g);
  return std::nullopt;
}

struct FuseIntoQMatmul : OpRewritePattern<linalg::MatmulOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(linalg::MatmulOp op,
                                PatternRewriter &rewriter) const override {
    std::optional<MatmulView> mm = matchMatmul(op);
    if (!mm)
      return rewriter.notifyMatchFailure(op, "not a plain 2-D matmul");
    // The [N, K] dequantized weight, directly (transposed-B matmul) or
    // through a transpose to [K, N].
    Value nk;
    if (mm->weightIsNK) {
      nk = mm->weight;
    } else if (auto t = mm->weight.getDefiningOp<linalg::TransposeOp>()) {
      if (t.getPermutation() != ArrayRef<int64_t>{1, 0})
        return failure();
      nk = t.getInput();
    } else {
      return rewriter.notifyMatchFailure(op, "weight is not [N, K]");
    }
    std::optional<DequantSource> src = matchDequant(nk);
    if (!src)
      return rewriter.notifyMatchFailure(op, "weight is not a dequantization");
    auto xTy = cast<RankedTensorType>(mm->input.getType());
    auto yTy = cast<RankedTensorType>(mm->init.getType());
    if (xTy.getElementType() != yTy.getElementType())
      return rewriter.notifyMatchFailure(op, "mixed-precision accumulator");
    Value product = QMatmulOp::create(rewriter, op.getLoc(), yTy, mm->input,
                                      src->codes, src->scales, src->zeros,
                                      Value(), src->spec);
    replaceMatmul(rewriter, *mm, product);
    return success();
  }
};

struct FuseDequantPass : qslaw::impl::FuseDequantBase<FuseDequantPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<FuseIntoQMatmul>(&getContext());
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};
} // namespace
