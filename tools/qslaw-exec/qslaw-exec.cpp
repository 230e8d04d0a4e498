//===- qslaw-exec.cpp - lower, JIT and run one function on .npy arrays ----===//
//
//   qslaw-exec FILE.mlir --entry=f --input=a.npy --input=b.npy
//              --output=y.npy [--cpu-options="ukernels=false"]
//              [--repeat=N --warmup=W]
//
// With --repeat, prints one JSON line with per-run times (benchmarks).
//
//===----------------------------------------------------------------------===//
#include "qslaw/Dialect/QSLAW/IR/QSLAWDialect.h"
#include "qslaw/Runtime/JitRunner.h"
#include "qslaw/Runtime/Ukernels.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/Parser/Parser.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/WithColor.h"

#include <algorithm>
#include <chrono>

using namespace llvm;

static cl::opt<std::string> inputFile(cl::Positional, cl::desc("<input.mlir>"),
                                      cl::Required);
static cl::opt<std::string> entry("entry", cl::desc("Function to run"),
                                  cl::init("main"));
static cl::list<std::string> inputs("input", cl::desc("Input .npy, in order"));
static cl::list<std::string> outputs("output",
                                     cl::desc("Output .npy, in order"));
static cl::opt<std::string>
    cpuOptions("cpu-options",
               cl::desc("Options of qslaw-cpu-pipeline, e.g. "
                        "\"ukernels=false tile-size=0\""),
               cl::init(""));
static cl::opt<int> repeat("repeat", cl::desc("Timed runs (benchmark mode)"),
                           cl::init(0));
static cl::opt<int> warmup("warmup", cl::desc("Untimed runs before timing"),
                           cl::init(2));

static int fail(const Twine &msg) {
  WithColor::error(errs(), "qslaw-exec") << msg << "\n";
  return 1;
}

int main(int argc, char **argv) {
  InitLLVM init(argc, argv);
  mlir::qslaw::registerPipelines();
  cl::ParseCommandLineOptions(argc, argv, "qslaw JIT runner\n");

  auto options = mlir::qslaw::CPUPipelineOptions::createFromString(
      cpuOptions);
  if (!options)
    return fail("invalid --cpu-options '" + cpuOptions + "'");

  mlir::DialectRegistry registry;
  mlir::registerAllDialects(registry);
  mlir::registerAllExtensions(registry);
  registry.insert<mlir::qslaw::QSLAWDialect>();
  mlir::MLIRContext context(registry);
  SourceMgr sourceMgr;
  mlir::SourceMgrDiagnosticHandler handler(sourceMgr, &context);
  auto module = mlir::parseSourceFile<mlir::ModuleOp>(inputFile, sourceMgr,
                                                      &context);
  if (!module)
    return fail("cannot parse '" + inputFile + "'");

  std::vector<qslaw::NpyArray> arrays;
  for (const std::string &path : inputs) {
    auto a = qslaw::readNpy(path);
    if (!a)
      return fail(toString(a.takeError()));
    arrays.push_back(std::move(*a));
  }

  auto fn = qslaw::JitFunction::compile(*module, entry, *options);
  if (!fn)
    return fail(toString(fn.takeError()));
  if (Error e = (*fn)->prepare(arrays))
    return fail(toString(std::move(e)));

  if (repeat > 0) {
    for (int i = 0; i < warmup; ++i)
      (*fn)->invokePrepared();
    std::vector<double> ms;
    for (int i = 0; i < repeat; ++i) {
      auto t0 = std::chrono::steady_clock::now();
      (*fn)->invokePrepared();
      auto t1 = std::chrono::steady_clock::now();
      ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    }
    std::vector<double> sorted = ms;
    std::sort(sorted.begin(), sorted.end());
    outs() << "{\"entry\": \"" << entry << "\", \"ukernel_isa\": \""
           << qslaw_ukernel_isa() << "\", \"median_ms\": "
           << sorted[sorted.size() / 2] << ", \"times_ms\": [";
    for (size_t i = 0; i < ms.size(); ++i)
      outs() << (i ? ", " : "") << ms[i];
    outs() << "]}\n";
  } else {
    (*fn)->invokePrepared();
  }

  std::vector<qslaw::NpyArray> results = (*fn)->preparedOutputs();
  if (!outputs.empty() && outputs.size() != results.size())
    return fail("entry '" + entry + "' has " + Twine(results.size()) +
                " results, got " + Twine(outputs.size()) + " --output files");
  for (size_t i = 0; i < outputs.size(); ++i)
    if (Error e = qslaw::writeNpy(outputs[i], results[i]))
      return fail(toString(std::move(e)));
  return 0;
}
