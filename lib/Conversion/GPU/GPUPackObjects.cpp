//===- GPUPackObjects.cpp - one multi-architecture object per binary ------===//
#include "qslaw/Conversion/Passes.h"
#include "qslaw/Runtime/GpuObjectContainer.h"

#include "mlir/Dialect/LLVMIR/NVVMDialect.h"

namespace mlir::qslaw {
#define GEN_PASS_DEF_GPUPACKOBJECTS
#include "qslaw/Conversion/Passes.h.inc"
} // namespace mlir::qslaw

using namespace mlir;

namespace {
struct GPUPackObjectsPass
    : mlir::qslaw::impl::GPUPackObjectsBase<GPUPackObjectsPass> {
  void runOnOperation() override {
    getOperation().walk([&](gpu::BinaryOp binary) {
      std::vector<::qslaw::gpu::GpuObject> objects;
      NVVM::NVVMTargetAttr first;
      for (Attribute a : binary.getObjects()) {
        auto object = cast<gpu::ObjectAttr>(a);
        auto target = dyn_cast<NVVM::NVVMTargetAttr>(object.getTarget());
        if (!target) {
          binary.emitOpError("object for target ")
              << object.getTarget() << " is not an NVVM target";
          return signalPassFailure();
        }
        if (object.getFormat() == gpu::CompilationTarget::Offload) {
          binary.emitOpError("object for ")
              << target.getChip()
              << " is LLVM IR (format=offload); pack needs isa, bin or fatbin";
          return signalPassFailure();
        }
        if (!first)
          first = target;
        StringRef bytes = object.getObject().getValue();
        objects.push_back({target.getChip().str(), bytes.data(), bytes.size()});
      }
      if (objects.empty())
        return;
      std::string blob = ::qslaw::gpu::encodeContainer(objects);
      MLIRContext *ctx = binary.getContext();
      auto packed = gpu::ObjectAttr::get(ctx, first, gpu::CompilationTarget::Binary,
                                         StringAttr::get(ctx, blob),
                                         /*properties=*/nullptr,
                                         /*kernels=*/nullptr);
      binary.setObjectsAttr(ArrayAttr::get(ctx, {packed}));
    });
  }
};
} // namespace
