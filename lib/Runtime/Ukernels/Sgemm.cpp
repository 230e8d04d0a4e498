//===- Sgemm.cpp - batched f32 GEMM over the build's GEMM library ---------===//
//
// The one place qslaw calls a GEMM library (docs/Pipeline.md says which and
// why): compiled contractions (qslaw-lower-contractions-to-library) and any
// microkernel that needs a float GEMM come through here, so the library
// and its thread count are chosen once.
//
//===----------------------------------------------------------------------===//
#include "qslaw/Runtime/Ukernels.h"

#include "KernelSupport.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#if defined(QSLAW_GEMM_ONEDNN)
#include <dnnl.h>
extern "C" void omp_set_num_threads(int); // oneDNN's Debian build is OpenMP
#elif defined(QSLAW_GEMM_OPENBLAS)
#include <cblas.h>
#else
#error "define QSLAW_GEMM_ONEDNN or QSLAW_GEMM_OPENBLAS"
#endif

namespace {
/// Above this many multiply-adds per GEMM of a batch, each GEMM is split
/// across the threads instead (its own parallelism is then efficient).
constexpr int64_t kBatchSplitMaxWork = int64_t(1) << 25;

int defaultThreads() {
  static int n = [] {
    int cores = int(std::thread::hardware_concurrency());
    if (cores < 1)
      cores = 1;
    const char *env = std::getenv("QSLAW_NUM_THREADS");
    if (!env || !*env)
      return cores;
    char *end = nullptr;
    long v = std::strtol(env, &end, 10);
    if (*end || v < 1 || v > 4096) {
      std::fprintf(stderr,
                   "qslaw: QSLAW_NUM_THREADS='%s' is not a thread count in "
                   "[1, 4096]; using %d (all cores)\n",
                   env, cores);
      return cores;
    }
    return int(v);
  }();
  return n;
}

#if defined(QSLAW_GEMM_ONEDNN)
void setThreads(int n) { omp_set_num_threads(n); } // the caller's OpenMP ICV

void checkDnnl(dnnl_status_t st, int64_t M, int64_t N, int64_t K) {
  if (st == dnnl_success) // fails only for arguments the callers never pass
    return;
  std::fprintf(stderr, "qslaw: dnnl_sgemm failed (status %d) on M=%lld N=%lld "
               "K=%lld\n", int(st), (long long)M, (long long)N, (long long)K);
  std::abort();
}
#else
/// OpenBLAS's thread count is process-wide: set it only when it changes.
std::mutex threadsMutex;
int currentThreads = -1;

void setThreads(int n) {
  std::lock_guard<std::mutex> lock(threadsMutex);
  if (n != currentThreads) {
    openblas_set_num_threads(n);
    currentThreads = n;
  }
}
#endif
} // namespace

#if defined(QSLAW_GEMM_ONEDNN)
/// Generated OpenMP loops (qslaw-compile --parallel) and oneDNN share one
/// OpenMP pool; QSLAW_NUM_THREADS sizes it from the first parallel loop on,
/// not only from the first GEMM.
__attribute__((constructor)) static void applyThreadKnob() {
  if (const char *env = std::getenv("QSLAW_NUM_THREADS"); env && *env)
    setThreads(defaultThreads());
}
#endif

extern "C" QSLAW_RT_API int qslaw_num_threads(void) { return defaultThreads(); }

extern "C" QSLAW_RT_API const char *qslaw_gemm_library(void) {
#if defined(QSLAW_GEMM_ONEDNN)
  return "onednn";
#else
  return "openblas";
#endif
}

extern "C" QSLAW_RT_API void
qslaw_sgemm_f32_batched(int64_t batch, int64_t M, int64_t N, int64_t K,
                        const float *a, int64_t lda, int64_t strideA,
                        int transA, const float *b, int64_t ldb,
                        int64_t strideB, int transB, float beta, float *c,
                        int64_t ldc, int64_t strideC, int numThreads) {
  if (M <= 0 || N <= 0 || batch <= 0)
    return;
  const int threads = numThreads > 0 ? numThreads : defaultThreads();
#if defined(QSLAW_GEMM_ONEDNN)
  // Many small GEMMs (attention's per-head products): one GEMM per thread
  // at a time beats splitting each across the team, whose share of a
  // 256 x 256 x 64 product is too small to hide the fork and the uneven
  // end (the small step's 34 batched calls: 7.5-7.7 -> 6.9 ms, 2 threads;
  // docs/performance.md, twelfth session). oneDNN runs a GEMM called
  // inside a parallel region on the calling thread.
  if (threads > 1 && K > 0 && batch >= threads &&
      (batch % threads == 0 || batch >= 4 * threads) &&
      M * N * K <= kBatchSplitMaxWork) {
    qslaw::ukernels::parallelFor(batch, threads, [&](int64_t i) {
      checkDnnl(dnnl_sgemm(transA ? 'T' : 'N', transB ? 'T' : 'N', M, N, K,
                           1.f, a + i * strideA, lda, b + i * strideB, ldb,
                           beta, c + i * strideC, ldc),
                M, N, K);
    });
    return;
  }
#endif
  setThreads(threads);
  for (int64_t i = 0; i < batch; ++i) {
    const float *ai = a + i * strideA, *bi = b + i * strideB;
    float *ci = c + i * strideC;
    if (K <= 0) { // empty sum: C = beta * C
      for (int64_t r = 0; r < M; ++r)
        for (int64_t s = 0; s < N; ++s)
          ci[r * ldc + s] = beta == 0.f ? 0.f : beta * ci[r * ldc + s];
      continue;
    }
#if defined(QSLAW_GEMM_ONEDNN)
    checkDnnl(dnnl_sgemm(transA ? 'T' : 'N', transB ? 'T' : 'N', M, N, K,
                         1.f, ai, lda, bi, ldb, beta, ci, ldc),
              M, N, K);
#else
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans,
                transB ? CblasTrans : CblasNoTrans, int(M), int(N), int(K),
                1.f, ai, int(lda), bi, int(ldb), beta, ci, int(ldc));
#endif
  }
}

extern "C" QSLAW_RT_API void
qslaw_sgemm_rows_f32(int64_t M, int64_t N, int64_t K, const uint8_t *rows,
                     int64_t tokens, int64_t aTokens, int64_t aOffset,
                     int zeroUnselected, const float *a, int64_t lda,
                     const float *b, int64_t ldb, int transB, float beta,
                     float *c, int64_t ldc, int numThreads) {
  if (M <= 0 || N <= 0)
    return;
  // A's row of C's row r (a selected row is one of A's).
  auto aRow = [&](int64_t r) {
    return a + ((r / tokens) * aTokens + r % tokens - aOffset) * lda;
  };
  // The selected rows as runs [first, end) inside one group: a sequence's
  // counted tokens are usually one run per sample, multiplied in place.
  std::vector<std::pair<int64_t, int64_t>> runs;
  int64_t selected = 0;
  for (int64_t r = 0; r < M; ++r) {
    if (!rows[r]) {
      if (beta == 0.f && zeroUnselected)
        std::fill(c + r * ldc, c + r * ldc + N, 0.f);
      continue;
    }
    ++selected;
    if (!runs.empty() && runs.back().second == r && r % tokens != 0)
      runs.back().second = r + 1;
    else
      runs.push_back({r, r + 1});
  }
  if (runs.size() <= 8) {
    for (auto [first, end] : runs)
      qslaw_sgemm_f32_batched(1, end - first, N, K, aRow(first), lda, 0,
                              /*transA=*/0, b, ldb, 0, transB, beta,
                              c + first * ldc, ldc, 0, numThreads);
    return;
  }
  // Scattered rows: gathered into one GEMM.
  std::vector<float> ga(size_t(selected) * K), gc(size_t(selected) * N);
  int64_t i = 0;
  for (auto [first, end] : runs)
    for (int64_t r = first; r < end; ++r, ++i) {
      std::copy(aRow(r), aRow(r) + K, ga.data() + i * K);
      if (beta != 0.f)
        std::copy(c + r * ldc, c + r * ldc + N, gc.data() + i * N);
    }
  qslaw_sgemm_f32_batched(1, selected, N, K, ga.data(), K, 0, 0, b, ldb, 0,
                          transB, beta, gc.data(), N, 0, numThreads);
  i = 0;
  for (auto [first, end] : runs)
    for (int64_t r = first; r < end; ++r, ++i)
      std::copy(gc.data() + i * N, gc.data() + (i + 1) * N, c + r * ldc);
}
