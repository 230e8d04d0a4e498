//===- OutlineLoopNests.cpp - large loop nests into their own functions ---===//
//
// LLVM's compile time on one function of thousands of loop nests (a
// training step) is superlinear: O3 and instruction selection per
// function, and the OpenMP translation's CodeExtractor rescans the whole
// enclosing function for every parallel region it outlines. Splitting each
// large top-level nest into its own `no_inline` function keeps every
// function small (the call costs nanoseconds against a nest's work).
//
//===----------------------------------------------------------------------===//
#include "qslaw/Conversion/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/OpenMP/OpenMPDialect.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Interfaces/ViewLikeInterface.h"
#include "mlir/Transforms/RegionUtils.h"
#include "llvm/ADT/SetVector.h"
#include "llvm/ADT/TypeSwitch.h"

namespace mlir::qslaw {
#define GEN_PASS_DEF_OUTLINELOOPNESTS
#include "qslaw/Conversion/Passes.h.inc"
} // namespace mlir::qslaw

using namespace mlir;

namespace {

int64_t countOps(Operation *op, int64_t limit) {
  int64_t n = 0;
  op->walk([&](Operation *) {
    ++n;
    return n >= limit ? WalkResult::interrupt() : WalkResult::advance();
  });
  return n;
}

/// Whether the callee can take its buffers as bare pointers (FuncToLLVM's
/// `llvm.bareptr`): all of static shape and identity layout, so the callee
/// rebuilds each descriptor from its type, and none freed inside (a bare
/// pointer is the aligned one, not the allocation). Each buffer is then
/// one argument instead of 3 + 2 * rank: the top-level functions, mostly
/// calls, shrink, and so does LLVM's instruction selection on them.
bool bareBuffersOnly(ArrayRef<Value> args, Operation *nest) {
  for (Value v : args)
    if (auto m = dyn_cast<BaseMemRefType>(v.getType()))
      if (!isa<MemRefType>(m) || !m.hasStaticShape() ||
          !cast<MemRefType>(m).getLayout().isIdentity())
        return false;
  return !nest->walk([](memref::DeallocOp) { return WalkResult::interrupt(); })
              .wasInterrupted();
}

/// Whether `use` is the index of a scalar read (a memref.load, or a 0-d
/// vector.transfer_read) from a 1-D buffer: a value broadcast over the
/// nest, read once. (Indices of vector accesses, and of stores, stay
/// constants: LLVM folds them into addressing.)
bool isAddressUse(OpOperand &use) {
  unsigned n = use.getOperandNumber();
  auto within = [n](OperandRange indices) {
    return indices.size() == 1 && n == indices.getBeginOperandIndex();
  };
  return TypeSwitch<Operation *, bool>(use.getOwner())
      .Case([&](memref::LoadOp op) { return within(op.getIndices()); })
      .Case([&](vector::TransferReadOp op) {
        return op.getVectorType().getRank() == 0 && within(op.getIndices());
      })
      .Default(false);
}

/// Whether every use of `v` inside `nest` is an index of a load or store:
/// then it is passed, not cloned. Such a constant only says where to read
/// (the AdamW update of parameter i reads its rate at `lrs[i]`); cloned in,
/// it would make the otherwise identical nests of equal-shaped parameters
/// differ, and keep them from merging. Bounds and steps stay constants.
bool onlyAnAddress(Value v, Operation *nest) {
  if (!v.getType().isIndex())
    return false;
  bool any = false;
  for (OpOperand &use : v.getUses())
    if (nest->isAncestor(use.getOwner())) {
      if (!isAddressUse(use))
        return false;
      any = true;
    }
  return any;
}

/// An index constant that the nest uses both as an address and otherwise
/// (lrs[0], with 0 also a lower bound) gets a copy of its own for the
/// address uses, which onlyAnAddress then passes.
void splitAddressConstants(Operation *nest) {
  llvm::SetVector<Value> captured;
  getUsedValuesDefinedAbove(nest->getRegions(), captured);
  for (Value v : captured) {
    Operation *def = v.getDefiningOp();
    if (!def || !def->hasTrait<OpTrait::ConstantLike>() ||
        !v.getType().isIndex() || onlyAnAddress(v, nest))
      continue;
    SmallVector<OpOperand *> addresses;
    for (OpOperand &use : v.getUses())
      if (nest->isAncestor(use.getOwner()) && isAddressUse(use))
        addresses.push_back(&use);
    if (addresses.empty())
      continue;
    OpBuilder b(nest);
    Value copy = b.clone(*def)->getResult(0);
    for (OpOperand *use : addresses)
      use->set(copy);
  }
}

/// Whether a private function (a layer of qslaw-outline-layers) can take
/// its buffers as bare pointers: every memref argument of static shape and
/// identity layout, no memref result, and no argument (or a view of one)
/// freed inside. Its callers are in the module, so the calling convention
/// is ours to choose; the descriptor convention passes 3 + 2 * rank
/// scalars per buffer, and a layer's calls with hundreds of them made
/// LLVM's instruction selection of the entry functions grow faster than
/// their size (stores of the outgoing arguments).
bool barePointerFunction(func::FuncOp f) {
  if (!f.isPrivate() || f.isExternal() || f->hasAttr("llvm.bareptr"))
    return false;
  auto staticIdentity = [](Type t) {
    auto m = dyn_cast<MemRefType>(t);
    return !m || (m.hasStaticShape() && m.getLayout().isIdentity());
  };
  if (!llvm::all_of(f.getArgumentTypes(), staticIdentity) ||
      llvm::any_of(f.getResultTypes(),
                   [](Type t) { return isa<BaseMemRefType>(t); }))
    return false;
  Block &entry = f.getBody().front();
  auto rootIsArgument = [&](Value v) {
    while (Operation *def = v.getDefiningOp()) {
      auto view = dyn_cast<ViewLikeOpInterface>(def);
      if (!view)
        return false;
      v = view.getViewSource();
    }
    return cast<BlockArgument>(v).getOwner() == &entry;
  };
  return !f.walk([&](memref::DeallocOp d) {
             return rootIsArgument(d.getMemref()) ? WalkResult::interrupt()
                                                  : WalkResult::advance();
           }).wasInterrupted();
}

/// A public function that another function calls (train_step calls
/// grad_step) keeps its signature and convention (what the library's packed
/// entry calls: the driver's bare pointers or the C interface), but its body
/// moves into a private `<name>__body`, which the callers in the module
/// call instead: private, it takes bare pointers (below), one argument per
/// buffer where the public convention passes 3 + 2 * rank scalars each
/// (857 for the medium LLaVA's grad_step, whose one call from train_step
/// LLVM's instruction selection handled in quadratic time).
void splitCalledEntries(ModuleOp module, SymbolTable &symbols) {
  SymbolTableCollection tables;
  SymbolUserMap users(tables, module);
  MLIRContext *ctx = module.getContext();
  for (func::FuncOp f : llvm::to_vector(module.getOps<func::FuncOp>())) {
    if (f.isPrivate() || f.isExternal() || !f.getBody().hasOneBlock())
      continue;
    SmallVector<func::CallOp> calls;
    bool onlyCalls = true;
    for (Operation *user : users.getUsers(f)) {
      if (auto call = dyn_cast<func::CallOp>(user))
        calls.push_back(call);
      else
        onlyCalls = false;
    }
    if (calls.empty() || !onlyCalls)
      continue;
    OpBuilder b(ctx);
    b.setInsertionPointAfter(f);
    auto body = func::FuncOp::create(b, f.getLoc(),
                                     (f.getSymName() + "__body").str(),
                                     f.getFunctionType());
    body.setPrivate();
    body->setAttr("llvm.linkage",
                  LLVM::LinkageAttr::get(ctx, LLVM::Linkage::Internal));
    body->setAttr("passthrough",
                  ArrayAttr::get(ctx, {StringAttr::get(ctx, "noinline")}));
    symbols.insert(body); // renames on a clash
    body.getBody().takeBody(f.getBody());
    Block *entry = f.addEntryBlock();
    OpBuilder fb = OpBuilder::atBlockEnd(entry);
    auto forward =
        func::CallOp::create(fb, f.getLoc(), body, entry->getArguments());
    func::ReturnOp::create(fb, f.getLoc(), forward.getResults());
    for (func::CallOp call : calls)
      call.setCallee(body.getSymName());
  }
}

struct OutlineLoopNestsPass
    : qslaw::impl::OutlineLoopNestsBase<OutlineLoopNestsPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (minOps < 1) {
      module.emitError("qslaw-outline-loop-nests: min-ops must be >= 1, got ")
          << int64_t(minOps);
      return signalPassFailure();
    }
    SymbolTable symbols(module);
    splitCalledEntries(module, symbols);
    SmallVector<func::FuncOp> funcs(module.getOps<func::FuncOp>());
    for (func::FuncOp f : funcs)
      if (barePointerFunction(f))
        f->setAttr("llvm.bareptr", UnitAttr::get(module.getContext()));
    for (func::FuncOp f : funcs) {
      if (f.isExternal())
        continue;
      SmallVector<Operation *> nests;
      for (Block &block : f.getBody())
        for (Operation &op : block)
          // A parallel region becomes a function in LLVM's OpenMP
          // translation whatever its size (one CodeExtractor scan of the
          // enclosing function each); as a function here already, the
          // identical ones of identical layers can be merged.
          if (op.getNumRegions() > 0 &&
              (isa<omp::ParallelOp>(op) || countOps(&op, minOps) >= minOps))
            nests.push_back(&op);
      int64_t index = 0;
      Operation *after = f; // callees follow their caller, in order
      for (Operation *nest : nests)
        after = outline(nest, f, after, symbols, index++);
    }
  }

  func::FuncOp outline(Operation *nest, func::FuncOp caller, Operation *after,
                      SymbolTable &symbols, int64_t index) {
    // What the nest reads from outside: its operands and the values its
    // regions capture. Constants are rematerialised in the callee, except
    // those that are only addresses.
    splitAddressConstants(nest);
    llvm::SetVector<Value> captured;
    for (Value v : nest->getOperands())
      captured.insert(v);
    getUsedValuesDefinedAbove(nest->getRegions(), captured);
    SmallVector<Value> args;
    SmallVector<Operation *> constants;
    for (Value v : captured) {
      Operation *def = v.getDefiningOp();
      if (def && def->hasTrait<OpTrait::ConstantLike>() &&
          def->getNumResults() == 1 && !onlyAnAddress(v, nest))
        constants.push_back(def);
      else
        args.push_back(v);
    }

    MLIRContext *ctx = caller.getContext();
    auto type = FunctionType::get(ctx, ValueRange(args).getTypes(),
                                  nest->getResultTypes());
    OpBuilder b(caller);
    b.setInsertionPointAfter(after);
    auto callee = func::FuncOp::create(
        b, nest->getLoc(),
        (caller.getSymName() + "__nest" + Twine(index)).str(), type);
    callee.setPrivate();
    // Internal (not exported from the library) and never inlined: what
    // convert-func-to-llvm reads into the llvm.func.
    callee->setAttr("llvm.linkage", LLVM::LinkageAttr::get(
                                        ctx, LLVM::Linkage::Internal));
    callee->setAttr("passthrough",
                    ArrayAttr::get(ctx, {StringAttr::get(ctx, "noinline")}));
    symbols.insert(callee); // renames on a clash
    if (bareBuffersOnly(args, nest))
      callee->setAttr("llvm.bareptr", UnitAttr::get(ctx));

    Block *body = callee.addEntryBlock();
    OpBuilder cb = OpBuilder::atBlockEnd(body);
    IRMapping map;
    for (auto [v, arg] : llvm::zip(args, body->getArguments()))
      map.map(v, arg);
    for (Operation *c : constants)
      cb.clone(*c, map);
    Operation *copy = cb.clone(*nest, map);
    func::ReturnOp::create(cb, nest->getLoc(), copy->getResults());

    OpBuilder at(nest);
    auto call = func::CallOp::create(at, nest->getLoc(), callee, args);
    nest->replaceAllUsesWith(call.getResults());
    nest->erase();
    return callee;
  }
};
} // namespace
