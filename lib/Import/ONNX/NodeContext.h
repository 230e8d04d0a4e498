//===- NodeContext.h - what an op converter sees ----------------*- C++ -*-===//
#ifndef QSLAW_LIB_IMPORT_ONNX_NODECONTEXT_H
#define QSLAW_LIB_IMPORT_ONNX_NODECONTEXT_H

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinTypes.h"
#include "onnx/onnx_pb.h"

#include <functional>
#include <optional>

namespace qslaw::onnx_import {

/// One ONNX node being converted: its inputs as MLIR values (null for an
/// absent optional input), attribute access, and errors that name the node.
struct NodeContext {
  mlir::OpBuilder &b;
  mlir::Location loc;
  const onnx::NodeProto &node;
  int64_t opset;
  llvm::SmallVector<mlir::Value> inputs;
  /// Per input: whether ONNX declares it a signed integer (MLIR integers are
  /// signless, so the importer records it).
  llvm::SmallVector<bool> signedInputs = {};

  mlir::InFlightDiagnostic emitError() const;

  const onnx::AttributeProto *attr(llvm::StringRef name) const;
  int64_t attrInt(llvm::StringRef name, int64_t def) const;
  float attrFloat(llvm::StringRef name, float def) const;
  std::string attrString(llvm::StringRef name, llvm::StringRef def) const;
  std::optional<std::vector<int64_t>> attrInts(llvm::StringRef name) const;

  mlir::Value input(unsigned i) const {
    return i < inputs.size() ? inputs[i] : mlir::Value();
  }
  mlir::RankedTensorType type(unsigned i) const {
    return mlir::cast<mlir::RankedTensorType>(inputs[i].getType());
  }
  /// The compile-time value of input i, if it is a constant.
  mlir::DenseElementsAttr constant(unsigned i) const;
  /// Whether input i is a constant (dense or resource), without a copy.
  bool isConstant(unsigned i) const;
  /// Integer values of a constant input (shapes, axes, ...).
  std::optional<std::vector<int64_t>> constInts(unsigned i) const;
  /// Axis `a` of a rank-`rank` tensor as a non-negative index (negative
  /// counts from the end); an error naming `what` outside [-rank, rank)
  /// (or [-rank, rank] with `inclusive`, for Flatten-like split points).
  mlir::FailureOr<int64_t> axis(int64_t a, int64_t rank, llvm::StringRef what,
                                bool inclusive = false) const;
  /// The same for each of `as`, refusing repeats.
  mlir::FailureOr<std::vector<int64_t>> axes(llvm::ArrayRef<int64_t> as,
                                             int64_t rank,
                                             llvm::StringRef what) const;
};

using ConvertFn = std::function<mlir::LogicalResult(
    NodeContext &, llvm::SmallVectorImpl<mlir::Value> &)>;

/// Registers a converter for (domain, op) from opset `since` (inclusive)
/// until `until` (inclusive); "" is the default ONNX domain.
void registerConverter(llvm::StringRef domain, llvm::StringRef op,
                       int64_t since, int64_t until, ConvertFn fn);

// Registration functions of the converter files.
void registerElementwiseConverters();
void registerLinearConverters();
void registerShapeConverters();
void registerTensorConverters();
void registerNormConverters();
void registerMaskedScatterConverter();
void registerDequantizeConverters();
void registerCumSumConverter();

} // namespace qslaw::onnx_import

#endif
