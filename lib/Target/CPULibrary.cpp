//===- CPULibrary.cpp - model shared libraries for the CPU ----------------===//
#include "qslaw/Target/CPULibrary.h"
#include "qslaw/Dialect/QSLAW/IR/QSLAWOps.h"
#include "qslaw/Support/Signature.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Target/LLVMIR/Export.h"
#include "llvm/ExecutionEngine/Orc/JITTargetMachineBuilder.h"
#include "llvm/IR/LegacyPassManager.h"
#include "llvm/IR/Module.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Passes/PassBuilder.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/ADT/SetVector.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Target/TargetMachine.h"

using namespace mlir;

namespace qslaw {

static std::string dtypeOf(Type e) {
  if (e.isBF16())
    return "bf16";
  return (isa<FloatType>(e) ? "f" : "i") +
         std::to_string(e.getIntOrFloatBitWidth());
}

/// The entry's name, inputs and outputs (names from qslaw.inputs/outputs,
/// index ranges from qslaw.index_ranges).
static FunctionSignature functionSignature(func::FuncOp entry) {
  auto names = [&](StringRef attr, size_t n, StringRef prefix) {
    std::vector<std::string> out;
    auto arr = entry->getAttrOfType<ArrayAttr>(attr);
    for (size_t i = 0; i < n; ++i) {
      auto s = arr && i < arr.size() ? dyn_cast<StringAttr>(arr[i]) : StringAttr();
      out.push_back(s ? s.str() : (prefix + std::to_string(i)).str());
    }
    return out;
  };
  auto ranges = entry->getAttrOfType<DictionaryAttr>("qslaw.index_ranges");
  auto specs = [&](TypeRange types, const std::vector<std::string> &ns,
                   DictionaryAttr ranges) {
    std::vector<TensorSpec> a;
    for (auto [t, n] : llvm::zip(types, ns)) {
      auto rt = cast<RankedTensorType>(t);
      TensorSpec spec{n, dtypeOf(rt.getElementType()), rt.getShape().vec(),
                      std::nullopt};
      // Valid values of an index input: [begin, end) or `ignore`.
      if (auto r = ranges ? ranges.getAs<DictionaryAttr>(n) : DictionaryAttr()) {
        auto begin = r.getAs<IntegerAttr>("begin"), end = r.getAs<IntegerAttr>("end");
        auto ignore = r.getAs<IntegerAttr>("ignore");
        auto indexes = r.getAs<StringAttr>("indexes");
        if (begin && end)
          spec.range = IndexRange{
              begin.getInt(), end.getInt(),
              ignore ? std::optional<int64_t>(ignore.getInt()) : std::nullopt,
              indexes ? indexes.str() : ""};
      }
      a.push_back(std::move(spec));
    }
    return a;
  };
  FunctionType ft = entry.getFunctionType();
  return FunctionSignature{
      entry.getSymName().str(),
      specs(ft.getInputs(), names("qslaw.inputs", ft.getNumInputs(), "input"),
            ranges),
      specs(ft.getResults(),
            names("qslaw.outputs", ft.getNumResults(), "output"), {})};
}

ModelSignature buildSignature(func::FuncOp entry) {
  ModelSignature sig;
  static_cast<FunctionSignature &>(sig) = functionSignature(entry);
  // The entry's own ops, then those of the functions it calls (a
  // trainer's @forward calls @forward_params), in call order.
  llvm::SetVector<func::FuncOp> funcs;
  funcs.insert(entry);
  auto module = entry->getParentOfType<ModuleOp>();
  for (size_t i = 0; i < funcs.size(); ++i)
    func::FuncOp(funcs[i]).walk([&](func::CallOp call) {
      if (auto callee = module.lookupSymbol<func::FuncOp>(call.getCallee()))
        funcs.insert(callee);
    });
  for (func::FuncOp f : funcs)
    f.walk([&](mlir::qslaw::QMatmulOp op) {
      QuantizedLayer l;
      llvm::raw_string_ostream os(l.op);
      op.getLoc().print(os);
      auto spec = op.getSpec();
      auto codes = op.getCodes().getType();
      l.bits = spec.getBits();
      l.group = spec.getGroupSizeFor(codes.getDimSize(1));
      l.symmetric = spec.getSymmetric();
      l.mode = stringifyScaleMode(spec.getMode()).str();
      l.shape = {codes.getDimSize(0), codes.getDimSize(1)};
      // What the ONNX exporter rewrites (set by qslaw-quantize-weights).
      for (auto [key, field] : {std::pair{"qslaw.layer", &l.layer},
                                std::pair{"qslaw.node", &l.node},
                                std::pair{"qslaw.weight", &l.weight}})
        if (auto a = op->getAttrOfType<StringAttr>(key))
          *field = a.str();
      sig.quantization.push_back(std::move(l));
    });
  return sig;
}

void addFunctionSignatures(ModelSignature &sig, ModuleOp module,
                           ArrayRef<std::string> functions) {
  for (const std::string &name : functions) {
    auto f = module.lookupSymbol<func::FuncOp>(name);
    if (!f)
      continue;
    sig.functions[name] = functionSignature(f);
    auto names = f->getAttrOfType<ArrayAttr>("qslaw.params");
    auto kinds = f->getAttrOfType<ArrayAttr>("qslaw.param_kinds");
    auto sources = f->getAttrOfType<ArrayAttr>("qslaw.param_sources");
    if (name != "init_params" || !names || !kinds || !sources)
      continue;
    if (!sig.training)
      sig.training.emplace();
    for (unsigned i = 0; i < names.size(); ++i)
      sig.training->params.push_back(TrainableParam{
          cast<StringAttr>(names[i]).str(), cast<StringAttr>(kinds[i]).str(),
          cast<StringAttr>(sources[i]).str(),
          cast<RankedTensorType>(f.getResultTypes()[i]).getShape().vec()});
  }
}

/// qslaw_entry_packed(void **args): args[i] points to the i-th descriptor
/// pointer (qslaw/Runtime/TensorAbi.h: offset 0, the static sizes). It
/// calls the entry itself with each descriptor's aligned pointer when the
/// entry takes bare pointers (`llvm.bareptr`, set by the driver), else
/// _mlir_ciface_<entry>(desc0, desc1, ...).
static LogicalResult addPackedEntry(ModuleOp module, StringRef entry,
                                    StringRef symbol) {
  MLIRContext *ctx = module.getContext();
  OpBuilder b(ctx);
  b.setInsertionPointToEnd(module.getBody());
  Location loc = module.getLoc();
  auto ptr = LLVM::LLVMPointerType::get(ctx);
  auto ciface = module.lookupSymbol<LLVM::LLVMFuncOp>(("_mlir_ciface_" +
                                                       entry).str());
  LLVM::LLVMFuncOp bare;
  if (auto f = module.lookupSymbol<LLVM::LLVMFuncOp>(entry);
      !ciface && f && llvm::all_of(f.getArgumentTypes(),
                                   [&](Type t) { return t == ptr; }))
    bare = f;
  LLVM::LLVMFuncOp callee = ciface ? ciface : bare;
  if (!callee)
    return emitError(loc) << "no C interface or bare-pointer function for "
                          << "entry '" << entry << "' in the lowered module";
  auto voidTy = LLVM::LLVMVoidType::get(ctx);
  auto fn = LLVM::LLVMFuncOp::create(b, loc, symbol,
                                     LLVM::LLVMFunctionType::get(voidTy, {ptr}));
  Block *body = fn.addEntryBlock(b);
  b.setInsertionPointToStart(body);
  SmallVector<Value> args;
  for (unsigned i = 0; i < callee.getNumArguments(); ++i) {
    Value slot = LLVM::GEPOp::create(b, loc, ptr, ptr, body->getArgument(0),
                                     ArrayRef<LLVM::GEPArg>{int32_t(i)});
    Value descPtrPtr = LLVM::LoadOp::create(b, loc, ptr, slot);
    Value descPtr = LLVM::LoadOp::create(b, loc, ptr, descPtrPtr);
    if (bare) // the descriptor's second field: the aligned pointer
      descPtr = LLVM::LoadOp::create(
          b, loc, ptr,
          LLVM::GEPOp::create(b, loc, ptr, ptr, descPtr,
                              ArrayRef<LLVM::GEPArg>{int32_t(1)}));
    args.push_back(descPtr);
  }
  LLVM::CallOp::create(b, loc, callee, args);
  LLVM::ReturnOp::create(b, loc, ValueRange{});
  // Reached through the packed entry only, as the C interface was.
  if (bare)
    bare.setLinkage(LLVM::Linkage::Internal);
  return success();
}

/// An entry whose only caller is its C-interface wrapper is inlined into
/// it and not exported. Otherwise the wrapper calls it with every memref
/// descriptor expanded into scalars: 7 per 2-d buffer, over a thousand for
/// the optimizer entries of a model with a few hundred trainable tensors,
/// on which instruction selection is quadratic (the stack stores of the
/// arguments; 6.6 s of the small LLaVA trainer's 12 s of code generation
/// was @_mlir_ciface_apply_step's one call).
static void inlineIntoCInterface(ModuleOp module, StringRef entry) {
  auto fn = module.lookupSymbol<LLVM::LLVMFuncOp>(entry);
  auto wrapper =
      module.lookupSymbol<LLVM::LLVMFuncOp>(("_mlir_ciface_" + entry).str());
  if (!fn || !wrapper || fn.isExternal())
    return;
  auto uses = SymbolTable::getSymbolUses(fn, module);
  if (!uses)
    return;
  for (const SymbolTable::SymbolUse &use : *uses)
    if (use.getUser()->getParentOfType<LLVM::LLVMFuncOp>() != wrapper)
      return; // another function calls it (train_step calls grad_step)
  fn.setLinkage(LLVM::Linkage::Internal);
  fn.setAlwaysInline(true);
}

static LogicalResult addEntryPoints(ModuleOp module,
                                    const CPULibraryOptions &options) {
  if (failed(addPackedEntry(module, options.entry, "qslaw_entry_packed")))
    return failure();
  for (const std::string &e : options.extraEntries)
    if (failed(addPackedEntry(module, e, "qslaw_entry_packed_" + e)))
      return failure();
  inlineIntoCInterface(module, options.entry);
  for (const std::string &e : options.extraEntries)
    inlineIntoCInterface(module, e);
  MLIRContext *ctx = module.getContext();
  OpBuilder b(ctx);
  Location loc = module.getLoc();
  auto ptr = LLVM::LLVMPointerType::get(ctx);
  if (!options.executableInputs.empty()) {
    // main(argc, argv) -> qslaw_trainer_main(argc, argv)
    b.setInsertionPointToEnd(module.getBody());
    auto i32 = IntegerType::get(ctx, 32);
    auto fnTy = LLVM::LLVMFunctionType::get(i32, {i32, ptr});
    auto callee = LLVM::LLVMFuncOp::create(b, loc, options.mainCallee, fnTy);
    auto mainFn = LLVM::LLVMFuncOp::create(b, loc, "main", fnTy);
    Block *body = mainFn.addEntryBlock(b);
    b.setInsertionPointToStart(body);
    auto call = LLVM::CallOp::create(b, loc, callee, body->getArguments());
    LLVM::ReturnOp::create(b, loc, call.getResult());
  }

  // The signature: a NUL-terminated string and a pointer to it.
  b.setInsertionPointToEnd(module.getBody());
  std::string text = options.signatureJson;
  text.push_back('\0');
  auto arrTy = LLVM::LLVMArrayType::get(IntegerType::get(ctx, 8), text.size());
  LLVM::GlobalOp::create(b, loc, arrTy, /*isConstant=*/true,
                         LLVM::Linkage::Private, "qslaw_signature_text",
                         b.getStringAttr(text));
  auto sigPtr = LLVM::GlobalOp::create(b, loc, ptr, /*isConstant=*/true,
                                       LLVM::Linkage::External,
                                       "qslaw_signature_json", Attribute());
  Block *init = b.createBlock(&sigPtr.getInitializerRegion());
  b.setInsertionPointToStart(init);
  Value addr = LLVM::AddressOfOp::create(b, loc, ptr, "qslaw_signature_text");
  LLVM::ReturnOp::create(b, loc, addr);
  return success();
}

/// LLVM's -O3, as MLIR's makeOptimizingTransformer(3, 0, tm) builds it
/// (loop unrolling, interleaving, loop and SLP vectorisation), without
/// CalledValuePropagation: that pass only annotates indirect calls with
/// their possible callees (the generated code makes none), yet its solver
/// took 45 % of -O3 on a trainer whose entries pass hundreds of pointers
/// (0.7 of 1.7 s on the medium LLaVA), growing with the trainable tensors.
///
/// `hostOnly`: the host side of a CUDA library, whose every loop is a
/// kernel (qslaw-gpu-device-memory moves even one-thread work into
/// launches): no vectorisers. Its functions are long straight runs of
/// launches, on which the SLP vectoriser's scheduling is quadratic (27.6 of
/// the small LLaVA CUDA trainer's 48 s; 1.9 s without it).
static void optimizeModule(llvm::Module &m, llvm::TargetMachine *tm,
                           bool hostOnly) {
  llvm::LoopAnalysisManager lam;
  llvm::FunctionAnalysisManager fam;
  llvm::CGSCCAnalysisManager cgam;
  llvm::ModuleAnalysisManager mam;
  llvm::PipelineTuningOptions tuning;
  tuning.LoopUnrolling = true;
  tuning.LoopInterleaving = true;
  tuning.LoopVectorization = !hostOnly;
  tuning.SLPVectorization = !hostOnly;
  llvm::PassInstrumentationCallbacks callbacks;
  callbacks.registerShouldRunOptionalPassCallback(
      [](llvm::StringRef pass, llvm::Any) {
        return pass != "CalledValuePropagationPass";
      });
  llvm::PassBuilder pb(tm, tuning, std::nullopt, &callbacks);
  pb.registerModuleAnalyses(mam);
  pb.registerCGSCCAnalyses(cgam);
  pb.registerFunctionAnalyses(fam);
  pb.registerLoopAnalyses(lam);
  pb.crossRegisterProxies(lam, fam, cgam, mam);
  pb.buildPerModuleDefaultPipeline(llvm::OptimizationLevel::O3).run(m, mam);
}

LogicalResult emitCPULibrary(ModuleOp module, const CPULibraryOptions &options,
                             StringRef outputPath) {
  if (failed(addEntryPoints(module, options)))
    return failure();
  llvm::InitializeNativeTarget();
  llvm::InitializeNativeTargetAsmPrinter();
  auto jtmb = llvm::orc::JITTargetMachineBuilder::detectHost();
  if (!jtmb)
    return emitError(module.getLoc()) << llvm::toString(jtmb.takeError());
  jtmb->setRelocationModel(llvm::Reloc::PIC_);
  jtmb->setCodeGenOptLevel(llvm::CodeGenOptLevel::Aggressive);
  auto tm = jtmb->createTargetMachine();
  if (!tm)
    return emitError(module.getLoc()) << llvm::toString(tm.takeError());

  TimingScope none, &parent = options.timing ? *options.timing : none;
  TimingScope timer = parent.nest("Translate to LLVM IR");
  llvm::LLVMContext llvmContext;
  auto llvmModule = translateModuleToLLVMIR(module, llvmContext);
  if (!llvmModule)
    return emitError(module.getLoc()) << "translation to LLVM IR failed";
  llvmModule->setDataLayout((*tm)->createDataLayout());
  llvmModule->setTargetTriple((*tm)->getTargetTriple());
  timer.stop();
  timer = parent.nest("LLVM optimisation (O3)");
  optimizeModule(*llvmModule, tm->get(), options.device == "cuda");

  std::string objPath = options.objectOnly ? outputPath.str()
                                           : (outputPath + ".o").str();
  timer.stop();
  timer = parent.nest("LLVM code generation");
  {
    std::error_code ec;
    llvm::ToolOutputFile obj(objPath, ec, llvm::sys::fs::OF_None);
    if (ec)
      return emitError(module.getLoc()) << objPath << ": " << ec.message();
    llvm::legacy::PassManager pm;
    if ((*tm)->addPassesToEmitFile(pm, obj.os(), nullptr,
                                   llvm::CodeGenFileType::ObjectFile))
      return emitError(module.getLoc()) << "the target cannot emit objects";
    pm.run(*llvmModule);
    obj.keep();
  }
  timer.stop();
  if (options.beforeLink && failed(options.beforeLink())) {
    llvm::sys::fs::remove(objPath);
    return failure();
  }
  if (options.objectOnly)
    return success();

  timer = parent.nest("Link");
  auto cc = llvm::sys::findProgramByName("clang-22");
  if (!cc)
    cc = llvm::sys::findProgramByName("cc");
  if (!cc)
    return emitError(module.getLoc()) << "no linker driver (clang-22 or cc) on PATH";
  std::string runnerUtils = std::string(QSLAW_MLIR_LIB_DIR) + "/libmlir_c_runner_utils.so";
  bool exe = !options.executableInputs.empty();
  std::vector<std::string> argv{*cc, exe ? "-rdynamic" : "-shared", "-o",
                                outputPath.str(), objPath,
                                "-L" + options.runtimeLibDir,
                                "-Wl,-rpath," + options.runtimeLibDir};
  if (options.device == "cuda") {
    argv.push_back("-lqslaw_cuda_runtime");
  } else {
    if (options.openmp)
      argv.insert(argv.end(),
                  {"-L" + std::string(QSLAW_MLIR_LIB_DIR), "-lomp"});
    argv.insert(argv.end(),
                {"-lqslaw_ukernels", runnerUtils,
                 "-Wl,-rpath," + std::string(QSLAW_MLIR_LIB_DIR)});
  }
  argv.push_back("-lm");
  if (exe) {
    argv.insert(argv.begin() + 5, options.executableInputs.begin(),
                options.executableInputs.end());
    argv.push_back("-lstdc++");
  }
  SmallVector<StringRef> args(argv.begin(), argv.end());
  std::string errMsg;
  int rc = llvm::sys::ExecuteAndWait(*cc, args, std::nullopt, {}, 0, 0, &errMsg);
  llvm::sys::fs::remove(objPath);
  if (rc != 0)
    return emitError(module.getLoc())
           << "linking " << outputPath << " failed (" << rc << ") " << errMsg;
  return success();
}

} // namespace qslaw
