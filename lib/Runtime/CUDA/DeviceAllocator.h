//===- DeviceAllocator.h - caching stream-ordered device allocator -*- C++ -*-//
//
// Generated code allocates and frees every intermediate buffer of a step
// (gpu.alloc / gpu.dealloc); cuMemAlloc/cuMemFree synchronise the device
// and cost tens of microseconds each. Freed blocks are kept in size-keyed
// free lists and handed out again. All work runs on one stream, so a block
// freed by the host while kernels that use it are still queued can be
// reused at once: the next user's kernels are queued behind them.
//
//===----------------------------------------------------------------------===//
#ifndef QSLAW_LIB_RUNTIME_CUDA_DEVICEALLOCATOR_H
#define QSLAW_LIB_RUNTIME_CUDA_DEVICEALLOCATOR_H

#include "CudaDriver.h"

#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>

namespace qslaw::cuda {

class DeviceAllocator {
public:
  /// Blocks are multiples of this; small requests share no block.
  static constexpr size_t kGranule = 512;

  explicit DeviceAllocator(const Driver &driver) : d(driver) {}

  /// A device block of at least `bytes`, or 0 with `error` set.
  CUdeviceptr allocate(size_t bytes, std::string &error);
  /// False if `p` is not a live block of this allocator.
  bool release(CUdeviceptr p);
  /// Returns the cached blocks to the driver.
  void emptyCache();

  size_t allocated = 0, peakAllocated = 0, reserved = 0, peakReserved = 0;
  uint64_t driverAllocations = 0;

private:
  const Driver &d;
  std::multimap<size_t, CUdeviceptr> freeBlocks; // size -> block
  std::unordered_map<CUdeviceptr, size_t> liveBlocks;
};

} // namespace qslaw::cuda

#endif // QSLAW_LIB_RUNTIME_CUDA_DEVICEALLOCATOR_H
