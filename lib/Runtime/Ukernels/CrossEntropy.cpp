//===- CrossEntropy.cpp - next-token loss and its gradient, counted rows --===//
//
// A training step's loss reads logits [T, V] (V: a vocabulary of tens of
// thousands) and labels [T], most of them ignored (image and prompt
// positions). The generated code computed every row's max and sum of exp;
// these kernels skip the ignored rows (they read nothing of them, so the
// head's GEMM need not have computed them) and split the counted rows over
// the OpenMP pool. Row loops keep 16 lanes of partial results so that the
// vectoriser turns them into whole-register ops in every ISA clone.
//
//===----------------------------------------------------------------------===//
#include "KernelSupport.h"
#include "qslaw/Runtime/Ukernels.h"

#include <cmath>
#include <cstring>
#include <vector>

namespace {
constexpr int kLanes = 16;

/// exp(x) for x <= 0 (a logit minus its row max): 2^n * p(r) with
/// r = x - n ln 2 in [-ln2/2, ln2/2] and Cephes' degree-6 polynomial
/// (relative error about 1e-7); x below -87.3 gives 2^-126 * p, which is
/// under the sum's precision. NaN stays NaN (a non-finite step must show in
/// its loss); the exponent is then 0, never a NaN converted to int.
__attribute__((always_inline)) inline float expNonPositive(float x) {
  x = x < -87.3f ? -87.3f : x; // NaN compares false: stays NaN
  float n = __builtin_floorf(x * 1.44269504088896341f + 0.5f);
  n = n == n ? (n < 127.f ? n : 127.f) : 0.f;
  float r = x - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  int32_t bits = (int32_t(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}

/// Row max and sum of exp(x - max) of one row of V logits.
QSLAW_CLONES void rowStats(const float *x, int64_t v, float &maxOut,
                           float &sumOut) {
  float m[kLanes];
  for (int l = 0; l < kLanes; ++l)
    m[l] = -INFINITY;
  int64_t i = 0;
  for (; i + kLanes <= v; i += kLanes)
    for (int l = 0; l < kLanes; ++l)
      m[l] = x[i + l] > m[l] ? x[i + l] : m[l];
  float mx = -INFINITY;
  for (int l = 0; l < kLanes; ++l)
    mx = m[l] > mx ? m[l] : mx;
  for (; i < v; ++i)
    mx = x[i] > mx ? x[i] : mx;
  float s[kLanes] = {};
  i = 0;
  for (; i + kLanes <= v; i += kLanes)
    for (int l = 0; l < kLanes; ++l)
      s[l] += expNonPositive(x[i + l] - mx);
  float sum = 0;
  for (; i < v; ++i)
    sum += expNonPositive(x[i] - mx);
  for (int l = 0; l < kLanes; ++l)
    sum += s[l];
  maxOut = mx;
  sumOut = sum;
}

/// g[i] = exp(x[i] - mx) * c (the softmax times the loss gradient's scale).
QSLAW_CLONES void rowSoftmaxScaled(const float *x, int64_t v, float mx,
                                   float c, float *g) {
  for (int64_t i = 0; i < v; ++i)
    g[i] = expNonPositive(x[i] - mx) * c;
}

bool counts(int64_t label, int64_t ignore, int64_t v) {
  return label != ignore && label >= 0 && label < v;
}

/// The counted rows, in order.
std::vector<int64_t> countedRows(int64_t t, int64_t v, const int64_t *labels,
                                 int64_t ignore) {
  std::vector<int64_t> rows;
  for (int64_t r = 0; r < t; ++r)
    if (counts(labels[r], ignore, v))
      rows.push_back(r);
  return rows;
}
} // namespace

extern "C" QSLAW_RT_API float
qslaw_cross_entropy_f32(int64_t T, int64_t V, const float *logits,
                        int64_t ld, const int64_t *labels, int64_t ignore,
                        int numThreads) {
  std::vector<int64_t> rows = countedRows(T, V, labels, ignore);
  std::vector<float> perRow(rows.size());
  qslaw::ukernels::parallelFor(
      int64_t(rows.size()), numThreads > 0 ? numThreads : qslaw_num_threads(),
      [&](int64_t i) {
        const float *x = logits + rows[i] * ld;
        float mx, sum;
        rowStats(x, V, mx, sum);
        perRow[i] = std::log(sum) + mx - x[labels[rows[i]]];
      });
  // Summed in row order whatever the thread count.
  float total = 0;
  for (float l : perRow)
    total += l;
  return total / std::max<float>(float(rows.size()), 1.f);
}

extern "C" QSLAW_RT_API void
qslaw_cross_entropy_grad_f32(int64_t T, int64_t V, const float *logits,
                             int64_t ld, const int64_t *labels, int64_t ignore,
                             float gradLoss, float *grad, int64_t ldg,
                             int zeroIgnored, int numThreads) {
  std::vector<int64_t> rows = countedRows(T, V, labels, ignore);
  const float scale = gradLoss / std::max<float>(float(rows.size()), 1.f);
  const int threads = numThreads > 0 ? numThreads : qslaw_num_threads();
  // The counted rows split evenly: they bunch together (a prompt's answer
  // after its image), so an even split of all rows would leave one thread
  // the whole work.
  qslaw::ukernels::parallelFor(int64_t(rows.size()), threads, [&](int64_t i) {
    const int64_t r = rows[i];
    const float *x = logits + r * ld;
    float *g = grad + r * ldg;
    float mx, sum;
    rowStats(x, V, mx, sum);
    rowSoftmaxScaled(x, V, mx, scale / sum, g);
    g[labels[r]] -= scale;
  });
  if (!zeroIgnored)
    return;
  std::vector<int64_t> ignored;
  ignored.reserve(size_t(T) - rows.size());
  for (int64_t r = 0; r < T; ++r)
    if (!counts(labels[r], ignore, V))
      ignored.push_back(r);
  qslaw::ukernels::parallelFor(
      int64_t(ignored.size()), threads, [&](int64_t i) {
        std::memset(grad + ignored[i] * ldg, 0, size_t(V) * sizeof(float));
      });
}
