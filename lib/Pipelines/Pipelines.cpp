//===- Pipelines.cpp - registered qslaw pass pipelines --------------------===//
#include "qslaw/Pipelines/Pipelines.h"
#include "qslaw/Conversion/Passes.h"
#include "qslaw/Dialect/QSLAW/Transforms/Passes.h"

#include "mlir/InitAllPasses.h"
#include "mlir/Transforms/Passes.h"
#include "mlir/Pass/PassRegistry.h"
#include "llvm/Support/ErrorHandling.h"
#include "llvm/Support/FormatVariadic.h"

#include <cstdlib>

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
/// qslaw-external-weights, when a weights file is asked for: after
/// narrow-type emulation, so that the file holds the bytes the code reads.
void addExternalWeights(OpPassManager &pm, StringRef file, int64_t minBytes) {
  if (file.empty())
    return;
  // The path is quoted: it may hold spaces or braces.
  addPipeline(pm, llvm::formatv("qslaw-external-weights{{file=\"{0}\" "
                                "min-bytes={1}}",
                                file, minBytes)
                      .str());
}
} // namespace

QuantizeWeightsOptions GraphPipelineOptions::quantizeOptions() const {
  QuantizeWeightsOptions o;
  o.bits = bits;
  o.groupSize = groupSize;
  o.symmetric = symmetric;
  o.mode = mode;
  o.layers = layers;
  o.clipSteps = clipSteps;
  return o;
}

MakeTrainStepOptions GraphPipelineOptions::trainStepOptions() const {
  MakeTrainStepOptions o;
  o.entry = entry;
  o.scales = trainScales;
  o.params = trainParams;
  o.loss = loss;
  o.beta1 = beta1;
  o.beta2 = beta2;
  o.eps = eps;
  o.weightDecay = weightDecay;
  return o;
}

void mlir::qslaw::buildGraphCleanupPipeline(OpPassManager &pm) {
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createFuseDequant());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
}

void mlir::qslaw::buildQuantizePipeline(OpPassManager &pm,
                                        const QuantizeWeightsOptions &options,
                                        bool forTraining) {
  pm.addPass(createQuantizeWeights(options));
  // Folding would turn gamma mode's quantize(W, s * 1) into constant codes;
  // the training step needs that structure (it canonicalises once gamma is
  // an argument).
  if (!forTraining)
    pm.addPass(createCanonicalizerPass());
}

void mlir::qslaw::buildTrainStepPipeline(OpPassManager &pm,
                                         const MakeTrainStepOptions &options,
                                         const InsertLoraOptions *lora) {
  if (lora)
    pm.addPass(createInsertLora(*lora));
  pm.addPass(createMakeTrainStep(options));
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
}

void mlir::qslaw::buildGraphPipeline(OpPassManager &pm,
                                     const GraphPipelineOptions &options) {
  buildGraphCleanupPipeline(pm);
  if (options.quantize)
    buildQuantizePipeline(pm, options.quantizeOptions(), options.train);
  if (options.train)
    buildTrainStepPipeline(pm, options.trainStepOptions());
}

void mlir::qslaw::buildCPUBufferizationPipeline(
    OpPassManager &pm, const CPUPipelineOptions &options) {
  registerPipelines();
  // First, on the graph's pure tensor ops: each distinct layer is then
  // lowered once.
  if (options.outlineLayers)
    addPipeline(pm, options.mergeFunctions
                        ? "qslaw-outline-layers,qslaw-merge-identical-functions"
                        : "qslaw-outline-layers");
  if (options.ukernels)
    addPipeline(pm, llvm::formatv("qslaw-lower-to-ukernels{{num-threads={0}}",
                                  int(options.ukernelThreads))
                        .str());
  // Before elementwise fusion, which would fuse producers into the
  // contraction bodies (and recompute them per K step).
  if (options.libraryGemm)
    addPipeline(pm, llvm::formatv("qslaw-lower-contractions-to-library{{"
                                  "min-flops={0} num-threads={1}}",
                                  int64_t(options.gemmMinFlops),
                                  int(options.ukernelThreads))
                        .str());
  addPipeline(pm, "func.func(convert-elementwise-to-linalg),"
                  "qslaw-lower-to-linalg,canonicalize,"
                  "func.func(linalg-fuse-elementwise-ops),cse");
  if (options.tileSize > 0 || options.vectorize)
    addPipeline(pm, llvm::formatv("qslaw-tile-and-vectorize{{tile-size={0} "
                                  "vectorize={1} parallel={2}}",
                                  int64_t(options.tileSize),
                                  options.vectorize ? "true" : "false",
                                  options.parallel ? "true" : "false")
                        .str());
  addPipeline(pm, "one-shot-bufferize{bufferize-function-boundaries "
                  "function-boundary-type-conversion=identity-layout-map},"
                  "canonicalize");
  if (options.parallel)
    addPipeline(pm, "func.func(scf-forall-to-parallel)");
  if (options.outParams)
    addPipeline(pm, "buffer-results-to-out-params{hoist-static-allocs modify-public-functions}");
  // Row reductions lower to one vector.reduction per row (inner-reduction),
  // which qslaw-vector-math lets LLVM reduce as a tree.
  // Deallocations at each buffer's last use, not at the function's end.
  addPipeline(pm, "buffer-deallocation-pipeline,func.func(qslaw-early-dealloc),"
                  "func.func(convert-linalg-to-loops,"
                  "lower-vector-multi-reduction{lowering-strategy="
                  "inner-reduction}),"
                  "qslaw-vector-math,"
                  "func.func(convert-vector-to-scf{full-unroll},lower-affine),"
                  "fold-memref-alias-ops,qslaw-emulate-narrow-type,canonicalize,cse");
  // The scf.forall loops of qslaw-tile-and-vectorize{parallel}, now
  // scf.parallel, become OpenMP work-sharing loops (libomp at run time).
  if (options.parallel)
    // canonicalize inlines the alloca scopes it wraps bodies in (they must
    // stay single-block through convert-scf-to-cf) unless they hold allocas.
    addPipeline(pm, "convert-scf-to-openmp,canonicalize");
  // Small functions for LLVM: its compile time grows faster than the size
  // of one function (and the OpenMP translation's outlining rescans the
  // enclosing function per parallel region).
  if (options.outlineMinOps > 0)
    addPipeline(pm, llvm::formatv("qslaw-outline-loop-nests{{min-ops={0}}",
                                  int64_t(options.outlineMinOps))
                        .str());
  // Identical layers outline to identical functions: one copy each.
  if (options.outlineMinOps > 0 && options.mergeFunctions)
    addPipeline(pm, "qslaw-merge-identical-functions");
  addExternalWeights(pm, options.weightsFile, options.weightsMinBytes);
}

void mlir::qslaw::buildCPUToLLVMPipeline(OpPassManager &pm) {
  registerPipelines();
  // Buffers come from libqslaw_ukernels' caching heap (generic functions,
  // see lib/Runtime/Ukernels/Allocator.cpp).
  addPipeline(pm, "func.func(lower-vector-multi-reduction,convert-vector-to-scf,"
                  "lower-affine),"
                  "convert-scf-to-cf,convert-vector-to-llvm,"
                  "expand-strided-metadata,lower-affine,"
                  "finalize-memref-to-llvm{use-generic-functions},"
                  "convert-math-to-funcs,convert-math-to-llvm,"
                  "convert-math-to-libm,"
                  "convert-arith-to-llvm,convert-func-to-llvm,"
                  "convert-cf-to-llvm,convert-ub-to-llvm,"
                  "convert-openmp-to-llvm,"
                  "reconcile-unrealized-casts");
}

void mlir::qslaw::buildCPUPipeline(OpPassManager &pm,
                                   const CPUPipelineOptions &options) {
  buildCPUBufferizationPipeline(pm, options);
  buildCPUToLLVMPipeline(pm);
}

void mlir::qslaw::buildCUDAToGPUPipeline(OpPassManager &pm,
                                          const CUDAPipelineOptions &options) {
  registerPipelines();
  // Opt-in (bf16/f16 rounding): calls to the hand-written kernels; an
  // invalid type is the pass's error.
  if (options.handKernels != "none")
    addPipeline(pm, llvm::formatv("qslaw-lower-to-ukernels{{target=cuda "
                                  "dtype={0}}",
                                  std::string(options.handKernels))
                        .str());
  // Same graph lowering as the CPU (dequantisation inside the reduction
  // body), no CPU tiling.
  addPipeline(pm, "func.func(convert-elementwise-to-linalg),"
                  "qslaw-lower-to-linalg,canonicalize,"
                  "func.func(linalg-fuse-elementwise-ops),cse");
  addPipeline(pm, "one-shot-bufferize{bufferize-function-boundaries "
                  "function-boundary-type-conversion=identity-layout-map},"
                  "canonicalize,"
                  "buffer-results-to-out-params{hoist-static-allocs "
                  "modify-public-functions},"
                  "buffer-deallocation-pipeline,"
                  "qslaw-memref-copy-to-linalg,"
                  "func.func(convert-linalg-to-parallel-loops),"
                  "fold-memref-alias-ops,qslaw-emulate-narrow-type,"
                  "canonicalize,cse");
  addPipeline(pm, llvm::formatv("qslaw-gpu-map-parallel-loops{{block-size={0}},"
                                "func.func(convert-parallel-loops-to-gpu),"
                                "canonicalize,qslaw-gpu-device-memory",
                                int64_t(options.blockSize))
                      .str());
  if (options.emulateOnCPU) {
    // Verification: the mapped launches as CPU loops, then the CPU's
    // lowering (docs/CUDA.md).
    addPipeline(pm, "qslaw-gpu-emulate-on-cpu,canonicalize,cse");
    addExternalWeights(pm, options.weightsFile, options.weightsMinBytes);
    buildCPUToLLVMPipeline(pm);
    return;
  }
  // Integer powers (math.ipowi/fpowi) have no NVVM lowering: expand them
  // into functions that outlining copies into each kernel module.
  addPipeline(pm, "convert-math-to-funcs,gpu-kernel-outlining,lower-affine,"
                  "convert-scf-to-cf,canonicalize,cse");
  for (const std::string &chip : options.chips)
    addPipeline(pm, llvm::formatv("nvvm-attach-target{{chip={0} O={1}}", chip,
                                  int(options.optLevel))
                        .str());
  addPipeline(pm, "gpu.module(convert-gpu-to-nvvm,canonicalize,cse,"
                  "reconcile-unrealized-casts)");
}

void mlir::qslaw::buildCUDAPipeline(OpPassManager &pm,
                                    const CUDAPipelineOptions &options) {
  buildCUDAToGPUPipeline(pm, options);
  if (options.emulateOnCPU)
    return;
  // gpu-to-llvm lowers only the asynchronous forms of gpu.alloc/memcpy.
  // Weights: uploaded at first use and kept (not copied on every call);
  // with a weights file, the upload reads the mapped file.
  addPipeline(pm, "qslaw-gpu-resident-constants");
  addExternalWeights(pm, options.weightsFile, options.weightsMinBytes);
  addPipeline(pm, "func.func(gpu-async-region),"
                  "expand-strided-metadata,lower-affine,"
                  "convert-math-to-llvm,convert-arith-to-llvm,"
                  "convert-index-to-llvm,convert-func-to-llvm,"
                  "convert-cf-to-llvm,gpu-to-llvm,finalize-memref-to-llvm,"
                  "convert-ub-to-llvm,reconcile-unrealized-casts,canonicalize,"
                  "cse");
  // The toolkit holds ptxas/fatbinary and libdevice (math functions such
  // as __nv_expf are linked from it); do not leave it to MLIR's build-time
  // default.
  std::string toolkit = options.cudaPath;
  for (const char *var : {"CUDA_HOME", "CUDA_ROOT", "CUDA_PATH"})
    if (const char *v = std::getenv(var); toolkit.empty() && v && *v)
      toolkit = v;
  if (toolkit.empty())
    toolkit = "/usr/local/cuda";
  addPipeline(pm, llvm::formatv("gpu-module-to-binary{{format={0} "
                                "toolkit={1}},qslaw-gpu-pack-objects",
                                std::string(options.format), toolkit)
                      .str());
}

void mlir::qslaw::registerPipelines() {
  static bool once = [] {
    registerAllPasses();
    registerQSLAWPasses();
    registerQSLAWConversionPasses();
    PassPipelineRegistration<GraphPipelineOptions>(
        "qslaw-graph-pipeline",
        "qslaw graph stage (what qslaw-compile runs between import and "
        "lowering): cleanup and dequantisation fusion, weight quantisation, "
        "the training step",
        buildGraphPipeline);
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
    PassPipelineRegistration<CUDAPipelineOptions>(
        "qslaw-cuda-to-gpu",
        "qslaw CUDA pipeline, first part: graph level to host code with "
        "gpu.launch_func and NVVM kernels in gpu.modules",
        buildCUDAToGPUPipeline);
    PassPipelineRegistration<CUDAPipelineOptions>(
        "qslaw-cuda-pipeline",
        "qslaw CUDA pipeline: graph level to LLVM host code with embedded "
        "PTX/cubin for every chip",
        buildCUDAPipeline);
    return true;
  }();
  (void)once;
}
