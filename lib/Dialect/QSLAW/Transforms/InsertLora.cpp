//===- InsertLora.cpp - low-rank adapters beside quantized linears --------===//
//
// y' = y + (alpha/r) (x A^T) B^T for the selected qslaw.qmatmul ops (PEFT's
// LoRA on the quantized base). A and B are named, marked constants that
// qslaw-make-train-step turns into trainable tensors; see Passes.td.
//
//===----------------------------------------------------------------------===//
#include "qslaw/Dialect/QSLAW/IR/QSLAWOps.h"
#include "qslaw/Dialect/QSLAW/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
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
    SmallVector<QMatmulOp> selected;
    module.walk([&](QMatmulOp q) {
      auto layer = q->getAttrOfType<StringAttr>("qslaw.layer");
      if (layer && re.match(layer.getValue()))
        selected.push_back(q);
    });
    if (selected.empty()) {
      module.emitError("qslaw-insert-lora: layers regex '")
          << static_cast<std::string>(layers)
          << "' selects no quantized layer";
      return signalPassFailure();
    }
    for (QMatmulOp q : selected)
      if (failed(insert(q)))
        return signalPassFailure();
  }

  LogicalResult insert(QMatmulOp q) {
    StringRef layer = q->getAttrOfType<StringAttr>("qslaw.layer").getValue();
    auto xTy = cast<RankedTensorType>(q.getInput().getType());
    auto yTy = cast<RankedTensorType>(q.getResult().getType());
    auto cTy = cast<RankedTensorType>(q.getCodes().getType());
    int64_t n = cTy.getDimSize(0), k = cTy.getDimSize(1);
    if (!xTy.getElementType().isF32() || !yTy.getElementType().isF32())
      return q.emitError("qslaw-insert-lora: layer '")
             << layer << "' has " << xTy.getElementType()
             << " activations; adapters need f32";
    if (rank < 1 || rank > std::min(n, k))
      return q.emitError("qslaw-insert-lora: rank ")
             << static_cast<int64_t>(rank) << " is outside [1, "
             << std::min(n, k) << "] for layer '" << layer << "' ([N, K] = ["
             << n << ", " << k << "])";
    OpBuilder b(q);
    b.setInsertionPointAfter(q);
    Location loc = q.getLoc();
    auto f32 = b.getF32Type();
    auto aTy = RankedTensorType::get({rank, k}, f32);
    auto bTy = RankedTensorType::get({n, rank}, f32);
    auto node = q->getAttrOfType<StringAttr>("qslaw.node");
    StringRef source = node ? node.getValue() : layer;
    Value a = markedConstant(b, loc, kaimingUniform(aTy, seed, layer),
                             (layer + ".lora_A").str(), "A", source);
    Value bm = markedConstant(
        b, loc, DenseElementsAttr::get(bTy, b.getF32FloatAttr(0.0f)),
        (layer + ".lora_B").str(), "B", source);
    Value down = contractLast(b, loc, q.getInput(), a);
    Value up = contractLast(b, loc, down, bm);
    float scale = float(double(alpha) / double(rank));
    unsigned r = yTy.getRank();
    AffineMap id = b.getMultiDimIdentityMap(r);
    Value empty = tensor::EmptyOp::create(b, loc, yTy.getShape(), f32);
    auto sum = linalg::GenericOp::create(
        b, loc, yTy, ValueRange{q.getResult(), up}, ValueRange{empty},
        SmallVector<AffineMap>(3, id),
        SmallVector<utils::IteratorType>(r, utils::IteratorType::parallel),
        [&](OpBuilder &nb, Location l, ValueRange v) {
          Value c = arith::ConstantOp::create(nb, l, nb.getF32FloatAttr(scale));
          Value m = arith::MulFOp::create(nb, l, c, v[1]);
          linalg::YieldOp::create(nb, l,
                                  Value(arith::AddFOp::create(nb, l, v[0], m)));
        });
    sum->setAttr("qslaw.lora_sum", b.getStringAttr(layer));
    q.getResult().replaceAllUsesExcept(sum.getResult(0), sum);
    return success();
  }
};

} // namespace
