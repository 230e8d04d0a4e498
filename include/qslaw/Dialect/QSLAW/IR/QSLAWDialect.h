//===- QSLAWDialect.h - qslaw dialect and attributes ------------*- C++ -*-===//
#ifndef QSLAW_DIALECT_QSLAW_IR_QSLAWDIALECT_H
#define QSLAW_DIALECT_QSLAW_IR_QSLAWDIALECT_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Dialect.h"

#include "qslaw/Dialect/QSLAW/IR/QSLAWOpsDialect.h.inc"
#include "qslaw/Dialect/QSLAW/IR/QSLAWEnums.h.inc"

#define GET_ATTRDEF_CLASSES
#include "qslaw/Dialect/QSLAW/IR/QSLAWAttrs.h.inc"

#endif // QSLAW_DIALECT_QSLAW_IR_QSLAWDIALECT_H
