//===- SessionRun.cpp - running a model's functions; session state ---------===//
//
// A run binds every input and output of a function to an ABI buffer: a
// fresh one converted from a caller's host tensor, or a tensor the session
// keeps (session state), which runs read and write in place - on CUDA that
// is device memory, so parameters and optimizer state cross the bus only
// when the caller asks for them (docs/Runtime.md, "Session state").
//
//===----------------------------------------------------------------------===//
#include "RuntimeInternal.h"

#include "llvm/Support/Error.h"
#include "llvm/Support/MathExtras.h"

#include <algorithm>
#include <cstring>

using namespace qslaw;
using qslaw::runtime::fail;
using qslaw::runtime::hostElementBytes;
using qslaw::runtime::shapeStr;

namespace {

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

/// Checks that host tensor `t` has the dtype, shape and byte count of
/// `spec`; `what` names it in the error, `expect` introduces `spec`'s.
qslaw_status checkTensor(const TensorSpec &spec, const qslaw_tensor &t,
                         const std::string &what,
                         const std::string &expect = "expected") {
  if (!t.dtype || spec.dtype != t.dtype)
    return fail(QSLAW_ERROR_INVALID, what + ": dtype " +
                                         (t.dtype ? t.dtype : "(null)") +
                                         ", " + expect + " " + spec.dtype);
  if (t.rank < 0 || (t.rank > 0 && !t.shape) ||
      std::vector<int64_t>(t.shape, t.shape + t.rank) != spec.shape)
    return fail(QSLAW_ERROR_INVALID,
                what + ": shape " +
                    (t.rank >= 0 && (t.rank == 0 || t.shape)
                         ? shapeStr(t.shape, t.rank)
                         : std::string("(invalid)")) +
                    ", " + expect + " " +
                    shapeStr(spec.shape.data(), int32_t(spec.shape.size())));
  size_t want = size_t(spec.numElements()) * hostElementBytes(spec);
  if (t.bytes != want)
    return fail(QSLAW_ERROR_INVALID, what + ": " + std::to_string(t.bytes) +
                                         " bytes, expected " +
                                         std::to_string(want));
  return QSLAW_OK;
}

template <typename T>
int64_t firstOutOfRange(const void *data, int64_t n, const IndexRange &r) {
  const T *p = static_cast<const T *>(data);
  for (int64_t i = 0; i < n; ++i) {
    int64_t v = int64_t(p[i]);
    if (!r.contains(v))
      return i;
  }
  return -1;
}

/// Checks an index input's values against its range: the compiled gather
/// and loss read whatever address an index gives, so a token id past the
/// vocabulary would read out of bounds (or, in a loss, be dropped silently).
qslaw_status checkIndexRange(const TensorSpec &spec, const qslaw_tensor &t,
                             const std::string &what) {
  if (!spec.range || !t.data)
    return QSLAW_OK;
  const IndexRange &r = *spec.range;
  int64_t n = spec.numElements(), bad = -1, v = 0;
  const std::string &dt = spec.dtype;
  if (dt == "i64") {
    bad = firstOutOfRange<int64_t>(t.data, n, r);
    v = bad >= 0 ? static_cast<const int64_t *>(t.data)[bad] : 0;
  } else if (dt == "i32") {
    bad = firstOutOfRange<int32_t>(t.data, n, r);
    v = bad >= 0 ? static_cast<const int32_t *>(t.data)[bad] : 0;
  } else {
    return QSLAW_OK;
  }
  if (bad < 0)
    return QSLAW_OK;
  // The element's coordinates, row-major.
  std::vector<int64_t> at(spec.shape.size());
  for (int64_t k = int64_t(at.size()) - 1, rest = bad; k >= 0; --k) {
    at[k] = spec.shape[k] ? rest % spec.shape[k] : 0;
    rest = spec.shape[k] ? rest / spec.shape[k] : 0;
  }
  return fail(QSLAW_ERROR_INVALID,
              what + ": element " + shapeStr(at.data(), int32_t(at.size())) +
                  " is " + std::to_string(v) + ", outside [" +
                  std::to_string(r.begin) + ", " + std::to_string(r.end) + ")" +
                  (r.ignore ? " and not " + std::to_string(*r.ignore) : "") +
                  (r.indexes.empty() ? "" : ": it indexes " + r.indexes));
}

/// Copies ABI buffer `b` (host storage) into host tensor `t` (checked).
void copyOut(AbiBuffer &b, qslaw_tensor &t) {
  NpyArray a = b.toNpy();
  if (b.spec().dtype == "bf16") { // exact f32 -> bf16 bits
    std::vector<uint8_t> half;
    half.reserve(a.data.size() / 2);
    for (size_t k = 0; k + 4 <= a.data.size(); k += 4) {
      uint32_t bits;
      memcpy(&bits, a.data.data() + k, 4);
      uint16_t hi = uint16_t(bits >> 16);
      half.push_back(uint8_t(hi & 0xff));
      half.push_back(uint8_t(hi >> 8));
    }
    a.data = std::move(half);
  }
  memcpy(t.data, a.data.data(), a.data.size());
}

/// Whether `t`'s bytes overlap those of any of `inputs` (an output written
/// in place must not clobber an input the run still reads).
bool overlapsAny(const qslaw_tensor &t, const qslaw_tensor *inputs,
                 int32_t numInputs) {
  auto begin = reinterpret_cast<uintptr_t>(t.data);
  for (int32_t i = 0; i < numInputs; ++i) {
    auto b = reinterpret_cast<uintptr_t>(inputs[i].data);
    if (inputs[i].data && b < begin + t.bytes && begin < b + inputs[i].bytes)
      return true;
  }
  return false;
}

/// Makes a host tensor's ABI buffer.
qslaw_status bufferFor(const TensorSpec &spec, const qslaw_tensor &t,
                       const std::string &what,
                       std::unique_ptr<AbiBuffer> &out) {
  if (!t.data && t.bytes)
    return fail(QSLAW_ERROR_INVALID, what + ": null data");
  auto buf = std::make_unique<AbiBuffer>(spec);
  if (llvm::Error e = buf->fill(toNpy(spec, t), what))
    return fail(QSLAW_ERROR_INVALID, llvm::toString(std::move(e)));
  out = std::move(buf);
  return QSLAW_OK;
}

qslaw_status deviceError(CudaApi &cuda, const std::string &what) {
  const char *e = cuda.takeError();
  return fail(QSLAW_ERROR_DEVICE, what + ": " + (e ? e : "unknown error"));
}

/// One argument of a run: its buffer (owned, or a state tensor's) and, on
/// CUDA, its device memory (owned unless it is a state tensor's).
struct Arg {
  std::unique_ptr<AbiBuffer> owned;
  StateTensor *state = nullptr;
  void *device = nullptr;
  bool keep = false; // an output that becomes session state
  bool direct = false; // an output written straight into the caller's memory
  AbiBuffer &buffer() { return state ? *state->buffer : *owned; }
};

/// Frees the device memory the run owns (not the state's, not kept ones).
void releaseArgs(qslaw_session &s, std::vector<Arg> &args) {
  for (Arg &a : args)
    if (s.cuda && a.device && !a.state) {
      s.cuda->free(a.device);
      a.device = nullptr;
    }
}

/// Stores `buffer`/`device` as state tensor `name`, replacing one.
void putState(qslaw_session &s, const std::string &name,
              std::unique_ptr<AbiBuffer> buffer, void *device) {
  StateTensor &t = s.state[name];
  s.release(t);
  t.buffer = std::move(buffer);
  t.device = device;
}

qslaw_status run(qslaw_session &s, const ModelFunction &m,
                 const qslaw_tensor *inputs, int32_t numInputs,
                 qslaw_tensor *outputs, int32_t numOutputs) {
  if (numInputs < 0 || (numInputs && !inputs) || numOutputs < 0 ||
      (numOutputs && !outputs))
    return fail(QSLAW_ERROR_INVALID, "null or negative tensor arrays");
  if (size_t(numOutputs) != m.outputs.size())
    return fail(QSLAW_ERROR_INVALID,
                "the model has " + std::to_string(m.outputs.size()) +
                    " outputs, got " + std::to_string(numOutputs));
  for (int32_t i = 0; i < numInputs; ++i) {
    bool known = false;
    for (const TensorSpec &spec : m.inputs)
      known |= inputs[i].name && spec.name == inputs[i].name;
    if (!known)
      return fail(QSLAW_ERROR_INVALID,
                  std::string("unknown input '") +
                      (inputs[i].name ? inputs[i].name : "(null)") + "'");
  }
  std::vector<Arg> args(m.inputs.size() + m.outputs.size());
  for (size_t k = 0; k < m.inputs.size(); ++k) {
    const TensorSpec &spec = m.inputs[k];
    const qslaw_tensor *t = nullptr;
    for (int32_t i = 0; i < numInputs; ++i)
      if (inputs[i].name && spec.name == inputs[i].name)
        t = &inputs[i];
    std::string what = "input '" + spec.name + "'";
    if (t) {
      if (qslaw_status st = checkTensor(spec, *t, what, "the model takes"))
        return st;
      if (qslaw_status st = checkIndexRange(spec, *t, what))
        return st;
      if (qslaw_status st = bufferFor(spec, *t, what, args[k].owned))
        return st;
      continue;
    }
    auto it = s.state.find(spec.name);
    if (it == s.state.end()) {
      std::string names;
      for (const TensorSpec &x : m.inputs)
        names += (names.empty() ? "" : ", ") + x.name;
      return fail(QSLAW_ERROR_INVALID,
                  "missing input '" + spec.name + "' (the model takes: " +
                      names + ")" +
                      (s.state.empty() ? ""
                                       : "; the session state has no tensor "
                                         "of that name"));
    }
    const TensorSpec &have = it->second.buffer->spec();
    if (have.dtype != spec.dtype || have.shape != spec.shape)
      return fail(QSLAW_ERROR_INVALID,
                  what + ": the session state holds " + have.dtype + " " +
                      shapeStr(have.shape.data(), int32_t(have.shape.size())) +
                      ", the model takes " + spec.dtype + " " +
                      shapeStr(spec.shape.data(), int32_t(spec.shape.size())));
    args[k].state = &it->second;
    args[k].device = it->second.device;
  }
  for (size_t i = 0; i < m.outputs.size(); ++i) {
    const TensorSpec &spec = m.outputs[i];
    Arg &a = args[m.inputs.size() + i];
    // Outputs are positional; what the caller says about one must agree.
    const qslaw_tensor &o = outputs[i];
    std::string what = "output " + std::to_string(i) + " ('" + spec.name + "')";
    if (o.name && spec.name != o.name)
      return fail(QSLAW_ERROR_INVALID, what + ": the caller names it '" +
                                           o.name + "'");
    if (o.dtype && spec.dtype != o.dtype)
      return fail(QSLAW_ERROR_INVALID, what + ": the caller's dtype is " +
                                           o.dtype + ", the model gives " +
                                           spec.dtype);
    if (o.shape && (size_t(o.rank) != spec.shape.size() ||
                    !std::equal(spec.shape.begin(), spec.shape.end(), o.shape)))
      return fail(QSLAW_ERROR_INVALID,
                  what + ": the caller's shape is " +
                      shapeStr(o.shape, std::max(o.rank, 0)) +
                      ", the model gives " +
                      shapeStr(spec.shape.data(), int32_t(spec.shape.size())));
    a.keep = !outputs[i].data;
    if (!a.keep) {
      size_t want = size_t(spec.numElements()) * hostElementBytes(spec);
      if (outputs[i].bytes != want)
        return fail(QSLAW_ERROR_INVALID,
                    "output '" + spec.name + "': buffer of " +
                        std::to_string(outputs[i].bytes) + " bytes, expected " +
                        std::to_string(want));
    }
    // On the host, an output whose storage is its host layout is written
    // in place: no staging buffer, no copy (a 32 MB logits tensor cost a
    // memset, two copies and fresh pages per run). Element alignment is
    // all the compiled code and the kernels assume.
    const size_t align = std::max<size_t>(hostElementBytes(spec), 1);
    a.direct = !a.keep && !s.cuda && AbiBuffer::sharesHostLayout(spec) &&
               reinterpret_cast<uintptr_t>(outputs[i].data) % align == 0 &&
               !overlapsAny(outputs[i], inputs, numInputs);
    a.owned = a.direct ? std::make_unique<AbiBuffer>(spec, outputs[i].data)
                       : std::make_unique<AbiBuffer>(spec);
  }

  std::vector<std::vector<int64_t>> descs;
  if (CudaApi *cuda = s.cuda) {
    for (size_t k = 0; k < args.size(); ++k) {
      Arg &a = args[k];
      if (!a.state) {
        AbiBuffer &b = a.buffer();
        a.device = cuda->alloc(b.bytes());
        bool isInput = k < m.inputs.size();
        if (!a.device ||
            (isInput && cuda->toDevice(a.device, b.storage(), b.bytes()) != 0)) {
          releaseArgs(s, args);
          return deviceError(*cuda, "staging '" + b.spec().name +
                                        "' on the device");
        }
      }
      descs.push_back(a.buffer().descriptorFor(a.device));
    }
  }
  std::vector<void *> ptrs, callArgs;
  for (size_t k = 0; k < args.size(); ++k)
    ptrs.push_back(s.cuda ? descs[k].data() : args[k].buffer().descriptor());
  for (void *&p : ptrs)
    callArgs.push_back(&p);
  m.entry(callArgs.data());

  if (CudaApi *cuda = s.cuda) {
    if (cuda->synchronize() != 0) {
      releaseArgs(s, args);
      return deviceError(*cuda, "running on the device");
    }
    for (size_t i = 0; i < m.outputs.size(); ++i) {
      Arg &a = args[m.inputs.size() + i];
      if (!a.keep && cuda->toHost(a.owned->storage(), a.device,
                                  a.owned->bytes()) != 0) {
        releaseArgs(s, args);
        return deviceError(*cuda, "reading '" + m.outputs[i].name + "' back");
      }
    }
  }
  // Outputs: kept ones become state (after the run, so that a state tensor
  // read by this run may be replaced by its own update), others go out.
  for (size_t i = 0; i < m.outputs.size(); ++i) {
    Arg &a = args[m.inputs.size() + i];
    if (!a.keep) {
      if (!a.direct)
        copyOut(*a.owned, outputs[i]);
      continue;
    }
    putState(s, m.outputs[i].name, std::move(a.owned), a.device);
    a.device = nullptr; // the state owns it now
  }
  releaseArgs(s, args);
  return QSLAW_OK;
}

/// The state tensor `name`, or an error naming what the session holds.
qslaw_status findState(qslaw_session *s, const char *name, StateTensor *&out) {
  if (!s || !name)
    return fail(QSLAW_ERROR_INVALID, "session state: null argument");
  auto it = s->state.find(name);
  if (it == s->state.end())
    return fail(QSLAW_ERROR_INVALID,
                std::string("no tensor '") + name + "' in the session state (" +
                    std::to_string(s->state.size()) + " held)");
  out = &it->second;
  return QSLAW_OK;
}
} // namespace

extern "C" {

qslaw_status qslaw_session_run(qslaw_session *session,
                               const qslaw_tensor *inputs, int32_t numInputs,
                               qslaw_tensor *outputs, int32_t numOutputs) {
  if (!session)
    return fail(QSLAW_ERROR_INVALID, "qslaw_session_run: null session");
  return run(*session, session->model->main, inputs, numInputs, outputs,
             numOutputs);
}

qslaw_status qslaw_session_run_function(qslaw_session *session,
                                        const char *function,
                                        const qslaw_tensor *inputs,
                                        int32_t numInputs,
                                        qslaw_tensor *outputs,
                                        int32_t numOutputs) {
  if (!session)
    return fail(QSLAW_ERROR_INVALID, "qslaw_session_run_function: null "
                                     "session");
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
  return run(*session, it->second, inputs, numInputs, outputs, numOutputs);
}

qslaw_status qslaw_session_state_set(qslaw_session *s, const qslaw_tensor *t) {
  if (!s || !t || !t->name || !t->dtype || t->rank < 0 ||
      (t->rank > 0 && !t->shape))
    return fail(QSLAW_ERROR_INVALID, "qslaw_session_state_set: null argument");
  TensorSpec spec{t->name, t->dtype, {t->shape, t->shape + t->rank}};
  std::string what = std::string("state tensor '") + t->name + "'";
  static const char *const known[] = {"f32", "f16", "bf16", "f64", "i64", "i32",
                                      "i16", "i8",  "i4",   "i3",  "i2",  "i1"};
  if (std::find(std::begin(known), std::end(known), spec.dtype) ==
      std::end(known))
    return fail(QSLAW_ERROR_INVALID, what + ": unknown dtype '" + spec.dtype +
                                         "'");
  // The caller's shape sizes a buffer: negative dimensions and products
  // that overflow int64 (2^32 x 2^32 wrapped to 0 bytes) are refused.
  int64_t count = 1;
  for (int64_t d : spec.shape)
    if (d < 0 || llvm::MulOverflow(count, d, count) ||
        count > (int64_t(1) << 48))
      return fail(QSLAW_ERROR_INVALID, what + ": negative or too large "
                                              "dimensions in " +
                                           shapeStr(t->shape, t->rank));
  if (qslaw_status st = checkTensor(spec, *t, what))
    return st;
  std::unique_ptr<AbiBuffer> buf;
  if (qslaw_status st = bufferFor(spec, *t, what, buf))
    return st;
  void *device = nullptr;
  if (CudaApi *cuda = s->cuda) {
    device = cuda->alloc(buf->bytes());
    if (!device || cuda->toDevice(device, buf->storage(), buf->bytes()) != 0) {
      if (device)
        cuda->free(device);
      return deviceError(*cuda, "copying " + what + " to the device");
    }
  }
  putState(*s, t->name, std::move(buf), device);
  return QSLAW_OK;
}

qslaw_status qslaw_session_state_get(qslaw_session *s, qslaw_tensor *t) {
  StateTensor *st = nullptr;
  if (qslaw_status r = findState(s, t ? t->name : nullptr, st))
    return r;
  AbiBuffer &b = *st->buffer;
  std::string what = std::string("state tensor '") + t->name + "'";
  if (qslaw_status r = checkTensor(b.spec(), *t, what))
    return r;
  if (!t->data && t->bytes)
    return fail(QSLAW_ERROR_INVALID, what + ": null data");
  if (s->cuda && s->cuda->toHost(b.storage(), st->device, b.bytes()) != 0)
    return deviceError(*s->cuda, "reading " + what + " back");
  copyOut(b, *t);
  return QSLAW_OK;
}

qslaw_status qslaw_session_state_move(qslaw_session *s, const char *from,
                                      const char *to) {
  StateTensor *st = nullptr;
  if (qslaw_status r = findState(s, from, st))
    return r;
  if (!to)
    return fail(QSLAW_ERROR_INVALID, "qslaw_session_state_move: null name");
  if (std::string(from) == to)
    return QSLAW_OK;
  std::unique_ptr<AbiBuffer> buffer = std::move(st->buffer);
  void *device = st->device;
  s->state.erase(from);
  putState(*s, to, std::move(buffer), device);
  return QSLAW_OK;
}

qslaw_status qslaw_session_state_drop(qslaw_session *s, const char *name) {
  if (!s)
    return fail(QSLAW_ERROR_INVALID, "qslaw_session_state_drop: null session");
  if (!name) {
    for (auto &kv : s->state)
      s->release(kv.second);
    s->state.clear();
    return QSLAW_OK;
  }
  StateTensor *st = nullptr;
  if (qslaw_status r = findState(s, name, st))
    return r;
  s->release(*st);
  s->state.erase(name);
  return QSLAW_OK;
}

int32_t qslaw_session_state_count(const qslaw_session *s) {
  return s ? int32_t(s->state.size()) : 0;
}

qslaw_status qslaw_session_state_describe(const qslaw_session *s, int32_t i,
                                          qslaw_tensor *desc) {
  if (!s || !desc || i < 0 || size_t(i) >= s->state.size())
    return fail(QSLAW_ERROR_INVALID,
                "state index " + std::to_string(i) + " out of range");
  auto it = std::next(s->state.begin(), i);
  runtime::describe(it->second.buffer->spec(), desc);
  desc->name = it->first.c_str(); // the state's name (renamed by a move)
  return QSLAW_OK;
}

} // extern "C"
