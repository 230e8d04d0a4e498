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

ModelSignature trainerSignature() {
  ModelSignature sig;
  sig.entry = "forward";
  sig.inputs = {TensorSpec{"input_ids", "i64", {2, 16},
                           IndexRange{0, 48, std::nullopt, "vocab"}}};
  sig.outputs = {TensorSpec{"logits", "f32", {2, 16, 48}, std::nullopt}};
  sig.quantization = {QuantizedLayer{"loc(\"q\")", 4, 32, false, "scale",
                                     {64, 32}, "q", "q", "w0"}};
  sig.functions["init_params"] = FunctionSignature{
      "init_params", {}, {TensorSpec{"q.scales", "f32", {64, 1}, {}}}};
  TrainingRecord t;
  t.params = {TrainableParam{"q.scales", "scale", "q", {64, 1}}};
  t.quantize = "w4g32";
  t.quantizeLayers = ".*";
  t.model = "/m.onnx";
  t.lora = LoraRecord{".*q.*", 4, 8.5};
  t.layers = sig.quantization;
  sig.training = std::move(t);
  sig.program = "abc";
  sig.weights = WeightsRecord{"m.so.weights", 1024, 3, "00ff"};
  return sig;
}

TEST(SignatureTest, WholeSignatureRoundTrips) {
  ModelSignature sig = trainerSignature();
  std::string text = printSignature(sig);
  auto back = parseSignature(text);
  ASSERT_TRUE(bool(back)) << llvm::toString(back.takeError());
  EXPECT_EQ(printSignature(*back), text);
  EXPECT_EQ(back->training->lora->alpha, 8.5);
  EXPECT_EQ(back->weights->dataBytes, 1024);
  EXPECT_EQ(back->functions.at("init_params").outputs[0].name, "q.scales");
  EXPECT_EQ(back->quantization[0].weight, "w0");
  // A forward library: no functions, training, program or weights keys.
  ModelSignature lib;
  lib.entry = "forward";
  std::string libText = printSignature(lib);
  EXPECT_EQ(libText, R"({"entry":"forward","inputs":[],"outputs":[],)"
                     R"("quantization":[],"target":"cpu"})");
}

std::string signatureError(llvm::StringRef text) {
  auto r = parseSignature(text);
  EXPECT_FALSE(bool(r)) << text.str();
  return r ? "" : llvm::toString(r.takeError());
}

TEST(SignatureTest, MalformedSignaturesNameTheField) {
  EXPECT_NE(signatureError("{").find("signature: bad JSON"),
            std::string::npos);
  EXPECT_EQ(signatureError(R"({"inputs": [], "outputs": []})"),
            "signature: missing value at signature.entry");
  std::string text = printSignature(trainerSignature());
  auto mutate = [&](llvm::StringRef from, llvm::StringRef to) {
    std::string t = text;
    size_t at = t.find(from.str());
    EXPECT_NE(at, std::string::npos) << from.str();
    return t.replace(at, from.size(), to.str());
  };
  EXPECT_EQ(signatureError(mutate(R"("shape":[64,1],"source")",
                                  R"("shape":[64,-1],"source")")),
            "signature: expected a non-negative integer dim at "
            "signature.training.params[0].shape[1]");
  EXPECT_EQ(signatureError(mutate(R"("data_bytes":1024)",
                                  R"("data_bytes":"1024")")),
            "signature: expected integer at signature.weights.data_bytes");
  EXPECT_EQ(signatureError(mutate(R"("rank":4)", R"("rank":null)")),
            "signature: expected integer at signature.training.lora.rank");
  EXPECT_EQ(signatureError(mutate(R"("kind":"scale")", R"("kind":"scales")")),
            "signature: expected scale, gamma, float, lora_A or lora_B at "
            "signature.training.params[0].kind");
  // Keys a newer compiler adds are ignored, not refused.
  auto newer = parseSignature(mutate(R"("functions":{"init_params":{)",
                                     R"("functions":{"init_params":{"x":1,)"));
  EXPECT_TRUE(bool(newer)) << llvm::toString(newer.takeError());
}

} // namespace
