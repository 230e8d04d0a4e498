//===- gemm_libraries.cpp - Debian's GEMM libraries side by side ----------===//
//
// Chooses the library qslaw's float contractions call: OpenBLAS, BLIS and
// oneDNN (all from Debian) time the same f32 GEMMs - the shapes of the
// LLaVA benchmarks' forward and training step - in alternating rounds in
// one process. Each library is dlopen'd with RTLD_LOCAL | RTLD_DEEPBIND so
// that their identically named cblas_* symbols do not clash.
//
//   build/bin/gemm_libraries [--threads N] [--rounds R]
//
// Prints one row per shape: median ms per library and GFLOP/s.
//
//===----------------------------------------------------------------------===//
#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace {
enum { RowMajor = 101, NoTrans = 111, Trans = 112 };
using CblasSgemm = void (*)(int, int, int, int, int, int, float, const float *,
                            int, const float *, int, float, float *, int);
using DnnlSgemm = int (*)(char, char, long, long, long, float, const float *,
                          long, const float *, long, float, float *, long);
using SetThreads = void (*)(int);

struct Shape {
  const char *what;
  int m, n, k;
  bool transA, transB;
};

// Forward: x[M,K] . W[K,N]; training: dX = dY . W^T, dW = X^T . dY.
const Shape kShapes[] = {
    {"lm_head 256x512 . 512x32000", 256, 32000, 512, false, false},
    {"mlp up 256x512 . 512x1408", 256, 1408, 512, false, false},
    {"mlp down 256x1408 . 1408x512", 256, 512, 1408, false, false},
    {"attn proj 256x512 . 512x512", 256, 512, 512, false, false},
    {"vit mlp 197x384 . 384x1536", 197, 1536, 384, false, false},
    {"scores 256x64 . (256x64)^T", 256, 256, 64, false, true},
    {"medium mlp 256x1024 . 1024x2816", 256, 2816, 1024, false, false},
    {"dX 256x1408 . (512x1408)^T", 256, 512, 1408, false, true},
    {"dW (256x512)^T . 256x1408", 512, 1408, 256, true, false},
};

struct Lib {
  const char *name;
  void *handle = nullptr;
  CblasSgemm cblas = nullptr;
  DnnlSgemm dnnl = nullptr;
};

void *open(const char *path) {
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
  if (!h)
    std::fprintf(stderr, "skip %s: %s\n", path, dlerror());
  return h;
}

double now() {
  return std::chrono::duration<double>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
} // namespace

int main(int argc, char **argv) {
  int threads = 1, rounds = 7;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--threads") && i + 1 < argc)
      threads = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--rounds") && i + 1 < argc)
      rounds = std::atoi(argv[++i]);
    else {
      std::fprintf(stderr, "usage: %s [--threads N] [--rounds R]\n", argv[0]);
      return 2;
    }
  }
  std::vector<Lib> libs;
  if (void *h = open("libopenblas.so.0")) {
    Lib l{"openblas", h};
    l.cblas = (CblasSgemm)dlsym(h, "cblas_sgemm");
    if (auto f = (SetThreads)dlsym(h, "openblas_set_num_threads"))
      f(threads);
    libs.push_back(l);
  }
  if (void *h = open("libblis.so.4")) {
    Lib l{"blis", h};
    l.cblas = (CblasSgemm)dlsym(h, "cblas_sgemm");
    if (auto f = (SetThreads)dlsym(h, "bli_thread_set_num_threads"))
      f(threads);
    libs.push_back(l);
  }
  if (void *h = open("libdnnl.so.2")) {
    Lib l{"onednn", h};
    l.dnnl = (DnnlSgemm)dlsym(h, "dnnl_sgemm");
    // oneDNN's Debian build threads with OpenMP.
    if (auto f = (SetThreads)dlsym(h, "omp_set_num_threads"))
      f(threads);
    libs.push_back(l);
  }
  std::printf("threads %d, rounds %d; median ms (GFLOP/s)\n%-34s", threads,
              rounds, "shape");
  for (const Lib &l : libs)
    std::printf(" %18s", l.name);
  std::printf("\n");
  std::mt19937 rng(0);
  std::uniform_real_distribution<float> u(-1, 1);
  for (const Shape &s : kShapes) {
    std::vector<float> a(size_t(s.m) * s.k), b(size_t(s.k) * s.n),
        c(size_t(s.m) * s.n), ref;
    for (float &v : a)
      v = u(rng);
    for (float &v : b)
      v = u(rng);
    int lda = s.transA ? s.m : s.k, ldb = s.transB ? s.k : s.n;
    std::vector<std::vector<double>> ms(libs.size());
    double flops = 2.0 * s.m * s.n * s.k;
    int reps = std::max(1, int(2e9 / flops)); // ~0.05-0.5 s per sample
    for (int r = 0; r <= rounds; ++r)
      for (size_t li = 0; li < libs.size(); ++li) {
        const Lib &l = libs[li];
        double t0 = now();
        for (int i = 0; i < reps; ++i) {
          if (l.cblas)
            l.cblas(RowMajor, s.transA ? Trans : NoTrans,
                    s.transB ? Trans : NoTrans, s.m, s.n, s.k, 1.f, a.data(),
                    lda, b.data(), ldb, 0.f, c.data(), s.n);
          else
            l.dnnl(s.transA ? 'T' : 'N', s.transB ? 'T' : 'N', s.m, s.n, s.k,
                   1.f, a.data(), lda, b.data(), ldb, 0.f, c.data(), s.n);
        }
        double dt = (now() - t0) / reps;
        if (r == 0) { // warm-up round; also cross-check the results
          if (ref.empty())
            ref = c;
          double err = 0;
          for (size_t i = 0; i < c.size(); ++i)
            err = std::max(err, double(std::abs(c[i] - ref[i])));
          if (err > 1e-3 * s.k) {
            std::fprintf(stderr, "%s disagrees on %s: %g\n", l.name, s.what,
                         err);
            return 1;
          }
          continue;
        }
        ms[li].push_back(dt * 1e3);
      }
    std::printf("%-34s", s.what);
    for (auto &v : ms) {
      std::sort(v.begin(), v.end());
      double med = v[v.size() / 2];
      std::printf(" %8.3f (%6.1f)", med, flops / med / 1e6);
    }
    std::printf("\n");
  }
  return 0;
}
