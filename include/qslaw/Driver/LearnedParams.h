//===- LearnedParams.h - a trained run's tensors into a model ---*- C++ -*-===//
//
// `qslaw-compile --init-params=DIR` starts a compile from what a trainer
// learned: DIR is the trainer's --export-params output (params.json plus one
// .npy per tensor). Learned scales, gamma and float parameters replace the
// constants they were trained from, so a later stage (a LoRA trainer with
// the scales frozen) or a forward library carries them.
//
//===----------------------------------------------------------------------===//
#ifndef QSLAW_DRIVER_LEARNEDPARAMS_H
#define QSLAW_DRIVER_LEARNEDPARAMS_H

#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/Error.h"

namespace qslaw::driver {

/// Replaces, in every function of `module` (after weight quantisation),
/// each tensor listed in DIR/params.json:
///   kind "scale": the scales of the qslaw.qmatmul whose qslaw.layer is
///                 the name without ".scales";
///   kind "gamma": gamma in that layer's quantize(W, s * gamma);
///   kind "float": the constant whose qslaw.name is the entry's source.
/// Errors name the file and the tensor: unknown kinds (LoRA adapters are
/// not loaded), a tensor the model lacks, a shape that differs, a
/// quantized layer whose bits/group differ from the run that learned it.
/// Returns the number of tensors replaced.
llvm::Expected<unsigned> loadLearnedParams(mlir::ModuleOp module,
                                           llvm::StringRef dir);

} // namespace qslaw::driver

#endif // QSLAW_DRIVER_LEARNEDPARAMS_H
