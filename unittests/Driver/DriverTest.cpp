//===- DriverTest.cpp - the compiler driver as a library ------------------===//
//
// qslaw::driver without the qslaw-compile main: the --quantize mini-language,
// option validation, and a Compilation's phases on the tiny LLaVA fixture
// (import, graph stage with quantisation and the training step, signature)
// run in this process.
//
//===----------------------------------------------------------------------===//
#include "qslaw/Driver/Driver.h"
#include "qslaw/Pipelines/Pipelines.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "llvm/Support/JSON.h"

#include <gtest/gtest.h>

using namespace qslaw::driver;

namespace {

TEST(QuantizeSpec, ParsesEveryField) {
  auto o = parseQuantizeSpec("w4g128");
  ASSERT_TRUE(o);
  EXPECT_EQ(o->bits, 4u);
  EXPECT_EQ(o->groupSize, 128);
  EXPECT_FALSE(o->symmetric);
  EXPECT_EQ(o->mode, "scale");
  o = parseQuantizeSpec("w3g0,sym,mode=gamma");
  ASSERT_TRUE(o);
  EXPECT_EQ(o->bits, 3u);
  EXPECT_EQ(o->groupSize, 0);
  EXPECT_TRUE(o->symmetric);
  EXPECT_EQ(o->mode, "gamma");
  o = parseQuantizeSpec("w8g64,sym,asym");
  ASSERT_TRUE(o);
  EXPECT_FALSE(o->symmetric); // the last one wins
}

TEST(QuantizeSpec, RefusesOtherText) {
  for (const char *bad : {"", "4g128", "w4", "wxg128", "w4gx", "w4g128,", "w4g128,foo",
                          "w4g128;sym", "W4G128"})
    EXPECT_FALSE(parseQuantizeSpec(bad)) << "'" << bad << "'";
}

TEST(CompileOptions, NamesParseBothWays) {
  for (const char *name : {"cpu", "cuda", "cuda-emulate"})
    EXPECT_EQ(targetName(*parseTarget(name)), name);
  EXPECT_FALSE(parseTarget("tpu"));
  EXPECT_EQ(parseEmit("trainer"), Emit::Trainer);
  EXPECT_FALSE(parseEmit("exe"));
}

TEST(CompileOptions, ValidateNamesTheProblem) {
  CompileOptions o;
  std::string error;
  EXPECT_FALSE(o.validate(error));
  EXPECT_EQ(error, "expected MODEL.onnx and -o OUT (see --help)");
  o.input = "m.onnx";
  o.output = "m.so";
  EXPECT_TRUE(o.validate(error)) << error;

  CompileOptions raw = o;
  raw.emit = Emit::OnnxMlir;
  raw.train = true;
  EXPECT_FALSE(raw.validate(error));
  EXPECT_NE(error.find("--train needs the graph-level pipeline"), std::string::npos);

  CompileOptions hand = o;
  hand.cudaHandKernels = "bf16";
  EXPECT_FALSE(hand.validate(error));
  EXPECT_EQ(error, "--cuda-hand-kernels needs --target=cuda or cuda-emulate");
  hand.target = Target::CUDAEmulate;
  EXPECT_TRUE(hand.validate(error)) << error;

  CompileOptions weights = o;
  weights.externalWeights = true;
  weights.emit = Emit::Mlir;
  EXPECT_FALSE(weights.validate(error));
  EXPECT_NE(error.find("not --emit=mlir"), std::string::npos) << error;

  CompileOptions chips = o;
  chips.gpuChips = {"sm_90a", "gfx942"};
  EXPECT_FALSE(chips.validate(error));
  EXPECT_EQ(error, "--gpu-chips: 'gfx942' is not an sm_XY architecture");
}

/// The phases in this process, on the fixture qslaw-compile's tests use.
TEST(Compilation, GraphStageAndSignatureInProcess) {
  mlir::qslaw::registerPipelines();
  mlir::DialectRegistry registry;
  registerDriverDialects(registry);
  mlir::MLIRContext context(registry);
  CompileOptions o;
  o.input = QSLAW_TEST_FIXTURES "/tiny_llava.onnx";
  o.output = "unused.so";
  o.emit = Emit::Lib;
  o.quantizeSpec = "w4g32";
  o.quantize = parseQuantizeSpec(o.quantizeSpec);
  o.quantize->layers = ".*language_model.*";
  o.train = true;
  std::string log;
  llvm::raw_string_ostream logStream(log);
  Compilation c(o, context, logStream);
  ASSERT_TRUE(mlir::succeeded(c.import()));
  ASSERT_TRUE(mlir::succeeded(c.runGraphStage()));
  ASSERT_TRUE(mlir::succeeded(c.buildSignature()));
  EXPECT_NE(log.find("[1/6] Importing ONNX model"), std::string::npos) << log;
  EXPECT_NE(log.find("[2/6] Quantizing weights (w4g32)"), std::string::npos) << log;
  EXPECT_NE(log.find("[3/6] Generating the training step"), std::string::npos) << log;
  for (const char *name : {"forward", "init_params", "grad_step", "train_step"})
    EXPECT_TRUE(c.module().lookupSymbol<mlir::func::FuncOp>(name)) << name;

  const qslaw::ModelSignature &sig = c.signature();
  EXPECT_EQ(sig.target, "cpu");
  ASSERT_TRUE(sig.training);
  EXPECT_EQ(sig.training->quantize, "w4g32");
  EXPECT_EQ(sig.training->quantizeLayers, ".*language_model.*");
  EXPECT_GT(sig.training->layers.size(), 0u);
  // One scale tensor per quantised layer, plus the float parameters.
  EXPECT_EQ(llvm::count_if(sig.training->params,
                           [](const qslaw::TrainableParam &p) {
                             return p.kind == "scale";
                           }),
            int64_t(sig.training->layers.size()));
  for (const char *name :
       {"init_params", "grad_step", "train_step", "apply_step"})
    EXPECT_TRUE(sig.functions.count(name)) << name;
  // What the library embeds parses back to the same record.
  auto back = qslaw::parseSignature(qslaw::printSignature(sig));
  ASSERT_TRUE(bool(back)) << llvm::toString(back.takeError());
  EXPECT_EQ(qslaw::printSignature(*back), qslaw::printSignature(sig));
}

TEST(Compilation, ImportErrorFailsThePhase) {
  mlir::DialectRegistry registry;
  registerDriverDialects(registry);
  mlir::MLIRContext context(registry);
  context.getDiagEngine().registerHandler([](mlir::Diagnostic &) {});
  CompileOptions o;
  o.input = QSLAW_TEST_FIXTURES "/does-not-exist.onnx";
  o.output = "unused.so";
  std::string log;
  llvm::raw_string_ostream logStream(log);
  Compilation c(o, context, logStream);
  EXPECT_TRUE(mlir::failed(c.import()));
}

} // namespace
