//===- Pipelines.h - registered qslaw pass pipelines ------------*- C++ -*-===//
#ifndef QSLAW_PIPELINES_PIPELINES_H
#define QSLAW_PIPELINES_PIPELINES_H

#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassOptions.h"

namespace mlir::qslaw {

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
