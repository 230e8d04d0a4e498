//===- Exports.cpp - what a trainer writes after training ------------------===//
//
// --export-params (the tensors as .npy + params.json), --export-peft (the
// LoRA adapters in PEFT's format) and --export-onnx (the source model
// rewritten with what was learned, and with what an earlier stage learned:
// the tensors of the compile's --init-params).
//
//===----------------------------------------------------------------------===//
#include "Exports.h"
#include "qslaw/Export/ONNXExport.h"
#include "qslaw/Runtime/Npy.h"
#include "qslaw/Support/AtomicFile.h"
#include "qslaw/Support/ParamsManifest.h"
#include "qslaw/Train/PeftExport.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <cstring>

using namespace llvm;

namespace qslaw::train {

static int fail(const Twine &msg) {
  errs() << "qslaw-trainer: error: " << msg << "\n";
  return 1;
}

int exportLearned(const std::vector<Param> &params,
                  const TrainingRecord &training, const ExportRequest &r) {
  size_t P = params.size();
  if (!r.paramsDir.empty()) {
    if (std::error_code ec = sys::fs::create_directories(r.paramsDir))
      return fail(r.paramsDir + ": " + ec.message());
    qslaw::params::Manifest manifest;
    manifest.training = std::move(*toJSON(training).getAsObject());
    for (size_t i = 0; i < P; ++i) {
      std::string file = "param" + std::to_string(i) + ".npy";
      qslaw::NpyArray a{"f4", params[i].shape, {}};
      const auto *bytes = reinterpret_cast<const uint8_t *>(params[i].value.data());
      a.data.assign(bytes, bytes + params[i].value.size() * 4);
      if (Error e = qslaw::writeNpy(r.paramsDir + "/" + file, a))
        return fail(toString(std::move(e)));
      manifest.params.push_back(
          {params[i].name, params[i].kind, params[i].source, file});
    }
    if (Error e = qslaw::params::writeManifest(r.paramsDir, manifest))
      return fail(toString(std::move(e)));
  }
  const std::optional<LoraRecord> &lora = training.lora;
  if (!r.peftDir.empty()) {
    std::vector<qslaw::onnx_export::LearnedTensor> adapters;
    for (const Param &p : params)
      adapters.push_back({p.name, p.kind, p.source, p.shape, p.value});
    PeftOptions po;
    po.rank = lora ? lora->rank : 0;
    po.alpha = lora ? lora->alpha : 0;
    po.stripPrefix = r.peftStripPrefix;
    if (Error e = writePeftAdapter(r.peftDir, adapters, po))
      return fail("exporting " + r.peftDir + ": " + toString(std::move(e)));
    errs() << "qslaw-trainer: wrote the PEFT adapter to " << r.peftDir << "\n";
  }
  if (r.onnx.empty())
    return 0;
  // A model with float layers only (full-precision LoRA) records none.
  auto layers = qslaw::onnx_export::layerRewrites(training.layers);
  if (!layers)
    return fail(toString(layers.takeError()));
  std::vector<qslaw::onnx_export::LearnedTensor> learned;
  for (const Param &p : params)
    learned.push_back({p.name, p.kind, p.source, p.shape, p.value});
  // A later stage (qslaw-compile --init-params) exports what the earlier one
  // learned too: its tensors are constants of this program, not parameters.
  std::vector<std::vector<float>> carried;
  if (const std::optional<std::string> &dir = training.initParams) {
    auto manifest = qslaw::params::readManifest(*dir);
    if (!manifest)
      return fail("exporting " + r.onnx + ": the tensors this model was "
                  "compiled from cannot be read: " +
                  toString(manifest.takeError()));
    carried.reserve(manifest->params.size());
    for (const qslaw::params::Entry &e : manifest->params) {
      bool trained = llvm::any_of(params, [&](const Param &p) { return p.name == e.name; });
      if (trained)
        continue;
      auto a = qslaw::readNpy(qslaw::params::tensorPath(*dir, e));
      if (!a)
        return fail(toString(a.takeError()));
      if (a->dtype != "f4")
        return fail(qslaw::params::tensorPath(*dir, e) + ": learned tensor '" +
                    e.name + "' is " + a->dtype + ", not f4");
      carried.emplace_back(a->numElements());
      std::memcpy(carried.back().data(), a->data.data(), a->data.size());
      learned.push_back({e.name, e.kind, e.source, a->shape, carried.back()});
    }
  }
  qslaw::onnx_export::ExportOptions opts;
  if (lora && lora->rank > 0)
    opts.loraScale = lora->alpha / double(lora->rank);
  opts.format = r.format == "qdq" ? qslaw::onnx_export::Format::QDQ
                                      : qslaw::onnx_export::Format::MatMulNBits;
  opts.clipSteps = int(training.clipSteps);
  std::string source = r.sourceModel;
  if (source.empty())
    source = training.model;
  if (source.empty() || !sys::fs::exists(source))
    return fail("source model '" + source + "' not found; name it with "
                "--source-model");
  StringRef parent = sys::path::parent_path(r.onnx);
  if (!parent.empty())
    if (std::error_code ec = sys::fs::create_directories(parent))
      return fail("exporting " + r.onnx + ": cannot create " + parent +
                  ": " + ec.message());
  if (Error e = qslaw::onnx_export::exportLearnedModel(source, *layers, learned,
                                                       opts, r.onnx))
    return fail("exporting " + r.onnx + ": " + toString(std::move(e)));
  errs() << "qslaw-trainer: wrote " << r.onnx << "\n";
  return 0;
}
} // namespace qslaw::train
