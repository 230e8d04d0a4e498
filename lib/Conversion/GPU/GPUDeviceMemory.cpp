//===- GPUDeviceMemory.cpp - host code that only touches device memory ----===//
//
// After parallel loops become gpu.launch ops, what remains in a host
// function must not dereference a buffer: every buffer lives on the device.
// Allocations become gpu.alloc, constant globals are taken to be device
// memory (qslaw-gpu-resident-constants uploads them once), and each remaining run of memory-touching host operations is moved into a
// one-thread gpu.launch (rank-0 arithmetic, whole-tensor reductions and
// scans have no parallel loop; they are small in the graphs we compile).
//
//===----------------------------------------------------------------------===//
#include "qslaw/Conversion/Passes.h"

#include "mlir/IR/IRMapping.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "mlir/Interfaces/ViewLikeInterface.h"
#include "mlir/Transforms/RegionUtils.h"
#include "llvm/ADT/SetVector.h"

namespace mlir::qslaw {
#define GEN_PASS_DEF_GPUDEVICEMEMORY
#include "qslaw/Conversion/Passes.h.inc"
} // namespace mlir::qslaw

using namespace mlir;

namespace {

/// Operations host code may keep: they manage device memory or launch work
/// without reading or writing buffer contents on the host.
bool isHostLegalGPUOp(Operation *op) {
  return isa<gpu::LaunchOp, gpu::LaunchFuncOp, gpu::AllocOp, gpu::DeallocOp,
             gpu::MemcpyOp, gpu::MemsetOp, gpu::WaitOp>(op);
}

/// Whether `op` (or an operation nested in it, outside kernels) reads or
/// writes the contents of a buffer.
bool touchesMemory(Operation *op) {
  if (isHostLegalGPUOp(op))
    return false;
  bool touches = false;
  op->walk([&](Operation *nested) {
    if (isa<gpu::LaunchOp>(nested))
      return WalkResult::skip();
    auto iface = dyn_cast<MemoryEffectOpInterface>(nested);
    if (!iface)
      return WalkResult::advance();
    SmallVector<MemoryEffects::EffectInstance> effects;
    iface.getEffects(effects);
    for (const auto &e : effects) {
      if (!isa<MemoryEffects::Read, MemoryEffects::Write>(e.getEffect()))
        continue;
      Value v = e.getValue();
      if (v && isa<BaseMemRefType>(v.getType())) {
        touches = true;
        return WalkResult::interrupt();
      }
    }
    return WalkResult::advance();
  });
  return touches;
}

bool containsLaunch(Operation *op) {
  return op->walk([](gpu::LaunchOp) { return WalkResult::interrupt(); })
      .wasInterrupted();
}

bool isMovablePure(Operation *op) {
  return op->getNumRegions() == 0 && isMemoryEffectFree(op) &&
         !op->hasTrait<OpTrait::IsTerminator>();
}

class DeviceMemoryRewriter {
public:
  explicit DeviceMemoryRewriter(ModuleOp m) : module(m) {}

  LogicalResult run() {
    for (auto fn : module.getOps<func::FuncOp>()) {
      if (fn.isExternal())
        continue;
      if (failed(convertAllocations(fn)))
        return failure();
      sinkDeviceScalars(fn);
      if (failed(processRegion(fn.getBody())))
        return failure();
    }
    return success();
  }

private:
  ModuleOp module;

  LogicalResult convertAllocations(func::FuncOp fn) {
    SmallVector<Operation *> ops;
    fn.walk([&](Operation *op) {
      if (isa<gpu::LaunchOp>(op))
        return WalkResult::skip();
      if (isa<memref::AllocOp, memref::DeallocOp, memref::AllocaOp>(op))
        ops.push_back(op);
      return WalkResult::advance();
    });
    for (Operation *op : ops) {
      OpBuilder b(op);
      Location loc = op->getLoc();
      if (auto alloc = dyn_cast<memref::AllocOp>(op)) {
        auto g = gpu::AllocOp::create(b, loc, alloc.getType(), Type(),
                                      ValueRange{}, alloc.getDynamicSizes(),
                                      alloc.getSymbolOperands(), false);
        alloc.replaceAllUsesWith(g.getMemref());
        alloc.erase();
      } else if (auto dealloc = dyn_cast<memref::DeallocOp>(op)) {
        gpu::DeallocOp::create(b, loc, Type(), ValueRange{},
                               dealloc.getMemref());
        dealloc.erase();
      } else if (isa<memref::AllocaOp>(op)) {
        return op->emitOpError(
            "on the host of a GPU function: stack buffers cannot hold device "
            "data");
      }
    }
    return success();
  }

  LogicalResult processRegion(Region &region) {
    for (Block &block : region)
      if (failed(processBlock(block)))
        return failure();
    return success();
  }

  LogicalResult processBlock(Block &block) {
    SmallVector<Operation *> ops;
    for (Operation &op : block)
      ops.push_back(&op);
    SmallVector<Operation *> run; // ops of the current candidate range
    auto flush = [&]() -> LogicalResult {
      // Trim pure ops at the end: nothing after them needs the launch.
      while (!run.empty() && !touchesMemory(run.back()))
        run.pop_back();
      LogicalResult r = run.empty() ? success() : wrap(run);
      run.clear();
      return r;
    };
    for (Operation *op : ops) {
      if (isa<gpu::LaunchOp>(op) || op->hasTrait<OpTrait::IsTerminator>()) {
        if (failed(flush()))
          return failure();
        continue;
      }
      if (touchesMemory(op)) {
        if (containsLaunch(op)) {
          // A host loop around kernels: handle its body instead.
          if (failed(flush()))
            return failure();
          for (Region &r : op->getRegions())
            if (failed(processRegion(r)))
              return failure();
          continue;
        }
        run.push_back(op);
        continue;
      }
      if (!run.empty() && isMovablePure(op)) {
        run.push_back(op);
        continue;
      }
      if (failed(flush()))
        return failure();
    }
    return flush();
  }

  /// Whether `memref` is a constant global, or no operation of the
  /// function writes through it or a view of it (then any kernel may
  /// re-read it and see the same value).
  bool isReadOnly(Value memref) {
    if (auto get = memref.getDefiningOp<memref::GetGlobalOp>()) {
      auto global =
          SymbolTable::lookupNearestSymbolFrom<memref::GlobalOp>(
              get, get.getNameAttr());
      return global && global.getConstant();
    }
    auto arg = dyn_cast<BlockArgument>(memref);
    if (!arg || !isa<FunctionOpInterface>(arg.getOwner()->getParentOp()))
      return false;
    SmallVector<Value> views{memref};
    while (!views.empty()) {
      Value v = views.pop_back_val();
      for (Operation *user : v.getUsers()) {
        if (isa<ViewLikeOpInterface>(user)) {
          views.append(user->result_begin(), user->result_end());
          continue;
        }
        if (isa<gpu::LaunchFuncOp, func::CallOp>(user))
          return false;
        auto iface = dyn_cast<MemoryEffectOpInterface>(user);
        if (!iface || iface.getEffectOnValue<MemoryEffects::Write>(v))
          return false;
      }
    }
    return true;
  }

  /// Computes `v` inside `launch` if it is pure computation on loads of
  /// read-only memory: returns the clone, or null to keep the capture.
  Value recompute(Value v, gpu::LaunchOp launch, IRMapping &map,
                  OpBuilder &b) {
    if (Value done = map.lookupOrNull(v))
      return done;
    Operation *op = v.getDefiningOp();
    if (!op || op->getParentOfType<gpu::LaunchOp>())
      return nullptr;
    bool isLoad = false;
    if (auto load = dyn_cast<memref::LoadOp>(op)) {
      if (!isReadOnly(load.getMemRef()))
        return nullptr;
      isLoad = true;
    } else if (!isMovablePure(op)) {
      return nullptr;
    }
    // Recompute the operands that depend on loads; others stay captured.
    bool dependsOnLoad = isLoad;
    for (Value operand : op->getOperands())
      dependsOnLoad |= bool(recompute(operand, launch, map, b));
    if (!dependsOnLoad)
      return nullptr;
    Operation *clone = b.clone(*op, map);
    return clone->getResult(cast<OpResult>(v).getResultNumber());
  }

  /// Scalars read from device memory on the host and passed to kernels
  /// (AdamW's bias corrections from `step`) are computed in each kernel.
  void sinkDeviceScalars(func::FuncOp fn) {
    SmallVector<gpu::LaunchOp> launches;
    fn.walk([&](gpu::LaunchOp l) { launches.push_back(l); });
    for (gpu::LaunchOp launch : launches) {
      llvm::SetVector<Value> captured;
      getUsedValuesDefinedAbove(launch.getBody(), captured);
      IRMapping map;
      OpBuilder b = OpBuilder::atBlockBegin(&launch.getBody().front());
      for (Value v : captured)
        if (Value inner = recompute(v, launch, map, b))
          replaceAllUsesInRegionWith(v, inner, launch.getBody());
    }
    // The host copies of what was sunk are dead now (inner blocks first).
    fn.getBody().walk([](Block *block) {
      for (Operation &op : llvm::make_early_inc_range(llvm::reverse(*block)))
        if (isOpTriviallyDead(&op))
          op.erase();
    });
  }

  /// Moves the memory-touching ops of `run` (and the pure ops computing
  /// from them) into a one-thread gpu.launch placed before the first one.
  LogicalResult wrap(ArrayRef<Operation *> run) {
    llvm::SetVector<Operation *> moved;
    for (Operation *op : run) {
      bool dependsOnMoved = llvm::any_of(op->getOperands(), [&](Value v) {
        Operation *def = v.getDefiningOp();
        return def && moved.contains(def);
      });
      if (touchesMemory(op) || dependsOnMoved)
        moved.insert(op);
    }
    for (Operation *op : moved)
      for (Value result : op->getResults())
        for (OpOperand &use : llvm::make_early_inc_range(result.getUses())) {
          Operation *user = use.getOwner();
          Operation *top = op->getBlock()->findAncestorOpInBlock(*user);
          if (top && moved.contains(top))
            continue;
          return op->emitOpError(
                     "computes a value from device memory that host code "
                     "needs (used by '")
                 << user->getName() << "'); it cannot run on the host of a "
                                       "GPU function";
        }
    Operation *first = run.front();
    OpBuilder b(first);
    // Pure ops that do not depend on moved ones stay on the host, before
    // the launch.
    for (Operation *op : run)
      if (!moved.contains(op) && op != first)
        op->moveBefore(first);
    Location loc = first->getLoc();
    Value one = arith::ConstantIndexOp::create(b, loc, 1);
    auto launch = gpu::LaunchOp::create(b, loc, one, one, one, one, one, one);
    Block &body = launch.getBody().front();
    b.setInsertionPointToEnd(&body);
    auto terminator = gpu::TerminatorOp::create(b, loc);
    for (Operation *op : moved)
      op->moveBefore(terminator);
    return success();
  }
};

struct GPUDeviceMemoryPass
    : qslaw::impl::GPUDeviceMemoryBase<GPUDeviceMemoryPass> {
  void runOnOperation() override {
    if (failed(DeviceMemoryRewriter(getOperation()).run()))
      signalPassFailure();
  }
};

} // namespace
