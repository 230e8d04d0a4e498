//===- QMatmulW4.cpp - 4-bit weight-only quantized matmul microkernel -----===//
//
// y = bias + x * dequant(W)^T with W an [N,K] matrix of packed 4-bit codes,
// per-group fp32 scales and optional packed 4-bit zero points (see
// qslaw/Runtime/Ukernels.h for the exact contract).
//
// Code paths (chosen at run time, see qslaw_ukernel_isa):
//  - scalar: portable reference; dequantizes one row of W, then dot products.
//  - avx2 / avx512: two SIMD strategies sharing one data layout. Along K the
//    data is cut into chunks of 2L values (L = vector lanes: 8 or 16); a chunk
//    of codes is L bytes, and widening those bytes to L 32-bit lanes gives the
//    L even-k nibbles in the low bits and the L odd-k nibbles in bits 4..7.
//    So activations are repacked once per call with each chunk de-interleaved
//    (evens, then odds), and dot products along K need no nibble shuffles.
//      * fused (M <= kFusedMaxM, memory bound): dequantize codes in registers
//        and FMA straight into per-(m,n) accumulators vectorized over K.
//        AVX-512 dequantizes with one vpermps per 16 weights from a 16-entry
//        table s*(q - z) built per group (no convert, no zero/scale math).
//      * tiled (larger M, compute bound): per K block of kKc values, dequantize
//        an NR-row panel of W into a small L1-resident buffer once, then run a
//        register-blocked MR x NR FMA kernel over every row block of x.
//    Both need K even (rows start on a byte) and chunks that never straddle a
//    group (G % 2L == 0, or G >= K); otherwise the tiled kernel is fed by a
//    scalar dequantizer, which handles any K and G.
//
//===----------------------------------------------------------------------===//

#include "qslaw/Runtime/Ukernels.h"

#include <algorithm>
#include <array>
#include <utility>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#define QSLAW_X86 1
// GCC 12's AVX-512 headers trip a false -Wuninitialized once inlined into
// target("avx512f") functions (GCC PR 105593, fixed in GCC 13).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#else
#include <immintrin.h>
#endif
#endif

namespace {

enum Isa : int { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };
const char *const kIsaNames[] = {"scalar", "avx2", "avx512"};

// K block of the tiled path: a 8 x 1024 fp32 panel (32 KiB) stays in L1, and
// the per-block horizontal reductions cost ~5% of the FMAs.
constexpr int64_t kKc = 1024;
// Up to this many activation rows the fused kernel wins: re-dequantizing W
// per row block costs less than writing and re-reading a panel.
constexpr int64_t kFusedMaxM = 2;

struct Problem {
  const float *x;
  int64_t M, K, ldx;
  const uint8_t *codes;
  const float *scales;
  const uint8_t *zeros;
  const float *bias;
  float *y;
  int64_t ldy, N, G, J;
};

inline int64_t roundUp(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

inline int nibble(const uint8_t *p, int64_t i) {
  return (p[i >> 1] >> ((i & 1) << 2)) & 15;
}

inline int zeroPoint(const Problem &p, int64_t n, int64_t j) {
  return p.zeros ? nibble(p.zeros, n * p.J + j) : 8;
}

// Whether the SIMD dequantizers with 2*lanes-wide chunks apply.
inline bool fastLayout(const Problem &p, int lanes) {
  return p.K % 2 == 0 && (p.G % (2 * lanes) == 0 || p.G >= p.K);
}

// Per-thread 64-byte aligned scratch, grown on demand and reused by later
// calls so the steady state does no allocation.
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
thread_local Scratch tlsX, tlsW;

// W(n, k0 .. k0+kw) -> out[0 .. kw), exact s * (q - z) in fp32.
void dequantRow(const Problem &p, int64_t n, int64_t k0, int64_t kw,
                float *out) {
  const int64_t base = n * p.K, kend = k0 + kw;
  for (int64_t k = k0; k < kend;) {
    const int64_t j = k / p.G, gend = std::min(kend, (j + 1) * p.G);
    const float s = p.scales[n * p.J + j];
    const int z = zeroPoint(p, n, j);
    for (; k < gend; ++k)
      out[k - k0] = static_cast<float>(nibble(p.codes, base + k) - z) * s;
  }
}

// src[0 .. kw) -> kp/L vectors of L floats in chunk order (see file comment):
// within each chunk of 2L values the even offsets come first, then the odd
// ones; values past kw are zero, so padded weight lanes contribute nothing.
// Vector v goes to dst + v*vstride: vstride = L gives a plain row, R*L
// interleaves R rows vector by vector (the tiled kernels' layout, which
// turns each tile into a single sequential stream).
template <int L>
void packChunks(const float *src, int64_t kw, int64_t kp, float *dst,
                int64_t vstride) {
  for (int64_t c = 0; c < kp; c += 2 * L) {
    float *even = dst + (c / L) * vstride, *odd = even + vstride;
    for (int i = 0; i < L; ++i) {
      const int64_t ke = c + 2 * i, ko = ke + 1;
      even[i] = ke < kw ? src[ke] : 0.0f;
      odd[i] = ko < kw ? src[ko] : 0.0f;
    }
  }
}

// Any-K, any-G panel dequantizer for the tiled path: rows n0 .. n0+nr of the
// K block [k0, k0+kw) into an interleaved [kp/L][NR][L] panel; rows nr..NR
// are zero.
template <int L, int NR>
void dequantPanelGeneric(const Problem &p, int64_t n0, int nr, int64_t k0,
                         int64_t kw, int64_t kp, float *bp) {
  alignas(64) float row[kKc];
  for (int r = 0; r < NR; ++r) {
    if (r < nr)
      dequantRow(p, n0 + r, k0, kw, row);
    else
      std::memset(row, 0, kw * sizeof(float));
    packChunks<L>(row, kw, kp, bp + r * L, NR * L);
  }
}

void initOutput(const Problem &p, int64_t nb, int64_t ne) {
  for (int64_t m = 0; m < p.M; ++m)
    for (int64_t n = nb; n < ne; ++n)
      p.y[m * p.ldy + n] = p.bias ? p.bias[n] : 0.0f;
}

//===----------------------------------------------------------------------===//
// Scalar path
//===----------------------------------------------------------------------===//

void rangeScalar(const Problem &p, int64_t nb, int64_t ne) {
  float *w = tlsW.get(p.K);
  for (int64_t n = nb; n < ne; ++n) {
    dequantRow(p, n, 0, p.K, w);
    for (int64_t m = 0; m < p.M; ++m) {
      const float *xr = p.x + m * p.ldx;
      float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0}; // independent chains
      int64_t k = 0;
      for (; k + 8 <= p.K; k += 8)
        for (int i = 0; i < 8; ++i)
          acc[i] += xr[k + i] * w[k + i];
      for (; k < p.K; ++k)
        acc[0] += xr[k] * w[k];
      const float sum = ((acc[0] + acc[1]) + (acc[2] + acc[3])) +
                        ((acc[4] + acc[5]) + (acc[6] + acc[7]));
      p.y[m * p.ldy + n] = (p.bias ? p.bias[n] : 0.0f) + sum;
    }
  }
}

//===----------------------------------------------------------------------===//
// Tiled driver shared by the SIMD paths
//===----------------------------------------------------------------------===//

// Dequantize rows n0 .. n0+nr of K block [k0, k0+kw) into an interleaved
// [kp/L][NR][L] panel (rows nr..NR zero).
using PanelFn = void (*)(const Problem &, int64_t n0, int nr, int64_t k0,
                         int64_t kw, int64_t kp, float *bp);
// y[i*ldy + r] += dot(ap row i, bp row r) for i < MR, r < nr; ap is an
// interleaved [kp/L][MR][L] tile.
using MicroFn = void (*)(const float *ap, int64_t kp, const float *bp,
                         float *y, int64_t ldy, int nr);

// Rows per micro tile: mrMax, except that 4 leftover rows run as 2 + 2
// rather than 3 + a slow single row.
inline int pickMr(int64_t rem, int mrMax) {
  return rem == 4 && mrMax == 3 ? 2
                                : static_cast<int>(std::min<int64_t>(rem, mrMax));
}

// micro[mr] handles mr rows, 1 <= mr <= mrMax.
template <int L, int NR>
void tiledRange(const Problem &p, int64_t nb, int64_t ne, PanelFn fastPanel,
                const MicroFn *micro, int mrMax) {
  const PanelFn panel = fastPanel ? fastPanel : dequantPanelGeneric<L, NR>;
  const int64_t kcMax = std::min(kKc, roundUp(p.K, 2 * L));
  float *ap = tlsX.get(p.M * kcMax);
  float *bp = tlsW.get(NR * kcMax);
  initOutput(p, nb, ne);
  for (int64_t k0 = 0; k0 < p.K; k0 += kKc) {
    const int64_t kw = std::min(kKc, p.K - k0), kp = roundUp(kw, 2 * L);
    for (int64_t m0 = 0, mr; m0 < p.M; m0 += mr) {
      mr = pickMr(p.M - m0, mrMax);
      for (int64_t i = 0; i < mr; ++i)
        packChunks<L>(p.x + (m0 + i) * p.ldx + k0, kw, kp, ap + m0 * kp + i * L,
                      mr * L);
    }
    for (int64_t n0 = nb; n0 < ne; n0 += NR) {
      const int nr = static_cast<int>(std::min<int64_t>(NR, ne - n0));
      panel(p, n0, nr, k0, kw, kp, bp);
      for (int64_t m0 = 0, mr; m0 < p.M; m0 += mr) {
        mr = pickMr(p.M - m0, mrMax);
        micro[mr](ap + m0 * kp, kp, bp, p.y + m0 * p.ldy + n0, p.ldy, nr);
      }
    }
  }
}

#ifdef QSLAW_X86

#define QSLAW_AVX2 __attribute__((target("avx2,fma")))
#define QSLAW_AVX512                                                           \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma")))
#define QSLAW_INLINE inline __attribute__((always_inline))

//===----------------------------------------------------------------------===//
// AVX2 + FMA path (8 lanes, 16-value chunks of 8 code bytes)
//===----------------------------------------------------------------------===//

// Widen the code bytes of one chunk (validK <= 16 values) to 8 dwords.
QSLAW_AVX2 QSLAW_INLINE __m256i loadCodes8(const uint8_t *src,
                                            int64_t validK) {
  if (validK >= 16)
    return _mm256_cvtepu8_epi32(
        _mm_loadl_epi64(reinterpret_cast<const __m128i *>(src)));
  uint64_t tail = 0; // never read past the end of the code array
  std::memcpy(&tail, src, static_cast<size_t>(validK / 2));
  return _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(static_cast<long long>(tail)));
}

// s * (q - z) for the even (low nibble) and odd (high nibble) halves, as
// q*s - z*s with one rounding; `zs` is z*s.
QSLAW_AVX2 QSLAW_INLINE void dequant8(__m256i d, __m256 s, __m256 zs,
                                      __m256 &we, __m256 &wo) {
  const __m256i lo = _mm256_and_si256(d, _mm256_set1_epi32(15));
  we = _mm256_fmsub_ps(_mm256_cvtepi32_ps(lo), s, zs);
  wo = _mm256_fmsub_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(d, 4)), s, zs);
}

QSLAW_AVX2 QSLAW_INLINE float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

// Fused kernel: MR activation rows x NR weight rows over all of K.
template <int MR, int NR>
QSLAW_AVX2 void fusedAvx2(const Problem &p, const float *xp, int64_t kp,
                          int64_t m0, int64_t n0, int nr) {
  __m256 acc[MR][NR];
  const uint8_t *row[NR];
  int64_t rowN[NR];
  for (int r = 0; r < NR; ++r) {
    rowN[r] = n0 + std::min(r, nr - 1); // clamp: tail rows recompute the last
    row[r] = p.codes + rowN[r] * p.K / 2;
    for (int i = 0; i < MR; ++i)
      acc[i][r] = _mm256_setzero_ps();
  }
  for (int64_t j = 0, k = 0; j < p.J; ++j) {
    __m256 s[NR], zs[NR];
    for (int r = 0; r < NR; ++r) {
      const float sc = p.scales[rowN[r] * p.J + j];
      s[r] = _mm256_set1_ps(sc);
      zs[r] = _mm256_set1_ps(sc * static_cast<float>(zeroPoint(p, rowN[r], j)));
    }
    for (const int64_t gend = std::min(p.K, (j + 1) * p.G); k < gend; k += 16) {
      const int64_t validK = p.K - k;
#pragma GCC unroll 8
      for (int r = 0; r < NR; ++r) {
        __m256 we, wo;
        dequant8(loadCodes8(row[r] + k / 2, validK), s[r], zs[r], we, wo);
#pragma GCC unroll 4
        for (int i = 0; i < MR; ++i) {
          const float *xi = xp + i * kp + k;
          acc[i][r] = _mm256_fmadd_ps(we, _mm256_loadu_ps(xi), acc[i][r]);
          acc[i][r] = _mm256_fmadd_ps(wo, _mm256_loadu_ps(xi + 8), acc[i][r]);
        }
      }
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int r = 0; r < nr; ++r)
      p.y[(m0 + i) * p.ldy + n0 + r] =
          (p.bias ? p.bias[n0 + r] : 0.0f) + hsum8(acc[i][r]);
}

constexpr int kNrAvx2 = 4;

QSLAW_AVX2 void panelAvx2(const Problem &p, int64_t n0, int nr, int64_t k0,
                          int64_t kw, int64_t kp, float *bp) {
  (void)kp;
  constexpr int NR = kNrAvx2;
  const uint8_t *row[NR];
  int64_t rowN[NR];
  for (int r = 0; r < NR; ++r) {
    rowN[r] = n0 + std::min(r, nr - 1); // never stored by the micro kernel
    row[r] = p.codes + (rowN[r] * p.K + k0) / 2;
  }
  for (int64_t c = 0; c < kw;) {
    const int64_t j = (k0 + c) / p.G;
    const int64_t gend = std::min(kw, (j + 1) * p.G - k0);
    __m256 s[NR], zs[NR];
    for (int r = 0; r < NR; ++r) {
      const float sc = p.scales[rowN[r] * p.J + j];
      s[r] = _mm256_set1_ps(sc);
      zs[r] = _mm256_set1_ps(sc * static_cast<float>(zeroPoint(p, rowN[r], j)));
    }
    for (; c < gend; c += 16) {
      float *dst = bp + c * NR;
#pragma GCC unroll 4
      for (int r = 0; r < NR; ++r) {
        __m256 we, wo;
        dequant8(loadCodes8(row[r] + c / 2, kw - c), s[r], zs[r], we, wo);
        _mm256_storeu_ps(dst + r * 8, we);
        _mm256_storeu_ps(dst + (NR + r) * 8, wo);
      }
    }
  }
}

// [sum(a), sum(b), sum(c), sum(d)]
QSLAW_AVX2 QSLAW_INLINE __m128 hsum4x8(__m256 a, __m256 b, __m256 c,
                                        __m256 d) {
  const __m256 t = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
  return _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
}

template <int MR>
QSLAW_AVX2 void microAvx2(const float *ap, int64_t kp, const float *bp,
                          float *y, int64_t ldy, int nr) {
  __m256 acc[MR][kNrAvx2];
  for (int i = 0; i < MR; ++i)
    for (int r = 0; r < kNrAvx2; ++r)
      acc[i][r] = _mm256_setzero_ps();
  for (int64_t v = 0; v < kp; v += 8, ap += MR * 8, bp += kNrAvx2 * 8) {
    __m256 a[MR];
    for (int i = 0; i < MR; ++i)
      a[i] = _mm256_loadu_ps(ap + i * 8);
#pragma GCC unroll 4
    for (int r = 0; r < kNrAvx2; ++r) {
      const __m256 b = _mm256_loadu_ps(bp + r * 8);
      for (int i = 0; i < MR; ++i)
        acc[i][r] = _mm256_fmadd_ps(a[i], b, acc[i][r]);
    }
  }
  for (int i = 0; i < MR; ++i) {
    const __m128 s = hsum4x8(acc[i][0], acc[i][1], acc[i][2], acc[i][3]);
    float *yi = y + i * ldy;
    if (nr == kNrAvx2) {
      _mm_storeu_ps(yi, _mm_add_ps(_mm_loadu_ps(yi), s));
    } else {
      alignas(16) float t[4];
      _mm_store_ps(t, s);
      for (int r = 0; r < nr; ++r)
        yi[r] += t[r];
    }
  }
}

void rangeAvx2(const Problem &p, int64_t nb, int64_t ne) {
  const bool fast = fastLayout(p, 8);
  if (fast && p.M <= kFusedMaxM) {
    const int64_t kp = roundUp(p.K, 16);
    float *xp = tlsX.get(p.M * kp);
    for (int64_t m = 0; m < p.M; ++m)
      packChunks<8>(p.x + m * p.ldx, p.K, kp, xp + m * kp, 8);
    for (int64_t m0 = 0; m0 < p.M; m0 += 2)
      for (int64_t n0 = nb; n0 < ne; n0 += 4) {
        const int nr = static_cast<int>(std::min<int64_t>(4, ne - n0));
        if (p.M - m0 >= 2)
          fusedAvx2<2, 4>(p, xp + m0 * kp, kp, m0, n0, nr);
        else
          fusedAvx2<1, 4>(p, xp + m0 * kp, kp, m0, n0, nr);
      }
    return;
  }
  static const MicroFn micro[] = {nullptr, microAvx2<1>, microAvx2<2>,
                                  microAvx2<3>};
  tiledRange<8, kNrAvx2>(p, nb, ne, fast ? panelAvx2 : nullptr, micro, 3);
}

//===----------------------------------------------------------------------===//
// AVX-512 path (16 lanes, 32-value chunks of 16 code bytes)
//===----------------------------------------------------------------------===//

QSLAW_AVX512 QSLAW_INLINE __m512i loadCodes16(const uint8_t *src,
                                               int64_t validK) {
  if (validK >= 32)
    return _mm512_cvtepu8_epi32(
        _mm_loadu_si128(reinterpret_cast<const __m128i *>(src)));
  // Masked-off bytes are not read, so the tail never runs past the array.
  const __mmask16 mask = static_cast<__mmask16>((1u << (validK / 2)) - 1);
  return _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(mask, src));
}

// Table t[q] = s * (q - z) for one group of one row; vpermps indexes it with
// the low 4 bits of each dword, so the low nibble needs no masking.
QSLAW_AVX512 QSLAW_INLINE __m512 groupTable(const Problem &p, int64_t n,
                                             int64_t j) {
  const __m512 iota = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11,
                                     12, 13, 14, 15);
  const __m512 z = _mm512_set1_ps(static_cast<float>(zeroPoint(p, n, j)));
  return _mm512_mul_ps(_mm512_sub_ps(iota, z),
                       _mm512_set1_ps(p.scales[n * p.J + j]));
}

template <int MR, int NR>
QSLAW_AVX512 void fusedAvx512(const Problem &p, const float *xp, int64_t kp,
                              int64_t m0, int64_t n0, int nr) {
  // Enough independent FMA chains to cover latency 4 x 2 ports.
  constexpr int S = MR * NR >= 8 ? 1 : 2;
  __m512 acc[MR][NR][S];
  const uint8_t *row[NR];
  int64_t rowN[NR];
  for (int r = 0; r < NR; ++r) {
    rowN[r] = n0 + std::min(r, nr - 1);
    row[r] = p.codes + rowN[r] * p.K / 2;
    for (int i = 0; i < MR; ++i)
      for (int s = 0; s < S; ++s)
        acc[i][r][s] = _mm512_setzero_ps();
  }
  for (int64_t j = 0, k = 0; j < p.J; ++j) {
    __m512 tab[NR];
    for (int r = 0; r < NR; ++r)
      tab[r] = groupTable(p, rowN[r], j);
    for (const int64_t gend = std::min(p.K, (j + 1) * p.G); k < gend; k += 32) {
      const int64_t validK = p.K - k;
#pragma GCC unroll 8
      for (int r = 0; r < NR; ++r) {
        const __m512i d = loadCodes16(row[r] + k / 2, validK);
        const __m512 we = _mm512_permutexvar_ps(d, tab[r]);
        const __m512 wo =
            _mm512_permutexvar_ps(_mm512_srli_epi32(d, 4), tab[r]);
#pragma GCC unroll 4
        for (int i = 0; i < MR; ++i) {
          const float *xi = xp + i * kp + k;
          acc[i][r][0] = _mm512_fmadd_ps(we, _mm512_loadu_ps(xi), acc[i][r][0]);
          acc[i][r][S - 1] =
              _mm512_fmadd_ps(wo, _mm512_loadu_ps(xi + 16), acc[i][r][S - 1]);
        }
      }
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int r = 0; r < nr; ++r) {
      __m512 v = acc[i][r][0];
      if (S > 1)
        v = _mm512_add_ps(v, acc[i][r][S - 1]);
      p.y[(m0 + i) * p.ldy + n0 + r] =
          (p.bias ? p.bias[n0 + r] : 0.0f) + _mm512_reduce_add_ps(v);
    }
}

constexpr int kNrAvx512 = 8;

// Prefetch into L2 what the next panel (rows n .. n+rows) will read. Each
// panel reads only a few lines per row, too short a stream for the hardware
// prefetcher; the scale / zero point loads are worse, as each group's table
// waits on them before any of its codes can be dequantized.
inline void prefetchPanel(const Problem &p, int64_t n, int rows, int64_t k0,
                          int64_t kw) {
  const int64_t j0 = k0 / p.G, j1 = (k0 + kw - 1) / p.G;
  for (int r = 0; r < rows && n + r < p.N; ++r) {
    const int64_t nr = n + r;
    const char *codes =
        reinterpret_cast<const char *>(p.codes) + (nr * p.K + k0) / 2;
    for (int64_t b = 0; b < kw / 2; b += 64)
      _mm_prefetch(codes + b, _MM_HINT_T1);
    _mm_prefetch(reinterpret_cast<const char *>(p.scales + nr * p.J + j0),
                 _MM_HINT_T1);
    _mm_prefetch(reinterpret_cast<const char *>(p.scales + nr * p.J + j1),
                 _MM_HINT_T1);
    if (p.zeros)
      _mm_prefetch(reinterpret_cast<const char *>(p.zeros) + (nr * p.J + j0) / 2,
                   _MM_HINT_T1);
  }
}

QSLAW_AVX512 void panelAvx512(const Problem &p, int64_t n0, int nr,
                              int64_t k0, int64_t kw, int64_t kp, float *bp) {
  (void)kp;
  constexpr int NR = kNrAvx512;
  prefetchPanel(p, n0 + NR, NR, k0, kw);
  // Rows past nr repeat the last row; the micro kernel never stores them.
  const uint8_t *row[NR];
  int64_t rowN[NR];
  for (int r = 0; r < NR; ++r) {
    rowN[r] = n0 + std::min(r, nr - 1);
    row[r] = p.codes + (rowN[r] * p.K + k0) / 2;
  }
  // Rows innermost: each chunk step writes 2 KiB of the panel sequentially.
  for (int64_t c = 0; c < kw;) {
    const int64_t j = (k0 + c) / p.G;
    const int64_t gend = std::min(kw, (j + 1) * p.G - k0);
    __m512 tab[NR];
    for (int r = 0; r < NR; ++r)
      tab[r] = groupTable(p, rowN[r], j);
    for (; c < gend; c += 32) {
      float *dst = bp + c * NR;
#pragma GCC unroll 8
      for (int r = 0; r < NR; ++r) {
        const __m512i d = loadCodes16(row[r] + c / 2, kw - c);
        _mm512_storeu_ps(dst + r * 16, _mm512_permutexvar_ps(d, tab[r]));
        _mm512_storeu_ps(dst + (NR + r) * 16,
                         _mm512_permutexvar_ps(_mm512_srli_epi32(d, 4), tab[r]));
      }
    }
  }
}

// [a0+a2, a1+a3, b0+b2, b1+b3] in 128-bit blocks.
QSLAW_AVX512 QSLAW_INLINE __m512 foldHalves(__m512 a, __m512 b) {
  return _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x44),
                       _mm512_shuffle_f32x4(a, b, 0xEE));
}

// Lane r of the result = sum of all 16 lanes of v[r], r < 8 (24 uops).
QSLAW_AVX512 QSLAW_INLINE __m256 hsum8x16(const __m512 *v) {
  const __m512 t0 = foldHalves(v[0], v[1]), t1 = foldHalves(v[2], v[3]);
  const __m512 t2 = foldHalves(v[4], v[5]), t3 = foldHalves(v[6], v[7]);
  // Each 128-bit block now holds 4 partial sums of one source.
  const __m512 u0 = _mm512_add_ps(_mm512_shuffle_f32x4(t0, t1, 0x88),
                                  _mm512_shuffle_f32x4(t0, t1, 0xDD));
  const __m512 u1 = _mm512_add_ps(_mm512_shuffle_f32x4(t2, t3, 0x88),
                                  _mm512_shuffle_f32x4(t2, t3, 0xDD));
  // Block b: [v[b] partials | v[b+4] partials]; finish inside blocks.
  __m512 q = _mm512_add_ps(_mm512_unpacklo_ps(u0, u1),
                           _mm512_unpackhi_ps(u0, u1));
  q = _mm512_add_ps(q, _mm512_shuffle_ps(q, q, _MM_SHUFFLE(1, 0, 3, 2)));
  const __m512i idx =
      _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 0, 0, 0, 0, 0, 0, 0, 0);
  return _mm512_castps512_ps256(_mm512_permutexvar_ps(idx, q));
}

template <int MR>
QSLAW_AVX512 void microAvx512(const float *ap, int64_t kp, const float *bp,
                              float *y, int64_t ldy, int nr) {
  __m512 acc[MR][kNrAvx512];
  for (int i = 0; i < MR; ++i) {
    // The y tile is usually cold (a strided row block of a large output):
    // fetch it now so the miss overlaps the FMA loop instead of trailing it.
    _mm_prefetch(reinterpret_cast<const char *>(y + i * ldy), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char *>(y + i * ldy + 7), _MM_HINT_T0);
    for (int r = 0; r < kNrAvx512; ++r)
      acc[i][r] = _mm512_setzero_ps();
  }
  for (int64_t v = 0; v < kp; v += 16, ap += MR * 16, bp += kNrAvx512 * 16) {
    __m512 a[MR];
    for (int i = 0; i < MR; ++i)
      a[i] = _mm512_loadu_ps(ap + i * 16);
#pragma GCC unroll 8
    for (int r = 0; r < kNrAvx512; ++r) {
      __m512 b = _mm512_loadu_ps(bp + r * 16);
      // Keep b in a register: folded into each FMA it would be loaded MR
      // times, and the loads, not the FMAs, would bound the loop.
      __asm__("" : "+v"(b));
      for (int i = 0; i < MR; ++i)
        acc[i][r] = _mm512_fmadd_ps(a[i], b, acc[i][r]);
    }
  }
  const __mmask8 mask = static_cast<__mmask8>((1u << nr) - 1);
  for (int i = 0; i < MR; ++i) {
    float *yi = y + i * ldy;
    const __m256 s = hsum8x16(acc[i]);
    _mm256_mask_storeu_ps(yi, mask,
                          _mm256_add_ps(_mm256_maskz_loadu_ps(mask, yi), s));
  }
}

//--- Broadcast form (large M): y[m, n..n+32) += x[m,k] * W^T[k, n..n+32) ---//

constexpr int kNrB = 32;       // panel columns (two zmm)
constexpr int kMrB = 12;       // rows per micro tile: 24 accumulators
constexpr int64_t kKcB = 256;  // K block: a 256 x 32 fp32 panel = 32 KiB

// Transposes four 16x16 byte matrices at once, one per 128-bit lane: on
// return lane q of r[c] holds column c of the matrix in lane q (64 shuffles
// for 1024 bytes; 512-bit shuffles all issue on one port, so this matters).
QSLAW_AVX512 QSLAW_INLINE void transpose16x16x4(__m512i r[16]) {
  __m512i a[16], b[16];
  for (int i = 0; i < 8; ++i) { // 2-row units, columns 0-7 | 8-15
    a[2 * i] = _mm512_unpacklo_epi8(r[2 * i], r[2 * i + 1]);
    a[2 * i + 1] = _mm512_unpackhi_epi8(r[2 * i], r[2 * i + 1]);
  }
  for (int q = 0; q < 4; ++q) // 4-row units: b[4q + 2h + g] = cols 8h+4g..+3
    for (int h = 0; h < 2; ++h) {
      b[4 * q + 2 * h] = _mm512_unpacklo_epi16(a[4 * q + h], a[4 * q + 2 + h]);
      b[4 * q + 2 * h + 1] =
          _mm512_unpackhi_epi16(a[4 * q + h], a[4 * q + 2 + h]);
    }
  for (int o = 0; o < 2; ++o) // 8-row units: a[8o + 2u + e] = cols 4u+2e..+1
    for (int u = 0; u < 4; ++u) {
      a[8 * o + 2 * u] = _mm512_unpacklo_epi32(b[8 * o + u], b[8 * o + 4 + u]);
      a[8 * o + 2 * u + 1] =
          _mm512_unpackhi_epi32(b[8 * o + u], b[8 * o + 4 + u]);
    }
  for (int v = 0; v < 8; ++v) { // 16 rows: columns 2v and 2v+1
    r[2 * v] = _mm512_unpacklo_epi64(a[v], a[8 + v]);
    r[2 * v + 1] = _mm512_unpackhi_epi64(a[v], a[8 + v]);
  }
}

// Dequantize rows n0 .. n0+32 of K block [k0, k0+kw) into bp[k][32]
// (k-major, so the micro kernel reads one 128-byte row of W^T per k).
// Vectors run over rows here, so each lane has its own scale and zero point:
// 16 rows' code bytes are transposed so that one byte column yields the
// 16 rows' codes for an (even k, odd k) pair.
QSLAW_AVX512 void panelBcast(const Problem &p, int64_t n0, int nr, int64_t k0,
                             int64_t kw, float *bp) {
  const __m512 iota = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11,
                                     12, 13, 14, 15);
  alignas(64) uint8_t cols[16][64];
  for (int h = 0; h < 2; ++h) {
    const uint8_t *row[16];
    int64_t rowN[16];
    for (int l = 0; l < 16; ++l) {
      rowN[l] = n0 + std::min(16 * h + l, nr - 1); // extra rows never stored
      row[l] = p.codes + (rowN[l] * p.K + k0) / 2;
    }
    float *dst = bp + 16 * h;
    __m512 s = _mm512_setzero_ps(), zs = s;
    int64_t gend = 0; // end (relative to k0) of the group s / zs belong to
    for (int64_t blk = 0; blk < kw; blk += 128) {
      const int64_t validK = kw - blk; // masked-off bytes are never read
      const __mmask64 mask =
          validK >= 128 ? ~__mmask64(0) : (__mmask64(1) << (validK / 2)) - 1;
      __m512i t[16];
      for (int l = 0; l < 16; ++l)
        t[l] = _mm512_maskz_loadu_epi8(mask, row[l] + blk / 2);
      transpose16x16x4(t);
      for (int c = 0; c < 16; ++c)
        _mm512_store_si512(cols[c], t[c]);
      for (int64_t q = 0, c = blk; q < 4 && c < kw; ++q, c += 32) {
        if (c >= gend) { // next group: per-lane scale and zero * scale
          const int64_t j = (k0 + c) / p.G;
          gend = (j + 1) * p.G - k0;
          alignas(64) float sv[16], zv[16];
          for (int l = 0; l < 16; ++l) {
            sv[l] = p.scales[rowN[l] * p.J + j];
            zv[l] = sv[l] * static_cast<float>(zeroPoint(p, rowN[l], j));
          }
          s = _mm512_load_ps(sv);
          zs = _mm512_load_ps(zv);
        }
#pragma GCC unroll 16
        for (int b = 0; b < 16; ++b) {
          const __m512i d = _mm512_cvtepu8_epi32(_mm_load_si128(
              reinterpret_cast<const __m128i *>(cols[b] + 16 * q)));
          // Low nibble via a 0..15 table (vpermps ignores the high bits),
          // high one via shift + convert: splits the work over two ports.
          const __m512 lo = _mm512_permutexvar_ps(d, iota);
          const __m512 hi = _mm512_cvtepi32_ps(_mm512_srli_epi32(d, 4));
          _mm512_store_ps(dst + (c + 2 * b) * kNrB, _mm512_fmsub_ps(lo, s, zs));
          _mm512_store_ps(dst + (c + 2 * b + 1) * kNrB,
                          _mm512_fmsub_ps(hi, s, zs));
        }
      }
    }
  }
}

// Generic (any K, any G) version of panelBcast.
void panelBcastGeneric(const Problem &p, int64_t n0, int nr, int64_t k0,
                       int64_t kw, float *bp) {
  alignas(64) float row[kKcB];
  for (int r = 0; r < kNrB; ++r) {
    dequantRow(p, n0 + std::min(r, nr - 1), k0, kw, row);
    for (int64_t k = 0; k < kw; ++k)
      bp[k * kNrB + r] = row[k];
  }
}

template <int MR>
QSLAW_AVX512 void microBcast(const float *ap, int64_t kw, const float *bp,
                             float *y, int64_t ldy, int nr) {
  __m512 acc[MR][2];
  for (int i = 0; i < MR; ++i) {
    _mm_prefetch(reinterpret_cast<const char *>(y + i * ldy), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char *>(y + i * ldy + 31), _MM_HINT_T0);
    acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  }
  for (int64_t k = 0; k < kw; ++k, ap += MR, bp += kNrB) {
    const __m512 b0 = _mm512_loadu_ps(bp), b1 = _mm512_loadu_ps(bp + 16);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const __m512 a = _mm512_set1_ps(ap[i]);
      acc[i][0] = _mm512_fmadd_ps(a, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(a, b1, acc[i][1]);
    }
  }
  const __mmask16 m0 = static_cast<__mmask16>(nr >= 16 ? 0xFFFF : (1u << nr) - 1);
  const __mmask16 m1 =
      static_cast<__mmask16>(nr >= 32 ? 0xFFFF : nr > 16 ? (1u << (nr - 16)) - 1 : 0);
  for (int i = 0; i < MR; ++i) {
    float *yi = y + i * ldy;
    _mm512_mask_storeu_ps(yi, m0, _mm512_add_ps(_mm512_maskz_loadu_ps(m0, yi), acc[i][0]));
    _mm512_mask_storeu_ps(yi + 16, m1,
                          _mm512_add_ps(_mm512_maskz_loadu_ps(m1, yi + 16), acc[i][1]));
  }
}

template <int... I>
constexpr auto makeBcastTable(std::integer_sequence<int, I...>) {
  return std::array<MicroFn, sizeof...(I) + 1>{nullptr, microBcast<I + 1>...};
}

// Loop order: N panel outermost, K blocks inside, so each panel's y tile
// (M x 32) stays cached across K, and each weight row is read sequentially.
// x is packed once per row chunk (bounded to kBcastPackFloats) and streamed
// once per panel; panels are dequantized once per row chunk.
void bcastRangeAvx512(const Problem &p, int64_t nb, int64_t ne, bool fast) {
  static constexpr auto micro =
      makeBcastTable(std::make_integer_sequence<int, kMrB>{});
  constexpr int64_t kBcastPackFloats = int64_t(1) << 20;
  float *bp = tlsW.get(kNrB * kKcB);
  initOutput(p, nb, ne);
  const int64_t mChunk =
      std::max<int64_t>(kMrB, kBcastPackFloats / std::max<int64_t>(p.K, 1));
  for (int64_t mc0 = 0; mc0 < p.M; mc0 += mChunk) {
    const int64_t mc = std::min(mChunk, p.M - mc0);
    // Balanced row tiles: 16 rows run as 8 + 8, not 12 + 4.
    const int64_t tiles = (mc + kMrB - 1) / kMrB;
    const int64_t mrMax = (mc + tiles - 1) / tiles;
    float *ap = tlsX.get(mc * p.K); // tile t: [k][mr] at ap + m0 * K
    for (int64_t m0 = 0, mr; m0 < mc; m0 += mr) {
      mr = std::min(mrMax, mc - m0);
      for (int64_t i = 0; i < mr; ++i) {
        const float *src = p.x + (mc0 + m0 + i) * p.ldx;
        float *dst = ap + m0 * p.K + i;
        for (int64_t k = 0; k < p.K; ++k)
          dst[k * mr] = src[k];
      }
    }
    for (int64_t n0 = nb; n0 < ne; n0 += kNrB) {
      const int nr = static_cast<int>(std::min<int64_t>(kNrB, ne - n0));
      for (int64_t k0 = 0; k0 < p.K; k0 += kKcB) {
        const int64_t kw = std::min(kKcB, p.K - k0);
        if (k0 + kw < p.K) // the codes the next panel will read
          prefetchPanel(p, n0, nr, k0 + kw, std::min(kKcB, p.K - k0 - kw));
        else
          prefetchPanel(p, n0 + kNrB, kNrB, 0, std::min(kKcB, p.K));
        if (fast)
          panelBcast(p, n0, nr, k0, kw, bp);
        else
          panelBcastGeneric(p, n0, nr, k0, kw, bp);
        for (int64_t m0 = 0, mr; m0 < mc; m0 += mr) {
          mr = std::min(mrMax, mc - m0);
          micro[mr](ap + m0 * p.K + k0 * mr, kw, bp,
                    p.y + (mc0 + m0) * p.ldy + n0, p.ldy, nr);
        }
      }
    }
  }
}

void rangeAvx512(const Problem &p, int64_t nb, int64_t ne) {
  const bool fast = fastLayout(p, 16);
  if (fast && p.M <= kFusedMaxM) {
    const int64_t kp = roundUp(p.K, 32);
    float *xp = tlsX.get(p.M * kp);
    for (int64_t m = 0; m < p.M; ++m)
      packChunks<16>(p.x + m * p.ldx, p.K, kp, xp + m * kp, 16);
    for (int64_t m0 = 0; m0 < p.M; m0 += 2)
      for (int64_t n0 = nb; n0 < ne; n0 += 4) {
        const int nr = static_cast<int>(std::min<int64_t>(4, ne - n0));
        if (p.M - m0 >= 2)
          fusedAvx512<2, 4>(p, xp + m0 * kp, kp, m0, n0, nr);
        else
          fusedAvx512<1, 4>(p, xp + m0 * kp, kp, m0, n0, nr);
      }
    return;
  }
  static const int64_t bcastMinM = std::getenv("BCM") ? std::atoll(std::getenv("BCM")) : 1 << 30;
  if (p.M >= bcastMinM)
    return bcastRangeAvx512(p, nb, ne, fast);
  static const MicroFn micro[] = {nullptr, microAvx512<1>, microAvx512<2>,
                                  microAvx512<3>};
  tiledRange<16, kNrAvx512>(p, nb, ne, fast ? panelAvx512 : nullptr, micro,
                            3);
}

#endif // QSLAW_X86

//===----------------------------------------------------------------------===//
// Dispatch
//===----------------------------------------------------------------------===//

int cpuBestIsa() {
#ifdef QSLAW_X86
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma"))
    return kScalar;
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl"))
    return kAvx512;
  return kAvx2;
#else
  return kScalar;
#endif
}

int parseIsa(const char *name) {
  if (!name || !*name)
    return -1;
  for (int i = 0; i < 3; ++i)
    if (std::strcmp(name, kIsaNames[i]) == 0)
      return i;
  return -1;
}

int selectIsa(const char *request) {
  const int best = cpuBestIsa(), want = parseIsa(request);
  return want < 0 ? best : std::min(want, best);
}

std::atomic<int> gIsa{-1};

int activeIsa() {
  int isa = gIsa.load(std::memory_order_relaxed);
  if (isa < 0) {
    isa = selectIsa(std::getenv("QSLAW_UKERNEL_ISA"));
    gIsa.store(isa, std::memory_order_relaxed);
  }
  return isa;
}

Problem makeProblem(const float *x, int64_t M, int64_t K, int64_t ldx,
                    const uint8_t *codes, const float *scales,
                    const uint8_t *zeros, const float *bias, float *y,
                    int64_t ldy, int64_t N, int64_t G) {
  if (G <= 0) // not a valid group size; treat as one group per row
    G = std::max<int64_t>(K, 1);
  return {x, M, K, ldx, codes, scales, zeros, bias, y, ldy, N, G,
          (K + G - 1) / G};
}

void runRange(const Problem &p, int64_t nb, int64_t ne) {
  nb = std::max<int64_t>(nb, 0);
  ne = std::min(ne, p.N);
  if (nb >= ne || p.M <= 0)
    return;
  if (p.K <= 0)
    return initOutput(p, nb, ne);
  switch (activeIsa()) {
#ifdef QSLAW_X86
  case kAvx512:
    return rangeAvx512(p, nb, ne);
  case kAvx2:
    return rangeAvx2(p, nb, ne);
#endif
  default:
    return rangeScalar(p, nb, ne);
  }
}

} // namespace

extern "C" {

void qslaw_qmatmul_w4_f32(const float *x, int64_t M, int64_t K, int64_t ldx,
                          const uint8_t *codes, const float *scales,
                          const uint8_t *zeros, const float *bias, float *y,
                          int64_t ldy, int64_t N, int64_t G) {
  const Problem p =
      makeProblem(x, M, K, ldx, codes, scales, zeros, bias, y, ldy, N, G);
  runRange(p, 0, N);
}

void qslaw_qmatmul_w4_f32_range(const float *x, int64_t M, int64_t K,
                                int64_t ldx, const uint8_t *codes,
                                const float *scales, const uint8_t *zeros,
                                const float *bias, float *y, int64_t ldy,
                                int64_t N, int64_t G, int64_t n_begin,
                                int64_t n_end) {
  const Problem p =
      makeProblem(x, M, K, ldx, codes, scales, zeros, bias, y, ldy, N, G);
  runRange(p, n_begin, n_end);
}

void qslaw_qmatmul_w4_f32_mt(const float *x, int64_t M, int64_t K,
                             int64_t ldx, const uint8_t *codes,
                             const float *scales, const uint8_t *zeros,
                             const float *bias, float *y, int64_t ldy,
                             int64_t N, int64_t G, int num_threads) {
  const Problem p =
      makeProblem(x, M, K, ldx, codes, scales, zeros, bias, y, ldy, N, G);
  // Shares are multiples of 16 columns so kernels rarely see ragged tails.
  const int64_t maxShares = (N + 15) / 16;
  const int64_t threads = std::min<int64_t>(num_threads, maxShares);
  if (threads <= 1 || N * K <= (int64_t(1) << 20))
    return runRange(p, 0, N);
  activeIsa(); // resolve before the workers race to do it
  const int64_t share = roundUp((N + threads - 1) / threads, 16);
  std::vector<std::thread> workers;
  workers.reserve(static_cast<size_t>(threads - 1));
  for (int64_t nb = share; nb < N; nb += share)
    workers.emplace_back(runRange, p, nb, std::min(N, nb + share));
  runRange(p, 0, std::min(N, share));
  for (std::thread &t : workers)
    t.join();
}

const char *qslaw_ukernel_isa(void) { return kIsaNames[activeIsa()]; }

const char *qslaw_ukernel_force_isa(const char *name) {
  const int isa =
      selectIsa(name && *name ? name : std::getenv("QSLAW_UKERNEL_ISA"));
  gIsa.store(isa, std::memory_order_relaxed);
  return kIsaNames[isa];
}

} // extern "C"
