//===- QuantizeWeights.cpp - constant float weights -> qslaw.qmatmul ------===//
#include "MatmulMatch.h"
#include "qslaw/Dialect/QSLAW/IR/QSLAWOps.h"
#include "qslaw/Dialect/QSLAW/Utils/ConstantData.h"
#include "qslaw/Quant/QuantMath.h"
#include "qslaw/Dialect/QSLAW/Transforms/Passes.h"

#include "mlir/IR/Matchers.h"
#include "llvm/Support/Regex.h"

namespace mlir::qslaw {
#define GEN_PASS_DEF_QUANTIZEWEIGHTS
#include "qslaw/Dialect/QSLAW/Transforms/Passes.h.inc"
} // namespace mlir::qslaw

using namespace mlir;
using namespace mlir::qslaw;

namespace {

/// The source name of a weight: `qslaw.name` on its defining op, else the
/// name of its NameLoc (the ONNX initializer name after import).
std::string weightName(Value w) {
  Operation *def = w.getDefiningOp();
  if (!def)
    return "";
  if (auto name = def->getAttrOfType<StringAttr>("qslaw.name"))
    return name.str();
  return locationName(def->getLoc());
}


Value namedConstant(OpBuilder &b, Location loc, ElementsAttr value,
                    StringRef name) {
  auto c = arith::ConstantOp::create(b, loc, value);
  if (!name.empty())
    c->setAttr("qslaw.name", b.getStringAttr(name));
  return c;
}

struct QuantizeWeightsPass
    : qslaw::impl::QuantizeWeightsBase<QuantizeWeightsPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (bits != 2 && bits != 3 && bits != 4 && bits != 8) {
      module.emitError("qslaw-quantize-weights: bits must be 2, 3, 4 or 8, got ")
          << static_cast<unsigned>(bits);
      return signalPassFailure();
    }
    if (groupSize < 0) {
      module.emitError("qslaw-quantize-weights: group-size must be >= 0 "
                       "(0 = per-channel), got ")
          << static_cast<int64_t>(groupSize);
      return signalPassFailure();
    }
    std::optional<ScaleMode> scaleMode = symbolizeScaleMode(mode);
    if (!scaleMode) {
      module.emitError("qslaw-quantize-weights: mode must be 'scale' or "
                       "'gamma', got '")
          << static_cast<std::string>(mode) << "'";
      return signalPassFailure();
    }
    llvm::Regex regex("^(" + layers + ")$");
    std::string regexError;
    if (!regex.isValid(regexError)) {
      module.emitError("qslaw-quantize-weights: invalid layers regex '")
          << static_cast<std::string>(layers) << "': " << regexError;
      return signalPassFailure();
    }

    SmallVector<linalg::MatmulOp> matmuls;
    module.walk([&](linalg::MatmulOp op) { matmuls.push_back(op); });
    IRRewriter rewriter(&getContext());
    for (linalg::MatmulOp op : matmuls)
      if (failed(quantizeOne(rewriter, op, regex, *scaleMode)))
        return signalPassFailure();
    // The float weights that became codes are not needed any more.
    releaseUnusedResourceBlobs(module);
  }

  LogicalResult quantizeOne(IRRewriter &b, linalg::MatmulOp op,
                            llvm::Regex &regex, ScaleMode scaleMode) {
    std::optional<MatmulView> mm = matchMatmul(op);
    if (!mm)
      return success();
    ElementsAttr wAttr;
    if (!matchConstantTensor(mm->weight, wAttr) ||
        !wAttr.getElementType().isF32())
      return success();
    auto xTy = cast<RankedTensorType>(mm->input.getType());
    auto yTy = cast<RankedTensorType>(mm->init.getType());
    if (xTy.getElementType() != yTy.getElementType() ||
        !yTy.hasStaticShape())
      return success();
    // Exporters often give weights generated names (torch: "onnx::MatMul_12"),
    // so the layer is selected by the weight's name or by the matmul's own
    // location name (the ONNX node, e.g. ".../layers.0/mlp/up_proj/MatMul").
    std::string name = weightName(mm->weight);
    std::string opName = locationName(op.getLoc());
    if (!regex.match(name) && !(!opName.empty() && regex.match(opName)))
      return success();
    // Generated weight names say nothing; the node name then names the layer
    // (and its scales, zero points, gamma) for training and export.
    std::string onnxWeight = name;
    if ((name.empty() || StringRef(name).starts_with("onnx::")) &&
        !opName.empty())
      name = opName;

    auto wTy = cast<RankedTensorType>(wAttr.getType());
    int64_t n = mm->weightIsNK ? wTy.getDimSize(0) : wTy.getDimSize(1);
    int64_t k = mm->weightIsNK ? wTy.getDimSize(1) : wTy.getDimSize(0);
    // A group covering all of K is one group per row.
    int64_t group = (groupSize == 0 || groupSize >= k) ? 0 : groupSize;
    auto spec = QuantSpecAttr::get(&getContext(), bits, group, symmetric,
                                   scaleMode);
    int64_t j = spec.getNumGroups(k);

    // Row-major [N, K] float weight.
    SmallVector<float> w;
    if (!readFloats(wAttr, w))
      return op.emitError("qslaw-quantize-weights: the data of weight '")
             << (onnxWeight.empty() ? name : onnxWeight) << "' is missing";
    // NaN/Inf would become a NaN or infinite scale for its group, and codes
    // from nonsense: refuse, naming the weight and the element.
    for (auto [i, v] : llvm::enumerate(w))
      if (!std::isfinite(v)) {
        int64_t cols = wTy.getDimSize(1);
        return op.emitError("qslaw-quantize-weights: weight '")
               << (onnxWeight.empty() ? name : onnxWeight)
               << "' holds a non-finite value (" << (std::isnan(v) ? "nan" : v > 0 ? "inf" : "-inf")
               << ") at [" << int64_t(i) / cols << ", " << int64_t(i) % cols
               << "]: it cannot be quantized";
      }
    if (!mm->weightIsNK) {
      SmallVector<float> t(n * k);
      for (int64_t r = 0; r < k; ++r)
        for (int64_t c = 0; c < n; ++c)
          t[c * k + r] = w[r * n + c];
      w = std::move(t);
    }
    quant::QuantizedMatrix qm = quant::quantizeMatrix(
        w.data(), n, k, group, bits, symmetric, clipSteps);

    Location loc = op.getLoc();
    b.setInsertionPoint(op);
    Type codeTy = b.getIntegerType(bits);
    // Codes below 8 bits are stored one per byte, so the bytes are the
    // attribute's raw buffer.
    auto codesAttr = [&](RankedTensorType ty, ArrayRef<uint8_t> v) {
      return DenseElementsAttr::getFromRawBuffer(
          ty, ArrayRef<char>(reinterpret_cast<const char *>(v.data()),
                             v.size()));
    };
    auto nj = RankedTensorType::get({n, j}, b.getF32Type());
    Value scales = namedConstant(
        b, loc, DenseElementsAttr::get(nj, ArrayRef<float>(qm.scales)),
        name.empty() ? "" : name + ".scales");
    Value zeros;
    if (!symmetric)
      zeros = namedConstant(
          b, loc,
          codesAttr(RankedTensorType::get({n, j}, codeTy), qm.zeros),
          name.empty() ? "" : name + ".zeros");
    Value codes;
    auto nkCodes = RankedTensorType::get({n, k}, codeTy);
    if (scaleMode == ScaleMode::Scale) {
      codes = namedConstant(b, loc,
                            codesAttr(nkCodes, qm.codes),
                            name.empty() ? "" : name + ".codes");
    } else {
      // gamma mode keeps W and recomputes the codes from s * gamma. A
      // weight that came as a resource stays one (not uniqued, freeable).
      auto wTyNK = RankedTensorType::get({n, k}, b.getF32Type());
      ElementsAttr wNK;
      if (isa<DenseResourceElementsAttr>(wAttr))
        wNK = DenseResourceElementsAttr::get(
            wTyNK, name,
            HeapAsmResourceBlob::allocateAndCopyInferAlign(ArrayRef<float>(w)));
      else
        wNK = DenseElementsAttr::get(wTyNK, ArrayRef<float>(w));
      Value weight = namedConstant(b, loc, wNK, name);
      Value gamma = namedConstant(b, loc,
                                  DenseElementsAttr::get(nj, b.getF32FloatAttr(1.0f)),
                                  name.empty() ? "" : name + ".gamma");
      Value sg = arith::MulFOp::create(b, loc, scales, gamma);
      codes = QuantizeOp::create(b, loc, nkCodes, weight, sg, zeros, spec);
    }
    auto qmm = QMatmulOp::create(b, loc, yTy, mm->input, codes, scales,
                                 zeros, /*bias=*/Value(), spec);
    if (!name.empty())
      qmm->setAttr("qslaw.layer", b.getStringAttr(name));
    // What the ONNX exporter replaces: the MatMul node and its initializer.
    if (!opName.empty())
      qmm->setAttr("qslaw.node", b.getStringAttr(opName));
    if (!onnxWeight.empty())
      qmm->setAttr("qslaw.weight", b.getStringAttr(onnxWeight));
    Value product = qmm;
    Operation *oldWeight = mm->weight.getDefiningOp();
    replaceMatmul(b, *mm, product);
    // The float weight must not survive into the artifact.
    if (oldWeight && oldWeight->use_empty())
      b.eraseOp(oldWeight);
    return success();
  }
};
} // namespace
