//===- MakeTrainStep.cpp - the QSLAW training step from a forward ----------===//
//
// Clones the forward function into @init_params, @forward_params,
// @grad_step and @train_step (see Passes.td), with the selected trainable
// constants turned into arguments, the loss appended, reverse-mode AD
// (Autodiff.h) and one qslaw.adamw per trainable tensor.
//
//===----------------------------------------------------------------------===//
#include "Autodiff.h"
#include "MatmulMatch.h"
#include "qslaw/Dialect/QSLAW/IR/QSLAWOps.h"
#include "qslaw/Dialect/QSLAW/Utils/ConstantData.h"
#include "qslaw/Dialect/QSLAW/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/Transforms/Transforms.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/PatternMatch.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/Regex.h"

namespace mlir::qslaw {
#define GEN_PASS_DEF_MAKETRAINSTEP
#include "qslaw/Dialect/QSLAW/Transforms/Passes.h.inc"
} // namespace mlir::qslaw

using namespace mlir;
using namespace mlir::qslaw;

namespace {

/// A trainable tensor: its initial value and the operand slots (in the
/// forward function) that read it.
struct Trainable {
  std::string name;
  std::string kind;   // "scale", "gamma" or "float"
  std::string source; // ONNX node (scales, gamma) or initializer (float)
  ElementsAttr init;
  SmallVector<std::pair<Operation *, unsigned>> uses;
};

std::optional<llvm::Regex> makeRegex(StringRef text, Operation *where,
                                     StringRef option, bool &ok) {
  if (text.empty())
    return std::nullopt;
  llvm::Regex re(("^(" + text + ")$").str());
  std::string err;
  if (!re.isValid(err)) {
    where->emitError("qslaw-make-train-step: invalid ")
        << option << " regex '" << text << "': " << err;
    ok = false;
  }
  return re;
}

/// The decoder-layer index in a layer name: N in "layers.N." (weights) or
/// "/layers.N/" (nodes), as exporters of LLaMA-like models write it.
std::optional<int64_t> decoderLayerIndex(StringRef name) {
  static const llvm::Regex re("(^|[./])layers[._/]([0-9]+)([./_]|$)");
  SmallVector<StringRef> m;
  int64_t i;
  if (!re.match(name, &m) || m[2].getAsInteger(10, i))
    return std::nullopt;
  return i;
}

struct MakeTrainStepPass
    : qslaw::impl::MakeTrainStepBase<MakeTrainStepPass> {
  using Base::Base;

  SmallVector<Trainable> trainables;
  func::FuncOp forward;
  func::FuncOp forwardParams; // @forward calls it
  func::FuncOp gradStep;      // built before @train_step, which calls it

  void runOnOperation() override {
    ModuleOp module = getOperation();
    forward = module.lookupSymbol<func::FuncOp>(entry);
    if (!forward || forward.isExternal()) {
      module.emitError("qslaw-make-train-step: no function '") << entry << "'";
      return signalPassFailure();
    }
    if (optimizer != "adamw" && optimizer != "none") {
      module.emitError("qslaw-make-train-step: unknown optimizer '")
          << optimizer << "' (expected adamw or none)";
      return signalPassFailure();
    }
    if (loss != "next-token-ce" && loss != "sum-squares") {
      module.emitError("qslaw-make-train-step: unknown loss '")
          << loss << "' (expected next-token-ce or sum-squares)";
      return signalPassFailure();
    }
    for (StringRef name : {"init_params", "forward_params", "grad_step",
                           "train_step"})
      if (module.lookupSymbol(name)) {
        module.emitError("qslaw-make-train-step: the module already has @")
            << name;
        return signalPassFailure();
      }
    if (failed(collectTrainables()))
      return signalPassFailure();
    // Names key the session state, checkpoints and exports.
    llvm::StringSet<> seen;
    for (Trainable &t : trainables)
      if (!seen.insert(t.name).second) {
        forward.emitError("qslaw-make-train-step: two trainable tensors are "
                          "named '")
            << t.name << "'";
        return signalPassFailure();
      }
    if (trainables.empty()) {
      forward.emitError("qslaw-make-train-step: no trainable tensor: scales "
                        "regex '")
          << scales << "' and params regex '" << params
          << "' select nothing";
      return signalPassFailure();
    }
    OpBuilder b(module.getBodyRegion());
    b.setInsertionPointAfter(forward);
    buildInitParams(b);
    buildForwardParams(b);
    if (failed(buildGradStep(b)))
      return signalPassFailure();
    // Every clone of the forward is made: the forward itself becomes a
    // call of @forward_params with the initial values.
    callForwardParams();
    if (optimizer == "none")
      return;
    for (Trainable &t : trainables)
      if (!t.init.getElementType().isF32()) {
        forward.emitError("qslaw-make-train-step: AdamW needs f32 "
                          "parameters; '")
            << t.name << "' is " << t.init.getType();
        return signalPassFailure();
      }
    if (failed(buildTrainStep(b)))
      return signalPassFailure();
    buildAccumulateGrads(b);
    buildApplyStep(b);
  }

  LogicalResult collectTrainables() {
    bool ok = true;
    auto scaleRe = makeRegex(scales, forward, "scales", ok);
    auto paramRe = makeRegex(params, forward, "params", ok);
    if (!ok)
      return failure();
    llvm::DenseMap<Value, unsigned> byValue;
    // The quantisation constants of selected layers: never float
    // parameters as well, whatever the params regex says.
    llvm::DenseSet<Value> quantConstants;
    llvm::DenseMap<Operation *, unsigned> byMul;
    WalkResult r = forward.walk([&](QMatmulOp q) {
      auto layer = q->getAttrOfType<StringAttr>("qslaw.layer");
      if (!scaleRe || !layer || !scaleRe->match(layer.getValue()))
        return WalkResult::advance();
      if (scaleStartLayer >= 0) {
        std::optional<int64_t> i = decoderLayerIndex(layer.getValue());
        if (!i || *i <= scaleStartLayer)
          return WalkResult::advance();
      }
      if (q.getSpec().getMode() == ScaleMode::Scale) {
        Value s = q.getScales();
        DenseElementsAttr init;
        if (!matchPattern(s, m_Constant(&init))) {
          q.emitError("qslaw-make-train-step: scales of layer '")
              << layer.getValue() << "' are not a constant";
          return WalkResult::interrupt();
        }
        unsigned slot = q.getScalesMutable().getOperandNumber();
        auto [it, fresh] = byValue.try_emplace(s, trainables.size());
        if (fresh)
          trainables.push_back({(layer.getValue() + ".scales").str(), "scale",
                                nodeName(q), init, {}});
        trainables[it->second].uses.push_back({q, slot});
        return WalkResult::advance();
      }
      auto quant = q.getCodes().getDefiningOp<QuantizeOp>();
      auto mul = quant ? quant.getScales().getDefiningOp<arith::MulFOp>()
                       : arith::MulFOp();
      DenseElementsAttr init;
      if (!mul || !matchPattern(mul.getRhs(), m_Constant(&init))) {
        q.emitError("qslaw-make-train-step: gamma-mode layer '")
            << layer.getValue()
            << "' does not compute its codes as quantize(W, s * gamma)";
        return WalkResult::interrupt();
      }
      auto [it, fresh] = byMul.try_emplace(mul, trainables.size());
      if (fresh)
        trainables.push_back({(layer.getValue() + ".gamma").str(), "gamma",
                              nodeName(q), init, {{mul, 1}}});
      // The weight, or the [K, N] constant it transposes.
      quantConstants.insert(quant.getWeight());
      if (auto t = quant.getWeight().getDefiningOp<linalg::TransposeOp>())
        quantConstants.insert(t.getInput());
      quantConstants.insert(mul.getLhs());
      quantConstants.insert(mul.getRhs());
      return WalkResult::advance();
    });
    if (r.wasInterrupted())
      return failure();
    // Adapters (qslaw-insert-lora) always train.
    forward.walk([&](arith::ConstantOp c) {
      auto role = c->getAttrOfType<StringAttr>("qslaw.lora");
      auto nameAttr = c->getAttrOfType<StringAttr>("qslaw.name");
      auto source = c->getAttrOfType<StringAttr>("qslaw.lora_source");
      if (!role || !nameAttr)
        return;
      Trainable t{nameAttr.str(), ("lora_" + role.getValue()).str(),
                  source ? source.str() : "",
                  cast<ElementsAttr>(c.getValue()), {}};
      for (OpOperand &use : c->getUses())
        t.uses.push_back({use.getOwner(), use.getOperandNumber()});
      trainables.push_back(std::move(t));
    });
    if (!paramRe)
      return success();
    widenTrainableNarrowConstants(forward, *paramRe);
    forward.walk([&](arith::ConstantOp c) {
      auto nameAttr = c->getAttrOfType<StringAttr>("qslaw.name");
      auto ty = dyn_cast<RankedTensorType>(c.getType());
      if (!nameAttr || !ty || !isa<FloatType>(ty.getElementType()) ||
          byValue.contains(c) || quantConstants.contains(c) ||
          c->hasAttr("qslaw.lora"))
        return;
      std::string name = floatParamName(
          nameAttr, SmallVector<Operation *>(c->getUsers()));
      if (!paramRe->match(name))
        return;
      Trainable t{name, "float", nameAttr.str(),
                  cast<ElementsAttr>(c.getValue()), {}};
      for (OpOperand &use : c->getUses())
        t.uses.push_back({use.getOwner(), use.getOperandNumber()});
      trainables.push_back(std::move(t));
    });
    return success();
  }

  /// A float parameter's name: its initializer's, or, for a generated one
  /// ("onnx::MatMul_7", which says nothing), that of the first node that
  /// reads it with ".weight" appended.
  static std::string floatParamName(StringAttr initializer,
                                    ArrayRef<Operation *> readers) {
    if (!initializer.getValue().starts_with("onnx::"))
      return initializer.str();
    for (Operation *user : readers)
      if (std::string n = locationName(user->getLoc()); !n.empty())
        return n + ".weight";
    return initializer.str();
  }

  /// Float weights stored as f16/bf16 and read through a widening Cast
  /// that the parameter regex selects become f32 constants: AdamW keeps f32
  /// parameters. They are named as the f32 weight would be, by the node
  /// that reads the widened value. Weights that stay frozen stay narrow.
  static void widenTrainableNarrowConstants(func::FuncOp forward,
                                            llvm::Regex &paramRe) {
    SmallVector<arith::ConstantOp> narrow;
    forward.walk([&](arith::ConstantOp c) {
      auto ty = dyn_cast<RankedTensorType>(c.getType());
      if (!ty || !(ty.getElementType().isBF16() || ty.getElementType().isF16()) ||
          !c->hasAttr("qslaw.name") || c->use_empty())
        return;
      if (llvm::all_of(c->getUsers(), [&](Operation *u) {
            return u->getNumResults() == 1 &&
                   widenedConstant(u->getResult(0)) == c.getOperation();
          }))
        narrow.push_back(c);
    });
    for (arith::ConstantOp c : narrow) {
      auto nameAttr = c->getAttrOfType<StringAttr>("qslaw.name");
      SmallVector<Operation *> readers;
      for (Operation *widen : c->getUsers())
        llvm::append_range(readers, widen->getUsers());
      SmallVector<float> values;
      auto narrowAttr = cast<ElementsAttr>(c.getValue());
      if (!paramRe.match(floatParamName(nameAttr, readers)) ||
          !readFloats(narrowAttr, values))
        continue;
      OpBuilder b(c);
      auto wide = arith::ConstantOp::create(
          b, c.getLoc(),
          f32ConstantLike(narrowAttr,
                          cast<RankedTensorType>(c.getType()).getShape(),
                          values, nameAttr.getValue()));
      wide->setAttr("qslaw.name", nameAttr);
      for (Operation *widen : llvm::make_early_inc_range(c->getUsers())) {
        widen->getResult(0).replaceAllUsesWith(wide.getResult());
        widen->erase();
      }
      c.erase();
    }
  }

  static std::string nodeName(Operation *q) {
    if (auto n = q->getAttrOfType<StringAttr>("qslaw.node"))
      return n.str();
    return "";
  }

  SmallVector<Type> paramTypes() {
    SmallVector<Type> r;
    for (Trainable &t : trainables)
      r.push_back(t.init.getType());
    return r;
  }

  ArrayAttr strings(OpBuilder &b, ArrayRef<std::string> v) {
    SmallVector<Attribute> a;
    for (const std::string &s : v)
      a.push_back(b.getStringAttr(s));
    return b.getArrayAttr(a);
  }

  SmallVector<std::string> inputNames() {
    SmallVector<std::string> r;
    auto names = forward->getAttrOfType<ArrayAttr>("qslaw.inputs");
    for (unsigned i = 0; i < forward.getNumArguments(); ++i)
      r.push_back(names && i < names.size()
                      ? cast<StringAttr>(names[i]).str()
                      : "input" + std::to_string(i));
    return r;
  }

  /// The valid values of integer inputs (the runtime checks them): the
  /// forward's gather ranges, and for labels the logits' vocabulary plus
  /// the cross-entropy's ignore index (-100).
  void setIndexRanges(OpBuilder &b, func::FuncOp f,
                      ArrayRef<std::string> argNames) {
    NamedAttrList ranges;
    auto fwd = forward->getAttrOfType<DictionaryAttr>("qslaw.index_ranges");
    for (const std::string &n : argNames)
      if (Attribute a = fwd ? fwd.get(n) : Attribute())
        ranges.set(n, a);
    auto yTy = forward.getNumResults()
                   ? dyn_cast<RankedTensorType>(forward.getResultTypes()[0])
                   : RankedTensorType();
    if (loss != "sum-squares" && llvm::is_contained(argNames, "labels") &&
        yTy && yTy.getRank() == 3) {
      int64_t v = yTy.getDimSize(2);
      ranges.set("labels",
                 b.getDictionaryAttr(
                     {b.getNamedAttr("begin", b.getI64IntegerAttr(0)),
                      b.getNamedAttr("end", b.getI64IntegerAttr(v)),
                      b.getNamedAttr("ignore", b.getI64IntegerAttr(-100)),
                      b.getNamedAttr(
                          "indexes",
                          b.getStringAttr("the vocabulary of the logits (size " +
                                          std::to_string(v) + ")"))}));
    }
    if (!ranges.empty())
      f->setAttr("qslaw.index_ranges", ranges.getDictionary(b.getContext()));
  }

  func::FuncOp makeFunc(OpBuilder &b, StringRef name, TypeRange args,
                        TypeRange results, ArrayRef<std::string> argNames,
                        ArrayRef<std::string> resultNames) {
    auto f = func::FuncOp::create(b, forward.getLoc(), name,
                                  b.getFunctionType(args, results));
    f->setAttr("qslaw.inputs", strings(b, argNames));
    f->setAttr("qslaw.outputs", strings(b, resultNames));
    SmallVector<std::string> names, kinds, sources;
    for (Trainable &t : trainables) {
      names.push_back(t.name);
      kinds.push_back(t.kind);
      sources.push_back(t.source);
    }
    f->setAttr("qslaw.params", strings(b, names));
    f->setAttr("qslaw.param_kinds", strings(b, kinds));
    f->setAttr("qslaw.param_sources", strings(b, sources));
    setIndexRanges(b, f, argNames);
    f.addEntryBlock();
    b.setInsertionPointAfter(f);
    return f;
  }

  /// Clones the forward body at the end of `blk`, trainables read from
  /// `params`; returns the forward results.
  SmallVector<Value> cloneForward(OpBuilder &b, Block *blk, ValueRange params,
                                  ValueRange inputs) {
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPointToEnd(blk);
    IRMapping m;
    Block &src = forward.getBody().front();
    for (auto [a, v] : llvm::zip(src.getArguments(), inputs))
      m.map(a, v);
    for (Operation &op : src.without_terminator())
      b.clone(op, m);
    for (auto [t, p] : llvm::zip(trainables, params))
      for (auto [op, slot] : t.uses)
        m.lookup(op)->setOperand(slot, p);
    SmallVector<Value> results;
    for (Value v : src.getTerminator()->getOperands())
      results.push_back(m.lookupOrDefault(v));
    return results;
  }

  void buildInitParams(OpBuilder &b) {
    SmallVector<std::string> names;
    for (Trainable &t : trainables)
      names.push_back(t.name);
    func::FuncOp f = makeFunc(b, "init_params", {}, paramTypes(), {}, names);
    OpBuilder fb = OpBuilder::atBlockEnd(&f.getBody().front());
    SmallVector<Value> vals;
    for (Trainable &t : trainables)
      vals.push_back(arith::ConstantOp::create(fb, f.getLoc(), t.init));
    func::ReturnOp::create(fb, f.getLoc(), vals);
  }

  void buildForwardParams(OpBuilder &b) {
    SmallVector<Type> args = paramTypes();
    llvm::append_range(args, forward.getArgumentTypes());
    SmallVector<std::string> argNames;
    for (Trainable &t : trainables)
      argNames.push_back(t.name);
    llvm::append_range(argNames, inputNames());
    SmallVector<std::string> outNames;
    auto outs = forward->getAttrOfType<ArrayAttr>("qslaw.outputs");
    for (unsigned i = 0; i < forward.getNumResults(); ++i)
      outNames.push_back(outs && i < outs.size() ? cast<StringAttr>(outs[i]).str()
                                                 : "output" + std::to_string(i));
    func::FuncOp f = makeFunc(b, "forward_params", args,
                              forward.getResultTypes(), argNames, outNames);
    forwardParams = f;
    Block *blk = &f.getBody().front();
    unsigned p = trainables.size();
    SmallVector<Value> res = cloneForward(b, blk, blk->getArguments().take_front(p),
                                          blk->getArguments().drop_front(p));
    OpBuilder fb = OpBuilder::atBlockEnd(blk);
    func::ReturnOp::create(fb, f.getLoc(), res);
  }

  /// The forward's body as `@forward_params(initial values, inputs)`: one
  /// copy of the model's forward in the library instead of two (LLVM's
  /// time and the code size follow the number of copies).
  void callForwardParams() {
    Block &body = forward.getBody().front();
    Operation *ret = body.getTerminator();
    SmallVector<Operation *> old;
    for (Operation &op : body.without_terminator())
      old.push_back(&op);
    OpBuilder fb(ret);
    SmallVector<Value> args;
    for (Trainable &t : trainables)
      args.push_back(arith::ConstantOp::create(fb, forward.getLoc(), t.init));
    llvm::append_range(args, body.getArguments());
    auto call = func::CallOp::create(fb, forward.getLoc(), forwardParams, args);
    ret->setOperands(call.getResults());
    // The old body, now dead: users before their operands.
    for (Operation *op : llvm::reverse(old)) {
      op->dropAllUses();
      op->erase();
    }
  }

  /// Forward, loss and backward at the end of `blk`; returns the loss and one
  /// gradient per trainable.
  LogicalResult buildLossAndGrads(OpBuilder &outer, Block *blk,
                                  ValueRange params, ValueRange inputs,
                                  Value labels, Value &lossOut,
                                  SmallVector<Value> &grads) {
    SmallVector<Value> results = cloneForward(outer, blk, params, inputs);
    // One rule per linalg.generic covers every named op.
    IRRewriter rw(outer.getContext());
    SmallVector<linalg::LinalgOp> named;
    for (Operation &op : *blk)
      if (auto l = dyn_cast<linalg::LinalgOp>(&op))
        if (!isa<linalg::GenericOp, linalg::FillOp>(&op))
          named.push_back(l);
    for (linalg::LinalgOp l : named) {
      rw.setInsertionPoint(l);
      // The forward results may be this op's; re-point them afterwards.
      SmallVector<std::pair<unsigned, unsigned>> returned;
      for (auto [i, r] : llvm::enumerate(results))
        if (r.getDefiningOp() == l.getOperation())
          returned.push_back({unsigned(i), cast<OpResult>(r).getResultNumber()});
      Location loc = l.getLoc();
      OperationName name = l->getName();
      FailureOr<linalg::GenericOp> g = linalg::generalizeNamedOp(rw, l);
      if (failed(g))
        return emitError(loc, "qslaw-make-train-step: cannot generalise ")
               << name;
      for (auto [i, n] : returned)
        results[i] = g->getResult(n);
    }
    SmallVector<Operation *> fwdOps;
    for (Operation &op : *blk)
      fwdOps.push_back(&op);

    OpBuilder b = OpBuilder::atBlockEnd(blk);
    Location loc = forward.getLoc();
    Value y = results.front();
    auto yTy = dyn_cast<RankedTensorType>(y.getType());
    Value dy;
    if (loss == "sum-squares") {
      lossOut = autodiff::buildSumSquares(b, loc, y);
      dy = autodiff::buildAdd(b, loc, y, y);
    } else {
      auto lTy = cast<RankedTensorType>(labels.getType());
      if (!yTy || yTy.getRank() != 3 || !yTy.getElementType().isF32() ||
          lTy.getShape() != yTy.getShape().drop_back())
        return forward.emitError("qslaw-make-train-step: next-token-ce needs "
                                 "f32 logits [B, T, V] matching labels [B, T]"
                                 ", got ")
               << y.getType();
      int64_t bs = yTy.getDimSize(0), t = yTy.getDimSize(1),
              v = yTy.getDimSize(2);
      auto idx = [&](ArrayRef<int64_t> xs) {
        SmallVector<OpFoldResult> r;
        for (int64_t x : xs)
          r.push_back(b.getIndexAttr(x));
        return r;
      };
      auto shiftedTy = RankedTensorType::get({bs, t - 1, v}, b.getF32Type());
      Value logits = tensor::ExtractSliceOp::create(
          b, loc, shiftedTy, y, idx({0, 0, 0}), idx({bs, t - 1, v}),
          idx({1, 1, 1}));
      Value next = tensor::ExtractSliceOp::create(
          b, loc, RankedTensorType::get({bs, t - 1}, lTy.getElementType()),
          labels, idx({0, 1}), idx({bs, t - 1}), idx({1, 1}));
      auto scalarTy = RankedTensorType::get({}, b.getF32Type());
      lossOut = CrossEntropyOp::create(b, loc, scalarTy, logits, next);
      Value one = arith::ConstantOp::create(
          b, loc, DenseElementsAttr::get(scalarTy, b.getF32FloatAttr(1.0f)));
      Value dShift =
          CrossEntropyGradOp::create(b, loc, shiftedTy, logits, next, one);
      dy = tensor::InsertSliceOp::create(
          b, loc, dShift, autodiff::buildZeros(b, loc, yTy), idx({0, 0, 0}),
          idx({bs, t - 1, v}), idx({1, 1, 1}));
    }
    autodiff::ReverseAD ad(b);
    ad.analyzeActivity(*blk, SmallVector<Value>(params));
    if (!ad.isActive(y))
      return forward.emitError("qslaw-make-train-step: the loss does not "
                               "depend on any trainable tensor");
    ad.addCotangent(y, dy);
    if (failed(ad.backprop(fwdOps)))
      return failure();
    for (Value p : params) {
      Value g = ad.cotangent(p);
      grads.push_back(g ? g
                        : autodiff::buildZeros(
                              b, loc, cast<RankedTensorType>(p.getType())));
    }
    return success();
  }

  LogicalResult buildGradStep(OpBuilder &b) {
    SmallVector<Type> args = paramTypes();
    llvm::append_range(args, forward.getArgumentTypes());
    SmallVector<std::string> argNames, outNames{"loss"};
    for (Trainable &t : trainables) {
      argNames.push_back(t.name);
      outNames.push_back("grad." + t.name);
    }
    llvm::append_range(argNames, inputNames());
    Type labelsTy = labelsType();
    if (labelsTy) {
      args.push_back(labelsTy);
      argNames.push_back("labels");
    }
    SmallVector<Type> results{RankedTensorType::get({}, b.getF32Type())};
    llvm::append_range(results, paramTypes());
    func::FuncOp f = makeFunc(b, "grad_step", args, results, argNames, outNames);
    gradStep = f;
    Block *blk = &f.getBody().front();
    unsigned p = trainables.size(), n = forward.getNumArguments();
    Value lossV;
    SmallVector<Value> grads;
    if (failed(buildLossAndGrads(b, blk, blk->getArguments().take_front(p),
                                 blk->getArguments().slice(p, n),
                                 labelsTy ? blk->getArguments().back() : Value(),
                                 lossV, grads)))
      return failure();
    OpBuilder fb = OpBuilder::atBlockEnd(blk);
    SmallVector<Value> rets{lossV};
    llvm::append_range(rets, grads);
    func::ReturnOp::create(fb, f.getLoc(), rets);
    // The loss is f64 when a sum-squares test graph is f64.
    f.setFunctionType(b.getFunctionType(args, ValueRange(rets).getTypes()));
    return success();
  }

  Type labelsType() {
    if (loss != "next-token-ce" || forward.getNumResults() == 0)
      return Type();
    auto y = dyn_cast<RankedTensorType>(forward.getResultTypes()[0]);
    if (!y || y.getRank() < 1)
      return Type();
    return RankedTensorType::get(y.getShape().drop_back(),
                                 IntegerType::get(&getContext(), 64));
  }

  /// `acc + weight * grad` elementwise (weight: tensor<f32>, read through
  /// a broadcast map so that it stays in device memory on GPU targets).
  static Value weightedAdd(OpBuilder &b, Location loc, Value acc, Value grad,
                           Value weight) {
    auto ty = cast<RankedTensorType>(acc.getType());
    AffineMap id = b.getMultiDimIdentityMap(ty.getRank());
    AffineMap scalar = AffineMap::get(ty.getRank(), 0, b.getContext());
    Value init = tensor::EmptyOp::create(b, loc, ty.getShape(),
                                         ty.getElementType());
    return linalg::GenericOp::create(
               b, loc, ty, ValueRange{acc, grad, weight}, ValueRange{init},
               SmallVector<AffineMap>{id, id, scalar, id},
               SmallVector<utils::IteratorType>(ty.getRank(),
                                                utils::IteratorType::parallel),
               [&](OpBuilder &nb, Location l, ValueRange v) {
                 Value m = arith::MulFOp::create(nb, l, v[2], v[1]);
                 linalg::YieldOp::create(
                     nb, l, Value(arith::AddFOp::create(nb, l, v[0], m)));
               })
        .getResult(0);
  }

  /// @accumulate_grads(acc..., grad..., weight) -> new.acc...: gradient
  /// accumulation over micro-batches, `acc + weight * grad` (the trainer
  /// weights each micro-batch by its share of the global batch's tokens).
  void buildAccumulateGrads(OpBuilder &b) {
    SmallVector<Type> pt = paramTypes(), args;
    SmallVector<std::string> argNames, outNames;
    for (StringRef prefix : {"acc.", "grad."})
      for (Trainable &t : trainables) {
        args.push_back(t.init.getType());
        argNames.push_back((prefix + t.name).str());
      }
    args.push_back(RankedTensorType::get({}, b.getF32Type()));
    argNames.push_back("weight");
    for (Trainable &t : trainables)
      outNames.push_back("new.acc." + t.name);
    func::FuncOp f =
        makeFunc(b, "accumulate_grads", args, pt, argNames, outNames);
    Block *blk = &f.getBody().front();
    OpBuilder fb = OpBuilder::atBlockEnd(blk);
    unsigned p = trainables.size();
    SmallVector<Value> rets;
    for (unsigned i = 0; i < p; ++i)
      rets.push_back(weightedAdd(fb, f.getLoc(), blk->getArgument(i),
                                 blk->getArgument(p + i), blk->getArgument(2 * p)));
    func::ReturnOp::create(fb, f.getLoc(), rets);
  }

  /// One AdamW step per trainable from given gradients.
  void adamwStep(OpBuilder &fb, Location loc, ValueRange a, ValueRange grads,
                 Value lrs, Value step, SmallVector<Value> &rets) {
    unsigned p = trainables.size();
    auto scalarTy = RankedTensorType::get({}, fb.getF32Type());
    SmallVector<Type> pt = paramTypes();
    Value norm = autodiff::buildZeros(fb, loc, scalarTy);
    for (Value g : grads)
      norm = autodiff::buildAdd(fb, loc, norm,
                                autodiff::buildSumSquares(fb, loc, g));
    rets.push_back(norm);
    SmallVector<Value> newP, newM, newV;
    for (unsigned i = 0; i < p; ++i) {
      Value lr = tensor::ExtractSliceOp::create(
          fb, loc, scalarTy, lrs, ArrayRef<OpFoldResult>{fb.getIndexAttr(i)},
          ArrayRef<OpFoldResult>{fb.getIndexAttr(1)},
          ArrayRef<OpFoldResult>{fb.getIndexAttr(1)});
      Type ty = pt[i];
      auto opt = AdamWOp::create(
          fb, loc, TypeRange{ty, ty, ty}, a[i], grads[i], a[p + i],
          a[2 * p + i], lr, step, fb.getF32FloatAttr(beta1),
          fb.getF32FloatAttr(beta2), fb.getF32FloatAttr(eps),
          fb.getF32FloatAttr(weightDecay));
      newP.push_back(opt.getResult(0));
      newM.push_back(opt.getResult(1));
      newV.push_back(opt.getResult(2));
    }
    llvm::append_range(rets, newP);
    llvm::append_range(rets, newM);
    llvm::append_range(rets, newV);
  }

  /// @apply_step(params..., exp_avg..., exp_avg_sq..., acc..., lrs, step)
  /// -> (grad_sq_norm, new params, moments): the AdamW update of an
  /// accumulated gradient.
  void buildApplyStep(OpBuilder &b) {
    unsigned p = trainables.size();
    SmallVector<Type> pt = paramTypes(), args;
    auto scalarTy = RankedTensorType::get({}, b.getF32Type());
    SmallVector<std::string> argNames, outNames{"grad_sq_norm"};
    optimizerSignature(b, {"", "exp_avg.", "exp_avg_sq.", "acc."}, args,
                       argNames, outNames);
    SmallVector<Type> results{scalarTy};
    for (int i = 0; i < 3; ++i)
      llvm::append_range(results, pt);
    func::FuncOp f = makeFunc(b, "apply_step", args, results, argNames, outNames);
    Block *blk = &f.getBody().front();
    ValueRange a = blk->getArguments();
    OpBuilder fb = OpBuilder::atBlockEnd(blk);
    SmallVector<Value> rets;
    adamwStep(fb, f.getLoc(), a, a.slice(3 * p, p), a[4 * p], a[4 * p + 1], rets);
    func::ReturnOp::create(fb, f.getLoc(), rets);
  }

  /// An optimizer entry's state arguments (one per trainable and prefix),
  /// then `lrs` and `step`; its outputs new.X, new.exp_avg.X, ...
  void optimizerSignature(OpBuilder &b, ArrayRef<StringRef> prefixes,
                          SmallVector<Type> &args,
                          SmallVector<std::string> &argNames,
                          SmallVector<std::string> &outNames) {
    for (StringRef prefix : prefixes)
      for (Trainable &t : trainables) {
        args.push_back(t.init.getType());
        argNames.push_back((prefix + t.name).str());
      }
    for (StringRef prefix : {"", "exp_avg.", "exp_avg_sq."})
      for (Trainable &t : trainables)
        outNames.push_back(("new." + prefix + t.name).str());
    args.push_back(
        RankedTensorType::get({int64_t(trainables.size())}, b.getF32Type()));
    argNames.push_back("lrs");
    args.push_back(RankedTensorType::get({}, b.getF32Type()));
    argNames.push_back("step");
  }

  LogicalResult buildTrainStep(OpBuilder &b) {
    unsigned p = trainables.size(), n = forward.getNumArguments();
    SmallVector<Type> pt = paramTypes();
    auto f32 = b.getF32Type();
    auto scalarTy = RankedTensorType::get({}, f32);
    SmallVector<Type> args;
    SmallVector<std::string> argNames, outNames{"loss", "grad_sq_norm"};
    optimizerSignature(b, {"", "exp_avg.", "exp_avg_sq."}, args, argNames,
                       outNames);
    llvm::append_range(args, forward.getArgumentTypes());
    llvm::append_range(argNames, inputNames());
    Type labelsTy = labelsType();
    if (labelsTy) {
      args.push_back(labelsTy);
      argNames.push_back("labels");
    }
    SmallVector<Type> results{scalarTy, scalarTy};
    for (int i = 0; i < 3; ++i)
      llvm::append_range(results, pt);
    func::FuncOp f =
        makeFunc(b, "train_step", args, results, argNames, outNames);
    Block *blk = &f.getBody().front();
    ValueRange a = blk->getArguments();
    Value lrs = a[3 * p], step = a[3 * p + 1];
    // The forward and backward are @grad_step's: a call, not a second copy
    // (which doubled the trainer's code and LLVM's time on it).
    OpBuilder fb = OpBuilder::atBlockEnd(blk);
    SmallVector<Value> gradArgs(a.take_front(p));
    llvm::append_range(gradArgs, a.slice(3 * p + 2, n));
    if (labelsTy)
      gradArgs.push_back(a.back());
    auto call = func::CallOp::create(fb, f.getLoc(), gradStep, gradArgs);
    ValueRange grads = call.getResults().drop_front();
    // And the update is @apply_step's (built after this function), with
    // the gradient as the accumulated one: the optimizer's code, per
    // trainable tensor, exists once too.
    SmallVector<Value> applyArgs(a.take_front(3 * p));
    llvm::append_range(applyArgs, grads);
    applyArgs.append({lrs, step});
    SmallVector<Type> applyResults(results.begin() + 1, results.end());
    auto update = func::CallOp::create(fb, f.getLoc(), "apply_step",
                                       applyResults, applyArgs);
    SmallVector<Value> rets{call.getResult(0)};
    llvm::append_range(rets, update.getResults());
    func::ReturnOp::create(fb, f.getLoc(), rets);
    return success();
  }
};

} // namespace
