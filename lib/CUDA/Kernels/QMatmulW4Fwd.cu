//===- QMatmulW4Fwd.cu - fused-dequant w4 forward (Y = X · Ŵᵀ) ------------===//
//
// Two paths (see docs/CUDA.md):
//   * GEMV path, M <= 16: "swap AB" -- the packed weight tile is the A
//     operand (16 rows of N per mma), the <= 16 tokens are the B operand
//     (n8 per token tile). Every weight byte is read exactly once with one
//     128-bit streaming load per lane per 16x64 tile chunk; one block per
//     16-row tile, its warps split K and reduce through shared memory.
//   * Tensor-core tile path, M > 16: BMxBN block tiles, BK = 64 per stage,
//     cp.async multi-stage pipeline for X and the packed weights, weights
//     dequantised in registers straight into mma B fragments.
//
//===----------------------------------------------------------------------===//

#include "QMatmulW4Common.cuh"
#include "QMatmulW4Hopper.cuh"
#include "qslaw/CUDA/QMatmulKernels.h"

#include <type_traits>

namespace qslaw {
namespace cuda {

//===----------------------------------------------------------------------===//
// Small-M path
//===----------------------------------------------------------------------===//

// One block per 16-row tile of N; its W warps split the K chunks into
// contiguous ranges. Each warp keeps a ring of U independent 128-bit weight
// loads in flight: slot u is dequantised, then immediately refilled with the
// chunk U ahead (same registers, so no move waits on a pending load), then
// its mma work runs. W is chosen on the host so that all blocks are resident
// in one wave (tiles * W warps spread over every SM). A variant with the
// ring in shared memory (cp.async, 8 chunks per warp) measured 2-25 %
// slower on H100 (docs/CUDA.md).
template <class TT, int NT, int W, int U, int MAXREG>
__global__ void __maxnreg__(MAXREG)
    w4FwdGemv(const typename TT::T *__restrict__ X,
              const uint4 *__restrict__ QW, const float *__restrict__ S,
              const float *__restrict__ Z, typename TT::T *__restrict__ Y,
              int M, int N, int K, int G) {
  using T = typename TT::T;
  using T2 = typename TT::T2;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int nt = blockIdx.x;
  const int KC = K >> 6, J = K / G;
  const int cb = (warp * KC) / W, ce = ((warp + 1) * KC) / W;
  const int nc = ce - cb;
  const uint4 *qp = QW + ((size_t)nt * KC + cb) * 32 + lane;
  // The ring is filled before anything else, so the scale staging below
  // overlaps the DRAM latency.
  uint4 ring[U];
#pragma unroll
  for (int u = 0; u < U; ++u)
    ring[u] = u < nc ? ldgStream(qp + (size_t)u * 32) : make_uint4(0, 0, 0, 0);

  // Stage this tile's scales as packed pairs (s, -z*s) in shared memory:
  // the 16 rows x J groups are one contiguous block of S and of Z.
  extern __shared__ uint32_t smemSZ[];
  const int JS = J | 1; // odd row stride: the 8 rows g hit distinct banks
  uint32_t *sS = smemSZ, *sNZ = smemSZ + 16 * JS;
  for (int i = threadIdx.x; i < 16 * J; i += W * 32) {
    const int r = i / J, jj = i - r * J, n = nt * 16 + r;
    float sv = 0.f, zv = 0.f;
    if (n < N) {
      sv = __ldg(S + (size_t)nt * 16 * J + i);
      zv = __ldg(Z + (size_t)nt * 16 * J + i);
    }
    sS[r * JS + jj] = asU32(TT::splat(sv));
    sNZ[r * JS + jj] = asU32(TT::splat(-zv * sv));
  }
  __syncthreads();

  float acc[NT][4];
#pragma unroll
  for (int i = 0; i < NT; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j)
      acc[i][j] = 0.f;

  // Token rows this lane feeds as B fragments (g and g+8).
  const T *xbase = X + 16 * t;
  int xoff[NT];
  bool xok[NT];
#pragma unroll
  for (int tt = 0; tt < NT; ++tt) {
    int tok = tt * 8 + g;
    xok[tt] = tok < M;
    xoff[tt] = (xok[tt] ? tok : 0) * K;
  }

  const int lgG = G == 32 ? 5 : G == 64 ? 6 : 7;
  for (int base = 0; base < nc; base += U) {
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int i = base + u;
      if (i >= nc)
        break; // uniform across the warp
      const int kb = (cb + i) * 64;
      const int j = (kb + 16 * t) >> lgG;
      uint4 xv[NT][2];
#pragma unroll
      for (int tt = 0; tt < NT; ++tt) {
        if (xok[tt]) {
          const T *xp = xbase + xoff[tt] + kb;
          xv[tt][0] = ldgNc(xp);
          xv[tt][1] = ldgNc(xp + 8);
        } else {
          xv[tt][0] = xv[tt][1] = make_uint4(0, 0, 0, 0);
        }
      }
      uint32_t dA[2][4], dB[2][4];
      const T2 s2a = fromU32<T2>(sS[g * JS + j]);
      const T2 n2a = fromU32<T2>(sNZ[g * JS + j]);
      const T2 s2b = fromU32<T2>(sS[(g + 8) * JS + j]);
      const T2 n2b = fromU32<T2>(sNZ[(g + 8) * JS + j]);
      dequant8<TT>(ring[u].x, s2a, n2a, dA[0]);
      dequant8<TT>(ring[u].y, s2a, n2a, dA[1]);
      dequant8<TT>(ring[u].z, s2b, n2b, dB[0]);
      dequant8<TT>(ring[u].w, s2b, n2b, dB[1]);
      // Refill the slot right away (same registers: no move waits on it).
      if (i + U < nc)
        ring[u] = ldgStream(qp + (size_t)(i + U) * 32);
#pragma unroll
      for (int s = 0; s < 4; ++s) {
        const int h = s >> 1, ss = s & 1;
        uint32_t a[4] = {dA[h][2 * ss], dB[h][2 * ss], dA[h][2 * ss + 1],
                         dB[h][2 * ss + 1]};
#pragma unroll
        for (int tt = 0; tt < NT; ++tt) {
          const uint32_t *xw = reinterpret_cast<const uint32_t *>(&xv[tt][0]);
          uint32_t b[2] = {xw[2 * s], xw[2 * s + 1]};
          mma16816<TT>(acc[tt], a, b);
        }
      }
    }
  }

  __shared__ float red[W][NT * 4][32];
#pragma unroll
  for (int tt = 0; tt < NT; ++tt)
#pragma unroll
    for (int i = 0; i < 4; ++i)
      red[warp][tt * 4 + i][lane] = acc[tt][i];
  __syncthreads();
  for (int idx = threadIdx.x; idx < NT * 4 * 32; idx += W * 32) {
    const int ln = idx & 31, ti = idx >> 5;
    const int tt = ti >> 2, i = ti & 3;
    float v = 0.f;
#pragma unroll
    for (int w = 0; w < W; ++w)
      v += red[w][ti][ln];
    const int tok = tt * 8 + 2 * (ln & 3) + (i & 1);
    const int n = nt * 16 + (ln >> 2) + (i >> 1) * 8;
    if (tok < M && n < N)
      Y[(size_t)tok * N + n] = TT::fromFloat(v);
  }
}

//===----------------------------------------------------------------------===//
// Tensor-core tile path
//===----------------------------------------------------------------------===//

constexpr int kXStride = 72; // 64 + 8 pad (elements): conflict-free LDS.128

// Per stage: X tile, packed weight tile, and the (s, z) of the stage's
// chunk for the BN rows: [s|z][group slot 0|1][BN] floats (slot 1 only for
// G = 32, where a 64-column chunk spans two groups).
template <int BM, int BN, int STAGES>
__host__ __device__ constexpr int fwdTcSmemBytes() {
  return STAGES * (BM * kXStride * 2 + (BN / 16) * 32 * 16 + 4 * BN * 4);
}

// SPLIT: the K chunks are split over the gridDim.z blocks of a (1,1,S)
// cluster; the partial tiles are summed through distributed shared memory.
template <class TT, int BM, int BN, int WM, int WN, int STAGES, int MINB,
          bool SPLIT>
__global__ void __launch_bounds__((BM / WM) * (BN / WN) * 32, MINB)
    w4FwdTc(const typename TT::T *__restrict__ X,
            const uint4 *__restrict__ QW, const float *__restrict__ S,
            const float *__restrict__ Z, typename TT::T *__restrict__ Y, int M,
            int N, int K, int G) {
  using T = typename TT::T;
  using T2 = typename TT::T2;
  constexpr int WARPS_N = BN / WN;
  constexpr int THREADS = (BM / WM) * WARPS_N * 32;
  constexpr int MT = WM / 16;  // m16 tiles per warp
  constexpr int NPT = WN / 16; // packed 16-row tiles per warp
  constexpr int XTILE = BM * kXStride;
  constexpr int WTILE = (BN / 16) * 32; // uint4 per stage
  constexpr int STILE = 4 * BN;         // floats per stage

  extern __shared__ uint4 smemRaw[];
  T *sX = reinterpret_cast<T *>(smemRaw);
  uint4 *sW = reinterpret_cast<uint4 *>(sX + STAGES * XTILE);
  float *sSZ = reinterpret_cast<float *>(sW + STAGES * WTILE);

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wm = warp / WARPS_N, wn = warp % WARPS_N;
  const int g = lane >> 2, t = lane & 3;
  const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
  const int KC = K >> 6, J = K / G;
  const int cb = SPLIT ? (int)((blockIdx.z * (long)KC) / gridDim.z) : 0;
  const int ce = SPLIT ? (int)(((blockIdx.z + 1) * (long)KC) / gridDim.z) : KC;
  const int NC = ce - cb;

  auto loadStage = [&](int st, int c) {
    T *dx = sX + st * XTILE;
#pragma unroll
    for (int i = tid; i < BM * 8; i += THREADS) {
      const int r = i >> 3, cc = i & 7, gm = m0 + r;
      const T *src = X + (size_t)(gm < M ? gm : M - 1) * K + c * 64 + cc * 8;
      cpAsync16(dx + r * kXStride + cc * 8, src, gm < M);
    }
    stageWeightChunk<BN, THREADS>(sW + st * WTILE, sSZ + st * STILE, QW, S, Z,
                                  tid, n0, c, N, KC, J, G);
  };

  float acc[MT][NPT * 2][4];
#pragma unroll
  for (int a = 0; a < MT; ++a)
#pragma unroll
    for (int b = 0; b < NPT * 2; ++b)
#pragma unroll
      for (int c = 0; c < 4; ++c)
        acc[a][b][c] = 0.f;

#pragma unroll
  for (int st = 0; st < STAGES - 1; ++st) {
    if (st < NC)
      loadStage(st, cb + st);
    cpAsyncCommit();
  }
  const int myslot = G == 32 ? (t >> 1) : 0;

  for (int li = 0; li < NC; ++li) {
    cpAsyncWait<STAGES - 2>();
    __syncthreads();
    {
      const int ln = li + STAGES - 1;
      if (ln < NC)
        loadStage(ln % STAGES, cb + ln);
      cpAsyncCommit();
    }
    const int st = li % STAGES;
    T2 s2[NPT][2], n2[NPT][2];
    {
      const float *ss = sSZ + st * STILE + myslot * BN + wn * WN + g;
#pragma unroll
      for (int i = 0; i < NPT; ++i)
#pragma unroll
        for (int hh = 0; hh < 2; ++hh) {
          const float sv = ss[i * 16 + hh * 8];
          const float zv = ss[2 * BN + i * 16 + hh * 8];
          s2[i][hh] = TT::splat(sv);
          n2[i][hh] = TT::splat(-zv * sv);
        }
    }
    const T *xs = sX + st * XTILE + (wm * WM + g) * kXStride + 16 * t;
    const uint4 *ws = sW + st * WTILE + (wn * NPT) * 32 + lane;
    uint4 pw[NPT];
#pragma unroll
    for (int i = 0; i < NPT; ++i)
      pw[i] = ws[i * 32];

#pragma unroll
    for (int h = 0; h < 2; ++h) {
      uint4 alo[MT], ahi[MT];
#pragma unroll
      for (int mi = 0; mi < MT; ++mi) {
        alo[mi] = *reinterpret_cast<const uint4 *>(xs + mi * 16 * kXStride +
                                                   8 * h);
        ahi[mi] = *reinterpret_cast<const uint4 *>(
            xs + (mi * 16 + 8) * kXStride + 8 * h);
      }
      uint32_t bq[NPT][2][4];
#pragma unroll
      for (int i = 0; i < NPT; ++i) {
        dequant8<TT>(h ? pw[i].y : pw[i].x, s2[i][0], n2[i][0], bq[i][0]);
        dequant8<TT>(h ? pw[i].w : pw[i].z, s2[i][1], n2[i][1], bq[i][1]);
      }
#pragma unroll
      for (int ss = 0; ss < 2; ++ss) {
#pragma unroll
        for (int mi = 0; mi < MT; ++mi) {
          const uint32_t *lo = reinterpret_cast<const uint32_t *>(&alo[mi]);
          const uint32_t *hi = reinterpret_cast<const uint32_t *>(&ahi[mi]);
          uint32_t a[4] = {lo[2 * ss], hi[2 * ss], lo[2 * ss + 1],
                           hi[2 * ss + 1]};
#pragma unroll
          for (int ni = 0; ni < NPT * 2; ++ni) {
            uint32_t b[2] = {bq[ni >> 1][ni & 1][2 * ss],
                             bq[ni >> 1][ni & 1][2 * ss + 1]};
            mma16816<TT>(acc[mi][ni], a, b);
          }
        }
      }
    }
  }
  cpAsyncWait<0>();

  // Epilogue: c0,c1 = (row g, cols 2t,2t+1); c2,c3 = (row g+8, ...).
  auto store = [&](int mi, int ni, int hh, float v0, float v1) {
    const int n = n0 + wn * WN + (ni >> 1) * 16 + (ni & 1) * 8 + 2 * t;
    const int m = m0 + wm * WM + mi * 16 + g + hh * 8;
    if (m >= M)
      return;
    T *yp = Y + (size_t)m * N + n;
    if (n + 1 < N) {
      *reinterpret_cast<T2 *>(yp) = TT::pack(v0, v1);
    } else if (n < N) {
      *yp = TT::fromFloat(v0);
    }
  };
  if constexpr (SPLIT) {
    constexpr int NP = MT * NPT * 2 * 2;
    static_assert(NP * THREADS * 8 <= fwdTcSmemBytes<BM, BN, STAGES>(),
                  "partial tile must fit in the pipeline's shared memory");
    __syncthreads(); // every warp is done with the pipeline buffers
    float2 v[NP];
#pragma unroll
    for (int mi = 0; mi < MT; ++mi)
#pragma unroll
      for (int ni = 0; ni < NPT * 2; ++ni)
#pragma unroll
        for (int hh = 0; hh < 2; ++hh)
          v[(mi * NPT * 2 + ni) * 2 + hh] =
              make_float2(acc[mi][ni][2 * hh], acc[mi][ni][2 * hh + 1]);
    clusterReducePairs<NP, THREADS>(
        v, reinterpret_cast<float2 *>(smemRaw), [&](int e, float2 r) {
          const int hh = e & 1, ni = (e >> 1) % (NPT * 2),
                    mi = (e >> 1) / (NPT * 2);
          store(mi, ni, hh, r.x, r.y);
        });
  } else {
#pragma unroll
    for (int mi = 0; mi < MT; ++mi)
#pragma unroll
      for (int ni = 0; ni < NPT * 2; ++ni)
#pragma unroll
        for (int hh = 0; hh < 2; ++hh)
          store(mi, ni, hh, acc[mi][ni][2 * hh], acc[mi][ni][2 * hh + 1]);
  }
}

//===----------------------------------------------------------------------===//
// Packing kernel (device-side equivalent of the Python pack_w4)
//===----------------------------------------------------------------------===//

__global__ void w4Pack(const uint8_t *__restrict__ codes,
                       uint32_t *__restrict__ qw, int N, int K) {
  const int KC = K >> 6, NTILES = (N + 15) >> 4;
  const size_t total = (size_t)NTILES * KC * 32 * 4;
  for (size_t idx = blockIdx.x * (size_t)blockDim.x + threadIdx.x; idx < total;
       idx += (size_t)gridDim.x * blockDim.x) {
    const int w = idx & 3, lane = (idx >> 2) & 31;
    const size_t tc = idx >> 7;
    const int c = tc % KC, nt = tc / KC;
    const int g = lane >> 2, t = lane & 3, h = w >> 1, half = w & 1;
    const int n = nt * 16 + h * 8 + g;
    const int kbase = c * 64 + 16 * t + 8 * half;
    uint32_t word = 0;
    if (n < N) {
#pragma unroll
      for (int kk = 0; kk < 8; ++kk) {
        const int p = kk >> 1, e = kk & 1;
        word |= (uint32_t)(codes[(size_t)n * K + kbase + kk] & 15u)
                << (4 * (p + 4 * e));
      }
    }
    qw[idx] = word;
  }
}

//===----------------------------------------------------------------------===//
// Host dispatch
//===----------------------------------------------------------------------===//

static bool validShape(int M, int N, int K, int G) {
  return M >= 1 && N >= 1 && K >= 64 && (G == 32 || G == 64 || G == 128) &&
         K % 64 == 0 && K % G == 0 && N % 8 == 0;
}

template <class TT, int NT, int W>
static int launchGemvW(const void *x, const uint32_t *qw, const float *s,
                       const float *z, void *y, int M, int N, int K, int G,
                       cudaStream_t st) {
  // 64 (80) registers per thread: 32 (24) resident warps per SM; a ring of
  // U = 4 chunks per warp in flight.
  constexpr int U = 4, MAXREG = NT == 1 ? 64 : 80;
  using T = typename TT::T;
  const int J = K / G;
  const size_t smem = (size_t)2 * 16 * (J | 1) * sizeof(uint32_t);
  auto kern = w4FwdGemv<TT, NT, W, U, MAXREG>;
  static size_t attr = 48 * 1024; // per instantiation
  if (smem > attr) {
    if (smem > 200 * 1024 ||
        cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             (int)smem) != cudaSuccess)
      return QSLAW_CUDA_EINVAL;
    attr = smem;
  }
  dim3 grid(ceilDiv(N, 16));
  kern<<<grid, W * 32, smem, st>>>(
      static_cast<const T *>(x), reinterpret_cast<const uint4 *>(qw), s, z,
      static_cast<T *>(y), M, N, K, G);
  return cudaGetLastError() == cudaSuccess ? QSLAW_CUDA_OK
                                           : QSLAW_CUDA_ELAUNCH;
}

// Warps per 16-row tile: as many as still keep every block resident in one
// wave (32 warps per SM), so all weight loads of the kernel are issued in the
// first microsecond and every warp streams the same number of chunks.
template <class TT, int NT>
static int launchGemv(const void *x, const uint32_t *qw, const float *s,
                      const float *z, void *y, int M, int N, int K, int G,
                      cudaStream_t st) {
  int sms = 132, major = 9;
  deviceInfo(&sms, &major);
  const long tiles = ceilDiv(N, 16);
  const int KC = K >> 6;
  const int warpsPerSM = NT == 1 ? 32 : 24; // register cap 64 / 80
  if (tiles <= (long)(warpsPerSM / 16) * sms && KC >= 32)
    return launchGemvW<TT, NT, 16>(x, qw, s, z, y, M, N, K, G, st);
  if (tiles <= (long)(warpsPerSM / 8) * sms && KC >= 16)
    return launchGemvW<TT, NT, 8>(x, qw, s, z, y, M, N, K, G, st);
  return launchGemvW<TT, NT, 4>(x, qw, s, z, y, M, N, K, G, st);
}

// split: 0 = automatic (cluster split-K on sm_90+ when the grid is smaller
// than one wave), 1 = none, 2/4/8 = forced (sm_90+ only).
template <class TT, int BM, int BN, int WM, int WN, int STAGES, int MINB = 1>
static int launchTc(const void *x, const uint32_t *qw, const float *s,
                    const float *z, void *y, int M, int N, int K, int G,
                    int split, cudaStream_t st) {
  using T = typename TT::T;
  constexpr int THREADS = (BM / WM) * (BN / WN) * 32;
  constexpr int SMEM = fwdTcSmemBytes<BM, BN, STAGES>();
  // The cluster reduction stages the partial tile in the pipeline's shared
  // memory; tiles whose accumulators do not fit there are never split.
  constexpr bool CAN_SPLIT = (BM * BN * 4) <= SMEM;
  auto kern = w4FwdTc<TT, BM, BN, WM, WN, STAGES, MINB, false>;
  auto kernS = w4FwdTc<TT, BM, BN, WM, WN, STAGES, MINB, CAN_SPLIT>;
  int sms = 132, major = 0;
  if (!deviceInfo(&sms, &major))
    return QSLAW_CUDA_ELAUNCH;
  static int slots[4] = {0, 0, 0, 0}; // per instantiation
  if (!slots[0]) {
    if (cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             SMEM) != cudaSuccess ||
        cudaFuncSetAttribute(kernS, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             SMEM) != cudaSuccess)
      return QSLAW_CUDA_ELAUNCH;
    splitSlots(kern, kernS, THREADS, SMEM, sms, major >= 9 && CAN_SPLIT,
               slots);
  }
  const int gx = ceilDiv(N, BN), gy = ceilDiv(M, BM);
  if (split == 0)
    split = major >= 9 && CAN_SPLIT
                ? pickSplit((long)gx * gy, slots, K >> 6, 8)
                : 1;
  if (split != 1 && split != 2 && split != 4 && split != 8)
    return QSLAW_CUDA_EINVAL;
  if (split > 1 && (major < 9 || !CAN_SPLIT || (K >> 6) < split))
    return QSLAW_CUDA_EINVAL;
  if (split == 1) {
    kern<<<dim3(gx, gy), THREADS, SMEM, st>>>(
        static_cast<const T *>(x), reinterpret_cast<const uint4 *>(qw), s, z,
        static_cast<T *>(y), M, N, K, G);
  } else {
    const T *xp = static_cast<const T *>(x);
    const uint4 *qp = reinterpret_cast<const uint4 *>(qw);
    T *yp = static_cast<T *>(y);
    if (launchCluster(kernS, gx, gy, split, THREADS, SMEM, st, xp, qp, s, z,
                      yp, M, N, K, G) != cudaSuccess)
      return QSLAW_CUDA_ELAUNCH;
  }
  return cudaGetLastError() == cudaSuccess ? QSLAW_CUDA_OK
                                           : QSLAW_CUDA_ELAUNCH;
}

template <class TT>
static int forwardT(const void *x, const uint32_t *qw, const float *s,
                    const float *z, void *y, int M, int N, int K, int G,
                    int path, int split, cudaStream_t st) {
  if (path == QSLAW_W4_PATH_AUTO) {
    if (M <= 16) {
      path = QSLAW_W4_PATH_GEMV;
    } else if (M <= 256) {
      // Mid M (H100, all paths timed in bench/results/
      // qmatmul_cuda_h100_midm_allpaths.json): 64x64 with cluster split-K is
      // fastest up to M = 128, 128x128 (split when the grid is small) above.
      path = M <= 128 ? QSLAW_W4_PATH_TC_64x64 : QSLAW_W4_PATH_TC_128x128;
    } else {
      // Measured on H100 (docs/CUDA.md): 128x256 wins from M ~ 1024 on,
      // otherwise the big tile only when it still gives >= ~1 wave.
      long big = (long)ceilDiv(N, 128) * ceilDiv(M, 128);
      long mid = (long)ceilDiv(N, 128) * ceilDiv(M, 64);
      // With the wgmma policy on (not yet the default: not measured),
      // the Hopper 128x256 tile where the mma.sync one would run.
      path = M >= 512 && split <= 1 && autoWgmma()
                 ? QSLAW_W4_PATH_WGMMA_128x256
             : M >= 512 ? QSLAW_W4_PATH_TC_128x256
             : big >= 132 ? QSLAW_W4_PATH_TC_128x128
             : mid >= 132 ? QSLAW_W4_PATH_TC_64x128
                          : QSLAW_W4_PATH_TC_64x64;
    }
  }
  if (isWgmmaPath(path)) {
    if (split > 1)
      return QSLAW_CUDA_EINVAL;
    return forwardWgmma(path, std::is_same<TT, Bf16Traits>::value, x, qw, s, z,
                        y, M, N, K, G, st);
  }
  if (path == QSLAW_W4_PATH_GEMV) {
    if (M > 16 || split > 1)
      return QSLAW_CUDA_EINVAL;
    return M <= 8 ? launchGemv<TT, 1>(x, qw, s, z, y, M, N, K, G, st)
                  : launchGemv<TT, 2>(x, qw, s, z, y, M, N, K, G, st);
  }
  switch (path) {
  case QSLAW_W4_PATH_TC_128x128:
    return launchTc<TT, 128, 128, 64, 32, 4>(x, qw, s, z, y, M, N, K, G, split,
                                             st);
  case QSLAW_W4_PATH_TC_64x128:
    return launchTc<TT, 64, 128, 32, 32, 4>(x, qw, s, z, y, M, N, K, G, split,
                                            st);
  case QSLAW_W4_PATH_TC_64x64:
    return launchTc<TT, 64, 64, 32, 32, 4>(x, qw, s, z, y, M, N, K, G, split,
                                           st);
  case QSLAW_W4_PATH_TC_128x256:
    return launchTc<TT, 128, 256, 64, 64, 3>(x, qw, s, z, y, M, N, K, G, split,
                                             st);
  default:
    return QSLAW_CUDA_EINVAL;
  }
}

} // namespace cuda
} // namespace qslaw

using namespace qslaw::cuda;

extern "C" size_t qslaw_w4_packed_bytes(int N, int K) {
  if (N < 1 || K < 64 || K % 64)
    return 0;
  return (size_t)ceilDiv(N, 16) * 16 * (size_t)K / 2;
}

extern "C" int qslaw_w4_pack(const uint8_t *codes, uint32_t *qw, int N, int K,
                             void *stream) {
  if (!codes || !qw || N < 1 || K < 64 || K % 64)
    return QSLAW_CUDA_EINVAL;
  w4Pack<<<1024, 256, 0, static_cast<cudaStream_t>(stream)>>>(codes, qw, N, K);
  return cudaGetLastError() == cudaSuccess ? QSLAW_CUDA_OK
                                           : QSLAW_CUDA_ELAUNCH;
}

extern "C" int qslaw_w4_forward_split(const void *x, const uint32_t *qw,
                                      const float *s, const float *z, void *y,
                                      int M, int N, int K, int G, int dtype,
                                      int path, int split, void *stream) {
  if (!x || !qw || !s || !z || !y || !validShape(M, N, K, G) || split < 0)
    return QSLAW_CUDA_EINVAL;
  cudaStream_t st = static_cast<cudaStream_t>(stream);
  if (dtype == QSLAW_CUDA_BF16)
    return forwardT<Bf16Traits>(x, qw, s, z, y, M, N, K, G, path, split, st);
  if (dtype == QSLAW_CUDA_FP16)
    return forwardT<Fp16Traits>(x, qw, s, z, y, M, N, K, G, path, split, st);
  return QSLAW_CUDA_EDTYPE;
}

extern "C" int qslaw_w4_forward_ex(const void *x, const uint32_t *qw,
                                   const float *s, const float *z, void *y,
                                   int M, int N, int K, int G, int dtype,
                                   int path, void *stream) {
  return qslaw_w4_forward_split(x, qw, s, z, y, M, N, K, G, dtype, path, 0,
                                stream);
}

extern "C" int qslaw_w4_forward(const void *x, const uint32_t *qw,
                                const float *s, const float *z, void *y, int M,
                                int N, int K, int G, int dtype, void *stream) {
  return qslaw_w4_forward_ex(x, qw, s, z, y, M, N, K, G, dtype,
                             QSLAW_W4_PATH_AUTO, stream);
}
