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
