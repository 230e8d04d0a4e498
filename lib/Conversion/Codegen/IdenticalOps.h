//===- IdenticalOps.h - ops the same but for their names ------*- C++ -*-===//
//
// Shared by the passes that keep one copy of identical symbols
// (qslaw-merge-identical-functions, qslaw-gpu-merge-identical-kernels).
//
//===----------------------------------------------------------------------===//
#ifndef QSLAW_LIB_CONVERSION_CODEGEN_IDENTICALOPS_H
#define QSLAW_LIB_CONVERSION_CODEGEN_IDENTICALOPS_H

#include "mlir/IR/OperationSupport.h"
#include "mlir/IR/SymbolTable.h"
#include "llvm/ADT/Hashing.h"

namespace mlir::qslaw {

/// Equivalence up to locations.
inline constexpr auto kIdenticalFlags = OperationEquivalence::IgnoreLocations;

/// `op`'s attributes other than its symbol name: copies must agree on all
/// of them (type, linkage, kernel attributes, argument attributes).
inline DictionaryAttr attributesButName(Operation *op) {
  NamedAttrList attrs(op->getAttrDictionary());
  attrs.erase(SymbolTable::getSymbolAttrName());
  return attrs.getDictionary(op->getContext());
}

/// A structural hash of `region`: every op's name, attributes, properties
/// and types in walk order, not value identities (operands and results
/// hash alike) or locations; `nameless` (a symbol inside the region whose
/// name may differ between copies) by its name-free attributes. Equal
/// regions hash equal.
inline llvm::hash_code structuralHash(Region &region,
                                      Operation *nameless = nullptr) {
  llvm::hash_code h{};
  region.walk([&](Operation *op) {
    if (op == nameless) {
      h = llvm::hash_combine(h, attributesButName(op),
                             op->getName().getAsOpaquePointer());
      return;
    }
    h = llvm::hash_combine(
        h,
        OperationEquivalence::computeHash(
            op, OperationEquivalence::ignoreHashValue,
            OperationEquivalence::ignoreHashValue, kIdenticalFlags),
        op->getNumRegions(), op->getNumOperands());
  });
  return h;
}

} // namespace mlir::qslaw

#endif // QSLAW_LIB_CONVERSION_CODEGEN_IDENTICALOPS_H
