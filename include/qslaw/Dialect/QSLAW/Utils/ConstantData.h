//===- ConstantData.h - weights as dense or resource constants --*- C++ -*-===//
//
// Constant tensors reach the passes in two forms. Small ones are uniqued
// DenseElementsAttr. Weights are DenseResourceElementsAttr: the importer
// backs each with a blob over the mapped ONNX file (or the bytes it already
// read), so a weight is never copied into the context, never hashed, and
// can be freed once the compile no longer needs it (quantised, or written
// to the external weights file). m_Constant(&DenseElementsAttr) sees only
// the first form; code that reads weights goes through these helpers.
//
//===----------------------------------------------------------------------===//
#ifndef QSLAW_DIALECT_QSLAW_UTILS_CONSTANTDATA_H
#define QSLAW_DIALECT_QSLAW_UTILS_CONSTANTDATA_H

#include "mlir/IR/AsmState.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Value.h"

#include <optional>
#include <vector>

namespace mlir::qslaw {

/// Matches a constant tensor of either form.
bool matchConstantTensor(Value v, ElementsAttr &out);

/// The row-major bytes of a non-splat constant: a dense attribute's raw
/// data or a resource's blob. nullopt for a splat, or for a resource whose
/// blob is gone or does not hold shape x element size bytes.
std::optional<ArrayRef<char>> constantBytes(ElementsAttr a);

/// The values of an f32, f16 or bf16 constant as f32 (f16 and bf16 widen
/// exactly). false for other element types or missing data.
bool readFloats(ElementsAttr a, SmallVectorImpl<float> &out);

/// A DenseElementsAttr with the same values (a copy of a resource's blob);
/// null when the data is missing. For folds that need the dense form.
DenseElementsAttr toDenseElements(ElementsAttr a);

/// An f32 constant holding `values`: a resource named `name` when `like` is
/// one (a weight derived from a weight stays freeable and unhashed), else a
/// dense attribute.
ElementsAttr f32ConstantLike(ElementsAttr like, ArrayRef<int64_t> shape,
                             ArrayRef<float> values, StringRef name);

/// Frees the blob of every builtin resource that no op under `root` refers
/// to any more. Passes call it when they have consumed weights (quantised
/// them, written them out); the data is then no longer held in memory.
void releaseUnusedResourceBlobs(Operation *root);

/// The same, but the blobs are handed to the caller, which frees them
/// when it is done with their data (a write still in progress).
std::vector<AsmResourceBlob> takeUnusedResourceBlobs(Operation *root);

} // namespace mlir::qslaw

#endif
