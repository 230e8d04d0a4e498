//===- JitRunner.h - compile and run a tensor-level function ----*- C++ -*-===//
//
// Lowers a module through the CPU pipeline, JIT-compiles it with MLIR's
// ExecutionEngine and calls one entry function on NumPy arrays. The entry's
// tensor signature is read before lowering; the runner converts arrays to
// what the lowered ABI expects (f16/bf16 from f32, sub-byte codes packed low
// bits first) and back.
//
//===----------------------------------------------------------------------===//
#ifndef QSLAW_RUNTIME_JITRUNNER_H
#define QSLAW_RUNTIME_JITRUNNER_H

#include "qslaw/Pipelines/Pipelines.h"
#include "qslaw/Runtime/Npy.h"
#include "qslaw/Runtime/TensorAbi.h"

#include "mlir/ExecutionEngine/ExecutionEngine.h"
#include "mlir/IR/BuiltinOps.h"

#include <memory>

namespace qslaw {

/// The ABI spec of a statically shaped tensor type.
TensorSpec tensorSpecOf(mlir::RankedTensorType type, llvm::StringRef name);

class JitFunction {
public:
  /// Lowers `module` (consumed) and JIT-compiles `entry`.
  static llvm::Expected<std::unique_ptr<JitFunction>>
  compile(mlir::ModuleOp module, llvm::StringRef entry,
          const mlir::qslaw::CPUPipelineOptions &options);

  /// Runs the entry once; outputs come back as arrays (f32 for bf16).
  llvm::Expected<std::vector<NpyArray>> run(const std::vector<NpyArray> &in);

  /// Inputs already converted to the ABI: run repeatedly (benchmarks).
  llvm::Error prepare(const std::vector<NpyArray> &in);
  void invokePrepared();
  std::vector<NpyArray> preparedOutputs() const;

  size_t numInputs() const { return inputTypes.size(); }

private:
  JitFunction() = default;
  std::string entry;
  std::vector<mlir::RankedTensorType> inputTypes, outputTypes;
  std::unique_ptr<mlir::ExecutionEngine> engine;
  // Prepared call state.
  std::vector<std::shared_ptr<AbiBuffer>> buffers;
  std::vector<void *> descriptorPtrs;
  std::vector<void *> packedArgs;
};

} // namespace qslaw

#endif // QSLAW_RUNTIME_JITRUNNER_H
