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

#include <atomic>

namespace mlir::qslaw {
#define GEN_PASS_DEF_QSLAWTOUKERNELS
#include "qslaw/Conversion/Passes.h.inc"
} // namespace mlir::qslaw

using namespace mlir;
using namespace mlir::qslaw;

namespace {

/// The microkernels cover 4-bit codes, f32 activations/scales/bias, static
/// shapes, and K and G even (whole bytes per group row).
bool codesCovered(TypedValue<RankedTensorType> codes, QuantSpecAttr spec) {
  auto q = codes.getType();
  if (spec.getBits() != 4 || !q.hasStaticShape())
    return false;
  int64_t k = q.getDimSize(1);
  return k % 2 == 0 && spec.getGroupSizeFor(k) % 2 == 0;
}

bool staticF32(Value v) {
  auto t = cast<RankedTensorType>(v.getType());
  return t.hasStaticShape() && t.getElementType().isF32();
}

bool coveredByUkernel(QMatmulOp op) {
  if (!codesCovered(op.getCodes(), op.getSpec()) || !staticF32(op.getInput()) ||
      !op.getScales().getType().getElementType().isF32())
    return false;
  return !op.getBias() || staticF32(op.getBias());
}

bool coveredByUkernel(QMatmulGradInputOp op) {
  return codesCovered(op.getCodes(), op.getSpec()) &&
         staticF32(op.getGradOutput()) && staticF32(op.getScales());
}

bool coveredByUkernel(QMatmulGradScaleOp op) {
  return codesCovered(op.getCodes(), op.getSpec()) &&
         staticF32(op.getInput()) && staticF32(op.getGradOutput());
}

MemRefType dynMemRef(Type elem, int64_t rank) {
  return MemRefType::get(SmallVector<int64_t>(rank, ShapedType::kDynamic),
                         elem);
}

/// memref<?x..xT> view of a tensor value, read by the call that follows.
/// One-shot bufferization sees the read where the to_buffer stands, not
/// where the call uses the memref; CSE merging it with an earlier
/// to_buffer of the same tensor would let ops in between overwrite the
/// buffer in place first (the training step reuses activations' buffers for
/// gradients). A unique tag keeps every to_buffer beside its call.
Value asDynBuffer(OpBuilder &b, Location loc, Value tensor) {
  static std::atomic<int64_t> serial{0};
  auto ty = cast<RankedTensorType>(tensor.getType());
  auto buf = bufferization::ToBufferOp::create(
      b, loc, MemRefType::get(ty.getShape(), ty.getElementType()), tensor,
      /*read_only=*/true);
  buf->setAttr("qslaw.ukernel_operand", b.getI64IntegerAttr(serial++));
  return memref::CastOp::create(
      b, loc, dynMemRef(ty.getElementType(), ty.getRank()), buf);
}

Value emptyDynBuffer(OpBuilder &b, Location loc, Type elem, int64_t rank) {
  auto buf = memref::AllocaOp::create(
      b, loc, MemRefType::get(SmallVector<int64_t>(rank, 0), elem));
  return memref::CastOp::create(b, loc, dynMemRef(elem, rank), buf);
}

Value reshapeTo(OpBuilder &b, Location loc, Value v, RankedTensorType to) {
  if (v.getType() == to)
    return v;
  SmallVector<int64_t> shape(to.getShape());
  return tensor::ReshapeOp::create(
      b, loc, to, v,
      arith::ConstantOp::create(
          b, loc,
          DenseIntElementsAttr::get(
              RankedTensorType::get({int64_t(shape.size())}, b.getI64Type()),
              ArrayRef<int64_t>(shape))));
}

func::FuncOp declare(ModuleOp module, OpBuilder &b, StringRef name,
                     TypeRange args) {
  if (auto f = module.lookupSymbol<func::FuncOp>(name))
    return f;
  OpBuilder::InsertionGuard g(b);
  b.setInsertionPointToStart(module.getBody());
  auto f = func::FuncOp::create(b, module.getLoc(), name,
                                b.getFunctionType(args, {}));
  f.setPrivate();
  f->setAttr("llvm.emit_c_interface", b.getUnitAttr());
  return f;
}

/// `v` as a 2-D tensor [prod(leading dims), last dim].
Value as2D(OpBuilder &b, Location loc, Value v) {
  auto ty = cast<RankedTensorType>(v.getType());
  int64_t m = 1;
  for (int64_t d : ty.getShape().drop_back())
    m *= d;
  return reshapeTo(b, loc, v,
                   RankedTensorType::get({m, ty.getShape().back()},
                                         ty.getElementType()));
}

/// A fresh [rows, cols] f32 buffer the call writes, and its dynamic view;
/// `tensor()` reads it back, to be called after the call.
struct OutBuffer {
  Value alloc, dyn;
  Value tensor(OpBuilder &b, Location loc) const {
    return bufferization::ToTensorOp::create(
        b, loc,
        RankedTensorType::get(cast<MemRefType>(alloc.getType()).getShape(),
                              b.getF32Type()),
        alloc, /*restrict=*/true, /*writable=*/true);
  }
};
OutBuffer newOutput(OpBuilder &b, Location loc, int64_t rows, int64_t cols) {
  auto ty = MemRefType::get({rows, cols}, b.getF32Type());
  Value out = memref::AllocOp::create(b, loc, ty);
  Value dyn = memref::CastOp::create(b, loc, dynMemRef(b.getF32Type(), 2), out);
  return {out, dyn};
}

Value zerosBuffer(OpBuilder &b, Location loc, Value zeros) {
  return zeros ? asDynBuffer(b, loc, zeros)
               : emptyDynBuffer(b, loc, b.getIntegerType(4), 2);
}

Value i64Const(OpBuilder &b, Location loc, int64_t v) {
  return arith::ConstantOp::create(b, loc, b.getI64IntegerAttr(v));
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
    IRRewriter b(module.getContext());
    Type f32 = b.getF32Type(), i4 = b.getIntegerType(4);
    Type f2 = dynMemRef(f32, 2), f1 = dynMemRef(f32, 1), q2 = dynMemRef(i4, 2);
    SmallVector<Operation *> work;
    module.walk([&](Operation *op) {
      if (auto q = dyn_cast<QMatmulOp>(op); q && coveredByUkernel(q))
        work.push_back(op);
      else if (auto g = dyn_cast<QMatmulGradInputOp>(op); g && coveredByUkernel(g))
        work.push_back(op);
      else if (auto g = dyn_cast<QMatmulGradScaleOp>(op); g && coveredByUkernel(g))
        work.push_back(op);
    });
    for (Operation *o : work) {
      Location loc = o->getLoc();
      b.setInsertionPoint(o);
      if (auto op = dyn_cast<QMatmulOp>(o)) {
        func::FuncOp callee = declare(
            module, b, kQMatmulW4F32Ukernel,
            {f2, q2, f2, q2, f1, f2, b.getI64Type(), b.getI32Type()});
        int64_t k = op.getInput().getType().getShape().back();
        Value x2 = as2D(b, loc, op.getInput());
        int64_t m = cast<RankedTensorType>(x2.getType()).getDimSize(0);
        int64_t n = op.getCodes().getType().getDimSize(0);
        // Any batch dims collapse into M: the kernel sees [M, K].
        SmallVector<Value> args{asDynBuffer(b, loc, x2),
                                asDynBuffer(b, loc, op.getCodes()),
                                asDynBuffer(b, loc, op.getScales()),
                                zerosBuffer(b, loc, op.getZeros())};
        args.push_back(op.getBias() ? asDynBuffer(b, loc, op.getBias())
                                    : emptyDynBuffer(b, loc, f32, 1));
        OutBuffer out = newOutput(b, loc, m, n);
        args.push_back(out.dyn);
        args.push_back(i64Const(b, loc, op.getSpec().getGroupSizeFor(k)));
        args.push_back(arith::ConstantOp::create(
            b, loc, b.getI32IntegerAttr(numThreads)));
        func::CallOp::create(b, loc, callee, args);
        b.replaceOp(op, reshapeTo(b, loc, out.tensor(b, loc),
                                  cast<RankedTensorType>(op.getType())));
      } else if (auto op = dyn_cast<QMatmulGradInputOp>(o)) {
        func::FuncOp callee =
            declare(module, b, kQMatmulW4GradInputUkernel,
                    {f2, dynMemRef(i4, 2), f2, q2, f2, b.getI64Type()});
        int64_t k = op.getCodes().getType().getDimSize(1);
        Value dy2 = as2D(b, loc, op.getGradOutput());
        int64_t m = cast<RankedTensorType>(dy2.getType()).getDimSize(0);
        OutBuffer out = newOutput(b, loc, m, k);
        func::CallOp::create(
            b, loc, callee,
            ValueRange{asDynBuffer(b, loc, dy2), asDynBuffer(b, loc, op.getCodes()),
                       asDynBuffer(b, loc, op.getScales()),
                       zerosBuffer(b, loc, op.getZeros()), out.dyn,
                       i64Const(b, loc, op.getSpec().getGroupSizeFor(k))});
        b.replaceOp(op, reshapeTo(b, loc, out.tensor(b, loc),
                                  cast<RankedTensorType>(op.getType())));
      } else if (auto op = dyn_cast<QMatmulGradScaleOp>(o)) {
        func::FuncOp callee =
            declare(module, b, kQMatmulW4GradScaleUkernel,
                    {f2, f2, dynMemRef(i4, 2), q2, f2, b.getI64Type()});
        auto q = op.getCodes().getType();
        int64_t k = q.getDimSize(1), g = op.getSpec().getGroupSizeFor(k);
        OutBuffer out = newOutput(b, loc, q.getDimSize(0), (k + g - 1) / g);
        func::CallOp::create(
            b, loc, callee,
            ValueRange{asDynBuffer(b, loc, as2D(b, loc, op.getInput())),
                       asDynBuffer(b, loc, as2D(b, loc, op.getGradOutput())),
                       asDynBuffer(b, loc, op.getCodes()),
                       zerosBuffer(b, loc, op.getZeros()), out.dyn,
                       i64Const(b, loc, g)});
        b.replaceOp(op, out.tensor(b, loc));
      }
    }
  }
};
} // namespace
