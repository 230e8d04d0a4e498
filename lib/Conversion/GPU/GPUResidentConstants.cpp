//===- GPUResidentConstants.cpp - weights uploaded once, kept on the device ===//
//
// Host code of a GPU function reaches a constant (a weight, its codes and
// scales) through memref.get_global. Copying it to the device on every
// call would move all weights over the bus per step; instead each global
// gets a slot holding its device copy, filled by the runtime at first use
// and emptied by the library's destructor.
//
//===----------------------------------------------------------------------===//
#include "qslaw/Conversion/Passes.h"

#include "mlir/Conversion/LLVMCommon/MemRefBuilder.h"
#include "mlir/Conversion/LLVMCommon/TypeConverter.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "llvm/ADT/MapVector.h"

namespace mlir::qslaw {
#define GEN_PASS_DEF_GPURESIDENTCONSTANTS
#include "qslaw/Conversion/Passes.h.inc"
} // namespace mlir::qslaw

using namespace mlir;

namespace {
constexpr StringLiteral kAcquire = "qslaw_cuda_resident_constant";
constexpr StringLiteral kRelease = "qslaw_cuda_release_resident_constant";
constexpr StringLiteral kDestructor = "__qslaw_release_resident_constants";

struct GPUResidentConstantsPass
    : mlir::qslaw::impl::GPUResidentConstantsBase<GPUResidentConstantsPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    MLIRContext *ctx = module.getContext();
    // Host functions only: kernels are in gpu.modules by now.
    SmallVector<memref::GetGlobalOp> gets;
    for (auto fn : module.getOps<func::FuncOp>())
      fn.walk([&](memref::GetGlobalOp g) { gets.push_back(g); });
    if (gets.empty())
      return;

    SymbolTable symbols(module);
    llvm::MapVector<StringAttr, LLVM::GlobalOp> slots;
    OpBuilder top = OpBuilder::atBlockEnd(module.getBody());
    auto ptr = LLVM::LLVMPointerType::get(ctx);
    auto i64 = IntegerType::get(ctx, 64);
    for (memref::GetGlobalOp get : gets) {
      auto global = symbols.lookup<memref::GlobalOp>(get.getName());
      if (!global) {
        get.emitOpError("names no memref.global '") << get.getName() << "'";
        return signalPassFailure();
      }
      MemRefType type = global.getType();
      if (!global.getConstant() || !type.hasStaticShape() ||
          !type.getLayout().isIdentity() || global.isExternal()) {
        get.emitOpError("reads global '")
            << get.getName()
            << "', which is not an initialised constant with a static "
               "shape and the identity layout; a GPU function can keep only "
               "those on the device";
        return signalPassFailure();
      }
      StringAttr name = get.getNameAttr().getAttr();
      if (slots.count(name))
        continue;
      auto slot = LLVM::GlobalOp::create(
          top, global.getLoc(), ptr, /*isConstant=*/false,
          LLVM::Linkage::Internal,
          ("__qslaw_resident." + name.getValue()).str(), Attribute());
      Block *init = top.createBlock(&slot.getInitializerRegion());
      OpBuilder ib = OpBuilder::atBlockEnd(init);
      LLVM::ReturnOp::create(ib, global.getLoc(),
                             LLVM::ZeroOp::create(ib, global.getLoc(), ptr)
                                 .getResult());
      top.setInsertionPointToEnd(module.getBody());
      slots[name] = slot;
    }

    auto acquire = declare(module, kAcquire,
                           LLVM::LLVMFunctionType::get(ptr, {ptr, ptr, i64}));
    LLVMTypeConverter converter(ctx);
    for (memref::GetGlobalOp get : gets) {
      OpBuilder b(get);
      b.setInsertionPointAfter(get);
      Location loc = get.getLoc();
      auto type = cast<MemRefType>(get.getType());
      int64_t bytes = type.getNumElements() *
                      int64_t((type.getElementTypeBitWidth() + 7) / 8);
      Value hostIndex =
          memref::ExtractAlignedPointerAsIndexOp::create(b, loc, get);
      Value hostInt = arith::IndexCastOp::create(b, loc, i64, hostIndex);
      Value host = LLVM::IntToPtrOp::create(b, loc, ptr, hostInt);
      Value slot = LLVM::AddressOfOp::create(
          b, loc, slots[get.getNameAttr().getAttr()]);
      Value size = LLVM::ConstantOp::create(b, loc, i64, bytes);
      Value device = LLVM::CallOp::create(b, loc, acquire,
                                          ValueRange{slot, host, size})
                         .getResult();
      Value desc = MemRefDescriptor::fromStaticShape(b, loc, converter, type,
                                                     device);
      Value onDevice =
          UnrealizedConversionCastOp::create(b, loc, TypeRange{type}, desc)
              .getResult(0);
      get.getResult().replaceAllUsesExcept(onDevice,
                                           hostIndex.getDefiningOp());
    }

    // The library's destructor gives the device copies back.
    auto release = declare(module, kRelease,
                           LLVM::LLVMFunctionType::get(
                               LLVM::LLVMVoidType::get(ctx), {ptr}));
    Location loc = module.getLoc();
    top.setInsertionPointToEnd(module.getBody());
    auto dtor = LLVM::LLVMFuncOp::create(
        top, loc, kDestructor,
        LLVM::LLVMFunctionType::get(LLVM::LLVMVoidType::get(ctx), {}),
        LLVM::Linkage::Internal);
    OpBuilder db = OpBuilder::atBlockEnd(dtor.addEntryBlock(top));
    for (auto &kv : slots)
      LLVM::CallOp::create(db, loc, release,
                           ValueRange{LLVM::AddressOfOp::create(db, loc,
                                                                kv.second)});
    LLVM::ReturnOp::create(db, loc, ValueRange{});
    top.setInsertionPointToEnd(module.getBody());
    if (!module.getOps<LLVM::GlobalDtorsOp>().empty()) {
      module.emitError("qslaw-gpu-resident-constants: the module already "
                       "has llvm.mlir.global_dtors");
      return signalPassFailure();
    }
    LLVM::GlobalDtorsOp::create(
        top, loc, top.getArrayAttr({FlatSymbolRefAttr::get(dtor)}),
        top.getI32ArrayAttr({65535}), top.getArrayAttr({LLVM::ZeroAttr::get(ctx)}));
  }

  LLVM::LLVMFuncOp declare(ModuleOp module, StringRef name,
                           LLVM::LLVMFunctionType type) {
    if (auto f = module.lookupSymbol<LLVM::LLVMFuncOp>(name))
      return f;
    OpBuilder b = OpBuilder::atBlockEnd(module.getBody());
    return LLVM::LLVMFuncOp::create(b, module.getLoc(), name, type);
  }
};
} // namespace
