//===- GPUEmulateOnCPU.cpp - run GPU-mapped host code on the CPU ----------===//
//
// Verification aid: after qslaw-gpu-device-memory, everything the GPU will
// run is a gpu.launch with independent threads (generated kernels have no
// barriers or shared memory), and host code only allocates, copies and
// launches. Executing each launch as a loop nest over blocks and threads
// therefore computes what the GPU computes, up to floating-point
// contraction - which lets the CPU test machines check the whole GPU
// mapping (tiling, guards, thread indexing, device memory, sunk scalars)
// against the same references as the CPU path.
//
//===----------------------------------------------------------------------===//
#include "qslaw/Conversion/Passes.h"

#include "mlir/IR/IRMapping.h"

namespace mlir::qslaw {
#define GEN_PASS_DEF_GPUEMULATEONCPU
#include "qslaw/Conversion/Passes.h.inc"
} // namespace mlir::qslaw

using namespace mlir;

namespace {

LogicalResult emulateLaunch(gpu::LaunchOp launch) {
  if (launch.getAsyncToken() || !launch.getAsyncDependencies().empty() ||
      launch.hasClusterSize() || launch.getDynamicSharedMemorySize())
    return launch.emitOpError(
        "with async tokens, clusters or shared memory cannot be emulated");
  Region &body = launch.getBody();
  if (!body.hasOneBlock())
    return launch.emitOpError("with a multi-block body cannot be emulated");
  bool sync = false;
  body.walk([&](Operation *op) {
    sync |= isa<gpu::BarrierOp, gpu::ShuffleOp, gpu::SubgroupReduceOp,
                gpu::AllReduceOp>(op);
  });
  if (sync)
    return launch.emitOpError(
        "whose threads communicate cannot be emulated thread by thread");

  OpBuilder b(launch);
  Location loc = launch.getLoc();
  Value zero = arith::ConstantIndexOp::create(b, loc, 0);
  Value one = arith::ConstantIndexOp::create(b, loc, 1);
  gpu::KernelDim3 grid = launch.getGridSizeOperandValues();
  gpu::KernelDim3 block = launch.getBlockSizeOperandValues();
  Value bounds[6] = {grid.z, grid.y, grid.x, block.z, block.y, block.x};
  SmallVector<Value> ivs;
  for (Value ub : bounds) {
    auto loop = scf::ForOp::create(b, loc, zero, ub, one);
    ivs.push_back(loop.getInductionVar());
    b.setInsertionPoint(loop.getBody()->getTerminator());
  }
  IRMapping map;
  gpu::KernelDim3 bid = launch.getBlockIds(), tid = launch.getThreadIds();
  gpu::KernelDim3 gdim = launch.getGridSize(), bdim = launch.getBlockSize();
  map.map(bid.z, ivs[0]);
  map.map(bid.y, ivs[1]);
  map.map(bid.x, ivs[2]);
  map.map(tid.z, ivs[3]);
  map.map(tid.y, ivs[4]);
  map.map(tid.x, ivs[5]);
  map.map(gdim.x, grid.x);
  map.map(gdim.y, grid.y);
  map.map(gdim.z, grid.z);
  map.map(bdim.x, block.x);
  map.map(bdim.y, block.y);
  map.map(bdim.z, block.z);
  for (Operation &op : body.front().without_terminator())
    b.clone(op, map);
  launch.erase();
  return success();
}

struct GPUEmulateOnCPUPass
    : qslaw::impl::GPUEmulateOnCPUBase<GPUEmulateOnCPUPass> {
  void runOnOperation() override {
    SmallVector<Operation *> ops;
    getOperation().walk([&](Operation *op) {
      if (isa<gpu::LaunchOp, gpu::AllocOp, gpu::DeallocOp, gpu::MemcpyOp>(op))
        ops.push_back(op);
      if (isa<gpu::LaunchOp>(op))
        return WalkResult::skip();
      if (isa<gpu::LaunchFuncOp, gpu::GPUModuleOp>(op)) {
        op->emitOpError("is already outlined; emulate before "
                        "gpu-kernel-outlining");
        signalPassFailure();
      }
      return WalkResult::advance();
    });
    for (Operation *op : ops) {
      OpBuilder b(op);
      Location loc = op->getLoc();
      if (auto launch = dyn_cast<gpu::LaunchOp>(op)) {
        if (failed(emulateLaunch(launch)))
          return signalPassFailure();
      } else if (auto alloc = dyn_cast<gpu::AllocOp>(op)) {
        if (alloc.getAsyncToken() || alloc.getHostShared()) {
          alloc.emitOpError("async or host-shared: cannot be emulated");
          return signalPassFailure();
        }
        auto m = memref::AllocOp::create(b, loc, alloc.getMemref().getType(),
                                         alloc.getDynamicSizes(),
                                         alloc.getSymbolOperands());
        alloc.getMemref().replaceAllUsesWith(m.getResult());
        alloc.erase();
      } else if (auto dealloc = dyn_cast<gpu::DeallocOp>(op)) {
        memref::DeallocOp::create(b, loc, dealloc.getMemref());
        dealloc.erase();
      } else if (auto copy = dyn_cast<gpu::MemcpyOp>(op)) {
        memref::CopyOp::create(b, loc, copy.getSrc(), copy.getDst());
        copy.erase();
      }
    }
  }
};

} // namespace
