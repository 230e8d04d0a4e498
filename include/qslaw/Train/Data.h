//===- Data.h - training data for the QSLAW trainer -------------*- C++ -*-===//
//
// Records are JSON lines made by the documented tokenisation step
// (python -m qslaw_tools.prepare_data): {"id", "input_ids": [...],
// "labels": [...], "image": "relative/path.png"?}. A record with an image is
// multimodal, one without is linguistic. Images are PNG or JPEG, decoded here,
// resized (shortest side), center-cropped and normalised.
//
//===----------------------------------------------------------------------===//
#ifndef QSLAW_TRAIN_DATA_H
#define QSLAW_TRAIN_DATA_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"
#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace qslaw::train {

struct Record {
  std::string id;
  std::vector<int64_t> inputIds, labels;
  std::string image; // absolute path, empty for text records
  int64_t line = 0;  // in the records file, for errors
};

struct DataSet {
  std::vector<Record> multimodal, text;
  size_t skippedTooLong = 0;
};

/// Reads JSON-lines records; image paths are relative to the file. Records
/// longer than `maxLen` tokens are skipped (counted, reported by the
/// caller); any malformed line is an error naming file:line.
llvm::Expected<DataSet> loadRecords(const std::string &path, int64_t maxLen);
/// The same for the file's text; `path` names it in errors and locates
/// relative image paths.
llvm::Expected<DataSet> parseRecords(llvm::StringRef text,
                                     const std::string &path, int64_t maxLen);

/// How images become the model's pixel_values. Without a processor config
/// (`fromConfig` false): shortest side resized to `size` (bilinear, no
/// antialiasing), centre crop, (x/255 - mean) / std with CLIP's mean/std.
/// From a Hugging Face preprocessor_config.json (parseProcessorConfig):
/// LLaVA's pad-to-square with the mean colour (do_pad), resize (shortest
/// edge or height x width; bicubic, bilinear or nearest, antialiased as PIL
/// and torchvision do, rounded to 8 bits as they do), centre crop,
/// rescale, normalise.
struct ImageSpec {
  int64_t size = 224; // output H = W
  std::array<float, 3> mean{0.48145466f, 0.4578275f, 0.40821073f};
  std::array<float, 3> std{0.26862954f, 0.26130258f, 0.27577711f};

  bool fromConfig = false;
  std::string source; // the config file, for logs and errors
  enum class Resample { Nearest, Bilinear, Bicubic };
  Resample resample = Resample::Bicubic;
  bool doPad = false, doResize = true, doCenterCrop = true, doRescale = true,
       doNormalize = true;
  double rescaleFactor = 1.0 / 255.0;
  int64_t shortestEdge = 0;         // > 0: resize the shortest edge to it
  int64_t resizeH = 0, resizeW = 0; // > 0: resize to exactly this
  int64_t cropH = 0, cropW = 0;
};

/// Reads a Hugging Face preprocessor_config.json for a model whose
/// pixel_values are `size` x `size`. Unknown keys, values of the wrong type,
/// impossible values (std <= 0, sizes <= 0, an unknown resample) and a
/// pipeline whose output is not size x size are errors naming file and key.
llvm::Expected<ImageSpec> loadProcessorConfig(const std::string &path,
                                              int64_t size);
llvm::Expected<ImageSpec> parseProcessorConfig(llvm::StringRef text,
                                               const std::string &path,
                                               int64_t size);

/// The processor-config pipeline (spec.fromConfig) over `w` x `h` RGB8
/// pixels: CHW floats of spec.size x spec.size. A resize or pad larger
/// than the image limits (16384 a side, 2^26 pixels) is an error.
llvm::Expected<std::vector<float>> processImage(const uint8_t *rgb, int w,
                                                int h, const ImageSpec &spec);

/// Decodes a PNG or JPEG into CHW floats as `spec` says.
llvm::Expected<std::vector<float>> loadImage(const std::string &path,
                                             const ImageSpec &spec);
/// The same for the image file's bytes; `path` names it in errors.
llvm::Expected<std::vector<float>> decodeImage(llvm::StringRef bytes,
                                               const std::string &path,
                                               const ImageSpec &spec);

} // namespace qslaw::train

#endif
