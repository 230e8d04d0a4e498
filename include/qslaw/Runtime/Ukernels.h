/*===- Ukernels.h - Hand-tuned CPU microkernels for qslaw ------*- C -*-===*
 *
 * C ABI entry points that compiled qslaw code (and tests/benchmarks) call
 * directly. Usable from C and C++.
 *
 *===----------------------------------------------------------------------===*/

#ifndef QSLAW_RUNTIME_UKERNELS_H
#define QSLAW_RUNTIME_UKERNELS_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__) || defined(__clang__)
#define QSLAW_RT_API __attribute__((visibility("default")))
#else
#define QSLAW_RT_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* 4-bit weight-only quantized matmul, fp32 activations and output:
 *
 *   y[m*ldy + n] = bias[n] + sum_{k<K} x[m*ldx + k] * scales[n*J + k/G]
 *                                      * (q(n,k) - z(n, k/G))
 *
 * for m < M, n < N, with J = ceil(K/G).
 *  - q(n,k): 4-bit code of element (n,k) of a row-major [N,K] matrix, packed
 *    two per byte: linear index i = n*K + k lives in codes[i/2], low nibble
 *    first (i even -> bits 0..3, i odd -> bits 4..7).
 *  - z(n,j): 4-bit zero points of a row-major [N,J] matrix, packed the same
 *    way (linear index n*J + j). zeros == NULL means every zero point is 8.
 *  - scales: fp32 [N,J] row-major. bias: fp32 [N] or NULL.
 *  - G >= 1 is the group size along K; the last group may be short.
 *  - ldx >= K and ldy >= N are row strides in elements.
 * Single-threaded; y must not alias the inputs. */
QSLAW_RT_API void qslaw_qmatmul_w4_f32(const float *x, int64_t M, int64_t K,
                                       int64_t ldx, const uint8_t *codes,
                                       const float *scales,
                                       const uint8_t *zeros, const float *bias,
                                       float *y, int64_t ldy, int64_t N,
                                       int64_t G);

/* Same, but computes only the output columns n in [n_begin, n_end) (clamped
 * to [0, N)); other columns of y are not touched. Disjoint ranges may run
 * concurrently on different threads. */
QSLAW_RT_API void qslaw_qmatmul_w4_f32_range(
    const float *x, int64_t M, int64_t K, int64_t ldx, const uint8_t *codes,
    const float *scales, const uint8_t *zeros, const float *bias, float *y,
    int64_t ldy, int64_t N, int64_t G, int64_t n_begin, int64_t n_end);

/* Same as qslaw_qmatmul_w4_f32, splitting N over up to num_threads
 * threads of the process's OpenMP pool (the one the GEMM library and
 * generated parallel loops use; the caller's thread takes one share). Runs
 * inline when num_threads <= 1 or the product is small (M*N*K <= 2^21),
 * where waking the pool would cost more than it saves. */
QSLAW_RT_API void qslaw_qmatmul_w4_f32_mt(
    const float *x, int64_t M, int64_t K, int64_t ldx, const uint8_t *codes,
    const float *scales, const uint8_t *zeros, const float *bias, float *y,
    int64_t ldy, int64_t N, int64_t G, int num_threads);

/* Any bit width: the forward's contract above, its gradients and gamma
 * mode's below, for bits = 2, 3, 4 or 8, with codes q(n,k) in [0, 2^bits) and zero points
 * z(n,j) laid out as the narrow-type emulation stores them: bits 2 and 4
 * packed 8/bits per byte over the linear index (n*K + k, resp. n*J + j),
 * low bits first; bits 3 and 8 one per byte (3-bit values in the low bits,
 * the high bits ignored). zeros == NULL means every zero point is
 * 2^(bits-1); gamma mode's clamp range and quantize's is [0, 2^bits - 1].
 * Any K >= 1 and G >= 1. W is dequantised a block at a time into a scratch
 * of at most 1 MiB per thread and each block's product runs in the GEMM
 * library (qslaw_sgemm_f32_batched), so these run at GEMM speed for large
 * M; blocks are shared over up to num_threads threads of the process's
 * OpenMP pool (<= 0: qslaw_num_threads()). Other bit widths abort.
 * The gradients (dx, ds, dgamma overwritten; the [N, K] weight gradient
 * never exists):
 *   dx[m*lddx + k] = sum_{n<N} dy[m*lddy + n] * scales[n*J + k/G]
 *                                           * (q(n,k) - z(n, k/G))
 *   ds[n*J + j]    = sum_{m<M} dy[m*lddy + n] * sum_{k in group j}
 *                                   x[m*ldx + k] * (q(n,k) - z(n,j))
 * Gamma mode (w: the full-precision [N, K] weight, w(n,k) at
 * w[n*w_stride_n + k*w_stride_k]: rows of it (w_stride_k 1, w_stride_n >= K)
 * or its transpose, the [K, N] layout of an ONNX MatMul initializer
 * (w_stride_n 1, w_stride_k >= N), read a block of rows at a time through a
 * transposing copy, so that no [N, K] copy of the weight needs to exist;
 * other strides abort):
 *   g[k] = sum_{m<M} dy[m*lddy + n] * x[m*ldx + k]
 *   c    = rint(w(n,k) / (scales[i] * gamma[i])) + z(n, j),  i = n*J + j
 *   dgamma[i] = -(1 / gamma[i]^2) * sum_{k in group j, 0 <= c <= 2^bits-1}
 *                                       w(n,k) * g[k]
 * (rint rounds half to even, as math.roundeven; a NaN c is masked out).
 * Quantisation (w as above): q(n,k) = clamp(rint(w(n,k) / scales[i]) +
 * z(n, j), 0, 2^bits - 1), a NaN ratio giving z. */
QSLAW_RT_API void qslaw_qmatmul_f32(int bits, const float *x, int64_t M,
                                    int64_t K, int64_t ldx,
                                    const uint8_t *codes, const float *scales,
                                    const uint8_t *zeros, const float *bias,
                                    float *y, int64_t ldy, int64_t N,
                                    int64_t G, int num_threads);
QSLAW_RT_API void qslaw_qmatmul_grad_input_f32(
    int bits, const float *dy, int64_t M, int64_t N, int64_t lddy,
    const uint8_t *codes, const float *scales, const uint8_t *zeros,
    float *dx, int64_t lddx, int64_t K, int64_t G, int num_threads);
QSLAW_RT_API void qslaw_qmatmul_grad_scale_f32(
    int bits, const float *x, int64_t M, int64_t K, int64_t ldx,
    const float *dy, int64_t N, int64_t lddy, const uint8_t *codes,
    const uint8_t *zeros, float *ds, int64_t G, int num_threads);
QSLAW_RT_API void qslaw_qmatmul_grad_gamma_f32(
    int bits, const float *x, int64_t M, int64_t K, int64_t ldx,
    const float *dy, int64_t N, int64_t lddy, const float *w,
    int64_t w_stride_n, int64_t w_stride_k, const float *scales,
    const float *gamma, const uint8_t *zeros, float *dgamma, int64_t G,
    int num_threads);
/* Codes written in the layout above (whole output bytes, padding bits
 * zero); rows split over num_threads (<= 0: qslaw_num_threads()) in blocks
 * that start on a byte of codes and zero points. */
QSLAW_RT_API void qslaw_quantize_f32(int bits, const float *w,
                                     int64_t w_stride_n, int64_t w_stride_k,
                                     int64_t N, int64_t K, const float *scales,
                                     const uint8_t *zeros, uint8_t *codes,
                                     int64_t G, int num_threads);

/* Gamma mode over a bf16 or f16 weight (w_type QSLAW_WEIGHT_BF16 or
 * QSLAW_WEIGHT_F16, 16-bit elements, strides in elements, laid out as
 * above), widened to f32 a block at a time as it is read: the codes and
 * dgamma of the f32 weight of the same values, bit for bit (every bf16 and
 * f16 value is an f32 value), with no f32 copy of the weight. Another
 * w_type aborts. */
#define QSLAW_WEIGHT_BF16 0
#define QSLAW_WEIGHT_F16 1
QSLAW_RT_API void qslaw_qmatmul_grad_gamma_f32_w16(
    int bits, const float *x, int64_t M, int64_t K, int64_t ldx,
    const float *dy, int64_t N, int64_t lddy, int w_type, const uint16_t *w,
    int64_t w_stride_n, int64_t w_stride_k, const float *scales,
    const float *gamma, const uint8_t *zeros, float *dgamma, int64_t G,
    int num_threads);
QSLAW_RT_API void qslaw_quantize_f32_w16(int bits, int w_type,
                                         const uint16_t *w, int64_t w_stride_n,
                                         int64_t w_stride_k, int64_t N,
                                         int64_t K, const float *scales,
                                         const uint8_t *zeros, uint8_t *codes,
                                         int64_t G, int num_threads);

/* Batched f32 GEMM through the GEMM library chosen at build time
 * (qslaw_gemm_library()), row-major, for i < batch:
 *   C_i = op(A_i) . op(B_i) + beta * C_i,   op(X) = X or X^T (trans != 0)
 * with X_i = x + i * strideX (stride 0: one matrix shared by all batches),
 * op(A_i) [M, K], op(B_i) [K, N], C_i [M, N], leading dimensions lda, ldb,
 * ldc in elements. num_threads <= 0 means qslaw_num_threads(). */
QSLAW_RT_API void qslaw_sgemm_f32_batched(
    int64_t batch, int64_t M, int64_t N, int64_t K, const float *a,
    int64_t lda, int64_t strideA, int transA, const float *b, int64_t ldb,
    int64_t strideB, int transB, float beta, float *c, int64_t ldc,
    int64_t strideC, int num_threads);

/* Rows of C = A . op(B) + beta * C selected by `rows` (M bytes, non-zero:
 * selected), A not transposed: selected rows as the full GEMM computes
 * them, the others zero (beta 0 and zero_unselected) or left as they are.
 * (Logits that only the loss kernels read need no zeros: they skip those
 * rows.) C's rows are groups of
 * `tokens` (M = groups * tokens); A holds `a_tokens` rows per group, C's
 * rows a_offset ... a_offset + a_tokens - 1 of it (a gradient that the full
 * GEMM would read placed into zeros at that offset; A = [M, K] with
 * tokens = a_tokens = M, a_offset = 0). Every selected row must be one of
 * A's. Runs of selected rows are multiplied in place; many scattered rows
 * are gathered into one GEMM. */
QSLAW_RT_API void qslaw_sgemm_rows_f32(int64_t M, int64_t N, int64_t K,
                                       const uint8_t *rows, int64_t tokens,
                                       int64_t a_tokens, int64_t a_offset,
                                       int zero_unselected,
                                       const float *a, int64_t lda,
                                       const float *b, int64_t ldb, int transB,
                                       float beta, float *c, int64_t ldc,
                                       int num_threads);

/* qslaw_sgemm_f32_batched and qslaw_sgemm_rows_f32 with B stored as bf16
 * or f16 (b_type QSLAW_WEIGHT_BF16 / QSLAW_WEIGHT_F16, 16-bit elements,
 * ldb and strideB in elements): B is widened (exactly) a block of about
 * 1 MiB of floats at a time into a per-thread scratch, each block's
 * product in the library; blocks over C's columns when N >= K, else over
 * the depth, accumulating (the sums' order is then the blocks', within f32
 * rounding of the one-GEMM result). No f32 copy of B is made. Another
 * b_type aborts. */
QSLAW_RT_API void qslaw_sgemm_f32_w16(
    int64_t batch, int64_t M, int64_t N, int64_t K, const float *a,
    int64_t lda, int64_t strideA, int transA, int b_type, const uint16_t *b,
    int64_t ldb, int64_t strideB, int transB, float beta, float *c,
    int64_t ldc, int64_t strideC, int num_threads);
QSLAW_RT_API void qslaw_sgemm_rows_f32_w16(
    int64_t M, int64_t N, int64_t K, const uint8_t *rows, int64_t tokens,
    int64_t aTokens, int64_t aOffset, int zeroUnselected, const float *a,
    int64_t lda, int b_type, const uint16_t *b, int64_t ldb, int transB,
    float beta, float *c, int64_t ldc, int num_threads);

/* Mean next-token loss over the rows of logits [T, V] (row stride ld) whose
 * label counts (not `ignore`, inside [0, V)): log-sum-exp minus the label's
 * logit, summed in row order and divided by max(count, 1). Ignored rows are
 * not read. */
QSLAW_RT_API float qslaw_cross_entropy_f32(int64_t T, int64_t V,
                                           const float *logits, int64_t ld,
                                           const int64_t *labels,
                                           int64_t ignore, int num_threads);

/* Its gradient times grad_loss into grad [T, V] (row stride ldg): counted
 * rows (softmax - one-hot) * grad_loss / max(count, 1), the others zero
 * (with zero_ignored; else left as they are, for a reader that skips them). */
QSLAW_RT_API void qslaw_cross_entropy_grad_f32(
    int64_t T, int64_t V, const float *logits, int64_t ld,
    const int64_t *labels, int64_t ignore, float grad_loss, float *grad,
    int64_t ldg, int zero_ignored, int num_threads);

/* "onednn" or "openblas". */
QSLAW_RT_API const char *qslaw_gemm_library(void);

/* The default thread count of library calls and microkernels: the
 * environment variable QSLAW_NUM_THREADS (an integer >= 1) or, when unset,
 * all cores; read once. */
QSLAW_RT_API int qslaw_num_threads(void);

/* The heap of compiled code's buffers (MLIR's generic allocation functions
 * _mlir_memref_to_llvm_alloc/_aligned_alloc/_free call these). Blocks of
 * 64 KiB and more are cached when freed and reused by later requests of at
 * least half their size; the cache holds at most QSLAW_ALLOC_CACHE_MB MiB
 * (default 2048). align: a power of two (raised to 64); NULL on failure.
 * Thread-safe. */
typedef struct qslaw_alloc_stats {
  uint64_t hits, misses; /* cached-size requests served from / not from the cache */
  uint64_t cached_bytes; /* held in the cache now */
  uint64_t live_bytes;   /* handed out and not yet freed (page-rounded) */
  uint64_t peak_live_bytes; /* the most live_bytes has been */
} qslaw_alloc_stats;
QSLAW_RT_API void *qslaw_alloc(size_t size, size_t align);
QSLAW_RT_API void qslaw_free(void *p);
/* Returns every cached block to the system. */
QSLAW_RT_API void qslaw_alloc_trim(void);
QSLAW_RT_API qslaw_alloc_stats qslaw_alloc_get_stats(void);

/* Name of the code path in use: "scalar", "avx2" or "avx512". Chosen from
 * the CPU at first use; the environment variable QSLAW_UKERNEL_ISA
 * (scalar|avx2|avx512) can force a lesser path (clamped to CPU support). */
QSLAW_RT_API const char *qslaw_ukernel_isa(void);

/* Testing/benchmarking hook: force "scalar", "avx2" or "avx512" (clamped to
 * what the CPU supports). NULL or "" re-runs detection, including
 * QSLAW_UKERNEL_ISA. Returns the name now in effect. Not thread-safe with
 * respect to concurrent matmul calls choosing a path. */
QSLAW_RT_API const char *qslaw_ukernel_force_isa(const char *name);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* QSLAW_RUNTIME_UKERNELS_H */
