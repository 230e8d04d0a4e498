//===- HandKernels.cpp - f32 graph entries of the hand-written w4 kernels -===//
//
// `qslaw-compile --cuda-hand-kernels=bf16|f16` lowers eligible quantized
// matmuls to calls of the `qslaw_cuda_qmatmul_w4_*` entries below (MLIR C
// interface: memref descriptors of device buffers). They adapt the graph's
// operands to the kernels of libqslaw_cuda_kernels.so (built by nvcc,
// loaded here with dlopen at the first call, so that a library without
// such calls never needs it):
//  * f32 activations are rounded to bf16/f16 into scratch buffers, results
//    converted back (plus the bias);
//  * nibble-packed codes are reordered into mma fragment order and the
//    zero points widened to f32 once per resident weight (the library's
//    constants never change until released), or per call for any other
//    buffer.
// Everything is queued on the runtime's one stream, so scratch freed right
// after the launches is safe to reuse (stream order), and no call waits.
//
//===----------------------------------------------------------------------===//
#include "qslaw/CUDA/QMatmulKernels.h"
#include "qslaw/Runtime/MemRefABI.h"
#include "qslaw/Runtime/qslaw_cuda_runtime.h"

#include "RuntimeInternal.h"

#include <dlfcn.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <vector>

using namespace qslaw;
using namespace qslaw::cuda;

namespace {

/// The C ABI of libqslaw_cuda_kernels.so (QMatmulKernels.h).
struct KernelLibrary {
  decltype(&qslaw_w4_packed_bytes) packedBytes;
  decltype(&qslaw_w4_pack_nibbles) packNibbles;
  decltype(&qslaw_w4_zeros_to_f32) zerosToF32;
  decltype(&qslaw_f32_to_act) f32ToAct;
  decltype(&qslaw_act_to_f32) actToF32;
  decltype(&qslaw_w4_forward) forward;
  decltype(&qslaw_w4_grad_input) gradInput;
  decltype(&qslaw_w4_grad_scale) gradScale;
  decltype(&qslaw_w4_grad_gamma) gradGamma;
};

/// $QSLAW_CUDA_KERNELS_LIBRARY, else libqslaw_cuda_kernels.so beside this
/// runtime library.
std::string kernelLibraryPath() {
  if (const char *env = std::getenv("QSLAW_CUDA_KERNELS_LIBRARY"); env && *env)
    return env;
  Dl_info info{};
  std::string self;
  if (dladdr(reinterpret_cast<void *>(&kernelLibraryPath), &info) &&
      info.dli_fname)
    self = info.dli_fname;
  size_t slash = self.rfind('/');
  return (slash == std::string::npos ? std::string(".")
                                     : self.substr(0, slash)) +
         "/libqslaw_cuda_kernels.so";
}

/// Guards the weight cache. Leaked, like the cache, so that model
/// libraries' destructors at exit may still release their weights.
std::mutex &cacheMutex() {
  static auto *m = new std::mutex();
  return *m;
}

/// Loaded once; null (with the error reported) if it cannot be.
const KernelLibrary *kernelLibrary() {
  static std::string error;
  static const KernelLibrary *lib = [] () -> const KernelLibrary * {
    std::string path = kernelLibraryPath();
    void *h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    auto prefix = "this library calls the hand-written CUDA kernels "
                  "(--cuda-hand-kernels), which need " + path + ": ";
    if (!h) {
      const char *e = dlerror();
      error = prefix + (e ? e : "dlopen failed");
      return nullptr;
    }
    auto *l = new KernelLibrary();
    bool ok = true;
    auto bind = [&](auto &fn, const char *name) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(
          dlsym(h, name));
      if (!fn && ok) {
        error = prefix + "it has no symbol " + name;
        ok = false;
      }
    };
    bind(l->packedBytes, "qslaw_w4_packed_bytes");
    bind(l->packNibbles, "qslaw_w4_pack_nibbles");
    bind(l->zerosToF32, "qslaw_w4_zeros_to_f32");
    bind(l->f32ToAct, "qslaw_f32_to_act");
    bind(l->actToF32, "qslaw_act_to_f32");
    bind(l->forward, "qslaw_w4_forward");
    bind(l->gradInput, "qslaw_w4_grad_input");
    bind(l->gradScale, "qslaw_w4_grad_scale");
    bind(l->gradGamma, "qslaw_w4_grad_gamma");
    return ok ? l : nullptr;
  }();
  if (!lib)
    reportError(error);
  return lib;
}

/// Device scratch freed at scope exit (stream-ordered, see the file
/// comment). `get` returns null with the allocator's error pending.
class Scratch {
public:
  ~Scratch() {
    for (void *p : ptrs)
      qslaw_cuda_free(p);
  }
  void *get(size_t bytes) {
    void *p = qslaw_cuda_alloc(bytes);
    if (p)
      ptrs.push_back(p);
    return p;
  }
  /// `p` outlives the scope (a cached weight).
  void keep(void *p) {
    ptrs.erase(std::remove(ptrs.begin(), ptrs.end(), p), ptrs.end());
  }

private:
  std::vector<void *> ptrs;
};

/// A weight in the kernels' form: fragment-ordered codes, f32 zero points.
struct KernelWeight {
  const void *codes = nullptr, *zeros = nullptr;
  int64_t n = 0, k = 0, groups = 0;
  uint32_t *qw = nullptr;
  float *z = nullptr;
};

/// Packed forms of resident weights, by codes pointer.
std::map<const void *, KernelWeight> &cache() {
  static auto *c = new std::map<const void *, KernelWeight>();
  return *c;
}

/// Activation-type copies of resident float weights (gamma mode's W).
struct ActCopy {
  int64_t count = 0;
  int dtype = 0;
  void *data = nullptr;
};
std::map<const void *, ActCopy> &actCache() {
  static auto *c = new std::map<const void *, ActCopy>();
  return *c;
}

bool kernelOk(int rc, const char *kernel, int64_t m, int64_t n, int64_t k,
              int64_t g) {
  if (rc == QSLAW_CUDA_OK)
    return true;
  const char *why = rc == QSLAW_CUDA_EINVAL   ? "invalid arguments"
                    : rc == QSLAW_CUDA_EDTYPE ? "unknown activation type"
                                              : "launch failed";
  reportError(std::string("hand-written kernel ") + kernel + " (M=" +
              std::to_string(m) + ", N=" + std::to_string(n) +
              ", K=" + std::to_string(k) + ", G=" + std::to_string(g) +
              "): " + why);
  return false;
}

/// The kernels' form of (codes, zeros) for an [n, k] weight with
/// `groups` groups per row: cached for resident constants, else built into
/// `scratch`. False with the error reported.
bool kernelWeight(const KernelLibrary &lib, Scratch &scratch,
                  const uint8_t *codes, const uint8_t *zeros, int64_t n,
                  int64_t k, int64_t groups, KernelWeight &out) {
  void *stream = runtimeStream();
  bool cacheable = isResidentConstant(codes) &&
                   (!zeros || isResidentConstant(zeros));
  std::lock_guard<std::mutex> lock(cacheMutex());
  if (cacheable) {
    auto it = cache().find(codes);
    if (it != cache().end() && it->second.zeros == zeros &&
        it->second.n == n && it->second.k == k &&
        it->second.groups == groups) {
      out = it->second;
      return true;
    }
  }
  KernelWeight w{codes, zeros, n, k, groups};
  size_t packed = lib.packedBytes(int(n), int(k));
  w.qw = static_cast<uint32_t *>(scratch.get(packed));
  w.z = static_cast<float *>(scratch.get(size_t(n * groups) * sizeof(float)));
  void *bytes = scratch.get(size_t(n * k));
  if (!w.qw || !w.z || !bytes)
    return false;
  if (!kernelOk(lib.packNibbles(codes, static_cast<uint8_t *>(bytes), w.qw,
                                int(n), int(k), stream),
                "qslaw_w4_pack_nibbles", 0, n, k, k / groups) ||
      !kernelOk(lib.zerosToF32(zeros, w.z, n * groups, stream),
                "qslaw_w4_zeros_to_f32", 0, n, k, k / groups))
    return false;
  if (cacheable) {
    scratch.keep(w.qw);
    scratch.keep(w.z);
    auto [it, fresh] = cache().try_emplace(codes, w);
    if (!fresh) { // a stale entry (other zeros or shape): replace it
      qslaw_cuda_free(it->second.qw);
      qslaw_cuda_free(it->second.z);
      it->second = w;
    }
  }
  out = w;
  return true;
}

/// Rows of a row-major buffer with `cols` columns, or -1 (reported) when
/// the descriptor is not contiguous or too large for the kernels' ints.
template <typename T>
int64_t rowsOf(const MemRefDescriptor<T, 2> *m, const char *what) {
  if (m->strides[1] != 1 || m->strides[0] != m->sizes[1] ||
      m->sizes[0] * m->sizes[1] > INT_MAX) {
    reportError(std::string("hand-written kernel operand ") + what +
                " is not a contiguous row-major buffer within 2^31 elements");
    return -1;
  }
  return m->sizes[0];
}

/// bf16/fp16 copy of an f32 buffer in `scratch`.
void *toAct(const KernelLibrary &lib, Scratch &scratch, const float *x,
            int64_t count, int dtype) {
  void *xa = scratch.get(size_t(count) * 2);
  if (!xa || !kernelOk(lib.f32ToAct(x, xa, count, dtype, runtimeStream()),
                       "qslaw_f32_to_act", count, 0, 0, 0))
    return nullptr;
  return xa;
}

/// toAct for a weight: kept (once per type) when `x` is resident.
void *weightAct(const KernelLibrary &lib, Scratch &scratch, const float *x,
                int64_t count, int dtype) {
  bool cacheable = isResidentConstant(x);
  std::lock_guard<std::mutex> lock(cacheMutex());
  if (cacheable) {
    auto it = actCache().find(x);
    if (it != actCache().end() && it->second.count == count &&
        it->second.dtype == dtype)
      return it->second.data;
  }
  void *xa = toAct(lib, scratch, x, count, dtype);
  if (xa && cacheable) {
    scratch.keep(xa);
    auto [it, fresh] = actCache().try_emplace(x, ActCopy{count, dtype, xa});
    if (!fresh) { // another type or size: replace it
      qslaw_cuda_free(it->second.data);
      it->second = ActCopy{count, dtype, xa};
    }
  }
  return xa;
}

/// Common start of every entry: the device, the kernel library, and the
/// [n, k] weight in the kernels' form. Null with the error reported.
const KernelLibrary *begin(Scratch &scratch, MemRefDescriptor<uint8_t, 1> *codes,
                           MemRefDescriptor<uint8_t, 1> *zeros, int64_t n,
                           int64_t k, int64_t groups, KernelWeight &w) {
  if (!deviceReady())
    return nullptr;
  const KernelLibrary *lib = kernelLibrary();
  if (!lib || !kernelWeight(*lib, scratch, codes->data(),
                            zeros->sizes[0] ? zeros->data() : nullptr, n, k,
                            groups, w))
    return nullptr;
  return lib;
}

/// The forward and dX share a shape of call: `in` [m, *] rounded to the
/// activation type, `kernel` (qslaw_w4_forward / _grad_input, same
/// signature) writes [m, *] in that type, widened into `out` (+ `bias`).
using ActMatmul = decltype(&qslaw_w4_forward);
void roundTripMatmul(ActMatmul KernelLibrary::*kernel, const char *name,
                     MemRefDescriptor<float, 2> *in,
                     MemRefDescriptor<uint8_t, 1> *codes,
                     MemRefDescriptor<float, 2> *scales,
                     MemRefDescriptor<uint8_t, 1> *zeros, const float *bias,
                     MemRefDescriptor<float, 2> *out, int64_t k,
                     int64_t group, int32_t dtype) {
  int64_t m = rowsOf(in, "activation"), n = rowsOf(scales, "scales");
  if (m < 0 || n < 0 || rowsOf(out, "result") < 0)
    return;
  Scratch scratch;
  KernelWeight w;
  const KernelLibrary *lib =
      begin(scratch, codes, zeros, n, k, scales->sizes[1], w);
  if (!lib)
    return;
  void *stream = runtimeStream();
  void *ina = toAct(*lib, scratch, in->data(), m * in->sizes[1], dtype);
  void *outa = scratch.get(size_t(m * out->sizes[1]) * 2);
  if (!ina || !outa ||
      !kernelOk((lib->*kernel)(ina, w.qw, scales->data(), w.z, outa, int(m),
                               int(n), int(k), int(group), dtype, stream),
                name, m, n, k, group))
    return;
  kernelOk(lib->actToF32(outa, bias, out->data(), m, out->sizes[1], dtype,
                         stream),
           "qslaw_act_to_f32", m, out->sizes[1], 0, 0);
}

} // namespace

void qslaw::cuda::forgetDerivedFrom(const void *ptr) {
  std::lock_guard<std::mutex> lock(cacheMutex());
  if (auto it = actCache().find(ptr); it != actCache().end()) {
    qslaw_cuda_free(it->second.data);
    actCache().erase(it);
  }
  for (auto it = cache().begin(); it != cache().end();) {
    if (it->second.codes == ptr || it->second.zeros == ptr) {
      qslaw_cuda_free(it->second.qw);
      qslaw_cuda_free(it->second.z);
      it = cache().erase(it);
    } else {
      ++it;
    }
  }
}

extern "C" {

__attribute__((visibility("default"))) void
_mlir_ciface_qslaw_cuda_qmatmul_w4_f32(
    MemRefDescriptor<float, 2> *x, MemRefDescriptor<uint8_t, 1> *codes,
    MemRefDescriptor<float, 2> *scales, MemRefDescriptor<uint8_t, 1> *zeros,
    MemRefDescriptor<float, 1> *bias, MemRefDescriptor<float, 2> *out,
    int64_t group, int32_t dtype) {
  roundTripMatmul(&KernelLibrary::forward, "qslaw_w4_forward", x, codes,
                  scales, zeros, bias->sizes[0] ? bias->data() : nullptr, out,
                  x->sizes[1], group, dtype);
}

__attribute__((visibility("default"))) void
_mlir_ciface_qslaw_cuda_qmatmul_w4_grad_input_f32(
    MemRefDescriptor<float, 2> *dy, MemRefDescriptor<uint8_t, 1> *codes,
    MemRefDescriptor<float, 2> *scales, MemRefDescriptor<uint8_t, 1> *zeros,
    MemRefDescriptor<float, 2> *dx, int64_t group, int32_t dtype) {
  roundTripMatmul(&KernelLibrary::gradInput, "qslaw_w4_grad_input", dy, codes,
                  scales, zeros, nullptr, dx, dx->sizes[1], group, dtype);
}

__attribute__((visibility("default"))) void
_mlir_ciface_qslaw_cuda_qmatmul_w4_grad_scale_f32(
    MemRefDescriptor<float, 2> *x, MemRefDescriptor<float, 2> *dy,
    MemRefDescriptor<uint8_t, 1> *codes, MemRefDescriptor<uint8_t, 1> *zeros,
    MemRefDescriptor<float, 2> *ds, int64_t group, int32_t dtype) {
  int64_t t = rowsOf(x, "x"), n = rowsOf(ds, "ds");
  if (t < 0 || n < 0 || rowsOf(dy, "dy") < 0)
    return;
  int64_t k = x->sizes[1];
  Scratch scratch;
  KernelWeight w;
  const KernelLibrary *lib = begin(scratch, codes, zeros, n, k, ds->sizes[1], w);
  if (!lib)
    return;
  void *stream = runtimeStream();
  void *xa = toAct(*lib, scratch, x->data(), t * k, dtype);
  void *dya = toAct(*lib, scratch, dy->data(), t * n, dtype);
  if (!xa || !dya)
    return;
  kernelOk(lib->gradScale(dya, xa, w.qw, w.z, ds->data(), int(t), int(n),
                          int(k), int(group), dtype, stream),
           "qslaw_w4_grad_scale", t, n, k, group);
}

__attribute__((visibility("default"))) void
_mlir_ciface_qslaw_cuda_qmatmul_w4_grad_gamma_f32(
    MemRefDescriptor<float, 2> *x, MemRefDescriptor<float, 2> *dy,
    MemRefDescriptor<float, 2> *w, MemRefDescriptor<float, 2> *scales,
    MemRefDescriptor<float, 2> *gamma, MemRefDescriptor<uint8_t, 1> *zeros,
    MemRefDescriptor<float, 2> *dgamma, int64_t group, int32_t dtype) {
  int64_t t = rowsOf(x, "x"), n = rowsOf(w, "weight");
  if (t < 0 || n < 0 || rowsOf(dy, "dy") < 0 || rowsOf(scales, "scales") < 0 ||
      rowsOf(gamma, "gamma") < 0 || rowsOf(dgamma, "dgamma") < 0 ||
      !deviceReady())
    return;
  const KernelLibrary *lib = kernelLibrary();
  if (!lib)
    return;
  int64_t k = w->sizes[1], groups = dgamma->sizes[1];
  Scratch scratch;
  void *stream = runtimeStream();
  void *wa = weightAct(*lib, scratch, w->data(), n * k, dtype);
  auto *z = static_cast<float *>(scratch.get(size_t(n * groups) * sizeof(float)));
  void *xa = toAct(*lib, scratch, x->data(), t * k, dtype);
  void *dya = toAct(*lib, scratch, dy->data(), t * n, dtype);
  if (!wa || !z || !xa || !dya ||
      !kernelOk(lib->zerosToF32(zeros->sizes[0] ? zeros->data() : nullptr, z,
                                n * groups, stream),
                "qslaw_w4_zeros_to_f32", 0, n, k, group))
    return;
  // 4-bit codes: qmax = 15.
  kernelOk(lib->gradGamma(dya, xa, wa, scales->data(), z, gamma->data(),
                          dgamma->data(), int(t), int(n), int(k), int(group),
                          15, dtype, stream),
           "qslaw_w4_grad_gamma", t, n, k, group);
}

} // extern "C"
