//===- RuntimeInternal.h - what the C API's handles hold --------*- C++ -*-===//
//
// Shared by Runtime.cpp (models, sessions) and SessionRun.cpp (runs and
// session state); not installed.
//
//===----------------------------------------------------------------------===//
#ifndef QSLAW_LIB_RUNTIME_RUNTIMEINTERNAL_H
#define QSLAW_LIB_RUNTIME_RUNTIMEINTERNAL_H

#include "qslaw/Runtime/TensorAbi.h"
#include "qslaw/Runtime/qslaw_runtime.h"

#include "llvm/Support/JSON.h"

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <vector>

/// One callable function of a model library.
struct ModelFunction {
  std::vector<qslaw::TensorSpec> inputs, outputs;
  qslaw::PackedEntry entry = nullptr;
};

struct qslaw_model {
  void *handle = nullptr;
  bool ownsHandle = true;
  std::string signature;
  std::string target = "cpu"; // "cuda": kernels and buffers on the GPU
  ModelFunction main;
  /// Extra functions (training libraries: init_params, forward_params,
  /// grad_step, train_step), from the signature's "functions".
  std::map<std::string, ModelFunction> functions;
  /// The library's external weights file is mapped for this model
  /// (runtime::bindWeights).
  bool weightsBound = false;
  /// The caller's reference plus one per session: qslaw_model_free may come
  /// before the sessions' qslaw_session_free; the last release deletes.
  std::atomic<int> refs{1};
  void release() {
    if (refs.fetch_sub(1) == 1)
      delete this;
  }
  ~qslaw_model();
};

/// The device runtime's host API, found through the model library (a
/// `--target=cuda` library depends on libqslaw_cuda_runtime.so).
struct CudaApi {
  int (*init)();
  const char *(*takeError)();
  void *(*alloc)(size_t);
  void (*free)(void *);
  int (*toDevice)(void *, const void *, size_t);
  int (*toHost)(void *, const void *, size_t);
  int (*synchronize)();
};

/// A tensor a session keeps between runs (qslaw_session_state_*). `buffer`
/// fixes the ABI layout and, on the CPU, is the storage runs use in place;
/// on CUDA the runs use `device` in place and `buffer` only stages reads
/// and writes from the host.
struct StateTensor {
  std::unique_ptr<qslaw::AbiBuffer> buffer;
  void *device = nullptr;
};

struct qslaw_session {
  qslaw_model *model = nullptr;
  CudaApi *cuda = nullptr; // null: the CPU
  std::map<std::string, StateTensor> state;
  /// Frees the device copy of `t` (if any).
  void release(StateTensor &t);
  ~qslaw_session();
};

namespace qslaw::runtime {
/// Records `msg` as qslaw_last_error() and returns `s`.
qslaw_status fail(qslaw_status s, const std::string &msg);
/// Host bytes per element of `s` in a qslaw_tensor.
size_t hostElementBytes(const TensorSpec &s);
std::string shapeStr(const int64_t *shape, int32_t rank);
/// Fills `d` with `s`'s name, dtype, shape and host byte count (data NULL).
void describe(const TensorSpec &s, qslaw_tensor *d);
/// Maps the weights file named by the signature's "weights" entry `w`
/// (`weightsPath` if not null, else beside the library holding
/// `signatureSymbol`, or the program itself), checks its size and hash, and
/// points the library's qslaw_weights_base at the data. Loads of one
/// library share the mapping (the hash makes any accepted file the same).
qslaw_status bindWeights(qslaw_model *m, const WeightsRecord &w,
                         const void *signatureSymbol, bool mainProgram,
                         const char *weightsPath);
/// Drops `m`'s use of the mapping; the last use unmaps it.
void releaseWeights(qslaw_model *m);
} // namespace qslaw::runtime

#endif // QSLAW_LIB_RUNTIME_RUNTIMEINTERNAL_H
