//===- Schedule.cpp - multimodal warmup schedule ---------------------------===//
#include "qslaw/Train/Schedule.h"

#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/YAMLParser.h"

#include <cmath>

namespace qslaw::train {

namespace {
llvm::Error err(const llvm::Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), msg);
}

/// YAML (a superset of JSON) -> JSON value; scalars become numbers when they
/// parse as numbers.
std::optional<llvm::json::Value> yamlToJson(llvm::yaml::Node *n) {
  if (auto *m = llvm::dyn_cast_or_null<llvm::yaml::MappingNode>(n)) {
    llvm::json::Object o;
    for (auto &kv : *m) {
      auto *k = llvm::dyn_cast_or_null<llvm::yaml::ScalarNode>(kv.getKey());
      if (!k)
        return std::nullopt;
      llvm::SmallString<32> ks;
      auto v = yamlToJson(kv.getValue());
      if (!v)
        return std::nullopt;
      // An owned key: an escaped or quoted key's text lives in `ks`, and
      // json::ObjectKey only borrows a StringRef (found by fuzz_schedule:
      // a stack use after return).
      o[k->getValue(ks).str()] = std::move(*v);
    }
    return llvm::json::Value(std::move(o));
  }
  if (auto *s = llvm::dyn_cast_or_null<llvm::yaml::SequenceNode>(n)) {
    llvm::json::Array a;
    for (auto &e : *s) {
      auto v = yamlToJson(&e);
      if (!v)
        return std::nullopt;
      a.push_back(std::move(*v));
    }
    return llvm::json::Value(std::move(a));
  }
  if (auto *s = llvm::dyn_cast_or_null<llvm::yaml::ScalarNode>(n)) {
    llvm::SmallString<32> buf;
    llvm::StringRef t = s->getValue(buf);
    double d;
    if (!t.getAsDouble(d))
      return llvm::json::Value(d);
    return llvm::json::Value(t.str());
  }
  return std::nullopt;
}

llvm::Error checkKeys(const llvm::json::Object &o,
                      std::initializer_list<llvm::StringRef> allowed,
                      const std::string &where) {
  for (const auto &kv : o)
    if (std::find(allowed.begin(), allowed.end(), llvm::StringRef(kv.first)) ==
        allowed.end())
      return err(where + ": unknown key '" + kv.first.str() + "'");
  return llvm::Error::success();
}

llvm::Expected<double> fraction(const llvm::json::Object &o,
                                llvm::StringRef key, const std::string &where) {
  auto v = o.getNumber(key);
  if (!v)
    return err(where + ": '" + key + "' must be a number in [0, 1]");
  if (!(*v >= 0 && *v <= 1))
    return err(where + ": '" + key + "' = " + std::to_string(*v) +
               " is outside [0, 1]");
  return *v;
}
} // namespace

double WarmupSchedule::textFraction(int64_t step) const {
  int64_t start = 0;
  for (size_t i = 0; i < phases.size(); ++i) {
    const Phase &p = phases[i];
    bool last = i + 1 == phases.size();
    if (step < start + p.steps || last) {
      double t = p.steps <= 1 ? 1.0
                              : std::min(1.0, double(step - start) /
                                                  double(p.steps - 1));
      if (p.cosine)
        t = 0.5 * (1 - std::cos(M_PI * t));
      return p.pStart + (p.pEnd - p.pStart) * t;
    }
    start += p.steps;
  }
  return 0;
}

llvm::Expected<WarmupSchedule> presetSchedule(const std::string &name,
                                              int64_t totalSteps) {
  WarmupSchedule s;
  if (name == "progressive") {
    // Language-heavy to multimodal-heavy over the first 30%, then p_end.
    int64_t warm = std::max<int64_t>(1, totalSteps * 3 / 10);
    s.phases = {{warm, 1.0, 0.2, false}, {1, 0.2, 0.2, false}};
  } else if (name == "mix") {
    s.phases = {{1, 0.5, 0.5, false}};
  } else if (name == "none") {
    s.phases = {{1, 0.0, 0.0, false}};
  } else {
    return err("unknown schedule preset '" + name +
               "' (expected progressive, mix or none)");
  }
  return s;
}

llvm::Expected<WarmupSchedule> loadSchedule(const std::string &path,
                                            int64_t totalSteps) {
  auto buf = llvm::MemoryBuffer::getFile(path);
  if (!buf)
    return err(path + ": cannot read: " + buf.getError().message());
  return parseSchedule((*buf)->getBuffer(), path, totalSteps);
}

llvm::Expected<WarmupSchedule> parseSchedule(llvm::StringRef text,
                                             const std::string &path,
                                             int64_t totalSteps) {
  llvm::SourceMgr sm;
  // The YAML parser's own diagnostics go to stderr; the error below names
  // the file.
  llvm::yaml::Stream stream(text, sm, /*ShowColors=*/false);
  auto it = stream.begin();
  std::optional<llvm::json::Value> v;
  if (it != stream.end())
    v = yamlToJson(it->getRoot());
  if (stream.failed() || !v || !v->getAsObject())
    return err(path + ": not a JSON/YAML mapping");
  const llvm::json::Object &o = *v->getAsObject();
  if (auto e = checkKeys(o, {"preset", "phases", "warmup_steps", "p_end"}, path))
    return std::move(e);
  if (auto preset = o.getString("preset")) {
    auto s = presetSchedule(preset->str(), totalSteps);
    if (!s)
      return err(path + ": " + llvm::toString(s.takeError()));
    if (auto w = o.getNumber("warmup_steps")) {
      if (*w < 1 || *w > 1e15 || *w != std::floor(*w))
        return err(path + ": 'warmup_steps' must be an integer in [1, 1e15]");
      s->phases[0].steps = int64_t(*w);
    }
    if (o.get("p_end")) {
      auto p = fraction(o, "p_end", path);
      if (!p)
        return p.takeError();
      s->phases[0].pEnd = s->phases.back().pStart = s->phases.back().pEnd = *p;
    }
    return s;
  }
  const llvm::json::Array *phases = o.getArray("phases");
  if (!phases || phases->empty())
    return err(path + ": expected 'preset' or a non-empty 'phases' list");
  WarmupSchedule s;
  for (size_t i = 0; i < phases->size(); ++i) {
    std::string where = path + ": phase " + std::to_string(i);
    const llvm::json::Object *p = (*phases)[i].getAsObject();
    if (!p)
      return err(where + ": must be a mapping");
    if (auto e = checkKeys(*p, {"steps", "text_fraction", "p_start", "p_end",
                                "interp"},
                           where))
      return std::move(e);
    Phase ph;
    auto steps = p->getNumber("steps");
    // Bounded before the conversion: 3e22 overflowed int64 (UBSan; found
    // by fuzz_schedule).
    if (!steps || *steps < 1 || *steps != std::floor(*steps) || *steps > 1e15)
      return err(where + ": 'steps' must be a positive integer (at most 1e15)");
    ph.steps = int64_t(*steps);
    if (p->get("text_fraction")) {
      auto f = fraction(*p, "text_fraction", where);
      if (!f)
        return f.takeError();
      ph.pStart = ph.pEnd = *f;
    } else {
      auto a = fraction(*p, "p_start", where);
      if (!a)
        return a.takeError();
      auto b = fraction(*p, "p_end", where);
      if (!b)
        return b.takeError();
      ph.pStart = *a;
      ph.pEnd = *b;
    }
    if (auto interp = p->getString("interp")) {
      if (*interp != "linear" && *interp != "cosine")
        return err(where + ": 'interp' must be linear or cosine, got '" +
                   interp->str() + "'");
      ph.cosine = *interp == "cosine";
    }
    s.phases.push_back(ph);
  }
  return s;
}

double cosineLr(double base, int64_t step, int64_t warmupSteps,
                int64_t totalSteps) {
  if (warmupSteps > 0 && step <= warmupSteps)
    return base * double(step) / double(warmupSteps);
  double span = std::max<int64_t>(1, totalSteps - warmupSteps);
  double t = std::min(1.0, double(step - warmupSteps) / span);
  return base * 0.5 * (1 + std::cos(M_PI * t));
}

uint64_t sampleHash(uint64_t seed, uint64_t step, uint64_t slot) {
  // splitmix64 over a combination of the three.
  uint64_t x = seed * 0x9E3779B97F4A7C15ull ^ (step + 1) * 0xBF58476D1CE4E5B9ull ^
               (slot + 1) * 0x94D049BB133111EBull;
  x ^= x >> 30;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 27;
  x *= 0x94D049BB133111EBull;
  x ^= x >> 31;
  return x;
}

} // namespace qslaw::train
