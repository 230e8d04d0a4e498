//===- NarrowGemm.cpp - f32 GEMMs whose B is stored as bf16 or f16 --------===//
//
// A half-precision checkpoint computing in f32 keeps its frozen weights in
// bf16/f16 (qslaw-lower-contractions-to-library passes them unwidened).
// Widening a whole weight before its GEMM wrote a fresh f32 copy every call
// (the 32000-row head and embedding of the small LLaVA: 65 MB each). Here B
// is widened one block at a time into a cache-sized per-thread scratch
// (exactly: every bf16/f16 value is an f32 value) and each block's product
// runs in the GEMM library (qslaw_sgemm_f32_batched) on all threads. Blocks
// run over C's columns when they are at least as many as the depth (each
// output element is one library dot product over the whole depth), else
// over the depth, accumulating into C (the head's input gradient: 512
// columns, depth 32000).
//
//===----------------------------------------------------------------------===//
#include "KernelSupport.h"
#include "WeightRows.h"
#include "qslaw/Runtime/Ukernels.h"

#include <algorithm>

using namespace qslaw::ukernels;

namespace {

// Widened floats per block: 2^18 (1 MiB, an L2), as the blocked qmatmul.
constexpr int64_t kBlockFloats = int64_t(1) << 18;

thread_local Scratch tlsNarrow;

/// B of C[M, N] = A . op(B) (+ beta C), op(B) [K, N], stored as 16-bit
/// rows: [K, N] (transB 0) or [N, K] (transB 1), leading dimension ldb.
struct NarrowB {
  BlockFn widen;
  const uint16_t *b;
  int64_t ldb;
  int transB;
  int64_t N, K;

  /// op(B)[d0 : d0 + nd, c0 : c0 + nc] widened into `dst`, laid out as B
  /// is (transposed or not), with its leading dimension returned. Rows are
  /// shared over the pool.
  int64_t widenBlock(int64_t c0, int64_t nc, int64_t d0, int64_t nd,
                     float *dst, int threads) const {
    // Stored rows and columns of the block.
    const int64_t r0 = transB ? c0 : d0, rows = transB ? nc : nd;
    const int64_t s0 = transB ? d0 : c0, cols = transB ? nd : nc;
    const int64_t share = std::max<int64_t>(1, (rows + threads - 1) / threads);
    parallelFor((rows + share - 1) / share, threads, [&](int64_t i) {
      const int64_t first = i * share, n = std::min(share, rows - first);
      widen(b + (r0 + first) * ldb + s0, ldb, n, cols, dst + first * cols);
    });
    return cols;
  }

  /// gemm(c0, nc, d0, nd, block, ldBlock, fresh) over the blocks of
  /// op(B): column blocks when N >= K, else depth blocks. `fresh`: the
  /// block's C is not yet written by an earlier block (every column block;
  /// the first depth block), so it takes the caller's beta.
  template <class F> void forBlocks(int threads, F &&gemm) const {
    const bool byColumns = N >= K;
    const int64_t total = byColumns ? N : K, other = byColumns ? K : N;
    const int64_t width = std::min(
        total, roundUp(std::max<int64_t>(16, kBlockFloats / other), 16));
    float *scratch = tlsNarrow.get(width * other);
    for (int64_t at = 0; at < total; at += width) {
      const int64_t w = std::min(width, total - at);
      const int64_t c0 = byColumns ? at : 0, nc = byColumns ? w : N;
      const int64_t d0 = byColumns ? 0 : at, nd = byColumns ? K : w;
      const int64_t ld = widenBlock(c0, nc, d0, nd, scratch, threads);
      gemm(c0, nc, d0, nd, scratch, ld, byColumns || at == 0);
    }
  }
};

int threadsOf(int numThreads) {
  return numThreads > 0 ? numThreads : qslaw_num_threads();
}

} // namespace

extern "C" {

QSLAW_RT_API void qslaw_sgemm_f32_w16(
    int64_t batch, int64_t M, int64_t N, int64_t K, const float *a,
    int64_t lda, int64_t strideA, int transA, int b_type, const uint16_t *b,
    int64_t ldb, int64_t strideB, int transB, float beta, float *c,
    int64_t ldc, int64_t strideC, int num_threads) {
  const BlockFn widen = widenRowsFor(weight16(b_type));
  if (M <= 0 || N <= 0 || batch <= 0)
    return;
  const int threads = threadsOf(num_threads);
  if (K <= 0) { // C = beta * C; B is not read
    const float none = 0.f;
    qslaw_sgemm_f32_batched(batch, M, N, K, a, lda, strideA, transA, &none, 1,
                            0, transB, beta, c, ldc, strideC, threads);
    return;
  }
  for (int64_t i = 0; i < batch; ++i) {
    const NarrowB nb{widen, b + i * strideB, ldb, transB, N, K};
    const float *ai = a + i * strideA;
    float *ci = c + i * strideC;
    nb.forBlocks(threads, [&](int64_t c0, int64_t nc, int64_t d0, int64_t nd,
                              const float *blk, int64_t ld, bool fresh) {
      // A's columns d0 ... (rows when A is stored transposed, [K, M]).
      const float *ad = ai + (transA ? d0 * lda : d0);
      qslaw_sgemm_f32_batched(1, M, nc, nd, ad, lda, 0, transA, blk, ld, 0,
                              transB, fresh ? beta : 1.f, ci + c0, ldc, 0,
                              threads);
    });
  }
}

QSLAW_RT_API void qslaw_sgemm_rows_f32_w16(
    int64_t M, int64_t N, int64_t K, const uint8_t *rows, int64_t tokens,
    int64_t aTokens, int64_t aOffset, int zeroUnselected, const float *a,
    int64_t lda, int b_type, const uint16_t *b, int64_t ldb, int transB,
    float beta, float *c, int64_t ldc, int num_threads) {
  const BlockFn widen = widenRowsFor(weight16(b_type));
  if (M <= 0 || N <= 0)
    return;
  const int threads = threadsOf(num_threads);
  if (K <= 0) {
    const float none = 0.f;
    qslaw_sgemm_rows_f32(M, N, K, rows, tokens, aTokens, aOffset,
                         zeroUnselected, a, lda, &none, 1, transB, beta, c,
                         ldc, threads);
    return;
  }
  const NarrowB nb{widen, b, ldb, transB, N, K};
  nb.forBlocks(threads, [&](int64_t c0, int64_t nc, int64_t d0, int64_t nd,
                            const float *blk, int64_t ld, bool fresh) {
    // Later depth blocks accumulate: the unselected rows' zeros (or values)
    // stay as the first block left them.
    qslaw_sgemm_rows_f32(M, nc, nd, rows, tokens, aTokens, aOffset,
                         fresh ? zeroUnselected : 0, a + d0, lda, blk, ld,
                         transB, fresh ? beta : 1.f, c + c0, ldc, threads);
  });
}

} // extern "C"
