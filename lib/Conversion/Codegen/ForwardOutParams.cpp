//===- ForwardOutParams.cpp - results computed in the caller's out params -===//
//
// buffer-results-to-out-params gives every call of a function with results
// freshly allocated out parameters; a caller that returns those values then
// copies each into its own out parameter. This pass lets the callee write
// the caller's out parameter directly when that is the copy's only effect:
// the copied buffer is a plain allocation of the same type, used only
// earlier in the same block and never through a view, and the out
// parameter is used by nothing but the copy.
//
//===----------------------------------------------------------------------===//
#include "qslaw/Conversion/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"

namespace mlir::qslaw {
#define GEN_PASS_DEF_FORWARDOUTPARAMS
#include "qslaw/Conversion/Passes.h.inc"
} // namespace mlir::qslaw

using namespace mlir;

namespace {

/// The allocation `copy` reads, if the copy can be replaced by computing it
/// in the destination: see the pass description.
memref::AllocOp forwardableSource(memref::CopyOp copy, Block &entry) {
  auto out = dyn_cast<BlockArgument>(copy.getTarget());
  if (!out || out.getOwner() != &entry || !out.hasOneUse())
    return {};
  auto alloc = copy.getSource().getDefiningOp<memref::AllocOp>();
  if (!alloc || alloc->getBlock() != &entry ||
      copy->getBlock() != &entry ||
      alloc.getType() != out.getType() || !alloc.getType().hasStaticShape())
    return {};
  for (Operation *user : alloc->getUsers()) {
    if (user == copy)
      continue;
    if (user->getBlock() != copy->getBlock())
      return {};
    if (isa<memref::DeallocOp>(user))
      continue; // erased with the copy
    // Only uses before the copy, none of which makes a view (a view could
    // outlive the copy, or alias another buffer).
    if (!user->isBeforeInBlock(copy) ||
        llvm::any_of(user->getResultTypes(), llvm::IsaPred<BaseMemRefType>))
      return {};
  }
  return alloc;
}

struct ForwardOutParamsPass
    : qslaw::impl::ForwardOutParamsBase<ForwardOutParamsPass> {
  void runOnOperation() override {
    func::FuncOp func = getOperation();
    if (func.isExternal())
      return;
    Block &entry = func.getBody().front();
    SmallVector<memref::CopyOp> copies;
    func.walk([&](memref::CopyOp c) { copies.push_back(c); });
    for (memref::CopyOp copy : copies) {
      memref::AllocOp alloc = forwardableSource(copy, entry);
      if (!alloc)
        continue;
      Value out = copy.getTarget();
      for (Operation *user : llvm::make_early_inc_range(alloc->getUsers()))
        if (isa<memref::DeallocOp>(user))
          user->erase();
      copy->erase();
      alloc->replaceAllUsesWith(ValueRange{out});
      alloc->erase();
    }
  }
};
} // namespace
