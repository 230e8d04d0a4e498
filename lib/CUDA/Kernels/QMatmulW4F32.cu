//===- QMatmulW4F32.cu - conversions between f32 graphs and the w4 kernels -===//
//
// The kernels take bf16/fp16 activations and codes in mma fragment order;
// compiled graphs hold f32 activations and nibble-packed codes. These
// elementwise kernels convert on the caller's stream (one stream, in
// order: no synchronisation needed, docs/CUDA.md).
//
//===----------------------------------------------------------------------===//
#include "QMatmulW4Common.cuh"
#include "qslaw/CUDA/QMatmulKernels.h"

namespace {

// Grid-stride loops: 1024 blocks of 256 threads cover any size.
constexpr int kBlocks = 1024, kThreads = 256;

int launchStatus() {
  return cudaGetLastError() == cudaSuccess ? QSLAW_CUDA_OK
                                           : QSLAW_CUDA_ELAUNCH;
}

__global__ void unpackNibbles(const uint8_t *__restrict__ in,
                              uint8_t *__restrict__ out, int64_t count) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count;
       i += int64_t(gridDim.x) * blockDim.x)
    out[i] = (in[i >> 1] >> ((i & 1) * 4)) & 0xF;
}

__global__ void zerosToF32(const uint8_t *__restrict__ in,
                           float *__restrict__ out, int64_t count) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count;
       i += int64_t(gridDim.x) * blockDim.x)
    out[i] = in ? float((in[i >> 1] >> ((i & 1) * 4)) & 0xF) : 8.0f;
}

template <typename T>
__global__ void f32ToAct(const float *__restrict__ in, T *__restrict__ out,
                         int64_t count) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count;
       i += int64_t(gridDim.x) * blockDim.x)
    out[i] = T(in[i]); // __float2bfloat16 / __float2half: round to nearest even
}

template <typename T>
__global__ void actToF32(const T *__restrict__ in,
                         const float *__restrict__ bias,
                         float *__restrict__ out, int64_t m, int64_t n) {
  int64_t count = m * n;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count;
       i += int64_t(gridDim.x) * blockDim.x)
    out[i] = float(in[i]) + (bias ? bias[i % n] : 0.0f);
}

} // namespace

extern "C" int qslaw_w4_pack_nibbles(const uint8_t *codes, uint8_t *bytes,
                                     uint32_t *qw, int N, int K,
                                     void *stream) {
  if (!codes || !bytes || !qw || N < 1 || K < 64 || K % 64)
    return QSLAW_CUDA_EINVAL;
  cudaStream_t st = static_cast<cudaStream_t>(stream);
  unpackNibbles<<<kBlocks, kThreads, 0, st>>>(codes, bytes, int64_t(N) * K);
  if (int rc = launchStatus())
    return rc;
  return qslaw_w4_pack(bytes, qw, N, K, stream);
}

extern "C" int qslaw_w4_zeros_to_f32(const uint8_t *zeros, float *z,
                                     int64_t count, void *stream) {
  if (!z || count < 1)
    return QSLAW_CUDA_EINVAL;
  zerosToF32<<<kBlocks, kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      zeros, z, count);
  return launchStatus();
}

extern "C" int qslaw_f32_to_act(const float *x, void *xa, int64_t count,
                                int dtype, void *stream) {
  if (!x || !xa || count < 1)
    return QSLAW_CUDA_EINVAL;
  cudaStream_t st = static_cast<cudaStream_t>(stream);
  if (dtype == QSLAW_CUDA_BF16)
    f32ToAct<<<kBlocks, kThreads, 0, st>>>(x, static_cast<__nv_bfloat16 *>(xa),
                                           count);
  else if (dtype == QSLAW_CUDA_FP16)
    f32ToAct<<<kBlocks, kThreads, 0, st>>>(x, static_cast<__half *>(xa), count);
  else
    return QSLAW_CUDA_EDTYPE;
  return launchStatus();
}

extern "C" int qslaw_act_to_f32(const void *ya, const float *bias, float *y,
                                int64_t M, int64_t N, int dtype,
                                void *stream) {
  if (!ya || !y || M < 1 || N < 1)
    return QSLAW_CUDA_EINVAL;
  cudaStream_t st = static_cast<cudaStream_t>(stream);
  if (dtype == QSLAW_CUDA_BF16)
    actToF32<<<kBlocks, kThreads, 0, st>>>(
        static_cast<const __nv_bfloat16 *>(ya), bias, y, M, N);
  else if (dtype == QSLAW_CUDA_FP16)
    actToF32<<<kBlocks, kThreads, 0, st>>>(static_cast<const __half *>(ya),
                                           bias, y, M, N);
  else
    return QSLAW_CUDA_EDTYPE;
  return launchStatus();
}
