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
//
// Calls to the hand-written CUDA kernels (qslaw-lower-to-ukernels
// target=cuda) go to the CPU microkernels, which compute the same f32
// results over the same operands: the emulation then checks which ops are
// replaced and the operand plumbing, not the kernels' bf16/f16 rounding.
//
//===----------------------------------------------------------------------===//
#include "qslaw/Conversion/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
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

/// The CPU microkernel that computes what CUDA kernel `name` does, or "".
StringRef cpuKernelFor(StringRef name) {
  if (name == qslaw::kCudaQMatmulW4F32Kernel)
    return qslaw::kQMatmulW4F32Ukernel;
  if (name == qslaw::kCudaQMatmulW4GradInputKernel)
    return qslaw::kQMatmulW4GradInputUkernel;
  if (name == qslaw::kCudaQMatmulW4GradScaleKernel)
    return qslaw::kQMatmulW4GradScaleUkernel;
  if (name == qslaw::kCudaQMatmulW4GradGammaKernel)
    return qslaw::kQMatmulW4GradGammaUkernel;
  return "";
}

/// Same operands without the trailing activation type; the CPU kernels
/// take a thread count there instead (one: the emulation is sequential).
void redirectToCPUKernel(ModuleOp module, func::CallOp call, StringRef cpu) {
  OpBuilder b(call);
  SmallVector<Value> args(call.getOperands().drop_back());
  args.push_back(
      arith::ConstantOp::create(b, call.getLoc(), b.getI32IntegerAttr(1)));
  func::CallOp::create(
      b, call.getLoc(),
      qslaw::declareUkernel(module, b, cpu, ValueRange(args).getTypes()),
      args);
  StringRef old = call.getCallee();
  call.erase();
  if (auto decl = module.lookupSymbol<func::FuncOp>(old);
      decl && SymbolTable::symbolKnownUseEmpty(decl, module))
    decl.erase();
}

struct GPUEmulateOnCPUPass
    : qslaw::impl::GPUEmulateOnCPUBase<GPUEmulateOnCPUPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    SmallVector<std::pair<func::CallOp, StringRef>> kernelCalls;
    module.walk([&](func::CallOp call) {
      if (StringRef cpu = cpuKernelFor(call.getCallee()); !cpu.empty())
        kernelCalls.push_back({call, cpu});
    });
    for (auto [call, cpu] : kernelCalls)
      redirectToCPUKernel(module, call, cpu);
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
