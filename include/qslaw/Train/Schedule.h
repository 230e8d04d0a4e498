//===- Schedule.h - multimodal warmup schedule ------------------*- C++ -*-===//
//
// A schedule file (JSON or YAML) is either {"preset": "progressive" |
// "mix", "warmup_steps"?: N, "p_end"?: p} or {"phases": [{"steps": N,
// "text_fraction": p} | {"steps": N, "p_start": a, "p_end": b,
// "interp": "linear" | "cosine"}]}. The last phase extends to the end of
// training. Unknown keys and impossible values are errors naming them.
//
//===----------------------------------------------------------------------===//
#ifndef QSLAW_TRAIN_SCHEDULE_H
#define QSLAW_TRAIN_SCHEDULE_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"
#include <cstdint>
#include <string>
#include <vector>

namespace qslaw::train {

struct Phase {
  int64_t steps = 0;
  double pStart = 0, pEnd = 0;
  bool cosine = false;
};

struct WarmupSchedule {
  std::vector<Phase> phases;
  /// The probability that a sample of step `step` (0-based) is linguistic.
  double textFraction(int64_t step) const;
};

/// `totalSteps` sizes the presets (progressive: warmup over the first 30%).
llvm::Expected<WarmupSchedule> loadSchedule(const std::string &path,
                                            int64_t totalSteps);
/// The same for the file's text; `path` names it in errors.
llvm::Expected<WarmupSchedule> parseSchedule(llvm::StringRef text,
                                             const std::string &path,
                                             int64_t totalSteps);
llvm::Expected<WarmupSchedule> presetSchedule(const std::string &name,
                                              int64_t totalSteps);

/// Cosine learning rate with linear warmup: step is 1-based.
double cosineLr(double base, int64_t step, int64_t warmupSteps,
                int64_t totalSteps);

/// Deterministic 64-bit hash of (seed, step, slot): batch sampling.
uint64_t sampleHash(uint64_t seed, uint64_t step, uint64_t slot);

} // namespace qslaw::train

#endif
