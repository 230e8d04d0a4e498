//===- QMatmulW4Grad.cpp - 4-bit qmatmul gradients on the CPU -------------===//
//
// The two gradients of the scale-mode training step, as contiguous loops the
// compiler vectorises (clones for AVX-512 / AVX2 / baseline, picked at load
// time by the dynamic loader):
//   dX = dY * W_hat: each weight row is dequantised once into a K-vector,
//     then added into every dX row scaled by dY[m, n] (axpy); the generic
//     lowering instead reduced over N innermost with strided 4-bit loads.
//   ds[n, j] = sum_{k in j} (q - z)[n, k] * g[k], g = sum_m dY[m, n] X[m, :]:
//     one K-vector per weight row, never the [N, K] weight gradient.
//   dgamma (gamma mode): the same g, then the clamp-masked sum of w * g per
//     group over -gamma^2.
//   quantize (gamma mode's per-step codes): whole bytes of two codes, where
//     the generic lowering read-modify-writes one nibble at a time.
// The reduction over N (dX) and over M (g) run in index order.
//
//===----------------------------------------------------------------------===//
#include "qslaw/Runtime/Ukernels.h"

#include <vector>

#if defined(__x86_64__) && defined(__clang__)
#define QSLAW_CLONES                                                          \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define QSLAW_CLONES
#endif

namespace {

// The cloned functions call no library templates: clones are compiled per
// target and an inline template instantiated under another target is not
// emitted for them (undefined references at -O0).

/// Zero point of group i (linear index n*J + j), 4-bit packed low first;
/// 8 (the symmetric zero) when there are none.
__attribute__((always_inline)) inline float zeroPoint(const uint8_t *zeros,
                                                      int64_t i) {
  return zeros ? float((zeros[i >> 1] >> ((i & 1) * 4)) & 15) : 8.f;
}

/// Row n of the codes dequantised: w[k] = s[n, k/G] * (q[n, k] - z[n, k/G]).
/// K and G are even, so each group covers whole bytes.
__attribute__((always_inline)) inline void dequantRow(const uint8_t *codes, const float *scales,
                       const uint8_t *zeros, int64_t n, int64_t K, int64_t G,
                       float *w) {
  int64_t J = (K + G - 1) / G;
  const uint8_t *row = codes + n * K / 2;
  for (int64_t j = 0; j < J; ++j) {
    int64_t i = n * J + j;
    float s = scales[i];
    float z = zeroPoint(zeros, i);
    int64_t k1 = (j + 1) * G < K ? (j + 1) * G : K;
    for (int64_t k = j * G; k < k1; k += 2) {
      uint8_t b = row[k >> 1];
      w[k] = s * (float(b & 15) - z);
      w[k + 1] = s * (float(b >> 4) - z);
    }
  }
}

QSLAW_CLONES void gradInput(const float *dy, int64_t M, int64_t N,
                            int64_t lddy, const uint8_t *codes,
                            const float *scales, const uint8_t *zeros,
                            float *dx, int64_t lddx, int64_t K, int64_t G,
                            float *w) {
  for (int64_t m = 0; m < M; ++m)
    for (int64_t k = 0; k < K; ++k)
      dx[m * lddx + k] = 0.f;
  for (int64_t n = 0; n < N; ++n) {
    dequantRow(codes, scales, zeros, n, K, G, w);
    for (int64_t m = 0; m < M; ++m) {
      float a = dy[m * lddy + n];
      float *__restrict out = dx + m * lddx;
      const float *__restrict wr = w;
      for (int64_t k = 0; k < K; ++k)
        out[k] += a * wr[k];
    }
  }
}

/// g[k] = sum_m dy[m, n] * x[m, k], M ascending.
__attribute__((always_inline)) inline void tokenSum(const float *x, int64_t M,
                                                    int64_t K, int64_t ldx,
                                                    const float *dy,
                                                    int64_t lddy, int64_t n,
                                                    float *g) {
  for (int64_t k = 0; k < K; ++k)
    g[k] = 0.f;
  for (int64_t m = 0; m < M; ++m) {
    float a = dy[m * lddy + n];
    const float *__restrict xr = x + m * ldx;
    float *__restrict gr = g;
    for (int64_t k = 0; k < K; ++k)
      gr[k] += a * xr[k];
  }
}

QSLAW_CLONES void gradGamma(const float *x, int64_t M, int64_t K, int64_t ldx,
                            const float *dy, int64_t N, int64_t lddy,
                            const float *w, const float *scales,
                            const float *gamma, const uint8_t *zeros,
                            float *dgamma, int64_t G, float *g) {
  int64_t J = (K + G - 1) / G;
  for (int64_t n = 0; n < N; ++n) {
    tokenSum(x, M, K, ldx, dy, lddy, n, g);
    const float *wr = w + n * K;
    for (int64_t j = 0; j < J; ++j) {
      int64_t i = n * J + j;
      float sg = scales[i] * gamma[i], z = zeroPoint(zeros, i);
      int64_t k1 = (j + 1) * G < K ? (j + 1) * G : K;
      float acc = 0.f;
      for (int64_t k = j * G; k < k1; ++k) {
        float c = __builtin_rintf(wr[k] / sg) + z;
        acc += (c >= 0.f && c <= 15.f) ? wr[k] * g[k] : 0.f;
      }
      dgamma[i] = -acc / (gamma[i] * gamma[i]);
    }
  }
}

/// One code: clamp(rint(w / s) + z, 0, 15), a NaN ratio giving z.
__attribute__((always_inline)) inline unsigned quantizeOne(float w, float s,
                                                         float z) {
  float c = __builtin_rintf(w / s) + z;
  c = c != c ? z : c < 0.f ? 0.f : c > 15.f ? 15.f : c;
  return unsigned(c);
}

QSLAW_CLONES void quantizeRows(const float *w, int64_t N, int64_t K,
                               const float *scales, const uint8_t *zeros,
                               uint8_t *codes, int64_t G) {
  int64_t J = (K + G - 1) / G;
  for (int64_t n = 0; n < N; ++n) {
    const float *wr = w + n * K;
    uint8_t *row = codes + n * K / 2;
    for (int64_t j = 0; j < J; ++j) {
      int64_t i = n * J + j;
      float s = scales[i], z = zeroPoint(zeros, i);
      int64_t k1 = (j + 1) * G < K ? (j + 1) * G : K;
      for (int64_t k = j * G; k < k1; k += 2)
        row[k >> 1] = uint8_t(quantizeOne(wr[k], s, z) |
                              (quantizeOne(wr[k + 1], s, z) << 4));
    }
  }
}

QSLAW_CLONES void gradScale(const float *x, int64_t M, int64_t K, int64_t ldx,
                            const float *dy, int64_t N, int64_t lddy,
                            const uint8_t *codes, const uint8_t *zeros,
                            float *ds, int64_t G, float *g) {
  int64_t J = (K + G - 1) / G;
  for (int64_t n = 0; n < N; ++n) {
    tokenSum(x, M, K, ldx, dy, lddy, n, g);
    const uint8_t *row = codes + n * K / 2;
    for (int64_t j = 0; j < J; ++j) {
      int64_t i = n * J + j;
      float z = zeroPoint(zeros, i);
      int64_t k1 = (j + 1) * G < K ? (j + 1) * G : K;
      float acc = 0.f;
      for (int64_t k = j * G; k < k1; k += 2) {
        uint8_t b = row[k >> 1];
        acc += (float(b & 15) - z) * g[k] + (float(b >> 4) - z) * g[k + 1];
      }
      ds[i] = acc;
    }
  }
}
} // namespace

extern "C" {
QSLAW_RT_API void qslaw_qmatmul_w4_grad_input_f32(
    const float *dy, int64_t M, int64_t N, int64_t lddy, const uint8_t *codes,
    const float *scales, const uint8_t *zeros, float *dx, int64_t lddx,
    int64_t K, int64_t G) {
  std::vector<float> w(K);
  gradInput(dy, M, N, lddy, codes, scales, zeros, dx, lddx, K, G, w.data());
}

QSLAW_RT_API void qslaw_qmatmul_w4_grad_scale_f32(
    const float *x, int64_t M, int64_t K, int64_t ldx, const float *dy,
    int64_t N, int64_t lddy, const uint8_t *codes, const uint8_t *zeros,
    float *ds, int64_t G) {
  std::vector<float> g(K);
  gradScale(x, M, K, ldx, dy, N, lddy, codes, zeros, ds, G, g.data());
}

QSLAW_RT_API void qslaw_qmatmul_w4_grad_gamma_f32(
    const float *x, int64_t M, int64_t K, int64_t ldx, const float *dy,
    int64_t N, int64_t lddy, const float *w, const float *scales,
    const float *gamma, const uint8_t *zeros, float *dgamma, int64_t G) {
  std::vector<float> g(K);
  gradGamma(x, M, K, ldx, dy, N, lddy, w, scales, gamma, zeros, dgamma, G,
            g.data());
}

QSLAW_RT_API void qslaw_quantize_w4_f32(const float *w, int64_t N, int64_t K,
                                        const float *scales,
                                        const uint8_t *zeros, uint8_t *codes,
                                        int64_t G) {
  quantizeRows(w, N, K, scales, zeros, codes, G);
}
}
