//===- Checkpoint.cpp - trainer state on disk ------------------------------===//
#include "Checkpoint.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/ADT/Twine.h"
#include "llvm/Support/MemoryBuffer.h"

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

std::string checkpointBytes(int64_t step, int64_t nonFiniteRun,
                            const std::vector<Param> &params) {
  std::string s = "QSLAWCK1";
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

Error loadCheckpoint(const std::string &path, int64_t &step,
                     int64_t &nonFiniteRun, std::vector<Param> &params) {
  auto buf = MemoryBuffer::getFile(path);
  if (!buf)
    return createStringError(inconvertibleErrorCode(),
                             path + ": cannot read: " + buf.getError().message());
  StringRef b = (*buf)->getBuffer();
  auto bad = [&](const Twine &why) {
    return createStringError(inconvertibleErrorCode(),
                             path + ": not a valid checkpoint (" + why + ")");
  };
  if (b.size() < 40 || !b.starts_with("QSLAWCK1"))
    return bad("bad header");
  uint64_t sum;
  std::memcpy(&sum, b.data() + b.size() - 8, 8);
  if (fnv(b.drop_back(8).str()) != sum)
    return bad("checksum mismatch");
  size_t off = 8;
  auto get = [&](void *dst, size_t n) {
    if (off + n > b.size() - 8)
      return false;
    std::memcpy(dst, b.data() + off, n);
    off += n;
    return true;
  };
  uint64_t n = 0;
  get(&step, 8);
  get(&nonFiniteRun, 8);
  get(&n, 8);
  if (n != params.size())
    return bad("it has " + Twine(n) + " tensors, the model " +
               Twine(params.size()));
  for (Param &p : params) {
    uint32_t len = 0;
    uint64_t count = 0;
    if (!get(&len, 4))
      return bad("truncated");
    std::string name(len, '\0');
    if (!get(name.data(), len) || !get(&count, 8))
      return bad("truncated");
    if (name != p.name || count != p.value.size())
      return bad("tensor '" + name + "' does not match the model's '" +
                 p.name + "'");
    for (std::vector<float> *t : {&p.value, &p.m, &p.v})
      if (!get(t->data(), count * 4))
        return bad("truncated");
  }
  return Error::success();
}

} // namespace qslaw::train
