//===- UkernelTest.cpp - Tests for the 4-bit quantized matmul ukernel -----===//
//
// Every code path the CPU supports (forced through qslaw_ukernel_force_isa)
// is compared against a double-precision reference written here, over a grid
// of shapes covering vector tails, short last groups, per-channel groups,
// odd K / odd G (scalar-dequant fallback), strides and N ranges.
//
//===----------------------------------------------------------------------===//

#include "qslaw/Runtime/Ukernels.h"

#include "gtest/gtest.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

namespace {

struct Case {
  int64_t M, N, K, G;
  bool withZeros, withBias;
  int64_t ldxPad = 0, ldyPad = 0;
};

struct Data {
  int64_t J, ldx, ldy;
  std::vector<float> x, scales, bias;
  std::vector<uint8_t> codes, zeros;
};

int nibble(const std::vector<uint8_t> &v, int64_t i) {
  return (v[i / 2] >> ((i % 2) * 4)) & 15;
}

Data makeData(const Case &c, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> unit(-1.0f, 1.0f);
  std::uniform_int_distribution<int> byte(0, 255);
  Data d;
  d.J = (c.K + c.G - 1) / c.G;
  d.ldx = c.K + c.ldxPad;
  d.ldy = c.N + c.ldyPad;
  d.x.resize(c.M * d.ldx);
  for (float &v : d.x)
    v = unit(rng);
  d.codes.resize((c.N * c.K + 1) / 2);
  for (uint8_t &b : d.codes)
    b = static_cast<uint8_t>(byte(rng));
  d.scales.resize(c.N * d.J);
  for (float &s : d.scales)
    s = 0.01f * (1.0f + 0.5f * unit(rng)); // some variety, no cancellation
  if (c.withZeros) {
    d.zeros.resize((c.N * d.J + 1) / 2);
    for (uint8_t &b : d.zeros)
      b = static_cast<uint8_t>(byte(rng));
  }
  if (c.withBias) {
    d.bias.resize(c.N);
    for (float &b : d.bias)
      b = unit(rng);
  }
  return d;
}

std::vector<double> reference(const Case &c, const Data &d) {
  std::vector<double> y(c.M * c.N);
  for (int64_t m = 0; m < c.M; ++m)
    for (int64_t n = 0; n < c.N; ++n) {
      double acc = c.withBias ? d.bias[n] : 0.0;
      for (int64_t k = 0; k < c.K; ++k) {
        const int64_t j = k / c.G;
        const int z = c.withZeros ? nibble(d.zeros, n * d.J + j) : 8;
        acc += static_cast<double>(d.x[m * d.ldx + k]) *
               d.scales[n * d.J + j] * (nibble(d.codes, n * c.K + k) - z);
      }
      y[m * c.N + n] = acc;
    }
  return y;
}

// Tolerance: the kernels accumulate in fp32, in a different order than the
// reference (vector lanes, K blocks, split even/odd chains), and some paths
// form s*(q-z) as q*s - z*s. Rounding errors then grow like a random walk,
// ~eps32 * sqrt(K) * |y| with eps32 ~ 6e-8, so 1e-5 * sqrt(K) * max|y| leaves
// ~100x headroom. Any indexing bug (wrong nibble, group, zero point, bias or
// stride) moves an output by at least one term, ~max|y| / sqrt(K), which is
// orders of magnitude larger for every K tested.
double tolerance(const Case &c, const std::vector<double> &ref) {
  double scale = 1e-30;
  for (double v : ref)
    scale = std::max(scale, std::fabs(v));
  return 1e-5 * std::sqrt(static_cast<double>(c.K)) * scale;
}

std::string describe(const Case &c, const char *isa) {
  return std::string(isa) + " M=" + std::to_string(c.M) +
         " N=" + std::to_string(c.N) + " K=" + std::to_string(c.K) +
         " G=" + std::to_string(c.G) + " zeros=" + std::to_string(c.withZeros) +
         " bias=" + std::to_string(c.withBias) +
         " ldxPad=" + std::to_string(c.ldxPad) +
         " ldyPad=" + std::to_string(c.ldyPad);
}

// Returns the number of mismatching outputs (and records a failure if any).
int check(const Case &c, const Data &d, const std::vector<double> &ref,
          const std::vector<float> &y, const char *isa) {
  const double tol = tolerance(c, ref);
  int bad = 0;
  for (int64_t m = 0; m < c.M; ++m)
    for (int64_t n = 0; n < c.N; ++n) {
      const double got = y[m * d.ldy + n], want = ref[m * c.N + n];
      if (!(std::fabs(got - want) <= tol) && bad++ < 3)
        ADD_FAILURE() << describe(c, isa) << " at m=" << m << " n=" << n
                      << ": got " << got << " want " << want << " tol " << tol;
    }
  return bad;
}

const float kCanary = -12345.0f;

std::vector<float> run(const Case &c, const Data &d) {
  std::vector<float> y(c.M * d.ldy, kCanary);
  qslaw_qmatmul_w4_f32(d.x.data(), c.M, c.K, d.ldx, d.codes.data(),
                       d.scales.data(),
                       c.withZeros ? d.zeros.data() : nullptr,
                       c.withBias ? d.bias.data() : nullptr, y.data(), d.ldy,
                       c.N, c.G);
  return y;
}

// Paths this CPU can run, each forced in turn; restores auto-detection.
class IsaScope {
public:
  static std::vector<std::string> available() {
    std::vector<std::string> out;
    for (const char *name : {"scalar", "avx2", "avx512"})
      if (std::string(qslaw_ukernel_force_isa(name)) == name)
        out.push_back(name);
    qslaw_ukernel_force_isa(nullptr);
    return out;
  }
  explicit IsaScope(const std::string &name) {
    EXPECT_EQ(name, qslaw_ukernel_force_isa(name.c_str()));
  }
  ~IsaScope() { qslaw_ukernel_force_isa(nullptr); }
};

void runAllIsas(const Case &c, unsigned seed) {
  const Data d = makeData(c, seed);
  const std::vector<double> ref = reference(c, d);
  for (const std::string &isa : IsaScope::available()) {
    IsaScope scope(isa);
    const std::vector<float> y = run(c, d);
    if (check(c, d, ref, y, isa.c_str()))
      return; // one failing path per case is enough output
    for (int64_t m = 0; m < c.M; ++m)
      for (int64_t n = c.N; n < d.ldy; ++n)
        ASSERT_EQ(kCanary, y[m * d.ldy + n]) << describe(c, isa.c_str());
  }
}

TEST(UkernelW4, ReportsIsa) {
  const std::string isa = qslaw_ukernel_isa();
  EXPECT_TRUE(isa == "scalar" || isa == "avx2" || isa == "avx512") << isa;
  EXPECT_STREQ("scalar", qslaw_ukernel_force_isa("scalar"));
  EXPECT_STREQ("scalar", qslaw_ukernel_isa());
  EXPECT_EQ(isa, qslaw_ukernel_force_isa(nullptr));
}

TEST(UkernelW4, EnvVarForcesAndClamps) {
  const char *old = std::getenv("QSLAW_UKERNEL_ISA");
  const std::string saved = old ? old : "";
  const std::string best = qslaw_ukernel_force_isa("avx512");
  setenv("QSLAW_UKERNEL_ISA", "scalar", 1);
  EXPECT_STREQ("scalar", qslaw_ukernel_force_isa(nullptr));
  setenv("QSLAW_UKERNEL_ISA", "avx512", 1); // clamped to the CPU's best
  EXPECT_EQ(best, qslaw_ukernel_force_isa(nullptr));
  if (old)
    setenv("QSLAW_UKERNEL_ISA", saved.c_str(), 1);
  else
    unsetenv("QSLAW_UKERNEL_ISA");
  qslaw_ukernel_force_isa(nullptr);
}

// The full grid from the spec, sliced by G so failures localize.
class UkernelGrid : public ::testing::TestWithParam<int64_t> {};

TEST_P(UkernelGrid, MatchesReference) {
  const int64_t gParam = GetParam(); // 0 = per-channel (G = K)
  unsigned seed = 1;
  for (int64_t M : {1, 2, 3, 4, 5, 16, 17, 128})
    for (int64_t N : {1, 7, 16, 33, 64})
      for (int64_t K : {2, 8, 30, 128, 130, 256, 384})
        for (int variant = 0; variant < 4; ++variant) {
          const Case c{M, N, K, gParam ? gParam : K, (variant & 1) != 0,
                       (variant & 2) != 0};
          SCOPED_TRACE(describe(c, "any"));
          runAllIsas(c, seed++);
          if (HasFailure())
            return;
        }
}

INSTANTIATE_TEST_SUITE_P(Groups, UkernelGrid,
                         ::testing::Values(2, 8, 32, 64, 128, 0),
                         [](const ::testing::TestParamInfo<int64_t> &info) {
                           return info.param
                                      ? "G" + std::to_string(info.param)
                                      : std::string("PerChannel");
                         });

// Odd K (rows not byte aligned), odd and non-power-of-two G, G > K, group
// sizes that are multiples of the AVX2 chunk but not the AVX-512 one.
TEST(UkernelW4, OddShapes) {
  unsigned seed = 1000;
  auto runCase = [&](int64_t M, int64_t N, int64_t K, int64_t G) {
    const unsigned s = seed++;
    runAllIsas({M, N, K, G, (s & 1) != 0, (s & 2) != 0}, s);
  };
  for (int64_t K : {1, 3, 31, 33, 129, 1031})
    for (int64_t G : {1, 3, 5, 16, 48, 96, 2048})
      for (int64_t M : {1, 2, 4, 9})
        runCase(M, 13, K, G);
  for (int64_t K : {16, 48, 96, 1040, 2080})
    for (int64_t G : {16, 48, 96, 1040})
      for (int64_t M : {1, 2, 4, 9})
        runCase(M, 21, K, G);
}

// Many K blocks, padded row strides, and (131 rows x K 8200, over 2^20
// floats) x packed in more than one chunk of rows.
TEST(UkernelW4, LargeKAndStrides) {
  unsigned seed = 2000;
  for (int64_t M : {1, 2, 3, 4, 7, 24})
    for (int64_t K : {1024, 2304, 2334})
      runAllIsas({M, 40, K, 128, true, true, 5, 3}, seed++);
  runAllIsas({6, 19, 4096, 4096, false, true, 1, 7}, seed++);
  runAllIsas({131, 20, 8200, 128, true, false, 2, 0}, seed++);
}

TEST(UkernelW4, RangeTouchesOnlyItsColumns) {
  const Case c{5, 70, 256, 64, true, true};
  const Data d = makeData(c, 7);
  const std::vector<double> ref = reference(c, d);
  for (const std::string &isa : IsaScope::available()) {
    IsaScope scope(isa);
    for (int64_t nb : {0, 3, 17, 64})
      for (int64_t ne : {5, 17, 40, 70, 99}) {
        std::vector<float> y(c.M * d.ldy, kCanary);
        qslaw_qmatmul_w4_f32_range(d.x.data(), c.M, c.K, d.ldx,
                                   d.codes.data(), d.scales.data(),
                                   d.zeros.data(), d.bias.data(), y.data(),
                                   d.ldy, c.N, c.G, nb, ne);
        const double tol = tolerance(c, ref);
        for (int64_t m = 0; m < c.M; ++m)
          for (int64_t n = 0; n < c.N; ++n) {
            const float got = y[m * d.ldy + n];
            if (n >= nb && n < std::min<int64_t>(ne, c.N))
              EXPECT_NEAR(ref[m * c.N + n], got, tol)
                  << isa << " [" << nb << "," << ne << ") m=" << m;
            else
              EXPECT_EQ(kCanary, got)
                  << isa << " [" << nb << "," << ne << ") n=" << n;
          }
      }
  }
}

TEST(UkernelW4, MultiThreaded) {
  // N*K > 2^20 so the work is actually split; N not a multiple of 32.
  for (int64_t M : {3, 9})
    for (int threads : {1, 2, 3, 8}) {
      const Case c{M, 530, 2048, 128, threads % 2 == 1, threads > 2};
      const Data d = makeData(c, 300 + threads);
      const std::vector<double> ref = reference(c, d);
      for (const std::string &isa : IsaScope::available()) {
        IsaScope scope(isa);
        std::vector<float> y(c.M * d.ldy, kCanary);
        qslaw_qmatmul_w4_f32_mt(d.x.data(), c.M, c.K, d.ldx, d.codes.data(),
                                d.scales.data(),
                                c.withZeros ? d.zeros.data() : nullptr,
                                c.withBias ? d.bias.data() : nullptr, y.data(),
                                d.ldy, c.N, c.G, threads);
        check(c, d, ref, y, isa.c_str());
      }
    }
}

TEST(UkernelW4, DegenerateSizes) {
  const float x[4] = {1, 2, 3, 4}, s[2] = {1, 1}, b[2] = {0.5f, -0.5f};
  const uint8_t codes[2] = {0x99, 0x99};
  float y[2] = {kCanary, kCanary};
  // K = 0: output is just the bias.
  qslaw_qmatmul_w4_f32(x, 1, 0, 0, codes, s, nullptr, b, y, 2, 2, 1);
  EXPECT_EQ(0.5f, y[0]);
  EXPECT_EQ(-0.5f, y[1]);
  // M = 0 / N = 0: nothing written.
  y[0] = y[1] = kCanary;
  qslaw_qmatmul_w4_f32(x, 0, 2, 2, codes, s, nullptr, b, y, 2, 2, 2);
  qslaw_qmatmul_w4_f32(x, 1, 2, 2, codes, s, nullptr, b, y, 2, 0, 2);
  EXPECT_EQ(kCanary, y[0]);
  // K = 2, codes 9 - 8 = 1: y = bias + x0 + x1.
  qslaw_qmatmul_w4_f32(x, 1, 2, 2, codes, s, nullptr, b, y, 2, 2, 2);
  EXPECT_EQ(3.5f, y[0]);
  EXPECT_EQ(2.5f, y[1]);
}

} // namespace
