//===- WidenOnExtract.cpp - read a half-precision table element-wise ------===//
//
// A weight stored in bf16/f16 and read through Cast is widened to f32 as a
// whole tensor before its readers. Where every reader takes single elements
// (tensor.extract: the embedding table a Gather reads, a few rows of 32000),
// each extract reads the narrow tensor and widens its element instead, so
// the widened table, a fresh f32 copy every call, is never made.
//
//===----------------------------------------------------------------------===//
#include "../QSLAWToUkernels/UkernelCalls.h"
#include "qslaw/Conversion/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

namespace mlir::qslaw {
#define GEN_PASS_DEF_WIDENONEXTRACT
#include "qslaw/Conversion/Passes.h.inc"
} // namespace mlir::qslaw

using namespace mlir;
using namespace mlir::qslaw;

namespace {
struct WidenOnExtractPass
    : qslaw::impl::WidenOnExtractBase<WidenOnExtractPass> {
  void runOnOperation() override {
    SmallVector<linalg::GenericOp> widenings;
    getOperation().walk([&](linalg::GenericOp g) {
      if (g->getNumResults() == 1 && widenedFrom(g->getResult(0)) &&
          !g->use_empty() &&
          llvm::all_of(g->getUsers(),
                       [](Operation *u) { return isa<tensor::ExtractOp>(u); }))
        widenings.push_back(g);
    });
    IRRewriter b(&getContext());
    for (linalg::GenericOp g : widenings) {
      Value narrow = widenedFrom(g->getResult(0));
      Type f32 = b.getF32Type();
      for (Operation *u : llvm::make_early_inc_range(g->getUsers())) {
        auto e = cast<tensor::ExtractOp>(u);
        b.setInsertionPoint(e);
        Value v = tensor::ExtractOp::create(b, e.getLoc(), narrow,
                                            e.getIndices());
        b.replaceOp(e, arith::ExtFOp::create(b, e.getLoc(), f32, v));
      }
      b.eraseOp(g);
    }
  }
};
} // namespace
