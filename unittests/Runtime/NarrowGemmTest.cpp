//===- NarrowGemmTest.cpp - f32 GEMMs over a bf16 / f16 B -----------------===//
//
// qslaw_sgemm_f32_w16 and qslaw_sgemm_rows_f32_w16 against a double
// reference over the widened B (widened here by the compiler's own __bf16 /
// _Float16 conversions), with shapes that take several column blocks
// (N >= K) and several depth blocks (K > N: accumulation into C), every
// transpose, beta 0 and 1, a B shared by two batches and one per batch.
//
//===----------------------------------------------------------------------===//
#include "qslaw/Runtime/Ukernels.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

namespace {

/// Random 16-bit values of `type` and their f32 widening.
void narrowValues(int type, std::mt19937 &rng, size_t n,
                  std::vector<uint16_t> &bits, std::vector<float> &wide) {
  std::uniform_real_distribution<float> u(-1, 1);
  bits.resize(n);
  wide.resize(n);
  for (size_t i = 0; i < n; ++i) {
    float v = u(rng);
    if (type == QSLAW_WEIGHT_F16) {
      _Float16 h = _Float16(v);
      std::memcpy(&bits[i], &h, 2);
      wide[i] = float(h);
    } else {
      uint32_t x;
      std::memcpy(&x, &v, 4);
      bits[i] = uint16_t((x + 0x7FFFu + ((x >> 16) & 1u)) >> 16);
      __bf16 h;
      std::memcpy(&h, &bits[i], 2);
      wide[i] = float(h);
    }
  }
}

struct Case {
  int64_t batch, m, n, k;
  bool ta, tb, sharedB;
  float beta;
};

class NarrowGemmTest
    : public ::testing::TestWithParam<std::tuple<Case, int>> {};

TEST_P(NarrowGemmTest, MatchesDoubleReference) {
  auto [p, type] = GetParam();
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(-1, 1);
  const int64_t lda = (p.ta ? p.m : p.k) + 3, ldb = (p.tb ? p.k : p.n) + 5;
  const int64_t ldc = p.n + 2;
  const int64_t strideA = (p.ta ? p.k : p.m) * lda;
  const int64_t bRows = p.tb ? p.n : p.k;
  const int64_t strideB = p.sharedB ? 0 : bRows * ldb, strideC = p.m * ldc;
  std::vector<float> a(size_t(p.batch * strideA)), c(size_t(p.batch * strideC));
  for (float &v : a) v = u(rng);
  for (float &v : c) v = u(rng);
  std::vector<uint16_t> b16;
  std::vector<float> bw;
  narrowValues(type, rng, size_t(p.sharedB ? bRows * ldb : p.batch * strideB),
               b16, bw);
  std::vector<float> got = c;
  qslaw_sgemm_f32_w16(p.batch, p.m, p.n, p.k, a.data(), lda, strideA, p.ta,
                      type, b16.data(), ldb, strideB, p.tb, p.beta, got.data(),
                      ldc, strideC, 2);
  // f32 sums of k terms of magnitude <= 1, in whatever order the blocks
  // and the library take: |error| <= k * 2^-24 * sum |terms| (+ beta C).
  for (int64_t i = 0; i < p.batch; ++i)
    for (int64_t r = 0; r < p.m; ++r)
      for (int64_t s = 0; s < p.n; ++s) {
        double acc = 0, mag = 0;
        for (int64_t q = 0; q < p.k; ++q) {
          double x = p.ta ? a[i * strideA + q * lda + r] : a[i * strideA + r * lda + q];
          double y = p.tb ? bw[i * strideB + s * ldb + q] : bw[i * strideB + q * ldb + s];
          acc += x * y;
          mag += std::fabs(x * y);
        }
        const size_t at = size_t(i * strideC + r * ldc + s);
        const double want = acc + double(p.beta) * c[at];
        ASSERT_NEAR(got[at], want, double(p.k + 2) * 6e-8 * (mag + 1) + 1e-7)
            << "batch " << i << " row " << r << " col " << s;
      }
  // C's padding is not written.
  for (int64_t i = 0; i < p.batch; ++i)
    for (int64_t r = 0; r < p.m; ++r)
      for (int64_t s = p.n; s < ldc; ++s) {
        const size_t at = size_t(i * strideC + r * ldc + s);
        ASSERT_EQ(got[at], c[at]);
      }
}

// Column blocks: N = 2000, K = 300 (3 blocks of the 1 MiB scratch); depth
// blocks: N = 64, K = 5000 (2 blocks, the second accumulating); K = 0.
INSTANTIATE_TEST_SUITE_P(
    Shapes, NarrowGemmTest,
    ::testing::Combine(
        ::testing::Values(Case{1, 13, 2000, 300, false, false, false, 0.f},
                          Case{1, 13, 2000, 300, false, true, false, 1.f},
                          Case{1, 13, 2000, 300, true, false, false, 1.f},
                          Case{1, 13, 64, 5000, false, false, false, 0.f},
                          Case{1, 13, 64, 5000, false, true, false, 1.f},
                          Case{1, 13, 64, 5000, true, true, false, 0.f},
                          Case{2, 7, 700, 96, false, false, true, 0.f},
                          Case{2, 7, 48, 900, false, true, false, 1.f},
                          Case{2, 5, 7, 0, false, false, false, 1.f}),
        ::testing::Values(QSLAW_WEIGHT_BF16, QSLAW_WEIGHT_F16)));

/// The row-selecting GEMM (the head's logits and input gradient) with a
/// narrow B equals the f32 one over the widened B, selected rows (within
/// rounding of the blocks' order) and unselected ones (zeros, or C as it
/// was when accumulating).
TEST(NarrowGemm, RowsMatchTheF32Rows) {
  for (int type : {QSLAW_WEIGHT_BF16, QSLAW_WEIGHT_F16})
    for (auto [n, k, tb] : std::vector<std::tuple<int64_t, int64_t, int>>{
             {1500, 256, 0}, {1500, 256, 1}, {64, 5000, 1}, {64, 5000, 0}})
      for (float beta : {0.f, 1.f}) {
        SCOPED_TRACE(testing::Message() << "type " << type << " n " << n << " k "
                                        << k << " transB " << tb << " beta " << beta);
        // Two groups of 16 tokens; a holds tokens 2 ... 13 of each.
        const int64_t tokens = 16, m = 32, aTokens = 12, aOffset = 2;
        std::mt19937 rng(5);
        std::uniform_real_distribution<float> u(-1, 1);
        std::vector<float> a(size_t(2 * aTokens * k)), c(size_t(m * n));
        for (float &v : a) v = u(rng);
        for (float &v : c) v = u(rng);
        std::vector<uint8_t> rows(m, 0);
        for (int64_t r : {3, 4, 5, 9, 20, 21, 25})
          rows[size_t(r)] = 1;
        std::vector<uint16_t> b16;
        std::vector<float> bw;
        narrowValues(type, rng, size_t(n * k), b16, bw);
        const int64_t ldb = tb ? k : n;
        std::vector<float> want = c, got = c;
        qslaw_sgemm_rows_f32(m, n, k, rows.data(), tokens, aTokens, aOffset, 1,
                             a.data(), k, bw.data(), ldb, tb, beta, want.data(),
                             n, 2);
        qslaw_sgemm_rows_f32_w16(m, n, k, rows.data(), tokens, aTokens,
                                 aOffset, 1, a.data(), k, type, b16.data(),
                                 ldb, tb, beta, got.data(), n, 2);
        for (int64_t r = 0; r < m; ++r)
          for (int64_t s = 0; s < n; ++s) {
            const size_t at = size_t(r * n + s);
            if (!rows[size_t(r)])
              ASSERT_EQ(got[at], want[at]) << r << ", " << s;
            else
              ASSERT_NEAR(got[at], want[at], double(k) * 6e-8 * 8)
                  << r << ", " << s;
          }
      }
}

/// A 16-bit type other than bf16 or f16 is refused.
TEST(NarrowGemmDeathTest, TypeChecked) {
  std::vector<float> a(4), c(4);
  std::vector<uint16_t> b(4);
  EXPECT_DEATH(qslaw_sgemm_f32_w16(1, 2, 2, 2, a.data(), 2, 0, 0, 3, b.data(),
                                   2, 0, 0, 0.f, c.data(), 2, 0, 1),
               "a 16-bit weight's type must be 0 \\(bf16\\) or 1 \\(f16\\), "
               "got 3");
}

} // namespace
