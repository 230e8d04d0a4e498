//===- KernelSupport.h - Threads, scratch, ISA clones of the ukernels -*- C++ -*-===//
//
// Microkernels split their work over the process's one OpenMP pool - the
// pool of the GEMM library and of generated parallel loops - rather than
// threads of their own: two pools on the same cores fight (an OpenMP worker
// spins for KMP_BLOCKTIME after each region while the other pool's threads
// wait for the core). The pool is entered through GOMP_parallel, the GNU
// OpenMP ABI that both libgomp and LLVM's libomp export, so this library
// needs no OpenMP compiler support and works under whichever runtime the
// process loaded first (a model library links libomp ahead of it).
//
//===----------------------------------------------------------------------===//
#ifndef QSLAW_RUNTIME_UKERNELS_KERNELSUPPORT_H
#define QSLAW_RUNTIME_UKERNELS_KERNELSUPPORT_H

#include <cstddef>
#include <cstdint>
#include <cstdlib>

// Loops left to the compiler's vectoriser are compiled once per ISA level
// and picked at load time by the dynamic loader. Cloned functions must call
// no out-of-line library templates (an inline template instantiated under
// another target is not emitted for the clone: undefined references at
// -O0); always_inline helpers are fine.
#if defined(__x86_64__) && defined(__clang__)
#define QSLAW_CLONES                                                          \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define QSLAW_CLONES
#endif

namespace qslaw::ukernels {

/// Runs body(i) for i in [0, count) on up to `threads` pool threads, each
/// taking a contiguous share (static schedule, as the callers' blocks cost
/// alike). Inline when threads <= 1 or count <= 1.
void parallelFor(int64_t count, int threads, void (*body)(void *, int64_t),
                 void *ctx);

template <typename F> void parallelFor(int64_t count, int threads, F &&f) {
  parallelFor(
      count, threads,
      [](void *c, int64_t i) { (*static_cast<F *>(c))(i); },
      static_cast<void *>(&f));
}

/// The rows of dy [M, N] (row stride lddy) a quantized gradient kernel
/// computes (QMatmulBlocked.cpp skips rows that are all zero where that
/// pays): what QSLAW_GEMM_TRACE records as the GEMM's M.
int64_t gradRowsComputed(const float *dy, int64_t M, int64_t N, int64_t lddy);

inline int64_t roundUp(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

/// Per-thread 64-byte aligned scratch, grown on demand and kept for later
/// calls, so the steady state does no allocation.
struct Scratch {
  float *ptr = nullptr;
  size_t cap = 0;
  ~Scratch() { std::free(ptr); }
  float *get(int64_t n) {
    if (static_cast<size_t>(n) > cap) {
      std::free(ptr);
      cap = static_cast<size_t>(roundUp(n, 16));
      ptr = static_cast<float *>(std::aligned_alloc(64, cap * sizeof(float)));
      if (!ptr)
        std::abort();
    }
    return ptr;
  }
};

} // namespace qslaw::ukernels

#endif // QSLAW_RUNTIME_UKERNELS_KERNELSUPPORT_H
