//===- QuantMath.h - scalar quantisation math shared by folds/passes -----===//
//
// The exact per-element arithmetic of QSLAW.md, in one place so that constant
// folding, the weight-quantisation pass and unit tests agree bit for bit.
//
//===----------------------------------------------------------------------===//
#ifndef QSLAW_QUANT_QUANTMATH_H
#define QSLAW_QUANT_QUANTMATH_H

#include <cstdint>
#include <vector>

namespace mlir::qslaw::quant {

/// Round half to even (as torch.round and ONNX QuantizeLinear), in float.
float roundHalfEven(float v);

/// clamp(roundHalfEven(w / s) + z, 0, qmax); division in f32 like the
/// reference implementations.
int64_t quantizeValue(float w, float s, int64_t z, int64_t qmax);

/// quantizeValue of `len` weights into `out` (bytes), vectorised: the same
/// codes (qmax at most 255).
void groupCodes(const float *src, int64_t len, float scale, int64_t zero,
                int64_t qmax, uint8_t *out);

/// The min and max of `len` (> 0) weights, vectorised: those of a scan in
/// order with std::min/std::max (NaN included), up to the sign of a zero.
void groupRange(const float *src, int64_t len, float &lo, float &hi);

/// s * (q - z), in f32.
inline float dequantizeValue(int64_t q, float s, int64_t z) {
  return s * static_cast<float>(q - z);
}

/// Scale and zero point of one group from its min/max (min-max / RTN init).
/// Symmetric specs use a fixed zero point 2^(bits-1) and s = max|w| / (qmax - z)
/// so that the range covers both signs.
struct GroupParams {
  float scale;
  int64_t zero;
};
GroupParams minMaxParams(float lo, float hi, int64_t qmax, bool symmetric,
                         int64_t symZero);

/// Quantisation of one row-major [N, K] float weight into codes, scales and
/// zero points ([N, J] row-major), with an optional clipping search: for each
/// group, candidates alpha in (0.5, 1] shrink [min, max] and the one with the
/// smallest squared reconstruction error wins.
struct QuantizedMatrix {
  std::vector<uint8_t> codes;  // [N*K], one code per byte
  std::vector<float> scales;   // [N*J]
  std::vector<uint8_t> zeros;  // [N*J]
};
QuantizedMatrix quantizeMatrix(const float *w, int64_t n, int64_t k,
                               int64_t group, unsigned bits, bool symmetric,
                               int clipSteps);

} // namespace mlir::qslaw::quant

#endif // QSLAW_QUANT_QUANTMATH_H
