//===- QMatmulBlocked.cpp - qmatmul of any bit width at GEMM speed --------===//
//
// The weight-only quantized matmul and its gradients for 2-, 3-, 4- and
// 8-bit codes, at the speed of the GEMM library: W is dequantised one block
// at a time into a cache-sized fp32 scratch (at most 1 MiB: a block of rows,
// or of columns for dX) and the block's product runs in the library
// (qslaw_sgemm_f32_batched). The [N, K] float weight never exists; blocks
// are independent, so they are shared over the OpenMP pool, each block's
// GEMM on one thread.
//   forward  y[:, blk]  = x . What[blk, :]^T (+ bias)
//   dX       dx[:, blk] = dy . What[:, blk]
//   ds       T = dy[:, blk]^T . x (the token GEMM of a row block), then the
//            group sums of (q - z) * T as its epilogue
//   dgamma   the same T, then the clamp-masked group sums of w * T
// Code layouts are those of the narrow-type emulation (Ukernels.h).
//
//===----------------------------------------------------------------------===//
#include "KernelSupport.h"
#include "WeightRows.h"
#include "qslaw/Runtime/Ukernels.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

using namespace qslaw::ukernels;

namespace {

// One block's fp32 scratch: 2^18 floats (1 MiB, an L2).
constexpr int64_t kBlockFloats = int64_t(1) << 18;

thread_local Scratch tlsBlock, tlsRow, tlsWeight;

struct Operands {
  const uint8_t *codes;
  const float *scales; // null: unit scales (q - z)
  const uint8_t *zeros;
  int64_t K, G, J;
};

/// Codes of `Bits` bits: 2 and 4 packed 8/Bits per byte over the linear
/// index, low bits first; 3 and 8 one per byte (3-bit codes in the low bits;
/// the others are ignored, LLVM leaves them unspecified).
template <int Bits> struct Layout {
  static constexpr int kPerByte = Bits == 2 ? 4 : Bits == 4 ? 2 : 1;
  static constexpr unsigned kMask = (1u << Bits) - 1;
  __attribute__((always_inline)) static unsigned at(const uint8_t *p, int64_t i) {
    if constexpr (kPerByte == 1)
      return p[i] & kMask;
    else
      return (p[i / kPerByte] >> ((i % kPerByte) * Bits)) & kMask;
  }
  __attribute__((always_inline)) static float zero(const uint8_t *zeros, int64_t i) {
    return zeros ? float(at(zeros, i)) : float(1u << (Bits - 1));
  }
};

/// dst[0 .. bytes * perByte) = s * (codes - z) of whole code bytes. The
/// pointers are restrict (uint8_t may alias anything) so that the loop
/// vectorises.
template <int Bits>
__attribute__((always_inline)) inline void unpackBytes(const uint8_t *__restrict src, int64_t bytes, float s,
                        float z, float *__restrict dst) {
  using L = Layout<Bits>;
  for (int64_t b = 0; b < bytes; ++b) {
    const unsigned v = src[b];
    for (int u = 0; u < L::kPerByte; ++u)
      dst[b * L::kPerByte + u] = s * (float((v >> (u * Bits)) & L::kMask) - z);
  }
}

/// out[k - k0] = s(n, j) * (q(n, k) - z(n, j)) for k in [k0, k0 + kw); with
/// no scales, q - z. Exact in fp32 (q - z is a small integer).
template <int Bits>
__attribute__((always_inline)) inline void
dequantRowImpl(const Operands &p, int64_t n, int64_t k0, int64_t kw,
               float *out) {
  using L = Layout<Bits>;
  const int64_t base = n * p.K;
  float *o = out - k0 - base; // o[i] for linear index i
  for (int64_t k = k0, kend = k0 + kw; k < kend;) {
    const int64_t j = k / p.G, gend = kend < (j + 1) * p.G ? kend : (j + 1) * p.G;
    const float s = p.scales ? p.scales[n * p.J + j] : 1.f;
    const float z = L::zero(p.zeros, n * p.J + j);
    int64_t i = base + k;
    const int64_t e = base + gend;
    if constexpr (L::kPerByte > 1) {
      for (; i < e && i % L::kPerByte; ++i) // up to a byte boundary
        o[i] = s * (float(L::at(p.codes, i)) - z);
      const int64_t bytes = (e - i) / L::kPerByte;
      unpackBytes<Bits>(p.codes + i / L::kPerByte, bytes, s, z, o + i);
      i += bytes * L::kPerByte;
    } else {
      unpackBytes<Bits>(p.codes + i, e - i, s, z, o + i);
      i = e;
    }
    for (; i < e; ++i)
      o[i] = s * (float(L::at(p.codes, i)) - z);
    k = gend;
  }
}

// One clone set per width (KernelSupport.h: no library calls inside).
QSLAW_CLONES void dequantRow2(const Operands &p, int64_t n, int64_t k0,
                              int64_t kw, float *out) {
  dequantRowImpl<2>(p, n, k0, kw, out);
}
QSLAW_CLONES void dequantRow3(const Operands &p, int64_t n, int64_t k0,
                              int64_t kw, float *out) {
  dequantRowImpl<3>(p, n, k0, kw, out);
}
QSLAW_CLONES void dequantRow4(const Operands &p, int64_t n, int64_t k0,
                              int64_t kw, float *out) {
  dequantRowImpl<4>(p, n, k0, kw, out);
}
QSLAW_CLONES void dequantRow8(const Operands &p, int64_t n, int64_t k0,
                              int64_t kw, float *out) {
  dequantRowImpl<8>(p, n, k0, kw, out);
}

using DequantFn = void (*)(const Operands &, int64_t, int64_t, int64_t,
                           float *);

DequantFn dequantFor(int bits) {
  switch (bits) {
  case 2:
    return dequantRow2;
  case 3:
    return dequantRow3;
  case 4:
    return dequantRow4;
  case 8:
    return dequantRow8;
  default:
    std::fprintf(stderr, "qslaw: quantized matmul kernel called with %d-bit "
                 "codes (2, 3, 4 or 8 expected)\n", bits);
    std::abort();
  }
}

float zeroOf(int bits, const uint8_t *zeros, int64_t i) {
  switch (bits) {
  case 2:
    return Layout<2>::zero(zeros, i);
  case 3:
    return Layout<3>::zero(zeros, i);
  case 4:
    return Layout<4>::zero(zeros, i);
  default:
    return Layout<8>::zero(zeros, i);
  }
}

int resolveThreads(int t) { return t > 0 ? t : qslaw_num_threads(); }

// quantize, one row: the code of each weight as a byte, w / s rounded half
// to even plus the zero point, clamped to [0, qmax], NaN to the zero point:
// true division and rint, so the codes equal the compiler's own
// (quant::quantizeValue). Written once, compiled for AVX-512, AVX2 and the
// baseline; the vectoriser turns rint into vroundps, where the scalar loop
// called rintf (about 10 ns a weight).
#define QSLAW_QUANTIZE_ROW_BODY                                                \
  for (int64_t j = 0; j < J; ++j) {                                            \
    const int64_t k0 = j * G, k1 = std::min(K, k0 + G);                        \
    const float s = scales[j], z = zs[j];                                      \
    for (int64_t k = k0; k < k1; ++k) {                                        \
      float c = __builtin_rintf(w[k] / s) + z;                                 \
      c = c != c ? z : c < 0.f ? 0.f : c > qmax ? qmax : c;                    \
      out[k] = uint8_t(int32_t(c));                                            \
    }                                                                          \
  }

void quantizeRowBaseline(const float *w, int64_t K, int64_t G, int64_t J,
                         const float *scales, const float *zs, float qmax,
                         uint8_t *out) {
  QSLAW_QUANTIZE_ROW_BODY
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) void
quantizeRowAvx2(const float *w, int64_t K, int64_t G, int64_t J,
                const float *scales, const float *zs, float qmax,
                uint8_t *out) {
  QSLAW_QUANTIZE_ROW_BODY
}

__attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma"))) void
quantizeRowAvx512(const float *w, int64_t K, int64_t G, int64_t J,
                  const float *scales, const float *zs, float qmax,
                  uint8_t *out) {
  QSLAW_QUANTIZE_ROW_BODY
}
#endif
#undef QSLAW_QUANTIZE_ROW_BODY

using QuantizeRowFn = void (*)(const float *, int64_t, int64_t, int64_t,
                               const float *, const float *, float, uint8_t *);

/// The row function of the microkernels' instruction set
/// (qslaw_ukernel_isa: the CPU's best, or QSLAW_UKERNEL_ISA).
QuantizeRowFn quantizeRowFor() {
#if defined(__x86_64__)
  const char *isa = qslaw_ukernel_isa();
  if (std::strcmp(isa, "avx512") == 0)
    return quantizeRowAvx512;
  if (std::strcmp(isa, "avx2") == 0)
    return quantizeRowAvx2;
#endif
  return quantizeRowBaseline;
}

/// Packs one row's byte codes into `codes` from element `e0` on (the
/// narrow-type layout: low bits first), into bytes zeroed beforehand. In
/// ISA clones: the baseline build of its byte loops took as long as the
/// quantisation itself (BM_quantize<4> 0.93 -> 0.46 ms at 2816 x 1024).
QSLAW_CLONES void packRow(int bits, int perByte, const uint8_t *row,
                          int64_t K, int64_t e0, uint8_t *codes) {
  if (perByte == 1) {
    std::memcpy(codes + e0, row, size_t(K));
    return;
  }
  int64_t k = 0;
  for (; k < K && (e0 + k) % perByte; ++k) // up to the next byte
    codes[(e0 + k) / perByte] |= uint8_t(row[k] << (((e0 + k) % perByte) * bits));
  uint8_t *dst = codes + (e0 + k) / perByte;
  const int64_t whole = (K - k) / perByte;
  if (perByte == 2)
    for (int64_t b = 0; b < whole; ++b)
      dst[b] = uint8_t(row[k + 2 * b] | row[k + 2 * b + 1] << 4);
  else
    for (int64_t b = 0; b < whole; ++b)
      dst[b] = uint8_t(row[k + 4 * b] | row[k + 4 * b + 1] << 2 |
                       row[k + 4 * b + 2] << 4 | row[k + 4 * b + 3] << 6);
  for (k += whole * perByte; k < K; ++k)
    codes[(e0 + k) / perByte] |= uint8_t(row[k] << (((e0 + k) % perByte) * bits));
}

/// Threads of each block's GEMM: one when blocks run in parallel, else all
/// (a single block). Never fewer than asked on the caller's thread: the GEMM
/// wrapper sets the OpenMP thread count of the calling task, and a 1 there
/// would serialise the generated parallel loops that follow.
int gemmThreads(int64_t blocks, int threads) {
  return blocks >= 2 && threads > 1 ? 1 : threads;
}

/// Splits `total` into blocks of at most `maxWidth` (a multiple of 16, at
/// least 16), their count a multiple of `threads` where that keeps blocks
/// >= 16 wide, so no thread idles at the end.
struct Blocks {
  int64_t width, count;
};
Blocks split(int64_t total, int64_t maxWidth, int threads) {
  maxWidth = std::max<int64_t>(16, maxWidth / 16 * 16);
  int64_t count = (total + maxWidth - 1) / maxWidth;
  const int64_t even = roundUp(count, threads);
  if ((total + even - 1) / even >= 16)
    count = even;
  const int64_t width = roundUp((total + count - 1) / count, 16);
  return {width, (total + width - 1) / width};
}

/// Runs body(begin, width, gemmThreads) for each block of split(total,
/// maxWidth, threads), the blocks shared over the pool.
template <typename F>
void forEachBlock(int64_t total, int64_t maxWidth, int threads, F &&body) {
  const Blocks blk = split(total, maxWidth, threads);
  const int inner = gemmThreads(blk.count, threads);
  parallelFor(blk.count, threads, [&](int64_t b) {
    const int64_t begin = b * blk.width;
    body(begin, std::min(blk.width, total - begin), inner);
  });
}

/// The token GEMM of rows [n0, n0 + nb) of W: T[r, k] = sum_m dy[m, n0 + r]
/// * x[m, k], into t (row-major, ld K).
void tokenGemm(const float *x, int64_t M, int64_t K, int64_t ldx,
               const float *dy, int64_t lddy, int64_t n0, int64_t nb,
               float *t, int threads) {
  qslaw_sgemm_f32_batched(1, nb, K, M, dy + n0, lddy, 0, /*transA=*/1, x, ldx,
                          0, /*transB=*/0, 0.f, t, K, 0, threads);
}

/// The rows of dy [M, N] that are not all zero. A gradient is often zero
/// on whole rows: below the loss of a last layer, every row whose token
/// the loss does not count (an image's, a prompt's) stays exactly zero down
/// to that layer's attention. The gradient kernels skip those rows' share
/// of the GEMM: dX's rows are zero there, and they add nothing to a token
/// sum (even where x is not finite, which IEEE would turn into 0 * inf =
/// NaN: such a row has no effect on the loss). A row's scan stops at the
/// first 64-element chunk holding a nonzero (or NaN), so a dense dy costs
/// one chunk per row.
struct ActiveRows {
  std::vector<int64_t> rows; // the nonzero rows, ascending
  bool contiguous() const {
    return !rows.empty() &&
           rows.back() - rows.front() + 1 == int64_t(rows.size());
  }
};

/// Whether r[0, N) holds only zeros (of either sign; a NaN is not zero):
/// 64 elements at a time, each chunk's bits or-ed in a loop without an exit,
/// which vectorises (an element-wise early exit does not).
bool rowIsZero(const float *r, int64_t N) {
  auto magnitude = [](const float *p) {
    uint32_t b;
    std::memcpy(&b, p, sizeof b);
    return b & 0x7fffffffu;
  };
  int64_t n = 0;
  for (; n + 64 <= N; n += 64) {
    uint32_t acc = 0;
    for (int i = 0; i < 64; ++i)
      acc |= magnitude(r + n + i);
    if (acc)
      return false;
  }
  for (; n < N; ++n)
    if (magnitude(r + n))
      return false;
  return true;
}

ActiveRows activeRows(const float *dy, int64_t M, int64_t N, int64_t lddy) {
  ActiveRows a;
  for (int64_t m = 0; m < M; ++m)
    if (!rowIsZero(dy + m * lddy, N))
      a.rows.push_back(m);
  return a;
}

/// Whether leaving out M - count rows is worth the copies it may take:
/// a contiguous run costs nothing, scattered rows a gather of each.
bool worthSkipping(const ActiveRows &a, int64_t M) {
  const int64_t count = int64_t(a.rows.size());
  return count < M && (a.contiguous() || count == 0 || 8 * count <= 7 * M);
}

/// rows of src (ld lds, width w) gathered into a dense [rows, w] buffer.
std::vector<float> gatherRows(const float *src, int64_t lds, int64_t w,
                              const std::vector<int64_t> &rows) {
  std::vector<float> out(rows.size() * size_t(w));
  for (size_t i = 0; i < rows.size(); ++i)
    std::memcpy(out.data() + i * w, src + rows[i] * lds,
                size_t(w) * sizeof(float));
  return out;
}

} // namespace

int64_t qslaw::ukernels::gradRowsComputed(const float *dy, int64_t M,
                                          int64_t N, int64_t lddy) {
  const ActiveRows a = activeRows(dy, M, N, lddy);
  return worthSkipping(a, M) ? int64_t(a.rows.size()) : M;
}

namespace {
/// x [M, K] and dy [M, N] of a token sum (the token GEMM dy^T x).
struct Tokens {
  const float *x, *dy;
  int64_t M, ldx, lddy;
};

/// The same token sum over dy's nonzero rows only (and x's rows beside
/// them), when that pays: a contiguous run in place, scattered rows
/// gathered into `gx` and `gdy`.
Tokens activeTokens(Tokens all, int64_t K, int64_t N, std::vector<float> &gx,
                    std::vector<float> &gdy) {
  const ActiveRows a = activeRows(all.dy, all.M, N, all.lddy);
  if (!worthSkipping(a, all.M))
    return all;
  const int64_t count = int64_t(a.rows.size());
  if (a.contiguous() || count == 0) {
    const int64_t first = count ? a.rows.front() : 0;
    return {all.x + first * all.ldx, all.dy + first * all.lddy, count,
            all.ldx, all.lddy};
  }
  gx = gatherRows(all.x, all.ldx, K, a.rows);
  gdy = gatherRows(all.dy, all.lddy, N, a.rows);
  return {gx.data(), gdy.data(), count, K, N};
}
} // namespace

namespace {
/// The ds epilogue over one group: sum of a[k] * b[k], reassociable, so a
/// vector loop in each ISA clone (the in-order scalar sum was one add
/// latency per weight: the epilogue ran the kernel at 0.82 of GEMM speed).
QSLAW_CLONES float dot(const float *a, const float *b, int64_t n) {
#pragma clang fp reassociate(on)
  float acc = 0.f;
  for (int64_t k = 0; k < n; ++k)
    acc += a[k] * b[k];
  return acc;
}

/// gamma mode's dgamma epilogue over one group: the sum of w[k] * t[k] over
/// the weights whose code rint(w / sg) + z is inside [0, qmax] (NaN: out),
/// with true division and rint as the quantiser has them. In ISA clones, so
/// that rint is vroundps and the loop a vector loop (the baseline loop
/// called rintf per weight: 7 % of a small gamma step).
QSLAW_CLONES float inRangeDot(const float *w, const float *t, int64_t n,
                              float sg, float z, float qmax) {
  // Reassociable: the sum runs in vector lanes (its order is the
  // vectoriser's; the terms are exact products).
#pragma clang fp reassociate(on)
  float acc = 0.f;
  for (int64_t k = 0; k < n; ++k) {
    const float c = __builtin_rintf(w[k] / sg) + z;
    // `&`, not `&&`: no branch per weight.
    const bool in = (c >= 0.f) & (c <= qmax);
    acc += in ? w[k] * t[k] : 0.f;
  }
  return acc;
}

/// gamma mode's dgamma (qslaw_qmatmul_grad_gamma_f32) over the weight
/// `wr` reads.
void gradGamma(int bits, const float *x, int64_t M, int64_t K, int64_t ldx,
               const float *dy, int64_t N, int64_t lddy, const WeightRows &wr,
               const float *scales, const float *gamma, const uint8_t *zeros,
               float *dgamma, int64_t G, int num_threads) {
  const int64_t J = (K + G - 1) / G;
  const float qmax = float((1u << bits) - 1);
  std::vector<float> gx, gdy;
  const Tokens tk = activeTokens({x, dy, M, ldx, lddy}, K, N, gx, gdy);
  forEachBlock(N, kBlockFloats / K, resolveThreads(num_threads),
               [&](int64_t n0, int64_t nb, int gemmThreads) {
    float *t = tlsBlock.get(nb * K);
    tokenGemm(tk.x, tk.M, K, tk.ldx, tk.dy, tk.lddy, n0, nb, t, gemmThreads);
    const int64_t kc = wr.chunk(G);
    float *scratch = wr.inPlace() ? nullptr : tlsWeight.get(nb * kc);
    for (int64_t k0 = 0; k0 < K; k0 += kc) {
      const int64_t kw = std::min(kc, K - k0);
      int64_t ld = 0;
      const float *wb = wr.block(n0, nb, k0, kw, scratch, ld);
      for (int64_t r = 0; r < nb; ++r) {
        const int64_t n = n0 + r;
        const float *wn = wb + r * ld, *tr = t + r * K;
        for (int64_t j = k0 / G; j * G < k0 + kw; ++j) {
          const int64_t i = n * J + j, k1 = std::min(K, (j + 1) * G);
          const float sg = scales[i] * gamma[i], z = zeroOf(bits, zeros, i);
          const float acc = inRangeDot(wn + (j * G - k0), tr + j * G,
                                       k1 - j * G, sg, z, qmax);
          dgamma[i] = -acc / (gamma[i] * gamma[i]);
        }
      }
    }
  });
}


/// Codes of the weight `wr` reads (qslaw_quantize_f32).
void quantize(int bits, const WeightRows &wr, int64_t N, int64_t K,
              const float *scales, const uint8_t *zeros, uint8_t *codes,
              int64_t G, int num_threads) {
  const int perByte = bits == 2 ? 4 : bits == 4 ? 2 : 1;
  const int64_t J = (K + G - 1) / G;
  const float qmax = float((1u << bits) - 1);
  // Blocks of rows of at least ~64K weights of one chunk of columns (all
  // of K for rows as stored; WeightRows::chunk for a [K, N] weight, which
  // goes through a transposing copy), a multiple of 4 rows each (so that
  // every block's codes and zero points start on a byte), of 8 for the
  // copy's 8 x 8 tiles. Each block clears its own bytes first (packRow ors
  // into them).
  const int64_t kc = wr.chunk(G);
  const int64_t blockRows =
      roundUp(std::max<int64_t>(1, (1 << 16) / std::max<int64_t>(kc, 1)),
              wr.rowsStored() ? 4 : 8);
  const int64_t blocks = (N + blockRows - 1) / blockRows;
  const QuantizeRowFn quantizeRow = quantizeRowFor();
  parallelFor(blocks, num_threads > 0 ? num_threads : qslaw_num_threads(),
              [&](int64_t blk) {
    const int64_t n0 = blk * blockRows, n1 = std::min(N, n0 + blockRows);
    const int64_t b0 = n0 * K / perByte;
    std::memset(codes + b0, 0, size_t((n1 * K + perByte - 1) / perByte - b0));
    uint8_t *row = reinterpret_cast<uint8_t *>(tlsRow.get((K + 3) / 4));
    float *zs = tlsBlock.get(J);
    float *scratch =
        wr.inPlace() ? nullptr : tlsWeight.get((n1 - n0) * kc);
    for (int64_t k0 = 0; k0 < K; k0 += kc) {
      const int64_t kw = std::min(kc, K - k0), j0 = k0 / G;
      const int64_t jw = (kw + G - 1) / G;
      int64_t ld = 0;
      const float *wb = wr.block(n0, n1 - n0, k0, kw, scratch, ld);
      for (int64_t n = n0; n < n1; ++n) {
        for (int64_t j = 0; j < jw; ++j)
          zs[j] = zeroOf(bits, zeros, n * J + j0 + j);
        quantizeRow(wb + (n - n0) * ld, kw, G, jw, scales + n * J + j0, zs,
                    qmax, row);
        packRow(bits, perByte, row, kw, n * K + k0, codes);
      }
    }
  });
}

} // namespace

extern "C" {

QSLAW_RT_API void qslaw_qmatmul_f32(int bits, const float *x, int64_t M,
                                    int64_t K, int64_t ldx,
                                    const uint8_t *codes, const float *scales,
                                    const uint8_t *zeros, const float *bias,
                                    float *y, int64_t ldy, int64_t N,
                                    int64_t G, int num_threads) {
  if (M <= 0 || N <= 0)
    return;
  const DequantFn dequant = dequantFor(bits);
  const Operands p{codes, scales, zeros, K, G, (K + G - 1) / G};
  forEachBlock(N, kBlockFloats / std::max<int64_t>(K, 1),
               resolveThreads(num_threads),
               [&](int64_t n0, int64_t nb, int gemmThreads) {
    float *w = tlsBlock.get(nb * K);
    for (int64_t r = 0; r < nb; ++r)
      dequant(p, n0 + r, 0, K, w + r * K);
    if (bias)
      for (int64_t m = 0; m < M; ++m)
        std::memcpy(y + m * ldy + n0, bias + n0, size_t(nb) * sizeof(float));
    qslaw_sgemm_f32_batched(1, M, nb, K, x, ldx, 0, 0, w, K, 0, /*transB=*/1,
                            bias ? 1.f : 0.f, y + n0, ldy, 0, gemmThreads);
  });
}

QSLAW_RT_API void qslaw_qmatmul_grad_input_f32(
    int bits, const float *dy, int64_t M, int64_t N, int64_t lddy,
    const uint8_t *codes, const float *scales, const uint8_t *zeros,
    float *dx, int64_t lddx, int64_t K, int64_t G, int num_threads) {
  if (M <= 0 || K <= 0)
    return;
  const DequantFn dequant = dequantFor(bits);
  const Operands p{codes, scales, zeros, K, G, (K + G - 1) / G};
  const int threads = resolveThreads(num_threads);
  auto gemmRows = [&](const float *dyr, int64_t Mr, int64_t lddyr, float *dxr,
                      int64_t lddxr) {
    if (Mr == 0)
      return;
    forEachBlock(K, kBlockFloats / std::max<int64_t>(N, 1), threads,
                 [&](int64_t k0, int64_t kw, int gemmThreads) {
      float *w = tlsBlock.get(N * kw); // What[:, k0 : k0 + kw], ld kw
      for (int64_t n = 0; n < N; ++n)
        dequant(p, n, k0, kw, w + n * kw);
      qslaw_sgemm_f32_batched(1, Mr, kw, N, dyr, lddyr, 0, 0, w, kw, 0, 0,
                              0.f, dxr + k0, lddxr, 0, gemmThreads);
    });
  };
  const ActiveRows a = activeRows(dy, M, N, lddy);
  if (!worthSkipping(a, M))
    return gemmRows(dy, M, lddy, dx, lddx);
  // dX's rows of a zero dy row are zero (the gaps between the ascending
  // nonzero rows); the others come from the nonzero rows.
  auto zeroRows = [&](int64_t begin, int64_t end) {
    for (int64_t m = begin; m < end; ++m)
      std::memset(dx + m * lddx, 0, size_t(K) * sizeof(float));
  };
  int64_t next = 0;
  for (int64_t m : a.rows) {
    zeroRows(next, m);
    next = m + 1;
  }
  zeroRows(next, M);
  if (a.contiguous() || a.rows.empty()) {
    const int64_t first = a.rows.empty() ? 0 : a.rows.front();
    return gemmRows(dy + first * lddy, int64_t(a.rows.size()), lddy,
                    dx + first * lddx, lddx);
  }
  const std::vector<float> gdy = gatherRows(dy, lddy, N, a.rows);
  std::vector<float> gdx(a.rows.size() * size_t(K));
  gemmRows(gdy.data(), int64_t(a.rows.size()), N, gdx.data(), K);
  for (size_t i = 0; i < a.rows.size(); ++i)
    std::memcpy(dx + a.rows[i] * lddx, gdx.data() + i * K,
                size_t(K) * sizeof(float));
}

QSLAW_RT_API void qslaw_qmatmul_grad_scale_f32(
    int bits, const float *x, int64_t M, int64_t K, int64_t ldx,
    const float *dy, int64_t N, int64_t lddy, const uint8_t *codes,
    const uint8_t *zeros, float *ds, int64_t G, int num_threads) {
  if (N <= 0 || K <= 0)
    return;
  const DequantFn dequant = dequantFor(bits);
  const Operands p{codes, nullptr, zeros, K, G, (K + G - 1) / G};
  std::vector<float> gx, gdy;
  const Tokens tk = activeTokens({x, dy, M, ldx, lddy}, K, N, gx, gdy);
  forEachBlock(N, kBlockFloats / K, resolveThreads(num_threads),
               [&](int64_t n0, int64_t nb, int gemmThreads) {
    float *t = tlsBlock.get(nb * K), *qz = tlsRow.get(K);
    tokenGemm(tk.x, tk.M, K, tk.ldx, tk.dy, tk.lddy, n0, nb, t, gemmThreads);
    for (int64_t r = 0; r < nb; ++r) { // epilogue: group sums of (q - z) T
      const int64_t n = n0 + r;
      dequant(p, n, 0, K, qz);
      const float *tr = t + r * K;
      for (int64_t j = 0; j < p.J; ++j) {
        const int64_t k1 = std::min(K, (j + 1) * G);
        ds[n * p.J + j] = dot(qz + j * G, tr + j * G, k1 - j * G);
      }
    }
  });
}

QSLAW_RT_API void qslaw_qmatmul_grad_gamma_f32(
    int bits, const float *x, int64_t M, int64_t K, int64_t ldx,
    const float *dy, int64_t N, int64_t lddy, const float *w,
    int64_t w_stride_n, int64_t w_stride_k, const float *scales,
    const float *gamma, const uint8_t *zeros, float *dgamma, int64_t G,
    int num_threads) {
  if (N <= 0 || K <= 0)
    return;
  dequantFor(bits); // validates bits
  gradGamma(bits, x, M, K, ldx, dy, N, lddy,
            WeightRows("qmatmul_grad_gamma", WeightType::F32, w, w_stride_n,
                       w_stride_k, N, K),
            scales, gamma, zeros, dgamma, G, num_threads);
}

QSLAW_RT_API void qslaw_qmatmul_grad_gamma_f32_w16(
    int bits, const float *x, int64_t M, int64_t K, int64_t ldx,
    const float *dy, int64_t N, int64_t lddy, int w_type, const uint16_t *w,
    int64_t w_stride_n, int64_t w_stride_k, const float *scales,
    const float *gamma, const uint8_t *zeros, float *dgamma, int64_t G,
    int num_threads) {
  if (N <= 0 || K <= 0)
    return;
  dequantFor(bits); // validates bits
  gradGamma(bits, x, M, K, ldx, dy, N, lddy,
            WeightRows("qmatmul_grad_gamma", weight16(w_type), w, w_stride_n,
                       w_stride_k, N, K),
            scales, gamma, zeros, dgamma, G, num_threads);
}

QSLAW_RT_API void qslaw_quantize_f32(int bits, const float *w,
                                     int64_t w_stride_n, int64_t w_stride_k,
                                     int64_t N, int64_t K, const float *scales,
                                     const uint8_t *zeros, uint8_t *codes,
                                     int64_t G, int num_threads) {
  dequantFor(bits); // validates bits
  quantize(bits,
           WeightRows("quantize", WeightType::F32, w, w_stride_n, w_stride_k,
                      N, K),
           N, K, scales, zeros, codes, G, num_threads);
}

QSLAW_RT_API void qslaw_quantize_f32_w16(int bits, int w_type,
                                         const uint16_t *w, int64_t w_stride_n,
                                         int64_t w_stride_k, int64_t N,
                                         int64_t K, const float *scales,
                                         const uint8_t *zeros, uint8_t *codes,
                                         int64_t G, int num_threads) {
  dequantFor(bits); // validates bits
  quantize(bits,
           WeightRows("quantize", weight16(w_type), w, w_stride_n, w_stride_k,
                      N, K),
           N, K, scales, zeros, codes, G, num_threads);
}

} // extern "C"
