//===- QSLAWToUkernels.cpp - qmatmul -> hand-tuned microkernel calls ------===//
//
// IREE's ukernel pattern: where a benchmark shows a hand-tuned kernel beats
// codegen, the op becomes a call. The call takes memrefs (via
// bufferization.to_buffer) of dynamic shape so that one declaration serves
// every shape; absent zero points / bias are passed as empty memrefs.
//
//===----------------------------------------------------------------------===//
#include "qslaw/Conversion/Passes.h"
#include "qslaw/Dialect/QSLAW/IR/QSLAWOps.h"

#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/PatternMatch.h"

namespace mlir::qslaw {
#define GEN_PASS_DEF_QSLAWTOUKERNELS
#include "qslaw/Conversion/Passes.h.inc"
} // namespace mlir::qslaw

using namespace mlir;
using namespace mlir::qslaw;

namespace {

/// The microkernel covers 4-bit codes, f32 activations/scales/bias, static
/// shapes, and K and G even (whole bytes per group row).
bool coveredByUkernel(QMatmulOp op) {
  auto x = cast<RankedTensorType>(op.getInput().getType());
  auto q = op.getCodes().getType();
  QuantSpecAttr spec = op.getSpec();
  if (spec.getBits() != 4 || !x.getElementType().isF32() ||
      !op.getScales().getType().getElementType().isF32())
    return false;
  if (op.getBias() &&
      !cast<RankedTensorType>(op.getBias().getType()).getElementType().isF32())
    return false;
  if (!x.hasStaticShape() || !q.hasStaticShape())
    return false;
  int64_t k = q.getDimSize(1);
  return k % 2 == 0 && spec.getGroupSizeFor(k) % 2 == 0;
}

MemRefType dynMemRef(Type elem, int64_t rank) {
  return MemRefType::get(SmallVector<int64_t>(rank, ShapedType::kDynamic),
                         elem);
}

/// memref<?x..xT> view of a tensor value.
Value asDynBuffer(OpBuilder &b, Location loc, Value tensor) {
  auto ty = cast<RankedTensorType>(tensor.getType());
  auto buf = bufferization::ToBufferOp::create(
      b, loc, MemRefType::get(ty.getShape(), ty.getElementType()), tensor,
      /*read_only=*/true);
  return memref::CastOp::create(
      b, loc, dynMemRef(ty.getElementType(), ty.getRank()), buf);
}

Value emptyDynBuffer(OpBuilder &b, Location loc, Type elem, int64_t rank) {
  auto buf = memref::AllocaOp::create(
      b, loc, MemRefType::get(SmallVector<int64_t>(rank, 0), elem));
  return memref::CastOp::create(b, loc, dynMemRef(elem, rank), buf);
}

func::FuncOp declareUkernel(ModuleOp module, OpBuilder &b) {
  if (auto f = module.lookupSymbol<func::FuncOp>(kQMatmulW4F32Ukernel))
    return f;
  Type f32 = b.getF32Type(), i4 = b.getIntegerType(4);
  auto type = b.getFunctionType(
      {dynMemRef(f32, 2), dynMemRef(i4, 2), dynMemRef(f32, 2),
       dynMemRef(i4, 2), dynMemRef(f32, 1), dynMemRef(f32, 2),
       b.getI64Type(), b.getI32Type()},
      {});
  OpBuilder::InsertionGuard g(b);
  b.setInsertionPointToStart(module.getBody());
  auto f = func::FuncOp::create(b, module.getLoc(), kQMatmulW4F32Ukernel, type);
  f.setPrivate();
  f->setAttr("llvm.emit_c_interface", b.getUnitAttr());
  return f;
}

struct QSLAWToUkernelsPass
    : qslaw::impl::QSLAWToUkernelsBase<QSLAWToUkernelsPass> {
  using Base::Base;
  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (numThreads < 1) {
      module.emitError("qslaw-lower-to-ukernels: num-threads must be >= 1, "
                       "got ")
          << static_cast<int>(numThreads);
      return signalPassFailure();
    }
    SmallVector<QMatmulOp> work;
    module.walk([&](QMatmulOp op) {
      if (coveredByUkernel(op))
        work.push_back(op);
    });
    if (work.empty())
      return;
    IRRewriter b(module.getContext());
    func::FuncOp callee = declareUkernel(module, b);
    for (QMatmulOp op : work) {
      Location loc = op.getLoc();
      b.setInsertionPoint(op);
      auto xTy = cast<RankedTensorType>(op.getInput().getType());
      int64_t k = xTy.getShape().back();
      int64_t n = op.getCodes().getType().getDimSize(0);
      int64_t m = 1;
      for (int64_t d : xTy.getShape().drop_back())
        m *= d;
      // Any batch dims collapse into M: the kernel sees [M, K].
      auto x2Ty = RankedTensorType::get({m, k}, b.getF32Type());
      auto reshape = [&](Value v, RankedTensorType to) -> Value {
        if (v.getType() == to)
          return v;
        SmallVector<int64_t> shape(to.getShape());
        return tensor::ReshapeOp::create(
            b, loc, to, v,
            arith::ConstantOp::create(
                b, loc,
                DenseIntElementsAttr::get(
                    RankedTensorType::get({int64_t(shape.size())},
                                          b.getI64Type()),
                    ArrayRef<int64_t>(shape))));
      };
      Value x2 = reshape(op.getInput(), x2Ty);
      Value xb = asDynBuffer(b, loc, x2);
      Value qb = asDynBuffer(b, loc, op.getCodes());
      Value sb = asDynBuffer(b, loc, op.getScales());
      Value zb = op.getZeros() ? asDynBuffer(b, loc, op.getZeros())
                               : emptyDynBuffer(b, loc, b.getIntegerType(4), 2);
      Value bb = op.getBias() ? asDynBuffer(b, loc, op.getBias())
                              : emptyDynBuffer(b, loc, b.getF32Type(), 1);
      auto outTy = MemRefType::get({m, n}, b.getF32Type());
      Value out = memref::AllocOp::create(b, loc, outTy);
      Value outDyn = memref::CastOp::create(b, loc, dynMemRef(b.getF32Type(), 2),
                                            out);
      Value g = arith::ConstantOp::create(
          b, loc, b.getI64IntegerAttr(op.getSpec().getGroupSizeFor(k)));
      Value threads = arith::ConstantOp::create(
          b, loc, b.getI32IntegerAttr(numThreads));
      func::CallOp::create(b, loc, callee,
                           ValueRange{xb, qb, sb, zb, bb, outDyn, g, threads});
      Value y2 = bufferization::ToTensorOp::create(
          b, loc, RankedTensorType::get({m, n}, b.getF32Type()), out,
          /*restrict=*/true, /*writable=*/true);
      b.replaceOp(op, reshape(y2, cast<RankedTensorType>(op.getType())));
    }
  }
};
} // namespace
