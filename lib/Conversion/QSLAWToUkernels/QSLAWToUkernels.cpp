//===- QSLAWToUkernels.cpp - qmatmul -> hand-tuned microkernel calls ------===//
//
// IREE's ukernel pattern: where a benchmark shows a hand-tuned kernel beats
// codegen, the op becomes a call. The call takes memrefs (via
// bufferization.to_buffer) of dynamic shape so that one declaration serves
// every shape; absent zero points / bias are passed as empty memrefs.
//
//===----------------------------------------------------------------------===//
#include "UkernelCalls.h"
#include "qslaw/Dialect/QSLAW/Utils/Widening.h"
#include "qslaw/Conversion/Passes.h"
#include "qslaw/Dialect/QSLAW/IR/QSLAWOps.h"

#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/PatternMatch.h"

#include "llvm/ADT/SetVector.h"

#include <atomic>

namespace mlir::qslaw {
#define GEN_PASS_DEF_QSLAWTOUKERNELS
#include "qslaw/Conversion/Passes.h.inc"
} // namespace mlir::qslaw

using namespace mlir;
using namespace mlir::qslaw;

namespace {

/// Which kernels the calls go to, and what they cover.
struct KernelSet {
  bool cuda = false;
  int32_t cudaDtype = 0; // 0 bf16, 1 f16 (QMatmulKernels.h)
  int32_t numThreads = 0; // CPU: the trailing i32 of every call

  /// The entry for `kind` ("qmatmul", "qmatmul_grad_input", ...) at `bits`.
  std::string name(StringRef kind, unsigned bits) const {
    if (!cuda)
      return cpuUkernelName(kind, bits);
    if (kind == "qmatmul")
      return kCudaQMatmulW4F32Kernel;
    if (kind == "qmatmul_grad_input")
      return kCudaQMatmulW4GradInputKernel;
    if (kind == "qmatmul_grad_scale")
      return kCudaQMatmulW4GradScaleKernel;
    return kCudaQMatmulW4GradGammaKernel;
  }
};

/// The CPU kernels cover 2-, 3-, 4- and 8-bit codes of static shape: the
/// 4-bit forward its own kernel (any K and G), everything else the
/// any-width kernels (dequantise a block, GEMM library; any K and G). The
/// CUDA kernels cover 4-bit codes with G in {32, 64, 128}, K % 64 == 0,
/// K % G == 0 (whole mma chunks and groups) and N % 8 == 0 (16-byte rows of
/// the activation-gradient tiles).
bool codesCovered(const KernelSet &set, RankedTensorType q,
                  QuantSpecAttr spec) {
  if (!q.hasStaticShape())
    return false;
  unsigned bits = spec.getBits();
  if (!set.cuda)
    return bits == 2 || bits == 3 || bits == 4 || bits == 8;
  int64_t n = q.getDimSize(0), k = q.getDimSize(1);
  int64_t g = spec.getGroupSizeFor(k);
  return bits == 4 && (g == 32 || g == 64 || g == 128) && k % 64 == 0 &&
         k % g == 0 && n % 8 == 0;
}

bool staticF32(Value v) {
  auto t = cast<RankedTensorType>(v.getType());
  return t.hasStaticShape() && t.getElementType().isF32();
}

bool covered(const KernelSet &set, QMatmulOp op) {
  if (!codesCovered(set, op.getCodes().getType(), op.getSpec()) ||
      !staticF32(op.getInput()) ||
      !op.getScales().getType().getElementType().isF32())
    return false;
  return !op.getBias() || staticF32(op.getBias());
}

bool covered(const KernelSet &set, QMatmulGradInputOp op) {
  return codesCovered(set, op.getCodes().getType(), op.getSpec()) &&
         staticF32(op.getGradOutput()) && staticF32(op.getScales());
}

/// Gamma mode's full-precision weight: f32, or on the CPU also the bf16 or
/// f16 the model stores (the kernels widen it as they read it).
bool weightCovered(const KernelSet &set, Value w) {
  auto t = cast<RankedTensorType>(w.getType());
  Type e = t.getElementType();
  return t.hasStaticShape() &&
         (e.isF32() || (!set.cuda && (e.isBF16() || e.isF16())));
}

/// Gamma mode: the [N, K] float weight stands where the codes would.
bool covered(const KernelSet &set, QMatmulGradGammaOp op) {
  return codesCovered(set, op.getWeight().getType(), op.getSpec()) &&
         weightCovered(set, op.getWeight()) && staticF32(op.getInput()) &&
         staticF32(op.getGradOutput()) && staticF32(op.getScales()) &&
         staticF32(op.getGamma());
}

/// Codes from a float weight (gamma mode's per-step re-quantisation; CPU).
bool covered(const KernelSet &set, QuantizeOp op) {
  return !set.cuda &&
         codesCovered(set, op.getType(), op.getSpec()) &&
         weightCovered(set, op.getWeight()) && staticF32(op.getScales());
}


bool covered(const KernelSet &set, QMatmulGradScaleOp op) {
  return codesCovered(set, op.getCodes().getType(), op.getSpec()) &&
         staticF32(op.getInput()) && staticF32(op.getGradOutput());
}

/// Stands for an absent operand. On the CPU a stack buffer; for CUDA a
/// (zero-size) heap buffer, which becomes device memory like every other.
Value emptyDynBuffer(const KernelSet &set, OpBuilder &b, Location loc,
                     Type elem, int64_t rank) {
  auto ty = MemRefType::get(SmallVector<int64_t>(rank, 0), elem);
  Value buf = set.cuda ? Value(memref::AllocOp::create(b, loc, ty))
                       : Value(memref::AllocaOp::create(b, loc, ty));
  return memref::CastOp::create(b, loc, dynMemRef(elem, rank), buf);
}

/// Reassociation that groups dims [0, split) and [split, rank).
SmallVector<ReassociationIndices> splitAt(int64_t split, int64_t rank) {
  ReassociationIndices lead, rest;
  for (int64_t d = 0; d < rank; ++d)
    (d < split ? lead : rest).push_back(d);
  return {lead, rest};
}

/// `v` ([M, N] from a call) reshaped to `to` (the op's result, rank >= 1,
/// same last dim): leading dims expand from M, or a rank-1 result drops
/// M = 1. Metadata only, no shape tensor for the host to read.
Value reshapeTo(OpBuilder &b, Location loc, Value v, RankedTensorType to) {
  if (v.getType() == to)
    return v;
  if (to.getRank() == 1)
    return tensor::CollapseShapeOp::create(
        b, loc, to, v, SmallVector<ReassociationIndices>{{0, 1}});
  return tensor::ExpandShapeOp::create(b, loc, to, v,
                                       splitAt(to.getRank() - 1, to.getRank()));
}

/// `v` as a 2-D tensor [prod(leading dims), last dim].
Value as2D(OpBuilder &b, Location loc, Value v) {
  auto ty = cast<RankedTensorType>(v.getType());
  int64_t m = 1;
  for (int64_t d : ty.getShape().drop_back())
    m *= d;
  auto to = RankedTensorType::get({m, ty.getShape().back()},
                                  ty.getElementType());
  if (ty.getRank() == 2)
    return v;
  if (ty.getRank() == 1)
    return tensor::ExpandShapeOp::create(
        b, loc, to, v, SmallVector<ReassociationIndices>{{0, 1}});
  return tensor::CollapseShapeOp::create(b, loc, to, v,
                                         splitAt(ty.getRank() - 1, ty.getRank()));
}

/// A fresh [rows, cols] buffer (f32 unless `elem` says otherwise).
OutBuffer newOutput(OpBuilder &b, Location loc, int64_t rows, int64_t cols,
                    Type elem = {}) {
  return newOutBuffer(b, loc, {rows, cols}, elem ? elem : b.getF32Type());
}

/// The zero points, or an empty [0, 0] buffer of their type (i<bits>).
Value zerosBuffer(const KernelSet &set, OpBuilder &b, Location loc,
                  Value zeros, QuantSpecAttr spec) {
  return zeros ? asDynBuffer(b, loc, zeros)
               : emptyDynBuffer(set, b, loc,
                                b.getIntegerType(spec.getBits()), 2);
}

/// The [K, N] tensor a 2-D transpose reads: a `linalg.transpose`, or the
/// generic that qslaw-make-train-step generalised it into.
Value transposeSource(Value v) {
  Operation *def = v.getDefiningOp();
  if (auto t = dyn_cast_or_null<linalg::TransposeOp>(def))
    return t.getPermutation() == ArrayRef<int64_t>{1, 0} ? t.getInput()
                                                          : Value();
  if (auto g = dyn_cast_or_null<linalg::GenericOp>(def)) {
    std::optional<SmallVector<int64_t>> perm = linalg::isaTransposeOpInterface(g);
    if (perm && *perm == ArrayRef<int64_t>{1, 0})
      return g.getDpsInputs()[0];
  }
  return {};
}

/// Gamma mode's weight for the CPU kernels, which read w(n, k) through
/// the memref's strides: a transpose of a [K, N] tensor (the
/// layout an ONNX MatMul stores, which qslaw-quantize-weights keeps rather
/// than copy the weight) becomes a transposed view of that tensor's
/// buffer, so that the transpose is never computed; any other weight is
/// its own buffer. Both as memref<?x?xT, strided<[?, ?], offset: ?>>, T
/// the weight's type (f32, bf16, f16).
/// Transposes read through are added to `readThrough`.
Value weightBuffer(OpBuilder &b, Location loc, Value weight,
                   llvm::SetVector<Operation *> &readThrough) {
  if (Value kn = transposeSource(weight);
      kn && cast<RankedTensorType>(kn.getType()).hasStaticShape()) {
    readThrough.insert(weight.getDefiningOp());
    Value src = asDynBuffer(b, loc, kn, /*strided=*/true);
    return memref::TransposeOp::create(
        b, loc, src,
        AffineMapAttr::get(AffineMap::getPermutationMap(
            ArrayRef<unsigned>{1, 0}, b.getContext())));
  }
  return asDynBuffer(b, loc, weight, /*strided=*/true);
}

Value i64Const(OpBuilder &b, Location loc, int64_t v) {
  return arith::ConstantOp::create(b, loc, b.getI64IntegerAttr(v));
}

struct QSLAWToUkernelsPass
    : qslaw::impl::QSLAWToUkernelsBase<QSLAWToUkernelsPass> {
  using Base::Base;

  /// The kernel set the options name, or failure (reported on `module`).
  FailureOr<KernelSet> kernelSet(ModuleOp module) {
    KernelSet set;
    if (target == "cpu") {
      if (failed(checkNumThreads(module, "qslaw-lower-to-ukernels",
                                 numThreads)))
        return failure();
      set.numThreads = numThreads;
      return set;
    }
    if (target != "cuda") {
      module.emitError("qslaw-lower-to-ukernels: target must be cpu or cuda, "
                       "got '")
          << target << "'";
      return failure();
    }
    if (dtype != "bf16" && dtype != "f16") {
      module.emitError("qslaw-lower-to-ukernels: dtype must be bf16 or f16, "
                       "got '")
          << dtype << "'";
      return failure();
    }
    set.cuda = true;
    set.cudaDtype = dtype == "bf16" ? 0 : 1;
    return set;
  }

  void runOnOperation() override {
    ModuleOp module = getOperation();
    FailureOr<KernelSet> maybeSet = kernelSet(module);
    if (failed(maybeSet))
      return signalPassFailure();
    const KernelSet &set = *maybeSet;
    IRRewriter b(module.getContext());
    Type f32 = b.getF32Type();
    SmallVector<Operation *> work;
    module.walk([&](Operation *op) {
      if (auto q = dyn_cast<QMatmulOp>(op); q && covered(set, q))
        work.push_back(op);
      else if (auto g = dyn_cast<QMatmulGradInputOp>(op); g && covered(set, g))
        work.push_back(op);
      else if (auto g = dyn_cast<QMatmulGradScaleOp>(op); g && covered(set, g))
        work.push_back(op);
      else if (auto g = dyn_cast<QMatmulGradGammaOp>(op); g && covered(set, g))
        work.push_back(op);
      else if (auto q = dyn_cast<QuantizeOp>(op); q && covered(set, q))
        work.push_back(op);
    });
    // The CUDA entries take the activation type last, the CPU ones their
    // thread count.
    auto call = [&](Location loc, StringRef kind, QuantSpecAttr spec,
                    SmallVector<Value> args, StringRef suffix = "") {
      args.push_back(arith::ConstantOp::create(
          b, loc,
          b.getI32IntegerAttr(set.cuda ? set.cudaDtype : set.numThreads)));
      std::string name = set.name(kind, spec.getBits()) + suffix.str();
      SmallVector<Type> types;
      for (Value a : args)
        types.push_back(a.getType());
      func::CallOp::create(b, loc, declareUkernel(module, b, name, types),
                           args);
    };
    llvm::SetVector<Operation *> readThrough;
    for (Operation *o : work) {
      Location loc = o->getLoc();
      b.setInsertionPoint(o);
      if (auto op = dyn_cast<QMatmulOp>(o)) {
        int64_t k = op.getInput().getType().getShape().back();
        Value x2 = as2D(b, loc, op.getInput());
        int64_t m = cast<RankedTensorType>(x2.getType()).getDimSize(0);
        int64_t n = op.getCodes().getType().getDimSize(0);
        // Any batch dims collapse into M: the kernel sees [M, K].
        SmallVector<Value> args{asDynBuffer(b, loc, x2),
                                asDynBuffer(b, loc, op.getCodes()),
                                asDynBuffer(b, loc, op.getScales()),
                                zerosBuffer(set, b, loc, op.getZeros(),
                                            op.getSpec())};
        args.push_back(op.getBias() ? asDynBuffer(b, loc, op.getBias())
                                    : emptyDynBuffer(set, b, loc, f32, 1));
        OutBuffer out = newOutput(b, loc, m, n);
        args.push_back(out.dyn);
        args.push_back(i64Const(b, loc, op.getSpec().getGroupSizeFor(k)));
        call(loc, "qmatmul", op.getSpec(), args);
        b.replaceOp(op, reshapeTo(b, loc, out.tensor(b, loc),
                                  cast<RankedTensorType>(op.getType())));
      } else if (auto op = dyn_cast<QMatmulGradInputOp>(o)) {
        int64_t k = op.getCodes().getType().getDimSize(1);
        Value dy2 = as2D(b, loc, op.getGradOutput());
        int64_t m = cast<RankedTensorType>(dy2.getType()).getDimSize(0);
        OutBuffer out = newOutput(b, loc, m, k);
        call(loc, "qmatmul_grad_input", op.getSpec(),
             {asDynBuffer(b, loc, dy2), asDynBuffer(b, loc, op.getCodes()),
              asDynBuffer(b, loc, op.getScales()),
              zerosBuffer(set, b, loc, op.getZeros(), op.getSpec()),
              out.dyn,
              i64Const(b, loc, op.getSpec().getGroupSizeFor(k))});
        b.replaceOp(op, reshapeTo(b, loc, out.tensor(b, loc),
                                  cast<RankedTensorType>(op.getType())));
      } else if (auto op = dyn_cast<QMatmulGradScaleOp>(o)) {
        auto q = op.getCodes().getType();
        int64_t k = q.getDimSize(1), g = op.getSpec().getGroupSizeFor(k);
        OutBuffer out = newOutput(b, loc, q.getDimSize(0), (k + g - 1) / g);
        call(loc, "qmatmul_grad_scale", op.getSpec(),
             {asDynBuffer(b, loc, as2D(b, loc, op.getInput())),
              asDynBuffer(b, loc, as2D(b, loc, op.getGradOutput())),
              asDynBuffer(b, loc, op.getCodes()),
              zerosBuffer(set, b, loc, op.getZeros(), op.getSpec()),
              out.dyn,
              i64Const(b, loc, g)});
        b.replaceOp(op, out.tensor(b, loc));
      } else if (auto op = dyn_cast<QMatmulGradGammaOp>(o)) {
        auto w = op.getWeight().getType();
        int64_t k = w.getDimSize(1), g = op.getSpec().getGroupSizeFor(k);
        OutBuffer out = newOutput(b, loc, w.getDimSize(0), (k + g - 1) / g);
        call(loc, "qmatmul_grad_gamma", op.getSpec(),
             {asDynBuffer(b, loc, as2D(b, loc, op.getInput())),
              asDynBuffer(b, loc, as2D(b, loc, op.getGradOutput())),
              set.cuda ? asDynBuffer(b, loc, op.getWeight())
                       : weightBuffer(b, loc, op.getWeight(), readThrough),
              asDynBuffer(b, loc, op.getScales()),
              asDynBuffer(b, loc, op.getGamma()),
              zerosBuffer(set, b, loc, op.getZeros(), op.getSpec()),
              out.dyn,
              i64Const(b, loc, g)},
             narrowWeightSuffix(op.getWeight().getType().getElementType()));
        b.replaceOp(op, out.tensor(b, loc));
      } else if (auto op = dyn_cast<QuantizeOp>(o)) {
        auto q = op.getType();
        int64_t k = q.getDimSize(1);
        OutBuffer out =
            newOutput(b, loc, q.getDimSize(0), k, q.getElementType());
        call(loc, "quantize", op.getSpec(),
             {weightBuffer(b, loc, op.getWeight(), readThrough),
              asDynBuffer(b, loc, op.getScales()),
              zerosBuffer(set, b, loc, op.getZeros(), op.getSpec()),
              out.dyn,
              i64Const(b, loc, op.getSpec().getGroupSizeFor(k))},
             narrowWeightSuffix(op.getWeight().getType().getElementType()));
        b.replaceOp(op, out.tensor(b, loc));
      }
    }
    // Transposes the kernels now read as strides.
    for (Operation *t : readThrough)
      if (t->use_empty())
        b.eraseOp(t);
  }
};
} // namespace

std::string mlir::qslaw::cpuUkernelName(StringRef kind, unsigned bits) {
  // qmatmul -> qslaw_ukernel_qmatmul_w4_f32, qmatmul_grad_input ->
  // qslaw_ukernel_qmatmul_w4_grad_input_f32, quantize -> ..._quantize_w4_f32.
  auto [op, rest] = kind.split('_');
  std::string name = ("qslaw_ukernel_" + op + "_w" + Twine(bits)).str();
  if (!rest.empty())
    name += ("_" + rest).str();
  return name + "_f32";
}

func::FuncOp mlir::qslaw::declareUkernel(ModuleOp module, OpBuilder &b,
                                         StringRef name, TypeRange args) {
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

MemRefType mlir::qslaw::dynMemRef(Type elem, int64_t rank) {
  return MemRefType::get(SmallVector<int64_t>(rank, ShapedType::kDynamic),
                         elem);
}

Value mlir::qslaw::asDynBuffer(OpBuilder &b, Location loc, Value tensor,
                               bool strided) {
  static std::atomic<int64_t> serial{0};
  auto ty = cast<RankedTensorType>(tensor.getType());
  int64_t rank = ty.getRank();
  SmallVector<int64_t> dyn(rank, ShapedType::kDynamic);
  MemRefLayoutAttrInterface layout;
  if (strided)
    layout = StridedLayoutAttr::get(b.getContext(), ShapedType::kDynamic, dyn);
  auto buf = bufferization::ToBufferOp::create(
      b, loc, MemRefType::get(ty.getShape(), ty.getElementType(), layout),
      tensor, /*read_only=*/true);
  buf->setAttr("qslaw.ukernel_operand", b.getI64IntegerAttr(serial++));
  return memref::CastOp::create(
      b, loc, MemRefType::get(dyn, ty.getElementType(), layout), buf);
}

Value mlir::qslaw::OutBuffer::tensor(OpBuilder &b, Location loc) const {
  auto ty = cast<MemRefType>(alloc.getType());
  return bufferization::ToTensorOp::create(
      b, loc, RankedTensorType::get(ty.getShape(), ty.getElementType()), alloc,
      /*restrict=*/true, /*writable=*/true);
}

Value mlir::qslaw::widenedFrom(Value v) {
  Value src = widenedSource(v);
  if (!src)
    return {};
  auto t = cast<RankedTensorType>(src.getType());
  if (!t.hasStaticShape() ||
      !(t.getElementType().isBF16() || t.getElementType().isF16()))
    return {};
  return src;
}

std::string mlir::qslaw::narrowWeightSuffix(Type elem) {
  return elem.isBF16() ? "_wbf16" : elem.isF16() ? "_wf16" : "";
}

LogicalResult mlir::qslaw::checkNumThreads(Operation *module, StringRef pass,
                                          int numThreads) {
  if (numThreads >= 0)
    return success();
  return module->emitError(pass)
         << ": num-threads must be >= 0 (0: QSLAW_NUM_THREADS or all cores "
            "at run time), got "
         << numThreads;
}

OutBuffer mlir::qslaw::newOutBuffer(OpBuilder &b, Location loc,
                                    ArrayRef<int64_t> shape, Type elem) {
  Value out = memref::AllocOp::create(b, loc, MemRefType::get(shape, elem));
  Value dyn = memref::CastOp::create(
      b, loc, dynMemRef(elem, int64_t(shape.size())), out);
  return {out, dyn};
}
