//===- qslaw-run.cpp - run a compiled model on .npy files -----------------===//
//
//   qslaw-run MODEL.so --input NAME=FILE.npy ... --output-dir DIR
//       [--device cpu] [--print-signature]
//
// Writes DIR/<output name>.npy per model output. A thin main over the C API.
//
//===----------------------------------------------------------------------===//
#include "qslaw/Runtime/Npy.h"
#include "qslaw/Runtime/qslaw_runtime.h"

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/WithColor.h"

using namespace llvm;

static cl::opt<std::string> modelPath(cl::Positional, cl::desc("<model.so>"),
                                      cl::Required);
static cl::list<std::string> inputs("input", cl::desc("NAME=FILE.npy"));
static cl::opt<std::string> weightsPath(
    "weights", cl::desc("The model's weights file (--weights=external), if "
                        "not MODEL.so.weights beside it"),
    cl::init(""));
static cl::opt<std::string> outputDir("output-dir",
                                      cl::desc("Directory for outputs"),
                                      cl::init("."));
static cl::opt<std::string> device("device", cl::desc("cpu or cuda"),
                                   cl::init("cpu"));
static cl::opt<bool> printSignature(
    "print-signature",
    cl::desc("Print the signature JSON (without --input: only that, no run)"));

static int fail(const Twine &msg) {
  WithColor::error(errs(), "qslaw-run") << msg << "\n";
  return 1;
}

/// The C API's host dtype for an .npy array of the model's dtype.
int main(int argc, char **argv) {
  InitLLVM init(argc, argv);
  cl::ParseCommandLineOptions(argc, argv, "qslaw model runner\n");
  qslaw_model *model = nullptr;
  if (qslaw_model_load_with_weights(
          modelPath.c_str(), weightsPath.empty() ? nullptr : weightsPath.c_str(),
          &model) != QSLAW_OK)
    return fail(qslaw_last_error());
  if (printSignature)
    outs() << qslaw_model_signature(model) << "\n";
  if (printSignature && inputs.empty()) { // only the signature: no run
    qslaw_model_free(model);
    return 0;
  }
  qslaw_session *session = nullptr;
  if (qslaw_session_create(model, device.c_str(), &session) != QSLAW_OK)
    return fail(qslaw_last_error());

  std::vector<qslaw::NpyArray> arrays;
  std::vector<std::string> names;
  for (const std::string &spec : inputs) {
    auto [name, file] = StringRef(spec).split('=');
    if (name.empty() || file.empty())
      return fail("--input " + spec + ": expected NAME=FILE.npy");
    auto a = qslaw::readNpy(file);
    if (!a)
      return fail(toString(a.takeError()));
    names.push_back(name.str());
    arrays.push_back(std::move(*a));
  }
  std::vector<qslaw_tensor> in(arrays.size());
  for (size_t i = 0; i < arrays.size(); ++i) {
    qslaw_tensor desc{};
    std::string dtype = "?";
    for (int32_t k = 0; k < qslaw_model_num_inputs(model); ++k) {
      qslaw_model_input(model, k, &desc);
      if (names[i] == desc.name) {
        dtype = desc.dtype;
        break;
      }
    }
    if (dtype != "?" && !qslaw::npyDtypeMatches(dtype, arrays[i].dtype))
      return fail("input '" + names[i] + "': the .npy holds dtype " +
                  arrays[i].dtype + ", the model takes " + dtype);
    in[i] = qslaw_tensor{names[i].c_str(), dtype == "?" ? "" : desc.dtype,
                         int32_t(arrays[i].shape.size()),
                         arrays[i].shape.data(), arrays[i].data.data(),
                         arrays[i].data.size()};
  }
  int32_t numOut = qslaw_model_num_outputs(model);
  std::vector<qslaw_tensor> out(numOut);
  std::vector<std::vector<uint8_t>> storage(numOut);
  for (int32_t i = 0; i < numOut; ++i) {
    qslaw_model_output(model, i, &out[i]);
    storage[i].resize(out[i].bytes);
    out[i].data = storage[i].data();
  }
  if (qslaw_session_run(session, in.data(), int32_t(in.size()), out.data(),
                        numOut) != QSLAW_OK)
    return fail(qslaw_last_error());
  if (std::error_code ec = sys::fs::create_directories(outputDir))
    return fail(outputDir + ": " + ec.message());
  for (int32_t i = 0; i < numOut; ++i) {
    qslaw::NpyArray a;
    a.dtype = qslaw::npyDtypeFor(out[i].dtype);
    a.shape.assign(out[i].shape, out[i].shape + out[i].rank);
    a.data = std::move(storage[i]);
    SmallString<256> path(outputDir);
    sys::path::append(path, std::string(out[i].name) + ".npy");
    if (Error e = qslaw::writeNpy(path, a))
      return fail(toString(std::move(e)));
  }
  qslaw_session_free(session);
  qslaw_model_free(model);
  return 0;
}
