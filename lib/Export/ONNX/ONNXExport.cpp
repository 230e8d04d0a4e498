//===- ONNXExport.cpp - the learned model back to ONNX --------------------===//
//
// Codes are recomputed here from the source model's float weight with the
// same QuantMath the compiler used (min-max init, optional clipping search),
// so scale mode reproduces the stored codes exactly and gamma mode freezes
// clamp(round(W / (s * gamma)) + z) as QSLAW.md prescribes. Formats:
//   MatMulNBits (com.microsoft): B [N, blocks, blob] uint8, codes packed low
//     bits first; scales [N * blocks] f32; zero points packed like B (absent
//     when symmetric: the op's default 2^(bits-1) is ours). Needs bits 4 or
//     8 and a power-of-two block of at least 16; other layers fall back to
//     QDQ, which is said in the returned report.
//   QDQ: DequantizeLinear (opset 21, axis 0, block_size G) over [K, N]
//     uint4/uint8 codes with [ceil(K/G), N] scales and zero points, feeding
//     the original MatMul.
//
//===----------------------------------------------------------------------===//
#include "qslaw/Export/ONNXExport.h"
#include "qslaw/Quant/QuantMath.h"
#include "qslaw/Import/ONNX/ModelLoader.h"
#include "qslaw/Support/AtomicFile.h"

#include "llvm/ADT/APFloat.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <cstring>
#include <map>

using llvm::Error;
using llvm::Expected;
using llvm::StringRef;
using llvm::Twine;
namespace quant = mlir::qslaw::quant;

namespace qslaw::onnx_export {

static Error err(const Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), msg);
}

Expected<std::vector<LayerRewrite>>
layerRewrites(llvm::ArrayRef<qslaw::QuantizedLayer> layers) {
  std::vector<LayerRewrite> out;
  for (auto [i, q] : llvm::enumerate(layers)) {
    LayerRewrite l{q.layer, q.node, q.weight, q.mode, unsigned(q.bits),
                   q.group, q.symmetric, 0, 0};
    for (auto [key, value] : {std::pair{"layer", &q.layer},
                              std::pair{"node", &q.node},
                              std::pair{"weight", &q.weight}})
      if (value->empty())
        return err("quantization entry " + Twine(i) + " (" + q.op +
                   "): no '" + key +
                   "' (recompile the model with this qslaw-compile)");
    if (q.shape.size() != 2)
      return err("quantization entry " + Twine(i) + " (" + l.layer +
                 "): shape must be [N, K]");
    l.n = q.shape[0];
    l.k = q.shape[1];
    if (q.bits < 2 || q.bits > 8 || l.group <= 0 || l.n <= 0 || l.k <= 0)
      return err("quantization entry " + Twine(i) + " (" + l.layer +
                 "): bits must be 2..8 and group, N, K positive");
    out.push_back(std::move(l));
  }
  return out;
}

namespace {
using onnx::TensorProto;

/// Packs codes (one per byte, < 2^bits) `perByte` to a byte, low bits first.
std::string packCodes(const std::vector<uint8_t> &codes, unsigned bits) {
  unsigned perByte = bits == 8 ? 1 : bits == 4 ? 2 : 4;
  std::string out((codes.size() + perByte - 1) / perByte, '\0');
  for (size_t i = 0; i < codes.size(); ++i)
    out[i / perByte] |= char(codes[i] << (bits * (i % perByte)));
  return out;
}

void setFloatData(TensorProto &t, llvm::ArrayRef<float> v) {
  t.clear_float_data();
  t.clear_double_data();
  t.clear_int32_data();
  t.clear_external_data();
  t.clear_data_location();
  t.set_raw_data(std::string(reinterpret_cast<const char *>(v.data()),
                             v.size() * sizeof(float)));
}

TensorProto makeTensor(const std::string &name, int32_t type,
                       std::vector<int64_t> dims, std::string raw) {
  TensorProto t;
  t.set_name(name);
  t.set_data_type(type);
  for (int64_t d : dims)
    t.add_dims(d);
  t.set_raw_data(std::move(raw));
  return t;
}

std::string floatBytes(const std::vector<float> &v) {
  return std::string(reinterpret_cast<const char *>(v.data()), v.size() * 4);
}

bool matMulNBitsFits(const LayerRewrite &l) {
  bool pow2 = (l.group & (l.group - 1)) == 0;
  return (l.bits == 4 || l.bits == 8) && pow2 && l.group >= 16;
}

struct Exporter {
  onnx::ModelProto &model;
  /// The initializers of the rewritten layers (dropped when nothing else
  /// reads them, with the Casts that widened them).
  llvm::StringSet<> replacedWeights;
  std::string modelDir;
  llvm::StringMap<int> initIndex;
  llvm::StringSet<> names; // every value and initializer name in the graph
  bool usedContrib = false, usedQDQ = false;

  Exporter(onnx::ModelProto &m, std::string dir) : model(m), modelDir(dir) {
    onnx::GraphProto &g = *model.mutable_graph();
    for (int i = 0; i < g.initializer_size(); ++i) {
      initIndex[g.initializer(i).name()] = i;
      names.insert(g.initializer(i).name());
    }
    for (const onnx::NodeProto &n : g.node())
      for (const std::string &o : n.output())
        names.insert(o);
    for (const onnx::ValueInfoProto &v : g.input())
      names.insert(v.name());
  }

  std::string fresh(const std::string &base) {
    std::string name = base;
    for (int i = 1; names.contains(name); ++i)
      name = base + "_" + std::to_string(i);
    names.insert(name);
    return name;
  }

  onnx::NodeProto *findNode(StringRef name) {
    for (onnx::NodeProto &n : *model.mutable_graph()->mutable_node())
      if (n.name() == name)
        return &n;
    return nullptr;
  }

  /// The initializer a node input reads, through Identity aliases and the
  /// exact widening Cast(to=FLOAT) of an f16/bf16 initializer (a
  /// half-precision checkpoint computing in f32); the names of the nodes and
  /// values passed on the way go to `path`.
  std::string resolveInitializer(std::string value,
                                 std::vector<std::string> *path = nullptr) {
    for (int depth = 0; depth < 8 && !initIndex.count(value); ++depth) {
      const onnx::NodeProto *via = nullptr;
      for (const onnx::NodeProto &n : model.graph().node())
        if (n.output_size() == 1 && n.output(0) == value &&
            n.input_size() == 1 &&
            (n.op_type() == "Identity" || isWideningCast(n))) {
          via = &n;
          break;
        }
      if (!via)
        break;
      if (path)
        path->insert(path->end(), {value, via->name()});
      value = via->input(0);
    }
    return value;
  }

  /// Cast(to=FLOAT) of an FLOAT16 or BFLOAT16 initializer.
  bool isWideningCast(const onnx::NodeProto &n) const {
    if (n.op_type() != "Cast" || n.input_size() != 1)
      return false;
    auto it = initIndex.find(n.input(0));
    if (it == initIndex.end())
      return false;
    int32_t from = model.graph().initializer(it->second).data_type();
    if (from != TensorProto::FLOAT16 && from != TensorProto::BFLOAT16)
      return false;
    for (const onnx::AttributeProto &a : n.attribute())
      if (a.name() == "to")
        return a.i() == TensorProto::FLOAT;
    return false;
  }

  /// An initializer's values as f32: FLOAT as stored, FLOAT16 and BFLOAT16
  /// widened (exactly, as the compiler read them).
  Expected<std::vector<float>> readFloat(const std::string &name) {
    auto it = initIndex.find(name);
    if (it == initIndex.end())
      return err("initializer '" + name + "' not found");
    auto data = onnx_import::readTensor(model.graph().initializer(it->second),
                                        modelDir);
    if (!data)
      return data.takeError();
    std::vector<float> v(data->numElements());
    const auto *half = reinterpret_cast<const uint16_t *>(data->bytes.data());
    switch (data->dataType) {
    case TensorProto::FLOAT:
      std::memcpy(v.data(), data->bytes.data(), v.size() * 4);
      return v;
    case TensorProto::BFLOAT16:
      for (size_t i = 0; i < v.size(); ++i) {
        uint32_t bits = uint32_t(half[i]) << 16;
        std::memcpy(&v[i], &bits, 4);
      }
      return v;
    case TensorProto::FLOAT16:
      for (size_t i = 0; i < v.size(); ++i)
        v[i] = llvm::APFloat(llvm::APFloat::IEEEhalf(),
                             llvm::APInt(16, half[i]))
                   .convertToFloat();
      return v;
    default:
      return err("initializer '" + name + "' is " +
                 onnx_import::dataTypeName(data->dataType) +
                 ", expected FLOAT, FLOAT16 or BFLOAT16");
    }
  }

  Error exportLayer(const LayerRewrite &l, const LearnedTensor *scales,
                    const LearnedTensor *gamma, const ExportOptions &opts) {
    onnx::NodeProto *node = findNode(l.node);
    std::string what = "layer '" + l.layer + "'";
    if (!node)
      return err(what + ": node '" + l.node + "' is not in the source model");
    if (node->op_type() != "MatMul" || node->input_size() != 2)
      return err(what + ": node '" + l.node + "' is " + node->op_type() +
                 "; export rewrites quantized MatMul nodes only");
    // The compiler names the weight after the initializer, or after the
    // widening Cast it folded.
    std::vector<std::string> path;
    std::string init = resolveInitializer(node->input(1), &path);
    if (init != l.weight && !llvm::is_contained(path, l.weight))
      return err(what + ": node '" + l.node + "' reads '" + init +
                 "', the compiler quantized '" + l.weight + "'");
    replacedWeights.insert(init);
    auto w = readFloat(init);
    if (!w)
      return w.takeError();
    const TensorProto &src = model.graph().initializer(initIndex[init]);
    if (src.dims_size() != 2 || src.dims(0) != l.k || src.dims(1) != l.n)
      return err(what + ": initializer '" + init + "' is not [K=" + Twine(l.k) +
                 ", N=" + Twine(l.n) + "]");
    int64_t n = l.n, k = l.k, g = l.group, j = (k + g - 1) / g;
    std::vector<float> nk(n * k);
    for (int64_t r = 0; r < k; ++r)
      for (int64_t c = 0; c < n; ++c)
        nk[c * k + r] = (*w)[r * n + c];
    quant::QuantizedMatrix qm = quant::quantizeMatrix(
        nk.data(), n, k, g >= k ? 0 : g, l.bits, l.symmetric, opts.clipSteps);
    int64_t qmax = (int64_t(1) << l.bits) - 1;
    auto checkShape = [&](const LearnedTensor *t) -> Error {
      if (t && (t->values.size() != size_t(n * j)))
        return err(what + ": learned '" + t->name + "' has " +
                   Twine(t->values.size()) + " values, expected [" + Twine(n) +
                   ", " + Twine(j) + "]");
      return Error::success();
    };
    if (Error e = checkShape(scales))
      return e;
    if (Error e = checkShape(gamma))
      return e;
    if (gamma) {
      // The compiled graph multiplies s * gamma in f32, then quantizes.
      for (int64_t r = 0; r < n; ++r)
        for (int64_t c = 0; c < k; ++c) {
          int64_t gi = r * j + c / g;
          float sg = qm.scales[gi] * gamma->values[gi];
          qm.codes[r * k + c] =
              uint8_t(quant::quantizeValue(nk[r * k + c], sg, qm.zeros[gi], qmax));
        }
    }
    std::vector<float> s = scales ? std::vector<float>(scales->values.begin(),
                                                       scales->values.end())
                                  : qm.scales;
    onnx::GraphProto &graph = *model.mutable_graph();
    if (opts.format == Format::MatMulNBits && matMulNBitsFits(l)) {
      // Blocks padded to whole blob bytes with the zero point's code (the
      // padded K never meets an activation).
      int64_t blob = g * l.bits / 8;
      std::vector<uint8_t> padded(n * j * g);
      for (int64_t r = 0; r < n; ++r)
        for (int64_t c = 0; c < j * g; ++c)
          padded[r * j * g + c] =
              c < k ? qm.codes[r * k + c] : uint8_t(qm.zeros[r * j + c / g]);
      std::string bName = fresh(l.weight + "_Q" + std::to_string(l.bits));
      std::string sName = fresh(l.weight + "_scales");
      *graph.add_initializer() = makeTensor(bName, TensorProto::UINT8,
                                            {n, j, blob}, packCodes(padded, l.bits));
      *graph.add_initializer() = makeTensor(sName, TensorProto::FLOAT, {n * j},
                                            floatBytes(s));
      std::string zName;
      if (!l.symmetric) {
        // Zero points: per row, ceil(J * bits / 8) bytes.
        int64_t perRow = (j * l.bits + 7) / 8;
        std::string z;
        for (int64_t r = 0; r < n; ++r)
          z += packCodes(std::vector<uint8_t>(qm.zeros.begin() + r * j,
                                              qm.zeros.begin() + (r + 1) * j),
                         l.bits)
                   .substr(0, perRow);
        zName = fresh(l.weight + "_zero_points");
        *graph.add_initializer() =
            makeTensor(zName, TensorProto::UINT8, {n * perRow}, std::move(z));
      }
      std::string a = node->input(0);
      node->clear_input();
      node->add_input(a);
      node->add_input(bName);
      node->add_input(sName);
      if (!zName.empty())
        node->add_input(zName);
      node->set_op_type("MatMulNBits");
      node->set_domain("com.microsoft");
      node->clear_attribute();
      auto attr = [&](const char *name, int64_t v) {
        onnx::AttributeProto *at = node->add_attribute();
        at->set_name(name);
        at->set_type(onnx::AttributeProto::INT);
        at->set_i(v);
      };
      attr("K", k);
      attr("N", n);
      attr("bits", l.bits);
      attr("block_size", g);
      attr("accuracy_level", 0);
      usedContrib = true;
      return Error::success();
    }
    // QDQ: codes [K, N] (the MatMul's layout), scales/zeros [J, N].
    int32_t codeType = l.bits <= 4 ? 21 /*UINT4*/ : int32_t(TensorProto::UINT8);
    std::vector<uint8_t> kn(k * n), zjn(j * n);
    std::vector<float> sjn(j * n);
    for (int64_t r = 0; r < n; ++r) {
      for (int64_t c = 0; c < k; ++c)
        kn[c * n + r] = qm.codes[r * k + c];
      for (int64_t c = 0; c < j; ++c) {
        zjn[c * n + r] = uint8_t(qm.zeros[r * j + c]);
        sjn[c * n + r] = s[r * j + c];
      }
    }
    unsigned storeBits = l.bits <= 4 ? 4 : 8;
    std::string qName = fresh(l.weight + "_quantized");
    std::string sName = fresh(l.weight + "_scale");
    std::string zName = fresh(l.weight + "_zero_point");
    std::string dqOut = fresh(l.weight + "_DequantizeLinear_Output");
    *graph.add_initializer() =
        makeTensor(qName, codeType, {k, n}, packCodes(kn, storeBits));
    *graph.add_initializer() = makeTensor(sName, TensorProto::FLOAT, {j, n},
                                          floatBytes(sjn));
    *graph.add_initializer() =
        makeTensor(zName, codeType, {j, n}, packCodes(zjn, storeBits));
    onnx::NodeProto dq;
    dq.set_name(fresh(l.node + "/DequantizeLinear"));
    dq.set_op_type("DequantizeLinear");
    dq.add_input(qName);
    dq.add_input(sName);
    dq.add_input(zName);
    dq.add_output(dqOut);
    for (auto [name, v] : {std::pair<const char *, int64_t>{"axis", 0},
                           {"block_size", g}}) {
      onnx::AttributeProto *at = dq.add_attribute();
      at->set_name(name);
      at->set_type(onnx::AttributeProto::INT);
      at->set_i(v);
    }
    node->set_input(1, dqOut);
    // Nodes must stay topologically sorted: the DequantizeLinear goes first.
    graph.add_node()->Swap(&dq);
    for (int i = graph.node_size() - 1; i > 0; --i)
      graph.mutable_node()->SwapElements(i, i - 1);
    usedQDQ = true;
    return Error::success();
  }

  /// Y = base(X) + (X A^T) (scale B^T) beside the node `nodeName` (after
  /// its quantisation): two MatMuls and an Add, placed right after it so
  /// the graph stays topologically sorted.
  Error addLoraBranch(StringRef nodeName, const LearnedTensor &a,
                      const LearnedTensor &b, double scale) {
    std::string what = "LoRA adapter of node '" + nodeName.str() + "'";
    onnx::GraphProto &g = *model.mutable_graph();
    int at = -1;
    for (int i = 0; i < g.node_size(); ++i)
      if (g.node(i).name() == nodeName)
        at = i;
    if (at < 0)
      return err(what + ": the node is not in the source model");
    if (a.shape.size() != 2 || b.shape.size() != 2 || a.shape[0] != b.shape[1])
      return err(what + ": A must be [r, K] and B [N, r]");
    int64_t r = a.shape[0], k = a.shape[1], n = b.shape[0];
    onnx::NodeProto &node = *g.mutable_node(at);
    if (node.input_size() < 1 || node.output_size() != 1)
      return err(what + ": expected one input and one output");
    std::string x = node.input(0), y = node.output(0);
    std::string base = fresh(y + "_base");
    node.set_output(0, base);
    std::vector<float> at_(k * r), bt(r * n);
    for (int64_t i = 0; i < r; ++i)
      for (int64_t j = 0; j < k; ++j)
        at_[j * r + i] = a.values[i * k + j];
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < r; ++j)
        bt[j * n + i] = float(scale * b.values[i * r + j]);
    std::string aName = fresh(nodeName.str() + "/lora_A_T");
    std::string bName = fresh(nodeName.str() + "/lora_B_T_scaled");
    *g.add_initializer() =
        makeTensor(aName, TensorProto::FLOAT, {k, r}, floatBytes(at_));
    *g.add_initializer() =
        makeTensor(bName, TensorProto::FLOAT, {r, n}, floatBytes(bt));
    std::string down = fresh(nodeName.str() + "/lora_down");
    std::string up = fresh(nodeName.str() + "/lora_up");
    std::vector<onnx::NodeProto> added(3);
    auto make = [&](onnx::NodeProto &p, const char *op, std::string name,
                    std::vector<std::string> ins, std::string out) {
      p.set_op_type(op);
      p.set_name(fresh(name));
      for (std::string &i : ins)
        p.add_input(i);
      p.add_output(out);
    };
    make(added[0], "MatMul", nodeName.str() + "/lora_A", {x, aName}, down);
    make(added[1], "MatMul", nodeName.str() + "/lora_B", {down, bName}, up);
    make(added[2], "Add", nodeName.str() + "/lora_add", {base, up}, y);
    for (onnx::NodeProto &p : added) {
      g.add_node()->Swap(&p);
      for (int i = g.node_size() - 1; i > at + 1; --i)
        g.mutable_node()->SwapElements(i, i - 1);
      ++at;
    }
    return Error::success();
  }

  /// Drops the replaced weights no node or graph output reads any more,
  /// and the widening Casts of them whose results nothing reads.
  void dropUnused() {
    const llvm::StringSet<> &candidates = replacedWeights;
    onnx::GraphProto &g = *model.mutable_graph();
    llvm::StringSet<> used;
    auto collectUsed = [&] {
      used.clear();
      for (const onnx::NodeProto &n : g.node())
        for (const std::string &i : n.input())
          used.insert(i);
      for (const onnx::ValueInfoProto &o : g.output())
        used.insert(o.name());
    };
    // Subgraphs may read outer initializers: then keep everything.
    for (const onnx::NodeProto &n : g.node())
      for (const onnx::AttributeProto &a : n.attribute())
        if (a.has_g() || a.graphs_size())
          return;
    collectUsed();
    for (int i = g.node_size() - 1; i >= 0; --i) {
      const onnx::NodeProto &n = g.node(i);
      if (isWideningCast(n) && candidates.contains(n.input(0)) &&
          !used.contains(n.output(0)))
        g.mutable_node()->DeleteSubrange(i, 1);
    }
    collectUsed();
    for (int i = g.initializer_size() - 1; i >= 0; --i)
      if (candidates.contains(g.initializer(i).name()) &&
          !used.contains(g.initializer(i).name()))
        g.mutable_initializer()->DeleteSubrange(i, 1);
    for (int i = g.input_size() - 1; i >= 0; --i)
      if (candidates.contains(g.input(i).name()) &&
          !used.contains(g.input(i).name()))
        g.mutable_input()->DeleteSubrange(i, 1);
  }

  void setOpsets() {
    bool haveContrib = false;
    for (onnx::OperatorSetIdProto &o : *model.mutable_opset_import()) {
      if ((o.domain().empty() || o.domain() == "ai.onnx") && usedQDQ &&
          o.version() < 21)
        o.set_version(21); // block-wise DequantizeLinear
      haveContrib |= o.domain() == "com.microsoft";
    }
    if (usedContrib && !haveContrib) {
      onnx::OperatorSetIdProto *o = model.add_opset_import();
      o->set_domain("com.microsoft");
      o->set_version(1);
    }
    if (usedQDQ && model.ir_version() < 10)
      model.set_ir_version(10); // UINT4 tensors
  }
};

} // namespace

Error exportLearnedModel(StringRef sourceModel,
                         llvm::ArrayRef<LayerRewrite> layers,
                         llvm::ArrayRef<LearnedTensor> learned,
                         const ExportOptions &options, StringRef outPath) {
  auto model = onnx_import::loadModel(sourceModel);
  if (!model)
    return model.takeError();
  Exporter ex(**model, llvm::sys::path::parent_path(sourceModel).str());
  llvm::StringMap<const LearnedTensor *> byName;
  for (const LearnedTensor &t : learned)
    byName[t.name] = &t;
  llvm::StringSet<> consumed;
  for (const LayerRewrite &l : layers) {
    auto find = [&](StringRef suffix) -> const LearnedTensor * {
      auto it = byName.find((l.layer + suffix).str());
      if (it == byName.end())
        return nullptr;
      consumed.insert(it->first());
      return it->second;
    };
    const LearnedTensor *scales = find(".scales"), *gamma = find(".gamma");
    if (gamma && l.mode != "gamma")
      return err("layer '" + l.layer + "': learned gamma for a " + l.mode +
                 "-mode layer");
    if (Error e = ex.exportLayer(l, scales, gamma, options))
      return Error(std::move(e));
  }
  // Adapters, paired by the node they adapt.
  std::map<std::string, std::pair<const LearnedTensor *, const LearnedTensor *>>
      adapters;
  for (const LearnedTensor &t : learned)
    if (t.kind == "lora_A" || t.kind == "lora_B") {
      auto &pair = adapters[t.source];
      (t.kind == "lora_A" ? pair.first : pair.second) = &t;
      consumed.insert(t.name);
    }
  for (auto &[node, pair] : adapters) {
    if (!pair.first || !pair.second)
      return err("LoRA adapter of node '" + node + "': only " +
                 (pair.first ? "A" : "B") + " was learned");
    if (Error e = ex.addLoraBranch(node, *pair.first, *pair.second,
                                   options.loraScale))
      return e;
  }
  for (const LearnedTensor &t : learned) {
    if (consumed.contains(t.name))
      continue;
    if (t.kind != "float")
      return err("learned tensor '" + t.name + "' (" + t.kind +
                 ") belongs to no quantized layer of the model");
    auto it = ex.initIndex.find(t.source);
    if (it == ex.initIndex.end())
      return err("learned tensor '" + t.name + "': initializer '" + t.source +
                 "' is not in the source model");
    onnx::TensorProto &init =
        *(*model)->mutable_graph()->mutable_initializer(it->second);
    int64_t count = 1;
    for (int64_t d : init.dims())
      count *= d;
    bool half = init.data_type() == onnx::TensorProto::FLOAT16 ||
                init.data_type() == onnx::TensorProto::BFLOAT16;
    if ((init.data_type() != onnx::TensorProto::FLOAT && !half) ||
        count != int64_t(t.values.size()))
      return err("learned tensor '" + t.name + "' (" + Twine(t.values.size()) +
                 " floats) does not fit initializer '" + t.source + "'");
    // A half-precision weight learned in f32 is exported in f32 (its Cast
    // to FLOAT becomes a no-op): rounding it back would lose what was
    // learned below the half type's precision.
    init.set_data_type(onnx::TensorProto::FLOAT);
    setFloatData(init, t.values);
  }
  ex.dropUnused();
  ex.setOpsets();
  onnx::StringStringEntryProto *meta = (*model)->add_metadata_props();
  meta->set_key("qslaw.export");
  meta->set_value(std::string("learned scales exported as ") +
                  (options.format == Format::MatMulNBits ? "MatMulNBits"
                                                         : "QDQ") +
                  (adapters.empty() ? "" : ", LoRA adapters as MatMul branches"));
  std::string bytes;
  if (!(*model)->SerializeToString(&bytes))
    return err(outPath + ": cannot serialise the model (over 2 GB?)");
  return qslaw::writeFileAtomically(outPath, bytes);
}

} // namespace qslaw::onnx_export
