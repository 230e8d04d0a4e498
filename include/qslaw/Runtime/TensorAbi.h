//===- TensorAbi.h - how tensors cross a compiled entry point ---*- C++ -*-===//
//
// Compiled qslaw functions take every input and output as a pointer to a
// strided memref descriptor (`llvm.emit_c_interface`, results as trailing
// out-params). This file owns that ABI, independent of MLIR so that the
// runtime library can use it: the element types, the storage of sub-byte
// codes (i2/i4 packed low bits first into a 1-D byte buffer; i3 one per
// byte), and conversions from/to NumPy arrays.
//
//===----------------------------------------------------------------------===//
#ifndef QSLAW_RUNTIME_TENSORABI_H
#define QSLAW_RUNTIME_TENSORABI_H

#include "qslaw/Runtime/Npy.h"
#include "qslaw/Support/Signature.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace qslaw {

// TensorSpec and IndexRange: qslaw/Support/Signature.h (the signature
// format's one owner).

/// Storage and descriptor of one argument.
class AbiBuffer {
public:
  explicit AbiBuffer(TensorSpec spec);
  /// A buffer over the caller's memory `borrowed` (not freed here), for a
  /// spec whose storage is the host layout (sharesHostLayout).
  AbiBuffer(TensorSpec spec, void *borrowed);
  ~AbiBuffer();
  /// Whether the storage of `spec` is byte for byte its host tensor (f32,
  /// f64, f16, 8- to 64-bit integers): then a host buffer can be bound
  /// directly, with no conversion or copy.
  static bool sharesHostLayout(const TensorSpec &spec);
  AbiBuffer(const AbiBuffer &) = delete;
  AbiBuffer &operator=(const AbiBuffer &) = delete;

  /// Converts `a` into this buffer; errors start with `what`.
  llvm::Error fill(const NpyArray &a, const std::string &what);
  /// The buffer as a NumPy array (f16 -> f2, bf16 -> f4, codes -> u1).
  NpyArray toNpy() const;

  void *descriptor() { return desc.data(); }
  /// The host storage (bytes()) that the descriptor points to.
  void *storage() { return data; }
  /// The same descriptor pointing at `other` (e.g. a device copy).
  std::vector<int64_t> descriptorFor(void *other) const {
    std::vector<int64_t> d = desc;
    d[0] = d[1] = int64_t(reinterpret_cast<intptr_t>(other));
    return d;
  }
  const TensorSpec &spec() const { return tensorSpec; }
  size_t bytes() const { return storageBytes; }

private:
  TensorSpec tensorSpec;
  unsigned packedBits = 0; // 2 or 4 when sub-byte codes are packed
  size_t storageBytes = 0;
  void *data = nullptr;
  bool ownsData = true;
  std::vector<int64_t> desc; // ptr, ptr, offset, sizes..., strides...
  void describe(const std::vector<int64_t> &sizes);
};

/// Calls a packed entry `void f(void **args)`, whose args[i] points to the
/// i-th descriptor pointer (inputs then outputs).
using PackedEntry = void (*)(void **);

} // namespace qslaw

#endif // QSLAW_RUNTIME_TENSORABI_H
