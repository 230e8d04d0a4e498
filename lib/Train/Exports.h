//===- Exports.h - what a trainer writes after training ---------*- C++ -*-===//
#ifndef QSLAW_LIB_TRAIN_EXPORTS_H
#define QSLAW_LIB_TRAIN_EXPORTS_H

#include "Checkpoint.h"

#include "qslaw/Support/Signature.h"

#include <string>
#include <vector>

namespace qslaw::train {

/// The trainer's --export-params / --export-onnx (--export-format,
/// --source-model) / --export-peft (--peft-strip-prefix); empty: not asked.
struct ExportRequest {
  std::string paramsDir, onnx, format, sourceModel, peftDir, peftStripPrefix;
};

/// Writes what `r` asks for from the learned `params` and the signature's
/// training record; returns the exit status (errors printed).
int exportLearned(const std::vector<Param> &params,
                  const TrainingRecord &training, const ExportRequest &r);

} // namespace qslaw::train

#endif
