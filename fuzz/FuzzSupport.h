//===- FuzzSupport.h - shared by the libFuzzer harnesses --------*- C++ -*-===//
//
// Parsers under fuzzing must turn any bytes into a value or an llvm::Error;
// the harnesses drop the error (checked: an unchecked Error aborts) and let
// the sanitizers report crashes, leaks and undefined behaviour.
//
//===----------------------------------------------------------------------===//
#ifndef QSLAW_FUZZ_FUZZSUPPORT_H
#define QSLAW_FUZZ_FUZZSUPPORT_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstddef>
#include <cstdint>

namespace qslaw::fuzz {

inline llvm::StringRef bytes(const uint8_t *data, size_t size) {
  return {reinterpret_cast<const char *>(data), size};
}

template <typename T> void drop(llvm::Expected<T> &&v) {
  if (!v)
    llvm::consumeError(v.takeError());
}
inline void drop(llvm::Error &&e) { llvm::consumeError(std::move(e)); }

} // namespace qslaw::fuzz

#endif // QSLAW_FUZZ_FUZZSUPPORT_H
