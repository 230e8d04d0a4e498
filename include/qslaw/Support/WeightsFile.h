//===- WeightsFile.h - model weights kept beside the library ----*- C++ -*-===//
//
// `qslaw-compile --weights=external` moves the model's large constants out
// of the library into OUT.weights; the runtime maps that file when it loads
// the library. Layout (little-endian):
//
//   0   char[8]  magic "QSLAWWTS"
//   8   u32      format version (1)
//   12  u32      header JSON bytes
//   16  u64      data offset (a multiple of 4096, so mapped data is aligned)
//   24  u64      data bytes
//   32  JSON     {"xxh3": "<16 hex digits of the data's xxh3_64>",
//                 "tensors": [{"name", "type", "offset", "bytes"}]}
//   ... zero padding, then the data (each tensor 64-byte aligned, offsets
//       relative to the data).
//
// The library records the data's size and hash; the runtime checks both
// (and re-hashes the data) before it lets the library see the weights, so
// a file from another compile, a truncated file or flipped bits are errors
// that name the file, never wrong numbers.
//
//===----------------------------------------------------------------------===//
#ifndef QSLAW_SUPPORT_WEIGHTSFILE_H
#define QSLAW_SUPPORT_WEIGHTSFILE_H

#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace qslaw::weights {

inline constexpr char kMagic[8] = {'Q', 'S', 'L', 'A', 'W', 'W', 'T', 'S'};
inline constexpr uint32_t kVersion = 1;
inline constexpr uint64_t kDataAlignment = 4096;
inline constexpr uint64_t kTensorAlignment = 64;

struct TensorEntry {
  std::string name;
  std::string type; // the memref type, for people and tools
  uint64_t offset = 0, bytes = 0;
};

/// Accumulates tensors, then writes the file atomically. The data is never
/// gathered into one buffer: write() streams the pieces to the file and
/// hash() streams them through xxh3 (a 7B model's codes are gigabytes; a
/// gathering buffer doubled the compiler's peak memory).
class Writer {
public:
  /// Appends a copy of `bytes` aligned to max(kTensorAlignment, alignment)
  /// and returns its offset in the data.
  uint64_t add(llvm::StringRef name, llvm::StringRef type,
               llvm::StringRef bytes, uint64_t alignment = 0);
  /// The same without a copy: `bytes` must stay valid until the last
  /// write() or hash() (e.g. an MLIR attribute's storage).
  uint64_t addView(llvm::StringRef name, llvm::StringRef type,
                   llvm::StringRef bytes, uint64_t alignment = 0);
  /// Replaces every view for which `outlives(bytes)` is false by a copy of
  /// its own: for a writer that may run after what its views point into is
  /// freed (a background write, when the caller's MLIRContext goes first).
  void copyViewsUnless(llvm::function_ref<bool(llvm::StringRef)> outlives);
  uint64_t dataBytes() const { return size; }
  size_t numTensors() const { return tensors.size(); }
  /// The data's xxh3_64 as 16 hex digits (computed once per content: the
  /// header and the library's record both need it, and it is gigabytes).
  const std::string &hash() const;
  /// Writes the file atomically; `bypassCache`: with O_DIRECT, not through
  /// the page cache (writeFileAtomically).
  llvm::Error write(llvm::StringRef path, bool bypassCache = false) const;

private:
  struct Piece {
    uint64_t offset;
    llvm::StringRef bytes;
  };
  /// The data in order: each piece, and the zero padding before it.
  void forEachRun(llvm::function_ref<void(llvm::StringRef)> emit) const;
  std::vector<Piece> pieces;
  std::vector<std::unique_ptr<std::string>> owned; // add()'s copies
  uint64_t size = 0;
  std::vector<TensorEntry> tensors;
  mutable std::optional<std::string> cachedHash;
};

/// What a file's fixed header and JSON say.
struct Header {
  uint64_t dataOffset = 0, dataBytes = 0;
  std::string hash;
  std::vector<TensorEntry> tensors;
};

/// Parses the header of `file` (its first bytes, or all of it); the error
/// names `path` and what is wrong. Checks that the data fits in `fileSize`.
llvm::Expected<Header> parseHeader(llvm::StringRef path, llvm::StringRef file,
                                   uint64_t fileSize);

/// xxh3_64 of `data` as 16 hex digits.
std::string hashData(llvm::StringRef data);

/// Writes `writer`'s file on a thread of its own, so that the compile goes
/// on (LLVM optimisation and code generation) while the kernel copies
/// gigabytes into the page cache; then runs `release` (which frees what the
/// writer's views point into). The hash is computed first, on the calling
/// thread (the library records it).
void writeInBackground(Writer writer, std::string path,
                       std::function<void()> release,
                       bool bypassCache = false);

/// Waits for every write writeInBackground started; the messages of those
/// that failed, joined. (At exit, writes nobody waited for are waited for
/// and their failures printed.)
llvm::Error finishBackgroundWrites();

} // namespace qslaw::weights

#endif // QSLAW_SUPPORT_WEIGHTSFILE_H
