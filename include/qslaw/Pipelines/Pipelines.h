//===- Pipelines.h - registered qslaw pass pipelines ------------*- C++ -*-===//
#ifndef QSLAW_PIPELINES_PIPELINES_H
#define QSLAW_PIPELINES_PIPELINES_H

#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassOptions.h"

namespace mlir::qslaw {

/// Options of the CPU pipeline (qslaw-cpu-pipeline).
struct CPUPipelineOptions : public PassPipelineOptions<CPUPipelineOptions> {
  Option<bool> ukernels{*this, "ukernels",
                        llvm::cl::desc("Call hand-tuned microkernels for the "
                                       "quantized matmuls they cover"),
                        llvm::cl::init(true)};
  Option<int> ukernelThreads{*this, "ukernel-threads",
                             llvm::cl::desc("Threads per microkernel call"),
                             llvm::cl::init(1)};
  Option<int64_t> tileSize{*this, "tile-size",
                           llvm::cl::desc("Tile size of the parallel loops of "
                                          "linalg ops (0: no tiling)"),
                           llvm::cl::init(32)};
  Option<bool> vectorize{*this, "vectorize",
                         llvm::cl::desc("Vectorize linalg ops that allow it"),
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

void registerPipelines();

} // namespace mlir::qslaw

#endif // QSLAW_PIPELINES_PIPELINES_H
