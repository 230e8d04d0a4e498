//===- QuantizeWeights.cpp - constant float weights -> qslaw.qmatmul ------===//
#include "MatmulMatch.h"
#include "qslaw/Dialect/QSLAW/IR/QSLAWOps.h"
#include "qslaw/Dialect/QSLAW/Utils/ConstantData.h"
#include "qslaw/Quant/QuantMath.h"
#include "qslaw/Dialect/QSLAW/Transforms/Passes.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Matchers.h"
#include "mlir/IR/Threading.h"
#include "llvm/Support/Regex.h"

#include <cmath>
#include <limits>

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
    // Prepared in order, quantised a batch at a time on the context's
    // threads (the arithmetic touches no IR), then built in order: the IR
    // and the diagnostics are those of a serial run. A batch bounds how many
    // float copies and codes are held at once.
    std::vector<Job> jobs;
    for (linalg::MatmulOp op : matmuls)
      if (std::optional<Job> job = prepare(op, regex, *scaleMode))
        jobs.push_back(std::move(*job));
    size_t batch = 2 * std::max<size_t>(1, getContext().getNumThreads());
    for (size_t at = 0; at < jobs.size(); at += batch) {
      size_t end = std::min(jobs.size(), at + batch);
      parallelFor(&getContext(), at, end,
                  [&](size_t i) { compute(jobs[i], *scaleMode); });
      for (size_t i = at; i < end; ++i)
        if (failed(build(rewriter, jobs[i], *scaleMode)))
          return signalPassFailure();
    }
    // The float weights that became codes are not needed any more.
    releaseUnusedResourceBlobs(module);
  }

  /// One matmul to quantise: what prepare() found, what compute() made.
  struct Job {
    linalg::MatmulOp op;
    MatmulView mm;
    ElementsAttr wAttr;
    Operation *narrow; // the f16/bf16 constant the weight widens, or null
    std::string name, opName, onnxWeight;
    int64_t n = 0, k = 0, j = 0, group = 0;
    QuantSpecAttr spec;
    // compute():
    SmallVector<float> w; // row-major [N, K]; kept for gamma mode only
    quant::QuantizedMatrix qm;
    bool missing = false;
    int64_t badIndex = -1; // first non-finite element, in wAttr's layout
    float badValue = 0;
  };

  std::optional<Job> prepare(linalg::MatmulOp op, llvm::Regex &regex,
                             ScaleMode scaleMode) {
    std::optional<MatmulView> mm = matchMatmul(op);
    if (!mm)
      return std::nullopt;
    // The weight: an f32 constant, or an f16/bf16 one widened (quantised
    // from its own data, never copied to f32 first).
    ElementsAttr wAttr;
    Operation *narrow = widenedConstant(mm->weight);
    Value source = narrow ? narrow->getResult(0) : mm->weight;
    if (!matchConstantTensor(source, wAttr) ||
        !(wAttr.getElementType().isF32() ||
          (narrow && (wAttr.getElementType().isBF16() ||
                      wAttr.getElementType().isF16()))))
      return std::nullopt;
    auto xTy = cast<RankedTensorType>(mm->input.getType());
    auto yTy = cast<RankedTensorType>(mm->init.getType());
    if (xTy.getElementType() != yTy.getElementType() ||
        !yTy.hasStaticShape())
      return std::nullopt;
    // Exporters often give weights generated names (torch: "onnx::MatMul_12"),
    // so the layer is selected by the weight's name or by the matmul's own
    // location name (the ONNX node, e.g. ".../layers.0/mlp/up_proj/MatMul").
    std::string name = weightName(source);
    std::string opName = locationName(op.getLoc());
    if (!regex.match(name) && !(!opName.empty() && regex.match(opName)))
      return std::nullopt;
    // Generated weight names say nothing; the node name then names the layer
    // (and its scales, zero points, gamma) for training and export.
    std::string onnxWeight = name;
    if ((name.empty() || StringRef(name).starts_with("onnx::")) &&
        !opName.empty())
      name = opName;

    auto wTy = cast<RankedTensorType>(wAttr.getType());
    Job job;
    job.op = op;
    job.mm = *mm;
    job.wAttr = wAttr;
    job.narrow = narrow;
    job.name = name;
    job.opName = opName;
    job.onnxWeight = onnxWeight;
    job.n = mm->weightIsNK ? wTy.getDimSize(0) : wTy.getDimSize(1);
    job.k = mm->weightIsNK ? wTy.getDimSize(1) : wTy.getDimSize(0);
    // A group covering all of K is one group per row.
    job.group = (groupSize == 0 || groupSize >= job.k) ? 0 : groupSize;
    job.spec = QuantSpecAttr::get(&getContext(), bits, job.group, symmetric,
                                  scaleMode);
    job.j = job.spec.getNumGroups(job.k);
    return job;
  }

  /// The quantisation arithmetic; reads the weight, touches no IR.
  void compute(Job &job, ScaleMode scaleMode) {
    int64_t n = job.n, k = job.k;
    // f32 data is read where it lies (the mapped or imported weight), so
    // the transpose is the one pass that copies it; other types widen into
    // a copy first. (Copying first put 2 x 4 bytes a weight of fresh pages
    // in the way: 0.1 s of CPU on the 250 M-parameter LLaVA.)
    SmallVector<float> w;
    const float *src = nullptr;
    std::optional<ArrayRef<char>> raw;
    if (job.wAttr.getElementType().isF32())
      raw = constantBytes(job.wAttr);
    if (raw && reinterpret_cast<uintptr_t>(raw->data()) % alignof(float) == 0) {
      src = reinterpret_cast<const float *>(raw->data());
    } else {
      if (!readFloats(job.wAttr, w)) {
        job.missing = true;
        return;
      }
      src = w.data();
    }
    const int64_t count = n * k;
    // One pass that vectorises (no early exit); the element is found only
    // when there is one.
    bool finite = true;
    for (int64_t i = 0; i < count; ++i)
      finite &= std::fabs(src[i]) <= std::numeric_limits<float>::max();
    if (!finite)
      for (int64_t i = 0; i < count; ++i)
        if (!std::isfinite(src[i])) {
          job.badIndex = i;
          job.badValue = src[i];
          return;
        }
    if (!job.mm.weightIsNK) {
      // [K, N] -> [N, K] through a 16 x 16 block in registers/L1: whole
      // 64-byte lines read and written. (Element by element over 64 x 64
      // tiles, the stores strode by K floats, 4 KiB for K = 1024, all into
      // one L1 set: 80 % of the pass, 8 ns a weight.)
      SmallVector<float> t(count);
      constexpr int64_t T = 16;
      float block[T][T];
      for (int64_t r0 = 0; r0 < k; r0 += T)
        for (int64_t c0 = 0; c0 < n; c0 += T) {
          const int64_t rows = std::min(T, k - r0), cols = std::min(T, n - c0);
          for (int64_t r = 0; r < rows; ++r)
            for (int64_t c = 0; c < cols; ++c)
              block[c][r] = src[(r0 + r) * n + c0 + c];
          for (int64_t c = 0; c < cols; ++c)
            for (int64_t r = 0; r < rows; ++r)
              t[(c0 + c) * k + r0 + r] = block[c][r];
        }
      w = std::move(t);
      src = w.data();
    }
    job.qm = quant::quantizeMatrix(src, n, k, job.group, bits, symmetric,
                                   clipSteps);
    // Gamma mode keeps its [N, K] copy, unless it reads the weight where
    // it lies (gamma-weight-as-stored, build()).
    if (scaleMode == ScaleMode::Gamma && !gammaWeightAsStored) {
      if (w.empty())
        w.assign(src, src + count);
      job.w = std::move(w);
    }
  }

  LogicalResult build(IRRewriter &b, Job &job, ScaleMode scaleMode) {
    linalg::MatmulOp op = job.op;
    MatmulView *mm = &job.mm;
    ElementsAttr wAttr = job.wAttr;
    const std::string &name = job.name, &opName = job.opName,
                      &onnxWeight = job.onnxWeight;
    int64_t n = job.n, k = job.k, j = job.j;
    QuantSpecAttr spec = job.spec;
    auto yTy = cast<RankedTensorType>(mm->init.getType());
    if (job.missing)
      return op.emitError("qslaw-quantize-weights: the data of weight '")
             << (onnxWeight.empty() ? name : onnxWeight) << "' is missing";
    // NaN/Inf would become a NaN or infinite scale for its group, and codes
    // from nonsense: refuse, naming the weight and the element.
    if (job.badIndex >= 0) {
      float v = job.badValue;
      int64_t i = job.badIndex;
      int64_t cols = cast<RankedTensorType>(wAttr.getType()).getDimSize(1);
      return op.emitError("qslaw-quantize-weights: weight '")
             << (onnxWeight.empty() ? name : onnxWeight)
             << "' holds a non-finite value (" << (std::isnan(v) ? "nan" : v > 0 ? "inf" : "-inf")
             << ") at [" << i / cols << ", " << i % cols
             << "]: it cannot be quantized";
    }
    quant::QuantizedMatrix &qm = job.qm;
    SmallVector<float> &w = job.w;

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
      // gamma mode keeps W and recomputes the codes from s * gamma. With
      // gamma-weight-as-stored the weight stays the model's own constant
      // (a resource over the mapped file: no copy at compile time), f16 or
      // bf16 ones unwidened, read as [N, K] through a transpose when the
      // model stores [K, N]; the CPU kernels read that transpose as strides
      // and widen as they read (qslaw-lower-to-ukernels), so neither is
      // ever computed. (A transposed f32 copy per weight had doubled the
      // weights in the compiler's memory: the 1B-class gamma trainer
      // peaked at 9.6 GB.) Otherwise W is an f32 [N, K] copy.
      Value weight;
      if (gammaWeightAsStored) {
        weight = job.narrow ? job.narrow->getResult(0) : mm->weight;
        if (!mm->weightIsNK) {
          Value init = tensor::EmptyOp::create(
              b, loc, ArrayRef<int64_t>{n, k},
              cast<RankedTensorType>(weight.getType()).getElementType());
          weight = linalg::TransposeOp::create(b, loc, weight, init,
                                               ArrayRef<int64_t>{1, 0})
                       ->getResult(0);
        }
      } else {
        weight = namedConstant(b, loc, f32ConstantLike(wAttr, {n, k}, w, name),
                               name);
      }
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
    Operation *narrow = job.narrow;
    replaceMatmul(b, *mm, product);
    // The float weight (and a narrow one it widened) must not survive into
    // the artifact.
    if (oldWeight && oldWeight->use_empty())
      b.eraseOp(oldWeight);
    if (narrow && narrow->use_empty())
      b.eraseOp(narrow);
    job.qm = {};
    job.w = {};
    return success();
  }
};
} // namespace
