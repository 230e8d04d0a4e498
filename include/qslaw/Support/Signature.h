//===- Signature.h - the model signature's tensor specs ---------*- C++ -*-===//
//
// One owner of a compiled model's signature, the JSON a library carries as
// `qslaw_signature_json`: the compiler writes it (lib/Target/CPULibrary.cpp,
// lib/Driver/Driver.cpp), the runtime, the trainer and the ONNX exporter read
// it, all through these types. MLIR-free so that the runtime library can use
// it. python/qslaw_tools/signature.py mirrors it for Python, and
// test_signature_schema.py checks that the two agree on every key the
// compiler writes.
//
//===----------------------------------------------------------------------===//
#ifndef QSLAW_SUPPORT_SIGNATURE_H
#define QSLAW_SUPPORT_SIGNATURE_H

#include "llvm/Support/Error.h"
#include "llvm/Support/JSON.h"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace qslaw {

/// The valid values of an integer input that indexes something (a Gather's
/// data, the vocabulary of a loss): [begin, end), or `ignore` if set.
struct IndexRange {
  int64_t begin = 0, end = 0;
  std::optional<int64_t> ignore;
  std::string indexes; // what it indexes, for errors

  bool contains(int64_t v) const {
    return (v >= begin && v < end) || (ignore && v == *ignore);
  }
  /// "[0, 48) or -100 (the vocabulary of the logits (size 48))".
  std::string text() const;
};

/// A tensor of an entry point's signature. `dtype` is one of
/// f32 f16 bf16 f64 i64 i32 i16 i8 i4 i3 i2 i1.
struct TensorSpec {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  std::optional<IndexRange> range;

  int64_t numElements() const;
  /// Bits per element (0 for an unknown dtype).
  unsigned bits() const;
  /// Whether `v` is a valid value (always, without an index range).
  bool accepts(int64_t v) const { return !range || range->contains(v); }
};

/// The JSON object of one spec.
llvm::json::Object toJson(const TensorSpec &spec);

/// The specs of a signature's "inputs" or "outputs" array; `what` names it
/// in errors (e.g. "train_step inputs").
llvm::Expected<std::vector<TensorSpec>>
parseTensorSpecs(const llvm::json::Array *array, llvm::StringRef what);

/// One entry point of a library (`qslaw_entry_packed` for the main one,
/// `qslaw_entry_packed_<entry>` for the others).
struct FunctionSignature {
  std::string entry;
  std::vector<TensorSpec> inputs, outputs;
};

/// A quantised linear as compiled (one `qslaw.qmatmul`): its location, its
/// spec and the codes' shape [N, K]. `layer`, `node` and `weight` name the
/// ONNX MatMul and initializer it came from (what the ONNX exporter
/// rewrites); empty when unknown.
struct QuantizedLayer {
  std::string op;
  int64_t bits = 0, group = 0;
  bool symmetric = false;
  std::string mode; // "scale" or "gamma"
  std::vector<int64_t> shape;
  std::string layer, node, weight;
};

/// The kinds of trainable tensors: a quantised layer's scales or gamma, a
/// full-precision initializer, a LoRA adapter's two factors.
inline constexpr const char *kParamKinds[] = {"scale", "gamma", "float",
                                              "lora_A", "lora_B"};

/// A tensor the training step learns. `kind`: one of kParamKinds (checked
/// when read); `source`: the layer or initializer it belongs to.
struct TrainableParam {
  std::string name, kind, source;
  std::vector<int64_t> shape;
};

struct LoraRecord {
  std::string layers; // the regex of adapted linears
  int64_t rank = 0;
  double alpha = 0;
};

/// How a trainer's library was made, for the trainer's exports (also kept in
/// params.json): the parameters, the quantisation asked for and applied, the
/// source model, LoRA.
struct TrainingRecord {
  std::vector<TrainableParam> params;
  std::string quantize;       // the --quantize text ("" for none)
  std::string quantizeLayers; // its layer regex
  int64_t clipSteps = 0;
  std::string model;          // the source ONNX file, absolute
  std::optional<std::string> initParams;
  std::optional<LoraRecord> lora;
  std::vector<QuantizedLayer> layers;
};

/// The external weights file of a --weights=external library.
struct WeightsRecord {
  std::string file; // beside the library
  int64_t dataBytes = 0, tensors = 0;
  std::string xxh3;
};

/// The whole signature: the main entry's, the target, the quantised layers
/// it computes, and for a trainer its other functions, the training record
/// and the program hash checkpoints are bound to.
struct ModelSignature : FunctionSignature {
  std::string target = "cpu";
  std::vector<QuantizedLayer> quantization;
  std::map<std::string, FunctionSignature> functions;
  std::optional<TrainingRecord> training;
  std::optional<std::string> program;
  std::optional<WeightsRecord> weights;
};

llvm::json::Value toJSON(const TensorSpec &v);
llvm::json::Value toJSON(const FunctionSignature &v);
llvm::json::Value toJSON(const QuantizedLayer &v);
llvm::json::Value toJSON(const TrainableParam &v);
llvm::json::Value toJSON(const LoraRecord &v);
llvm::json::Value toJSON(const TrainingRecord &v);
llvm::json::Value toJSON(const WeightsRecord &v);
llvm::json::Value toJSON(const ModelSignature &v);
bool fromJSON(const llvm::json::Value &e, TensorSpec &out, llvm::json::Path p);
bool fromJSON(const llvm::json::Value &e, FunctionSignature &out,
              llvm::json::Path p);
bool fromJSON(const llvm::json::Value &e, QuantizedLayer &out,
              llvm::json::Path p);
bool fromJSON(const llvm::json::Value &e, TrainableParam &out,
              llvm::json::Path p);
bool fromJSON(const llvm::json::Value &e, LoraRecord &out, llvm::json::Path p);
bool fromJSON(const llvm::json::Value &e, TrainingRecord &out,
              llvm::json::Path p);
bool fromJSON(const llvm::json::Value &e, WeightsRecord &out,
              llvm::json::Path p);
bool fromJSON(const llvm::json::Value &e, ModelSignature &out,
              llvm::json::Path p);

/// Parses signature JSON text; errors say what is wrong and where
/// ("signature: expected integer at signature.training.params[2].shape[0]").
llvm::Expected<ModelSignature> parseSignature(llvm::StringRef text);
/// The training record kept in params.json (`what` names it in errors).
llvm::Expected<TrainingRecord> parseTrainingRecord(const llvm::json::Value &v,
                                                   llvm::StringRef what);
/// The JSON text (keys sorted, no spaces): what a library embeds.
std::string printSignature(const ModelSignature &signature);

} // namespace qslaw

#endif // QSLAW_SUPPORT_SIGNATURE_H
