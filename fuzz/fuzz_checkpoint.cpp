//===- fuzz_checkpoint.cpp - trainer checkpoints and their identity -------===//
#include "FuzzSupport.h"
#include "../lib/Train/Checkpoint.h"

using namespace qslaw::train;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  auto c = parseCheckpoint(qslaw::fuzz::bytes(data, size).str(), "fuzz.bin");
  if (c) {
    // Compare against a model's identity the way --resume does.
    Param p{"s", "scale", "w", {2, 2}, {}, {}, {}};
    llvm::json::Array schedule{llvm::json::Array{10, 1.0, 0.5, false}};
    qslaw::ModelSignature sig;
    sig.program = "0123456789abcdef";
    (void)identityMismatch(c->identity, checkpointIdentity(sig, {p}, schedule));
  }
  qslaw::fuzz::drop(std::move(c));
  return 0;
}
