//===- Widening.h - tensors read widened to f32 ------------------*- C++ -*-===//
//
// An ONNX Cast(to=FLOAT) of an f16/bf16 tensor (a weight stored in half
// precision) imports as an elementwise linalg.generic yielding arith.extf.
// Passes that can read the narrow tensor itself (quantisation, the library
// GEMMs, element reads) look through it with this one matcher.
//
//===----------------------------------------------------------------------===//
#ifndef QSLAW_DIALECT_QSLAW_UTILS_WIDENING_H
#define QSLAW_DIALECT_QSLAW_UTILS_WIDENING_H

#include "mlir/IR/Value.h"

namespace mlir::qslaw {

/// The tensor that `v` is the elementwise f32 widening of (a
/// linalg.generic of identity maps, pure tensors, whose body is `yield
/// arith.extf(in)` to f32), or null.
Value widenedSource(Value v);

} // namespace mlir::qslaw

#endif
