//===- NpyTest.cpp - .npy round trips and malformed files -----------------===//
#include "qslaw/Runtime/Npy.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"
#include <gtest/gtest.h>

using namespace qslaw;
using llvm::StringRef;

namespace {
std::string tempPath(const char *name) {
  llvm::SmallString<128> p;
  llvm::sys::fs::createUniquePath(std::string("qslaw-npy-%%%%%%-") + name, p,
                                  /*MakeAbsolute=*/true);
  return std::string(p);
}
} // namespace

TEST(Npy, RoundTrip) {
  for (std::vector<int64_t> shape :
       {std::vector<int64_t>{}, {5}, {2, 3}, {2, 1, 4}}) {
    NpyArray a;
    a.dtype = "f4";
    a.shape = shape;
    a.data.resize(a.numElements() * 4);
    for (size_t i = 0; i < a.data.size(); ++i)
      a.data[i] = uint8_t(i * 7);
    std::string path = tempPath("rt.npy");
    ASSERT_FALSE(bool(writeNpy(path, a)));
    auto b = readNpy(path);
    ASSERT_TRUE(bool(b)) << llvm::toString(b.takeError());
    EXPECT_EQ(b->dtype, "f4");
    EXPECT_EQ(b->shape, shape);
    EXPECT_EQ(b->data, a.data);
    llvm::sys::fs::remove(path);
  }
}

TEST(Npy, RejectsGarbageAndTruncation) {
  std::string path = tempPath("bad.npy");
  {
    std::error_code ec;
    llvm::raw_fd_ostream os(path, ec);
    os << "definitely not numpy";
  }
  auto r = readNpy(path);
  ASSERT_FALSE(bool(r));
  std::string msg = llvm::toString(r.takeError());
  EXPECT_NE(msg.find(path), std::string::npos);
  EXPECT_NE(msg.find("magic"), std::string::npos);

  NpyArray a{"f4", {4}, std::vector<uint8_t>(16, 0)};
  ASSERT_FALSE(bool(writeNpy(path, a)));
  { // Keep the header and 6 of the 16 payload bytes.
    auto buf = llvm::MemoryBuffer::getFile(path);
    ASSERT_TRUE(bool(buf));
    StringRef whole = (*buf)->getBuffer();
    std::string cut = whole.take_front(whole.size() - 10).str();
    std::error_code ec;
    llvm::raw_fd_ostream os(path, ec);
    os << cut;
  }
  auto t = readNpy(path);
  ASSERT_FALSE(bool(t));
  EXPECT_NE(llvm::toString(t.takeError()).find("payload"), std::string::npos);
  llvm::sys::fs::remove(path);

  auto missing = readNpy("/nonexistent/x.npy");
  ASSERT_FALSE(bool(missing));
  EXPECT_NE(llvm::toString(missing.takeError()).find("cannot open"),
            std::string::npos);
}

TEST(Npy, RuntimeDtypeMapping) {
  EXPECT_EQ(qslaw::npyDtypeFor("f32"), "f4");
  EXPECT_EQ(qslaw::npyDtypeFor("i16"), "i2");
  EXPECT_EQ(qslaw::npyDtypeFor("i64"), "i8");
  EXPECT_EQ(qslaw::npyDtypeFor("i1"), "b1");
  EXPECT_EQ(qslaw::npyDtypeFor("bf16"), "u2");
  EXPECT_EQ(qslaw::npyDtypeFor("i4"), "u1"); // 4-bit codes, one per byte
  EXPECT_TRUE(qslaw::npyDtypeMatches("i16", "i2"));
  EXPECT_TRUE(qslaw::npyDtypeMatches("i16", "u2"));
  EXPECT_FALSE(qslaw::npyDtypeMatches("i16", "i4"));
  EXPECT_FALSE(qslaw::npyDtypeMatches("i16", "f2"));
  EXPECT_TRUE(qslaw::npyDtypeMatches("i64", "u8"));
  EXPECT_FALSE(qslaw::npyDtypeMatches("f32", "i4"));
  EXPECT_FALSE(qslaw::npyDtypeMatches("f16", "u2"));
  EXPECT_TRUE(qslaw::npyDtypeMatches("i4", "u1"));
  EXPECT_TRUE(qslaw::npyDtypeMatches("i1", "b1"));
}
