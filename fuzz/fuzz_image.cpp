//===- fuzz_image.cpp - PNG and JPEG decoding, resize and crop ------------===//
#include "FuzzSupport.h"
#include "qslaw/Train/Data.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  qslaw::train::ImageSpec spec;
  spec.size = 16; // the resize is exercised; its cost is not the point
  qslaw::fuzz::drop(
      qslaw::train::decodeImage(qslaw::fuzz::bytes(data, size), "fuzz.img", spec));
  return 0;
}
