//===- QMatmulW4Common.cuh - shared pieces of the w4 CUDA kernels ---------===//
//
// Packed weight layout ("fragment order"), shared by every kernel:
//
//   packed[nt][c][lane][w]   (uint32 words; one uint4 per lane)
//     nt   = n / 16            16-row tile (rows padded to a multiple of 16)
//     c    = k / 64            64-column chunk
//     lane = 4*g + t           g = (n % 16) % 8, t = (k % 64) / 16
//     w    = 2*h + (k % 16)/8  h = (n % 16) / 8
//     nibble inside the word: k % 8 = 2p + e  ->  bits [4*(p + 4*e), +4)
//
// So lane (g,t) of a warp holds, in one 128-bit load, rows g and g+8 of the
// tile at columns 16t..16t+15 of the chunk.  With the column permutation
//   mma column 2t+e (step s) -> logical k = 16t + 4s + e,
//   mma column 2t+8+e        -> logical k = 16t + 4s + 2 + e
// (applied identically to both mma operands, so the dot product is
// unchanged) those 32 codes are exactly the A fragments (rows = n) of four
// m16n8k16 steps, or the B fragments (cols = n) of two n8 tiles x four steps.
// Nibbles p and p+4 of a word are the two halves of one 32-bit fragment
// register, so one LOP3 (mask 0x000F000F | magic exponent) turns them into a
// packed half2/bfloat162 of 1024+q / 128+q.
//
//===----------------------------------------------------------------------===//
#pragma once

#include <cooperative_groups.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include <utility>

namespace qslaw {
namespace cuda {

struct Bf16Traits {
  using T = __nv_bfloat16;
  using T2 = __nv_bfloat162;
  static constexpr uint32_t kMagic = 0x43004300u; // bf16 128.0 | q
  __device__ static inline T2 bias() { return __float2bfloat162_rn(128.f); }
  __device__ static inline T2 splat(float v) {
    return __float2bfloat162_rn(v);
  }
  __device__ static inline T fromFloat(float v) { return __float2bfloat16_rn(v); }
  __device__ static inline float toFloat(T v) { return __bfloat162float(v); }
  __device__ static inline T2 pack(float a, float b) {
    return __floats2bfloat162_rn(a, b);
  }
  __device__ static inline float2 unpack(T2 v) { return __bfloat1622float2(v); }
};

struct Fp16Traits {
  using T = __half;
  using T2 = __half2;
  static constexpr uint32_t kMagic = 0x64006400u; // fp16 1024.0 | q
  __device__ static inline T2 bias() { return __float2half2_rn(1024.f); }
  __device__ static inline T2 splat(float v) { return __float2half2_rn(v); }
  __device__ static inline T fromFloat(float v) { return __float2half_rn(v); }
  __device__ static inline float toFloat(T v) { return __half2float(v); }
  __device__ static inline T2 pack(float a, float b) {
    return __floats2half2_rn(a, b);
  }
  __device__ static inline float2 unpack(T2 v) { return __half22float2(v); }
};

template <class V> __device__ inline uint32_t asU32(V v) {
  return *reinterpret_cast<uint32_t *>(&v);
}
template <class V> __device__ inline V fromU32(uint32_t u) {
  return *reinterpret_cast<V *>(&u);
}

// Dequantise the 8 codes of one packed word into 4 fragment registers.
// out[p] = (s*(q[2p]-z), s*(q[2p+1]-z)) as a packed pair.  q - bias is exact
// in both formats; the fma rounds once (fp16: nzs = -z*s rounded to fp16).
template <class TT>
__device__ inline void dequant8(uint32_t w, typename TT::T2 s2,
                                typename TT::T2 nzs2, uint32_t out[4]) {
  using T2 = typename TT::T2;
  const T2 b = TT::bias();
#pragma unroll
  for (int p = 0; p < 4; ++p) {
    uint32_t h = ((w >> (4 * p)) & 0x000F000Fu) | TT::kMagic;
    T2 q = __hsub2(fromU32<T2>(h), b);
    out[p] = asU32(__hfma2(q, s2, nzs2));
  }
}

template <class TT>
__device__ inline void mma16816(float c[4], const uint32_t a[4],
                                const uint32_t b[2]);

template <>
__device__ inline void mma16816<Bf16Traits>(float c[4], const uint32_t a[4],
                                            const uint32_t b[2]) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
               "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]),
                 "r"(b[1]));
}

template <>
__device__ inline void mma16816<Fp16Traits>(float c[4], const uint32_t a[4],
                                            const uint32_t b[2]) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
               "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]),
                 "r"(b[1]));
}

__device__ inline uint32_t smemAddr(const void *p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16-byte async copy global->shared; when !valid the destination is zeroed
// (src-size 0) and src is not read (it must still be a mapped address).
__device__ inline void cpAsync16(void *dst, const void *src, bool valid) {
  int n = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(
                   smemAddr(dst)),
               "l"(src), "r"(n));
}
// 4-byte async copy (scales); zero-fills when !valid.
__device__ inline void cpAsync4(void *dst, const void *src, bool valid) {
  int n = valid ? 4 : 0;
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(
                   smemAddr(dst)),
               "l"(src), "r"(n));
}
// Starts the copies of one 64-column chunk c of a BN-row weight tile from
// row n0: the fragment-ordered packed words (BN / 16 tiles x 32 uint4, rows
// past the last tile clamped and zero-filled) into dw, and the scales and
// zero points of the chunk's one or two groups into ds as [z?][group][BN]
// (G = 32: two groups per chunk; rows n >= N zero-filled).
template <int BN, int THREADS>
__device__ __forceinline__ void stageWeightChunk(
    uint4 *dw, float *ds, const uint4 *__restrict__ QW,
    const float *__restrict__ S, const float *__restrict__ Z, int tid, int n0,
    int c, int N, int KC, int J, int G) {
  const int NTILES = (N + 15) >> 4;
#pragma unroll
  for (int i = tid; i < (BN / 16) * 32; i += THREADS) {
    const int tl = i >> 5, ln = i & 31, ntile = (n0 >> 4) + tl;
    const uint4 *src =
        QW + ((size_t)(ntile < NTILES ? ntile : NTILES - 1) * KC + c) * 32 +
        ln;
    cpAsync16(dw + i, src, ntile < NTILES);
  }
  const int nslot = G == 32 ? 2 : 1;
  const int j0 = (c * 64) / G;
  for (int i = tid; i < 2 * nslot * BN; i += THREADS) {
    const int r = i % BN, q = i / BN, gs = q >> 1, isz = q & 1;
    const int n = n0 + r;
    const bool ok = n < N;
    const float *src = (isz ? Z : S) + (ok ? (size_t)n * J + j0 + gs : 0);
    cpAsync4(ds + (isz * 2 + gs) * BN + r, src, ok);
  }
}
// Same, with a compiler memory barrier: for code that reads the copied data
// without a __syncthreads() in between (per-thread rings).
__device__ inline void cpAsync16M(void *dst, const void *src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(
                   smemAddr(dst)),
               "l"(src)
               : "memory");
}
template <int N> __device__ inline void cpAsyncWaitM() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}
__device__ inline void cpAsyncCommitM() {
  asm volatile("cp.async.commit_group;\n" ::: "memory");
}
__device__ inline void cpAsyncCommit() {
  asm volatile("cp.async.commit_group;\n" ::);
}
template <int N> __device__ inline void cpAsyncWait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ inline void ldmatrixX4(uint32_t r[4], const void *p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smemAddr(p)));
}
__device__ inline void ldmatrixX4T(uint32_t r[4], const void *p) {
  asm volatile(
      "ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
      : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
      : "r"(smemAddr(p)));
}

// Streaming 128-bit load that does not allocate in L1 (weights are read
// exactly once; keep L1 for the activations).
__device__ inline uint4 ldgStream(const uint4 *p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

// Read-only 128-bit load through L1 (activations re-read by many blocks).
// volatile: issued in program order, i.e. before the weight it is paired
// with is waited on, so both latencies overlap.
__device__ inline uint4 ldgNc(const void *p) {
  uint4 v;
  asm volatile("ld.global.nc.v4.u32 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

inline int ceilDiv(int a, int b) { return (a + b - 1) / b; }

// Split-K / split-N reduction over a thread-block cluster (sm_90+): every
// block of the cluster holds a partial accumulator tile in registers. Each
// thread stores its NP float2 pairs to its own block's shared memory
// (`part`, NP * THREADS float2, pair-major so the accesses are coalesced);
// after a cluster barrier, block `rank` sums pairs e with e % size == rank
// over the shared memory of all blocks (distributed shared memory) and hands
// them to `emit(e, value)`. A second barrier keeps every block's shared
// memory alive until all peers have read it. No global workspace, no atomics.
template <int NP, int THREADS, class Emit>
__device__ inline void clusterReducePairs(const float2 (&v)[NP], float2 *part,
                                          Emit emit) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  namespace cg = cooperative_groups;
  cg::cluster_group cl = cg::this_cluster();
  const unsigned size = cl.num_blocks(), rank = cl.block_rank();
  const int tid = threadIdx.x;
#pragma unroll
  for (int e = 0; e < NP; ++e)
    part[e * THREADS + tid] = v[e];
  cl.sync();
#pragma unroll
  for (int e = 0; e < NP; ++e) {
    if ((unsigned)e % size != rank)
      continue;
    float2 sum = make_float2(0.f, 0.f);
    for (unsigned r = 0; r < size; ++r) {
      const float2 *p = cl.map_shared_rank(part, r);
      const float2 x = p[e * THREADS + tid];
      sum.x += x.x;
      sum.y += x.y;
    }
    emit(e, sum);
  }
  cl.sync();
#else
  __trap(); // never launched below sm_90 (the host checks)
#endif
}

// Multiprocessor count and compute capability of the current device
// (cached per device).
inline bool deviceInfo(int *sms, int *major) {
  static int cache[64][2];
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || dev < 0 || dev >= 64)
    return false;
  if (cache[dev][0] == 0) {
    int a = 0, b = 0;
    if (cudaDeviceGetAttribute(&a, cudaDevAttrMultiProcessorCount, dev) !=
            cudaSuccess ||
        cudaDeviceGetAttribute(&b, cudaDevAttrComputeCapabilityMajor, dev) !=
            cudaSuccess)
      return false;
    cache[dev][1] = b;
    cache[dev][0] = a;
  }
  *sms = cache[dev][0];
  *major = cache[dev][1];
  return true;
}

// Split factor S (1, 2, 4 or 8) for a grid of `blocks` tiles. slots[i] is
// how many blocks of a (1,1,2^i) cluster launch can be resident at once
// (cudaOccupancyMaxActiveClusters * 2^i; slots[0] = blocks per SM * SMs).
// Only grids that fill less than half a wave are split, into the largest S
// that still fits in one wave with at least minPer units of serial work per
// split (measured on H100: splitting a grid of more than half a wave, or
// into a second wave, costs more than it gains).
inline int pickSplit(long blocks, const int slots[4], int units, int minPer) {
  if (blocks * 2 > slots[0])
    return 1;
  int best = 1;
  for (int i = 1; i < 4; ++i) {
    const int s = 1 << i;
    if (units / s >= minPer && blocks * s <= slots[i])
      best = s;
  }
  return best;
}

// Fill slots[] (see pickSplit) for a kernel and its cluster twin.
template <class K1, class K2>
inline void splitSlots(K1 kern, K2 kernS, int threads, size_t smem, int sms,
                       bool clusters, int slots[4]) {
  int o = 0;
  if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&o, kern, threads, smem) !=
          cudaSuccess ||
      o < 1)
    o = 1;
  slots[0] = o * sms;
  for (int i = 1; i < 4; ++i) {
    slots[i] = 0;
    if (!clusters)
      continue;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3(1, 1, 1 << i);
    cfg.blockDim = dim3(threads);
    cfg.dynamicSmemBytes = smem;
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeClusterDimension;
    attr[0].val.clusterDim.x = 1;
    attr[0].val.clusterDim.y = 1;
    attr[0].val.clusterDim.z = 1 << i;
    cfg.attrs = attr;
    cfg.numAttrs = 1;
    int n = 0;
    if (cudaOccupancyMaxActiveClusters(&n, kernS, &cfg) == cudaSuccess)
      slots[i] = n << i;
    else
      (void)cudaGetLastError(); // clear; no split of this size
  }
}

// Launch `kern` with a (1, 1, split) cluster over grid (gx, gy, split).
template <class... Args, class... Act>
inline cudaError_t launchCluster(void (*kern)(Args...), int gx, int gy,
                                 int split, int threads, size_t smem,
                                 cudaStream_t st, Act &&...args) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(gx, gy, split);
  cfg.blockDim = dim3(threads);
  cfg.dynamicSmemBytes = smem;
  cfg.stream = st;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeClusterDimension;
  attr[0].val.clusterDim.x = 1;
  attr[0].val.clusterDim.y = 1;
  attr[0].val.clusterDim.z = split;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  return cudaLaunchKernelEx(&cfg, kern, std::forward<Act>(args)...);
}

} // namespace cuda
} // namespace qslaw
