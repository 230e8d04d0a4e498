//===- Importer.h - ONNX models to MLIR -------------------------*- C++ -*-===//
//
// Reads an ONNX model (protobuf, external data files, models over 2 GB) and
// builds one func.func over linalg/tensor/arith/math ops plus qslaw ops for
// the quantized forms. Shapes are static: dynamic input dimensions are bound
// by `shapeBindings`; shape computations fold at import time.
//
//===----------------------------------------------------------------------===//
#ifndef QSLAW_IMPORT_ONNX_IMPORTER_H
#define QSLAW_IMPORT_ONNX_IMPORTER_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"
#include "llvm/ADT/StringMap.h"

#include <string>
#include <vector>

namespace qslaw::onnx_import {

struct ImportOptions {
  /// Static shapes for inputs with dynamic dimensions: name -> dims.
  llvm::StringMap<std::vector<int64_t>> shapeBindings;
  /// Name of the generated function.
  std::string entryName = "forward";
};

/// Imports `path`. On failure, diagnostics (naming file, node, op, field)
/// have been emitted on `context` and the result is null.
mlir::OwningOpRef<mlir::ModuleOp> importModel(llvm::StringRef path,
                                              mlir::MLIRContext *context,
                                              const ImportOptions &options);

/// The (domain, op type, opset range) entries the importer supports.
struct SupportedOp {
  std::string domain, opType;
  int64_t sinceVersion, untilVersion;
};
std::vector<SupportedOp> supportedOps();

/// Registers the dialects the importer produces.
void registerImportDialects(mlir::DialectRegistry &registry);

} // namespace qslaw::onnx_import

#endif // QSLAW_IMPORT_ONNX_IMPORTER_H
