//===- LinalgBuilders.h - tensor-level building blocks for converters -----===//
#ifndef QSLAW_LIB_IMPORT_ONNX_LINALGBUILDERS_H
#define QSLAW_LIB_IMPORT_ONNX_LINALGBUILDERS_H

#include "mlir/IR/Builders.h"

#include <optional>

namespace qslaw::onnx_import {

using BodyFn = llvm::function_ref<mlir::Value(mlir::OpBuilder &, mlir::Location,
                                              mlir::ValueRange)>;

/// NumPy broadcast of static shapes; nullopt if incompatible.
std::optional<llvm::SmallVector<int64_t>>
broadcastShapes(llvm::ArrayRef<llvm::ArrayRef<int64_t>> shapes);

/// Elementwise linalg.generic over broadcast operands.
mlir::Value buildElementwise(mlir::OpBuilder &b, mlir::Location loc,
                             mlir::ValueRange ins, llvm::ArrayRef<int64_t> shape,
                             mlir::Type resultElem, BodyFn body);

/// Reduction of `in` over `axes` (kept as size-1 dims when keepDims) with
/// `init` and a combining body (acc first, element second).
mlir::Value buildReduction(mlir::OpBuilder &b, mlir::Location loc,
                           mlir::Value in, llvm::ArrayRef<int64_t> axes,
                           bool keepDims, mlir::TypedAttr init, BodyFn body);

/// tensor.reshape-free static reshape via collapse/expand through 1-D.
mlir::Value buildReshape(mlir::OpBuilder &b, mlir::Location loc,
                         mlir::Value in, llvm::ArrayRef<int64_t> shape);

/// Constant of `elem` type with value v (float or int).
mlir::Value scalarConst(mlir::OpBuilder &b, mlir::Location loc,
                        mlir::Type elem, double v);

} // namespace qslaw::onnx_import

#endif
