//===- QMatmulW4.cpp - 4-bit weight-only quantized matmul microkernel -----===//
//
// y = bias + x * dequant(W)^T with W an [N,K] matrix of packed 4-bit codes,
// per-group fp32 scales and optional packed 4-bit zero points (see
// qslaw/Runtime/Ukernels.h for the exact contract).
//
// Code paths, chosen at run time (see qslaw_ukernel_isa):
//  - scalar: portable reference; dequantizes one row of W, then dot products.
//  - avx2 / avx512, each with two strategies:
//    * fused (M <= kFusedMaxM; memory bound): every code byte is loaded once,
//      dequantized in registers and FMA'd into per-(m,n) accumulators that
//      run along K. Widening a chunk of L code bytes to L 32-bit lanes puts
//      the L even-k nibbles in bits 0..3 and the odd-k ones in bits 4..7, so
//      x is repacked once with each 2L-value chunk de-interleaved (evens,
//      then odds) and no nibble shuffles are needed. AVX-512 dequantizes 16
//      weights with one vpermps from a per-group table s*(q - z); AVX2
//      converts and applies q*s - z*s.
//    * GEMM (larger M; compute bound): per 32- (AVX2: 16-) column panel of
//      W and K block of kKc, dequantize once into a k-major fp32 panel (an
//      L1-sized buffer; 16 (8) rows' code bytes are transposed so vectors run
//      over n), then a register-blocked kernel broadcasts x[m,k] and FMAs
//      into MR x panel-width accumulators, for every row block of x.
//    Both need K even (so rows start on a byte) and code chunks that never
//    straddle a group (G % 2L == 0, or G >= K). Other shapes take the GEMM
//    strategy with a scalar panel dequantizer, which handles any K and G.
//
//===----------------------------------------------------------------------===//

#include "KernelSupport.h"
#include "qslaw/Runtime/Ukernels.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <utility>

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

using namespace qslaw::ukernels;

namespace {

enum Isa : int { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };
const char *const kIsaNames[] = {"scalar", "avx2", "avx512"};

// Up to this many rows of x the fused kernel wins: all rows share one pass
// over W, and the weights are touched once.
constexpr int64_t kFusedMaxM = 4;
// K block of the GEMM strategy: a 256 x 32 fp32 panel (32 KiB) fits in L1.
constexpr int64_t kKc = 256;
// x is packed once per chunk of rows; bound the chunk to 4 MiB of floats.
constexpr int64_t kPackFloats = int64_t(1) << 20;

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
// Pieces shared by the SIMD paths
//===----------------------------------------------------------------------===//

// Fused strategy: x rows packed [M][kp] in chunk order (see file comment):
// within each chunk of 2L values the even offsets come first, then the odd
// ones; values past K are zero, so padded weight lanes contribute nothing.
template <int L> float *packFused(const Problem &p, int64_t kp) {
  float *xp = tlsX.get(p.M * kp);
  for (int64_t m = 0; m < p.M; ++m)
    for (int64_t c = 0; c < kp; c += 2 * L)
      for (int i = 0; i < L; ++i) {
        const int64_t ke = c + 2 * i, ko = ke + 1;
        xp[m * kp + c + i] = ke < p.K ? p.x[m * p.ldx + ke] : 0.0f;
        xp[m * kp + c + L + i] = ko < p.K ? p.x[m * p.ldx + ko] : 0.0f;
      }
  return xp;
}

// GEMM strategy. A panel is W^T for columns n0 .. n0+NR over K block
// [k0, k0+kw): bp[k * NR + r]; rows past nr repeat row nr-1 (the micro
// kernel never stores those columns). A micro kernel computes
// y[i*ldy + r] += sum_k ap[k*MR + i] * bp[k*NR + r] for i < MR, r < nr;
// for the first K block (first != 0) it stores the sum plus bias[r] (0
// without a bias) instead, so y is never cleared beforehand.
using PanelFn = void (*)(const Problem &, int64_t n0, int nr, int64_t k0,
                         int64_t kw, float *bp);
using MicroFn = void (*)(const float *ap, int64_t kw, const float *bp,
                         float *y, int64_t ldy, int nr, int first,
                         const float *bias);

struct GemmKernels {
  int mrMax;            // rows per micro tile, at most
  PanelFn panel;        // SIMD dequantizer, or null: panelGeneric
  const MicroFn *micro; // micro[mr] for 1 <= mr <= mrMax
};

template <int NR>
void panelGeneric(const Problem &p, int64_t n0, int nr, int64_t k0,
                  int64_t kw, float *bp) {
  alignas(64) float row[kKc];
  for (int r = 0; r < NR; ++r) { // rows past nr repeat the last (finite) row
    dequantRow(p, n0 + std::min(r, nr - 1), k0, kw, row);
    for (int64_t k = 0; k < kw; ++k)
      bp[k * NR + r] = row[k];
  }
}

template <template <int> class Micro, int... I>
constexpr std::array<MicroFn, sizeof...(I) + 1>
microTable(std::integer_sequence<int, I...>) {
  return {nullptr, Micro<I + 1>::run...};
}

// Prefetch the codes of rows n .. n+rows, K block [k0, k0+kw): one panel
// reads a short piece of 16-32 rows at once, which the hardware prefetchers
// pick up too late.
void prefetchCodes(const Problem &p, int64_t n, int rows, int64_t k0,
                   int64_t kw) {
  for (int r = 0; r < rows && n + r < p.N; ++r) {
    const uint8_t *c = p.codes + ((n + r) * p.K + k0) / 2;
    for (int64_t b = 0; b < (kw + 1) / 2; b += 64)
      __builtin_prefetch(c + b, 0, 3);
  }
}

// Loop order: W panel outermost, K blocks inside, so a panel's y tile
// (M x NR) stays cached across K and each W row is read sequentially. x is
// packed once per row chunk, as per-tile [k][mr] blocks, and streamed once
// per panel.
template <int NR>
void gemmRange(const Problem &p, int64_t nb, int64_t ne,
               const GemmKernels &kern) {
  const PanelFn panel = kern.panel ? kern.panel : panelGeneric<NR>;
  float *bp = tlsW.get(NR * kKc); // p.K > 0: the first K block writes y
  const int64_t mChunk = std::max<int64_t>(kern.mrMax, kPackFloats / p.K);
  for (int64_t mc0 = 0; mc0 < p.M; mc0 += mChunk) {
    const int64_t mc = std::min(mChunk, p.M - mc0);
    // Balanced row tiles: 16 rows with mrMax 12 run as 8 + 8, not 12 + 4.
    const int64_t tiles = (mc + kern.mrMax - 1) / kern.mrMax;
    const int64_t mrMax = (mc + tiles - 1) / tiles;
    float *ap = tlsX.get(mc * p.K);
    for (int64_t m0 = 0, mr; m0 < mc; m0 += mr) {
      mr = std::min(mrMax, mc - m0);
      for (int64_t i = 0; i < mr; ++i) {
        const float *src = p.x + (mc0 + m0 + i) * p.ldx;
        float *dst = ap + m0 * p.K + i;
        for (int64_t k = 0; k < p.K; ++k)
          dst[k * mr] = src[k];
      }
    }
    for (int64_t n0 = nb; n0 < ne; n0 += NR) {
      const int nr = static_cast<int>(std::min<int64_t>(NR, ne - n0));
      for (int64_t k0 = 0; k0 < p.K; k0 += kKc) {
        const int64_t kw = std::min(kKc, p.K - k0);
        if (k0 + kw < p.K) // the block the next panel call will read
          prefetchCodes(p, n0, nr, k0 + kw, std::min(kKc, p.K - k0 - kw));
        else
          prefetchCodes(p, n0 + NR, NR, 0, std::min(kKc, p.K));
        panel(p, n0, nr, k0, kw, bp);
        for (int64_t m0 = 0, mr; m0 < mc; m0 += mr) {
          mr = std::min(mrMax, mc - m0);
          kern.micro[mr](ap + m0 * p.K + k0 * mr, kw, bp,
                         p.y + (mc0 + m0) * p.ldy + n0, p.ldy, nr, k0 == 0,
                         p.bias ? p.bias + n0 : nullptr);
        }
      }
    }
  }
}

#ifdef QSLAW_X86

#define QSLAW_AVX2 __attribute__((target("avx2,fma")))
#define QSLAW_AVX512                                                           \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma")))
#define QSLAW_INLINE inline __attribute__((always_inline))

// Per-lane scale and zero*scale for 16 rows (lanes) of W in group j.
inline void laneScales(const Problem &p, const int64_t *rowN, int lanes,
                       int64_t j, float *s, float *zs) {
  for (int l = 0; l < lanes; ++l) {
    s[l] = p.scales[rowN[l] * p.J + j];
    zs[l] = s[l] * static_cast<float>(zeroPoint(p, rowN[l], j));
  }
}

//===----------------------------------------------------------------------===//
// AVX2 + FMA path (8 lanes, 16-value chunks of 8 code bytes)
//===----------------------------------------------------------------------===//

// The 8 code bytes of one chunk (validK <= 16 values) in the low half.
QSLAW_AVX2 QSLAW_INLINE __m128i loadBytes8(const uint8_t *src,
                                            int64_t validK) {
  if (validK >= 16)
    return _mm_loadl_epi64(reinterpret_cast<const __m128i *>(src));
  uint64_t tail = 0; // never read past the end of the code array
  std::memcpy(&tail, src, static_cast<size_t>(validK / 2));
  return _mm_cvtsi64_si128(static_cast<long long>(tail));
}

// s * (q - z) for the low and the high nibbles of d, as q*s - z*s with one
// rounding; `zs` is z*s.
QSLAW_AVX2 QSLAW_INLINE void dequant8(__m256i d, __m256 s, __m256 zs,
                                      __m256 &lo, __m256 &hi) {
  const __m256i q = _mm256_and_si256(d, _mm256_set1_epi32(15));
  lo = _mm256_fmsub_ps(_mm256_cvtepi32_ps(q), s, zs);
  hi = _mm256_fmsub_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(d, 4)), s, zs);
}

QSLAW_AVX2 QSLAW_INLINE float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

// One chunk of the fused kernel. Branch-free in the steady state (the tail
// is a separate instantiation) so the accumulators stay in registers.
template <int MR, int NR, bool Tail>
QSLAW_AVX2 QSLAW_INLINE void fusedChunk8(__m256 (&acc)[MR][NR],
                                         const uint8_t *const *row,
                                         const __m256 *s, const __m256 *zs,
                                         const float *xp, int64_t kp,
                                         int64_t k, int64_t validK) {
#pragma GCC unroll 4
  for (int r = 0; r < NR; ++r) {
    __m256 we, wo;
    dequant8(_mm256_cvtepu8_epi32(
                 loadBytes8(row[r] + (k >> 1), Tail ? validK : 16)),
             s[r], zs[r], we, wo);
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) {
      const float *xi = xp + i * kp + k;
      acc[i][r] = _mm256_fmadd_ps(we, _mm256_loadu_ps(xi), acc[i][r]);
      acc[i][r] = _mm256_fmadd_ps(wo, _mm256_loadu_ps(xi + 8), acc[i][r]);
    }
  }
}

// Fused kernel: MR rows of x (packed, stride kp) x NR rows of W over all K.
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
    alignas(32) float sv[NR], zv[NR];
    laneScales(p, rowN, NR, j, sv, zv);
    __m256 s[NR], zs[NR];
    for (int r = 0; r < NR; ++r) {
      s[r] = _mm256_set1_ps(sv[r]);
      zs[r] = _mm256_set1_ps(zv[r]);
    }
    const int64_t gend = std::min(p.K, (j + 1) * p.G);
    for (; k + 16 <= gend; k += 16)
      fusedChunk8<MR, NR, false>(acc, row, s, zs, xp, kp, k, 16);
    if (k < gend) { // short chunk at the end of K
      fusedChunk8<MR, NR, true>(acc, row, s, zs, xp, kp, k, gend - k);
      k = gend;
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int r = 0; r < nr; ++r)
      p.y[(m0 + i) * p.ldy + n0 + r] =
          (p.bias ? p.bias[n0 + r] : 0.0f) + hsum8(acc[i][r]);
}

// 8x8 byte transpose: row r = low 8 bytes of in[r]; on return the low and
// high halves of out[c] hold columns 2c and 2c+1.
QSLAW_AVX2 QSLAW_INLINE void transpose8x8(const __m128i *in, __m128i *out) {
  __m128i a[4], b[4];
  for (int i = 0; i < 4; ++i) // 2-row units
    a[i] = _mm_unpacklo_epi8(in[2 * i], in[2 * i + 1]);
  for (int i = 0; i < 2; ++i) { // 4-row units: columns 0-3 | 4-7
    b[2 * i] = _mm_unpacklo_epi16(a[2 * i], a[2 * i + 1]);
    b[2 * i + 1] = _mm_unpackhi_epi16(a[2 * i], a[2 * i + 1]);
  }
  for (int h = 0; h < 2; ++h) { // 8 rows: columns 4h+0,1 | 4h+2,3
    out[2 * h] = _mm_unpacklo_epi32(b[h], b[2 + h]);
    out[2 * h + 1] = _mm_unpackhi_epi32(b[h], b[2 + h]);
  }
}

constexpr int kNrAvx2 = 16, kMrAvx2 = 6;

// GEMM panel: lanes run over 8 rows of W (per-lane scales); transposing 8
// rows' code bytes turns one byte column into those rows' (even k, odd k)
// codes.
QSLAW_AVX2 void panelAvx2(const Problem &p, int64_t n0, int nr, int64_t k0,
                          int64_t kw, float *bp) {
  for (int h = 0; h < kNrAvx2 / 8; ++h) {
    const uint8_t *row[8];
    int64_t rowN[8];
    for (int l = 0; l < 8; ++l) {
      rowN[l] = n0 + std::min(8 * h + l, nr - 1);
      row[l] = p.codes + (rowN[l] * p.K + k0) / 2;
    }
    float *dst = bp + 8 * h;
    __m256 s = _mm256_setzero_ps(), zs = s;
    for (int64_t c = 0, gend = 0; c < kw; c += 16) {
      if (c >= gend) { // next group
        const int64_t j = (k0 + c) / p.G;
        gend = (j + 1) * p.G - k0;
        alignas(32) float sv[8], zv[8];
        laneScales(p, rowN, 8, j, sv, zv);
        s = _mm256_load_ps(sv);
        zs = _mm256_load_ps(zv);
      }
      __m128i in[8], t[4];
      for (int l = 0; l < 8; ++l)
        in[l] = loadBytes8(row[l] + c / 2, kw - c);
      transpose8x8(in, t);
#pragma GCC unroll 8
      for (int b = 0; b < 8; ++b) {
        const __m128i col = b % 2 ? _mm_unpackhi_epi64(t[b / 2], t[b / 2])
                                  : t[b / 2];
        __m256 lo, hi;
        dequant8(_mm256_cvtepu8_epi32(col), s, zs, lo, hi);
        _mm256_store_ps(dst + (c + 2 * b) * kNrAvx2, lo);
        _mm256_store_ps(dst + (c + 2 * b + 1) * kNrAvx2, hi);
      }
    }
  }
}

template <int MR> struct MicroAvx2 {
  QSLAW_AVX2 static void run(const float *ap, int64_t kw, const float *bp,
                             float *y, int64_t ldy, int nr, int first,
                             const float *bias) {
    __m256 acc[MR][2];
    for (int i = 0; i < MR; ++i)
      acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    for (int64_t k = 0; k < kw; ++k, ap += MR, bp += kNrAvx2) {
      _mm_prefetch(reinterpret_cast<const char *>(ap + 32 * MR), _MM_HINT_T0);
      const __m256 b0 = _mm256_load_ps(bp), b1 = _mm256_load_ps(bp + 8);
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) {
        const __m256 a = _mm256_broadcast_ss(ap + i);
        acc[i][0] = _mm256_fmadd_ps(a, b0, acc[i][0]);
        acc[i][1] = _mm256_fmadd_ps(a, b1, acc[i][1]);
      }
    }
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(nr), iota);
    const __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(nr - 8), iota);
    // What the sums add to: y, or on the first K block the bias (or 0).
    const __m256 b0 = first && bias ? _mm256_maskload_ps(bias, m0)
                                    : _mm256_setzero_ps();
    const __m256 b1 = first && bias ? _mm256_maskload_ps(bias + 8, m1)
                                    : _mm256_setzero_ps();
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      float *yi = y + i * ldy;
      const __m256 y0 = first ? b0 : _mm256_maskload_ps(yi, m0);
      const __m256 y1 = first ? b1 : _mm256_maskload_ps(yi + 8, m1);
      _mm256_maskstore_ps(yi, m0, _mm256_add_ps(y0, acc[i][0]));
      _mm256_maskstore_ps(yi + 8, m1, _mm256_add_ps(y1, acc[i][1]));
    }
  }
};

void rangeAvx2(const Problem &p, int64_t nb, int64_t ne) {
  const bool fast = fastLayout(p, 8);
  if (fast && p.M <= kFusedMaxM) {
    const int64_t kp = roundUp(p.K, 16);
    const float *xp = packFused<8>(p, kp);
    // Two rows of x per pass: AVX2's 16 registers hold no more.
    for (int64_t m0 = 0; m0 < p.M; m0 += 2)
      for (int64_t n0 = nb; n0 < ne; n0 += 4)
        (p.M - m0 >= 2 ? fusedAvx2<2, 4> : fusedAvx2<1, 4>)(
            p, xp + m0 * kp, kp, m0, n0,
            static_cast<int>(std::min<int64_t>(4, ne - n0)));
    return;
  }
  static constexpr auto micro =
      microTable<MicroAvx2>(std::make_integer_sequence<int, kMrAvx2>{});
  gemmRange<kNrAvx2>(p, nb, ne,
                     {kMrAvx2, fast ? panelAvx2 : nullptr, micro.data()});
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

// One 32-value chunk of the fused kernel (see fusedChunk8).
template <int MR, int NR, int S, bool Tail>
QSLAW_AVX512 QSLAW_INLINE void fusedChunk16(__m512 (&acc)[MR][NR][S],
                                            const uint8_t *const *row,
                                            const __m512 *tab, const float *xp,
                                            int64_t kp, int64_t k,
                                            int64_t validK) {
#pragma GCC unroll 8
  for (int r = 0; r < NR; ++r) {
    const __m512i d = loadCodes16(row[r] + (k >> 1), Tail ? validK : 32);
    const __m512 we = _mm512_permutexvar_ps(d, tab[r]);
    const __m512 wo = _mm512_permutexvar_ps(_mm512_srli_epi32(d, 4), tab[r]);
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) {
      const float *xi = xp + i * kp + k;
      acc[i][r][0] = _mm512_fmadd_ps(we, _mm512_loadu_ps(xi), acc[i][r][0]);
      acc[i][r][S - 1] =
          _mm512_fmadd_ps(wo, _mm512_loadu_ps(xi + 16), acc[i][r][S - 1]);
    }
  }
}

template <int MR, int NR>
QSLAW_AVX512 void fusedAvx512(const Problem &p, const float *xp, int64_t kp,
                              int64_t n0, int nr) {
  // Enough independent FMA chains to cover latency 4 x 2 ports.
  constexpr int S = MR * NR >= 8 ? 1 : 2;
  __m512 acc[MR][NR][S];
  const uint8_t *row[NR];
  int64_t rowN[NR];
  for (int r = 0; r < NR; ++r) {
    rowN[r] = n0 + std::min(r, nr - 1); // clamp: tail rows recompute the last
    row[r] = p.codes + rowN[r] * p.K / 2;
    for (int i = 0; i < MR; ++i)
      for (int s = 0; s < S; ++s)
        acc[i][r][s] = _mm512_setzero_ps();
  }
  for (int64_t j = 0, k = 0; j < p.J; ++j) {
    __m512 tab[NR];
    for (int r = 0; r < NR; ++r)
      tab[r] = groupTable(p, rowN[r], j);
    const int64_t gend = std::min(p.K, (j + 1) * p.G);
    for (; k + 32 <= gend; k += 32)
      fusedChunk16<MR, NR, S, false>(acc, row, tab, xp, kp, k, 32);
    if (k < gend) { // short chunk at the end of K
      fusedChunk16<MR, NR, S, true>(acc, row, tab, xp, kp, k, gend - k);
      k = gend;
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int r = 0; r < nr; ++r) {
      __m512 v = acc[i][r][0];
      if (S > 1)
        v = _mm512_add_ps(v, acc[i][r][S - 1]);
      p.y[i * p.ldy + n0 + r] =
          (p.bias ? p.bias[n0 + r] : 0.0f) + _mm512_reduce_add_ps(v);
    }
}

// Transposes four 16x16 byte matrices at once, one per 128-bit lane: on
// return lane q of r[c] holds column c of the matrix in lane q. (512-bit
// shuffles all issue on one port, so four-at-a-time matters.)
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

constexpr int kNrAvx512 = 32, kMrAvx512 = 12; // 24 accumulators

// GEMM panel: lanes run over 16 rows of W (per-lane scales); transposing 16
// rows' code bytes turns one byte column into those rows' (even k, odd k)
// codes. Handles 4 chunks (128 values of k) per transpose.
QSLAW_AVX512 void panelAvx512(const Problem &p, int64_t n0, int nr,
                              int64_t k0, int64_t kw, float *bp) {
  const __m512 iota = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11,
                                     12, 13, 14, 15);
  alignas(64) uint8_t cols[16][64];
  for (int h = 0; h < kNrAvx512 / 16; ++h) {
    const uint8_t *row[16];
    int64_t rowN[16];
    for (int l = 0; l < 16; ++l) {
      rowN[l] = n0 + std::min(16 * h + l, nr - 1);
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
        if (c >= gend) { // next group
          const int64_t j = (k0 + c) / p.G;
          gend = (j + 1) * p.G - k0;
          alignas(64) float sv[16], zv[16];
          laneScales(p, rowN, 16, j, sv, zv);
          s = _mm512_load_ps(sv);
          zs = _mm512_load_ps(zv);
        }
#pragma GCC unroll 16
        for (int b = 0; b < 16; ++b) {
          const __m512i d = _mm512_cvtepu8_epi32(_mm_load_si128(
              reinterpret_cast<const __m128i *>(cols[b] + 16 * q)));
          // Low nibble via a 0..15 table (vpermps ignores the high bits),
          // high one via shift + convert: spreads the work over two ports.
          const __m512 lo = _mm512_permutexvar_ps(d, iota);
          const __m512 hi = _mm512_cvtepi32_ps(_mm512_srli_epi32(d, 4));
          _mm512_store_ps(dst + (c + 2 * b) * kNrAvx512,
                          _mm512_fmsub_ps(lo, s, zs));
          _mm512_store_ps(dst + (c + 2 * b + 1) * kNrAvx512,
                          _mm512_fmsub_ps(hi, s, zs));
        }
      }
    }
  }
}

template <int MR> struct MicroAvx512 {
  QSLAW_AVX512 static void run(const float *ap, int64_t kw, const float *bp,
                               float *y, int64_t ldy, int nr, int first,
                               const float *bias) {
    __m512 acc[MR][2];
    for (int i = 0; i < MR; ++i)
      acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (int64_t k = 0; k < kw; ++k, ap += MR, bp += kNrAvx512) {
      // x streams from L2/L3 (once per panel); fetch it a little early.
      _mm_prefetch(reinterpret_cast<const char *>(ap + 32 * MR), _MM_HINT_T0);
      const __m512 b0 = _mm512_load_ps(bp), b1 = _mm512_load_ps(bp + 16);
#pragma GCC unroll 16
      for (int i = 0; i < MR; ++i) {
        const __m512 a = _mm512_set1_ps(ap[i]);
        acc[i][0] = _mm512_fmadd_ps(a, b0, acc[i][0]);
        acc[i][1] = _mm512_fmadd_ps(a, b1, acc[i][1]);
      }
    }
    const __mmask16 m0 = static_cast<__mmask16>(
        nr >= 16 ? 0xFFFF : (1u << nr) - 1);
    const __mmask16 m1 = static_cast<__mmask16>(
        nr >= 32 ? 0xFFFF : nr > 16 ? (1u << (nr - 16)) - 1 : 0);
    // What the sums add to: y, or on the first K block the bias (or 0).
    const __m512 b0 = first && bias ? _mm512_maskz_loadu_ps(m0, bias)
                                    : _mm512_setzero_ps();
    const __m512 b1 = first && bias ? _mm512_maskz_loadu_ps(m1, bias + 16)
                                    : _mm512_setzero_ps();
    for (int i = 0; i < MR; ++i) {
      float *yi = y + i * ldy;
      const __m512 y0 = first ? b0 : _mm512_maskz_loadu_ps(m0, yi);
      const __m512 y1 = first ? b1 : _mm512_maskz_loadu_ps(m1, yi + 16);
      _mm512_mask_storeu_ps(yi, m0, _mm512_add_ps(y0, acc[i][0]));
      _mm512_mask_storeu_ps(yi + 16, m1, _mm512_add_ps(y1, acc[i][1]));
    }
  }
};

void rangeAvx512(const Problem &p, int64_t nb, int64_t ne) {
  const bool fast = fastLayout(p, 16);
  if (fast && p.M <= kFusedMaxM) {
    const int64_t kp = roundUp(p.K, 32);
    const float *xp = packFused<16>(p, kp);
    using FusedFn = void (*)(const Problem &, const float *, int64_t, int64_t,
                             int);
    static const FusedFn fused[] = {fusedAvx512<1, 4>, fusedAvx512<2, 4>,
                                    fusedAvx512<3, 4>, fusedAvx512<4, 4>};
    for (int64_t n0 = nb; n0 < ne; n0 += 4) // all rows in one pass over W
      fused[p.M - 1](p, xp, kp, n0,
                     static_cast<int>(std::min<int64_t>(4, ne - n0)));
    return;
  }
  static constexpr auto micro =
      microTable<MicroAvx512>(std::make_integer_sequence<int, kMrAvx512>{});
  gemmRange<kNrAvx512>(p, nb, ne,
                       {kMrAvx512, fast ? panelAvx512 : nullptr, micro.data()});
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

// The requested path ("scalar", "avx2", "avx512"), clamped to what the CPU
// supports; the best one when the request is null, empty or unknown.
int selectIsa(const char *request) {
  const int best = cpuBestIsa();
  for (int i = 0; request && i < 3; ++i)
    if (std::strcmp(request, kIsaNames[i]) == 0)
      return std::min(i, best);
  return best;
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
  // Shares are multiples of 32 columns, the widest GEMM panel; they run on
  // the process's OpenMP pool (KernelSupport.h).
  const int64_t threads = std::min<int64_t>(num_threads, (N + 31) / 32);
  if (threads <= 1 || M * N * K <= (int64_t(1) << 21))
    return runRange(p, 0, N);
  activeIsa(); // resolve before the workers race to do it
  const int64_t share = roundUp((N + threads - 1) / threads, 32);
  parallelFor((N + share - 1) / share, int(threads), [&](int64_t i) {
    runRange(p, i * share, std::min(N, (i + 1) * share));
  });
}

const char *qslaw_ukernel_isa(void) { return kIsaNames[activeIsa()]; }

const char *qslaw_ukernel_force_isa(const char *name) {
  const int isa =
      selectIsa(name && *name ? name : std::getenv("QSLAW_UKERNEL_ISA"));
  gIsa.store(isa, std::memory_order_relaxed);
  return kIsaNames[isa];
}

} // extern "C"
