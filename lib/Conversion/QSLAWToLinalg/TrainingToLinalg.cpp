//===- TrainingToLinalg.cpp - loss and optimizer ops -> linalg ------------===//
#include "TrainingToLinalg.h"
#include "qslaw/Dialect/QSLAW/IR/QSLAWOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

using namespace mlir;
using namespace mlir::qslaw;

namespace {
using Body = function_ref<void(OpBuilder &, Location, ValueRange)>;

Value f32c(OpBuilder &b, Location l, double v) {
  return arith::ConstantOp::create(b, l, b.getF32FloatAttr(float(v)));
}

Value filled(OpBuilder &b, Location l, ArrayRef<int64_t> shape, double v) {
  Value e = tensor::EmptyOp::create(b, l, shape, b.getF32Type());
  return linalg::FillOp::create(b, l, f32c(b, l, v), e).getResult(0);
}

/// Static collapse of all leading dims: [..., V] -> [T, V], [...] -> [T].
Value collapseTo(OpBuilder &b, Location l, Value v, ArrayRef<int64_t> shape) {
  auto t = cast<RankedTensorType>(v.getType());
  if (t.getShape() == shape)
    return v;
  SmallVector<ReassociationIndices> re;
  if (shape.size() == 1) {
    re.emplace_back();
    for (int64_t i = 0; i < t.getRank(); ++i)
      re.back().push_back(i);
    if (t.getRank() == 0)
      return tensor::ExpandShapeOp::create(
          b, l, RankedTensorType::get(shape, t.getElementType()), v,
          ArrayRef<ReassociationIndices>{});
  } else {
    re.emplace_back();
    for (int64_t i = 0; i + 1 < t.getRank(); ++i)
      re.back().push_back(i);
    re.push_back({t.getRank() - 1});
    if (t.getRank() == 1)
      return tensor::ExpandShapeOp::create(
          b, l, RankedTensorType::get(shape, t.getElementType()), v,
          ArrayRef<ReassociationIndices>{{0, 1}});
  }
  return tensor::CollapseShapeOp::create(b, l, v, re);
}

Value expandFrom(OpBuilder &b, Location l, Value v, RankedTensorType to) {
  auto t = cast<RankedTensorType>(v.getType());
  if (t == to)
    return v;
  SmallVector<ReassociationIndices> re(1);
  for (int64_t i = 0; i + 1 < to.getRank(); ++i)
    re[0].push_back(i);
  re.push_back({to.getRank() - 1});
  return tensor::ExpandShapeOp::create(b, l, to, v, re);
}

/// Row max and row sum of exp(x - max) over V of logits [T, V].
std::pair<Value, Value> rowStats(OpBuilder &b, Location l, Value logits,
                                 int64_t t) {
  MLIRContext *ctx = b.getContext();
  AffineMap tv = AffineMap::getMultiDimIdentityMap(2, ctx);
  AffineMap tOnly = AffineMap::get(2, 0, {getAffineDimExpr(0, ctx)}, ctx);
  SmallVector<utils::IteratorType> its{utils::IteratorType::parallel,
                                       utils::IteratorType::reduction};
  Value mx = linalg::GenericOp::create(
                 b, l, TypeRange{RankedTensorType::get({t}, b.getF32Type())},
                 logits, filled(b, l, {t}, -INFINITY),
                 ArrayRef<AffineMap>{tv, tOnly}, its,
                 [](OpBuilder &nb, Location nl, ValueRange a) {
                   linalg::YieldOp::create(
                       nb, nl,
                       arith::MaximumFOp::create(nb, nl, a[0], a[1]).getResult());
                 })
                 .getResult(0);
  Value se = linalg::GenericOp::create(
                 b, l, TypeRange{RankedTensorType::get({t}, b.getF32Type())},
                 ValueRange{logits, mx}, filled(b, l, {t}, 0.0),
                 ArrayRef<AffineMap>{tv, tOnly, tOnly}, its,
                 [](OpBuilder &nb, Location nl, ValueRange a) {
                   Value e = math::ExpOp::create(
                       nb, nl, arith::SubFOp::create(nb, nl, a[0], a[1]));
                   linalg::YieldOp::create(
                       nb, nl, arith::AddFOp::create(nb, nl, a[2], e).getResult());
                 })
                 .getResult(0);
  return {mx, se};
}

/// label != ignore && 0 <= label < V, as i1; label as index (clamped).
std::pair<Value, Value> validLabel(OpBuilder &b, Location l, Value label,
                                   int64_t ignore, int64_t v) {
  Type lt = label.getType();
  Value ign = arith::ConstantOp::create(b, l, b.getIntegerAttr(lt, ignore));
  Value zero = arith::ConstantOp::create(b, l, b.getIntegerAttr(lt, 0));
  Value vmax = arith::ConstantOp::create(b, l, b.getIntegerAttr(lt, v));
  Value ok = arith::AndIOp::create(
      b, l, arith::CmpIOp::create(b, l, arith::CmpIPredicate::ne, label, ign),
      arith::AndIOp::create(
          b, l, arith::CmpIOp::create(b, l, arith::CmpIPredicate::sge, label, zero),
          arith::CmpIOp::create(b, l, arith::CmpIPredicate::slt, label, vmax)));
  Value safe = arith::SelectOp::create(b, l, ok, label, zero);
  return {ok, arith::IndexCastOp::create(b, l, b.getIndexType(), safe)};
}

/// Number of unmasked tokens as a 0-d f32 tensor.
Value validCount(OpBuilder &b, Location l, Value labels, int64_t ignore,
                 int64_t v) {
  MLIRContext *ctx = b.getContext();
  return linalg::GenericOp::create(
             b, l, TypeRange{RankedTensorType::get({}, b.getF32Type())}, labels,
             filled(b, l, {}, 0.0),
             ArrayRef<AffineMap>{AffineMap::getMultiDimIdentityMap(1, ctx),
                                 AffineMap::get(1, 0, {}, ctx)},
             ArrayRef<utils::IteratorType>{utils::IteratorType::reduction},
             [&](OpBuilder &nb, Location nl, ValueRange a) {
               Value ok = validLabel(nb, nl, a[0], ignore, v).first;
               Value one = arith::SelectOp::create(nb, nl, ok, f32c(nb, nl, 1),
                                                   f32c(nb, nl, 0));
               linalg::YieldOp::create(
                   nb, nl, arith::AddFOp::create(nb, nl, a[1], one).getResult());
             })
      .getResult(0);
}

/// What the loss and its gradient share: [T, V] logits, [T] labels, row
/// max, row sum of exp(x - max), and the unmasked-token count.
struct CrossEntropyParts {
  Value logits, labels, rowMax, rowSumExp, count;
  int64_t tokens, vocab;
};
CrossEntropyParts prepareCrossEntropy(OpBuilder &b, Location l, Value logitsIn,
                                      Value labelsIn, int64_t ignore) {
  auto lt = cast<RankedTensorType>(logitsIn.getType());
  int64_t v = lt.getShape().back(),
          t = lt.getNumElements() / std::max<int64_t>(v, 1);
  Value logits = collapseTo(b, l, logitsIn, {t, v});
  Value labels = collapseTo(b, l, labelsIn, {t});
  auto [mx, se] = rowStats(b, l, logits, t);
  return {logits, labels, mx, se, validCount(b, l, labels, ignore, v), t, v};
}

struct LowerCrossEntropy : OpConversionPattern<CrossEntropyOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(CrossEntropyOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &b) const override {
    Location l = op.getLoc();
    MLIRContext *ctx = op.getContext();
    auto lt = op.getLogits().getType();
    if (!lt.hasStaticShape())
      return b.notifyMatchFailure(op, "static shapes only");
    int64_t ignore = op.getIgnoreIndex();
    CrossEntropyParts parts =
        prepareCrossEntropy(b, l, op.getLogits(), op.getLabels(), ignore);
    Value logits = parts.logits, labels = parts.labels, mx = parts.rowMax,
          se = parts.rowSumExp, count = parts.count;
    int64_t v = parts.vocab;
    AffineMap id1 = AffineMap::getMultiDimIdentityMap(1, ctx);
    AffineMap scalar = AffineMap::get(1, 0, {}, ctx);
    // sum_t valid_t * (log(se_t) + mx_t - x[t, label_t])
    Value sum = linalg::GenericOp::create(
                    b, l, TypeRange{RankedTensorType::get({}, b.getF32Type())},
                    ValueRange{mx, se, labels}, filled(b, l, {}, 0.0),
                    ArrayRef<AffineMap>{id1, id1, id1, scalar},
                    ArrayRef<utils::IteratorType>{utils::IteratorType::reduction},
                    [&](OpBuilder &nb, Location nl, ValueRange a) {
                      auto [ok, idx] = validLabel(nb, nl, a[2], ignore, v);
                      Value tIdx = linalg::IndexOp::create(nb, nl, 0);
                      Value picked = tensor::ExtractOp::create(
                          nb, nl, logits, ValueRange{tIdx, idx});
                      Value lse = arith::AddFOp::create(
                          nb, nl, math::LogOp::create(nb, nl, a[1]), a[0]);
                      Value tok = arith::SelectOp::create(
                          nb, nl, ok, arith::SubFOp::create(nb, nl, lse, picked),
                          f32c(nb, nl, 0));
                      linalg::YieldOp::create(
                          nb, nl, arith::AddFOp::create(nb, nl, a[3], tok).getResult());
                    })
                    .getResult(0);
    AffineMap none = AffineMap::get(0, 0, {}, ctx);
    Value loss = linalg::GenericOp::create(
                     b, l, TypeRange{op.getType()}, ValueRange{sum, count},
                     filled(b, l, {}, 0.0),
                     ArrayRef<AffineMap>{none, none, none},
                     ArrayRef<utils::IteratorType>{},
                     [&](OpBuilder &nb, Location nl, ValueRange a) {
                       Value c = arith::MaximumFOp::create(nb, nl, a[1],
                                                           f32c(nb, nl, 1));
                       linalg::YieldOp::create(
                           nb, nl, arith::DivFOp::create(nb, nl, a[0], c).getResult());
                     })
                     .getResult(0);
    b.replaceOp(op, loss);
    return success();
  }
};

struct LowerCrossEntropyGrad : OpConversionPattern<CrossEntropyGradOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(CrossEntropyGradOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &b) const override {
    Location l = op.getLoc();
    MLIRContext *ctx = op.getContext();
    auto lt = op.getLogits().getType();
    if (!lt.hasStaticShape())
      return b.notifyMatchFailure(op, "static shapes only");
    int64_t ignore = op.getIgnoreIndex();
    CrossEntropyParts parts =
        prepareCrossEntropy(b, l, op.getLogits(), op.getLabels(), ignore);
    Value logits = parts.logits, labels = parts.labels, mx = parts.rowMax,
          se = parts.rowSumExp, count = parts.count;
    int64_t t = parts.tokens, v = parts.vocab;
    AffineMap tv = AffineMap::getMultiDimIdentityMap(2, ctx);
    AffineMap tOnly = AffineMap::get(2, 0, {getAffineDimExpr(0, ctx)}, ctx);
    AffineMap scalar = AffineMap::get(2, 0, {}, ctx);
    Value out = tensor::EmptyOp::create(b, l, ArrayRef<int64_t>{t, v}, b.getF32Type());
    Value g = linalg::GenericOp::create(
                  b, l, out.getType(),
                  ValueRange{logits, mx, se, labels, count, op.getGradLoss()}, out,
                  ArrayRef<AffineMap>{tv, tOnly, tOnly, tOnly, scalar, scalar, tv},
                  ArrayRef<utils::IteratorType>{utils::IteratorType::parallel,
                                                utils::IteratorType::parallel},
                  [&](OpBuilder &nb, Location nl, ValueRange a) {
                    auto [ok, idx] = validLabel(nb, nl, a[3], ignore, v);
                    Value p = arith::DivFOp::create(
                        nb, nl,
                        math::ExpOp::create(nb, nl,
                                            arith::SubFOp::create(nb, nl, a[0], a[1])),
                        a[2]);
                    Value vIdx = linalg::IndexOp::create(nb, nl, 1);
                    Value hot = arith::SelectOp::create(
                        nb, nl,
                        arith::CmpIOp::create(nb, nl, arith::CmpIPredicate::eq, vIdx, idx),
                        f32c(nb, nl, 1), f32c(nb, nl, 0));
                    Value scale = arith::DivFOp::create(
                        nb, nl, a[5],
                        arith::MaximumFOp::create(nb, nl, a[4], f32c(nb, nl, 1)));
                    Value d = arith::MulFOp::create(
                        nb, nl, arith::SubFOp::create(nb, nl, p, hot), scale);
                    linalg::YieldOp::create(
                        nb, nl,
                        arith::SelectOp::create(nb, nl, ok, d, f32c(nb, nl, 0))
                            .getResult());
                  })
                  .getResult(0);
    b.replaceOp(op, expandFrom(b, l, g, lt));
    return success();
  }
};

struct LowerAdamW : OpConversionPattern<AdamWOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(AdamWOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &b) const override {
    Location l = op.getLoc();
    MLIRContext *ctx = op.getContext();
    auto ty = op.getParam().getType();
    unsigned rank = ty.getRank();
    AffineMap id = AffineMap::getMultiDimIdentityMap(rank, ctx);
    AffineMap scalar = AffineMap::get(rank, 0, {}, ctx);
    double b1 = op.getBeta1().convertToDouble(), b2 = op.getBeta2().convertToDouble();
    double eps = op.getEps().convertToDouble(), wd = op.getWeightDecay().convertToDouble();
    SmallVector<Value> outs;
    for (int i = 0; i < 3; ++i)
      outs.push_back(tensor::EmptyOp::create(b, l, ty.getShape(), b.getF32Type()));
    SmallVector<utils::IteratorType> its(rank, utils::IteratorType::parallel);
    // Bias corrections 1 - beta^t, once per step rather than per element
    // (two powf per element were a third of a tiny model's train step).
    Value t0 = tensor::ExtractOp::create(b, l, op.getStep(), ValueRange{});
    Value bc1 = arith::SubFOp::create(
        b, l, f32c(b, l, 1), math::PowFOp::create(b, l, f32c(b, l, b1), t0));
    Value bc2 = arith::SubFOp::create(
        b, l, f32c(b, l, 1), math::PowFOp::create(b, l, f32c(b, l, b2), t0));
    auto gen = linalg::GenericOp::create(
        b, l, TypeRange{ty, ty, ty},
        ValueRange{op.getParam(), op.getGrad(), op.getExpAvg(), op.getExpAvgSq(),
                   op.getLr(), op.getStep()},
        outs, ArrayRef<AffineMap>{id, id, id, id, scalar, scalar, id, id, id}, its,
        [&](OpBuilder &nb, Location nl, ValueRange a) {
          Value p = a[0], g = a[1], m = a[2], v = a[3], lr = a[4];
          Value m2 = arith::AddFOp::create(
              nb, nl, arith::MulFOp::create(nb, nl, f32c(nb, nl, b1), m),
              arith::MulFOp::create(nb, nl, f32c(nb, nl, 1 - b1), g));
          Value v2 = arith::AddFOp::create(
              nb, nl, arith::MulFOp::create(nb, nl, f32c(nb, nl, b2), v),
              arith::MulFOp::create(nb, nl, f32c(nb, nl, 1 - b2),
                                    arith::MulFOp::create(nb, nl, g, g)));
          Value denom = arith::AddFOp::create(
              nb, nl,
              math::SqrtOp::create(nb, nl, arith::DivFOp::create(nb, nl, v2, bc2)),
              f32c(nb, nl, eps));
          Value upd = arith::DivFOp::create(
              nb, nl, arith::DivFOp::create(nb, nl, m2, bc1), denom);
          Value decayed = arith::MulFOp::create(
              nb, nl, p,
              arith::SubFOp::create(nb, nl, f32c(nb, nl, 1),
                                    arith::MulFOp::create(nb, nl, lr, f32c(nb, nl, wd))));
          Value p2 = arith::SubFOp::create(nb, nl, decayed,
                                           arith::MulFOp::create(nb, nl, lr, upd));
          linalg::YieldOp::create(nb, nl, ValueRange{p2, m2, v2});
        });
    b.replaceOp(op, gen.getResults());
    return success();
  }
};
} // namespace

void mlir::qslaw::populateTrainingToLinalgPatterns(RewritePatternSet &patterns) {
  patterns.add<LowerCrossEntropy, LowerCrossEntropyGrad, LowerAdamW>(
      patterns.getContext());
}
