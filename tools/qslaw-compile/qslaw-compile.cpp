//===- qslaw-compile.cpp - ONNX model -> qslaw artifact (phased driver) ---===//
//
//   qslaw-compile MODEL.onnx -o OUT [--emit=lib|trainer|obj|onnx-mlir|mlir|llvm|llvmir]
//       [--target=cpu|cuda|cuda-emulate] [--shape NAME=D0xD1 ...]
//       [--quantize=w4g128[,sym|asym][,mode=scale|gamma]] [--quantize-layers=REGEX]
//       [--train ...] [--weights=embed|external] (see --help)
//
// Prints its phases like onnx-mlir ("[k/N] phase ..."). A thin main: the
// phases live in the driver library (include/qslaw/Driver/Driver.h).
//
//===----------------------------------------------------------------------===//
#include "qslaw/Driver/Driver.h"
#include "qslaw/Import/ONNX/Importer.h"
#include "qslaw/Pipelines/Pipelines.h"

#include "mlir/IR/AsmState.h"
#include "mlir/Support/Timing.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/Path.h"
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
static cl::opt<std::string> weightsWrite(
    cl::cat(compileCat), "weights-write",
    cl::desc("--weights=external: how OUT.weights is written: cached "
             "(default: through the page cache, where a run on this machine "
             "finds it) or direct (O_DIRECT, past the page cache: the "
             "compile costs the disk's time only and leaves the cache alone, "
             "for artifacts built to run elsewhere; a first run here reads "
             "the file from the disk)"),
    cl::init("cached"));
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
static cl::opt<bool> mergeFunctions(
    cl::cat(compileCat), "merge-functions",
    cl::desc("--target=cpu: compile identical outlined loop nests (those of "
             "identical layers) once (default); --merge-functions=false "
             "keeps every copy"),
    cl::init(true));
static cl::opt<bool> outlineLayers(
    cl::cat(compileCat), "outline-layers",
    cl::desc("--target=cpu: lower each model layer (ops named "
             "'.../layers.N/...') as a function of its own, so that "
             "identical layers are lowered and compiled once (default); "
             "the numbers are the inline build's bit for bit. "
             "--outline-layers=false keeps every layer inline"),
    cl::init(true));
static cl::opt<int64_t> outlineMinOps(
    cl::cat(compileCat), "outline-min-ops",
    cl::desc("--target=cpu: each top-level loop nest of at least this many "
             "operations becomes a function of its own, compiled once for "
             "all identical nests (default 8; 0: none). Smaller functions "
             "compile faster in LLVM; the numbers do not change"),
    cl::init(8));
static cl::opt<int64_t> maxRss(
    cl::cat(compileCat), "max-rss",
    cl::desc("Stop with an error naming the phase when the compiler's "
             "resident memory passes this many MiB (default: the memory "
             "available when it starts; 0: no limit), rather than being "
             "killed by the kernel"),
    cl::init(-1));
static cl::opt<int64_t> gemmMinFlops(
    cl::cat(compileCat), "gemm-min-flops",
    cl::desc("--target=cpu: f32 contractions of at least this many flops "
             "(2 B M N K) call the GEMM library; -1: none does"),
    cl::init(1 << 20));
static cl::opt<bool> gemmLabelRows(
    cl::cat(compileCat), "gemm-label-rows",
    cl::desc("--target=cpu, training: the head's GEMMs (the logits the loss "
             "reads, their input gradient) multiply only the rows whose "
             "next-token label counts, not the ignored image and prompt "
             "positions (same numbers, fewer flops); false: every row"),
    cl::init(true));
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
static cl::opt<int64_t> scaleStartLayer(cl::cat(compileCat),
    "scale-start-layer",
    cl::desc("Scales train only on decoder layers i > N (the reference's "
             "--start_layer, 5 in its recipe); -1: all selected layers"),
    cl::init(-1));
static cl::opt<std::string> initParams(cl::cat(compileCat), "init-params",
    cl::desc("A trainer's --export-params directory: its learned scales, "
             "gamma and float parameters replace the model's (frozen unless "
             "they train again)"),
    cl::init(""));
static cl::opt<std::string> trainLora(cl::cat(compileCat), "train-lora",
    cl::desc("Regex over linear layer names (quantized layers, or float "
             "weights/nodes for full-precision LoRA) that get a trainable "
             "LoRA adapter (y += alpha/r * x A^T B^T); empty: none"),
    cl::init(""));
static cl::opt<int64_t> loraRank(cl::cat(compileCat), "lora-rank",
                                 cl::desc("LoRA rank r"), cl::init(8));
static cl::opt<double> loraAlpha(cl::cat(compileCat), "lora-alpha",
                                 cl::desc("LoRA alpha (the branch is scaled "
                                          "by alpha/r)"),
                                 cl::init(16.0));
static cl::opt<uint64_t> loraSeed(cl::cat(compileCat), "lora-seed",
                                  cl::desc("Seed of the adapters' A"),
                                  cl::init(0));
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

int main(int argc, char **argv) {
  InitLLVM init(argc, argv);
  mlir::qslaw::registerPipelines();
  mlir::registerAsmPrinterCLOptions();
  // --mlir-timing (and its display options): one report for every phase.
  mlir::registerDefaultTimingManagerCLOptions();
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
  using namespace qslaw::driver;
  CompileOptions o;
  o.input = inputFile;
  o.output = outputFile;
  if (o.input.empty() || o.output.empty())
    return fail("expected MODEL.onnx and -o OUT (see --help)");
  auto emitKind = parseEmit(emit);
  if (!emitKind)
    return fail("--emit=" + emit + " is not supported (lib, trainer, obj, "
                                   "onnx-mlir, mlir, llvm, llvmir)");
  o.emit = *emitKind;
  auto targetKind = parseTarget(target);
  if (!targetKind)
    return fail("--target=" + target +
                " is not supported (cpu, cuda, cuda-emulate)");
  o.target = *targetKind;
  o.gpuChips.assign(gpuChips.begin(), gpuChips.end());
  o.gpuFormat = gpuFormat;
  o.cudaPath = cudaPath;
  o.cudaHandKernels = cudaHandKernels;
  if (weightsMode != "embed" && weightsMode != "external")
    return fail("--weights=" + weightsMode + " is not one of embed, external");
  o.externalWeights = weightsMode == "external";
  o.weightsMinBytes = weightsMinBytes;
  if (weightsWrite != "cached" && weightsWrite != "direct")
    return fail("--weights-write=" + weightsWrite +
                " is not one of cached, direct");
  o.weightsDirect = weightsWrite == "direct";
  o.numThreads = numThreads;
  o.parallel = parallelLoops;
  o.mergeFunctions = mergeFunctions;
  o.outlineLayers = outlineLayers;
  o.outlineMinOps = outlineMinOps;
  o.maxRssMiB = maxRss;
  o.gemmMinFlops = gemmMinFlops;
  o.gemmLabelRows = gemmLabelRows;
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
    o.shapes[name] = v;
  }
  if (!quantize.empty()) {
    o.quantize = parseQuantizeSpec(quantize);
    if (!o.quantize)
      return fail("--quantize=" + quantize +
                  ": expected w<bits>g<group>[,sym|asym][,mode=scale|gamma]");
    o.quantize->layers = quantizeLayers;
    o.quantize->clipSteps = clipSteps;
    o.quantizeSpec = quantize;
  }
  o.train = train;
  o.trainStep.scales = trainScales;
  o.trainStep.params = trainParams;
  if (scaleStartLayer < -1)
    return fail("--scale-start-layer=" + Twine(int64_t(scaleStartLayer)) +
                ": expected a layer index >= 0, or -1 for all layers");
  o.trainStep.scaleStartLayer = scaleStartLayer;
  o.trainStep.loss = trainLoss;
  o.trainStep.beta1 = adamBeta1;
  o.trainStep.beta2 = adamBeta2;
  o.trainStep.eps = adamEps;
  o.trainStep.weightDecay = weightDecay;
  o.initParams = initParams;
  if (!initParams.empty() && !o.quantize)
    return fail("--init-params loads learned scales: it needs the --quantize "
                "of the run that learned them");
  if (trainLora.empty() && (loraRank.getNumOccurrences() ||
                            loraAlpha.getNumOccurrences() ||
                            loraSeed.getNumOccurrences()))
    return fail("--lora-rank, --lora-alpha and --lora-seed apply to the "
                "adapters of --train-lora, which is not given");
  if (!trainLora.empty()) {
    if (!o.training())
      return fail("--train-lora needs --train or --emit=trainer");
    if (loraRank < 1)
      return fail("--lora-rank=" + Twine(int64_t(loraRank)) +
                  ": the rank must be >= 1");
    mlir::qslaw::InsertLoraOptions lo;
    lo.layers = trainLora;
    lo.rank = loraRank;
    lo.alpha = loraAlpha;
    lo.seed = loraSeed;
    o.lora = lo;
  }
  // libqslaw_ukernels.so lives in ../lib beside this tool's bin/.
  std::string self = sys::fs::getMainExecutable(argv[0], (void *)&fail);
  SmallString<256> libDir(sys::path::parent_path(sys::path::parent_path(self)));
  sys::path::append(libDir, "lib");
  o.runtimeLibDir = std::string(libDir);
  mlir::DefaultTimingManager timing;
  mlir::applyDefaultTimingManagerCLOptions(timing);
  return compile(o, outs(), "qslaw-compile", &timing);
}
