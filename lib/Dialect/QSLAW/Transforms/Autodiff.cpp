//===- Autodiff.cpp - activity analysis and derivative rules ----------------===//
#include "Autodiff.h"

#include "qslaw/Dialect/QSLAW/IR/QSLAWOps.h"
#include "qslaw/Dialect/QSLAW/Utils/MaskedScan.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

using namespace mlir;

namespace mlir::qslaw::autodiff {

namespace {
bool isFloatTensor(Value v) {
  auto t = dyn_cast<RankedTensorType>(v.getType());
  return t && isa<FloatType>(t.getElementType());
}

/// Values an op reads: its operands and what its regions capture.
SmallVector<Value> readValues(Operation *op) {
  SmallVector<Value> r(op->getOperands());
  op->walk([&](Operation *inner) {
    if (inner == op)
      return;
    for (Value v : inner->getOperands())
      if (!op->isAncestor(v.getParentBlock()->getParentOp()))
        r.push_back(v);
  });
  return r;
}
} // namespace

void ReverseAD::analyzeActivity(Block &body, ArrayRef<Value> leaves) {
  active.insert(leaves.begin(), leaves.end());
  for (Operation &op : body) {
    bool any = llvm::any_of(readValues(&op),
                            [&](Value v) { return active.contains(v); });
    if (!any)
      continue;
    // Integer results stay active too: gamma-mode codes carry gamma's
    // influence into qslaw.qmatmul (its rule handles them).
    for (Value r : op.getResults())
      active.insert(r);
  }
}

void ReverseAD::addCotangent(Value v, Value d) {
  if (!d || !isActive(v) || !isFloatTensor(v))
    return;
  auto it = cot.find(v);
  if (it == cot.end()) {
    cot[v] = d;
    return;
  }
  it->second = buildAdd(b, v.getLoc(), it->second, d);
}

LogicalResult ReverseAD::backprop(ArrayRef<Operation *> ops) {
  for (Operation *op : llvm::reverse(ops)) {
    bool hasCot = llvm::any_of(op->getResults(),
                               [&](Value r) { return cot.contains(r); });
    if (!hasCot)
      continue;
    if (failed(rule(op)))
      return failure();
  }
  return success();
}

LogicalResult ReverseAD::rule(Operation *op) {
  Location loc = op->getLoc();
  if (auto g = dyn_cast<linalg::GenericOp>(op))
    return genericRule(g);
  if (isa<QMatmulOp>(op))
    return qmatmulRule(op);
  if (op->hasAttr(kMaskedScatterAttr))
    return maskedScatterRule(op);
  if (auto e = dyn_cast<tensor::ExpandShapeOp>(op)) {
    if (isActive(e.getSrc()))
      addCotangent(e.getSrc(), tensor::CollapseShapeOp::create(
                                   b, loc, e.getSrcType(), cotangent(e.getResult()),
                                   e.getReassociationIndices()));
    return success();
  }
  if (auto c = dyn_cast<tensor::CollapseShapeOp>(op)) {
    if (isActive(c.getSrc()))
      addCotangent(c.getSrc(), tensor::ExpandShapeOp::create(
                                   b, loc, c.getSrcType(), cotangent(c.getResult()),
                                   c.getReassociationIndices()));
    return success();
  }
  if (auto s = dyn_cast<tensor::ExtractSliceOp>(op)) {
    if (isActive(s.getSource())) {
      Value z = buildZeros(b, loc, s.getSourceType());
      addCotangent(s.getSource(),
                   tensor::InsertSliceOp::create(
                       b, loc, cotangent(s.getResult()), z, s.getMixedOffsets(),
                       s.getMixedSizes(), s.getMixedStrides()));
    }
    return success();
  }
  if (auto s = dyn_cast<tensor::InsertSliceOp>(op)) {
    Value d = cotangent(s.getResult());
    if (isActive(s.getSource()))
      addCotangent(s.getSource(),
                   tensor::ExtractSliceOp::create(
                       b, loc, cast<RankedTensorType>(s.getSourceType()), d,
                       s.getMixedOffsets(), s.getMixedSizes(),
                       s.getMixedStrides()));
    if (isActive(s.getDest())) {
      Value z = buildZeros(b, loc, s.getSourceType());
      addCotangent(s.getDest(), tensor::InsertSliceOp::create(
                                    b, loc, z, d, s.getMixedOffsets(),
                                    s.getMixedSizes(), s.getMixedStrides()));
    }
    return success();
  }
  if (auto c = dyn_cast<tensor::ConcatOp>(op)) {
    Value d = cotangent(c.getResult());
    auto rTy = c.getResultType();
    int64_t dim = c.getDim(), off = 0;
    for (Value in : c.getInputs()) {
      auto inTy = cast<RankedTensorType>(in.getType());
      if (isActive(in)) {
        SmallVector<OpFoldResult> offs(rTy.getRank(), b.getIndexAttr(0)),
            sizes, strides(rTy.getRank(), b.getIndexAttr(1));
        offs[dim] = b.getIndexAttr(off);
        for (int64_t s : inTy.getShape())
          sizes.push_back(b.getIndexAttr(s));
        addCotangent(in, tensor::ExtractSliceOp::create(b, loc, inTy, d, offs,
                                                        sizes, strides));
      }
      off += inTy.getDimSize(dim);
    }
    return success();
  }
  if (isa<tensor::EmptyOp, arith::ConstantOp, linalg::FillOp>(op))
    return success();
  return op->emitError("qslaw-make-train-step: no derivative rule for '")
         << op->getName() << "' on the gradient path";
}

LogicalResult ReverseAD::genericRule(linalg::GenericOp g) {
  Value d = cotangent(g->getResult(0));
  if (g.getNumDpsInits() != 1)
    return g.emitError("qslaw-make-train-step: no derivative rule for a "
                       "linalg.generic with several results");
  unsigned nIn = g.getNumDpsInputs();
  for (unsigned i = 0; i <= nIn; ++i) {
    Value operand = i < nIn ? g.getDpsInputOperand(i)->get()
                            : g.getDpsInitOperand(0)->get();
    if (!isActive(operand) || !isFloatTensor(operand))
      continue;
    // A body that reads an active tensor through tensor.extract (a gather)
    // has no rule; only frozen tables may be gathered from.
    FailureOr<Value> grad = buildGenericOperandGrad(b, g, i, d);
    if (failed(grad))
      return failure();
    addCotangent(operand, *grad);
  }
  WalkResult captured = g.getRegion().walk([&](Operation *inner) {
    for (Value v : inner->getOperands())
      if (isActive(v) && !g->isAncestor(v.getParentBlock()->getParentOp()))
        return WalkResult::interrupt();
    return WalkResult::advance();
  });
  if (captured.wasInterrupted())
    return g.emitError("qslaw-make-train-step: no derivative rule for a "
                       "linalg.generic whose body reads a trainable-dependent "
                       "tensor (gather)");
  return success();
}

LogicalResult ReverseAD::qmatmulRule(Operation *op) {
  auto q = cast<QMatmulOp>(op);
  Location loc = q.getLoc();
  Value dy = cotangent(q.getResult());
  auto spec = q.getSpec();
  if (isActive(q.getInput()))
    addCotangent(q.getInput(),
                 QMatmulGradInputOp::create(b, loc, q.getInput().getType(), dy,
                                            q.getCodes(), q.getScales(),
                                            q.getZeros(), spec));
  auto sTy = q.getScales().getType();
  if (isActive(q.getScales())) {
    if (spec.getMode() != ScaleMode::Scale)
      return q.emitError("qslaw-make-train-step: scales of a gamma-mode "
                         "qmatmul cannot train directly (gamma trains)");
    addCotangent(q.getScales(),
                 QMatmulGradScaleOp::create(b, loc, sTy, q.getInput(), dy,
                                            q.getCodes(), q.getZeros(), spec));
  }
  // gamma mode: codes = quantize(W, s * gamma); gamma gets the fused
  // straight-through gradient.
  if (auto quant = q.getCodes().getDefiningOp<QuantizeOp>()) {
    auto mul = quant.getScales().getDefiningOp<arith::MulFOp>();
    if (mul && isActive(mul.getRhs())) {
      if (mul.getLhs() != q.getScales() || isActive(q.getScales()) ||
          isActive(quant.getWeight()))
        return q.emitError("qslaw-make-train-step: gamma-mode layer must "
                           "compute codes as quantize(W, s * gamma) with "
                           "frozen W and s");
      addCotangent(mul.getRhs(), QMatmulGradGammaOp::create(
                                     b, loc, mul.getRhs().getType(),
                                     q.getInput(), dy, quant.getWeight(),
                                     q.getScales(), mul.getRhs(), q.getZeros(),
                                     spec));
    }
  }
  if (Value bias = q.getBias(); bias && isActive(bias)) {
    // dbias[n] = sum over every leading index of dy[..., n]
    auto dyTy = cast<RankedTensorType>(dy.getType());
    unsigned rank = dyTy.getRank();
    auto bTy = cast<RankedTensorType>(bias.getType());
    SmallVector<utils::IteratorType> its(rank, utils::IteratorType::reduction);
    its.back() = utils::IteratorType::parallel;
    SmallVector<AffineMap> maps{
        b.getMultiDimIdentityMap(rank),
        AffineMap::get(rank, 0, b.getAffineDimExpr(rank - 1))};
    Value db = linalg::GenericOp::create(
                   b, loc, bTy, dy, buildZeros(b, loc, bTy), maps, its,
                   [](OpBuilder &nb, Location nl, ValueRange a) {
                     Value v = a[0];
                     if (v.getType() != a[1].getType())
                       v = arith::ExtFOp::create(nb, nl, a[1].getType(), v);
                     linalg::YieldOp::create(
                         nb, nl, Value(arith::AddFOp::create(nb, nl, a[1], v)));
                   })
                   .getResult(0);
    addCotangent(bias, db);
  }
  return success();
}

/// The importer's masked scatter: a scan writing src[k] into the k-th true
/// position of mask. dData is d with the written positions zeroed; dSrc[k]
/// gathers d at the k-th true position (accumulating, since positions past
/// the end of src reuse its last element).
LogicalResult ReverseAD::maskedScatterRule(Operation *op) {
  auto loop = dyn_cast<scf::ForOp>(op);
  Value mask, src;
  if (loop)
    loop.getBody()->walk([&](tensor::ExtractOp e) {
      auto ty = e.getTensor().getType();
      if (ty.getElementType().isInteger(1))
        mask = e.getTensor();
      else if (isa<FloatType>(ty.getElementType()))
        src = e.getTensor();
    });
  if (!loop || !mask || !src)
    return op->emitError("qslaw-make-train-step: malformed masked scatter");
  Location loc = op->getLoc();
  Value d = cotangent(loop.getResult(0));
  Value data = loop.getInitArgs()[0];
  auto dTy = cast<RankedTensorType>(d.getType());
  if (isActive(data)) {
    auto id = b.getMultiDimIdentityMap(1);
    Value masked =
        linalg::GenericOp::create(
            b, loc, dTy, ValueRange{mask, d},
            tensor::EmptyOp::create(b, loc, dTy.getShape(), dTy.getElementType())
                .getResult(),
            SmallVector<AffineMap>{id, id, id},
            SmallVector<utils::IteratorType>{utils::IteratorType::parallel},
            [](OpBuilder &nb, Location nl, ValueRange a) {
              Value z = arith::ConstantOp::create(
                  nb, nl, nb.getZeroAttr(a[1].getType()));
              linalg::YieldOp::create(
                  nb, nl, Value(arith::SelectOp::create(nb, nl, a[0], z, a[1])));
            })
            .getResult(0);
    addCotangent(data, masked);
  }
  if (isActive(src)) {
    auto sTy = cast<RankedTensorType>(src.getType());
    // The adjoint of dst[p] = src[k]: dsrc[k] += ddst[p], same pairing.
    auto scan = buildMaskedScan(
        b, loc, mask, dTy.getDimSize(0), sTy.getDimSize(0),
        buildZeros(b, loc, sTy),
        [&](OpBuilder &tb, Location tl, Value acc, Value p, Value k) -> Value {
          Value old = tensor::ExtractOp::create(tb, tl, acc, k);
          Value v = tensor::ExtractOp::create(tb, tl, d, p);
          Value sum = arith::AddFOp::create(tb, tl, old, v);
          return tensor::InsertOp::create(tb, tl, sum, acc, k);
        });
    addCotangent(src, scan.getResult(0));
  }
  return success();
}

} // namespace mlir::qslaw::autodiff
