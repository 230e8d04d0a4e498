//===- GPUMergeIdenticalKernels.cpp - one module per distinct kernel ------===//
//
// gpu-kernel-outlining gives every launch a kernel in a gpu.module of its
// own. L identical layers launch L identical kernels, and each module is
// compiled on its own by gpu-module-to-binary (NVPTX, then ptxas and
// fatbinary per architecture): 1393 modules, 225 of them distinct, took 73
// of the small LLaVA trainer's 110 s. This pass keeps the first module of
// each class of identical ones and points every launch of the others at
// its kernel.
//
//===----------------------------------------------------------------------===//
#include "../Codegen/IdenticalOps.h"
#include "qslaw/Conversion/Passes.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/DenseSet.h"

namespace mlir::qslaw {
#define GEN_PASS_DEF_GPUMERGEIDENTICALKERNELS
#include "qslaw/Conversion/Passes.h.inc"
} // namespace mlir::qslaw

using namespace mlir;
using namespace mlir::qslaw;

namespace {

/// The module's one kernel, when that is what outlining left: a gpu.func
/// with the kernel attribute, whatever else the module holds (functions
/// the kernel calls) named alike in every copy.
gpu::GPUFuncOp soleKernel(gpu::GPUModuleOp m) {
  gpu::GPUFuncOp kernel;
  for (auto f : m.getOps<gpu::GPUFuncOp>()) {
    if (!f.isKernel() || kernel)
      return {};
    kernel = f;
  }
  return kernel;
}

/// Whether modules `a` and `b` (kernels `ka`, `kb`) are the same but for
/// their own and their kernels' names.
bool sameModule(gpu::GPUModuleOp a, gpu::GPUFuncOp ka, gpu::GPUModuleOp b,
                gpu::GPUFuncOp kb) {
  if (attributesButName(a) != attributesButName(b) ||
      attributesButName(ka) != attributesButName(kb) ||
      !OperationEquivalence::isRegionEquivalentTo(&ka.getBody(), &kb.getBody(),
                                                  kIdenticalFlags))
    return false;
  auto opsA = a.getBody()->getOperations().begin(),
       endA = a.getBody()->getOperations().end();
  auto opsB = b.getBody()->getOperations().begin(),
       endB = b.getBody()->getOperations().end();
  for (; opsA != endA && opsB != endB; ++opsA, ++opsB) {
    if ((&*opsA == ka.getOperation()) != (&*opsB == kb.getOperation()))
      return false;
    if (&*opsA == ka.getOperation())
      continue;
    if (!OperationEquivalence::isEquivalentTo(
            &*opsA, &*opsB, OperationEquivalence::ignoreValueEquivalence,
            nullptr, kIdenticalFlags))
      return false;
  }
  return opsA == endA && opsB == endB;
}

struct GPUMergeIdenticalKernelsPass
    : qslaw::impl::GPUMergeIdenticalKernelsBase<GPUMergeIdenticalKernelsPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    // Modules referenced other than as a launch's kernel (outlining makes
    // no such reference; something else might) are never merged away.
    llvm::DenseSet<StringAttr> pinned;
    module->walk([&](Operation *op) {
      auto launch = dyn_cast<gpu::LaunchFuncOp>(op);
      for (NamedAttribute a : op->getAttrs()) {
        if (launch && a.getName() == launch.getKernelAttrName())
          continue;
        a.getValue().walk(
            [&](SymbolRefAttr ref) { pinned.insert(ref.getRootReference()); });
      }
    });
    struct Kept {
      gpu::GPUModuleOp module;
      gpu::GPUFuncOp kernel;
    };
    llvm::DenseMap<llvm::hash_code, SmallVector<Kept, 1>> buckets;
    // A duplicate module's name -> the kernel its launches use instead.
    llvm::DenseMap<StringAttr, SymbolRefAttr> redirect;
    SmallVector<gpu::GPUModuleOp> duplicates;
    for (auto m : module.getOps<gpu::GPUModuleOp>()) {
      gpu::GPUFuncOp kernel = soleKernel(m);
      if (!kernel)
        continue;
      SmallVector<Kept, 1> &kept = buckets[llvm::hash_combine(
          attributesButName(m), structuralHash(m.getBodyRegion(), kernel))];
      auto same = llvm::find_if(kept, [&](Kept &k) {
        return sameModule(k.module, k.kernel, m, kernel);
      });
      if (same == kept.end() || pinned.contains(m.getSymNameAttr())) {
        if (same == kept.end())
          kept.push_back({m, kernel});
        continue;
      }
      redirect[m.getSymNameAttr()] = SymbolRefAttr::get(
          same->module.getSymNameAttr(),
          {FlatSymbolRefAttr::get(same->kernel.getNameAttr())});
      duplicates.push_back(m);
    }
    if (duplicates.empty())
      return markAllAnalysesPreserved();
    module.walk([&](gpu::LaunchFuncOp launch) {
      auto it = redirect.find(launch.getKernelModuleName());
      if (it != redirect.end())
        launch.setKernelAttr(it->second);
    });
    for (gpu::GPUModuleOp m : duplicates)
      m.erase();
    numMerged += duplicates.size();
  }
};
} // namespace
