//===- QMatmulW4FwdHopper.cu - w4 forward on Hopper tensor cores (wgmma) --===//
//
// Large-M forward for sm_90a: Y[M,N] = X[M,K] · Ŵᵀ with both operands of
// wgmma.mma_async in shared memory. The mma.sync tile path tops out near a
// third of cuBLAS on H100 (docs/CUDA.md, run 4): cuBLAS issues wgmma, which
// mma.sync cannot match. This kernel dequantises each weight tile once per
// block into shared memory and lets the warpgroup MMA read it from there.
//
// Block: WG warpgroups (BM = 64·WG rows of X), BN weight rows, BK = 64.
// Per 64-column chunk c, every thread of the block:
//   1. waits for chunk c's raw data (cp.async ring of STAGES slots: X tile,
//      fragment-ordered packed weight, scales and zero points),
//   2. starts the copies of chunk c + STAGES - 2,
//   3. dequantises its part of the packed weight tile into Wdq[c % 2]
//      (bf16/fp16, the layout wgmma reads: [BN][64], 128-byte swizzle),
//   4. after a barrier, its warpgroup issues 4 wgmma m64nBNk16 (k16 steps)
//      for its 64 rows, commits, and waits until only these are in flight.
// So chunk c's MMAs run on the tensor cores while the threads dequantise
// chunk c + 1; the copies run STAGES - 2 chunks ahead. A slot is rewritten
// only after the barrier that follows every warpgroup's wait for the MMAs
// that read it (chunk c - 2 for both Wdq and the ring).
//
// Shared-memory tiles are K-major with the 128-byte swizzle (16-byte unit
// u of row r stored at unit u ^ (r % 8)), from 1024-byte aligned bases; the
// descriptors advance 32 bytes per k16 step inside the swizzle atom.
//
// Not the default path yet: it has not run on a GPU (the sessions that
// wrote it had none). forwardT selects it when asked for
// (QSLAW_W4_PATH_WGMMA_*) or when the AUTO policy allows it
// (qslaw_w4_set_auto_wgmma, off by default); bench/qmatmul_cuda.py times it.
//
//===----------------------------------------------------------------------===//
#include "QMatmulW4Hopper.cuh"
#include "Wgmma.cuh"

#include "qslaw/CUDA/QMatmulKernels.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace qslaw {
namespace cuda {

namespace {

template <int WG, int BN, int STAGES> struct HopperLayout {
  static constexpr int BM = 64 * WG;
  static constexpr int X_BYTES = BM * kRowBytes;      // per slot
  static constexpr int WDQ_BYTES = BN * kRowBytes;    // per buffer (2)
  static constexpr int RAW_BYTES = (BN / 16) * 32 * 16; // per slot
  static constexpr int SZ_BYTES = 4 * BN * 4;         // per slot
  static constexpr int X_OFF = 0;
  static constexpr int WDQ_OFF = X_OFF + STAGES * X_BYTES;
  static constexpr int RAW_OFF = WDQ_OFF + 2 * WDQ_BYTES;
  static constexpr int SZ_OFF = RAW_OFF + STAGES * RAW_BYTES;
  // + 1024 so the base can be aligned up inside the allocation.
  static constexpr int SMEM = SZ_OFF + STAGES * SZ_BYTES + 1024;
  static_assert(X_BYTES % 1024 == 0 && WDQ_BYTES % 1024 == 0,
                "swizzled tiles need 1024-byte aligned bases");
};

template <class TT, int WG, int BN, int STAGES>
__global__ void __launch_bounds__(WG * 128, 1)
    w4FwdWgmma(const typename TT::T *__restrict__ X,
               const uint4 *__restrict__ QW, const float *__restrict__ S,
               const float *__restrict__ Z, typename TT::T *__restrict__ Y,
               int M, int N, int K, int G) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using L = HopperLayout<WG, BN, STAGES>;
  using T = typename TT::T;
  using T2 = typename TT::T2;
  constexpr int BM = L::BM, THREADS = WG * 128;
  constexpr int RAW = (BN / 16) * 32; // uint4 per slot
  constexpr int D = STAGES - 2;       // copy distance in chunks
  static_assert(D >= 1, "need at least 3 stages");

  extern __shared__ uint8_t smemRaw[];
  const uint32_t raw0 = smemAddr(smemRaw);
  uint8_t *base = smemRaw + (((raw0 + 1023) & ~1023u) - raw0);
  const uint32_t base0 = smemAddr(base);
  float *sSZ = reinterpret_cast<float *>(base + L::SZ_OFF);
  uint4 *sRaw = reinterpret_cast<uint4 *>(base + L::RAW_OFF);

  const int tid = threadIdx.x, wg = tid >> 7;
  const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
  const int KC = K >> 6, J = K / G;

  auto load = [&](int slot, int c) {
    uint8_t *dx = base + L::X_OFF + slot * L::X_BYTES;
    for (int i = tid; i < BM * 8; i += THREADS) {
      const int r = i >> 3, u = i & 7, gm = m0 + r;
      const T *src = X + (size_t)(gm < M ? gm : M - 1) * K + c * 64 + u * 8;
      cpAsync16(dx + swizzled(r, u), src, gm < M);
    }
    stageWeightChunk<BN, THREADS>(sRaw + slot * RAW, sSZ + slot * 4 * BN, QW,
                                  S, Z, tid, n0, c, N, KC, J, G);
  };

  // Packed word (row-half hh, column-half kh) of lane (g, t) holds row
  // 8·hh + g of its 16-row tile at chunk columns 16t + 8kh .. +7; dequant8
  // turns it into those 8 values in order, i.e. one 16-byte unit 2t + kh.
  auto dequantize = [&](int slot, int buf) {
    const uint4 *rw = sRaw + slot * RAW;
    const float *sz = sSZ + slot * 4 * BN;
    uint8_t *dw = base + L::WDQ_OFF + buf * L::WDQ_BYTES;
    for (int i = tid; i < RAW; i += THREADS) {
      const int tl = i >> 5, ln = i & 31, g = ln >> 2, t = ln & 3;
      const int gs = G == 32 ? (t >> 1) : 0;
      const uint4 pw = rw[i];
      const uint32_t words[4] = {pw.x, pw.y, pw.z, pw.w};
#pragma unroll
      for (int hh = 0; hh < 2; ++hh) {
        const int r = tl * 16 + hh * 8 + g;
        const float sv = sz[gs * BN + r], zv = sz[(2 + gs) * BN + r];
        const T2 s2 = TT::splat(sv), n2 = TT::splat(-zv * sv);
#pragma unroll
        for (int kh = 0; kh < 2; ++kh) {
          uint4 v;
          dequant8<TT>(words[2 * hh + kh], s2, n2,
                       reinterpret_cast<uint32_t *>(&v));
          *reinterpret_cast<uint4 *>(dw + swizzled(r, 2 * t + kh)) = v;
        }
      }
    }
  };

  float acc[BN / 2];
#pragma unroll
  for (int i = 0; i < BN / 2; ++i)
    acc[i] = 0.f;

#pragma unroll
  for (int d = 0; d < D; ++d) {
    if (d < KC)
      load(d, d);
    cpAsyncCommit();
  }

  // K >= 64: at least one chunk. Telling the compiler so keeps it from
  // merging a zero-trip path into the accumulators (plain moves that ptxas
  // counts as non-wgmma definitions and answers by serialising the MMAs).
  __builtin_assume(KC >= 1);
  for (int c = 0; c < KC; ++c) {
    cpAsyncWait<D - 1>();
    __syncthreads(); // chunk c landed; every MMA of chunk c - 2 is done
    if (c + D < KC)
      load((c + D) % STAGES, c + D);
    cpAsyncCommit();
    dequantize(c % STAGES, c & 1);
    fenceProxyAsyncShared(); // cp.async and st.shared -> wgmma's proxy
    __syncthreads();

    const uint32_t xa =
        base0 + L::X_OFF + (c % STAGES) * L::X_BYTES + wg * 64 * kRowBytes;
    const uint32_t wa = base0 + L::WDQ_OFF + (c & 1) * L::WDQ_BYTES;
    fenceRegs(acc);
    wgmmaFence();
#pragma unroll
    for (int s = 0; s < 4; ++s)
      wgmmaSS<TT, BN>(acc, sw128Desc(xa + 32 * s), sw128Desc(wa + 32 * s));
    wgmmaCommit();
    wgmmaWait<1>();
    fenceRegs(acc);
  }
  wgmmaWait<0>();
  fenceRegs(acc);

  storeAccTile<TT, BN>(acc, Y, M, N, m0 + wg * 64, n0);
#else
  __trap(); // sm_90a only; the host never launches it elsewhere
#endif
}

template <class TT, int WG, int BN, int STAGES>
int launch(const void *x, const uint32_t *qw, const float *s, const float *z,
           void *y, int M, int N, int K, int G, cudaStream_t st) {
  using L = HopperLayout<WG, BN, STAGES>;
  return launchPackedKernel<TT, w4FwdWgmma<TT, WG, BN, STAGES>>(
      dim3(ceilDiv(N, BN), ceilDiv(M, L::BM)), WG * 128, L::SMEM, x, qw, s, z,
      y, M, N, K, G, st);
}

template <class TT>
int forwardWgmmaT(int path, const void *x, const uint32_t *qw, const float *s,
                  const float *z, void *y, int M, int N, int K, int G,
                  cudaStream_t st) {
  switch (path) {
  case QSLAW_W4_PATH_WGMMA_128x256:
    return launch<TT, 2, 256, 4>(x, qw, s, z, y, M, N, K, G, st);
  case QSLAW_W4_PATH_WGMMA_128x128:
    return launch<TT, 2, 128, 5>(x, qw, s, z, y, M, N, K, G, st);
  case QSLAW_W4_PATH_WGMMA_256x128:
    return launch<TT, 4, 128, 4>(x, qw, s, z, y, M, N, K, G, st);
  default:
    return QSLAW_CUDA_EINVAL;
  }
}

} // namespace

bool isWgmmaPath(int path) {
  return path == QSLAW_W4_PATH_WGMMA_128x256 ||
         path == QSLAW_W4_PATH_WGMMA_128x128 ||
         path == QSLAW_W4_PATH_WGMMA_256x128;
}

bool isSm90(bool *ok) {
  int sms = 0, major = 0, minor = 0, dev = 0;
  *ok = deviceInfo(&sms, &major) && cudaGetDevice(&dev) == cudaSuccess &&
        cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor,
                               dev) == cudaSuccess;
  // wgmma is sm_90a-only: the 'a' features do not carry to later GPUs.
  return *ok && major == 9 && minor == 0;
}

namespace {
// QSLAW_W4_AUTO_WGMMA: "1" lets AUTO choose the wgmma kernels, "0" or unset
// does not; anything else is reported once and read as "0".
int policyFromEnvironment() {
  const char *e = std::getenv("QSLAW_W4_AUTO_WGMMA");
  if (!e || !std::strcmp(e, "0"))
    return 0;
  if (!std::strcmp(e, "1"))
    return 1;
  std::fprintf(stderr,
               "qslaw_cuda_kernels: QSLAW_W4_AUTO_WGMMA='%s' is neither 0 nor "
               "1; AUTO keeps the mma.sync kernels\n",
               e);
  return 0;
}

std::atomic<int> &autoWgmmaPolicy() {
  static std::atomic<int> policy{policyFromEnvironment()};
  return policy;
}
} // namespace

bool autoWgmma() {
  bool ok = false;
  return autoWgmmaPolicy().load(std::memory_order_relaxed) && isSm90(&ok);
}

int forwardWgmma(int path, bool bf16, const void *x, const uint32_t *qw,
                 const float *s, const float *z, void *y, int M, int N, int K,
                 int G, cudaStream_t st) {
  bool ok = false;
  if (!isSm90(&ok))
    return ok ? QSLAW_CUDA_EINVAL : QSLAW_CUDA_ELAUNCH;
  return bf16 ? forwardWgmmaT<Bf16Traits>(path, x, qw, s, z, y, M, N, K, G, st)
              : forwardWgmmaT<Fp16Traits>(path, x, qw, s, z, y, M, N, K, G,
                                          st);
}

} // namespace cuda
} // namespace qslaw

extern "C" int qslaw_w4_set_auto_wgmma(int on) {
  if (on != 0 && on != 1)
    return QSLAW_CUDA_EINVAL;
  qslaw::cuda::autoWgmmaPolicy().store(on, std::memory_order_relaxed);
  return QSLAW_CUDA_OK;
}

extern "C" int qslaw_w4_auto_wgmma(void) {
  return qslaw::cuda::autoWgmmaPolicy().load(std::memory_order_relaxed);
}
