//===- KernelSupport.cpp - parallelFor over the process's OpenMP pool -----===//
#include "KernelSupport.h"

#include <algorithm>

// The GNU OpenMP ABI (libgomp; LLVM's libomp implements it too).
extern "C" {
void GOMP_parallel(void (*fn)(void *), void *data, unsigned numThreads,
                   unsigned flags);
int omp_get_thread_num(void);
int omp_get_num_threads(void);
}

namespace {
struct Job {
  int64_t count;
  void (*body)(void *, int64_t);
  void *ctx;
};

void runShare(void *p) {
  const Job &job = *static_cast<const Job *>(p);
  // The team may be smaller than asked (nested regions, thread limits):
  // shares follow the team actually formed.
  const int64_t t = omp_get_num_threads(), me = omp_get_thread_num();
  const int64_t begin = job.count * me / t, end = job.count * (me + 1) / t;
  for (int64_t i = begin; i < end; ++i)
    job.body(job.ctx, i);
}
} // namespace

void qslaw::ukernels::parallelFor(int64_t count, int threads,
                                  void (*body)(void *, int64_t), void *ctx) {
  if (threads <= 1 || count <= 1) {
    for (int64_t i = 0; i < count; ++i)
      body(ctx, i);
    return;
  }
  Job job{count, body, ctx};
  GOMP_parallel(runShare, &job,
                static_cast<unsigned>(std::min<int64_t>(threads, count)), 0);
}
