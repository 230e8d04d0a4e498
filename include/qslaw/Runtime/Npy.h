//===- Npy.h - NumPy .npy arrays in and out ---------------------*- C++ -*-===//
#ifndef QSLAW_RUNTIME_NPY_H
#define QSLAW_RUNTIME_NPY_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <string>
#include <vector>

namespace qslaw {

/// A C-contiguous little-endian array as stored in a .npy file (format 1.0,
/// 2.0 or 3.0). `dtype` is the NumPy descr without byte order, e.g. "f4".
struct NpyArray {
  std::string dtype;
  std::vector<int64_t> shape;
  std::vector<uint8_t> data;

  int64_t numElements() const;
  size_t elementSize() const;
};

/// Reads `path`; errors name the file and what is wrong with it.
llvm::Expected<NpyArray> readNpy(llvm::StringRef path);
/// The same for the file's bytes; `path` names it in errors.
llvm::Expected<NpyArray> parseNpy(llvm::StringRef bytes, llvm::StringRef path);
/// Writes `array` to `path` atomically (temporary file, then rename).
llvm::Error writeNpy(llvm::StringRef path, const NpyArray &array);

/// The NumPy descr that holds a host tensor of the runtime dtype `dtype`
/// ("f32" -> "f4", "i16" -> "i2", "bf16" -> "u2" (raw bits); i8 and
/// sub-byte codes -> "u1", one per byte).
std::string npyDtypeFor(llvm::StringRef dtype);
/// Whether a .npy of descr `npy` may feed a tensor of runtime dtype `dtype`
/// (signed or unsigned of the same width for integers).
bool npyDtypeMatches(llvm::StringRef dtype, llvm::StringRef npy);
/// Byte size of a NumPy dtype descr ("f4" -> 4); 0 when unknown.
size_t npyDtypeSize(llvm::StringRef dtype);

} // namespace qslaw

#endif // QSLAW_RUNTIME_NPY_H
