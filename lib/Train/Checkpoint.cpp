//===- Checkpoint.cpp - trainer state on disk ------------------------------===//
#include "Checkpoint.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/ADT/Twine.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"

#include <cstring>

using namespace llvm;

namespace qslaw::train {
namespace {
/// FNV-1a, to detect a damaged checkpoint.
uint64_t fnv(const std::string &bytes) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : bytes)
    h = (h ^ c) * 1099511628211ull;
  return h;
}

template <typename T> void put(std::string &s, T v) {
  s.append(reinterpret_cast<const char *>(&v), sizeof(T));
}

} // namespace

json::Object checkpointIdentity(const ModelSignature &signature,
                                const std::vector<Param> &params,
                                const json::Array &schedule) {
  // The layers' identifying fields (not their locations, which name files).
  json::Array layers, trainable;
  for (const QuantizedLayer &q : signature.quantization) {
    json::Object l{{"bits", q.bits},
                   {"group", q.group},
                   {"symmetric", q.symmetric},
                   {"mode", q.mode},
                   {"shape", json::Value(q.shape)}};
    if (!q.layer.empty())
      l["layer"] = q.layer;
    if (!q.weight.empty())
      l["weight"] = q.weight;
    layers.push_back(std::move(l));
  }
  for (const Param &p : params) {
    json::Array shape;
    for (int64_t d : p.shape)
      shape.push_back(d);
    trainable.push_back(json::Array{p.name, p.kind, std::move(shape)});
  }
  return json::Object{
      {"program", signature.program.value_or("")},
      {"layers", std::move(layers)},
      {"trainable", std::move(trainable)},
      {"schedule", json::Array(schedule)}};
}

namespace {
std::string text(const json::Value &v) {
  std::string s;
  raw_string_ostream(s) << v;
  return s;
}

std::string layerName(const json::Value &v, size_t i) {
  if (const json::Object *o = v.getAsObject())
    for (StringRef k : {"layer", "weight"})
      if (auto n = o->getString(k))
        return "'" + n->str() + "'";
  return "#" + std::to_string(i);
}
} // namespace

std::string identityMismatch(const json::Object &have,
                             const json::Object &want) {
  auto arr = [](const json::Object &o, StringRef k) {
    static const json::Array empty;
    const json::Array *a = o.getArray(k);
    return a ? a : &empty;
  };
  // Quantized layers first: the most specific difference to name.
  const json::Array &hl = *arr(have, "layers"), &wl = *arr(want, "layers");
  for (size_t i = 0; i < std::min(hl.size(), wl.size()); ++i) {
    const json::Object *h = hl[i].getAsObject(), *w = wl[i].getAsObject();
    if (!h || !w || *h == *w)
      continue;
    for (StringRef k : {"layer", "weight", "bits", "group", "symmetric", "mode",
                        "shape"}) {
      const json::Value *a = h->get(k), *b = w->get(k);
      if ((a == nullptr) != (b == nullptr) || (a && *a != *b))
        return "quantized layer " + layerName(wl[i], i) + ": " + k.str() +
               " is " + (a ? text(*a) : "absent") +
               " in the checkpoint, " + (b ? text(*b) : "absent") +
               " in this model";
    }
  }
  if (hl.size() != wl.size())
    return "the checkpoint's model has " + std::to_string(hl.size()) +
           " quantized layers, this model " + std::to_string(wl.size());
  const json::Array &ht = *arr(have, "trainable"), &wt = *arr(want, "trainable");
  for (size_t i = 0; i < std::max(ht.size(), wt.size()); ++i) {
    if (i < ht.size() && i < wt.size() && ht[i] == wt[i])
      continue;
    return "trainable tensor " + std::to_string(i) + " is " +
           (i < ht.size() ? text(ht[i]) : "absent") + " in the checkpoint, " +
           (i < wt.size() ? text(wt[i]) : "absent") + " in this model";
  }
  const json::Array &hs = *arr(have, "schedule"), &ws = *arr(want, "schedule");
  if (hs != ws)
    return "the warmup schedule differs: " + text(json::Array(hs)) +
           " in the checkpoint, " + text(json::Array(ws)) +
           " now (phases as [steps, p_start, p_end, cosine]; presets depend "
           "on --steps)";
  auto hp = have.getString("program"), wp = want.getString("program");
  if (hp != wp)
    return "it was written by another compiled program (program " +
           (hp ? hp->str() : std::string("?")) + ", this model's " +
           (wp ? wp->str() : std::string("?")) +
           "): the weights or the graph differ";
  return "";
}

std::string checkpointBytes(const json::Object &identity, int64_t step,
                            int64_t nonFiniteRun,
                            const std::vector<Param> &params) {
  std::string s = "QSLAWCK2";
  std::string id = text(json::Object(identity));
  put<uint32_t>(s, uint32_t(id.size()));
  s += id;
  put<int64_t>(s, step);
  put<int64_t>(s, nonFiniteRun);
  put<uint64_t>(s, params.size());
  for (const Param &p : params) {
    put<uint32_t>(s, uint32_t(p.name.size()));
    s += p.name;
    put<uint64_t>(s, p.value.size());
    for (const std::vector<float> *t : {&p.value, &p.m, &p.v})
      s.append(reinterpret_cast<const char *>(t->data()), t->size() * 4);
  }
  put<uint64_t>(s, fnv(s));
  return s;
}

Expected<CheckpointContents> parseCheckpoint(StringRef b,
                                             const std::string &path) {
  auto bad = [&](const Twine &why) {
    return createStringError(inconvertibleErrorCode(),
                             path + ": not a valid checkpoint (" + why + ")");
  };
  if (b.starts_with("QSLAWCK1"))
    return bad("format QSLAWCK1, written by an older qslaw, records no model "
               "identity; start the run again without --resume");
  if (b.size() < 20 || !b.starts_with("QSLAWCK2"))
    return bad("bad header");
  uint64_t sum;
  std::memcpy(&sum, b.data() + b.size() - 8, 8);
  if (fnv(b.drop_back(8).str()) != sum)
    return bad("checksum mismatch: the file is damaged or truncated");
  size_t off = 8, end = b.size() - 8;
  auto get = [&](void *dst, size_t n) {
    if (n > end - off)
      return false;
    std::memcpy(dst, b.data() + off, n);
    off += n;
    return true;
  };
  uint32_t idLen = 0;
  if (!get(&idLen, 4) || idLen > end - off)
    return bad("truncated");
  auto id = json::parse(b.substr(off, idLen));
  off += idLen;
  if (!id || !id->getAsObject()) {
    if (!id)
      consumeError(id.takeError());
    return bad("its model identity is not a JSON object");
  }
  CheckpointContents c;
  c.identity = std::move(*id->getAsObject());
  uint64_t n = 0;
  if (!get(&c.step, 8) || !get(&c.nonFiniteRun, 8) || !get(&n, 8))
    return bad("truncated");
  if (c.step < 0 || c.nonFiniteRun < 0)
    return bad("negative step count " + Twine(c.step) + " / " +
               Twine(c.nonFiniteRun));
  // Each tensor needs at least 12 bytes: a bound before reserving.
  if (n > (end - off) / 12)
    return bad("it claims " + Twine(n) + " tensors in " + Twine(end - off) +
               " bytes");
  for (uint64_t i = 0; i < n; ++i) {
    uint32_t len = 0;
    uint64_t count = 0;
    if (!get(&len, 4) || len > end - off)
      return bad("truncated");
    CheckpointContents::Tensor t;
    t.name = b.substr(off, len).str();
    off += len;
    if (!get(&count, 8) || count > (end - off) / 12)
      return bad("truncated (tensor '" + t.name + "')");
    t.count = count;
    for (StringRef *part : {&t.value, &t.m, &t.v}) {
      *part = b.substr(off, count * 4);
      off += count * 4;
    }
    c.tensors.push_back(std::move(t));
  }
  if (off != end)
    return bad(Twine(end - off) + " unexpected bytes after the last tensor");
  return c;
}

Error loadCheckpoint(const std::string &path, const json::Object &identity,
                     int64_t &step, int64_t &nonFiniteRun,
                     std::vector<Param> &params) {
  auto buf = MemoryBuffer::getFile(path);
  if (!buf)
    return createStringError(inconvertibleErrorCode(),
                             path + ": cannot read: " + buf.getError().message());
  auto c = parseCheckpoint((*buf)->getBuffer(), path);
  if (!c)
    return c.takeError();
  std::string why = identityMismatch(c->identity, identity);
  if (!why.empty())
    return createStringError(inconvertibleErrorCode(),
                             path + ": the checkpoint belongs to another "
                                    "model or run: " + why);
  if (c->tensors.size() != params.size())
    return createStringError(
        inconvertibleErrorCode(),
        path + ": not a valid checkpoint (it has " + Twine(c->tensors.size()) +
            " tensors, the model " + Twine(params.size()) + ")");
  for (auto [p, t] : llvm::zip(params, c->tensors))
    if (t.name != p.name || t.count != p.value.size())
      return createStringError(inconvertibleErrorCode(),
                               path + ": not a valid checkpoint (tensor '" +
                                   t.name + "' does not match the model's '" +
                                   p.name + "')");
  for (auto [p, t] : llvm::zip(params, c->tensors)) {
    std::memcpy(p.value.data(), t.value.data(), t.value.size());
    std::memcpy(p.m.data(), t.m.data(), t.m.size());
    std::memcpy(p.v.data(), t.v.data(), t.v.size());
  }
  step = c->step;
  nonFiniteRun = c->nonFiniteRun;
  return Error::success();
}

} // namespace qslaw::train
