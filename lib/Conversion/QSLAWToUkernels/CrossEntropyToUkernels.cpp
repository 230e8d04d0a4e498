//===- CrossEntropyToUkernels.cpp - next-token loss as kernel calls -------===//
//
// A training step's loss and its gradient read [T, V] logits of which most
// rows are ignored; the runtime's kernels read only the counted rows
// (lib/Runtime/Ukernels/CrossEntropy.cpp), where the generated code reduces
// every row, twice.
//
//===----------------------------------------------------------------------===//
#include "UkernelCalls.h"
#include "qslaw/Conversion/Passes.h"
#include "qslaw/Dialect/QSLAW/IR/QSLAWOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

namespace mlir::qslaw {
#define GEN_PASS_DEF_CROSSENTROPYTOUKERNELS
#include "qslaw/Conversion/Passes.h.inc"
} // namespace mlir::qslaw

using namespace mlir;
using namespace mlir::qslaw;

namespace {
/// Static f32 logits [..., V] of rank >= 2 and i64 labels [...].
bool covered(Value logits, Value labels) {
  auto lt = cast<RankedTensorType>(logits.getType());
  auto bt = cast<RankedTensorType>(labels.getType());
  return lt.hasStaticShape() && bt.hasStaticShape() && lt.getRank() >= 2 &&
         lt.getElementType().isF32() && bt.getElementType().isInteger(64) &&
         bt.getShape() == lt.getShape().drop_back();
}

/// Groups a rank-`rank` shape's leading dims (all but `keep` trailing
/// ones) into one.
SmallVector<ReassociationIndices> leadingGroups(int64_t rank, int64_t keep) {
  ReassociationIndices lead;
  for (int64_t d = 0; d < rank - keep; ++d)
    lead.push_back(d);
  SmallVector<ReassociationIndices> groups{lead};
  for (int64_t d = rank - keep; d < rank; ++d)
    groups.push_back({d});
  return groups;
}

/// `v` with its leading dims merged into one (a view).
Value collapseLeading(OpBuilder &b, Location loc, Value v, int64_t keep) {
  int64_t rank = cast<RankedTensorType>(v.getType()).getRank();
  if (rank == keep + 1)
    return v;
  return tensor::CollapseShapeOp::create(b, loc, v, leadingGroups(rank, keep));
}

struct CrossEntropyToUkernelsPass
    : qslaw::impl::CrossEntropyToUkernelsBase<CrossEntropyToUkernelsPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (failed(checkNumThreads(module, "qslaw-lower-cross-entropy-to-ukernels",
                               numThreads)))
      return signalPassFailure();
    SmallVector<Operation *> work;
    // Both ops take (logits, labels, ...).
    module.walk([&](Operation *op) {
      if (isa<CrossEntropyOp, CrossEntropyGradOp>(op) &&
          covered(op->getOperand(0), op->getOperand(1)))
        work.push_back(op);
    });
    OpBuilder b(module.getContext());
    Type f32 = b.getF32Type();
    for (Operation *op : work) {
      Location loc = op->getLoc();
      b.setInsertionPoint(op);
      Value logits = op->getOperand(0), labels = op->getOperand(1);
      auto lt = cast<RankedTensorType>(logits.getType());
      int64_t v = lt.getShape().back(), t = lt.getNumElements() / v;
      auto ceg = dyn_cast<CrossEntropyGradOp>(op); // else the loss
      int64_t ignore = ceg ? ceg.getIgnoreIndex()
                           : cast<CrossEntropyOp>(op).getIgnoreIndex();
      SmallVector<Value> args{
          asDynBuffer(b, loc, collapseLeading(b, loc, logits, 1),
                      /*strided=*/true),
          asDynBuffer(b, loc, collapseLeading(b, loc, labels, 0),
                      /*strided=*/true)};
      OutBuffer out;
      StringRef name;
      if (ceg) {
        // grad_loss as a one-element buffer.
        Value one = tensor::ExpandShapeOp::create(
            b, loc, RankedTensorType::get({1}, f32), ceg.getGradLoss(),
            SmallVector<ReassociationIndices>{});
        args.push_back(asDynBuffer(b, loc, one));
        out = newOutBuffer(b, loc, {t, v}, f32);
        name = kCrossEntropyGradF32Ukernel;
      } else {
        out = newOutBuffer(b, loc, {1}, f32);
        name = kCrossEntropyF32Ukernel;
      }
      args.push_back(out.dyn);
      args.push_back(arith::ConstantOp::create(b, loc,
                                               b.getI64IntegerAttr(ignore)));
      // Ignored rows of a gradient that only the head's row-selecting GEMM
      // reads are left unwritten.
      if (ceg)
        args.push_back(arith::ConstantOp::create(
            b, loc,
            b.getI32IntegerAttr(ceg->hasAttr(kIgnoredRowsUnreadAttr) ? 0 : 1)));
      args.push_back(arith::ConstantOp::create(
          b, loc, b.getI32IntegerAttr(int32_t(numThreads))));
      SmallVector<Type> types;
      for (Value a : args)
        types.push_back(a.getType());
      func::CallOp::create(b, loc, declareUkernel(module, b, name, types),
                           args);
      Value result = out.tensor(b, loc);
      auto resTy = cast<RankedTensorType>(op->getResult(0).getType());
      if (!ceg)
        result = tensor::CollapseShapeOp::create(
            b, loc, resTy, result, SmallVector<ReassociationIndices>{});
      else if (resTy.getRank() > 2)
        result = tensor::ExpandShapeOp::create(
            b, loc, resTy, result, leadingGroups(resTy.getRank(), 1));
      op->getResult(0).replaceAllUsesWith(result);
      op->erase();
    }
  }
};
} // namespace
