//===- fuzz_processor_config.cpp - preprocessor_config.json and its use ---===//
//
// A config the parser accepts is applied to a small image of an odd aspect
// ratio, so that pad, resize and crop run with the sizes it names (their
// limits are part of what is checked).
#include "FuzzSupport.h"
#include "qslaw/Train/Data.h"

#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  using namespace qslaw::train;
  llvm::Expected<ImageSpec> spec = parseProcessorConfig(
      qslaw::fuzz::bytes(data, size), "fuzz.json", /*size=*/16);
  if (!spec) {
    llvm::consumeError(spec.takeError());
    return 0;
  }
  std::vector<uint8_t> rgb(7 * 3 * 3);
  for (size_t i = 0; i < rgb.size(); ++i)
    rgb[i] = uint8_t(i * 37);
  qslaw::fuzz::drop(processImage(rgb.data(), 7, 3, *spec));
  return 0;
}
