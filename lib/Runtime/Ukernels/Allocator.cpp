//===- Allocator.cpp - caching heap for compiled code's buffers -----------===//
//
// Compiled CPU code allocates its intermediate buffers through MLIR's
// generic allocation functions (finalize-memref-to-llvm
// use-generic-functions), implemented here. Large blocks freed by one call
// are kept and handed out again by the next: a model's forward allocates
// the same sizes on every call, and glibc's malloc would otherwise map and
// unmap them each time, paying a page fault and a zeroed page per 4 KiB
// (a fifth of a real-width LLaVA forward's time before this cache;
// docs/performance.md).
//
// A free block serves a request of at least half its size (best fit), and
// the cache holds at most QSLAW_ALLOC_CACHE_MB (default 2048) MiB; beyond
// that blocks go back to the system.
//
//===----------------------------------------------------------------------===//
#include "qslaw/Runtime/Ukernels.h"

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>

namespace {
/// Blocks below this go straight to malloc (its bins handle them well).
constexpr size_t kMinCached = 64 << 10;
constexpr size_t kPage = 4096;

/// Stored just below the pointer handed out.
struct Header {
  void *base;   // what aligned_alloc returned
  size_t bytes; // usable bytes from the user pointer
  size_t align; // alignment of the user pointer
  size_t magic;
};
constexpr size_t kMagic = 0x716c617761636865ull; // "qslawache"

struct Cache {
  std::mutex mutex;
  std::multimap<std::pair<size_t, size_t>, void *> free; // (align, bytes)
  size_t cachedBytes = 0, limit = 0;
  qslaw_alloc_stats stats{};

  Cache() {
    size_t mb = 2048;
    if (const char *env = std::getenv("QSLAW_ALLOC_CACHE_MB"); env && *env) {
      char *end = nullptr;
      long long v = std::strtoll(env, &end, 10);
      if (*end || v < 0)
        std::fprintf(stderr,
                     "qslaw: QSLAW_ALLOC_CACHE_MB='%s' is not a size in MiB; "
                     "using %zu\n",
                     env, mb);
      else
        mb = size_t(v);
    }
    limit = mb << 20;
  }
};

Cache &cache() {
  static Cache *c = new Cache(); // never destroyed: frees may come late
  return *c;
}

Header *headerOf(void *p) { return static_cast<Header *>(p) - 1; }

// Live bytes of every block (cached sizes or not), for memory profiles of
// compiled code (qslaw_alloc_get_stats).
std::atomic<uint64_t> liveBytes{0}, peakLiveBytes{0};

void *track(void *p, size_t bytes) {
  if (!p)
    return p;
  uint64_t now = liveBytes.fetch_add(bytes, std::memory_order_relaxed) + bytes;
  uint64_t peak = peakLiveBytes.load(std::memory_order_relaxed);
  while (now > peak && !peakLiveBytes.compare_exchange_weak(
                           peak, now, std::memory_order_relaxed))
    ;
  return p;
}

void *fresh(size_t bytes, size_t align) {
  // The header sits in a whole alignment unit below the user pointer
  // (align >= 64, qslaw_alloc's floor, leaves room for it).
  static_assert(sizeof(Header) <= 64, "header must fit below 64-byte units");
  size_t pad = align;
  void *base = std::aligned_alloc(align, pad + bytes);
  if (!base)
    return nullptr;
  void *user = static_cast<char *>(base) + pad;
  *headerOf(user) = Header{base, bytes, align, kMagic};
  return user;
}
} // namespace

extern "C" QSLAW_RT_API void *qslaw_alloc(size_t size, size_t align) {
  if (align < 64)
    align = 64; // a cache line, and enough for any vector type used
  if (align & (align - 1))
    return nullptr;
  size_t bytes = (size + kPage - 1) / kPage * kPage;
  if (bytes < kMinCached)
    return track(fresh(bytes, align), bytes);
  Cache &c = cache();
  {
    std::lock_guard<std::mutex> lock(c.mutex);
    auto it = c.free.lower_bound({align, bytes});
    if (it != c.free.end() && it->first.first == align &&
        it->first.second <= 2 * bytes) {
      void *p = it->second;
      c.cachedBytes -= it->first.second;
      c.free.erase(it);
      ++c.stats.hits;
      c.stats.cached_bytes = c.cachedBytes;
      return track(p, headerOf(p)->bytes); // the block's own size
    }
    ++c.stats.misses;
  }
  return track(fresh(bytes, align), bytes);
}

extern "C" QSLAW_RT_API void qslaw_free(void *p) {
  if (!p)
    return;
  Header h = *headerOf(p);
  if (h.magic != kMagic) {
    std::fprintf(stderr, "qslaw: qslaw_free of a pointer it did not "
                         "allocate\n");
    std::abort();
  }
  liveBytes.fetch_sub(h.bytes, std::memory_order_relaxed);
  if (h.bytes >= kMinCached) {
    Cache &c = cache();
    std::lock_guard<std::mutex> lock(c.mutex);
    if (c.cachedBytes + h.bytes <= c.limit) {
      c.free.insert({{h.align, h.bytes}, p});
      c.cachedBytes += h.bytes;
      c.stats.cached_bytes = c.cachedBytes;
      return;
    }
  }
  headerOf(p)->magic = 0;
  std::free(h.base);
}

extern "C" QSLAW_RT_API void qslaw_alloc_trim(void) {
  Cache &c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  for (auto &[key, p] : c.free) {
    headerOf(p)->magic = 0;
    std::free(headerOf(p)->base);
  }
  c.free.clear();
  c.cachedBytes = 0;
  c.stats.cached_bytes = 0;
}

extern "C" QSLAW_RT_API qslaw_alloc_stats qslaw_alloc_get_stats(void) {
  Cache &c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  qslaw_alloc_stats s = c.stats;
  s.live_bytes = liveBytes.load(std::memory_order_relaxed);
  s.peak_live_bytes = peakLiveBytes.load(std::memory_order_relaxed);
  return s;
}

// MLIR's generic allocation functions (finalize-memref-to-llvm
// use-generic-functions=true).
extern "C" QSLAW_RT_API void *_mlir_memref_to_llvm_alloc(size_t size) {
  return qslaw_alloc(size, 64);
}
extern "C" QSLAW_RT_API void *
_mlir_memref_to_llvm_aligned_alloc(size_t alignment, size_t size) {
  return qslaw_alloc(size, alignment);
}
extern "C" QSLAW_RT_API void _mlir_memref_to_llvm_free(void *p) {
  qslaw_free(p);
}
