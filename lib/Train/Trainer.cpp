//===- Trainer.cpp - the QSLAW training loop --------------------------------===//
//
// Drives a training library's @train_step: batches sampled from the
// multimodal and linguistic pools by the warmup schedule (deterministic in
// (seed, step)), cosine learning rates with linear warmup per parameter set,
// non-finite detection, JSON-lines metrics, a progress bar, atomic
// checkpoints (write, fsync, rename) every N steps and on SIGINT/SIGTERM,
// and --resume.
//
//===----------------------------------------------------------------------===//
#include "qslaw/Train/qslaw_trainer.h"
#include "qslaw/Runtime/qslaw_runtime.h"
#include "Checkpoint.h"
#include "Exports.h"
#include "qslaw/Export/ONNXExport.h"
#include "qslaw/Runtime/Npy.h"
#include "qslaw/Support/AtomicFile.h"
#include "qslaw/Support/Signature.h"
#include "qslaw/Train/Batch.h"
#include "qslaw/Train/Data.h"
#include "qslaw/Train/Schedule.h"

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <map>
#include <optional>
#include <unistd.h>

using namespace llvm;
using namespace qslaw::train;
using qslaw::FunctionSignature;
using qslaw::ModelSignature;
using qslaw::parseSignature;
using qslaw::TensorSpec;
using qslaw::TrainableParam;
using qslaw::TrainingRecord;

namespace {
cl::OptionCategory cat("qslaw trainer");
cl::opt<std::string> modelPath("model", cl::cat(cat),
                               cl::desc("Training library (default: the "
                                        "model linked into this program)"));
cl::opt<std::string> weightsPath(
    "weights", cl::cat(cat),
    cl::desc("The model's weights file (qslaw-compile --weights=external), "
             "if not beside the program or library"));
cl::opt<std::string> dataPath("data", cl::cat(cat), cl::Required,
                              cl::desc("Tokenised records (JSON lines)"));
cl::opt<std::string> processorConfig(
    "processor-config", cl::cat(cat),
    cl::desc("Hugging Face preprocessor_config.json for the images (default: "
             "the one beside --data, else beside the source model, else "
             "CLIP's mean/std with a bilinear resize)"));
cl::opt<std::string> schedulePath("schedule", cl::cat(cat),
                                  cl::desc("Warmup schedule file (JSON/YAML)"));
cl::opt<std::string> preset("preset", cl::cat(cat), cl::init("progressive"),
                            cl::desc("Schedule preset when no --schedule: "
                                     "progressive, mix or none"));
cl::opt<int64_t> steps("steps", cl::cat(cat), cl::Required,
                       cl::desc("Total optimisation steps"));
cl::opt<int64_t> accumulation(
    "accumulation-steps", cl::cat(cat), cl::init(1),
    cl::desc("Micro-batches per optimizer step: the global batch is the "
             "compiled batch times this; gradients accumulate in the "
             "session, weighted by each micro-batch's share of the tokens"));
cl::opt<uint64_t> seed("seed", cl::cat(cat), cl::init(0), cl::desc("Seed"));
cl::opt<double> lrScales("lr", cl::cat(cat), cl::init(2e-3),
                         cl::desc("Learning rate of scales / gamma"));
cl::opt<double> lrParams("lr-params", cl::cat(cat), cl::init(2e-3),
                         cl::desc("Learning rate of full-precision params"));
cl::opt<double> lrLora("lr-lora", cl::cat(cat), cl::init(2e-4),
                       cl::desc("Learning rate of LoRA adapters (A, B)"));
cl::opt<double> warmupRatio("warmup-ratio", cl::cat(cat), cl::init(0.03),
                            cl::desc("Linear LR warmup, fraction of steps"));
cl::opt<std::string> outDir("out", cl::cat(cat), cl::Required,
                            cl::desc("Directory for checkpoint and metrics"));
cl::opt<int64_t> ckptEvery("checkpoint-every", cl::cat(cat), cl::init(10),
                           cl::desc("Checkpoint period in steps (0: end only)"));
cl::opt<bool> resume("resume", cl::cat(cat),
                     cl::desc("Continue from OUT/checkpoint.bin"));
cl::opt<int> maxNonFinite("max-nonfinite", cl::cat(cat), cl::init(3),
                          cl::desc("Stop after this many non-finite steps in "
                                   "a row"));
cl::opt<int64_t> padId("pad-id", cl::cat(cat), cl::init(0),
                       cl::desc("Token id of padding"));
cl::list<int64_t> injectNaN("inject-nan-at", cl::cat(cat), cl::CommaSeparated,
                            cl::desc("Testing: NaN pixels at these steps"));
cl::opt<std::string> exportDir("export-params", cl::cat(cat),
                               cl::desc("Write the learned tensors as .npy "
                                        "files plus params.json here"));
cl::opt<std::string> exportOnnx("export-onnx", cl::cat(cat),
                                cl::desc("Write the learned model as ONNX "
                                         "here (onnxruntime runs it)"));
cl::opt<std::string> exportPeft(
    "export-peft", cl::cat(cat),
    cl::desc("Write the LoRA adapters in Hugging Face PEFT's format here "
             "(adapter_config.json, adapter_model.safetensors)"));
cl::opt<std::string> peftStripPrefix(
    "peft-strip-prefix", cl::cat(cat),
    cl::desc("Module-path prefix of a wrapper the model was exported "
             "through, dropped from PEFT's module names (e.g. 'm.')"));
cl::opt<std::string> exportFormat(
    "export-format", cl::cat(cat), cl::init("matmulnbits"),
    cl::desc("matmulnbits (com.microsoft MatMulNBits; layers it cannot hold "
             "fall back to QDQ) or qdq (block-wise DequantizeLinear)"));
cl::opt<std::string> sourceModel("source-model", cl::cat(cat),
                                 cl::desc("The ONNX model the trainer was "
                                          "compiled from (default: the path "
                                          "recorded at compile time)"));
cl::opt<bool> quiet("quiet", cl::cat(cat), cl::desc("No progress bar"));
cl::opt<std::string> device("device", cl::cat(cat),
                            cl::desc("cpu or cuda (default: the target the "
                                     "model was compiled for)"));

ExportRequest exportRequest() {
  return {exportDir, exportOnnx, exportFormat, sourceModel, exportPeft,
          peftStripPrefix};
}

volatile std::sig_atomic_t stopSignal = 0;
void onSignal(int sig) { stopSignal = sig; }

int fail(const Twine &msg) {
  errs() << "qslaw-trainer: error: " << msg << "\n";
  return 1;
}

qslaw_tensor tensorOf(const TensorSpec &s, void *data, size_t bytes) {
  return qslaw_tensor{s.name.c_str(), s.dtype.c_str(), int32_t(s.shape.size()),
                      s.shape.data(), data, bytes};
}

} // namespace

extern "C" int qslaw_trainer_main(int argc, char **argv) {
  cl::HideUnrelatedOptions(cat);
  cl::ParseCommandLineOptions(argc, argv,
                              "QSLAW trainer: learns quantization scales "
                              "with a multimodal warmup schedule\n");
  if (steps < 0 || (steps == 0 && exportOnnx.empty() && exportDir.empty()))
    return fail("--steps must be >= 1 (0 only exports the initial, RTN "
                "model with --export-onnx/--export-params)");
  if (accumulation < 1)
    return fail("--accumulation-steps=" + Twine(int64_t(accumulation)) +
                ": must be >= 1 (1: no accumulation)");
  if (exportFormat != "matmulnbits" && exportFormat != "qdq")
    return fail("--export-format=" + exportFormat +
                ": expected matmulnbits or qdq");
  qslaw_model *model = nullptr;
  if (qslaw_model_load_with_weights(
          modelPath.empty() ? nullptr : modelPath.c_str(),
          weightsPath.empty() ? nullptr : weightsPath.c_str(), &model) !=
      QSLAW_OK)
    return fail(qslaw_last_error());
  // The runtime has parsed it already; an error here is not expected.
  Expected<ModelSignature> parsed = parseSignature(qslaw_model_signature(model));
  if (!parsed)
    return fail(toString(parsed.takeError()));
  const ModelSignature &sig = *parsed;
  // The entry function `name`, or null.
  auto fn = [&](StringRef name) -> const FunctionSignature * {
    auto it = sig.functions.find(name.str());
    return it == sig.functions.end() ? nullptr : &it->second;
  };
  if (!sig.training || !fn("train_step") || !fn("init_params"))
    return fail("the model has no training step (compile it with "
                "qslaw-compile --train or --emit=trainer)");
  const TrainingRecord &training = *sig.training;
  std::string dev = device;
  if (dev.empty())
    dev = sig.target;
  qslaw_session *session = nullptr;
  if (qslaw_session_create(model, dev.c_str(), &session) != QSLAW_OK)
    return fail(qslaw_last_error());

  // Parameters and their initial values.
  std::vector<Param> params;
  for (const TrainableParam &t : training.params)
    params.push_back(Param{t.name, t.kind, t.source, t.shape, {}, {}, {}});
  // Parameters and AdamW moments live in the session (on the device for
  // CUDA); host copies are made for checkpoints and exports only.
  const std::vector<TensorSpec> &initOut = fn("init_params")->outputs;
  if (initOut.size() != params.size())
    return fail("init_params has " + Twine(initOut.size()) + " outputs for " +
                Twine(params.size()) + " trainable tensors");
  std::vector<qslaw_tensor> outs;
  for (size_t i = 0; i < params.size(); ++i) {
    if (initOut[i].name != params[i].name || initOut[i].dtype != "f32")
      return fail("init_params output " + Twine(i) + " is '" +
                  initOut[i].name + "' (" + initOut[i].dtype +
                  "), expected the f32 tensor '" + params[i].name + "'");
    int64_t n = initOut[i].numElements();
    params[i].value.assign(n, 0.f);
    params[i].m.assign(n, 0.f);
    params[i].v.assign(n, 0.f);
    outs.push_back(tensorOf(initOut[i], nullptr, 0)); // kept in the session
  }
  if (qslaw_session_run_function(session, "init_params", nullptr, 0, outs.data(),
                                 int32_t(outs.size())) != QSLAW_OK)
    return fail(qslaw_last_error());
  // The session state of parameter i: value, exp_avg, exp_avg_sq.
  const char *const prefixes[3] = {"", "exp_avg.", "exp_avg_sq."};
  auto hostCopy = [&](Param &p, int k) -> std::vector<float> & {
    return k == 0 ? p.value : k == 1 ? p.m : p.v;
  };
  auto stateTensor = [&](size_t i, int k, std::string &name) {
    name = prefixes[k] + params[i].name;
    std::vector<float> &h = hostCopy(params[i], k);
    return qslaw_tensor{name.c_str(), "f32", int32_t(params[i].shape.size()),
                        params[i].shape.data(), h.data(), h.size() * 4};
  };
  // Host copies -> session (k0: first of value, m, v to write).
  auto toSession = [&](int k0) -> bool {
    std::string name;
    for (size_t i = 0; i < params.size(); ++i)
      for (int k = k0; k < 3; ++k) {
        qslaw_tensor t = stateTensor(i, k, name);
        if (qslaw_session_state_set(session, &t) != QSLAW_OK)
          return false;
      }
    return true;
  };
  auto fromSession = [&]() -> bool {
    std::string name;
    for (size_t i = 0; i < params.size(); ++i)
      for (int k = 0; k < 3; ++k) {
        qslaw_tensor t = stateTensor(i, k, name);
        if (qslaw_session_state_get(session, &t) != QSLAW_OK)
          return false;
      }
    return true;
  };
  if (!toSession(1) || !fromSession())
    return fail(qslaw_last_error());

  if (steps == 0) {
    int rc = exportLearned(params, training, exportRequest());
    qslaw_session_free(session);
    qslaw_model_free(model);
    return rc;
  }

  const std::vector<TensorSpec> &tsIn = fn("train_step")->inputs;
  const std::vector<TensorSpec> &tsOut = fn("train_step")->outputs;
  auto findIn = [&](StringRef name) -> const TensorSpec * {
    for (const TensorSpec &s : tsIn)
      if (s.name == name)
        return &s;
    return nullptr;
  };
  if (tsOut.size() != 2 + 3 * params.size())
    return fail("train_step has " + Twine(tsOut.size()) + " outputs, expected " +
                Twine(2 + 3 * params.size()) +
                " (loss, grad_sq_norm, the updated tensors)");
  for (size_t k = 0; k < 3 * params.size(); ++k) {
    std::string want = std::string("new.") + prefixes[k / params.size()] +
                       params[k % params.size()].name;
    if (tsOut[2 + k].name != want)
      return fail("train_step output " + Twine(2 + k) + " is '" +
                  tsOut[2 + k].name + "', expected '" + want + "'");
  }
  if (accumulation > 1)
    for (const char *name : {"grad_step", "accumulate_grads", "apply_step"})
      if (!fn(name))
        return fail(Twine("--accumulation-steps needs the model's @") + name +
                    " (recompile it with this qslaw-compile)");
  const TensorSpec *ids = findIn("input_ids"), *pix = findIn("pixel_values"),
             *mask = findIn("attention_mask"), *labels = findIn("labels");
  if (!ids || !labels || ids->shape.size() != 2)
    return fail("train_step needs input_ids and labels [B, T]");
  int64_t B = ids->shape[0], T = ids->shape[1];

  // Data.
  auto data = loadRecords(dataPath, T);
  if (!data)
    return fail(toString(data.takeError()));
  if (data->skippedTooLong)
    errs() << "qslaw-trainer: skipped " << data->skippedTooLong
           << " record(s) longer than the compiled sequence length " << T
           << "\n";
  if (data->multimodal.empty() && data->text.empty())
    return fail(dataPath + ": no usable record (empty data set)");
  // Token ids and labels the model cannot index are errors here, naming
  // the record, rather than at the first step that samples it.
  if (!ids->accepts(padId))
    return fail("--pad-id=" + Twine(int64_t(padId)) + " is outside the " +
                "model's input_ids range " + ids->range->text());
  for (const std::vector<Record> *pool : {&data->multimodal, &data->text})
    for (const Record &r : *pool)
      for (size_t t = 0; t < r.inputIds.size(); ++t) {
        const char *field = !ids->accepts(r.inputIds[t])   ? "input_ids"
                            : !labels->accepts(r.labels[t]) ? "labels"
                                                          : nullptr;
        if (!field)
          continue;
        const TensorSpec &s = field[0] == 'i' ? *ids : *labels;
        int64_t v = field[0] == 'i' ? r.inputIds[t] : r.labels[t];
        return fail(dataPath + ":" + Twine(r.line) + ": record '" + r.id +
                    "': " + field + "[" + Twine(t) + "] = " + Twine(v) +
                    " is outside the model's range " + s.range->text());
      }
  ImageSpec ispec;
  std::map<std::string, std::vector<float>> images;
  if (pix) {
    if (pix->shape.size() != 4 || pix->shape[2] != pix->shape[3])
      return fail("pixel_values must be [B, 3, S, S]");
    ispec.size = pix->shape[2];
    std::string cfg = processorConfig;
    if (cfg.empty() && !data->multimodal.empty()) {
      // Beside the records (prepare_data --processor-config puts it there),
      // else beside the model the trainer was compiled from.
      SmallString<256> nearData(sys::path::parent_path(dataPath));
      sys::path::append(nearData, "preprocessor_config.json");
      SmallString<256> nearModel(sys::path::parent_path(
          training.model));
      sys::path::append(nearModel, "preprocessor_config.json");
      for (StringRef c : {StringRef(nearData), StringRef(nearModel)})
        if (sys::fs::exists(c)) {
          cfg = c.str();
          break;
        }
    }
    if (!cfg.empty()) {
      auto s = loadProcessorConfig(cfg, ispec.size);
      if (!s)
        return fail(toString(s.takeError()));
      ispec = *s;
      errs() << "qslaw-trainer: images preprocessed as " << cfg << " says\n";
    } else if (!data->multimodal.empty()) {
      errs() << "qslaw-trainer: no preprocessor_config.json (--processor-config"
                ", beside the data or the model): images use CLIP's mean/std,"
                " a bilinear shortest-side resize and a centre crop\n";
    }
    for (const Record &r : data->multimodal) {
      if (images.count(r.image))
        continue;
      auto img = loadImage(r.image, ispec);
      if (!img)
        return fail(dataPath + ": record '" + r.id + "': " +
                    toString(img.takeError()));
      images[r.image] = std::move(*img);
    }
  } else if (!data->multimodal.empty()) {
    return fail("records have images but the model takes no pixel_values");
  }

  // Schedule.
  Expected<WarmupSchedule> sched =
      schedulePath.empty() ? presetSchedule(preset, steps)
                           : loadSchedule(schedulePath, steps);
  if (!sched)
    return fail(toString(sched.takeError()));

  if (std::error_code ec = sys::fs::create_directories(outDir))
    return fail(outDir + ": " + ec.message());
  std::string ckptPath = outDir + "/checkpoint.bin";
  std::string metricsPath = outDir + "/metrics.jsonl";
  int64_t start = 0, nonFiniteRun = 0;
  std::string metrics;
  json::Array phases;
  for (const Phase &ph : sched->phases)
    phases.push_back(json::Array{ph.steps, ph.pStart, ph.pEnd, ph.cosine});
  const json::Object identity = checkpointIdentity(sig, params, phases);
  if (resume) {
    if (Error e = loadCheckpoint(ckptPath, identity, start, nonFiniteRun,
                                 params))
      return fail(toString(std::move(e)));
    if (!toSession(0))
      return fail(qslaw_last_error());
    // Keep the metrics of the steps the checkpoint covers, so that the log
    // equals an uninterrupted run's.
    if (auto mb = MemoryBuffer::getFile(metricsPath)) {
      SmallVector<StringRef> lines;
      (*mb)->getBuffer().split(lines, '\n', -1, false);
      for (StringRef l : lines) {
        auto v = json::parse(l);
        auto *o = v ? v->getAsObject() : nullptr;
        if (!v)
          consumeError(v.takeError());
        if (o && o->getInteger("step") && *o->getInteger("step") <= start)
          metrics += l.str() + "\n";
      }
    }
    errs() << "qslaw-trainer: resuming at step " << start + 1 << "\n";
  }
  if (Error e = qslaw::writeFileAtomically(metricsPath, metrics))
    return fail(toString(std::move(e)));
  int metricsFd = ::open(metricsPath.c_str(), O_WRONLY | O_APPEND);

  std::signal(SIGINT, onSignal);
  std::signal(SIGTERM, onSignal);
  // A checkpoint that cannot be written (disk full, a read-only or vanished
  // directory) is an error: training goes on (the next one may succeed),
  // but the run's status is non-zero and says which step is safe.
  int64_t failedCheckpoints = 0, lastCheckpoint = resume ? start : -1;
  auto checkpoint = [&](int64_t done) {
    std::string why;
    if (!fromSession())
      why = qslaw_last_error();
    else if (Error e = qslaw::writeFileAtomically(
                 ckptPath, checkpointBytes(identity, done, nonFiniteRun, params)))
      why = toString(std::move(e));
    if (why.empty()) {
      lastCheckpoint = done;
      return true;
    }
    ++failedCheckpoints;
    errs() << "\nqslaw-trainer: error: checkpoint at step " << done
           << " not written: " << why << "\n";
    return false;
  };

  size_t P = params.size();
  int64_t warm = int64_t(std::ceil(warmupRatio * steps));
  std::vector<float> lrs(P);
  BatchShape shape{B, T, pix ? pix->numElements() / B : 0, accumulation};
  std::vector<Batch> micro(accumulation);
  std::vector<float> loss(1), gnorm(1), stepF(1), weight(1);
  // Binds a function's inputs: the batch, lrs, step, weight; whatever is
  // not bound (parameters, moments, accumulators) is read from the session.
  auto bindInputs = [&](const std::vector<TensorSpec> &specs, Batch &mb) {
    std::vector<qslaw_tensor> in;
    for (const TensorSpec &s : specs) {
      auto bind = [&](void *d, size_t bytes) { in.push_back(tensorOf(s, d, bytes)); };
      if (s.name == "input_ids")
        bind(mb.ids.data(), mb.ids.size() * 8);
      else if (s.name == "labels")
        bind(mb.labels.data(), mb.labels.size() * 8);
      else if (mask && s.name == mask->name)
        bind(mb.mask.data(), mb.mask.size() * 8);
      else if (pix && s.name == pix->name)
        bind(mb.pixels.data(), mb.pixels.size() * 4);
      else if (s.name == "lrs")
        bind(lrs.data(), P * 4);
      else if (s.name == "step")
        bind(stepF.data(), 4);
      else if (s.name == "weight")
        bind(weight.data(), 4);
    }
    return in;
  };
  // Outputs: host scalars by name, everything else kept in the session.
  auto bindOutputs = [&](const std::vector<TensorSpec> &specs) {
    std::vector<qslaw_tensor> out;
    for (const TensorSpec &s : specs)
      out.push_back(s.name == "loss"           ? tensorOf(s, loss.data(), 4)
                    : s.name == "grad_sq_norm" ? tensorOf(s, gnorm.data(), 4)
                                               : tensorOf(s, nullptr, 0));
    return out;
  };
  auto call = [&](const char *fn, const std::vector<TensorSpec> &ins,
                  const std::vector<TensorSpec> &outs, Batch &mb) {
    std::vector<qslaw_tensor> in = bindInputs(ins, mb), out = bindOutputs(outs);
    return qslaw_session_run_function(session, fn, in.data(), int32_t(in.size()),
                                      out.data(), int32_t(out.size())) == QSLAW_OK;
  };
  std::vector<TensorSpec> gsIn, gsOut, accIn, accOut, apIn, apOut;
  if (accumulation > 1) {
    gsIn = fn("grad_step")->inputs;
    gsOut = fn("grad_step")->outputs;
    accIn = fn("accumulate_grads")->inputs;
    accOut = fn("accumulate_grads")->outputs;
    apIn = fn("apply_step")->inputs;
    apOut = fn("apply_step")->outputs;
  }
  std::vector<std::vector<float>> zeros(P);
  for (size_t i = 0; i < P; ++i)
    zeros[i].assign(params[i].value.size(), 0.f);
  auto t0 = std::chrono::steady_clock::now();
  int64_t tokensSeen = 0;
  bool isTty = !quiet && ::isatty(2);
  int rc = 0;
  for (int64_t step = start; step < steps; ++step) {
    double p = sched->textFraction(step);
    int64_t tokens = 0, textSamples = 0, lossTokens = 0;
    for (int64_t k = 0; k < accumulation; ++k) {
      fillBatch(*data, images, shape, seed, step, p, k, padId, micro[k]);
      tokens += micro[k].tokens;
      textSamples += micro[k].textSamples;
      lossTokens += micro[k].lossTokens;
    }
    if (std::find(injectNaN.begin(), injectNaN.end(), step + 1) != injectNaN.end())
      for (Batch &mb : micro)
        std::fill(mb.pixels.begin(), mb.pixels.end(), NAN);
    for (size_t i = 0; i < P; ++i)
      lrs[i] = float(cosineLr(params[i].kind == "float" ? lrParams
                              : StringRef(params[i].kind).starts_with("lora_")
                                  ? lrLora
                                  : lrScales,
                              step + 1, warm, steps));
    stepF[0] = float(step + 1);
    const std::vector<TensorSpec> *updates = &tsOut;
    if (accumulation == 1) {
      if (!call("train_step", tsIn, tsOut, micro[0]))
        return fail(qslaw_last_error());
    } else {
      // The global batch's loss is the mean over all its loss tokens: each
      // micro-batch's mean weighs n_k / N. One without loss tokens adds
      // nothing (its own mean would be 0/0).
      std::string name;
      for (size_t i = 0; i < P; ++i) {
        name = "acc." + params[i].name;
        qslaw_tensor z{name.c_str(), "f32", int32_t(params[i].shape.size()),
                       params[i].shape.data(), zeros[i].data(), zeros[i].size() * 4};
        if (qslaw_session_state_set(session, &z) != QSLAW_OK)
          return fail(qslaw_last_error());
      }
      double total = 0;
      for (int64_t k = 0; k < accumulation; ++k) {
        if (lossTokens > 0 && micro[k].lossTokens == 0)
          continue;
        weight[0] = lossTokens > 0 ? float(double(micro[k].lossTokens) / lossTokens)
                                   : float(1.0 / double(accumulation));
        if (!call("grad_step", gsIn, gsOut, micro[k]))
          return fail(qslaw_last_error());
        total += double(weight[0]) * loss[0];
        if (!call("accumulate_grads", accIn, accOut, micro[k]))
          return fail(qslaw_last_error());
        for (const TensorSpec &s : accOut)
          if (qslaw_session_state_move(session, s.name.c_str(),
                                       s.name.c_str() + 4) != QSLAW_OK)
            return fail(qslaw_last_error());
      }
      if (!call("apply_step", apIn, apOut, micro[0]))
        return fail(qslaw_last_error());
      loss[0] = float(total);
      updates = &apOut;
    }
    bool finite = std::isfinite(loss[0]) && std::isfinite(gnorm[0]);
    // Commit the update (new.X replaces X) or drop it; no data moves.
    for (const TensorSpec &s : *updates) {
      if (!StringRef(s.name).starts_with("new."))
        continue;
      qslaw_status st =
          finite ? qslaw_session_state_move(session, s.name.c_str(),
                                            s.name.c_str() + 4)
                 : qslaw_session_state_drop(session, s.name.c_str());
      if (st != QSLAW_OK)
        return fail(qslaw_last_error());
    }
    if (finite) {
      nonFiniteRun = 0;
    } else {
      ++nonFiniteRun;
      errs() << (isTty ? "\n" : "") << "qslaw-trainer: step " << step + 1
             << ": non-finite " << (std::isfinite(loss[0]) ? "gradient" : "loss")
             << "; step skipped (" << nonFiniteRun << " in a row)\n";
    }
    tokensSeen += tokens;
    double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    double tps = tokensSeen / std::max(elapsed, 1e-9);
    // JSON has no NaN/Inf: non-finite values are written as null.
    auto num = [](double x) -> json::Value {
      return std::isfinite(x) ? json::Value(x) : json::Value(nullptr);
    };
    json::Object rec{{"step", step + 1},
                     {"loss", num(loss[0])},
                     {"grad_norm", num(std::sqrt(double(gnorm[0])))},
                     {"lr", double(lrs.empty() ? 0 : lrs[0])},
                     {"text_fraction", p},
                     {"text_samples", textSamples},
                     {"tokens", tokens},
                     {"skipped", !finite},
                     {"tokens_per_s", tps}};
    std::string line;
    raw_string_ostream(line) << json::Value(std::move(rec)) << "\n";
    if (metricsFd >= 0 && ::write(metricsFd, line.data(), line.size()) < 0)
      errs() << "qslaw-trainer: warning: metrics write failed\n";
    if (isTty) {
      double eta = elapsed / double(step + 1 - start) * double(steps - step - 1);
      errs() << format("\r[%lld/%lld] loss %.4f lr %.2e text %.2f %.0f tok/s "
                       "ETA %.0fs   ",
                       (long long)(step + 1), (long long)steps, loss[0],
                       lrs.empty() ? 0.0 : lrs[0], p, tps, eta);
    }
    bool last = step + 1 == steps;
    if (nonFiniteRun >= maxNonFinite) {
      checkpoint(step + 1);
      errs() << "\nqslaw-trainer: error: " << nonFiniteRun
             << " non-finite steps in a row; stopping (checkpoint kept)\n";
      rc = 2;
      break;
    }
    bool saved = false;
    if (last || (ckptEvery > 0 && (step + 1) % ckptEvery == 0) || stopSignal)
      saved = checkpoint(step + 1);
    if (stopSignal) {
      errs() << "\nqslaw-trainer: signal " << int(stopSignal) << ": "
             << (saved ? "checkpoint written at step "
                       : "checkpoint NOT written at step ")
             << step + 1 << "\n";
      rc = 128 + int(stopSignal);
      break;
    }
  }
  if (isTty)
    errs() << "\n";
  if (metricsFd >= 0) {
    ::fsync(metricsFd);
    ::close(metricsFd);
  }
  if (rc == 0 && !fromSession())
    rc = fail(qslaw_last_error());
  if (rc == 0)
    rc = exportLearned(params, training, exportRequest());
  if (failedCheckpoints > 0) {
    errs() << "qslaw-trainer: error: " << failedCheckpoints
           << " checkpoint write(s) failed; "
           << (lastCheckpoint >= 0
                   ? "the last good checkpoint is at step " +
                         std::to_string(lastCheckpoint)
                   : std::string("no checkpoint was written"))
           << " (" << ckptPath << ")\n";
    if (rc == 0)
      rc = 1;
  }
  qslaw_session_free(session);
  qslaw_model_free(model);
  return rc;
}
