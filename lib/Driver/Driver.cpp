//===- Driver.cpp - ONNX model -> qslaw artifact, as a library ------------===//
#include "qslaw/Driver/Driver.h"
#include "qslaw/Support/WeightsFile.h"
#include "qslaw/Driver/LearnedParams.h"
#include "qslaw/Driver/MemoryGuard.h"
#include "qslaw/Support/Hash.h"

#include "qslaw/Dialect/QSLAW/IR/QSLAWDialect.h"
#include "qslaw/Import/ONNX/Importer.h"
#include "qslaw/Pipelines/Pipelines.h"
#include "qslaw/Target/CPULibrary.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Transforms/Passes.h"
#include "mlir/Support/FileUtilities.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"
#include "mlir/Target/LLVMIR/Export.h"
#include "llvm/ADT/StringSwitch.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/Module.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/WithColor.h"

#include <cctype>

using namespace llvm;
using namespace qslaw::driver;
using mlir::failure;
using mlir::LogicalResult;
using mlir::success;

std::optional<Emit> qslaw::driver::parseEmit(StringRef name) {
  return StringSwitch<std::optional<Emit>>(name)
      .Case("lib", Emit::Lib)
      .Case("trainer", Emit::Trainer)
      .Case("obj", Emit::Obj)
      .Case("onnx-mlir", Emit::OnnxMlir)
      .Case("mlir", Emit::Mlir)
      .Case("llvm", Emit::LLVM)
      .Case("llvmir", Emit::LLVMIR)
      .Default(std::nullopt);
}

std::optional<Target> qslaw::driver::parseTarget(StringRef name) {
  return StringSwitch<std::optional<Target>>(name)
      .Case("cpu", Target::CPU)
      .Case("cuda", Target::CUDA)
      .Case("cuda-emulate", Target::CUDAEmulate)
      .Default(std::nullopt);
}

StringRef qslaw::driver::targetName(Target target) {
  switch (target) {
  case Target::CPU:
    return "cpu";
  case Target::CUDA:
    return "cuda";
  case Target::CUDAEmulate:
    return "cuda-emulate";
  }
  llvm_unreachable("bad target");
}

std::optional<mlir::qslaw::QuantizeWeightsOptions>
qslaw::driver::parseQuantizeSpec(StringRef spec) {
  SmallVector<StringRef> parts;
  spec.split(parts, ',');
  StringRef head = parts[0];
  if (!head.consume_front("w"))
    return std::nullopt;
  auto [bitsText, groupText] = head.split('g');
  mlir::qslaw::QuantizeWeightsOptions o;
  if (bitsText.getAsInteger(10, o.bits) ||
      groupText.getAsInteger(10, o.groupSize))
    return std::nullopt;
  for (StringRef p : ArrayRef<StringRef>(parts).drop_front()) {
    if (p == "sym")
      o.symmetric = true;
    else if (p == "asym")
      o.symmetric = false;
    else if (p.consume_front("mode="))
      o.mode = p.str();
    else
      return std::nullopt;
  }
  return o;
}

bool CompileOptions::validate(std::string &error) const {
  auto bad = [&](const Twine &message) {
    error = message.str();
    return false;
  };
  if (input.empty() || output.empty())
    return bad("expected MODEL.onnx and -o OUT (see --help)");
  if (training() && emit == Emit::OnnxMlir)
    return bad("--train needs the graph-level pipeline (not --emit=onnx-mlir)");
  if (gpuFormat != "fatbin" && gpuFormat != "bin" && gpuFormat != "isa")
    return bad("--gpu-format=" + gpuFormat + " is not one of fatbin, bin, isa");
  for (const std::string &chip : gpuChips)
    if (!StringRef(chip).starts_with("sm_"))
      return bad("--gpu-chips: '" + chip + "' is not an sm_XY architecture");
  if (cudaHandKernels != "none" && cudaHandKernels != "bf16" &&
      cudaHandKernels != "f16")
    return bad("--cuda-hand-kernels=" + cudaHandKernels +
               " is not one of none, bf16, f16");
  if (cudaHandKernels != "none" && target == Target::CPU)
    return bad("--cuda-hand-kernels needs --target=cuda or cuda-emulate");
  if (externalWeights && (emit == Emit::Mlir || emit == Emit::OnnxMlir))
    return bad("--weights=external applies to lowered output (lib, trainer, "
               "obj, llvm, llvmir), not --emit=" +
               Twine(emit == Emit::Mlir ? "mlir" : "onnx-mlir"));
  if (weightsMinBytes < 0)
    return bad("--weights-min-bytes must be >= 0");
  if (outlineMinOps < 0)
    return bad("--outline-min-ops must be >= 0 (0: no loop nest outlined), "
               "not " + Twine(outlineMinOps));
  if (maxRssMiB < -1)
    return bad("--max-rss must be >= 0 MiB (0: no limit), not " +
               Twine(maxRssMiB));
  return true;
}

void qslaw::driver::registerDriverDialects(mlir::DialectRegistry &registry) {
  mlir::registerAllDialects(registry);
  mlir::registerAllExtensions(registry);
  registry.insert<mlir::qslaw::QSLAWDialect>();
  // Kernels are translated by gpu-module-to-binary, the host module with
  // its gpu.binary ops by the LLVM export: both need every translation.
  mlir::registerAllToLLVMIRTranslations(registry);
}

Compilation::Compilation(const CompileOptions &options,
                         mlir::MLIRContext &context, raw_ostream &log,
                         StringRef tool, mlir::TimingManager *timing)
    : options_(options), context_(context), log_(log), tool_(tool.str()) {
  if (timing)
    timingRoot_ = timing->getRootScope();
  if (options.training())
    trainEntries_ = {"init_params",      "forward_params", "grad_step",
                     "train_step",       "accumulate_grads", "apply_step"};
}

void Compilation::timePasses(mlir::PassManager &pm, mlir::TimingScope &phase) {
  if (phase)
    pm.enableTiming(phase);
}

Compilation::~Compilation() { (void)finishWeights(); }

LogicalResult Compilation::finishWeights() {
  if (llvm::Error e = qslaw::weights::finishBackgroundWrites())
    return fail("writing the weights file failed: " +
                llvm::toString(std::move(e)));
  return success();
}

LogicalResult Compilation::fail(const Twine &message) {
  WithColor::error(errs(), tool_) << message << "\n";
  return failure();
}

int Compilation::totalPhases() const {
  if (options_.emit == Emit::OnnxMlir)
    return 2;
  return 2 + (options_.quantize ? 1 : 0) + (options_.training() ? 1 : 0) +
         (options_.emit != Emit::Mlir ? 1 : 0) +
         (options_.emit == Emit::LLVMIR || options_.binary() ? 1 : 0);
}

void Compilation::announce(const Twine &what) {
  std::string text = what.str();
  log_ << "[" << ++phase_ << "/" << totalPhases() << "] " << text << "\n";
  log_.flush();
  if (guard_ && !text.empty()) {
    text[0] = char(std::tolower(static_cast<unsigned char>(text[0])));
    guard_->setPhase(text);
  }
}

LogicalResult Compilation::import() {
  announce("Importing ONNX model " + options_.input);
  qslaw::onnx_import::ImportOptions importOptions;
  for (const auto &shape : options_.shapes)
    importOptions.shapeBindings[shape.getKey()] = shape.getValue();
  importOptions.entryName = options_.trainStep.entry;
  mlir::TimingScope timer = timingRoot_.nest("Import ONNX");
  module_ = qslaw::onnx_import::importModel(options_.input, &context_,
                                            importOptions);
  // The importer has emitted diagnostics naming file, node and field.
  return success(bool(module_));
}

LogicalResult Compilation::runGraphStage() {
  if (options_.emit == Emit::OnnxMlir)
    return success();
  {
    mlir::TimingScope timer = timingRoot_.nest("Graph cleanup");
    mlir::PassManager pm(&context_);
    timePasses(pm, timer);
    mlir::qslaw::buildGraphCleanupPipeline(pm);
    if (failed(pm.run(*module_)))
      return fail("graph cleanup failed");
  }
  if (options_.quantize) {
    announce("Quantizing weights (" + options_.quantizeSpec + ")");
    mlir::TimingScope timer = timingRoot_.nest("Quantize weights");
    mlir::PassManager pm(&context_);
    timePasses(pm, timer);
    // Learned tensors go in before folding (gamma mode's quantize(W, s*g)).
    // A CPU training step reads gamma mode's weights as the model stores
    // them (no [N, K] copy in the compiler); codes that fold (no training)
    // and the CUDA kernels need the copy.
    mlir::qslaw::QuantizeWeightsOptions quantize = *options_.quantize;
    quantize.gammaWeightAsStored =
        options_.training() && options_.target == Target::CPU;
    mlir::qslaw::buildQuantizePipeline(
        pm, quantize, options_.training() || !options_.initParams.empty());
    if (failed(pm.run(*module_)))
      return fail("weight quantisation failed");
  }
  if (!options_.initParams.empty()) {
    mlir::TimingScope timer = timingRoot_.nest("Load learned tensors");
    auto n = loadLearnedParams(*module_, options_.initParams);
    if (!n)
      return fail("--init-params: " + toString(n.takeError()));
    log_ << "      loaded " << *n << " learned tensor(s) from "
         << options_.initParams << "\n";
    if (!options_.training()) {
      mlir::PassManager pm(&context_);
      pm.addPass(mlir::createCanonicalizerPass());
      if (failed(pm.run(*module_)))
        return fail("folding the learned tensors failed");
    }
  }
  if (options_.training()) {
    announce("Generating the training step (reverse-mode AD, AdamW)");
    mlir::TimingScope timer = timingRoot_.nest("Training step");
    mlir::PassManager pm(&context_);
    timePasses(pm, timer);
    mlir::qslaw::buildTrainStepPipeline(
        pm, options_.trainStep, options_.lora ? &*options_.lora : nullptr);
    if (failed(pm.run(*module_)))
      return fail("training-step generation failed");
  }
  return success();
}

/// The identity of a graph-stage program: xxh3 of its text with large
/// constants elided, then of every constant's raw bytes (printing them
/// would cost gigabytes of text on a real model).
static std::string programHash(mlir::ModuleOp module) {
  qslaw::StreamingHash h;
  {
    std::string text;
    raw_string_ostream os(text);
    mlir::OpPrintingFlags flags;
    flags.elideLargeElementsAttrs(16);
    // Op by op: printing the module itself appends its resource section,
    // every weight in hex (6.6 s of a 1 B-parameter trainer's compile) only
    // to elide it. The weights' bytes are hashed below.
    os << module->getAttrDictionary();
    for (mlir::Operation &op : module.getBody()->getOperations())
      op.print(os, flags);
    h.update(text);
  }
  module->walk([&](mlir::Operation *op) {
    for (mlir::NamedAttribute a : op->getAttrs()) {
      if (auto d = dyn_cast<mlir::DenseElementsAttr>(a.getValue()))
        h.update(toStringRef(d.getRawData()));
      else if (auto r = dyn_cast<mlir::DenseResourceElementsAttr>(a.getValue()))
        if (mlir::AsmResourceBlob *blob = r.getRawHandle().getBlob())
          h.update(toStringRef(blob->getData()));
    }
  });
  return h.hex();
}

/// How the library's packed entry (CPULibrary.cpp) calls an entry. On the
/// CPU, an entry whose tensors all have static shapes takes bare pointers
/// (`llvm.bareptr`): the runtime's descriptors always have offset 0 and the
/// static sizes, so the packed entry passes each one's aligned pointer. With
/// the C interface instead, each buffer was 3 + 2 * rank scalars through a
/// wrapper; a trainer's optimizer entries have hundreds of buffers, and
/// that marshalling grew the compile with the trainable tensors. Otherwise
/// (dynamic shapes, the CUDA host code) the C interface.
static void markEntryABI(mlir::func::FuncOp f, bool cpu) {
  auto isStatic = [](mlir::Type t) {
    auto rt = dyn_cast<mlir::RankedTensorType>(t);
    return rt && rt.hasStaticShape();
  };
  mlir::FunctionType ft = f.getFunctionType();
  bool bare = cpu &&
              llvm::all_of(ft.getInputs(), isStatic) &&
              llvm::all_of(ft.getResults(), isStatic);
  f->setAttr(bare ? "llvm.bareptr" : "llvm.emit_c_interface",
             mlir::UnitAttr::get(f.getContext()));
}

LogicalResult Compilation::buildSignature() {
  if (!options_.binary())
    return success();
  mlir::TimingScope timer = timingRoot_.nest("Signature");
  const std::string &entryName = options_.trainStep.entry;
  auto entry = module_->lookupSymbol<mlir::func::FuncOp>(entryName);
  if (!entry)
    return fail("internal error: no entry function @" + entryName);
  qslaw::ModelSignature sig = qslaw::buildSignature(entry);
  sig.target = options_.target == Target::CUDA ? "cuda" : "cpu";
  const bool cpu = options_.target == Target::CPU;
  markEntryABI(entry, cpu);
  if (options_.training()) {
    for (const std::string &name : trainEntries_)
      if (auto f = module_->lookupSymbol<mlir::func::FuncOp>(name))
        markEntryABI(f, cpu);
    // The entry's signature plus the other functions and the training record.
    qslaw::addFunctionSignatures(sig, *module_, trainEntries_);
    qslaw::TrainingRecord &train =
        sig.training ? *sig.training : sig.training.emplace();
    train.quantize = options_.quantizeSpec;
    train.quantizeLayers =
        options_.quantize ? options_.quantize->layers : std::string(".*");
    if (!options_.initParams.empty())
      train.initParams = options_.initParams;
    train.clipSteps = options_.quantize ? options_.quantize->clipSteps : 0;
    // The exporter rewrites the source model: keep where it is.
    SmallString<256> source(options_.input);
    sys::fs::make_absolute(source);
    train.model = std::string(source);
    if (options_.lora)
      train.lora = qslaw::LoraRecord{options_.lora->layers,
                                     options_.lora->rank,
                                     options_.lora->alpha};
    train.layers = sig.quantization;
    // The trainer's checkpoints record it: a checkpoint of another model
    // with the same tensor names and sizes is refused on --resume.
    sig.program = programHash(*module_);
  }
  signature_ = std::move(sig);
  return success();
}

/// Reports what qslaw-external-weights wrote and, for a library, adds it to
/// the signature: {"weights": {"file" (beside the library), "data_bytes",
/// "xxh3", "tensors"}}, which the runtime checks the file against.
LogicalResult Compilation::recordExternalWeights() {
  auto rec = module_->getOperation()->getAttrOfType<mlir::DictionaryAttr>(
      "qslaw.external_weights");
  auto file = rec ? rec.getAs<mlir::StringAttr>("file") : nullptr;
  auto bytes = rec ? rec.getAs<mlir::IntegerAttr>("data_bytes") : nullptr;
  auto hash = rec ? rec.getAs<mlir::StringAttr>("xxh3") : nullptr;
  auto count = rec ? rec.getAs<mlir::IntegerAttr>("tensors") : nullptr;
  if (!file || !bytes || !hash || !count)
    return fail("internal error: qslaw-external-weights left no record");
  if (count.getInt() == 0) {
    log_ << "      no constant has --weights-min-bytes="
         << options_.weightsMinBytes
         << " bytes: all stay in the output, no weights file written\n";
    return success();
  }
  log_ << formatv("      {0} constants, {1:F1} MiB -> {2}\n", count.getInt(),
                  double(bytes.getInt()) / (1 << 20), file.getValue());
  if (!options_.binary())
    return success();
  signature_.weights = qslaw::WeightsRecord{
      sys::path::filename(file.getValue()).str(), bytes.getInt(),
      count.getInt(), hash.getValue().str()};
  return success();
}

LogicalResult Compilation::lower() {
  if (options_.emit == Emit::Mlir || options_.emit == Emit::OnnxMlir)
    return success();
  std::string weightsFile =
      options_.externalWeights ? options_.output + ".weights" : "";
  mlir::TimingScope timer = timingRoot_.nest("Lower");
  mlir::PassManager pm(&context_);
  timePasses(pm, timer);
  if (options_.target != Target::CPU) {
    bool emulate = options_.target == Target::CUDAEmulate;
    if (emulate)
      announce("Lowering through the CUDA pipeline, launches emulated as "
               "CPU loops");
    else
      announce("Lowering through the CUDA pipeline (kernels for " +
               (options_.gpuChips.empty() ? std::string("sm_80,sm_90a")
                                          : join(options_.gpuChips, ",")) +
               ", " + options_.gpuFormat + ")");
    mlir::qslaw::CUDAPipelineOptions popts;
    if (!options_.gpuChips.empty())
      popts.chips = options_.gpuChips;
    popts.format = options_.gpuFormat;
    popts.emulateOnCPU = emulate;
    popts.handKernels = options_.cudaHandKernels;
    popts.cudaPath = options_.cudaPath;
    popts.weightsFile = weightsFile;
    popts.weightsMinBytes = options_.weightsMinBytes;
    popts.weightsBackground = true;
    popts.weightsDirect = options_.weightsDirect;
    mlir::qslaw::buildCUDAPipeline(pm, popts);
  } else {
    announce("Lowering through the CPU pipeline to the LLVM dialect");
    mlir::qslaw::CPUPipelineOptions popts;
    popts.ukernelThreads = options_.numThreads;
    popts.parallel = options_.parallel;
    popts.mergeFunctions = options_.mergeFunctions;
    popts.outlineLayers = options_.outlineLayers;
    popts.outlineMinOps = options_.outlineMinOps;
    popts.libraryGemm = options_.gemmMinFlops >= 0;
    popts.gemmMinFlops = std::max<int64_t>(options_.gemmMinFlops, 0);
    popts.gemmLabelRows = options_.gemmLabelRows;
    popts.weightsFile = weightsFile;
    popts.weightsMinBytes = options_.weightsMinBytes;
    popts.weightsBackground = true;
    popts.weightsDirect = options_.weightsDirect;
    mlir::qslaw::buildCPUPipeline(pm, popts);
  }
  if (failed(pm.run(*module_)))
    return fail(targetName(options_.target) + " lowering failed");
  if (options_.externalWeights)
    return recordExternalWeights();
  return success();
}

LogicalResult Compilation::emit() {
  const std::string &out = options_.output;
  mlir::TimingScope timer = timingRoot_.nest("Emit (LLVM code generation, link)");
  if (options_.binary()) {
    announce(options_.emit != Emit::Obj ? "Compiling and linking " + out
                                        : "Compiling " + out);
    qslaw::CPULibraryOptions lopts;
    lopts.entry = options_.trainStep.entry;
    lopts.signatureJson = qslaw::printSignature(signature_);
    lopts.objectOnly = options_.emit == Emit::Obj;
    lopts.openmp = options_.parallel && options_.target == Target::CPU;
    lopts.device = options_.target == Target::CUDA ? "cuda" : "cpu";
    if (options_.training())
      lopts.extraEntries = trainEntries_;
    lopts.runtimeLibDir = options_.runtimeLibDir;
    lopts.timing = &timer;
    lopts.beforeLink = [&] {
      mlir::TimingScope wait = timer.nest("Wait for the weights file");
      return finishWeights();
    };
    if (options_.emit == Emit::Trainer)
      lopts.executableInputs = {"-L" + lopts.runtimeLibDir, "-lqslaw_trainer",
                                "-lqslaw_runtime",
                                "-Wl,-rpath," + lopts.runtimeLibDir};
    if (failed(qslaw::emitCPULibrary(*module_, lopts, out)))
      return fail("emitting " + out + " failed");
    announce("Wrote " + out);
    return success();
  }
  if (failed(finishWeights()))
    return failure();
  std::string errorMessage;
  auto file = mlir::openOutputFile(out, &errorMessage);
  if (!file)
    return fail(errorMessage);
  if (options_.emit == Emit::LLVMIR) {
    announce("Translating to LLVM IR");
    LLVMContext llvmContext;
    auto llvmModule = mlir::translateModuleToLLVMIR(*module_, llvmContext);
    if (!llvmModule)
      return fail("translation to LLVM IR failed");
    llvmModule->print(file->os(), nullptr);
  } else {
    module_->print(file->os(), mlir::OpPrintingFlags());
    file->os() << "\n"; // as qslaw-opt ends it
  }
  announce("Writing " + out);
  file->keep();
  return success();
}

LogicalResult Compilation::run() {
  if (failed(import()) || failed(runGraphStage()) ||
      failed(buildSignature()) || failed(lower()))
    return failure();
  return emit();
}

int qslaw::driver::compile(const CompileOptions &options, raw_ostream &log,
                           StringRef tool, mlir::TimingManager *timing) {
  std::string error;
  if (!options.validate(error)) {
    WithColor::error(errs(), tool) << error << "\n";
    return 1;
  }
  mlir::qslaw::registerPipelines();
  mlir::DialectRegistry registry;
  registerDriverDialects(registry);
  mlir::MLIRContext context(registry);
  SourceMgr sourceMgr;
  mlir::SourceMgrDiagnosticHandler handler(sourceMgr, &context);
  uint64_t limit = options.maxRssMiB < 0 ? MemoryGuard::availableBytes()
                                          : uint64_t(options.maxRssMiB) << 20;
  MemoryGuard guard(limit, tool.str());
  Compilation compilation(options, context, log, tool, timing);
  compilation.setMemoryGuard(&guard);
  return succeeded(compilation.run()) ? 0 : 1;
}
