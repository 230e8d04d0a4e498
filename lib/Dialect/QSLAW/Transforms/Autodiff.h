//===- Autodiff.h - reverse-mode AD over tensor SSA -------------*- C++ -*-===//
//
// The engine behind qslaw-make-train-step: activity analysis, cotangent
// accumulation and one derivative rule per op the ONNX importer emits.
//
//===----------------------------------------------------------------------===//
#ifndef QSLAW_LIB_DIALECT_QSLAW_TRANSFORMS_AUTODIFF_H
#define QSLAW_LIB_DIALECT_QSLAW_TRANSFORMS_AUTODIFF_H

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/DenseSet.h"

namespace mlir::qslaw::autodiff {

/// A zero-filled tensor of `type`.
Value buildZeros(OpBuilder &b, Location loc, RankedTensorType type);
/// Elementwise a + b (same type).
Value buildAdd(OpBuilder &b, Location loc, Value a, Value c);
/// sum(x * x) as a 0-d tensor (f32 accumulation).
Value buildSumSquares(OpBuilder &b, Location loc, Value x);

/// The cotangent of `generic`'s operand `operand` (an input, or the init when
/// operand == numInputs) given the cotangent `dOut` of its single result.
/// Returns a null Value when the operand does not influence the result, and
/// failure (with a diagnostic on the op) when the body or maps have no rule.
FailureOr<Value> buildGenericOperandGrad(OpBuilder &b, linalg::GenericOp generic,
                                         unsigned operand, Value dOut);

/// Reverse-mode AD over the ops of one block.
class ReverseAD {
public:
  explicit ReverseAD(OpBuilder &b) : b(b) {}

  /// Marks every float tensor that depends on `leaves` active.
  void analyzeActivity(Block &body, ArrayRef<Value> leaves);
  bool isActive(Value v) const { return active.contains(v); }

  void addCotangent(Value v, Value d);
  Value cotangent(Value v) const { return cot.lookup(v); }

  /// Propagates cotangents backwards through `ops` (forward order given),
  /// inserting the backward ops at the builder's insertion point.
  LogicalResult backprop(ArrayRef<Operation *> ops);

private:
  LogicalResult rule(Operation *op);
  LogicalResult genericRule(linalg::GenericOp op);
  LogicalResult qmatmulRule(Operation *op);
  LogicalResult maskedScatterRule(Operation *op);

  OpBuilder &b;
  llvm::DenseSet<Value> active;
  llvm::DenseMap<Value, Value> cot;
};

} // namespace mlir::qslaw::autodiff

#endif
