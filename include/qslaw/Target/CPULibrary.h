//===- CPULibrary.h - model shared libraries for the CPU --------*- C++ -*-===//
#ifndef QSLAW_TARGET_CPULIBRARY_H
#define QSLAW_TARGET_CPULIBRARY_H

#include "qslaw/Support/Signature.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Support/Timing.h"

#include <functional>
#include <string>

namespace qslaw {

/// The signature of a graph-level entry (before lowering): its inputs and
/// outputs and the quantised layers it computes (its callees' included).
ModelSignature buildSignature(mlir::func::FuncOp entry);

/// Adds the signatures of more entry functions to `sig.functions` and, from
/// `init_params`' qslaw.params attributes, the trainable parameters to
/// `sig.training`.
void addFunctionSignatures(ModelSignature &sig, mlir::ModuleOp module,
                           llvm::ArrayRef<std::string> functions);

struct CPULibraryOptions {
  std::string entry = "forward";
  /// More functions exported as `qslaw_entry_packed_<name>`.
  std::vector<std::string> extraEntries;
  /// Link an executable (with `-rdynamic`, so that the runtime finds the
  /// model in the program itself) from these objects/libraries instead of a
  /// shared library.
  std::vector<std::string> executableInputs;
  /// What the executable's generated `main(argc, argv)` calls.
  std::string mainCallee = "qslaw_trainer_main";
  std::string signatureJson;
  /// Directory holding libqslaw_ukernels.so (linked and rpath'd).
  std::string runtimeLibDir;
  /// "cuda": the host code launches kernels embedded in the module; link
  /// libqslaw_cuda_runtime.so (the mgpu* ABI over the driver) instead of
  /// the CPU microkernels and MLIR's runner utilities, so that the library
  /// needs no LLVM/MLIR shared library where it runs.
  std::string device = "cpu";
  /// Emit a relocatable object instead of linking a shared library.
  bool objectOnly = false;
  /// The code holds OpenMP loops (CPU pipeline option `parallel`): link
  /// LLVM's libomp ahead of everything else, so that it also serves the
  /// GEMM library's OpenMP calls (one thread pool, no oversubscription).
  bool openmp = false;
  /// When set (and enabled), translation, LLVM optimisation, code
  /// generation and linking are timed under it.
  mlir::TimingScope *timing = nullptr;
  /// Called once the object is generated, before anything links it (the
  /// driver waits there for the weights file written in the background);
  /// on failure nothing is linked and the object is removed.
  std::function<mlir::LogicalResult()> beforeLink;
};

/// From a module already lowered to the LLVM dialect: adds the packed entry
/// `qslaw_entry_packed(void **)` and the `qslaw_signature_json` global,
/// translates to LLVM IR, optimises for the host CPU, and writes an object
/// or a self-contained shared library (weights are constant globals).
mlir::LogicalResult emitCPULibrary(mlir::ModuleOp module,
                                   const CPULibraryOptions &options,
                                   llvm::StringRef outputPath);

} // namespace qslaw

#endif
