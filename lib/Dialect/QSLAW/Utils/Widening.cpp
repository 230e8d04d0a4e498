//===- Widening.cpp - tensors read widened to f32 -------------------------===//
#include "qslaw/Dialect/QSLAW/Utils/Widening.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"

using namespace mlir;

Value mlir::qslaw::widenedSource(Value v) {
  auto g = v.getDefiningOp<linalg::GenericOp>();
  if (!g || g.getNumDpsInputs() != 1 || g.getNumDpsInits() != 1 ||
      g.getNumResults() != 1 || !g.hasPureTensorSemantics() ||
      g.getNumReductionLoops() != 0 ||
      !llvm::all_of(g.getIndexingMapsArray(),
                    [](AffineMap m) { return m.isIdentity(); }))
    return {};
  Block &body = g.getRegion().front();
  if (body.getOperations().size() != 2)
    return {};
  auto ext = dyn_cast<arith::ExtFOp>(body.front());
  auto yield = dyn_cast<linalg::YieldOp>(body.getTerminator());
  if (!ext || !yield || ext.getIn() != body.getArgument(0) ||
      yield.getOperand(0) != ext.getResult() || !ext.getType().isF32())
    return {};
  return g.getDpsInputs()[0];
}
