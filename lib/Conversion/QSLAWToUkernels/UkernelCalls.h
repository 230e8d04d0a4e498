//===- UkernelCalls.h - building calls of runtime kernels -------*- C++ -*-===//
//
// Shared by the passes that replace tensor ops with calls over memrefs
// (qslaw-lower-to-ukernels, qslaw-lower-contractions-to-library).
//
//===----------------------------------------------------------------------===//
#ifndef QSLAW_LIB_CONVERSION_UKERNELCALLS_H
#define QSLAW_LIB_CONVERSION_UKERNELCALLS_H

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Operation.h"

#include <string>

namespace mlir::qslaw {

/// memref<?x..xT> of the given rank.
MemRefType dynMemRef(Type elem, int64_t rank);

/// memref<?x..xT> view of a tensor value, read by the call that follows.
/// One-shot bufferization sees the read where the to_buffer stands, not
/// where the call uses the memref; CSE merging it with an earlier
/// to_buffer of the same tensor would let ops in between overwrite the
/// buffer in place first (the training step reuses activations' buffers for
/// gradients). A unique tag keeps every to_buffer beside its call.
/// With `strided`, the memref has a dynamic strided layout, so that a view
/// (a slice) crosses the call as it is instead of as an identity-layout
/// copy.
Value asDynBuffer(OpBuilder &b, Location loc, Value tensor,
                  bool strided = false);

/// A fresh buffer a call writes (`alloc`, static shape) and its dynamic
/// view (`dyn`, the call's argument); `tensor()` reads it back, to be called
/// after the call.
struct OutBuffer {
  Value alloc, dyn;
  Value tensor(OpBuilder &b, Location loc) const;
};
OutBuffer newOutBuffer(OpBuilder &b, Location loc, ArrayRef<int64_t> shape,
                       Type elem);

/// The statically shaped bf16/f16 tensor that `v` is the elementwise f32
/// widening of (`widenedSource`: a weight stored in half precision, read
/// through Cast), or null. Readers
/// that can take it narrow (the library GEMM's _wbf16/_wf16 entries,
/// qslaw-widen-on-extract) spare the widened tensor, a fresh f32 copy of
/// the weight every call.
Value widenedFrom(Value v);

/// The suffix of a kernel entry reading its weight in element type `elem`
/// (widening as it reads): `_wbf16`, `_wf16`, or none for f32.
std::string narrowWeightSuffix(Type elem);

/// The calls' thread count option: >= 0 (0: at run time), else an error on
/// `module` naming `pass`.
LogicalResult checkNumThreads(Operation *module, StringRef pass,
                              int numThreads);

} // namespace mlir::qslaw

#endif // QSLAW_LIB_CONVERSION_UKERNELCALLS_H
