//===- QSLAWOps.cpp - qslaw op verifiers, folds and canonicalisations -----===//
#include "qslaw/Dialect/QSLAW/IR/QSLAWOps.h"
#include "qslaw/Dialect/QSLAW/Utils/ConstantData.h"
#include "qslaw/Quant/QuantMath.h"

#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Matchers.h"
#include "mlir/IR/PatternMatch.h"
#include "llvm/ADT/STLExtras.h"

using namespace mlir;
using namespace mlir::qslaw;

//===----------------------------------------------------------------------===//
// Shared verification of the (codes|weight, scales, zeros) triple
//===----------------------------------------------------------------------===//

namespace {
std::string shapeStr(ArrayRef<int64_t> shape) {
  std::string s = "[";
  llvm::raw_string_ostream os(s);
  llvm::interleave(
      shape, os,
      [&](int64_t d) {
        if (ShapedType::isDynamic(d))
          os << "?";
        else
          os << d;
      },
      ", ");
  os << "]";
  return s;
}

bool dimsAgree(int64_t a, int64_t b) {
  return ShapedType::isDynamic(a) || ShapedType::isDynamic(b) || a == b;
}

/// Checks everything that follows from the spec and the [N, K] weight shape.
/// `weightKind` names the [N, K] operand in messages ("codes" or "weight").
LogicalResult verifyQuantOperands(Operation *op, QuantSpecAttr spec,
                                  RankedTensorType weightTy,
                                  StringRef weightKind, Type scalesTy,
                                  StringRef scalesName, Value zeros) {
  int64_t n = weightTy.getDimSize(0), k = weightTy.getDimSize(1);
  if (weightKind == "codes") {
    unsigned width = weightTy.getElementType().getIntOrFloatBitWidth();
    if (width != spec.getBits())
      return op->emitOpError("codes element type ")
             << weightTy.getElementType() << " does not match the spec's "
             << spec.getBits() << " bits (expected i" << spec.getBits() << ")";
  }
  if (!spec.isPerChannel() && !ShapedType::isDynamic(k) &&
      spec.getGroupSize() > k)
    return op->emitOpError("group size ")
           << spec.getGroupSize() << " is larger than K = " << k
           << "; use per_channel for one group per row";
  int64_t j = ShapedType::isDynamic(k) ? ShapedType::kDynamic
                                       : spec.getNumGroups(k);
  auto checkGroupTensor = [&](Type t, StringRef name) -> LogicalResult {
    auto ty = cast<RankedTensorType>(t);
    if (!dimsAgree(ty.getDimSize(0), n) || !dimsAgree(ty.getDimSize(1), j))
      return op->emitOpError()
             << name << " shape " << shapeStr(ty.getShape())
             << " does not match [N, J] = " << shapeStr({n, j}) << " for "
             << weightKind << " " << shapeStr(weightTy.getShape())
             << " and group size "
             << (spec.isPerChannel() ? std::string("per_channel")
                                     : std::to_string(spec.getGroupSize()));
    return success();
  };
  if (failed(checkGroupTensor(scalesTy, scalesName)))
    return failure();
  if (spec.getSymmetric()) {
    if (zeros)
      return op->emitOpError(
          "symmetric spec takes no zero points (they are fixed at 2^(bits-1))");
    return success();
  }
  if (!zeros)
    return op->emitOpError("asymmetric spec requires zero points");
  auto zTy = cast<RankedTensorType>(zeros.getType());
  if (zTy.getElementType().getIntOrFloatBitWidth() != spec.getBits())
    return op->emitOpError("zero point element type ")
           << zTy.getElementType() << " does not match the spec's "
           << spec.getBits() << " bits";
  return checkGroupTensor(zTy, "zero points");
}

/// Input [..., K] against codes [N, K] and a result [..., N].
LogicalResult verifyContraction(Operation *op, RankedTensorType in,
                                StringRef inName, int64_t inDim,
                                RankedTensorType out, int64_t outDim) {
  if (in.getRank() < 1)
    return op->emitOpError() << inName << " must have rank >= 1";
  if (!dimsAgree(in.getShape().back(), inDim))
    return op->emitOpError()
           << inName << " inner dimension " << in.getShape().back()
           << " does not match " << inDim;
  if (out.getRank() != in.getRank())
    return op->emitOpError("result rank ")
           << out.getRank() << " does not match " << inName << " rank "
           << in.getRank();
  for (int64_t d = 0; d + 1 < in.getRank(); ++d)
    if (!dimsAgree(in.getDimSize(d), out.getDimSize(d)))
      return op->emitOpError("result batch dimension ")
             << d << " is " << out.getDimSize(d) << ", expected "
             << in.getDimSize(d);
  if (!dimsAgree(out.getShape().back(), outDim))
    return op->emitOpError("result inner dimension ")
           << out.getShape().back() << " does not match " << outDim;
  return success();
}

/// Token dims of x [..., K] and dy [..., N] must agree.
LogicalResult verifyTokens(Operation *op, RankedTensorType x,
                           RankedTensorType dy, int64_t n, int64_t k) {
  if (x.getRank() != dy.getRank())
    return op->emitOpError("input rank ")
           << x.getRank() << " and grad_output rank " << dy.getRank()
           << " differ";
  for (int64_t d = 0; d + 1 < x.getRank(); ++d)
    if (!dimsAgree(x.getDimSize(d), dy.getDimSize(d)))
      return op->emitOpError("token dimension ")
             << d << " differs: input " << x.getDimSize(d)
             << ", grad_output " << dy.getDimSize(d);
  if (!dimsAgree(x.getShape().back(), k))
    return op->emitOpError("input inner dimension ")
           << x.getShape().back() << " does not match K = " << k;
  if (!dimsAgree(dy.getShape().back(), n))
    return op->emitOpError("grad_output inner dimension ")
           << dy.getShape().back() << " does not match N = " << n;
  return success();
}

RankedTensorType rt(Value v) { return cast<RankedTensorType>(v.getType()); }
} // namespace

//===----------------------------------------------------------------------===//
// QuantizeOp
//===----------------------------------------------------------------------===//

LogicalResult QuantizeOp::verify() {
  RankedTensorType w = rt(getWeight()), q = rt(getResult());
  if (failed(verifyQuantOperands(*this, getSpec(), q, "codes",
                                 getScales().getType(), "scales", getZeros())))
    return failure();
  if (!dimsAgree(w.getDimSize(0), q.getDimSize(0)) ||
      !dimsAgree(w.getDimSize(1), q.getDimSize(1)))
    return emitOpError("weight shape ")
           << shapeStr(w.getShape()) << " does not match codes shape "
           << shapeStr(q.getShape());
  return success();
}

/// Constant folding: the codes of a constant weight are computed at compile
/// time with exactly the arithmetic of the runtime (QuantMath).
OpFoldResult QuantizeOp::fold(FoldAdaptor adaptor) {
  // Leave a quantize/dequantize pair to DequantizeOp::fold, which removes
  // both when the round trip is exact.
  for (Operation *user : getResult().getUsers())
    if (auto deq = dyn_cast<DequantizeOp>(user))
      if (deq.getScales() == getScales() && deq.getZeros() == getZeros() &&
          deq.getSpec() == getSpec())
        return {};
  auto w = dyn_cast_or_null<ElementsAttr>(adaptor.getWeight());
  auto s = dyn_cast_or_null<DenseElementsAttr>(adaptor.getScales());
  auto z = dyn_cast_or_null<DenseElementsAttr>(adaptor.getZeros());
  if (!w || !s || (getZeros() && !z))
    return {};
  RankedTensorType qTy = rt(getResult());
  if (!qTy.hasStaticShape() || !w.getElementType().isF32() ||
      !s.getElementType().isF32())
    return {};
  QuantSpecAttr spec = getSpec();
  int64_t n = qTy.getDimSize(0), k = qTy.getDimSize(1);
  int64_t g = spec.getGroupSizeFor(k), j = spec.getNumGroups(k);
  SmallVector<float> wv, sv(s.getValues<float>());
  if (!readFloats(w, wv))
    return {};
  SmallVector<int64_t> zv;
  if (z)
    for (const APInt &v : z.getValues<APInt>())
      zv.push_back(v.getZExtValue());
  SmallVector<APInt> codes;
  codes.reserve(n * k);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < k; ++c) {
      int64_t idx = r * j + c / g;
      int64_t zero = z ? zv[idx] : spec.getSymmetricZeroPoint();
      codes.push_back(APInt(spec.getBits(),
                            quant::quantizeValue(wv[r * k + c], sv[idx], zero,
                                                 spec.getQMax())));
    }
  return DenseElementsAttr::get(qTy, codes);
}

//===----------------------------------------------------------------------===//
// DequantizeOp
//===----------------------------------------------------------------------===//

LogicalResult DequantizeOp::verify() {
  RankedTensorType q = rt(getCodes()), w = rt(getResult());
  if (failed(verifyQuantOperands(*this, getSpec(), q, "codes",
                                 getScales().getType(), "scales", getZeros())))
    return failure();
  if (!dimsAgree(w.getDimSize(0), q.getDimSize(0)) ||
      !dimsAgree(w.getDimSize(1), q.getDimSize(1)))
    return emitOpError("result shape ")
           << shapeStr(w.getShape()) << " does not match codes shape "
           << shapeStr(q.getShape());
  if (w.getElementType() != getScales().getType().getElementType())
    return emitOpError("result element type ")
           << w.getElementType() << " differs from the scales' "
           << getScales().getType().getElementType();
  return success();
}

/// dequantize(quantize(x, s, z), s, z) -> x, only when x is a constant that
/// the round trip reproduces bit for bit (otherwise the fold would change
/// numbers).
OpFoldResult DequantizeOp::fold(FoldAdaptor adaptor) {
  auto quant = getCodes().getDefiningOp<QuantizeOp>();
  if (!quant || quant.getScales() != getScales() ||
      quant.getZeros() != getZeros() || quant.getSpec() != getSpec() ||
      quant.getWeight().getType() != getType())
    return {};
  ElementsAttr w;
  DenseElementsAttr s, z;
  if (!matchConstantTensor(quant.getWeight(), w) ||
      !matchPattern(getScales(), m_Constant(&s)) ||
      (getZeros() && !matchPattern(getZeros(), m_Constant(&z))))
    return {};
  if (!w.getElementType().isF32() || !getType().hasStaticShape())
    return {};
  QuantSpecAttr spec = getSpec();
  int64_t n = getType().getDimSize(0), k = getType().getDimSize(1);
  int64_t g = spec.getGroupSizeFor(k), j = spec.getNumGroups(k);
  SmallVector<float> wv, sv(s.getValues<float>());
  if (!readFloats(w, wv))
    return {};
  SmallVector<int64_t> zv;
  if (z)
    for (const APInt &v : z.getValues<APInt>())
      zv.push_back(v.getZExtValue());
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < k; ++c) {
      int64_t idx = r * j + c / g;
      int64_t zero = z ? zv[idx] : spec.getSymmetricZeroPoint();
      float x = wv[r * k + c];
      float back = quant::dequantizeValue(
          quant::quantizeValue(x, sv[idx], zero, spec.getQMax()), sv[idx],
          zero);
      if (llvm::bit_cast<uint32_t>(back) != llvm::bit_cast<uint32_t>(x))
        return {};
    }
  return quant.getWeight();
}

namespace {
/// quantize(dequantize(q, s, z), s, z) -> q when every scale is a finite
/// positive constant: s * (q - z) / s rounds back to q - z exactly because
/// the relative error of the product and quotient is far below 0.5 / 2^8.
struct QuantizeOfDequantize : OpRewritePattern<QuantizeOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(QuantizeOp op,
                                PatternRewriter &rewriter) const override {
    auto deq = op.getWeight().getDefiningOp<DequantizeOp>();
    if (!deq || deq.getScales() != op.getScales() ||
        deq.getZeros() != op.getZeros() || deq.getSpec() != op.getSpec() ||
        deq.getCodes().getType() != op.getType())
      return failure();
    DenseElementsAttr s;
    if (!matchPattern(op.getScales(), m_Constant(&s)) ||
        !s.getElementType().isF32())
      return failure();
    for (float v : s.getValues<float>())
      if (!(v > 0.0f) || !std::isfinite(v))
        return failure();
    rewriter.replaceOp(op, deq.getCodes());
    return success();
  }
};
} // namespace

void DequantizeOp::getCanonicalizationPatterns(RewritePatternSet &results,
                                               MLIRContext *context) {
  results.add<QuantizeOfDequantize>(context);
}

//===----------------------------------------------------------------------===//
// QMatmulOp
//===----------------------------------------------------------------------===//

LogicalResult QMatmulOp::verify() {
  RankedTensorType x = rt(getInput()), q = rt(getCodes()), y = rt(getResult());
  if (failed(verifyQuantOperands(*this, getSpec(), q, "codes",
                                 getScales().getType(), "scales", getZeros())))
    return failure();
  if (failed(verifyContraction(*this, x, "input", q.getDimSize(1), y,
                               q.getDimSize(0))))
    return failure();
  if (y.getElementType() != x.getElementType())
    return emitOpError("result element type ")
           << y.getElementType() << " differs from the input's "
           << x.getElementType();
  if (Value b = getBias()) {
    auto bTy = rt(b);
    if (!dimsAgree(bTy.getDimSize(0), q.getDimSize(0)))
      return emitOpError("bias length ")
             << bTy.getDimSize(0) << " does not match N = " << q.getDimSize(0);
    if (bTy.getElementType() != x.getElementType())
      return emitOpError("bias element type ")
             << bTy.getElementType() << " differs from the input's "
             << x.getElementType();
  }
  return success();
}

namespace {
/// A bias that is a zero constant adds nothing.
struct DropZeroBias : OpRewritePattern<QMatmulOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(QMatmulOp op,
                                PatternRewriter &rewriter) const override {
    if (!op.getBias() || !matchPattern(op.getBias(), m_AnyZeroFloat()))
      return failure();
    rewriter.modifyOpInPlace(op, [&] { op.getBiasMutable().clear(); });
    return success();
  }
};
} // namespace

void QMatmulOp::getCanonicalizationPatterns(RewritePatternSet &results,
                                            MLIRContext *context) {
  results.add<DropZeroBias>(context);
}

//===----------------------------------------------------------------------===//
// Gradient ops
//===----------------------------------------------------------------------===//

LogicalResult QMatmulGradInputOp::verify() {
  RankedTensorType dy = rt(getGradOutput()), q = rt(getCodes()),
                   dx = rt(getResult());
  if (failed(verifyQuantOperands(*this, getSpec(), q, "codes",
                                 getScales().getType(), "scales", getZeros())))
    return failure();
  if (failed(verifyContraction(*this, dy, "grad_output", q.getDimSize(0), dx,
                               q.getDimSize(1))))
    return failure();
  if (dx.getElementType() != dy.getElementType())
    return emitOpError("result element type ")
           << dx.getElementType() << " differs from grad_output's "
           << dy.getElementType();
  return success();
}

LogicalResult QMatmulGradScaleOp::verify() {
  if (getSpec().getMode() != ScaleMode::Scale)
    return emitOpError("requires a spec in 'scale' mode; use "
                       "qslaw.qmatmul_grad_gamma for 'gamma' mode");
  RankedTensorType q = rt(getCodes());
  if (failed(verifyQuantOperands(*this, getSpec(), q, "codes",
                                 getResult().getType(), "result", getZeros())))
    return failure();
  return verifyTokens(*this, rt(getInput()), rt(getGradOutput()),
                      q.getDimSize(0), q.getDimSize(1));
}

LogicalResult QMatmulGradGammaOp::verify() {
  if (getSpec().getMode() != ScaleMode::Gamma)
    return emitOpError("requires a spec in 'gamma' mode; use "
                       "qslaw.qmatmul_grad_scale for 'scale' mode");
  RankedTensorType w = rt(getWeight());
  if (failed(verifyQuantOperands(*this, getSpec(), w, "weight",
                                 getScales().getType(), "scales", getZeros())))
    return failure();
  if (getGamma().getType().getShape() != getScales().getType().getShape())
    return emitOpError("gamma shape ")
           << shapeStr(getGamma().getType().getShape())
           << " differs from scales shape "
           << shapeStr(getScales().getType().getShape());
  if (getResult().getType().getShape() != getScales().getType().getShape())
    return emitOpError("result shape ")
           << shapeStr(getResult().getType().getShape())
           << " differs from scales shape "
           << shapeStr(getScales().getType().getShape());
  return verifyTokens(*this, rt(getInput()), rt(getGradOutput()),
                      w.getDimSize(0), w.getDimSize(1));
}

//===----------------------------------------------------------------------===//
// Training ops
//===----------------------------------------------------------------------===//

static LogicalResult verifyLabels(Operation *op, RankedTensorType logits,
                                  RankedTensorType labels) {
  if (logits.getRank() < 1)
    return op->emitOpError("logits must have rank >= 1");
  if (labels.getShape() != logits.getShape().drop_back())
    return op->emitOpError("labels shape ")
           << shapeStr(labels.getShape())
           << " must equal the logits shape without its last (vocabulary) "
              "dimension, "
           << shapeStr(logits.getShape().drop_back());
  return success();
}

LogicalResult CrossEntropyOp::verify() {
  return verifyLabels(*this, getLogits().getType(), getLabels().getType());
}

LogicalResult CrossEntropyGradOp::verify() {
  if (getResult().getType() != getLogits().getType())
    return emitOpError("result type ")
           << getResult().getType() << " must equal the logits type "
           << getLogits().getType();
  return verifyLabels(*this, getLogits().getType(), getLabels().getType());
}

LogicalResult AdamWOp::verify() {
  Type t = getParam().getType();
  for (Value v : {getGrad(), getExpAvg(), getExpAvgSq(), getNewParam(),
                  getNewExpAvg(), getNewExpAvgSq()})
    if (v.getType() != t)
      return emitOpError("parameter, gradient, moments and results must "
                         "share one type; got ")
             << v.getType() << " and " << t;
  float b1 = getBeta1().convertToFloat(), b2 = getBeta2().convertToFloat();
  if (!(b1 >= 0 && b1 < 1) || !(b2 >= 0 && b2 < 1))
    return emitOpError("betas must lie in [0, 1), got ") << b1 << ", " << b2;
  if (!(getEps().convertToFloat() > 0))
    return emitOpError("eps must be positive");
  return success();
}

#define GET_OP_CLASSES
#include "qslaw/Dialect/QSLAW/IR/QSLAWOps.cpp.inc"
