//===- Signature.h - the model signature's tensor specs ---------*- C++ -*-===//
//
// One owner of how a compiled model's signature JSON describes a tensor
// (`{"name", "dtype", "shape", "index_range"?}`): the compiler writes it
// (lib/Target/CPULibrary.cpp), the runtime and the trainer read it. MLIR-free
// so that the runtime library can use it.
//
//===----------------------------------------------------------------------===//
#ifndef QSLAW_SUPPORT_SIGNATURE_H
#define QSLAW_SUPPORT_SIGNATURE_H

#include "llvm/Support/Error.h"
#include "llvm/Support/JSON.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace qslaw {

/// The valid values of an integer input that indexes something (a Gather's
/// data, the vocabulary of a loss): [begin, end), or `ignore` if set.
struct IndexRange {
  int64_t begin = 0, end = 0;
  std::optional<int64_t> ignore;
  std::string indexes; // what it indexes, for errors

  bool contains(int64_t v) const {
    return (v >= begin && v < end) || (ignore && v == *ignore);
  }
  /// "[0, 48) or -100 (the vocabulary of the logits (size 48))".
  std::string text() const;
};

/// A tensor of an entry point's signature. `dtype` is one of
/// f32 f16 bf16 f64 i64 i32 i16 i8 i4 i3 i2 i1.
struct TensorSpec {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  std::optional<IndexRange> range;

  int64_t numElements() const;
  /// Bits per element (0 for an unknown dtype).
  unsigned bits() const;
  /// Whether `v` is a valid value (always, without an index range).
  bool accepts(int64_t v) const { return !range || range->contains(v); }
};

/// The JSON object of one spec.
llvm::json::Object toJson(const TensorSpec &spec);

/// The specs of a signature's "inputs" or "outputs" array; `what` names it
/// in errors (e.g. "train_step inputs").
llvm::Expected<std::vector<TensorSpec>>
parseTensorSpecs(const llvm::json::Array *array, llvm::StringRef what);

} // namespace qslaw

#endif // QSLAW_SUPPORT_SIGNATURE_H
