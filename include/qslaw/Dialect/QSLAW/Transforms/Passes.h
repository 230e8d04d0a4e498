//===- Passes.h - qslaw graph-level passes ----------------------*- C++ -*-===//
#ifndef QSLAW_DIALECT_QSLAW_TRANSFORMS_PASSES_H
#define QSLAW_DIALECT_QSLAW_TRANSFORMS_PASSES_H

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"
#include "qslaw/Dialect/QSLAW/IR/QSLAWDialect.h"

namespace mlir::qslaw {
#define GEN_PASS_DECL
#include "qslaw/Dialect/QSLAW/Transforms/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "qslaw/Dialect/QSLAW/Transforms/Passes.h.inc"
} // namespace mlir::qslaw

#endif // QSLAW_DIALECT_QSLAW_TRANSFORMS_PASSES_H
