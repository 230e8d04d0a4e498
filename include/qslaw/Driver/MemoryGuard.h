//===- MemoryGuard.h - stop a compile that outgrows memory ------*- C++ -*-===//
//
// A compile that needs more memory than the machine has is otherwise ended
// by the kernel's OOM killer: no message, no phase, possibly other
// processes killed with it. The guard polls the process's resident memory
// (anonymous: a mapped weights file larger than memory is fine) from a
// thread and, past its limit, reports the phase that was running and
// exits with status 1. Outputs are written atomically (AtomicFile), so
// an interrupted compile leaves none behind half-written.
//
//===----------------------------------------------------------------------===//
#ifndef QSLAW_DRIVER_MEMORYGUARD_H
#define QSLAW_DRIVER_MEMORYGUARD_H

#include "llvm/ADT/StringRef.h"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

namespace qslaw::driver {

class MemoryGuard {
public:
  /// Starts watching; `limitBytes` 0 watches nothing.
  MemoryGuard(uint64_t limitBytes, std::string tool);
  ~MemoryGuard();
  MemoryGuard(const MemoryGuard &) = delete;
  MemoryGuard &operator=(const MemoryGuard &) = delete;

  /// What the compile is doing now (reported if the limit is passed).
  void setPhase(llvm::StringRef phase);

  /// MemAvailable of /proc/meminfo (0 when unknown).
  static uint64_t availableBytes();
  /// This process's resident memory not backed by files (0 when unknown):
  /// mapped weights and libraries are left out, as the kernel can drop
  /// their pages.
  static uint64_t residentBytes();

private:
  void watch();

  uint64_t limit_;
  std::string tool_;
  std::mutex mutex_;
  std::condition_variable stop_;
  bool stopping_ = false;
  std::deque<std::string> phases_; // kept: the watcher reads the last one
  std::atomic<const std::string *> phase_{nullptr};
  std::thread thread_;
};

} // namespace qslaw::driver

#endif
