//===- QuantMathTest.cpp - scalar quantisation math against a reference ---===//
#include "qslaw/Quant/QuantMath.h"

#include <gtest/gtest.h>

#include <cmath>
#include <algorithm>
#include <random>
#include <vector>

using namespace mlir::qslaw::quant;

TEST(QuantMath, RoundHalfToEven) {
  EXPECT_EQ(roundHalfEven(0.5f), 0.0f);
  EXPECT_EQ(roundHalfEven(1.5f), 2.0f);
  EXPECT_EQ(roundHalfEven(2.5f), 2.0f);
  EXPECT_EQ(roundHalfEven(-0.5f), -0.0f);
  EXPECT_EQ(roundHalfEven(-1.5f), -2.0f);
  EXPECT_EQ(roundHalfEven(2.4999f), 2.0f);
}

TEST(QuantMath, QuantizeClampsAndHandlesNaN) {
  EXPECT_EQ(quantizeValue(100.0f, 1.0f, 8, 15), 15);
  EXPECT_EQ(quantizeValue(-100.0f, 1.0f, 8, 15), 0);
  EXPECT_EQ(quantizeValue(2.5f, 1.0f, 8, 15), 10); // half to even: 2
  EXPECT_EQ(quantizeValue(0.0f, 0.0f, 3, 15), 3);  // 0/0 -> zero point
  EXPECT_EQ(quantizeValue(1e30f, 1e-30f, 0, 255), 255);
}

TEST(QuantMath, MinMaxCoversRangeAsymmetric) {
  GroupParams p = minMaxParams(-1.0f, 3.0f, 15, false, 8);
  EXPECT_FLOAT_EQ(p.scale, 4.0f / 15.0f);
  EXPECT_EQ(p.zero, 4); // round(1 / (4/15)) = round(3.75)
  // Degenerate group: scale floors at 1e-5, zero stays representable.
  GroupParams d = minMaxParams(0.0f, 0.0f, 15, false, 8);
  EXPECT_FLOAT_EQ(d.scale, 1e-5f);
  EXPECT_EQ(d.zero, 0);
}

// Every element's reconstruction error is at most half a step (plus rounding)
// inside the [min, max] range, for each bit width and a short last group.
TEST(QuantMath, QuantizeMatrixReconstructionBound) {
  std::mt19937 rng(7);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  const int64_t n = 5, k = 70, g = 32; // groups 32, 32, 6
  std::vector<float> w(n * k);
  for (float &v : w)
    v = dist(rng);
  for (unsigned bits : {2u, 3u, 4u, 8u}) {
    for (bool sym : {false, true}) {
      QuantizedMatrix q = quantizeMatrix(w.data(), n, k, g, bits, sym, 0);
      int64_t j = 3;
      ASSERT_EQ(q.scales.size(), size_t(n * j));
      for (int64_t r = 0; r < n; ++r)
        for (int64_t c = 0; c < k; ++c) {
          float s = q.scales[r * j + c / g];
          int64_t z = q.zeros[r * j + c / g];
          EXPECT_LE(int64_t(q.codes[r * k + c]), (1 << bits) - 1);
          float back = dequantizeValue(q.codes[r * k + c], s, z);
          EXPECT_LE(std::fabs(back - w[r * k + c]), 0.5f * s * 1.0001f + 1e-6f)
              << "bits=" << bits << " sym=" << sym << " at " << r << "," << c;
        }
    }
  }
}

// The clipping search never increases the squared reconstruction error.
TEST(QuantMath, ClippingSearchDoesNotHurt) {
  std::mt19937 rng(11);
  std::student_t_distribution<float> dist(2.0f); // heavy tails: clipping helps
  const int64_t n = 8, k = 128, g = 64;
  std::vector<float> w(n * k);
  for (float &v : w)
    v = dist(rng);
  auto err = [&](const QuantizedMatrix &q) {
    double e = 0;
    for (int64_t r = 0; r < n; ++r)
      for (int64_t c = 0; c < k; ++c) {
        int64_t idx = r * 2 + c / g;
        double d = dequantizeValue(q.codes[r * k + c], q.scales[idx],
                                   q.zeros[idx]) - w[r * k + c];
        e += d * d;
      }
    return e;
  };
  double plain = err(quantizeMatrix(w.data(), n, k, g, 3, false, 0));
  double clipped = err(quantizeMatrix(w.data(), n, k, g, 3, false, 20));
  EXPECT_LE(clipped, plain);
  EXPECT_LT(clipped, 0.95 * plain);
}

// The vectorised group loop gives quantizeValue's codes: exact halves (ties
// to even), both clamps, NaN (the zero point), infinities, ratios past
// 2^24 (where a float sum with z would round), a length that is not a
// multiple of any vector width; every width's qmax, with zero points.
TEST(QuantMath, GroupCodesEqualQuantizeValue) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> unit(-1.0f, 1.0f);
  for (int64_t qmax : {3, 7, 15, 255})
    for (int64_t zero : {int64_t(0), qmax / 2 + 1}) {
      const float s = 0.037f;
      std::vector<float> w(203);
      for (float &v : w)
        v = 1.5f * float(qmax) * s * unit(rng);
      for (int k = 0; k < 9; ++k) // exact halves
        w[k] = s * (0.5f + float(k) - 4.0f);
      w[20] = NAN;
      w[21] = INFINITY;
      w[22] = -INFINITY;
      w[23] = 1e30f;
      w[24] = -1e30f;
      w[25] = s * 16777217.0f;
      w[26] = -s * 16777217.0f;
      std::vector<uint8_t> got(w.size(), 0xAB);
      mlir::qslaw::quant::groupCodes(w.data(), int64_t(w.size()), s, zero,
                                     qmax, got.data());
      for (size_t i = 0; i < w.size(); ++i)
        ASSERT_EQ(int64_t(got[i]),
                  mlir::qslaw::quant::quantizeValue(w[i], s, zero, qmax))
            << "qmax=" << qmax << " zero=" << zero << " i=" << i;
    }
}

// The vectorised min/max equals a scan in order with std::min/std::max:
// lengths around the 16 lanes, infinities, zeros of both signs (equal as
// values: no quantisation parameter depends on a zero's sign), and NaN at
// the start, inside and at the end (then the scan itself decides).
TEST(QuantMath, GroupRangeEqualsAScanInOrder) {
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> unit(-3.0f, 3.0f);
  for (int64_t len : {1, 5, 16, 17, 33, 128, 203})
    for (int special = 0; special < 6; ++special) {
      std::vector<float> w(static_cast<size_t>(len));
      for (float &v : w)
        v = unit(rng);
      const int64_t at = len / 2;
      switch (special) {
      case 1: w[at] = INFINITY; w[0] = -INFINITY; break;
      case 2: for (float &v : w) v = (&v - w.data()) % 2 ? 0.0f : -0.0f; break;
      case 3: w[0] = NAN; break;
      case 4: w[at] = NAN; break;
      case 5: w[len - 1] = NAN; break;
      default: break;
      }
      float lo = w[0], hi = w[0];
      for (int64_t i = 1; i < len; ++i) {
        lo = std::min(lo, w[i]);
        hi = std::max(hi, w[i]);
      }
      float glo = 0, ghi = 0;
      mlir::qslaw::quant::groupRange(w.data(), len, glo, ghi);
      auto same = [](float a, float b) {
        return (std::isnan(a) && std::isnan(b)) || a == b;
      };
      EXPECT_TRUE(same(glo, lo)) << "len=" << len << " case=" << special;
      EXPECT_TRUE(same(ghi, hi)) << "len=" << len << " case=" << special;
    }
}
