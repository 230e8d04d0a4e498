//===- JitRunner.cpp - compile and run a tensor-level function ------------===//
#include "qslaw/Runtime/JitRunner.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/ExecutionEngine/OptUtils.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/OpenMP/OpenMPToLLVMIRTranslation.h"
#include "llvm/ADT/APFloat.h"
#include "llvm/Support/TargetSelect.h"

#include <functional>

using namespace mlir;
using llvm::Error;
using llvm::Expected;

namespace qslaw {

namespace {
Error err(const llvm::Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), msg);
}

std::string typeStr(Type t) {
  std::string s;
  llvm::raw_string_ostream os(s);
  os << t;
  return s;
}
} // namespace

TensorSpec tensorSpecOf(RankedTensorType t, llvm::StringRef name) {
  TensorSpec s;
  s.name = name.str();
  Type e = t.getElementType();
  s.dtype = e.isBF16() ? "bf16"
            : isa<FloatType>(e)
                ? "f" + std::to_string(e.getIntOrFloatBitWidth())
                : "i" + std::to_string(e.getIntOrFloatBitWidth());
  s.shape.assign(t.getShape().begin(), t.getShape().end());
  return s;
}

Expected<std::unique_ptr<JitFunction>>
JitFunction::compile(ModuleOp module, llvm::StringRef entry,
                     const mlir::qslaw::CPUPipelineOptions &options) {
  std::unique_ptr<JitFunction> fn(new JitFunction());
  fn->entry = entry.str();
  auto func = module.lookupSymbol<func::FuncOp>(entry);
  if (!func)
    return err("no function '" + entry + "' in the module");
  auto checkTypes = [&](TypeRange types, const char *kind,
                        std::vector<RankedTensorType> &out) -> Error {
    for (auto [i, t] : llvm::enumerate(types)) {
      auto rt = dyn_cast<RankedTensorType>(t);
      if (!rt || !rt.hasStaticShape())
        return err("function '" + entry + "' " + kind + " #" + llvm::Twine(i) +
                   " has type " + typeStr(t) +
                   "; only statically shaped tensors are supported");
      out.push_back(rt);
    }
    return Error::success();
  };
  if (Error e = checkTypes(func.getArgumentTypes(), "argument", fn->inputTypes))
    return std::move(e);
  if (Error e = checkTypes(func.getResultTypes(), "result", fn->outputTypes))
    return std::move(e);
  func->setAttr("llvm.emit_c_interface", UnitAttr::get(module.getContext()));

  MLIRContext *ctx = module.getContext();
  DialectRegistry registry;
  registerBuiltinDialectTranslation(registry);
  registerLLVMDialectTranslation(registry);
  registerOpenMPDialectTranslation(registry);
  ctx->appendDialectRegistry(registry);

  PassManager pm(ctx);
  mlir::qslaw::buildCPUPipeline(pm, options);
  if (failed(pm.run(module)))
    return err("lowering '" + entry + "' through the CPU pipeline failed");

  static bool initialized = [] {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
    return true;
  }();
  (void)initialized;
  // `transformer` is a function_ref: the callable must outlive create().
  std::function<llvm::Error(llvm::Module *)> optimize =
      makeOptimizingTransformer(3, 0, nullptr);
  ExecutionEngineOptions opts;
  opts.transformer = optimize;
  opts.jitCodeGenOptLevel = llvm::CodeGenOptLevel::Aggressive;
  SmallVector<StringRef> libs;
#ifdef QSLAW_MLIR_C_RUNNER_UTILS
  libs.push_back(QSLAW_MLIR_C_RUNNER_UTILS);
#endif
#ifdef QSLAW_LIBOMP
  if (options.parallel) // the OpenMP loops' runtime
    libs.push_back(QSLAW_LIBOMP);
#endif
  opts.sharedLibPaths = libs;
  auto engine = ExecutionEngine::create(module, opts);
  if (!engine)
    return engine.takeError();
  fn->engine = std::move(*engine);
  return fn;
}

Error JitFunction::prepare(const std::vector<NpyArray> &in) {
  if (in.size() != inputTypes.size())
    return err("entry '" + entry + "' takes " + llvm::Twine(inputTypes.size()) +
               " inputs, got " + llvm::Twine(in.size()));
  buffers.clear();
  for (size_t i = 0; i < in.size(); ++i) {
    auto b = std::make_shared<AbiBuffer>(tensorSpecOf(inputTypes[i], ""));
    if (Error e = b->fill(in[i], "input #" + std::to_string(i)))
      return e;
    buffers.push_back(b);
  }
  for (RankedTensorType t : outputTypes)
    buffers.push_back(std::make_shared<AbiBuffer>(tensorSpecOf(t, "")));
  descriptorPtrs.clear();
  for (auto &b : buffers)
    descriptorPtrs.push_back(b->descriptor());
  packedArgs.clear();
  for (void *&p : descriptorPtrs)
    packedArgs.push_back(&p);
  return Error::success();
}

void JitFunction::invokePrepared() {
  llvm::cantFail(engine->invokePacked("_mlir_ciface_" + entry, packedArgs));
}

std::vector<NpyArray> JitFunction::preparedOutputs() const {
  std::vector<NpyArray> out;
  for (size_t i = inputTypes.size(); i < buffers.size(); ++i)
    out.push_back(buffers[i]->toNpy());
  return out;
}

Expected<std::vector<NpyArray>>
JitFunction::run(const std::vector<NpyArray> &in) {
  if (Error e = prepare(in))
    return std::move(e);
  invokePrepared();
  return preparedOutputs();
}

} // namespace qslaw
