//===- MemRefABI.h - MLIR's strided memref descriptor, for C entries -*- C++ -*-===//
//
// Functions declared with `llvm.emit_c_interface` receive each memref as a
// pointer to this descriptor (MLIR's StridedMemRefType, restated so that
// runtime libraries need no MLIR headers).
//
//===----------------------------------------------------------------------===//
#ifndef QSLAW_RUNTIME_MEMREFABI_H
#define QSLAW_RUNTIME_MEMREFABI_H

#include <cstdint>

namespace qslaw {

template <typename T, int Rank> struct MemRefDescriptor {
  T *allocated;
  T *aligned;
  int64_t offset;
  int64_t sizes[Rank];
  int64_t strides[Rank];
  T *data() const { return aligned + offset; }
};

} // namespace qslaw

#endif // QSLAW_RUNTIME_MEMREFABI_H
