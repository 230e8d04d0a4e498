//===- QSLAWToLinalg.cpp - qslaw ops -> linalg.generic --------------------===//
//
// Dequantisation happens inside the reduction body: codes, scales and zero
// points are read through (n, k) -> (n, k floordiv G) maps, so no [N, K]
// float tensor exists after this pass, and a short last group needs nothing
// special.
//
//===----------------------------------------------------------------------===//
#include "TrainingToLinalg.h"
#include "qslaw/Conversion/Passes.h"
#include "qslaw/Dialect/QSLAW/IR/QSLAWOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Transforms/DialectConversion.h"

namespace mlir::qslaw {
#define GEN_PASS_DEF_QSLAWTOLINALG
#include "qslaw/Conversion/Passes.h.inc"
} // namespace mlir::qslaw

using namespace mlir;
using namespace mlir::qslaw;

namespace {

Value toF32(OpBuilder &b, Location loc, Value v) {
  Type t = v.getType();
  if (t.isF32())
    return v;
  if (isa<FloatType>(t))
    return arith::ExtFOp::create(b, loc, b.getF32Type(), v);
  // Codes and zero points are unsigned integers.
  return arith::UIToFPOp::create(b, loc, b.getF32Type(), v);
}

Value fromF32(OpBuilder &b, Location loc, Value v, Type t) {
  if (t.isF32())
    return v;
  return arith::TruncFOp::create(b, loc, t, v);
}

/// Group-indexed map (d_n, d_k) -> (d_n, d_k floordiv G) in a space of
/// `numDims` loops; per-channel reads column 0.
AffineMap groupMap(MLIRContext *ctx, unsigned numDims, unsigned nDim,
                   unsigned kDim, QuantSpecAttr spec, int64_t k) {
  AffineExpr n = getAffineDimExpr(nDim, ctx);
  AffineExpr j = spec.isPerChannel()
                     ? getAffineConstantExpr(0, ctx)
                     : getAffineDimExpr(kDim, ctx).floorDiv(spec.getGroupSize());
  return AffineMap::get(numDims, 0, {n, j}, ctx);
}

/// Map selecting the given loop dims in order.
AffineMap dimsMap(MLIRContext *ctx, unsigned numDims, ArrayRef<unsigned> dims) {
  SmallVector<AffineExpr> exprs;
  for (unsigned d : dims)
    exprs.push_back(getAffineDimExpr(d, ctx));
  return AffineMap::get(numDims, 0, exprs, ctx);
}

SmallVector<unsigned> range(unsigned begin, unsigned end) {
  SmallVector<unsigned> r;
  for (unsigned i = begin; i < end; ++i)
    r.push_back(i);
  return r;
}

/// Zero-filled f32 tensor of the given shape (dynamic dims from `dynSrc`).
Value zeroF32(OpBuilder &b, Location loc, ArrayRef<int64_t> shape,
              ValueRange dynSizes) {
  Value empty = tensor::EmptyOp::create(b, loc, shape, b.getF32Type(), dynSizes);
  Value zero = arith::ConstantOp::create(b, loc, b.getF32FloatAttr(0.0f));
  return linalg::FillOp::create(b, loc, zero, empty).getResult(0);
}

/// Dynamic sizes of `shape` taken from dims of existing values:
/// `sources[i]` gives (value, dim) for result dim i.
SmallVector<Value> dynSizes(OpBuilder &b, Location loc, ArrayRef<int64_t> shape,
                            ArrayRef<std::pair<Value, int64_t>> sources) {
  SmallVector<Value> sizes;
  for (auto [i, d] : llvm::enumerate(shape))
    if (ShapedType::isDynamic(d))
      sizes.push_back(tensor::DimOp::create(b, loc, sources[i].first,
                                            sources[i].second));
  return sizes;
}

/// Elementwise truncation of an f32 tensor to `elemTy` (no-op for f32).
Value castTensor(OpBuilder &b, Location loc, Value src, Type elemTy) {
  auto srcTy = cast<RankedTensorType>(src.getType());
  if (srcTy.getElementType() == elemTy)
    return src;
  SmallVector<Value> dyn;
  for (int64_t i = 0; i < srcTy.getRank(); ++i)
    if (srcTy.isDynamicDim(i))
      dyn.push_back(tensor::DimOp::create(b, loc, src, i));
  Value out = tensor::EmptyOp::create(b, loc, srcTy.getShape(), elemTy, dyn);
  unsigned rank = srcTy.getRank();
  AffineMap id = b.getMultiDimIdentityMap(rank);
  SmallVector<utils::IteratorType> its(rank, utils::IteratorType::parallel);
  return linalg::GenericOp::create(
             b, loc, out.getType(), src, out, ArrayRef<AffineMap>{id, id}, its,
             [&](OpBuilder &nb, Location nl, ValueRange args) {
               linalg::YieldOp::create(nb, nl,
                                       fromF32(nb, nl, args[0], elemTy));
             })
      .getResult(0);
}

/// s * (q - z) in f32 from block arguments (z may be null: symmetric).
Value dequantScalar(OpBuilder &b, Location loc, QuantSpecAttr spec, Value q,
                    Value s, Value z) {
  Value qf = toF32(b, loc, q);
  Value zf = z ? toF32(b, loc, z)
               : arith::ConstantOp::create(
                     b, loc,
                     b.getF32FloatAttr(float(spec.getSymmetricZeroPoint())));
  Value diff = arith::SubFOp::create(b, loc, qf, zf);
  return arith::MulFOp::create(b, loc, diff, toF32(b, loc, s));
}

//===----------------------------------------------------------------------===//

struct LowerQMatmul : OpConversionPattern<QMatmulOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(QMatmulOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = op.getContext();
    auto xTy = cast<RankedTensorType>(op.getInput().getType());
    auto yTy = op.getType();
    QuantSpecAttr spec = op.getSpec();
    unsigned batch = xTy.getRank() - 1;
    unsigned nDim = batch, kDim = batch + 1, numDims = batch + 2;
    int64_t k = xTy.getShape().back();

    SmallVector<std::pair<Value, int64_t>> srcs;
    for (unsigned i = 0; i < batch; ++i)
      srcs.push_back({op.getInput(), i});
    srcs.push_back({op.getCodes(), 0});
    SmallVector<Value> dyn = dynSizes(rewriter, loc, yTy.getShape(), srcs);

    // The accumulator starts at the bias (or zero), in f32.
    Value acc;
    if (Value bias = op.getBias()) {
      Value empty = tensor::EmptyOp::create(rewriter, loc, yTy.getShape(),
                                            rewriter.getF32Type(), dyn);
      AffineMap bMap = dimsMap(ctx, batch + 1, {batch});
      AffineMap oMap = rewriter.getMultiDimIdentityMap(batch + 1);
      SmallVector<utils::IteratorType> its(batch + 1,
                                           utils::IteratorType::parallel);
      acc = linalg::GenericOp::create(
                rewriter, loc, empty.getType(), bias, empty,
                ArrayRef<AffineMap>{bMap, oMap}, its,
                [&](OpBuilder &b, Location l, ValueRange args) {
                  linalg::YieldOp::create(b, l, toF32(b, l, args[0]));
                })
                .getResult(0);
    } else {
      acc = zeroF32(rewriter, loc, yTy.getShape(), dyn);
    }

    SmallVector<unsigned> xDims = range(0, batch), yDims = range(0, batch);
    xDims.push_back(kDim);
    yDims.push_back(nDim);
    SmallVector<Value> ins{op.getInput(), op.getCodes(), op.getScales()};
    SmallVector<AffineMap> maps{dimsMap(ctx, numDims, xDims),
                                dimsMap(ctx, numDims, {nDim, kDim}),
                                groupMap(ctx, numDims, nDim, kDim, spec, k)};
    if (op.getZeros()) {
      ins.push_back(op.getZeros());
      maps.push_back(groupMap(ctx, numDims, nDim, kDim, spec, k));
    }
    maps.push_back(dimsMap(ctx, numDims, yDims));
    SmallVector<utils::IteratorType> its(numDims,
                                         utils::IteratorType::parallel);
    its[kDim] = utils::IteratorType::reduction;
    bool hasZeros = static_cast<bool>(op.getZeros());
    Value result =
        linalg::GenericOp::create(
            rewriter, loc, acc.getType(), ins, acc, maps, its,
            [&](OpBuilder &b, Location l, ValueRange args) {
              Value w = dequantScalar(b, l, spec, args[1], args[2],
                                      hasZeros ? args[3] : Value());
              Value prod =
                  arith::MulFOp::create(b, l, toF32(b, l, args[0]), w);
              linalg::YieldOp::create(
                  b, l, arith::AddFOp::create(b, l, args.back(), prod)
                            .getResult());
            })
            .getResult(0);
    rewriter.replaceOp(op, castTensor(rewriter, loc, result,
                                      yTy.getElementType()));
    return success();
  }
};

struct LowerQMatmulGradInput : OpConversionPattern<QMatmulGradInputOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(QMatmulGradInputOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = op.getContext();
    auto dyTy = cast<RankedTensorType>(op.getGradOutput().getType());
    auto dxTy = op.getType();
    QuantSpecAttr spec = op.getSpec();
    unsigned batch = dyTy.getRank() - 1;
    unsigned kDim = batch, nDim = batch + 1, numDims = batch + 2;
    int64_t k = dxTy.getShape().back();

    SmallVector<std::pair<Value, int64_t>> srcs;
    for (unsigned i = 0; i < batch; ++i)
      srcs.push_back({op.getGradOutput(), i});
    srcs.push_back({op.getCodes(), 1});
    Value acc = zeroF32(rewriter, loc, dxTy.getShape(),
                        dynSizes(rewriter, loc, dxTy.getShape(), srcs));

    SmallVector<unsigned> dyDims = range(0, batch), dxDims = range(0, batch);
    dyDims.push_back(nDim);
    dxDims.push_back(kDim);
    SmallVector<Value> ins{op.getGradOutput(), op.getCodes(), op.getScales()};
    SmallVector<AffineMap> maps{dimsMap(ctx, numDims, dyDims),
                                dimsMap(ctx, numDims, {nDim, kDim}),
                                groupMap(ctx, numDims, nDim, kDim, spec, k)};
    if (op.getZeros()) {
      ins.push_back(op.getZeros());
      maps.push_back(groupMap(ctx, numDims, nDim, kDim, spec, k));
    }
    maps.push_back(dimsMap(ctx, numDims, dxDims));
    SmallVector<utils::IteratorType> its(numDims,
                                         utils::IteratorType::parallel);
    its[nDim] = utils::IteratorType::reduction;
    bool hasZeros = static_cast<bool>(op.getZeros());
    Value result =
        linalg::GenericOp::create(
            rewriter, loc, acc.getType(), ins, acc, maps, its,
            [&](OpBuilder &b, Location l, ValueRange args) {
              Value w = dequantScalar(b, l, spec, args[1], args[2],
                                      hasZeros ? args[3] : Value());
              Value prod =
                  arith::MulFOp::create(b, l, toF32(b, l, args[0]), w);
              linalg::YieldOp::create(
                  b, l, arith::AddFOp::create(b, l, args.back(), prod)
                            .getResult());
            })
            .getResult(0);
    rewriter.replaceOp(op, castTensor(rewriter, loc, result,
                                      dxTy.getElementType()));
    return success();
  }
};

/// Shared structure of the two scale gradients: loops (n, k, t...), inputs
/// x (t..., k), dy (t..., n), then per-op operands; output (n, k floordiv G).
/// The group reduction is the output map itself: every k of group j
/// accumulates into [n, j].
template <typename OpTy>
Value buildGroupReduction(ConversionPatternRewriter &rewriter, OpTy op,
                          ArrayRef<Value> nkOperands,
                          ArrayRef<Value> groupOperands,
                          function_ref<Value(OpBuilder &, Location, ValueRange)>
                              body) {
  Location loc = op.getLoc();
  MLIRContext *ctx = op.getContext();
  auto xTy = cast<RankedTensorType>(op.getInput().getType());
  QuantSpecAttr spec = op.getSpec();
  unsigned tokens = xTy.getRank() - 1;
  unsigned nDim = 0, kDim = 1, numDims = tokens + 2;
  int64_t k = xTy.getShape().back();
  auto outTy = cast<RankedTensorType>(op.getType());

  Value nkSource = nkOperands.front();
  SmallVector<std::pair<Value, int64_t>> srcs{{nkSource, 0}, {nkSource, 1}};
  SmallVector<Value> dyn;
  if (outTy.isDynamicDim(0))
    dyn.push_back(tensor::DimOp::create(rewriter, loc, nkSource, 0));
  if (outTy.isDynamicDim(1))
    return Value(); // J unknown statically: rejected by the caller.
  Value acc = zeroF32(rewriter, loc, outTy.getShape(), dyn);

  SmallVector<unsigned> xDims = range(2, numDims), dyDims = range(2, numDims);
  xDims.push_back(kDim);
  dyDims.push_back(nDim);
  SmallVector<Value> ins{op.getInput(), op.getGradOutput()};
  SmallVector<AffineMap> maps{dimsMap(ctx, numDims, xDims),
                              dimsMap(ctx, numDims, dyDims)};
  for (Value v : nkOperands) {
    ins.push_back(v);
    maps.push_back(dimsMap(ctx, numDims, {nDim, kDim}));
  }
  for (Value v : groupOperands) {
    ins.push_back(v);
    maps.push_back(groupMap(ctx, numDims, nDim, kDim, spec, k));
  }
  maps.push_back(groupMap(ctx, numDims, nDim, kDim, spec, k));
  SmallVector<utils::IteratorType> its(numDims,
                                       utils::IteratorType::reduction);
  its[nDim] = utils::IteratorType::parallel;
  Value result = linalg::GenericOp::create(rewriter, loc, acc.getType(), ins,
                                           acc, maps, its,
                                           [&](OpBuilder &b, Location l,
                                               ValueRange args) {
                                             linalg::YieldOp::create(
                                                 b, l, body(b, l, args));
                                           })
                     .getResult(0);
  return castTensor(rewriter, loc, result, outTy.getElementType());
}

struct LowerQMatmulGradScale : OpConversionPattern<QMatmulGradScaleOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(QMatmulGradScaleOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    QuantSpecAttr spec = op.getSpec();
    SmallVector<Value> groupOps;
    if (op.getZeros())
      groupOps.push_back(op.getZeros());
    bool hasZeros = !groupOps.empty();
    // ds[n,j] += dy[t,n] * x[t,k] * (q[n,k] - z[n,j])
    Value r = buildGroupReduction(
        rewriter, op, {op.getCodes()}, groupOps,
        [&](OpBuilder &b, Location l, ValueRange a) -> Value {
          Value qf = toF32(b, l, a[2]);
          Value zf = hasZeros
                         ? toF32(b, l, a[3])
                         : arith::ConstantOp::create(
                               b, l,
                               b.getF32FloatAttr(
                                   float(spec.getSymmetricZeroPoint())));
          Value centred = arith::SubFOp::create(b, l, qf, zf);
          Value g = arith::MulFOp::create(b, l, toF32(b, l, a[1]),
                                          toF32(b, l, a[0]));
          Value prod = arith::MulFOp::create(b, l, g, centred);
          return arith::AddFOp::create(b, l, a.back(), prod);
        });
    if (!r)
      return rewriter.notifyMatchFailure(op, "needs a static group count");
    rewriter.replaceOp(op, r);
    return success();
  }
};

struct LowerQMatmulGradGamma : OpConversionPattern<QMatmulGradGammaOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(QMatmulGradGammaOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    QuantSpecAttr spec = op.getSpec();
    SmallVector<Value> groupOps{op.getScales(), op.getGamma()};
    if (op.getZeros())
      groupOps.push_back(op.getZeros());
    bool hasZeros = groupOps.size() == 3;
    float qmax = float(spec.getQMax());
    // dgamma[n,j] += -(w / gamma^2) * m * dy[t,n] * x[t,k], with the clamp
    // mask m = 0 <= round(w / (s * gamma)) + z <= qmax.
    Value r = buildGroupReduction(
        rewriter, op, {op.getWeight()}, groupOps,
        [&](OpBuilder &b, Location l, ValueRange a) -> Value {
          Value w = toF32(b, l, a[2]);
          Value s = toF32(b, l, a[3]);
          Value gamma = toF32(b, l, a[4]);
          Value z = hasZeros
                        ? toF32(b, l, a[5])
                        : arith::ConstantOp::create(
                              b, l,
                              b.getF32FloatAttr(
                                  float(spec.getSymmetricZeroPoint())));
          Value u = arith::DivFOp::create(
              b, l, w, arith::MulFOp::create(b, l, s, gamma));
          Value c = arith::AddFOp::create(b, l, math::RoundEvenOp::create(b, l, u),
                                          z);
          Value zero = arith::ConstantOp::create(b, l, b.getF32FloatAttr(0.0f));
          Value top = arith::ConstantOp::create(b, l, b.getF32FloatAttr(qmax));
          Value inRange = arith::AndIOp::create(
              b, l,
              arith::CmpFOp::create(b, l, arith::CmpFPredicate::OGE, c, zero),
              arith::CmpFOp::create(b, l, arith::CmpFPredicate::OLE, c, top));
          Value coef = arith::NegFOp::create(
              b, l,
              arith::DivFOp::create(b, l, w,
                                    arith::MulFOp::create(b, l, gamma, gamma)));
          Value g = arith::MulFOp::create(b, l, toF32(b, l, a[1]),
                                          toF32(b, l, a[0]));
          Value contrib = arith::SelectOp::create(
              b, l, inRange, arith::MulFOp::create(b, l, coef, g), zero);
          return arith::AddFOp::create(b, l, a.back(), contrib);
        });
    if (!r)
      return rewriter.notifyMatchFailure(op, "needs a static group count");
    rewriter.replaceOp(op, r);
    return success();
  }
};

/// Elementwise over (n, k) with group operands: quantize and dequantize.
template <typename OpTy>
Value buildNKElementwise(ConversionPatternRewriter &rewriter, OpTy op,
                         Value nkOperand, RankedTensorType outTy,
                         function_ref<Value(OpBuilder &, Location, ValueRange)>
                             body) {
  Location loc = op.getLoc();
  MLIRContext *ctx = op.getContext();
  QuantSpecAttr spec = op.getSpec();
  SmallVector<Value> dyn;
  for (int64_t i = 0; i < 2; ++i)
    if (outTy.isDynamicDim(i))
      dyn.push_back(tensor::DimOp::create(rewriter, loc, nkOperand, i));
  Value out = tensor::EmptyOp::create(rewriter, loc, outTy.getShape(),
                                      outTy.getElementType(), dyn);
  int64_t k = outTy.getDimSize(1);
  SmallVector<Value> ins{nkOperand, op.getScales()};
  SmallVector<AffineMap> maps{dimsMap(ctx, 2, {0, 1}),
                              groupMap(ctx, 2, 0, 1, spec, k)};
  if (op.getZeros()) {
    ins.push_back(op.getZeros());
    maps.push_back(groupMap(ctx, 2, 0, 1, spec, k));
  }
  maps.push_back(dimsMap(ctx, 2, {0, 1}));
  SmallVector<utils::IteratorType> its(2, utils::IteratorType::parallel);
  return linalg::GenericOp::create(
             rewriter, loc, outTy, ins, out, maps, its,
             [&](OpBuilder &b, Location l, ValueRange args) {
               linalg::YieldOp::create(b, l, body(b, l, args));
             })
      .getResult(0);
}

struct LowerQuantize : OpConversionPattern<QuantizeOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(QuantizeOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    QuantSpecAttr spec = op.getSpec();
    bool hasZeros = static_cast<bool>(op.getZeros());
    Type codeTy = op.getType().getElementType();
    Value r = buildNKElementwise(
        rewriter, op, op.getWeight(), op.getType(),
        [&](OpBuilder &b, Location l, ValueRange a) -> Value {
          Value z = hasZeros
                        ? toF32(b, l, a[2])
                        : arith::ConstantOp::create(
                              b, l,
                              b.getF32FloatAttr(
                                  float(spec.getSymmetricZeroPoint())));
          Value u = arith::DivFOp::create(b, l, toF32(b, l, a[0]),
                                          toF32(b, l, a[1]));
          Value c = arith::AddFOp::create(b, l, math::RoundEvenOp::create(b, l, u),
                                          z);
          // A NaN ratio (0/0) maps to the zero point, as QuantMath does.
          Value isNan =
              arith::CmpFOp::create(b, l, arith::CmpFPredicate::UNO, c, c);
          c = arith::SelectOp::create(b, l, isNan, z, c);
          Value lo = arith::ConstantOp::create(b, l, b.getF32FloatAttr(0.0f));
          Value hi = arith::ConstantOp::create(
              b, l, b.getF32FloatAttr(float(spec.getQMax())));
          c = arith::MinimumFOp::create(
              b, l, arith::MaximumFOp::create(b, l, c, lo), hi);
          return arith::FPToUIOp::create(b, l, codeTy, c);
        });
    rewriter.replaceOp(op, r);
    return success();
  }
};

struct LowerDequantize : OpConversionPattern<DequantizeOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(DequantizeOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    QuantSpecAttr spec = op.getSpec();
    bool hasZeros = static_cast<bool>(op.getZeros());
    Type elemTy = op.getType().getElementType();
    Value r = buildNKElementwise(
        rewriter, op, op.getCodes(), op.getType(),
        [&](OpBuilder &b, Location l, ValueRange a) -> Value {
          return fromF32(b, l,
                         dequantScalar(b, l, spec, a[0], a[1],
                                       hasZeros ? a[2] : Value()),
                         elemTy);
        });
    rewriter.replaceOp(op, r);
    return success();
  }
};

struct QSLAWToLinalgPass
    : qslaw::impl::QSLAWToLinalgBase<QSLAWToLinalgPass> {
  void runOnOperation() override {
    MLIRContext *ctx = &getContext();
    ConversionTarget target(*ctx);
    target.addIllegalDialect<QSLAWDialect>();
    target.markUnknownOpDynamicallyLegal([](Operation *) { return true; });
    RewritePatternSet patterns(ctx);
    patterns.add<LowerQMatmul, LowerQMatmulGradInput, LowerQMatmulGradScale,
                 LowerQMatmulGradGamma, LowerQuantize, LowerDequantize>(ctx);
    populateTrainingToLinalgPatterns(patterns);
    if (failed(applyPartialConversion(getOperation(), target,
                                      std::move(patterns))))
      signalPassFailure();
  }
};
} // namespace
