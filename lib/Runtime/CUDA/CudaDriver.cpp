//===- CudaDriver.cpp - the CUDA driver API, loaded with dlopen -----------===//
#include "CudaDriver.h"

#include <dlfcn.h>
#include <mutex>

namespace qslaw::cuda {

namespace {
struct Loaded {
  Driver driver{};
  std::string error;
  bool ok = false;
};

template <typename Fn>
bool resolve(void *lib, const char *name, Fn &fn, std::string &error) {
  fn = reinterpret_cast<Fn>(dlsym(lib, name));
  if (!fn)
    error = std::string("libcuda.so.1 lacks '") + name +
            "' (driver too old for this runtime?)";
  return fn != nullptr;
}

Loaded load() {
  Loaded l;
  void *lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    const char *why = dlerror();
    l.error = std::string("the CUDA driver library libcuda.so.1 could not be "
                          "loaded (") +
              (why ? why : "unknown reason") +
              "); is an NVIDIA GPU and its driver installed?";
    return l;
  }
  Driver &d = l.driver;
  std::string &e = l.error;
  // The _v2 names are the 64-bit-pointer ABI that cuda.h maps the plain
  // names to.
  l.ok = resolve(lib, "cuInit", d.cuInit, e) &&
         resolve(lib, "cuDriverGetVersion", d.cuDriverGetVersion, e) &&
         resolve(lib, "cuDeviceGetCount", d.cuDeviceGetCount, e) &&
         resolve(lib, "cuDeviceGet", d.cuDeviceGet, e) &&
         resolve(lib, "cuDeviceGetName", d.cuDeviceGetName, e) &&
         resolve(lib, "cuDeviceGetAttribute", d.cuDeviceGetAttribute, e) &&
         resolve(lib, "cuDevicePrimaryCtxRetain", d.cuDevicePrimaryCtxRetain,
                 e) &&
         resolve(lib, "cuCtxSetCurrent", d.cuCtxSetCurrent, e) &&
         resolve(lib, "cuModuleLoadData", d.cuModuleLoadData, e) &&
         resolve(lib, "cuModuleUnload", d.cuModuleUnload, e) &&
         resolve(lib, "cuModuleGetFunction", d.cuModuleGetFunction, e) &&
         resolve(lib, "cuFuncSetAttribute", d.cuFuncSetAttribute, e) &&
         resolve(lib, "cuLaunchKernel", d.cuLaunchKernel, e) &&
         resolve(lib, "cuStreamCreate", d.cuStreamCreate, e) &&
         resolve(lib, "cuStreamSynchronize", d.cuStreamSynchronize, e) &&
         resolve(lib, "cuMemAlloc_v2", d.cuMemAlloc, e) &&
         resolve(lib, "cuMemFree_v2", d.cuMemFree, e) &&
         resolve(lib, "cuMemcpyHtoDAsync_v2", d.cuMemcpyHtoDAsync, e) &&
         resolve(lib, "cuMemcpyDtoHAsync_v2", d.cuMemcpyDtoHAsync, e) &&
         resolve(lib, "cuMemcpyDtoDAsync_v2", d.cuMemcpyDtoDAsync, e) &&
         resolve(lib, "cuMemcpyAsync", d.cuMemcpyAsync, e) &&
         resolve(lib, "cuMemsetD32Async", d.cuMemsetD32Async, e) &&
         resolve(lib, "cuMemsetD16Async", d.cuMemsetD16Async, e) &&
         resolve(lib, "cuGetErrorName", d.cuGetErrorName, e) &&
         resolve(lib, "cuGetErrorString", d.cuGetErrorString, e);
  return l; // the library stays loaded for the life of the process
}
} // namespace

const Driver *loadDriver(std::string &error) {
  static Loaded *loaded = new Loaded(load()); // never destroyed: used by
                                              // model destructors at exit
  if (!loaded->ok) {
    error = loaded->error;
    return nullptr;
  }
  return &loaded->driver;
}

std::string describe(const Driver &d, CUresult r) {
  const char *name = nullptr, *text = nullptr;
  d.cuGetErrorName(r, &name);
  d.cuGetErrorString(r, &text);
  return std::string(name ? name : "CUDA error " + std::to_string(r)) + " (" +
         (text ? text : "no description") + ")";
}

} // namespace qslaw::cuda
