//===- JitRunner.cpp - compile and run a tensor-level function ------------===//
#include "qslaw/Runtime/JitRunner.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/ExecutionEngine/OptUtils.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"
#include "llvm/ADT/APFloat.h"
#include "llvm/Support/TargetSelect.h"

#include <cstdlib>
#include <functional>
#include <cstring>

using namespace mlir;
using llvm::Error;
using llvm::Expected;

namespace qslaw {

namespace {
Error err(const llvm::Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), msg);
}

std::string shapeStr(llvm::ArrayRef<int64_t> shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string typeStr(Type t) {
  std::string s;
  llvm::raw_string_ostream os(s);
  os << t;
  return s;
}

/// How one tensor crosses the lowered ABI.
struct Abi {
  unsigned rank;          // descriptor rank
  std::vector<int64_t> sizes;
  size_t bytes;           // storage size
  unsigned packedBits;    // 2 or 4 when codes are packed, else 0
  size_t elemBytes;       // bytes per element when not packed
};

Abi abiOf(RankedTensorType t) {
  Abi a;
  Type e = t.getElementType();
  int64_t n = t.getNumElements();
  unsigned width = e.getIntOrFloatBitWidth();
  if (e.isInteger() && width < 8 && 8 % width == 0) {
    // Narrow-type emulation linearises the memref into bytes.
    a.packedBits = width;
    a.elemBytes = 0;
    a.bytes = (n * width + 7) / 8;
    a.rank = 1;
    a.sizes = {int64_t(a.bytes)};
    return a;
  }
  a.packedBits = 0;
  a.elemBytes = (width + 7) / 8;
  a.bytes = n * a.elemBytes;
  a.rank = t.getRank();
  a.sizes.assign(t.getShape().begin(), t.getShape().end());
  return a;
}

uint16_t floatToBits(float v, const llvm::fltSemantics &sem) {
  bool lost;
  llvm::APFloat f(v);
  f.convert(sem, llvm::APFloat::rmNearestTiesToEven, &lost);
  return uint16_t(f.bitcastToAPInt().getZExtValue());
}

float bitsToFloat(uint16_t bits, const llvm::fltSemantics &sem) {
  llvm::APFloat f(sem, llvm::APInt(16, bits));
  bool lost;
  f.convert(llvm::APFloat::IEEEsingle(), llvm::APFloat::rmNearestTiesToEven,
            &lost);
  return f.convertToFloat();
}

/// Integer value `i` of an integer npy array.
int64_t intAt(const NpyArray &a, int64_t i) {
  const uint8_t *p = a.data.data() + i * a.elementSize();
  bool sgn = a.dtype[0] == 'i';
  switch (a.elementSize()) {
  case 1: return sgn ? int64_t(int8_t(*p)) : int64_t(*p);
  case 2: { uint16_t v; memcpy(&v, p, 2); return sgn ? int64_t(int16_t(v)) : v; }
  case 4: { uint32_t v; memcpy(&v, p, 4); return sgn ? int64_t(int32_t(v)) : v; }
  default: { int64_t v; memcpy(&v, p, 8); return v; }
  }
}

double floatAt(const NpyArray &a, int64_t i) {
  const uint8_t *p = a.data.data() + i * a.elementSize();
  if (a.dtype == "f4") { float v; memcpy(&v, p, 4); return v; }
  if (a.dtype == "f8") { double v; memcpy(&v, p, 8); return v; }
  uint16_t v; memcpy(&v, p, 2);
  return bitsToFloat(v, llvm::APFloat::IEEEhalf());
}
} // namespace

struct JitFunction::Buffer {
  Abi abi;
  RankedTensorType type;
  void *data = nullptr;
  std::vector<int64_t> descriptor; // ptr, ptr, offset, sizes, strides
  explicit Buffer(RankedTensorType t) : abi(abiOf(t)), type(t) {
    size_t n = std::max<size_t>(abi.bytes, 1);
    data = std::aligned_alloc(64, (n + 63) / 64 * 64);
    memset(data, 0, (n + 63) / 64 * 64);
    descriptor.push_back(int64_t(reinterpret_cast<intptr_t>(data)));
    descriptor.push_back(int64_t(reinterpret_cast<intptr_t>(data)));
    descriptor.push_back(0);
    for (int64_t s : abi.sizes)
      descriptor.push_back(s);
    int64_t stride = 1;
    std::vector<int64_t> strides(abi.rank);
    for (int r = int(abi.rank) - 1; r >= 0; --r) {
      strides[r] = stride;
      stride *= abi.sizes[r];
    }
    descriptor.insert(descriptor.end(), strides.begin(), strides.end());
  }
  ~Buffer() { std::free(data); }

  Error fill(const NpyArray &a, const std::string &what) {
    if (a.shape != std::vector<int64_t>(type.getShape().begin(),
                                        type.getShape().end()))
      return err(what + ": shape " + shapeStr(a.shape) + " does not match " +
                 shapeStr(type.getShape()) + " of " + typeStr(type));
    Type e = type.getElementType();
    int64_t n = a.numElements();
    if (auto it = dyn_cast<IntegerType>(e)) {
      if (a.dtype[0] != 'i' && a.dtype[0] != 'u')
        return err(what + ": dtype " + a.dtype + " given for integer " +
                   typeStr(type) + "; expected an integer array");
      unsigned w = it.getWidth();
      if (w >= 16) { // ordinary integer tensors (indices, shapes)
        for (int64_t i = 0; i < n; ++i) {
          int64_t v = intAt(a, i);
          memcpy(static_cast<char *>(data) + i * (w / 8), &v, w / 8);
        }
        return Error::success();
      }
      int64_t lo = w == 8 ? -128 : 0, hi = w == 8 ? 255 : (1 << w) - 1;
      auto *bytes = static_cast<uint8_t *>(data);
      for (int64_t i = 0; i < n; ++i) {
        int64_t v = intAt(a, i);
        if (v < lo || v > hi)
          return err(what + ": value " + llvm::Twine(v) + " at flat index " +
                     llvm::Twine(i) + " is out of range for i" +
                     llvm::Twine(w) + " codes [" + llvm::Twine(lo) + ", " +
                     llvm::Twine(hi) + "]");
        if (abi.packedBits) {
          unsigned per = 8 / w;
          bytes[i / per] |= uint8_t(v << ((i % per) * w));
        } else {
          bytes[i] = uint8_t(v);
        }
      }
      return Error::success();
    }
    if (a.dtype[0] != 'f')
      return err(what + ": dtype " + a.dtype + " given for " + typeStr(type) +
                 "; expected a float array");
    if (e.isF32()) {
      auto *out = static_cast<float *>(data);
      for (int64_t i = 0; i < n; ++i)
        out[i] = float(floatAt(a, i));
    } else {
      const auto &sem = e.isF16() ? llvm::APFloat::IEEEhalf()
                                  : llvm::APFloat::BFloat();
      auto *out = static_cast<uint16_t *>(data);
      for (int64_t i = 0; i < n; ++i)
        out[i] = (e.isF16() && a.dtype == "f2")
                     ? uint16_t(*reinterpret_cast<const uint16_t *>(
                           a.data.data() + 2 * i))
                     : floatToBits(float(floatAt(a, i)), sem);
    }
    return Error::success();
  }

  NpyArray toNpy() const {
    NpyArray a;
    a.shape.assign(type.getShape().begin(), type.getShape().end());
    Type e = type.getElementType();
    int64_t n = type.getNumElements();
    if (auto it = dyn_cast<IntegerType>(e); it && it.getWidth() >= 16) {
      a.dtype = "i" + std::to_string(it.getWidth() / 8);
      a.data.assign(static_cast<const uint8_t *>(data),
                    static_cast<const uint8_t *>(data) + n * it.getWidth() / 8);
      return a;
    }
    if (auto it = dyn_cast<IntegerType>(e)) {
      a.dtype = it.getWidth() == 1 ? "b1" : "u1";
      a.data.resize(n);
      auto *bytes = static_cast<const uint8_t *>(data);
      unsigned w = it.getWidth();
      for (int64_t i = 0; i < n; ++i)
        a.data[i] = abi.packedBits
                        ? uint8_t((bytes[i / (8 / w)] >> ((i % (8 / w)) * w)) &
                                  ((1u << w) - 1))
                        : bytes[i];
      return a;
    }
    if (e.isF16()) {
      a.dtype = "f2";
      a.data.assign(static_cast<const uint8_t *>(data),
                    static_cast<const uint8_t *>(data) + 2 * n);
      return a;
    }
    a.dtype = "f4";
    a.data.resize(4 * n);
    if (e.isF32()) {
      memcpy(a.data.data(), data, 4 * n);
    } else {
      auto *src = static_cast<const uint16_t *>(data);
      for (int64_t i = 0; i < n; ++i) {
        float f = bitsToFloat(src[i], llvm::APFloat::BFloat());
        memcpy(a.data.data() + 4 * i, &f, 4);
      }
    }
    return a;
  }
};

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
    auto b = std::make_shared<Buffer>(inputTypes[i]);
    if (Error e = b->fill(in[i], "input #" + std::to_string(i)))
      return e;
    buffers.push_back(b);
  }
  for (RankedTensorType t : outputTypes)
    buffers.push_back(std::make_shared<Buffer>(t));
  descriptorPtrs.clear();
  for (auto &b : buffers)
    descriptorPtrs.push_back(b->descriptor.data());
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
