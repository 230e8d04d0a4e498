//===- MaskedScan.h - the scan behind LLaVA's masked_scatter ----*- C++ -*-===//
//
// torch's masked_scatter (LLaVA merging image features into the token
// embeddings) imports as a sequential scan over a flat boolean mask: the
// k-th true position p pairs with source element k. The importer builds the
// forward scan (dst[p] = src[k]) and qslaw-make-train-step its adjoint
// (dsrc[k] += ddst[p]) with this one builder, so the pairing of p and k
// (including the clamp of k to the source length) is the same in both.
//
//===----------------------------------------------------------------------===//
#ifndef QSLAW_DIALECT_QSLAW_UTILS_MASKEDSCAN_H
#define QSLAW_DIALECT_QSLAW_UTILS_MASKEDSCAN_H

#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/Builders.h"

namespace mlir::qslaw {

/// Marks the importer's forward scan; the AD rule keys on it.
inline constexpr llvm::StringLiteral kMaskedScatterAttr = "qslaw.masked_scatter";

/// for p in [0, n): if mask[p] { acc = body(acc, p, k); k += 1 }, with k
/// clamped to srcLen - 1 when read (more true positions than source
/// elements would read past the source; onnxruntime rejects such inputs).
/// `mask` is a 1-D i1 tensor of n elements; result 0 of the loop is acc.
scf::ForOp buildMaskedScan(
    OpBuilder &b, Location loc, Value mask, int64_t n, int64_t srcLen,
    Value init,
    llvm::function_ref<Value(OpBuilder &, Location, Value acc, Value p,
                             Value k)>
        body);

} // namespace mlir::qslaw

#endif // QSLAW_DIALECT_QSLAW_UTILS_MASKEDSCAN_H
