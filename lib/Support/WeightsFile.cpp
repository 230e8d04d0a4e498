//===- WeightsFile.cpp - model weights kept beside the library ------------===//
#include "qslaw/Support/WeightsFile.h"
#include "qslaw/Support/AtomicFile.h"
#include "qslaw/Support/Hash.h"

#include "llvm/Support/Format.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MathExtras.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/Support/xxhash.h"

#include "llvm/ADT/StringExtras.h"

#include <cstring>
#include <mutex>
#include <thread>

using namespace llvm;

namespace qslaw::weights {

std::string hashData(StringRef data) {
  std::string s;
  raw_string_ostream(s) << format_hex_no_prefix(xxh3_64bits(data), 16);
  return s;
}

uint64_t Writer::add(StringRef name, StringRef type, StringRef bytes,
                     uint64_t alignment) {
  owned.push_back(std::make_unique<std::string>(bytes.str()));
  return addView(name, type, *owned.back(), alignment);
}

uint64_t Writer::addView(StringRef name, StringRef type, StringRef bytes,
                         uint64_t alignment) {
  uint64_t offset = alignTo(size, std::max(kTensorAlignment, alignment));
  pieces.push_back({offset, bytes});
  size = offset + bytes.size();
  tensors.push_back({name.str(), type.str(), offset, bytes.size()});
  cachedHash.reset();
  return offset;
}

void Writer::forEachRun(function_ref<void(StringRef)> emit) const {
  static const char zeros[4096] = {};
  uint64_t at = 0;
  for (const Piece &p : pieces) {
    for (uint64_t gap = p.offset - at; gap > 0;) {
      uint64_t n = std::min<uint64_t>(gap, sizeof(zeros));
      emit(StringRef(zeros, n));
      gap -= n;
    }
    emit(p.bytes);
    at = p.offset + p.bytes.size();
  }
}

void Writer::copyViewsUnless(function_ref<bool(StringRef)> outlives) {
  for (Piece &p : pieces) {
    bool ownCopy = llvm::any_of(owned, [&](const std::unique_ptr<std::string> &s) {
      return s->data() == p.bytes.data();
    });
    if (ownCopy || outlives(p.bytes))
      continue;
    owned.push_back(std::make_unique<std::string>(p.bytes.str()));
    p.bytes = *owned.back();
  }
}

const std::string &Writer::hash() const {
  if (cachedHash)
    return *cachedHash;
  // Equal to hashData of the gathered data, which the runtime computes.
  StreamingHash h;
  forEachRun([&](StringRef bytes) { h.update(bytes); });
  std::string s = h.hex();
  cachedHash = s;
  return *cachedHash;
}

static void put(std::string &out, const void *p, size_t n) {
  out.append(static_cast<const char *>(p), n);
}

Error Writer::write(StringRef path, bool bypassCache) const {
  json::Array entries;
  for (const TensorEntry &t : tensors)
    entries.push_back(json::Object{{"name", t.name},
                                   {"type", t.type},
                                   {"offset", int64_t(t.offset)},
                                   {"bytes", int64_t(t.bytes)}});
  std::string text;
  raw_string_ostream(text) << json::Value(
      json::Object{{"xxh3", hash()}, {"tensors", std::move(entries)}});
  uint64_t dataOffset = alignTo(32 + text.size(), kDataAlignment);
  std::string out; // the header; the data is written from where it is
  out.reserve(dataOffset);
  put(out, kMagic, sizeof(kMagic));
  uint32_t version = kVersion, textBytes = uint32_t(text.size());
  uint64_t dataBytes = size;
  put(out, &version, 4);
  put(out, &textBytes, 4);
  put(out, &dataOffset, 8);
  put(out, &dataBytes, 8);
  out += text;
  out.resize(dataOffset, '\0');
  std::vector<StringRef> all{StringRef(out)};
  forEachRun([&](StringRef bytes) { all.push_back(bytes); });
  return writeFileAtomically(path, all, bypassCache);
}

namespace {
/// Background writes and what they reported; waited for at exit too.
struct BackgroundWrites {
  std::mutex mutex;
  std::vector<std::thread> threads;
  std::vector<std::string> failures;
  llvm::Error finish() {
    std::vector<std::thread> running;
    {
      std::lock_guard<std::mutex> lock(mutex);
      running.swap(threads);
    }
    for (std::thread &t : running)
      t.join();
    std::lock_guard<std::mutex> lock(mutex);
    std::string message = llvm::join(failures, "; ");
    failures.clear();
    if (message.empty())
      return Error::success();
    return createStringError(inconvertibleErrorCode(), message);
  }
  ~BackgroundWrites() {
    if (llvm::Error e = finish())
      llvm::errs() << "qslaw: " << llvm::toString(std::move(e)) << "\n";
  }
};
BackgroundWrites &backgroundWrites() {
  static BackgroundWrites writes;
  return writes;
}
} // namespace

void writeInBackground(Writer writer, std::string path,
                       std::function<void()> release, bool bypassCache) {
  (void)writer.hash(); // on this thread: the caller reads it next
  BackgroundWrites &writes = backgroundWrites();
  std::lock_guard<std::mutex> lock(writes.mutex);
  writes.threads.emplace_back([&writes, writer = std::move(writer),
                               path = std::move(path),
                               release = std::move(release), bypassCache]() {
    llvm::Error e = writer.write(path, bypassCache);
    if (release)
      release();
    if (e) {
      std::string message = llvm::toString(std::move(e));
      std::lock_guard<std::mutex> lock(writes.mutex);
      writes.failures.push_back(std::move(message));
    }
  });
}

llvm::Error finishBackgroundWrites() { return backgroundWrites().finish(); }

Expected<Header> parseHeader(StringRef path, StringRef file,
                             uint64_t fileSize) {
  auto bad = [&](const Twine &what) {
    return createStringError(inconvertibleErrorCode(),
                             path + ": not a usable qslaw weights file: " +
                                 what);
  };
  if (file.size() < 32 || std::memcmp(file.data(), kMagic, 8) != 0)
    return bad("no QSLAWWTS header");
  uint32_t version, textBytes;
  Header h;
  std::memcpy(&version, file.data() + 8, 4);
  std::memcpy(&textBytes, file.data() + 12, 4);
  std::memcpy(&h.dataOffset, file.data() + 16, 8);
  std::memcpy(&h.dataBytes, file.data() + 24, 8);
  if (version != kVersion)
    return bad("format version " + Twine(version) + ", this runtime reads " +
               Twine(kVersion));
  if (32 + uint64_t(textBytes) > file.size() || h.dataOffset % kDataAlignment ||
      h.dataOffset < 32 + uint64_t(textBytes))
    return bad("corrupt header");
  if (h.dataBytes > fileSize || h.dataOffset != fileSize - h.dataBytes)
    return bad("the file is " + Twine(fileSize) + " bytes, its header says " +
               Twine(h.dataOffset + h.dataBytes) + " (truncated or appended to)");
  auto parsed = json::parse(file.substr(32, textBytes));
  if (!parsed)
    return bad("header JSON: " + toString(parsed.takeError()));
  const json::Object *o = parsed->getAsObject();
  std::optional<StringRef> hash = o ? o->getString("xxh3") : std::nullopt;
  const json::Array *tensors = o ? o->getArray("tensors") : nullptr;
  if (!hash || !tensors)
    return bad("header JSON lacks xxh3/tensors");
  h.hash = hash->str();
  for (const json::Value &v : *tensors) {
    const json::Object *t = v.getAsObject();
    auto name = t ? t->getString("name") : std::nullopt;
    auto type = t ? t->getString("type") : std::nullopt;
    auto offset = t ? t->getInteger("offset") : std::nullopt;
    auto bytes = t ? t->getInteger("bytes") : std::nullopt;
    // Unsigned and one at a time: offset + bytes may overflow.
    if (!name || !type || !offset || !bytes || *offset < 0 || *bytes < 0 ||
        uint64_t(*offset) > h.dataBytes ||
        uint64_t(*bytes) > h.dataBytes - uint64_t(*offset))
      return bad("tensor entry " + Twine(h.tensors.size()) +
                 " is malformed or outside the data");
    h.tensors.push_back({name->str(), type->str(), uint64_t(*offset),
                         uint64_t(*bytes)});
  }
  return h;
}

} // namespace qslaw::weights
