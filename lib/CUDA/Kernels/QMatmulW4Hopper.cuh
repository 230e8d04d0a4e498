//===- QMatmulW4Hopper.cuh - the sm_90a forward kernels' host entry -------===//
//
// QMatmulW4FwdHopper.cu holds the wgmma forward; QMatmulW4Fwd.cu's
// dispatch reaches it through these two functions.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "QMatmulW4Common.cuh"

namespace qslaw {
namespace cuda {

// True for the QSLAW_W4_PATH_WGMMA_* paths.
bool isWgmmaPath(int path);

// Y = X · Ŵᵀ on the wgmma path `path`; QSLAW_CUDA_EINVAL unless the device
// is sm_90 (the kernels are sm_90a code).
int forwardWgmma(int path, bool bf16, const void *x, const uint32_t *qw,
                 const float *s, const float *z, void *y, int M, int N, int K,
                 int G, cudaStream_t st);

} // namespace cuda
} // namespace qslaw
