//===- OutlineLayers.cpp - each model layer into its own function ---------===//
//
// Exporters flatten a model: an L-layer decoder is L copies of the same ops
// in one graph, and every pass of the lowering and LLVM then works on each
// copy. The ops keep their ONNX node names (".../layers.N/..."), also in
// the backward that qslaw-make-train-step derives from them. This pass
// moves each layer's run of ops, at the tensor level, into a function of
// its own whose weights are arguments; identical layers give identical
// functions, which qslaw-merge-identical-functions reduces to one before
// the rest of the lowering runs.
//
//===----------------------------------------------------------------------===//
#include "qslaw/Conversion/Passes.h"

#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "mlir/Transforms/RegionUtils.h"
#include "llvm/ADT/SetVector.h"
#include "llvm/Support/Regex.h"

namespace mlir::qslaw {
#define GEN_PASS_DEF_OUTLINELAYERS
#include "qslaw/Conversion/Passes.h.inc"
} // namespace mlir::qslaw

using namespace mlir;

namespace {

/// The first NameLoc's name under `loc` (fused locations included).
std::string nameOf(Location loc) {
  std::string out;
  loc->walk([&](Location l) {
    if (auto n = dyn_cast<NameLoc>(l)) {
      out = n.getName().str();
      return WalkResult::interrupt();
    }
    return WalkResult::advance();
  });
  return out;
}

/// Attributes that name an op's source layer, node or weight: needed by the
/// graph stage and the signature (built before the lowering), different in
/// every layer, so dropped from outlined ops to let identical layers merge.
constexpr llvm::StringLiteral kNameAttrs[] = {"qslaw.layer", "qslaw.node",
                                              "qslaw.weight", "qslaw.name"};
constexpr llvm::StringLiteral kUkernelOperandAttr = "qslaw.ukernel_operand";

bool isBuffer(Value v) { return isa<BaseMemRefType>(v.getType()); }

struct OutlineLayersPass : qslaw::impl::OutlineLayersBase<OutlineLayersPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (minOps < 1) {
      module.emitError("qslaw-outline-layers: min-ops must be >= 1, got ")
          << int64_t(minOps);
      return signalPassFailure();
    }
    if (maxGap < 0) {
      module.emitError("qslaw-outline-layers: max-gap must be >= 0, got ")
          << int64_t(maxGap);
      return signalPassFailure();
    }
    // ".../layers.N/...": the layer is the prefix through "layers.N".
    llvm::Regex layerRe("^(.*/layers\\.[0-9]+)(/|$)");
    SymbolTable symbols(module);
    SmallVector<func::FuncOp> funcs(module.getOps<func::FuncOp>());
    for (func::FuncOp f : funcs) {
      if (f.isExternal() || !f.getBody().hasOneBlock())
        continue;
      Block &block = f.getBody().front();
      // Runs of ops of one layer. Constants, and empty tensors, fills and
      // reshapes/slices of values no run defines, belong to no run (they
      // stay where they are). An op whose name gives no layer joins a run
      // only when the same layer's ops follow within `max-gap` such ops, so
      // what lies between layers (embedding, final norm, head, loss) stays
      // in the caller, and so does a layer's forward from its backward.
      llvm::DenseSet<Operation *> inAnyRun, pendingSet;
      SmallVector<SmallVector<Operation *>> runs;
      std::string current;
      SmallVector<Operation *> pending;
      for (Operation &op : block) {
        if (op.hasTrait<OpTrait::IsTerminator>())
          break;
        // (A reshape of a pending op is not transparent: the pending op may
        // still join a run, and the reshape must then follow it.)
        if (transparent(&op, [&](Operation *d) {
              return inAnyRun.contains(d) || pendingSet.contains(d);
            }))
          continue;
        SmallVector<StringRef> m;
        std::string name = nameOf(op.getLoc());
        std::string key = layerRe.match(name, &m) ? m[1].str() : "";
        if (key.empty()) {
          if (!current.empty()) {
            pending.push_back(&op);
            pendingSet.insert(&op);
          }
          if (int64_t(pending.size()) > maxGap) {
            current.clear(); // the run ended before these
            pending.clear();
            pendingSet.clear();
          }
          continue;
        }
        if (key != current) {
          current = key;
          runs.emplace_back();
        } else {
          runs.back().append(pending);
          for (Operation *p : pending)
            inAnyRun.insert(p);
        }
        pending.clear();
        pendingSet.clear();
        runs.back().push_back(&op);
        inAnyRun.insert(&op);
      }
      retensorSharedBuffers(runs, inAnyRun);
      // Last run first: a cheap value CSE let a later layer share with an
      // earlier one (an empty tensor, a zero fill, a view of the rotary
      // table) is then still there to be cloned into the later layer.
      // Only runs whose memory effects stay on buffers of their own move:
      // reordering the caller's remaining ops around a call is then safe.
      SmallVector<SmallVector<Operation *>> kept;
      for (SmallVector<Operation *> &run : runs)
        if (SmallVector<Operation *> rest = hoistShared(run, inAnyRun);
            int64_t(rest.size()) >= minOps && effectsArePrivate(rest))
          kept.push_back(std::move(rest));
      for (int64_t i = int64_t(kept.size()) - 1; i >= 0; --i)
        outline(kept[i], f, symbols, i);
    }
  }

  /// Buffers one run writes and another reads become tensors again between
  /// them. Canonicalization folds a microkernel's `to_tensor` of its output
  /// buffer and a later kernel's `to_buffer` of that tensor into a use of
  /// the buffer itself: gamma mode's codes, quantized in a layer's forward,
  /// are read there and again by its backward's grad_input, and the run
  /// that allocates them would otherwise stay inline (its buffer leaves
  /// it), and with it the run that reads them. Every `to_buffer` the
  /// lowering creates is read_only, so such a use only reads. The rewrite
  /// needs the buffer's writer (its first call) in the allocating run and
  /// every outside use a call of a declaration after the run's last use:
  /// the run then ends in `to_tensor %alloc restrict writable`, and each
  /// outside call reads the tensor through `to_buffer ... read_only`.
  static void
  retensorSharedBuffers(SmallVector<SmallVector<Operation *>> &runs,
                        llvm::DenseSet<Operation *> &inAnyRun) {
    llvm::DenseMap<Operation *, size_t> runOf;
    for (auto [i, run] : llvm::enumerate(runs))
      for (Operation *op : run)
        runOf[op] = i;
    auto isDeclCall = [](Operation *op) {
      auto call = dyn_cast<func::CallOp>(op);
      if (!call)
        return false;
      auto callee = SymbolTable::lookupNearestSymbolFrom<func::FuncOp>(
          call, call.getCalleeAttr());
      return callee && callee.isExternal();
    };
    // Insertions into a run keep it in block order.
    auto insertInto = [&](size_t r, Operation *newOp, Operation *anchor,
                          bool after) {
      SmallVector<Operation *> &run = runs[r];
      auto it = llvm::find(run, anchor);
      run.insert(after ? std::next(it) : it, newOp);
      runOf[newOp] = r;
      inAnyRun.insert(newOp);
    };
    for (size_t i = 0; i < runs.size(); ++i) {
      SmallVector<memref::AllocOp> allocs;
      for (Operation *op : runs[i])
        if (auto a = dyn_cast<memref::AllocOp>(op);
            a && a.getType().hasStaticShape() &&
            a.getType().getLayout().isIdentity())
          allocs.push_back(a);
      for (memref::AllocOp alloc : allocs) {
        Block *block = alloc->getBlock();
        auto top = [&](Operation *u) { return block->findAncestorOpInBlock(*u); };
        auto inRunI = [&](Operation *op) {
          auto it = runOf.find(op);
          return it != runOf.end() && it->second == i;
        };
        // The buffer and the run's casts of it; the uses of those.
        SmallVector<Value> views{alloc.getResult()};
        for (Operation *u : alloc->getUsers())
          if (isa<memref::CastOp>(u) && inRunI(u))
            views.push_back(u->getResult(0));
        Operation *lastInside = nullptr, *firstCall = nullptr;
        SmallVector<OpOperand *> outside;
        bool ok = true;
        for (Value v : views)
          for (OpOperand &use : v.getUses()) {
            Operation *u = top(use.getOwner());
            if (!u) {
              ok = false;
              continue;
            }
            if (isa<func::CallOp>(u) &&
                (!firstCall || u->isBeforeInBlock(firstCall)))
              firstCall = u;
            if (inRunI(u)) {
              if (!lastInside || lastInside->isBeforeInBlock(u))
                lastInside = u;
            } else if (u == use.getOwner() && isDeclCall(u)) {
              outside.push_back(&use);
            } else {
              ok = false;
            }
          }
        if (!ok || outside.empty() || !firstCall || !inRunI(firstCall) ||
            llvm::any_of(outside, [&](OpOperand *use) {
              return use->getOwner()->isBeforeInBlock(lastInside);
            }))
          continue;
        OpBuilder b(lastInside);
        b.setInsertionPointAfter(lastInside);
        MemRefType bufTy = alloc.getType();
        auto tensorTy =
            RankedTensorType::get(bufTy.getShape(), bufTy.getElementType());
        Value tensor = bufferization::ToTensorOp::create(
            b, alloc.getLoc(), tensorTy, alloc, /*restrict=*/true,
            /*writable=*/true);
        insertInto(i, tensor.getDefiningOp(), lastInside, /*after=*/true);
        for (OpOperand *use : outside) {
          Operation *user = use->getOwner();
          b.setInsertionPoint(user);
          auto buf = bufferization::ToBufferOp::create(b, user->getLoc(), bufTy,
                                                       tensor,
                                                       /*read_only=*/true);
          Value v = buf;
          if (v.getType() != use->get().getType())
            v = memref::CastOp::create(b, user->getLoc(), use->get().getType(),
                                       v);
          auto it = runOf.find(user);
          if (it != runOf.end()) {
            insertInto(it->second, buf, user, /*after=*/false);
            if (v != buf.getResult())
              insertInto(it->second, v.getDefiningOp(), user, /*after=*/false);
          }
          use->set(v);
        }
      }
    }
  }

  /// Whether the run's memory effects touch only buffers it allocates or
  /// reads tensors through: the pass runs after microkernel and library
  /// calls exist (so that elementwise fusion, which runs before it, decides
  /// the same in the outlined and the inline build), and such a call's
  /// alloc, read-only operand buffers, call and result tensor must move
  /// together. Any other effect (a buffer from outside, a write through a
  /// tensor's buffer, a call that is not a declaration) keeps the run
  /// inline.
  static bool effectsArePrivate(ArrayRef<Operation *> run) {
    llvm::DenseSet<Operation *> inRun(run.begin(), run.end());
    auto local = [&](Value v) {
      Operation *d = v.getDefiningOp();
      return d && inRun.contains(d);
    };
    for (Operation *op : run) {
      if (isMemoryEffectFree(op) && llvm::none_of(op->getOperands(), isBuffer) &&
          llvm::none_of(op->getResults(), isBuffer))
        continue;
      if (op->getNumRegions() != 0)
        return false;
      bool known = isa<memref::AllocOp, memref::AllocaOp, memref::CastOp,
                       memref::TransposeOp, memref::CopyOp,
                       bufferization::ToTensorOp>(op);
      if (auto toBuffer = dyn_cast<bufferization::ToBufferOp>(op))
        known = toBuffer.getReadOnly();
      if (auto call = dyn_cast<func::CallOp>(op)) {
        auto callee = SymbolTable::lookupNearestSymbolFrom<func::FuncOp>(
            call, call.getCalleeAttr());
        known = callee && callee.isExternal();
      }
      if (!known)
        return false;
      // Buffers come from the run and never leave it.
      for (Value v : op->getOperands())
        if (isBuffer(v) && !local(v))
          return false;
      for (Value r : op->getResults())
        if (isBuffer(r) &&
            llvm::any_of(r.getUsers(), [&](Operation *u) {
              return !inRun.contains(
                  op->getBlock()->findAncestorOpInBlock(*u));
            }))
          return false;
    }
    return true;
  }

  /// Empty tensors, fills, reshapes and slices: cheap, and the same
  /// wherever their operands are.
  static bool isCheapView(Operation *op) {
    return isa<tensor::EmptyOp, linalg::FillOp, tensor::ExpandShapeOp,
               tensor::CollapseShapeOp, tensor::ExtractSliceOp>(op);
  }

  /// Ops that belong to no run: constants, and cheap views whose operands
  /// no run defines.
  static bool transparent(Operation *op,
                          llvm::function_ref<bool(Operation *)> inRun) {
    if (op->hasTrait<OpTrait::ConstantLike>())
      return true;
    if (!isCheapView(op))
      return false;
    return llvm::none_of(op->getOperands(), [&](Value v) {
      return inRun(v.getDefiningOp());
    });
  }

  /// Whether a layer recomputes `v` rather than receiving it: a value of
  /// unnamed constants, empty tensors and fills and their reshapes/slices,
  /// the same in every layer. A layer's own weights, scales and codes are
  /// named constants, and arguments.
  static bool layerIndependent(Value v, int depth = 0) {
    Operation *def = v.getDefiningOp();
    if (!def || depth > 8)
      return false;
    if (def->hasTrait<OpTrait::ConstantLike>())
      return def->getNumResults() == 1 && !def->hasAttr("qslaw.name");
    if (!isCheapView(def))
      return false;
    return llvm::all_of(def->getOperands(), [&](Value o) {
      return layerIndependent(o, depth + 1);
    });
  }

  /// Ops of the run that depend on nothing the run computes and that
  /// another run also reads (CSE shares, say, the attention mask the first
  /// layer converts with every later one): they stay in the caller, with
  /// the run-invariant ops they read, and each layer receives the value.
  static SmallVector<Operation *>
  hoistShared(ArrayRef<Operation *> run,
              const llvm::DenseSet<Operation *> &inAnyRun) {
    llvm::DenseSet<Operation *> inRun(run.begin(), run.end()), invariant;
    Block *block = run.front()->getBlock();
    // Invariant: reads only what no run computes (the caller's values, not
    // another layer's), unnamed constants, and invariant ops of this run;
    // never a named constant (this layer's weights).
    // Ops on buffers are not values: an alloc reads nothing, yet the
    // tensor made from it holds what a call wrote there.
    auto onBuffers = [](Operation *op) {
      return !isMemoryEffectFree(op) ||
             llvm::any_of(op->getOperands(), isBuffer) ||
             llvm::any_of(op->getResults(), isBuffer);
    };
    for (Operation *op : run) {
      if (onBuffers(op))
        continue;
      llvm::SetVector<Value> reads(op->getOperands().begin(),
                                   op->getOperands().end());
      getUsedValuesDefinedAbove(op->getRegions(), reads);
      if (llvm::all_of(reads, [&](Value v) {
            Operation *d = v.getDefiningOp();
            if (!d)
              return true;
            if (d->hasTrait<OpTrait::ConstantLike>())
              return !d->hasAttr("qslaw.name");
            if (inRun.contains(d))
              return invariant.contains(d);
            return !inAnyRun.contains(d);
          }))
        invariant.insert(op);
    }
    llvm::DenseSet<Operation *> hoisted;
    SmallVector<Operation *> work;
    for (Operation *op : run)
      if (invariant.contains(op) &&
          llvm::any_of(op->getUsers(), [&](Operation *u) {
            return !inRun.contains(block->findAncestorOpInBlock(*u));
          }))
        work.push_back(op);
    while (!work.empty()) {
      Operation *op = work.pop_back_val();
      if (!hoisted.insert(op).second)
        continue;
      for (Value v : op->getOperands())
        if (Operation *d = v.getDefiningOp(); d && invariant.contains(d))
          work.push_back(d);
    }
    SmallVector<Operation *> rest;
    for (Operation *op : run)
      if (!hoisted.contains(op))
        rest.push_back(op);
    return rest;
  }

  void outline(ArrayRef<Operation *> run, func::FuncOp caller,
               SymbolTable &symbols, int64_t index) {
    llvm::SmallPtrSet<Operation *, 32> inRun(run.begin(), run.end());
    Block *block = run.front()->getBlock();
    MLIRContext *ctx = caller.getContext();
    OpBuilder b(caller);
    b.setInsertionPointAfter(caller);
    auto callee = func::FuncOp::create(
        b, run.front()->getLoc(),
        (caller.getSymName() + "__layer" + Twine(index)).str(),
        FunctionType::get(ctx, {}, {}));
    callee.setPrivate();
    // Internal and never inlined (by LLVM either): one copy per distinct
    // layer is the point.
    callee->setAttr("llvm.linkage",
                    LLVM::LinkageAttr::get(ctx, LLVM::Linkage::Internal));
    callee->setAttr("passthrough",
                    ArrayAttr::get(ctx, {StringAttr::get(ctx, "noinline")}));
    symbols.insert(callee);

    Block *body = callee.addEntryBlock();
    OpBuilder cb = OpBuilder::atBlockEnd(body);
    IRMapping map;
    SmallVector<Value> args; // caller values, in the callee's argument order
    auto strip = [](Operation *o) {
      o->walk([](Operation *n) {
        for (StringRef a : kNameAttrs)
          n->removeAttr(a);
      });
    };
    // The callee's value for an outside value: cloned when cheap, else a
    // new argument. Operands are visited in use order, so identical layers
    // get identical argument lists.
    std::function<Value(Value)> get = [&](Value v) -> Value {
      if (Value m = map.lookupOrNull(v))
        return m;
      Operation *def = v.getDefiningOp();
      // A transpose another layer (or the caller) computed is recomputed
      // here: the contraction that reads it then still sees it, and folds
      // it into the GEMM's transpose flag as it would inline.
      if (def && !inRun.contains(def) &&
          (layerIndependent(v) || isa<linalg::TransposeOp>(def))) {
        for (Value o : def->getOperands())
          get(o);
        strip(cb.clone(*def, map));
        return map.lookup(v);
      }
      args.push_back(v);
      Value arg = body->addArgument(v.getType(), v.getLoc());
      map.map(v, arg);
      return arg;
    };
    int64_t operandSerial = 0;
    for (Operation *op : run) {
      for (Value v : op->getOperands())
        get(v);
      llvm::SetVector<Value> above;
      getUsedValuesDefinedAbove(op->getRegions(), above);
      for (Value v : above)
        get(v);
      Operation *clone = cb.clone(*op, map);
      strip(clone);
      // The microkernel operand tags only keep CSE from merging reads; a
      // serial per function keeps them apart and identical layers equal.
      if (clone->hasAttr(kUkernelOperandAttr))
        clone->setAttr(kUkernelOperandAttr,
                       cb.getI64IntegerAttr(operandSerial++));
    }
    // Results: values the run defines and something after it reads (a use
    // inside a region counts as its top-level op's). A static reshape of a
    // run value is redone by the caller instead: the callee then returns
    // the buffer it allocated, which becomes the caller's out parameter,
    // where a returned reshape would be copied into it.
    auto usedAfter = [&](Value r) {
      return llvm::any_of(r.getUsers(), [&](Operation *u) {
        return !inRun.contains(block->findAncestorOpInBlock(*u));
      });
    };
    auto redoneByCaller = [&](Operation *op) {
      return isa<tensor::ExpandShapeOp, tensor::CollapseShapeOp>(op) &&
             op->getNumOperands() == 1 &&
             inRun.contains(op->getOperand(0).getDefiningOp());
    };
    llvm::SetVector<Value> results;
    std::function<void(Value)> need = [&](Value r) {
      Operation *def = r.getDefiningOp();
      if (redoneByCaller(def))
        need(def->getOperand(0));
      else
        results.insert(r);
    };
    for (Operation *op : run)
      for (Value r : op->getResults())
        if (usedAfter(r))
          need(r);
    SmallVector<Value> returned;
    for (Value r : results)
      returned.push_back(map.lookup(r));
    func::ReturnOp::create(cb, run.back()->getLoc(), returned);
    for (Operation *op : llvm::reverse(run))
      if (redoneByCaller(op))
        if (Operation *clone = map.lookup(op->getResult(0)).getDefiningOp();
            clone->use_empty())
          clone->erase();
    callee.setFunctionType(FunctionType::get(
        ctx, body->getArgumentTypes(), ValueRange(returned).getTypes()));

    // The call takes the place of the run's last op: every input is
    // defined before it, every outside use comes after it.
    OpBuilder at(run.back());
    at.setInsertionPointAfter(run.back());
    auto call = func::CallOp::create(at, run.back()->getLoc(), callee, args);
    IRMapping after;
    for (auto [r, c] : llvm::zip(results, call.getResults()))
      after.map(r, c);
    std::function<Value(Value)> inCaller = [&](Value v) -> Value {
      if (Value m = after.lookupOrNull(v))
        return m;
      Operation *def = v.getDefiningOp();
      inCaller(def->getOperand(0));
      return at.clone(*def, after)->getResult(0);
    };
    for (Operation *op : run)
      for (Value r : op->getResults())
        if (usedAfter(r)) {
          Value c = inCaller(r);
          r.replaceUsesWithIf(c, [&](OpOperand &u) {
            return !inRun.contains(block->findAncestorOpInBlock(*u.getOwner()));
          });
        }
    for (Operation *op : llvm::reverse(run))
      op->erase();
  }
};
} // namespace
