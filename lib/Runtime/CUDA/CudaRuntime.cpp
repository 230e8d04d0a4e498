//===- CudaRuntime.cpp - device runtime of CUDA model libraries -----------===//
//
// Implements the `mgpu*` ABI that MLIR's gpu-to-llvm lowering calls, over
// the driver API loaded with dlopen (CudaDriver), plus the host-facing
// qslaw_cuda_* C API (qslaw_cuda_runtime.h).
//
// Decisions (docs/CUDA.md):
//  * One context (the device's primary context) and one stream per process.
//    mgpuStreamCreate hands out that stream and mgpuStreamSynchronize does
//    not wait: generated host code never reads device memory (the pipeline
//    moves every memory access into kernels), so in-order execution on one
//    stream is all a step needs. Hosts wait in qslaw_cuda_synchronize() or
//    a to-host copy, which is also where asynchronous faults surface.
//  * Modules load lazily at the first kernel lookup: the LLVM translation
//    loads them from a global constructor, i.e. when a model library is
//    opened, which must not need a GPU.
//  * A module blob may be a qslaw multi-architecture container; the object
//    for the device's architecture is picked then.
//
//===----------------------------------------------------------------------===//
#include "qslaw/Runtime/qslaw_cuda_runtime.h"
#include "qslaw/Runtime/GpuObjectContainer.h"

#include "CudaDriver.h"
#include "DeviceAllocator.h"
#include "RuntimeInternal.h"

#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

using namespace qslaw::cuda;

namespace {

struct Runtime {
  std::recursive_mutex mu;
  const Driver *d = nullptr;
  bool initialised = false;
  std::string initError; // sticky: a failed init is not retried
  CUdevice device = 0;
  CUcontext context = nullptr;
  CUstream stream = nullptr;
  int computeCapability = 0;
  std::string description;
  std::unique_ptr<DeviceAllocator> allocator;
  std::string pendingError;
  std::set<const void *> residentConstants;
};

Runtime &rt() {
  static Runtime *r = new Runtime(); // outlives model-library destructors
  return *r;
}

thread_local std::string takenError;

void setError(const std::string &msg) {
  Runtime &r = rt();
  if (r.pendingError.empty())
    r.pendingError = "qslaw CUDA runtime: " + msg;
}

/// Initialises on first use; false (with the error pending) if no device.
bool ensureInit() {
  Runtime &r = rt();
  std::lock_guard<std::recursive_mutex> lock(r.mu);
  if (r.initialised)
    return true;
  if (!r.initError.empty()) {
    setError(r.initError);
    return false;
  }
  auto fail = [&](const std::string &msg) {
    r.initError = "CUDA was requested but is not usable: " + msg;
    setError(r.initError);
    return false;
  };
  std::string err;
  r.d = loadDriver(err);
  if (!r.d)
    return fail(err);
  const Driver &d = *r.d;
  CUresult res = d.cuInit(0);
  if (res != CUDA_SUCCESS)
    return fail("cuInit failed: " + describe(d, res));
  int count = 0;
  d.cuDeviceGetCount(&count);
  int ordinal = 0;
  if (const char *env = std::getenv("QSLAW_CUDA_DEVICE"))
    ordinal = std::atoi(env);
  if (ordinal < 0 || ordinal >= count)
    return fail("device " + std::to_string(ordinal) + " requested, " +
                std::to_string(count) + " present");
  if ((res = d.cuDeviceGet(&r.device, ordinal)) != CUDA_SUCCESS ||
      (res = d.cuDevicePrimaryCtxRetain(&r.context, r.device)) !=
          CUDA_SUCCESS ||
      (res = d.cuCtxSetCurrent(r.context)) != CUDA_SUCCESS ||
      (res = d.cuStreamCreate(&r.stream, CU_STREAM_NON_BLOCKING)) !=
          CUDA_SUCCESS)
    return fail("setting up device " + std::to_string(ordinal) + ": " +
                describe(d, res));
  int major = 0, minor = 0, version = 0;
  d.cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
                         r.device);
  d.cuDeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR,
                         r.device);
  d.cuDriverGetVersion(&version);
  r.computeCapability = major * 10 + minor;
  char name[256] = {0};
  d.cuDeviceGetName(name, sizeof(name) - 1, r.device);
  r.description = std::string(name) + " (sm_" +
                  std::to_string(r.computeCapability) + ", driver " +
                  std::to_string(version) + ")";
  r.allocator = std::make_unique<DeviceAllocator>(d);
  r.initialised = true;
  return true;
}

/// Every host thread that calls into the driver needs the context current.
bool ready() {
  Runtime &r = rt();
  if (!r.pendingError.empty() || !ensureInit())
    return false;
  thread_local bool current = false;
  if (!current) {
    r.d->cuCtxSetCurrent(r.context);
    current = true;
  }
  return true;
}

bool check(CUresult res, const char *what) {
  if (res == CUDA_SUCCESS)
    return true;
  setError(std::string(what) + " failed: " + describe(*rt().d, res));
  return false;
}

/// A copy's status: 0 when there is nothing to copy or `issue` succeeds;
/// 1 (with the error pending) otherwise.
template <typename Issue>
int copyWith(size_t bytes, Issue issue) {
  if (!bytes)
    return 0;
  if (!ready())
    return 1;
  return issue(rt()) ? 0 : 1;
}

/// A module blob whose driver module is loaded on first use.
struct LazyModule {
  const void *data;
  size_t size;
  CUmodule module = nullptr;
  bool failed = false;
  std::map<std::string, CUfunction> functions;
};

bool loadModule(LazyModule &m) {
  Runtime &r = rt();
  if (m.module)
    return true;
  if (m.failed || !ready())
    return false;
  const Driver &d = *r.d;
  std::vector<qslaw::gpu::GpuObject> objects;
  if (qslaw::gpu::isContainer(m.data, m.size)) {
    if (!qslaw::gpu::decodeContainer(m.data, m.size, objects)) {
      m.failed = true;
      setError("the embedded GPU object container is malformed");
      return false;
    }
  } else {
    objects.push_back({"", static_cast<const char *>(m.data), m.size});
  }
  std::vector<qslaw::gpu::GpuObject> ranked =
      objects.size() == 1 && objects[0].chip.empty()
          ? objects
          : qslaw::gpu::rankForDevice(objects, r.computeCapability);
  std::string tried, compiled;
  for (const auto &o : objects)
    compiled += (compiled.empty() ? "" : ", ") + o.chip;
  for (const auto &o : ranked) {
    // cuModuleLoadData reads cubin/fatbin from memory; PTX must end in NUL.
    std::string copy(o.data, o.size);
    CUresult res = d.cuModuleLoadData(&m.module, copy.c_str());
    if (res == CUDA_SUCCESS)
      return true;
    tried += " " + o.chip + ": " + describe(d, res) + ";";
  }
  m.failed = true;
  setError("no embedded GPU object loads on " + r.description +
           " (compiled for: " + compiled + ";" +
           (tried.empty() ? " none matches this architecture" : tried) + ")");
  return false;
}

} // namespace

bool qslaw::cuda::deviceReady() { return ready(); }
void *qslaw::cuda::runtimeStream() { return rt().stream; }
void qslaw::cuda::reportError(const std::string &msg) {
  Runtime &r = rt();
  std::lock_guard<std::recursive_mutex> lock(r.mu);
  setError(msg);
}
bool qslaw::cuda::isResidentConstant(const void *ptr) {
  Runtime &r = rt();
  std::lock_guard<std::recursive_mutex> lock(r.mu);
  return r.residentConstants.count(ptr) != 0;
}

//===----------------------------------------------------------------------===//
// Host API
//===----------------------------------------------------------------------===//

extern "C" {

int qslaw_cuda_init(void) { return ensureInit() ? 0 : 1; }

const char *qslaw_cuda_device_description(void) {
  return rt().initialised ? rt().description.c_str() : "";
}

const char *qslaw_cuda_take_error(void) {
  Runtime &r = rt();
  std::lock_guard<std::recursive_mutex> lock(r.mu);
  if (r.pendingError.empty())
    return nullptr;
  takenError = std::move(r.pendingError);
  r.pendingError.clear();
  return takenError.c_str();
}

void *qslaw_cuda_alloc(size_t bytes) {
  Runtime &r = rt();
  std::lock_guard<std::recursive_mutex> lock(r.mu);
  if (!ready())
    return nullptr;
  std::string err;
  CUdeviceptr p = r.allocator->allocate(bytes, err);
  if (!p)
    setError(err);
  return reinterpret_cast<void *>(p);
}

void *qslaw_cuda_resident_constant(void **slot, const void *host,
                                   size_t bytes) {
  Runtime &r = rt();
  std::lock_guard<std::recursive_mutex> lock(r.mu);
  if (*slot)
    return *slot;
  void *device = qslaw_cuda_alloc(bytes);
  if (!device)
    return nullptr; // the error is pending; launches using it are skipped
  if (qslaw_cuda_copy_to_device(device, host, bytes) != 0) {
    qslaw_cuda_free(device);
    return nullptr;
  }
  *slot = device;
  r.residentConstants.insert(device);
  return device;
}

void qslaw_cuda_release_resident_constant(void **slot) {
  if (!*slot)
    return;
  Runtime &r = rt();
  {
    std::lock_guard<std::recursive_mutex> lock(r.mu);
    r.residentConstants.erase(*slot);
  }
  forgetDerivedFrom(*slot);
  qslaw_cuda_free(*slot);
  *slot = nullptr;
}

void qslaw_cuda_free(void *ptr) {
  Runtime &r = rt();
  std::lock_guard<std::recursive_mutex> lock(r.mu);
  if (!ptr || !r.initialised)
    return;
  if (!r.allocator->release(reinterpret_cast<CUdeviceptr>(ptr)))
    setError("free of a pointer this runtime did not allocate");
}

int qslaw_cuda_copy_to_device(void *dst, const void *src, size_t bytes) {
  return copyWith(bytes, [&](Runtime &r) {
    return check(r.d->cuMemcpyHtoDAsync(reinterpret_cast<CUdeviceptr>(dst),
                                        src, bytes, r.stream),
                 "host-to-device copy");
  });
}

int qslaw_cuda_copy_to_host(void *dst, const void *src, size_t bytes) {
  return copyWith(bytes, [&](Runtime &r) {
    return check(r.d->cuMemcpyDtoHAsync(dst, reinterpret_cast<CUdeviceptr>(src),
                                        bytes, r.stream),
                 "device-to-host copy") &&
           check(r.d->cuStreamSynchronize(r.stream),
                 "waiting for the device (a kernel or copy before this "
                 "device-to-host copy)");
  });
}

int qslaw_cuda_copy_device(void *dst, const void *src, size_t bytes) {
  return copyWith(bytes, [&](Runtime &r) {
    return check(r.d->cuMemcpyDtoDAsync(reinterpret_cast<CUdeviceptr>(dst),
                                        reinterpret_cast<CUdeviceptr>(src),
                                        bytes, r.stream),
                 "device-to-device copy");
  });
}

int qslaw_cuda_synchronize(void) {
  if (!ready())
    return 1;
  Runtime &r = rt();
  return check(r.d->cuStreamSynchronize(r.stream),
               "waiting for the device (a kernel or copy queued earlier)")
             ? 0
             : 1;
}

void qslaw_cuda_get_memory_stats(qslaw_cuda_memory_stats *s) {
  Runtime &r = rt();
  std::lock_guard<std::recursive_mutex> lock(r.mu);
  *s = {};
  if (!r.allocator)
    return;
  const DeviceAllocator &a = *r.allocator;
  *s = {a.allocated, a.peakAllocated, a.reserved, a.peakReserved,
        a.driverAllocations};
}

void qslaw_cuda_reset_peak_memory(void) {
  Runtime &r = rt();
  std::lock_guard<std::recursive_mutex> lock(r.mu);
  if (r.allocator) {
    r.allocator->peakAllocated = r.allocator->allocated;
    r.allocator->peakReserved = r.allocator->reserved;
  }
}

void qslaw_cuda_empty_cache(void) {
  Runtime &r = rt();
  std::lock_guard<std::recursive_mutex> lock(r.mu);
  if (!r.initialised)
    return;
  r.d->cuStreamSynchronize(r.stream); // cached blocks may still be in use
  r.allocator->emptyCache();
}

//===----------------------------------------------------------------------===//
// The mgpu* ABI of MLIR's gpu-to-llvm lowering
//===----------------------------------------------------------------------===//

void *mgpuModuleLoad(void *data, size_t size) {
  return new LazyModule{data, size};
}

void mgpuModuleUnload(void *module) {
  auto *m = static_cast<LazyModule *>(module);
  if (m->module && rt().initialised)
    rt().d->cuModuleUnload(m->module);
  delete m;
}

void *mgpuModuleGetFunction(void *module, const char *name) {
  Runtime &r = rt();
  std::lock_guard<std::recursive_mutex> lock(r.mu);
  auto *m = static_cast<LazyModule *>(module);
  auto it = m->functions.find(name);
  if (it != m->functions.end())
    return it->second;
  if (!loadModule(*m))
    return nullptr;
  CUfunction f = nullptr;
  if (!check(r.d->cuModuleGetFunction(&f, m->module, name),
             (std::string("looking up kernel '") + name + "'").c_str()))
    return nullptr;
  m->functions[name] = f;
  return f;
}

void *mgpuStreamCreate() {
  return ready() ? rt().stream : nullptr;
}

void mgpuStreamDestroy(void *) {}
void mgpuStreamSynchronize(void *) {} // see the file comment

void mgpuLaunchKernel(void *function, intptr_t gridX, intptr_t gridY,
                      intptr_t gridZ, intptr_t blockX, intptr_t blockY,
                      intptr_t blockZ, int32_t smem, void *stream,
                      void **params, void ** /*extra*/, size_t /*count*/) {
  if (!function || !ready())
    return; // the lookup's error is pending
  Runtime &r = rt();
  auto f = static_cast<CUfunction>(function);
  if (smem > 48 * 1024 &&
      !check(r.d->cuFuncSetAttribute(
                 f, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, smem),
             "raising the kernel's dynamic shared memory limit"))
    return;
  auto dim = [](intptr_t v) { return unsigned(v); };
  check(r.d->cuLaunchKernel(f, dim(gridX), dim(gridY), dim(gridZ), dim(blockX),
                            dim(blockY), dim(blockZ), unsigned(smem),
                            stream ? static_cast<CUstream>(stream) : r.stream,
                            params, nullptr),
        "kernel launch");
}

void *mgpuMemAlloc(uint64_t bytes, void * /*stream*/, bool isHostShared) {
  if (isHostShared) {
    setError("host-shared (managed) allocations are not supported");
    return nullptr;
  }
  return qslaw_cuda_alloc(bytes);
}

void mgpuMemFree(void *ptr, void * /*stream*/) { qslaw_cuda_free(ptr); }

void mgpuMemcpy(void *dst, void *src, size_t bytes, void * /*stream*/) {
  // Generated code copies device-to-device, or host constants to the
  // device; the unified address space tells the driver which.
  if (!bytes || !ready())
    return;
  Runtime &r = rt();
  check(r.d->cuMemcpyAsync(reinterpret_cast<CUdeviceptr>(dst),
                               reinterpret_cast<CUdeviceptr>(src), bytes,
                               r.stream),
        "memcpy");
}

void mgpuMemset32(void *dst, unsigned value, size_t count, void *) {
  if (!ready())
    return;
  Runtime &r = rt();
  check(r.d->cuMemsetD32Async(reinterpret_cast<CUdeviceptr>(dst), value, count,
                              r.stream),
        "memset");
}

void mgpuMemset16(void *dst, unsigned short value, size_t count, void *) {
  if (!ready())
    return;
  Runtime &r = rt();
  check(r.d->cuMemsetD16Async(reinterpret_cast<CUdeviceptr>(dst), value, count,
                              r.stream),
        "memset");
}

void mgpuSetDefaultDevice(int32_t) {}

} // extern "C"
