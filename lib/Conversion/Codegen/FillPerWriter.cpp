//===- FillPerWriter.cpp - a fill of its own for each op writing into one -===//
//
// A zero-filled tensor that CSE shared between several destination-passing
// ops (the accumulators of contractions and reductions) bufferizes to one
// filled buffer plus a copy of it per writer. Cloning the fill (and the
// reshapes between it and the writer) for each writer after the first lets
// every writer fill its own buffer in place.
//
//===----------------------------------------------------------------------===//
#include "qslaw/Conversion/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/IRMapping.h"
#include "llvm/ADT/SetVector.h"

namespace mlir::qslaw {
#define GEN_PASS_DEF_FILLPERWRITER
#include "qslaw/Conversion/Passes.h.inc"
} // namespace mlir::qslaw

using namespace mlir;

namespace {

bool isReshape(Operation *op) {
  return isa<tensor::ExpandShapeOp, tensor::CollapseShapeOp>(op);
}

/// The destination uses reachable from `v` through reshapes, each with the
/// reshapes on its way (outermost first).
void collectWriters(Value v, SmallVectorImpl<Operation *> &path,
                    SmallVectorImpl<std::pair<OpOperand *,
                                              SmallVector<Operation *>>> &out) {
  for (OpOperand &use : v.getUses()) {
    Operation *user = use.getOwner();
    if (isReshape(user)) {
      path.push_back(user);
      collectWriters(user->getResult(0), path, out);
      path.pop_back();
      continue;
    }
    auto dps = dyn_cast<DestinationStyleOpInterface>(user);
    if (dps && dps.isDpsInit(&use))
      out.push_back({&use, SmallVector<Operation *>(path.begin(), path.end())});
  }
}

struct FillPerWriterPass
    : qslaw::impl::FillPerWriterBase<FillPerWriterPass> {
  void runOnOperation() override {
    SmallVector<linalg::FillOp> fills;
    getOperation().walk([&](linalg::FillOp f) {
      if (f.hasPureTensorSemantics())
        fills.push_back(f);
    });
    OpBuilder b(&getContext());
    // Reshapes whose users moved to clones: erased below once unused.
    llvm::SetVector<Operation *> bypassed;
    for (linalg::FillOp fill : fills) {
      SmallVector<Operation *> path;
      SmallVector<std::pair<OpOperand *, SmallVector<Operation *>>> writers;
      collectWriters(fill.getResult(0), path, writers);
      if (writers.size() < 2)
        continue;
      // The first writer keeps the original.
      for (auto &[use, reshapes] : llvm::drop_begin(writers)) {
        Operation *user = use->getOwner();
        b.setInsertionPoint(user);
        IRMapping map;
        Value dest = fill.getDpsInits()[0];
        if (auto empty = dest.getDefiningOp<tensor::EmptyOp>())
          map.map(dest, b.clone(*empty)->getResult(0));
        Value v = b.clone(*fill, map)->getResult(0);
        for (Operation *r : reshapes) {
          map.map(r->getOperand(0), v);
          v = b.clone(*r, map)->getResult(0);
        }
        use->set(v);
        bypassed.insert(reshapes.begin(), reshapes.end());
      }
    }
    // A path's reshapes were added outermost first: the reverse order
    // erases a chain from its end.
    for (Operation *op : llvm::reverse(bypassed))
      if (op->use_empty())
        op->erase();
  }
};
} // namespace
