//===- ExternalWeights.cpp - large constants into a mapped weights file ---===//
//
// A 7B model's 4-bit codes are gigabytes: embedded, they make the library
// as large (past what x86-64's small code model addresses) and every
// artifact that carries it. This pass writes them to a file that the runtime
// maps (include/qslaw/Support/WeightsFile.h) and makes the code reach them
// through one exported base pointer. (Compile time is the same either way:
// bench/weights_compile.py.)
//
//===----------------------------------------------------------------------===//
#include "qslaw/Conversion/Passes.h"
#include "qslaw/Dialect/QSLAW/Utils/ConstantData.h"
#include "qslaw/Support/WeightsFile.h"

#include "mlir/Conversion/LLVMCommon/MemRefBuilder.h"
#include "mlir/Conversion/LLVMCommon/TypeConverter.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "llvm/ADT/MapVector.h"

namespace mlir::qslaw {
#define GEN_PASS_DEF_EXTERNALWEIGHTS
#include "qslaw/Conversion/Passes.h.inc"
} // namespace mlir::qslaw

using namespace mlir;

namespace {
constexpr StringLiteral kBase = "qslaw_weights_base";

/// An initializer whose bytes equal LLVM's layout of it: a dense attribute
/// (one element per byte for widths below 8, little-endian otherwise; a
/// splat is expanded) or a resource blob (the imported weights). Empty
/// (`raw` null) when this pass does not reproduce the layout (i1
/// bit-packing) or the data is missing.
struct Layout {
  ArrayRef<char> raw;
  int64_t repeat = 1; // a splat's element, repeated
  explicit operator bool() const { return raw.data() != nullptr; }
  int64_t size() const { return int64_t(raw.size()) * repeat; }
};

Layout layoutOf(Attribute init) {
  auto elements = dyn_cast_or_null<ElementsAttr>(init);
  if (!elements)
    return {};
  Type e = elements.getElementType();
  if (!(isa<IntegerType, FloatType, IndexType>(e)) ||
      (isa<IntegerType>(e) && e.getIntOrFloatBitWidth() == 1))
    return {};
  if (auto dense = dyn_cast<DenseIntOrFPElementsAttr>(init))
    return {dense.getRawData(), dense.isSplat() ? dense.getNumElements() : 1};
  if (std::optional<ArrayRef<char>> raw = mlir::qslaw::constantBytes(elements))
    return {*raw, 1};
  return {};
}

/// Appends the bytes to `writer` (expanding a splat; otherwise a view of
/// the attribute's storage or blob, which outlives the write).
uint64_t addTo(::qslaw::weights::Writer &writer, StringRef name,
               StringRef type, Layout layout, uint64_t alignment) {
  if (layout.repeat == 1)
    return writer.addView(name, type,
                          StringRef(layout.raw.data(), layout.raw.size()),
                          alignment);
  std::string out;
  out.reserve(size_t(layout.size()));
  for (int64_t i = 0; i < layout.repeat; ++i)
    out.append(layout.raw.begin(), layout.raw.end());
  return writer.add(name, type, out, alignment);
}

struct ExternalWeightsPass
    : mlir::qslaw::impl::ExternalWeightsBase<ExternalWeightsPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    MLIRContext *ctx = module.getContext();
    if (file.empty()) {
      module.emitError("qslaw-external-weights: the 'file' option is "
                       "required (the weights file to write)");
      return signalPassFailure();
    }
    if (minBytes < 0) {
      module.emitError("qslaw-external-weights: min-bytes must be >= 0, not ")
          << int64_t(minBytes);
      return signalPassFailure();
    }
    if (module.lookupSymbol(kBase)) {
      module.emitError("qslaw-external-weights: the module already defines '")
          << kBase << "' (run the pass once)";
      return signalPassFailure();
    }

    // Host reads of qualifying globals, grouped by global (first-use order,
    // so the file layout is deterministic).
    SymbolTable symbols(module);
    llvm::MapVector<memref::GlobalOp, SmallVector<memref::GetGlobalOp>> reads;
    for (auto fn : module.getOps<func::FuncOp>())
      fn.walk([&](memref::GetGlobalOp get) {
        auto global = symbols.lookup<memref::GlobalOp>(get.getName());
        if (global && (reads.contains(global) || qualifies(global)))
          reads[global].push_back(get);
      });

    ::qslaw::weights::Writer writer;
    llvm::DenseMap<Operation *, uint64_t> offsets;
    for (auto &[global, gets] : reads) {
      std::string type;
      llvm::raw_string_ostream(type) << global.getType();
      offsets[global] = addTo(writer, global.getSymName(), type,
                              layoutOf(*global.getInitialValue()),
                              global.getAlignment().value_or(0));
    }
    auto i64 = IntegerType::get(ctx, 64);
    auto record = [&](StringRef hash) {
      module->setAttr(
          "qslaw.external_weights",
          DictionaryAttr::get(
              ctx, {NamedAttribute(StringAttr::get(ctx, "file"),
                                   StringAttr::get(ctx, file)),
                    NamedAttribute(StringAttr::get(ctx, "data_bytes"),
                                   IntegerAttr::get(i64, writer.dataBytes())),
                    NamedAttribute(StringAttr::get(ctx, "xxh3"),
                                   StringAttr::get(ctx, hash)),
                    NamedAttribute(StringAttr::get(ctx, "tensors"),
                                   IntegerAttr::get(i64, writer.numTensors()))}));
    };
    if (reads.empty()) {
      record("");
      return;
    }
    record(writer.hash());
    if (!background) {
      if (llvm::Error e = writer.write(file, direct)) {
        module.emitError("qslaw-external-weights: ")
            << llvm::toString(std::move(e));
        return signalPassFailure();
      }
    }

    // One exported pointer, null until the runtime has mapped and checked
    // the file.
    auto ptr = LLVM::LLVMPointerType::get(ctx);
    OpBuilder top = OpBuilder::atBlockEnd(module.getBody());
    auto base = LLVM::GlobalOp::create(top, module.getLoc(), ptr,
                                       /*isConstant=*/false,
                                       LLVM::Linkage::External, kBase,
                                       Attribute());
    OpBuilder ib = OpBuilder::atBlockEnd(
        top.createBlock(&base.getInitializerRegion()));
    LLVM::ReturnOp::create(ib, module.getLoc(),
                           LLVM::ZeroOp::create(ib, module.getLoc(), ptr)
                               .getResult());

    LLVMTypeConverter converter(ctx);
    auto i8 = IntegerType::get(ctx, 8);
    for (auto &[global, gets] : reads) {
      for (memref::GetGlobalOp get : gets) {
        OpBuilder b(get);
        Location loc = get.getLoc();
        auto type = cast<MemRefType>(get.getType());
        Value addr = LLVM::AddressOfOp::create(b, loc, base);
        Value data = LLVM::LoadOp::create(b, loc, ptr, addr);
        // The offset as an i64 value: a GEP's constant indices are int32
        // (GEPArg), which wrapped offsets past 2 GiB into negative ones.
        Value off = LLVM::ConstantOp::create(
            b, loc, i64, IntegerAttr::get(i64, int64_t(offsets[global])));
        Value at = LLVM::GEPOp::create(b, loc, ptr, i8, data,
                                       ArrayRef<LLVM::GEPArg>{off},
                                       LLVM::GEPNoWrapFlags::inbounds);
        Value desc = MemRefDescriptor::fromStaticShape(b, loc, converter,
                                                       type, at);
        get.replaceAllUsesWith(
            UnrealizedConversionCastOp::create(b, loc, TypeRange{type}, desc)
                .getResult(0));
        get.erase();
      }
    }
    // Globals nothing reads any more go. One walk for all of them: asking
    // SymbolTable per global walked the whole module each time (16 s of a
    // 250 M-parameter trainer's compile for 244 globals).
    SymbolTableCollection tables;
    SymbolUserMap users(tables, module);
    for (auto &entry : reads)
      if (users.useEmpty(entry.first))
        entry.first.erase();
    // The weights are in the file now: the blobs of the globals erased above
    // are freed, not carried through LLVM translation (in the background,
    // once they are written).
    if (!background) {
      mlir::qslaw::releaseUnusedResourceBlobs(module);
      return;
    }
    auto blobs = std::make_shared<std::vector<AsmResourceBlob>>(
        mlir::qslaw::takeUnusedResourceBlobs(module));
    // The thread owns what it reads: the blobs taken above, and a copy of
    // everything else (dense attributes live in the MLIRContext, which a
    // tool that never waits, like qslaw-opt, destroys before exit).
    writer.copyViewsUnless([&](StringRef bytes) {
      return llvm::any_of(*blobs, [&](const AsmResourceBlob &b) {
        ArrayRef<char> d = b.getData();
        return bytes.data() >= d.data() &&
               bytes.data() + bytes.size() <= d.data() + d.size();
      });
    });
    ::qslaw::weights::writeInBackground(std::move(writer), file,
                                        [blobs] { blobs->clear(); }, direct);
  }

  bool qualifies(memref::GlobalOp global) {
    MemRefType type = global.getType();
    if (!global.getConstant() || global.isExternal() ||
        global.isUninitialized() || !type.hasStaticShape() ||
        !type.getLayout().isIdentity())
      return false;
    Layout layout = layoutOf(*global.getInitialValue());
    return layout && layout.size() >= minBytes;
  }
};
} // namespace
