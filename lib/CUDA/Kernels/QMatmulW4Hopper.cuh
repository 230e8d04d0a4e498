//===- QMatmulW4Hopper.cuh - shared pieces of the sm_90a kernels ----------===//
//
// QMatmulW4FwdHopper.cu (forward), QMatmulW4GradInputHopper.cu (∂X) and
// QMatmulW4GradHopper.cu (fused ∂s / ∂γ) hold the wgmma kernels; the
// dispatch in QMatmulW4Fwd.cu / Bwd.cu reaches them through the host
// functions below. The device helpers are the shared-memory layout, the
// launch and the accumulator store they share. (Their main loops stay in
// each kernel: a shared loop taking lambdas made ptxas serialise the MMAs
// and spill more; see docs/CUDA.md.)
//
//===----------------------------------------------------------------------===//
#pragma once

#include "QMatmulW4Common.cuh"

#include "qslaw/CUDA/QMatmulKernels.h"

namespace qslaw {
namespace cuda {

// Every wgmma operand tile is made of 128-byte rows with the 128-byte
// swizzle: 16-byte unit u of row r is stored at unit u ^ (r % 8), from a
// 1024-byte aligned base (the hardware applies the XOR to address bits).
constexpr int kRowBytes = 128;

// Byte offset of 16-byte unit u (0..7) of row r in a swizzled tile.
__device__ inline uint32_t swizzled(int r, int u) {
  return (uint32_t)(r * kRowBytes + ((u ^ (r & 7)) << 4));
}

// Shared-memory matrix descriptor, 128-byte swizzle (PTX ISA "Matrix
// Descriptor Format"): start address, leading and stride byte offsets (all
// >> 4). K-major: SBO = 1024 (8-row groups), LBO unused (16). M/N-major:
// LBO = distance between 64-element blocks along M/N, SBO = 1024 (groups of
// 8 rows along K).
__device__ inline uint64_t sw128Desc(uint32_t saddr, uint32_t lbo = 16) {
  return (uint64_t)((saddr & 0x3FFFF) >> 4) |
         ((uint64_t)((lbo >> 4) & 0x3FFF) << 16) |
         ((uint64_t)(1024 >> 4) << 32) | ((uint64_t)1 << 62);
}

// Stores a warpgroup's 64 x BN f32 accumulator (the wgmma D fragment:
// acc[4j + r] is row 16·(warp % 4) + g + 8·(r / 2), column 8j + 2t + r % 2)
// as TT::T into the row-major [rows, cols] matrix Y at (m0, n0), m0 being
// the warpgroup's first row; elements outside Y are skipped.
template <class TT, int BN>
__device__ __forceinline__ void storeAccTile(const float (&acc)[BN / 2],
                                    typename TT::T *Y, int rows, int cols,
                                    int m0, int n0) {
  using T = typename TT::T;
  using T2 = typename TT::T2;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int j = 0; j < BN / 8; ++j)
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
      const int m = m0 + (warp & 3) * 16 + g + 8 * hh;
      const int n = n0 + 8 * j + 2 * t;
      if (m >= rows || n >= cols)
        continue;
      T *yp = Y + (size_t)m * cols + n;
      const float v0 = acc[4 * j + 2 * hh], v1 = acc[4 * j + 2 * hh + 1];
      if (n + 1 < cols)
        *reinterpret_cast<T2 *>(yp) = TT::pack(v0, v1);
      else
        *yp = TT::fromFloat(v0);
    }
}

// Raises KERN's dynamic shared-memory limit to `smem` bytes, once per
// kernel; false if the device refuses.
template <auto KERN> bool allowDynamicSmem(int smem) {
  static bool configured = false;
  if (!configured)
    configured = cudaFuncSetAttribute(
                     KERN, cudaFuncAttributeMaxDynamicSharedMemorySize,
                     smem) == cudaSuccess;
  return configured;
}

// Launches KERN, a kernel of the (activations, packed weight, s, z, output,
// M, N, K, G) form, with `smem` bytes of dynamic shared memory.
template <class TT, auto KERN>
int launchPackedKernel(dim3 grid, int threads, int smem, const void *a,
                       const uint32_t *qw, const float *s, const float *z,
                       void *out, int M, int N, int K, int G,
                       cudaStream_t st) {
  if (!allowDynamicSmem<KERN>(smem))
    return QSLAW_CUDA_ELAUNCH;
  KERN<<<grid, threads, smem, st>>>(static_cast<const typename TT::T *>(a),
                                    reinterpret_cast<const uint4 *>(qw), s, z,
                                    static_cast<typename TT::T *>(out), M, N,
                                    K, G);
  return cudaGetLastError() == cudaSuccess ? QSLAW_CUDA_OK
                                           : QSLAW_CUDA_ELAUNCH;
}

// True for the QSLAW_W4_PATH_WGMMA_* paths.
bool isWgmmaPath(int path);

// Y = X · Ŵᵀ on the wgmma path `path`; QSLAW_CUDA_EINVAL unless the device
// is sm_90 (the kernels are sm_90a code).
int forwardWgmma(int path, bool bf16, const void *x, const uint32_t *qw,
                 const float *s, const float *z, void *y, int M, int N, int K,
                 int G, cudaStream_t st);

// Fused ∂s (gamma = false) or ∂γ on wgmma: the dYᵀX tile over all T
// tokens with the group-reduce epilogue of qslaw_w4_grad_scale / _gamma.
// QSLAW_CUDA_EINVAL unless the device is sm_90.
int gradGroupWgmma(bool gamma, bool bf16, const void *dy, const void *x,
                   const uint32_t *qw, const void *w, const float *s,
                   const float *z, const float *gam, float *out, int T, int N,
                   int K, int G, int qmax, cudaStream_t st);

// dX = dY · Ŵ on wgmma (QMatmulW4GradInputHopper.cu). QSLAW_CUDA_EINVAL
// unless the device is sm_90.
int gradInputWgmma(bool bf16, const void *dy, const uint32_t *qw,
                   const float *s, const float *z, void *dx, int M, int N,
                   int K, int G, cudaStream_t st);

// True when AUTO may choose the wgmma kernels: the policy
// (qslaw_w4_set_auto_wgmma, QSLAW_W4_AUTO_WGMMA) is on and the device is
// sm_90.
bool autoWgmma();

// True on an sm_90 device (the only one the sm_90a code runs on); false,
// with *ok = false, when the device cannot be queried.
bool isSm90(bool *ok);

} // namespace cuda
} // namespace qslaw
