//===- Pipelines.cpp - registered qslaw pass pipelines --------------------===//
#include "qslaw/Pipelines/Pipelines.h"
#include "qslaw/Conversion/Passes.h"
#include "qslaw/Dialect/QSLAW/Transforms/Passes.h"

#include "mlir/Conversion/Passes.h"
#include "mlir/Conversion/VectorToSCF/VectorToSCF.h"
#include "mlir/Dialect/Bufferization/Pipelines/Passes.h"
#include "mlir/Dialect/Bufferization/Transforms/Passes.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/GPU/Transforms/Passes.h"
#include "mlir/Dialect/Linalg/Passes.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Dialect/SCF/Transforms/Passes.h"
#include "mlir/Dialect/Vector/Transforms/Passes.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"

#include <cstdlib>

using namespace mlir;
using namespace mlir::qslaw;

namespace {
/// qslaw-external-weights, when a weights file is asked for: after
/// narrow-type emulation, so that the file holds the bytes the code reads.
template <typename Options>
void addExternalWeights(OpPassManager &pm, const Options &options) {
  if (options.weightsFile.empty())
    return;
  ExternalWeightsOptions o;
  o.file = options.weightsFile;
  o.minBytes = options.weightsMinBytes;
  o.background = options.weightsBackground;
  o.direct = options.weightsDirect;
  pm.addPass(createExternalWeights(o));
}

/// The graph's qslaw ops and elementwise tensor ops to fused linalg
/// (shared by the CPU and CUDA pipelines).
void addGraphToLinalg(OpPassManager &pm) {
  pm.nest<func::FuncOp>().addPass(createConvertElementwiseToLinalgPass());
  pm.addPass(createQSLAWToLinalg());
  pm.addPass(createCanonicalizerPass());
  // Before fusion too: a cross-entropy and its gradient lower to the same
  // row max and row sum of exp, which fusion would otherwise rewrite
  // differently into each consumer (computed twice per step).
  pm.addPass(createCSEPass());
  pm.nest<func::FuncOp>().addPass(createLinalgElementwiseOpFusionPass());
  pm.addPass(createCSEPass());
}

/// Whole-program bufferisation: functions take and return identity-layout
/// memrefs.
void addBufferize(OpPassManager &pm) {
  bufferization::OneShotBufferizePassOptions o;
  o.bufferizeFunctionBoundaries = true;
  o.functionBoundaryTypeConversion =
      bufferization::LayoutMapOption::IdentityLayoutMap;
  pm.addPass(bufferization::createOneShotBufferizePass(o));
  pm.addPass(createCanonicalizerPass());
}

/// Results become caller-allocated out parameters (the C ABI the runtime
/// calls); static result buffers are hoisted.
void addResultsToOutParams(OpPassManager &pm) {
  bufferization::BufferResultsToOutParamsPassOptions o;
  o.hoistStaticAllocs = true;
  o.modifyPublicFunctions = true;
  pm.addPass(bufferization::createBufferResultsToOutParamsPass(o));
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
  o.gammaWeightAsStored = gammaWeightAsStored;
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
  if (options.ukernels) {
    QSLAWToUkernelsOptions o;
    o.numThreads = options.ukernelThreads;
    pm.addPass(createQSLAWToUkernels(o));
  }
  // Before elementwise fusion, which would fuse producers into the
  // contraction bodies (and recompute them per K step).
  if (options.libraryGemm) {
    ContractionsToLibraryOptions o;
    o.minFlops = options.gemmMinFlops;
    o.numThreads = options.ukernelThreads;
    o.labelRows = options.gemmLabelRows;
    pm.addPass(createContractionsToLibrary(o));
  }
  // After the head's row selection, which looks for the loss ops.
  if (options.ukernels) {
    CrossEntropyToUkernelsOptions o;
    o.numThreads = options.ukernelThreads;
    pm.addPass(createCrossEntropyToUkernels(o));
  }
  // After the library GEMMs took their half-precision weights narrow: a
  // widening left only for a Gather's reads goes.
  pm.nest<func::FuncOp>().addPass(createWidenOnExtract());
  addGraphToLinalg(pm);
  // Masks that fusion left in memory, as bytes LLVM can load as vectors;
  // before outlining, so that layers take them as bytes.
  pm.nest<func::FuncOp>().addPass(createBoolTensorsAsBytes());
  // After elementwise fusion (which then decides as it does inline, so
  // the numbers are the same bit for bit), before tiling: each distinct
  // layer is then tiled, vectorised and lowered once.
  if (options.outlineLayers) {
    pm.addPass(createOutlineLayers());
    if (options.mergeFunctions)
      pm.addPass(createMergeIdenticalFunctions());
  }
  // Before tiling: each accumulator fills its own buffer instead of
  // copying a shared zero-filled one.
  pm.nest<func::FuncOp>().addPass(createFillPerWriter());
  if (options.tileSize > 0 || options.vectorize) {
    TileAndVectorizeOptions o;
    o.tileSize = options.tileSize;
    o.vectorize = options.vectorize;
    o.parallel = options.parallel;
    pm.addPass(createTileAndVectorize(o));
  }
  addBufferize(pm);
  if (options.parallel)
    pm.nest<func::FuncOp>().addPass(createForallToParallelLoopPass());
  if (options.outParams) {
    addResultsToOutParams(pm);
    // A returned call result is computed in the out parameter, not copied.
    pm.nest<func::FuncOp>().addPass(createForwardOutParams());
  }
  // Deallocations at each buffer's last use, not at the function's end.
  bufferization::buildBufferDeallocationPipeline(pm);
  {
    OpPassManager &fpm = pm.nest<func::FuncOp>();
    fpm.addPass(createEarlyDealloc());
  }
  // Copies between strided views as loops (a contiguous innermost run one
  // vector load and store) rather than calls of the element-by-element
  // memrefCopy. Sequential: a rotary half (256 KB) over threads measured no
  // faster than on one (the fork and join cost what the split saves).
  {
    MemRefCopyToLinalgOptions o;
    o.stridedOnly = true;
    o.rowVectors = true;
    pm.addPass(createMemRefCopyToLinalg(o));
  }
  // Row reductions lower to one vector.reduction per row (inner-reduction),
  // which qslaw-vector-math lets LLVM reduce as a tree.
  {
    OpPassManager &fpm = pm.nest<func::FuncOp>();
    fpm.addPass(createConvertLinalgToLoopsPass());
    fpm.addPass(vector::createLowerVectorMultiReductionPass(
        vector::VectorMultiReductionLowering::InnerReduction));
  }
  pm.addPass(createVectorMath());
  {
    OpPassManager &fpm = pm.nest<func::FuncOp>();
    fpm.addPass(createConvertVectorToSCFPass(
        VectorTransferToSCFOptions().enableFullUnroll()));
    fpm.addPass(createLowerAffinePass());
  }
  pm.addPass(memref::createFoldMemRefAliasOpsPass());
  pm.addPass(createEmulateNarrowType());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  // The scf.forall loops of qslaw-tile-and-vectorize{parallel}, now
  // scf.parallel, become OpenMP work-sharing loops (libomp at run time).
  if (options.parallel) {
    pm.addPass(createConvertSCFToOpenMPPass());
    // canonicalize inlines the alloca scopes it wraps bodies in (they must
    // stay single-block through convert-scf-to-cf) unless they hold allocas.
    pm.addPass(createCanonicalizerPass());
  }
  // Small functions for LLVM: its compile time grows faster than the size
  // of one function (and the OpenMP translation's outlining rescans the
  // enclosing function per parallel region).
  if (options.outlineMinOps > 0) {
    OutlineLoopNestsOptions o;
    o.minOps = options.outlineMinOps;
    pm.addPass(createOutlineLoopNests(o));
    // Identical layers outline to identical functions: one copy each.
    if (options.mergeFunctions)
      pm.addPass(createMergeIdenticalFunctions());
  }
  addExternalWeights(pm, options);
}

void mlir::qslaw::buildCPUToLLVMPipeline(OpPassManager &pm) {
  // Buffers come from libqslaw_ukernels' caching heap (generic functions,
  // see lib/Runtime/Ukernels/Allocator.cpp).
  {
    OpPassManager &fpm = pm.nest<func::FuncOp>();
    fpm.addPass(vector::createLowerVectorMultiReductionPass());
    fpm.addPass(createConvertVectorToSCFPass());
    fpm.addPass(createLowerAffinePass());
  }
  pm.addPass(createSCFToControlFlowPass());
  pm.addPass(createConvertVectorToLLVMPass());
  pm.addPass(memref::createExpandStridedMetadataPass());
  pm.addPass(createLowerAffinePass());
  FinalizeMemRefToLLVMConversionPassOptions memrefOptions;
  memrefOptions.useGenericFunctions = true;
  pm.addPass(createFinalizeMemRefToLLVMConversionPass(memrefOptions));
  pm.addPass(createConvertMathToFuncs());
  pm.addPass(createConvertMathToLLVMPass());
  pm.addPass(createConvertMathToLibmPass());
  pm.addPass(createArithToLLVMConversionPass());
  pm.addPass(createConvertFuncToLLVMPass());
  pm.addPass(createConvertControlFlowToLLVMPass());
  pm.addPass(createUBToLLVMConversionPass());
  pm.addPass(createConvertOpenMPToLLVMPass());
  pm.addPass(createReconcileUnrealizedCastsPass());
}

void mlir::qslaw::buildCPUPipeline(OpPassManager &pm,
                                   const CPUPipelineOptions &options) {
  buildCPUBufferizationPipeline(pm, options);
  buildCPUToLLVMPipeline(pm);
}

void mlir::qslaw::buildCUDAToGPUPipeline(OpPassManager &pm,
                                          const CUDAPipelineOptions &options) {
  // Opt-in (bf16/f16 rounding): calls to the hand-written kernels; an
  // invalid type is the pass's error.
  if (options.handKernels != "none") {
    QSLAWToUkernelsOptions o;
    o.target = "cuda";
    o.dtype = options.handKernels;
    pm.addPass(createQSLAWToUkernels(o));
  }
  // Same graph lowering as the CPU (dequantisation inside the reduction
  // body), no CPU tiling.
  addGraphToLinalg(pm);
  addBufferize(pm);
  addResultsToOutParams(pm);
  bufferization::buildBufferDeallocationPipeline(pm);
  pm.addPass(createMemRefCopyToLinalg());
  pm.nest<func::FuncOp>().addPass(createConvertLinalgToParallelLoopsPass());
  pm.addPass(memref::createFoldMemRefAliasOpsPass());
  pm.addPass(createEmulateNarrowType());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  GPUMapParallelLoopsOptions mapOptions;
  mapOptions.blockSize = options.blockSize;
  pm.addPass(createGPUMapParallelLoops(mapOptions));
  pm.nest<func::FuncOp>().addPass(createConvertParallelLoopToGpuPass());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createGPUDeviceMemory());
  if (options.emulateOnCPU) {
    // Verification: the mapped launches as CPU loops, then the CPU's
    // lowering (docs/CUDA.md).
    pm.addPass(createGPUEmulateOnCPU());
    pm.addPass(createCanonicalizerPass());
    pm.addPass(createCSEPass());
    addExternalWeights(pm, options);
    buildCPUToLLVMPipeline(pm);
    return;
  }
  // Integer powers (math.ipowi/fpowi) have no NVVM lowering: expand them
  // into functions that outlining copies into each kernel module.
  pm.addPass(createConvertMathToFuncs());
  pm.addPass(createGpuKernelOutliningPass());
  pm.addPass(createLowerAffinePass());
  pm.addPass(createSCFToControlFlowPass());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  // One module per distinct kernel (identical layers launch identical
  // ones): gpu-module-to-binary compiles each module separately.
  pm.addPass(createGPUMergeIdenticalKernels());
  for (const std::string &chip : options.chips) {
    GpuNVVMAttachTargetOptions o;
    o.chip = chip;
    o.optLevel = options.optLevel;
    pm.addPass(createGpuNVVMAttachTarget(o));
  }
  OpPassManager &gpm = pm.nest<gpu::GPUModuleOp>();
  gpm.addPass(createConvertGpuOpsToNVVMOps());
  gpm.addPass(createCanonicalizerPass());
  gpm.addPass(createCSEPass());
  gpm.addPass(createReconcileUnrealizedCastsPass());
}

void mlir::qslaw::buildCUDAPipeline(OpPassManager &pm,
                                    const CUDAPipelineOptions &options) {
  buildCUDAToGPUPipeline(pm, options);
  if (options.emulateOnCPU)
    return;
  // gpu-to-llvm lowers only the asynchronous forms of gpu.alloc/memcpy.
  // Weights: uploaded at first use and kept (not copied on every call);
  // with a weights file, the upload reads the mapped file.
  pm.addPass(createGPUResidentConstants());
  addExternalWeights(pm, options);
  pm.nest<func::FuncOp>().addPass(createGpuAsyncRegionPass());
  pm.addPass(memref::createExpandStridedMetadataPass());
  pm.addPass(createLowerAffinePass());
  pm.addPass(createConvertMathToLLVMPass());
  pm.addPass(createArithToLLVMConversionPass());
  pm.addPass(createConvertIndexToLLVMPass());
  pm.addPass(createConvertFuncToLLVMPass());
  pm.addPass(createConvertControlFlowToLLVMPass());
  pm.addPass(createGpuToLLVMConversionPass());
  pm.addPass(createFinalizeMemRefToLLVMConversionPass());
  pm.addPass(createUBToLLVMConversionPass());
  pm.addPass(createReconcileUnrealizedCastsPass());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  // The toolkit holds ptxas/fatbinary and libdevice (math functions such
  // as __nv_expf are linked from it); do not leave it to MLIR's build-time
  // default.
  std::string toolkit = options.cudaPath;
  for (const char *var : {"CUDA_HOME", "CUDA_ROOT", "CUDA_PATH"})
    if (const char *v = std::getenv(var); toolkit.empty() && v && *v)
      toolkit = v;
  if (toolkit.empty())
    toolkit = "/usr/local/cuda";
  GpuModuleToBinaryPassOptions binaryOptions;
  binaryOptions.compilationTarget = options.format;
  binaryOptions.toolkitPath = toolkit;
  pm.addPass(createGpuModuleToBinaryPass(binaryOptions));
  pm.addPass(createGPUPackObjects());
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
