//===- QSLAWOps.h - qslaw operations ----------------------------*- C++ -*-===//
#ifndef QSLAW_DIALECT_QSLAW_IR_QSLAWOPS_H
#define QSLAW_DIALECT_QSLAW_IR_QSLAWOPS_H

#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "qslaw/Dialect/QSLAW/IR/QSLAWDialect.h"

#define GET_OP_CLASSES
#include "qslaw/Dialect/QSLAW/IR/QSLAWOps.h.inc"

#endif // QSLAW_DIALECT_QSLAW_IR_QSLAWOPS_H
