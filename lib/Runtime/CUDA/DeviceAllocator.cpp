//===- DeviceAllocator.cpp - caching stream-ordered device allocator ------===//
#include "DeviceAllocator.h"

#include <algorithm>

namespace qslaw::cuda {

CUdeviceptr DeviceAllocator::allocate(size_t bytes, std::string &error) {
  size_t size = std::max<size_t>(kGranule, (bytes + kGranule - 1) / kGranule *
                                               kGranule);
  // Best fit, but never hand out a block more than twice the request (or
  // 4 MiB over it): a large cached block must not pin a small tensor.
  auto it = freeBlocks.lower_bound(size);
  if (it != freeBlocks.end() &&
      (it->first <= 2 * size || it->first - size <= (size_t(4) << 20))) {
    size = it->first;
    CUdeviceptr p = it->second;
    freeBlocks.erase(it);
    liveBlocks[p] = size;
    allocated += size;
    peakAllocated = std::max(peakAllocated, allocated);
    return p;
  }
  CUdeviceptr p = 0;
  CUresult r = d.cuMemAlloc(&p, size);
  if (r == CUDA_ERROR_OUT_OF_MEMORY && !freeBlocks.empty()) {
    emptyCache();
    r = d.cuMemAlloc(&p, size);
  }
  if (r != CUDA_SUCCESS) {
    error = "cuMemAlloc of " + std::to_string(size) + " bytes failed: " +
            describe(d, r) + "; " + std::to_string(allocated) +
            " bytes were in use";
    return 0;
  }
  ++driverAllocations;
  liveBlocks[p] = size;
  allocated += size;
  reserved += size;
  peakAllocated = std::max(peakAllocated, allocated);
  peakReserved = std::max(peakReserved, reserved);
  return p;
}

bool DeviceAllocator::release(CUdeviceptr p) {
  auto it = liveBlocks.find(p);
  if (it == liveBlocks.end())
    return false;
  allocated -= it->second;
  freeBlocks.emplace(it->second, p);
  liveBlocks.erase(it);
  return true;
}

void DeviceAllocator::emptyCache() {
  for (auto &[size, p] : freeBlocks) {
    d.cuMemFree(p);
    reserved -= size;
  }
  freeBlocks.clear();
}

} // namespace qslaw::cuda
