//===- PeftExport.cpp - LoRA adapters in PEFT's format --------------------===//
#include "qslaw/Train/PeftExport.h"
#include "qslaw/Support/AtomicFile.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <map>

using llvm::Error;
using llvm::StringRef;

namespace qslaw::train {

static Error err(const llvm::Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), msg);
}

std::string modulePathOfNode(StringRef node, StringRef stripPrefix) {
  StringRef n = node.ltrim('/');
  size_t last = n.rfind('/');
  if (last == StringRef::npos)
    return "";
  std::string path = n.take_front(last).str();
  std::replace(path.begin(), path.end(), '/', '.');
  StringRef p(path);
  p.consume_front(stripPrefix);
  return p.str();
}

Error writePeftAdapter(StringRef dir,
                       llvm::ArrayRef<onnx_export::LearnedTensor> learned,
                       const PeftOptions &options) {
  // safetensors: u64 header size, the JSON header (padded with spaces to 8
  // bytes), then the tensors' little-endian bytes at data_offsets.
  std::map<std::string, const onnx_export::LearnedTensor *> tensors;
  llvm::json::Array targets;
  for (const onnx_export::LearnedTensor &t : learned) {
    if (t.kind != "lora_A" && t.kind != "lora_B")
      continue;
    std::string module = modulePathOfNode(t.source, options.stripPrefix);
    if (module.empty())
      return err("LoRA tensor '" + t.name + "': node '" + t.source +
                 "' names no module path (expected /a/b/.../Op)");
    if (t.kind == "lora_A")
      targets.push_back(module);
    tensors["base_model.model." + module + "." + t.kind + ".weight"] = &t;
  }
  if (tensors.empty())
    return err("--export-peft: the model has no LoRA adapters (compile it "
               "with --train-lora)");
  llvm::json::Object header{{"__metadata__", llvm::json::Object{{"format", "pt"}}}};
  uint64_t offset = 0;
  for (auto &[key, t] : tensors) {
    llvm::json::Array shape;
    for (int64_t d : t->shape)
      shape.push_back(d);
    uint64_t bytes = t->values.size() * sizeof(float);
    header[key] = llvm::json::Object{
        {"dtype", "F32"},
        {"shape", std::move(shape)},
        {"data_offsets", llvm::json::Array{int64_t(offset), int64_t(offset + bytes)}}};
    offset += bytes;
  }
  std::string json;
  llvm::raw_string_ostream(json) << llvm::json::Value(std::move(header));
  json.append((8 - json.size() % 8) % 8, ' ');
  std::string file(8, '\0');
  uint64_t n = json.size();
  for (int i = 0; i < 8; ++i)
    file[i] = char((n >> (8 * i)) & 0xff);
  file += json;
  for (auto &[key, t] : tensors)
    file.append(reinterpret_cast<const char *>(t->values.data()),
                t->values.size() * sizeof(float));

  llvm::json::Object config{{"peft_type", "LORA"},
                            {"task_type", nullptr},
                            {"base_model_name_or_path", nullptr},
                            {"r", options.rank},
                            {"lora_alpha", options.alpha},
                            {"lora_dropout", 0.0},
                            {"target_modules", std::move(targets)},
                            {"bias", "none"},
                            {"fan_in_fan_out", false},
                            {"inference_mode", true},
                            {"init_lora_weights", true},
                            {"modules_to_save", nullptr},
                            {"use_rslora", false},
                            {"use_dora", false}};
  std::string cfg;
  llvm::raw_string_ostream(cfg) << llvm::formatv(
      "{0:2}", llvm::json::Value(std::move(config)));
  if (std::error_code ec = llvm::sys::fs::create_directories(dir))
    return err(dir + ": " + ec.message());
  llvm::SmallString<256> st(dir), cf(dir);
  llvm::sys::path::append(st, "adapter_model.safetensors");
  llvm::sys::path::append(cf, "adapter_config.json");
  if (Error e = qslaw::writeFileAtomically(st, file))
    return e;
  return qslaw::writeFileAtomically(cf, cfg);
}

} // namespace qslaw::train
