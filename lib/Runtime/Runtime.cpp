//===- Runtime.cpp - C API over compiled model libraries: models, sessions ===//
//
// A model library exports `qslaw_signature_json` (a C string) and
// `qslaw_entry_packed(void **)` (descriptor pointers: inputs then outputs).
// Runs and session state are in SessionRun.cpp.
//
//===----------------------------------------------------------------------===//
#include "RuntimeInternal.h"

#include "llvm/Support/JSON.h"

#include <dlfcn.h>
#include <climits>
#include <cerrno>
#include <cstdlib>

#include <cstring>
#include <memory>
#include <type_traits>
#include <map>
#include <string>
#include <vector>

using namespace qslaw;
using qslaw::runtime::fail;

qslaw_model::~qslaw_model() {
  runtime::releaseWeights(this);
  if (handle && ownsHandle)
    dlclose(handle);
}

void qslaw_session::release(StateTensor &t) {
  if (cuda && t.device)
    cuda->free(t.device);
  t.device = nullptr;
}

qslaw_session::~qslaw_session() {
  for (auto &kv : state)
    release(kv.second);
  delete cuda;
  if (model) // after the state: its device frees call into the library
    model->release();
}

namespace {
thread_local std::string lastError;
} // namespace

qslaw_status qslaw::runtime::fail(qslaw_status s, const std::string &msg) {
  lastError = msg;
  return s;
}

size_t qslaw::runtime::hostElementBytes(const TensorSpec &s) {
  unsigned b = s.bits();
  return b <= 8 ? 1 : b / 8;
}

void qslaw::runtime::describe(const TensorSpec &s, qslaw_tensor *d) {
  d->name = s.name.c_str();
  d->dtype = s.dtype.c_str();
  d->rank = int32_t(s.shape.size());
  d->shape = s.shape.data();
  d->data = nullptr;
  d->bytes = size_t(s.numElements()) * hostElementBytes(s);
}

std::string qslaw::runtime::shapeStr(const int64_t *shape, int32_t rank) {
  std::string r = "[";
  for (int32_t i = 0; i < rank; ++i)
    r += (i ? ", " : "") + std::to_string(shape[i]);
  return r + "]";
}

extern "C" {

const char *qslaw_last_error(void) { return lastError.c_str(); }

qslaw_status qslaw_model_load(const char *path, qslaw_model **model) {
  return qslaw_model_load_with_weights(path, nullptr, model);
}

qslaw_status qslaw_model_load_with_weights(const char *path,
                                           const char *weightsPath,
                                           qslaw_model **model) {
  if (!model)
    return fail(QSLAW_ERROR_INVALID, "qslaw_model_load: null argument");
  auto m = std::make_unique<qslaw_model>();
  bool mainProgram = !path;
  if (mainProgram) {
    // The model linked into this program (a trainer executable).
    m->handle = dlopen(nullptr, RTLD_NOW);
    path = "(this program)";
  } else {
    // A bare file name would make dlopen search the library path instead.
    char resolved[PATH_MAX];
    if (!realpath(path, resolved))
      return fail(QSLAW_ERROR_IO, std::string(path) + ": cannot open: " +
                                      std::strerror(errno));
    m->handle = dlopen(resolved, RTLD_NOW | RTLD_LOCAL);
  }
  if (!m->handle)
    return fail(QSLAW_ERROR_IO, std::string(path) + ": cannot load: " + dlerror());
  auto *sigSymbol = static_cast<const char *const *>(
      dlsym(m->handle, "qslaw_signature_json"));
  auto entry = reinterpret_cast<PackedEntry>(dlsym(m->handle, "qslaw_entry_packed"));
  if (!sigSymbol || !entry)
    return fail(QSLAW_ERROR_IO, std::string(path) +
                                    ": not a qslaw model library (no "
                                    "qslaw_signature_json / qslaw_entry_packed)");
  m->signature = *sigSymbol;
  m->main.entry = entry;
  llvm::Expected<ModelSignature> parsed = parseSignature(m->signature);
  if (!parsed)
    return fail(QSLAW_ERROR_IO,
                std::string(path) + ": " + llvm::toString(parsed.takeError()));
  ModelSignature &sig = *parsed;
  m->main.inputs = std::move(sig.inputs);
  m->main.outputs = std::move(sig.outputs);
  m->target = sig.target;
  if (sig.weights) {
    if (qslaw_status st = runtime::bindWeights(m.get(), *sig.weights, sigSymbol,
                                               mainProgram, weightsPath);
        st != QSLAW_OK)
      return st;
  } else if (weightsPath) {
    return fail(QSLAW_ERROR_INVALID,
                std::string(path) + " has no external weights (compiled "
                                    "without --weights=external); do not "
                                    "pass a weights file (" +
                    weightsPath + ")");
  }
  for (auto &[name, fs] : sig.functions) {
    ModelFunction f;
    std::string sym = "qslaw_entry_packed_" + name;
    f.entry = reinterpret_cast<PackedEntry>(dlsym(m->handle, sym.c_str()));
    if (!f.entry)
      return fail(QSLAW_ERROR_IO, std::string(path) + ": function '" + name +
                                      "' is listed but not loadable (no " +
                                      sym + ")");
    f.inputs = std::move(fs.inputs);
    f.outputs = std::move(fs.outputs);
    m->functions[name] = std::move(f);
  }
  *model = m.release();
  return QSLAW_OK;
}

void qslaw_model_free(qslaw_model *model) {
  if (model)
    model->release();
}

const char *qslaw_model_signature(const qslaw_model *m) {
  if (!m) {
    fail(QSLAW_ERROR_INVALID, "qslaw_model_signature: null model");
    return nullptr;
  }
  return m->signature.c_str();
}
int32_t qslaw_model_num_inputs(const qslaw_model *m) {
  if (!m)
    return fail(QSLAW_ERROR_INVALID, "qslaw_model_num_inputs: null model"), -1;
  return int32_t(m->main.inputs.size());
}
int32_t qslaw_model_num_outputs(const qslaw_model *m) {
  if (!m)
    return fail(QSLAW_ERROR_INVALID, "qslaw_model_num_outputs: null model"),
           -1;
  return int32_t(m->main.outputs.size());
}

qslaw_status qslaw_model_input(const qslaw_model *m, int32_t i,
                               qslaw_tensor *d) {
  if (!m || !d)
    return fail(QSLAW_ERROR_INVALID, "qslaw_model_input: null argument");
  if (i < 0 || size_t(i) >= m->main.inputs.size())
    return fail(QSLAW_ERROR_INVALID, "input index " + std::to_string(i) +
                                         " out of range");
  runtime::describe(m->main.inputs[i], d);
  return QSLAW_OK;
}

qslaw_status qslaw_model_output(const qslaw_model *m, int32_t i,
                                qslaw_tensor *d) {
  if (!m || !d)
    return fail(QSLAW_ERROR_INVALID, "qslaw_model_output: null argument");
  if (i < 0 || size_t(i) >= m->main.outputs.size())
    return fail(QSLAW_ERROR_INVALID, "output index " + std::to_string(i) +
                                         " out of range");
  runtime::describe(m->main.outputs[i], d);
  return QSLAW_OK;
}

qslaw_status qslaw_session_create(qslaw_model *model, const char *device,
                                  qslaw_session **session) {
  if (!model || !session)
    return fail(QSLAW_ERROR_INVALID, "qslaw_session_create: null model or "
                                     "session pointer");
  std::string dev = device ? device : "cpu";
  if (dev != "cpu" && dev != "cuda")
    return fail(QSLAW_ERROR_INVALID, "unknown device '" + dev +
                                         "'; expected 'cpu' or 'cuda'");
  if (dev != model->target)
    return fail(QSLAW_ERROR_INVALID,
                "the model was compiled for " + model->target +
                    ", not for device '" + dev + "' (qslaw-compile --target=" +
                    dev + ")");
  auto s = std::make_unique<qslaw_session>();
  s->model = model;
  ++model->refs; // released by ~qslaw_session
  if (dev == "cuda") {
    auto api = std::make_unique<CudaApi>();
    bool ok = true;
    auto get = [&](const char *name, auto &fn) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(
          dlsym(model->handle, name));
      ok &= fn != nullptr;
    };
    get("qslaw_cuda_init", api->init);
    get("qslaw_cuda_take_error", api->takeError);
    get("qslaw_cuda_alloc", api->alloc);
    get("qslaw_cuda_free", api->free);
    get("qslaw_cuda_copy_to_device", api->toDevice);
    get("qslaw_cuda_copy_to_host", api->toHost);
    get("qslaw_cuda_synchronize", api->synchronize);
    if (!ok)
      return fail(QSLAW_ERROR_IO, "the model library does not link the CUDA "
                                  "runtime (libqslaw_cuda_runtime.so)");
    if (api->init() != 0) {
      const char *e = api->takeError();
      return fail(QSLAW_ERROR_DEVICE, e ? e : "CUDA initialisation failed");
    }
    s->cuda = api.release();
  }
  *session = s.release();
  return QSLAW_OK;
}

void qslaw_session_free(qslaw_session *session) { delete session; }

} // extern "C"
