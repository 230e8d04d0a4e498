//===- QuantMath.cpp - scalar quantisation math ---------------------------===//
#include "qslaw/Quant/QuantMath.h"

#include <algorithm>
#include <cmath>

namespace mlir::qslaw::quant {

float roundHalfEven(float v) { return std::nearbyint(v); }

int64_t quantizeValue(float w, float s, int64_t z, int64_t qmax) {
  float u = w / s;
  if (std::isnan(u))
    return std::clamp<int64_t>(z, 0, qmax);
  // Clamp before converting so that huge ratios do not overflow int64.
  u = std::clamp(roundHalfEven(u), -4.0e9f, 4.0e9f);
  return std::clamp<int64_t>(static_cast<int64_t>(u) + z, 0, qmax);
}

namespace {
// The codes of one group, equal to quantizeValue's: in float, round(w / s)
// + z is exact while |round(w / s)| < 2^24, and past that both clamp to
// the same end; NaN gives z. Written once, compiled for AVX-512, AVX2 and
// the baseline, so that the vectoriser turns the rounding into vroundps
// where the scalar loop called nearbyintf per weight.
#define QSLAW_GROUP_CODES_BODY                                                 \
  for (int64_t i = 0; i < len; ++i) {                                          \
    float c = __builtin_rintf(src[i] / s) + z;                                 \
    c = c != c ? z : c < 0.f ? 0.f : c > qmax ? qmax : c;                      \
    out[i] = uint8_t(int32_t(c));                                              \
  }

void groupCodesBaseline(const float *src, int64_t len, float s, float z,
                        float qmax, uint8_t *out) {
  QSLAW_GROUP_CODES_BODY
}
#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) void
groupCodesAvx2(const float *src, int64_t len, float s, float z, float qmax,
               uint8_t *out) {
  QSLAW_GROUP_CODES_BODY
}
__attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma"))) void
groupCodesAvx512(const float *src, int64_t len, float s, float z, float qmax,
                 uint8_t *out) {
  QSLAW_GROUP_CODES_BODY
}
#endif
#undef QSLAW_GROUP_CODES_BODY

// A group's min and max in 16 independent lanes (so that the loop
// vectorises; the sequential scan's comparisons are kept per lane), and
// whether it holds a NaN, in which case the caller scans it in order. Without
// NaN the lanes' min and max are the scan's, up to the sign of a zero, which
// no quantisation parameter depends on.
#define QSLAW_GROUP_RANGE_BODY                                                 \
  float los[16], his[16];                                                      \
  bool nan = false;                                                            \
  for (int l = 0; l < 16; ++l)                                                 \
    los[l] = his[l] = src[0];                                                  \
  int64_t i = 0;                                                               \
  for (; i + 16 <= len; i += 16)                                               \
    for (int l = 0; l < 16; ++l) {                                             \
      const float x = src[i + l];                                              \
      nan |= x != x;                                                           \
      los[l] = x < los[l] ? x : los[l];                                        \
      his[l] = x > his[l] ? x : his[l];                                        \
    }                                                                          \
  for (; i < len; ++i) {                                                       \
    const float x = src[i];                                                    \
    nan |= x != x;                                                             \
    los[0] = x < los[0] ? x : los[0];                                          \
    his[0] = x > his[0] ? x : his[0];                                          \
  }                                                                            \
  for (int l = 1; l < 16; ++l) {                                               \
    los[0] = los[l] < los[0] ? los[l] : los[0];                                \
    his[0] = his[l] > his[0] ? his[l] : his[0];                                \
  }                                                                            \
  lo = los[0];                                                                 \
  hi = his[0];                                                                 \
  return !nan;

bool groupRangeBaseline(const float *src, int64_t len, float &lo, float &hi) {
  QSLAW_GROUP_RANGE_BODY
}
#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) bool
groupRangeAvx2(const float *src, int64_t len, float &lo, float &hi) {
  QSLAW_GROUP_RANGE_BODY
}
__attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma"))) bool
groupRangeAvx512(const float *src, int64_t len, float &lo, float &hi) {
  QSLAW_GROUP_RANGE_BODY
}
#endif
#undef QSLAW_GROUP_RANGE_BODY

int bestIsa() { // 0 baseline, 1 AVX2, 2 AVX-512
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl"))
    return 2;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    return 1;
#endif
  return 0;
}

/// The variant compiled for the CPU this runs on.
template <typename Fn> Fn forThisCpu(Fn avx512, Fn avx2, Fn baseline) {
  switch (bestIsa()) {
  case 2:
    return avx512;
  case 1:
    return avx2;
  default:
    return baseline;
  }
}
#if defined(__x86_64__)
#define QSLAW_FOR_THIS_CPU(name)                                               \
  forThisCpu(name##Avx512, name##Avx2, name##Baseline)
#else
#define QSLAW_FOR_THIS_CPU(name) name##Baseline
#endif
} // namespace

void groupRange(const float *src, int64_t len, float &lo, float &hi) {
  static const auto fn = QSLAW_FOR_THIS_CPU(groupRange);
  if (len > 0 && fn(src, len, lo, hi))
    return;
  // In order, as the NaNs fall (std::min/max keep the first operand when a
  // comparison with NaN is false).
  lo = hi = src[0];
  for (int64_t i = 1; i < len; ++i) {
    lo = std::min(lo, src[i]);
    hi = std::max(hi, src[i]);
  }
}

void groupCodes(const float *src, int64_t len, float scale, int64_t zero,
                int64_t qmax, uint8_t *out) {
  static const auto fn = QSLAW_FOR_THIS_CPU(groupCodes);
  fn(src, len, scale, float(zero), float(qmax), out);
}

GroupParams minMaxParams(float lo, float hi, int64_t qmax, bool symmetric,
                         int64_t symZero) {
  if (symmetric) {
    float absMax = std::max(std::fabs(lo), std::fabs(hi));
    float s = std::max(absMax / static_cast<float>(qmax - symZero), 1e-5f);
    return {s, symZero};
  }
  // The range must contain 0 so that zero weights stay exact.
  lo = std::min(lo, 0.0f);
  hi = std::max(hi, 0.0f);
  float s = std::max((hi - lo) / static_cast<float>(qmax), 1e-5f);
  int64_t z = std::clamp<int64_t>(
      static_cast<int64_t>(roundHalfEven(-lo / s)), 0, qmax);
  return {s, z};
}

QuantizedMatrix quantizeMatrix(const float *w, int64_t n, int64_t k,
                               int64_t group, unsigned bits, bool symmetric,
                               int clipSteps) {
  int64_t g = group <= 0 ? k : group;
  int64_t j = (k + g - 1) / g;
  int64_t qmax = (int64_t(1) << bits) - 1;
  int64_t symZero = int64_t(1) << (bits - 1);
  QuantizedMatrix out;
  out.codes.resize(n * k);
  out.scales.resize(n * j);
  out.zeros.resize(n * j);
  for (int64_t row = 0; row < n; ++row) {
    for (int64_t grp = 0; grp < j; ++grp) {
      const float *src = w + row * k + grp * g;
      int64_t len = std::min(g, k - grp * g);
      float lo, hi;
      groupRange(src, len, lo, hi);
      GroupParams best = minMaxParams(lo, hi, qmax, symmetric, symZero);
      if (clipSteps > 0) {
        // Reconstruction-error search over shrink factors alpha in (0.5, 1].
        double bestErr = -1;
        for (int step = 0; step <= clipSteps; ++step) {
          float alpha = 1.0f - 0.5f * static_cast<float>(step) / (clipSteps + 1);
          GroupParams p =
              minMaxParams(alpha * lo, alpha * hi, qmax, symmetric, symZero);
          double err = 0;
          for (int64_t i = 0; i < len; ++i) {
            float r = dequantizeValue(quantizeValue(src[i], p.scale, p.zero, qmax),
                                      p.scale, p.zero);
            err += double(r - src[i]) * double(r - src[i]);
          }
          if (bestErr < 0 || err < bestErr) {
            bestErr = err;
            best = p;
          }
        }
      }
      out.scales[row * j + grp] = best.scale;
      out.zeros[row * j + grp] = static_cast<uint8_t>(best.zero);
      groupCodes(src, len, best.scale, best.zero, qmax,
                 out.codes.data() + row * k + grp * g);
    }
  }
  return out;
}

} // namespace mlir::qslaw::quant
