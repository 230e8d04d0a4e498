//===- qmatmul_kernels.cpp - quantized matmul microkernels side by side ---===//
//
// Google Benchmark over the CPU microkernels of qmatmul and its scale-mode
// gradients at the widths of the LLaVA benchmarks (bench/llava_forward_cpu.py):
// the hand-written 4-bit forward (qslaw_qmatmul_w4_f32_mt) against the
// blocked any-width kernels (qslaw_qmatmul_*: dequantise a block, GEMM
// library) at 2, 3, 4 and 8 bits, their gradients, and the float GEMM of
// the same shape through the same library as the lower bound. Groups of
// 128, asymmetric.
//
//   build/bin/qmatmul_kernels [--benchmark_filter=...] \
//       [--benchmark_repetitions=5 --benchmark_report_aggregates_only=true]
//
// Thread count: QSLAW_NUM_THREADS (default all cores), for every kernel.
//
//===----------------------------------------------------------------------===//
#include "qslaw/Runtime/Ukernels.h"

#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

namespace {
constexpr int64_t kG = 128;

struct Operands {
  int64_t M, N, K, J;
  std::vector<float> x, dy, y, dx, scales, ds, wf;
  std::vector<uint8_t> codes, zeros;
};

Operands make(int64_t M, int64_t N, int64_t K, int bits) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::uniform_int_distribution<int> byte(0, 255);
  Operands o{M, N, K, (K + kG - 1) / kG, {}, {}, {}, {}, {}, {}, {}, {}, {}};
  auto fill = [&](std::vector<float> &v, int64_t n, float s) {
    v.resize(size_t(n));
    for (float &e : v)
      e = s * u(rng);
  };
  fill(o.x, M * K, 1.f);
  fill(o.dy, M * N, 1.f);
  fill(o.scales, N * o.J, 0.01f);
  fill(o.wf, N * K, 0.1f);
  o.y.resize(size_t(M * N));
  o.dx.resize(size_t(M * K));
  o.ds.resize(size_t(N * o.J));
  const int perByte = bits == 2 ? 4 : bits == 4 ? 2 : 1;
  o.codes.resize(size_t((N * K + perByte - 1) / perByte));
  o.zeros.resize(size_t((N * o.J + perByte - 1) / perByte));
  const uint8_t mask = bits >= 8 ? 0xFF : uint8_t(bits == 3 ? 7 : 0xFF);
  for (uint8_t &b : o.codes)
    b = uint8_t(byte(rng)) & mask;
  for (uint8_t &b : o.zeros)
    b = uint8_t(byte(rng)) & mask;
  return o;
}

// Shapes: {M, N, K}. Small LLaVA's MLP up/down and attention projection at
// 256 tokens, the medium MLP, and one decode row.
void shapes(benchmark::internal::Benchmark *b) {
  for (auto s : std::vector<std::vector<int64_t>>{{256, 1408, 512},
                                                  {256, 512, 1408},
                                                  {256, 512, 512},
                                                  {256, 2816, 1024},
                                                  {1, 2816, 1024}})
    b->Args(s);
  b->Unit(benchmark::kMillisecond);
}

void flops(benchmark::State &st, const Operands &o) {
  st.counters["GFLOP/s"] = benchmark::Counter(
      2.0 * double(o.M * o.N * o.K), benchmark::Counter::kIsIterationInvariantRate,
      benchmark::Counter::kIs1000);
}

void BM_sgemm(benchmark::State &st) { // the float lower bound: x . W^T
  Operands o = make(st.range(0), st.range(1), st.range(2), 8);
  for (auto _ : st)
    qslaw_sgemm_f32_batched(1, o.M, o.N, o.K, o.x.data(), o.K, 0, 0,
                            o.wf.data(), o.K, 0, 1, 0.f, o.y.data(), o.N, 0,
                            0);
  flops(st, o);
}

void BM_w4_forward(benchmark::State &st) {
  Operands o = make(st.range(0), st.range(1), st.range(2), 4);
  for (auto _ : st)
    qslaw_qmatmul_w4_f32_mt(o.x.data(), o.M, o.K, o.K, o.codes.data(),
                            o.scales.data(), o.zeros.data(), nullptr,
                            o.y.data(), o.N, o.N, kG, qslaw_num_threads());
  flops(st, o);
}

template <int Bits> void BM_blocked_forward(benchmark::State &st) {
  Operands o = make(st.range(0), st.range(1), st.range(2), Bits);
  for (auto _ : st)
    qslaw_qmatmul_f32(Bits, o.x.data(), o.M, o.K, o.K, o.codes.data(),
                      o.scales.data(), o.zeros.data(), nullptr, o.y.data(),
                      o.N, o.N, kG, 0);
  flops(st, o);
}

template <int Bits> void BM_blocked_grad_input(benchmark::State &st) {
  Operands o = make(st.range(0), st.range(1), st.range(2), Bits);
  for (auto _ : st)
    qslaw_qmatmul_grad_input_f32(Bits, o.dy.data(), o.M, o.N, o.N,
                                 o.codes.data(), o.scales.data(),
                                 o.zeros.data(), o.dx.data(), o.K, o.K, kG, 0);
  flops(st, o);
}

template <int Bits> void BM_blocked_grad_scale(benchmark::State &st) {
  Operands o = make(st.range(0), st.range(1), st.range(2), Bits);
  for (auto _ : st)
    qslaw_qmatmul_grad_scale_f32(Bits, o.x.data(), o.M, o.K, o.K, o.dy.data(),
                                 o.N, o.N, o.codes.data(), o.zeros.data(),
                                 o.ds.data(), kG, 0);
  flops(st, o);
}
// Gamma mode re-quantises every trained weight each step: [N, K] codes
// from the f32 weight and scales, on 1 and 2 threads.
template <int Bits> void BM_quantize(benchmark::State &st) {
  Operands o = make(1, st.range(0), st.range(1), Bits);
  for (auto _ : st)
    qslaw_quantize_f32(Bits, o.wf.data(), o.K, 1, o.N, o.K, o.scales.data(),
                       o.zeros.data(), o.codes.data(), kG, int(st.range(2)));
  st.counters["weights/s"] = benchmark::Counter(
      double(o.N * o.K), benchmark::Counter::kIsIterationInvariantRate,
      benchmark::Counter::kIs1000);
}

// The same from the weight as an ONNX MatMul stores it ([K, N]: gamma mode
// reads it there, through a transposing copy of each block of rows).
template <int Bits> void BM_quantize_kn(benchmark::State &st) {
  Operands o = make(1, st.range(0), st.range(1), Bits);
  for (auto _ : st)
    qslaw_quantize_f32(Bits, o.wf.data(), 1, o.N, o.N, o.K, o.scales.data(),
                       o.zeros.data(), o.codes.data(), kG, int(st.range(2)));
  st.counters["weights/s"] = benchmark::Counter(
      double(o.N * o.K), benchmark::Counter::kIsIterationInvariantRate,
      benchmark::Counter::kIs1000);
}

// The same [K, N] weight stored as bf16 (a half-precision checkpoint):
// widened to f32 in the same transposing copy, half the bytes read.
template <int Bits> void BM_quantize_kn_bf16(benchmark::State &st) {
  Operands o = make(1, st.range(0), st.range(1), Bits);
  std::vector<uint16_t> w16(o.wf.size());
  for (size_t i = 0; i < w16.size(); ++i) {
    uint32_t u;
    std::memcpy(&u, &o.wf[i], 4);
    w16[i] = uint16_t(u >> 16);
  }
  for (auto _ : st)
    qslaw_quantize_f32_w16(Bits, QSLAW_WEIGHT_BF16, w16.data(), 1, o.N, o.N,
                           o.K, o.scales.data(), o.zeros.data(),
                           o.codes.data(), kG, int(st.range(2)));
  st.counters["weights/s"] = benchmark::Counter(
      double(o.N * o.K), benchmark::Counter::kIsIterationInvariantRate,
      benchmark::Counter::kIs1000);
}

void quantizeShapes(benchmark::internal::Benchmark *b) {
  for (int64_t threads : {1, 2})
    for (auto nk : std::vector<std::vector<int64_t>>{{1408, 512}, {2816, 1024}})
      b->Args({nk[0], nk[1], threads});
  b->Unit(benchmark::kMillisecond);
}
} // namespace

BENCHMARK(BM_quantize<4>)->Apply(quantizeShapes);
BENCHMARK(BM_quantize_kn<4>)->Apply(quantizeShapes);
BENCHMARK(BM_quantize_kn_bf16<4>)->Apply(quantizeShapes);
BENCHMARK(BM_quantize<3>)->Apply(quantizeShapes);
BENCHMARK(BM_sgemm)->Apply(shapes);
BENCHMARK(BM_w4_forward)->Apply(shapes);
BENCHMARK(BM_blocked_forward<4>)->Apply(shapes);
BENCHMARK(BM_blocked_forward<2>)->Apply(shapes);
BENCHMARK(BM_blocked_forward<3>)->Apply(shapes);
BENCHMARK(BM_blocked_forward<8>)->Apply(shapes);
BENCHMARK(BM_blocked_grad_input<4>)->Apply(shapes);
BENCHMARK(BM_blocked_grad_input<2>)->Apply(shapes);
BENCHMARK(BM_blocked_grad_input<8>)->Apply(shapes);
BENCHMARK(BM_blocked_grad_scale<4>)->Apply(shapes);
BENCHMARK(BM_blocked_grad_scale<2>)->Apply(shapes);
BENCHMARK(BM_blocked_grad_scale<8>)->Apply(shapes);
BENCHMARK_MAIN();
