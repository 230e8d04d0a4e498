//===- QMatmulW4Bwd.cu - w4 backward kernels (dX, fused ds, fused dγ) -----===//
//
//  * dX = dY · Ŵ: tiled mma.sync GEMM reducing over N. Each 64-row slab of
//    the packed weight is loaded (one 128-bit load per lane per 16x64
//    tile-chunk), dequantised in registers and written to shared memory in
//    natural [n][k] order; B fragments come from ldmatrix.trans. dY goes
//    through a cp.async pipeline.
//  * ds (scale mode) and dγ (gamma mode): Gw tile = dYᵀ·X on tensor cores
//    (both operands via ldmatrix.trans from [t][n] / [t][k] tiles), reduced
//    over all T inside one block; the epilogue multiplies each Gw element by
//    (q - z) or by m·W and reduces over the group in shared memory. The
//    [N,K] weight gradient never leaves registers.
//
//===----------------------------------------------------------------------===//

#include "QMatmulW4Common.cuh"
#include "QMatmulW4Hopper.cuh"
#include "qslaw/CUDA/QMatmulKernels.h"

namespace qslaw {
namespace cuda {

//===----------------------------------------------------------------------===//
// dX = dY · Ŵ
//===----------------------------------------------------------------------===//

constexpr int kDxBN = 64; // reduction (over N) per iteration
constexpr int kAStride = kDxBN + 8;

template <int BM, int BK, int STAGES>
__host__ __device__ constexpr int dxSmemBytes() {
  return STAGES * BM * kAStride * 2 + kDxBN * (BK + 8) * 2;
}

// Block tile: BM tokens x BK output columns (of K). SPLIT: the reduction
// over N is split over the gridDim.z blocks of a (1,1,S) cluster and the
// partial tiles are summed through distributed shared memory.
template <class TT, int BM, int BK, int WM, int WK, int STAGES, bool SPLIT>
__global__ void __launch_bounds__((BM / WM) * (BK / WK) * 32)
    w4GradInput(const typename TT::T *__restrict__ DY,
                const uint4 *__restrict__ QW, const float *__restrict__ S,
                const float *__restrict__ Z, typename TT::T *__restrict__ DX,
                int M, int N, int K, int G) {
  using T = typename TT::T;
  using T2 = typename TT::T2;
  constexpr int WARPS_K = BK / WK;
  constexpr int THREADS = (BM / WM) * WARPS_K * 32;
  constexpr int MT = WM / 16, NT8 = WK / 8;
  constexpr int CH = BK / 64;                  // packed chunks per tile
  constexpr int RAW = (kDxBN / 16) * CH * 32;  // uint4 per iteration
  constexpr int RPT = (RAW + THREADS - 1) / THREADS;
  constexpr int BSTRIDE = BK + 8;
  constexpr int ATILE = BM * kAStride;

  extern __shared__ uint4 smemRaw[];
  T *sA = reinterpret_cast<T *>(smemRaw);
  T *sB = sA + STAGES * ATILE;

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wm = warp / WARPS_K, wk = warp % WARPS_K;
  const int m0 = blockIdx.y * BM, k0 = blockIdx.x * BK;
  const int KC = K >> 6, J = K / G, NTILES = (N + 15) >> 4;
  const int NITALL = (N + kDxBN - 1) / kDxBN;
  const int ib = SPLIT ? (int)((blockIdx.z * (long)NITALL) / gridDim.z) : 0;
  const int NIT =
      (SPLIT ? (int)(((blockIdx.z + 1) * (long)NITALL) / gridDim.z) : NITALL) -
      ib;

  auto loadA = [&](int st, int li) {
    const int it = ib + li;
    T *d = sA + st * ATILE;
#pragma unroll
    for (int i = tid; i < BM * 8; i += THREADS) {
      const int r = i >> 3, cc = i & 7, gm = m0 + r;
      const int n = it * kDxBN + cc * 8;
      const bool ok = gm < M && n < N;
      const T *src = DY + (ok ? (size_t)gm * N + n : 0);
      cpAsync16(d + r * kAStride + cc * 8, src, ok);
    }
  };

  // Packed codes and their scales for the next slab are loaded into
  // registers one iteration ahead (global latency hidden by the mma work).
  uint4 raw[RPT];
  float rs[RPT][2], rz[RPT][2];
  auto loadRaw = [&](int li) {
    const int it = ib + li;
#pragma unroll
    for (int r = 0; r < RPT; ++r) {
      const int i = tid + r * THREADS;
      const int ln = i & 31, q = i >> 5, ch = q % CH, tl = q / CH;
      const int ntile = it * (kDxBN / 16) + tl, chunk = k0 / 64 + ch;
      const bool ok = i < RAW && ntile < NTILES && chunk < KC;
      raw[r] = ok ? ldgStream(QW + ((size_t)ntile * KC + chunk) * 32 + ln)
                  : make_uint4(0, 0, 0, 0);
      const int j = (chunk * 64 + 16 * (ln & 3)) / G;
#pragma unroll
      for (int hh = 0; hh < 2; ++hh) {
        const int n = ntile * 16 + (ln >> 2) + 8 * hh;
        const bool okn = ok && n < N;
        rs[r][hh] = okn ? __ldg(S + (size_t)n * J + j) : 0.f;
        rz[r][hh] = okn ? __ldg(Z + (size_t)n * J + j) : 0.f;
      }
    }
  };
  auto storeDequant = [&](int it) {
#pragma unroll
    for (int r = 0; r < RPT; ++r) {
      const int i = tid + r * THREADS;
      if (i >= RAW)
        break;
      const int ln = i & 31, q = i >> 5, ch = q % CH, tl = q / CH;
      const int gg = ln >> 2, tt = ln & 3;
      const int kk = ch * 64 + 16 * tt; // within tile
#pragma unroll
      for (int hh = 0; hh < 2; ++hh) {
        const int nl = tl * 16 + gg + 8 * hh;
        const float sv = rs[r][hh], zv = rz[r][hh];
        const T2 s2 = TT::splat(sv), n2 = TT::splat(-zv * sv);
        uint32_t d0[4], d1[4];
        dequant8<TT>(hh ? raw[r].z : raw[r].x, s2, n2, d0);
        dequant8<TT>(hh ? raw[r].w : raw[r].y, s2, n2, d1);
        uint4 *dst = reinterpret_cast<uint4 *>(sB + nl * BSTRIDE + kk);
        dst[0] = make_uint4(d0[0], d0[1], d0[2], d0[3]);
        dst[1] = make_uint4(d1[0], d1[1], d1[2], d1[3]);
      }
    }
  };

  float acc[MT][NT8][4];
#pragma unroll
  for (int a = 0; a < MT; ++a)
#pragma unroll
    for (int b = 0; b < NT8; ++b)
#pragma unroll
      for (int c = 0; c < 4; ++c)
        acc[a][b][c] = 0.f;

#pragma unroll
  for (int st = 0; st < STAGES - 1; ++st) {
    if (st < NIT)
      loadA(st, st);
    cpAsyncCommit();
  }
  loadRaw(0);

  for (int it = 0; it < NIT; ++it) {
    __syncthreads(); // previous iteration's ldmatrix reads of sB are done
    storeDequant(it);
    if (it + 1 < NIT)
      loadRaw(it + 1);
    cpAsyncWait<STAGES - 2>();
    __syncthreads();
    {
      const int nx = it + STAGES - 1;
      if (nx < NIT)
        loadA(nx % STAGES, nx);
      cpAsyncCommit();
    }
    const T *a_s = sA + (it % STAGES) * ATILE;
#pragma unroll
    for (int ks = 0; ks < kDxBN / 16; ++ks) {
      uint32_t af[MT][4];
#pragma unroll
      for (int mi = 0; mi < MT; ++mi) {
        const int row = wm * WM + mi * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
        const int col = ks * 16 + (lane >> 4) * 8;
        ldmatrixX4(af[mi], a_s + row * kAStride + col);
      }
#pragma unroll
      for (int nj = 0; nj < NT8 / 2; ++nj) {
        uint32_t bf[4];
        const int row = ks * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
        const int col = wk * WK + nj * 16 + (lane >> 4) * 8;
        ldmatrixX4T(bf, sB + row * BSTRIDE + col);
#pragma unroll
        for (int mi = 0; mi < MT; ++mi) {
          mma16816<TT>(acc[mi][2 * nj], af[mi], bf);
          mma16816<TT>(acc[mi][2 * nj + 1], af[mi], bf + 2);
        }
      }
    }
  }
  cpAsyncWait<0>();

  auto store = [&](int mi, int ni, int hh, float v0, float v1) {
    const int k = k0 + wk * WK + ni * 8 + 2 * (lane & 3);
    const int m = m0 + wm * WM + mi * 16 + (lane >> 2) + 8 * hh;
    if (m < M && k < K)
      *reinterpret_cast<T2 *>(DX + (size_t)m * K + k) = TT::pack(v0, v1);
  };
  if constexpr (SPLIT) {
    constexpr int NP = MT * NT8 * 2;
    static_assert(NP * THREADS * 8 <= dxSmemBytes<BM, BK, STAGES>(),
                  "partial tile must fit in the pipeline's shared memory");
    __syncthreads(); // every warp is done with sA / sB
    float2 v[NP];
#pragma unroll
    for (int mi = 0; mi < MT; ++mi)
#pragma unroll
      for (int ni = 0; ni < NT8; ++ni)
#pragma unroll
        for (int hh = 0; hh < 2; ++hh)
          v[(mi * NT8 + ni) * 2 + hh] =
              make_float2(acc[mi][ni][2 * hh], acc[mi][ni][2 * hh + 1]);
    clusterReducePairs<NP, THREADS>(
        v, reinterpret_cast<float2 *>(smemRaw), [&](int e, float2 r) {
          store((e >> 1) / NT8, (e >> 1) % NT8, e & 1, r.x, r.y);
        });
  } else {
#pragma unroll
    for (int mi = 0; mi < MT; ++mi)
#pragma unroll
      for (int ni = 0; ni < NT8; ++ni)
#pragma unroll
        for (int hh = 0; hh < 2; ++hh)
          store(mi, ni, hh, acc[mi][ni][2 * hh], acc[mi][ni][2 * hh + 1]);
  }
}

//===----------------------------------------------------------------------===//
// Fused ds / dγ: Gw tile = dYᵀ X with a group-reduce epilogue
//===----------------------------------------------------------------------===//

enum { kModeScale = 0, kModeGamma = 1 };

constexpr int kGBN = 128, kGBK = 128, kGBT = 64, kGWN = 64, kGWK = 32;
constexpr int kGStride = 128 + 8;
constexpr int kGStages = 3;
constexpr int kGSmem = kGStages * 2 * kGBT * kGStride * 2;

template <class TT, int MODE>
__global__ void __launch_bounds__(256, 2)
    w4GradGroup(const typename TT::T *__restrict__ DY,
                const typename TT::T *__restrict__ X,
                const uint32_t *__restrict__ QW,
                const typename TT::T *__restrict__ W,
                const float *__restrict__ S, const float *__restrict__ Z,
                const float *__restrict__ GAM, float *__restrict__ OUT, int T_,
                int N, int K, int G, int qmax) {
  using T = typename TT::T;
  using T2 = typename TT::T2;
  constexpr int MT = kGWN / 16, NT8 = kGWK / 8;
  constexpr int TILE = kGBT * kGStride;
  extern __shared__ uint4 smemRaw[];
  T *sD = reinterpret_cast<T *>(smemRaw);  // [stage][t][n]
  T *sX = sD + kGStages * TILE;            // [stage][t][k]
  __shared__ float red[kGBN][kGBK / 32];

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wn = warp / (kGBK / kGWK), wk = warp % (kGBK / kGWK);
  const int n0 = blockIdx.y * kGBN, k0 = blockIdx.x * kGBK;
  const int J = K / G, KC = K >> 6;
  const int NIT = (T_ + kGBT - 1) / kGBT;

  for (int i = tid; i < kGBN * (kGBK / 32); i += 256)
    (&red[0][0])[i] = 0.f;

  auto load = [&](int st, int it) {
    T *dd = sD + st * TILE;
    T *dx = sX + st * TILE;
#pragma unroll
    for (int i = tid; i < kGBT * 16; i += 256) {
      const int r = i >> 4, cc = i & 15, tk = it * kGBT + r;
      const int n = n0 + cc * 8, k = k0 + cc * 8;
      const bool okn = tk < T_ && n < N, okk = tk < T_ && k < K;
      cpAsync16(dd + r * kGStride + cc * 8,
                DY + (okn ? (size_t)tk * N + n : 0), okn);
      cpAsync16(dx + r * kGStride + cc * 8,
                X + (okk ? (size_t)tk * K + k : 0), okk);
    }
  };

  float acc[MT][NT8][4];
#pragma unroll
  for (int a = 0; a < MT; ++a)
#pragma unroll
    for (int b = 0; b < NT8; ++b)
#pragma unroll
      for (int c = 0; c < 4; ++c)
        acc[a][b][c] = 0.f;

#pragma unroll
  for (int st = 0; st < kGStages - 1; ++st) {
    if (st < NIT)
      load(st, st);
    cpAsyncCommit();
  }
  for (int it = 0; it < NIT; ++it) {
    cpAsyncWait<kGStages - 2>();
    __syncthreads();
    {
      const int nx = it + kGStages - 1;
      if (nx < NIT)
        load(nx % kGStages, nx);
      cpAsyncCommit();
    }
    const T *d_s = sD + (it % kGStages) * TILE;
    const T *x_s = sX + (it % kGStages) * TILE;
#pragma unroll
    for (int ks = 0; ks < kGBT / 16; ++ks) {
      uint32_t af[MT][4];
#pragma unroll
      for (int mi = 0; mi < MT; ++mi) {
        // A = dYᵀ (rows n, cols t) from the [t][n] tile: transposed load.
        const int row = ks * 16 + (lane & 7) + (lane >> 4) * 8;
        const int col = wn * kGWN + mi * 16 + ((lane >> 3) & 1) * 8;
        ldmatrixX4T(af[mi], d_s + row * kGStride + col);
      }
#pragma unroll
      for (int nj = 0; nj < NT8 / 2; ++nj) {
        uint32_t bf[4];
        const int row = ks * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
        const int col = wk * kGWK + nj * 16 + (lane >> 4) * 8;
        ldmatrixX4T(bf, x_s + row * kGStride + col);
#pragma unroll
        for (int mi = 0; mi < MT; ++mi) {
          mma16816<TT>(acc[mi][2 * nj], af[mi], bf);
          mma16816<TT>(acc[mi][2 * nj + 1], af[mi], bf + 2);
        }
      }
    }
  }
  cpAsyncWait<0>();

  // Epilogue: weight each Gw element, reduce over the group. Phase 1
  // gathers every operand with independent loads (all in flight at once),
  // phase 2 does the arithmetic, a quad shuffle and one shared atomic per
  // (row, 8 columns). A warp's 32 columns lie inside one group (G >= 32).
  const int g = lane >> 2, t = lane & 3;
  const int kw = k0 + wk * kGWK;           // first column of this warp
  const bool okk = kw < K;
  const int jw = okk ? kw / G : 0;
#pragma unroll
  for (int mh = 0; mh < MT; mh += 2) { // two m16 tiles at a time: registers
  uint32_t ew[MT][2][NT8]; // packed code word / W pair
  float ez[MT][2], esg[MT][2];
#pragma unroll
  for (int mi = mh; mi < mh + 2; ++mi)
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
      const int n = n0 + wn * kGWN + mi * 16 + g + 8 * hh;
      const bool ok = okk && n < N;
      ez[mi][hh] = ok ? __ldg(Z + (size_t)n * J + jw) : 0.f;
      esg[mi][hh] = 1.f;
      if (MODE == kModeGamma && ok)
        esg[mi][hh] =
            __ldg(S + (size_t)n * J + jw) * __ldg(GAM + (size_t)n * J + jw);
#pragma unroll
      for (int ni = 0; ni < NT8; ++ni) {
        const int k = kw + ni * 8 + 2 * t;
        uint32_t v = 0;
        if (ok) {
          if (MODE == kModeScale) {
            const int rr = n & 15, kc = k & 63;
            const size_t word =
                ((((size_t)(n >> 4) * KC + (k >> 6)) * 32) + (rr & 7) * 4 +
                 (kc >> 4)) * 4 + (rr >> 3) * 2 + ((kc & 15) >> 3);
            v = __ldg(QW + word);
          } else {
            v = __ldg(reinterpret_cast<const unsigned int *>(W + (size_t)n * K +
                                                             k));
          }
        }
        ew[mi][hh][ni] = v;
      }
    }
#pragma unroll
  for (int mi = mh; mi < mh + 2; ++mi)
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
      const int nl = wn * kGWN + mi * 16 + g + 8 * hh;
      const bool ok = okk && n0 + nl < N;
      float v = 0.f;
#pragma unroll
      for (int ni = 0; ni < NT8; ++ni) {
        const float g0 = acc[mi][ni][2 * hh], g1 = acc[mi][ni][2 * hh + 1];
        const uint32_t wv = ew[mi][hh][ni];
        if (MODE == kModeScale) {
          const int p = (((ni * 8 + 2 * t) & 7) >> 1); // == t
          const float q0 = (float)((wv >> (4 * p)) & 15u);
          const float q1 = (float)((wv >> (4 * (p + 4))) & 15u);
          v += g0 * (q0 - ez[mi][hh]) + g1 * (q1 - ez[mi][hh]);
        } else {
          const float2 w2 = TT::unpack(fromU32<T2>(wv));
          const float sg = esg[mi][hh], zz = ez[mi][hh];
          const float r0 = rintf(__fdiv_rn(w2.x, sg)) + zz;
          const float r1 = rintf(__fdiv_rn(w2.y, sg)) + zz;
          const float m0 = (r0 >= 0.f && r0 <= (float)qmax) ? 1.f : 0.f;
          const float m1 = (r1 >= 0.f && r1 <= (float)qmax) ? 1.f : 0.f;
          v += m0 * w2.x * g0 + m1 * w2.y * g1;
        }
      }
      v += __shfl_xor_sync(0xffffffffu, v, 1);
      v += __shfl_xor_sync(0xffffffffu, v, 2);
      if (t == 0 && ok)
        atomicAdd(&red[nl][(kw - k0) / G], v);
    }
  }
  __syncthreads();
  const int GPT = kGBK / G;
  for (int i = tid; i < kGBN * GPT; i += 256) {
    const int nl = i / GPT, gl = i % GPT;
    const int n = n0 + nl, j = k0 / G + gl;
    if (n < N && j < J) {
      float v = red[nl][gl];
      if (MODE == kModeGamma) {
        const float gm = GAM[(size_t)n * J + j];
        v = -v / (gm * gm);
      }
      OUT[(size_t)n * J + j] = v;
    }
  }
}

//===----------------------------------------------------------------------===//
// Host dispatch
//===----------------------------------------------------------------------===//

static bool validShape(int M, int N, int K, int G) {
  return M >= 1 && N >= 1 && K >= 64 && (G == 32 || G == 64 || G == 128) &&
         K % 64 == 0 && K % G == 0 && N % 8 == 0;
}

// split: 0 = automatic (cluster split over N on sm_90+ when the grid is
// smaller than one wave), 1 = none, 2/4/8 = forced (sm_90+ only).
template <class TT, int BM, int BK, int WM, int WK, int STAGES>
static int launchDx(const void *dy, const uint32_t *qw, const float *s,
                    const float *z, void *dx, int M, int N, int K, int G,
                    int split, cudaStream_t st) {
  using T = typename TT::T;
  constexpr int THREADS = (BM / WM) * (BK / WK) * 32;
  constexpr int SMEM = dxSmemBytes<BM, BK, STAGES>();
  auto kern = w4GradInput<TT, BM, BK, WM, WK, STAGES, false>;
  auto kernS = w4GradInput<TT, BM, BK, WM, WK, STAGES, true>;
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
    splitSlots(kern, kernS, THREADS, SMEM, sms, major >= 9, slots);
  }
  const int gx = ceilDiv(K, BK), gy = ceilDiv(M, BM);
  const int nit = ceilDiv(N, kDxBN);
  if (split == 0)
    split = major >= 9 ? pickSplit((long)gx * gy, slots, nit, 4) : 1;
  if (split != 1 && split != 2 && split != 4 && split != 8)
    return QSLAW_CUDA_EINVAL;
  if (split > 1 && (major < 9 || nit < split))
    return QSLAW_CUDA_EINVAL;
  const T *dyp = static_cast<const T *>(dy);
  const uint4 *qp = reinterpret_cast<const uint4 *>(qw);
  T *dxp = static_cast<T *>(dx);
  if (split == 1) {
    kern<<<dim3(gx, gy), THREADS, SMEM, st>>>(dyp, qp, s, z, dxp, M, N, K, G);
  } else if (launchCluster(kernS, gx, gy, split, THREADS, SMEM, st, dyp, qp, s,
                           z, dxp, M, N, K, G) != cudaSuccess) {
    return QSLAW_CUDA_ELAUNCH;
  }
  return cudaGetLastError() == cudaSuccess ? QSLAW_CUDA_OK
                                           : QSLAW_CUDA_ELAUNCH;
}

template <class TT>
static int gradInputT(const void *dy, const uint32_t *qw, const float *s,
                      const float *z, void *dx, int M, int N, int K, int G,
                      int split, cudaStream_t st) {
  if (M <= 16)
    return launchDx<TT, 16, 64, 16, 16, 4>(dy, qw, s, z, dx, M, N, K, G, split,
                                           st);
  long big = (long)ceilDiv(K, 128) * ceilDiv(M, 128);
  if (big >= 132)
    return launchDx<TT, 128, 128, 64, 32, 3>(dy, qw, s, z, dx, M, N, K, G,
                                             split, st);
  return launchDx<TT, 64, 64, 32, 32, 4>(dy, qw, s, z, dx, M, N, K, G, split,
                                         st);
}

template <class TT, int MODE>
static int launchGroup(const void *dy, const void *x, const uint32_t *qw,
                       const void *w, const float *s, const float *z,
                       const float *gamma, float *out, int T_, int N, int K,
                       int G, int qmax, cudaStream_t st) {
  using T = typename TT::T;
  auto kern = w4GradGroup<TT, MODE>;
  static bool attrSet = false;
  if (!attrSet) {
    if (cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             kGSmem) != cudaSuccess)
      return QSLAW_CUDA_ELAUNCH;
    attrSet = true;
  }
  dim3 grid(ceilDiv(K, kGBK), ceilDiv(N, kGBN));
  kern<<<grid, 256, kGSmem, st>>>(
      static_cast<const T *>(dy), static_cast<const T *>(x), qw,
      static_cast<const T *>(w), s, z, gamma, out, T_, N, K, G, qmax);
  return cudaGetLastError() == cudaSuccess ? QSLAW_CUDA_OK
                                           : QSLAW_CUDA_ELAUNCH;
}

} // namespace cuda
} // namespace qslaw

using namespace qslaw::cuda;

// QSLAW_CUDA_OK, or why a kernel selection (qslaw_w4_grad_path_t) or an
// activation type is refused.
static int gradSelection(int path, int dtype) {
  if (path < QSLAW_W4_GRAD_AUTO || path > QSLAW_W4_GRAD_WGMMA)
    return QSLAW_CUDA_EINVAL;
  if (dtype != QSLAW_CUDA_BF16 && dtype != QSLAW_CUDA_FP16)
    return QSLAW_CUDA_EDTYPE;
  return QSLAW_CUDA_OK;
}

// The kernel AUTO stands for: wgmma from `rows` (M or T) = 512 on when the
// policy allows it (qslaw_w4_set_auto_wgmma) and no split is forced, else
// mma.sync. Other selections are returned as they are.
static int resolvedGradPath(int path, int rows, int split = 0) {
  if (path == QSLAW_W4_GRAD_AUTO && rows >= 512 && split <= 1 && autoWgmma())
    return QSLAW_W4_GRAD_WGMMA;
  return path;
}

// path AUTO / MMA: the mma.sync kernels with `split`; WGMMA: the sm_90a
// kernel (QMatmulW4GradInputHopper.cu), which never splits (split 0 or 1).
extern "C" int qslaw_w4_grad_input_split(const void *dy, const uint32_t *qw,
                                         const float *s, const float *z,
                                         void *dx, int M, int N, int K, int G,
                                         int dtype, int path, int split,
                                         void *stream) {
  if (!dy || !qw || !s || !z || !dx || !validShape(M, N, K, G) || split < 0)
    return QSLAW_CUDA_EINVAL;
  if (int rc = gradSelection(path, dtype))
    return rc;
  cudaStream_t st = static_cast<cudaStream_t>(stream);
  if (resolvedGradPath(path, M, split) == QSLAW_W4_GRAD_WGMMA)
    return split > 1 ? QSLAW_CUDA_EINVAL
                     : gradInputWgmma(dtype == QSLAW_CUDA_BF16, dy, qw, s, z,
                                      dx, M, N, K, G, st);
  if (dtype == QSLAW_CUDA_BF16)
    return gradInputT<Bf16Traits>(dy, qw, s, z, dx, M, N, K, G, split, st);
  return gradInputT<Fp16Traits>(dy, qw, s, z, dx, M, N, K, G, split, st);
}

extern "C" int qslaw_w4_grad_input_ex(const void *dy, const uint32_t *qw,
                                      const float *s, const float *z, void *dx,
                                      int M, int N, int K, int G, int dtype,
                                      int split, void *stream) {
  return qslaw_w4_grad_input_split(dy, qw, s, z, dx, M, N, K, G, dtype,
                                   QSLAW_W4_GRAD_AUTO, split, stream);
}

extern "C" int qslaw_w4_grad_input(const void *dy, const uint32_t *qw,
                                   const float *s, const float *z, void *dx,
                                   int M, int N, int K, int G, int dtype,
                                   void *stream) {
  return qslaw_w4_grad_input_ex(dy, qw, s, z, dx, M, N, K, G, dtype, 0, stream);
}

// path: QSLAW_W4_GRAD_AUTO / _MMA = the mma.sync kernel (w4GradGroup),
// QSLAW_W4_GRAD_WGMMA = the sm_90a kernel (QMatmulW4GradHopper.cu).
extern "C" int qslaw_w4_grad_scale_ex(const void *dy, const void *x,
                                      const uint32_t *qw, const float *z,
                                      float *ds, int T, int N, int K, int G,
                                      int dtype, int path, void *stream) {
  if (!dy || !x || !qw || !z || !ds || !validShape(T, N, K, G))
    return QSLAW_CUDA_EINVAL;
  if (int rc = gradSelection(path, dtype))
    return rc;
  cudaStream_t st = static_cast<cudaStream_t>(stream);
  const bool bf16 = dtype == QSLAW_CUDA_BF16;
  if (resolvedGradPath(path, T) == QSLAW_W4_GRAD_WGMMA)
    return gradGroupWgmma(false, bf16, dy, x, qw, nullptr, nullptr, z, nullptr,
                          ds, T, N, K, G, 0, st);
  if (bf16)
    return launchGroup<Bf16Traits, kModeScale>(dy, x, qw, nullptr, nullptr, z,
                                               nullptr, ds, T, N, K, G, 0, st);
  return launchGroup<Fp16Traits, kModeScale>(dy, x, qw, nullptr, nullptr, z,
                                             nullptr, ds, T, N, K, G, 0, st);
}

extern "C" int qslaw_w4_grad_scale(const void *dy, const void *x,
                                   const uint32_t *qw, const float *z,
                                   float *ds, int T, int N, int K, int G,
                                   int dtype, void *stream) {
  return qslaw_w4_grad_scale_ex(dy, x, qw, z, ds, T, N, K, G, dtype,
                                QSLAW_W4_GRAD_AUTO, stream);
}

extern "C" int qslaw_w4_grad_gamma_ex(const void *dy, const void *x,
                                      const void *w, const float *s,
                                      const float *z, const float *gamma,
                                      float *dgamma, int T, int N, int K,
                                      int G, int qmax, int dtype, int path,
                                      void *stream) {
  if (!dy || !x || !w || !s || !z || !gamma || !dgamma ||
      !validShape(T, N, K, G) || qmax < 1)
    return QSLAW_CUDA_EINVAL;
  if (int rc = gradSelection(path, dtype))
    return rc;
  cudaStream_t st = static_cast<cudaStream_t>(stream);
  const bool bf16 = dtype == QSLAW_CUDA_BF16;
  if (resolvedGradPath(path, T) == QSLAW_W4_GRAD_WGMMA)
    return gradGroupWgmma(true, bf16, dy, x, nullptr, w, s, z, gamma, dgamma,
                          T, N, K, G, qmax, st);
  if (bf16)
    return launchGroup<Bf16Traits, kModeGamma>(dy, x, nullptr, w, s, z, gamma,
                                               dgamma, T, N, K, G, qmax, st);
  return launchGroup<Fp16Traits, kModeGamma>(dy, x, nullptr, w, s, z, gamma,
                                             dgamma, T, N, K, G, qmax, st);
}

extern "C" int qslaw_w4_grad_gamma(const void *dy, const void *x,
                                   const void *w, const float *s,
                                   const float *z, const float *gamma,
                                   float *dgamma, int T, int N, int K, int G,
                                   int qmax, int dtype, void *stream) {
  return qslaw_w4_grad_gamma_ex(dy, x, w, s, z, gamma, dgamma, T, N, K, G,
                                qmax, dtype, QSLAW_W4_GRAD_AUTO, stream);
}
