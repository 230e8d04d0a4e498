//===- EarlyDealloc.cpp - free each buffer right after its last use -------===//
//
// The ownership-based deallocation places every unconditional
// `memref.dealloc` at the end of the block that owns the buffer. In a
// straight-line model function that is its end: every intermediate of a
// forward, and of a whole training step, stayed allocated until the return
// (the small LLaVA's train step held 1.3 GB at batch 4, its tensors' sum).
// This pass moves each such dealloc up to just after the last operation of
// its block that uses the buffer or any view of it
// (BufferViewFlowAnalysis), counting uses inside nested regions as uses by
// their ancestor in the block.
//
//===----------------------------------------------------------------------===//
#include "qslaw/Conversion/Passes.h"

#include "mlir/Dialect/Bufferization/Transforms/BufferViewFlowAnalysis.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"

namespace mlir::qslaw {
#define GEN_PASS_DEF_EARLYDEALLOC
#include "qslaw/Conversion/Passes.h.inc"
} // namespace mlir::qslaw

using namespace mlir;

namespace {

struct EarlyDeallocPass : qslaw::impl::EarlyDeallocBase<EarlyDeallocPass> {
  void runOnOperation() override {
    func::FuncOp func = getOperation();
    BufferViewFlowAnalysis aliases(func);
    SmallVector<Block *> blocks;
    func->walk([&](Block *b) { blocks.push_back(b); });
    for (Block *block : blocks)
      hoistDeallocs(*block, aliases);
  }

  /// Moves the block's deallocs of buffers it allocates itself.
  void hoistDeallocs(Block &block, const BufferViewFlowAnalysis &aliases) {
    // Position of each op, and the last op of the block reading each value
    // (directly or from a nested region).
    DenseMap<Operation *, int64_t> position;
    DenseMap<Value, Operation *> lastUse;
    SmallVector<memref::DeallocOp> deallocs;
    int64_t i = 0;
    for (Operation &op : block) {
      position[&op] = i++;
      if (auto d = dyn_cast<memref::DeallocOp>(op)) {
        deallocs.push_back(d);
        continue; // a dealloc is not a use that holds the buffer alive
      }
      op.walk([&](Operation *inner) {
        for (Value v : inner->getOperands())
          lastUse[v] = &op;
      });
    }
    for (memref::DeallocOp d : deallocs) {
      Value buf = d.getMemref();
      auto alloc = buf.getDefiningOp<memref::AllocOp>();
      if (!alloc || alloc->getBlock() != &block)
        continue; // only buffers this block allocates
      Operation *last = alloc;
      for (Value a : aliases.resolve(buf)) {
        auto it = lastUse.find(a);
        if (it != lastUse.end() && position[it->second] > position[last])
          last = it->second;
      }
      if (position[last] < position[d] && last->getNextNode() != d)
        d->moveAfter(last);
    }
  }
};
} // namespace
