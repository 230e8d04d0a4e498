//===- BoolTensorsAsBytes.cpp - boolean tensors in memory as i8 -----------===//
//
// LLVM stores an i1 in a byte but cannot load consecutive ones as a vector
// (a vector of i1 is bit-packed): a vectorised loop over an i1 buffer loads
// and inserts each lane on its own. Boolean tensors that reach memory are
// therefore kept as i8 (0 or 1), extended where written and truncated where
// read.
//
//===----------------------------------------------------------------------===//
#include "qslaw/Conversion/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

namespace mlir::qslaw {
#define GEN_PASS_DEF_BOOLTENSORSASBYTES
#include "qslaw/Conversion/Passes.h.inc"
} // namespace mlir::qslaw

using namespace mlir;

namespace {

bool isBoolTensor(Type t) {
  auto rt = dyn_cast<RankedTensorType>(t);
  return rt && rt.getElementType().isInteger(1);
}

RankedTensorType asBytes(Type t) {
  auto rt = cast<RankedTensorType>(t);
  return RankedTensorType::get(rt.getShape(),
                               IntegerType::get(t.getContext(), 8),
                               rt.getEncoding());
}

/// Whether every reader of `v` takes bytes: generic inputs, extracts, and
/// reshapes whose readers do.
bool readersTakeBytes(Value v) {
  for (OpOperand &use : v.getUses()) {
    Operation *user = use.getOwner();
    if (auto g = dyn_cast<linalg::GenericOp>(user)) {
      if (!g.isDpsInput(&use))
        return false;
      continue;
    }
    if (isa<tensor::ExtractOp>(user))
      continue;
    if (isa<tensor::ExpandShapeOp, tensor::CollapseShapeOp>(user)) {
      if (!readersTakeBytes(user->getResult(0)))
        return false;
      continue;
    }
    return false;
  }
  return true;
}

/// `v` now holds bytes: its readers truncate them back to i1.
void retypeReaders(Value v, OpBuilder &b) {
  for (OpOperand &use : llvm::make_early_inc_range(v.getUses())) {
    Operation *user = use.getOwner();
    if (auto g = dyn_cast<linalg::GenericOp>(user)) {
      BlockArgument arg = g.getMatchingBlockArgument(&use);
      arg.setType(b.getI8Type());
      b.setInsertionPointToStart(g.getBody());
      Value bit = arith::TruncIOp::create(b, g.getLoc(), b.getI1Type(), arg);
      arg.replaceAllUsesExcept(bit, bit.getDefiningOp());
    } else if (auto ex = dyn_cast<tensor::ExtractOp>(user)) {
      ex.getResult().setType(b.getI8Type());
      b.setInsertionPointAfter(ex);
      Value bit = arith::TruncIOp::create(b, ex.getLoc(), b.getI1Type(), ex);
      ex.getResult().replaceAllUsesExcept(bit, bit.getDefiningOp());
    } else { // a reshape
      Value r = user->getResult(0);
      r.setType(asBytes(r.getType()));
      retypeReaders(r, b);
    }
  }
}

/// A generic's boolean result as bytes, when its body does not read the
/// output it writes.
bool widenGenericResult(linalg::GenericOp g, OpResult res, OpBuilder &b) {
  OpOperand *init = g.getDpsInitOperand(res.getResultNumber());
  if (!g.getMatchingBlockArgument(init).use_empty() ||
      !readersTakeBytes(res))
    return false;
  b.setInsertionPoint(g);
  SmallVector<OpFoldResult> sizes =
      tensor::getMixedSizes(b, g.getLoc(), init->get());
  init->set(tensor::EmptyOp::create(b, g.getLoc(), sizes, b.getI8Type()));
  g.getMatchingBlockArgument(init).setType(b.getI8Type());
  Operation *yield = g.getBody()->getTerminator();
  OpOperand &yielded = yield->getOpOperand(res.getResultNumber());
  b.setInsertionPoint(yield);
  yielded.set(arith::ExtUIOp::create(b, g.getLoc(), b.getI8Type(),
                                     yielded.get()));
  res.setType(asBytes(res.getType()));
  retypeReaders(res, b);
  return true;
}

/// A dense boolean constant as a byte constant.
bool widenConstant(arith::ConstantOp c, OpBuilder &b) {
  auto dense = dyn_cast<DenseIntElementsAttr>(c.getValue());
  if (!dense || !readersTakeBytes(c.getResult()))
    return false;
  RankedTensorType bytes = asBytes(c.getType());
  auto widened = dense.mapValues(
      b.getI8Type(), [](const APInt &bit) { return bit.zext(8); });
  b.setInsertionPoint(c);
  auto nc = arith::ConstantOp::create(b, c.getLoc(), bytes,
                                      cast<TypedAttr>(widened));
  c.getResult().replaceAllUsesWith(nc.getResult());
  c.erase();
  retypeReaders(nc.getResult(), b);
  return true;
}

struct BoolTensorsAsBytesPass
    : qslaw::impl::BoolTensorsAsBytesBase<BoolTensorsAsBytesPass> {
  void runOnOperation() override {
    SmallVector<std::pair<linalg::GenericOp, unsigned>> results;
    SmallVector<arith::ConstantOp> constants;
    getOperation().walk([&](Operation *op) {
      if (auto g = dyn_cast<linalg::GenericOp>(op)) {
        if (g.hasPureTensorSemantics())
          for (OpResult r : g->getResults())
            if (isBoolTensor(r.getType()))
              results.push_back({g, r.getResultNumber()});
      } else if (auto c = dyn_cast<arith::ConstantOp>(op)) {
        if (isBoolTensor(c.getType()))
          constants.push_back(c);
      }
    });
    OpBuilder b(&getContext());
    for (auto [g, i] : results)
      widenGenericResult(g, g->getResult(i), b);
    for (arith::ConstantOp c : constants)
      widenConstant(c, b);
  }
};
} // namespace
