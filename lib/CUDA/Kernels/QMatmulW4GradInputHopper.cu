//===- QMatmulW4GradInputHopper.cu - w4 ∂X on Hopper tensor cores ---------===//
//
// Large-M input gradient for sm_90a: dX[M,K] = dY[M,N] · Ŵ with both wgmma
// operands in shared memory. The mma.sync ∂X reaches 0.33-0.44x cuBLAS for
// M >= 1024 on H100 (docs/CUDA.md, run 4), the same limit as the forward.
//
// The reduction runs over N, so the weight's natural [n][k] order is
// M/N-major for this product: the tile the forward kernel dequantises (rows
// n, 64 k per 128-byte swizzled row) is used here as is, with imm-trans-b =
// 1. A 64-row chunk of n holds BK / 64 such [64 n][64 k] blocks, 8 KB apart
// (the B descriptor's LBO); a k16 step is 16 rows of n, 2 KB. dY is K-major
// (n contiguous), like X in the forward.
//
// Block: WG warpgroups (BM = 64·WG rows of dY), BK output columns. Per
// 64-row chunk c of n, every thread of the block:
//   1. waits for chunk c's raw data (cp.async ring: dY tile, fragment-ordered
//      packed weight of 4 n-tiles x BK / 64 k-chunks, scales, zero points),
//   2. starts the copies of chunk c + STAGES - 2,
//   3. dequantises its part of the weight into Wdq[c % 2],
//   4. after a barrier, its warpgroup issues 4 wgmma m64nBKk16, commits and
//      waits until only these are in flight,
// the same pipeline as w4FwdWgmma (QMatmulW4FwdHopper.cu).
//
// Rows n >= N contribute nothing: their dY columns load as zeros and their
// scales as zeros (so the dequantised weight there is 0, not garbage).
//
// Not the default: it has not run on a GPU. qslaw_w4_grad_input_split
// selects it (QSLAW_W4_GRAD_WGMMA), AUTO only under the policy of
// qslaw_w4_set_auto_wgmma; the bench times it.
//
//===----------------------------------------------------------------------===//
#include "QMatmulW4Hopper.cuh"
#include "Wgmma.cuh"

#include "qslaw/CUDA/QMatmulKernels.h"

namespace qslaw {
namespace cuda {

namespace {

template <int WG, int BK, int STAGES> struct DxHopperLayout {
  static constexpr int BM = 64 * WG;
  static constexpr int KB = BK / 64;                 // k-chunks per tile
  static constexpr int MAXG = BK / 32;               // groups per row, G = 32
  static constexpr int DY_BYTES = BM * kRowBytes;    // per slot
  static constexpr int WDQ_BYTES = KB * 64 * kRowBytes; // per buffer (2)
  static constexpr int RAW = 4 * KB * 32;            // uint4 per slot
  static constexpr int SZ_FLOATS = 2 * MAXG * 64;    // per slot
  static constexpr int DY_OFF = 0;
  static constexpr int WDQ_OFF = DY_OFF + STAGES * DY_BYTES;
  static constexpr int RAW_OFF = WDQ_OFF + 2 * WDQ_BYTES;
  static constexpr int SZ_OFF = RAW_OFF + STAGES * RAW * 16;
  // + 1024 so the base can be aligned up inside the allocation.
  static constexpr int SMEM = SZ_OFF + STAGES * SZ_FLOATS * 4 + 1024;
  static_assert(DY_BYTES % 1024 == 0 && WDQ_BYTES % 1024 == 0,
                "swizzled tiles need 1024-byte aligned bases");
};

template <class TT, int WG, int BK, int STAGES>
__global__ void __launch_bounds__(WG * 128, 1)
    w4GradInputWgmma(const typename TT::T *__restrict__ DY,
                     const uint4 *__restrict__ QW, const float *__restrict__ S,
                     const float *__restrict__ Z,
                     typename TT::T *__restrict__ DX, int M, int N, int K,
                     int G) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using L = DxHopperLayout<WG, BK, STAGES>;
  using T = typename TT::T;
  using T2 = typename TT::T2;
  constexpr int BM = L::BM, KB = L::KB, THREADS = WG * 128;
  constexpr int D = STAGES - 2; // copy distance in chunks
  static_assert(D >= 1, "need at least 3 stages");

  extern __shared__ uint8_t smemRaw[];
  const uint32_t raw0 = smemAddr(smemRaw);
  uint8_t *base = smemRaw + (((raw0 + 1023) & ~1023u) - raw0);
  const uint32_t base0 = smemAddr(base);
  float *sSZ = reinterpret_cast<float *>(base + L::SZ_OFF);
  uint4 *sRaw = reinterpret_cast<uint4 *>(base + L::RAW_OFF);

  const int tid = threadIdx.x, wg = tid >> 7;
  const int m0 = blockIdx.y * BM, k0 = blockIdx.x * BK;
  const int KC = K >> 6, J = K / G, NTILES = (N + 15) >> 4;
  const int NC = (N + 63) >> 6;
  const int gpt = BK / G; // groups per row in this tile (k0 % G == 0)

  auto load = [&](int slot, int c) {
    uint8_t *dd = base + L::DY_OFF + slot * L::DY_BYTES;
    for (int i = tid; i < BM * 8; i += THREADS) {
      const int r = i >> 3, u = i & 7, gm = m0 + r, n = c * 64 + u * 8;
      const bool ok = gm < M && n < N; // N % 8 == 0: whole 16-byte units
      cpAsync16(dd + swizzled(r, u), DY + (ok ? (size_t)gm * N + n : 0), ok);
    }
    uint4 *dw = sRaw + slot * L::RAW;
    for (int i = tid; i < L::RAW; i += THREADS) {
      const int q = i >> 5, ln = i & 31, tl = q / KB, kb = q % KB;
      const int ntile = c * 4 + tl, kc = (k0 >> 6) + kb;
      const bool ok = ntile < NTILES && kc < KC;
      cpAsync16(dw + i, QW + (ok ? ((size_t)ntile * KC + kc) * 32 + ln : 0),
                ok);
    }
    float *ds = sSZ + slot * L::SZ_FLOATS;
    for (int i = tid; i < 2 * gpt * 64; i += THREADS) {
      const int r = i & 63, q = i >> 6, gi = q % gpt, isz = q / gpt;
      const int n = c * 64 + r, j = k0 / G + gi;
      const bool ok = n < N && j < J;
      cpAsync4(ds + (isz * L::MAXG + gi) * 64 + r,
               (isz ? Z : S) + (ok ? (size_t)n * J + j : 0), ok);
    }
  };

  // Packed word (row-half hh, column-half kh) of lane (g, t) in n-tile tl,
  // k-chunk kb holds row 16·tl + 8·hh + g of the chunk at columns 64·kb +
  // 16t + 8kh .. +7 (see QMatmulW4FwdHopper.cu): 16-byte unit 2t + kh of
  // that row in block kb.
  auto dequantize = [&](int slot, int buf) {
    const uint4 *rw = sRaw + slot * L::RAW;
    const float *sz = sSZ + slot * L::SZ_FLOATS;
    uint8_t *dw = base + L::WDQ_OFF + buf * L::WDQ_BYTES;
    for (int i = tid; i < L::RAW; i += THREADS) {
      const int q = i >> 5, ln = i & 31, tl = q / KB, kb = q % KB;
      const int g = ln >> 2, t = ln & 3;
      const int gi = (kb * 64 + 16 * t) / G; // G >= 32: kh stays in it
      const uint4 pw = rw[i];
      const uint32_t words[4] = {pw.x, pw.y, pw.z, pw.w};
#pragma unroll
      for (int hh = 0; hh < 2; ++hh) {
        const int r = tl * 16 + hh * 8 + g;
        const float sv = sz[gi * 64 + r], zv = sz[(L::MAXG + gi) * 64 + r];
        const T2 s2 = TT::splat(sv), n2 = TT::splat(-zv * sv);
#pragma unroll
        for (int kh = 0; kh < 2; ++kh) {
          uint4 v;
          dequant8<TT>(words[2 * hh + kh], s2, n2,
                       reinterpret_cast<uint32_t *>(&v));
          *reinterpret_cast<uint4 *>(dw + kb * 64 * kRowBytes +
                                     swizzled(r, 2 * t + kh)) = v;
        }
      }
    }
  };

  float acc[BK / 2];
#pragma unroll
  for (int i = 0; i < BK / 2; ++i)
    acc[i] = 0.f;

#pragma unroll
  for (int d = 0; d < D; ++d) {
    if (d < NC)
      load(d, d);
    cpAsyncCommit();
  }

  // N >= 1: at least one chunk (see the same assumption in the forward:
  // without it ptxas serialises the MMAs).
  __builtin_assume(NC >= 1);
  for (int c = 0; c < NC; ++c) {
    cpAsyncWait<D - 1>();
    __syncthreads(); // chunk c landed; every MMA of chunk c - 2 is done
    if (c + D < NC)
      load((c + D) % STAGES, c + D);
    cpAsyncCommit();
    dequantize(c % STAGES, c & 1);
    fenceProxyAsyncShared(); // cp.async and st.shared -> wgmma's proxy
    __syncthreads();

    const uint32_t da =
        base0 + L::DY_OFF + (c % STAGES) * L::DY_BYTES + wg * 64 * kRowBytes;
    const uint32_t wa = base0 + L::WDQ_OFF + (c & 1) * L::WDQ_BYTES;
    fenceRegs(acc);
    wgmmaFence();
#pragma unroll
    for (int s = 0; s < 4; ++s)
      wgmmaSS<TT, BK, 0, 1>(
          acc, sw128Desc(da + 32 * s),
          sw128Desc(wa + s * 16 * kRowBytes, 64 * kRowBytes));
    wgmmaCommit();
    wgmmaWait<1>();
    fenceRegs(acc);
  }
  wgmmaWait<0>();
  fenceRegs(acc);
  storeAccTile<TT, BK>(acc, DX, M, K, m0 + wg * 64, k0);
#else
  __trap(); // sm_90a only; the host never launches it elsewhere
#endif
}

template <class TT, int WG, int BK, int STAGES>
int launch(const void *dy, const uint32_t *qw, const float *s, const float *z,
           void *dx, int M, int N, int K, int G, cudaStream_t st) {
  using L = DxHopperLayout<WG, BK, STAGES>;
  return launchPackedKernel<TT, w4GradInputWgmma<TT, WG, BK, STAGES>>(
      dim3(ceilDiv(K, BK), ceilDiv(M, L::BM)), WG * 128, L::SMEM, dy, qw, s,
      z, dx, M, N, K, G, st);
}

// 128 x 256 tiles when they fill the SMs (one block per SM: 177 KB of
// shared memory), else 128 x 128 for twice the blocks. K % 64 == 0 only,
// so a 128-column tile may cover one k-chunk past K (loaded as zeros, not
// stored).
template <class TT>
int gradInputWgmmaT(const void *dy, const uint32_t *qw, const float *s,
                    const float *z, void *dx, int M, int N, int K, int G,
                    cudaStream_t st) {
  int sms = 132, major = 0;
  if (!deviceInfo(&sms, &major))
    return QSLAW_CUDA_ELAUNCH;
  if ((long)ceilDiv(K, 256) * ceilDiv(M, 128) >= sms)
    return launch<TT, 2, 256, 4>(dy, qw, s, z, dx, M, N, K, G, st);
  return launch<TT, 2, 128, 5>(dy, qw, s, z, dx, M, N, K, G, st);
}

} // namespace

int gradInputWgmma(bool bf16, const void *dy, const uint32_t *qw,
                   const float *s, const float *z, void *dx, int M, int N,
                   int K, int G, cudaStream_t st) {
  bool ok = false;
  if (!isSm90(&ok))
    return ok ? QSLAW_CUDA_EINVAL : QSLAW_CUDA_ELAUNCH;
  return bf16 ? gradInputWgmmaT<Bf16Traits>(dy, qw, s, z, dx, M, N, K, G, st)
              : gradInputWgmmaT<Fp16Traits>(dy, qw, s, z, dx, M, N, K, G, st);
}

} // namespace cuda
} // namespace qslaw
