//===- QMatmulW4Hopper.cuh - the sm_90a forward kernels' host entry -------===//
//
// QMatmulW4FwdHopper.cu (forward) and QMatmulW4GradHopper.cu (fused ∂s /
// ∂γ) hold the wgmma kernels; the dispatch in QMatmulW4Fwd.cu / Bwd.cu
// reaches them through the host functions below. The device helpers are
// the shared-memory layout both use.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "QMatmulW4Common.cuh"

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

// True on an sm_90 device (the only one the sm_90a code runs on); false,
// with *ok = false, when the device cannot be queried.
bool isSm90(bool *ok);

} // namespace cuda
} // namespace qslaw
