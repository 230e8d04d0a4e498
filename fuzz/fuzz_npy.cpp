//===- fuzz_npy.cpp - the .npy reader (qslaw-run inputs) ------------------===//
#include "FuzzSupport.h"
#include "qslaw/Runtime/Npy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  auto a = qslaw::parseNpy(qslaw::fuzz::bytes(data, size), "fuzz.npy");
  if (a) {
    // What the runtime does next: the element count against the data.
    (void)a->numElements();
    (void)a->elementSize();
  }
  qslaw::fuzz::drop(std::move(a));
  return 0;
}
