//===- WeightsFileTest.cpp - the external weights file format -------------===//
#include "qslaw/Support/WeightsFile.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "gtest/gtest.h"

#include <cstring>

using namespace qslaw::weights;

namespace {
std::string writeAndRead(const Writer &w, bool direct = false) {
  llvm::SmallString<128> path;
  EXPECT_FALSE(llvm::sys::fs::createTemporaryFile("qslaw", "weights", path));
  EXPECT_FALSE(bool(w.write(path, direct)));
  auto buf = llvm::MemoryBuffer::getFile(path);
  llvm::sys::fs::remove(path);
  return buf ? (*buf)->getBuffer().str() : std::string();
}

std::string message(llvm::Expected<Header> h) {
  return h ? std::string("ok") : llvm::toString(h.takeError());
}
} // namespace

TEST(WeightsFile, RoundTripAlignsAndHashes) {
  Writer w;
  EXPECT_EQ(w.add("a", "memref<3xi8>", llvm::StringRef("\x01\x02\x03", 3)), 0u);
  EXPECT_EQ(w.add("b", "memref<2xf32>", std::string(8, '\x7f')), 64u);
  EXPECT_EQ(w.add("c", "memref<1xf64>", std::string(8, '\x11'), 256), 256u);
  std::string file = writeAndRead(w);
  auto h = parseHeader("f", file, file.size());
  ASSERT_TRUE(bool(h)) << llvm::toString(h.takeError());
  EXPECT_EQ(h->dataOffset % kDataAlignment, 0u);
  EXPECT_EQ(h->dataBytes, 264u);
  EXPECT_EQ(h->hash, w.hash());
  EXPECT_EQ(h->hash, hashData(llvm::StringRef(file).substr(h->dataOffset)));
  ASSERT_EQ(h->tensors.size(), 3u);
  EXPECT_EQ(h->tensors[1].name, "b");
  EXPECT_EQ(h->tensors[1].type, "memref<2xf32>");
  EXPECT_EQ(h->tensors[1].bytes, 8u);
  EXPECT_EQ(file.substr(h->dataOffset, 3), "\x01\x02\x03");
}

// O_DIRECT writes whole aligned blocks through a staging buffer of 8 MiB:
// tensors across the buffer's end, a tail that is not a whole block, and a
// longer file replaced by a shorter one must give the cached write's bytes.
TEST(WeightsFile, DirectWriteEqualsCachedWrite) {
  std::string big(size_t(9) << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i)
    big[i] = char(i * 131 + (i >> 13));
  Writer w;
  w.addView("a", "memref<37xi8>", llvm::StringRef(big).take_front(37));
  w.addView("b", "memref<?xi8>", llvm::StringRef(big).drop_front(5));
  w.add("c", "memref<3xi8>", "xyz");
  std::string cached = writeAndRead(w), direct = writeAndRead(w, true);
  ASSERT_EQ(cached.size(), direct.size());
  EXPECT_NE(cached.size() % 4096, 0u);
  EXPECT_TRUE(cached == direct);
  auto h = parseHeader("f", direct, direct.size());
  ASSERT_TRUE(bool(h)) << llvm::toString(h.takeError());
  EXPECT_EQ(h->hash, hashData(llvm::StringRef(direct).substr(h->dataOffset)));

  // Over a longer file, and in tmpfs (where O_DIRECT may be refused and the
  // cached write takes over).
  for (const char *dir : {"", "/dev/shm"}) {
    if (*dir && !llvm::sys::fs::is_directory(dir))
      continue;
    llvm::SmallString<128> path;
    if (*dir)
      path = (llvm::Twine(dir) + "/qslaw-direct-test.weights").str();
    else
      ASSERT_FALSE(llvm::sys::fs::createTemporaryFile("qslaw", "weights", path));
    Writer longer;
    longer.addView("big", "memref<?xi8>", big);
    longer.addView("big2", "memref<?xi8>", big);
    ASSERT_FALSE(bool(longer.write(path, true)));
    ASSERT_FALSE(bool(w.write(path, true)));
    auto buf = llvm::MemoryBuffer::getFile(path);
    llvm::sys::fs::remove(path);
    ASSERT_TRUE(bool(buf)) << path.str().str();
    EXPECT_TRUE((*buf)->getBuffer() == cached) << path.str().str();
  }
}

TEST(WeightsFile, RejectsDamage) {
  Writer w;
  w.add("a", "memref<4xi8>", "abcd");
  std::string file = writeAndRead(w);
  EXPECT_NE(message(parseHeader("f", "short", 5)).find("no QSLAWWTS header"),
            std::string::npos);
  EXPECT_NE(message(parseHeader("f", file, file.size() - 1)).find("truncated"),
            std::string::npos);
  std::string v2 = file;
  v2[8] = 2;
  EXPECT_NE(message(parseHeader("f", v2, v2.size())).find("format version 2"),
            std::string::npos);
  std::string badJson = file;
  badJson[32] = '[';
  EXPECT_NE(message(parseHeader("f", badJson, badJson.size())).find("header JSON"),
            std::string::npos);
  // A tensor that claims bytes beyond the data.
  std::string outside = file;
  size_t at = outside.find("\"bytes\":4");
  ASSERT_NE(at, std::string::npos);
  outside[at + 8] = '9';
  EXPECT_NE(message(parseHeader("f", outside, outside.size()))
                .find("tensor entry 0 is malformed or outside the data"),
            std::string::npos);
}

// Writer::hash streams the pieces through xxhash's XXH3 (header-only); the
// runtime re-hashes the mapped data with llvm::xxh3_64bits (hashData). The
// two must agree for every size (xxh3 has separate paths for <= 16, <= 128,
// <= 240 bytes and for long inputs, whose stripes the pieces cut anywhere).
TEST(WeightsFile, StreamedHashIsTheRuntimesHash) {
  std::string pool(3 << 20, '\0');
  uint32_t x = 12345;
  for (char &c : pool)
    c = char((x = x * 1664525u + 1013904223u) >> 24);
  for (size_t total : {size_t(0), size_t(1), size_t(3), size_t(16), size_t(17),
                       size_t(128), size_t(129), size_t(240), size_t(241),
                       size_t(1023), size_t(4097), size_t(1 << 20) + 13,
                       size_t(3 << 20) - 5}) {
    Writer w;
    size_t at = 0, k = 0;
    while (at < total) {
      size_t n = std::min(total - at, size_t(1) + (k * 7919) % (total / 3 + 1));
      llvm::StringRef bytes(pool.data() + at, n);
      if (k % 2)
        w.addView("t" + std::to_string(k), "memref<?xi8>", bytes, k % 3 ? 0 : 256);
      else
        w.add("t" + std::to_string(k), "memref<?xi8>", bytes);
      at += n;
      ++k;
    }
    std::string file = writeAndRead(w);
    auto h = parseHeader("f", file, file.size());
    ASSERT_TRUE(bool(h)) << llvm::toString(h.takeError());
    EXPECT_EQ(h->dataBytes, w.dataBytes()) << total;
    EXPECT_EQ(w.hash(), hashData(llvm::StringRef(file).substr(h->dataOffset)))
        << total;
    EXPECT_EQ(h->hash, w.hash()) << total;
  }
}

// The file written on a thread of its own equals the one written in place;
// the data the writer's views point into is released after the write; a
// write that fails is reported by finishBackgroundWrites, naming the file.
TEST(WeightsFile, BackgroundWriteEqualsInPlaceAndReportsFailure) {
  auto data = std::make_unique<std::string>(100000, '\x5a');
  Writer inPlace, background;
  inPlace.addView("w", "memref<100000xi8>", *data);
  background.addView("w", "memref<100000xi8>", *data);
  std::string expected = writeAndRead(inPlace);

  llvm::SmallString<128> path;
  ASSERT_FALSE(llvm::sys::fs::createTemporaryFile("qslaw", "weights", path));
  std::string hash = background.hash();
  bool released = false;
  writeInBackground(std::move(background), path.str().str(),
                    [&] { data.reset(); released = true; });
  ASSERT_FALSE(bool(finishBackgroundWrites()));
  EXPECT_TRUE(released);
  auto buf = llvm::MemoryBuffer::getFile(path);
  llvm::sys::fs::remove(path);
  ASSERT_TRUE(bool(buf));
  EXPECT_EQ((*buf)->getBuffer().str(), expected);
  EXPECT_NE(expected.find(hash), std::string::npos);

  Writer bad;
  bad.add("w", "memref<4xi8>", "abcd");
  writeInBackground(std::move(bad), "/nonexistent-dir/x.weights", nullptr);
  llvm::Error e = finishBackgroundWrites();
  ASSERT_TRUE(bool(e));
  EXPECT_NE(llvm::toString(std::move(e)).find("/nonexistent-dir/x.weights"),
            std::string::npos);
  // Reported once: nothing is pending any more.
  EXPECT_FALSE(bool(finishBackgroundWrites()));
}
