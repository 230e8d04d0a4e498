//===- ConstEval.h - import-time evaluation of constant subgraphs -*- C++ -*-===//
//
// Exported graphs compute shapes at run time (Shape -> Gather -> Concat ->
// Reshape). With static shapes those chains are constants; converters fold
// them here so that shape-consuming ops see compile-time values.
//
//===----------------------------------------------------------------------===//
#ifndef QSLAW_LIB_IMPORT_ONNX_CONSTEVAL_H
#define QSLAW_LIB_IMPORT_ONNX_CONSTEVAL_H

#include "NodeContext.h"

namespace qslaw::onnx_import {

/// A scalar during evaluation: floats as double, integers/bools as int64.
struct Scalar {
  bool isFloat;
  double f;
  int64_t i;
  static Scalar ofFloat(double v) { return {true, v, 0}; }
  static Scalar ofInt(int64_t v) { return {false, 0, v}; }
};
using ScalarEval = std::function<Scalar(llvm::ArrayRef<Scalar>)>;

/// Largest constant (elements) the importer evaluates.
constexpr int64_t kMaxFoldElements = 1 << 16;

/// True when every present input is a constant.
bool allInputsConstant(const NodeContext &nc);

/// Broadcasting elementwise evaluation over constant inputs.
mlir::DenseElementsAttr foldElementwise(llvm::ArrayRef<mlir::DenseElementsAttr> ins,
                                        llvm::ArrayRef<int64_t> shape,
                                        mlir::Type outElem, const ScalarEval &fn);

/// Reads element `i` of a constant.
Scalar scalarAt(mlir::DenseElementsAttr a, int64_t i);
/// Builds a constant of `type` from scalars.
mlir::DenseElementsAttr makeConstant(mlir::RankedTensorType type,
                                     llvm::ArrayRef<Scalar> values);

/// Emits an arith.constant for a folded value.
mlir::Value materialize(NodeContext &nc, mlir::DenseElementsAttr value);

} // namespace qslaw::onnx_import

#endif
