//===- WeightRows.cpp - gamma mode's full-precision weight, as stored -----===//
#include "WeightRows.h"
#include "qslaw/Runtime/Ukernels.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

using namespace qslaw::ukernels;

namespace {

/// Element types, widened exactly to f32 (bf16 and f16 values are all f32
/// values).
struct F32 {
  using E = float;
  static float at(const E *p) { return *p; }
};
struct Bf16 {
  using E = uint16_t;
  static float at(const E *p) {
    const uint32_t u = uint32_t(*p) << 16;
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
  }
};
struct F16 {
  using E = uint16_t;
  static float at(const E *p) {
    const uint32_t h = *p, sign = (h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
    uint32_t u;
    if (exp == 0x1f) // inf, NaN (payload kept)
      u = sign | 0x7f800000u | mant << 13;
    else if (exp != 0) // normal: rebias 15 -> 127
      u = sign | (exp + 112) << 23 | mant << 13;
    else { // zero, subnormal: mant * 2^-24, exact in f32
      const float f = float(mant) * 0x1p-24f;
      std::memcpy(&u, &f, sizeof u);
      u |= sign;
    }
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
  }
};

/// Rows n of a [K, N]-stored weight (element (n, k) at src[k*lds + n]),
/// nb of them, into dst [nb, K] through 16 x 16 tiles, so that both sides
/// move whole cache lines. The scalar instruction set's copy.
template <class T>
void transposeScalar(const void *s, int64_t lds, int64_t nb, int64_t K,
                     float *dst) {
  const auto *src = static_cast<const typename T::E *>(s);
  constexpr int64_t B = 16;
  float tile[B][B];
  for (int64_t k0 = 0; k0 < K; k0 += B)
    for (int64_t r0 = 0; r0 < nb; r0 += B) {
      const int64_t kw = std::min(B, K - k0), rw = std::min(B, nb - r0);
      for (int64_t k = 0; k < kw; ++k)
        for (int64_t r = 0; r < rw; ++r)
          tile[r][k] = T::at(src + (k0 + k) * lds + r0 + r);
      for (int64_t r = 0; r < rw; ++r)
        for (int64_t k = 0; k < kw; ++k)
          dst[(r0 + r) * K + k0 + k] = tile[r][k];
    }
}

/// Rows as stored (element (n, k) at src[n*lds + k]), widened.
template <class T>
void widenScalar(const void *s, int64_t lds, int64_t nb, int64_t K,
                 float *dst) {
  const auto *src = static_cast<const typename T::E *>(s);
  for (int64_t r = 0; r < nb; ++r)
    for (int64_t k = 0; k < K; ++k)
      dst[r * K + k] = T::at(src + r * lds + k);
}

#if defined(__x86_64__)
#define QSLAW_AVX2 __attribute__((target("avx2,fma,f16c")))

/// Eight elements widened into one AVX register.
struct F32x8 : F32 {
  QSLAW_AVX2 static __m256 load8(const E *p) { return _mm256_loadu_ps(p); }
};
struct Bf16x8 : Bf16 {
  QSLAW_AVX2 static __m256 load8(const E *p) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i *>(p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
};
struct F16x8 : F16 {
  QSLAW_AVX2 static __m256 load8(const E *p) {
    return _mm256_cvtph_ps(
        _mm_loadu_si128(reinterpret_cast<const __m128i *>(p)));
  }
};

/// transposeScalar in 8 x 8 tiles held in AVX registers (unpack, shuffle,
/// permute: 24 shuffles per 64 floats), widening as it loads. The
/// compiler's vectoriser made the scalar loops into scalar moves: 4x the
/// time of quantising rows as stored.
template <class T>
QSLAW_AVX2 void transposeAvx2(const void *s, int64_t lds, int64_t nb,
                              int64_t K, float *dst) {
  const auto *src = static_cast<const typename T::E *>(s);
  const int64_t k8 = K / 8 * 8, r8 = nb / 8 * 8;
  for (int64_t k0 = 0; k0 < k8; k0 += 8) {
    for (int64_t r0 = 0; r0 < r8; r0 += 8) {
      __m256 a[8];
      for (int i = 0; i < 8; ++i)
        a[i] = T::load8(src + (k0 + i) * lds + r0);
      __m256 t[8], u[8];
      for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(a[i], a[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(a[i], a[i + 1]);
      }
      for (int i = 0; i < 8; i += 4) {
        u[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
        u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
        u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
      }
      for (int i = 0; i < 4; ++i) {
        _mm256_storeu_ps(dst + (r0 + i) * K + k0,
                         _mm256_permute2f128_ps(u[i], u[i + 4], 0x20));
        _mm256_storeu_ps(dst + (r0 + i + 4) * K + k0,
                         _mm256_permute2f128_ps(u[i], u[i + 4], 0x31));
      }
    }
    for (int64_t r = r8; r < nb; ++r)
      for (int64_t k = k0; k < k0 + 8; ++k)
        dst[r * K + k] = T::at(src + k * lds + r);
  }
  for (int64_t r = 0; r < nb; ++r)
    for (int64_t k = k8; k < K; ++k)
      dst[r * K + k] = T::at(src + k * lds + r);
}

template <class T>
QSLAW_AVX2 void widenAvx2(const void *s, int64_t lds, int64_t nb, int64_t K,
                          float *dst) {
  const auto *src = static_cast<const typename T::E *>(s);
  const int64_t k8 = K / 8 * 8;
  for (int64_t r = 0; r < nb; ++r) {
    const typename T::E *row = src + r * lds;
    for (int64_t k = 0; k < k8; k += 8)
      _mm256_storeu_ps(dst + r * K + k, T::load8(row + k));
    for (int64_t k = k8; k < K; ++k)
      dst[r * K + k] = T::at(row + k);
  }
}
#undef QSLAW_AVX2
#endif

/// The copy of the microkernels' instruction set (qslaw_ukernel_isa) for
/// this type and layout; null for f32 rows, which are read in place.
BlockFn copyFor(WeightType type, bool rowsStored) {
  if (rowsStored && type == WeightType::F32)
    return nullptr;
#if defined(__x86_64__)
  // Every AVX2 CPU so far has F16C; checked anyway, as f16 needs it.
  if (std::strcmp(qslaw_ukernel_isa(), "scalar") != 0 &&
      (type != WeightType::F16 || __builtin_cpu_supports("f16c"))) {
    switch (type) {
    case WeightType::F32:
      return transposeAvx2<F32x8>;
    case WeightType::BF16:
      return rowsStored ? widenAvx2<Bf16x8> : transposeAvx2<Bf16x8>;
    case WeightType::F16:
      return rowsStored ? widenAvx2<F16x8> : transposeAvx2<F16x8>;
    }
  }
#endif
  switch (type) {
  case WeightType::F32:
    return transposeScalar<F32>;
  case WeightType::BF16:
    return rowsStored ? widenScalar<Bf16> : transposeScalar<Bf16>;
  case WeightType::F16:
    return rowsStored ? widenScalar<F16> : transposeScalar<F16>;
  }
  return nullptr;
}

size_t elementBytes(WeightType type) {
  return type == WeightType::F32 ? 4 : 2;
}

} // namespace

WeightType qslaw::ukernels::weight16(int wType) {
  if (wType == QSLAW_WEIGHT_BF16)
    return WeightType::BF16;
  if (wType == QSLAW_WEIGHT_F16)
    return WeightType::F16;
  std::fprintf(stderr, "qslaw: a 16-bit weight's type must be %d (bf16) or "
                       "%d (f16), got %d\n",
               QSLAW_WEIGHT_BF16, QSLAW_WEIGHT_F16, wType);
  std::abort();
}

BlockFn qslaw::ukernels::widenRowsFor(WeightType type) {
  return copyFor(type, /*rowsStored=*/true);
}

WeightRows::WeightRows(const char *kernel, WeightType type, const void *w,
                       int64_t strideN, int64_t strideK, int64_t N, int64_t K)
    : type(type), w(w), strideN(strideN), strideK(strideK), K(K) {
  if (!(strideK == 1 && strideN >= K) && !(strideN == 1 && strideK >= N)) {
    std::fprintf(stderr,
                 "qslaw: %s: the weight's strides (%lld, %lld) are neither "
                 "rows of [N, K] = [%lld, %lld] nor its transpose\n",
                 kernel, (long long)strideN, (long long)strideK, (long long)N,
                 (long long)K);
    std::abort();
  }
  copy = copyFor(type, rowsStored());
}

int64_t WeightRows::chunk(int64_t G) const {
  if (rowsStored() || G >= K)
    return K;
  return std::min(K, G * std::max<int64_t>(1, 256 / G));
}

const float *WeightRows::block(int64_t n0, int64_t nb, int64_t k0, int64_t kw,
                               float *scratch, int64_t &ld) const {
  const auto *at = static_cast<const char *>(w) +
                   (n0 * strideN + k0 * strideK) * int64_t(elementBytes(type));
  if (inPlace()) {
    ld = strideN;
    return reinterpret_cast<const float *>(at);
  }
  copy(at, rowsStored() ? strideN : strideK, nb, kw, scratch);
  ld = kw;
  return scratch;
}
