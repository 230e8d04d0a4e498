//===- Hash.cpp - content hashes of large data -----------------------------===//
#include "qslaw/Support/Hash.h"

#include "llvm/Support/Format.h"
#include "llvm/Support/raw_ostream.h"

// Header-only (inlined), so that the runtime, which links this file, does
// not depend on libxxhash.
#define XXH_INLINE_ALL
#include <xxhash.h>

namespace qslaw {

struct StreamingHash::State {
  XXH3_state_t xxh;
};

StreamingHash::StreamingHash() : state(std::make_unique<State>()) {
  XXH3_INITSTATE(&state->xxh);
  XXH3_64bits_reset(&state->xxh);
}

StreamingHash::~StreamingHash() = default;

void StreamingHash::update(llvm::StringRef bytes) {
  XXH3_64bits_update(&state->xxh, bytes.data(), bytes.size());
}

std::string StreamingHash::hex() const {
  std::string s;
  llvm::raw_string_ostream(s)
      << llvm::format_hex_no_prefix(XXH3_64bits_digest(&state->xxh), 16);
  return s;
}

} // namespace qslaw
