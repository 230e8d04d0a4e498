//===- WeightRows.h - gamma mode's full-precision weight, as stored -*- C++ -*-===//
//
// Gamma mode re-quantises the model's own weight every step, so its kernels
// (quantize, dgamma) read that weight where the model keeps it: rows of
// [N, K] or the [K, N] an ONNX MatMul initializer stores, in f32, bf16 or
// f16. Blocks of rows reach the kernels as f32 rows: in place for f32 rows,
// else widened (exactly) and/or transposed into a per-thread scratch.
//
//===----------------------------------------------------------------------===//
#ifndef QSLAW_RUNTIME_UKERNELS_WEIGHTROWS_H
#define QSLAW_RUNTIME_UKERNELS_WEIGHTROWS_H

#include <cstdint>

namespace qslaw::ukernels {

enum class WeightType { F32, BF16, F16 };

/// [nb, K] rows of w(n, k) = src[k * lds + n] (a [K, N]-stored weight)
/// into dst (row stride K), or of w(n, k) = src[n * lds + k] for
/// RowsFn (rows as stored, 16-bit types only), widened to f32.
using BlockFn = void (*)(const void *src, int64_t lds, int64_t nb, int64_t K,
                         float *dst);

/// The type a *_w16 kernel's 16-bit operand has (QSLAW_WEIGHT_BF16 /
/// QSLAW_WEIGHT_F16); any other value aborts, naming it.
WeightType weight16(int wType);

/// The instruction set's copy of rows as stored (src[r*lds + k], nb rows
/// of K) into dst [nb, K] widened to f32, for a 16-bit type.
BlockFn widenRowsFor(WeightType type);

/// The full-precision weight of gamma mode, w(n,k) at element
/// n*strideN + k*strideK of `w`: rows as stored, or its [K, N] transpose.
/// Any other strides abort, naming `kernel`.
class WeightRows {
public:
  WeightRows(const char *kernel, WeightType type, const void *w,
             int64_t strideN, int64_t strideK, int64_t N, int64_t K);

  bool rowsStored() const { return strideK == 1; }
  /// Blocks are the weight itself (f32 rows): no scratch.
  bool inPlace() const { return rowsStored() && type == WeightType::F32; }

  /// Columns of one block: whole groups of at least 256 when the weight is
  /// stored as [K, N] (all of K when a group spans it), so that a block of
  /// rows can be wide (256 for a 256-column chunk) and its copy reads long
  /// runs from each stored row. (Whole rows per block, 64 of them for
  /// K = 1024: quantize 2816 x 1024 took 2.09 ms on one thread against
  /// 1.85 ms in chunks; the same on two. Either way the loads of the stored
  /// rows wait on memory.) All of K for rows as stored.
  int64_t chunk(int64_t G) const;

  /// W[n0 : n0 + nb, k0 : k0 + kw] as f32 rows: in place, or copied into
  /// `scratch` ([nb, kw], unused when inPlace()); `ld` is its row stride.
  const float *block(int64_t n0, int64_t nb, int64_t k0, int64_t kw,
                     float *scratch, int64_t &ld) const;

private:
  WeightType type;
  const void *w;
  int64_t strideN, strideK, K;
  BlockFn copy; // the instruction set's copy for this type and layout
};

} // namespace qslaw::ukernels

#endif // QSLAW_RUNTIME_UKERNELS_WEIGHTROWS_H
