//===- Runtime.cpp - C API over compiled model libraries ------------------===//
//
// A model library exports `qslaw_signature_json` (a C string) and
// `qslaw_entry_packed(void **)` (descriptor pointers: inputs then outputs).
// The runtime converts host tensors to the ABI (TensorAbi) and back.
//
//===----------------------------------------------------------------------===//
#include "qslaw/Runtime/qslaw_runtime.h"
#include "qslaw/Runtime/TensorAbi.h"

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

/// One callable function of a model library.
struct ModelFunction {
  std::vector<TensorSpec> inputs, outputs;
  PackedEntry entry = nullptr;
};

struct qslaw_model {
  void *handle = nullptr;
  bool ownsHandle = true;
  std::string signature;
  std::string target = "cpu"; // "cuda": kernels and buffers on the GPU
  std::vector<TensorSpec> inputs, outputs;
  PackedEntry entry = nullptr;
  /// Extra functions (training libraries: init_params, forward_params,
  /// grad_step, train_step), from the signature's "functions".
  std::map<std::string, ModelFunction> functions;
  ~qslaw_model() {
    if (handle && ownsHandle)
      dlclose(handle);
  }
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

struct qslaw_session {
  qslaw_model *model;
  CudaApi *cuda = nullptr; // null: the CPU
  ~qslaw_session() { delete cuda; }
};

namespace {
thread_local std::string lastError;

qslaw_status fail(qslaw_status s, const std::string &msg) {
  lastError = msg;
  return s;
}

bool parseSpecs(const llvm::json::Array *arr, std::vector<TensorSpec> &out) {
  if (!arr)
    return false;
  for (const llvm::json::Value &v : *arr) {
    const llvm::json::Object *o = v.getAsObject();
    if (!o)
      return false;
    TensorSpec s;
    auto name = o->getString("name");
    auto dtype = o->getString("dtype");
    const llvm::json::Array *shape = o->getArray("shape");
    if (!name || !dtype || !shape)
      return false;
    s.name = name->str();
    s.dtype = dtype->str();
    for (const llvm::json::Value &d : *shape) {
      auto i = d.getAsInteger();
      if (!i)
        return false;
      s.shape.push_back(*i);
    }
    out.push_back(std::move(s));
  }
  return true;
}

size_t hostElementBytes(const TensorSpec &s) {
  unsigned b = s.bits();
  return b <= 8 ? 1 : b / 8;
}

void describe(const TensorSpec &s, qslaw_tensor *d) {
  d->name = s.name.c_str();
  d->dtype = s.dtype.c_str();
  d->rank = int32_t(s.shape.size());
  d->shape = s.shape.data();
  d->data = nullptr;
  d->bytes = size_t(s.numElements()) * hostElementBytes(s);
}

std::string shapeStr(const int64_t *shape, int32_t rank) {
  std::string r = "[";
  for (int32_t i = 0; i < rank; ++i)
    r += (i ? ", " : "") + std::to_string(shape[i]);
  return r + "]";
}

/// Host tensor -> NpyArray view with the host layout of `spec`.
NpyArray toNpy(const TensorSpec &spec, const qslaw_tensor &t) {
  NpyArray a;
  a.shape.assign(t.shape, t.shape + t.rank);
  unsigned b = spec.bits();
  if (spec.dtype == "bf16") { // bf16 bits -> exact f32
    a.dtype = "f4";
    const auto *src = static_cast<const uint16_t *>(t.data);
    for (size_t i = 0; i < t.bytes / 2; ++i) {
      uint32_t bits = uint32_t(src[i]) << 16;
      const auto *q = reinterpret_cast<const uint8_t *>(&bits);
      a.data.insert(a.data.end(), q, q + 4);
    }
    return a;
  }
  if (spec.dtype[0] == 'f')
    a.dtype = "f" + std::to_string(b / 8);
  else if (spec.dtype[0] == 'i')
    a.dtype = b <= 8 ? "u1" : "i" + std::to_string(b / 8);
  const auto *p = static_cast<const uint8_t *>(t.data);
  a.data.assign(p, p + t.bytes);
  return a;
}
} // namespace

extern "C" {

const char *qslaw_last_error(void) { return lastError.c_str(); }

qslaw_status qslaw_model_load(const char *path, qslaw_model **model) {
  if (!model)
    return fail(QSLAW_ERROR_INVALID, "qslaw_model_load: null argument");
  auto m = std::make_unique<qslaw_model>();
  if (!path) {
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
  auto *sig = static_cast<const char *const *>(dlsym(m->handle, "qslaw_signature_json"));
  auto entry = reinterpret_cast<PackedEntry>(dlsym(m->handle, "qslaw_entry_packed"));
  if (!sig || !entry)
    return fail(QSLAW_ERROR_IO, std::string(path) +
                                    ": not a qslaw model library (no "
                                    "qslaw_signature_json / qslaw_entry_packed)");
  m->signature = *sig;
  m->entry = entry;
  auto json = llvm::json::parse(m->signature);
  if (!json) {
    std::string e = llvm::toString(json.takeError());
    return fail(QSLAW_ERROR_IO, std::string(path) + ": bad signature JSON: " + e);
  }
  const llvm::json::Object *o = json->getAsObject();
  if (!o || !parseSpecs(o->getArray("inputs"), m->inputs) ||
      !parseSpecs(o->getArray("outputs"), m->outputs))
    return fail(QSLAW_ERROR_IO, std::string(path) +
                                    ": signature JSON lacks inputs/outputs");
  if (auto t = o->getString("target"))
    m->target = t->str();
  if (const llvm::json::Object *fns = o->getObject("functions"))
    for (const auto &kv : *fns) {
      ModelFunction f;
      const llvm::json::Object *fo = kv.second.getAsObject();
      std::string sym = "qslaw_entry_packed_" + kv.first.str();
      f.entry = reinterpret_cast<PackedEntry>(dlsym(m->handle, sym.c_str()));
      if (!fo || !f.entry || !parseSpecs(fo->getArray("inputs"), f.inputs) ||
          !parseSpecs(fo->getArray("outputs"), f.outputs))
        return fail(QSLAW_ERROR_IO, std::string(path) + ": function '" +
                                        kv.first.str() +
                                        "' is listed but not loadable");
      m->functions[kv.first.str()] = std::move(f);
    }
  *model = m.release();
  return QSLAW_OK;
}

void qslaw_model_free(qslaw_model *model) { delete model; }

const char *qslaw_model_signature(const qslaw_model *m) {
  return m->signature.c_str();
}
int32_t qslaw_model_num_inputs(const qslaw_model *m) {
  return int32_t(m->inputs.size());
}
int32_t qslaw_model_num_outputs(const qslaw_model *m) {
  return int32_t(m->outputs.size());
}

qslaw_status qslaw_model_input(const qslaw_model *m, int32_t i,
                               qslaw_tensor *d) {
  if (i < 0 || size_t(i) >= m->inputs.size())
    return fail(QSLAW_ERROR_INVALID, "input index " + std::to_string(i) +
                                         " out of range");
  describe(m->inputs[i], d);
  return QSLAW_OK;
}

qslaw_status qslaw_model_output(const qslaw_model *m, int32_t i,
                                qslaw_tensor *d) {
  if (i < 0 || size_t(i) >= m->outputs.size())
    return fail(QSLAW_ERROR_INVALID, "output index " + std::to_string(i) +
                                         " out of range");
  describe(m->outputs[i], d);
  return QSLAW_OK;
}

qslaw_status qslaw_session_create(qslaw_model *model, const char *device,
                                  qslaw_session **session) {
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

namespace {
qslaw_status runFunction(const ModelFunction *m, CudaApi *cuda,
                         const qslaw_tensor *inputs, int32_t numInputs,
                         qslaw_tensor *outputs, int32_t numOutputs);
} // namespace

qslaw_status qslaw_session_run(qslaw_session *session,
                               const qslaw_tensor *inputs, int32_t numInputs,
                               qslaw_tensor *outputs, int32_t numOutputs) {
  qslaw_model *model = session->model;
  ModelFunction main{model->inputs, model->outputs, model->entry};
  return runFunction(&main, session->cuda, inputs, numInputs, outputs,
                     numOutputs);
}

qslaw_status qslaw_session_run_function(qslaw_session *session,
                                        const char *function,
                                        const qslaw_tensor *inputs,
                                        int32_t numInputs,
                                        qslaw_tensor *outputs,
                                        int32_t numOutputs) {
  qslaw_model *model = session->model;
  auto it = model->functions.find(function ? function : "");
  if (it == model->functions.end()) {
    std::string names;
    for (const auto &kv : model->functions)
      names += (names.empty() ? "" : ", ") + kv.first;
    return fail(QSLAW_ERROR_INVALID,
                std::string("no function '") + (function ? function : "") +
                    "' in the model (it has: " +
                    (names.empty() ? "none" : names) + ")");
  }
  return runFunction(&it->second, session->cuda, inputs, numInputs, outputs,
                     numOutputs);
}

} // extern "C"

namespace {
/// Calls `entry` on device copies of `bufs` and copies the outputs (the
/// last `numOutputs` buffers) back.
qslaw_status callOnDevice(CudaApi &cuda, PackedEntry entry,
                          std::vector<std::unique_ptr<AbiBuffer>> &bufs,
                          size_t numOutputs) {
  std::vector<void *> device(bufs.size(), nullptr);
  auto release = [&] {
    for (void *p : device)
      cuda.free(p);
  };
  auto deviceError = [&](const std::string &what) {
    const char *e = cuda.takeError();
    release();
    return fail(QSLAW_ERROR_DEVICE, what + ": " + (e ? e : "unknown error"));
  };
  std::vector<std::vector<int64_t>> descs;
  for (size_t i = 0; i < bufs.size(); ++i) {
    AbiBuffer &b = *bufs[i];
    device[i] = cuda.alloc(b.bytes());
    if (!device[i] || cuda.toDevice(device[i], b.storage(), b.bytes()) != 0)
      return deviceError("staging '" + b.spec().name + "' on the device");
    descs.push_back(b.descriptorFor(device[i]));
  }
  std::vector<void *> ptrs, args;
  for (auto &d : descs)
    ptrs.push_back(d.data());
  for (void *&p : ptrs)
    args.push_back(&p);
  entry(args.data());
  if (cuda.synchronize() != 0)
    return deviceError("running on the device");
  for (size_t i = bufs.size() - numOutputs; i < bufs.size(); ++i)
    if (cuda.toHost(bufs[i]->storage(), device[i], bufs[i]->bytes()) != 0)
      return deviceError("reading '" + bufs[i]->spec().name + "' back");
  release();
  return QSLAW_OK;
}

qslaw_status runFunction(const ModelFunction *m, CudaApi *cuda,
                         const qslaw_tensor *inputs, int32_t numInputs,
                         qslaw_tensor *outputs, int32_t numOutputs) {
  if (size_t(numOutputs) != m->outputs.size())
    return fail(QSLAW_ERROR_INVALID,
                "the model has " + std::to_string(m->outputs.size()) +
                    " outputs, got " + std::to_string(numOutputs));
  std::vector<std::unique_ptr<AbiBuffer>> bufs;
  for (const TensorSpec &spec : m->inputs) {
    const qslaw_tensor *t = nullptr;
    for (int32_t i = 0; i < numInputs; ++i)
      if (inputs[i].name && spec.name == inputs[i].name)
        t = &inputs[i];
    if (!t) {
      std::string names;
      for (const TensorSpec &s : m->inputs)
        names += (names.empty() ? "" : ", ") + s.name;
      return fail(QSLAW_ERROR_INVALID, "missing input '" + spec.name +
                                           "' (the model takes: " + names + ")");
    }
    if (spec.dtype != t->dtype)
      return fail(QSLAW_ERROR_INVALID, "input '" + spec.name + "': dtype " +
                                           t->dtype + ", the model takes " +
                                           spec.dtype);
    if (std::vector<int64_t>(t->shape, t->shape + t->rank) != spec.shape)
      return fail(QSLAW_ERROR_INVALID,
                  "input '" + spec.name + "': shape " +
                      shapeStr(t->shape, t->rank) + ", the model takes " +
                      shapeStr(spec.shape.data(), int32_t(spec.shape.size())));
    size_t want = size_t(spec.numElements()) * hostElementBytes(spec);
    if (t->bytes != want)
      return fail(QSLAW_ERROR_INVALID, "input '" + spec.name + "': " +
                                           std::to_string(t->bytes) +
                                           " bytes, expected " +
                                           std::to_string(want));
    auto buf = std::make_unique<AbiBuffer>(spec);
    if (llvm::Error e = buf->fill(toNpy(spec, *t), "input '" + spec.name + "'"))
      return fail(QSLAW_ERROR_INVALID, llvm::toString(std::move(e)));
    bufs.push_back(std::move(buf));
  }
  for (int32_t i = 0; i < numInputs; ++i) {
    bool known = false;
    for (const TensorSpec &s : m->inputs)
      known |= inputs[i].name && s.name == inputs[i].name;
    if (!known)
      return fail(QSLAW_ERROR_INVALID,
                  std::string("unknown input '") +
                      (inputs[i].name ? inputs[i].name : "(null)") + "'");
  }
  for (const TensorSpec &spec : m->outputs)
    bufs.push_back(std::make_unique<AbiBuffer>(spec));
  std::vector<void *> descs, args;
  for (auto &b : bufs)
    descs.push_back(b->descriptor());
  for (void *&d : descs)
    args.push_back(&d);
  if (cuda) {
    if (qslaw_status st = callOnDevice(*cuda, m->entry, bufs, m->outputs.size()))
      return st;
  } else {
    m->entry(args.data());
  }
  for (size_t i = 0; i < m->outputs.size(); ++i) {
    const TensorSpec &spec = m->outputs[i];
    NpyArray a = bufs[m->inputs.size() + i]->toNpy();
    if (spec.dtype == "bf16") { // exact f32 -> bf16 bits
      std::vector<uint8_t> half;
      for (size_t k = 0; k + 4 <= a.data.size(); k += 4) {
        uint32_t bits;
        memcpy(&bits, a.data.data() + k, 4);
        uint16_t hi = uint16_t(bits >> 16);
        half.push_back(uint8_t(hi & 0xff));
        half.push_back(uint8_t(hi >> 8));
      }
      a.data = std::move(half);
    }
    if (outputs[i].bytes != a.data.size() || !outputs[i].data)
      return fail(QSLAW_ERROR_INVALID,
                  "output '" + spec.name + "': buffer of " +
                      std::to_string(outputs[i].bytes) + " bytes, expected " +
                      std::to_string(a.data.size()));
    memcpy(outputs[i].data, a.data.data(), a.data.size());
  }
  return QSLAW_OK;
}

} // namespace

