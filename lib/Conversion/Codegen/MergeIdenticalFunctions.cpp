//===- MergeIdenticalFunctions.cpp - one copy of identical functions ------===//
//
// The outlined loop nests of L identical layers are L identical functions
// (everything layer-specific is an argument). Keeping one of each class
// makes LLVM's work and the library's code size independent of depth.
//
//===----------------------------------------------------------------------===//
#include "IdenticalOps.h"
#include "qslaw/Conversion/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/OperationSupport.h"
#include "mlir/IR/SymbolTable.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/Hashing.h"

namespace mlir::qslaw {
#define GEN_PASS_DEF_MERGEIDENTICALFUNCTIONS
#include "qslaw/Conversion/Passes.h.inc"
} // namespace mlir::qslaw

using namespace mlir;
using namespace mlir::qslaw;

namespace {

struct MergeIdenticalFunctionsPass
    : qslaw::impl::MergeIdenticalFunctionsBase<MergeIdenticalFunctionsPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    // Buckets of candidates by hash, in module order: the first of each
    // class is the one kept.
    // (The attributes, function type included, are part of the key.)
    using Kept = std::pair<func::FuncOp, DictionaryAttr>;
    llvm::DenseMap<llvm::hash_code, SmallVector<Kept, 1>> buckets;
    SmallVector<std::pair<func::FuncOp, func::FuncOp>> merges; // dup -> kept
    for (func::FuncOp f : module.getOps<func::FuncOp>()) {
      if (!f.isPrivate() || f.isExternal())
        continue;
      DictionaryAttr attrs = attributesButName(f);
      SmallVector<Kept, 1> &kept =
          buckets[llvm::hash_combine(structuralHash(f.getBody()), attrs)];
      auto same = llvm::find_if(kept, [&](Kept &k) {
        return k.second == attrs &&
               OperationEquivalence::isRegionEquivalentTo(
                   &k.first.getBody(), &f.getBody(), kIdenticalFlags);
      });
      if (same != kept.end())
        merges.emplace_back(f, same->first);
      else
        kept.emplace_back(f, attrs);
    }
    if (merges.empty())
      return markAllAnalysesPreserved();

    // One walk finds every symbol use; each duplicate's uses then name the
    // kept function.
    SymbolTableCollection tables;
    SymbolUserMap users(tables, module);
    // (Erased only after every replacement: a duplicate's body may itself
    // hold uses that the map records.)
    for (auto [dup, kept] : merges)
      users.replaceAllUsesWith(dup, kept.getSymNameAttr());
    for (auto [dup, kept] : merges)
      dup.erase();
    numMerged += merges.size();
  }
};
} // namespace
