//===- qslaw-compile.cpp - ONNX model -> qslaw artifact (phased driver) ---===//
//
//   qslaw-compile MODEL.onnx -o OUT [--emit=lib|trainer|obj|onnx-mlir|mlir|llvm|llvmir]
//       [--target=cpu|cuda|cuda-emulate] [--shape NAME=D0xD1 ...]
//       [--quantize=w4g128[,sym|asym][,mode=scale|gamma]] [--quantize-layers=REGEX]
//       [--train ...] [--weights=embed|external] (see --help)
//
// Prints its phases like onnx-mlir ("[k/N] phase ...").
//
//===----------------------------------------------------------------------===//
#include "qslaw/Dialect/QSLAW/IR/QSLAWDialect.h"
#include "qslaw/Import/ONNX/Importer.h"
#include "qslaw/Pipelines/Pipelines.h"
#include "qslaw/Target/CPULibrary.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Support/FileUtilities.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"
#include "mlir/Target/LLVMIR/Export.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/Module.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "mlir/IR/AsmState.h"
#include "mlir/IR/OperationSupport.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/WithColor.h"

using namespace llvm;

static cl::OptionCategory compileCat("qslaw-compile options");
static cl::opt<std::string> inputFile(cl::cat(compileCat), cl::Positional, cl::desc("<model.onnx>"));
static cl::opt<std::string> outputFile(cl::cat(compileCat), "o", cl::desc("Output file"));
static cl::opt<bool> listOps(cl::cat(compileCat), "list-supported-ops",
                             cl::desc("Print the supported (domain, op, "
                                      "opset range) as JSON lines and exit"));
static cl::opt<std::string>
    emit(cl::cat(compileCat), "emit", cl::desc("What to emit: lib (shared library: entry point, "
                          "signature JSON, weights), trainer (executable: the "
                          "model with its training step and the QSLAW "
                          "trainer), obj, onnx-mlir (the "
                          "importer's output, before any pass), mlir (graph "
                          "level after cleanup, fusion, quantisation), llvm "
                          "(LLVM dialect), llvmir (LLVM IR)"),
         cl::init("lib"));
static cl::opt<std::string> target(
    cl::cat(compileCat), "target",
    cl::desc("Target: cpu, or cuda (kernels for every --gpu-chips "
             "architecture embedded; the library runs on the GPU through "
             "libqslaw_cuda_runtime), or cuda-emulate (verification: the "
             "CUDA pipeline's GPU mapping executed as CPU loops)"),
    cl::init("cpu"));
static cl::list<std::string> gpuChips(
    cl::cat(compileCat), "gpu-chips", cl::CommaSeparated,
    cl::desc("--target=cuda: GPU architectures (default sm_80,sm_90a)"));
static cl::opt<std::string> cudaPath(
    cl::cat(compileCat), "cuda-path",
    cl::desc("--target=cuda: CUDA toolkit with ptxas, fatbinary and "
             "libdevice (default $CUDA_HOME, else /usr/local/cuda)"),
    cl::init(""));
static cl::opt<std::string> gpuFormat(
    cl::cat(compileCat), "gpu-format",
    cl::desc("--target=cuda: kernel objects: fatbin (cubin + PTX), bin "
             "(cubin) or isa (PTX, compiled by the driver at load)"),
    cl::init("fatbin"));
static cl::opt<std::string> cudaHandKernels(
    cl::cat(compileCat), "cuda-hand-kernels",
    cl::desc("--target=cuda|cuda-emulate: call the hand-written w4 kernels "
             "for the quantized matmuls and scale-mode gradients they cover "
             "(G 32/64/128, K % 64 == 0, N % 8 == 0), their activations "
             "rounded to bf16 or f16; none: generated f32 kernels only "
             "(default). On cuda the library then needs "
             "libqslaw_cuda_kernels.so beside libqslaw_cuda_runtime.so"),
    cl::init("none"));
static cl::opt<std::string> weightsMode(
    cl::cat(compileCat), "weights",
    cl::desc("Where the model's large constants go: embed (in the library) "
             "or external (OUT.weights beside it, mapped by the runtime at "
             "load and checked against the library; needed for large models)"),
    cl::init("embed"));
static cl::opt<int64_t> weightsMinBytes(
    cl::cat(compileCat), "weights-min-bytes",
    cl::desc("--weights=external: constants smaller than this stay in the "
             "library"),
    cl::init(4096));
static cl::opt<int> numThreads(
    cl::cat(compileCat), "num-threads",
    cl::desc("--target=cpu: threads of each GEMM-library and microkernel "
             "call; 0 (default): QSLAW_NUM_THREADS at run time, else all "
             "cores"),
    cl::init(0));
static cl::opt<bool> parallelLoops(
    cl::cat(compileCat), "parallel",
    cl::desc("--target=cpu: run the outer loops of large generated ops on "
             "threads (OpenMP, LLVM's libomp, which then also serves the "
             "GEMM library; QSLAW_NUM_THREADS threads, default all cores); "
             "--parallel=false: one thread"),
    cl::init(true));
static cl::opt<int64_t> gemmMinFlops(
    cl::cat(compileCat), "gemm-min-flops",
    cl::desc("--target=cpu: f32 contractions of at least this many flops "
             "(2 B M N K) call the GEMM library; -1: none does"),
    cl::init(1 << 20));
static cl::list<std::string> shapes(cl::cat(compileCat), "shape",
                                    cl::desc("Bind an input shape: NAME=D0xD1"));
static cl::opt<std::string>
    quantize(cl::cat(compileCat), "quantize",
             cl::desc("Quantize float linear weights: w<bits>g<group>"
                      "[,sym|asym][,mode=scale|gamma] (g0 = per-channel)"),
             cl::init(""));
static cl::opt<std::string> quantizeLayers(cl::cat(compileCat), 
    "quantize-layers", cl::desc("Regex over weight names to quantize"),
    cl::init(".*"));
static cl::opt<int> clipSteps(cl::cat(compileCat), "clip-steps",
                              cl::desc("Clipping-search candidates per group"),
                              cl::init(0));

static cl::opt<bool>
    train(cl::cat(compileCat), "train", cl::desc("Add the QSLAW training entries (init_params, "
                            "forward_params, grad_step, train_step); implied "
                            "by --emit=trainer"));
static cl::opt<std::string> trainScales(cl::cat(compileCat), 
    "train-scales",
    cl::desc("Regex over quantized layer names whose scales (scale mode) or "
             "gamma (gamma mode) train; empty: none"),
    cl::init(".*"));
static cl::opt<std::string> trainParams(cl::cat(compileCat), 
    "train-params",
    cl::desc("Regex over float parameter names (initializer, or node for "
             "generated names) that train; empty: none"),
    cl::init(".*multi_modal_projector.*"));
static cl::opt<std::string> trainLoss(cl::cat(compileCat), "train-loss",
                                      cl::desc("next-token-ce or sum-squares"),
                                      cl::init("next-token-ce"));
static cl::opt<float> adamBeta1(cl::cat(compileCat), "adam-beta1", cl::init(0.9f),
                                cl::desc("AdamW beta1"));
static cl::opt<float> adamBeta2(cl::cat(compileCat), "adam-beta2", cl::init(0.999f),
                                cl::desc("AdamW beta2"));
static cl::opt<float> adamEps(cl::cat(compileCat), "adam-eps", cl::init(1e-8f),
                              cl::desc("AdamW epsilon"));
static cl::opt<float> weightDecay(cl::cat(compileCat), "weight-decay", cl::init(0.0f),
                                  cl::desc("AdamW decoupled weight decay"));

static int fail(const Twine &msg) {
  WithColor::error(errs(), "qslaw-compile") << msg << "\n";
  return 1;
}

/// A pass option value that may hold spaces, braces or be empty.
static std::string quoteOption(StringRef v) {
  return "\"" + v.str() + "\"";
}

/// "w4g128,asym,mode=gamma" -> qslaw-quantize-weights options.
static std::optional<std::string> quantizeOptions(StringRef spec) {
  SmallVector<StringRef> parts;
  spec.split(parts, ',');
  unsigned bits;
  int64_t group;
  StringRef head = parts[0];
  if (!head.consume_front("w"))
    return std::nullopt;
  auto g = head.split('g');
  if (g.first.getAsInteger(10, bits) || g.second.getAsInteger(10, group))
    return std::nullopt;
  std::string opts = "bits=" + std::to_string(bits) +
                     " group-size=" + std::to_string(group);
  for (StringRef p : ArrayRef<StringRef>(parts).drop_front()) {
    if (p == "sym")
      opts += " symmetric=true";
    else if (p == "asym")
      opts += " symmetric=false";
    else if (p.consume_front("mode="))
      opts += " mode=" + p.str();
    else
      return std::nullopt;
  }
  return opts;
}

/// Reports what qslaw-external-weights wrote and, for a library, adds it to
/// the signature: {"weights": {"file" (beside the library), "data_bytes",
/// "xxh3", "tensors"}}, which the runtime checks the file against.
static mlir::LogicalResult recordExternalWeights(mlir::ModuleOp module,
                                                 std::string &signature,
                                                 bool binary) {
  auto rec = module->getAttrOfType<mlir::DictionaryAttr>(
      "qslaw.external_weights");
  if (!rec)
    return mlir::failure();
  auto file = rec.getAs<mlir::StringAttr>("file");
  auto bytes = rec.getAs<mlir::IntegerAttr>("data_bytes");
  auto hash = rec.getAs<mlir::StringAttr>("xxh3");
  auto count = rec.getAs<mlir::IntegerAttr>("tensors");
  if (!file || !bytes || !hash || !count)
    return mlir::failure();
  if (count.getInt() == 0) {
    outs() << "      no constant has --weights-min-bytes=" << weightsMinBytes
           << " bytes: all stay in the output, no weights file written\n";
    return mlir::success();
  }
  outs() << formatv("      {0} constants, {1:F1} MiB -> {2}\n", count.getInt(),
                    double(bytes.getInt()) / (1 << 20), file.getValue());
  if (!binary)
    return mlir::success();
  auto sig = json::parse(signature);
  if (!sig)
    return mlir::failure();
  (*sig->getAsObject())["weights"] = json::Object{
      {"file", sys::path::filename(file.getValue()).str()},
      {"data_bytes", bytes.getInt()},
      {"xxh3", hash.getValue().str()},
      {"tensors", count.getInt()}};
  signature.clear();
  raw_string_ostream os(signature);
  os << *sig;
  return mlir::success();
}

int main(int argc, char **argv) {
  InitLLVM init(argc, argv);
  mlir::qslaw::registerPipelines();
  mlir::registerAsmPrinterCLOptions();
  // --help lists qslaw's options, not every LLVM backend flag (those still
  // parse; --help-hidden shows them).
  cl::HideUnrelatedOptions(compileCat);
  cl::ParseCommandLineOptions(argc, argv, "qslaw ONNX compiler\n");
  if (listOps) {
    for (const auto &op : qslaw::onnx_import::supportedOps())
      outs() << "{\"domain\": \"" << op.domain << "\", \"op\": \""
             << op.opType << "\", \"since\": " << op.sinceVersion
             << ", \"until\": " << op.untilVersion << "}\n";
    return 0;
  }
  if (inputFile.empty() || outputFile.empty())
    return fail("expected MODEL.onnx and -o OUT (see --help)");
  if (emit != "mlir" && emit != "llvm" && emit != "llvmir" && emit != "obj" &&
      emit != "lib" && emit != "onnx-mlir" && emit != "trainer")
    return fail("--emit=" + emit + " is not supported (lib, trainer, obj, "
                                   "onnx-mlir, mlir, llvm, llvmir)");
  bool training = train || emit == "trainer";
  if (training && emit == "onnx-mlir")
    return fail("--train needs the graph-level pipeline (not --emit=onnx-mlir)");
  if (target != "cpu" && target != "cuda" && target != "cuda-emulate")
    return fail("--target=" + target +
                " is not supported (cpu, cuda, cuda-emulate)");
  // cuda-emulate: the CUDA pipeline's GPU mapping run as CPU loops (a CPU
  // library; verification on machines without a GPU, docs/CUDA.md).
  bool emulate = target == "cuda-emulate";
  bool cuda = target == "cuda" || emulate;
  if (gpuFormat != "fatbin" && gpuFormat != "bin" && gpuFormat != "isa")
    return fail("--gpu-format=" + gpuFormat + " is not one of fatbin, bin, isa");
  for (const std::string &chip : gpuChips)
    if (!StringRef(chip).starts_with("sm_"))
      return fail("--gpu-chips: '" + chip + "' is not an sm_XY architecture");
  if (cudaHandKernels != "none" && cudaHandKernels != "bf16" &&
      cudaHandKernels != "f16")
    return fail("--cuda-hand-kernels=" + cudaHandKernels +
                " is not one of none, bf16, f16");
  if (cudaHandKernels != "none" && !cuda)
    return fail("--cuda-hand-kernels needs --target=cuda or cuda-emulate");
  bool binary = emit == "obj" || emit == "lib" || emit == "trainer";
  if (weightsMode != "embed" && weightsMode != "external")
    return fail("--weights=" + weightsMode + " is not one of embed, external");
  bool externalWeights = weightsMode == "external";
  if (externalWeights && (emit == "mlir" || emit == "onnx-mlir"))
    return fail("--weights=external applies to lowered output (lib, trainer, "
                "obj, llvm, llvmir), not --emit=" + emit);
  if (weightsMinBytes < 0)
    return fail("--weights-min-bytes must be >= 0");
  std::string weightsFile = externalWeights ? outputFile + ".weights" : "";

  qslaw::onnx_import::ImportOptions options;
  for (const std::string &s : shapes) {
    auto [name, dims] = StringRef(s).split('=');
    SmallVector<StringRef> ds;
    dims.split(ds, 'x');
    std::vector<int64_t> v;
    for (StringRef d : ds) {
      int64_t x;
      if (d.getAsInteger(10, x) || x <= 0)
        return fail("--shape " + s + ": expected NAME=D0xD1... with positive "
                    "dimensions");
      v.push_back(x);
    }
    options.shapeBindings[name] = v;
  }
  std::optional<std::string> qopts;
  if (!quantize.empty()) {
    qopts = quantizeOptions(quantize);
    if (!qopts)
      return fail("--quantize=" + quantize +
                  ": expected w<bits>g<group>[,sym|asym][,mode=scale|gamma]");
  }

  mlir::DialectRegistry registry;
  mlir::registerAllDialects(registry);
  mlir::registerAllExtensions(registry);
  registry.insert<mlir::qslaw::QSLAWDialect>();
  // Kernels are translated by gpu-module-to-binary, the host module with
  // its gpu.binary ops by the LLVM export: both need every translation.
  mlir::registerAllToLLVMIRTranslations(registry);
  mlir::MLIRContext context(registry);
  SourceMgr sourceMgr;
  mlir::SourceMgrDiagnosticHandler handler(sourceMgr, &context);

  bool rawImport = emit == "onnx-mlir";
  int total = rawImport ? 2 : 2 + (qopts ? 1 : 0) + (training ? 1 : 0) +
              (emit != "mlir" ? 1 : 0) +
              (emit == "llvmir" || binary ? 1 : 0);
  int phase = 0;
  auto announce = [&](StringRef what) {
    outs() << "[" << ++phase << "/" << total << "] " << what << "\n";
    outs().flush();
  };

  announce("Importing ONNX model " + inputFile);
  auto module = qslaw::onnx_import::importModel(inputFile, &context, options);
  if (!module)
    return 1;
  if (!rawImport) {
    // Drops initializers that conversions replaced (e.g. MatMulNBits' packed
    // B becomes codes), folds what import left foldable, and fuses
    // dequantised weights (QDQ) into qslaw.qmatmul.
    mlir::PassManager pm(&context);
    if (failed(mlir::parsePassPipeline("canonicalize,qslaw-fuse-dequant,"
                                       "canonicalize,cse",
                                       pm, errs())) ||
        failed(pm.run(*module)))
      return fail("graph cleanup failed");
  }
  if (qopts && !rawImport) {
    announce("Quantizing weights (" + quantize + ")");
    mlir::PassManager pm(&context);
    std::string text = "qslaw-quantize-weights{" + *qopts + " layers=" +
                       quantizeLayers + " clip-steps=" +
                       std::to_string(clipSteps) + "}";
    // Folding would turn gamma mode's quantize(W, s * 1) into constant
    // codes; the training step needs that structure (it canonicalises
    // once gamma is an argument).
    if (!training)
      text += ",canonicalize";
    if (failed(mlir::parsePassPipeline(text, pm, errs())) ||
        failed(pm.run(*module)))
      return fail("weight quantisation failed");
  }
  if (training) {
    announce("Generating the training step (reverse-mode AD, AdamW)");
    mlir::PassManager pm(&context);
    std::string text = llvm::formatv(
        "qslaw-make-train-step{{entry={0} scales={1} params={2} loss={3} "
        "beta1={4} beta2={5} eps={6} weight-decay={7}},canonicalize,cse",
        options.entryName, quoteOption(trainScales), quoteOption(trainParams),
        trainLoss, adamBeta1, adamBeta2, adamEps, weightDecay);
    if (failed(mlir::parsePassPipeline(text, pm, errs())) ||
        failed(pm.run(*module)))
      return fail("training-step generation failed");
  }
  std::string signature;
  std::vector<std::string> trainEntries;
  if (training)
    trainEntries = {"init_params", "forward_params", "grad_step", "train_step"};
  if (binary) {
    auto entry = module->lookupSymbol<mlir::func::FuncOp>(options.entryName);
    signature = qslaw::buildSignatureJson(entry);
    {
      auto sig = json::parse(signature);
      if (!sig)
        return fail("internal error: bad signature JSON");
      (*sig->getAsObject())["target"] = emulate ? "cpu" : target.getValue();
      signature.clear();
      raw_string_ostream os(signature);
      os << *sig;
    }
    // The library's packed entries call the C interfaces.
    entry->setAttr("llvm.emit_c_interface", mlir::UnitAttr::get(&context));
    if (training) {
      for (const std::string &name : trainEntries)
        if (auto f = module->lookupSymbol<mlir::func::FuncOp>(name))
          f->setAttr("llvm.emit_c_interface", mlir::UnitAttr::get(&context));
      // One JSON object: the entry's signature plus "functions"/"training".
      auto main = json::parse(signature);
      auto extra = json::parse(qslaw::buildFunctionsJson(*module, trainEntries));
      if (!main || !extra)
        return fail("internal error: bad signature JSON");
      for (auto &kv : *extra->getAsObject())
        (*main->getAsObject())[kv.first] = kv.second;
      json::Object &train = *main->getAsObject()->getObject("training");
      train["quantize"] = quantize.getValue();
      train["quantize_layers"] = quantizeLayers.getValue();
      train["clip_steps"] = int64_t(clipSteps);
      // The exporter rewrites the source model: keep where it is.
      SmallString<256> source(inputFile.getValue());
      sys::fs::make_absolute(source);
      train["model"] = std::string(source);
      if (const json::Array *q = main->getAsObject()->getArray("quantization"))
        train["layers"] = json::Array(*q);
      signature.clear();
      raw_string_ostream os(signature);
      os << *main;
    }
  }
  if (emit != "mlir" && !rawImport) {
    mlir::PassManager pm(&context);
    if (cuda) {
      if (emulate)
        announce("Lowering through the CUDA pipeline, launches emulated as "
                 "CPU loops");
      else
        announce("Lowering through the CUDA pipeline (kernels for " +
                 (gpuChips.empty() ? std::string("sm_80,sm_90a")
                                   : join(gpuChips, ",")) +
                 ", " + gpuFormat + ")");
      mlir::qslaw::CUDAPipelineOptions popts;
      if (!gpuChips.empty())
        popts.chips = std::vector<std::string>(gpuChips.begin(), gpuChips.end());
      popts.format = gpuFormat.getValue();
      popts.emulateOnCPU = emulate;
      popts.handKernels = cudaHandKernels.getValue();
      popts.cudaPath = cudaPath.getValue();
      popts.weightsFile = weightsFile;
      popts.weightsMinBytes = weightsMinBytes;
      mlir::qslaw::buildCUDAPipeline(pm, popts);
    } else {
      announce("Lowering through the CPU pipeline to the LLVM dialect");
      mlir::qslaw::CPUPipelineOptions popts;
      popts.ukernelThreads = numThreads;
      popts.parallel = parallelLoops;
      popts.libraryGemm = gemmMinFlops >= 0;
      popts.gemmMinFlops = std::max<int64_t>(gemmMinFlops, 0);
      popts.weightsFile = weightsFile;
      popts.weightsMinBytes = weightsMinBytes;
      mlir::qslaw::buildCPUPipeline(pm, popts);
    }
    if (failed(pm.run(*module)))
      return fail(target + " lowering failed");
    if (externalWeights && failed(recordExternalWeights(*module, signature,
                                                        binary)))
      return fail("internal error: qslaw-external-weights left no record");
  }
  if (binary) {
    announce(emit != "obj" ? "Compiling and linking " + outputFile
                           : "Compiling " + outputFile);
    qslaw::CPULibraryOptions lopts;
    lopts.entry = options.entryName;
    lopts.signatureJson = signature;
    lopts.objectOnly = emit == "obj";
    lopts.openmp = parallelLoops && target == "cpu";
    lopts.device = emulate ? "cpu" : target.getValue();
    if (training)
      lopts.extraEntries = trainEntries;
    // libqslaw_ukernels.so lives in ../lib beside this tool's bin/.
    std::string self = sys::fs::getMainExecutable(argv[0], (void *)&fail);
    SmallString<256> libDir(sys::path::parent_path(sys::path::parent_path(self)));
    sys::path::append(libDir, "lib");
    lopts.runtimeLibDir = std::string(libDir);
    if (emit == "trainer")
      lopts.executableInputs = {"-L" + lopts.runtimeLibDir, "-lqslaw_trainer",
                                "-lqslaw_runtime",
                                "-Wl,-rpath," + lopts.runtimeLibDir};
    if (failed(qslaw::emitCPULibrary(*module, lopts, outputFile)))
      return fail("emitting " + outputFile + " failed");
    announce("Wrote " + outputFile);
    return 0;
  }
  std::string errorMessage;
  auto out = mlir::openOutputFile(outputFile, &errorMessage);
  if (!out)
    return fail(errorMessage);
  if (emit == "llvmir") {
    announce("Translating to LLVM IR");
    LLVMContext llvmContext;
    auto llvmModule = mlir::translateModuleToLLVMIR(*module, llvmContext);
    if (!llvmModule)
      return fail("translation to LLVM IR failed");
    llvmModule->print(out->os(), nullptr);
  } else {
    module->print(out->os(), mlir::OpPrintingFlags());
  }
  announce("Writing " + outputFile);
  out->keep();
  return 0;
}
