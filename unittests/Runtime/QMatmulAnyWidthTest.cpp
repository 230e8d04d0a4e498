//===- QMatmulAnyWidthTest.cpp - the any-width qmatmul kernels ------------===//
//
// qslaw_qmatmul_f32, its gradients, gamma mode's dgamma and quantize at 2,
// 3, 4 and 8 bits against double-precision references written here (codes
// read by their own layout code, not the kernels'), over shapes with rows
// that do not start on a byte, short last groups, per-channel groups,
// padded strides, and 1 to 3 threads (blocks split differently).
//
//===----------------------------------------------------------------------===//
#include "qslaw/Quant/QuantMath.h"
#include "qslaw/Runtime/Ukernels.h"

#include "gtest/gtest.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace {

const float kCanary = -12345.0f;

int perByte(int bits) { return bits == 2 ? 4 : bits == 4 ? 2 : 1; }

/// Code i of a code vector in the kernels' documented layout.
int codeAt(int bits, const std::vector<uint8_t> &v, int64_t i) {
  const int per = perByte(bits);
  return (v[i / per] >> ((i % per) * bits)) & ((1 << bits) - 1);
}

struct Shape {
  int64_t M, N, K, G;
  bool zeros;
  int64_t pad; // extra elements per row of x, dy, y, dx
};

struct Data {
  Shape c;
  int bits;
  int64_t J;
  std::vector<float> x, dy, scales, bias;
  std::vector<uint8_t> codes, zeros;
  float z(int64_t i) const {
    return c.zeros ? float(codeAt(bits, zeros, i)) : float(1 << (bits - 1));
  }
  double what(int64_t n, int64_t k) const { // s * (q - z)
    const int64_t i = n * J + k / c.G;
    return double(scales[i]) * (codeAt(bits, codes, n * c.K + k) - z(i));
  }
};

Data make(const Shape &c, int bits, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> unit(-1.f, 1.f);
  Data d{c, bits, (c.K + c.G - 1) / c.G, {}, {}, {}, {}, {}, {}};
  auto fill = [&](std::vector<float> &v, int64_t n, float s, float o) {
    v.resize(size_t(n));
    for (float &e : v)
      e = o + s * unit(rng);
  };
  fill(d.x, c.M * (c.K + c.pad), 1.f, 0.f);
  fill(d.dy, c.M * (c.N + c.pad), 1.f, 0.f);
  fill(d.scales, c.N * d.J, 0.005f, 0.01f);
  fill(d.bias, c.N, 1.f, 0.f);
  // Random bytes: 3-bit codes get junk in their high bits, which the
  // kernels must ignore.
  auto bytes = [&](std::vector<uint8_t> &v, int64_t count) {
    v.resize(size_t((count + perByte(bits) - 1) / perByte(bits)));
    for (uint8_t &b : v)
      b = uint8_t(rng());
  };
  bytes(d.codes, c.N * c.K);
  if (c.zeros)
    bytes(d.zeros, c.N * d.J);
  return d;
}

double maxAbs(const std::vector<double> &v) {
  double m = 1e-30;
  for (double e : v)
    m = std::max(m, std::fabs(e));
  return m;
}

// fp32 accumulation in another order than the reference (GEMM blocking):
// errors grow like eps32 * sqrt(L) * max|ref| for a reduction of length L;
// 1e-5 leaves ~100x headroom, while any indexing slip moves an output by a
// whole term (~max|ref| / sqrt(L)).
double tol(int64_t L, const std::vector<double> &ref) {
  return 1e-5 * std::sqrt(double(L)) * maxAbs(ref);
}

std::string what(const Data &d, int threads) {
  return "bits=" + std::to_string(d.bits) + " M=" + std::to_string(d.c.M) +
         " N=" + std::to_string(d.c.N) + " K=" + std::to_string(d.c.K) +
         " G=" + std::to_string(d.c.G) + " zeros=" +
         std::to_string(d.c.zeros) + " threads=" + std::to_string(threads);
}

void checkForward(const Data &d, bool withBias, int threads) {
  const Shape &c = d.c;
  const int64_t ldx = c.K + c.pad, ldy = c.N + c.pad;
  std::vector<double> ref(size_t(c.M * c.N));
  for (int64_t m = 0; m < c.M; ++m)
    for (int64_t n = 0; n < c.N; ++n) {
      double acc = withBias ? d.bias[n] : 0.0;
      for (int64_t k = 0; k < c.K; ++k)
        acc += double(d.x[m * ldx + k]) * d.what(n, k);
      ref[m * c.N + n] = acc;
    }
  std::vector<float> y(size_t(c.M * ldy), kCanary);
  qslaw_qmatmul_f32(d.bits, d.x.data(), c.M, c.K, ldx, d.codes.data(),
                    d.scales.data(), c.zeros ? d.zeros.data() : nullptr,
                    withBias ? d.bias.data() : nullptr, y.data(), ldy, c.N,
                    c.G, threads);
  const double t = tol(c.K, ref);
  for (int64_t m = 0; m < c.M; ++m) {
    for (int64_t n = 0; n < c.N; ++n)
      ASSERT_NEAR(y[m * ldy + n], ref[m * c.N + n], t)
          << what(d, threads) << " m=" << m << " n=" << n;
    for (int64_t n = c.N; n < ldy; ++n) // padding untouched
      ASSERT_EQ(y[m * ldy + n], kCanary);
  }
}

void checkGradInput(const Data &d, int threads) {
  const Shape &c = d.c;
  const int64_t ld = c.N + c.pad, lddx = c.K + c.pad;
  std::vector<double> ref(size_t(c.M * c.K), 0.0);
  for (int64_t m = 0; m < c.M; ++m)
    for (int64_t n = 0; n < c.N; ++n)
      for (int64_t k = 0; k < c.K; ++k)
        ref[m * c.K + k] += double(d.dy[m * ld + n]) * d.what(n, k);
  std::vector<float> dx(size_t(c.M * lddx), kCanary);
  qslaw_qmatmul_grad_input_f32(d.bits, d.dy.data(), c.M, c.N, ld,
                               d.codes.data(), d.scales.data(),
                               c.zeros ? d.zeros.data() : nullptr, dx.data(),
                               lddx, c.K, c.G, threads);
  const double t = tol(c.N, ref);
  for (int64_t m = 0; m < c.M; ++m) {
    for (int64_t k = 0; k < c.K; ++k)
      ASSERT_NEAR(dx[m * lddx + k], ref[m * c.K + k], t)
          << what(d, threads) << " m=" << m << " k=" << k;
    for (int64_t k = c.K; k < lddx; ++k)
      ASSERT_EQ(dx[m * lddx + k], kCanary);
  }
}

void checkGradScale(const Data &d, int threads) {
  const Shape &c = d.c;
  const int64_t ldx = c.K + c.pad, lddy = c.N + c.pad;
  std::vector<double> ref(size_t(c.N * d.J), 0.0);
  for (int64_t n = 0; n < c.N; ++n)
    for (int64_t k = 0; k < c.K; ++k) {
      double g = 0;
      for (int64_t m = 0; m < c.M; ++m)
        g += double(d.dy[m * lddy + n]) * d.x[m * ldx + k];
      const int64_t i = n * d.J + k / c.G;
      ref[i] += g * (codeAt(d.bits, d.codes, n * c.K + k) - d.z(i));
    }
  std::vector<float> ds(size_t(c.N * d.J), kCanary);
  qslaw_qmatmul_grad_scale_f32(d.bits, d.x.data(), c.M, c.K, ldx, d.dy.data(),
                               c.N, lddy, d.codes.data(),
                               c.zeros ? d.zeros.data() : nullptr, ds.data(),
                               c.G, threads);
  const double t = tol(c.M * std::min(c.G, c.K), ref);
  for (int64_t i = 0; i < c.N * d.J; ++i)
    ASSERT_NEAR(ds[i], ref[i], t) << what(d, threads) << " i=" << i;
}

const Shape kShapes[] = {
    {1, 5, 7, 3, true, 0},       // rows off byte boundaries, short groups
    {3, 13, 33, 5, false, 2},    // odd everything, strides
    {4, 17, 64, 64, true, 1},    // one group per row (per channel)
    {9, 40, 130, 32, true, 0},   // short last group
    {16, 70, 256, 128, false, 3},
    {37, 300, 1100, 128, true, 0}, // several blocks per call
    {5, 48, 2050, 2050, true, 0}, // per channel, K past a byte multiple
};

TEST(QMatmulAnyWidth, ForwardAndGradientsMatchReference) {
  unsigned seed = 1;
  for (int bits : {2, 3, 4, 8})
    for (const Shape &c : kShapes) {
      const Data d = make(c, bits, seed++);
      for (int threads : {1, 3}) {
        checkForward(d, /*withBias=*/seed % 2 == 0, threads);
        checkGradInput(d, threads);
        checkGradScale(d, threads);
        if (HasFatalFailure())
          return;
      }
    }
}

/// Gamma mode's dgamma with weights spread so that the clamp mask is partly
/// active (codes past [0, 2^bits - 1]), a short last group, strides.
TEST(QMatmulAnyWidth, GradGammaMatchesReference) {
  for (int bits : {2, 3, 4, 8})
    for (bool withZeros : {true, false}) {
      const Shape c{5, 6, 100, 32, withZeros, 3};
      Data d = make(c, bits, unsigned(40 + bits + withZeros));
      const int64_t ldx = c.K + c.pad, lddy = c.N + c.pad;
      const float qmax = float((1 << bits) - 1);
      std::mt19937 rng{unsigned(bits)};
      std::uniform_real_distribution<float> unit(-1.0f, 1.0f);
      std::vector<float> w(size_t(c.N * c.K)), gamma(size_t(c.N * d.J));
      for (float &v : w) // |w / s| up to ~0.8 qmax: past the clamp
        v = 0.008f * qmax * unit(rng);
      for (float &v : gamma)
        v = 1.0f + 0.2f * unit(rng);
      std::vector<float> dg(size_t(c.N * d.J), kCanary);
      qslaw_qmatmul_grad_gamma_f32(
          bits, d.x.data(), c.M, c.K, ldx, d.dy.data(), c.N, lddy, w.data(),
          c.K, 1, d.scales.data(), gamma.data(),
          withZeros ? d.zeros.data() : nullptr,
          dg.data(), c.G, 2);
      int masked = 0, kept = 0;
      for (int64_t n = 0; n < c.N; ++n)
        for (int64_t j = 0; j < d.J; ++j) {
          const int64_t i = n * d.J + j;
          double acc = 0, mag = 0;
          for (int64_t k = j * c.G; k < std::min(c.K, (j + 1) * c.G); ++k) {
            const float u = w[n * c.K + k] / (d.scales[i] * gamma[i]);
            const double code = std::nearbyint(u) + d.z(i);
            if (code < 0 || code > qmax) {
              ++masked;
              continue;
            }
            ++kept;
            double g = 0;
            for (int64_t m = 0; m < c.M; ++m)
              g += double(d.dy[m * lddy + n]) * d.x[m * ldx + k];
            acc += double(w[n * c.K + k]) * g;
            mag += std::fabs(double(w[n * c.K + k]) * g);
          }
          const double ref = -acc / (double(gamma[i]) * gamma[i]);
          EXPECT_NEAR(dg[i], ref, 1e-5 * (mag + 1e-3))
              << "bits=" << bits << " " << n << "," << j;
        }
      EXPECT_GT(masked, 0) << bits;
      EXPECT_GT(kept, masked) << bits;
    }
}

/// quantize against QuantMath's quantizeValue (the compiler's own constant
/// folding), code for code: values past the clamp at both ends, halfway
/// ratios (round half to even), NaN and infinities, a short last group,
/// with and without zero points; padding bits of the last byte zero; on
/// every instruction set the CPU has (the row loop is compiled for each).
TEST(QMatmulAnyWidth, QuantizeMatchesQuantMath) {
  for (const char *isa : {"scalar", "avx2", "avx512"})
  for (int bits : {2, 3, 4, 8})
    for (bool withZeros : {true, false}) {
      SCOPED_TRACE(qslaw_ukernel_force_isa(isa));
      const int64_t N = 7, K = 101, G = 32, J = (K + G - 1) / G;
      const int64_t qmax = (1 << bits) - 1;
      Data d = make({1, N, K, G, withZeros, 0}, bits, unsigned(60 + bits));
      std::mt19937 rng{unsigned(bits + 7)};
      std::uniform_real_distribution<float> unit(-1.0f, 1.0f);
      std::vector<float> w(size_t(N * K));
      for (float &v : w)
        v = 0.01f * float(qmax) * unit(rng);
      for (int64_t k = 0; k < 8; ++k) // exact halves: ties to even
        w[k] = d.scales[0] * (0.5f + float(k) - 4.0f);
      w[10] = NAN;
      w[11] = INFINITY;
      w[12] = -INFINITY;
      w[13] = 1e30f;
      std::vector<uint8_t> codes(d.codes.size(), 0xAB);
      qslaw_quantize_f32(bits, w.data(), K, 1, N, K, d.scales.data(),
                         withZeros ? d.zeros.data() : nullptr, codes.data(),
                         G, 1);
      int lo = 0, hi = 0;
      for (int64_t n = 0; n < N; ++n)
        for (int64_t k = 0; k < K; ++k) {
          const int64_t i = n * J + k / G;
          const int64_t want = mlir::qslaw::quant::quantizeValue(
              w[n * K + k], d.scales[i], int64_t(d.z(i)), qmax);
          lo += want == 0;
          hi += want == qmax;
          ASSERT_EQ(codeAt(bits, codes, n * K + k), want)
              << "bits=" << bits << " " << n << "," << k;
        }
      EXPECT_GT(lo, 0) << bits;
      EXPECT_GT(hi, 0) << bits;
      const int64_t used = N * K * bits; // bits past the last code are zero
      if (perByte(bits) > 1 && used % 8)
        EXPECT_EQ(codes.back() >> (used % 8), 0) << bits;
    }
  qslaw_ukernel_force_isa(nullptr);
}

/// Rows split over threads in blocks that start on a byte: the codes are
/// those of one thread, byte for byte, also with rows that end mid-byte
/// (K odd) and several blocks (N over the ~64K-weight block).
TEST(QMatmulAnyWidth, QuantizeOnThreadsIsTheSame) {
  for (int bits : {2, 3, 4, 8}) {
    const int64_t N = 1301, K = 101, G = 32;
    Data d = make({1, N, K, G, true, 0}, bits, unsigned(90 + bits));
    std::mt19937 rng{unsigned(bits)};
    std::uniform_real_distribution<float> unit(-1.0f, 1.0f);
    std::vector<float> w(size_t(N * K));
    for (float &v : w)
      v = 0.01f * float((1 << bits) - 1) * unit(rng);
    std::vector<uint8_t> one(d.codes.size(), 0xAB);
    qslaw_quantize_f32(bits, w.data(), K, 1, N, K, d.scales.data(),
                       d.zeros.data(), one.data(), G, 1);
    for (int threads : {2, 3}) {
      std::vector<uint8_t> many(d.codes.size(), 0xCD);
      qslaw_quantize_f32(bits, w.data(), K, 1, N, K, d.scales.data(),
                         d.zeros.data(), many.data(), G, threads);
      EXPECT_EQ(one, many) << "bits=" << bits << " threads=" << threads;
    }
  }
}

/// Gamma mode reads the weight where the model stores it: an ONNX MatMul
/// initializer is [K, N], the transpose of the rows the kernels quantize.
/// Given that layout (strides (1, ldk), ldk >= N: padded too), quantize
/// and dgamma are those of the [N, K] rows, bit for bit, on one thread and
/// on several, with each instruction set's transposing copy.
TEST(QMatmulAnyWidth, TransposedWeightIsTheSame) {
  for (const char *isa : {"scalar", "avx2", "avx512"})
  for (int bits : {2, 3, 4, 8})
    for (int64_t ldk : {int64_t(0), int64_t(5)}) {
      SCOPED_TRACE(qslaw_ukernel_force_isa(isa));
      // K = 601: three column chunks of the transposing copy (256, 256,
      // 89), a short last group, rows ending mid-byte; N = 301: a partial
      // last block of rows and partial 8 x 8 tiles.
      const Shape c{9, 301, 601, 32, true, 3};
      Data d = make(c, bits, unsigned(120 + bits));
      const int64_t N = c.N, K = c.K, ldx = K + c.pad, lddy = N + c.pad;
      const int64_t ld = N + ldk;
      std::mt19937 rng{unsigned(bits + 3)};
      std::uniform_real_distribution<float> unit(-1.0f, 1.0f);
      const float qmax = float((1 << bits) - 1);
      std::vector<float> w(size_t(N * K)), wt(size_t(K * ld), NAN);
      std::vector<float> gamma(size_t(N * d.J));
      for (float &v : w)
        v = 0.008f * qmax * unit(rng);
      for (float &v : gamma)
        v = 1.0f + 0.2f * unit(rng);
      for (int64_t n = 0; n < N; ++n)
        for (int64_t k = 0; k < K; ++k)
          wt[k * ld + n] = w[n * K + k];
      std::vector<uint8_t> rows(d.codes.size(), 0xAB);
      qslaw_quantize_f32(bits, w.data(), K, 1, N, K, d.scales.data(),
                         d.zeros.data(), rows.data(), c.G, 1);
      std::vector<float> dgRows(size_t(N * d.J), kCanary);
      qslaw_qmatmul_grad_gamma_f32(bits, d.x.data(), c.M, K, ldx, d.dy.data(),
                                   N, lddy, w.data(), K, 1, d.scales.data(),
                                   gamma.data(), d.zeros.data(), dgRows.data(),
                                   c.G, 1);
      for (int threads : {1, 2, 3}) {
        std::vector<uint8_t> cols(d.codes.size(), 0xCD);
        qslaw_quantize_f32(bits, wt.data(), 1, ld, N, K, d.scales.data(),
                           d.zeros.data(), cols.data(), c.G, threads);
        EXPECT_EQ(rows, cols) << "bits=" << bits << " threads=" << threads;
        std::vector<float> dg(size_t(N * d.J), kCanary);
        qslaw_qmatmul_grad_gamma_f32(bits, d.x.data(), c.M, K, ldx,
                                     d.dy.data(), N, lddy, wt.data(), 1, ld,
                                     d.scales.data(), gamma.data(),
                                     d.zeros.data(), dg.data(), c.G, threads);
        EXPECT_EQ(dgRows, dg) << "bits=" << bits << " threads=" << threads;
      }
    }
  qslaw_ukernel_force_isa(nullptr);
}

/// A bf16 or f16 weight (gamma mode over a model stored in 16 bits) gives
/// the codes and dgamma of the f32 weight holding the same values, bit for
/// bit: as rows and as [K, N] (padded), on each instruction set's widening
/// copy, 1 to 3 threads. The f32 values come from the compiler's own
/// conversions (__bf16, _Float16), not the kernels'; the f16 weights include
/// subnormals and signed zeros.
TEST(QMatmulAnyWidth, NarrowWeightIsTheSame) {
  for (const char *isa : {"scalar", "avx2", "avx512"})
  for (int type : {QSLAW_WEIGHT_BF16, QSLAW_WEIGHT_F16})
  for (int bits : {2, 4, 8}) {
    SCOPED_TRACE(qslaw_ukernel_force_isa(isa));
    // K = 601 as above; N = 37: a partial 8 x 8 tile.
    const Shape c{9, 37, 601, 32, true, 3};
    Data d = make(c, bits, unsigned(140 + bits + 7 * type));
    const int64_t N = c.N, K = c.K, ldx = K + c.pad, lddy = N + c.pad;
    const int64_t ldRows = K + 3, ldCols = N + 5;
    std::mt19937 rng{unsigned(bits + 11 * type)};
    std::uniform_real_distribution<float> unit(-1.0f, 1.0f);
    const float qmax = float((1 << bits) - 1);
    std::vector<uint16_t> rows16(size_t(N * ldRows), 0xFFFF),
        cols16(size_t(K * ldCols), 0xFFFF);
    std::vector<float> w(size_t(N * K)), gamma(size_t(N * d.J));
    for (int64_t n = 0; n < N; ++n)
      for (int64_t k = 0; k < K; ++k) {
        float v = 0.008f * qmax * unit(rng);
        if (type == QSLAW_WEIGHT_F16 && (n * K + k) % 97 == 0)
          v = float(int(n * K + k) % 5 - 2) * 3e-6f; // subnormal, +-0
        uint16_t bitsOf;
        float wide;
        if (type == QSLAW_WEIGHT_BF16) {
          // Round to nearest even (libgcc 12 has no __truncsfbf2).
          uint32_t u;
          std::memcpy(&u, &v, 4);
          bitsOf = uint16_t((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
          __bf16 h;
          std::memcpy(&h, &bitsOf, 2);
          wide = float(h);
        } else {
          _Float16 h = _Float16(v);
          std::memcpy(&bitsOf, &h, 2);
          wide = float(h);
        }
        w[n * K + k] = wide;
        rows16[n * ldRows + k] = bitsOf;
        cols16[k * ldCols + n] = bitsOf;
      }
    for (float &v : gamma)
      v = 1.0f + 0.2f * unit(rng);
    std::vector<uint8_t> want(d.codes.size(), 0xAB);
    qslaw_quantize_f32(bits, w.data(), K, 1, N, K, d.scales.data(),
                       d.zeros.data(), want.data(), c.G, 1);
    std::vector<float> dgWant(size_t(N * d.J), kCanary);
    qslaw_qmatmul_grad_gamma_f32(bits, d.x.data(), c.M, K, ldx, d.dy.data(),
                                 N, lddy, w.data(), K, 1, d.scales.data(),
                                 gamma.data(), d.zeros.data(), dgWant.data(),
                                 c.G, 1);
    for (bool transposed : {false, true})
      for (int threads : {1, 3}) {
        SCOPED_TRACE(testing::Message() << "type=" << type << " bits=" << bits
                                        << " transposed=" << transposed
                                        << " threads=" << threads);
        const uint16_t *w16 = transposed ? cols16.data() : rows16.data();
        const int64_t sn = transposed ? 1 : ldRows, sk = transposed ? ldCols : 1;
        std::vector<uint8_t> codes(d.codes.size(), 0xCD);
        qslaw_quantize_f32_w16(bits, type, w16, sn, sk, N, K, d.scales.data(),
                               d.zeros.data(), codes.data(), c.G, threads);
        EXPECT_EQ(want, codes);
        std::vector<float> dg(size_t(N * d.J), kCanary);
        qslaw_qmatmul_grad_gamma_f32_w16(
            bits, d.x.data(), c.M, K, ldx, d.dy.data(), N, lddy, type, w16,
            sn, sk, d.scales.data(), gamma.data(), d.zeros.data(), dg.data(),
            c.G, threads);
        EXPECT_EQ(dgWant, dg);
      }
  }
  qslaw_ukernel_force_isa(nullptr);
}

/// Strides that are neither rows nor their transpose are refused, naming
/// the kernel and the strides.
TEST(QMatmulAnyWidthDeathTest, WeightStridesChecked) {
  std::vector<float> w(64, 0.f), scales(8, 1.f);
  std::vector<uint8_t> codes(64);
  EXPECT_DEATH(qslaw_quantize_f32(8, w.data(), 2, 2, 8, 8, scales.data(),
                                  nullptr, codes.data(), 8, 1),
               "quantize: the weight's strides \\(2, 2\\) are neither rows "
               "of \\[N, K\\] = \\[8, 8\\] nor its transpose");
}

/// A 16-bit weight's type other than bf16 or f16 is refused.
TEST(QMatmulAnyWidthDeathTest, WeightTypeChecked) {
  std::vector<uint16_t> w(64, 0);
  std::vector<float> scales(8, 1.f);
  std::vector<uint8_t> codes(64);
  EXPECT_DEATH(qslaw_quantize_f32_w16(8, 7, w.data(), 8, 1, 8, 8,
                                      scales.data(), nullptr, codes.data(), 8,
                                      1),
               "a 16-bit weight's type must be 0 \\(bf16\\) or 1 "
               "\\(f16\\), got 7");
}

} // namespace
