//===- Checkpoint.h - trainer state on disk ---------------------*- C++ -*-===//
#ifndef QSLAW_LIB_TRAIN_CHECKPOINT_H
#define QSLAW_LIB_TRAIN_CHECKPOINT_H

#include "qslaw/Support/Signature.h"

#include "llvm/Support/Error.h"
#include "llvm/Support/JSON.h"

#include <cstdint>
#include <string>
#include <vector>

namespace qslaw::train {

/// A trainable tensor with its AdamW moments.
struct Param {
  std::string name, kind, source;
  std::vector<int64_t> shape;
  std::vector<float> value, m, v;
};

/// What a checkpoint belongs to: {"program": the compiled program's hash
/// (signature "program"), "layers": each quantized layer's spec, "trainable":
/// [[name, kind, shape]...], "schedule": the resolved warmup phases}.
/// `--resume` refuses a checkpoint whose identity differs, naming the first
/// difference: names and sizes alone match across bit widths, sym/asym and
/// retrained models.
llvm::json::Object checkpointIdentity(const ModelSignature &signature,
                                      const std::vector<Param> &params,
                                      const llvm::json::Array &schedule);

/// The format QSLAWCK2: the identity JSON (u32 length first), step,
/// non-finite run length, then each tensor's name, size, value, first and
/// second moments; an FNV-1a checksum of everything before it last, so a
/// damaged file is refused.
std::string checkpointBytes(const llvm::json::Object &identity, int64_t step,
                            int64_t nonFiniteRun,
                            const std::vector<Param> &params);

/// What a checkpoint file holds; the tensors' bytes point into the file.
struct CheckpointContents {
  llvm::json::Object identity;
  int64_t step = 0, nonFiniteRun = 0;
  struct Tensor {
    std::string name;
    uint64_t count = 0;
    llvm::StringRef value, m, v; // count f32 each
  };
  std::vector<Tensor> tensors;
};

/// Parses a checkpoint file's bytes (format, checksum, bounds), naming
/// `path` in errors.
llvm::Expected<CheckpointContents> parseCheckpoint(llvm::StringRef bytes,
                                                   const std::string &path);

/// Fills `params` from `path`, whose identity must equal `identity`.
llvm::Error loadCheckpoint(const std::string &path,
                           const llvm::json::Object &identity, int64_t &step,
                           int64_t &nonFiniteRun, std::vector<Param> &params);

/// Why checkpoint identity `have` does not belong to `want` ("" if it does).
std::string identityMismatch(const llvm::json::Object &have,
                             const llvm::json::Object &want);

} // namespace qslaw::train

#endif // QSLAW_LIB_TRAIN_CHECKPOINT_H
