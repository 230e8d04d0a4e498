//===- PeftExport.h - LoRA adapters in PEFT's format ------------*- C++ -*-===//
//
// `--export-peft=DIR` writes what Hugging Face PEFT loads onto the float
// model (PeftModel.from_pretrained(model, DIR)): adapter_config.json (LORA,
// r, lora_alpha, target_modules, dropout 0) and adapter_model.safetensors
// with base_model.model.<module>.lora_A.weight [r, K] / lora_B.weight [N, r]
// in f32. <module> is the adapted MatMul node's path, "/a/b.0/c/MatMul" ->
// "a.b.0.c" (torch.onnx names nodes by module path), less `stripPrefix`
// (a wrapper module the model was exported through).
//
//===----------------------------------------------------------------------===//
#ifndef QSLAW_TRAIN_PEFTEXPORT_H
#define QSLAW_TRAIN_PEFTEXPORT_H

#include "qslaw/Export/ONNXExport.h"

namespace qslaw::train {

struct PeftOptions {
  int64_t rank = 0;
  double alpha = 0;
  std::string stripPrefix; // e.g. "m." for a wrapper module
};

/// The module path torch.onnx's node name encodes; empty if it has none.
std::string modulePathOfNode(llvm::StringRef node, llvm::StringRef stripPrefix);

/// Writes DIR/adapter_config.json and DIR/adapter_model.safetensors (each
/// atomically) from the lora_A/lora_B tensors of `learned`.
llvm::Error writePeftAdapter(llvm::StringRef dir,
                             llvm::ArrayRef<onnx_export::LearnedTensor> learned,
                             const PeftOptions &options);

} // namespace qslaw::train

#endif
