//===- Hash.h - content hashes of large data --------------------*- C++ -*-===//
//
// xxh3_64 (seed 0, equal to llvm::xxh3_64bits) over data given in pieces, as
// 16 hex digits: the weights file's data hash and the compiled program's
// identity, both over gigabytes that are never gathered into one buffer.
//
//===----------------------------------------------------------------------===//
#ifndef QSLAW_SUPPORT_HASH_H
#define QSLAW_SUPPORT_HASH_H

#include "llvm/ADT/StringRef.h"

#include <memory>
#include <string>

namespace qslaw {

class StreamingHash {
public:
  StreamingHash();
  ~StreamingHash();
  StreamingHash(const StreamingHash &) = delete;
  StreamingHash &operator=(const StreamingHash &) = delete;
  void update(llvm::StringRef bytes);
  /// The digest of everything so far, as 16 hex digits.
  std::string hex() const;

private:
  struct State;
  std::unique_ptr<State> state;
};

} // namespace qslaw

#endif // QSLAW_SUPPORT_HASH_H
