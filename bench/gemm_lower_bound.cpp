//===- gemm_lower_bound.cpp - a step's contractions timed alone -----------===//
//
// The GEMM lower bound of a compiled step: every contraction the step ran
// (recorded by the runtime with QSLAW_GEMM_TRACE=FILE, one JSON line per
// call: the float GEMM it amounts to), timed alone as a plain f32 GEMM
// through the library the runtime uses (qslaw_sgemm_f32_batched). A
// quantized layer counts as the float GEMM of its shape: its forward, its
// ∂X and its token GEMM (∂s, ∂γ). The sum is what the step would cost if
// everything but its contractions were free; bench/train_step_real_cpu.py
// divides the measured step by it.
//
//   build/bin/gemm_lower_bound TRACE [--threads N] [--min-ms 200]
//
// Prints one JSON object: total_ms, gflop, and one row per distinct shape
// (calls, median ms per call).
//
//===----------------------------------------------------------------------===//
#include "qslaw/Runtime/Ukernels.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <map>
#include <random>
#include <tuple>
#include <vector>

namespace {
using Shape = std::tuple<int64_t, int64_t, int64_t, int64_t, int, int>;

double medianMs(const Shape &s, int threads, double minMs) {
  const auto &[batch0, m0, n0, k0, ta0, tb0] = s;
  int64_t batch = batch0, m = m0, n = n0, k = k0;
  int ta = ta0, tb = tb0;
  std::vector<float> a(size_t(batch * m * k)), b(size_t(batch * k * n)),
      c(size_t(batch * m * n));
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (float &e : a)
    e = u(rng);
  for (float &e : b)
    e = u(rng);
  auto once = [&] {
    auto t0 = std::chrono::steady_clock::now();
    qslaw_sgemm_f32_batched(batch, m, n, k, a.data(), ta ? m : k, m * k, ta,
                            b.data(), tb ? k : n, k * n, tb, 0.f, c.data(), n,
                            m * n, threads);
    return std::chrono::duration<double, std::milli>(
               std::chrono::steady_clock::now() - t0)
        .count();
  };
  once(); // warm the library's packing buffers and the caches' TLB
  std::vector<double> times;
  double spent = 0;
  while (times.size() < 5 || (spent < minMs && times.size() < 200)) {
    times.push_back(once());
    spent += times.back();
  }
  std::nth_element(times.begin(), times.begin() + times.size() / 2,
                   times.end());
  return times[times.size() / 2];
}
} // namespace

int main(int argc, char **argv) {
  if (argc < 2) {
    llvm::errs() << "usage: gemm_lower_bound TRACE [--threads N] "
                    "[--min-ms MS]\n";
    return 2;
  }
  int threads = 0;
  double minMs = 200;
  for (int i = 2; i + 1 < argc; i += 2) {
    llvm::StringRef flag(argv[i]);
    if (flag == "--threads")
      threads = std::atoi(argv[i + 1]);
    else if (flag == "--min-ms")
      minMs = std::atof(argv[i + 1]);
    else {
      llvm::errs() << "gemm_lower_bound: unknown option '" << flag << "'\n";
      return 2;
    }
  }
  auto buffer = llvm::MemoryBuffer::getFile(argv[1]);
  if (!buffer) {
    llvm::errs() << "gemm_lower_bound: cannot read '" << argv[1]
                 << "': " << buffer.getError().message() << "\n";
    return 1;
  }
  std::map<Shape, int64_t> calls;
  llvm::SmallVector<llvm::StringRef> lines;
  (*buffer)->getBuffer().split(lines, '\n', -1, /*KeepEmpty=*/false);
  for (auto [index, line] : llvm::enumerate(lines)) {
    auto value = llvm::json::parse(line);
    const llvm::json::Object *row = value ? value->getAsObject() : nullptr;
    auto field = [&](llvm::StringRef key) {
      return row ? row->getInteger(key) : std::nullopt;
    };
    auto batch = field("batch"), m = field("m"), n = field("n"),
         k = field("k"), ta = field("trans_a"), tb = field("trans_b");
    if (!value)
      llvm::consumeError(value.takeError());
    if (!batch || !m || !n || !k || !ta || !tb) {
      llvm::errs() << argv[1] << ":" << index + 1
                   << ": not a contraction record: " << line << "\n";
      return 1;
    }
    ++calls[Shape(*batch, *m, *n, *k, int(*ta), int(*tb))];
  }
  double totalMs = 0, gflop = 0;
  llvm::json::Array rows;
  for (auto &[shape, count] : calls) {
    double ms = medianMs(shape, threads, minMs);
    auto [batch, m, n, k, ta, tb] = shape;
    totalMs += ms * double(count);
    gflop += 2e-9 * double(batch * m * n * k) * double(count);
    rows.push_back(llvm::json::Object{{"batch", batch}, {"m", m}, {"n", n},
                                      {"k", k}, {"trans_a", ta},
                                      {"trans_b", tb}, {"calls", count},
                                      {"ms", ms}});
  }
  llvm::outs() << llvm::formatv(
      "{0:2}\n", llvm::json::Value(llvm::json::Object{
                     {"total_ms", totalMs},
                     {"gflop", gflop},
                     {"threads", threads > 0 ? threads : qslaw_num_threads()},
                     {"library", qslaw_gemm_library()},
                     {"shapes", std::move(rows)}}));
  return 0;
}
