//===- Signature.cpp - the model signature's tensor specs -----------------===//
#include "qslaw/Support/Signature.h"

#include <cstdlib>

using namespace qslaw;

std::string IndexRange::text() const {
  return "[" + std::to_string(begin) + ", " + std::to_string(end) + ")" +
         (ignore ? " or " + std::to_string(*ignore) : "") +
         (indexes.empty() ? "" : " (" + indexes + ")");
}

int64_t TensorSpec::numElements() const {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

unsigned TensorSpec::bits() const {
  if (dtype == "bf16")
    return 16;
  if (dtype.size() < 2 || (dtype[0] != 'f' && dtype[0] != 'i'))
    return 0;
  return unsigned(std::atoi(dtype.c_str() + 1));
}

llvm::json::Object qslaw::toJson(const TensorSpec &spec) {
  llvm::json::Array shape;
  for (int64_t d : spec.shape)
    shape.push_back(d);
  llvm::json::Object o{{"name", spec.name},
                       {"dtype", spec.dtype},
                       {"shape", std::move(shape)}};
  if (spec.range) {
    llvm::json::Object r{{"begin", spec.range->begin},
                         {"end", spec.range->end}};
    if (spec.range->ignore)
      r["ignore"] = *spec.range->ignore;
    if (!spec.range->indexes.empty())
      r["indexes"] = spec.range->indexes;
    o["index_range"] = std::move(r);
  }
  return o;
}

llvm::Expected<std::vector<TensorSpec>>
qslaw::parseTensorSpecs(const llvm::json::Array *array, llvm::StringRef what) {
  auto bad = [&](size_t i, const llvm::Twine &why) {
    return llvm::createStringError("signature: " + what + "[" +
                                   llvm::Twine(i) + "]: " + why);
  };
  if (!array)
    return llvm::createStringError("signature: no " + what + " array");
  std::vector<TensorSpec> out;
  for (size_t i = 0; i < array->size(); ++i) {
    const llvm::json::Object *o = (*array)[i].getAsObject();
    if (!o)
      return bad(i, "not an object");
    auto name = o->getString("name");
    auto dtype = o->getString("dtype");
    const llvm::json::Array *shape = o->getArray("shape");
    if (!name || !dtype || !shape)
      return bad(i, "needs a string name and dtype and a shape array");
    TensorSpec s;
    s.name = name->str();
    s.dtype = dtype->str();
    for (const llvm::json::Value &d : *shape) {
      auto n = d.getAsInteger();
      if (!n || *n < 0)
        return bad(i, "shape of '" + s.name + "' has a non-integer or "
                      "negative dim");
      s.shape.push_back(*n);
    }
    if (const llvm::json::Object *r = o->getObject("index_range")) {
      auto begin = r->getInteger("begin"), end = r->getInteger("end");
      if (!begin || !end)
        return bad(i, "index_range of '" + s.name + "' needs begin and end");
      s.range = IndexRange{*begin, *end, r->getInteger("ignore"),
                           r->getString("indexes").value_or("").str()};
    }
    out.push_back(std::move(s));
  }
  return out;
}

//===----------------------------------------------------------------------===//
// The whole signature
//===----------------------------------------------------------------------===//

namespace json = llvm::json;

namespace {
bool dimsFromJSON(const json::Value &e, std::vector<int64_t> &out,
                  json::Path p) {
  const json::Array *a = e.getAsArray();
  if (!a) {
    p.report("expected an array of dims");
    return false;
  }
  out.clear();
  for (size_t i = 0; i < a->size(); ++i) {
    std::optional<int64_t> d = (*a)[i].getAsInteger();
    if (!d || *d < 0) {
      p.index(i).report("expected a non-negative integer dim");
      return false;
    }
    out.push_back(*d);
  }
  return true;
}

/// The dims array under `key` of the object `e` (already checked to be one).
bool mapDims(const json::Value &e, llvm::StringLiteral key,
             std::vector<int64_t> &out, json::Path p) {
  const json::Value *dims = e.getAsObject()->get(key);
  if (!dims) {
    p.field(key).report("missing value");
    return false;
  }
  return dimsFromJSON(*dims, out, p.field(key));
}
} // namespace

json::Value qslaw::toJSON(const TensorSpec &v) { return toJson(v); }

bool qslaw::fromJSON(const json::Value &e, TensorSpec &out, json::Path p) {
  json::ObjectMapper o(e, p);
  if (!o || !o.map("name", out.name) || !o.map("dtype", out.dtype) ||
      !mapDims(e, "shape", out.shape, p))
    return false;
  out.range.reset();
  if (const json::Value *r = e.getAsObject()->get("index_range")) {
    json::Path rp = p.field("index_range");
    json::ObjectMapper ro(*r, rp);
    IndexRange range;
    if (!ro || !ro.map("begin", range.begin) || !ro.map("end", range.end) ||
        !ro.mapOptional("ignore", range.ignore) ||
        !ro.mapOptional("indexes", range.indexes))
      return false;
    out.range = std::move(range);
  }
  return true;
}

json::Value qslaw::toJSON(const FunctionSignature &v) {
  return json::Object{{"entry", v.entry},
                      {"inputs", json::Value(v.inputs)},
                      {"outputs", json::Value(v.outputs)}};
}

bool qslaw::fromJSON(const json::Value &e, FunctionSignature &out,
                     json::Path p) {
  json::ObjectMapper o(e, p);
  return o && o.map("entry", out.entry) && o.map("inputs", out.inputs) &&
         o.map("outputs", out.outputs);
}

json::Value qslaw::toJSON(const QuantizedLayer &v) {
  json::Object o{{"op", v.op},
                 {"bits", v.bits},
                 {"group", v.group},
                 {"symmetric", v.symmetric},
                 {"mode", v.mode},
                 {"shape", json::Value(v.shape)}};
  for (auto [key, value] : {std::pair{"layer", &v.layer},
                            std::pair{"node", &v.node},
                            std::pair{"weight", &v.weight}})
    if (!value->empty())
      o[key] = *value;
  return o;
}

bool qslaw::fromJSON(const json::Value &e, QuantizedLayer &out, json::Path p) {
  json::ObjectMapper o(e, p);
  return o && o.map("op", out.op) && o.map("bits", out.bits) &&
         o.map("group", out.group) && o.map("symmetric", out.symmetric) &&
         o.map("mode", out.mode) && mapDims(e, "shape", out.shape, p) &&
         o.mapOptional("layer", out.layer) && o.mapOptional("node", out.node) &&
         o.mapOptional("weight", out.weight);
}

json::Value qslaw::toJSON(const TrainableParam &v) {
  return json::Object{{"name", v.name},
                      {"kind", v.kind},
                      {"source", v.source},
                      {"shape", json::Value(v.shape)}};
}

bool qslaw::fromJSON(const json::Value &e, TrainableParam &out, json::Path p) {
  json::ObjectMapper o(e, p);
  if (!o || !o.map("kind", out.kind))
    return false;
  if (!llvm::is_contained(kParamKinds, llvm::StringRef(out.kind))) {
    p.field("kind").report(
        "expected scale, gamma, float, lora_A or lora_B");
    return false;
  }
  return o.map("name", out.name) &&
         o.map("source", out.source) && mapDims(e, "shape", out.shape, p);
}

json::Value qslaw::toJSON(const LoraRecord &v) {
  return json::Object{
      {"layers", v.layers}, {"rank", v.rank}, {"alpha", v.alpha}};
}

bool qslaw::fromJSON(const json::Value &e, LoraRecord &out, json::Path p) {
  json::ObjectMapper o(e, p);
  return o && o.map("layers", out.layers) && o.map("rank", out.rank) &&
         o.map("alpha", out.alpha);
}

json::Value qslaw::toJSON(const TrainingRecord &v) {
  json::Object o{{"params", json::Value(v.params)},
                 {"quantize", v.quantize},
                 {"quantize_layers", v.quantizeLayers},
                 {"clip_steps", v.clipSteps},
                 {"model", v.model},
                 {"layers", json::Value(v.layers)}};
  if (v.initParams)
    o["init_params"] = *v.initParams;
  if (v.lora)
    o["lora"] = toJSON(*v.lora);
  return o;
}

bool qslaw::fromJSON(const json::Value &e, TrainingRecord &out, json::Path p) {
  json::ObjectMapper o(e, p);
  return o && o.mapOptional("params", out.params) &&
         o.mapOptional("quantize", out.quantize) &&
         o.mapOptional("quantize_layers", out.quantizeLayers) &&
         o.mapOptional("clip_steps", out.clipSteps) &&
         o.mapOptional("model", out.model) &&
         o.mapOptional("init_params", out.initParams) &&
         o.mapOptional("lora", out.lora) && o.mapOptional("layers", out.layers);
}

json::Value qslaw::toJSON(const WeightsRecord &v) {
  return json::Object{{"file", v.file},
                      {"data_bytes", v.dataBytes},
                      {"tensors", v.tensors},
                      {"xxh3", v.xxh3}};
}

bool qslaw::fromJSON(const json::Value &e, WeightsRecord &out, json::Path p) {
  json::ObjectMapper o(e, p);
  return o && o.map("file", out.file) && o.map("data_bytes", out.dataBytes) &&
         o.mapOptional("tensors", out.tensors) && o.map("xxh3", out.xxh3);
}

json::Value qslaw::toJSON(const ModelSignature &v) {
  json::Value base = toJSON(static_cast<const FunctionSignature &>(v));
  json::Object &o = *base.getAsObject();
  o["target"] = v.target;
  o["quantization"] = json::Value(v.quantization);
  if (!v.functions.empty()) {
    json::Object fns;
    for (const auto &[name, f] : v.functions)
      fns[name] = toJSON(f);
    o["functions"] = std::move(fns);
  }
  if (v.training)
    o["training"] = toJSON(*v.training);
  if (v.program)
    o["program"] = *v.program;
  if (v.weights)
    o["weights"] = toJSON(*v.weights);
  return base;
}

bool qslaw::fromJSON(const json::Value &e, ModelSignature &out, json::Path p) {
  json::ObjectMapper o(e, p);
  return o && fromJSON(e, static_cast<FunctionSignature &>(out), p) &&
         o.mapOptional("target", out.target) &&
         o.mapOptional("quantization", out.quantization) &&
         o.mapOptional("functions", out.functions) &&
         o.mapOptional("training", out.training) &&
         o.mapOptional("program", out.program) &&
         o.mapOptional("weights", out.weights);
}

llvm::Expected<ModelSignature> qslaw::parseSignature(llvm::StringRef text) {
  llvm::Expected<json::Value> v = json::parse(text);
  if (!v)
    return llvm::createStringError("signature: bad JSON: " +
                                   llvm::toString(v.takeError()));
  ModelSignature out;
  json::Path::Root root("signature");
  if (!fromJSON(*v, out, root))
    return llvm::createStringError("signature: " +
                                   llvm::toString(root.getError()));
  return out;
}

llvm::Expected<TrainingRecord>
qslaw::parseTrainingRecord(const json::Value &v, llvm::StringRef what) {
  TrainingRecord out;
  json::Path::Root root(what);
  if (!fromJSON(v, out, root))
    return llvm::createStringError(llvm::toString(root.getError()));
  return out;
}

std::string qslaw::printSignature(const ModelSignature &signature) {
  std::string s;
  llvm::raw_string_ostream os(s);
  os << toJSON(signature);
  return s;
}
