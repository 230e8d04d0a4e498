//===- Checkpoint.h - trainer state on disk ---------------------*- C++ -*-===//
#ifndef QSLAW_LIB_TRAIN_CHECKPOINT_H
#define QSLAW_LIB_TRAIN_CHECKPOINT_H

#include "llvm/Support/Error.h"

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

/// The checkpoint format QSLAWCK1: step, non-finite run length, then each
/// tensor's name, size, value, first and second moments; an FNV-1a checksum
/// of everything before it last, so a damaged file is refused.
std::string checkpointBytes(int64_t step, int64_t nonFiniteRun,
                            const std::vector<Param> &params);

/// Fills `params` (names and sizes must match the model's) from `path`.
llvm::Error loadCheckpoint(const std::string &path, int64_t &step,
                           int64_t &nonFiniteRun, std::vector<Param> &params);

} // namespace qslaw::train

#endif // QSLAW_LIB_TRAIN_CHECKPOINT_H
