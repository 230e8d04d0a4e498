//===- fuzz_onnx_import.cpp - ONNX protobuf loading and import to MLIR ----===//
//
// The model is written to a per-process file (the importer reads paths:
// external data lives beside the model), imported into one long-lived
// MLIRContext (diagnostics dropped), and removed.
//
//===----------------------------------------------------------------------===//
#include "FuzzSupport.h"
#include "qslaw/Import/ONNX/Importer.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"

#include <cstdio>
#include <string>
#include <unistd.h>

namespace {
mlir::MLIRContext &context() {
  static mlir::MLIRContext *ctx = [] {
    mlir::DialectRegistry registry;
    qslaw::onnx_import::registerImportDialects(registry);
    auto *c = new mlir::MLIRContext(registry);
    c->loadAllAvailableDialects();
    c->getDiagEngine().registerHandler([](mlir::Diagnostic &) {
      return mlir::success();
    });
    return c;
  }();
  return *ctx;
}
} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const std::string path =
      "/tmp/qslaw-fuzz-onnx-" + std::to_string(::getpid()) + ".onnx";
  FILE *f = std::fopen(path.c_str(), "wb");
  if (!f)
    return 0;
  std::fwrite(data, 1, size, f);
  std::fclose(f);
  qslaw::onnx_import::ImportOptions opts;
  // Dynamic dimensions of the usual input names, as the driver would bind.
  opts.shapeBindings["input_ids"] = {1, 8};
  auto module = qslaw::onnx_import::importModel(path, &context(), opts);
  // Nothing is left in /tmp (the importer has read or mapped what it needs).
  std::remove(path.c_str());
  // What import returns must be valid IR: a verifier failure is a bug.
  if (module && mlir::failed(mlir::verify(*module)))
    __builtin_trap();
  return 0;
}
