//===- ParamsManifest.cpp - a trainer's --export-params directory ---------===//
#include "qslaw/Support/ParamsManifest.h"
#include "qslaw/Support/AtomicFile.h"

#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

using namespace llvm;
using namespace qslaw::params;

std::string qslaw::params::manifestPath(StringRef dir) {
  SmallString<256> p(dir);
  sys::path::append(p, "params.json");
  return p.str().str();
}

std::string qslaw::params::tensorPath(StringRef dir, const Entry &entry) {
  SmallString<256> p(dir);
  sys::path::append(p, entry.file);
  return p.str().str();
}

Expected<Manifest> qslaw::params::readManifest(StringRef dir) {
  std::string path = manifestPath(dir);
  auto bad = [&](const Twine &why) {
    return createStringError(inconvertibleErrorCode(), path + ": " + why);
  };
  auto mb = MemoryBuffer::getFile(path);
  if (!mb)
    return bad(mb.getError().message());
  auto json = json::parse((*mb)->getBuffer());
  if (!json)
    return bad(toString(json.takeError()));
  const json::Object *root = json->getAsObject();
  const json::Array *list = root ? root->getArray("params") : nullptr;
  if (!list)
    return bad("no \"params\" list");
  Manifest m;
  for (auto [i, v] : llvm::enumerate(*list)) {
    const json::Object *o = v.getAsObject();
    auto name = o ? o->getString("name") : std::nullopt;
    auto kind = o ? o->getString("kind") : std::nullopt;
    auto source = o ? o->getString("source") : std::nullopt;
    auto file = o ? o->getString("file") : std::nullopt;
    if (!name || !kind || !source || !file)
      return bad("params[" + Twine(i) + "] needs name, kind, source and file");
    // A file name inside the directory, not a path out of it.
    if (file->empty() || sys::path::has_parent_path(*file) || *file == "." ||
        *file == "..")
      return bad("params[" + Twine(i) + "]: file '" + *file +
                 "' is not a file name");
    m.params.push_back({name->str(), kind->str(), source->str(), file->str()});
  }
  if (const json::Object *t = root->getObject("training"))
    m.training = *t;
  return m;
}

Error qslaw::params::writeManifest(StringRef dir, const Manifest &manifest) {
  json::Array list;
  for (const Entry &e : manifest.params)
    list.push_back(json::Object{{"name", e.name},
                                {"kind", e.kind},
                                {"source", e.source},
                                {"file", e.file}});
  json::Object root{{"params", std::move(list)},
                    {"training", json::Value(json::Object(manifest.training))}};
  std::string text;
  raw_string_ostream(text) << json::Value(std::move(root));
  return qslaw::writeFileAtomically(manifestPath(dir), text);
}
