//===- LearnedParams.cpp - a trained run's tensors into a model -----------===//
#include "qslaw/Driver/LearnedParams.h"
#include "qslaw/Dialect/QSLAW/IR/QSLAWOps.h"
#include "qslaw/Dialect/QSLAW/Utils/ConstantData.h"
#include "qslaw/Runtime/Npy.h"
#include "qslaw/Support/ParamsManifest.h"
#include "qslaw/Support/Signature.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/IR/Matchers.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

using namespace llvm;
using namespace mlir;

namespace {

Error bad(const Twine &msg) {
  return createStringError(inconvertibleErrorCode(), msg);
}

/// A new constant holding `a`, at `b`'s insertion point, in place of the
/// constant `v` (checked: f32, the same shape; its qslaw.name kept).
Expected<Value> learnedConstant(OpBuilder &b, Location loc, Value v,
                                const ::qslaw::NpyArray &a, StringRef what) {
  ElementsAttr old;
  if (!mlir::qslaw::matchConstantTensor(v, old))
    return bad(what + " is not a constant in this model");
  auto ty = dyn_cast<RankedTensorType>(old.getType());
  if (!ty || !ty.getElementType().isF32())
    return bad(what + " replaces a tensor that is not f32 in this model");
  if (ty.getShape() != ArrayRef<int64_t>(a.shape)) {
    std::string have, want;
    raw_string_ostream h(have), w(want);
    llvm::interleave(ty.getShape(), h, "x");
    llvm::interleave(a.shape, w, "x");
    return bad(what + " has shape [" + have + "] in the model, [" + want +
               "] in the learned tensor");
  }
  ArrayRef<char> raw(reinterpret_cast<const char *>(a.data.data()),
                     a.data.size());
  auto c = arith::ConstantOp::create(b, loc,
                                     DenseElementsAttr::getFromRawBuffer(ty, raw));
  if (Operation *def = v.getDefiningOp())
    if (auto name = def->getAttrOfType<StringAttr>("qslaw.name"))
      c->setAttr("qslaw.name", name);
  return c.getResult();
}

/// The constant operand `slot` of `user` becomes `a` (a new constant, so
/// that another user of the old one keeps it).
Error replaceOperand(Operation *user, unsigned slot, const ::qslaw::NpyArray &a,
                     StringRef what) {
  OpBuilder b(user);
  Expected<Value> c =
      learnedConstant(b, user->getLoc(), user->getOperand(slot), a, what);
  if (!c)
    return c.takeError();
  user->setOperand(slot, *c);
  return Error::success();
}

} // namespace

namespace qslaw::driver {
Expected<unsigned> loadLearnedParams(ModuleOp module, StringRef dir) {
  auto manifest = ::qslaw::params::readManifest(dir);
  if (!manifest) {
    std::string msg = toString(manifest.takeError());
    if (!sys::fs::exists(::qslaw::params::manifestPath(dir)))
      msg += " (--init-params takes a trainer's --export-params directory)";
    return bad(msg);
  }
  std::string manifestPath = ::qslaw::params::manifestPath(dir);
  // The learned run's quantized layers, to check they were quantized alike.
  auto training = ::qslaw::parseTrainingRecord(
      json::Value(json::Object(manifest->training)), manifestPath + ": training");
  if (!training)
    return bad(toString(training.takeError()));
  StringMap<const ::qslaw::QuantizedLayer *> learnedLayers;
  for (const ::qslaw::QuantizedLayer &l : training->layers)
    if (!l.layer.empty())
      learnedLayers[l.layer] = &l;

  StringMap<mlir::qslaw::QMatmulOp> byLayer;
  StringMap<SmallVector<arith::ConstantOp>> byName;
  module.walk([&](Operation *op) {
    if (auto q = dyn_cast<mlir::qslaw::QMatmulOp>(op))
      if (auto l = q->getAttrOfType<StringAttr>("qslaw.layer"))
        byLayer[l.getValue()] = q;
    if (auto c = dyn_cast<arith::ConstantOp>(op))
      if (auto n = c->getAttrOfType<StringAttr>("qslaw.name"))
        byName[n.getValue()].push_back(c);
  });

  unsigned replaced = 0;
  for (const ::qslaw::params::Entry &entry : manifest->params) {
    StringRef name = entry.name, kind = entry.kind, source = entry.source;
    std::string what = "learned tensor '" + entry.name + "'";
    std::string npyPath = ::qslaw::params::tensorPath(dir, entry);
    auto arr = ::qslaw::readNpy(npyPath);
    if (!arr)
      return arr.takeError();
    if (arr->dtype != "f4")
      return bad(npyPath + ": " + what + " is " + arr->dtype + ", not f4");
    if (kind == "scale" || kind == "gamma") {
      StringRef suffix = kind == "scale" ? ".scales" : ".gamma";
      StringRef layer = name;
      if (!layer.consume_back(suffix))
        return bad(manifestPath + ": " + what + " of kind " + kind +
                   " does not end in " + suffix);
      auto it = byLayer.find(layer);
      if (it == byLayer.end())
        return bad(manifestPath + ": " + what + ": this model has no "
                   "quantized layer '" + layer +
                   "' (compile with the --quantize-layers of the run that "
                   "learned it)");
      mlir::qslaw::QMatmulOp q = it->second;
      auto spec = q.getSpec();
      if (const ::qslaw::QuantizedLayer *l = learnedLayers.lookup(layer)) {
        int64_t group = spec.getGroupSizeFor(q.getCodes().getType().getDimSize(1));
        if (l->bits != int64_t(spec.getBits()) || l->group != group)
          return bad(manifestPath + ": " + what + " was learned at " +
                     Twine(l->bits) + " bits, group " + Twine(l->group) +
                     "; this model quantizes '" +
                     layer + "' at " + Twine(spec.getBits()) + " bits, group " +
                     Twine(spec.getGroupSizeFor(q.getCodes().getType().getDimSize(1))));
      }
      if ((kind == "scale") !=
          (spec.getMode() == mlir::qslaw::ScaleMode::Scale))
        return bad(manifestPath + ": " + what + " is a " + kind +
                   "-mode tensor; this model quantizes '" + layer +
                   "' in the other mode");
      Error e = Error::success();
      if (kind == "scale") {
        e = replaceOperand(q, q.getScalesMutable().getOperandNumber(), *arr,
                           what);
      } else {
        auto quant = q.getCodes().getDefiningOp<mlir::qslaw::QuantizeOp>();
        auto mul = quant ? quant.getScales().getDefiningOp<arith::MulFOp>()
                         : arith::MulFOp();
        if (!mul)
          return bad(what + ": layer '" + layer +
                     "' does not compute its codes as quantize(W, s * gamma)");
        e = replaceOperand(mul, 1, *arr, what);
      }
      if (e)
        return std::move(e);
      ++replaced;
      continue;
    }
    if (kind == "float") {
      auto it = byName.find(source);
      if (it == byName.end())
        return bad(manifestPath + ": " + what + ": this model has no "
                   "parameter '" + source + "'");
      // One new constant per old one, for all its uses: a parameter that
      // trains again must stay one tensor.
      for (arith::ConstantOp c : it->second) {
        if (c->use_empty())
          continue;
        OpBuilder b(c);
        Expected<Value> fresh = learnedConstant(b, c.getLoc(), c, *arr, what);
        if (!fresh)
          return fresh.takeError();
        c.getResult().replaceAllUsesWith(*fresh);
        c->erase();
      }
      ++replaced;
      continue;
    }
    return bad(manifestPath + ": " + what + " is of kind '" + kind +
               "'; --init-params loads scales, gamma and float parameters "
               "(not LoRA adapters)");
  }
  return replaced;
}
} // namespace qslaw::driver
