//===- MemoryGuard.cpp - stop a compile that outgrows memory --------------===//
#include "qslaw/Driver/MemoryGuard.h"

#include "llvm/Support/FormatVariadic.h"

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <unistd.h>

using namespace qslaw::driver;

MemoryGuard::MemoryGuard(uint64_t limitBytes, std::string tool)
    : limit_(limitBytes), tool_(std::move(tool)) {
  setPhase("starting");
  if (limit_)
    thread_ = std::thread([this] { watch(); });
}

MemoryGuard::~MemoryGuard() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  stop_.notify_all();
  if (thread_.joinable())
    thread_.join();
}

void MemoryGuard::setPhase(llvm::StringRef phase) {
  std::lock_guard<std::mutex> lock(mutex_);
  phases_.push_back(phase.str());
  phase_.store(&phases_.back());
}

uint64_t MemoryGuard::availableBytes() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  uint64_t kb = 0;
  std::string unit;
  while (in >> key >> kb >> unit)
    if (key == "MemAvailable:")
      return kb * 1024;
  return 0;
}

uint64_t MemoryGuard::residentBytes() {
  // statm: size, resident, shared (file-backed: mapped weights, libraries),
  // ... Clean file pages can be dropped by the kernel at any time; what
  // runs a machine out of memory is the rest.
  std::ifstream in("/proc/self/statm");
  uint64_t size = 0, resident = 0, shared = 0;
  if (!(in >> size >> resident >> shared) || shared > resident)
    return 0;
  return (resident - shared) * uint64_t(sysconf(_SC_PAGESIZE));
}

void MemoryGuard::watch() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stop_.wait_for(lock, std::chrono::milliseconds(50),
                         [this] { return stopping_; })) {
    uint64_t rss = residentBytes();
    if (rss <= limit_)
      continue;
    // Written in one call, the process then ends at once: the compile's own
    // threads may be anywhere, and waiting would let it grow on.
    std::string msg = llvm::formatv(
        "{0}: error: out of memory while {1}: {2} MiB resident (not counting "
        "mapped files), over the limit of {3} MiB (--max-rss; by default the "
        "memory available when the compile started)\n",
        tool_, *phase_.load(), rss >> 20, limit_ >> 20);
    (void)!::write(2, msg.data(), msg.size());
    ::_exit(1);
  }
}
