//===- SgemmAllocTest.cpp - GEMM wrapper and buffer heap ------------------===//
#include "qslaw/Runtime/Ukernels.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace {

/// C_i = op(A_i) op(B_i) + beta C_i in double, the reference.
void reference(int64_t batch, int64_t m, int64_t n, int64_t k,
               const std::vector<float> &a, int64_t strideA, bool ta,
               const std::vector<float> &b, int64_t strideB, bool tb,
               float beta, std::vector<float> &c) {
  for (int64_t i = 0; i < batch; ++i)
    for (int64_t r = 0; r < m; ++r)
      for (int64_t s = 0; s < n; ++s) {
        double acc = 0;
        for (int64_t q = 0; q < k; ++q) {
          double x = ta ? a[i * strideA + q * m + r] : a[i * strideA + r * k + q];
          double y = tb ? b[i * strideB + s * k + q] : b[i * strideB + q * n + s];
          acc += x * y;
        }
        float &out = c[(i * m + r) * n + s];
        out = float(acc + beta * double(out));
      }
}

struct Case {
  int64_t batch, m, n, k;
  bool ta, tb, sharedB;
  float beta;
};

class SgemmTest : public ::testing::TestWithParam<Case> {};

// Every transpose combination, a B shared by all batches (stride 0),
// accumulation into C, odd sizes; batches of 4 and 9 on 2 threads take the
// one-GEMM-per-thread path.
TEST_P(SgemmTest, MatchesDoubleReference) {
  Case p = GetParam();
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1, 1);
  int64_t strideA = p.m * p.k, strideB = p.sharedB ? 0 : p.k * p.n;
  std::vector<float> a(p.batch * strideA), b(p.sharedB ? p.k * p.n : p.batch * strideB),
      c(p.batch * p.m * p.n);
  for (float &v : a) v = u(rng);
  for (float &v : b) v = u(rng);
  for (float &v : c) v = u(rng);
  std::vector<float> want = c;
  reference(p.batch, p.m, p.n, p.k, a, strideA, p.ta, b, strideB, p.tb, p.beta, want);
  qslaw_sgemm_f32_batched(p.batch, p.m, p.n, p.k, a.data(), p.ta ? p.m : p.k,
                          strideA, p.ta, b.data(), p.tb ? p.k : p.n, strideB,
                          p.tb, p.beta, c.data(), p.n, p.m * p.n, 2);
  // f32 accumulation of k products of magnitude <= 1: allow 4 sqrt(k) ulp
  // of the sum of magnitudes (<= k).
  double tol = 4 * std::sqrt(double(std::max<int64_t>(p.k, 1))) * p.k * 6e-8 + 1e-6;
  for (size_t i = 0; i < c.size(); ++i)
    ASSERT_NEAR(c[i], want[i], tol) << "element " << i;
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, SgemmTest,
    ::testing::Values(Case{1, 37, 53, 129, false, false, false, 0.f},
                      Case{1, 37, 53, 129, true, false, false, 1.f},
                      Case{1, 37, 53, 129, false, true, false, 0.f},
                      Case{1, 37, 53, 129, true, true, false, 1.f},
                      Case{3, 17, 9, 33, false, true, true, 0.f},
                      Case{4, 31, 19, 24, false, true, false, 0.f},
                      Case{4, 31, 19, 24, true, false, true, 1.f},
                      Case{9, 8, 21, 13, true, true, false, 1.f},
                      Case{2, 5, 7, 0, false, false, false, 1.f},
                      Case{2, 5, 7, 0, false, false, false, 0.f}));

TEST(SgemmTest, LibraryAndThreads) {
  std::string lib = qslaw_gemm_library();
  EXPECT_TRUE(lib == "onednn" || lib == "openblas") << lib;
  EXPECT_GE(qslaw_num_threads(), 1);
}

/// Live and peak bytes follow every block, cached sizes or not, including a
/// cached block handed out again for a smaller request (its own size).
TEST(AllocTest, LiveAndPeakBytes) {
  qslaw_alloc_trim();
  const qslaw_alloc_stats s0 = qslaw_alloc_get_stats();
  void *small = qslaw_alloc(100, 64);      // one page
  void *big = qslaw_alloc(1 << 20, 64);    // 1 MiB
  const qslaw_alloc_stats s1 = qslaw_alloc_get_stats();
  EXPECT_EQ(s1.live_bytes, s0.live_bytes + 4096 + (1 << 20));
  EXPECT_GE(s1.peak_live_bytes, s1.live_bytes);
  qslaw_free(big);
  void *again = qslaw_alloc(600 << 10, 64); // the cached 1 MiB block
  ASSERT_EQ(again, big);
  EXPECT_EQ(qslaw_alloc_get_stats().live_bytes, s1.live_bytes);
  qslaw_free(again);
  qslaw_free(small);
  const qslaw_alloc_stats s2 = qslaw_alloc_get_stats();
  EXPECT_EQ(s2.live_bytes, s0.live_bytes);
  EXPECT_EQ(s2.peak_live_bytes, std::max(s0.peak_live_bytes, s1.live_bytes));
  qslaw_alloc_trim();
}

TEST(AllocTest, AlignedAndReused) {
  qslaw_alloc_trim();
  qslaw_alloc_stats before = qslaw_alloc_get_stats();
  EXPECT_EQ(before.cached_bytes, 0u);
  // Small blocks are plain heap memory, aligned all the same.
  void *small = qslaw_alloc(100, 16);
  ASSERT_NE(small, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(small) % 64, 0u);
  qslaw_free(small);
  // A large block comes back for a request of at least half its size ...
  void *big = qslaw_alloc(1 << 20, 128);
  ASSERT_NE(big, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(big) % 128, 0u);
  static_cast<char *>(big)[(1 << 20) - 1] = 1; // the whole block is usable
  qslaw_free(big);
  EXPECT_EQ(qslaw_alloc_get_stats().cached_bytes, uint64_t(1) << 20);
  void *again = qslaw_alloc(600 << 10, 128);
  EXPECT_EQ(again, big);
  EXPECT_EQ(qslaw_alloc_get_stats().hits, before.hits + 1);
  qslaw_free(again);
  // ... but not for a smaller one, nor for another alignment.
  void *tiny = qslaw_alloc(100 << 10, 128);
  EXPECT_NE(tiny, big);
  void *other = qslaw_alloc(1 << 20, 4096);
  EXPECT_NE(other, big);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(other) % 4096, 0u);
  qslaw_free(tiny);
  qslaw_free(other);
  qslaw_alloc_trim();
  EXPECT_EQ(qslaw_alloc_get_stats().cached_bytes, 0u);
  // Not a power of two: refused, not misaligned.
  EXPECT_EQ(qslaw_alloc(64, 96), nullptr);
  qslaw_free(nullptr);
}

} // namespace
