//===- QMatmulW4GradHopper.cu - fused ∂s / ∂γ on Hopper tensor cores ------===//
//
// The wgmma form of w4GradGroup (QMatmulW4Bwd.cu): one block per 128 (n) x
// 128 (k) tile of Gw = dYᵀ·X, reduced over all T tokens on the tensor cores,
// then weighted and group-reduced in registers; the [N, K] gradient is never
// stored. At T = 4096 the mma.sync kernel reaches 37-47 % of the cuBLAS
// dYᵀX GEMM on H100 (docs/CUDA.md, run 4), which issues wgmma.
//
// Both operands have the token index as their reduction (K) dimension and
// it is the row index in memory, so both are M/N-major for wgmma
// (imm-trans = 1): dY [T, N] gives A = dYᵀ (64 n rows per warpgroup), X
// [T, K] gives B (128 k columns). A 64-token chunk of each is stored as two
// [64 t][64 columns] swizzled blocks (8 KB apart: the descriptors' LBO);
// a k16 step is 16 token rows, 2 KB.
//
// Pipeline per 64-token chunk c (2 warpgroups, 256 threads): wait for chunk
// c's copies, fence them to the async proxy, barrier, start the copies of
// chunk c + 2 into the slot chunk c - 2 used (its MMAs are done: every
// warpgroup waited for them before the barrier), issue 4 MMAs, wait until
// only these are in flight.
//
// Epilogue: the accumulator row n (64 per warpgroup) holds columns 8j + 2t
// + {0,1} in lane (g, t) of its quad, so a group's sum is a per-thread sum
// over its j's plus a quad shuffle; each (n, group) is written by one lane,
// no atomics, no shared memory.
//
// Not the default: it has not run on a GPU. qslaw_w4_grad_scale_ex /
// _grad_gamma_ex select it (QSLAW_W4_GRAD_WGMMA), AUTO only under the
// policy of qslaw_w4_set_auto_wgmma; the bench times it.
//
//===----------------------------------------------------------------------===//
#include "QMatmulW4Hopper.cuh"
#include "Wgmma.cuh"

#include "qslaw/CUDA/QMatmulKernels.h"

namespace qslaw {
namespace cuda {
namespace {

constexpr int kHBN = 128, kHBK = 128, kHBT = 64, kHStages = 4;
constexpr int kHTile = kHBT * 2 * kRowBytes;     // one operand, one slot
constexpr int kHSmem = kHStages * 2 * kHTile + 1024; // + alignment slack

template <class TT, bool GAMMA>
__global__ void __launch_bounds__(256, 1)
    w4GradGroupWgmma(const typename TT::T *__restrict__ DY,
                     const typename TT::T *__restrict__ X,
                     const uint32_t *__restrict__ QW,
                     const typename TT::T *__restrict__ W,
                     const float *__restrict__ S, const float *__restrict__ Z,
                     const float *__restrict__ GAM, float *__restrict__ OUT,
                     int T_, int N, int K, int G, int qmax) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using T = typename TT::T;
  using T2 = typename TT::T2;
  constexpr int D = kHStages - 2;

  extern __shared__ uint8_t smemRaw[];
  const uint32_t raw0 = smemAddr(smemRaw);
  uint8_t *base = smemRaw + (((raw0 + 1023) & ~1023u) - raw0);
  const uint32_t base0 = smemAddr(base);
  // slot s: dY tile at base + 2s·kHTile, X tile right after it.

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int wg = warp >> 2;
  const int n0 = blockIdx.y * kHBN, k0 = blockIdx.x * kHBK;
  const int NIT = (T_ + kHBT - 1) / kHBT;

  // 16-byte unit i of a [64 t][128 columns] chunk: token i / 16, columns
  // 8·(i % 16) ..; block (i % 16) / 8 of the two 64-column blocks.
  auto load = [&](int slot, int it) {
    uint8_t *dd = base + 2 * slot * kHTile;
    uint8_t *dx = dd + kHTile;
#pragma unroll
    for (int i = tid; i < kHBT * 16; i += 256) {
      const int r = i >> 4, cu = i & 15, tk = it * kHBT + r;
      const uint32_t off = (cu >> 3) * (kHBT * kRowBytes) + swizzled(r, cu & 7);
      const int n = n0 + cu * 8, k = k0 + cu * 8;
      const bool okn = tk < T_ && n < N, okk = tk < T_ && k < K;
      cpAsync16(dd + off, DY + (okn ? (size_t)tk * N + n : 0), okn);
      cpAsync16(dx + off, X + (okk ? (size_t)tk * K + k : 0), okk);
    }
  };

  float acc[kHBK / 2];
#pragma unroll
  for (int i = 0; i < kHBK / 2; ++i)
    acc[i] = 0.f;

#pragma unroll
  for (int d = 0; d < D; ++d) {
    if (d < NIT)
      load(d, d);
    cpAsyncCommit();
  }
  for (int it = 0; it < NIT; ++it) {
    cpAsyncWait<D - 1>();
    fenceProxyAsyncShared();
    __syncthreads(); // chunk it landed; every MMA of chunk it - 2 is done
    if (it + D < NIT)
      load((it + D) % kHStages, it + D);
    cpAsyncCommit();
    const uint32_t da = base0 + 2 * (it % kHStages) * kHTile;
    const uint32_t a = da + wg * (kHBT * kRowBytes); // this warpgroup's 64 n
    const uint32_t b = da + kHTile;
    fenceRegs(acc);
    wgmmaFence();
#pragma unroll
    for (int s = 0; s < kHBT / 16; ++s)
      wgmmaSS<TT, kHBK, 1, 1>(acc, sw128Desc(a + s * 16 * kRowBytes, 8192),
                              sw128Desc(b + s * 16 * kRowBytes, 8192));
    wgmmaCommit();
    wgmmaWait<1>();
    fenceRegs(acc);
  }
  wgmmaWait<0>();
  fenceRegs(acc);

  // acc[4j + 2hh + e]: row 16·(warp % 4) + g + 8hh of this warpgroup's 64,
  // column 8j + 2t + e. j is unrolled so acc stays in registers; a group
  // (G / 8 consecutive j) ends where 8(j + 1) is a multiple of G, the same
  // for every lane, so the quad shuffles there are uniform.
  const int g = lane >> 2, t = lane & 3;
  const int J = K / G, KC = K >> 6;
#pragma unroll
  for (int hh = 0; hh < 2; ++hh) {
    const int n = n0 + wg * 64 + (warp & 3) * 16 + g + 8 * hh;
    const bool okn = n < N;
    // Gather every operand first: independent loads, all in flight.
    uint32_t ew[kHBK / 8];
    float ez[kHBK / 8], esg[kHBK / 8];
#pragma unroll
    for (int j = 0; j < kHBK / 8; ++j) {
      const int k = k0 + 8 * j + 2 * t;
      const bool ok = okn && k < K;
      const size_t sz = ok ? (size_t)n * J + k / G : 0;
      ez[j] = ok ? __ldg(Z + sz) : 0.f;
      esg[j] = GAMMA && ok ? __ldg(S + sz) * __ldg(GAM + sz) : 1.f;
      uint32_t wv = 0;
      if (ok) {
        if (!GAMMA) {
          const int rr = n & 15, kc = k & 63;
          const size_t word =
              ((((size_t)(n >> 4) * KC + (k >> 6)) * 32) + (rr & 7) * 4 +
               (kc >> 4)) * 4 + (rr >> 3) * 2 + ((kc & 15) >> 3);
          wv = __ldg(QW + word);
        } else {
          wv = __ldg(
              reinterpret_cast<const unsigned int *>(W + (size_t)n * K + k));
        }
      }
      ew[j] = wv;
    }
    float v = 0.f;
#pragma unroll
    for (int j = 0; j < kHBK / 8; ++j) {
      const float g0 = acc[4 * j + 2 * hh], g1 = acc[4 * j + 2 * hh + 1];
      if (!GAMMA) {
        // k = 8j + 2t: nibbles t and t + 4 of the packed word.
        const float q0 = (float)((ew[j] >> (4 * t)) & 15u);
        const float q1 = (float)((ew[j] >> (4 * (t + 4))) & 15u);
        v += g0 * (q0 - ez[j]) + g1 * (q1 - ez[j]);
      } else {
        const float2 w2 = TT::unpack(fromU32<T2>(ew[j]));
        const float r0 = rintf(__fdiv_rn(w2.x, esg[j])) + ez[j];
        const float r1 = rintf(__fdiv_rn(w2.y, esg[j])) + ez[j];
        const float m0 = (r0 >= 0.f && r0 <= (float)qmax) ? 1.f : 0.f;
        const float m1 = (r1 >= 0.f && r1 <= (float)qmax) ? 1.f : 0.f;
        v += m0 * w2.x * g0 + m1 * w2.y * g1;
      }
      if ((8 * (j + 1)) % G == 0) {
        v += __shfl_xor_sync(0xffffffffu, v, 1);
        v += __shfl_xor_sync(0xffffffffu, v, 2);
        const int kg = k0 + 8 * (j + 1) - G; // the group's first column
        if (t == 0 && okn && kg < K) {
          const size_t o = (size_t)n * J + kg / G;
          if (GAMMA) {
            const float gm = __ldg(GAM + o);
            v = -v / (gm * gm);
          }
          OUT[o] = v;
        }
        v = 0.f;
      }
    }
  }
#else
  __trap(); // sm_90a only; the host never launches it elsewhere
#endif
}

template <class TT, bool GAMMA>
int launch(const void *dy, const void *x, const uint32_t *qw, const void *w,
           const float *s, const float *z, const float *gam, float *out,
           int T, int N, int K, int G, int qmax, cudaStream_t st) {
  using E = typename TT::T;
  constexpr auto kern = w4GradGroupWgmma<TT, GAMMA>;
  if (!allowDynamicSmem<kern>(kHSmem))
    return QSLAW_CUDA_ELAUNCH;
  kern<<<dim3(ceilDiv(K, kHBK), ceilDiv(N, kHBN)), 256, kHSmem, st>>>(
      static_cast<const E *>(dy), static_cast<const E *>(x), qw,
      static_cast<const E *>(w), s, z, gam, out, T, N, K, G, qmax);
  return cudaGetLastError() == cudaSuccess ? QSLAW_CUDA_OK
                                           : QSLAW_CUDA_ELAUNCH;
}

} // namespace

int gradGroupWgmma(bool gamma, bool bf16, const void *dy, const void *x,
                   const uint32_t *qw, const void *w, const float *s,
                   const float *z, const float *gam, float *out, int T, int N,
                   int K, int G, int qmax, cudaStream_t st) {
  bool ok = false;
  if (!isSm90(&ok))
    return ok ? QSLAW_CUDA_EINVAL : QSLAW_CUDA_ELAUNCH;
  if (bf16)
    return gamma ? launch<Bf16Traits, true>(dy, x, qw, w, s, z, gam, out, T, N,
                                            K, G, qmax, st)
                 : launch<Bf16Traits, false>(dy, x, qw, w, s, z, gam, out, T,
                                             N, K, G, qmax, st);
  return gamma ? launch<Fp16Traits, true>(dy, x, qw, w, s, z, gam, out, T, N,
                                          K, G, qmax, st)
               : launch<Fp16Traits, false>(dy, x, qw, w, s, z, gam, out, T, N,
                                           K, G, qmax, st);
}

} // namespace cuda
} // namespace qslaw
