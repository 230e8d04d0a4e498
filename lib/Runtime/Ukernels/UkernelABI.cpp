//===- UkernelABI.cpp - MLIR C-interface entry points of the ukernels -----===//
//
// Compiled code calls microkernels through `llvm.emit_c_interface`
// declarations: every memref argument arrives as a pointer to its strided
// descriptor. After narrow-type emulation, 2- and 4-bit codes and zero
// points are 1-D byte memrefs (packed, low bits first); 3- and 8-bit ones
// stay [rows, cols] with one code per byte. Thread counts <= 0 mean
// qslaw_num_threads().
//
//===----------------------------------------------------------------------===//
#include "KernelSupport.h"
#include "qslaw/Runtime/MemRefABI.h"
#include "qslaw/Runtime/Ukernels.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <type_traits>
#include <vector>

namespace {
template <typename T, int Rank>
using MemRef = qslaw::MemRefDescriptor<T, Rank>;

/// QSLAW_GEMM_TRACE=FILE appends one JSON line per contraction call: the
/// float GEMM it amounts to (C[batch, m, n] = op(A) op(B), depth k), so
/// bench/gemm_lower_bound can time the same shapes alone through the GEMM
/// library. Off (one load and branch per call) unless the variable is set.
std::FILE *traceFile() {
  static std::FILE *file = [] {
    const char *path = std::getenv("QSLAW_GEMM_TRACE");
    return path && *path ? std::fopen(path, "a") : nullptr;
  }();
  return file;
}

void traceContraction(const char *kind, int64_t batch, int64_t m, int64_t n,
                      int64_t k, int transA, int transB) {
  std::FILE *file = traceFile();
  if (!file)
    return;
  static std::mutex lock;
  std::lock_guard<std::mutex> guard(lock);
  std::fprintf(file,
               "{\"kind\":\"%s\",\"batch\":%lld,\"m\":%lld,\"n\":%lld,"
               "\"k\":%lld,\"trans_a\":%d,\"trans_b\":%d}\n",
               kind, (long long)batch, (long long)m, (long long)n,
               (long long)k, transA, transB);
  std::fflush(file);
}
} // namespace

extern "C" QSLAW_RT_API void _mlir_ciface_qslaw_ukernel_qmatmul_w4_f32(
    MemRef<float, 2> *x, MemRef<uint8_t, 1> *codes, MemRef<float, 2> *scales,
    MemRef<uint8_t, 1> *zeros, MemRef<float, 1> *bias, MemRef<float, 2> *out,
    int64_t group, int32_t numThreads) {
  traceContraction("qmatmul", 1, x->sizes[0], out->sizes[1], x->sizes[1], 0, 1);
  const uint8_t *z = zeros->sizes[0] == 0 ? nullptr : zeros->data();
  const float *b = bias->sizes[0] == 0 ? nullptr : bias->data();
  qslaw_qmatmul_w4_f32_mt(x->data(), x->sizes[0], x->sizes[1], x->strides[0],
                          codes->data(), scales->data(), z, b, out->data(),
                          out->strides[0], out->sizes[1], group,
                          numThreads > 0 ? numThreads : qslaw_num_threads());
}

namespace {
int threadsOr(int32_t n) { return n > 0 ? n : qslaw_num_threads(); }
template <typename T> const T *orNull(const T *data, int64_t size) {
  return size == 0 ? nullptr : data;
}
/// The token rows a gradient kernel computes (it skips zero rows of dy).
int64_t activeRows(const MemRef<float, 2> *dy) {
  return qslaw::ukernels::gradRowsComputed(dy->data(), dy->sizes[0],
                                           dy->sizes[1], dy->strides[0]);
}
} // namespace

namespace {
/// Gamma mode's two kernels over a weight of element type E: f32 (the
/// _f32 entries) or 16-bit (the _f32_wbf16 / _wf16 ones, wType saying
/// which).
template <int R, class E>
void gradGammaEntry(int bits, int wType, MemRef<float, 2> *x,
                    MemRef<float, 2> *dy, MemRef<E, 2> *w,
                    MemRef<float, 2> *scales, MemRef<float, 2> *gamma,
                    MemRef<uint8_t, R> *zeros, MemRef<float, 2> *dgamma,
                    int64_t group, int32_t numThreads) {
  if (traceFile())
    traceContraction("qmatmul_grad_gamma", 1, dy->sizes[1], x->sizes[1],
                     activeRows(dy), 1, 0);
  const uint8_t *z = orNull(zeros->data(), zeros->sizes[0]);
  if constexpr (std::is_same_v<E, float>)
    qslaw_qmatmul_grad_gamma_f32(
        bits, x->data(), x->sizes[0], x->sizes[1], x->strides[0], dy->data(),
        dy->sizes[1], dy->strides[0], w->data(), w->strides[0], w->strides[1],
        scales->data(), gamma->data(), z, dgamma->data(), group,
        threadsOr(numThreads));
  else
    qslaw_qmatmul_grad_gamma_f32_w16(
        bits, x->data(), x->sizes[0], x->sizes[1], x->strides[0], dy->data(),
        dy->sizes[1], dy->strides[0], wType, w->data(), w->strides[0],
        w->strides[1], scales->data(), gamma->data(), z, dgamma->data(),
        group, threadsOr(numThreads));
}

template <int R, class E>
void quantizeEntry(int bits, int wType, MemRef<E, 2> *w,
                   MemRef<float, 2> *scales, MemRef<uint8_t, R> *zeros,
                   MemRef<uint8_t, R> *codes, int64_t group,
                   int32_t numThreads) {
  const uint8_t *z = orNull(zeros->data(), zeros->sizes[0]);
  if constexpr (std::is_same_v<E, float>)
    qslaw_quantize_f32(bits, w->data(), w->strides[0], w->strides[1],
                       w->sizes[0], w->sizes[1], scales->data(), z,
                       codes->data(), group, threadsOr(numThreads));
  else
    qslaw_quantize_f32_w16(bits, wType, w->data(), w->strides[0],
                           w->strides[1], w->sizes[0], w->sizes[1],
                           scales->data(), z, codes->data(), group,
                           threadsOr(numThreads));
}
} // namespace

/* Gamma mode's entries for B-bit codes over a weight of type E: S is the
 * name's suffix (empty for f32, _wbf16 / _wf16), W the 16-bit type. */
#define QSLAW_GAMMA_ENTRIES(B, R, S, E, W)                                     \
  extern "C" QSLAW_RT_API void                                                 \
      _mlir_ciface_qslaw_ukernel_qmatmul_w##B##_grad_gamma_f32##S(             \
          MemRef<float, 2> *x, MemRef<float, 2> *dy, MemRef<E, 2> *w,          \
          MemRef<float, 2> *scales, MemRef<float, 2> *gamma,                   \
          MemRef<uint8_t, R> *zeros, MemRef<float, 2> *dgamma, int64_t group,  \
          int32_t numThreads) {                                                \
    gradGammaEntry<R, E>(B, W, x, dy, w, scales, gamma, zeros, dgamma, group,  \
                         numThreads);                                          \
  }                                                                            \
  extern "C" QSLAW_RT_API void                                                 \
      _mlir_ciface_qslaw_ukernel_quantize_w##B##_f32##S(                       \
          MemRef<E, 2> *w, MemRef<float, 2> *scales,                           \
          MemRef<uint8_t, R> *zeros, MemRef<uint8_t, R> *codes, int64_t group, \
          int32_t numThreads) {                                                \
    quantizeEntry<R, E>(B, W, w, scales, zeros, codes, group, numThreads);     \
  }

/* The any-width kernels (QMatmulBlocked.cpp) for B-bit codes: 2- and 4-bit
 * codes and zero points arrive as the narrow-type emulation's packed byte
 * vectors (rank 1), 3- and 8-bit ones one per byte as [N, K] / [N, J]
 * (rank 2). The 4-bit forward has its own kernel above. */
#define QSLAW_QMATMUL_ANY_WIDTH_GRADS(B, R)                                    \
  extern "C" QSLAW_RT_API void                                                 \
      _mlir_ciface_qslaw_ukernel_qmatmul_w##B##_grad_input_f32(                \
          MemRef<float, 2> *dy, MemRef<uint8_t, R> *codes,                     \
          MemRef<float, 2> *scales, MemRef<uint8_t, R> *zeros,                 \
          MemRef<float, 2> *dx, int64_t group, int32_t numThreads) {           \
    if (traceFile())                                                           \
      traceContraction("qmatmul_grad_input", 1, activeRows(dy),              \
                       dx->sizes[1], dy->sizes[1], 0, 0);                      \
    qslaw_qmatmul_grad_input_f32(                                              \
        B, dy->data(), dy->sizes[0], dy->sizes[1], dy->strides[0],             \
        codes->data(), scales->data(), orNull(zeros->data(), zeros->sizes[0]), \
        dx->data(), dx->strides[0], dx->sizes[1], group,                       \
        threadsOr(numThreads));                                                \
  }                                                                            \
  extern "C" QSLAW_RT_API void                                                 \
      _mlir_ciface_qslaw_ukernel_qmatmul_w##B##_grad_scale_f32(                \
          MemRef<float, 2> *x, MemRef<float, 2> *dy,                           \
          MemRef<uint8_t, R> *codes, MemRef<uint8_t, R> *zeros,                \
          MemRef<float, 2> *ds, int64_t group, int32_t numThreads) {           \
    if (traceFile())                                                           \
      traceContraction("qmatmul_grad_scale", 1, dy->sizes[1], x->sizes[1],     \
                       activeRows(dy), 1, 0);                                  \
    qslaw_qmatmul_grad_scale_f32(                                              \
        B, x->data(), x->sizes[0], x->sizes[1], x->strides[0], dy->data(),     \
        dy->sizes[1], dy->strides[0], codes->data(),                           \
        orNull(zeros->data(), zeros->sizes[0]), ds->data(), group,             \
        threadsOr(numThreads));                                                \
  }                                                                            \
  QSLAW_GAMMA_ENTRIES(B, R, , float, 0)                                         \
  QSLAW_GAMMA_ENTRIES(B, R, _wbf16, uint16_t, QSLAW_WEIGHT_BF16)               \
  QSLAW_GAMMA_ENTRIES(B, R, _wf16, uint16_t, QSLAW_WEIGHT_F16)

#define QSLAW_QMATMUL_ANY_WIDTH_FORWARD(B, R)                                  \
  extern "C" QSLAW_RT_API void _mlir_ciface_qslaw_ukernel_qmatmul_w##B##_f32(  \
      MemRef<float, 2> *x, MemRef<uint8_t, R> *codes,                          \
      MemRef<float, 2> *scales, MemRef<uint8_t, R> *zeros,                     \
      MemRef<float, 1> *bias, MemRef<float, 2> *out, int64_t group,            \
      int32_t numThreads) {                                                    \
    traceContraction("qmatmul", 1, x->sizes[0], out->sizes[1], x->sizes[1],   \
                     0, 1);                                                    \
    qslaw_qmatmul_f32(B, x->data(), x->sizes[0], x->sizes[1], x->strides[0],   \
                      codes->data(), scales->data(),                           \
                      orNull(zeros->data(), zeros->sizes[0]),                  \
                      orNull(bias->data(), bias->sizes[0]), out->data(),       \
                      out->strides[0], out->sizes[1], group,                   \
                      threadsOr(numThreads));                                  \
  }

QSLAW_QMATMUL_ANY_WIDTH_FORWARD(2, 1)
QSLAW_QMATMUL_ANY_WIDTH_FORWARD(3, 2)
QSLAW_QMATMUL_ANY_WIDTH_FORWARD(8, 2)
QSLAW_QMATMUL_ANY_WIDTH_GRADS(2, 1)
QSLAW_QMATMUL_ANY_WIDTH_GRADS(3, 2)
QSLAW_QMATMUL_ANY_WIDTH_GRADS(4, 1)
QSLAW_QMATMUL_ANY_WIDTH_GRADS(8, 2)

namespace {
/// The row-selecting GEMM's checks and trace (transA, batch and mask
/// shape, selected rows inside a); then `run(m, n, k, aTokens)`.
template <class Run>
void sgemmRowsEntry(MemRef<float, 3> *a, MemRef<float, 3> *c,
                    MemRef<uint8_t, 1> *rows, int32_t tokens, int32_t aOffset,
                    int32_t transA, int32_t transB, Run &&run) {
  int64_t m = c->sizes[1], n = c->sizes[2], k = a->sizes[2];
  if (m == 0)
    return;
  int64_t groups = tokens > 0 ? m / tokens : 0;
  int64_t aTokens = groups > 0 ? a->sizes[1] / groups : 0;
  bool fits = groups > 0 && m % tokens == 0 && a->sizes[1] % groups == 0 &&
              aOffset >= 0 && aOffset + aTokens <= tokens;
  for (int64_t r = 0; fits && r < m; ++r)
    fits = !rows->data()[r] ||
           (r % tokens >= aOffset && r % tokens < aOffset + aTokens);
  if (transA || c->sizes[0] != 1 || rows->sizes[0] != m || !fits) {
    std::fprintf(stderr, "qslaw: sgemm_rows called with transA=%d, batch "
                 "%lld, %lld mask rows for %lld, %lld rows of a for groups of "
                 "%d at offset %d, or a selected row outside a\n",
                 int(transA), (long long)c->sizes[0],
                 (long long)rows->sizes[0], (long long)m,
                 (long long)a->sizes[1], int(tokens), int(aOffset));
    std::abort();
  }
  // Traced as the GEMM of the rows it multiplies (what bench/gemm_lower_bound
  // times).
  if (traceFile()) {
    int64_t selected = 0;
    for (int64_t r = 0; r < m; ++r)
      selected += rows->data()[r] != 0;
    traceContraction("sgemm", 1, selected, n, k, transA, transB);
  }
  run(m, n, k, aTokens);
}
} // namespace

/* The same for one matrix (batch 1, a not transposed), over the rows of c
 * that `rows` selects (qslaw_sgemm_rows_f32): c's rows are groups of
 * `tokens`, a holds a's rows of each, c's rows aOffset ... of the group;
 * the others zero when zeroUnselected. */
extern "C" QSLAW_RT_API void _mlir_ciface_qslaw_ukernel_sgemm_rows_f32(
    MemRef<float, 3> *a, MemRef<float, 3> *b, MemRef<float, 3> *c,
    MemRef<uint8_t, 1> *rows, int32_t tokens, int32_t aOffset,
    int32_t zeroUnselected, int32_t transA, int32_t transB, int32_t accumulate,
    int32_t numThreads) {
  sgemmRowsEntry(a, c, rows, tokens, aOffset, transA, transB,
                 [&](int64_t m, int64_t n, int64_t k, int64_t aTokens) {
    qslaw_sgemm_rows_f32(m, n, k, rows->data(), tokens, aTokens, aOffset,
                         zeroUnselected, a->data(), a->strides[1], b->data(),
                         b->strides[1], transB, accumulate ? 1.f : 0.f,
                         c->data(), c->strides[1], numThreads);
  });
}

/* Both GEMM entries with b stored as bf16 / f16 (..._f32_wbf16,
 * ..._f32_wf16: qslaw_sgemm_f32_w16, qslaw_sgemm_rows_f32_w16). */
#define QSLAW_SGEMM_W16(T, W)                                                  \
  extern "C" QSLAW_RT_API void _mlir_ciface_qslaw_ukernel_sgemm_f32_w##T(      \
      MemRef<float, 3> *a, MemRef<uint16_t, 3> *b, MemRef<float, 3> *c,        \
      int32_t transA, int32_t transB, int32_t accumulate,                      \
      int32_t numThreads) {                                                    \
    int64_t batch = c->sizes[0], m = c->sizes[1], n = c->sizes[2];             \
    int64_t k = transA ? a->sizes[1] : a->sizes[2];                            \
    traceContraction("sgemm", batch, m, n, k, transA, transB);                 \
    qslaw_sgemm_f32_w16(batch, m, n, k, a->data(), a->strides[1],              \
                        a->sizes[0] == 1 ? 0 : a->strides[0], transA, W,       \
                        b->data(), b->strides[1],                              \
                        b->sizes[0] == 1 ? 0 : b->strides[0], transB,          \
                        accumulate ? 1.f : 0.f, c->data(), c->strides[1],      \
                        c->strides[0], numThreads);                            \
  }                                                                            \
  extern "C" QSLAW_RT_API void _mlir_ciface_qslaw_ukernel_sgemm_rows_f32_w##T( \
      MemRef<float, 3> *a, MemRef<uint16_t, 3> *b, MemRef<float, 3> *c,        \
      MemRef<uint8_t, 1> *rows, int32_t tokens, int32_t aOffset,               \
      int32_t zeroUnselected, int32_t transA, int32_t transB,                  \
      int32_t accumulate, int32_t numThreads) {                                \
    sgemmRowsEntry(a, c, rows, tokens, aOffset, transA, transB,                \
                   [&](int64_t m, int64_t n, int64_t k, int64_t aTokens) {     \
      qslaw_sgemm_rows_f32_w16(m, n, k, rows->data(), tokens, aTokens,         \
                               aOffset, zeroUnselected, a->data(),             \
                               a->strides[1], W, b->data(), b->strides[1],     \
                               transB, accumulate ? 1.f : 0.f, c->data(),      \
                               c->strides[1], numThreads);                     \
    });                                                                        \
  }

QSLAW_SGEMM_W16(bf16, QSLAW_WEIGHT_BF16)
QSLAW_SGEMM_W16(f16, QSLAW_WEIGHT_F16)

namespace {
/// Logits [T, V] and labels [T] as the cross-entropy kernels read them:
/// rows of unit inner stride (gathered when a view has another, which the
/// compiler's slices do not make) and contiguous labels.
struct CrossEntropyOperands {
  const float *logits;
  int64_t ld;
  std::vector<float> gathered;
  std::vector<int64_t> labels;
  CrossEntropyOperands(MemRef<float, 2> *x, MemRef<int64_t, 1> *l) {
    int64_t t = x->sizes[0], v = x->sizes[1];
    logits = x->data();
    ld = x->strides[0];
    if (x->strides[1] != 1 && t > 0 && v > 0) {
      gathered.resize(size_t(t * v));
      for (int64_t r = 0; r < t; ++r)
        for (int64_t c = 0; c < v; ++c)
          gathered[size_t(r * v + c)] =
              logits[r * x->strides[0] + c * x->strides[1]];
      logits = gathered.data();
      ld = v;
    }
    labels.resize(size_t(l->sizes[0]));
    for (int64_t r = 0; r < l->sizes[0]; ++r)
      labels[size_t(r)] = l->data()[r * l->strides[0]];
  }
};

void checkCrossEntropy(const char *kernel, MemRef<float, 2> *x,
                       MemRef<int64_t, 1> *l) {
  if (l->sizes[0] != x->sizes[0]) {
    std::fprintf(stderr, "qslaw: %s called with %lld labels for %lld rows\n",
                 kernel, (long long)l->sizes[0], (long long)x->sizes[0]);
    std::abort();
  }
}
} // namespace

/* logits [T, V], labels [T] (strided views), loss [1]. */
extern "C" QSLAW_RT_API void _mlir_ciface_qslaw_ukernel_cross_entropy_f32(
    MemRef<float, 2> *logits, MemRef<int64_t, 1> *labels,
    MemRef<float, 1> *loss, int64_t ignore, int32_t numThreads) {
  checkCrossEntropy("cross_entropy", logits, labels);
  CrossEntropyOperands in(logits, labels);
  loss->data()[0] =
      qslaw_cross_entropy_f32(logits->sizes[0], logits->sizes[1], in.logits,
                              in.ld, in.labels.data(), ignore, numThreads);
}

/* The same with grad_loss [1] in and grad [T, V] out (row-major); ignored
 * rows zero when zeroIgnored. */
extern "C" QSLAW_RT_API void _mlir_ciface_qslaw_ukernel_cross_entropy_grad_f32(
    MemRef<float, 2> *logits, MemRef<int64_t, 1> *labels,
    MemRef<float, 1> *gradLoss, MemRef<float, 2> *grad, int64_t ignore,
    int32_t zeroIgnored, int32_t numThreads) {
  checkCrossEntropy("cross_entropy_grad", logits, labels);
  CrossEntropyOperands in(logits, labels);
  qslaw_cross_entropy_grad_f32(logits->sizes[0], logits->sizes[1], in.logits,
                               in.ld, in.labels.data(), ignore,
                               gradLoss->data()[0], grad->data(),
                               grad->strides[0], zeroIgnored, numThreads);
}

/* a: [Ba, rows, cols] as stored (Ba = 1: shared by every batch), likewise b;
 * c: [batch, M, N]. trans flags say whether a holds [K, M] (b [N, K]). */
extern "C" QSLAW_RT_API void _mlir_ciface_qslaw_ukernel_sgemm_f32(
    MemRef<float, 3> *a, MemRef<float, 3> *b, MemRef<float, 3> *c,
    int32_t transA, int32_t transB, int32_t accumulate, int32_t numThreads) {
  int64_t batch = c->sizes[0], m = c->sizes[1], n = c->sizes[2];
  int64_t k = transA ? a->sizes[1] : a->sizes[2];
  traceContraction("sgemm", batch, m, n, k, transA, transB);
  qslaw_sgemm_f32_batched(batch, m, n, k, a->data(), a->strides[1],
                          a->sizes[0] == 1 ? 0 : a->strides[0], transA,
                          b->data(), b->strides[1],
                          b->sizes[0] == 1 ? 0 : b->strides[0], transB,
                          accumulate ? 1.f : 0.f, c->data(), c->strides[1],
                          c->strides[0], numThreads);
}
