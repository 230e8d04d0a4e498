//===- ParamsManifestTest.cpp - params.json, written and read -------------===//
#include "qslaw/Support/ParamsManifest.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/raw_ostream.h"
#include "gtest/gtest.h"

using namespace qslaw::params;

namespace {

struct TempDir {
  llvm::SmallString<128> path;
  TempDir() { EXPECT_FALSE(llvm::sys::fs::createUniqueDirectory("qslaw", path)); }
  ~TempDir() { llvm::sys::fs::remove_directories(path); }
  void write(llvm::StringRef text) {
    std::error_code ec;
    llvm::raw_fd_ostream os(manifestPath(path), ec);
    os << text;
  }
  std::string error() {
    auto m = readManifest(path);
    EXPECT_FALSE(bool(m));
    return m ? "" : llvm::toString(m.takeError());
  }
};

TEST(ParamsManifestTest, WrittenManifestReadsBack) {
  TempDir d;
  Manifest m;
  m.params = {{"l.scales", "scale", "l", "param0.npy"},
              {"p.bias", "float", "p.bias", "param1.npy"}};
  m.training["quantize"] = "w4g32";
  ASSERT_FALSE(bool(writeManifest(d.path, m)));
  auto r = readManifest(d.path);
  ASSERT_TRUE(bool(r)) << llvm::toString(r.takeError());
  ASSERT_EQ(r->params.size(), 2u);
  EXPECT_EQ(r->params[1].name, "p.bias");
  EXPECT_EQ(r->params[1].kind, "float");
  EXPECT_EQ(r->params[0].file, "param0.npy");
  EXPECT_EQ(tensorPath(d.path, r->params[0]), (d.path + "/param0.npy").str());
  EXPECT_EQ(r->training.getString("quantize"), std::optional<llvm::StringRef>("w4g32"));
}

TEST(ParamsManifestTest, BadManifestsAreNamed) {
  TempDir d;
  EXPECT_NE(d.error().find("params.json: No such file"), std::string::npos);
  d.write("{");
  EXPECT_NE(d.error().find("params.json: "), std::string::npos);
  d.write(R"({"training": {}})");
  EXPECT_NE(d.error().find("no \"params\" list"), std::string::npos);
  d.write(R"({"params": [{"name": "a", "kind": "scale", "file": "x.npy"}]})");
  EXPECT_NE(d.error().find("params[0] needs name, kind, source and file"),
            std::string::npos);
  d.write(R"({"params": [{"name": "a", "kind": "scale", "source": "s",
                          "file": "../../etc/x.npy"}]})");
  EXPECT_NE(d.error().find("is not a file name"), std::string::npos);
}

} // namespace
