//===- TensorAbi.cpp - how tensors cross a compiled entry point -----------===//
#include "qslaw/Runtime/TensorAbi.h"

#include "llvm/ADT/APFloat.h"
#include "llvm/ADT/Twine.h"

#include <cstdlib>
#include <cstring>

using llvm::Error;

namespace qslaw {

namespace {
Error err(const llvm::Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), msg);
}

std::string shapeStr(const std::vector<int64_t> &shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
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

/// Element i of `a`, whose element size is `es` (a.elementSize(), parsed
/// from the dtype string: callers hoist it out of their loops).
int64_t intAt(const NpyArray &a, size_t es, int64_t i) {
  const uint8_t *p = a.data.data() + i * es;
  bool sgn = a.dtype[0] == 'i';
  switch (es) {
  case 1: return sgn ? int64_t(int8_t(*p)) : int64_t(*p);
  case 2: { uint16_t v; memcpy(&v, p, 2); return sgn ? int64_t(int16_t(v)) : v; }
  case 4: { uint32_t v; memcpy(&v, p, 4); return sgn ? int64_t(int32_t(v)) : v; }
  default: { int64_t v; memcpy(&v, p, 8); return v; }
  }
}

double floatAt(const NpyArray &a, size_t es, int64_t i) {
  const uint8_t *p = a.data.data() + i * es;
  if (a.dtype == "f4") { float v; memcpy(&v, p, 4); return v; }
  if (a.dtype == "f8") { double v; memcpy(&v, p, 8); return v; }
  uint16_t v; memcpy(&v, p, 2);
  return bitsToFloat(v, llvm::APFloat::IEEEhalf());
}

bool isFloatDtype(const std::string &d) { return d[0] == 'f' || d == "bf16"; }
} // namespace

AbiBuffer::AbiBuffer(TensorSpec spec) : tensorSpec(std::move(spec)) {
  unsigned w = tensorSpec.bits();
  int64_t n = tensorSpec.numElements();
  std::vector<int64_t> sizes;
  if (tensorSpec.dtype[0] == 'i' && (w == 2 || w == 4)) {
    // Narrow-type emulation linearises the memref into bytes.
    packedBits = w;
    storageBytes = (n * w + 7) / 8;
    sizes = {int64_t(storageBytes)};
  } else {
    storageBytes = n * ((w + 7) / 8);
    sizes = tensorSpec.shape;
  }
  size_t alloc = (std::max<size_t>(storageBytes, 1) + 63) / 64 * 64;
  data = std::aligned_alloc(64, alloc);
  memset(data, 0, alloc);
  describe(sizes);
}

AbiBuffer::AbiBuffer(TensorSpec spec, void *borrowed)
    : tensorSpec(std::move(spec)), data(borrowed), ownsData(false) {
  storageBytes = size_t(tensorSpec.numElements()) * (tensorSpec.bits() / 8);
  describe(tensorSpec.shape);
}

bool AbiBuffer::sharesHostLayout(const TensorSpec &spec) {
  unsigned w = spec.bits();
  return spec.dtype != "bf16" && spec.dtype != "i1" &&
         (w == 8 || w == 16 || w == 32 || w == 64);
}

void AbiBuffer::describe(const std::vector<int64_t> &sizes) {
  desc.push_back(int64_t(reinterpret_cast<intptr_t>(data)));
  desc.push_back(int64_t(reinterpret_cast<intptr_t>(data)));
  desc.push_back(0);
  desc.insert(desc.end(), sizes.begin(), sizes.end());
  std::vector<int64_t> strides(sizes.size());
  int64_t stride = 1;
  for (int r = int(sizes.size()) - 1; r >= 0; --r) {
    strides[r] = stride;
    stride *= sizes[r];
  }
  desc.insert(desc.end(), strides.begin(), strides.end());
}

AbiBuffer::~AbiBuffer() {
  if (ownsData)
    std::free(data);
}

Error AbiBuffer::fill(const NpyArray &a, const std::string &what) {
  const TensorSpec &s = tensorSpec;
  if (a.shape != s.shape)
    return err(what + ": shape " + shapeStr(a.shape) + " does not match " +
               shapeStr(s.shape) + " (" + s.dtype + ")");
  int64_t n = a.numElements();
  unsigned w = s.bits();
  size_t es = a.elementSize();
  // Same type and layout (the common case: f32 activations and parameters,
  // i64 ids): one copy instead of a conversion per element.
  if ((s.dtype == "f32" && a.dtype == "f4") ||
      (!packedBits && !isFloatDtype(s.dtype) && w >= 16 && a.dtype[0] == 'i' &&
       es * 8 == w)) {
    memcpy(data, a.data.data(), size_t(n) * es);
    return Error::success();
  }
  if (!isFloatDtype(s.dtype)) {
    if (a.dtype[0] != 'i' && a.dtype[0] != 'u' && a.dtype[0] != 'b')
      return err(what + ": dtype " + a.dtype + " given for " + s.dtype +
                 " " + shapeStr(s.shape) + "; expected an integer array");
    if (w >= 16 || w == 1) { // ordinary integers (indices, shapes, masks)
      for (int64_t i = 0; i < n; ++i) {
        int64_t v = intAt(a, es, i);
        if (w == 1)
          v = v != 0;
        memcpy(static_cast<char *>(data) + i * ((w + 7) / 8), &v, (w + 7) / 8);
      }
      return Error::success();
    }
    int64_t lo = w == 8 ? -128 : 0, hi = w == 8 ? 255 : (1 << w) - 1;
    auto *bytes = static_cast<uint8_t *>(data);
    for (int64_t i = 0; i < n; ++i) {
      int64_t v = intAt(a, es, i);
      if (v < lo || v > hi)
        return err(what + ": value " + llvm::Twine(v) + " at flat index " +
                   llvm::Twine(i) + " is out of range for i" + llvm::Twine(w) +
                   " codes [" + llvm::Twine(lo) + ", " + llvm::Twine(hi) + "]");
      if (packedBits) {
        unsigned per = 8 / w;
        bytes[i / per] |= uint8_t(v << ((i % per) * w));
      } else {
        bytes[i] = uint8_t(v);
      }
    }
    return Error::success();
  }
  if (a.dtype[0] != 'f')
    return err(what + ": dtype " + a.dtype + " given for " + s.dtype + " " +
               shapeStr(s.shape) + "; expected a float array");
  if (s.dtype == "f32") {
    auto *out = static_cast<float *>(data);
    for (int64_t i = 0; i < n; ++i)
      out[i] = float(floatAt(a, es, i));
  } else if (s.dtype == "f64") {
    auto *out = static_cast<double *>(data);
    for (int64_t i = 0; i < n; ++i)
      out[i] = floatAt(a, es, i);
  } else {
    bool half = s.dtype == "f16";
    const auto &sem = half ? llvm::APFloat::IEEEhalf() : llvm::APFloat::BFloat();
    auto *out = static_cast<uint16_t *>(data);
    for (int64_t i = 0; i < n; ++i) {
      if (half && a.dtype == "f2")
        memcpy(&out[i], a.data.data() + 2 * i, 2);
      else
        out[i] = floatToBits(float(floatAt(a, es, i)), sem);
    }
  }
  return Error::success();
}

NpyArray AbiBuffer::toNpy() const {
  const TensorSpec &s = tensorSpec;
  NpyArray a;
  a.shape = s.shape;
  int64_t n = s.numElements();
  unsigned w = s.bits();
  auto *bytes = static_cast<const uint8_t *>(data);
  if (!isFloatDtype(s.dtype)) {
    if (w >= 16) {
      a.dtype = "i" + std::to_string(w / 8);
      a.data.assign(bytes, bytes + n * w / 8);
      return a;
    }
    a.dtype = w == 1 ? "b1" : "u1";
    a.data.resize(n);
    for (int64_t i = 0; i < n; ++i)
      a.data[i] = packedBits ? uint8_t((bytes[i / (8 / w)] >> ((i % (8 / w)) * w)) &
                                       ((1u << w) - 1))
                             : bytes[i];
    return a;
  }
  if (s.dtype == "f16" || s.dtype == "f64") {
    a.dtype = s.dtype == "f16" ? "f2" : "f8";
    a.data.assign(bytes, bytes + n * w / 8);
    return a;
  }
  a.dtype = "f4";
  a.data.resize(4 * n);
  if (s.dtype == "f32") {
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

} // namespace qslaw
