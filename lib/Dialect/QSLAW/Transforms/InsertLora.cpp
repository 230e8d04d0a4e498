//===- InsertLora.cpp - low-rank adapters beside quantized linears --------===//
//
// y' = y + (alpha/r) (x A^T) B^T for the selected qslaw.qmatmul ops (PEFT's
// LoRA on the quantized base). A and B are named, marked constants that
// qslaw-make-train-step turns into trainable tensors; see Passes.td.
//
//===----------------------------------------------------------------------===//
#include "MatmulMatch.h"
#include "qslaw/Dialect/QSLAW/IR/QSLAWOps.h"
#include "qslaw/Dialect/QSLAW/Utils/ConstantData.h"
#include "qslaw/Dialect/QSLAW/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Matchers.h"
#include "llvm/Support/xxhash.h"
#include "llvm/Support/Regex.h"

#include <cmath>

namespace mlir::qslaw {
#define GEN_PASS_DEF_INSERTLORA
#include "qslaw/Dialect/QSLAW/Transforms/Passes.h.inc"
} // namespace mlir::qslaw

using namespace mlir;
using namespace mlir::qslaw;

namespace {

uint64_t splitmix64(uint64_t &state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/// PEFT initialises A with kaiming_uniform_(a=sqrt(5)): gain sqrt(1/3),
/// bound gain*sqrt(3/fan_in) = 1/sqrt(K). Deterministic in (seed, layer).
DenseElementsAttr kaimingUniform(RankedTensorType ty, uint64_t seed,
                                 StringRef layer) {
  int64_t k = ty.getDimSize(1);
  float bound = 1.0f / std::sqrt(float(k));
  uint64_t state = seed ^ llvm::xxh3_64bits(layer);
  SmallVector<float> v(ty.getNumElements());
  for (float &x : v) {
    float u = float(splitmix64(state) >> 40) * 0x1.0p-24f; // [0, 1)
    x = (2.0f * u - 1.0f) * bound;
  }
  return DenseElementsAttr::get(ty, ArrayRef<float>(v));
}

/// `source`: the ONNX node of the adapted linear (the exporter's anchor).
Value markedConstant(OpBuilder &b, Location loc, DenseElementsAttr value,
                     StringRef name, StringRef role, StringRef source) {
  auto c = arith::ConstantOp::create(b, loc, value);
  c->setAttr("qslaw.name", b.getStringAttr(name));
  c->setAttr("qslaw.lora", b.getStringAttr(role));
  c->setAttr("qslaw.lora_source", b.getStringAttr(source));
  return c;
}

Value zeros(OpBuilder &b, Location loc, ArrayRef<int64_t> shape) {
  Value empty = tensor::EmptyOp::create(b, loc, shape, b.getF32Type());
  Value zero = arith::ConstantOp::create(b, loc, b.getF32FloatAttr(0.0f));
  return linalg::FillOp::create(b, loc, zero, empty).getResult(0);
}

/// out[lead..., j] = sum_k lhs[lead..., k] * rhs[j, k]: a contraction over
/// the last dimension of `lhs` with the rows of `rhs`.
Value contractLast(OpBuilder &b, Location loc, Value lhs, Value rhs) {
  auto lTy = cast<RankedTensorType>(lhs.getType());
  auto rTy = cast<RankedTensorType>(rhs.getType());
  unsigned lead = lTy.getRank() - 1, n = lead + 2;
  MLIRContext *ctx = b.getContext();
  SmallVector<AffineExpr> l, out;
  for (unsigned i = 0; i < lead; ++i) {
    l.push_back(getAffineDimExpr(i, ctx));
    out.push_back(getAffineDimExpr(i, ctx));
  }
  AffineExpr j = getAffineDimExpr(lead, ctx), k = getAffineDimExpr(lead + 1, ctx);
  l.push_back(k);
  out.push_back(j);
  SmallVector<AffineMap> maps{AffineMap::get(n, 0, l, ctx),
                              AffineMap::get(n, 0, {j, k}, ctx),
                              AffineMap::get(n, 0, out, ctx)};
  SmallVector<utils::IteratorType> iters(lead + 1, utils::IteratorType::parallel);
  iters.push_back(utils::IteratorType::reduction);
  SmallVector<int64_t> shape(lTy.getShape().drop_back());
  shape.push_back(rTy.getDimSize(0));
  Value init = zeros(b, loc, shape);
  return linalg::GenericOp::create(
             b, loc, init.getType(), ValueRange{lhs, rhs}, ValueRange{init},
             maps, iters,
             [](OpBuilder &nb, Location l, ValueRange a) {
               Value m = arith::MulFOp::create(nb, l, a[0], a[1]);
               linalg::YieldOp::create(nb, l,
                                       Value(arith::AddFOp::create(nb, l, a[2], m)));
             })
      .getResult(0);
}

struct InsertLoraPass : qslaw::impl::InsertLoraBase<InsertLoraPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    llvm::Regex re("^(" + layers + ")$");
    std::string err;
    if (!re.isValid(err)) {
      module.emitError("qslaw-insert-lora: invalid layers regex '")
          << static_cast<std::string>(layers) << "': " << err;
      return signalPassFailure();
    }
    if (!std::isfinite(double(alpha))) {
      module.emitError("qslaw-insert-lora: alpha must be finite");
      return signalPassFailure();
    }
    // Quantized linears by their qslaw.layer; float linears (a matmul by a
    // constant weight, for full-precision LoRA) by the weight's name or the
    // node's, as qslaw-quantize-weights names them.
    SmallVector<std::pair<Operation *, std::string>> selected;
    module.walk([&](Operation *op) {
      if (auto q = dyn_cast<QMatmulOp>(op)) {
        auto layer = q->getAttrOfType<StringAttr>("qslaw.layer");
        if (layer && re.match(layer.getValue()))
          selected.push_back({op, layer.str()});
        return;
      }
      auto mm = dyn_cast<linalg::MatmulOp>(op);
      std::optional<MatmulView> view = mm ? matchMatmul(mm) : std::nullopt;
      if (!view)
        return;
      // The weight, or the f16/bf16 constant it is widened from.
      Value weight = view->weight;
      if (Operation *narrow = widenedConstant(weight))
        weight = narrow->getResult(0);
      ElementsAttr w;
      if (!matchConstantTensor(weight, w) || !isa<FloatType>(w.getElementType()))
        return;
      Operation *def = weight.getDefiningOp();
      auto wName = def->getAttrOfType<StringAttr>("qslaw.name");
      std::string names[2] = {wName ? wName.str() : locationName(def->getLoc()),
                              locationName(op->getLoc())};
      for (const std::string &n : names)
        if (!n.empty() && re.match(n)) {
          selected.push_back({op, n});
          return;
        }
    });
    if (selected.empty()) {
      module.emitError("qslaw-insert-lora: layers regex '")
          << static_cast<std::string>(layers)
          << "' selects no linear layer";
      return signalPassFailure();
    }
    for (auto &[op, name] : selected)
      if (failed(insert(op, name)))
        return signalPassFailure();
  }

  LogicalResult insert(Operation *op, StringRef layer) {
    Value x, y;
    int64_t n, k;
    std::string node;
    if (auto q = dyn_cast<QMatmulOp>(op)) {
      auto cTy = cast<RankedTensorType>(q.getCodes().getType());
      n = cTy.getDimSize(0);
      k = cTy.getDimSize(1);
      x = q.getInput();
      y = q.getResult();
      auto nodeAttr = q->getAttrOfType<StringAttr>("qslaw.node");
      node = nodeAttr ? nodeAttr.str() : layer.str();
    } else {
      MatmulView v = *matchMatmul(cast<linalg::MatmulOp>(op));
      auto wTy = cast<RankedTensorType>(v.weight.getType());
      n = wTy.getDimSize(v.weightIsNK ? 0 : 1);
      k = wTy.getDimSize(v.weightIsNK ? 1 : 0);
      x = v.input;
      y = op->getResult(0);
      node = locationName(op->getLoc());
      if (node.empty())
        node = layer.str();
    }
    auto xTy = cast<RankedTensorType>(x.getType());
    auto yTy = cast<RankedTensorType>(y.getType());
    if (!xTy.getElementType().isF32() || !yTy.getElementType().isF32())
      return op->emitError("qslaw-insert-lora: layer '")
             << layer << "' has " << xTy.getElementType()
             << " activations; adapters need f32";
    if (rank < 1 || rank > std::min(n, k))
      return op->emitError("qslaw-insert-lora: rank ")
             << static_cast<int64_t>(rank) << " is outside [1, "
             << std::min(n, k) << "] for layer '" << layer << "' ([N, K] = ["
             << n << ", " << k << "])";
    OpBuilder b(op);
    b.setInsertionPointAfter(op);
    Location loc = op->getLoc();
    auto f32 = b.getF32Type();
    auto aTy = RankedTensorType::get({rank, k}, f32);
    auto bTy = RankedTensorType::get({n, rank}, f32);
    StringRef source = node;
    Value a = markedConstant(b, loc, kaimingUniform(aTy, seed, layer),
                             (layer + ".lora_A").str(), "A", source);
    Value bm = markedConstant(
        b, loc, DenseElementsAttr::get(bTy, b.getF32FloatAttr(0.0f)),
        (layer + ".lora_B").str(), "B", source);
    Value down = contractLast(b, loc, x, a);
    Value up = contractLast(b, loc, down, bm);
    float scale = float(double(alpha) / double(rank));
    unsigned r = yTy.getRank();
    AffineMap id = b.getMultiDimIdentityMap(r);
    Value empty = tensor::EmptyOp::create(b, loc, yTy.getShape(), f32);
    auto sum = linalg::GenericOp::create(
        b, loc, yTy, ValueRange{y, up}, ValueRange{empty},
        SmallVector<AffineMap>(3, id),
        SmallVector<utils::IteratorType>(r, utils::IteratorType::parallel),
        [&](OpBuilder &nb, Location l, ValueRange v) {
          Value c = arith::ConstantOp::create(nb, l, nb.getF32FloatAttr(scale));
          Value m = arith::MulFOp::create(nb, l, c, v[1]);
          linalg::YieldOp::create(nb, l,
                                  Value(arith::AddFOp::create(nb, l, v[0], m)));
        });
    sum->setAttr("qslaw.lora_sum", b.getStringAttr(layer));
    y.replaceAllUsesExcept(sum.getResult(0), sum);
    return success();
  }
};

} // namespace
