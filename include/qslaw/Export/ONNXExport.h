//===- ONNXExport.h - the learned model back to ONNX ------------*- C++ -*-===//
//
// Rewrites the source ONNX model with what training learned: each quantized
// MatMul becomes com.microsoft MatMulNBits (the default) or a block-wise
// DequantizeLinear -> MatMul pair (QDQ, opset 21), with codes recomputed by
// the compiler's own quantisation math (gamma mode: from the learned gamma)
// and the learned scales; learned full-precision tensors (the projector)
// replace their initializers. No MLIR: the trainer links it.
//
//===----------------------------------------------------------------------===//
#ifndef QSLAW_EXPORT_ONNXEXPORT_H
#define QSLAW_EXPORT_ONNXEXPORT_H

#include "qslaw/Support/Signature.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/JSON.h"

#include <cstdint>
#include <string>
#include <vector>

namespace qslaw::onnx_export {

/// One quantized linear layer to rewrite (from the signature's
/// qslaw::QuantizedLayer records): the ONNX MatMul node and its weight
/// initializer.
struct LayerRewrite {
  std::string layer, node, weight, mode; // mode: "scale" or "gamma"
  unsigned bits = 4;
  int64_t group = 0; // effective group size along K (K for per-channel)
  bool symmetric = false;
  int64_t n = 0, k = 0;
};

/// A trained tensor: "<layer>.scales" (kind scale, [N, J]), "<layer>.gamma"
/// (kind gamma, [N, J]), a full-precision initializer (kind float; source
/// is the initializer's name, shape as stored in ONNX), or a LoRA adapter
/// (kind lora_A [r, K] / lora_B [N, r]; source is the adapted MatMul node).
struct LearnedTensor {
  std::string name, kind, source;
  std::vector<int64_t> shape;
  llvm::ArrayRef<float> values;
};

enum class Format { MatMulNBits, QDQ };

struct ExportOptions {
  Format format = Format::MatMulNBits;
  int clipSteps = 0; // the clipping search the compiler ran
  double loraScale = 1.0; // alpha / r of the adapters, if any
};

/// The rewrites of the signature's quantised layers; names the entry and
/// field that is missing or out of range.
llvm::Expected<std::vector<LayerRewrite>>
layerRewrites(llvm::ArrayRef<qslaw::QuantizedLayer> layers);

/// Reads `sourceModel`, applies the learned tensors and writes `outPath`
/// (LoRA adapters as a low-rank branch beside their layer: Y = base(X) +
/// (X A^T) (scale B^T), two MatMuls and an Add onnxruntime runs)
/// atomically (a temporary file renamed over it). Errors name the node,
/// initializer or tensor that does not fit.
llvm::Error exportLearnedModel(llvm::StringRef sourceModel,
                               llvm::ArrayRef<LayerRewrite> layers,
                               llvm::ArrayRef<LearnedTensor> learned,
                               const ExportOptions &options,
                               llvm::StringRef outPath);

} // namespace qslaw::onnx_export

#endif // QSLAW_EXPORT_ONNXEXPORT_H
