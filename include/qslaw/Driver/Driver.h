//===- Driver.h - ONNX model -> qslaw artifact, as a library ----*- C++ -*-===//
//
// What qslaw-compile does, callable from tests and tools: a CompileOptions
// struct (what the command line says, typed), one function per phase, and
// compile() running them in order like onnx-mlir's phased driver
// ("[k/N] phase" lines on the log stream). qslaw-compile is a thin main
// that fills CompileOptions from llvm::cl.
//
//===----------------------------------------------------------------------===//
#ifndef QSLAW_DRIVER_DRIVER_H
#define QSLAW_DRIVER_DRIVER_H

#include "qslaw/Dialect/QSLAW/Transforms/Passes.h"
#include "qslaw/Support/Signature.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"
#include "mlir/Support/Timing.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/Support/raw_ostream.h"

#include <optional>
#include <string>
#include <vector>

namespace mlir {
class DialectRegistry;
class MLIRContext;
} // namespace mlir

namespace qslaw::driver {

class MemoryGuard;

enum class Emit { Lib, Trainer, Obj, OnnxMlir, Mlir, LLVM, LLVMIR };
enum class Target { CPU, CUDA, CUDAEmulate };

/// "lib", "trainer", ... (qslaw-compile --emit); nullopt for anything else.
std::optional<Emit> parseEmit(llvm::StringRef name);
std::optional<Target> parseTarget(llvm::StringRef name);
llvm::StringRef targetName(Target target);

/// The --quantize mini-language: w<bits>g<group>[,sym|asym][,mode=M]
/// (g0: one group per row). The layer regex and clip steps stay at their
/// defaults; CompileOptions sets them. Returns nullopt on any other text.
std::optional<mlir::qslaw::QuantizeWeightsOptions>
parseQuantizeSpec(llvm::StringRef spec);

struct CompileOptions {
  std::string input;  // MODEL.onnx
  std::string output; // -o
  Emit emit = Emit::Lib;
  Target target = Target::CPU;

  /// Static shapes for inputs with dynamic dims: name -> dims.
  llvm::StringMap<std::vector<int64_t>> shapes;

  /// Weight quantisation (--quantize, --quantize-layers, --clip-steps),
  /// with the spec text kept for the signature's "training" record.
  std::optional<mlir::qslaw::QuantizeWeightsOptions> quantize;
  std::string quantizeSpec;

  /// --train (implied by Emit::Trainer); the AD pass's options.
  bool train = false;
  mlir::qslaw::MakeTrainStepOptions trainStep;
  /// --init-params: a trainer's --export-params directory whose learned
  /// tensors replace the constants they were trained from.
  std::string initParams;
  /// --train-lora: adapters on the matching quantized layers.
  std::optional<mlir::qslaw::InsertLoraOptions> lora;

  /// Weights: embedded, or (externalWeights) OUT.weights for constants of
  /// at least weightsMinBytes.
  bool externalWeights = false;
  int64_t weightsMinBytes = 4096;
  /// The weights file written with O_DIRECT, past the page cache
  /// (--weights-write=direct), or through it (cached, the default).
  bool weightsDirect = false;

  /// CPU: threads per library/ukernel call (0: at run time), OpenMP
  /// loops, GEMM-library threshold (< 0: never).
  int numThreads = 0;
  bool parallel = true;
  /// One copy of identical outlined loop nests (qslaw-merge-identical-
  /// functions).
  bool mergeFunctions = true;
  /// Each model layer lowered as a function of its own (qslaw-outline-
  /// layers), so identical layers are lowered once; the numbers are the
  /// inline build's (docs/Pipeline.md).
  bool outlineLayers = true;
  /// Top-level loop nests of at least this many ops become functions of
  /// their own (qslaw-outline-loop-nests; 0: none).
  int64_t outlineMinOps = 8;
  /// Resident memory past which the compile stops with an error naming
  /// its phase (MemoryGuard), in MiB; -1: the memory available at start,
  /// 0: no limit.
  int64_t maxRssMiB = -1;
  int64_t gemmMinFlops = 1 << 20;
  /// A training step's head multiplies only the rows whose label counts.
  bool gemmLabelRows = true;

  /// CUDA.
  std::vector<std::string> gpuChips; // empty: the pipeline's default
  std::string gpuFormat = "fatbin";
  std::string cudaPath;
  std::string cudaHandKernels = "none";

  /// Where libqslaw_ukernels.so and the trainer's libraries are.
  std::string runtimeLibDir;

  bool training() const { return train || emit == Emit::Trainer; }
  bool binary() const {
    return emit == Emit::Obj || emit == Emit::Lib || emit == Emit::Trainer;
  }
  /// Checks the combination; on failure `error` says what is wrong, in the
  /// words qslaw-compile prints.
  bool validate(std::string &error) const;
};

/// Registers every dialect and translation the phases use.
void registerDriverDialects(mlir::DialectRegistry &registry);

/// One compilation: the context's module and the signature as they go
/// through the phases. Errors go to `errs` as "<tool>: error: ...";
/// progress lines to `log`. With `timing` (e.g. a DefaultTimingManager
/// that --mlir-timing enabled), every phase is a timer and every pass of
/// the graph stage and lowering one below it: one report for the whole
/// compile, LLVM code generation and linking included.
class Compilation {
public:
  Compilation(const CompileOptions &options, mlir::MLIRContext &context,
              llvm::raw_ostream &log, llvm::StringRef tool = "qslaw-compile",
              mlir::TimingManager *timing = nullptr);
  /// Waits for the weights file (finishWeights).
  ~Compilation();

  /// Phases, in order; each fails with its error reported.
  mlir::LogicalResult import();
  mlir::LogicalResult runGraphStage(); // cleanup, quantize, train step
  mlir::LogicalResult buildSignature();
  mlir::LogicalResult lower();
  mlir::LogicalResult emit();

  /// All of the above that the options ask for.
  mlir::LogicalResult run();

  /// lower() writes the weights file (--weights=external) on a thread of
  /// its own while LLVM compiles; emit() waits for it before linking. This
  /// waits (for a caller that reads the file after lower() alone) and
  /// reports a failed write.
  mlir::LogicalResult finishWeights();

  mlir::ModuleOp module() { return *module_; }
  /// Told each phase, so that running out of memory names it.
  void setMemoryGuard(MemoryGuard *guard) { guard_ = guard; }
  const qslaw::ModelSignature &signature() const { return signature_; }

private:
  mlir::LogicalResult fail(const llvm::Twine &message);
  void announce(const llvm::Twine &what);
  mlir::LogicalResult recordExternalWeights();
  int totalPhases() const;
  /// A pass manager whose passes are timed under `phase` when timing is on.
  void timePasses(mlir::PassManager &pm, mlir::TimingScope &phase);

  const CompileOptions &options_;
  mlir::MLIRContext &context_;
  llvm::raw_ostream &log_;
  std::string tool_;
  mlir::OwningOpRef<mlir::ModuleOp> module_;
  qslaw::ModelSignature signature_;
  std::vector<std::string> trainEntries_;
  int phase_ = 0;
  mlir::TimingScope timingRoot_;
  MemoryGuard *guard_ = nullptr;
};

/// Validates `options`, then runs a Compilation in a fresh context.
/// Returns the process exit status (0 on success).
int compile(const CompileOptions &options, llvm::raw_ostream &log,
            llvm::StringRef tool = "qslaw-compile",
            mlir::TimingManager *timing = nullptr);

} // namespace qslaw::driver

#endif // QSLAW_DRIVER_DRIVER_H
