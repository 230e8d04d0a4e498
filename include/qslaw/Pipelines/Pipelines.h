//===- Pipelines.h - registered qslaw pass pipelines ------------*- C++ -*-===//
#ifndef QSLAW_PIPELINES_PIPELINES_H
#define QSLAW_PIPELINES_PIPELINES_H

#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassOptions.h"
#include "qslaw/Dialect/QSLAW/Transforms/Passes.h"

namespace mlir::qslaw {

/// Options of the graph stage (qslaw-graph-pipeline): what qslaw-compile
/// does between import and lowering, runnable from qslaw-opt and tests.
struct GraphPipelineOptions : public PassPipelineOptions<GraphPipelineOptions> {
  Option<bool> quantize{*this, "quantize",
                        llvm::cl::desc("Quantize constant matmul weights "
                                       "(qslaw-quantize-weights)"),
                        llvm::cl::init(false)};
  Option<unsigned> bits{*this, "bits", llvm::cl::desc("Code bit width"),
                        llvm::cl::init(4)};
  Option<int64_t> groupSize{*this, "group-size",
                            llvm::cl::desc("Weights per scale (0: per row)"),
                            llvm::cl::init(128)};
  Option<bool> symmetric{*this, "symmetric",
                         llvm::cl::desc("No zero points"),
                         llvm::cl::init(false)};
  Option<std::string> mode{*this, "mode",
                           llvm::cl::desc("What trains: scale or gamma"),
                           llvm::cl::init("scale")};
  Option<std::string> layers{*this, "layers",
                             llvm::cl::desc("Regex over weight names to "
                                            "quantize"),
                             llvm::cl::init(".*")};
  Option<int> clipSteps{*this, "clip-steps",
                        llvm::cl::desc("Clipping-search candidates per group"),
                        llvm::cl::init(0)};
  Option<bool> gammaWeightAsStored{
      *this, "gamma-weight-as-stored",
      llvm::cl::desc("Gamma mode: keep the weight as the model stores it "
                     "(qslaw-quantize-weights gamma-weight-as-stored)"),
      llvm::cl::init(false)};
  Option<bool> train{*this, "train",
                     llvm::cl::desc("Generate the training entries "
                                    "(qslaw-make-train-step)"),
                     llvm::cl::init(false)};
  Option<std::string> entry{*this, "entry",
                            llvm::cl::desc("Forward function"),
                            llvm::cl::init("forward")};
  Option<std::string> trainScales{*this, "train-scales",
                                  llvm::cl::desc("Regex over quantized layers "
                                                 "whose scales/gamma train"),
                                  llvm::cl::init(".*")};
  Option<std::string> trainParams{
      *this, "train-params",
      llvm::cl::desc("Regex over float parameters that train"),
      llvm::cl::init(".*multi_modal_projector.*")};
  Option<std::string> loss{*this, "loss",
                           llvm::cl::desc("next-token-ce or sum-squares"),
                           llvm::cl::init("next-token-ce")};
  Option<float> beta1{*this, "beta1", llvm::cl::desc("AdamW beta1"),
                      llvm::cl::init(0.9f)};
  Option<float> beta2{*this, "beta2", llvm::cl::desc("AdamW beta2"),
                      llvm::cl::init(0.999f)};
  Option<float> eps{*this, "eps", llvm::cl::desc("AdamW epsilon"),
                    llvm::cl::init(1e-8f)};
  Option<float> weightDecay{*this, "weight-decay",
                            llvm::cl::desc("AdamW decoupled weight decay"),
                            llvm::cl::init(0.0f)};

  QuantizeWeightsOptions quantizeOptions() const;
  MakeTrainStepOptions trainStepOptions() const;
};

/// After import: drops initializers that conversions replaced (MatMulNBits'
/// packed B became codes), folds what import left foldable, fuses QDQ
/// dequantisation into qslaw.qmatmul.
void buildGraphCleanupPipeline(OpPassManager &pm);
/// Weight quantisation. A forward-only model folds afterwards; a model that
/// will train keeps gamma mode's quantize(W, s * 1) for the AD pass.
void buildQuantizePipeline(OpPassManager &pm,
                           const QuantizeWeightsOptions &options,
                           bool forTraining);
/// Reverse-mode AD and AdamW: the training entries; with `lora`, adapters
/// are inserted first (qslaw-insert-lora) and train.
void buildTrainStepPipeline(OpPassManager &pm,
                            const MakeTrainStepOptions &options,
                            const InsertLoraOptions *lora = nullptr);
/// All three, as options say (qslaw-graph-pipeline).
void buildGraphPipeline(OpPassManager &pm, const GraphPipelineOptions &options);

/// Options every target's pipeline has: where the weights go.
template <typename Derived>
struct WeightsPipelineOptions : public PassPipelineOptions<Derived> {
  typename PassPipelineOptions<Derived>::template Option<std::string>
      weightsFile{*this, "weights-file",
                  llvm::cl::desc("Move constants of at least "
                                 "weights-min-bytes into this file, mapped "
                                 "by the runtime at load (empty: keep them "
                                 "in the library)"),
                  llvm::cl::init("")};
  typename PassPipelineOptions<Derived>::template Option<int64_t>
      weightsMinBytes{*this, "weights-min-bytes",
                      llvm::cl::desc("With weights-file: smaller constants "
                                     "stay in the library"),
                      llvm::cl::init(4096)};
  typename PassPipelineOptions<Derived>::template Option<bool>
      weightsBackground{
          *this, "weights-background",
          llvm::cl::desc("With weights-file: write it on a thread of its "
                         "own while the compile goes on; the caller waits "
                         "with qslaw::weights::finishBackgroundWrites()"),
          llvm::cl::init(false)};
  typename PassPipelineOptions<Derived>::template Option<bool> weightsDirect{
      *this, "weights-direct",
      llvm::cl::desc("With weights-file: write it with O_DIRECT, past the "
                     "page cache (qslaw-external-weights' direct)"),
      llvm::cl::init(false)};
};

/// Options of the CPU pipeline (qslaw-cpu-pipeline).
struct CPUPipelineOptions : public WeightsPipelineOptions<CPUPipelineOptions> {
  Option<bool> ukernels{*this, "ukernels",
                        llvm::cl::desc("Call hand-tuned microkernels for the "
                                       "quantized matmuls they cover"),
                        llvm::cl::init(true)};
  Option<int> ukernelThreads{
      *this, "ukernel-threads",
      llvm::cl::desc("Threads per microkernel and GEMM-library call (0: "
                     "QSLAW_NUM_THREADS or all cores, read at run time)"),
      llvm::cl::init(1)};
  Option<bool> libraryGemm{
      *this, "library-gemm",
      llvm::cl::desc("Call the GEMM library for f32 contractions of at "
                     "least gemm-min-flops (qslaw-lower-contractions-to-"
                     "library)"),
      llvm::cl::init(true)};
  Option<int64_t> gemmMinFlops{
      *this, "gemm-min-flops",
      llvm::cl::desc("Smallest contraction (2 B M N K flops) that calls the "
                     "GEMM library"),
      llvm::cl::init(1 << 20)};
  Option<bool> gemmLabelRows{
      *this, "gemm-label-rows",
      llvm::cl::desc("A training step's head multiplies only the rows whose "
                     "label counts (qslaw-lower-contractions-to-library "
                     "label-rows)"),
      llvm::cl::init(true)};
  Option<int64_t> tileSize{*this, "tile-size",
                           llvm::cl::desc("Longest innermost-loop row per tile "
                                          "of linalg ops (0: no tiling)"),
                           llvm::cl::init(64)};
  Option<bool> vectorize{*this, "vectorize",
                         llvm::cl::desc("Vectorize linalg ops that allow it"),
                         llvm::cl::init(true)};
  Option<bool> parallel{
      *this, "parallel",
      llvm::cl::desc("Run the outer loops of large generated ops on "
                     "threads (OpenMP through LLVM's libomp)"),
      llvm::cl::init(false)};
  Option<int64_t> outlineMinOps{
      *this, "outline-min-ops",
      llvm::cl::desc("Top-level loop nests of at least this many operations "
                     "become no_inline functions of their own "
                     "(qslaw-outline-loop-nests; 0: none)"),
      llvm::cl::init(8)};
  Option<bool> mergeFunctions{
      *this, "merge-functions",
      llvm::cl::desc("Keep one copy of identical outlined functions (the "
                     "loop nests of identical layers; "
                     "qslaw-merge-identical-functions)"),
      llvm::cl::init(true)};
  Option<bool> outlineLayers{
      *this, "outline-layers",
      llvm::cl::desc("Move each model layer's ops into a function of its "
                     "own at the tensor level, so that identical layers are "
                     "lowered once (qslaw-outline-layers, then "
                     "qslaw-merge-identical-functions), after elementwise "
                     "fusion, so the numbers are the inline build's bit "
                     "for bit"),
      llvm::cl::init(true)};
  Option<bool> outParams{*this, "out-params",
                         llvm::cl::desc("Return results through out-params "
                                        "(the runtime ABI)"),
                         llvm::cl::init(true)};
};

/// Graph (tensor) level to bufferized loops: qslaw lowering, tiling,
/// vectorisation, bufferisation, narrow-type emulation.
void buildCPUBufferizationPipeline(OpPassManager &pm,
                                   const CPUPipelineOptions &options);
/// Bufferized loops to the LLVM dialect.
void buildCPUToLLVMPipeline(OpPassManager &pm);
/// Both of the above.
void buildCPUPipeline(OpPassManager &pm, const CPUPipelineOptions &options);

/// Options of the CUDA pipeline (qslaw-cuda-pipeline).
struct CUDAPipelineOptions
    : public WeightsPipelineOptions<CUDAPipelineOptions> {
  ListOption<std::string> chips{
      *this, "chips",
      llvm::cl::desc("GPU architectures to compile kernels for; all are "
                     "embedded and the runtime picks the device's"),
      llvm::cl::list_init<std::string>({"sm_80", "sm_90a"})};
  Option<std::string> format{
      *this, "format",
      llvm::cl::desc("Kernel object format: isa (PTX), bin (cubin) or fatbin "
                     "(cubin + PTX)"),
      llvm::cl::init("fatbin")};
  Option<int64_t> blockSize{*this, "block-size",
                            llvm::cl::desc("Threads per block of generated "
                                           "elementwise/reduction kernels"),
                            llvm::cl::init(256)};
  Option<std::string> cudaPath{
      *this, "cuda-path",
      llvm::cl::desc("CUDA toolkit (ptxas, fatbinary, libdevice); default "
                     "$CUDA_HOME, $CUDA_ROOT, $CUDA_PATH, else /usr/local/cuda"),
      llvm::cl::init("")};
  Option<bool> emulateOnCPU{
      *this, "emulate-on-cpu",
      llvm::cl::desc("Verification: after mapping to GPU launches, run them "
                     "as CPU loops and lower for the CPU"),
      llvm::cl::init(false)};
  Option<std::string> handKernels{
      *this, "hand-kernels",
      llvm::cl::desc("Call the hand-written CUDA kernels for the 4-bit "
                     "quantized matmuls and scale-mode gradients they cover, "
                     "with activations rounded to bf16 or f16 for the tensor "
                     "cores (none: generated f32 kernels only)"),
      llvm::cl::init("none")};
  Option<int> optLevel{*this, "opt-level",
                       llvm::cl::desc("Optimisation level of device code"),
                       llvm::cl::init(3)};
};

/// Graph (tensor) level to host code with gpu.launch_func and outlined,
/// NVVM-lowered gpu.module kernels (before serialisation).
void buildCUDAToGPUPipeline(OpPassManager &pm,
                            const CUDAPipelineOptions &options);
/// The whole CUDA pipeline: the above, host code to LLVM, kernels to
/// PTX/cubin for every chip, packed into one multi-architecture object.
void buildCUDAPipeline(OpPassManager &pm, const CUDAPipelineOptions &options);

void registerPipelines();

} // namespace mlir::qslaw

#endif // QSLAW_PIPELINES_PIPELINES_H
