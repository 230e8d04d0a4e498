//===- Pipelines.cpp - registered qslaw pass pipelines --------------------===//
#include "qslaw/Pipelines/Pipelines.h"
#include "qslaw/Conversion/Passes.h"
#include "qslaw/Dialect/QSLAW/Transforms/Passes.h"

#include "mlir/InitAllPasses.h"
#include "mlir/Pass/PassRegistry.h"
#include "llvm/Support/ErrorHandling.h"
#include "llvm/Support/FormatVariadic.h"

using namespace mlir;
using namespace mlir::qslaw;

namespace {
/// Upstream passes are composed by name: the textual form is the one users
/// see in `qslaw-opt --dump-pass-pipeline`, and it keeps each stage
/// reproducible from the command line.
void addPipeline(OpPassManager &pm, StringRef text) {
  if (failed(parsePassPipeline(text, pm, llvm::errs())))
    llvm::report_fatal_error(llvm::Twine("qslaw: bad built-in pipeline: ") +
                             text);
}
} // namespace

void mlir::qslaw::buildCPUBufferizationPipeline(
    OpPassManager &pm, const CPUPipelineOptions &options) {
  registerPipelines();
  if (options.ukernels)
    addPipeline(pm, llvm::formatv("qslaw-lower-to-ukernels{{num-threads={0}}",
                                  int(options.ukernelThreads))
                        .str());
  addPipeline(pm, "func.func(convert-elementwise-to-linalg),"
                  "qslaw-lower-to-linalg,canonicalize,"
                  "func.func(linalg-fuse-elementwise-ops),cse");
  if (options.tileSize > 0 || options.vectorize)
    addPipeline(pm, llvm::formatv("qslaw-tile-and-vectorize{{tile-size={0} "
                                  "vectorize={1}}",
                                  int64_t(options.tileSize),
                                  options.vectorize ? "true" : "false")
                        .str());
  addPipeline(pm, "one-shot-bufferize{bufferize-function-boundaries "
                  "function-boundary-type-conversion=identity-layout-map},"
                  "canonicalize");
  if (options.outParams)
    addPipeline(pm, "buffer-results-to-out-params{hoist-static-allocs modify-public-functions}");
  addPipeline(pm, "buffer-deallocation-pipeline,"
                  "func.func(convert-linalg-to-loops,"
                  "lower-vector-multi-reduction,"
                  "convert-vector-to-scf{full-unroll},lower-affine),"
                  "fold-memref-alias-ops,qslaw-emulate-narrow-type,canonicalize,cse");
}

void mlir::qslaw::buildCPUToLLVMPipeline(OpPassManager &pm) {
  registerPipelines();
  addPipeline(pm, "func.func(lower-vector-multi-reduction,convert-vector-to-scf,"
                  "lower-affine),"
                  "convert-scf-to-cf,convert-vector-to-llvm,"
                  "expand-strided-metadata,lower-affine,"
                  "finalize-memref-to-llvm,convert-math-to-funcs,"
                  "convert-math-to-llvm,"
                  "convert-math-to-libm,"
                  "convert-arith-to-llvm,convert-func-to-llvm,"
                  "convert-cf-to-llvm,convert-ub-to-llvm,"
                  "reconcile-unrealized-casts");
}

void mlir::qslaw::buildCPUPipeline(OpPassManager &pm,
                                   const CPUPipelineOptions &options) {
  buildCPUBufferizationPipeline(pm, options);
  buildCPUToLLVMPipeline(pm);
}

void mlir::qslaw::registerPipelines() {
  static bool once = [] {
    registerAllPasses();
    registerQSLAWPasses();
    registerQSLAWConversionPasses();
    PassPipelineRegistration<CPUPipelineOptions>(
        "qslaw-cpu-bufferize",
        "qslaw CPU pipeline, first half: qslaw lowering, tiling, "
        "vectorisation, bufferisation, narrow-type emulation",
        buildCPUBufferizationPipeline);
    PassPipelineRegistration<>("qslaw-cpu-to-llvm",
                               "qslaw CPU pipeline, second half: loops to "
                               "the LLVM dialect",
                               buildCPUToLLVMPipeline);
    PassPipelineRegistration<CPUPipelineOptions>(
        "qslaw-cpu-pipeline", "qslaw CPU pipeline: graph level to LLVM",
        buildCPUPipeline);
    return true;
  }();
  (void)once;
}
