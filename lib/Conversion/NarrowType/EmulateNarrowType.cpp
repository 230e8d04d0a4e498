//===- EmulateNarrowType.cpp - packed storage for sub-byte codes ----------===//
//
// Wraps MLIR's memref/arith/vector narrow-type emulation (i2/i4 memrefs ->
// linearised i8 memrefs, low bits first) and adds what a whole program needs:
// function signatures, calls and returns. i3 does not divide a byte; its
// memrefs stay as they are and LLVM stores one code per byte.
//
//===----------------------------------------------------------------------===//
#include "qslaw/Conversion/Passes.h"

#include "mlir/Dialect/Arith/Transforms/NarrowTypeEmulationConverter.h"
#include "mlir/Dialect/Arith/Transforms/Passes.h"
#include "mlir/Dialect/MemRef/Transforms/Transforms.h"
#include "mlir/Dialect/Vector/Transforms/VectorRewritePatterns.h"
#include "mlir/Dialect/UB/IR/UBOps.h"
#include "mlir/Transforms/DialectConversion.h"

namespace mlir::qslaw {
#define GEN_PASS_DEF_EMULATENARROWTYPE
#include "qslaw/Conversion/Passes.h.inc"
} // namespace mlir::qslaw

using namespace mlir;

namespace {
/// Widths left one element per byte: those that do not divide a byte (i3),
/// and i1, whose memrefs are masks rather than packed codes.
bool isUnpackable(Type t) {
  auto i = dyn_cast<IntegerType>(t);
  return i && i.getWidth() < 8 && (8 % i.getWidth() != 0 || i.getWidth() == 1);
}

/// memref.cast between narrow memrefs: cast the converted (packed) types.
struct ConvertMemRefCast : OpConversionPattern<memref::CastOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(memref::CastOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Type newTy = getTypeConverter()->convertType(op.getType());
    if (!newTy)
      return rewriter.notifyMatchFailure(op, "unconvertible result type");
    if (newTy == adaptor.getSource().getType())
      rewriter.replaceOp(op, adaptor.getSource());
    else
      rewriter.replaceOpWithNewOp<memref::CastOp>(op, newTy,
                                                  adaptor.getSource());
    return success();
  }
};

/// Packs `raw` (one element per byte) PerByte elements to a byte, the
/// first in the low bits.
template <unsigned PerByte>
void packBytes(ArrayRef<char> raw, unsigned width,
               MutableArrayRef<uint8_t> out) {
  const uint8_t mask = uint8_t((1u << width) - 1);
  const int64_t n = int64_t(raw.size()), whole = n / PerByte;
  for (int64_t o = 0; o < whole; ++o) {
    uint8_t acc = 0;
    for (unsigned s = 0; s < PerByte; ++s)
      acc |= uint8_t((uint8_t(raw[o * PerByte + s]) & mask) << (s * width));
    out[o] = acc;
  }
  for (int64_t i = whole * PerByte; i < n; ++i)
    out[whole] |= uint8_t((uint8_t(raw[i]) & mask) << ((i - whole * PerByte) * width));
}

/// Packs the initial value of a narrow global (e.g. constant codes) into
/// bytes, low bits first, matching the load emulation.
struct ConvertMemRefGlobal : OpConversionPattern<memref::GlobalOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(memref::GlobalOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    auto newTy = dyn_cast_or_null<MemRefType>(
        getTypeConverter()->convertType(op.getType()));
    if (!newTy)
      return rewriter.notifyMatchFailure(op, "unconvertible global type");
    unsigned width = op.getType().getElementType().getIntOrFloatBitWidth();
    Attribute init;
    if (auto dense =
            dyn_cast_or_null<DenseElementsAttr>(op.getInitialValueAttr())) {
      unsigned perByte = 8 / width;
      SmallVector<uint8_t> bytes(newTy.getNumElements(), 0);
      auto put = [&](int64_t i, uint64_t v) {
        bytes[i / perByte] |= static_cast<uint8_t>(
            (v & ((1u << width) - 1)) << ((i % perByte) * width));
      };
      if (width > 1 && !dense.isSplat() &&
          int64_t(dense.getRawData().size()) == dense.getNumElements()) {
        // Widths 2..7 are stored one element per byte: read the bytes, not
        // an APInt per element (8 s of a 1 B-parameter model's compile),
        // a whole output byte at a time (no division per element: 0.15 s
        // of the 250 M-parameter LLaVA's trainer at 4 bits).
        ArrayRef<char> raw = dense.getRawData();
        // The type converter takes i2 and i4 (widths that divide a byte).
        if (perByte == 4)
          packBytes<4>(raw, width, bytes);
        else
          packBytes<2>(raw, width, bytes);
      } else {
        int64_t i = 0;
        for (const APInt &v : dense.getValues<APInt>())
          put(i++, v.getZExtValue());
      }
      auto tensorTy =
          RankedTensorType::get(newTy.getShape(), newTy.getElementType());
      init = DenseElementsAttr::get(tensorTy, ArrayRef<uint8_t>(bytes));
    } else {
      init = op.getInitialValueAttr();
    }
    rewriter.replaceOpWithNewOp<memref::GlobalOp>(
        op, op.getSymName(), op.getSymVisibilityAttr(), newTy, init,
        op.getConstant(), op.getAlignmentAttr());
    return success();
  }
};

struct ConvertMemRefGetGlobal : OpConversionPattern<memref::GetGlobalOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(memref::GetGlobalOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Type newTy = getTypeConverter()->convertType(op.getType());
    if (!newTy)
      return rewriter.notifyMatchFailure(op, "unconvertible type");
    rewriter.replaceOpWithNewOp<memref::GetGlobalOp>(op, newTy, op.getName());
    return success();
  }
};

/// The load/store emulation asks for the strided metadata of the original
/// narrow memref to linearise indices. For statically laid out memrefs the
/// metadata is constant; the (unused) base buffer becomes a poison value
/// that canonicalisation deletes.
struct ConvertStaticExtractStridedMetadata
    : OpConversionPattern<memref::ExtractStridedMetadataOp> {
  using OpConversionPattern::OpConversionPattern;
  LogicalResult
  matchAndRewrite(memref::ExtractStridedMetadataOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    auto ty = cast<MemRefType>(op.getSource().getType());
    SmallVector<int64_t> strides;
    int64_t offset;
    if (!ty.hasStaticShape() ||
        failed(ty.getStridesAndOffset(strides, offset)) ||
        ShapedType::isDynamic(offset) ||
        llvm::any_of(strides, ShapedType::isDynamic))
      return rewriter.notifyMatchFailure(op, "dynamic strided metadata");
    if (!op.getBaseBuffer().use_empty())
      return rewriter.notifyMatchFailure(op, "base buffer is used");
    Location loc = op.getLoc();
    auto idx = [&](int64_t v) -> Value {
      return arith::ConstantIndexOp::create(rewriter, loc, v);
    };
    SmallVector<Value> results{
        ub::PoisonOp::create(rewriter, loc, op.getBaseBuffer().getType()),
        idx(offset)};
    for (int64_t d : ty.getShape())
      results.push_back(idx(d));
    for (int64_t st : strides)
      results.push_back(idx(st));
    rewriter.replaceOp(op, results);
    return success();
  }
};

struct EmulateNarrowTypePass
    : qslaw::impl::EmulateNarrowTypeBase<EmulateNarrowTypePass> {
  void runOnOperation() override {
    MLIRContext *ctx = &getContext();
    arith::NarrowTypeEmulationConverter converter(8);
    memref::populateMemRefNarrowTypeEmulationConversions(converter);
    // Registered last, so tried first: widths that do not divide a byte
    // keep their memref type (one element per byte in LLVM).
    converter.addConversion([](MemRefType ty) -> std::optional<Type> {
      if (isUnpackable(ty.getElementType()))
        return ty;
      return std::nullopt;
    });

    ConversionTarget target(*ctx);
    target.addDynamicallyLegalOp<func::FuncOp>([&](func::FuncOp op) {
      return converter.isSignatureLegal(op.getFunctionType());
    });
    target.addDynamicallyLegalOp<memref::GlobalOp>([&](memref::GlobalOp op) {
      return converter.isLegal(op.getType());
    });
    target.markUnknownOpDynamicallyLegal(
        [&](Operation *op) { return converter.isLegal(op); });
    // Stands in for unused narrow base buffers (see above).
    target.addLegalOp<ub::PoisonOp>();

    RewritePatternSet patterns(ctx);
    // Also converts func signatures, calls and returns.
    arith::populateArithNarrowTypeEmulationPatterns(converter, patterns);
    memref::populateMemRefNarrowTypeEmulationPatterns(converter, patterns);
    vector::populateVectorNarrowTypeEmulationPatterns(converter, patterns);
    patterns.add<ConvertMemRefCast, ConvertMemRefGlobal, ConvertMemRefGetGlobal,
                 ConvertStaticExtractStridedMetadata>(converter, ctx);
    if (failed(applyPartialConversion(getOperation(), target,
                                      std::move(patterns))))
      signalPassFailure();
  }
};
} // namespace
