//===- MaskedScan.cpp - the scan behind LLaVA's masked_scatter -------------===//
#include "qslaw/Dialect/QSLAW/Utils/MaskedScan.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

#include <algorithm>

namespace mlir::qslaw {

scf::ForOp buildMaskedScan(
    OpBuilder &b, Location loc, Value mask, int64_t n, int64_t srcLen,
    Value init,
    llvm::function_ref<Value(OpBuilder &, Location, Value, Value, Value)>
        body) {
  Value c0 = arith::ConstantIndexOp::create(b, loc, 0);
  Value c1 = arith::ConstantIndexOp::create(b, loc, 1);
  Value cn = arith::ConstantIndexOp::create(b, loc, n);
  Value last =
      arith::ConstantIndexOp::create(b, loc, std::max<int64_t>(srcLen - 1, 0));
  return scf::ForOp::create(
      b, loc, c0, cn, c1, ValueRange{init, c0},
      [&](OpBuilder &fb, Location l, Value p, ValueRange iter) {
        Value m = tensor::ExtractOp::create(fb, l, mask, p);
        auto ifOp = scf::IfOp::create(
            fb, l, m,
            [&](OpBuilder &tb, Location tl) {
              Value k = arith::MinUIOp::create(tb, tl, iter[1], last);
              Value acc = body(tb, tl, iter[0], p, k);
              Value next = arith::AddIOp::create(tb, tl, iter[1], c1);
              scf::YieldOp::create(tb, tl, ValueRange{acc, next});
            },
            [&](OpBuilder &eb, Location el) {
              scf::YieldOp::create(eb, el, iter);
            });
        scf::YieldOp::create(fb, l, ifOp.getResults());
      });
}

} // namespace mlir::qslaw
