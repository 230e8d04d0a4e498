//===- MatmulMatch.cpp - recognising matmuls with a weight operand --------===//
#include "MatmulMatch.h"
#include "qslaw/Dialect/QSLAW/Utils/Widening.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/IR/Matchers.h"

using namespace mlir;
using namespace mlir::qslaw;

std::optional<MatmulView> mlir::qslaw::matchMatmul(linalg::MatmulOp op) {
  if (!op.hasPureTensorSemantics() || op.getInputs().size() != 2 ||
      op.getOutputs().size() != 1)
    return std::nullopt;
  MLIRContext *ctx = op.getContext();
  AffineExpr m, n, k;
  bindDims(ctx, m, n, k);
  auto map = [&](ArrayRef<AffineExpr> e) {
    return AffineMap::get(3, 0, e, ctx);
  };
  SmallVector<AffineMap> maps = op.getIndexingMapsArray();
  if (maps[0] != map({m, k}) || maps[2] != map({m, n}))
    return std::nullopt;
  bool nk;
  if (maps[1] == map({k, n}))
    nk = false;
  else if (maps[1] == map({n, k}))
    nk = true;
  else
    return std::nullopt;
  return MatmulView{op, op.getInputs()[0], op.getInputs()[1],
                    op.getOutputs()[0], nk};
}

static bool isZeroInit(Value init) {
  if (matchPattern(init, m_AnyZeroFloat()))
    return true;
  if (auto fill = init.getDefiningOp<linalg::FillOp>())
    return matchPattern(fill.getInputs()[0], m_AnyZeroFloat());
  return false;
}

void mlir::qslaw::replaceMatmul(RewriterBase &rewriter, const MatmulView &mm,
                                Value product) {
  Value result = product;
  if (!isZeroInit(mm.init))
    result = arith::AddFOp::create(rewriter, product.getLoc(), product, mm.init);
  rewriter.replaceOp(linalg::MatmulOp(mm.op), result);
}

std::string mlir::qslaw::locationName(Location loc) {
  if (auto n = dyn_cast<NameLoc>(loc))
    return n.getName().str();
  if (auto fused = dyn_cast<FusedLoc>(loc))
    for (Location l : fused.getLocations())
      if (auto n = dyn_cast<NameLoc>(l))
        return n.getName().str();
  return "";
}

Operation *mlir::qslaw::widenedConstant(Value v) {
  Value src = widenedSource(v);
  Operation *def = src ? src.getDefiningOp() : nullptr;
  if (!def || !def->hasTrait<OpTrait::ConstantLike>())
    return nullptr;
  return def;
}
