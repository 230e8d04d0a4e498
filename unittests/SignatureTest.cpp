//===- SignatureTest.cpp - the signature's tensor specs -------------------===//
#include "qslaw/Support/Signature.h"

#include "gtest/gtest.h"

using namespace qslaw;

namespace {

llvm::Expected<std::vector<TensorSpec>> parse(llvm::StringRef text) {
  auto v = llvm::json::parse(text);
  EXPECT_TRUE(bool(v)) << llvm::toString(v.takeError());
  return parseTensorSpecs(v->getAsArray(), "inputs");
}

std::string error(llvm::StringRef text) {
  auto r = parse(text);
  EXPECT_FALSE(bool(r));
  return r ? "" : llvm::toString(r.takeError());
}

TEST(SignatureTest, WrittenSpecsReadBack) {
  TensorSpec ids{"input_ids", "i64", {2, 16},
                 IndexRange{-48, 48, std::nullopt, "a Gather's data"}};
  TensorSpec labels{"labels", "i64", {2, 16}, IndexRange{0, 48, -100, ""}};
  TensorSpec pix{"pixel_values", "f32", {2, 3, 28, 28}, std::nullopt};
  llvm::json::Array a{toJson(ids), toJson(labels), toJson(pix)};
  auto r = parseTensorSpecs(&a, "inputs");
  ASSERT_TRUE(bool(r)) << llvm::toString(r.takeError());
  ASSERT_EQ(r->size(), 3u);
  EXPECT_EQ((*r)[0].name, "input_ids");
  EXPECT_EQ((*r)[0].shape, (std::vector<int64_t>{2, 16}));
  EXPECT_EQ((*r)[0].range->indexes, "a Gather's data");
  EXPECT_FALSE((*r)[0].range->ignore);
  EXPECT_EQ((*r)[1].range->ignore, std::optional<int64_t>(-100));
  EXPECT_FALSE((*r)[2].range);
  EXPECT_EQ((*r)[2].numElements(), 2 * 3 * 28 * 28);
  EXPECT_EQ((*r)[2].bits(), 32u);
}

TEST(SignatureTest, RangesAcceptTheirValues) {
  TensorSpec labels{"labels", "i64", {4}, IndexRange{0, 48, -100, "vocab"}};
  EXPECT_TRUE(labels.accepts(0));
  EXPECT_TRUE(labels.accepts(47));
  EXPECT_TRUE(labels.accepts(-100));
  EXPECT_FALSE(labels.accepts(48));
  EXPECT_FALSE(labels.accepts(-1));
  EXPECT_EQ(labels.range->text(), "[0, 48) or -100 (vocab)");
  TensorSpec free{"x", "i32", {4}, std::nullopt};
  EXPECT_TRUE(free.accepts(-5));
}

TEST(SignatureTest, MalformedSpecsAreNamed) {
  EXPECT_NE(error("[1]").find("inputs[0]: not an object"), std::string::npos);
  EXPECT_NE(error(R"([{"name": "x", "shape": [1]}])").find("inputs[0]"),
            std::string::npos);
  EXPECT_NE(error(R"([{"name": "x", "dtype": "f32", "shape": [2, -1]}])")
                .find("negative dim"),
            std::string::npos);
  EXPECT_NE(error(R"([{"name": "x", "dtype": "f32", "shape": [1]},
                      {"name": "ids", "dtype": "i64", "shape": [1],
                       "index_range": {"end": 4}}])")
                .find("inputs[1]: index_range of 'ids' needs begin and end"),
            std::string::npos);
  auto none = parseTensorSpecs(nullptr, "outputs");
  ASSERT_FALSE(bool(none));
  EXPECT_EQ(llvm::toString(none.takeError()), "signature: no outputs array");
}

} // namespace
