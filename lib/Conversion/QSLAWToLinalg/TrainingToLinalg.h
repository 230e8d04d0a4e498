//===- TrainingToLinalg.h - loss and optimizer lowering ---------*- C++ -*-===//
#ifndef QSLAW_LIB_CONVERSION_QSLAWTOLINALG_TRAININGTOLINALG_H
#define QSLAW_LIB_CONVERSION_QSLAWTOLINALG_TRAININGTOLINALG_H

#include "mlir/Transforms/DialectConversion.h"

namespace mlir::qslaw {
/// qslaw.cross_entropy, qslaw.cross_entropy_grad and qslaw.adamw -> linalg.
void populateTrainingToLinalgPatterns(RewritePatternSet &patterns);
} // namespace mlir::qslaw

#endif
