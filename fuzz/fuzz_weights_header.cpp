//===- fuzz_weights_header.cpp - the external weights file header ---------===//
#include "FuzzSupport.h"
#include "qslaw/Support/WeightsFile.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  llvm::StringRef file = qslaw::fuzz::bytes(data, size);
  // The data may lie past the fuzzed bytes: a header-only input parses fully.
  qslaw::fuzz::drop(qslaw::weights::parseHeader("fuzz.weights", file, 1u << 30));
  return 0;
}
