//===- QMatmulKernels.h - Hand-tuned CUDA kernels for w4 quantised matmul -===//
//
// C ABI of qslaw's hand-written CUDA kernels for group-wise asymmetric 4-bit
// weights (see docs/CUDA.md for the design and the packed layout).
//
//   Ŵ[n,k] = s[n,j] * (q[n,k] - z[n,j]),  j = k / G,  q in [0,15]
//
// Conventions shared by every entry point:
//   * All pointers are device pointers; `stream` is a cudaStream_t (may be
//     NULL for the legacy default stream). Calls are asynchronous.
//   * Activations / activation gradients are row-major, bf16 or fp16
//     (`dtype`); accumulation is fp32.
//   * `qw` is the packed weight produced by qslaw_w4_pack (device) or by the
//     Python `pack_w4` helper in lib/CUDA/Kernels/qmatmul_w4.py: 4-bit codes
//     reordered offline into mma.sync fragment order, qslaw_w4_packed_bytes()
//     bytes. Rows are padded up to a multiple of 16 with zero codes.
//   * s, z, gamma, and the produced ds/dgamma are fp32 row-major [N, K/G].
//   * Shape requirements: G in {32, 64, 128}; K % 64 == 0; K % G == 0;
//     N % 8 == 0 (16-byte rows for the activation-gradient tiles); M, N >= 1.
//   * Return value: QSLAW_CUDA_OK or one of the error codes below; a launch
//     error is reported through cudaGetLastError() right after the launch.
//
//===----------------------------------------------------------------------===//

#ifndef QSLAW_CUDA_QMATMULKERNELS_H
#define QSLAW_CUDA_QMATMULKERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  QSLAW_CUDA_BF16 = 0,
  QSLAW_CUDA_FP16 = 1,
} qslaw_cuda_dtype_t;

typedef enum {
  QSLAW_CUDA_OK = 0,
  QSLAW_CUDA_EINVAL = 1,      // bad shape / group size / null pointer
  QSLAW_CUDA_EDTYPE = 2,      // unknown dtype enum
  QSLAW_CUDA_ELAUNCH = 3,     // CUDA reported an error at launch
} qslaw_cuda_status_t;

// Forward-path selection for qslaw_w4_forward_ex (benchmarks / tests).
typedef enum {
  QSLAW_W4_PATH_AUTO = 0,
  QSLAW_W4_PATH_GEMV = 1,     // small-M path, requires M <= 16
  QSLAW_W4_PATH_TC_128x128 = 2,
  QSLAW_W4_PATH_TC_64x128 = 3,
  QSLAW_W4_PATH_TC_64x64 = 4,
  QSLAW_W4_PATH_TC_128x256 = 5,
  // Hopper (sm_90a only, else QSLAW_CUDA_EINVAL): the weight tile is
  // dequantised once into shared memory and multiplied by wgmma; BMxBN.
  // Never split. Not chosen by AUTO until measured on a GPU (docs/CUDA.md).
  QSLAW_W4_PATH_WGMMA_128x256 = 6,
  QSLAW_W4_PATH_WGMMA_128x128 = 7,
  QSLAW_W4_PATH_WGMMA_256x128 = 8,
} qslaw_w4_path_t;

// Bytes of the packed weight for an [N, K] code matrix.
size_t qslaw_w4_packed_bytes(int N, int K);

// Device-side packing: codes uint8 [N, K] (values 0..15, row-major) ->
// packed (qslaw_w4_packed_bytes(N, K) bytes). Same layout as pack_w4().
int qslaw_w4_pack(const uint8_t *codes, uint32_t *qw, int N, int K,
                  void *stream);

// Y[M,N] = X[M,K] · Ŵᵀ  (dequantisation fused, Ŵ never materialised).
int qslaw_w4_forward(const void *x, const uint32_t *qw, const float *s,
                     const float *z, void *y, int M, int N, int K, int G,
                     int dtype, void *stream);
int qslaw_w4_forward_ex(const void *x, const uint32_t *qw, const float *s,
                        const float *z, void *y, int M, int N, int K, int G,
                        int dtype, int path, void *stream);
// As qslaw_w4_forward_ex with an explicit split-K factor for the
// tensor-core paths: 0 = automatic (split over a thread-block cluster on
// sm_90+ when the tile grid is smaller than one wave), 1 = no split,
// 2/4/8 = forced (sm_90+ only, the 128x256 tile never splits; otherwise
// QSLAW_CUDA_EINVAL). The partial tiles are summed through distributed
// shared memory: no workspace, deterministic.
int qslaw_w4_forward_split(const void *x, const uint32_t *qw, const float *s,
                           const float *z, void *y, int M, int N, int K, int G,
                           int dtype, int path, int split, void *stream);

// dX[M,K] = dY[M,N] · Ŵ.
int qslaw_w4_grad_input(const void *dy, const uint32_t *qw, const float *s,
                        const float *z, void *dx, int M, int N, int K, int G,
                        int dtype, void *stream);
// As qslaw_w4_grad_input with an explicit split of the reduction over N:
// 0 = automatic, 1 = none, 2/4/8 = forced (sm_90+ only; cluster + DSMEM).
int qslaw_w4_grad_input_ex(const void *dy, const uint32_t *qw, const float *s,
                           const float *z, void *dx, int M, int N, int K,
                           int G, int dtype, int split, void *stream);

// As qslaw_w4_grad_input_ex with a kernel selection (qslaw_w4_grad_path_t,
// below): AUTO / MMA = the mma.sync kernels; WGMMA = the sm_90a kernel
// (QSLAW_CUDA_EINVAL elsewhere, and with split > 1: it never splits).
int qslaw_w4_grad_input_split(const void *dy, const uint32_t *qw,
                              const float *s, const float *z, void *dx, int M,
                              int N, int K, int G, int dtype, int path,
                              int split, void *stream);

// Scale mode: ds[n,j] = Σ_t dY[t,n] · Σ_{k∈j} X[t,k]·(q[n,k] − z[n,j]).
// One GEMM over the T tokens with a multiply-and-group-reduce epilogue; the
// [N,K] weight gradient is never stored.
int qslaw_w4_grad_scale(const void *dy, const void *x, const uint32_t *qw,
                        const float *z, float *ds, int T, int N, int K, int G,
                        int dtype, void *stream);

// Kernel selection for qslaw_w4_grad_input_split and the _ex forms of the
// two fused group gradients.
typedef enum {
  QSLAW_W4_GRAD_AUTO = 0,  // mma.sync (wgmma: see qslaw_w4_set_auto_wgmma)
  QSLAW_W4_GRAD_MMA = 1,   // mma.sync (sm_80+)
  // sm_90a only (else QSLAW_CUDA_EINVAL): the dYᵀX tile on wgmma. Not
  // chosen by AUTO until measured on a GPU (docs/CUDA.md).
  QSLAW_W4_GRAD_WGMMA = 2,
} qslaw_w4_grad_path_t;
int qslaw_w4_grad_scale_ex(const void *dy, const void *x, const uint32_t *qw,
                           const float *z, float *ds, int T, int N, int K,
                           int G, int dtype, int path, void *stream);

// Whether the AUTO selections may choose the sm_90a wgmma kernels: the
// forward for M >= 512 (128x256 tile, unless a split is forced), ∂X for
// M >= 512 (unless a split is forced), ∂s / ∂γ for T >= 512; on other
// devices AUTO is unchanged. Off by default until measured on a GPU
// (docs/CUDA.md); the environment variable QSLAW_W4_AUTO_WGMMA=1 turns it on
// at load. qslaw_w4_set_auto_wgmma takes 0 or 1 (else QSLAW_CUDA_EINVAL);
// qslaw_w4_auto_wgmma returns the current setting.
int qslaw_w4_set_auto_wgmma(int on);
int qslaw_w4_auto_wgmma(void);

// Gamma mode: dγ[n,j] = −(1/γ²)·Σ_{k∈j} m[n,k]·W[n,k]·Gw[n,k], Gw = dYᵀX,
// m = [0 <= round(W/(s·γ)) + z <= qmax] (round half to even). W is the full
// precision weight [N,K] in `dtype`.
int qslaw_w4_grad_gamma(const void *dy, const void *x, const void *w,
                        const float *s, const float *z, const float *gamma,
                        float *dgamma, int T, int N, int K, int G, int qmax,
                        int dtype, void *stream);
int qslaw_w4_grad_gamma_ex(const void *dy, const void *x, const void *w,
                           const float *s, const float *z, const float *gamma,
                           float *dgamma, int T, int N, int K, int G, int qmax,
                           int dtype, int path, void *stream);

// --- Conversions for f32 graphs (lib/CUDA/Kernels/QMatmulW4F32.cu) -------
// Compiled graphs keep f32 activations and 4-bit codes / zero points packed
// two per byte (linear index i in byte i/2, low nibble first). The runtime
// (lib/Runtime/CUDA/HandKernels.cpp) converts around the kernels above.

// codes: nibble-packed [N, K]; bytes: N*K bytes of scratch; qw as from
// qslaw_w4_pack.
int qslaw_w4_pack_nibbles(const uint8_t *codes, uint8_t *bytes, uint32_t *qw,
                          int N, int K, void *stream);
// z[i] = zero point i of nibble-packed `zeros`, or 8 for every i when
// `zeros` is NULL (symmetric).
int qslaw_w4_zeros_to_f32(const uint8_t *zeros, float *z, int64_t count,
                          void *stream);
// xa[i] = x[i] rounded to `dtype` (nearest even).
int qslaw_f32_to_act(const float *x, void *xa, int64_t count, int dtype,
                     void *stream);
// y[m, n] = ya[m, n] (+ bias[n] when bias is not NULL), in f32.
int qslaw_act_to_f32(const void *ya, const float *bias, float *y, int64_t M,
                     int64_t N, int dtype, void *stream);

#ifdef __cplusplus
} // extern "C"
#endif

#endif // QSLAW_CUDA_QMATMULKERNELS_H
