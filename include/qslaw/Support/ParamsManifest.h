//===- ParamsManifest.h - a trainer's --export-params directory -*- C++ -*-===//
//
// The one reader and writer of `params.json`, the manifest of a trainer's
// learned tensors (one `.npy` file each beside it, plus the run's training
// record). The trainer writes it (--export-params) and reads it back for the
// tensors it carries into an ONNX export; qslaw-compile --init-params reads
// it. MLIR-free.
//
//===----------------------------------------------------------------------===//
#ifndef QSLAW_SUPPORT_PARAMSMANIFEST_H
#define QSLAW_SUPPORT_PARAMSMANIFEST_H

#include "llvm/Support/Error.h"
#include "llvm/Support/JSON.h"

#include <string>
#include <vector>

namespace qslaw::params {

/// One learned tensor: its name in the program, kind (scale, gamma, float,
/// lora_A, lora_B), source (ONNX node or initializer) and .npy file (a
/// name inside the directory).
struct Entry {
  std::string name, kind, source, file;
};

struct Manifest {
  std::vector<Entry> params;
  /// The run's training record (quantized layers, model, init_params, ...).
  llvm::json::Object training;
};

/// DIR/params.json.
std::string manifestPath(llvm::StringRef dir);
/// DIR/FILE of an entry.
std::string tensorPath(llvm::StringRef dir, const Entry &entry);

/// Errors name the file and the entry ("DIR/params.json: params[3] needs
/// name, kind, source and file").
llvm::Expected<Manifest> readManifest(llvm::StringRef dir);
/// Writes DIR/params.json atomically (the .npy files are the caller's).
llvm::Error writeManifest(llvm::StringRef dir, const Manifest &manifest);

} // namespace qslaw::params

#endif // QSLAW_SUPPORT_PARAMSMANIFEST_H
